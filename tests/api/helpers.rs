//! Starts the shop on port 0 with its own database and session file, and talks to it over HTTP
//! like a browser with cookies and no automatic redirects.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use regex::Regex;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::{Client, Response, StatusCode, Url};
use shop::session::Store;
use shop::{Application, Config};
use tempfile::TempDir;

/// Shared by every instance of a test, as production instances share theirs.
pub const TEST_SECRET: &str =
    "test-secret-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

pub const PASSWORD: &str = "correct horse battery";

static INSTANCE: AtomicU32 = AtomicU32::new(0);

pub struct TestApp {
    pub address: String,
    pub instance: String,
    pub client: Client,
    pub jar: Arc<Jar>,
    pub settings: HashMap<String, String>,
    pub dir: Arc<TempDir>,
    /// The instance's own store handle, with its counters; `None` for an instance in another
    /// process.
    pub store: Option<Store>,
}

/// The session store the suite runs on: `TEST_SESSION_BACKEND`, by default `sqlite`.
pub fn backend_under_test() -> String {
    std::env::var("TEST_SESSION_BACKEND")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "sqlite".to_owned())
}

/// The PostgreSQL server the tests create databases in.
pub fn postgres_server() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// The settings of a fresh instance on the suite's store.
pub async fn test_settings() -> (HashMap<String, String>, Arc<TempDir>) {
    test_settings_for(&backend_under_test()).await
}

/// The settings of a fresh instance: its own SQLite files under a temporary folder (or a fresh
/// PostgreSQL database when `TEST_DATABASE_URL` names a server), and its own corner of the
/// session store: a fresh database for the SQL stores, a fresh key prefix for the others.
pub async fn test_settings_for(backend: &str) -> (HashMap<String, String>, Arc<TempDir>) {
    let dir = Arc::new(tempfile::tempdir().expect("a temporary folder"));
    let path = dir.path().display().to_string();
    let database_url = match std::env::var("TEST_DATABASE_URL") {
        Ok(server) if !server.is_empty() => fresh_postgres_database(&server).await,
        _ => format!("sqlite://{path}/shop.db"),
    };
    let session_database_url = match backend {
        "postgres" => fresh_postgres_database(&postgres_server()).await,
        _ => format!("sqlite://{path}/sessions.db"),
    };
    let env_or = |name: &str, default: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    let settings = [
        ("HOST", "127.0.0.1".to_owned()),
        ("PORT", "0".to_owned()),
        ("WORKERS", "1".to_owned()),
        ("DATABASE_URL", database_url),
        ("SESSION_BACKEND", backend.to_owned()),
        ("SESSION_DATABASE_URL", session_database_url),
        (
            "REDIS_URL",
            env_or("TEST_REDIS_URL", "redis://127.0.0.1:6379"),
        ),
        (
            "MEMCACHED_SERVERS",
            env_or("TEST_MEMCACHED_SERVERS", "127.0.0.1:11211"),
        ),
        ("SESSION_KEY_PREFIX", format!("test:{}:", uuid_like())),
        ("SESSION_SECRET", TEST_SECRET.to_owned()),
        (
            "STATIC_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/static").to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    (settings, dir)
}

/// A new, empty database on `server`, named so `.ci/test` can drop it on the next run.
pub async fn fresh_postgres_database(server: &str) -> String {
    use sqlx::Executor;
    let server = server.trim_end_matches('/');
    let name = format!("shop_test_{}", uuid_like());
    let admin = sqlx::PgPool::connect(&format!("{server}/postgres"))
        .await
        .expect("the test PostgreSQL server must be reachable");
    admin
        .execute(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
        .await
        .expect("could not create a test database");
    admin.close().await;
    format!("{server}/{name}")
}

/// The configuration `settings` describe.
pub fn config_of(settings: &HashMap<String, String>) -> Config {
    Config::from_lookup(|name| settings.get(name).cloned()).expect("valid test settings")
}

/// A second handle on an instance's session store, to look at what it holds.
pub async fn store_of(settings: &HashMap<String, String>) -> Store {
    Store::connect(&config_of(settings).session)
        .await
        .expect("the session store is reachable")
}

fn uuid_like() -> String {
    use rand::RngCore;
    let mut bytes = [0_u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts an instance after `customize` has changed its settings.
pub async fn spawn_app_with(customize: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    let (mut settings, dir) = test_settings().await;
    customize(&mut settings);
    start(settings, dir).await
}

/// Starts another instance on the same database and session store, as a second replica.
pub async fn spawn_replica(of: &TestApp) -> TestApp {
    start(of.settings.clone(), of.dir.clone()).await
}

pub async fn start(mut settings: HashMap<String, String>, dir: Arc<TempDir>) -> TestApp {
    let instance = format!("test-{}", INSTANCE.fetch_add(1, Ordering::SeqCst));
    settings.insert("INSTANCE_NAME".into(), instance.clone());
    let app = Application::build(config_of(&settings))
        .await
        .expect("the shop starts");
    let store = app.store().clone();
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let jar = Arc::new(Jar::default());
    TestApp {
        client: client_with(jar.clone()),
        jar,
        address,
        instance,
        settings,
        dir,
        store: Some(store),
    }
}

/// Another shopper, with their own cookies, on the same instance.
pub fn spawn_client(of: &TestApp) -> TestApp {
    let jar = Arc::new(Jar::default());
    TestApp {
        address: of.address.clone(),
        instance: of.instance.clone(),
        client: client_with(jar.clone()),
        jar,
        settings: of.settings.clone(),
        dir: of.dir.clone(),
        store: of.store.clone(),
    }
}

pub fn client_with(jar: Arc<Jar>) -> Client {
    Client::builder()
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
}

/// A page's status and body.
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
}

impl Page {
    async fn from(response: Response) -> Self {
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await.expect("a body");
        Self {
            status,
            location,
            body,
        }
    }

    /// The CSRF token of the page's forms.
    pub fn csrf_token(&self) -> Option<String> {
        shop::lab::shopper::csrf_token(&self.body)
    }

    pub fn assert_redirects_to(&self, path: &str) {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.body);
        assert_eq!(self.location.as_deref(), Some(path));
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> Page {
        Page::from(self.client.get(self.url(path)).send().await.expect("GET")).await
    }

    /// Posts a form as a browser would, without adding a CSRF token.
    pub async fn post_raw(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let response = self
            .client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .expect("POST");
        Page::from(response).await
    }

    /// The current CSRF token, read from a page as a browser would see it.
    pub async fn csrf_token(&self) -> String {
        self.get("/login")
            .await
            .csrf_token()
            .expect("a page with a form")
    }

    /// Posts a form with the session's CSRF token.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let token = self.csrf_token().await;
        let mut form = form.to_vec();
        form.push(("csrf_token", &token));
        self.post_raw(path, &form).await
    }

    pub async fn register(&self, email: &str) -> Page {
        self.post("/register", &[("email", email), ("password", PASSWORD)])
            .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Page {
        self.post("/login", &[("email", email), ("password", password)])
            .await
    }

    pub async fn logout(&self) -> Page {
        self.post("/logout", &[]).await
    }

    pub async fn add_to_cart(&self, product_id: i64, quantity: &str) -> Page {
        self.post(
            "/cart/items",
            &[
                ("product_id", &product_id.to_string()),
                ("quantity", quantity),
            ],
        )
        .await
    }

    /// The cart as `(product id, quantity)` pairs, read from the cart page.
    pub async fn cart(&self) -> Vec<(i64, u32)> {
        let page = self.get("/cart").await;
        assert_eq!(page.status, StatusCode::OK);
        cart_lines(&page.body)
    }

    /// The signed-in user's email, read from the navigation.
    pub async fn signed_in_as(&self) -> Option<String> {
        signed_in_as(&self.get("/").await.body)
    }

    /// The session cookie as the browser holds it.
    pub fn session_cookie(&self) -> Option<String> {
        let url: Url = self.address.parse().unwrap();
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .find(|c| c.starts_with("shop_session="))
            .map(str::to_owned)
    }

    /// How many items of a product are in stock, read from its page.
    pub async fn stock_of(&self, product_id: i64) -> i64 {
        let body = self.get(&format!("/products/{product_id}")).await.body;
        if body.contains("Sold out") {
            return 0;
        }
        let re = Regex::new(r"(\d+) in stock").unwrap();
        re.captures(&body).expect("a stock line")[1]
            .parse()
            .unwrap()
    }

    /// The ids of the signed-in user's orders, newest first.
    pub async fn order_ids(&self) -> Vec<i64> {
        let body = self.get("/orders").await.body;
        let re = Regex::new(r#"href="/orders/(\d+)""#).unwrap();
        re.captures_iter(&body)
            .map(|c| c[1].parse().unwrap())
            .collect()
    }
}

pub use shop::lab::shopper::{cart_lines, signed_in_as};

/// A unique email for one test.
pub fn unique_email(who: &str) -> String {
    format!("{who}-{}@example.com", uuid_like())
}

/// Three real shop processes on `settings` behind a real nginx with round-robin.conf, on
/// loopback; everything stops when the returned values are dropped.
pub async fn round_robin_cluster(
    mut settings: HashMap<String, String>,
) -> (shop::lab::Cluster, TempDir) {
    for variable in ["PORT", "HOST", "INSTANCE_NAME"] {
        settings.remove(variable);
    }
    let work = tempfile::tempdir().unwrap();
    let cluster = shop::lab::Cluster::start(shop::lab::ClusterConfig {
        program: std::path::PathBuf::from(env!("CARGO_BIN_EXE_shop")),
        args: Vec::new(),
        replicas: 3,
        balancing: shop::lab::Balancing::RoundRobin,
        env: settings,
        work_dir: work.path().to_owned(),
        nginx_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nginx").into(),
    })
    .await
    .expect("the cluster starts");
    (cluster, work)
}

/// How many keys or rows the instance's session store holds, counted in the store itself with
/// its own client: rows of the `sessions` table, or the keys under the instance's prefix.
pub async fn stored_keys(app: &TestApp) -> usize {
    let settings = &app.settings;
    let prefix = settings["SESSION_KEY_PREFIX"].as_str();
    match settings["SESSION_BACKEND"].as_str() {
        "sqlite" | "postgres" => {
            sqlx::any::install_default_drivers();
            let url = &settings["SESSION_DATABASE_URL"];
            let pool = sqlx::AnyPool::connect(url)
                .await
                .expect("the session database");
            let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sessions")
                .fetch_one(&pool)
                .await
                .expect("a row count");
            pool.close().await;
            usize::try_from(count).unwrap()
        }
        #[cfg(feature = "redis")]
        "redis" => {
            let client = redis::Client::open(settings["REDIS_URL"].as_str()).unwrap();
            let mut connection = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query_async(&mut connection)
                .await
                .unwrap();
            keys.len()
        }
        #[cfg(feature = "memcached")]
        "memcached" => memcached_keys(&settings["MEMCACHED_SERVERS"], prefix).await,
        other => panic!("no way to count the keys of the {other} store"),
    }
}

/// Keys under `prefix` on every Memcached server, listed by `lru_crawler metadump all`.
#[cfg(feature = "memcached")]
async fn memcached_keys(servers: &str, prefix: &str) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let encoded = prefix.replace(':', "%3A");
    let mut count = 0;
    for server in servers.split(',') {
        let mut stream = tokio::net::TcpStream::connect(server.trim()).await.unwrap();
        let mut buffer = [0_u8; 64 * 1024];
        let dump = loop {
            stream
                .write_all(b"lru_crawler metadump all\r\n")
                .await
                .unwrap();
            let mut dump = Vec::new();
            while !dump.ends_with(b"\r\n")
                || !(dump.ends_with(b"END\r\n") || dump.starts_with(b"BUSY"))
            {
                let n = stream.read(&mut buffer).await.unwrap();
                assert!(n > 0, "memcached closed the metadump early");
                dump.extend_from_slice(&buffer[..n]);
            }
            // Another test's dump is running: the crawler does one at a time.
            if !dump.starts_with(b"BUSY") {
                break dump;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        count += String::from_utf8_lossy(&dump)
            .lines()
            .filter(|line| line.starts_with(&format!("key={encoded}")))
            .count();
    }
    count
}

/// Another shopper on `of`'s instance whose browser names itself `agent`.
pub fn spawn_client_named(of: &TestApp, agent: &str) -> TestApp {
    spawn_client_from(of, agent, "127.0.0.1".parse().unwrap())
}

/// Another shopper on `of`'s instance, connecting from `source` (a loopback address), whose
/// browser names itself `agent`.
pub fn spawn_client_from(of: &TestApp, agent: &str, source: std::net::IpAddr) -> TestApp {
    let jar = Arc::new(Jar::default());
    TestApp {
        client: Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(agent)
            .local_address(source)
            .build()
            .expect("a client"),
        jar,
        ..spawn_client(of)
    }
}
