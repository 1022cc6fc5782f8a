//! Sessions in Redis, the classic choice: one `GET` per page view, expiry enforced by Redis
//! itself (`EX`), no reaper needed.
//!
//! Our own store on the `redis` crate rather than actix-session's `RedisSessionStore`, because
//! that one's `update` falls back to `save` when the key is gone, which brings a logged-out
//! session back to life under a new key. Here `update` is `SET … XX`: it only ever rewrites a key
//! that still exists. (`actix-redis` is deprecated and cannot serve actix-session 0.10+.)

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration as StdDuration;

use actix_web::cookie::time::Duration;
use anyhow::Context;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::codec::millis;
use super::redact_url;

#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    config: ConnectionManagerConfig,
    /// Tells this store's connections apart in the per-thread cache.
    id: u64,
    prefix: String,
    location: String,
}

/// `SET` only if the value is still the one the caller read.
static COMPARE_AND_SWAP: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then \
           redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1 \
         end return 0",
    )
});

/// Adds to a counter and restarts its window, atomically; never below zero.
static ADD_TO_COUNTER: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "local n = redis.call('INCRBY', KEYS[1], ARGV[1]) \
         if n < 0 then n = 0 redis.call('SET', KEYS[1], 0) end \
         redis.call('PEXPIRE', KEYS[1], ARGV[2]) return n",
    )
});

thread_local! {
    /// One connection per store and thread. A connection's driver task runs on the runtime that
    /// made it; made on an actix worker's own runtime, a command never crosses threads. (One
    /// shared connection made at start-up lived on the main thread: the profile of the read
    /// path showed a fifth of the time in that thread and half in the kernel switching to it.)
    static CONNECTIONS: RefCell<HashMap<u64, ConnectionManager>> = RefCell::new(HashMap::new());
}

fn seconds(ttl: &Duration) -> u64 {
    u64::try_from(ttl.whole_seconds()).unwrap_or(1).max(1)
}

impl RedisStore {
    /// Connects once; afterwards the connection manager reconnects by itself, and a command
    /// during an outage fails within a second instead of hanging.
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("REDIS_URL is not a valid Redis URL")?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(StdDuration::from_secs(1))
            .set_response_timeout(StdDuration::from_secs(1))
            .set_number_of_retries(1)
            .set_max_delay(500);
        let store = Self {
            client,
            config,
            id: rand::random(),
            prefix: prefix.to_owned(),
            location: redact_url(url),
        };
        store
            .connection()
            .await
            .with_context(|| format!("could not connect to Redis at {}", store.location))?;
        Ok(store)
    }

    /// This thread's connection, made on first use (and again after a failed attempt).
    async fn connection(&self) -> anyhow::Result<ConnectionManager> {
        if let Some(connection) = CONNECTIONS.with(|c| c.borrow().get(&self.id).cloned()) {
            return Ok(connection);
        }
        let connection =
            ConnectionManager::new_with_config(self.client.clone(), self.config.clone())
                .await
                .context("could not connect to Redis")?;
        CONNECTIONS.with(|c| c.borrow_mut().insert(self.id, connection.clone()));
        Ok(connection)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub fn location(&self) -> String {
        format!("{} (keys {}…)", self.location, self.prefix)
    }

    pub async fn ping(&self) -> anyhow::Result<()> {
        let _: () = redis::cmd("PING")
            .query_async(&mut self.connection().await?)
            .await?;
        Ok(())
    }

    pub async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.connection()
            .await?
            .get(self.key(key))
            .await
            .context("could not load a session from Redis")
    }

    /// `GETEX … PX`: the read that also slides the expiry, in the same round trip. A missing
    /// key stays missing.
    pub async fn get_sliding(&self, key: &str, ttl: &Duration) -> anyhow::Result<Option<Vec<u8>>> {
        redis::cmd("GETEX")
            .arg(self.key(key))
            .arg("PX")
            .arg(millis(ttl).max(1))
            .query_async(&mut self.connection().await?)
            .await
            .context("could not load a session from Redis")
    }

    /// `SET … NX EX`: stores state only under a key no session has.
    pub async fn insert_new(&self, key: &str, state: &str, ttl: &Duration) -> anyhow::Result<bool> {
        let stored: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(state)
            .arg("NX")
            .arg("EX")
            .arg(seconds(ttl))
            .query_async(&mut self.connection().await?)
            .await
            .context("could not save a session to Redis")?;
        Ok(stored.is_some())
    }

    /// `SET … XX EX`: a key deleted meanwhile (logout) or expired stays gone.
    pub async fn replace(&self, key: &str, state: &str, ttl: &Duration) -> anyhow::Result<()> {
        let _: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(state)
            .arg("XX")
            .arg("EX")
            .arg(seconds(ttl))
            .query_async(&mut self.connection().await?)
            .await
            .context("could not update a session in Redis")?;
        Ok(())
    }

    /// Replaces the state under `key` only if it is still exactly `expected`, atomically in a
    /// Lua script.
    pub async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        state: &str,
        ttl: &Duration,
    ) -> anyhow::Result<bool> {
        let swapped: i64 = COMPARE_AND_SWAP
            .key(self.key(key))
            .arg(expected)
            .arg(state)
            .arg(seconds(ttl))
            .invoke_async(&mut self.connection().await?)
            .await
            .context("could not update a session in Redis")?;
        Ok(swapped == 1)
    }

    /// `INCRBY` and `PEXPIRE` in one script: the counter's new value.
    pub async fn add_to_counter(
        &self,
        name: &str,
        delta: i64,
        window: &Duration,
    ) -> anyhow::Result<i64> {
        ADD_TO_COUNTER
            .key(self.key(name))
            .arg(delta)
            .arg(millis(window).max(1))
            .invoke_async(&mut self.connection().await?)
            .await
            .context("could not count in Redis")
    }

    pub async fn touch(&self, key: &str, ttl: &Duration) -> anyhow::Result<()> {
        let _: bool = self
            .connection()
            .await?
            .expire(self.key(key), seconds(ttl) as i64)
            .await
            .context("could not refresh a session's expiry in Redis")?;
        Ok(())
    }

    pub async fn remove(&self, key: &str) -> anyhow::Result<()> {
        let _: i64 = self
            .connection()
            .await?
            .del(self.key(key))
            .await
            .context("could not delete a session from Redis")?;
        Ok(())
    }

    /// The stored value and its remaining lifetime in seconds, as Redis holds them.
    pub async fn raw(&self, key: &str) -> anyhow::Result<Option<(String, i64)>> {
        let (value, ttl): (Option<Vec<u8>>, i64) = redis::pipe()
            .get(self.key(key))
            .ttl(self.key(key))
            .query_async(&mut self.connection().await?)
            .await?;
        Ok(value.map(|v| (String::from_utf8_lossy(&v).into_owned(), ttl)))
    }
}
