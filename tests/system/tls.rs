//! deploy/nginx/tls.conf in front of a production instance, on loopback with a throwaway
//! certificate: HTTPS pages carry Strict-Transport-Security and `__Host-` cookies, and plain
//! HTTP only redirects to HTTPS.

use std::process::Stdio;

use shop_lab::cluster::{find_nginx, signal_group, write_nginx_main};
use shop_lab::free_ports;

use crate::helpers::spawn_app_with;

/// Stops nginx's process group however the test ends.
struct Nginx(u32);

impl Drop for Nginx {
    fn drop(&mut self) {
        signal_group(self.0, "KILL");
    }
}

#[tokio::test]
async fn tls_termination_at_nginx_gives_hsts_and_host_only_cookies() {
    let app = spawn_app_with(|s| {
        s.insert("APP_ENV".into(), "production".into());
    })
    .await;
    let shop_port = app.address.rsplit(':').next().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(dir.path().join("shop.key"))
        .arg("-out")
        .arg(dir.path().join("shop.crt"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(made.success(), "a self-signed certificate");
    let [https_port, http_port] = free_ports().unwrap();
    let site: String = include_str!("../../deploy/nginx/tls.conf")
        .lines()
        .filter(|line| !line.contains("server shop2") && !line.contains("server shop3"))
        .map(|line| {
            line.replace(
                "server shop1:8080",
                &format!("server 127.0.0.1:{shop_port}"),
            )
            .replace("/etc/nginx/tls/", &format!("{}/", dir.path().display()))
            .replace(
                "listen 443 ssl;",
                &format!("listen 127.0.0.1:{https_port} ssl;"),
            )
            .replace("listen 80;", &format!("listen 127.0.0.1:{http_port};"))
                + "\n"
        })
        .collect();
    assert!(site.contains(&format!("127.0.0.1:{https_port} ssl")));
    std::fs::write(dir.path().join("tls.conf"), site).unwrap();
    write_nginx_main(dir.path(), "tls.conf").unwrap();
    let nginx = tokio::process::Command::new(find_nginx().unwrap())
        .arg("-p")
        .arg(dir.path())
        .args(["-c", "nginx.conf", "-g", "daemon off;"])
        .stdout(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("nginx starts");
    let _group = Nginx(nginx.id().unwrap());

    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let https = format!("https://127.0.0.1:{https_port}");
    let mut page = None;
    for _ in 0..100 {
        if let Ok(response) = client.get(format!("{https}/")).send().await {
            page = Some(response);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let page = page.expect("nginx answers over HTTPS");
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    assert_eq!(
        page.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("__Host-shop_csrf=") && cookie.contains("; Secure"),
        "{cookie}"
    );
    // Plain HTTP: a redirect to HTTPS, nothing else, no cookie.
    let plain = client
        .get(format!("http://127.0.0.1:{http_port}/products/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), reqwest::StatusCode::MOVED_PERMANENTLY);
    let location = plain.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("https://") && location.ends_with("/products/1"),
        "{location}"
    );
    assert!(!plain.headers().contains_key("set-cookie"));
}

/// A redis-server of this test's own, answering only TLS on loopback, with a certificate of a
/// throwaway CA (for 127.0.0.1 and localhost); killed when dropped.
struct TlsRedis {
    _server: tokio::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

async fn tls_redis() -> TlsRedis {
    let dir = tempfile::tempdir().unwrap();
    shop_lab::tls::throwaway_ca_and_certificate(dir.path(), "redis")
        .expect("a CA and a certificate");
    let port = free_ports::<1>().unwrap()[0];
    let server = tokio::process::Command::new("redis-server")
        .args(shop_lab::tls::redis_server_args(dir.path(), port))
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server starts");
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return TlsRedis {
                _server: server,
                port,
                dir,
            };
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("redis-server did not listen for TLS on {port}");
}

/// `rediss://` to a Redis that speaks only TLS: with `REDIS_CA_FILE` naming the CA, the shop
/// signs a shopper in and keeps the cart there; without it (the system's roots do not know a
/// throwaway CA), or over plain `redis://`, the shop does not start, and says why.
#[tokio::test]
async fn sessions_live_in_a_redis_reached_over_tls_with_a_configured_ca() {
    let redis = tls_redis().await;
    let ca = redis.dir.path().join("ca.crt").display().to_string();
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let app = spawn_app_with(|s| {
        s.insert("SESSION_BACKEND".into(), "redis".into());
        s.insert("REDIS_URL".into(), url.clone());
        s.insert("REDIS_CA_FILE".into(), ca.clone());
    })
    .await;
    let email = crate::helpers::unique_email("tls");
    app.register(&email).await.assert_redirects_to("/");
    app.add_to_cart(3, "2").await.assert_redirects_to("/cart");
    assert_eq!(app.signed_in_as().await, Some(email));
    assert_eq!(app.cart().await, vec![(3, 2)]);
    // The session is in the TLS-only server: redis-cli over TLS finds the shop's keys there.
    let keys = std::process::Command::new("redis-cli")
        .args([
            "--tls",
            "--cacert",
            &ca,
            "-h",
            "127.0.0.1",
            "-p",
            &redis.port.to_string(),
        ])
        .arg("dbsize")
        .output()
        .expect("redis-cli runs");
    let count: u64 = String::from_utf8_lossy(&keys.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(
        count >= 2,
        "the session and its index are in the TLS server: {count}"
    );

    let (settings, _dir) = crate::helpers::test_settings().await;
    for (what, url) in [
        ("the system's roots", url.clone()),
        (
            "plain redis://",
            format!("redis://127.0.0.1:{}", redis.port),
        ),
    ] {
        let mut settings = settings.clone();
        settings.insert("SESSION_BACKEND".into(), "redis".into());
        settings.insert("REDIS_URL".into(), url);
        let started = shop::startup::Application::build(crate::helpers::config_of(&settings)).await;
        let Err(err) = started else {
            panic!("the shop started against a TLS Redis with {what}");
        };
        assert!(
            format!("{err:#}").contains("could not reach the redis session store"),
            "{what}: {err:#}"
        );
    }
}
