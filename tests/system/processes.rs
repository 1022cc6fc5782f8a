//! Two real shop processes sharing one SQLite session file: a shopper who logs in on one is
//! known to the other.

use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::process::{Child, Command};

use crate::helpers::{TestApp, test_settings, unique_email};

/// A shop process that is killed when the test ends, whatever happens.
struct Process {
    _child: Child,
    address: String,
}

async fn start_process(
    settings: &std::collections::HashMap<String, String>,
    name: &str,
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
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
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
            return Process {
                _child: child,
                address,
            };
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
