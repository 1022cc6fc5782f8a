//! Sessions in Memcached: simple, fast and volatile, which is acceptable for sessions. Keys are
//! spread over every server in `MEMCACHED_SERVERS` by rendezvous hashing over XXH3 (see
//! [`XxhRendezvous`]), so adding or losing a server moves only that server's keys, and every
//! replica, whatever toolchain built it, sends a key to the same server.
//!
//! `add` creates (never overwrites), `replace` updates (never resurrects a deleted or expired
//! session), `touch` refreshes the expiry. With several servers, losing one logs out only the
//! sessions that lived on it: a read that cannot reach its server counts as "no session", and a
//! new session picks a key that lands on a live server. With one server, an outage is an outage:
//! errors, which the shop answers with 503.

use std::time::Duration as StdDuration;

use super::error::Context;
use actix_web::cookie::time::Duration;
use memcache::exp::{
    AsyncMemcache, Get, GetResult, Meta, MutationResult, Op, OpResult, Router, Set, Ttl,
};

mod pipeline;

use pipeline::Pipeline;

use super::{RawStore, SlidingRead, StoreError, StoreResult};
use crate::env::{ConfigError, Env, invalid};
use crate::per_thread::PerThread;

#[derive(Clone)]
pub struct MemcachedStore {
    /// `MEMCACHED_SERVERS` as configured: the router scores a key against these names.
    servers: Vec<String>,
    /// This thread's clients of the store, as Redis's connections are. A socket belongs to
    /// the runtime that dialled it, and each actix worker runs its own: with one pool shared by
    /// every worker, a worker used connections another had dialled, whose readiness came only
    /// when that worker's loop turned, and which failed once that worker had stopped. A
    /// draining replica answered a shopper 503 at a rolling update ("could not read a session
    /// from Memcached: … A Tokio 1.x context was found, but it is being shutdown").
    clients: PerThread,
    prefix: String,
}

/// One thread's clients of one store.
#[derive(Clone)]
struct Clients {
    all: AsyncMemcache,
    /// The same client, for the reads and compare-and-sets of page views and cart changes,
    /// batched per worker turn.
    pipeline: Pipeline,
    /// One client per server, to tell which servers answer.
    probes: Vec<AsyncMemcache>,
}

fn ttl(ttl: &Duration) -> Ttl {
    Ttl::secs(
        u32::try_from(ttl.whole_seconds())
            .unwrap_or(u32::MAX)
            .max(1),
    )
}

/// Which server a key lives on, by a fixed, published definition any client can reproduce:
/// rendezvous (highest random weight) hashing where server `s` scores key `k` as
/// `XXH3-64(s ‖ 0x00 ‖ k)` with seed 0, `s` being the server exactly as configured
/// (`host:port`) and `k` the full key with its prefix; the highest score wins, a tie goes to the
/// server listed first. (memcache's own router hashes with std's `DefaultHasher`, which Rust
/// may change between releases: replicas built by different toolchains would disagree.)
#[derive(Debug, Clone, Copy)]
pub struct XxhRendezvous;

impl XxhRendezvous {
    pub fn score(server: &str, key: &[u8]) -> u64 {
        let mut input = Vec::with_capacity(server.len() + 1 + key.len());
        input.extend_from_slice(server.as_bytes());
        input.push(0);
        input.extend_from_slice(key);
        xxhash_rust::xxh3::xxh3_64(&input)
    }
}

impl Router for XxhRendezvous {
    fn route(&self, key: &[u8], servers: &[String]) -> usize {
        let mut best = (0, 0_u64);
        for (index, server) in servers.iter().enumerate() {
            let score = Self::score(server, key);
            if index == 0 || score > best.1 {
                best = (index, score);
            }
        }
        best.0
    }
}

/// Idle connections kept per server. The client dials a connection for every request in flight
/// beyond the idle ones and closes it afterwards; its default of 8 made 56 of 64 concurrent page
/// views open and close a TCP connection each (a fifth of the read path's profile, a slower tail,
/// and sockets piling up in TIME_WAIT). A worker rarely has more requests in flight than this.
const MAX_IDLE_CONNECTIONS: usize = 256;

/// Connections in use per server and thread at most: past it a request waits for one to come
/// back (up to the connect timeout, then it fails as the server being unreachable would), so a
/// stalled server costs a bounded number of sockets rather than one per waiting shopper.
const MAX_CONNECTIONS: usize = 1024;

async fn client(servers: &[String]) -> Result<AsyncMemcache, memcache::exp::Error> {
    AsyncMemcache::builder()
        .router(XxhRendezvous)
        .timeout(StdDuration::from_millis(500))
        .connect_timeout(StdDuration::from_millis(500))
        .max_idle(MAX_IDLE_CONNECTIONS)
        .max_connections(MAX_CONNECTIONS)
        .connect_async(servers.iter().map(String::as_str))
        .await
}

/// An answer of another kind than the operation asked for.
fn unexpected(result: &OpResult) -> memcache::exp::Error {
    memcache::exp::Error::Protocol(format!("an answer of the wrong kind: {result:?}"))
}

/// A meta get through the pipeline.
async fn get_op(pipeline: &Pipeline, get: Get) -> Result<GetResult, memcache::exp::Error> {
    match pipeline.run(Op::Get(get)).await? {
        OpResult::Get(read) => Ok(read),
        other => Err(unexpected(&other)),
    }
}

/// A meta set through the pipeline.
async fn set_op(pipeline: &Pipeline, set: Set) -> Result<MutationResult, memcache::exp::Error> {
    match pipeline.run(Op::Set(set)).await? {
        OpResult::Mutation(set) => Ok(set),
        other => Err(unexpected(&other)),
    }
}

/// The memcached store's settings.
#[derive(Clone, Debug)]
pub struct MemcachedSettings {
    /// `MEMCACHED_SERVERS`: the servers, a comma list. Default `127.0.0.1:11211`.
    pub servers: Vec<String>,
    /// `SESSION_KEY_PREFIX`.
    pub key_prefix: String,
}

impl MemcachedSettings {
    pub(crate) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let servers = env.list("MEMCACHED_SERVERS", "127.0.0.1:11211");
        if servers.is_empty() {
            return Err(invalid("MEMCACHED_SERVERS", "lists no server"));
        }
        Ok(Self {
            servers,
            key_prefix: super::settings::key_prefix(env),
        })
    }
}

impl MemcachedStore {
    pub async fn connect(settings: &MemcachedSettings) -> anyhow::Result<Self> {
        let store = Self {
            servers: settings.servers.clone(),
            clients: PerThread::default(),
            prefix: settings.key_prefix.clone(),
        };
        store.ping().await?;
        Ok(store)
    }

    /// What this thread's clients give `pick`; they are made on the thread's first use (the
    /// servers' names resolved, no connection dialled yet).
    async fn local<T>(&self, pick: impl Fn(&Clients) -> T) -> Result<T, memcache::exp::Error> {
        if let Some(picked) = self.clients.with(|clients: &Clients| pick(clients)) {
            return Ok(picked);
        }
        let all = client(&self.servers).await?;
        let mut probes = Vec::with_capacity(self.servers.len());
        for server in &self.servers {
            probes.push(client(std::slice::from_ref(server)).await?);
        }
        let clients = Clients {
            pipeline: Pipeline::new(all.meta().clone()),
            all,
            probes,
        };
        let picked = pick(&clients);
        self.clients.keep(clients);
        Ok(picked)
    }

    /// This thread's client of every server.
    async fn client(&self) -> StoreResult<AsyncMemcache> {
        self.local(|clients| clients.all.clone())
            .await
            .with_context(|| self.not_set_up())
    }

    /// This thread's pipeline, for the reads and compare-and-sets of page views and cart
    /// changes.
    async fn pipeline(&self) -> StoreResult<Pipeline> {
        self.local(|clients| clients.pipeline.clone())
            .await
            .with_context(|| self.not_set_up())
    }

    fn not_set_up(&self) -> String {
        format!("could not set up Memcached at {}", self.servers.join(","))
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// With several servers, a server that does not answer means "no session" for the keys it
    /// held; with one, it is an outage.
    fn absent_if_spread(
        &self,
        key: &str,
        read: Result<Option<Vec<u8>>, memcache::exp::Error>,
    ) -> StoreResult<Option<Vec<u8>>> {
        match read {
            Ok(raw) => Ok(raw),
            Err(err) if self.spreads_keys() => {
                log::warn!(
                    "The Memcached server of session {} does not answer ({err}); \
                     treating it as no session.",
                    &key[..key.len().min(8)]
                );
                Ok(None)
            }
            Err(err) => Err(StoreError::Unavailable(
                anyhow::Error::new(err).context("could not load a session from Memcached"),
            )),
        }
    }
}

impl RawStore for MemcachedStore {
    /// Whether keys are spread over several servers, so a new key can avoid a dead one.
    fn spreads_keys(&self) -> bool {
        self.servers.len() > 1
    }

    fn location(&self) -> String {
        format!("{} (keys {}…)", self.servers.join(","), self.prefix)
    }

    /// Ready while at least one server answers; names the ones that do not.
    async fn ping(&self) -> StoreResult<()> {
        let probes = self
            .local(|clients| clients.probes.clone())
            .await
            .with_context(|| self.not_set_up())?;
        let mut down = Vec::new();
        for (server, probe) in self.servers.iter().zip(probes) {
            if let Err(err) = probe.get::<Vec<u8>>("shop:ping").await {
                log::warn!("Memcached server {server} does not answer: {err}");
                down.push(server.as_str());
            }
        }
        if down.len() == self.servers.len() {
            return Err(StoreError::Unavailable(anyhow::anyhow!(
                "no Memcached server answers ({})",
                down.join(", ")
            )));
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let read = self.client().await?.get::<Vec<u8>>(self.key(key)).await;
        self.absent_if_spread(key, read)
    }

    /// A meta get with the touch flag: the read that also slides the expiry, in the same round
    /// trip. A missing key stays missing.
    async fn get_sliding(&self, key: &str, ttl_: &Duration) -> StoreResult<SlidingRead> {
        let pipeline = self.pipeline().await?;
        let read = get_op(&pipeline, Get::new(self.key(key)).touch(ttl(ttl_)))
            .await
            .map(|read| read.value);
        self.absent_if_spread(key, read).map(SlidingRead::slid)
    }

    /// `add`: stores state only under a key no session has.
    async fn insert_new(&self, key: &str, state: &str, ttl_: &Duration) -> StoreResult<bool> {
        self.client()
            .await?
            .add(self.key(key), state, ttl(ttl_))
            .await
            .context("could not save a session to Memcached")
    }

    /// `replace`: a session deleted meanwhile (logout) or expired stays gone.
    async fn replace(&self, key: &str, state: &str, ttl_: &Duration) -> StoreResult<()> {
        self.client()
            .await?
            .replace(self.key(key), state, ttl(ttl_))
            .await
            .context("could not update a session in Memcached")?;
        Ok(())
    }

    /// Replaces the state under `key` only if it is still exactly `expected`: `gets` for the
    /// value and its CAS token, then a `set` that applies only while the token still matches.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        state: &str,
        ttl_: &Duration,
    ) -> StoreResult<bool> {
        let key = self.key(key);
        let pipeline = self.pipeline().await?;
        let current = get_op(&pipeline, Get::new(&key).meta(Meta::NONE.cas()))
            .await
            .context("could not read a session from Memcached")?;
        let (Some(value), Some(cas)) = (current.value, current.item.cas) else {
            return Ok(false);
        };
        if value != expected {
            return Ok(false);
        }
        let set = set_op(
            &pipeline,
            Set::new(&key, state).ttl(ttl(ttl_)).compare_cas(cas),
        )
        .await
        .context("could not update a session in Memcached")?;
        Ok(set.applied())
    }

    /// A meta arithmetic command: creates the counter at `delta` (or 0) if missing, else adds
    /// `delta` (a decrement stops at zero); the window is the one the counter was made with.
    async fn add_to_counter(&self, name: &str, delta: i64, window: &Duration) -> StoreResult<i64> {
        let key = self.key(name);
        let seconds = u32::try_from(window.whole_seconds())
            .unwrap_or(u32::MAX)
            .max(1);
        let client = self.client().await?;
        let meta = client.meta();
        let request = if delta >= 0 {
            meta.increment(&key)
                .delta(delta.unsigned_abs())
                .initial(delta.unsigned_abs(), seconds)
        } else {
            meta.decrement(&key)
                .delta(delta.unsigned_abs())
                .initial(0, seconds)
        };
        // No `ttl` here: the window starts when the counter is made (`initial`) and a later
        // count never extends it.
        let counted = request
            .send()
            .await
            .context("could not count in Memcached")?;
        Ok(counted
            .value
            .map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX)))
    }

    async fn touch(&self, key: &str, ttl_: &Duration) -> StoreResult<()> {
        self.client()
            .await?
            .touch(self.key(key), ttl(ttl_))
            .await
            .context("could not refresh a session's expiry in Memcached")
    }

    async fn remove(&self, key: &str) -> StoreResult<()> {
        self.client()
            .await?
            .delete(self.key(key))
            .await
            .context("could not delete a session from Memcached")
    }

    /// The stored value and its remaining lifetime in seconds, as Memcached holds them.
    async fn raw(&self, key: &str) -> StoreResult<Option<(String, i64)>> {
        let key = self.key(key);
        let client = self.client().await?;
        let Some(value) = client.get::<Vec<u8>>(&key).await? else {
            return Ok(None);
        };
        let ttl = client
            .inspect(&key)
            .await?
            .and_then(|info| info.ttl)
            .map_or(-1, |ttl| i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        Ok(Some((String::from_utf8_lossy(&value).into_owned(), ttl)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVERS: [&str; 3] = ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"];

    fn route(key: &str) -> usize {
        let servers: Vec<String> = SERVERS.iter().map(|s| (*s).to_owned()).collect();
        XxhRendezvous.route(key.as_bytes(), &servers)
    }

    /// Golden vectors: where these keys live among three servers, and the scores behind it,
    /// checked against an independent XXH3 (Python's `xxhash`). A change of toolchain, hasher
    /// or crate version that moved a key would log out its shopper: this test says so first.
    #[test]
    fn keys_land_on_the_servers_the_published_definition_says() {
        let zeros = format!("shop:session:{}", "0".repeat(64));
        let effs = format!("shop:session:{}", "f".repeat(64));
        assert_eq!(route(&zeros), 1);
        assert_eq!(route(&effs), 0);
        assert_eq!(
            route("shop:session:login-account-0123456789abcdef0123456789abcdef"),
            2
        );
        assert_eq!(route("shop:session:user-sessions-42"), 1);
        assert_eq!(
            [route("a"), route("b"), route("c"), route("d")],
            [1, 1, 2, 0]
        );
        assert_eq!(
            XxhRendezvous::score(SERVERS[0], zeros.as_bytes()),
            0x5d85_369e_39ba_6292
        );
        assert_eq!(
            XxhRendezvous::score(SERVERS[0], b"d"),
            0xcaf1_0aa1_66c9_51fa
        );
        assert_eq!(xxhash_rust::xxh3::xxh3_64(b""), 0x2d06_8005_38d3_94c2);
    }

    #[test]
    fn losing_a_server_moves_only_its_keys() {
        let three: Vec<String> = SERVERS.iter().map(|s| (*s).to_owned()).collect();
        let two = vec![three[0].clone(), three[2].clone()];
        let mut moved = 0;
        for i in 0..3000 {
            let key = format!("shop:session:{i:064x}");
            let before = XxhRendezvous.route(key.as_bytes(), &three);
            let after = XxhRendezvous.route(key.as_bytes(), &two);
            match before {
                1 => moved += 1,
                0 => assert_eq!(after, 0),
                _ => assert_eq!(after, 1),
            }
        }
        assert!(
            (800..1200).contains(&moved),
            "{moved} of 3000 keys were on the lost server"
        );
    }
}
