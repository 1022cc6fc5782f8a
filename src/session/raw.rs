//! The contract every store keeps, written once: [`RawStore`].
//!
//! A store only moves encoded state (bytes) under a key, with an expiry. Everything else is done
//! once, by [`Store`](super::Store), over whichever store was chosen: encoding and the size
//! limit, making keys, the bookkeeping of the sliding read, counters of use, the user-to-sessions
//! index, compare-and-set retries, and actix-session's `SessionStore`. The conformance suite
//! (`tests/in_process/conformance.rs`) runs against every compiled store and checks the
//! semantics below; a compiled store missing from it fails that suite. README, "Adding a store",
//! walks through a new one.

use std::future::Future;

use actix_web::cookie::time::Duration;

use super::StoreError;

/// What a store's call gives back: a value, or what went wrong, by kind.
pub type StoreResult<T> = Result<T, StoreError>;

/// What the read of a page view found.
#[derive(Debug, Default)]
pub struct SlidingRead {
    /// The live state under the key; never an expired one.
    pub bytes: Option<Vec<u8>>,
    /// The read did not slide the expiry and it is due: `Store` slides it with [`RawStore::touch`].
    /// Stores that slide in the read itself (Redis `GETEX`, Memcached's meta get with a touch)
    /// never set it; the SQL stores slide lazily, once less than half the TTL is left.
    pub slide_due: bool,
}

impl SlidingRead {
    /// A read that slid the expiry itself, or found nothing.
    pub fn slid(bytes: Option<Vec<u8>>) -> Self {
        Self {
            bytes,
            slide_due: false,
        }
    }
}

/// A kind of session store: the bytes of a session (or of a small record: a counter, a user's
/// sessions index) under a key, with an expiry the store enforces.
///
/// The promises every store keeps, which the conformance suite checks:
/// - expired state never loads, and no call brings it back;
/// - [`insert_new`](Self::insert_new) never overwrites a live key;
/// - [`replace`](Self::replace), [`compare_and_swap`](Self::compare_and_swap) and
///   [`touch`](Self::touch) never create a key: a deleted (logged out) or expired session stays
///   gone;
/// - [`compare_and_swap`](Self::compare_and_swap) writes only over exactly the bytes expected,
///   so concurrent changes are never lost;
/// - a call that may have been applied although it failed says so
///   ([`StoreError::OutcomeUnknown`]), never just "unavailable".
///
/// The futures are `Send`, so a store can be used from any task.
pub trait RawStore: Clone + Send + Sync + 'static {
    /// Where the state lives, without any password, for the start-up log.
    fn location(&self) -> String;

    /// One cheap round trip, for `/readyz`. A store in this process has nothing to ask.
    fn ping(&self) -> impl Future<Output = StoreResult<()>> + Send {
        async { Ok(()) }
    }

    /// The live bytes under `key`, if any.
    fn get(&self, key: &str) -> impl Future<Output = StoreResult<Option<Vec<u8>>>> + Send;

    /// The read of a page view: the live bytes under `key`, with the expiry slid to now + `ttl`
    /// in the same round trip, or [`SlidingRead::slide_due`] when the store slides it apart.
    fn get_sliding(
        &self,
        key: &str,
        ttl: &Duration,
    ) -> impl Future<Output = StoreResult<SlidingRead>> + Send;

    /// Stores `state` under `key`, expiring after `ttl`, only if no live value has the key:
    /// whether it did. An expired value may be replaced.
    fn insert_new(
        &self,
        key: &str,
        state: &str,
        ttl: &Duration,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Replaces the live value under `key` and slides its expiry; nothing when there is none.
    fn replace(
        &self,
        key: &str,
        state: &str,
        ttl: &Duration,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Replaces the live value under `key` with `state` only if it is exactly `expected`:
    /// whether it did.
    fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        state: &str,
        ttl: &Duration,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Adds `delta` to the counter under `name` atomically in the store, so concurrent requests
    /// on every replica each get their own count, and returns the new value, never below zero.
    /// A new counter expires `window` after it is made; counting never extends that window,
    /// so a client that keeps trying cannot keep a limit in force (or its own count alive).
    fn add_to_counter(
        &self,
        name: &str,
        delta: i64,
        window: &Duration,
    ) -> impl Future<Output = StoreResult<i64>> + Send;

    /// Slides the expiry of the live value under `key` to now + `ttl`, its bytes as they are.
    fn touch(&self, key: &str, ttl: &Duration) -> impl Future<Output = StoreResult<()>> + Send;

    /// Deletes whatever is under `key`.
    fn remove(&self, key: &str) -> impl Future<Output = StoreResult<()>> + Send;

    /// The live value under `key` exactly as the store holds it, and the seconds it has left;
    /// for the tests and the session inspector.
    fn raw(&self, key: &str) -> impl Future<Output = StoreResult<Option<(String, i64)>>> + Send;

    /// Deletes expired values, for a store that does not expire them itself: how many. Stores
    /// with their own expiry (Redis, Memcached) have nothing to do.
    fn reap_expired(&self) -> impl Future<Output = StoreResult<u64>> + Send {
        async { Ok(0) }
    }

    /// Whether keys are spread over several servers, so that a new session whose server does
    /// not answer can take another key (and so another server) instead of failing.
    fn spreads_keys(&self) -> bool {
        false
    }
}
