use reqwest::StatusCode;

use crate::helpers::{spawn_app, unique_email};

#[tokio::test]
async fn adding_the_same_product_twice_increments_its_quantity() {
    let app = spawn_app().await;
    app.add_to_cart(1, "2").await.assert_redirects_to("/cart");
    app.add_to_cart(1, "3").await.assert_redirects_to("/cart");
    assert_eq!(app.cart().await, vec![(1, 5)]);
}

#[tokio::test]
async fn the_cart_shows_line_totals_and_the_grand_total() {
    let app = spawn_app().await;
    app.add_to_cart(1, "2").await; // 2 × $14.50
    app.add_to_cart(3, "1").await; // 1 × $49.00
    let page = app.get("/cart").await;
    assert!(page.body.contains(r#"<td class="line-total">$29.00</td>"#));
    assert!(page.body.contains(r#"<td class="line-total">$49.00</td>"#));
    assert!(page.body.contains(r#"<td class="grand-total">$78.00</td>"#));
    assert!(page.body.contains(r#"<span class="cart-count">3</span>"#));
}

#[tokio::test]
async fn changing_a_quantity_sets_it_and_zero_removes_the_line() {
    let app = spawn_app().await;
    app.add_to_cart(1, "2").await;
    app.add_to_cart(2, "1").await;
    app.post("/cart/items/1", &[("quantity", "7")])
        .await
        .assert_redirects_to("/cart");
    assert_eq!(app.cart().await, vec![(1, 7), (2, 1)]);
    app.post("/cart/items/1", &[("quantity", "0")])
        .await
        .assert_redirects_to("/cart");
    assert_eq!(app.cart().await, vec![(2, 1)]);
    app.post("/cart/items/2/remove", &[])
        .await
        .assert_redirects_to("/cart");
    assert!(app.cart().await.is_empty());
    assert!(app.get("/cart").await.body.contains("Your cart is empty"));
}

#[tokio::test]
async fn bad_quantities_are_refused_with_a_message_and_change_nothing() {
    let app = spawn_app().await;
    app.add_to_cart(1, "2").await;
    let cases = [
        ("0", "at least 1"),
        ("-1", "at least 1"),
        ("100", "at most 99"),
        ("99999999999999999999999", "at most 99"),
        ("abc", "whole number"),
        ("2.5", "whole number"),
        ("", "whole number"),
        ("98", "at most 99"), // 2 + 98 is over the per-line limit
    ];
    for (quantity, message) in cases {
        let page = app.add_to_cart(1, quantity).await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "quantity {quantity:?}"
        );
        assert!(
            page.body.contains(message),
            "quantity {quantity:?}: {message}"
        );
        assert_eq!(
            app.cart().await,
            vec![(1, 2)],
            "quantity {quantity:?} changed nothing"
        );
    }
    for quantity in ["-1", "100", "x"] {
        let page = app.post("/cart/items/1", &[("quantity", quantity)]).await;
        assert_eq!(
            page.status,
            StatusCode::BAD_REQUEST,
            "update to {quantity:?}"
        );
        assert_eq!(app.cart().await, vec![(1, 2)]);
    }
}

#[tokio::test]
async fn unknown_or_malformed_products_cannot_be_added() {
    let app = spawn_app().await;
    for id in ["9999", "abc", "0", "-5", "1 OR 1=1", ""] {
        let page = app
            .post("/cart/items", &[("product_id", id), ("quantity", "1")])
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "product {id:?}");
        assert!(page.body.contains("does not exist"), "product {id:?}");
    }
    assert!(app.cart().await.is_empty());
    let page = app.post("/cart/items/5/remove", &[]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("not in your cart"));
}

#[tokio::test]
async fn more_than_the_stock_cannot_be_added() {
    let app = spawn_app().await;
    // The wool throw blanket (id 6) starts with 10 in stock.
    let page = app.add_to_cart(6, "11").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(
        page.body
            .contains("Only 10 of Wool Throw Blanket are in stock")
    );
    assert!(app.cart().await.is_empty());
}

#[tokio::test]
async fn the_guest_cart_is_carried_into_the_account_on_login() {
    let app = spawn_app().await;
    let email = unique_email("guest");
    app.register(&email).await;
    app.logout().await;
    app.add_to_cart(4, "2").await;
    app.add_to_cart(5, "1").await;
    app.login(&email, crate::helpers::PASSWORD)
        .await
        .assert_redirects_to("/");
    assert_eq!(app.cart().await, vec![(4, 2), (5, 1)]);
    assert_eq!(app.signed_in_as().await, Some(email));
}

#[tokio::test]
async fn a_flash_message_confirms_an_add_once() {
    let app = spawn_app().await;
    app.add_to_cart(1, "1").await;
    let first = app.get("/cart").await;
    assert!(
        first
            .body
            .contains("Added 1 × Enamel Camp Mug to your cart.")
    );
    let second = app.get("/cart").await;
    assert!(!second.body.contains("Added 1 ×"));
}

#[tokio::test]
async fn a_get_never_changes_the_cart() {
    let app = spawn_app().await;
    app.add_to_cart(1, "1").await;
    for path in [
        "/cart/items?product_id=2&quantity=1",
        "/cart/items/1/remove",
        "/checkout",
        "/logout",
    ] {
        let page = app.get(path).await;
        assert!(page.status.is_client_error(), "GET {path} is refused");
    }
    assert_eq!(app.cart().await, vec![(1, 1)]);
}

/// A line remembers the price it was added at: when the catalog's changes, the cart says so
/// beside the new price, which is the one charged.
#[tokio::test]
async fn the_cart_says_when_a_price_has_changed_since_the_line_was_added() {
    let app = spawn_app().await;
    app.add_to_cart(3, "1").await.assert_redirects_to("/cart");
    let page = app.get("/cart").await;
    assert!(!page.body.contains("was $"), "no price has changed yet");

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.settings["DATABASE_URL"])
        .await
        .unwrap();
    sqlx::query("UPDATE products SET price_cents = 4500 WHERE id = 3")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    // The catalog is cached for a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.add_to_cart(3, "1").await.assert_redirects_to("/cart");
    let page = app.get("/cart").await;
    assert!(
        page.body.contains("was $49.00, now $45.00"),
        "the first price seen stays remembered through a later add: {}",
        page.body
    );
    assert!(page.body.contains("$90.00"), "the new price is charged");
}
