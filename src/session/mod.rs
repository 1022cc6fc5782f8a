//! Sessions: a typed wrapper the handlers use, and the stores that keep the state.
//!
//! The cookie carries only an opaque, encrypted session key; the state lives in a store with
//! time-expiration, so any instance can serve any request. Every store implements actix-session's
//! `SessionStore` in its own file and keeps the same semantics, which `tests/` checks for all of
//! them: `save` never overwrites, `update` never brings back a deleted or expired session, expired
//! state never loads, and corrupt state loads as "no session".

mod backend;
mod codec;
pub mod csrf;
mod error;
mod index;
#[cfg(feature = "memcached")]
mod memcached;
mod memory;
mod modify;
#[cfg(feature = "postgres")]
mod postgres;
mod raw;
#[cfg(feature = "redis")]
mod redis;
mod settings;
mod sql;
mod sqlite;
mod stats;
mod store;
mod values;

/// The names a session's values are stored under, for the typed session.
pub(crate) mod keys {
    pub(crate) use super::values::{CART, CHECKOUT, CSRF, FLASH, USER};
}

use std::collections::HashMap;

pub use crate::domain::now;
pub use backend::Backend;
pub use codec::MAX_STATE_BYTES;
pub use error::StoreError;

pub use index::{Ending, LiveSession};
#[cfg(feature = "memcached")]
pub use memcached::MemcachedSettings;
#[cfg(feature = "memcached")]
pub use memcached::{MemcachedStore, XxhRendezvous};
pub use memory::MemoryStore;
pub use modify::{ModifyError, ReadAtStart};
#[cfg(feature = "postgres")]
pub use postgres::PostgresSettings;
pub use raw::{RawStore, SlidingRead, StoreResult};
#[cfg(feature = "redis")]
pub use redis::RedisSettings;
#[cfg(feature = "redis")]
pub use redis::RedisStore;
pub use settings::{Secret, SessionConfig, SessionSettings, StoreSettings, redact_url};
pub use sql::SqlStore;
pub use sqlite::SqliteSettings;
pub use stats::{Operation, StoreStats};
pub use store::Store;
pub use values::{
    DEFAULT_MAX_LOGIN_SECONDS, Flash, FlashKind, PendingCheckout, SignedInUser, cart_in,
    pending_checkout_in, put_cart_and_flash, put_pending_checkout, user_in,
};

/// The session state as actix-session hands it to a store: names to JSON-encoded values.
pub type State = HashMap<String, String>;

/// The entry under which a loaded state carries the bytes it was read from, to `update`.
pub const LOADED: &str = "__loaded";

/// The entry under which a loaded state carries its own session key, so that a request that
/// changes it by compare-and-set need not decrypt its cookie a second time (actix-session
/// decrypted it once, to load the state). Like [`LOADED`], never stored.
pub const LOADED_KEY: &str = "__key";
