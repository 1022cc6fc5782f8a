//! Anonymous traffic (crawlers, health checkers, bots) costs the session store nothing: a visitor
//! who changes nothing has no stored session, and their forms are still protected.

use reqwest::StatusCode;

use crate::helpers::{spawn_app, stored_keys, unique_email};

#[tokio::test]
async fn a_thousand_cookieless_views_leave_the_store_as_it_was() {
    let app = spawn_app().await;
    // One real shopper, so the store is not trivially empty.
    app.register(&unique_email("regular")).await;
    app.add_to_cart(1, "1").await;
    let keys_before = stored_keys(&app).await;
    assert!(keys_before >= 1, "the shopper's session is counted");
    let stats = app.store.as_ref().unwrap().stats();
    let (trips, writes) = (stats.round_trips(), stats.writes());
    let crawler = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let paths = ["/", "/products/3", "/login", "/register", "/cart"];
    for i in 0..1000 {
        let path = paths[i % paths.len()];
        let response = crawler.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let cookies: Vec<_> = response.headers().get_all("set-cookie").iter().collect();
        assert!(
            cookies
                .iter()
                .all(|c| !c.to_str().unwrap().starts_with("shop_session=")),
            "no session cookie for a visitor who changed nothing: {cookies:?}"
        );
    }
    assert_eq!(stats.round_trips() - trips, 0, "not one store call");
    assert_eq!(stats.writes() - writes, 0, "not one store write");
    assert_eq!(
        stored_keys(&app).await,
        keys_before,
        "the store holds what it held"
    );
}

#[tokio::test]
async fn cookieless_views_of_pages_that_need_a_sign_in_store_nothing() {
    let app = spawn_app().await;
    let keys_before = stored_keys(&app).await;
    let stats = app.store.as_ref().unwrap().stats();
    let writes = stats.writes();
    let crawler = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let pages = [
        (
            "/orders",
            "/login?reason=orders",
            "Please log in to see your orders.",
        ),
        (
            "/orders/1",
            "/login?reason=orders",
            "Please log in to see your orders.",
        ),
        (
            "/account/sessions",
            "/login?reason=sessions",
            "Please log in to see where you are signed in.",
        ),
    ];
    for _ in 0..20 {
        for (path, login, says) in pages {
            let response = crawler.get(app.url(path)).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
            assert_eq!(response.headers()["location"], login, "{path}");
            assert!(
                response
                    .headers()
                    .get("set-cookie")
                    .is_none_or(|cookie| !cookie.to_str().unwrap().starts_with("shop_session=")),
                "{path} set a session cookie"
            );
            let page = crawler.get(app.url(login)).send().await.unwrap();
            assert!(page.text().await.unwrap().contains(says), "{login}");
        }
    }
    assert_eq!(stats.writes() - writes, 0, "not one store write");
    assert_eq!(
        stored_keys(&app).await,
        keys_before,
        "no session was stored"
    );
    // A reason the shop does not know is not printed.
    let page = crawler
        .get(app.url("/login?reason=%3Cscript%3E"))
        .send()
        .await
        .unwrap();
    assert!(!page.text().await.unwrap().contains("<script>"));
}

#[tokio::test]
async fn a_guest_registers_with_a_form_token_that_needed_no_stored_session() {
    let app = spawn_app().await;
    let keys_before = stored_keys(&app).await;
    let form = app.get("/register").await;
    assert_eq!(
        stored_keys(&app).await,
        keys_before,
        "showing the form stored nothing"
    );
    let token = form.csrf_token().expect("the form carries a token");
    let email = unique_email("lazy");
    app.post_raw(
        "/register",
        &[
            ("email", email.as_str()),
            ("password", crate::helpers::PASSWORD),
            ("csrf_token", &token),
        ],
    )
    .await
    .assert_redirects_to("/");
    assert_eq!(app.signed_in_as().await, Some(email));
}

#[tokio::test]
async fn a_guest_token_is_bound_to_the_session_it_becomes() {
    let app = spawn_app().await;
    let guest_token = app.get("/").await.csrf_token().unwrap();
    // The first change stores a session; the forms already open keep working.
    app.add_to_cart(1, "1").await;
    let page = app
        .post_raw(
            "/cart/items",
            &[
                ("product_id", "2"),
                ("quantity", "1"),
                ("csrf_token", &guest_token),
            ],
        )
        .await;
    page.assert_redirects_to("/cart");
    assert_eq!(app.cart().await, vec![(1, 1), (2, 1)]);
    // The nonce now lives in the session: an attacker who plants their own nonce cookie in the
    // shopper's browser (and so knows a token for it) still cannot post for the session.
    let attacker = reqwest::Client::new();
    let response = attacker.get(app.url("/")).send().await.unwrap();
    let their_nonce = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let their_token = shop_lab::shopper::csrf_token(&response.text().await.unwrap()).unwrap();
    let planted = format!("{}; {their_nonce}", app.session_cookie().unwrap());
    let response = attacker
        .post(app.url("/cart/items/1/remove"))
        .header("cookie", planted)
        .form(&[("csrf_token", their_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.cart().await, vec![(1, 1), (2, 1)]);
}

#[tokio::test]
async fn a_form_posted_without_the_nonce_cookie_is_refused() {
    let app = spawn_app().await;
    let token = app.get("/login").await.csrf_token().unwrap();
    let stranger = crate::helpers::spawn_client(&app);
    let page = stranger
        .post_raw(
            "/register",
            &[
                ("email", "x@example.com"),
                ("password", crate::helpers::PASSWORD),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_browser_marking_the_request_cross_site_is_refused_even_with_the_token() {
    let app = spawn_app().await;
    app.add_to_cart(1, "1").await;
    let token = app.csrf_token().await;
    let response = app
        .client()
        .post(app.url("/cart/items/1/remove"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.cart().await, vec![(1, 1)]);
    let response = app
        .client()
        .post(app.url("/cart/items/1/remove"))
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(app.cart().await.is_empty());
}

#[tokio::test]
async fn every_cookieless_visitor_gets_a_catalog_page_with_their_own_working_token() {
    let app = spawn_app().await;
    let (first, second) = (
        crate::helpers::spawn_client(&app),
        crate::helpers::spawn_client(&app),
    );
    // Both pages come from the same rendered catalog; each carries its visitor's token.
    let first_page = first.get("/").await;
    let second_page = second.get("/").await;
    let (first_token, second_token) = (
        first_page.csrf_token().unwrap(),
        second_page.csrf_token().unwrap(),
    );
    assert_ne!(first_token, second_token);
    for page in [&first_page, &second_page] {
        let token = page.csrf_token().unwrap();
        assert_eq!(
            page.body.matches(&token).count(),
            page.body.matches("name=\"csrf_token\"").count(),
            "every form carries the visitor's token"
        );
        assert!(page.body.contains("Add to cart"));
    }
    // Each token works for its own visitor only.
    let swapped = second
        .post_raw(
            "/cart/items",
            &[
                ("product_id", "1"),
                ("quantity", "1"),
                ("csrf_token", &first_token),
            ],
        )
        .await;
    assert_eq!(swapped.status, StatusCode::FORBIDDEN);
    first
        .post_raw(
            "/cart/items",
            &[
                ("product_id", "1"),
                ("quantity", "1"),
                ("csrf_token", &first_token),
            ],
        )
        .await
        .assert_redirects_to("/cart");
    assert_eq!(first.cart().await, vec![(1, 1)]);
    // With a session, the catalog is rendered for the shopper: the cart count shows.
    assert!(
        first
            .get("/")
            .await
            .body
            .contains("Cart (<span class=\"cart-count\">1</span>)")
    );
}
