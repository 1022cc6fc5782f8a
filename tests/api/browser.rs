//! A real browser: headless Chromium, driven through chromedriver, registers, fills a cart and
//! checks out by clicking, against three replicas behind nginx; then the replica that served the
//! page is killed and the page reloaded: still logged in, cart intact. Screenshots go to
//! `tests/output/` (not committed).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use shop::lab::cluster::{Balancing, Cluster, ClusterConfig};
use shop::lab::shopper::{cart_lines, signed_in_as};
use tokio::process::{Child, Command};

use crate::helpers::{test_settings, unique_email};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

async fn chromedriver() -> (Child, u16) {
    assert!(
        Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
        "the browser tests need Debian's chromium and chromium-driver (.ci/test installs them)"
    );
    let port = shop::lab::free_port().unwrap();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    for _ in 0..100 {
        if reqwest::get(format!("http://127.0.0.1:{port}/status"))
            .await
            .is_ok()
        {
            return (child, port);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer within 10 seconds");
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/output"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn a_shopper_clicks_through_and_survives_the_death_of_the_replica_that_served_them() {
    let (mut env, _data) = test_settings().await;
    for variable in ["PORT", "HOST", "INSTANCE_NAME"] {
        env.remove(variable);
    }
    let work = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(ClusterConfig {
        program: PathBuf::from(env!("CARGO_BIN_EXE_shop")),
        args: Vec::new(),
        replicas: 3,
        balancing: Balancing::RoundRobin,
        env,
        work_dir: work.path().to_owned(),
        nginx_dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nginx")),
    })
    .await
    .unwrap();
    let (_driver, port) = chromedriver().await;
    let profile = tempfile::tempdir().unwrap();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.path().display()),
            ]
        }),
    );
    let browser = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a browser session");
    let shots = screenshot_dir();
    let url = cluster.url.clone();
    let email = unique_email("browser");

    browser.goto(&format!("{url}/register")).await.unwrap();
    browser
        .find(Locator::Id("email"))
        .await
        .unwrap()
        .send_keys(&email)
        .await
        .unwrap();
    browser
        .find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys("a browser password")
        .await
        .unwrap();
    browser
        .find(Locator::Css("main form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css(".user"))
        .await
        .unwrap();
    assert_eq!(
        signed_in_as(&browser.source().await.unwrap()),
        Some(email.clone())
    );
    std::fs::write(
        shots.join("catalog.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();

    // Add the first product by clicking its button; the cart page follows.
    browser
        .find(Locator::Css("form[action='/cart/items'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("td.grand-total"))
        .await
        .unwrap();
    assert_eq!(cart_lines(&browser.source().await.unwrap()), vec![(1, 1)]);
    std::fs::write(shots.join("cart.png"), browser.screenshot().await.unwrap()).unwrap();

    browser
        .find(Locator::Css("form[action='/checkout'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("h1"))
        .await
        .unwrap();
    let order = browser.source().await.unwrap();
    assert!(
        order.contains("Thank you! Order #"),
        "the order page thanks the shopper"
    );
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .path()
            .starts_with("/orders/")
    );
    std::fs::write(shots.join("order.png"), browser.screenshot().await.unwrap()).unwrap();

    // Fill the cart again, see which replica served the page, kill it, reload.
    browser.goto(&format!("{url}/products/4")).await.unwrap();
    browser
        .find(Locator::Id("quantity"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    browser
        .find(Locator::Id("quantity"))
        .await
        .unwrap()
        .send_keys("3")
        .await
        .unwrap();
    browser
        .find(Locator::Css("main form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .for_element(Locator::Css("td.grand-total"))
        .await
        .unwrap();
    let served_by = browser
        .find(Locator::Css("footer .instance"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    cluster.kill(&served_by).await.unwrap();
    browser.refresh().await.unwrap();
    browser
        .wait()
        .for_element(Locator::Css("footer .instance"))
        .await
        .unwrap();
    let page = browser.source().await.unwrap();
    let now_served_by = browser
        .find(Locator::Css("footer .instance"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_ne!(
        now_served_by, served_by,
        "another replica served the reload"
    );
    assert_eq!(
        signed_in_as(&page),
        Some(email),
        "still logged in after {served_by} died"
    );
    assert_eq!(cart_lines(&page), vec![(4, 3)], "the cart is intact");
    println!("{served_by} served the cart and was killed; {now_served_by} served the reload");
    browser.close().await.unwrap();
}
