//! Sessions in Memcached: simple, fast and volatile, which is acceptable for sessions. Keys are
//! spread over every server in `MEMCACHED_SERVERS` by rendezvous hashing (memcache's `exp`
//! client), so adding or losing a server moves only that server's keys.
//!
//! `add` creates (never overwrites), `replace` updates (never resurrects a deleted or expired
//! session), `touch` refreshes the expiry. With several servers, losing one logs out only the
//! sessions that lived on it: a read that cannot reach its server counts as "no session", and a
//! new session picks a key that lands on a live server. With one server, an outage is an outage:
//! errors, which the shop answers with 503.

use std::time::Duration as StdDuration;

use actix_session::storage::{LoadError, SaveError, SessionKey, UpdateError};
use actix_web::cookie::time::Duration;
use anyhow::Context;
use memcache::exp::{AsyncMemcache, Ttl};

use super::State;
use super::codec::{decode, encode, key_prefix, new_key};

/// New keys tried before a save gives up, when servers fail: enough that, with one of three
/// servers down, a save all but never fails.
const SAVE_ATTEMPTS: usize = 8;

#[derive(Clone)]
pub struct MemcachedStore {
    client: AsyncMemcache,
    /// One client per server, to tell which servers answer.
    probes: Vec<(String, AsyncMemcache)>,
    prefix: String,
}

fn ttl(ttl: &Duration) -> Ttl {
    Ttl::secs(
        u32::try_from(ttl.whole_seconds())
            .unwrap_or(u32::MAX)
            .max(1),
    )
}

async fn client(servers: &[String]) -> anyhow::Result<AsyncMemcache> {
    AsyncMemcache::builder()
        .timeout(StdDuration::from_millis(500))
        .connect_timeout(StdDuration::from_millis(500))
        .connect_async(servers.iter().map(String::as_str))
        .await
        .with_context(|| format!("could not set up Memcached at {}", servers.join(",")))
}

impl MemcachedStore {
    pub async fn connect(servers: &[String], prefix: &str) -> anyhow::Result<Self> {
        let mut probes = Vec::with_capacity(servers.len());
        for server in servers {
            probes.push((server.clone(), client(std::slice::from_ref(server)).await?));
        }
        let store = Self {
            client: client(servers).await?,
            probes,
            prefix: prefix.to_owned(),
        };
        store.ping().await?;
        Ok(store)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn is_cluster(&self) -> bool {
        self.probes.len() > 1
    }

    pub fn location(&self) -> String {
        let servers: Vec<&str> = self.probes.iter().map(|(s, _)| s.as_str()).collect();
        format!("{} (keys {}…)", servers.join(","), self.prefix)
    }

    /// Ready while at least one server answers; names the ones that do not.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let mut down = Vec::new();
        for (server, probe) in &self.probes {
            if let Err(err) = probe.get::<Vec<u8>>("shop:ping").await {
                log::warn!("Memcached server {server} does not answer: {err}");
                down.push(server.as_str());
            }
        }
        if down.len() == self.probes.len() {
            anyhow::bail!("no Memcached server answers ({})", down.join(", "));
        }
        Ok(())
    }

    pub async fn load(&self, key: &SessionKey) -> Result<Option<State>, LoadError> {
        match self.client.get::<Vec<u8>>(self.key(key.as_ref())).await {
            Ok(raw) => raw.map(|raw| decode(key, &raw)).transpose(),
            Err(err) if self.is_cluster() => {
                log::warn!(
                    "The Memcached server of session {} does not answer ({err}); \
                     treating it as no session.",
                    key_prefix(key)
                );
                Ok(None)
            }
            Err(err) => Err(LoadError::Other(
                anyhow::Error::new(err).context("could not load a session from Memcached"),
            )),
        }
    }

    /// `add`: stores state only under a key no session has.
    pub async fn insert_new(
        &self,
        key: &str,
        state: &str,
        ttl_: &Duration,
    ) -> anyhow::Result<bool> {
        self.client
            .add(self.key(key), state, ttl(ttl_))
            .await
            .context("could not save a session to Memcached")
    }

    pub async fn save(&self, state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        let state = encode(&state).map_err(SaveError::Serialization)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let key = new_key();
            match self.insert_new(key.as_ref(), &state, ttl).await {
                Ok(true) => return Ok(key),
                Ok(false) => {}
                // Another key most likely lands on another, live server.
                Err(err) if self.is_cluster() && attempt < SAVE_ATTEMPTS => {
                    log::warn!(
                        "A Memcached server refused a new session ({err:#}); trying another key."
                    );
                }
                Err(err) => return Err(SaveError::Other(err)),
            }
        }
    }

    /// `replace`: a session deleted meanwhile (logout) or expired stays gone.
    pub async fn update(
        &self,
        key: SessionKey,
        state: State,
        ttl_: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let state = encode(&state).map_err(UpdateError::Serialization)?;
        self.client
            .replace(self.key(key.as_ref()), state, ttl(ttl_))
            .await
            .context("could not update a session in Memcached")
            .map_err(UpdateError::Other)?;
        Ok(key)
    }

    pub async fn update_ttl(&self, key: &SessionKey, ttl_: &Duration) -> anyhow::Result<()> {
        self.client
            .touch(self.key(key.as_ref()), ttl(ttl_))
            .await
            .context("could not refresh a session's expiry in Memcached")
    }

    pub async fn delete(&self, key: &SessionKey) -> anyhow::Result<()> {
        self.client
            .delete(self.key(key.as_ref()))
            .await
            .context("could not delete a session from Memcached")
    }

    /// The stored value and its remaining lifetime in seconds, as Memcached holds them.
    pub async fn raw(&self, key: &str) -> anyhow::Result<Option<(String, i64)>> {
        let key = self.key(key);
        let Some(value) = self.client.get::<Vec<u8>>(&key).await? else {
            return Ok(None);
        };
        let ttl = self
            .client
            .inspect(&key)
            .await?
            .and_then(|info| info.ttl)
            .map_or(-1, |ttl| i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        Ok(Some((String::from_utf8_lossy(&value).into_owned(), ttl)))
    }
}
