//! What a session costs the store: the store's own memory (or disk) before and after N more
//! signed-in sessions, each a copy of a real shopper's session with a 5-line cart under its own
//! user, saved through the shop's own store (`SessionStore::save`: the same bytes, the same
//! user-to-sessions index record a sign-in writes). The figure a team sizing a store needs.

use std::time::Instant;

use actix_session::storage::SessionStore;
use shop::session::{State, Store};
use tokio::task::JoinSet;

use super::*;

/// Saves at a time: enough to keep a network store busy, few enough for SQLite's one writer.
const CONCURRENT_SAVES: usize = 32;

/// One store's figures.
pub struct StoreMemory {
    pub sessions: u64,
    /// What was measured, in words: `used_memory`, table and indexes, …
    pub measure: &'static str,
    pub before: u64,
    pub after: u64,
    pub seconds: f64,
}

impl StoreMemory {
    pub fn bytes_per_session(&self) -> f64 {
        self.after.saturating_sub(self.before) as f64 / self.sessions.max(1) as f64
    }

    /// MiB per 100,000 sessions.
    pub fn mib_per_100k(&self) -> f64 {
        self.bytes_per_session() * 100_000.0 / (1024.0 * 1024.0)
    }
}

/// The state of the session in `cookie`, as the store holds it, decoded.
pub(crate) async fn session_state(
    env: &HashMap<String, String>,
    cookie: &str,
) -> anyhow::Result<(Store, State)> {
    let (store, raw) = stored_session(env, cookie).await?;
    let state: State = serde_json::from_str(&raw).context("the stored state")?;
    Ok((store, state))
}

/// Saves `sessions` copies of `template`, each signed in as its own user, and measures the
/// store's memory before and after.
pub(crate) async fn measure(
    store: Store,
    template: State,
    env: &HashMap<String, String>,
    sessions: u64,
) -> anyhow::Result<StoreMemory> {
    let backend = store.backend();
    // What the run's earlier phases stored (300,000 sessions for the RSS figures) goes first: on
    // a Redis capped at 256 MB (as CI's and compose's are) the saves below found it full.
    clean_up(backend, env).await?;
    let (measure, before) = usage(backend, env).await?;
    let started = Instant::now();
    // actix-session's futures are not `Send`: the saves run on this thread, 32 at a time.
    let saved = tokio::task::LocalSet::new()
        .run_until(save_copies(&store, &template, sessions))
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let after = usage(backend, env).await;
    // Whatever happened: a failed run left half a million keys behind in the machine's Redis.
    clean_up(backend, env).await?;
    saved?;
    let (_, after) = after?;
    Ok(StoreMemory {
        sessions,
        measure,
        before,
        after,
        seconds,
    })
}

async fn save_copies(store: &Store, template: &State, sessions: u64) -> anyhow::Result<()> {
    let mut saves = JoinSet::new();
    let ttl = actix_web::cookie::time::Duration::seconds(1800);
    for i in 0..sessions {
        if saves.len() >= CONCURRENT_SAVES
            && let Some(done) = saves.join_next().await
        {
            done??;
        }
        let mut state = template.clone();
        let user: serde_json::Value =
            serde_json::from_str(state.get("user").context("a signed-in session")?)?;
        let mut user = user;
        user["id"] = serde_json::json!(1_000_000 + i);
        user["email"] = serde_json::json!(format!("sized-{i}@example.com"));
        state.insert("user".to_owned(), user.to_string());
        let store = store.clone();
        saves.spawn_local(async move {
            store
                .save(state, &ttl)
                .await
                .map(drop)
                .map_err(|err| anyhow::anyhow!("a save failed: {err}"))
        });
    }
    while let Some(done) = saves.join_next().await {
        done??;
    }
    Ok(())
}

/// Deletes the run's keys from a Redis the bench does not own (the machine's own server), so
/// that 100,000 sessions do not sit in it for their 30 minutes, slowing what runs next. The
/// other stores are the run's own: a database of its own, a file in its folder, a memcached it
/// started.
pub(crate) async fn clean_up(
    backend: Backend,
    env: &HashMap<String, String>,
) -> anyhow::Result<()> {
    // A `rediss://` Redis is redis-tls's, the run's own: it goes with the run.
    if backend != Backend::Redis
        || env
            .get("REDIS_URL")
            .is_some_and(|u| u.starts_with("rediss://"))
    {
        return Ok(());
    }
    let client = redis::Client::open(
        env.get("REDIS_URL")
            .map_or("redis://127.0.0.1:6379", String::as_str),
    )?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let pattern = format!("{}*", env["SESSION_KEY_PREFIX"]);
    let mut cursor = 0_u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await?;
        if !keys.is_empty() {
            let _: () = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut connection)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// The store's own account of what it holds: what is measured, and the bytes.
async fn usage(
    backend: Backend,
    env: &HashMap<String, String>,
) -> anyhow::Result<(&'static str, u64)> {
    Ok(match backend {
        Backend::Redis => {
            let client = redis::Client::open(
                env.get("REDIS_URL")
                    .map_or("redis://127.0.0.1:6379", String::as_str),
            )?;
            let mut connection = client.get_multiplexed_async_connection().await?;
            let info: String = redis::cmd("INFO")
                .arg("memory")
                .query_async(&mut connection)
                .await?;
            ("`used_memory` (INFO memory)", field(&info, "used_memory:")?)
        }
        Backend::Memcached => {
            let server = env.get("MEMCACHED_SERVERS").context("MEMCACHED_SERVERS")?;
            (
                "`bytes` (stats): the items' own size",
                memcached_bytes(server).await?,
            )
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&env["SESSION_DATABASE_URL"]).await?;
            let (bytes,): (i64,) = sqlx::query_as("SELECT pg_total_relation_size('sessions')")
                .fetch_one(&pool)
                .await?;
            pool.close().await;
            (
                "`pg_total_relation_size('sessions')`: table, TOAST and indexes",
                u64::try_from(bytes)?,
            )
        }
        Backend::Sqlite => {
            let url = &env["SESSION_DATABASE_URL"];
            let path = url.trim_start_matches("sqlite://").to_owned();
            let pool = sqlx::SqlitePool::connect(url).await?;
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&pool)
                .await?;
            pool.close().await;
            (
                "the file's size after a checkpoint",
                std::fs::metadata(&path)?.len(),
            )
        }
        Backend::Memory => bail!("the memory store has no store to measure"),
    })
}

/// The number after `name` in an INFO-style text.
fn field(info: &str, name: &str) -> anyhow::Result<u64> {
    info.lines()
        .find_map(|line| line.strip_prefix(name))
        .with_context(|| format!("no {name} in INFO"))?
        .trim()
        .parse()
        .context("a number")
}

/// `stats`' `bytes` on a Memcached server.
async fn memcached_bytes(server: &str) -> anyhow::Result<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server).await?;
    stream.write_all(b"stats\r\n").await?;
    let mut reply = Vec::new();
    let mut buffer = [0_u8; 4096];
    while !reply.ends_with(b"END\r\n") {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            bail!("memcached closed the stats early");
        }
        reply.extend_from_slice(&buffer[..n]);
    }
    let text = String::from_utf8_lossy(&reply);
    text.lines()
        .find_map(|line| line.strip_prefix("STAT bytes "))
        .context("no bytes in stats")?
        .trim()
        .parse()
        .context("a number")
}
