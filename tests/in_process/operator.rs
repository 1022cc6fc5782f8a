//! What is an operator's stays an operator's: in production `/metrics` is served only on its own
//! listener and `/session` not at all (unless asked for), metric series stay bounded whatever
//! clients send, and the public development key never leaves loopback.

use std::process::Stdio;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use shop::Application;

use crate::helpers::{config_of, test_settings};

fn series(metrics: &str) -> usize {
    metrics
        .lines()
        .filter(|l| l.starts_with("shop_http_requests_total{"))
        .count()
}

#[tokio::test]
async fn in_production_the_metrics_and_the_inspector_are_off_the_public_port() {
    let (mut settings, _dir) = test_settings().await;
    settings.insert("APP_ENV".into(), "production".into());
    settings.insert("METRICS_PORT".into(), "0".into());
    let app = Application::build(config_of(&settings)).await.unwrap();
    let public = format!("http://127.0.0.1:{}", app.port());
    let metrics = format!(
        "http://127.0.0.1:{}/metrics",
        app.metrics_port().expect("a metrics listener")
    );
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let get = |url: String| {
        let client = client.clone();
        async move { client.get(url).send().await.unwrap() }
    };
    assert_eq!(
        get(format!("{public}/metrics")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(format!("{public}/session")).await.status(),
        StatusCode::NOT_FOUND
    );
    let home = get(format!("{public}/")).await.text().await.unwrap();
    assert!(
        !home.contains("href=\"/session\""),
        "no link to the inspector"
    );
    let scraped = get(metrics.clone()).await;
    assert_eq!(scraped.status(), StatusCode::OK);
    let before = series(&scraped.text().await.unwrap());
    for i in 0..50 {
        let junk = Method::from_bytes(format!("JUNK{i}").as_bytes()).unwrap();
        let status = client
            .request(junk, format!("{public}/"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }
    let after = get(metrics).await.text().await.unwrap();
    assert!(
        series(&after) <= before + 1,
        "50 junk methods made {} new series",
        series(&after) - before
    );
    assert!(after.contains(r#"method="OTHER""#), "{after}");
}

#[tokio::test]
async fn the_inspector_can_be_turned_on_in_production() {
    let (mut settings, _dir) = test_settings().await;
    settings.insert("APP_ENV".into(), "production".into());
    settings.insert("SESSION_INSPECTOR".into(), "1".into());
    let app = crate::helpers::start(settings, _dir).await;
    assert_eq!(app.get("/session").await.status, StatusCode::OK);
}

#[tokio::test]
async fn listening_beyond_loopback_with_the_development_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().display().to_string();
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_shop"))
        .env_clear()
        .current_dir(dir.path())
        .env("HOST", "0.0.0.0")
        .env("PORT", "0")
        .env("SESSION_BACKEND", "sqlite")
        .env("DATABASE_URL", format!("sqlite://{path}/shop.db"))
        .env(
            "SESSION_DATABASE_URL",
            format!("sqlite://{path}/sessions.db"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the shop stops by itself instead of serving")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("SESSION_SECRET") && stderr.contains("0.0.0.0"),
        "{stderr}"
    );
}

/// A burst of new connections waits to be accepted rather than being dropped: the listener has
/// room for 2,048 (or the kernel's `somaxconn`, if lower), not std's 128. With 128, the
/// benchmark's open-loop runs overflowed it whenever the shop paused, and every shopper past it
/// waited a second for the SYN to be sent again.
#[tokio::test]
async fn the_listener_has_room_for_a_burst_of_connections() {
    let app = crate::helpers::spawn_app().await;
    let port = app.address.rsplit(':').next().unwrap();
    let listening = std::process::Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .expect("ss (iproute2)");
    let listening = String::from_utf8_lossy(&listening.stdout);
    // State, Recv-Q (waiting now), Send-Q (room), local address, peer.
    let room: u32 = listening
        .split_whitespace()
        .nth(2)
        .and_then(|room| room.parse().ok())
        .unwrap_or_else(|| panic!("no listener on {port} in `ss`: {listening:?}"));
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(room, 2048.min(somaxconn), "{listening}");
}
