//! The embedded default: sessions in a SQLite file every process on one host shares, so
//! `cargo run` works with no server at all and two local instances still share their shoppers.

use super::error::Context;

use super::sql::{Dialect, SqlStore};
use crate::db::Pools;
use crate::db::is_sqlite;
use crate::env::{ConfigError, Env, invalid};

/// The sqlite store's settings.
#[derive(Clone, Debug)]
pub struct SqliteSettings {
    /// `SESSION_DATABASE_URL`: the SQLite file holding the sessions, a `sqlite://` URL.
    /// Default `sqlite://data/sessions.db`.
    pub database_url: String,
}

impl SqliteSettings {
    pub(crate) fn read(env: &Env<'_>) -> Result<Self, ConfigError> {
        let database_url = env.text_or("SESSION_DATABASE_URL", "sqlite://data/sessions.db");
        if !is_sqlite(&database_url) {
            return Err(invalid(
                "SESSION_DATABASE_URL",
                "must be a sqlite:// URL for the sqlite store",
            ));
        }
        Ok(Self { database_url })
    }
}

/// Opens (creating if needed) the session file named by `SESSION_DATABASE_URL`.
pub async fn connect(settings: &SqliteSettings) -> anyhow::Result<SqlStore> {
    let url = &settings.database_url;
    let pools = Pools::connect(url, 8)
        .await
        .with_context(|| format!("could not open the SQLite session file {url}"))?;
    let location = url.trim_start_matches("sqlite://").to_owned();
    SqlStore::open(pools, Dialect::Sqlite, location).await
}
