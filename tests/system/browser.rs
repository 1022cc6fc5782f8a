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

/// A headless Chromium through chromedriver at `port`, with its profile in `profile`.
async fn headless_browser(port: u16, profile: &tempfile::TempDir) -> Client {
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
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a browser session")
}

#[tokio::test]
async fn a_shopper_clicks_through_and_survives_the_death_of_the_replica_that_served_them() {
    let (settings, _data) = test_settings().await;
    let (mut cluster, _work) = round_robin_cluster(settings).await;
    let (driver, port) = chromedriver().await;
    let profile = tempfile::tempdir().unwrap();
    let browser = headless_browser(port, &profile).await;
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

/// Where `.ci/services.sh` (`ensure_axe`) installs axe-core, pinned in tests/browser/package.json.
const AXE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/browser/node_modules/axe-core/axe.min.js"
);

/// The widths a page must fit without scrolling sideways: small, common and large phones, and a
/// laptop.
const WIDTHS: [u32; 4] = [320, 360, 390, 1280];

/// axe-core's rules for WCAG 2.0, 2.1 and 2.2 at A, AA and AAA, and its best practices.
const AXE_TAGS: &str = r#"["wcag2a","wcag2aa","wcag2aaa","wcag21a","wcag21aa","wcag21aaa","wcag22aa","best-practice"]"#;

/// What is wrong with the page the browser shows, at every width: anything wider than the
/// screen, and every axe-core violation (checked at a phone's width and a laptop's).
async fn problems_of_this_page(browser: &Client, axe: &str, label: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for width in WIDTHS {
        browser.set_window_size(width, 844).await.unwrap();
        let measured = browser
            .execute(
                "const root = document.documentElement; \
                 const wide = [...document.querySelectorAll('body *')] \
                   .filter(e => e.getBoundingClientRect().right > root.clientWidth + 0.5) \
                   .slice(0, 3).map(e => e.tagName.toLowerCase() + '.' + e.className); \
                 return [window.innerWidth, root.clientWidth, root.scrollWidth, wide];",
                vec![],
            )
            .await
            .unwrap();
        let (inner, client, scroll) = (
            measured[0].as_u64().unwrap(),
            measured[1].as_u64().unwrap(),
            measured[2].as_u64().unwrap(),
        );
        assert!(
            inner <= u64::from(width),
            "the window is {width} px wide, not {inner}"
        );
        if scroll > client {
            problems.push(format!(
                "{label} at {width} px: {scroll} px wide in {client} px; too wide: {}",
                measured[3]
            ));
        }
        if width == 390 || width == 1280 {
            if browser.execute("return typeof axe", vec![]).await.unwrap() != "object" {
                browser.execute(axe, vec![]).await.unwrap();
            }
            let script = format!(
                "const done = arguments[arguments.length - 1]; \
                 axe.run(document, {{ runOnly: {{ type: 'tag', values: {AXE_TAGS} }} }}) \
                   .then(r => done(r.violations.map(v => v.id + ': ' + \
                     v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')))) \
                   .catch(e => done(['axe failed: ' + e]));"
            );
            let violations = browser.execute_async(&script, vec![]).await.unwrap();
            for violation in violations.as_array().unwrap() {
                problems.push(format!("{label} at {width} px: {violation}"));
            }
        }
    }
    problems
}

/// Submits the page's form around `#field` with `value` typed, skipping the browser's own
/// checks (its `max`), as a shopper with an older browser would.
async fn submit_typed(browser: &Client, field: &str, value: &str) {
    browser
        .execute(
            "const field = document.getElementById(arguments[0]); field.value = arguments[1]; \
             field.form.noValidate = true; field.form.querySelector('button').click();",
            vec![field.into(), value.into()],
        )
        .await
        .unwrap();
}

/// Every page a shopper can reach, signed out and signed in, error pages and forms shown again
/// with their mistake included: none is wider than a 320, 360 or 390 px phone, and none has an
/// axe-core violation at WCAG A, AA or AAA or of its best practices. Then what Lighthouse audits
/// offline: a favicon, a description on every page, compressed pages and styles, and static
/// files cached for a year. Screenshots at a phone's and a laptop's width go to `tests/output/`.
#[tokio::test]
async fn every_page_fits_a_phone_and_passes_axe_at_aaa() {
    let axe = std::fs::read_to_string(AXE)
        .unwrap_or_else(|_| panic!("axe-core at {AXE} (.ci/services.sh ensure_axe installs it)"));
    let (settings, _data) = test_settings().await;
    let (cluster, _work) = round_robin_cluster(settings).await;
    let (driver, port) = chromedriver().await;
    let profile = tempfile::tempdir().unwrap();
    let browser = headless_browser(port, &profile).await;
    let url = cluster.url.clone();
    let shots = screenshot_dir();
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    let mut check = async |browser: &Client, label: &str| {
        seen.push(label.to_owned());
        problems.extend(problems_of_this_page(browser, &axe, label).await);
    };

    for path in [
        "/",
        "/products/1",
        "/cart",
        "/login",
        "/login?reason=checkout",
        "/register",
        "/no-such-page",
        "/products/999999",
    ] {
        browser.goto(&format!("{url}{path}")).await.unwrap();
        check(&browser, &format!("guest {path}")).await;
    }
    browser.goto(&format!("{url}/products/6")).await.unwrap();
    submit_typed(&browser, "quantity", "50").await;
    page_with(&browser, "#quantity-error").await;
    check(&browser, "guest, product page with a mistake").await;

    browser.set_window_size(1280, 1000).await.unwrap();
    browser.goto(&format!("{url}/register")).await.unwrap();
    let email = format!("a-long-name-{}", unique_email("phone"));
    type_into(&browser, "email", &email).await;
    type_into(&browser, "password", "a browser password").await;
    click(&browser, "main form button[type=submit]").await;
    page_with(&browser, ".user").await;
    check(&browser, "signed in /, with the welcome").await;
    for (product, quantity) in [(4, "3"), (6, "2"), (1, "1")] {
        browser
            .goto(&format!("{url}/products/{product}"))
            .await
            .unwrap();
        type_into(&browser, "quantity", quantity).await;
        click(&browser, "main form button[type=submit]").await;
        page_with(&browser, "td.grand-total").await;
    }
    check(&browser, "signed in /cart, with a message").await;
    browser.set_window_size(390, 844).await.unwrap();
    std::fs::write(
        shots.join("shop-phone.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();
    submit_typed(&browser, "qty-6", "50").await;
    page_with(&browser, "#qty-6-error").await;
    check(&browser, "signed in /cart with a mistake").await;
    click(&browser, "form[action='/checkout'] button").await;
    page_with(&browser, "#order-title").await;
    check(&browser, "signed in, an order").await;
    browser.set_window_size(1280, 800).await.unwrap();
    browser.goto(&format!("{url}/")).await.unwrap();
    std::fs::write(
        shots.join("shop-desktop.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();
    for path in [
        "/",
        "/products/4",
        "/cart",
        "/orders",
        "/account/sessions",
        "/session",
        "/orders/999999",
        "/no-such-page",
    ] {
        browser.goto(&format!("{url}{path}")).await.unwrap();
        check(&browser, &format!("signed in {path}")).await;
    }
    assert!(
        problems.is_empty(),
        "{} problems on {} pages:\n{}",
        problems.len(),
        seen.len(),
        problems.join("\n")
    );
    println!(
        "{} pages fit 320, 360 and 390 px and pass axe-core at AAA",
        seen.len()
    );
    browser.close().await.unwrap();

    // What Lighthouse audits offline, through nginx as a browser meets the shop.
    let client = reqwest::Client::new();
    let page = client
        .get(format!("{url}/"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip"),
        "nginx compresses the HTML"
    );
    let html_of = async |path: &str| {
        let response = client.get(format!("{url}{path}")).send().await.unwrap();
        response.text().await.unwrap()
    };
    let html = html_of("/").await;
    let link = |rel: &str| {
        regex::Regex::new(&format!(r#"<link rel="{rel}" href="([^"]+)""#))
            .unwrap()
            .captures(&html)
            .map(|c| c[1].to_owned())
            .unwrap_or_else(|| panic!("a {rel} link on /"))
    };
    for (address, gzip) in [(link("icon"), false), (link("stylesheet"), true)] {
        let response = client
            .get(format!("{url}{address}"))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{address}");
        assert_eq!(
            response.headers()["cache-control"],
            "public, max-age=31536000, immutable",
            "{address}"
        );
        if gzip {
            assert_eq!(response.headers()["content-encoding"], "gzip", "{address}");
        }
    }
    let description =
        regex::Regex::new(r#"<meta name="description" content="[^"]{20,}">"#).unwrap();
    for path in ["/", "/products/1", "/cart", "/login", "/register"] {
        let html = html_of(path).await;
        assert!(description.is_match(&html), "{path} describes itself");
    }
    let mut groups = cluster.process_groups();
    groups.push(driver.group);
    drop(driver);
    drop(cluster);
    crate::leftovers::assert_all_gone(&groups).await;
}
