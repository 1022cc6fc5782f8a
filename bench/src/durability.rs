//! What a store keeps when it restarts or crashes, read from the store the run measured rather
//! than assumed: a Redis's `appendonly`, `appendfsync` and `save`, PostgreSQL's `fsync` and
//! `synchronous_commit` as the shop's sessions see them. Each section of the report states it,
//! so that "Redis writes 6× PostgreSQL's" never reads as free.

use super::*;

/// The store's durability settings as configured for this run, and what a crash loses with them.
pub(crate) async fn as_configured(store: Backend, env: &HashMap<String, String>) -> String {
    let read = match store {
        Backend::Redis => redis(env).await,
        Backend::Postgres => postgres(env).await,
        Backend::Memcached => Ok("memory only, Memcached has no persistence: a crash loses \
                                  every session, and so does a restart"
            .to_owned()),
        _ => Ok(
            "a file in WAL mode, `synchronous=NORMAL`: a crash loses nothing \
                 acknowledged (a power loss, the last commits)"
                .to_owned(),
        ),
    };
    read.unwrap_or_else(|err| format!("not read ({err:#})"))
}

async fn redis(env: &HashMap<String, String>) -> anyhow::Result<String> {
    let url = match env.get("REDIS_CLUSTER_NODES") {
        Some(nodes) => nodes.split(',').next().unwrap_or_default().to_owned(),
        None => env
            .get("REDIS_URL")
            .cloned()
            .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned()),
    };
    let client = match env.get("REDIS_CA_FILE") {
        // redis-tls: a Redis of the run's own whose certificate a CA made for the run signed.
        Some(ca) => redis::Client::build_with_tls(
            url.as_str(),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(std::fs::read(ca)?),
            },
        )?,
        None => redis::Client::open(url.as_str())?,
    };
    let mut connection = client.get_multiplexed_async_connection().await?;
    let mut setting = async |name: &str| -> anyhow::Result<String> {
        let pair: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(name)
            .query_async(&mut connection)
            .await?;
        Ok(pair.get(1).cloned().unwrap_or_default())
    };
    let appendonly = setting("appendonly").await?;
    let appendfsync = setting("appendfsync").await?;
    let save = setting("save").await?;
    let loses = match (appendonly.as_str(), appendfsync.as_str(), save.is_empty()) {
        ("yes", "always", _) => "nothing acknowledged",
        ("yes", "everysec", _) => "at most the last second of writes",
        ("yes", _, _) => "what the OS had not yet written",
        (_, _, false) => "every write since the last snapshot",
        _ => "every session: nothing is kept on disk",
    };
    Ok(format!(
        "`appendonly {appendonly}`, `appendfsync {appendfsync}`, `save \"{save}\"`: a crash loses \
         {loses}"
    ))
}

async fn postgres(env: &HashMap<String, String>) -> anyhow::Result<String> {
    let url = env
        .get("SESSION_DATABASE_URL")
        .context("no session database")?;
    let pool = sqlx::PgPool::connect(url).await?;
    let show = async |name: &str| -> anyhow::Result<String> {
        let value: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {name}")))
            .fetch_one(&pool)
            .await?;
        Ok(value)
    };
    let fsync = show("fsync").await?;
    let commit = show("synchronous_commit").await?;
    let delay = show("wal_writer_delay").await?;
    pool.close().await;
    let loses = match (fsync.as_str(), commit.as_str()) {
        ("off", _) => "anything: `fsync=off` can corrupt the database".to_owned(),
        (_, "off") => format!("the writes of the last 3 × `wal_writer_delay` ({delay}) at most"),
        _ => "nothing acknowledged".to_owned(),
    };
    Ok(format!(
        "`fsync={fsync}`, `synchronous_commit={commit}`: a crash loses {loses}"
    ))
}
