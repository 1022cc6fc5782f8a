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

use actix_web::cookie::time::Duration;
use anyhow::Context;
use memcache::exp::{AsyncMemcache, Meta, Ttl};

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

    /// Whether keys are spread over several servers, so a new key can avoid a dead one.
    pub fn spreads_keys(&self) -> bool {
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

    /// With several servers, a server that does not answer means "no session" for the keys it
    /// held; with one, it is an outage.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match self.client.get::<Vec<u8>>(self.key(key)).await {
            Ok(raw) => Ok(raw),
            Err(err) if self.spreads_keys() => {
                log::warn!(
                    "The Memcached server of session {} does not answer ({err}); \
                     treating it as no session.",
                    &key[..key.len().min(8)]
                );
                Ok(None)
            }
            Err(err) => {
                Err(anyhow::Error::new(err).context("could not load a session from Memcached"))
            }
        }
    }

    /// A meta get with the touch flag: the read that also slides the expiry, in the same round
    /// trip. A missing key stays missing. Server failures are treated as in [`Self::get`].
    pub async fn get_sliding(&self, key: &str, ttl_: &Duration) -> anyhow::Result<Option<Vec<u8>>> {
        match self
            .client
            .meta()
            .get(self.key(key))
            .touch(ttl(ttl_))
            .send()
            .await
        {
            Ok(read) => Ok(read.value),
            Err(err) if self.spreads_keys() => {
                log::warn!(
                    "The Memcached server of session {} does not answer ({err}); \
                     treating it as no session.",
                    &key[..key.len().min(8)]
                );
                Ok(None)
            }
            Err(err) => {
                Err(anyhow::Error::new(err).context("could not load a session from Memcached"))
            }
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

    /// `replace`: a session deleted meanwhile (logout) or expired stays gone.
    pub async fn replace(&self, key: &str, state: &str, ttl_: &Duration) -> anyhow::Result<()> {
        self.client
            .replace(self.key(key), state, ttl(ttl_))
            .await
            .context("could not update a session in Memcached")?;
        Ok(())
    }

    /// Replaces the state under `key` only if it is still exactly `expected`: `gets` for the
    /// value and its CAS token, then a `set` that applies only while the token still matches.
    pub async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        state: &str,
        ttl_: &Duration,
    ) -> anyhow::Result<bool> {
        let key = self.key(key);
        let current = self
            .client
            .meta()
            .get(&key)
            .meta(Meta::NONE.cas())
            .send()
            .await
            .context("could not read a session from Memcached")?;
        let (Some(value), Some(cas)) = (current.value, current.item.cas) else {
            return Ok(false);
        };
        if value != expected {
            return Ok(false);
        }
        let set = self
            .client
            .meta()
            .set(&key, state)
            .ttl(ttl(ttl_))
            .compare_cas(cas)
            .send()
            .await
            .context("could not update a session in Memcached")?;
        Ok(set.applied())
    }

    pub async fn touch(&self, key: &str, ttl_: &Duration) -> anyhow::Result<()> {
        self.client
            .touch(self.key(key), ttl(ttl_))
            .await
            .context("could not refresh a session's expiry in Memcached")
    }

    pub async fn remove(&self, key: &str) -> anyhow::Result<()> {
        self.client
            .delete(self.key(key))
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
