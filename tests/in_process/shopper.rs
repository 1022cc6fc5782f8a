//! What a shopper meets after a mistake: the message on the page they were on, beside the field,
//! with what they typed kept; their own header on every page, error pages included; and after
//! signing in, the way back to what they were doing.

use reqwest::StatusCode;
use shop_lab::shopper::signed_in_as;

use crate::helpers::{PASSWORD, spawn_app, unique_email};

/// The wool throw blanket starts with 10 in stock.
const BLANKET: i64 = 6;

#[tokio::test]
async fn a_product_page_offers_at_most_the_stock_it_shows() {
    let app = spawn_app().await;
    let page = app.get(&format!("/products/{BLANKET}")).await;
    assert!(page.body.contains("10 in stock"), "{}", page.body);
    assert!(
        page.body.contains(r#"min="1" max="10" value="1""#),
        "{}",
        page.body
    );
    app.add_to_cart(BLANKET, "4")
        .await
        .assert_redirects_to("/cart");
    let page = app.get(&format!("/products/{BLANKET}")).await;
    assert!(page.body.contains("4 in your cart"));
    assert!(page.body.contains(r#"max="6""#), "{}", page.body);
    app.add_to_cart(BLANKET, "6")
        .await
        .assert_redirects_to("/cart");
    let page = app.get(&format!("/products/{BLANKET}")).await;
    assert!(
        !page
            .body
            .contains(r#"action="/cart/items" class="stacked""#)
    );
    assert!(page.body.contains("All you can have of this product is in"));
}

#[tokio::test]
async fn a_quantity_mistake_shows_the_product_page_again_with_the_message_beside_the_box() {
    let app = spawn_app().await;
    app.add_to_cart(BLANKET, "1").await;
    let cases = [
        ("20", "Only 10 of Wool Throw Blanket are in stock"),
        ("10", "Only 10 of Wool Throw Blanket are in stock"), // 1 + 10
        ("abc", "whole number"),
        ("", "whole number"),
        ("0", "at least 1"),
        ("250", "at most 99"),
    ];
    for (typed, message) in cases {
        let page = app.add_to_cart(BLANKET, typed).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{typed:?}");
        let body = &page.body;
        assert!(
            body.contains("<h1>Wool Throw Blanket</h1>"),
            "the product page: {body}"
        );
        assert!(
            body.contains(&format!(r#"max="9" value="{typed}" required"#)),
            "what was typed is kept: {body}"
        );
        assert!(
            body.contains(r#"aria-invalid="true" aria-describedby="quantity-error stock""#),
            "{body}"
        );
        let error = body
            .split(r#"<p class="field-error" id="quantity-error" role="alert">"#)
            .nth(1)
            .unwrap_or_else(|| panic!("a message beside the box for {typed:?}: {body}"));
        let error = error.split("</p>").next().unwrap();
        assert!(error.contains(message), "{typed:?}: {error}");
        assert!(
            body.contains(r#"<span class="cart-count">1</span>"#),
            "the shopper's own header"
        );
        assert_eq!(
            app.cart().await,
            vec![(BLANKET, 1)],
            "{typed:?} changed nothing"
        );
    }
}

#[tokio::test]
async fn a_quantity_mistake_in_the_cart_is_shown_beside_that_line() {
    let app = spawn_app().await;
    app.add_to_cart(1, "2").await;
    app.add_to_cart(BLANKET, "3").await;
    let cart = app.get("/cart").await;
    assert!(
        cart.body.contains(r#"id="qty-6" name="quantity" type="number" inputmode="numeric" min="0" max="10" value="3""#),
        "the box takes at most the stock: {}",
        cart.body
    );
    for (typed, message) in [
        ("50", "Only 10 of Wool Throw Blanket"),
        ("", "whole number"),
        ("x", "whole number"),
    ] {
        let page = app
            .post(&format!("/cart/items/{BLANKET}"), &[("quantity", typed)])
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{typed:?}");
        let body = &page.body;
        assert!(body.contains("<h1>Your cart</h1>"), "the cart page: {body}");
        assert!(
            body.contains(&format!(r#"max="10" value="{typed}" required"#)),
            "what was typed is kept: {body}"
        );
        let error = body
            .split(r#"<span class="field-error" id="qty-6-error" role="alert">"#)
            .nth(1)
            .and_then(|rest| rest.split("</span>").next())
            .unwrap_or_else(|| panic!("a message beside the blanket's box: {body}"));
        assert!(error.contains(message), "{typed:?}: {error}");
        assert!(
            body.contains(r#"value="2" required"#),
            "the other line is as it was"
        );
        assert_eq!(app.cart().await, vec![(1, 2), (BLANKET, 3)], "{typed:?}");
    }
}

#[tokio::test]
async fn error_pages_show_the_shoppers_own_header_and_keep_their_message_for_the_next_page() {
    let app = spawn_app().await;
    let email = unique_email("lost");
    app.register(&email).await;
    app.get("/").await; // the welcome
    app.add_to_cart(1, "2").await;
    for path in ["/orders/999999", "/products/999999", "/no-such-page"] {
        let page = app.get(path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(signed_in_as(&page.body), Some(email.clone()), "{path}");
        assert!(
            page.body.contains(r#"<span class="cart-count">2</span>"#),
            "{path}: {}",
            page.body
        );
        assert!(page.body.contains(r#"action="/logout""#), "{path}");
        assert!(!page.body.contains("Added 2"), "{path} keeps the message");
    }
    let cart = app.get("/cart").await;
    assert!(
        cart.body.contains("Added 2 × Enamel Camp Mug"),
        "{}",
        cart.body
    );
    // The logout form on an error page works.
    let page = app.get("/no-such-page").await;
    let token = shop_lab::shopper::csrf_token(&page.body).expect("a token");
    app.post_raw("/logout", &[("csrf_token", &token)])
        .await
        .assert_redirects_to("/");
    assert_eq!(app.signed_in_as().await, None);
}

#[tokio::test]
async fn signing_in_from_checkout_returns_to_the_cart_with_a_welcome() {
    let app = spawn_app().await;
    let email = unique_email("return");
    app.register(&email).await;
    app.logout().await;
    app.add_to_cart(1, "1").await;
    app.post("/checkout", &[])
        .await
        .assert_redirects_to("/login?reason=checkout");
    let login = app.get("/login?reason=checkout").await;
    assert!(
        login
            .body
            .contains(r#"<input type="hidden" name="reason" value="checkout">"#)
    );
    app.post(
        "/login",
        &[
            ("email", &email),
            ("password", PASSWORD),
            ("reason", "checkout"),
        ],
    )
    .await
    .assert_redirects_to("/cart");
    let cart = app.get("/cart").await;
    assert!(
        cart.body
            .contains("Welcome back! Your cart is as you left it"),
        "{}",
        cart.body
    );
    assert_eq!(app.cart().await, vec![(1, 1)]);
    // A plain sign-in is welcomed too; a reason the shop does not know is ignored.
    app.logout().await;
    app.post(
        "/login",
        &[
            ("email", &email),
            ("password", PASSWORD),
            ("reason", "//evil.example"),
        ],
    )
    .await
    .assert_redirects_to("/");
    assert!(
        app.get("/")
            .await
            .body
            .contains("Welcome back! You are signed in.")
    );
}
