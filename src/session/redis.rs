//! Sessions in Redis, the classic choice: one `GET` per page view, expiry enforced by Redis
//! itself (`EX`), no reaper needed. One server (`REDIS_URL`) or a Redis Cluster
//! (`REDIS_CLUSTER_NODES`), with writes optionally acknowledged only once replicas have them
//! (`REDIS_MIN_REPLICAS_ACK`).
//!
//! Our own store on the `redis` crate rather than actix-session's `RedisSessionStore`, because
//! that one's `update` falls back to `save` when the key is gone, which brings a logged-out
//! session back to life under a new key. Here `update` is `SET … XX`: it only ever rewrites a key
//! that still exists. (`actix-redis` is deprecated and cannot serve actix-session 0.10+.)
//!
//! Every command names exactly one key (sessions, the per-user index, the login counters are
//! each one key), so each is valid in a cluster as it is: it goes to the master of its slot.

use std::sync::OnceLock;
use std::time::Duration as StdDuration;

use super::error::Context;
use actix_web::cookie::time::Duration;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Pipeline, RedisFuture, Value};

use super::codec::millis;
use super::redact_url;
use super::{RawStore, SlidingRead, StoreError, StoreResult};
use crate::env::{ConfigError, Env, invalid};
use crate::per_thread::PerThread;

/// How long a write waits for its replicas when `REDIS_MIN_REPLICAS_ACK` asks for them. A
/// replica on the same network acknowledges in well under a millisecond; past this the write
/// is answered as failed.
pub const WAIT_TIMEOUT_MS: u64 = 500;

/// How long a write whose reply was lost keeps asking whether it took effect: long enough for
/// a cluster to fail a master over (node timeout plus election), short enough for a shopper.
const CONFIRM_WITHIN: StdDuration = StdDuration::from_secs(5);

/// Where the store's commands go: one server, or a cluster's masters by slot.
#[derive(Clone)]
enum Target {
    Single {
        client: redis::Client,
        config: ConnectionManagerConfig,
    },
    Cluster(ClusterClient),
}

/// A connection to either; both multiplex every command of a thread over their sockets.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    /// A pipeline goes to one node: in a cluster, the master of its first key's slot.
    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

#[derive(Clone)]
pub struct RedisStore {
    target: Target,
    /// Replicas that must have a write before it counts (`WAIT`); 0 does not wait.
    min_replicas_ack: u32,
    /// One connection per thread. A connection's driver task runs on the runtime that made it;
    /// made on an actix worker's own runtime, a command never crosses threads. (One shared
    /// connection made at start-up lived on the main thread: the profile of the read path showed
    /// a fifth of the time in that thread and half in the kernel switching to it.)
    connections: PerThread,
    prefix: String,
    location: String,
}

/// The redis store's settings.
#[derive(Clone)]
pub struct RedisSettings {
    /// `REDIS_URL`: the Redis server. Default `redis://127.0.0.1:6379`.
    pub url: String,
    /// `REDIS_CLUSTER_NODES`: seed nodes of a Redis Cluster, a comma list of `redis://` URLs;
    /// when set, the store is that cluster and `REDIS_URL` is not used. Default: none.
    pub cluster_nodes: Vec<String>,
    /// `REDIS_MIN_REPLICAS_ACK`: replicas that must have every write before it is acknowledged
    /// (`WAIT`), 0 to 5. Default `0`: Redis's asynchronous replication.
    pub min_replicas_ack: u32,
    /// `SESSION_KEY_PREFIX`.
    pub key_prefix: String,
    /// `REDIS_PASSWORD`: the password (`requirepass`) of the server or of every cluster node,
    /// used where the URLs carry none, so that the URLs can stay in plain configuration and the
    /// password in a secret. Default: none, or what the URLs carry.
    pub password: Option<String>,
    /// `REDIS_CA_FILE`: a PEM file of the certificate authorities a `rediss://` server's
    /// certificate must chain to, in place of the system's trusted roots (a managed Redis with
    /// its own CA, or a test's). Default: none, the system's roots.
    pub ca_file: Option<String>,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nodes: Vec<String> = self.cluster_nodes.iter().map(|n| redact_url(n)).collect();
        f.debug_struct("RedisSettings")
            .field("url", &redact_url(&self.url))
            .field("cluster_nodes", &nodes)
            .field("min_replicas_ack", &self.min_replicas_ack)
            .field("key_prefix", &self.key_prefix)
            .field("password", &self.password.as_ref().map(|_| "(set)"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl RedisSettings {
    pub(crate) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let cluster_nodes = env.list("REDIS_CLUSTER_NODES", "");
        if let Some(bad) = cluster_nodes
            .iter()
            .find(|node| !node.starts_with("redis://") && !node.starts_with("rediss://"))
        {
            return Err(invalid(
                "REDIS_CLUSTER_NODES",
                format!("'{}' is not a redis:// URL", redact_url(bad)),
            ));
        }
        let url = env.text_or("REDIS_URL", "redis://127.0.0.1:6379");
        let ca_file = env.text("REDIS_CA_FILE");
        let tls = match cluster_nodes.first() {
            Some(node) => node.starts_with("rediss://"),
            None => url.starts_with("rediss://"),
        };
        if ca_file.is_some() && !tls {
            return Err(invalid(
                "REDIS_CA_FILE",
                "is set, but the Redis URLs are not rediss:// (TLS)".to_owned(),
            ));
        }
        Ok(Self {
            url,
            ca_file,
            cluster_nodes,
            min_replicas_ack: env.number_in("REDIS_MIN_REPLICAS_ACK", 0_u32, 0..=5)?,
            key_prefix: super::settings::key_prefix(env),
            password: env.text("REDIS_PASSWORD").filter(|p| !p.is_empty()),
        })
    }
}

/// A Lua script sent as `EVALSHA`, and as `EVAL` (which also caches it) on a node that does not
/// know it yet: after a failover, or on a master that has never run it.
struct Lua {
    source: &'static str,
    sha: OnceLock<String>,
}

impl Lua {
    const fn new(source: &'static str) -> Self {
        Self {
            source,
            sha: OnceLock::new(),
        }
    }

    /// The call on one key, by hash or by source.
    fn call(&self, by_source: bool, key: &str, args: &[&[u8]]) -> Cmd {
        let mut cmd = if by_source {
            let mut c = redis::cmd("EVAL");
            c.arg(self.source);
            c
        } else {
            let mut c = redis::cmd("EVALSHA");
            c.arg(
                self.sha
                    .get_or_init(|| redis::Script::new(self.source).get_hash().to_owned()),
            );
            c
        };
        cmd.arg(1).arg(key);
        for arg in args {
            cmd.arg(*arg);
        }
        cmd
    }
}

/// `SET` only if the value is still the one the caller read. A value that already is the new
/// one counts as done: the call is a retry of a write whose reply was lost (every state the
/// shop writes carries a random revision, so no other write produces the same bytes).
static COMPARE_AND_SWAP: Lua = Lua::new(
    "local current = redis.call('GET', KEYS[1]) \
     if current == ARGV[1] then \
       redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1 \
     end \
     if current == ARGV[2] then return 1 end \
     return 0",
);

/// Adds to a counter atomically, never below zero; a new counter's window starts, a live one's
/// is kept (`KEEPTTL`, and `PEXPIRE ... NX` only where no expiry is set yet).
static ADD_TO_COUNTER: Lua = Lua::new(
    "local n = redis.call('INCRBY', KEYS[1], ARGV[1]) \
     if n < 0 then n = 0 redis.call('SET', KEYS[1], 0, 'KEEPTTL') end \
     if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end \
     return n",
);

fn seconds(ttl: &Duration) -> u64 {
    u64::try_from(ttl.whole_seconds()).unwrap_or(1).max(1)
}

/// `SET key state NX|XX EX ttl`.
fn set(full: &str, state: &str, condition: &str, ttl: &Duration) -> Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(full)
        .arg(state)
        .arg(condition)
        .arg("EX")
        .arg(seconds(ttl));
    cmd
}

/// The CA of `REDIS_CA_FILE` for a `rediss://` connection; none when the system's roots serve.
fn tls_certificates(config: &RedisSettings) -> anyhow::Result<Option<redis::TlsCertificates>> {
    let Some(file) = &config.ca_file else {
        return Ok(None);
    };
    let pem =
        std::fs::read(file).with_context(|| format!("could not read REDIS_CA_FILE {file}"))?;
    Ok(Some(redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    }))
}

fn is_noscript(err: &redis::RedisError) -> bool {
    err.kind() == redis::ErrorKind::NoScriptError
}

impl RedisStore {
    /// Connects once; afterwards the connection reconnects by itself (a cluster connection also
    /// follows `MOVED` and refreshes its slots after a failover), and a command during an outage
    /// fails within a second or two instead of hanging.
    pub async fn connect(config: &RedisSettings) -> anyhow::Result<Self> {
        let (target, location) = if config.cluster_nodes.is_empty() {
            let mut info = redis::IntoConnectionInfo::into_connection_info(config.url.as_str())
                .context("REDIS_URL is not a valid Redis URL")?;
            if info.redis.password.is_none() {
                info.redis.password.clone_from(&config.password);
            }
            let client = match tls_certificates(config)? {
                Some(certificates) => redis::Client::build_with_tls(info, certificates),
                None => redis::Client::open(info),
            }
            .context("REDIS_URL is not a valid Redis URL")?;
            let manager = ConnectionManagerConfig::new()
                .set_connection_timeout(StdDuration::from_secs(1))
                .set_response_timeout(StdDuration::from_secs(1))
                .set_number_of_retries(1)
                .set_max_delay(500);
            (
                Target::Single {
                    client,
                    config: manager,
                },
                redact_url(&config.url),
            )
        } else {
            let mut builder = ClusterClientBuilder::new(config.cluster_nodes.clone());
            if let Some(password) = &config.password {
                builder = builder.password(password.clone());
            }
            if let Some(certificates) = tls_certificates(config)? {
                builder = builder.certs(certificates);
            }
            let client = builder
                .connection_timeout(StdDuration::from_secs(1))
                .response_timeout(StdDuration::from_secs(1))
                // A request retries a moved or failing slot twice, a few hundred milliseconds
                // apart, and is then answered 503: a shopper waits seconds, not minutes.
                .retries(2)
                .min_retry_wait(100)
                .max_retry_wait(500)
                .build()
                .context("REDIS_CLUSTER_NODES does not describe a Redis Cluster")?;
            let nodes: Vec<String> = config.cluster_nodes.iter().map(|n| redact_url(n)).collect();
            (
                Target::Cluster(client),
                format!("the Redis Cluster seeded by {}", nodes.join(", ")),
            )
        };
        let store = Self {
            target,
            min_replicas_ack: config.min_replicas_ack,
            connections: PerThread::default(),
            prefix: config.key_prefix.clone(),
            location,
        };
        let mut connection = store
            .connection()
            .await
            .with_context(|| format!("could not connect to {}", store.location))?;
        if let Target::Cluster(_) = store.target {
            let masters = cluster_masters(&mut connection).await?;
            log::info!(
                "Redis Cluster masters (slots): {}",
                masters
                    .iter()
                    .map(|(addr, slots)| format!("{addr} ({slots})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if store.min_replicas_ack > 0 {
            log::info!(
                "Every Redis write waits for {} replica(s), at most {WAIT_TIMEOUT_MS} ms.",
                store.min_replicas_ack
            );
        }
        Ok(store)
    }

    /// This thread's connection, made on first use (and again after a failed attempt).
    async fn connection(&self) -> anyhow::Result<Connection> {
        if let Some(connection) = self.connections.with(Connection::clone) {
            return Ok(connection);
        }
        let connection = match &self.target {
            Target::Single { client, config } => Connection::Single(
                ConnectionManager::new_with_config(client.clone(), config.clone())
                    .await
                    .context("could not connect to Redis")?,
            ),
            Target::Cluster(client) => Connection::Cluster(
                client
                    .get_async_connection()
                    .await
                    .context("could not connect to the Redis Cluster")?,
            ),
        };
        self.connections.keep(connection.clone());
        Ok(connection)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// A write and, when replicas must have it, `WAIT` in the same round trip to the same node
    /// (a pipeline goes to the master of its key). Returns the write's reply and whether enough
    /// replicas acknowledged it. A script unknown to the node is sent again by source.
    async fn write<T: FromRedisValue>(
        &self,
        make: impl Fn(bool) -> Cmd,
    ) -> Result<(T, bool), redis::RedisError> {
        let mut connection = match self.connection().await {
            Ok(c) => c,
            Err(err) => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::IoError,
                    "no connection",
                    format!("{err:#}"),
                )));
            }
        };
        for by_source in [false, true] {
            let result = if self.min_replicas_ack == 0 {
                make(by_source)
                    .query_async::<T>(&mut connection)
                    .await
                    .map(|value| (value, true))
            } else {
                let mut pipe = redis::pipe();
                pipe.add_command(make(by_source))
                    .cmd("WAIT")
                    .arg(self.min_replicas_ack)
                    .arg(WAIT_TIMEOUT_MS);
                pipe.query_async::<(T, i64)>(&mut connection)
                    .await
                    .map(|(value, acked)| (value, acked >= i64::from(self.min_replicas_ack)))
            };
            match result {
                Err(err) if !by_source && is_noscript(&err) => continue,
                other => return other,
            }
        }
        unreachable!("the second attempt returns")
    }

    fn not_replicated(&self) -> StoreError {
        StoreError::NotReplicated {
            wanted: self.min_replicas_ack,
        }
    }

    /// Puts `expected` back where this request wrote `state`, if nothing changed it since;
    /// retried through a failover for a few seconds. False when it was not undone: another
    /// request wrote over it meanwhile (and may have kept it), or the store could not be
    /// reached; the shopper must then not be told it failed.
    async fn undo(&self, full: &str, state: &str, expected: &[u8], ttl: &str) -> bool {
        let deadline = std::time::Instant::now() + CONFIRM_WITHIN;
        loop {
            let undone = match self.connection().await {
                Ok(mut connection) => COMPARE_AND_SWAP
                    .call(true, full, &[state.as_bytes(), expected, ttl.as_bytes()])
                    .query_async::<i64>(&mut connection)
                    .await
                    .map_err(anyhow::Error::from),
                Err(err) => Err(err),
            };
            match undone {
                Ok(swapped) => return swapped == 1,
                Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(StdDuration::from_millis(200)).await;
                }
                Err(err) => {
                    log::warn!(
                        "A session change that did not reach a replica could not be undone \
                         ({err:#}); it may survive."
                    );
                    return false;
                }
            }
        }
    }

    /// Whether a compare-and-set whose reply was lost took effect: the same script with the new
    /// state as both the expected and the new value rewrites it only if it is there (each state
    /// is unique: it carries a random revision), and a `WAIT` behind it then covers it. Retried
    /// for a few seconds while the slot has no reachable master (a failover).
    async fn confirm(
        &self,
        full: &str,
        state: &str,
        ttl: &str,
    ) -> Result<(i64, bool), redis::RedisError> {
        let deadline = std::time::Instant::now() + CONFIRM_WITHIN;
        loop {
            let found = self
                .write(|by_source| {
                    COMPARE_AND_SWAP.call(
                        by_source,
                        full,
                        &[state.as_bytes(), state.as_bytes(), ttl.as_bytes()],
                    )
                })
                .await;
            match found {
                Err(err)
                    if (err.is_io_error() || err.is_timeout() || err.is_cluster_error())
                        && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(StdDuration::from_millis(200)).await;
                }
                other => return other,
            }
        }
    }
}

/// The cluster's masters with how many slots each serves, from `CLUSTER SHARDS`.
async fn cluster_masters(connection: &mut Connection) -> anyhow::Result<Vec<(String, u32)>> {
    // CLUSTER SLOTS: [[start, end, [ip, port, id], replicas...], ...]
    let slots: Vec<(u32, u32, (String, u16))> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async::<Vec<Value>>(connection)
        .await
        .context("could not read the cluster's slots")?
        .into_iter()
        .filter_map(|range| {
            let Value::Array(items) = range else {
                return None;
            };
            let start = u32::from_redis_value(items.first()?).ok()?;
            let end = u32::from_redis_value(items.get(1)?).ok()?;
            let Value::Array(master) = items.get(2)? else {
                return None;
            };
            let ip = String::from_redis_value(master.first()?).ok()?;
            let port = u16::from_redis_value(master.get(1)?).ok()?;
            Some((start, end, (ip, port)))
        })
        .collect();
    let mut masters: Vec<(String, u32)> = Vec::new();
    for (start, end, (ip, port)) in slots {
        let addr = format!("{ip}:{port}");
        match masters.iter_mut().find(|(a, _)| *a == addr) {
            Some((_, n)) => *n += end - start + 1,
            None => masters.push((addr, end - start + 1)),
        }
    }
    masters.sort();
    Ok(masters)
}

impl RawStore for RedisStore {
    fn location(&self) -> String {
        format!("{} (keys {}…)", self.location, self.prefix)
    }

    async fn ping(&self) -> StoreResult<()> {
        let _: () = redis::cmd("PING")
            .query_async(&mut self.connection().await?)
            .await?;
        Ok(())
    }

    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        redis::cmd("GET")
            .arg(self.key(key))
            .query_async(&mut self.connection().await?)
            .await
            .context("could not load a session from Redis")
    }

    /// `GETEX … PX`: the read that also slides the expiry, in the same round trip. A missing
    /// key stays missing. (A slide is not waited for: losing one costs a little idle time.)
    async fn get_sliding(&self, key: &str, ttl: &Duration) -> StoreResult<SlidingRead> {
        redis::cmd("GETEX")
            .arg(self.key(key))
            .arg("PX")
            .arg(millis(ttl).max(1))
            .query_async(&mut self.connection().await?)
            .await
            .context("could not load a session from Redis")
            .map(SlidingRead::slid)
    }

    /// `SET … NX EX`: stores state only under a key no session has. Not replicated in time, the
    /// new key is deleted again and the save fails.
    async fn insert_new(&self, key: &str, state: &str, ttl: &Duration) -> StoreResult<bool> {
        let full = self.key(key);
        let (stored, replicated): (Option<String>, bool) = self
            .write(|_| set(&full, state, "NX", ttl))
            .await
            .context("could not save a session to Redis")?;
        if stored.is_some() && !replicated {
            let _ = self.remove(key).await;
            return Err(self.not_replicated());
        }
        Ok(stored.is_some())
    }

    /// `SET … XX EX`: a key deleted meanwhile (logout) or expired stays gone.
    async fn replace(&self, key: &str, state: &str, ttl: &Duration) -> StoreResult<()> {
        let full = self.key(key);
        let (_, replicated): (Option<String>, bool) = self
            .write(|_| set(&full, state, "XX", ttl))
            .await
            .context("could not update a session in Redis")?;
        if !replicated {
            return Err(self.not_replicated());
        }
        Ok(())
    }

    /// Replaces the state under `key` only if it is still exactly `expected`, atomically in a
    /// Lua script. Swapped but not replicated in time, it is swapped back (if nothing changed
    /// it since) and the change fails: the shopper is told nothing changed.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        state: &str,
        ttl: &Duration,
    ) -> StoreResult<bool> {
        let full = self.key(key);
        let ttl = seconds(ttl).to_string();
        let attempt = self
            .write(|by_source| {
                COMPARE_AND_SWAP.call(
                    by_source,
                    &full,
                    &[expected, state.as_bytes(), ttl.as_bytes()],
                )
            })
            .await;
        let (swapped, replicated): (i64, bool) = match attempt {
            Ok(reply) => reply,
            // Whatever the error, an earlier try may have been applied: sent with no reply, the
            // master may have applied it (and passed it on) before it died, and the cluster
            // client retries such a request by itself, so the error it ends with can be a later
            // try's (`MOVED` to the dead master, `CLUSTERDOWN` while the cluster fails over).
            // Ask the slot's master, once there is one, instead of guessing.
            Err(err) => self.confirm(&full, state, &ttl).await.map_err(|cause| {
                StoreError::OutcomeUnknown(anyhow::Error::from(cause).context(format!(
                    "could not update a session in Redis, nor learn whether it was: {err}"
                )))
            })?,
        };
        if swapped == 1 && !replicated {
            return Err(if self.undo(&full, state, expected, &ttl).await {
                self.not_replicated()
            } else {
                StoreError::OutcomeUnknown(anyhow::anyhow!(
                    "the write did not reach the {} replica(s) required, and could not be undone",
                    self.min_replicas_ack
                ))
            });
        }
        Ok(swapped == 1)
    }

    /// `INCRBY` and `PEXPIRE` in one script: the counter's new value.
    async fn add_to_counter(&self, name: &str, delta: i64, window: &Duration) -> StoreResult<i64> {
        let full = self.key(name);
        let (delta, window) = (delta.to_string(), millis(window).max(1).to_string());
        let (value, replicated): (i64, bool) = self
            .write(|by_source| {
                ADD_TO_COUNTER.call(by_source, &full, &[delta.as_bytes(), window.as_bytes()])
            })
            .await
            .context("could not count in Redis")?;
        if !replicated {
            return Err(self.not_replicated());
        }
        Ok(value)
    }

    async fn touch(&self, key: &str, ttl: &Duration) -> StoreResult<()> {
        let _: bool = redis::cmd("EXPIRE")
            .arg(self.key(key))
            .arg(seconds(ttl))
            .query_async(&mut self.connection().await?)
            .await
            .context("could not refresh a session's expiry in Redis")?;
        Ok(())
    }

    /// `DEL`, waited for like every write: a logout that a failover could undo is not a logout.
    async fn remove(&self, key: &str) -> StoreResult<()> {
        let full = self.key(key);
        let (_, replicated): (i64, bool) = self
            .write(|_| {
                let mut cmd = redis::cmd("DEL");
                cmd.arg(&full);
                cmd
            })
            .await
            .context("could not delete a session from Redis")?;
        if !replicated {
            return Err(self.not_replicated());
        }
        Ok(())
    }

    /// The stored value and its remaining lifetime in seconds, as Redis holds them.
    async fn raw(&self, key: &str) -> StoreResult<Option<(String, i64)>> {
        let (value, ttl): (Option<Vec<u8>>, i64) = redis::pipe()
            .get(self.key(key))
            .ttl(self.key(key))
            .query_async(&mut self.connection().await?)
            .await?;
        Ok(value.map(|v| (String::from_utf8_lossy(&v).into_owned(), ttl)))
    }
}
