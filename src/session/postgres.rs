//! Sessions in PostgreSQL, for teams that already run it and want transactional guarantees:
//! the same table as the SQLite store, in `SESSION_DATABASE_URL` (by default the shop's own
//! database). Expiry is enforced by every query; the reaper runs under an advisory lock.

use anyhow::Context;

use super::redact_url;
use super::sql::{Dialect, SqlStore};
use crate::db::connect_any;

pub async fn connect(url: &str) -> anyhow::Result<SqlStore> {
    let pool = connect_any(url, 16)
        .await
        .context("could not connect to the PostgreSQL session database")?;
    SqlStore::open(pool, Dialect::Postgres, redact_url(url)).await
}
