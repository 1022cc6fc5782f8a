//! An instance of the shop in this process: started on port 0 with its own database and
//! session file (or corner of a network store), and the shopper that talks to it over HTTP like
//! a browser with cookies and no automatic redirects (the lab's `Shopper`, the one client).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use shop::session::Store;
use shop::{Application, Config};
use shop_lab::Shopper;
use tempfile::TempDir;

pub use shop_lab::shopper::{Seen as Page, cart_lines, signed_in_as};

/// Shared by every instance of a test, as production instances share theirs.
pub const TEST_SECRET: &str =
    "test-secret-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

pub const PASSWORD: &str = "correct horse battery";

static INSTANCE: AtomicU32 = AtomicU32::new(0);

/// One shopper's browser on one instance, with what the test knows of the instance.
pub struct TestApp {
    pub address: String,
    pub instance: String,
    pub shopper: Shopper,
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
        // Every test's shoppers come from 127.0.0.1, many of them registering; the tests of the
        // registration limit set their own.
        ("REGISTRATIONS_PER_CLIENT", "1000".to_owned()),
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
    TestApp {
        shopper: browser(&address, None, None),
        address,
        instance,
        settings,
        dir,
        store: Some(store),
    }
}

/// A fresh browser on `address`, from `source` and naming itself `agent` when given.
pub fn browser(address: &str, source: Option<std::net::IpAddr>, agent: Option<&str>) -> Shopper {
    Shopper::with_agent(address, "", source, agent).expect("an HTTP client")
}

/// A fresh browser's HTTP client with an empty cookie jar, for requests written by hand.
pub fn fresh_client(of: &TestApp) -> reqwest::Client {
    browser(&of.address, None, None).client().clone()
}

/// Another shopper, with their own cookies, on the same instance.
pub fn spawn_client(of: &TestApp) -> TestApp {
    of.with_browser(browser(&of.address, None, None))
}

impl TestApp {
    /// The same instance, seen through another browser.
    pub fn with_browser(&self, shopper: Shopper) -> TestApp {
        TestApp {
            address: self.address.clone(),
            instance: self.instance.clone(),
            shopper,
            settings: self.settings.clone(),
            dir: self.dir.clone(),
            store: self.store.clone(),
        }
    }

    /// The browser's HTTP client, for requests written by hand.
    pub fn client(&self) -> &reqwest::Client {
        self.shopper.client()
    }

    pub fn url(&self, path: &str) -> String {
        self.shopper.url(path)
    }

    pub async fn get(&self, path: &str) -> Page {
        self.shopper.get(path).await.expect("GET")
    }

    /// Posts a form as a browser would, without adding a CSRF token.
    pub async fn post_raw(&self, path: &str, form: &[(&str, &str)]) -> Page {
        self.shopper.post_form(path, form).await.expect("POST")
    }

    /// The current CSRF token, read from a page as a browser would see it.
    pub async fn csrf_token(&self) -> String {
        self.shopper.csrf_token().await.expect("a page with a form")
    }

    /// Posts a form with the session's CSRF token.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        self.shopper.post(path, form).await.expect("POST")
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
        assert_eq!(page.status, reqwest::StatusCode::OK);
        cart_lines(&page.body)
    }

    /// The signed-in user's email, read from the navigation.
    pub async fn signed_in_as(&self) -> Option<String> {
        signed_in_as(&self.get("/").await.body)
    }

    /// The session cookie as the browser holds it.
    pub fn session_cookie(&self) -> Option<String> {
        self.shopper.cookie("shop_session")
    }

    /// How many items of a product are in stock, read from its page.
    pub async fn stock_of(&self, product_id: i64) -> i64 {
        let body = self.get(&format!("/products/{product_id}")).await.body;
        shop_lab::shopper::stock_shown(&body).expect("a stock line")
    }

    /// The ids of the signed-in user's orders, newest first.
    pub async fn order_ids(&self) -> Vec<i64> {
        shop_lab::shopper::order_ids(&self.get("/orders").await.body)
    }
}

/// A unique email for one test.
pub fn unique_email(who: &str) -> String {
    format!("{who}-{}@example.com", uuid_like())
}

/// Another shopper on `of`'s instance whose browser names itself `agent`.
pub fn spawn_client_named(of: &TestApp, agent: &str) -> TestApp {
    spawn_client_from(of, agent, "127.0.0.1".parse().unwrap())
}

/// Another shopper on `of`'s instance, connecting from `source` (a loopback address), whose
/// browser names itself `agent`.
pub fn spawn_client_from(of: &TestApp, agent: &str, source: std::net::IpAddr) -> TestApp {
    of.with_browser(browser(&of.address, Some(source), Some(agent)))
}
