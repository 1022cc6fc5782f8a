//! The typed face of a session, `ShopSession`: the handlers never touch raw keys or JSON (those
//! are the session layer's, `session::values`). It sits above the store layer and the shop's
//! errors, and neither imports it.
//!
//! What lives here is small on purpose: the signed-in user's id and email, the cart lines, one
//! flash message and the CSRF token. Everything else is read from the database when needed.
//!
//! Nothing here writes for a visitor who changes nothing: reading the cart, the user or a form
//! token leaves the session as it was, so a crawler's page views create no stored session.
//!
//! During a deploy, replicas of two versions serve the same shoppers. A value (or a whole state)
//! another version wrote in a shape this one cannot read is shown as absent, and never
//! overwritten or deleted here: a change that would replace it is refused with
//! [`StoreError::OtherVersion`] ("the shop is being updated"), and the stored bytes stay for a
//! replica that reads them. Login and cart are separate values, so one unreadable never blocks
//! the other. A logout still ends the session: that is what the shopper asked for.

use std::future::{Ready, ready};

use actix_session::{Session, SessionExt, SessionStatus};
use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use serde::{Serialize, de::DeserializeOwned};
use subtle::ConstantTimeEq;

use crate::domain::{Cart, UserId};
use crate::error::ShopError;
use crate::session::keys::{CART, CART_OWNER, CHECKOUT, CSRF, FLASH, USER};
use crate::session::{
    DEFAULT_MAX_LOGIN_SECONDS, Flash, FlashKind, LOADED, Loaded, OTHER_VERSION, PendingCheckout,
    ReadAtStart, SessionSettings, SignedInUser, StoreError, csrf, now,
};

/// The longest `User-Agent` kept in a session.
const MAX_AGENT_CHARS: usize = 160;

/// A value this request has already decoded from its session. The middleware, the layout and
/// the handler each ask for the user and the cart; each used to decode the JSON again (a fifth
/// of a cart page's JSON work). Kept in the request's extensions and forgotten on every write.
struct Decoded<T>(T);

/// The message this request took from its session for its page.
struct TakenFlash(Flash);

/// The shop's view of an actix-session `Session`, with the request it belongs to (for the CSRF
/// nonce cookie and the browser's name).
#[derive(Clone)]
pub struct ShopSession {
    session: Session,
    req: HttpRequest,
}

impl FromRequest for ShopSession {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(ShopSession::of(req)))
    }
}

impl ShopSession {
    /// The request's session.
    pub fn of(req: &HttpRequest) -> Self {
        Self {
            session: req.get_session(),
            req: req.clone(),
        }
    }

    fn settings(&self) -> Option<&web::Data<SessionSettings>> {
        self.req.app_data::<web::Data<SessionSettings>>()
    }

    fn max_login_seconds(&self) -> i64 {
        self.settings()
            .map_or(DEFAULT_MAX_LOGIN_SECONDS, |settings| {
                settings.max_login_seconds
            })
    }

    /// A value that does not decode (another version's shape) counts as absent.
    fn get<T: DeserializeOwned>(&self, key: &'static str) -> Option<T> {
        self.read(key).ok().flatten()
    }

    /// The value under `key`, or [`StoreError::OtherVersion`] when it is there in a shape this
    /// version cannot read: a change must then leave it as it is.
    fn read<T: DeserializeOwned>(&self, key: &'static str) -> Result<Option<T>, StoreError> {
        self.session.get(key).map_err(|err| {
            log::warn!(
                "Session value '{key}' does not decode here ({err}); another version of the \
                 shop wrote it, and it is left as it is."
            );
            StoreError::OtherVersion(key)
        })
    }

    /// Refuses any change when the whole stored state is in another version's format.
    fn refuse_other_version(&self) -> Result<(), ShopError> {
        match self.session.contains_key(OTHER_VERSION) {
            true => Err(StoreError::OtherVersion("state").into()),
            false => Ok(()),
        }
    }

    /// What `read` takes from a value of this request's session, decoded once per request; the
    /// value itself is not copied (`read` must not touch the request's extensions).
    fn read_decoded<T: 'static, R>(
        &self,
        decode: impl FnOnce() -> T,
        read: impl FnOnce(&T) -> R,
    ) -> R {
        if let Some(Decoded(value)) = self.req.extensions().get::<Decoded<T>>() {
            return read(value);
        }
        let value = decode();
        let result = read(&value);
        self.req.extensions_mut().insert(Decoded(value));
        result
    }

    fn decoded_user<R>(&self, read: impl FnOnce(&Option<SignedInUser>) -> R) -> R {
        self.read_decoded(|| self.get(USER), read)
    }

    /// The cart, decoded once per request; `None` when another version wrote it in a shape
    /// this one cannot read.
    fn decoded_cart<R>(&self, read: impl FnOnce(Option<&Cart>) -> R) -> R {
        self.read_decoded(
            || self.read(CART).map(Option::unwrap_or_default).ok(),
            |cart: &Option<Cart>| read(cart.as_ref()),
        )
    }

    /// Forgets what was decoded: the session is about to change.
    fn forget_decoded(&self) {
        let mut extensions = self.req.extensions_mut();
        extensions.remove::<Decoded<Option<SignedInUser>>>();
        extensions.remove::<Decoded<Option<Cart>>>();
    }

    /// The id of a user whose recorded sign-in is past the absolute lifetime.
    fn expired_sign_in(&self) -> Option<UserId> {
        let max = self.max_login_seconds();
        self.decoded_user(|user| {
            let user = user.as_ref()?;
            (now() - user.signed_in_at > max).then_some(user.id)
        })
    }

    /// Writes a value. The first write of a visitor's session also binds the form token of
    /// their nonce cookie to it, so the forms they already have open keep working.
    fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), ShopError> {
        let unexpected = |err: actix_session::SessionInsertError| {
            ShopError::Unexpected(anyhow::anyhow!("{err}"))
        };
        self.refuse_other_version()?;
        self.forget_decoded();
        if key != CSRF && !self.session.contains_key(CSRF) {
            let token = self.guest_token().ok_or(ShopError::Csrf)?;
            self.session.insert(CSRF, token).map_err(unexpected)?;
        }
        self.session.insert(key, value).map_err(unexpected)
    }

    /// The signed-in user, while the sign-in is younger than the absolute lifetime (past it,
    /// `end_expired_sign_in` has already ended the session before any handler runs).
    pub fn user(&self) -> Option<SignedInUser> {
        let max = self.max_login_seconds();
        self.decoded_user(|user| {
            user.as_ref()
                .filter(|user| now() - user.signed_in_at <= max)
                .cloned()
        })
    }

    /// Signs a user in under a fresh session key (so a key planted before login is useless),
    /// with a new CSRF token and a new guest nonce (so no form token from before the sign-in
    /// works after it). A guest's cart comes along; another account's cart, checkout and
    /// message stay behind with that account.
    pub fn log_in(&self, id: UserId, email: String) -> Result<(), ShopError> {
        let settings = self.settings().ok_or(ShopError::Csrf)?;
        // A renewal deletes the old key: never a state or a login this version cannot read.
        self.refuse_other_version()?;
        self.read::<SignedInUser>(USER)?;
        // The account the session's cart belongs to: the one signed in, or the one whose sign-in
        // ended at its lifetime and left its cart here.
        let previous = self
            .decoded_user(|user| user.as_ref().map(|user| user.id))
            .or_else(|| self.get::<UserId>(CART_OWNER));
        if previous.is_some_and(|previous| previous != id) {
            self.forget_decoded();
            self.session.clear();
        }
        self.session.remove(CART_OWNER);
        self.session.renew();
        csrf::renew_nonce(&self.req);
        self.insert(CSRF, settings.signer.token(&csrf::new_nonce()))?;
        let agent = self
            .req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("an unnamed browser")
            .chars()
            .take(MAX_AGENT_CHARS)
            .collect();
        self.insert(
            USER,
            SignedInUser {
                id,
                email,
                signed_in_at: now(),
                agent,
                unknown: Default::default(),
            },
        )
    }

    /// Ends the session everywhere: the store deletes the state and the cookie is removed. The
    /// guest nonce is renewed too, so a form token from before the sign-in does not work again.
    pub fn log_out(&self) {
        self.forget_decoded();
        self.session.purge();
        csrf::renew_nonce(&self.req);
    }

    /// Whether this session was read from the store at the start of the request (rather than
    /// being new).
    pub fn was_stored(&self) -> bool {
        self.session.contains_key(LOADED)
    }

    /// The key this session was read from the store under at the start of the request (the
    /// key in its cookie), while it is still the session's key: not after a renewal or a purge.
    pub fn stored_key(&self) -> Option<String> {
        matches!(
            self.session.status(),
            SessionStatus::Unchanged | SessionStatus::Changed
        )
        .then(|| {
            let entries = self.session.entries();
            Some(Loaded::read(entries.get(LOADED)?)?.key.to_owned())
        })
        .flatten()
    }

    /// The bytes this session was read from at the start of the request, if it was stored,
    /// with the state actix-session decoded from them while this request has changed nothing.
    pub fn read_at_start(&self) -> Option<ReadAtStart> {
        let entries = self.session.entries();
        let raw = Loaded::read(entries.get(LOADED)?)?.raw.as_bytes().to_vec();
        let state = (self.session.status() == SessionStatus::Unchanged).then(|| {
            entries
                .iter()
                .filter(|(key, _)| key.as_str() != LOADED)
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect()
        });
        Some(ReadAtStart { raw, state })
    }

    /// The cart as a page shows it in passing; empty when another version wrote it in a shape
    /// this one cannot read (see [`Self::try_cart`]).
    pub fn cart(&self) -> Cart {
        self.decoded_cart(|cart| cart.cloned().unwrap_or_default())
    }

    /// The cart, for the cart page and for changing it: an error, rather than an empty cart,
    /// when this version cannot read it.
    pub fn try_cart(&self) -> Result<Cart, ShopError> {
        self.decoded_cart(|cart| cart.cloned())
            .ok_or(ShopError::Store(StoreError::OtherVersion(CART)))
    }

    /// How many items the cart holds, as the navigation shows it.
    pub fn cart_count(&self) -> u32 {
        self.decoded_cart(|cart| cart.map_or(0, Cart::item_count))
    }

    /// The checkout claimed in this session when the request started, if any.
    pub fn pending_checkout(&self) -> Result<Option<PendingCheckout>, ShopError> {
        Ok(self.read(CHECKOUT)?)
    }

    /// Replaces the cart; refused when the stored one is in a shape this version cannot read.
    pub fn set_cart(&self, cart: &Cart) -> Result<(), ShopError> {
        self.try_cart()?;
        if cart.is_empty() {
            if self.session.contains_key(CART) {
                self.refuse_other_version()?;
                self.forget_decoded();
                self.session.remove(CART);
            }
            Ok(())
        } else {
            self.insert(CART, cart)
        }
    }

    /// The token of the visitor's nonce cookie (the nonce is made now, and set on the
    /// response, if there is none), and whether the nonce was made during this request.
    fn guest_token_and_age(&self) -> Option<(String, bool)> {
        let settings = self.settings()?;
        let nonce = csrf::nonce_of(&self.req, settings.cookie_secure);
        Some((settings.signer.token(&nonce.value), nonce.is_new))
    }

    fn guest_token(&self) -> Option<String> {
        self.guest_token_and_age().map(|(token, _)| token)
    }

    /// The token for this session's forms: the stored session's own once it has one (kept
    /// there, so a signed-in page view computes nothing), else the one signed from the
    /// visitor's nonce cookie. Writes nothing to the store.
    pub fn csrf_token(&self) -> Result<String, ShopError> {
        self.get::<String>(CSRF)
            .or_else(|| self.guest_token())
            .ok_or(ShopError::Csrf)
    }

    /// Checks a submitted token against this session's, in constant time. A guest's nonce
    /// made during this very request (no cookie) matches nothing, and neither does a request
    /// the browser marks as cross-site.
    pub fn verify_csrf(&self, submitted: &str) -> Result<(), ShopError> {
        let expected = match self.get::<String>(CSRF) {
            Some(token) => Some(token),
            None => self
                .guest_token_and_age()
                .and_then(|(token, is_new)| (!is_new).then_some(token)),
        };
        match expected {
            Some(expected)
                if !csrf::is_cross_site(&self.req)
                    && !submitted.is_empty()
                    && bool::from(expected.as_bytes().ct_eq(submitted.as_bytes())) =>
            {
                Ok(())
            }
            _ => Err(ShopError::Csrf),
        }
    }

    pub fn flash(&self, kind: FlashKind, text: impl Into<String>) -> Result<(), ShopError> {
        self.insert(FLASH, Flash::new(kind, text))
    }

    /// Takes the pending message, if any. Only a session that has one is written back. A
    /// message this version cannot read stays for a replica that can show it.
    pub fn take_flash(&self) -> Option<Flash> {
        if !self.session.contains_key(FLASH) || self.refuse_other_version().is_err() {
            return None;
        }
        let flash: Flash = self.get(FLASH)?;
        self.session.remove(FLASH);
        self.req.extensions_mut().insert(TakenFlash(flash.clone()));
        Some(flash)
    }

    /// Puts back the message this request took, when its page was not shown after all (the
    /// handler failed and an error page answers): the shopper sees it on their next page.
    pub fn put_back_flash(&self) {
        let taken = self.req.extensions_mut().remove::<TakenFlash>();
        if let Some(TakenFlash(flash)) = taken
            && !self.session.contains_key(FLASH)
            && let Err(err) = self.insert(FLASH, flash)
        {
            log::warn!("The message of a failed page could not be kept: {err}");
        }
    }
}

/// A message for the page after a sign-in's absolute lifetime ended it.
pub fn signed_out_after(seconds: i64) -> String {
    let span = crate::error::span(seconds);
    format!("For your security you were signed out after {span}. Please log in again.")
}

/// Ends a sign-in that is past the absolute lifetime: the session is renewed, so actix-session
/// deletes the old key from the store and the request goes on as a guest's under a new one,
/// keeping the cart for the same account only (the next account to sign in on this browser
/// does not get it) and saying once why the shopper was signed out.
pub fn end_if_past_lifetime(session: &ShopSession) -> Result<(), ShopError> {
    if let Some(id) = session.expired_sign_in()
        && session.session.status() == SessionStatus::Unchanged
    {
        // The renewal deletes the old key: never a state or a cart this version cannot read.
        session.refuse_other_version()?;
        let cart = session.try_cart()?;
        log::info!("The sign-in of user {id} is past its absolute lifetime; its session is ended.");
        session.forget_decoded();
        session.session.clear();
        session.session.renew();
        session.set_cart(&cart)?;
        if !cart.is_empty() {
            session.insert(CART_OWNER, id)?;
        }
        session.flash(
            FlashKind::Info,
            signed_out_after(session.max_login_seconds()),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::signed_out_after;

    #[test]
    fn the_signed_out_message_names_the_lifetime_in_words() {
        assert!(signed_out_after(12 * 3600).contains("after 12 hours."));
        assert!(signed_out_after(3600).contains("after 1 hour."));
        assert!(signed_out_after(90 * 60).contains("after 90 minutes."));
        assert!(signed_out_after(2).contains("after 2 seconds."));
    }
}
