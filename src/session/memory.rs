//! The anti-pattern, kept on purpose: state in this process's memory. Behind a load balancer a
//! shopper's next request lands on another process that has never heard of them, and killing the
//! process logs everyone out. Never a default; choosing it logs a loud warning.
//!
//! It keeps the same semantics as the real stores (and stores the same encoded bytes), so the
//! only difference a demonstration shows is where the state lives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use actix_web::cookie::time::Duration;

use super::codec::{millis, now_millis};
use super::{RawStore, SlidingRead, StoreResult};

type Entries = HashMap<String, (String, i64)>;

#[derive(Clone, Default)]
pub struct MemoryStore {
    sessions: Arc<Mutex<Entries>>,
}

impl MemoryStore {
    fn with_map<T>(&self, f: impl FnOnce(&mut Entries) -> T) -> T {
        let mut map = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut map)
    }

    /// The live entry under `key`, if any.
    fn live(&self, key: &str) -> Option<(String, i64)> {
        let now = now_millis();
        self.with_map(|map| map.get(key).filter(|(_, exp)| *exp > now).cloned())
    }
}

impl RawStore for MemoryStore {
    fn location(&self) -> String {
        "this process's memory".to_owned()
    }

    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.live(key).map(|(state, _)| state.into_bytes()))
    }

    /// The live state under `key`, its expiry pushed to now + `ttl`.
    async fn get_sliding(&self, key: &str, ttl: &Duration) -> StoreResult<SlidingRead> {
        let now = now_millis();
        Ok(SlidingRead::slid(self.with_map(|map| {
            let (state, expires_at) = map.get_mut(key).filter(|(_, exp)| *exp > now)?;
            *expires_at = now + millis(ttl);
            Some(state.clone().into_bytes())
        })))
    }

    /// Stores encoded state under `key` unless a live session has it.
    async fn insert_new(&self, key: &str, state: &str, ttl: &Duration) -> StoreResult<bool> {
        let now = now_millis();
        Ok(self.with_map(|map| match map.get(key) {
            Some((_, expires_at)) if *expires_at > now => false,
            _ => {
                map.insert(key.to_owned(), (state.to_owned(), now + millis(ttl)));
                true
            }
        }))
    }

    /// Rewrites a live entry only.
    async fn replace(&self, key: &str, state: &str, ttl: &Duration) -> StoreResult<()> {
        let now = now_millis();
        self.with_map(|map| {
            if let Some(entry) = map.get_mut(key).filter(|(_, exp)| *exp > now) {
                *entry = (state.to_owned(), now + millis(ttl));
            }
        });
        Ok(())
    }

    /// Replaces the live state under `key` only if it is still exactly `expected`.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        state: &str,
        ttl: &Duration,
    ) -> StoreResult<bool> {
        let now = now_millis();
        Ok(self.with_map(|map| match map.get_mut(key) {
            Some(entry) if entry.1 > now && entry.0.as_bytes() == expected => {
                *entry = (state.to_owned(), now + millis(ttl));
                true
            }
            _ => false,
        }))
    }

    /// Adds to a counter kept as text, restarting its window; never below zero.
    async fn add_to_counter(&self, name: &str, delta: i64, window: &Duration) -> StoreResult<i64> {
        let now = now_millis();
        Ok(self.with_map(|map| {
            let (current, expires) = map
                .get(name)
                .filter(|(_, exp)| *exp > now)
                .map_or((0, now + millis(window)), |(value, exp)| {
                    (value.parse::<i64>().unwrap_or(0), *exp)
                });
            let next = current.saturating_add(delta).max(0);
            map.insert(name.to_owned(), (next.to_string(), expires));
            next
        }))
    }

    async fn touch(&self, key: &str, ttl: &Duration) -> StoreResult<()> {
        let now = now_millis();
        self.with_map(|map| {
            if let Some(entry) = map.get_mut(key).filter(|(_, exp)| *exp > now) {
                entry.1 = now + millis(ttl);
            }
        });
        Ok(())
    }

    async fn remove(&self, key: &str) -> StoreResult<()> {
        self.with_map(|map| map.remove(key));
        Ok(())
    }

    /// The state as stored and the seconds it has left.
    async fn raw(&self, key: &str) -> StoreResult<Option<(String, i64)>> {
        let entry = self.with_map(|map| map.get(key).cloned());
        Ok(entry.map(|(state, expires_at)| (state, (expires_at - now_millis()) / 1000)))
    }

    async fn reap_expired(&self) -> StoreResult<u64> {
        let now = now_millis();
        Ok(self.with_map(|map| {
            let before = map.len();
            map.retain(|_, (_, expires_at)| *expires_at > now);
            (before - map.len()) as u64
        }))
    }
}
