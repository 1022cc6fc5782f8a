//! A real browser: headless Chromium, driven through chromedriver, registers, fills a cart and
//! checks out by clicking, against three replicas behind nginx; then the replica that served the
//! page is killed and the page reloaded: still logged in, cart intact. Screenshots go to
//! `tests/output/` (not committed).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use shop_lab::shopper::{cart_lines, signed_in_as};
use tokio::process::{Child, Command};

use crate::helpers::{round_robin_cluster, test_settings, unique_email};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver and the browsers it starts, in one process group that goes when this does.
struct Driver {
    _child: Child,
    group: u32,
}

impl Drop for Driver {
    fn drop(&mut self) {
        shop_lab::signal_group(self.group, "KILL");
    }
}

async fn chromedriver() -> (Driver, u16) {
    assert!(
        Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
        "the browser tests need Debian's chromium and chromium-driver (.ci/test installs them)"
    );
    let port = shop_lab::free_port().unwrap();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    let group = child.id().expect("a running chromedriver");
    let child = Driver {
        _child: child,
        group,
    };
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

async fn click(browser: &Client, css: &str) {
    let element = browser.find(Locator::Css(css)).await.unwrap();
    element.click().await.unwrap();
}

async fn type_into(browser: &Client, id: &str, text: &str) {
    let field = browser.find(Locator::Id(id)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

/// Waits for the page that shows `css`, and returns its HTML. After a click, `css` must be
/// something only the next page has: the page being left is still there until it loads.
async fn page_with(browser: &Client, css: &str) -> String {
    browser.wait().for_element(Locator::Css(css)).await.unwrap();
    browser.source().await.unwrap()
}

async fn text_of(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/output"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn a_shopper_clicks_through_and_survives_the_death_of_the_replica_that_served_them() {
    let (settings, _data) = test_settings().await;
    let (mut cluster, _work) = round_robin_cluster(settings).await;
    let (driver, port) = chromedriver().await;
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
    let shoot = |name: &'static str, png: Vec<u8>| std::fs::write(shots.join(name), png).unwrap();
    let url = cluster.url.clone();
    let email = unique_email("browser");

    browser.goto(&format!("{url}/register")).await.unwrap();
    type_into(&browser, "email", &email).await;
    type_into(&browser, "password", "a browser password").await;
    click(&browser, "main form button[type=submit]").await;
    let catalog = page_with(&browser, ".user").await;
    assert_eq!(signed_in_as(&catalog), Some(email.clone()));
    shoot("catalog.png", browser.screenshot().await.unwrap());

    // Add the first product by clicking its button; the cart page follows.
    click(&browser, "form[action='/cart/items'] button").await;
    let cart = page_with(&browser, "td.grand-total").await;
    assert_eq!(cart_lines(&cart), vec![(1, 1)]);
    shoot("cart.png", browser.screenshot().await.unwrap());

    click(&browser, "form[action='/checkout'] button").await;
    let order = page_with(&browser, "#order-title").await;
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
    shoot("order.png", browser.screenshot().await.unwrap());

    // Fill the cart again, see which replica served the page, kill it, reload.
    browser.goto(&format!("{url}/products/4")).await.unwrap();
    type_into(&browser, "quantity", "3").await;
    click(&browser, "main form button[type=submit]").await;
    page_with(&browser, "td.grand-total").await;
    let served_by = text_of(&browser, "footer .instance").await;
    cluster.kill(&served_by).await.unwrap();
    browser.refresh().await.unwrap();
    let page = page_with(&browser, "footer .instance").await;
    let now_served_by = text_of(&browser, "footer .instance").await;
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
    // Nothing outlives the test: not the browser, not chromedriver, not nginx, not a replica.
    let mut groups = cluster.process_groups();
    groups.push(driver.group);
    drop(driver);
    drop(cluster);
    crate::leftovers::assert_all_gone(&groups).await;
}
