//! Each network store read directly with its own client, as an operator would: the state is
//! there, under the key the cookie carries, with a time to live; the cookie holds nothing else.

use actix_web::cookie::{Cookie, CookieJar, Key};

use crate::helpers::{TEST_SECRET, TestApp, unique_email};

/// Registers a shopper with a few cart lines; returns the session key from the cookie.
async fn shopper_with_a_cart(app: &TestApp) -> String {
    app.register(&unique_email("direct")).await;
    for id in 1..=5 {
        app.add_to_cart(id, "2").await;
    }
    let raw = app.session_cookie().expect("a session cookie");
    assert!(raw.len() < 200, "the cookie is {} bytes", raw.len());
    let mut jar = CookieJar::new();
    jar.add_original(Cookie::parse_encoded(raw).unwrap());
    let key = jar
        .private(&Key::from(TEST_SECRET.as_bytes()))
        .get("shop_session")
        .unwrap()
        .value()
        .to_owned();
    assert_eq!(key.len(), 64, "the cookie decrypts to the key alone");
    key
}

fn assert_holds_the_cart(state: &str) {
    assert!(state.contains("cart"), "{state}");
    assert!(state.contains(r#"\"product_id\":5"#), "{state}");
    assert!(
        state.contains("direct-"),
        "the user is in the state: {state}"
    );
}

async fn app_on(backend: &'static str) -> TestApp {
    let (settings, dir) = crate::helpers::test_settings_for(backend).await;
    crate::helpers::start(settings, dir).await
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_holds_the_state_with_a_ttl() {
    use redis::AsyncCommands;
    let app = app_on("redis").await;
    let key = shopper_with_a_cart(&app).await;
    let redis_key = format!("{}{key}", app.settings["SESSION_KEY_PREFIX"]);
    let client = redis::Client::open(app.settings["REDIS_URL"].as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let state: String = connection.get(&redis_key).await.unwrap();
    let ttl: i64 = connection.ttl(&redis_key).await.unwrap();
    assert_holds_the_cart(&state);
    assert!((1700..=1800).contains(&ttl), "ttl {ttl}");
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_holds_the_state_with_an_expiry() {
    let app = app_on("postgres").await;
    let key = shopper_with_a_cart(&app).await;
    let pool = sqlx::PgPool::connect(&app.settings["SESSION_DATABASE_URL"])
        .await
        .unwrap();
    let (state, ttl): (String, i64) = sqlx::query_as(
        "SELECT state, expires_at / 1000 - extract(epoch FROM now())::bigint FROM sessions WHERE key = $1",
    )
    .bind(&key)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_holds_the_cart(&state);
    assert!((1700..=1800).contains(&ttl), "ttl {ttl}");
}

#[cfg(feature = "memcached")]
#[tokio::test]
async fn memcached_holds_the_state_with_a_ttl() {
    let app = app_on("memcached").await;
    let key = shopper_with_a_cart(&app).await;
    let memcached_key = format!("{}{key}", app.settings["SESSION_KEY_PREFIX"]);
    let servers: Vec<String> = app.settings["MEMCACHED_SERVERS"]
        .split(',')
        .map(str::to_owned)
        .collect();
    let client = memcache::exp::AsyncMemcache::connect(servers.iter().map(String::as_str))
        .await
        .unwrap();
    let state: String = client
        .get(&memcached_key)
        .await
        .unwrap()
        .expect("the session is stored");
    let info = client.inspect(&memcached_key).await.unwrap().unwrap();
    let ttl = info.ttl.expect("the session expires").as_secs();
    assert_holds_the_cart(&state);
    assert!((1700..=1800).contains(&ttl), "ttl {ttl}");
}
