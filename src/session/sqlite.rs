//! The embedded default: sessions in a SQLite file that every process on one host shares, so
//! `cargo run` works with no server at all and two local instances still share their shoppers.
//! Expired rows never load and a periodic reaper deletes them.

use std::str::FromStr;
use std::time::Duration as StdDuration;

use actix_session::storage::{LoadError, SaveError, SessionKey, UpdateError};
use actix_web::cookie::time::Duration;
use anyhow::Context;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::State;
use super::codec::{decode, encode, new_key, now};

/// How many expired rows one reaper statement deletes, so it never holds the write lock long.
const REAP_BATCH: i64 = 1000;

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    location: String,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("SESSION_DATABASE_URL '{url}' is not a SQLite URL"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(StdDuration::from_secs(5));
        let location = options.get_filename().display().to_string();
        crate::db::create_parent_dir(options.get_filename())?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .with_context(|| format!("could not open the session file {location}"))?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS sessions (
                 key TEXT PRIMARY KEY NOT NULL,
                 state TEXT NOT NULL,
                 expires_at INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at);",
        )
        .execute(&pool)
        .await
        .context("could not create the sessions table")?;
        Ok(Self { pool, location })
    }

    pub fn location(&self) -> String {
        self.location.clone()
    }

    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn load(&self, key: &SessionKey) -> Result<Option<State>, LoadError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT state FROM sessions WHERE key = $1 AND expires_at > $2")
                .bind(key.as_ref())
                .bind(now())
                .fetch_optional(&self.pool)
                .await
                .context("could not load a session from SQLite")
                .map_err(LoadError::Other)?;
        row.map(|(state,)| decode(key, state.as_bytes()))
            .transpose()
    }

    pub async fn save(&self, state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        let state = encode(&state).map_err(SaveError::Serialization)?;
        let expires_at = now() + ttl.whole_seconds();
        loop {
            let key = new_key();
            // An expired row under the same key may be replaced; a live one never is.
            let inserted = sqlx::query(
                "INSERT INTO sessions (key, state, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET state = excluded.state, expires_at = excluded.expires_at
                 WHERE sessions.expires_at <= $4",
            )
            .bind(key.as_ref())
            .bind(&state)
            .bind(expires_at)
            .bind(now())
            .execute(&self.pool)
            .await
            .context("could not save a session to SQLite")
            .map_err(SaveError::Other)?;
            if inserted.rows_affected() == 1 {
                return Ok(key);
            }
        }
    }

    pub async fn update(
        &self,
        key: SessionKey,
        state: State,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let state = encode(&state).map_err(UpdateError::Serialization)?;
        let now = now();
        // Only a live row is updated: a session deleted (logout) or expired meanwhile stays gone.
        sqlx::query(
            "UPDATE sessions SET state = $2, expires_at = $3 WHERE key = $1 AND expires_at > $4",
        )
        .bind(key.as_ref())
        .bind(&state)
        .bind(now + ttl.whole_seconds())
        .bind(now)
        .execute(&self.pool)
        .await
        .context("could not update a session in SQLite")
        .map_err(UpdateError::Other)?;
        Ok(key)
    }

    pub async fn update_ttl(&self, key: &SessionKey, ttl: &Duration) -> anyhow::Result<()> {
        let now = now();
        sqlx::query("UPDATE sessions SET expires_at = $2 WHERE key = $1 AND expires_at > $3")
            .bind(key.as_ref())
            .bind(now + ttl.whole_seconds())
            .bind(now)
            .execute(&self.pool)
            .await
            .context("could not refresh a session's expiry in SQLite")?;
        Ok(())
    }

    pub async fn delete(&self, key: &SessionKey) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE key = $1")
            .bind(key.as_ref())
            .execute(&self.pool)
            .await
            .context("could not delete a session from SQLite")?;
        Ok(())
    }

    /// Deletes expired rows in batches until none is left.
    pub async fn reap_expired(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        loop {
            let deleted = sqlx::query(
                "DELETE FROM sessions WHERE key IN
                   (SELECT key FROM sessions WHERE expires_at <= $1 LIMIT $2)",
            )
            .bind(now())
            .bind(REAP_BATCH)
            .execute(&self.pool)
            .await
            .context("could not delete expired sessions from SQLite")?
            .rows_affected();
            total += deleted;
            if deleted < REAP_BATCH as u64 {
                return Ok(total);
            }
        }
    }

    /// The raw stored value and its remaining lifetime in seconds, for tests and the inspector.
    pub async fn raw(&self, key: &str) -> anyhow::Result<Option<(String, i64)>> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT state, expires_at FROM sessions WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(state, expires_at)| (state, expires_at - now())))
    }
}
