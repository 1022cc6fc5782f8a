use regex::Regex;
use reqwest::StatusCode;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_catalog_lists_at_least_twelve_products_with_prices_and_images() {
    let app = spawn_app().await;
    let page = app.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    let products = Regex::new(r#"href="/products/(\d+)""#).unwrap();
    assert!(products.captures_iter(&page.body).count() >= 12);
    assert!(Regex::new(r"\$\d+\.\d\d").unwrap().is_match(&page.body));
    let image = Regex::new(r#"src="(/static/products/[a-z-]+\.svg\?v=[0-9a-f]+)""#).unwrap();
    let first = &image.captures(&page.body).expect("an image")[1];
    let response = app.client().get(app.url(first)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().starts_with("<svg"));
}

#[tokio::test]
async fn a_product_page_shows_name_price_stock_and_an_add_form() {
    let app = spawn_app().await;
    let page = app.get("/products/1").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Enamel Camp Mug"));
    assert!(page.body.contains("$14.50"));
    assert!(page.body.contains("40 in stock"));
    assert!(
        page.body
            .contains(r#"<label for="quantity">Quantity</label>"#)
    );
}

#[tokio::test]
async fn unknown_and_malformed_product_ids_get_the_not_found_page() {
    let app = spawn_app().await;
    for path in [
        "/products/9999",
        "/products/abc",
        "/products/0",
        "/products/-1",
        "/no-such-page",
    ] {
        let page = app.get(path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.body.contains("Page not found"), "{path}");
        assert!(
            page.body.contains(&app.instance),
            "the error page has the badge: {path}"
        );
    }
}

#[tokio::test]
async fn every_response_names_the_instance_and_every_page_shows_the_badge() {
    let app = spawn_app().await;
    for path in [
        "/",
        "/cart",
        "/login",
        "/healthz",
        "/missing",
        "/static/style.css",
    ] {
        let response = app.client().get(app.url(path)).send().await.unwrap();
        let served_by = response
            .headers()
            .get("x-served-by")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(served_by.as_deref(), Some(app.instance.as_str()), "{path}");
    }
    let page = app.get("/").await;
    assert!(page.body.contains(&format!(
        r#"<strong class="instance">{}</strong>"#,
        app.instance
    )));
    let backend = crate::helpers::backend_under_test();
    let badge = format!(r#"<strong class="backend">{backend}</strong>"#);
    assert!(
        page.body.contains(&badge),
        "the footer names the {backend} store"
    );
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body.trim(), "ready");
}

#[tokio::test]
async fn pages_carry_security_headers() {
    let app = spawn_app().await;
    for path in ["/", "/missing", "/healthz"] {
        let response = app.client().get(app.url(path)).send().await.unwrap();
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'none'"),
            "no scripts at all, inline or not: {path}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{path}");
        assert!(!csp.contains("unsafe-inline"), "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "same-origin", "{path}");
    }
    let newcomer = crate::helpers::spawn_client(&app);
    let response = newcomer.client().get(app.url("/")).send().await.unwrap();
    let cookies: Vec<_> = response.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies.len(), 1, "only the form-token cookie: {cookies:?}");
    let cookie = cookies[0].to_str().unwrap();
    assert!(
        cookie.starts_with("shop_csrf="),
        "no stored session: {cookie}"
    );
    assert!(cookie.contains("HttpOnly"));
    assert!(cookie.contains("SameSite=Lax"));
    assert!(!cookie.contains("Secure"), "plain HTTP in development");
}

#[tokio::test]
async fn production_cookies_are_secure() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.insert("APP_ENV".into(), "production".into());
    })
    .await;
    let response = app.client().get(app.url("/")).send().await.unwrap();
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.starts_with("__Host-shop_csrf="),
        "a host-only name no other site can plant: {cookie}"
    );
    assert!(
        cookie.contains("; Secure") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Domain="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    // The session cookie, once there is a session, is Secure too.
    let token = shop_lab::shopper::csrf_token(&response.text().await.unwrap()).unwrap();
    let nonce = cookie.split(';').next().unwrap().to_owned();
    let added = app
        .client()
        .post(app.url("/cart/items"))
        .header("cookie", &nonce)
        .form(&[
            ("product_id", "1"),
            ("quantity", "1"),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), reqwest::StatusCode::SEE_OTHER);
    let session = added.headers()["set-cookie"].to_str().unwrap();
    assert!(
        session.starts_with("__Host-shop_session="),
        "the session cookie is host-only too: {session}"
    );
    assert!(
        session.contains("; Secure") && session.contains("HttpOnly") && session.contains("Path=/"),
        "{session}"
    );
    assert!(!session.contains("Domain="), "{session}");
    // And with it the shopper's cart: the prefixed cookie is the one the shop reads back.
    let session_cookie = session.split(';').next().unwrap();
    let cart = app
        .client()
        .get(app.url("/cart"))
        .header("cookie", format!("{nonce}; {session_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        shop_lab::shopper::cart_lines(&cart.text().await.unwrap()),
        vec![(1, 1)]
    );
}

#[tokio::test]
async fn behind_tls_browsers_are_told_to_stay_on_https() {
    let production = crate::helpers::spawn_app_with(|s| {
        s.insert("APP_ENV".into(), "production".into());
    })
    .await;
    let response = production
        .client()
        .get(production.url("/"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    // Plain HTTP (development, or production with COOKIE_SECURE=false): no such promise.
    for customize in [
        (|_: &mut std::collections::HashMap<String, String>| {})
            as fn(&mut std::collections::HashMap<String, String>),
        |s| {
            s.insert("APP_ENV".into(), "production".into());
            s.insert("COOKIE_SECURE".into(), "false".into());
        },
    ] {
        let app = crate::helpers::spawn_app_with(customize).await;
        let response = app.client().get(app.url("/")).send().await.unwrap();
        assert!(!response.headers().contains_key("strict-transport-security"));
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_store_operations() {
    let app = spawn_app().await;
    app.add_to_cart(3, "1").await; // a stored session, whose page views read the store
    app.get("/products/1").await;
    app.get("/products/2").await;
    app.get("/products/not-a-number").await;
    let page = app.get("/metrics").await;
    assert_eq!(page.status, StatusCode::OK);
    let body = page.body;
    let line = |prefix: &str| {
        body.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix} in:\n{body}"))
            .to_owned()
    };
    assert!(
        line(r#"shop_http_requests_total{method="GET",route="/products/{id}",status="200"}"#)
            .ends_with(" 2")
    );
    line(r#"shop_http_requests_total{method="GET",route="/products/{id}",status="404"}"#);
    line("shop_http_request_duration_seconds_bucket{");
    let backend = crate::helpers::backend_under_test();
    line(&format!(
        r#"shop_session_store_operation_duration_seconds_count{{operation="load",store="{backend}"}}"#
    ));
    line(&format!(
        r#"shop_session_store_written_bytes_total{{store="{backend}"}}"#
    ));
}
