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
    pub(crate) use super::values::{CART, CART_OWNER, CHECKOUT, CSRF, FLASH, USER};
}

use std::collections::HashMap;

pub use crate::domain::now;
pub use backend::Backend;
pub use codec::{MAC_ENTRY, MAX_STATE_BYTES, StateMac, TAG_REQUIRED, Tag};
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

/// The entry under which a loaded state carries what its request needs of the read, never
/// stored: the bytes it was read from (`update`'s and `modify`'s compare-and-set expect them)
/// and the key it was read under (so a change need not decrypt the cookie a second time:
/// actix-session decrypted it once, to load the state). See [`Loaded`].
pub const LOADED: &str = "__loaded";

/// The entry a load puts in place of a state stored in another version's format (see
/// [`codec::other_version`]): the request sees no session, and every write of it is refused, so
/// the stored bytes stay as they are for a replica that reads them. Never stored.
pub const OTHER_VERSION: &str = "__other_version";

/// What [`LOADED`] carries, in one entry rather than two (one more entry would grow the state's
/// map on every read): the key, a newline (never in a key), the bytes read.
pub struct Loaded<'a> {
    pub key: &'a str,
    pub raw: &'a str,
}

impl<'a> Loaded<'a> {
    /// The entry for `raw`, read under `key`.
    pub fn carry(key: &str, raw: &str) -> String {
        let mut entry = String::with_capacity(key.len() + 1 + raw.len());
        entry.push_str(key);
        entry.push('\n');
        entry.push_str(raw);
        entry
    }

    /// The key and bytes an entry carries.
    pub fn read(entry: &'a str) -> Option<Self> {
        let (key, raw) = entry.split_once('\n')?;
        Some(Self { key, raw })
    }
}
