//! The processes a run needs: the shop, the stores it talks to, memcached, a Redis Cluster.

use super::*;

pub(crate) fn random_hex() -> String {
    let mut bytes = [0_u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The processes of a store's server, whose CPU use each run records (SQLite is in the shop).
pub(crate) fn store_processes(store: Backend) -> &'static [&'static str] {
    match store {
        Backend::Redis => &["redis-server"],
        Backend::Postgres => &["postgres"],
        Backend::Memcached => &["memcached"],
        _ => &[],
    }
}

/// Where the servers the benchmark starts write their logs: `servers.log` in the run's folder.
pub(crate) static SERVER_LOG: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Starts `program` on `port` with `env`, run by `wrapper` when it has one (taskset,
/// valgrind), killed when dropped; waits up to `patience` for it to answer `/healthz`.
pub(crate) async fn launch(
    wrapper: &[&str],
    program: &Path,
    args: &[&str],
    env: &HashMap<String, String>,
    port: u16,
    patience: Duration,
) -> anyhow::Result<Child> {
    let mut command = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut command = Command::new(first);
            command.args(rest).arg(program);
            command
        }
        None => Command::new(program),
    };
    // BENCH_SLOW_REQUEST_MILLIS: the shop logs each request slower than this with where its
    // time went (SLOW_REQUEST_MILLIS, `shop::slow`), on the benchmark's standard error.
    let slow = std::env::var("BENCH_SLOW_REQUEST_MILLIS").ok();
    if let Some(millis) = &slow {
        command
            .env("SLOW_REQUEST_MILLIS", millis)
            .env("RUST_LOG", "error,shop::slow=warn");
    } else {
        command.env("RUST_LOG", "error");
    }
    // The servers' own logs go to the run's folder, not into the report's output.
    if let Some(log) = SERVER_LOG.get() {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("could not open {}", log.display()))?;
        command.stderr(file);
    }
    let child = command
        .args(args)
        .envs(env)
        .env("PORT", port.to_string())
        // Every simulated shopper comes from loopback: one client, to the per-client limits.
        .env("NEW_SESSIONS_PER_CLIENT", "1000000")
        .env("REGISTRATIONS_PER_CLIENT", "1000000")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("could not start {}", program.display()))?;
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    while started.elapsed() < patience {
        let health = format!("http://127.0.0.1:{port}/healthz");
        if client.get(health).send().await.is_ok() {
            return Ok(child);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{} did not start within {patience:?}", program.display())
}

/// A server process, pinned to the server core or not, killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) url: String,
    pub(crate) pinned: bool,
}

impl Server {
    pub(crate) async fn start(
        program: &Path,
        args: &[&str],
        env: &HashMap<String, String>,
        port: u16,
        pinned: bool,
    ) -> anyhow::Result<Self> {
        let wrapper: &[&str] = if pinned {
            &["taskset", "-c", SERVER_CORE]
        } else {
            &[]
        };
        let child = launch(wrapper, program, args, env, port, Duration::from_secs(10)).await?;
        let url = format!("http://127.0.0.1:{port}");
        Ok(Self { child, url, pinned })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// The process's memory: (current RSS, peak RSS) in KiB.
    pub(crate) fn rss_kib(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Store calls, store writes and bytes written so far, from `/metrics` (zero for a server
    /// that has none, the ceiling).
    pub(crate) async fn counters(&self) -> anyhow::Result<(u64, u64, u64)> {
        let text = reqwest::get(format!("{}/metrics", self.url))
            .await?
            .text()
            .await?;
        let (mut calls, mut writes, mut bytes) = (0, 0, 0);
        for line in text.lines() {
            let value = || {
                line.rsplit(' ')
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0) as u64
            };
            if line.starts_with("shop_session_store_operation_duration_seconds_count") {
                calls += value();
                if !line.contains(r#"operation="load""#) {
                    writes += value();
                }
            } else if line.starts_with("shop_session_store_written_bytes_total") {
                bytes += value();
            }
        }
        Ok((calls, writes, bytes))
    }
}

/// Store servers this run starts for itself, fresh, and stops when it ends.
pub(crate) struct Started {
    /// 3 masters and 3 replicas on loopback, for the cluster subjects.
    pub(crate) redis_cluster: Option<RedisCluster>,
    /// A memcached of this run's own, unless `MEMCACHED_SERVERS` names one. Memcached evicts,
    /// and it gives each size of item the memory pages it first asked for: on a server an
    /// earlier run had filled with 100,000+ small sessions, one page was left for carts of
    /// another size, live carts were evicted mid-run and the write path answered with errors.
    pub(crate) memcached: Option<(String, Child)>,
    /// A Redis of this run's own with an append-only file fsynced every second, for
    /// `redis-aof`: the machine's Redis keeps nothing on disk.
    pub(crate) redis_aof: Option<(String, Child)>,
    /// A Redis of this run's own that speaks only TLS, for `redis-tls`: its `rediss://` URL
    /// and the CA file that signed its certificate.
    pub(crate) redis_tls: Option<(String, PathBuf, Child)>,
}

impl Started {
    pub(crate) async fn start(options: &Options, work: &Path) -> anyhow::Result<Self> {
        let redis_cluster = if options
            .stores
            .iter()
            .any(|s| matches!(s, Subject::RedisCluster { .. }))
        {
            let dir = work.join("redis-cluster");
            std::fs::create_dir_all(&dir)?;
            println!("== starting a Redis Cluster: 3 masters, 3 replicas on loopback");
            Some(RedisCluster::start(&dir).await?)
        } else {
            None
        };
        let memcached = if options.stores.contains(&Subject::Store(Backend::Memcached))
            && std::env::var_os("MEMCACHED_SERVERS").is_none()
        {
            Some(start_memcached().await?)
        } else {
            None
        };
        let redis_aof = if options
            .stores
            .contains(&Subject::OtherDurability(Backend::Redis))
        {
            Some(start_redis_aof(work).await?)
        } else {
            None
        };
        let redis_tls = if options.stores.contains(&Subject::Tls(Backend::Redis)) {
            Some(start_redis_tls(work).await?)
        } else {
            None
        };
        Ok(Self {
            redis_cluster,
            memcached,
            redis_aof,
            redis_tls,
        })
    }
}

/// A fresh Redis on a free loopback port that speaks only TLS, with a certificate for
/// 127.0.0.1 from a CA made for the run (`openssl`), no persistence (as the machine's Redis):
/// what TLS costs, beside `redis`.
async fn start_redis_tls(work: &Path) -> anyhow::Result<(String, PathBuf, Child)> {
    let dir = work.join("redis-tls");
    std::fs::create_dir_all(&dir)?;
    shop_lab::tls::throwaway_ca_and_certificate(&dir, "redis")?;
    let port = free_port()?;
    println!("== starting a Redis that speaks only TLS on {port}");
    let child = Command::new("redis-server")
        .args(shop_lab::tls::redis_server_args(&dir, port))
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("could not start redis-server")?;
    let address = format!("127.0.0.1:{port}");
    listening(&address, "redis-server (TLS)").await?;
    Ok((format!("rediss://{address}"), dir.join("ca.crt"), child))
}

/// A fresh Redis on a free loopback port that persists as compose runs it: an append-only file,
/// `appendfsync everysec`, no snapshots.
async fn start_redis_aof(work: &Path) -> anyhow::Result<(String, Child)> {
    let port = free_port()?;
    let dir = work.join("redis-aof");
    std::fs::create_dir_all(&dir)?;
    println!("== starting a Redis with an append-only file (fsync every second) on {port}");
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "yes", "--appendfsync", "everysec"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("could not start redis-server")?;
    let address = format!("127.0.0.1:{port}");
    listening(&address, "redis-server").await?;
    Ok((format!("redis://{address}"), child))
}

/// Waits up to 5 s for a server just started to accept connections on `address`.
async fn listening(address: &str, server: &str) -> anyhow::Result<()> {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(address).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{server} did not listen on {address}")
}

/// A fresh memcached on a free loopback port, with room for every session a run makes.
pub(crate) async fn start_memcached() -> anyhow::Result<(String, Child)> {
    let port = free_port()?;
    let address = format!("127.0.0.1:{port}");
    println!("== starting memcached on {address}");
    let child = Command::new("memcached")
        .args(["-u", "nobody", "-l", "127.0.0.1", "-m", "256", "-p"])
        .arg(port.to_string())
        .kill_on_drop(true)
        .spawn()
        .context("could not start memcached (apt-get install memcached)")?;
    listening(&address, "memcached").await?;
    Ok((address, child))
}
