//! Sessions: a typed wrapper the handlers use, and the stores that keep the state.
//!
//! The cookie carries only an opaque, encrypted session key; the state lives in a store with
//! time-expiration, so any instance can serve any request. Every store implements actix-session's
//! `SessionStore` in its own file and keeps the same semantics, which `tests/` checks for all of
//! them: `save` never overwrites, `update` never brings back a deleted or expired session, expired
//! state never loads, and corrupt state loads as "no session".

mod codec;
mod memory;
mod shopper;
mod sqlite;

use std::collections::HashMap;
use std::fmt;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;

pub use codec::{MAX_STATE_BYTES, StateTooLarge, now};
pub use memory::MemoryStore;
pub use shopper::{Flash, FlashKind, ShopSession, SignedInUser};
pub use sqlite::SqliteStore;

use crate::config::SessionConfig;

/// The session state as actix-session hands it to a store: names to JSON-encoded values.
pub type State = HashMap<String, String>;

/// The kinds of store, whether or not this build compiled them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Redis,
    Postgres,
    Memcached,
    Memory,
}

impl Backend {
    pub const ALL: [Backend; 5] = [
        Backend::Sqlite,
        Backend::Redis,
        Backend::Postgres,
        Backend::Memcached,
        Backend::Memory,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Redis => "redis",
            Backend::Postgres => "postgres",
            Backend::Memcached => "memcached",
            Backend::Memory => "memory",
        }
    }

    /// Whether this build has the store: the network stores each need their Cargo feature.
    pub fn is_compiled(self) -> bool {
        match self {
            Backend::Sqlite | Backend::Memory => true,
            Backend::Redis => cfg!(feature = "redis"),
            Backend::Postgres => cfg!(feature = "postgres"),
            Backend::Memcached => cfg!(feature = "memcached"),
        }
    }

    fn is_network(self) -> bool {
        matches!(
            self,
            Backend::Redis | Backend::Postgres | Backend::Memcached
        )
    }

    fn compiled_names() -> String {
        Self::ALL
            .iter()
            .filter(|b| b.is_compiled())
            .map(|b| b.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Parses `SESSION_BACKEND`, refusing a store this build does not have.
    pub fn parse(name: &str) -> Result<Self, String> {
        let name = name.trim().to_ascii_lowercase();
        let backend = Self::ALL
            .into_iter()
            .find(|b| b.name() == name)
            .ok_or_else(|| {
                format!(
                    "'{name}' is not a session store; choose one of: sqlite, redis, postgres, memcached, memory"
                )
            })?;
        if backend.is_compiled() {
            Ok(backend)
        } else {
            Err(format!(
                "the {name} store is not compiled into this build; rebuild with `--features {name}` \
                 (this build has: {})",
                Self::compiled_names()
            ))
        }
    }

    /// The store used when `SESSION_BACKEND` is unset: the only network store compiled in, or
    /// SQLite when there is none.
    pub fn default_compiled() -> Result<Self, String> {
        let network: Vec<Backend> = Self::ALL
            .into_iter()
            .filter(|b| b.is_network() && b.is_compiled())
            .collect();
        match network.as_slice() {
            [] => Ok(Backend::Sqlite),
            [only] => Ok(*only),
            _ => Err(format!(
                "several session stores are compiled in; set it to one of: {}",
                Self::compiled_names()
            )),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The store chosen at start-up. An enum rather than a trait object because actix-session's
/// `SessionStore` returns `impl Future`, which is not object safe.
#[derive(Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Memory(MemoryStore),
}

impl Store {
    /// Connects to the store named in the configuration.
    pub async fn connect(config: &SessionConfig) -> anyhow::Result<Self> {
        match config.backend {
            Backend::Sqlite => Ok(Store::Sqlite(
                SqliteStore::connect(&config.database_url).await?,
            )),
            Backend::Memory => Ok(Store::Memory(MemoryStore::default())),
            other => anyhow::bail!("the {other} store is not available in this build"),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Store::Sqlite(_) => Backend::Sqlite,
            Store::Memory(_) => Backend::Memory,
        }
    }

    /// Where the state lives, without any password, for the start-up log.
    pub fn location(&self) -> String {
        match self {
            Store::Sqlite(store) => store.location(),
            Store::Memory(_) => "this process's memory".to_owned(),
        }
    }

    /// One cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(store) => store.ping().await,
            Store::Memory(_) => Ok(()),
        }
    }

    /// Deletes expired state in stores that do not expire it themselves. Returns how many.
    pub async fn reap_expired(&self) -> anyhow::Result<u64> {
        match self {
            Store::Sqlite(store) => store.reap_expired().await,
            Store::Memory(store) => Ok(store.reap_expired()),
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Store::Sqlite($store) => $call,
            Store::Memory($store) => $call,
        }
    };
}

impl SessionStore for Store {
    async fn load(&self, key: &SessionKey) -> Result<Option<State>, LoadError> {
        dispatch!(self, store => store.load(key).await)
    }

    async fn save(&self, state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        dispatch!(self, store => store.save(state, ttl).await)
    }

    async fn update(
        &self,
        key: SessionKey,
        state: State,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        dispatch!(self, store => store.update(key, state, ttl).await)
    }

    async fn update_ttl(&self, key: &SessionKey, ttl: &Duration) -> anyhow::Result<()> {
        dispatch!(self, store => store.update_ttl(key, ttl).await)
    }

    async fn delete(&self, key: &SessionKey) -> anyhow::Result<()> {
        dispatch!(self, store => store.delete(key).await)
    }
}
