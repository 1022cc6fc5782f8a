//! What a store holds, looked at in the store itself with its own client: the session key a
//! browser's cookie names, and how many sessions an instance's corner of the store holds.

use actix_web::cookie::{Cookie, CookieJar, Key};

use super::app::{TEST_SECRET, TestApp};

/// The session key inside the browser's encrypted session cookie.
pub fn session_key(app: &TestApp) -> String {
    let raw = app.session_cookie().expect("a session cookie");
    let cookie = Cookie::parse_encoded(raw).expect("a cookie");
    let mut jar = CookieJar::new();
    jar.add_original(cookie);
    jar.private(&Key::from(TEST_SECRET.as_bytes()))
        .get("shop_session")
        .expect("the cookie decrypts with the shared secret")
        .value()
        .to_owned()
}

/// How many keys or rows the instance's session store holds, counted in the store itself with
/// its own client: rows of the `sessions` table, or the keys under the instance's prefix.
pub async fn stored_keys(app: &TestApp) -> usize {
    let settings = &app.settings;
    #[cfg(any(feature = "redis", feature = "memcached"))]
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
