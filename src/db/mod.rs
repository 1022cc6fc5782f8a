//! The shop's own data: catalog, users, orders. `DATABASE_URL` picks SQLite or PostgreSQL at run
//! time through sqlx's `Any` driver; each dialect has its own migrations folder.

pub mod orders;
pub mod products;
pub mod users;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

use crate::per_thread::PerThread;

/// Connections to the shop's database at most: in all on SQLite, per thread on PostgreSQL
/// (the main thread and each worker).
const fn connections(sqlite: bool) -> u32 {
    if sqlite { 8 } else { 4 }
}

/// A pool over whichever database `DATABASE_URL` names.
#[derive(Clone)]
pub struct Database {
    pools: Pools,
    catalog: products::CatalogCache,
    sqlite: bool,
}

impl Database {
    /// Connects, creates a SQLite file on first run, and applies pending migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let pools = Pools::connect(url, connections(is_sqlite(url)))
            .await
            .context("could not connect to DATABASE_URL")?;
        let pool = pools.get();
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
            pools,
            catalog: Default::default(),
            sqlite: is_sqlite(url),
        })
    }

    /// This thread's pool.
    pub fn pool(&self) -> AnyPool {
        self.pools.get()
    }

    /// The database's own clock, in seconds since the epoch: one clock for every replica, where
    /// their own may differ.
    pub async fn clock(&self) -> Result<i64, sqlx::Error> {
        let query = if self.sqlite {
            "SELECT CAST(strftime('%s', 'now') AS INTEGER)"
        } else {
            "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS BIGINT)"
        };
        let (now,): (i64,) = sqlx::query_as(query).fetch_one(&self.pool()).await?;
        Ok(now)
    }

    /// One round trip, for `/readyz`.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool()).await?;
        Ok(())
    }
}

/// sqlx pools over one URL: one shared pool for SQLite, one per thread for PostgreSQL.
///
/// A PostgreSQL connection's socket belongs to the runtime of the thread that opened it, and
/// each actix worker runs its own. With one pool shared by every worker, a worker queried over
/// connections another had opened: their answers were noticed only when that worker's loop
/// turned, and once it had stopped (a replica's workers stop one by one when it is replaced)
/// they failed with "A Tokio 1.x context was found, but it is being shutdown", a shopper's
/// 503. So each thread has its own pool, made on its first query. (SQLite's connections each
/// run on a thread of their own, and a file or in-memory database is shared through one pool.)
#[derive(Clone)]
pub struct Pools {
    first: AnyPool,
    /// PostgreSQL's: what makes each thread's pool.
    per_thread: Option<Arc<ThreadPools>>,
}

struct ThreadPools {
    pools: PerThread,
    url: String,
    connections: u32,
}

impl Pools {
    /// Connects with at most `connections`: in all on SQLite, on each thread that queries on
    /// PostgreSQL (the first pool is this thread's, connected now).
    pub async fn connect(url: &str, connections: u32) -> anyhow::Result<Self> {
        let first = connect_any(url, connections).await?;
        if is_sqlite(url) {
            return Ok(Self {
                first,
                per_thread: None,
            });
        }
        let per_thread = ThreadPools {
            pools: PerThread::default(),
            url: url.to_owned(),
            connections,
        };
        per_thread.pools.keep(first.clone());
        Ok(Self {
            first,
            per_thread: Some(Arc::new(per_thread)),
        })
    }

    /// This thread's pool (SQLite's only one).
    pub fn get(&self) -> AnyPool {
        let Some(per_thread) = &self.per_thread else {
            return self.first.clone();
        };
        if let Some(pool) = per_thread.pools.with(AnyPool::clone) {
            return pool;
        }
        let pool = pool_options(per_thread.connections, false)
            .connect_lazy(&per_thread.url)
            // The URL parsed when the first pool connected; should it not now, the first serves.
            .unwrap_or_else(|_| self.first.clone());
        per_thread.pools.keep(pool.clone());
        pool
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
    let pool = pool_options(max_connections, sqlite).connect(&url).await?;
    if sqlite {
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await?;
    }
    Ok(pool)
}

/// The pool's settings: how connections are checked before use and set up after opening.
fn pool_options(max_connections: u32, sqlite: bool) -> AnyPoolOptions {
    AnyPoolOptions::new()
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
