//! A shopper with two tabs, a double click, requests racing over three replicas: every
//! acknowledged cart change is kept, and a logout wins over slower cart requests in flight.

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::StatusCode;
use shop_lab::Cluster;
use shop_lab::shopper::Shopper;

use crate::helpers::{round_robin_cluster, test_settings_for, unique_email};

const PASSWORD: &str = "lost-updates-1";

async fn cluster(backend: &str) -> (Cluster, tempfile::TempDir, Arc<tempfile::TempDir>) {
    let (settings, data) = test_settings_for(backend).await;
    let (cluster, work) = round_robin_cluster(settings).await;
    (cluster, work, data)
}

/// One browser tab of a signed-in shopper: their cookie and CSRF token, sending requests
/// without following redirects, as many at once as a test likes.
#[derive(Clone)]
struct Tab {
    client: reqwest::Client,
    url: String,
    cookie: String,
    token: String,
}

impl Tab {
    async fn of(shopper: &Shopper, url: &str) -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            url: url.to_owned(),
            cookie: shopper.cookie_header().unwrap(),
            token: shopper.csrf_token().await.unwrap(),
        }
    }

    /// Posts a form with the tab's cookie and CSRF token.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut form = fields.to_vec();
        form.push(("csrf_token", &self.token));
        self.client
            .post(format!("{}{path}", self.url))
            .header("cookie", &self.cookie)
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        let url = format!("{}{path}", self.url);
        self.client
            .get(url)
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
    }
}

async fn fifty_concurrent_adds_are_all_kept(backend: &str) {
    let (cluster, _work, _data) = cluster(backend).await;
    let shopper = Shopper::new(&cluster.url, &unique_email("tabs"), None).unwrap();
    assert!(shopper.register(PASSWORD).await.unwrap().0);
    let tab = Tab::of(&shopper, &cluster.url).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let product = rand::random_range(1..=12_i64);
        let tab = tab.clone();
        tasks.spawn(async move {
            let fields = [
                ("product_id", product.to_string()),
                ("quantity", "1".into()),
            ];
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let response = tab.post("/cart/items", &fields).await;
            let served_by = response.headers()["x-served-by"]
                .to_str()
                .unwrap()
                .to_owned();
            (product, response.status(), served_by)
        });
    }
    let mut acknowledged: HashMap<i64, u32> = HashMap::new();
    let (mut refused, mut replicas) = (0, std::collections::BTreeSet::new());
    while let Some(done) = tasks.join_next().await {
        let (product, status, served_by) = done.unwrap();
        replicas.insert(served_by);
        match status {
            StatusCode::SEE_OTHER => *acknowledged.entry(product).or_default() += 1,
            // "Please try again" (409) or a refusal with a message (400, more than in stock).
            StatusCode::CONFLICT | StatusCode::BAD_REQUEST => refused += 1,
            other => panic!("an add answered {other}"),
        }
    }
    let (user, lines, _) = shopper.look().await.unwrap();
    assert!(user.is_some(), "still logged in");
    let kept: HashMap<i64, u32> = lines.into_iter().collect();
    let sent = 50;
    let acked: u32 = acknowledged.values().sum();
    let kept_total: u32 = kept.values().sum();
    println!(
        "{backend}: sent {sent}, acknowledged {acked}, refused {refused}, kept {kept_total}, over {replicas:?}"
    );
    assert_eq!(replicas.len(), 3, "the adds were spread over every replica");
    assert_eq!(
        kept, acknowledged,
        "every acknowledged add is in the cart, and nothing else"
    );
    assert!(acked >= 40, "only {acked} of {sent} adds were applied");
}

async fn a_logout_wins_over_cart_requests_in_flight(backend: &str) {
    let (cluster, _work, _data) = cluster(backend).await;
    let shopper = Shopper::new(&cluster.url, &unique_email("race"), None).unwrap();
    assert!(shopper.register(PASSWORD).await.unwrap().0);
    shopper.add(1, 1).await.unwrap();
    let tab = Tab::of(&shopper, &cluster.url).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let tab = tab.clone();
        tasks.spawn(async move {
            let response = if i == 10 {
                tab.post("/logout", &[]).await
            } else {
                tab.post("/cart/items", &[("product_id", "2"), ("quantity", "1")])
                    .await
            };
            response.status()
        });
    }
    while let Some(done) = tasks.join_next().await {
        let status = done.unwrap();
        assert!(
            [
                StatusCode::SEE_OTHER,
                StatusCode::CONFLICT,
                StatusCode::FORBIDDEN
            ]
            .contains(&status),
            "unexpected {status}"
        );
    }
    // The old cookie, replayed after everything settled: a guest with an empty cart.
    let page = tab.get("/cart").await;
    let body = page.text().await.unwrap();
    assert_eq!(
        shop_lab::shopper::signed_in_as(&body),
        None,
        "the logout was undone"
    );
    assert!(shop_lab::shopper::cart_lines(&body).is_empty());
}

macro_rules! per_store {
    ($($store:ident $(if $feature:literal)?),*) => {
        $(
            $(#[cfg(feature = $feature)])?
            mod $store {
                #[tokio::test]
                async fn fifty_concurrent_adds_over_three_replicas_are_all_kept() {
                    super::fifty_concurrent_adds_are_all_kept(stringify!($store)).await;
                }

                #[tokio::test]
                async fn a_logout_wins_over_cart_requests_in_flight() {
                    super::a_logout_wins_over_cart_requests_in_flight(stringify!($store)).await;
                }
            }
        )*
    };
}

per_store!(sqlite, redis if "redis", postgres if "postgres", memcached if "memcached");
