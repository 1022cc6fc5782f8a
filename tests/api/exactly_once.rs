//! A cart is ordered once, however many requests ask for it: a double click, ten requests racing
//! over three replicas, a retry after a replica died in the middle of a checkout.

use actix_web::cookie::time::Duration;
use regex::Regex;
use reqwest::StatusCode;
use shop::lab::shopper::Shopper;
use shop::session::{PendingCheckout, cart_in, put_pending_checkout};

use crate::helpers::{TestApp, round_robin_cluster, spawn_app, test_settings_for, unique_email};

const PASSWORD: &str = "exactly-once-1";

fn stock_in(body: &str) -> i64 {
    let re = Regex::new(r"(\d+) in stock").unwrap();
    re.captures(body).expect("a stock line")[1].parse().unwrap()
}

async fn ten_concurrent_checkouts_place_one_order(backend: &str) {
    let (settings, _data) = test_settings_for(backend).await;
    let (cluster, _work) = round_robin_cluster(settings).await;
    let shopper = Shopper::new(&cluster.url, &unique_email("double"), None).unwrap();
    assert!(shopper.register(PASSWORD).await.unwrap().0);
    shopper.add(1, 2).await.unwrap();
    shopper.add(2, 1).await.unwrap();
    let stock = |id: i64| {
        let shopper = &shopper;
        async move { stock_in(&shopper.get(&format!("/products/{id}")).await.unwrap().body) }
    };
    let before = (stock(1).await, stock(2).await);
    let (cookie, token) = (
        shopper.cookie_header().unwrap(),
        shopper.csrf_token().await.unwrap(),
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
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
    let placed = Regex::new(r#"href="/orders/\d+""#)
        .unwrap()
        .find_iter(&orders)
        .count();
    assert_eq!(placed, 1, "one order placed");
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

/// What a replica that died right after claiming the cart for a checkout leaves in the session.
async fn claim_left_behind(app: &TestApp) -> PendingCheckout {
    let key = crate::sessions::session_key(app);
    let store = app.store.as_ref().unwrap();
    store
        .modify(&key, &Duration::seconds(1800), None, |state| {
            let claim = PendingCheckout::new(cart_in(state).lines(), shop::domain::now());
            put_pending_checkout(state, Some(&claim)).map(|()| claim)
        })
        .await
        .expect("the store answers")
        .expect("a live session")
}

/// What a replica that died after committing the claim's order, before it could empty the cart,
/// leaves in the database.
async fn place_order_under(
    app: &TestApp,
    email: &str,
    claim: &PendingCheckout,
) -> shop::db::orders::Placed {
    let db = shop::db::Database::connect(&app.settings["DATABASE_URL"])
        .await
        .unwrap();
    let email = shop::domain::Email::parse(email).unwrap();
    let user = db.user_by_email(&email).await.unwrap().unwrap();
    db.place_order(
        shop::domain::UserId::from_db(user.id),
        &claim.lines,
        &claim.token,
    )
    .await
    .unwrap()
}

async fn shopper_with_a_cart(app: &TestApp) -> String {
    let email = unique_email("crash");
    app.register(&email).await.assert_redirects_to("/");
    app.add_to_cart(1, "2").await.assert_redirects_to("/cart");
    email
}

#[tokio::test]
async fn a_retry_after_a_replica_died_before_placing_the_order_places_it_once() {
    let app = spawn_app().await;
    shopper_with_a_cart(&app).await;
    let before = app.stock_of(1).await;
    claim_left_behind(&app).await;
    let first = app.post("/checkout", &[]).await;
    let location = first.location.clone().expect("to the order");
    assert!(location.starts_with("/orders/"), "{location}");
    // A second click after the first finished lands on the same order.
    app.post("/checkout", &[])
        .await
        .assert_redirects_to(&location);
    assert!(app.get(&location).await.body.contains("was already placed"));
    assert_eq!(app.order_ids().await.len(), 1);
    assert_eq!(app.stock_of(1).await, before - 2);
    assert!(app.cart().await.is_empty());
}

#[tokio::test]
async fn a_retry_after_a_replica_died_between_the_order_and_the_cart_lands_on_that_order() {
    let app = spawn_app().await;
    let email = shopper_with_a_cart(&app).await;
    let before = app.stock_of(1).await;
    let claim = claim_left_behind(&app).await;
    // The dead replica had committed the order under the claim's token.
    let placed = place_order_under(&app, &email, &claim).await;
    assert!(placed.just_now);
    app.post("/checkout", &[])
        .await
        .assert_redirects_to(&format!("/orders/{}", placed.id));
    assert_eq!(app.order_ids().await, vec![placed.id.get()]);
    assert_eq!(app.stock_of(1).await, before - 2, "stock taken once");
    assert!(app.cart().await.is_empty());
}

#[tokio::test]
async fn a_refilled_cart_is_a_new_order() {
    let app = spawn_app().await;
    shopper_with_a_cart(&app).await;
    let first = app.post("/checkout", &[]).await.location.unwrap();
    app.add_to_cart(3, "1").await;
    let second = app.post("/checkout", &[]).await.location.unwrap();
    assert_ne!(first, second);
    assert_eq!(app.order_ids().await.len(), 2);
}

/// A hold on the shop's database that stalls a checkout's transaction: on SQLite every write
/// waits (an open write transaction), on PostgreSQL every change to product 1 (its row locked).
async fn stall_checkouts(database_url: &str) -> sqlx::AnyConnection {
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let mut hold = sqlx::AnyConnection::connect(database_url).await.unwrap();
    if database_url.starts_with("sqlite:") {
        hold.execute("BEGIN IMMEDIATE").await.unwrap();
    } else {
        hold.execute("BEGIN").await.unwrap();
        hold.execute("SELECT stock FROM products WHERE id = 1 FOR UPDATE")
            .await
            .unwrap();
    }
    hold
}

#[tokio::test]
async fn a_checkout_stalled_past_its_claim_and_the_retry_that_takes_over_place_one_order() {
    let app = crate::helpers::spawn_app_with(|settings| {
        settings.insert("CHECKOUT_CLAIM_SECONDS".into(), "1".into());
    })
    .await;
    shopper_with_a_cart(&app).await;
    let before = app.stock_of(1).await;
    let token = app.csrf_token().await;
    let checkout = || {
        app.client
            .post(app.url("/checkout"))
            .form(&[("csrf_token", token.as_str())])
            .send()
    };
    let mut hold = stall_checkouts(&app.settings["DATABASE_URL"]).await;
    let first = tokio::spawn(checkout());
    // The claim's age is judged in whole seconds of the database's clock: two of them pass.
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    let retry = tokio::spawn(checkout());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    {
        use sqlx::Executor;
        hold.execute("COMMIT").await.unwrap();
    }
    for answer in [first.await.unwrap(), retry.await.unwrap()] {
        let answer = answer.unwrap();
        assert_eq!(answer.status(), StatusCode::SEE_OTHER, "{answer:?}");
    }
    let orders = app.order_ids().await;
    assert_eq!(orders.len(), 1, "one cart, one order: {orders:?}");
    assert_eq!(app.stock_of(1).await, before - 2, "stock taken once");
    assert!(
        app.cart().await.is_empty(),
        "the ordered lines left the cart"
    );
    // The next checkout of a refilled cart is a new order, once.
    app.add_to_cart(2, "1").await;
    app.post("/checkout", &[]).await;
    assert_eq!(app.order_ids().await.len(), 2);
}

#[tokio::test]
async fn a_claim_left_behind_past_its_age_whose_order_was_placed_is_that_order() {
    let app = crate::helpers::spawn_app_with(|settings| {
        settings.insert("CHECKOUT_CLAIM_SECONDS".into(), "1".into());
    })
    .await;
    let email = shopper_with_a_cart(&app).await;
    let before = app.stock_of(1).await;
    let claim = claim_left_behind(&app).await;
    let placed = place_order_under(&app, &email, &claim).await;
    // The claim is old by the time the shopper tries again, and the cart was refilled.
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    app.add_to_cart(2, "1").await;
    app.post("/checkout", &[])
        .await
        .assert_redirects_to(&format!("/orders/{}", placed.id));
    assert_eq!(app.order_ids().await, vec![placed.id.get()]);
    assert_eq!(app.stock_of(1).await, before - 2, "stock taken once");
    assert_eq!(
        app.cart().await,
        vec![(2, 1)],
        "only the ordered lines left"
    );
}
