//! The shop's own data: catalog, users, orders. `DATABASE_URL` picks SQLite or PostgreSQL at run
//! time through sqlx's `Any` driver; each dialect has its own migrations folder.

pub mod orders;
pub mod products;
pub mod users;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

/// A pool over whichever database `DATABASE_URL` names.
#[derive(Clone)]
pub struct Database {
    pool: AnyPool,
    catalog: products::CatalogCache,
    sqlite: bool,
}

impl Database {
    /// Connects, creates a SQLite file on first run, and applies pending migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let pool = connect_any(url, if is_sqlite(url) { 8 } else { 10 })
            .await
            .context("could not connect to DATABASE_URL")?;
        let mut migrator = if is_sqlite(url) {
            sqlx::migrate!("./migrations/sqlite")
        } else {
            sqlx::migrate!("./migrations/postgres")
        };
        // A rollback starts the previous release against a database the next one has already
        // migrated: the migrations it does not know are the next release's, additive by policy
        // (README, "Deploying a new version"), so it starts rather than refusing to.
        migrator.set_ignore_missing(true);
        migrator
            .run(&pool)
            .await
            .context("could not apply the database migrations")?;
        Ok(Self {
            pool,
            catalog: Default::default(),
            sqlite: is_sqlite(url),
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The database's own clock, in seconds since the epoch: one clock for every replica, where
    /// their own may differ.
    pub async fn clock(&self) -> Result<i64, sqlx::Error> {
        let query = if self.sqlite {
            "SELECT CAST(strftime('%s', 'now') AS INTEGER)"
        } else {
            "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS BIGINT)"
        };
        let (now,): (i64,) = sqlx::query_as(query).fetch_one(&self.pool).await?;
        Ok(now)
    }

    /// One round trip, for `/readyz`.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// How long a pooled connection may sit idle before it is pinged on its way out of the pool.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// A pool over a SQLite or PostgreSQL URL. A SQLite file is created on first use, in WAL mode
/// so readers never wait for the writer and several processes can share it.
pub async fn connect_any(url: &str, max_connections: u32) -> anyhow::Result<AnyPool> {
    sqlx::any::install_default_drivers();
    let sqlite = is_sqlite(url);
    let url = if sqlite {
        sqlite_url(url)?
    } else {
        url.to_owned()
    };
    let pool = AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(3))
        // No ping before handing out a busy connection: it was a round trip per query (a
        // channel round trip to SQLite's worker thread, a network one to PostgreSQL), 14% of a
        // cart change's profile. A connection idle for a while is pinged first: after the
        // database restarts, every pooled connection is dead, and without the ping each one
        // answered a shopper's request 503 on its first use (CI's restart journey met one
        // seconds after the store was back).
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE_FOR {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if sqlite {
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect(&url)
        .await?;
    if sqlite {
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await?;
    }
    Ok(pool)
}

/// A SQLite URL that creates its file, with the folder made beforehand.
fn sqlite_url(url: &str) -> anyhow::Result<String> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:" {
        create_parent_dir(Path::new(path))?;
    }
    Ok(if query.contains("mode=") {
        url.to_owned()
    } else if query.is_empty() {
        format!("sqlite://{path}?mode=rwc")
    } else {
        format!("sqlite://{path}?{query}&mode=rwc")
    })
}

/// Makes the folder a database file lives in, so a fresh clone runs without set-up.
pub fn create_parent_dir(path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("could not create the folder {}", parent.display()))?;
    }
    Ok(())
}

/// Seconds since the epoch; timestamps are stored as integers in both dialects.
pub use crate::domain::now;

/// Whether `url` names a SQLite database.
pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}
