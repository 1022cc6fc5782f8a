//! HTTP details a real site gets right: no shared cache keeps a personal page, static assets are
//! cached with validators, HEAD works wherever GET does, and a wrong method gets 405 with `Allow`.

use reqwest::{Method, StatusCode};

use crate::helpers::{spawn_app, unique_email};

const GET_ROUTES: [&str; 12] = [
    "/",
    "/products/1",
    "/register",
    "/login",
    "/cart",
    "/orders",
    "/orders/1",
    "/account/sessions",
    "/session",
    "/healthz",
    "/readyz",
    "/metrics",
];

const POST_ROUTES: [&str; 7] = [
    "/logout",
    "/cart/items",
    "/cart/items/1",
    "/cart/items/1/remove",
    "/checkout",
    "/account/sessions/end-others",
    "/account/sessions/0123456789abcdef/end",
];

#[tokio::test]
async fn personal_pages_are_never_stored_by_a_cache() {
    let app = spawn_app().await;
    app.register(&unique_email("private")).await;
    app.add_to_cart(1, "1").await;
    for path in [
        "/",
        "/products/1",
        "/cart",
        "/orders",
        "/account/sessions",
        "/login",
        "/missing",
    ] {
        let response = app.client().get(app.url(path)).send().await.unwrap();
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
    }
}

#[tokio::test]
async fn static_assets_are_cached_and_revalidated() {
    let app = spawn_app().await;
    let response = app
        .client()
        .get(app.url("/static/style.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers["cache-control"], "public, max-age=86400");
    assert!(headers.contains_key("last-modified"));
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let again = app
        .client()
        .get(app.url("/static/style.css"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()["cache-control"], "public, max-age=86400");
}

/// Pages name static files by a version of their bytes (`?v=`); that address is kept for a
/// year, `immutable`. Another version (a page of another release during a deploy) gets the
/// file this replica has, kept for a day only.
#[tokio::test]
async fn pages_name_static_files_by_version_and_that_address_is_immutable() {
    let app = spawn_app().await;
    let page = app.get("/products/1").await;
    let addresses =
        regex::Regex::new(r#"(?:href|src)="(/static/[a-z/.-]+\?v=[0-9a-f]{16})""#).unwrap();
    let named: Vec<String> = addresses
        .captures_iter(&page.body)
        .map(|c| c[1].to_owned())
        .collect();
    for asset in [
        "/static/style.css?v=",
        "/static/favicon.svg?v=",
        "/static/products/",
    ] {
        assert!(
            named.iter().any(|address| address.starts_with(asset)),
            "the page names {asset}… by version: {named:?}"
        );
    }
    for address in &named {
        let response = app.client().get(app.url(address)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{address}");
        assert_eq!(
            response.headers()["cache-control"],
            "public, max-age=31536000, immutable",
            "{address}"
        );
    }
    let other_version = app
        .client()
        .get(app.url("/static/style.css?v=0123456789abcdef"))
        .send()
        .await
        .unwrap();
    assert_eq!(other_version.status(), StatusCode::OK);
    assert_eq!(
        other_version.headers()["cache-control"],
        "public, max-age=86400"
    );
}

#[tokio::test]
async fn errors_under_static_are_never_publicly_cached() {
    let app = spawn_app().await;
    let missing = app
        .client()
        .get(app.url("/static/not-deployed-yet.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.headers()["cache-control"], "no-store");
    let wrong_method = app
        .client()
        .post(app.url("/static/style.css"))
        .send()
        .await
        .unwrap();
    assert!(
        wrong_method.status().is_client_error(),
        "{}",
        wrong_method.status()
    );
    assert_eq!(wrong_method.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn head_works_wherever_get_does() {
    let app = spawn_app().await;
    app.register(&unique_email("head")).await;
    for path in GET_ROUTES.iter().chain(&["/static/style.css"]) {
        let get = app
            .client()
            .get(app.url(path))
            .send()
            .await
            .unwrap()
            .status();
        let head = app.client().head(app.url(path)).send().await.unwrap();
        assert_eq!(head.status(), get, "HEAD {path}");
        assert_ne!(head.status(), StatusCode::METHOD_NOT_ALLOWED, "HEAD {path}");
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "HEAD {path} has no body"
        );
    }
}

#[tokio::test]
async fn a_wrong_method_gets_405_with_the_methods_that_work() {
    let app = spawn_app().await;
    app.register(&unique_email("allow")).await;
    let routes = GET_ROUTES
        .iter()
        .map(|path| (*path, Method::DELETE))
        .chain(POST_ROUTES.iter().map(|path| (*path, Method::GET)));
    for (path, wrong) in routes {
        let response = app
            .client()
            .request(wrong.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{wrong} {path}"
        );
        let allow = response.headers()["allow"].to_str().unwrap().to_owned();
        assert!(
            response.text().await.unwrap().contains("Served by"),
            "the friendly page: {path}"
        );
        for method in allow.split(", ") {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let status = app
                .client()
                .request(method.clone(), app.url(path))
                .send()
                .await
                .unwrap()
                .status();
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is allowed ({allow})"
            );
        }
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_only_a_trusted_proxy_names_it() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let mut seen = std::collections::HashSet::new();
    for path in ["/", "/cart", "/no-such-page", "/static/style.css"] {
        let response = client
            .get(app.url(path))
            .header("x-request-id", "forged\"id")
            .send()
            .await
            .unwrap();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(id.len(), 24, "{path}: {id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{path}: {id}");
        assert!(seen.insert(id), "each request its own id");
    }
}
