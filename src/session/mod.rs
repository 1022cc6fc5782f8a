//! Sessions: a typed wrapper the handlers use, and the stores that keep the state.
//!
//! The cookie carries only an opaque, encrypted session key; the state lives in a store with
//! time-expiration, so any instance can serve any request. Every store implements actix-session's
//! `SessionStore` in its own file and keeps the same semantics, which `tests/` checks for all of
//! them: `save` never overwrites, `update` never brings back a deleted or expired session, expired
//! state never loads, and corrupt state loads as "no session".

mod codec;
pub mod csrf;
mod index;
#[cfg(feature = "memcached")]
mod memcached;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
mod shopper;
mod sql;
mod sqlite;
mod stats;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;

pub use codec::{MAX_STATE_BYTES, StateTooLarge, now};
use codec::{decode, encode, key_prefix, new_key};

/// The codec, for the property tests next to the domain types.
#[cfg(test)]
pub(crate) mod codec_for_tests {
    use super::{State, codec};

    pub fn encode(state: &State) -> anyhow::Result<String> {
        codec::encode(state)
    }

    pub fn decode(raw: &[u8]) -> Result<State, actix_session::storage::LoadError> {
        codec::decode(&codec::new_key(), raw)
    }
}
pub use index::LiveSession;
#[cfg(feature = "memcached")]
pub use memcached::{MemcachedStore, XxhRendezvous};
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::RedisStore;
pub use shopper::{
    DEFAULT_MAX_LOGIN_SECONDS, Flash, FlashKind, PendingCheckout, ShopSession, SignedInUser,
    cart_in, end_expired_sign_in, pending_checkout_in, put_cart_and_flash, put_pending_checkout,
    user_in,
};
pub use sql::SqlStore;
pub use stats::{Operation, StoreStats};

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

/// The store chosen at start-up, with counters of what it was asked to do. An enum inside
/// rather than a trait object because actix-session's `SessionStore` returns `impl Future`,
/// which is not object safe.
#[derive(Clone)]
pub struct Store {
    kind: Kind,
    backend: Backend,
    /// The idle expiry: every read of a live session pushes its expiry this far ahead.
    ttl: Duration,
    /// The absolute lifetime of a sign-in, which bounds the user-to-sessions index.
    max_login_seconds: i64,
    stats: Arc<StoreStats>,
}

#[derive(Clone)]
enum Kind {
    Sql(SqlStore),
    Memory(MemoryStore),
    #[cfg(feature = "redis")]
    Redis(RedisStore),
    #[cfg(feature = "memcached")]
    Memcached(MemcachedStore),
}

macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match &$self.kind {
            Kind::Sql($store) => $call,
            Kind::Memory($store) => $call,
            #[cfg(feature = "redis")]
            Kind::Redis($store) => $call,
            #[cfg(feature = "memcached")]
            Kind::Memcached($store) => $call,
        }
    };
}

impl Store {
    /// Connects to the store named in the configuration.
    pub async fn connect(config: &SessionConfig) -> anyhow::Result<Self> {
        let kind = match config.backend {
            Backend::Sqlite => Kind::Sql(sqlite::connect(&config.database_url).await?),
            Backend::Memory => Kind::Memory(MemoryStore::default()),
            #[cfg(feature = "postgres")]
            Backend::Postgres => Kind::Sql(postgres::connect(&config.database_url).await?),
            #[cfg(feature = "redis")]
            Backend::Redis => {
                Kind::Redis(RedisStore::connect(&config.redis_url, &config.key_prefix).await?)
            }
            #[cfg(feature = "memcached")]
            Backend::Memcached => Kind::Memcached(
                MemcachedStore::connect(&config.memcached_servers, &config.key_prefix).await?,
            ),
            #[allow(
                unreachable_patterns,
                reason = "reachable when a store's feature is off"
            )]
            other => anyhow::bail!("the {other} store is not compiled into this build"),
        };
        Ok(Self {
            kind,
            backend: config.backend,
            ttl: Duration::seconds(config.ttl_seconds),
            max_login_seconds: config.max_login_seconds,
            stats: Arc::new(StoreStats::new(config.backend)),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// What this store was asked to do since start-up.
    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// Where the state lives, without any password, for the start-up log.
    pub fn location(&self) -> String {
        match &self.kind {
            Kind::Memory(_) => "this process's memory".to_owned(),
            _ => dispatch!(self, store => store.location()),
        }
    }

    /// One cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> anyhow::Result<()> {
        match &self.kind {
            Kind::Memory(_) => Ok(()),
            _ => dispatch!(self, store => store.ping().await),
        }
    }

    /// Deletes expired state in stores that do not expire it themselves. Returns how many.
    pub async fn reap_expired(&self) -> anyhow::Result<u64> {
        match &self.kind {
            Kind::Sql(store) => store.reap_expired().await,
            Kind::Memory(store) => Ok(store.reap_expired()),
            #[cfg(any(feature = "redis", feature = "memcached"))]
            _ => Ok(0),
        }
    }

    /// Stores already-encoded state under `key` only if no live session has that key: the
    /// primitive behind `save`, public so the conformance suite can try a collision.
    pub async fn insert_new(&self, key: &str, state: &str, ttl: &Duration) -> anyhow::Result<bool> {
        dispatch!(self, store => store.insert_new(key, state, ttl).await)
    }

    /// The value stored under a session key, exactly as the store holds it, and the seconds it
    /// has left; for the tests and the session inspector.
    pub async fn raw(&self, key: &str) -> anyhow::Result<Option<(String, i64)>> {
        dispatch!(self, store => store.raw(key).await)
    }

    /// Pushes the expiry of the live session under `key` to now + `ttl`, leaving its bytes as
    /// they are; a deleted or expired session stays gone. Page views do this inside their read
    /// (see `load`); this is the same slide on its own, for the conformance suite.
    pub async fn touch(&self, key: &str, ttl: &Duration) -> anyhow::Result<()> {
        dispatch!(self, store => store.touch(key, ttl).await)
    }

    /// The read of a page view: the state under `key`, its expiry slid to now + TTL in the same
    /// round trip (Redis `GETEX`, Memcached's meta get with a touch), or, on the SQL stores, by
    /// a separate write only when less than half the TTL is left (counted as a slide).
    async fn read_sliding(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let ttl = &self.ttl;
        let (raw, slide_due) = self
            .measured(Operation::Load, async {
                match &self.kind {
                    Kind::Sql(store) => store.get_sliding(key, ttl).await,
                    Kind::Memory(store) => {
                        store.get_sliding(key, ttl).await.map(|raw| (raw, false))
                    }
                    #[cfg(feature = "redis")]
                    Kind::Redis(store) => store.get_sliding(key, ttl).await.map(|raw| (raw, false)),
                    #[cfg(feature = "memcached")]
                    Kind::Memcached(store) => {
                        store.get_sliding(key, ttl).await.map(|raw| (raw, false))
                    }
                }
            })
            .await?;
        if slide_due {
            self.measured(Operation::Slide, self.touch(key, ttl))
                .await?;
        }
        Ok(raw)
    }

    /// Whether keys are spread over several servers, so that a new key can avoid a dead one.
    fn spreads_keys(&self) -> bool {
        match &self.kind {
            #[cfg(feature = "memcached")]
            Kind::Memcached(store) => store.spreads_keys(),
            _ => false,
        }
    }

    /// Times `call`, counts it, and counts its failure.
    async fn measured<T, E>(
        &self,
        operation: Operation,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let started = std::time::Instant::now();
        let result = call.await;
        self.stats
            .record(operation, started.elapsed(), result.is_ok());
        result
    }
}

/// The entry under which a loaded state carries the bytes it was read from, to `update`.
pub const LOADED: &str = "__loaded";

/// Tries of a `modify` before it answers "please try again". With the backoff below, 16 tries
/// wait up to about a quarter of a second in all: enough for 50 simultaneous adds to one cart.
const MODIFY_ATTEMPTS: u32 = 16;

/// Why a `modify` did not apply its change.
#[derive(Debug, thiserror::Error)]
pub enum ModifyError<E> {
    /// Other requests changed the session every time this one tried.
    #[error("the session kept changing; the change was not applied")]
    Conflict,
    /// The change itself refused (bad input); nothing was written.
    #[error(transparent)]
    Rejected(E),
    #[error(transparent)]
    Store(anyhow::Error),
}

impl Store {
    /// Applies `change` to the state stored under `key` as one compare-and-set: read, change,
    /// write only if nobody wrote in between, else read again and replay the change, a bounded
    /// number of times. So two requests of one shopper (two tabs, two replicas, a double click)
    /// never lose each other's change. `None` when no live session has the key.
    ///
    /// `already_read` is what this request read at its start, if anything: the first try
    /// starts from it, so an uncontended change costs one compare-and-set and no extra read.
    pub async fn modify<T, E>(
        &self,
        key: &str,
        ttl: &Duration,
        already_read: Option<Vec<u8>>,
        mut change: impl FnMut(&mut State) -> Result<T, E>,
    ) -> Result<Option<T>, ModifyError<E>> {
        let Ok(session_key) = SessionKey::try_from(key.to_owned()) else {
            return Ok(None);
        };
        let mut already_read = already_read;
        for attempt in 1..=MODIFY_ATTEMPTS {
            let raw = match already_read.take() {
                Some(raw) => Some(raw),
                None => self
                    .measured(Operation::Load, async {
                        dispatch!(self, store => store.get(key).await)
                    })
                    .await
                    .map_err(ModifyError::Store)?,
            };
            let Some(raw) = raw else { return Ok(None) };
            let Ok(mut state) = decode(&session_key, &raw) else {
                return Ok(None);
            };
            let out = change(&mut state).map_err(ModifyError::Rejected)?;
            let encoded = encode(&state).map_err(ModifyError::Store)?;
            let swapped = self
                .measured(Operation::Update, async {
                    dispatch!(self, store => store.compare_and_swap(key, &raw, &encoded, ttl).await)
                })
                .await
                .map_err(ModifyError::Store)?;
            if swapped {
                self.stats.wrote(encoded.len());
                return Ok(Some(out));
            }
            // Exponential backoff with full jitter, so the requests that collided spread out
            // instead of colliding again in step: up to 1, 2, 4 … 32 ms.
            let pause = rand::random::<u64>() % (1000 << attempt.min(5));
            tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
        }
        log::warn!(
            "Session {} kept changing; a change was refused.",
            &key[..key.len().min(8)]
        );
        Err(ModifyError::Conflict)
    }
}

impl Store {
    /// Applies `change` to the small record under `name` (a counter, a user's sessions index)
    /// as a compare-and-set: `change` gets the bytes read (none when there is no live record)
    /// and gives the bytes to write and what to return. Retried while other requests change the
    /// record in between; the record expires `ttl` after the last change.
    pub(crate) async fn update_record<T>(
        &self,
        name: &str,
        ttl: &Duration,
        mut change: impl FnMut(Option<&[u8]>) -> (String, T),
    ) -> anyhow::Result<T> {
        for attempt in 1..=MODIFY_ATTEMPTS {
            let raw = self.read_record(name).await?;
            let (next, out) = change(raw.as_deref());
            let swapped = self
                .measured(Operation::Update, async {
                    match &raw {
                        None => dispatch!(self, store => store.insert_new(name, &next, ttl).await),
                        Some(raw) => dispatch!(self, store => {
                            store.compare_and_swap(name, raw, &next, ttl).await
                        }),
                    }
                })
                .await?;
            if swapped {
                self.stats.wrote(next.len());
                return Ok(out);
            }
            let pause = rand::random::<u64>() % (1000 << attempt.min(5));
            tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
        }
        anyhow::bail!("the record {name} kept changing")
    }

    /// The bytes of the record under `name`, if it is live.
    pub(crate) async fn read_record(&self, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.measured(Operation::Load, async {
            dispatch!(self, store => store.get(name).await)
        })
        .await
    }

    /// What `raw` gives, counted as a read.
    pub(crate) async fn read_raw(&self, key: &str) -> anyhow::Result<Option<(String, i64)>> {
        self.measured(Operation::Load, self.raw(key)).await
    }

    /// Deletes whatever is stored under `key`.
    pub(crate) async fn remove_key(&self, key: &str) -> anyhow::Result<()> {
        self.measured(Operation::Delete, async {
            dispatch!(self, store => store.remove(key).await)
        })
        .await
    }

    /// Adds `delta` to the counter under `name` atomically in the store (Redis `INCRBY`,
    /// Memcached meta arithmetic, an SQL upsert), so concurrent requests on every replica each
    /// get their own count, and returns the new value (never below zero). The counter expires
    /// `window` after its last change.
    pub async fn add_to_counter(
        &self,
        name: &str,
        delta: i64,
        window: &Duration,
    ) -> anyhow::Result<i64> {
        self.measured(Operation::Update, async {
            dispatch!(self, store => store.add_to_counter(name, delta, window).await)
        })
        .await
    }

    /// Forgets the counter under `name`.
    pub async fn reset(&self, name: &str) -> anyhow::Result<()> {
        self.remove_key(name).await
    }
}

/// New keys tried before a save gives up when the server of a key does not answer, for stores
/// that spread keys over servers: enough that with one of three down a save all but never fails.
const SAVE_ATTEMPTS: usize = 8;

/// Encoding, the size limit, key making and the counters live here once; each store only
/// moves bytes under a key with the semantics the conformance suite checks.
impl SessionStore for Store {
    async fn load(&self, key: &SessionKey) -> Result<Option<State>, LoadError> {
        let raw = self
            .read_sliding(key.as_ref())
            .await
            .map_err(LoadError::Other)?;
        let Some(raw) = raw else { return Ok(None) };
        let mut state = decode(key, &raw)?;
        // What was read travels with the state, so that `update` writes only over it.
        state.insert(
            LOADED.to_owned(),
            String::from_utf8_lossy(&raw).into_owned(),
        );
        Ok(Some(state))
    }

    async fn save(&self, mut state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        state.remove(LOADED);
        let signed_in = user_in(&state);
        let state = encode(&state).map_err(SaveError::Serialization)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let key = new_key();
            let inserted = self
                .measured(Operation::Save, async {
                    dispatch!(self, store => store.insert_new(key.as_ref(), &state, ttl).await)
                })
                .await;
            match inserted {
                Ok(true) => {
                    self.stats.wrote(state.len());
                    // A new signed-in session (a login renews the key) joins its user's list,
                    // so it can be seen and ended from the user's other sessions.
                    if let Some(user) = &signed_in {
                        self.index_session(user, key.as_ref())
                            .await
                            .map_err(SaveError::Other)?;
                    }
                    return Ok(key);
                }
                Ok(false) => {}
                Err(err) if self.spreads_keys() && attempt < SAVE_ATTEMPTS => {
                    log::warn!(
                        "A store server refused a new session ({err:#}); trying another key."
                    );
                }
                Err(err) => return Err(SaveError::Other(err)),
            }
        }
    }

    async fn update(
        &self,
        key: SessionKey,
        state: State,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let mut state = state;
        let loaded = state.remove(LOADED);
        let state = encode(&state).map_err(UpdateError::Serialization)?;
        let written = self
            .measured(Operation::Update, async {
                match &loaded {
                    Some(loaded) => dispatch!(self, store => {
                        store.compare_and_swap(key.as_ref(), loaded.as_bytes(), &state, ttl).await
                    }),
                    None => dispatch!(self, store => {
                        store.replace(key.as_ref(), &state, ttl).await.map(|()| true)
                    }),
                }
            })
            .await
            .map_err(UpdateError::Other)?;
        if written {
            self.stats.wrote(state.len());
        } else {
            // Another request changed (or a logout deleted) the session since this one read it.
            // Its write would undo that change, so it is dropped; the only writes that reach
            // here are incidental ones (a flash message shown), the cart goes through `modify`.
            log::debug!("A stale write to session {} was dropped.", key_prefix(&key));
        }
        Ok(key)
    }

    /// Nothing to do: the read at the start of this request already slid the expiry (see
    /// `load`). actix-session calls this after every unchanged request of a live session and
    /// then sends the cookie again with a fresh `Max-Age`, which is all that is left to do; a
    /// second round trip here would double the cost of every page view.
    async fn update_ttl(&self, _key: &SessionKey, _ttl: &Duration) -> anyhow::Result<()> {
        Ok(())
    }

    async fn delete(&self, key: &SessionKey) -> anyhow::Result<()> {
        self.measured(Operation::Delete, async {
            dispatch!(self, store => store.remove(key.as_ref()).await)
        })
        .await
    }
}
