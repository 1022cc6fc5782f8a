//! The anti-pattern, kept on purpose: state in this process's memory. Behind a load balancer a
//! shopper's next request lands on another process that has never heard of them, and killing the
//! process logs everyone out. Never a default; choosing it logs a loud warning.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use actix_session::storage::{LoadError, SaveError, SessionKey, UpdateError};
use actix_web::cookie::time::Duration;

use super::State;
use super::codec::{encode, new_key, now};

#[derive(Clone, Default)]
pub struct MemoryStore {
    sessions: Arc<Mutex<HashMap<String, (State, i64)>>>,
}

impl MemoryStore {
    fn with_map<T>(&self, f: impl FnOnce(&mut HashMap<String, (State, i64)>) -> T) -> T {
        let mut map = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut map)
    }

    pub async fn load(&self, key: &SessionKey) -> Result<Option<State>, LoadError> {
        let now = now();
        Ok(self.with_map(|map| {
            map.get(key.as_ref())
                .filter(|(_, expires_at)| *expires_at > now)
                .map(|(state, _)| state.clone())
        }))
    }

    pub async fn save(&self, state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        encode(&state).map_err(SaveError::Serialization)?;
        let expires_at = now() + ttl.whole_seconds();
        loop {
            let key = new_key();
            let inserted = self.with_map(|map| {
                if map.contains_key(key.as_ref()) {
                    return false;
                }
                map.insert(key.as_ref().to_owned(), (state.clone(), expires_at));
                true
            });
            if inserted {
                return Ok(key);
            }
        }
    }

    pub async fn update(
        &self,
        key: SessionKey,
        state: State,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        encode(&state).map_err(UpdateError::Serialization)?;
        let now = now();
        self.with_map(|map| {
            if let Some(entry) = map.get_mut(key.as_ref()).filter(|(_, exp)| *exp > now) {
                *entry = (state, now + ttl.whole_seconds());
            }
        });
        Ok(key)
    }

    pub async fn update_ttl(&self, key: &SessionKey, ttl: &Duration) -> anyhow::Result<()> {
        let now = now();
        self.with_map(|map| {
            if let Some(entry) = map.get_mut(key.as_ref()).filter(|(_, exp)| *exp > now) {
                entry.1 = now + ttl.whole_seconds();
            }
        });
        Ok(())
    }

    pub async fn delete(&self, key: &SessionKey) -> anyhow::Result<()> {
        self.with_map(|map| map.remove(key.as_ref()));
        Ok(())
    }

    pub fn reap_expired(&self) -> u64 {
        let now = now();
        self.with_map(|map| {
            let before = map.len();
            map.retain(|_, (_, expires_at)| *expires_at > now);
            (before - map.len()) as u64
        })
    }
}
