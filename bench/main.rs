//! The backend comparison benchmark: for each compiled store, the release shop on core 0 and
//! wrk on core 1, 64 connections, bounded runs, on loopback; each path three times, reported as
//! the median and the spread, with the CPU use of every party; then 2 workers, unpinned. Prints
//! a table per store and writes `bench/results/latest.md` and `latest.svg`; with `--flames`,
//! a flame graph of the shop per store and path in `bench/results/`.
//!
//! Usage (from the repository root; `bash bench/run` builds and starts everything first):
//!   target/release/bench [--seconds 5] [--sessions 1000] [--rss-sessions 100000]
//!                        [--stores redis,postgres] [--runs 3] [--flames]
//!                        [--paths anonymous,read,many-sessions,write,login]
//!   target/release/bench --instructions [--stores redis,postgres]
//!     (the shop's instructions per request under callgrind instead: see `instructions.rs`)

mod cpu;
mod instructions;
mod report;
mod wrk;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use rand::RngCore;
use shop::lab::{RedisCluster, Shopper, free_port};
use shop::session::Backend;
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

use report::{Path as BenchPath, Row, Sample, StoreRun};
use wrk::Load;

const PASSWORD: &str = "bench-password-1";
const SERVER_CORE: &str = "0";

/// What is measured: a store as the shop is configured for it, or the Redis store on a Redis
/// Cluster of three masters on loopback, with writes waiting for a replica or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    Store(Backend),
    RedisCluster { wait: bool },
}

impl Subject {
    fn backend(self) -> Backend {
        match self {
            Subject::Store(backend) => backend,
            Subject::RedisCluster { .. } => Backend::Redis,
        }
    }

    fn name(self) -> String {
        match self {
            Subject::Store(backend) => backend.name().to_owned(),
            Subject::RedisCluster { wait: false } => "redis-cluster".to_owned(),
            Subject::RedisCluster { wait: true } => "redis-cluster-wait".to_owned(),
        }
    }

    fn parse(name: &str) -> anyhow::Result<Self> {
        Ok(match name {
            "redis-cluster" => Subject::RedisCluster { wait: false },
            "redis-cluster-wait" => Subject::RedisCluster { wait: true },
            other => Subject::Store(Backend::parse(other).map_err(anyhow::Error::msg)?),
        })
    }

    /// How the report heads its section.
    fn title(self) -> String {
        match self {
            Subject::Store(backend) => backend.name().to_owned(),
            Subject::RedisCluster { wait: false } => {
                "redis-cluster (3 masters, 3 replicas; asynchronous replication)".to_owned()
            }
            Subject::RedisCluster { wait: true } => {
                "redis-cluster-wait (3 masters, 3 replicas; REDIS_MIN_REPLICAS_ACK=1)".to_owned()
            }
        }
    }
}

struct Options {
    seconds: u32,
    sessions: usize,
    rss_sessions: u64,
    stores: Vec<Subject>,
    /// Valid runs per path; the report gives their median and spread.
    runs: usize,
    flames: bool,
    /// Count instructions per request under callgrind instead of measuring with wrk.
    instructions: bool,
    /// The paths to measure (all by default).
    paths: Vec<BenchPath>,
    /// Also measure the issue's peer (`bench/peer`, built by `bench/run --peer`) on Redis and
    /// PostgreSQL, pinned and loaded as the shop is.
    peer: bool,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        seconds: 5,
        sessions: 1000,
        rss_sessions: 100_000,
        stores: [
            Backend::Sqlite,
            Backend::Redis,
            Backend::Postgres,
            Backend::Memcached,
        ]
        .into_iter()
        .filter(|b| b.is_compiled())
        .map(Subject::Store)
        .chain(
            Backend::Redis
                .is_compiled()
                .then_some([
                    Subject::RedisCluster { wait: false },
                    Subject::RedisCluster { wait: true },
                ])
                .into_iter()
                .flatten(),
        )
        .collect(),
        runs: 3,
        flames: false,
        instructions: false,
        paths: BenchPath::ALL.to_vec(),
        peer: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--flames" {
            options.flames = true;
            continue;
        }
        if flag == "--instructions" {
            options.instructions = true;
            continue;
        }
        if flag == "--peer" {
            options.peer = true;
            continue;
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => options.seconds = value.parse()?,
            "--sessions" => options.sessions = value.parse()?,
            "--rss-sessions" => options.rss_sessions = value.parse()?,
            "--runs" => options.runs = value.parse()?,
            "--paths" => {
                options.paths = value
                    .split(',')
                    .map(|name| {
                        BenchPath::ALL
                            .into_iter()
                            .find(|p| p.slug() == name)
                            .with_context(|| format!("no path {name}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--stores" => {
                options.stores = value
                    .split(',')
                    .map(Subject::parse)
                    .collect::<Result<_, _>>()?;
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if !(1..=60).contains(&options.seconds)
        || !(1..=5000).contains(&options.sessions)
        || !(1..=9).contains(&options.runs)
    {
        bail!("--seconds must be 1 to 60, --sessions 1 to 5000 and --runs 1 to 9");
    }
    Ok(options)
}

fn random_hex() -> String {
    let mut bytes = [0_u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The processes of a store's server, whose CPU use each run records (SQLite is in the shop).
fn store_processes(store: Backend) -> &'static [&'static str] {
    match store {
        Backend::Redis => &["redis-server"],
        Backend::Postgres => &["postgres"],
        Backend::Memcached => &["memcached"],
        _ => &[],
    }
}

/// Starts `program` on `port` with `env`, run by `wrapper` when it has one (taskset,
/// valgrind), killed when dropped; waits up to `patience` for it to answer `/healthz`.
async fn launch(
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
    let child = command
        .args(args)
        .envs(env)
        .env("PORT", port.to_string())
        .env("RUST_LOG", "error")
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
struct Server {
    child: Child,
    url: String,
    pinned: bool,
}

impl Server {
    async fn start(
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

    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// The process's memory: (current RSS, peak RSS) in KiB.
    fn rss_kib(&self) -> (u64, u64) {
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
    async fn counters(&self) -> anyhow::Result<(u64, u64, u64)> {
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

/// A wrk script cycling through sessions; `{cookie}` and `{token}` in `request` are filled per
/// request from the list.
fn lua_script(
    dir: &Path,
    name: &str,
    sessions: &[(String, String)],
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<PathBuf> {
    let mut lua = String::from("local s = {\n");
    for (cookie, token) in sessions {
        lua.push_str(&format!("  {{\"{cookie}\", \"{token}\"}},\n"));
    }
    lua.push_str(&format!(
        r#"}}
local n = #s
local i = 0
-- With several wrk threads, each takes its own share of the sessions (thread t the j-th
-- requests with j = t mod threads), so two threads never race on one session's cart.
local threads = 0
setup = function(thread)
  thread:set("id", threads)
  threads = threads + 1
end
local step = 1
init = function(args)
  step = tonumber(args[1]) or 1
end
request = function()
  local j = i * step + (id or 0)
  local k = j % n + 1
  local round = math.floor(j / n)
  -- {{product}} walks the catalog; {{line}} walks the 5 lines of a bench cart and {{quantity}}
  -- cycles 1 to 9, so each visit to a line changes it (5 and 9 share no factor) and no cart
  -- ever reaches a limit.
  local fill = function(text)
    return (text:gsub("{{product}}", tostring(round % 12 + 1))
      :gsub("{{line}}", tostring(round % 5 + 1))
      :gsub("{{quantity}}", tostring(round % 9 + 1))
      :gsub("{{token}}", s[k][2]))
  end
  i = i + 1
  local headers = {{["Cookie"] = s[k][1], ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Forwarded-For"] = "10." .. math.floor(k / 250) .. "." .. (k % 250) .. ".1"}}
  local body = nil
  if "{method}" ~= "GET" then body = fill("{body}") end
  return wrk.format("{method}", fill("{path}"), headers, body)
end
"#
    ));
    wrk::script(dir, name, &lua)
}

/// Logged-in sessions (each a login of the same account, with a 5-line cart) or guest
/// sessions, as cookies with their CSRF tokens.
async fn sessions(
    url: &str,
    email: &str,
    count: usize,
    logged_in: bool,
) -> anyhow::Result<Vec<(Shopper, String, String)>> {
    let mut out = Vec::with_capacity(count);
    let mut tasks = JoinSet::new();
    for i in 0..count {
        let (url, email) = (url.to_owned(), email.to_owned());
        tasks.spawn(async move {
            // Each session from its own loopback address, as real shoppers come from their
            // own: one client's concurrent sign-ins beyond the login limit are refused.
            let source = std::net::Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8);
            let shopper = Shopper::new(&url, &email, Some(source.into()))?;
            if logged_in {
                if !shopper.login(PASSWORD).await? {
                    bail!("login {i} was refused");
                }
                // A signed-in shopper's session holds a 5-line cart, as the read path's does.
                for product in 1..=5 {
                    shopper.add(product, 1).await?;
                }
            }
            let token = shopper.csrf_token().await?;
            let cookie = shopper.cookie_header().context("no cookie")?;
            Ok::<_, anyhow::Error>((shopper, cookie, token))
        });
        if tasks.len() >= 16 {
            out.push(tasks.join_next().await.context("a task")???);
        }
    }
    while let Some(done) = tasks.join_next().await {
        out.push(done??);
    }
    Ok(out)
}

async fn items_in_carts(shoppers: &[(Shopper, String, String)]) -> anyhow::Result<u64> {
    let mut total = 0;
    for (shopper, _, _) in shoppers {
        total += shopper
            .look()
            .await?
            .1
            .iter()
            .map(|(_, q)| u64::from(*q))
            .sum::<u64>();
    }
    Ok(total)
}

/// `clients` concurrent clients each make `adds` adds, every one to completion, on sessions no
/// other client uses; returns how many the shop acknowledged.
async fn checked_adds(
    shoppers: &[(Shopper, String, String)],
    clients: usize,
    adds: usize,
) -> anyhow::Result<u64> {
    let mut tasks = JoinSet::new();
    for client in 0..clients {
        let mine: Vec<Shopper> = shoppers
            .iter()
            .skip(client)
            .step_by(clients)
            .map(|(s, _, _)| s.clone())
            .collect();
        if mine.is_empty() {
            continue;
        }
        tasks.spawn(async move {
            let mut acknowledged = 0_u64;
            for i in 0..adds {
                let product = i64::try_from(i % 12 + 1).unwrap_or(1);
                if mine[i % mine.len()].add(product, 1).await.is_ok() {
                    acknowledged += 1;
                }
            }
            acknowledged
        });
    }
    let mut total = 0;
    while let Some(done) = tasks.join_next().await {
        total += done?;
    }
    Ok(total)
}

/// What one store's paths are measured against: the shop, the store's processes and the work
/// folder for flame graphs.
struct Bench<'a> {
    server: &'a Server,
    store: Backend,
    /// The subject's name, for the flame graphs' files.
    name: String,
    options: &'a Options,
}

/// The machine is quiet enough to start a run when its cores, with our processes idle, are on
/// average at most this busy.
const QUIET: f64 = 0.10;
/// wrk using this much of its core could not have sent more: the load, not the shop, limited.
const WRK_SATURATED: f64 = 0.90;

impl Bench<'_> {
    /// One run: the machine's quiet before, wrk's figures, everyone's CPU, the store calls.
    async fn once(&self, load: &Load<'_>) -> anyhow::Result<Sample> {
        // What the last run left (a queue of password hashes, say) may still be running: give
        // the machine up to 15 s to become quiet, then count the run as invalid if it is not.
        let mut busy_before = 1.0;
        for _ in 0..30 {
            busy_before = cpu::machine_busy(Duration::from_millis(500)).await;
            if busy_before <= QUIET {
                break;
            }
        }
        let before = self.server.counters().await?;
        let processes = store_processes(self.store);
        let readings = cpu::Readings::start(self.server.pid(), processes);
        let wrk = wrk::run(load).await?;
        let cpu = readings.finish(self.server.pid(), processes);
        let after = self.server.counters().await?;
        let invalid = if busy_before > QUIET {
            Some(format!(
                "machine {:.0}% busy before the run",
                busy_before * 100.0
            ))
        } else if wrk.wrk_cpu / f64::from(load.threads()) >= WRK_SATURATED
            && self.store != Backend::Memory
        {
            // The ceiling may be wrk-bound (the report says so); a shop's run may not.
            Some(format!(
                "wrk saturated its {} ({:.0}% of a core)",
                if load.pinned { "core" } else { "threads" },
                wrk.wrk_cpu * 100.0
            ))
        } else {
            None
        };
        Ok(Sample {
            wrk,
            cpu,
            calls: after.0 - before.0,
            writes: after.1 - before.1,
            bytes: after.2 - before.2,
            invalid,
        })
    }

    /// Runs until `options.runs` runs are valid, or twice that many have been tried; `None`
    /// for a path not asked for.
    async fn measure(&self, path: BenchPath, load: &Load<'_>) -> anyhow::Result<Option<Row>> {
        if !self.options.paths.contains(&path) && self.store != Backend::Memory {
            return Ok(None);
        }
        let mut samples = Vec::new();
        while samples
            .iter()
            .filter(|s: &&Sample| s.invalid.is_none())
            .count()
            < self.options.runs
            && samples.len() < 2 * self.options.runs
        {
            let sample = self.once(load).await?;
            if let Some(why) = &sample.invalid {
                println!("   {} run invalid: {why}", path.label());
            }
            samples.push(sample);
        }
        let row = Row { path, samples };
        report::print_row(&row);
        // Flame graphs of the pinned runs: one worker on one core is what the ratios compare.
        if self.options.flames
            && self.store != Backend::Memory
            && self.server.pinned
            && matches!(path, BenchPath::Read | BenchPath::Write)
        {
            self.flame(path, load).await?;
        }
        Ok(Some(row))
    }

    /// One more run with `perf` sampling the shop's stacks, folded by inferno into
    /// `bench/results/flame-<store>-<path>[-2-workers].svg`.
    async fn flame(&self, path: BenchPath, load: &Load<'_>) -> anyhow::Result<()> {
        let work = tempfile::tempdir()?;
        let data = work.path().join("perf.data");
        let mut perf = Command::new("perf")
            .args(["record", "-F", "499", "--call-graph", "dwarf,16384", "-o"])
            .arg(&data)
            .args(["-p", &self.server.pid().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("could not run perf (apt-get install linux-perf)")?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        wrk::run(load).await?;
        // perf writes its data when interrupted.
        let _ = Command::new("kill")
            .args(["-INT", &perf.id().context("perf's pid")?.to_string()])
            .status()
            .await;
        perf.wait().await?;
        let suffix = if self.server.pinned { "" } else { "-2-workers" };
        let name = format!(
            "bench/results/flame-{}-{}{suffix}.svg",
            self.name,
            path.slug(),
        );
        let title = format!(
            "{}: {} ({} worker{})",
            self.name,
            path.label(),
            if self.server.pinned { 1 } else { 2 },
            if self.server.pinned { "" } else { "s" }
        );
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "perf script -i {data} 2>/dev/null | inferno-collapse-perf > {folded} && \
                 inferno-flamegraph --minwidth 2 --title '{title}' < {folded} > {name}",
                data = data.display(),
                // BENCH_FOLDED_DIR keeps the folded stacks, for `inferno-diff-folded`.
                folded = std::env::var("BENCH_FOLDED_DIR")
                    .map_or_else(|_| work.path().to_owned(), PathBuf::from)
                    .join(format!("{}-{}{}.folded", self.name, path.slug(), suffix))
                    .display()
            ))
            .status()
            .await?;
        if !status.success() {
            bail!("the flame graph failed (cargo install inferno)");
        }
        println!("   flame graph: {name}");
        Ok(())
    }
}

/// The environment of the shop for one store: its own key prefix and databases for this run.
async fn shop_env(store: Backend, work: &Path) -> anyhow::Result<HashMap<String, String>> {
    let run_id = random_hex();
    let mut env = HashMap::from([
        ("HOST".to_owned(), "127.0.0.1".to_owned()),
        ("WORKERS".to_owned(), "1".to_owned()),
        ("SESSION_BACKEND".to_owned(), store.name().to_owned()),
        (
            "SESSION_SECRET".to_owned(),
            format!("bench-secret-{}", "x".repeat(64)),
        ),
        ("SESSION_KEY_PREFIX".to_owned(), format!("bench:{run_id}:")),
        (
            "DATABASE_URL".to_owned(),
            format!("sqlite://{}/shop-{run_id}.db", work.display()),
        ),
        (
            "SESSION_DATABASE_URL".to_owned(),
            format!("sqlite://{}/sessions-{run_id}.db", work.display()),
        ),
        ("STATIC_DIR".to_owned(), "static".to_owned()),
        // wrk's requests carry X-Forwarded-For (see `lua_script`): each session is its own
        // client, as behind a real proxy.
        ("TRUSTED_PROXIES".to_owned(), "127.0.0.1".to_owned()),
        ("BENCH_RUN".to_owned(), run_id.clone()),
    ]);
    for name in ["REDIS_URL", "MEMCACHED_SERVERS"] {
        if let Ok(value) = std::env::var(name) {
            env.insert(name.to_owned(), value);
        }
    }
    if store == Backend::Postgres {
        let server = std::env::var("BENCH_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let name = format!("shop_bench_{run_id}");
        let admin = sqlx::PgPool::connect(&format!("{server}/postgres")).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .execute(&admin)
            .await?;
        // On loopback TLS protects nothing, and PostgreSQL's default `sslmode=prefer`
        // encrypts whenever the server offers it (Debian's does): a third of the read path's
        // profile. BENCH_POSTGRES_SSLMODE=prefer measures that cost.
        let sslmode = std::env::var("BENCH_POSTGRES_SSLMODE").unwrap_or_else(|_| "disable".into());
        env.insert(
            "SESSION_DATABASE_URL".to_owned(),
            format!("{server}/{name}?sslmode={sslmode}"),
        );
    }
    Ok(env)
}

/// The settings that point the shop at the servers this run started for `subject`.
fn subject_env(
    subject: Subject,
    started: &Started,
    env: &mut HashMap<String, String>,
) -> anyhow::Result<()> {
    if subject.backend() == Backend::Memcached
        && let Some((address, _)) = &started.memcached
    {
        env.insert("MEMCACHED_SERVERS".to_owned(), address.clone());
    }
    if let Subject::RedisCluster { wait } = subject {
        let cluster = started
            .redis_cluster
            .as_ref()
            .context("the Redis Cluster was not started")?;
        env.insert("REDIS_CLUSTER_NODES".to_owned(), cluster.seeds());
        env.insert(
            "REDIS_MIN_REPLICAS_ACK".to_owned(),
            if wait { "1" } else { "0" }.to_owned(),
        );
    }
    Ok(())
}

async fn bench_store(
    subject: Subject,
    options: &Options,
    shop: &Path,
    work: &Path,
    started: &Started,
) -> anyhow::Result<(StoreRun, String)> {
    let store = subject.backend();
    let name = subject.name();
    let mut env = shop_env(store, work).await?;
    subject_env(subject, started, &mut env)?;
    let server = Server::start(shop, &[], &env, free_port()?, true).await?;
    let url = server.url.clone();
    println!(
        "== {name}: shop on core {SERVER_CORE}, wrk on core {}",
        wrk::LOAD_CORE
    );

    // One shopper with a 5-line cart for the read path.
    let email = format!("bench-{}@example.com", env["BENCH_RUN"]);
    let shopper = Shopper::new(&url, &email, None)?;
    let (registered, _) = shopper.register(PASSWORD).await?;
    if !registered {
        bail!("could not register the bench shopper");
    }
    for product in 1..=5 {
        shopper.add(product, 1).await?;
    }
    let cookie = shopper.cookie_header().context("a cookie")?;
    let cart_page = shopper.get("/cart").await?.body;
    let stored = stored_bytes(&env, &cookie).await?;

    println!(
        "   logging in {} sessions and making {} guest sessions",
        options.sessions, options.sessions
    );
    let logged_in = sessions(&url, &email, options.sessions, true).await?;
    let guests = sessions(&url, &email, options.sessions, false).await?;
    let pairs = |v: &[(Shopper, String, String)]| {
        v.iter()
            .map(|(_, c, t)| (c.clone(), t.clone()))
            .collect::<Vec<_>>()
    };
    let scripts = tempfile::tempdir()?;
    let plain = wrk::script(scripts.path(), "plain", "")?;
    let many = lua_script(
        scripts.path(),
        "many",
        &pairs(&logged_in),
        "GET",
        "/cart",
        "",
    )?;
    // A write is one cart change: a line's quantity set to a new value.
    let writes = lua_script(
        scripts.path(),
        "write",
        &pairs(&logged_in),
        "POST",
        "/cart/items/{line}",
        "quantity={quantity}&csrf_token={token}",
    )?;
    let body = format!(
        "email={}&password={PASSWORD}&csrf_token={{token}}",
        email.replace('@', "%40")
    );
    let logins = lua_script(
        scripts.path(),
        "login",
        &pairs(&guests),
        "POST",
        "/login",
        &body,
    )?;

    let load = |url: String, script, headers: Vec<String>, pinned| Load {
        url,
        script,
        headers,
        connections: 64,
        seconds: options.seconds,
        pinned,
    };
    let bench = Bench {
        server: &server,
        store,
        name: name.clone(),
        options,
    };
    let read_cookie = vec![format!("Cookie: {cookie}")];
    let mut rows = Vec::new();
    // A crawler first: no cookie at all. A visitor who changes nothing has no stored session,
    // so it must cost the store nothing.
    for (path, route, script, headers) in [
        (BenchPath::Anonymous, "/", &plain, vec![]),
        (BenchPath::Read, "/cart", &plain, read_cookie.clone()),
        (BenchPath::ManySessions, "/cart", &many, vec![]),
        (BenchPath::Write, "/cart/items/1", &writes, vec![]),
    ] {
        rows.extend(
            bench
                .measure(path, &load(format!("{url}{route}"), script, headers, true))
                .await?,
        );
    }
    // The exact check: a timed run ends with requests cut off in flight, applied or not, so the
    // answers are checked on adds that all complete: 64 clients, each with its own sessions.
    let before = items_in_carts(&logged_in).await?;
    let acknowledged = checked_adds(&logged_in, 64, 40).await?;
    let in_carts = items_in_carts(&logged_in).await? - before;
    rows.extend(
        bench
            .measure(
                BenchPath::Login,
                &load(format!("{url}/login"), &logins, vec![], true),
            )
            .await?,
    );

    // Memory with few and with many live sessions: the state lives in the store. Page views
    // make no session, so each new session is a guest's first cart add: the nonce cookie and its
    // token, and no session cookie.
    let (guest_cookie, guest_token) = pairs(&guests).remove(0);
    let first_adds = lua_script(
        scripts.path(),
        "first-adds",
        &[(guest_cookie, guest_token)],
        "POST",
        "/cart/items",
        "product_id={product}&quantity=1&csrf_token={token}",
    )?;
    // A first run at full concurrency brings the allocator to its working set (per-thread
    // caches it keeps rather than returns); growth after that is what sessions would cost.
    let first_adds_load = load(format!("{url}/cart/items"), &first_adds, vec![], true);
    let saves_at_start = server.counters().await?.1;
    wrk::run(&first_adds_load).await?;
    let saves_before = server.counters().await?.1;
    let warmup_sessions = saves_before - saves_at_start;
    let (rss_before, _) = server.rss_kib();
    let mut created = 0;
    for _ in 0..12 {
        if created >= options.rss_sessions {
            break;
        }
        wrk::run(&first_adds_load).await?;
        created = server.counters().await?.1 - saves_before;
        println!("   {created} more sessions: RSS {} KiB", server.rss_kib().0);
    }
    let (rss_after, peak_rss) = server.rss_kib();
    println!(
        "   after {warmup_sessions} sessions RSS {rss_before} KiB; after {created} more {rss_after} KiB"
    );
    drop(server);

    // The same shop with 2 workers on both cores, wrk unpinned: how it scales. The sessions
    // are in the store, so the new process serves the same cookies.
    let mut two = env.clone();
    two.insert("WORKERS".to_owned(), "2".to_owned());
    let server = Server::start(shop, &[], &two, free_port()?, false).await?;
    println!("   2 workers, unpinned, wrk unpinned (2 threads)");
    let url = server.url.clone();
    let bench = Bench {
        server: &server,
        store,
        name: name.clone(),
        options,
    };
    let scaled = [
        bench
            .measure(
                BenchPath::Read,
                &load(
                    format!("{url}/cart"),
                    &plain,
                    vec![format!("Cookie: {cookie}")],
                    false,
                ),
            )
            .await?,
        bench
            .measure(
                BenchPath::Write,
                &load(format!("{url}/cart/items/1"), &writes, vec![], false),
            )
            .await?,
    ]
    .into_iter()
    .flatten()
    .collect();

    drop(server);
    let peer = match subject {
        Subject::Store(Backend::Redis | Backend::Postgres) if options.peer => {
            let page = work.join(format!("cart-{name}.html"));
            std::fs::write(&page, &cart_page)?;
            peer(store, &peer_url(store, &env), &page, options).await?
        }
        _ => Vec::new(),
    };

    Ok((
        StoreRun {
            store,
            name: subject.title(),
            rows,
            scaled,
            peer,
            bytes_per_session: stored,
            acknowledged_adds: acknowledged,
            items_in_carts: in_carts,
            warmup_sessions,
            rss_small_kib: rss_before,
            rss_large_kib: rss_after,
            sessions_created: created,
            peak_rss_kib: peak_rss,
        },
        cart_page,
    ))
}

/// The bytes the store holds for the session in `cookie`.
async fn stored_bytes(env: &HashMap<String, String>, cookie: &str) -> anyhow::Result<usize> {
    use actix_web::cookie::{Cookie, CookieJar, Key};
    let config = shop::Config::from_lookup(|name| env.get(name).cloned())?;
    let raw = cookie
        .split("; ")
        .find(|c| c.starts_with("shop_session="))
        .context("a session cookie")?;
    let mut jar = CookieJar::new();
    jar.add_original(Cookie::parse_encoded(raw.to_owned())?);
    let key = jar
        .private(&Key::from(config.session.secret.bytes()))
        .get("shop_session")
        .context("the cookie decrypts")?
        .value()
        .to_owned();
    let store = shop::session::Store::connect(&config.session).await?;
    Ok(store.raw(&key).await?.map_or(0, |(value, _)| value.len()))
}

/// The ceiling, measured as the shop is: pinned with 1 worker, and with 2 workers unpinned.
async fn ceiling(
    program: &Path,
    page: &Path,
    options: &Options,
    workers: u32,
) -> anyhow::Result<Row> {
    let port = free_port()?;
    let pinned = workers == 1;
    let server = Server::start(
        program,
        &[
            page.to_str().context("a path")?,
            &port.to_string(),
            &workers.to_string(),
        ],
        &HashMap::new(),
        port,
        pinned,
    )
    .await?;
    let scripts = tempfile::tempdir()?;
    let plain = wrk::script(scripts.path(), "plain", "")?;
    let bench = Bench {
        server: &server,
        store: Backend::Memory,
        name: "ceiling".to_owned(),
        options,
    };
    println!("== ceiling: a bare actix-web server with the same cart page, {workers} worker(s)");
    bench
        .measure(
            BenchPath::Read,
            &Load {
                url: format!("{}/cart", server.url),
                script: &plain,
                headers: vec![],
                connections: 64,
                seconds: options.seconds,
                pinned,
            },
        )
        .await?
        .context("the ceiling's run")
}

/// The store the peer uses: the shop's Redis, or the shop's session database of this run.
fn peer_url(store: Backend, env: &HashMap<String, String>) -> String {
    match store {
        Backend::Redis => env
            .get("REDIS_URL")
            .cloned()
            .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned()),
        _ => env["SESSION_DATABASE_URL"].clone(),
    }
}

/// Where `bench/run --peer` builds the peer.
const PEER_PROGRAM: &str = "target/peer/release/peer";

/// The issue's peer (`bench/peer`: axum with tower-sessions) on the same store as the shop,
/// pinned and loaded as the shop is: the read with one session's cookie, the write spread over
/// 64 sessions with 5-line carts.
async fn peer(
    store: Backend,
    store_url: &str,
    page: &Path,
    options: &Options,
) -> anyhow::Result<Vec<Row>> {
    let program = Path::new(PEER_PROGRAM);
    if !program.exists() {
        bail!("--peer: build the peer first (bash bench/run --peer builds it)");
    }
    let port = free_port()?;
    let args = [
        store.name(),
        store_url,
        page.to_str().context("a path")?,
        &port.to_string(),
    ];
    let server = Server::start(program, &args, &HashMap::new(), port, true).await?;
    println!(
        "== {}: the peer (axum with tower-sessions) on core {SERVER_CORE}",
        store.name()
    );
    let client = reqwest::Client::new();
    let mut sessions = Vec::new();
    for _ in 0..64 {
        let response = client
            .post(format!("{}/setup", server.url))
            .send()
            .await?
            .error_for_status()?;
        let cookie = response
            .headers()
            .get(reqwest::header::SET_COOKIE)
            .context("the peer set no cookie")?
            .to_str()?
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned();
        sessions.push((cookie, String::new()));
    }
    let scripts = tempfile::tempdir()?;
    let plain = wrk::script(scripts.path(), "plain", "")?;
    let writes = lua_script(
        scripts.path(),
        "write",
        &sessions,
        "POST",
        "/cart/items/{line}",
        "quantity={quantity}",
    )?;
    let bench = Bench {
        server: &server,
        store,
        name: format!("peer-{}", store.name()),
        options,
    };
    let mut rows = Vec::new();
    for (path, route, script, headers) in [
        (
            BenchPath::Read,
            "/cart",
            &plain,
            vec![format!("Cookie: {}", sessions[0].0)],
        ),
        (BenchPath::Write, "/cart/items/1", &writes, vec![]),
    ] {
        let load = Load {
            url: format!("{}{route}", server.url),
            script,
            headers,
            connections: 64,
            seconds: options.seconds,
            pinned: true,
        };
        rows.extend(bench.measure(path, &load).await?);
    }
    Ok(rows)
}

/// Store servers this run starts for itself, fresh, and stops when it ends.
struct Started {
    /// 3 masters and 3 replicas on loopback, for the cluster subjects.
    redis_cluster: Option<RedisCluster>,
    /// A memcached of this run's own, unless `MEMCACHED_SERVERS` names one. Memcached evicts,
    /// and it gives each size of item the memory pages it first asked for: on a server an
    /// earlier run had filled with 100,000+ small sessions, one page was left for carts of
    /// another size, live carts were evicted mid-run and the write path answered with errors.
    memcached: Option<(String, Child)>,
}

impl Started {
    async fn start(options: &Options, work: &Path) -> anyhow::Result<Self> {
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
        Ok(Self {
            redis_cluster,
            memcached,
        })
    }
}

/// A fresh memcached on a free loopback port, with room for every session a run makes.
async fn start_memcached() -> anyhow::Result<(String, Child)> {
    let port = free_port()?;
    let address = format!("127.0.0.1:{port}");
    println!("== starting memcached on {address}");
    let child = Command::new("memcached")
        .args(["-u", "nobody", "-l", "127.0.0.1", "-m", "256", "-p"])
        .arg(port.to_string())
        .kill_on_drop(true)
        .spawn()
        .context("could not start memcached (apt-get install memcached)")?;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(&address).await.is_ok() {
            return Ok((address, child));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("memcached did not listen on {address}")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let here = std::env::current_exe()?;
    let shop = here.with_file_name("shop");
    let ceiling_program = here.with_file_name("ceiling");
    if !shop.exists() || !ceiling_program.exists() {
        bail!("build first: cargo build --release --all-features --bins");
    }
    std::fs::create_dir_all("bench/results")?;
    let work = tempfile::tempdir()?;
    let servers = Started::start(&options, work.path()).await?;
    if options.instructions {
        let mut counted = Vec::new();
        let mut page = String::new();
        for store in &options.stores {
            let (row, cart_page) =
                instructions::count(*store, &shop, work.path(), &servers).await?;
            counted.push(row);
            page = cart_page;
        }
        if options.peer {
            for store in [Backend::Redis, Backend::Postgres] {
                if !options.stores.contains(&Subject::Store(store)) {
                    continue;
                }
                let env = shop_env(store, work.path()).await?;
                let program = Path::new(PEER_PROGRAM);
                counted.push(
                    instructions::count_peer(program, store, &peer_url(store, &env), &page).await?,
                );
            }
        }
        counted.push(instructions::count_ceiling(&ceiling_program, &page).await?);
        let markdown = instructions::markdown(&counted);
        println!("\n{markdown}");
        std::fs::write("bench/results/instructions.md", &markdown)?;
        println!("Written: bench/results/instructions.md");
        return Ok(());
    }
    let mut runs = Vec::new();
    let mut page = String::new();
    for store in &options.stores {
        let started = std::time::Instant::now();
        let (run, cart_page) = bench_store(*store, &options, &shop, work.path(), &servers).await?;
        report::print_store(&run);
        println!(
            "   ({} measured in {:.0} s)",
            store.name(),
            started.elapsed().as_secs_f64()
        );
        page = cart_page;
        runs.push(run);
    }
    let page_file = work.path().join("cart.html");
    std::fs::write(&page_file, &page)?;
    let ceilings = report::Ceilings {
        one: ceiling(&ceiling_program, &page_file, &options, 1).await?,
        two: ceiling(&ceiling_program, &page_file, &options, 2).await?,
    };
    let markdown = report::markdown(&runs, &ceilings, &options_line(&options));
    println!("\n{markdown}");
    std::fs::write("bench/results/latest.md", &markdown)?;
    std::fs::write("bench/results/latest.svg", report::svg(&runs, &ceilings))?;
    println!("Written: bench/results/latest.md, bench/results/latest.svg");
    Ok(())
}

fn options_line(options: &Options) -> String {
    format!(
        "{} s a run, {} valid runs per path",
        options.seconds, options.runs
    )
}
