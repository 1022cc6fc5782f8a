//! The typed face of a session: the handlers never touch raw keys or JSON.
//!
//! What lives here is small on purpose: the signed-in user's id and email, the cart lines, one
//! flash message and the CSRF token. Everything else is read from the database when needed.

use std::future::{Ready, ready};

use actix_session::{Session, SessionExt};
use actix_web::{FromRequest, HttpRequest, dev::Payload};
use rand::RngCore;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use subtle::ConstantTimeEq;

use crate::domain::{Cart, UserId};
use crate::error::ShopError;

const USER: &str = "user";
const CART: &str = "cart";
const FLASH: &str = "flash";
const CSRF: &str = "csrf";

/// The user a session belongs to, once logged in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedInUser {
    pub id: UserId,
    pub email: String,
    /// When the user signed in (seconds since the epoch); a session older than the absolute
    /// lifetime no longer counts as signed in, however active it was.
    #[serde(default)]
    pub signed_in_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlashKind {
    Info,
    Error,
}

/// A one-time message shown on the next page, then gone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flash {
    pub kind: FlashKind,
    pub text: String,
}

impl Flash {
    pub fn is_error(&self) -> bool {
        self.kind == FlashKind::Error
    }
}

/// The longest a sign-in lasts, active or not, unless configured otherwise: 12 hours.
pub const DEFAULT_MAX_LOGIN_SECONDS: i64 = 12 * 3600;

/// The shop's view of an actix-session `Session`.
#[derive(Clone)]
pub struct ShopSession {
    session: Session,
    max_login_seconds: i64,
}

impl FromRequest for ShopSession {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(ShopSession::of(req)))
    }
}

impl ShopSession {
    /// The request's session, with the absolute login lifetime the application is configured
    /// with.
    pub fn of(req: &HttpRequest) -> Self {
        let max_login_seconds = req
            .app_data::<actix_web::web::Data<crate::startup::AppState>>()
            .map_or(DEFAULT_MAX_LOGIN_SECONDS, |state| state.max_login_seconds);
        Self {
            session: req.get_session(),
            max_login_seconds,
        }
    }

    /// A value that no longer decodes (a foreign or outdated shape) counts as absent.
    fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        match self.session.get(key) {
            Ok(value) => value,
            Err(err) => {
                log::warn!("Session value '{key}' does not decode ({err}); ignoring it.");
                None
            }
        }
    }

    fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), ShopError> {
        self.session
            .insert(key, value)
            .map_err(|err| ShopError::Unexpected(anyhow::anyhow!("{err}")))
    }

    /// The signed-in user, while the sign-in is younger than the absolute lifetime.
    pub fn user(&self) -> Option<SignedInUser> {
        let user: SignedInUser = self.get(USER)?;
        if super::now() - user.signed_in_at > self.max_login_seconds {
            log::info!(
                "The sign-in of user {} is past its absolute lifetime.",
                user.id
            );
            return None;
        }
        Some(user)
    }

    /// Signs a user in under a fresh session key (so a key planted before login is useless),
    /// keeping the guest cart, with a new CSRF token.
    pub fn log_in(&self, id: UserId, email: String) -> Result<(), ShopError> {
        self.session.renew();
        let signed_in_at = super::now();
        self.insert(
            USER,
            SignedInUser {
                id,
                email,
                signed_in_at,
            },
        )?;
        self.insert(CSRF, new_token())
    }

    /// Ends the session everywhere: the store deletes the state and the cookie is removed.
    pub fn log_out(&self) {
        self.session.purge();
    }

    /// Whether this session was read from the store at the start of the request (rather than
    /// being new).
    pub fn was_stored(&self) -> bool {
        self.session.contains_key(super::LOADED)
    }

    /// The bytes this session was read from at the start of the request, if it was stored.
    pub fn read_at_start(&self) -> Option<Vec<u8>> {
        self.session
            .entries()
            .get(super::LOADED)
            .map(|raw| raw.clone().into_bytes())
    }

    pub fn cart(&self) -> Cart {
        self.get(CART).unwrap_or_default()
    }

    pub fn set_cart(&self, cart: &Cart) -> Result<(), ShopError> {
        if cart.is_empty() {
            if self.session.contains_key(CART) {
                self.session.remove(CART);
            }
            Ok(())
        } else {
            self.insert(CART, cart)
        }
    }

    /// The CSRF token for this session, made on first use.
    pub fn csrf_token(&self) -> Result<String, ShopError> {
        if let Some(token) = self.get::<String>(CSRF) {
            return Ok(token);
        }
        let token = new_token();
        self.insert(CSRF, &token)?;
        Ok(token)
    }

    /// Compares a submitted token with the session's in constant time.
    pub fn verify_csrf(&self, submitted: &str) -> Result<(), ShopError> {
        match self.get::<String>(CSRF) {
            Some(expected)
                if !submitted.is_empty()
                    && bool::from(expected.as_bytes().ct_eq(submitted.as_bytes())) =>
            {
                Ok(())
            }
            _ => Err(ShopError::Csrf),
        }
    }

    pub fn flash(&self, kind: FlashKind, text: impl Into<String>) -> Result<(), ShopError> {
        self.insert(
            FLASH,
            Flash {
                kind,
                text: text.into(),
            },
        )
    }

    /// Takes the pending message, if any. Only a session that has one is written back.
    pub fn take_flash(&self) -> Option<Flash> {
        if !self.session.contains_key(FLASH) {
            return None;
        }
        let flash = self.get(FLASH);
        self.session.remove(FLASH);
        flash
    }
}

/// The cart in a state read straight from the store (for changes made with `Store::modify`),
/// in the same encoding actix-session uses.
pub fn cart_in(state: &super::State) -> Cart {
    state
        .get(CART)
        .and_then(|value| serde_json::from_str(value).ok())
        .unwrap_or_default()
}

/// Puts the cart and a flash message into a state read straight from the store.
pub fn put_cart_and_flash(
    state: &mut super::State,
    cart: &Cart,
    flash: &Flash,
) -> serde_json::Result<()> {
    if cart.is_empty() {
        state.remove(CART);
    } else {
        state.insert(CART.to_owned(), serde_json::to_string(cart)?);
    }
    state.insert(FLASH.to_owned(), serde_json::to_string(flash)?);
    Ok(())
}

fn new_token() -> String {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
