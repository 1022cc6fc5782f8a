//! How the session layer is set up: the settings `config` reads from the environment for it,
//! and the part of them every request's session needs. They live beside the stores, and
//! `config` depends on them, not the other way round.

use std::fmt;

use actix_web::cookie::Key;

use super::Backend;

/// Settings of the session layer.
#[derive(Clone)]
pub struct SessionConfig {
    /// `SESSION_BACKEND`: `sqlite`, `redis`, `postgres`, `memcached` or `memory`.
    /// Default: the one network store compiled in, else `sqlite`.
    pub backend: Backend,
    /// `SESSION_SECRET`: at least 64 bytes, the same on every instance.
    pub secret: Secret,
    /// `SESSION_TTL_SECONDS`: idle expiry enforced by the store. Default `1800`.
    pub ttl_seconds: i64,
    /// `SESSION_MAX_LOGIN_SECONDS`: absolute lifetime of a sign-in, however active.
    /// Default `43200` (12 hours).
    pub max_login_seconds: i64,
    /// `COOKIE_SECURE`: the cookie's `Secure` flag. Default `true` in production, else `false`.
    pub cookie_secure: bool,
    /// `SESSION_DATABASE_URL`: the SQLite file (sqlite store) or PostgreSQL database (postgres
    /// store) holding the sessions. Default `sqlite://data/sessions.db` for sqlite, and
    /// `DATABASE_URL` for postgres when that is a PostgreSQL URL.
    pub database_url: String,
    /// `REDIS_URL`: the Redis store. Default `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// `REDIS_CLUSTER_NODES`: seed nodes of a Redis Cluster, a comma list of `redis://` URLs;
    /// when set, the Redis store is that cluster and `REDIS_URL` is not used. Default: none.
    pub redis_cluster_nodes: Vec<String>,
    /// `REDIS_MIN_REPLICAS_ACK`: replicas that must have every write before it is acknowledged
    /// (`WAIT`). Default `0`: Redis's asynchronous replication.
    pub redis_min_replicas_ack: u32,
    /// `MEMCACHED_SERVERS`: the Memcached store, a comma list. Default `127.0.0.1:11211`.
    pub memcached_servers: Vec<String>,
    /// `SESSION_KEY_PREFIX`: prefix of every key in a shared store. Default `shop:session:`.
    pub key_prefix: String,
}

/// The cookie key material. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("backend", &self.backend)
            .field("ttl_seconds", &self.ttl_seconds)
            .field("cookie_secure", &self.cookie_secure)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

/// What a request's session needs to know: the key that signs form tokens and decrypts the
/// cookie, the cookie's Secure flag, and how long a sign-in lasts. Registered as app data.
#[derive(Clone)]
pub struct SessionSettings {
    pub cookie_key: Key,
    /// Signs form tokens and names the login counters, with the key's HMAC blocks precomputed.
    pub signer: super::csrf::Signer,
    /// `COOKIE_SECURE`.
    pub cookie_secure: bool,
    /// `SESSION_MAX_LOGIN_SECONDS`.
    pub max_login_seconds: i64,
}

/// The URL with any password replaced, fit for a log line.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}
