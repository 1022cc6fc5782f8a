//! The SQL session store, written once for both SQL dialects: a table
//! `sessions(key primary key, state, expires_at)` with an index on `expires_at`.
//!
//! Expired rows never load. `insert_new` never replaces a live row and `replace` only touches a
//! live one, so a session deleted by a logout (or expired) stays gone. Rows are removed by a
//! reaper in batches; on PostgreSQL it holds an advisory lock, so with many instances only one
//! reaps at a time instead of all of them racing over the same rows.

use super::error::Context;
use crate::db::Pools;
use actix_web::cookie::time::Duration;

use super::codec::{millis, now_millis};
use super::{RawStore, SlidingRead, StoreResult};

/// Rows deleted by one reaper statement, so it never holds locks for long.
const REAP_BATCH: i64 = 1000;

/// The advisory lock the PostgreSQL reaper and schema set-up hold (an arbitrary constant).
pub(super) const PG_LOCK: i64 = 0x5e55_1075;

/// `expires_at` is in milliseconds since the epoch.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS sessions (
        key TEXT PRIMARY KEY NOT NULL,
        state TEXT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at);";

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct SqlStore {
    pools: Pools,
    dialect: Dialect,
    location: String,
}

impl SqlStore {
    /// Creates the table if needed (under the advisory lock on PostgreSQL, where instances
    /// starting together would otherwise race on `CREATE TABLE`).
    pub(super) async fn open(
        pools: Pools,
        dialect: Dialect,
        location: String,
    ) -> anyhow::Result<Self> {
        let mut tx = pools.get().begin().await?;
        if dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(PG_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::raw_sql(SCHEMA)
            .execute(&mut *tx)
            .await
            .context("could not create the sessions table")?;
        tx.commit().await?;
        Ok(Self {
            pools,
            dialect,
            location,
        })
    }
}

impl RawStore for SqlStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pools.get()).await?;
        Ok(())
    }

    /// The live state under `key`, if any: an expired row never loads.
    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT state FROM sessions WHERE key = $1 AND expires_at > $2")
                .bind(key)
                .bind(now_millis())
                .fetch_optional(&self.pools.get())
                .await
                .context("could not load a session")?;
        Ok(row.map(|(state,)| state.into_bytes()))
    }

    /// The live state under `key`, and whether its expiry is due to slide: the SQL stores slide
    /// lazily, with a separate write (`touch`) only once less than half of `ttl` is left, so a
    /// session costs at most about two slide writes per TTL however often it is read.
    async fn get_sliding(&self, key: &str, ttl: &Duration) -> StoreResult<SlidingRead> {
        let now = now_millis();
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT state, expires_at FROM sessions WHERE key = $1 AND expires_at > $2",
        )
        .bind(key)
        .bind(now)
        .fetch_optional(&self.pools.get())
        .await
        .context("could not load a session")?;
        Ok(match row {
            Some((state, expires_at)) => SlidingRead {
                bytes: Some(state.into_bytes()),
                slide_due: expires_at - now < millis(ttl) / 2,
            },
            None => SlidingRead::default(),
        })
    }

    /// Stores state under `key` only if no live session has it; an expired row may be replaced.
    async fn insert_new(&self, key: &str, state: &str, ttl: &Duration) -> StoreResult<bool> {
        let now = now_millis();
        let inserted = sqlx::query(
            "INSERT INTO sessions (key, state, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET state = excluded.state, expires_at = excluded.expires_at
             WHERE sessions.expires_at <= $4",
        )
        .bind(key)
        .bind(state)
        .bind(now + millis(ttl))
        .bind(now)
        .execute(&self.pools.get())
        .await
        .context("could not save a session")?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Rewrites a live row only: a session deleted (logout) or expired meanwhile stays gone.
    async fn replace(&self, key: &str, state: &str, ttl: &Duration) -> StoreResult<()> {
        let now = now_millis();
        sqlx::query(
            "UPDATE sessions SET state = $2, expires_at = $3 WHERE key = $1 AND expires_at > $4",
        )
        .bind(key)
        .bind(state)
        .bind(now + millis(ttl))
        .bind(now)
        .execute(&self.pools.get())
        .await
        .context("could not update a session")?;
        Ok(())
    }

    /// Replaces the live state under `key` only if it is still exactly `expected`.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        state: &str,
        ttl: &Duration,
    ) -> StoreResult<bool> {
        let Ok(expected) = std::str::from_utf8(expected) else {
            return Ok(false);
        };
        let now = now_millis();
        let swapped = sqlx::query(
            "UPDATE sessions SET state = $3, expires_at = $4
             WHERE key = $1 AND state = $2 AND expires_at > $5",
        )
        .bind(key)
        .bind(expected)
        .bind(state)
        .bind(now + millis(ttl))
        .bind(now)
        .execute(&self.pools.get())
        .await
        .context("could not update a session")?;
        Ok(swapped.rows_affected() == 1)
    }

    /// Adds to a counter kept as a row, in one upsert: an expired row starts again from zero
    /// with a new window; a live one keeps its window; the value never goes below zero.
    async fn add_to_counter(&self, name: &str, delta: i64, window: &Duration) -> StoreResult<i64> {
        let now = now_millis();
        let (value,): (String,) = sqlx::query_as(
            "INSERT INTO sessions (key, state, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET
               state = CASE
                 WHEN sessions.expires_at <= $4 THEN excluded.state
                 WHEN CAST(sessions.state AS BIGINT) + $5 < 0 THEN '0'
                 ELSE CAST(CAST(sessions.state AS BIGINT) + $5 AS TEXT)
               END,
               expires_at = CASE
                 WHEN sessions.expires_at <= $4 THEN excluded.expires_at
                 ELSE sessions.expires_at
               END
             RETURNING state",
        )
        .bind(name)
        .bind(delta.max(0).to_string())
        .bind(now + millis(window))
        .bind(now)
        .bind(delta)
        .fetch_one(&self.pools.get())
        .await
        .context("could not count")?;
        Ok(value.parse().unwrap_or(0))
    }

    /// Pushes a live row's expiry back without touching its state (so a compare-and-set that
    /// read it still applies); a row expired or deleted meanwhile stays gone.
    async fn touch(&self, key: &str, ttl: &Duration) -> StoreResult<()> {
        let now = now_millis();
        sqlx::query("UPDATE sessions SET expires_at = $2 WHERE key = $1 AND expires_at > $3")
            .bind(key)
            .bind(now + millis(ttl))
            .bind(now)
            .execute(&self.pools.get())
            .await
            .context("could not slide a session's expiry")?;
        Ok(())
    }

    async fn remove(&self, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE key = $1")
            .bind(key)
            .execute(&self.pools.get())
            .await
            .context("could not delete a session")?;
        Ok(())
    }

    /// Deletes expired rows in batches until none is left. On PostgreSQL each batch runs under
    /// the advisory lock; if another instance holds it, this one leaves the work to it.
    async fn reap_expired(&self) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let mut tx = self.pools.get().begin().await?;
            if self.dialect == Dialect::Postgres {
                let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1)")
                    .bind(PG_LOCK)
                    .fetch_one(&mut *tx)
                    .await?;
                if !locked {
                    return Ok(total);
                }
            }
            let deleted = sqlx::query(
                "DELETE FROM sessions WHERE key IN
                   (SELECT key FROM sessions WHERE expires_at <= $1 LIMIT $2)",
            )
            .bind(now_millis())
            .bind(REAP_BATCH)
            .execute(&mut *tx)
            .await
            .context("could not delete expired sessions")?
            .rows_affected();
            tx.commit().await?;
            total += deleted;
            if deleted < REAP_BATCH as u64 {
                return Ok(total);
            }
        }
    }

    /// The stored value and its remaining lifetime in seconds, as the store holds them.
    async fn raw(&self, key: &str) -> StoreResult<Option<(String, i64)>> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT state, expires_at FROM sessions WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pools.get())
                .await?;
        Ok(row.map(|(state, expires_at)| (state, (expires_at - now_millis()) / 1000)))
    }
}
