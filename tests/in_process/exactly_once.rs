//! A cart is ordered once, however many requests ask for it: a double click, a retry after a
//! replica died in the middle of a checkout, a checkout stalled past its claim. (Ten requests
//! racing over three replicas: `tests/system/exactly_once.rs`.)

use actix_web::cookie::time::Duration;
use reqwest::StatusCode;
use shop::session::{PendingCheckout, cart_in, put_pending_checkout};

use crate::helpers::{TestApp, spawn_app, unique_email};

/// What a replica that died right after claiming the cart for a checkout leaves in the session.
async fn claim_left_behind(app: &TestApp) -> PendingCheckout {
    let key = crate::helpers::session_key(app);
    let store = app.store.as_ref().unwrap();
    store
        .modify(&key, &Duration::seconds(1800), None, |state| {
            let claim = PendingCheckout::new(cart_in(state).unwrap().lines(), shop::domain::now());
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
        app.client()
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
