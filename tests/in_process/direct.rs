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

/// A server statistic from Memcached's `stats`, asked over a plain socket.
#[cfg(feature = "memcached")]
async fn memcached_stat(server: &str, name: &str) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server).await.unwrap();
    stream.write_all(b"stats\r\n").await.unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"END\r\n") {
        let mut chunk = [0_u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "memcached closed the stats connection");
        answer.extend_from_slice(&chunk[..n]);
    }
    let answer = String::from_utf8(answer).unwrap();
    answer
        .lines()
        .find_map(|line| line.strip_prefix(&format!("STAT {name} ")))
        .unwrap_or_else(|| panic!("no {name} in {answer}"))
        .parse()
        .unwrap()
}

/// The page views a worker serves in the same turn read their sessions from Memcached in one
/// pipelined batch: a hundred at once open one connection (the client used to dial one per read
/// beyond its 8 idle ones, and close it again), and each still gets its own session, not a
/// neighbour's, with a missing one missing.
#[cfg(feature = "memcached")]
#[tokio::test]
async fn concurrent_memcached_reads_share_a_connection_and_each_gets_its_own_state() {
    use actix_session::storage::SessionStore;
    use std::collections::HashMap;

    let server = crate::helpers::StoreProcess::start("memcached").await;
    let address = format!("127.0.0.1:{}", server.port);
    let (mut settings, _dir) = crate::helpers::test_settings_for("memcached").await;
    settings.insert("SESSION_BACKEND".into(), "memcached".into());
    settings.insert("MEMCACHED_SERVERS".into(), address.clone());
    let store = crate::helpers::store_of(&settings).await;
    let ttl = actix_web::cookie::time::Duration::seconds(60);
    let mut keys = Vec::new();
    for i in 0..100 {
        let state = HashMap::from([("n".to_owned(), i.to_string())]);
        keys.push(store.save(state, &ttl).await.unwrap());
    }
    let missing: actix_session::storage::SessionKey = "f".repeat(64).try_into().unwrap();
    keys.push(missing);
    let connections_before = memcached_stat(&address, "total_connections").await;
    // A meta get with a touch counts as a touch when it hits, as a get when it misses.
    let reads = async || {
        memcached_stat(&address, "cmd_get").await + memcached_stat(&address, "cmd_touch").await
    };
    let reads_before = reads().await;

    // Spawned together on this test's one thread, as a worker's requests are.
    let mut loading = tokio::task::JoinSet::new();
    for (i, key) in keys.iter().enumerate() {
        let store = store.clone();
        let key: actix_session::storage::SessionKey = key.as_ref().to_owned().try_into().unwrap();
        loading.spawn(async move { (i, store.load(&key).await) });
    }
    let mut loads: Vec<_> = loading.join_all().await;
    loads.sort_by_key(|(i, _)| *i);

    for (i, load) in loads {
        let state = load.expect("the read succeeds");
        if i == 100 {
            assert!(state.is_none(), "the missing session stays missing");
        } else {
            let state = state.expect("the session is there");
            assert_eq!(state["n"], i.to_string(), "read {i} got another's session");
        }
    }
    // The stats connections of this test count too: one before, one after.
    let connections = memcached_stat(&address, "total_connections").await - connections_before;
    assert!(
        connections <= 3,
        "101 reads at once opened {connections} connections"
    );
    assert_eq!(reads().await - reads_before, 101, "one get per read");
}
