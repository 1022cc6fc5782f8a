//! The embedded default: sessions in a SQLite file every process on one host shares, so
//! `cargo run` works with no server at all and two local instances still share their shoppers.

use anyhow::Context;

use super::sql::{Dialect, SqlStore};
use crate::db::connect_any;

/// Opens (creating if needed) the session file named by `SESSION_DATABASE_URL`.
pub async fn connect(url: &str) -> anyhow::Result<SqlStore> {
    let pool = connect_any(url, 8)
        .await
        .with_context(|| format!("could not open the SQLite session file {url}"))?;
    let location = url.trim_start_matches("sqlite://").to_owned();
    SqlStore::open(pool, Dialect::Sqlite, location).await
}
