//! Sessions in PostgreSQL, for teams that already run it and want transactional guarantees:
//! the same table as the SQLite store, in `SESSION_DATABASE_URL` (by default the shop's own
//! database). Expiry is enforced by every query; the reaper runs under an advisory lock.

use super::error::Context;

use super::redact_url;
use super::sql::{Dialect, SqlStore};
use crate::db::Pools;
use crate::db::is_postgres;
use crate::env::{ConfigError, Env, invalid};

/// The postgres store's settings.
#[derive(Clone)]
pub struct PostgresSettings {
    /// `SESSION_DATABASE_URL`: the PostgreSQL database holding the sessions. Default:
    /// `DATABASE_URL`, when that is a PostgreSQL URL.
    pub database_url: String,
}

impl std::fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("database_url", &redact_url(&self.database_url))
            .finish()
    }
}

impl PostgresSettings {
    pub(crate) fn read(env: &Env<'_>, shop_database_url: &str) -> Result<Self, ConfigError> {
        let database_url = match env.text("SESSION_DATABASE_URL") {
            Some(url) => url,
            None if is_postgres(shop_database_url) => shop_database_url.to_owned(),
            None => {
                return Err(invalid(
                    "SESSION_DATABASE_URL",
                    "is required for the postgres store when DATABASE_URL is not PostgreSQL",
                ));
            }
        };
        if !is_postgres(&database_url) {
            return Err(invalid(
                "SESSION_DATABASE_URL",
                "must be a postgres:// URL for the postgres store",
            ));
        }
        Ok(Self { database_url })
    }
}

/// Connections to the session database per thread at most (the main thread and each worker).
/// Six keep PostgreSQL's two cores here busy from one worker; a replica with W workers opens at
/// most 6 × (W + 1).
const CONNECTIONS_PER_THREAD: u32 = 6;

pub async fn connect(settings: &PostgresSettings) -> anyhow::Result<SqlStore> {
    let url = &settings.database_url;
    let pools = Pools::connect(url, CONNECTIONS_PER_THREAD)
        .await
        .context("could not connect to the PostgreSQL session database")?;
    SqlStore::open(pools, Dialect::Postgres, redact_url(url)).await
}
