//! Changes that must not be lost: a session's state changed by compare-and-set with bounded
//! retries (`modify`), small records kept the same way (`update_record`: a user's sessions
//! index), and atomic counters (login limits).

use actix_session::storage::SessionKey;
use actix_web::cookie::time::Duration;

use super::codec::{decode, encode, other_version};
use super::store::dispatch;
use super::{LOADED, Operation, RawStore, State, Store, StoreError, StoreResult};

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
    Store(StoreError),
}

/// What a request read at its start: the bytes (the compare-and-set's expected value) and, if
/// the request has not changed its session since, the state they decoded to, so that the change
/// does not decode them a second time.
pub struct ReadAtStart {
    pub raw: Vec<u8>,
    pub state: Option<State>,
}

/// The state key holding each write's random revision.
pub const REVISION: &str = "rev";

fn revision() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

impl Store {
    /// Applies `change` to the state stored under `key` as one compare-and-set: read, change,
    /// write only if nobody wrote in between, else read again and replay the change, a bounded
    /// number of times. So two requests of one shopper (two tabs, two replicas, a double click)
    /// never lose each other's change. `None` when no live session has the key.
    ///
    /// `already_read` is what this request read at its start, if anything: the first try
    /// starts from it, so an uncontended change costs one compare-and-set, no extra read and,
    /// when the decoded state comes with it, no second decode.
    pub async fn modify<T, E>(
        &self,
        key: &str,
        ttl: &Duration,
        already_read: Option<ReadAtStart>,
        mut change: impl FnMut(&mut State) -> Result<T, E>,
    ) -> Result<Option<T>, ModifyError<E>> {
        let Ok(session_key) = SessionKey::try_from(key.to_owned()) else {
            return Ok(None);
        };
        let mut already_read = already_read;
        for attempt in 1..=MODIFY_ATTEMPTS {
            let (raw, decoded) = match already_read.take() {
                Some(read) => (Some(read.raw), read.state),
                None => (
                    self.measured(Operation::Load, async {
                        dispatch!(self, store => await store.get(key))
                    })
                    .await
                    .map_err(ModifyError::Store)?,
                    None,
                ),
            };
            let Some(raw) = raw else { return Ok(None) };
            if decoded.is_none() && other_version(&raw).is_some() {
                return Err(ModifyError::Store(StoreError::OtherVersion("state")));
            }
            if decoded.is_none() && !self.mac.admits(&session_key, &raw) {
                return Ok(None);
            }
            let Ok(mut state) = decoded.map_or_else(|| decode(&session_key, &raw), Ok) else {
                return Ok(None);
            };
            // What a load carries for its request (the bytes read, the key) is never stored,
            // whoever handed the state in.
            state.remove(LOADED);
            let out = change(&mut state).map_err(ModifyError::Rejected)?;
            // Every write is unique, so a compare-and-set that a client library retried after a
            // lost reply (the Redis Cluster client does, when a master dies mid-request) finds
            // its own write and counts it done, instead of failing and having the change
            // replayed on top of itself.
            state.insert(REVISION.to_owned(), revision());
            let encoded = self
                .mac
                .seal(key, encode(&state).map_err(ModifyError::Store)?);
            let swapped = self
                .measured(Operation::Update, async {
                    dispatch!(self, store => await store.compare_and_swap(key, &raw, &encoded, ttl))
                })
                .await
                .map_err(ModifyError::Store)?;
            if swapped {
                self.stats.wrote(encoded.len());
                return Ok(Some(out));
            }
            back_off(attempt).await;
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
    /// and gives the bytes to write and what to return, or refuses (a record another version
    /// wrote in a shape this one cannot read), writing nothing. Retried while other requests
    /// change the record in between; the record expires `ttl` after the last change.
    pub(crate) async fn update_record<T>(
        &self,
        name: &str,
        ttl: &Duration,
        mut change: impl FnMut(Option<&[u8]>) -> StoreResult<(String, T)>,
    ) -> StoreResult<T> {
        for attempt in 1..=MODIFY_ATTEMPTS {
            let raw = self.read_record(name).await?;
            let (next, out) = change(raw.as_deref())?;
            let swapped = self
                .measured(Operation::Update, async {
                    match &raw {
                        None => dispatch!(self, store => await store.insert_new(name, &next, ttl)),
                        Some(raw) => dispatch!(self, store => await store.compare_and_swap(name, raw, &next, ttl)),
                    }
                })
                .await?;
            if swapped {
                self.stats.wrote(next.len());
                return Ok(out);
            }
            back_off(attempt).await;
        }
        Err(StoreError::Unavailable(anyhow::anyhow!(
            "the record {name} kept changing"
        )))
    }

    /// The bytes of the record under `name`, if it is live.
    pub(crate) async fn read_record(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        self.measured(Operation::Load, async {
            dispatch!(self, store => await store.get(name))
        })
        .await
    }

    /// What `raw` gives, counted as a read.
    pub(crate) async fn read_raw(&self, key: &str) -> StoreResult<Option<(String, i64)>> {
        self.measured(Operation::Load, self.raw(key)).await
    }

    /// Deletes whatever is stored under `key`.
    pub(crate) async fn remove_key(&self, key: &str) -> StoreResult<()> {
        self.measured(Operation::Delete, async {
            dispatch!(self, store => await store.remove(key))
        })
        .await
    }

    /// Adds `delta` to the counter under `name` atomically in the store (Redis `INCRBY`,
    /// Memcached meta arithmetic, an SQL upsert), so concurrent requests on every replica each
    /// get their own count, and returns the new value (never below zero). A new counter expires
    /// `window` after it is made; counting never extends it.
    pub async fn add_to_counter(
        &self,
        name: &str,
        delta: i64,
        window: &Duration,
    ) -> StoreResult<i64> {
        self.measured(Operation::Update, async {
            dispatch!(self, store => await store.add_to_counter(name, delta, window))
        })
        .await
    }

    /// Counts one under `name` if that keeps it within `limit`; a count that would pass the
    /// limit is taken back at once, so a refused attempt leaves the counter (and its window) as
    /// it found it. Of N concurrent attempts, at most the limit's worth are counted.
    pub async fn count_within(
        &self,
        name: &str,
        limit: i64,
        window: &Duration,
    ) -> StoreResult<bool> {
        if self.add_to_counter(name, 1, window).await? <= limit {
            return Ok(true);
        }
        self.take_back(name, window).await?;
        Ok(false)
    }

    /// Takes one count back from the counter under `name`; a counter back at zero is removed,
    /// so an attempt that was taken back leaves no key behind.
    pub async fn take_back(&self, name: &str, window: &Duration) -> StoreResult<()> {
        if self.add_to_counter(name, -1, window).await? == 0 {
            self.reset(name).await?;
        }
        Ok(())
    }

    /// Forgets the counter under `name`.
    pub async fn reset(&self, name: &str) -> StoreResult<()> {
        self.remove_key(name).await
    }
}

/// Waits before compare-and-set try `attempt` + 1: exponential backoff with full jitter, so the
/// requests that collided spread out instead of colliding again in step (up to 1, 2, 4 … 32 ms).
async fn back_off(attempt: u32) {
    let pause = rand::random::<u64>() % (1000 << attempt.min(5));
    tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
}
