//! Ten checkouts of one cart racing over three replicas behind round-robin nginx place one
//! order, on every store. (The single-process cases: `tests/in_process/exactly_once.rs`.)

use reqwest::StatusCode;
use shop_lab::shopper::{Shopper, order_ids, stock_shown};

use crate::helpers::{browser, round_robin_cluster, test_settings_for, unique_email};

const PASSWORD: &str = "exactly-once-1";

async fn ten_concurrent_checkouts_place_one_order(backend: &str) {
    let (settings, _data) = test_settings_for(backend).await;
    let (cluster, _work) = round_robin_cluster(settings).await;
    let shopper = Shopper::new(&cluster.url, &unique_email("double"), None).unwrap();
    assert!(shopper.register(PASSWORD).await.unwrap().0);
    shopper.add(1, 2).await.unwrap();
    shopper.add(2, 1).await.unwrap();
    let stock = |id: i64| {
        let shopper = &shopper;
        async move {
            stock_shown(&shopper.get(&format!("/products/{id}")).await.unwrap().body)
                .expect("a stock line")
        }
    };
    let before = (stock(1).await, stock(2).await);
    let (cookie, token) = (
        shopper.cookie_header().unwrap(),
        shopper.csrf_token().await.unwrap(),
    );
    let client = browser(&cluster.url, None, None).client().clone();
    let mut clicks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let request = client
            .post(format!("{}/checkout", cluster.url))
            .header("cookie", &cookie)
            .form(&[("csrf_token", token.as_str())]);
        clicks.spawn(async move {
            let response = request.send().await.unwrap();
            let header = |name| {
                response.headers()[name]
                    .to_str()
                    .unwrap_or_default()
                    .to_owned()
            };
            (response.status(), header("location"), header("x-served-by"))
        });
    }
    let (mut locations, mut replicas) = (
        std::collections::BTreeSet::new(),
        std::collections::BTreeSet::new(),
    );
    while let Some(click) = clicks.join_next().await {
        let (status, location, served_by) = click.unwrap();
        assert_eq!(
            status,
            StatusCode::SEE_OTHER,
            "a checkout answered {status}"
        );
        locations.insert(location);
        replicas.insert(served_by);
    }
    assert_eq!(
        replicas.len(),
        3,
        "the checkouts were spread over every replica"
    );
    assert_eq!(
        locations.len(),
        1,
        "every checkout lands on one order: {locations:?}"
    );
    assert!(locations.first().unwrap().starts_with("/orders/"));
    let orders = shopper.get("/orders").await.unwrap().body;
    assert_eq!(order_ids(&orders).len(), 1, "one order placed");
    assert_eq!(
        (stock(1).await, stock(2).await),
        (before.0 - 2, before.1 - 1),
        "stock taken once"
    );
    let (_, cart, _) = shopper.look().await.unwrap();
    assert!(cart.is_empty(), "the ordered lines left the cart");
}

macro_rules! per_store {
    ($($store:ident $(if $feature:literal)?),*) => {
        $(
            $(#[cfg(feature = $feature)])?
            mod $store {
                #[tokio::test]
                async fn ten_concurrent_checkouts_over_three_replicas_place_one_order() {
                    super::ten_concurrent_checkouts_place_one_order(stringify!($store)).await;
                }
            }
        )*
    };
}

per_store!(sqlite, redis if "redis", postgres if "postgres", memcached if "memcached");
