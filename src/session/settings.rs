//! How the session layer is set up: the settings `config` reads from the environment for it,
//! and the part of them every request's session needs. They live beside the stores, and
//! `config` depends on them, not the other way round.

use std::fmt;

use actix_web::cookie::Key;

use super::Backend;
#[cfg(feature = "memcached")]
use super::memcached::MemcachedSettings;
#[cfg(feature = "postgres")]
use super::postgres::PostgresSettings;
#[cfg(feature = "redis")]
use super::redis::RedisSettings;
use super::sqlite::SqliteSettings;
use crate::env::{ConfigError, Env};

/// Settings of the session layer.
#[derive(Clone)]
pub struct SessionConfig {
    /// `SESSION_BACKEND`, and the chosen store's own settings.
    pub store: StoreSettings,
    /// `SESSION_SECRET`: at least 64 bytes, the same on every instance.
    pub secret: Secret,
    /// `SESSION_TTL_SECONDS`: idle expiry enforced by the store. Default `1800`.
    pub ttl_seconds: i64,
    /// `SESSION_MAX_LOGIN_SECONDS`: absolute lifetime of a sign-in, however active.
    /// Default `43200` (12 hours).
    pub max_login_seconds: i64,
    /// `COOKIE_SECURE`: the cookie's `Secure` flag. Default `true` in production, else `false`.
    pub cookie_secure: bool,
}

impl SessionConfig {
    pub fn backend(&self) -> Backend {
        self.store.backend()
    }
}

/// The store `SESSION_BACKEND` names (default: the one network store compiled in, else
/// `sqlite`), with its own settings, each read by its store's file beside the store.
#[derive(Clone, Debug)]
pub enum StoreSettings {
    Sqlite(SqliteSettings),
    #[cfg(feature = "postgres")]
    Postgres(PostgresSettings),
    #[cfg(feature = "redis")]
    Redis(RedisSettings),
    #[cfg(feature = "memcached")]
    Memcached(MemcachedSettings),
    Memory,
}

impl StoreSettings {
    /// The settings of the store `backend`, read by that store; `database_url` is the shop's
    /// own database, which the postgres store uses by default.
    pub(crate) fn read(
        backend: Backend,
        env: &Env<'_>,
        database_url: &str,
    ) -> Result<Self, ConfigError> {
        Ok(match backend {
            Backend::Sqlite => StoreSettings::Sqlite(SqliteSettings::read(env)?),
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                StoreSettings::Postgres(PostgresSettings::read(env, database_url)?)
            }
            #[cfg(feature = "redis")]
            Backend::Redis => StoreSettings::Redis(RedisSettings::read(env)?),
            #[cfg(feature = "memcached")]
            Backend::Memcached => StoreSettings::Memcached(MemcachedSettings::read(env)?),
            Backend::Memory => StoreSettings::Memory,
            #[allow(
                unreachable_patterns,
                reason = "reachable when a store's feature is off; Backend::parse refuses it first"
            )]
            other => {
                let _ = database_url;
                return Err(crate::env::invalid(
                    "SESSION_BACKEND",
                    format!("the {other} store is not compiled into this build"),
                ));
            }
        })
    }

    pub fn backend(&self) -> Backend {
        match self {
            StoreSettings::Sqlite(_) => Backend::Sqlite,
            #[cfg(feature = "postgres")]
            StoreSettings::Postgres(_) => Backend::Postgres,
            #[cfg(feature = "redis")]
            StoreSettings::Redis(_) => Backend::Redis,
            #[cfg(feature = "memcached")]
            StoreSettings::Memcached(_) => Backend::Memcached,
            StoreSettings::Memory => Backend::Memory,
        }
    }
}

/// `SESSION_KEY_PREFIX`: prefix of every key in a shared store (Redis, Memcached). Default
/// `shop:session:`.
#[cfg(any(feature = "redis", feature = "memcached"))]
pub(crate) fn key_prefix(env: &Env<'_>) -> String {
    env.text_or("SESSION_KEY_PREFIX", "shop:session:")
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
            .field("store", &self.store)
            .field("ttl_seconds", &self.ttl_seconds)
            .field("cookie_secure", &self.cookie_secure)
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
