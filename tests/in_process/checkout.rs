use reqwest::StatusCode;

use crate::helpers::{TestApp, spawn_app, spawn_client, spawn_replica, unique_email};

async fn signed_in(app: &TestApp, who: &str) -> String {
    let email = unique_email(who);
    app.register(&email).await.assert_redirects_to("/");
    email
}

#[tokio::test]
async fn checkout_places_an_order_and_takes_the_items_out_of_stock() {
    let app = spawn_app().await;
    signed_in(&app, "buyer").await;
    app.add_to_cart(1, "3").await;
    app.add_to_cart(2, "1").await;
    let page = app.post("/checkout", &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let location = page.location.expect("a redirect to the order");
    assert!(location.starts_with("/orders/"));
    let order = app.get(&location).await;
    assert_eq!(order.status, StatusCode::OK);
    assert!(order.body.contains("Thank you! Order #"));
    assert!(order.body.contains("Enamel Camp Mug"));
    assert!(
        order
            .body
            .contains(r#"<td class="grand-total">$55.50</td>"#)
    ); // 3 × 14.50 + 12.00
    assert!(app.cart().await.is_empty());
    assert_eq!(app.stock_of(1).await, 37);
    assert_eq!(app.stock_of(2).await, 59);
    assert_eq!(app.order_ids().await.len(), 1);
}

#[tokio::test]
async fn a_guest_is_sent_to_log_in_and_keeps_the_cart() {
    let app = spawn_app().await;
    app.add_to_cart(1, "1").await;
    app.post("/checkout", &[])
        .await
        .assert_redirects_to("/login?reason=checkout");
    let login = app.get("/login?reason=checkout").await;
    assert!(login.body.contains("Please log in to check out"));
    assert_eq!(app.cart().await, vec![(1, 1)]);
    assert_eq!(app.stock_of(1).await, 40);
}

#[tokio::test]
async fn an_empty_cart_cannot_be_checked_out() {
    let app = spawn_app().await;
    signed_in(&app, "empty").await;
    app.post("/checkout", &[])
        .await
        .assert_redirects_to("/cart");
    assert!(app.get("/cart").await.body.contains("Your cart is empty."));
    assert!(app.order_ids().await.is_empty());
}

#[tokio::test]
async fn a_checkout_that_runs_out_of_stock_changes_nothing() {
    let app = spawn_app().await;
    let rival = spawn_replica(&app).await;
    signed_in(&app, "slow").await;
    signed_in(&rival, "fast").await;
    // The slow shopper wants 2 mugs and all 10 blankets; the fast one buys a blanket first.
    app.add_to_cart(1, "2").await;
    app.add_to_cart(6, "10").await;
    rival.add_to_cart(6, "1").await;
    rival.post("/checkout", &[]).await;
    assert_eq!(rival.order_ids().await.len(), 1);

    app.post("/checkout", &[])
        .await
        .assert_redirects_to("/cart");
    let cart = app.get("/cart").await;
    assert!(cart.body.contains("not enough of Wool Throw Blanket"));
    assert!(app.order_ids().await.is_empty());
    assert_eq!(
        app.stock_of(1).await,
        40,
        "the mugs were not taken out of stock"
    );
    assert_eq!(app.stock_of(6).await, 9);
    assert_eq!(app.cart().await, vec![(1, 2), (6, 10)], "the cart is kept");
}

#[tokio::test]
async fn order_history_needs_a_login() {
    let app = spawn_app().await;
    app.get("/orders")
        .await
        .assert_redirects_to("/login?reason=orders");
    app.get("/orders/1")
        .await
        .assert_redirects_to("/login?reason=orders");
}

#[tokio::test]
async fn another_users_order_is_not_found() {
    let app = spawn_app().await;
    signed_in(&app, "owner").await;
    app.add_to_cart(1, "1").await;
    app.post("/checkout", &[]).await;
    let order_id = app.order_ids().await[0];
    assert_eq!(
        app.get(&format!("/orders/{order_id}")).await.status,
        StatusCode::OK
    );

    let snoop = spawn_replica(&app).await;
    signed_in(&snoop, "snoop").await;
    for path in [
        format!("/orders/{order_id}"),
        "/orders/99999".into(),
        "/orders/abc".into(),
    ] {
        assert_eq!(
            snoop.get(&path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert!(snoop.order_ids().await.is_empty());
}

/// Two shoppers whose carts hold the same products in opposite orders check out at the same
/// moment, again and again: stock rows are locked in one order, so neither checkout is aborted.
/// (On PostgreSQL, opposite orders deadlocked, and the checkout PostgreSQL aborted answered 500.)
#[tokio::test]
async fn checkouts_of_the_same_products_in_opposite_orders_never_fail() {
    let app = spawn_app().await;
    for round in 0..15 {
        let (forward, backward) = (spawn_client(&app), spawn_client(&app));
        forward.register(&unique_email("forward")).await;
        backward.register(&unique_email("backward")).await;
        for id in [2, 9, 11, 1] {
            forward
                .add_to_cart(id, "1")
                .await
                .assert_redirects_to("/cart");
        }
        for id in [1, 11, 9, 2] {
            backward
                .add_to_cart(id, "1")
                .await
                .assert_redirects_to("/cart");
        }
        let (first, second) = tokio::join!(
            forward.post("/checkout", &[]),
            backward.post("/checkout", &[])
        );
        for page in [first, second] {
            assert_eq!(
                page.status,
                StatusCode::SEE_OTHER,
                "round {round}: {}",
                page.body
            );
            assert!(
                page.location
                    .as_deref()
                    .is_some_and(|l| l.starts_with("/orders/")),
                "round {round}: {:?}",
                page.location
            );
        }
    }
}

/// Rows of `table` in the shop's database.
async fn rows_in(app: &TestApp, table: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.settings["DATABASE_URL"])
        .await
        .unwrap();
    let (count,): (i64,) =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    count
}

#[tokio::test]
async fn a_refused_checkout_writes_no_order_row_and_its_void_is_reaped() {
    let app = spawn_app().await;
    let (buyer, loser) = (spawn_client(&app), spawn_client(&app));
    buyer.register(&unique_email("buyer")).await;
    loser.register(&unique_email("loser")).await;
    // The skillets (15 in stock): the loser wants one, the buyer takes them all first.
    loser.add_to_cart(3, "1").await.assert_redirects_to("/cart");
    buyer
        .add_to_cart(3, "15")
        .await
        .assert_redirects_to("/cart");
    let placed = buyer.post("/checkout", &[]).await;
    assert!(
        placed
            .location
            .as_deref()
            .is_some_and(|l| l.starts_with("/orders/"))
    );
    let orders = rows_in(&app, "orders").await;
    for _ in 0..200 {
        let refused = loser.post("/checkout", &[]).await;
        refused.assert_redirects_to("/cart");
    }
    let page = loser.get("/cart").await;
    assert!(
        page.body.contains("not enough of Cast Iron Skillet"),
        "{}",
        page.body
    );
    assert_eq!(
        rows_in(&app, "orders").await,
        orders,
        "200 refused checkouts wrote no order row"
    );
    assert!(loser.order_ids().await.is_empty());
    // Their voids are deleted once no transaction can hold their tokens any more.
    let voids = rows_in(&app, "checkout_tokens WHERE voided = 1").await;
    assert_eq!(voids, 200, "each refusal voids its token");
    let db = shop::db::Database::connect(&app.settings["DATABASE_URL"])
        .await
        .unwrap();
    assert_eq!(
        db.reap_checkout_voids(3600).await.unwrap(),
        0,
        "young voids stay"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(db.reap_checkout_voids(0).await.unwrap(), 200);
    assert_eq!(rows_in(&app, "checkout_tokens WHERE voided = 1").await, 0);
    // The buyer's order is untouched, and the loser can still buy what is there.
    assert_eq!(buyer.order_ids().await.len(), 1);
    loser.post("/cart/items/3", &[("quantity", "0")]).await;
    loser.add_to_cart(1, "1").await;
    let ordered = loser.post("/checkout", &[]).await;
    assert!(
        ordered
            .location
            .as_deref()
            .is_some_and(|l| l.starts_with("/orders/"))
    );
}
