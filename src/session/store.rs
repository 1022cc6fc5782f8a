//! The store chosen at start-up: one type over every kind of store, which owns encoding, the
//! size limit, key making, the sliding read and the counters, while each store's own file only
//! moves bytes under a key. It is actix-session's `SessionStore`.

use std::sync::Arc;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;

use super::codec::{StateMac, decode_owned, encode, key_prefix, new_key, other_version};
#[cfg(feature = "memcached")]
use super::memcached::MemcachedStore;
#[cfg(feature = "redis")]
use super::redis::RedisStore;
use super::{
    Backend, LOADED, Loaded, MemoryStore, OTHER_VERSION, Operation, RawStore, SessionConfig,
    SqlStore, State, StoreError, StoreResult, StoreSettings, StoreStats, user_in,
};

/// The store chosen at start-up, with counters of what it was asked to do. An enum inside
/// rather than a trait object because actix-session's `SessionStore` returns `impl Future`,
/// which is not object safe.
#[derive(Clone)]
pub struct Store {
    pub(super) kind: Kind,
    backend: Backend,
    /// The idle expiry: every read of a live session pushes its expiry this far ahead.
    pub(super) ttl: Duration,
    /// The absolute lifetime of a sign-in, which bounds the user-to-sessions index.
    pub(super) max_login_seconds: i64,
    pub(super) stats: Arc<StoreStats>,
    /// Authenticates what the store holds (see [`StateMac`]).
    pub(super) mac: StateMac,
}

#[derive(Clone)]
pub(super) enum Kind {
    Sql(SqlStore),
    Memory(MemoryStore),
    /// Shared: some hundreds of bytes, where the others are a few dozen.
    #[cfg(feature = "redis")]
    Redis(Arc<RedisStore>),
    #[cfg(feature = "memcached")]
    Memcached(MemcachedStore),
}

/// Runs the same call on whichever store is inside.
macro_rules! dispatch {
    // An awaited call: each store's future goes in a box of its own size. Awaited inline, the
    // future of every caller up to actix-session's would be as large as the largest store's
    // (7 to 8.5 KiB with every store compiled in), and actix-session moves the whole of it into
    // a box on every request: the largest copy of a page view.
    ($self:ident, $store:ident => await $call:expr) => {
        match &$self.kind {
            $crate::session::store::Kind::Sql($store) => Box::pin($call).await,
            $crate::session::store::Kind::Memory($store) => Box::pin($call).await,
            #[cfg(feature = "redis")]
            $crate::session::store::Kind::Redis($store) => Box::pin($call).await,
            #[cfg(feature = "memcached")]
            $crate::session::store::Kind::Memcached($store) => Box::pin($call).await,
        }
    };
    ($self:ident, $store:ident => $call:expr) => {
        match &$self.kind {
            $crate::session::store::Kind::Sql($store) => $call,
            $crate::session::store::Kind::Memory($store) => $call,
            #[cfg(feature = "redis")]
            $crate::session::store::Kind::Redis($store) => $call,
            #[cfg(feature = "memcached")]
            $crate::session::store::Kind::Memcached($store) => $call,
        }
    };
}
pub(super) use dispatch;

impl Store {
    /// Connects to the store named in the configuration.
    pub async fn connect(config: &SessionConfig) -> anyhow::Result<Self> {
        let kind = match &config.store {
            StoreSettings::Sqlite(settings) => Kind::Sql(super::sqlite::connect(settings).await?),
            #[cfg(feature = "postgres")]
            StoreSettings::Postgres(settings) => {
                Kind::Sql(super::postgres::connect(settings).await?)
            }
            #[cfg(feature = "redis")]
            StoreSettings::Redis(settings) => {
                Kind::Redis(Arc::new(RedisStore::connect(settings).await?))
            }
            #[cfg(feature = "memcached")]
            StoreSettings::Memcached(settings) => {
                Kind::Memcached(MemcachedStore::connect(settings).await?)
            }
            StoreSettings::Memory => Kind::Memory(MemoryStore::default()),
        };
        let backend = config.backend();
        Ok(Self {
            kind,
            backend,
            ttl: Duration::seconds(config.ttl_seconds),
            max_login_seconds: config.max_login_seconds,
            stats: Arc::new(StoreStats::new(backend)),
            mac: StateMac::new(config.secret.bytes()),
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
        dispatch!(self, store => store.location())
    }

    /// One cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> StoreResult<()> {
        dispatch!(self, store => await store.ping())
    }

    /// Deletes expired state in stores that do not expire it themselves. Returns how many.
    pub async fn reap_expired(&self) -> StoreResult<u64> {
        dispatch!(self, store => await store.reap_expired())
    }

    /// Stores already-encoded state under `key` only if no live session has that key: the
    /// primitive behind `save`, public so the conformance suite can try a collision.
    pub async fn insert_new(&self, key: &str, state: &str, ttl: &Duration) -> StoreResult<bool> {
        dispatch!(self, store => await store.insert_new(key, state, ttl))
    }

    /// The value stored under a session key, exactly as the store holds it, and the seconds it
    /// has left; for the tests and the session inspector.
    pub async fn raw(&self, key: &str) -> StoreResult<Option<(String, i64)>> {
        dispatch!(self, store => await store.raw(key))
    }

    /// Pushes the expiry of the live session under `key` to now + `ttl`, leaving its bytes as
    /// they are; a deleted or expired session stays gone. Page views do this inside their read
    /// (see `load`); this is the same slide on its own, for the conformance suite.
    pub async fn touch(&self, key: &str, ttl: &Duration) -> StoreResult<()> {
        dispatch!(self, store => await store.touch(key, ttl))
    }

    /// The read of a page view: the state under `key`, its expiry slid to now + TTL in the same
    /// round trip (Redis `GETEX`, Memcached's meta get with a touch), or, on the SQL stores, by
    /// a separate write only when less than half the TTL is left (counted as a slide).
    async fn read_sliding(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let ttl = &self.ttl;
        let read = self
            .measured(Operation::Load, async {
                dispatch!(self, store => await store.get_sliding(key, ttl))
            })
            .await?;
        if read.slide_due {
            self.measured(Operation::Slide, self.touch(key, ttl))
                .await?;
        }
        Ok(read.bytes)
    }

    /// Whether keys are spread over several servers, so that a new key can avoid a dead one.
    fn spreads_keys(&self) -> bool {
        dispatch!(self, store => store.spreads_keys())
    }

    /// Times `call`, counts it, and counts its failure.
    pub(super) async fn measured<T, E>(
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
            .map_err(|err| LoadError::Other(reported(err)))?;
        let Some(raw) = raw else { return Ok(None) };
        if let Some(version) = other_version(&raw) {
            log::warn!(
                "Session {} is stored in format {version} of another version of the shop; it is \
                 read as empty here and left as it is.",
                key_prefix(key)
            );
            return Ok(Some(State::from([(
                OTHER_VERSION.to_owned(),
                version.to_string(),
            )])));
        }
        // Unverified state is not ours, as garbage is not: actix-session starts a new session.
        if !self.mac.admits(key, &raw) {
            return Err(LoadError::Deserialization(anyhow::anyhow!(
                "the state's tag does not verify"
            )));
        }
        // What was read travels with the state (moved, not copied), so that `update` writes
        // only over it.
        let (mut state, raw) = decode_owned(key, raw)?;
        state.insert(LOADED.to_owned(), Loaded::carry(key.as_ref(), &raw));
        Ok(Some(state))
    }

    async fn save(&self, mut state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        if state.contains_key(OTHER_VERSION) {
            return Err(SaveError::Other(reported(StoreError::OtherVersion(
                "state",
            ))));
        }
        state.remove(LOADED);
        let signed_in = user_in(&state);
        let state = encode(&state).map_err(|err| SaveError::Serialization(err.into()))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let key = new_key();
            let state = self.mac.seal(key.as_ref(), state.clone());
            let inserted = self
                .measured(Operation::Save, async {
                    dispatch!(self, store => await store.insert_new(key.as_ref(), &state, ttl))
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
                            .map_err(|err| SaveError::Other(reported(err)))?;
                    }
                    return Ok(key);
                }
                Ok(false) => {}
                Err(err) if self.spreads_keys() && attempt < SAVE_ATTEMPTS => {
                    log::warn!(
                        "A store server refused a new session ({err:#}); trying another key."
                    );
                }
                Err(err) => return Err(SaveError::Other(reported(err))),
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
        if state.contains_key(OTHER_VERSION) {
            return Err(UpdateError::Other(reported(StoreError::OtherVersion(
                "state",
            ))));
        }
        let loaded = state.remove(LOADED);
        let loaded = loaded
            .as_deref()
            .and_then(Loaded::read)
            .map(|read| read.raw);
        let state = encode(&state).map_err(|err| UpdateError::Serialization(err.into()))?;
        let state = self.mac.seal(key.as_ref(), state);
        let written = self
            .measured(Operation::Update, async {
                match &loaded {
                    Some(loaded) => dispatch!(self, store => await store.compare_and_swap(
                        key.as_ref(),
                        loaded.as_bytes(),
                        &state,
                        ttl
                    )),
                    None => {
                        dispatch!(self, store => await store.replace(key.as_ref(), &state, ttl))
                            .map(|()| true)
                    }
                }
            })
            .await
            .map_err(|err| UpdateError::Other(reported(err)))?;
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
            dispatch!(self, store => await store.remove(key.as_ref()))
        })
        .await
        .map_err(reported)
    }
}

/// Logs a failure handed back to actix-session, with its causes and without a backtrace, and
/// hands it on as the `anyhow` error actix-session takes. actix-session keeps only the error's
/// `Debug` (its 500, which the shop answers as 503), and an `anyhow` error's `Debug` prints the
/// backtrace captured when RUST_BACKTRACE is set, symbolized from the binary's debug info for
/// every failed request of an outage (which held 150 MiB from the first one, measured on the
/// handlers' 503s).
fn reported(err: StoreError) -> anyhow::Error {
    let err = anyhow::Error::new(err);
    log::error!("The session store failed: {err:#}");
    err
}
