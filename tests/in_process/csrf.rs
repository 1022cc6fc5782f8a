use reqwest::StatusCode;

use crate::helpers::{spawn_app, unique_email};

#[tokio::test]
async fn a_form_without_its_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    app.add_to_cart(1, "1").await;
    let page = app
        .post_raw("/cart/items", &[("product_id", "2"), ("quantity", "1")])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("This form has expired"));
    assert_eq!(app.cart().await, vec![(1, 1)]);
}

#[tokio::test]
async fn a_wrong_token_is_refused() {
    let app = spawn_app().await;
    app.add_to_cart(1, "1").await;
    let forged = "0".repeat(64);
    for token in [forged.as_str(), "", "abc"] {
        let page = app
            .post_raw("/cart/items/1", &[("quantity", "5"), ("csrf_token", token)])
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "token {token:?}");
    }
    assert_eq!(app.cart().await, vec![(1, 1)]);
}

#[tokio::test]
async fn another_sessions_token_is_refused() {
    let app = spawn_app().await;
    let other = crate::helpers::spawn_replica(&app).await;
    let their_token = other.csrf_token().await;
    app.add_to_cart(1, "1").await;
    let page = app
        .post_raw("/cart/items/1/remove", &[("csrf_token", &their_token)])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(app.cart().await, vec![(1, 1)]);
}

#[tokio::test]
async fn logout_and_checkout_need_the_token_too() {
    let app = spawn_app().await;
    let email = unique_email("csrf");
    app.register(&email).await;
    app.add_to_cart(1, "1").await;
    assert_eq!(
        app.post_raw("/logout", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.signed_in_as().await, Some(email));
    assert_eq!(
        app.post_raw("/checkout", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    assert!(app.order_ids().await.is_empty());
    assert_eq!(app.cart().await, vec![(1, 1)]);
}

#[tokio::test]
async fn the_token_changes_when_the_user_signs_in() {
    let app = spawn_app().await;
    let before = app.csrf_token().await;
    app.register(&unique_email("rotate")).await;
    let after = app.csrf_token().await;
    assert_ne!(before, after);
    let page = app
        .post_raw(
            "/cart/items",
            &[
                ("product_id", "1"),
                ("quantity", "1"),
                ("csrf_token", &before),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
}
