//! The backend comparison benchmark: for each compiled store, the release shop on core 0 and
//! wrk on core 1, 64 connections, bounded runs, on loopback. Prints a table per store and writes
//! `bench/results/latest.md` and `latest.svg`.
//!
//! Usage (from the repository root; `bash bench/run` builds and starts everything first):
//!   target/release/bench [--seconds 5] [--sessions 1000] [--rss-sessions 100000] [--stores redis,postgres]

mod report;
mod wrk;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use rand::RngCore;
use shop::lab::{Shopper, free_port};
use shop::session::Backend;
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

use report::{Path as BenchPath, Row, StoreRun};
use wrk::{Load, WrkResult};

const PASSWORD: &str = "bench-password-1";
const SERVER_CORE: &str = "0";

struct Options {
    seconds: u32,
    sessions: usize,
    rss_sessions: u64,
    stores: Vec<Backend>,
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
        .collect(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => options.seconds = value.parse()?,
            "--sessions" => options.sessions = value.parse()?,
            "--rss-sessions" => options.rss_sessions = value.parse()?,
            "--stores" => {
                options.stores = value
                    .split(',')
                    .map(|name| Backend::parse(name).map_err(anyhow::Error::msg))
                    .collect::<Result<_, _>>()?;
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if !(1..=60).contains(&options.seconds) || !(1..=5000).contains(&options.sessions) {
        bail!("--seconds must be 1 to 60 and --sessions 1 to 5000");
    }
    Ok(options)
}

fn random_hex() -> String {
    let mut bytes = [0_u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A process pinned to the server core, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    async fn start(
        program: &Path,
        args: &[&str],
        env: &HashMap<String, String>,
        port: u16,
    ) -> anyhow::Result<Self> {
        let child = Command::new("taskset")
            .args(["-c", SERVER_CORE])
            .arg(program)
            .args(args)
            .envs(env)
            .env("PORT", port.to_string())
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("could not start {}", program.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client.get(format!("{url}/healthz")).send().await.is_ok() {
                return Ok(Self { child, url });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("{} did not start", program.display())
    }

    /// The process's memory: (current RSS, peak RSS) in KiB.
    fn rss_kib(&self) -> (u64, u64) {
        let status = self
            .child
            .id()
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Store calls, store writes and bytes written so far, from `/metrics`.
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
request = function()
  local k = i % n + 1
  local product = math.floor(i / n) % 12 + 1
  i = i + 1
  local body = "{body}"
  body = body:gsub("{{product}}", tostring(product)):gsub("{{token}}", s[k][2])
  local headers = {{["Cookie"] = s[k][1], ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Forwarded-For"] = "10." .. math.floor(k / 250) .. "." .. (k % 250) .. ".1"}}
  if "{method}" == "GET" then body = nil end
  return wrk.format("{method}", "{path}", headers, body)
end
"#
    ));
    let file = dir.join(format!("{name}.lua"));
    std::fs::write(&file, lua)?;
    Ok(file)
}

/// Logged-in sessions (each a login of the same account) or guest sessions, as cookies with
/// their CSRF tokens.
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
            if logged_in && !shopper.login(PASSWORD).await? {
                bail!("login {i} was refused");
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

async fn measured(
    server: &Server,
    load: &Load<'_>,
) -> anyhow::Result<(WrkResult, (u64, u64, u64))> {
    let before = server.counters().await?;
    let result = wrk::run(load).await?;
    let after = server.counters().await?;
    Ok((
        result,
        (after.0 - before.0, after.1 - before.1, after.2 - before.2),
    ))
}

fn row(path: BenchPath, result: WrkResult, delta: (u64, u64, u64)) -> Row {
    let per = |n: u64| n as f64 / result.requests.max(1) as f64;
    Row {
        path,
        calls_per_request: per(delta.0),
        writes_per_request: per(delta.1),
        bytes_written_per_request: per(delta.2),
        wrk: result,
    }
}

async fn bench_store(
    store: Backend,
    options: &Options,
    shop: &Path,
    work: &Path,
) -> anyhow::Result<(StoreRun, String)> {
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
        env.insert(
            "SESSION_DATABASE_URL".to_owned(),
            format!("{server}/{name}"),
        );
    }
    let server = Server::start(shop, &[], &env, free_port()?).await?;
    let url = server.url.clone();
    println!(
        "== {store}: shop on core {SERVER_CORE}, wrk on core {}",
        wrk::LOAD_CORE
    );

    // One shopper with a 5-line cart for the read path.
    let email = format!("bench-{run_id}@example.com");
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
    let many = lua_script(
        scripts.path(),
        "many",
        &pairs(&logged_in),
        "GET",
        "/cart",
        "",
    )?;
    let writes = lua_script(
        scripts.path(),
        "write",
        &pairs(&logged_in),
        "POST",
        "/cart/items",
        "product_id={product}&quantity=1&csrf_token={token}",
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

    let load = |url: String, script, headers: Vec<String>| Load {
        url,
        script,
        headers,
        connections: 64,
        seconds: options.seconds,
    };
    let mut rows = Vec::new();
    // A crawler: no cookie at all. A visitor who changes nothing has no stored session, so this
    // must cost the store nothing.
    let (result, delta) = measured(&server, &load(format!("{url}/"), None, vec![])).await?;
    rows.push(row(BenchPath::Anonymous, result, delta));
    let (result, delta) = measured(
        &server,
        &load(
            format!("{url}/cart"),
            None,
            vec![format!("Cookie: {cookie}")],
        ),
    )
    .await?;
    rows.push(row(BenchPath::Read, result, delta));
    let (result, delta) =
        measured(&server, &load(format!("{url}/cart"), Some(&many), vec![])).await?;
    rows.push(row(BenchPath::ManySessions, result, delta));
    let (result, delta) = measured(
        &server,
        &load(format!("{url}/cart/items"), Some(&writes), vec![]),
    )
    .await?;
    rows.push(row(BenchPath::Write, result, delta));
    // The exact check: a timed run ends with requests cut off in flight, applied or not, so the
    // answers are checked on adds that all complete: 64 clients, each with its own sessions.
    let before = items_in_carts(&logged_in).await?;
    let acknowledged = checked_adds(&logged_in, 64, 40).await?;
    let in_carts = items_in_carts(&logged_in).await? - before;
    let (result, delta) = measured(
        &server,
        &load(format!("{url}/login"), Some(&logins), vec![]),
    )
    .await?;
    rows.push(row(BenchPath::Login, result, delta));

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
    let (rss_before, _) = server.rss_kib();
    let saves_before = server.counters().await?.1;
    let mut created = 0;
    for _ in 0..12 {
        if created >= options.rss_sessions {
            break;
        }
        wrk::run(&load(
            format!("{url}/cart/items"),
            Some(&first_adds),
            vec![],
        ))
        .await?;
        created = server.counters().await?.1 - saves_before;
    }
    let (rss_after, peak_rss) = server.rss_kib();
    println!("   {created} new sessions: RSS {rss_before} KiB -> {rss_after} KiB");

    Ok((
        StoreRun {
            store,
            rows,
            bytes_per_session: stored,
            acknowledged_adds: acknowledged,
            items_in_carts: in_carts,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let here = std::env::current_exe()?;
    let shop = here.with_file_name("shop");
    let ceiling = here.with_file_name("ceiling");
    if !shop.exists() || !ceiling.exists() {
        bail!("build first: cargo build --release --all-features --bins");
    }
    let work = tempfile::tempdir()?;
    let mut runs = Vec::new();
    let mut page = String::new();
    for store in &options.stores {
        let (run, cart_page) = bench_store(*store, &options, &shop, work.path()).await?;
        report::print_store(&run);
        page = cart_page;
        runs.push(run);
    }
    let page_file = work.path().join("cart.html");
    std::fs::write(&page_file, &page)?;
    let port = free_port()?;
    let server = Server::start(
        &ceiling,
        &[page_file.to_str().context("a path")?, &port.to_string()],
        &HashMap::new(),
        port,
    )
    .await?;
    let ceiling_result = wrk::run(&Load {
        url: format!("{}/cart", server.url),
        script: None,
        headers: vec![],
        connections: 64,
        seconds: options.seconds,
    })
    .await?;
    drop(server);
    println!(
        "== ceiling: a bare actix-web server with the same cart page: {:.0} req/s, p99 {:.2} ms",
        ceiling_result.rps, ceiling_result.p99_ms
    );
    let markdown = report::markdown(&runs, &ceiling_result, options.seconds);
    println!("\n{markdown}");
    std::fs::create_dir_all("bench/results")?;
    std::fs::write("bench/results/latest.md", &markdown)?;
    std::fs::write(
        "bench/results/latest.svg",
        report::svg(&runs, &ceiling_result),
    )?;
    println!("Written: bench/results/latest.md, bench/results/latest.svg");
    Ok(())
}
