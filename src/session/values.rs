//! What a session holds, by name, as the store keeps it: the keys of its values, the shapes of
//! those values, and the helpers that read and write them in a state read straight from the
//! store (for changes made with `Store::modify`), in the same encoding actix-session uses. The
//! store layer and the typed `ShopSession` both build on this; neither on the other.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{StoreError, csrf};
use crate::domain::{Cart, CartLine, UserId};

pub(crate) const USER: &str = "user";
pub(crate) const CART: &str = "cart";
pub(crate) const FLASH: &str = "flash";
pub(crate) const CSRF: &str = "csrf";
pub(crate) const CHECKOUT: &str = "checkout";
/// The id of the account a guest's cart belonged to, after that account's sign-in ended at its
/// absolute lifetime: the cart goes back to that account only, never to another.
pub(crate) const CART_OWNER: &str = "cart_owner";

/// Fields of a stored value that this version does not know, kept as they were read and written
/// back with the value, so that a replica of an older version editing a value written by a
/// newer one loses nothing of it (see README, "Deploying a new version").
pub type UnknownFields = serde_json::Map<String, serde_json::Value>;

/// The value under `key`: `None` when absent, [`StoreError::OtherVersion`] when it is there in
/// a shape this version cannot read, which its callers then never overwrite.
pub fn value_in<T: DeserializeOwned>(
    state: &super::State,
    key: &'static str,
) -> Result<Option<T>, StoreError> {
    match state.get(key) {
        None => Ok(None),
        Some(value) => serde_json::from_str(value)
            .map(Some)
            .map_err(|_| StoreError::OtherVersion(key)),
    }
}

/// The user a session belongs to, once logged in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedInUser {
    pub id: UserId,
    pub email: String,
    /// When the user signed in (seconds since the epoch); a session older than the absolute
    /// lifetime no longer counts as signed in, however active it was.
    #[serde(default)]
    pub signed_in_at: i64,
    /// The browser as its `User-Agent` named itself at sign-in, shortened; shown on the
    /// shopper's sessions page.
    #[serde(default)]
    pub agent: String,
    #[serde(flatten)]
    pub unknown: UnknownFields,
}

/// The signed-in user recorded in a state read straight from the store, if any and readable.
pub fn user_in(state: &super::State) -> Option<SignedInUser> {
    value_in(state, USER).ok().flatten()
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
    #[serde(flatten)]
    pub unknown: UnknownFields,
}

impl Flash {
    pub fn new(kind: FlashKind, text: impl Into<String>) -> Self {
        Self {
            kind,
            text: text.into(),
            unknown: UnknownFields::new(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.kind == FlashKind::Error
    }
}

/// The longest a sign-in lasts, active or not, unless configured otherwise: 12 hours.
pub const DEFAULT_MAX_LOGIN_SECONDS: i64 = 12 * 3600;

/// The cart in a state read straight from the store (for changes made with `Store::modify`),
/// in the same encoding actix-session uses; an error when it is there in a shape this version
/// cannot read, so that no change replaces it with an empty cart.
pub fn cart_in(state: &super::State) -> Result<Cart, StoreError> {
    Ok(value_in(state, CART)?.unwrap_or_default())
}

/// A checkout claimed in the session: the token its order is placed under (unique among orders)
/// and the lines it orders. Every request that checks out while it is there joins it instead of
/// starting another, so a double click or ten racing requests place one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCheckout {
    pub token: String,
    pub lines: Vec<CartLine>,
    /// Seconds since the epoch, by the database's clock (the one clock every replica shares).
    pub started_at: i64,
    /// The order it placed, once placed: a request that asks again with the cart emptied by
    /// that order lands on it.
    #[serde(default)]
    pub order: Option<i64>,
    #[serde(flatten)]
    pub unknown: UnknownFields,
}

impl PendingCheckout {
    /// A new claim on `lines`, with a fresh token, started at `now` by the database's clock.
    pub fn new(lines: &[CartLine], now: i64) -> Self {
        Self {
            token: csrf::new_nonce(),
            lines: lines.to_vec(),
            started_at: now,
            order: None,
            unknown: UnknownFields::new(),
        }
    }
}

/// The checkout claimed in a state read straight from the store, if any; an error when it is
/// there in a shape this version cannot read.
pub fn pending_checkout_in(state: &super::State) -> Result<Option<PendingCheckout>, StoreError> {
    value_in(state, CHECKOUT)
}

/// Claims a checkout in a state read straight from the store, or clears the claim.
pub fn put_pending_checkout(
    state: &mut super::State,
    pending: Option<&PendingCheckout>,
) -> serde_json::Result<()> {
    match pending {
        Some(pending) => {
            state.insert(CHECKOUT.to_owned(), serde_json::to_string(pending)?);
        }
        None => {
            state.remove(CHECKOUT);
        }
    }
    Ok(())
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
