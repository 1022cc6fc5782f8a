//! Real shop processes: two sharing one SQLite session file (a shopper who logs in on one is
//! known to the other), and one stopped with SIGTERM, which drains before it stops.

use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::process::{Child, Command};

use crate::helpers::{TestApp, test_settings, unique_email};

/// A shop process that is killed when the test ends, whatever happens.
struct Process {
    child: Child,
    address: String,
}

async fn start_process(
    settings: &std::collections::HashMap<String, String>,
    name: &str,
) -> Process {
    start_logging_to(settings, name, "warn", Stdio::inherit()).await
}

/// A shop process whose log, at `level`, goes to `log`.
async fn start_logging_to(
    settings: &std::collections::HashMap<String, String>,
    name: &str,
    level: &str,
    log: Stdio,
) -> Process {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_shop"))
        .envs(settings)
        .env("PORT", port.to_string())
        .env("INSTANCE_NAME", name)
        .env("RUST_LOG", level)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("the shop binary starts");
    let address = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..100 {
        let healthy = client
            .get(format!("{address}/healthz"))
            .send()
            .await
            .is_ok_and(|response| response.status() == StatusCode::OK);
        if healthy {
            return Process { child, address };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} did not become healthy within 10 seconds");
}

#[tokio::test]
async fn a_login_and_cart_made_on_one_process_are_seen_by_another() {
    let (settings, dir) = test_settings().await;
    let first = start_process(&settings, "alpha").await;
    let second = start_process(&settings, "beta").await;
    // One browser, its cookies shared, talking to either process.
    let browser = crate::helpers::browser(&first.address, None, None);
    let on = |process: &Process| TestApp {
        address: process.address.clone(),
        instance: String::new(),
        shopper: browser.at(&process.address),
        settings: settings.clone(),
        dir: dir.clone(),
        store: None,
    };
    let (alpha, beta) = (on(&first), on(&second));

    let email = unique_email("roamer");
    alpha.register(&email).await.assert_redirects_to("/");
    alpha.add_to_cart(3, "2").await;
    let page = beta.get("/cart").await;
    assert!(
        page.body
            .contains(r#"<strong class="instance">beta</strong>"#)
    );
    assert_eq!(crate::helpers::signed_in_as(&page.body), Some(email));
    assert_eq!(crate::helpers::cart_lines(&page.body), vec![(3, 2)]);

    beta.add_to_cart(4, "1").await;
    assert_eq!(alpha.cart().await, vec![(3, 2), (4, 1)]);
    beta.post("/checkout", &[]).await;
    assert_eq!(alpha.order_ids().await.len(), 1);
    assert!(alpha.cart().await.is_empty());
}

/// What a deploy does to a replica: SIGTERM. Before it stops accepting, it answers `/readyz` 503
/// (so Kubernetes and any health-checking balancer stop sending it shoppers) while it still
/// serves pages, each response closing its connection (so nginx opens its next one elsewhere);
/// then it refuses connections and exits cleanly.
#[tokio::test]
async fn a_sigtermed_replica_reports_503_on_readyz_before_it_stops_accepting() {
    let (mut settings, _dir) = test_settings().await;
    let drain = Duration::from_secs(2);
    settings.insert("DRAIN_SECONDS".into(), drain.as_secs().to_string());
    let mut process = start_process(&settings, "draining").await;
    // A fresh connection for every request: what is measured is the listener, not a kept one.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let get = |path: &str| client.get(format!("{}{path}", process.address)).send();
    assert_eq!(get("/readyz").await.unwrap().status(), StatusCode::OK);

    let pid = process.child.id().expect("the shop runs");
    let sigterm = std::time::Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let mut unready_at = None;
    while sigterm.elapsed() < drain / 2 {
        if get("/readyz").await.unwrap().status() == StatusCode::SERVICE_UNAVAILABLE {
            unready_at = Some(sigterm.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let unready_at = unready_at.expect("/readyz answers 503 within half the drain");
    let page = get("/")
        .await
        .expect("pages are still served while draining");
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        page.headers()
            .get("connection")
            .and_then(|v| v.to_str().ok()),
        Some("close"),
        "a draining replica closes each connection after its response"
    );

    let mut served_until = unready_at;
    let refused_at = loop {
        match get("/healthz").await {
            Ok(_) => served_until = sigterm.elapsed(),
            Err(err) if err.is_connect() => break sigterm.elapsed(),
            // A connection the kernel completed but the shop had not yet accepted when its
            // listener closed is reset, not refused: the probe raced the close (1 run in a CI
            // run's many, under load; docs/deploy.md names this gap and the balancer's
            // deregistration that closes it). Only at the drain's end; the next is refused.
            Err(err) if !err.is_timeout() && sigterm.elapsed() >= drain => {
                println!("a probe raced the listener's close: {err}");
            }
            Err(err) => panic!(
                "a request failed other than by a refused connection, after {:?}: {err}",
                sigterm.elapsed()
            ),
        }
        assert!(
            sigterm.elapsed() < drain * 5,
            "still accepting long after the drain"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        served_until >= drain - Duration::from_millis(200),
        "it kept serving through the drain ({drain:?}), last served at {served_until:?}"
    );
    let status = tokio::time::timeout(Duration::from_secs(10), process.child.wait())
        .await
        .expect("it exits once the drain is over")
        .unwrap();
    assert!(
        status.success(),
        "a drained replica exits cleanly: {status}"
    );
    println!(
        "SIGTERM: /readyz 503 after {unready_at:?}, pages served until {served_until:?}, \
         connections refused from {refused_at:?}, exited after {:?} (DRAIN_SECONDS={})",
        sigterm.elapsed(),
        drain.as_secs()
    );
}

/// The access log names the client the limits count (past the trusted proxy), the request's id
/// (the proxy's, returned to the client), and escapes what a client sends, so a request cannot
/// forge a field or a line of the log; a refused sign-in names the client and the limit.
#[tokio::test]
async fn the_log_names_the_client_and_the_request_and_escapes_what_it_is_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut settings, _dir) = test_settings().await;
    settings.insert("TRUSTED_PROXIES".into(), "127.0.0.1".into());
    let log = tempfile::NamedTempFile::new().unwrap();
    let shop = start_logging_to(&settings, "logged", "info", log.reopen().unwrap().into()).await;
    let address = shop.address.clone();
    let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // A request line with a quote and a backslash, as a client may send it, through the proxy:
    // unescaped, the quote would close the logged request and start a field of the client's.
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(
            b"GET /x\"\\y HTTP/1.1\r\nHost: shop\r\nX-Forwarded-For: 198.51.100.7\r\n\
              X-Request-Id: class-demo-1\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-request-id: class-demo-1"),
        "{answer}"
    );
    // Five wrong passwords from one shopper behind the proxy; the sixth is refused.
    let page = client.get(format!("{address}/login")).send().await.unwrap();
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let token = shop_lab::shopper::csrf_token(&page.text().await.unwrap()).unwrap();
    let mut refused_id = None;
    for _ in 0..6 {
        let response = client
            .post(format!("{address}/login"))
            .header("cookie", &cookie)
            .header("x-forwarded-for", "198.51.100.8")
            .form(&[
                ("email", "nobody@example.com"),
                ("password", "wrong"),
                ("csrf_token", &token),
            ])
            .send()
            .await
            .unwrap();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(id.len(), 24, "the shop's own id: {id}");
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            refused_id = Some(id);
        }
    }
    let refused_id = refused_id.expect("the sixth attempt is refused");
    let mut logged = String::new();
    for _ in 0..50 {
        logged = std::fs::read_to_string(log.path()).unwrap();
        if logged.contains(&refused_id) && logged.matches(&refused_id).count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        logged.contains(r#"198.51.100.7 class-demo-1 "GET /x\"\\y HTTP/1.1" 404 "#),
        "the access line, escaped: {logged}"
    );
    assert!(
        !logged
            .lines()
            .any(|line| line.contains("shop::access] 127.0.0.1 ")
                && (line.contains("\"POST /login") || line.contains("\"GET /x"))),
        "no access line of a proxied request names the proxy: {logged}"
    );
    assert!(
        logged.contains(&format!(
            "Login refused (client 198.51.100.8, request {refused_id}): too many failed sign-ins \
             to one account from one /32"
        )),
        "the refusal names the client, the request and the limit: {logged}"
    );
    assert!(
        logged.contains(&format!(
            "198.51.100.8 {refused_id} \"POST /login HTTP/1.1\" 429 "
        )),
        "{logged}"
    );
}
