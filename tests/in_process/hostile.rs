//! Hostile input, table-driven: each case is sent as a malicious client would send it, and
//! asserts both the status and that neither the session store nor the database changed.

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE};
use sqlx::AnyPool;

use crate::helpers::{TestApp, spawn_app, spawn_client, store_of, unique_email};

#[derive(Clone, Copy)]
enum Token {
    Mine,
    Missing,
    Wrong,
    Another,
}

#[derive(Clone, Copy)]
enum Jar {
    Mine,
    Tampered,
    Truncated,
    Foreign,
    Oversized,
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    token: Token,
    cookie: Jar,
    expect: StatusCode,
}

fn form(fields: &str) -> Vec<u8> {
    fields.as_bytes().to_vec()
}

fn case(name: &'static str, path: &'static str, body: &str, expect: StatusCode) -> Case {
    Case {
        name,
        method: "POST",
        path,
        content_type: Some("application/x-www-form-urlencoded"),
        body: form(body),
        token: Token::Mine,
        cookie: Jar::Mine,
        expect,
    }
}

fn cases() -> Vec<Case> {
    use StatusCode as S;
    let add = "/cart/items";
    let mut cases = vec![
        case(
            "add without a quantity",
            add,
            "product_id=1",
            S::BAD_REQUEST,
        ),
        case("add without a product", add, "quantity=1", S::BAD_REQUEST),
        case(
            "negative quantity",
            add,
            "product_id=1&quantity=-1",
            S::BAD_REQUEST,
        ),
        case(
            "zero quantity",
            add,
            "product_id=1&quantity=0",
            S::BAD_REQUEST,
        ),
        case(
            "huge quantity",
            add,
            "product_id=1&quantity=100",
            S::BAD_REQUEST,
        ),
        case(
            "overflowing quantity",
            add,
            "product_id=1&quantity=99999999999999999999999",
            S::BAD_REQUEST,
        ),
        case(
            "float quantity",
            add,
            "product_id=1&quantity=1.5",
            S::BAD_REQUEST,
        ),
        case(
            "exponent quantity",
            add,
            "product_id=1&quantity=1e3",
            S::BAD_REQUEST,
        ),
        case(
            "blank quantity",
            add,
            "product_id=1&quantity=%20%20",
            S::BAD_REQUEST,
        ),
        case(
            "non-numeric product",
            add,
            "product_id=abc&quantity=1",
            S::BAD_REQUEST,
        ),
        case(
            "unknown product",
            add,
            "product_id=99999&quantity=1",
            S::BAD_REQUEST,
        ),
        case(
            "zero product",
            add,
            "product_id=0&quantity=1",
            S::BAD_REQUEST,
        ),
        case(
            "overflowing product",
            add,
            "product_id=99999999999999999999&quantity=1",
            S::BAD_REQUEST,
        ),
        case(
            "SQL in the product",
            add,
            "product_id=1%20OR%201%3D1&quantity=1",
            S::BAD_REQUEST,
        ),
        case(
            "SQL statement in the product",
            add,
            "product_id=1%3B%20DROP%20TABLE%20products&quantity=1",
            S::BAD_REQUEST,
        ),
        case(
            "SQL comment in the quantity",
            add,
            "product_id=1&quantity=1'--",
            S::BAD_REQUEST,
        ),
        case(
            "NUL byte in the quantity",
            add,
            "product_id=1&quantity=1%00",
            S::BAD_REQUEST,
        ),
        case(
            "invalid UTF-8 in the quantity",
            add,
            "product_id=1&quantity=%FF%FE",
            S::BAD_REQUEST,
        ),
        case(
            "duplicate fields",
            add,
            "product_id=1&product_id=2&quantity=1",
            S::BAD_REQUEST,
        ),
        case(
            "update with a non-numeric id",
            "/cart/items/abc",
            "quantity=1",
            S::BAD_REQUEST,
        ),
        case(
            "update to a negative quantity",
            "/cart/items/1",
            "quantity=-5",
            S::BAD_REQUEST,
        ),
        case(
            "update a line not in the cart",
            "/cart/items/7",
            "quantity=2",
            S::BAD_REQUEST,
        ),
        case(
            "remove an unknown product",
            "/cart/items/99999/remove",
            "",
            S::BAD_REQUEST,
        ),
        case(
            "script tags as an email",
            "/register",
            "email=%3Cscript%3Ealert(1)%3C%2Fscript%3E&password=long%20enough",
            S::BAD_REQUEST,
        ),
        case(
            "NUL byte in an email",
            "/register",
            "email=a%00b%40example.com&password=long%20enough",
            S::BAD_REQUEST,
        ),
        case(
            "overlong email",
            "/register",
            &format!(
                "email={}%40example.com&password=long%20enough",
                "a".repeat(300)
            ),
            S::BAD_REQUEST,
        ),
        case(
            "overlong password",
            "/register",
            &format!("email=new%40example.com&password={}", "p".repeat(200)),
            S::BAD_REQUEST,
        ),
        case(
            "SQL in a login",
            "/login",
            "email=%27%20OR%20%271%27%3D%271&password=x",
            S::UNAUTHORIZED,
        ),
        case("missing login fields", "/login", "", S::BAD_REQUEST),
    ];
    let big = format!("product_id=1&quantity=1&pad={}", "x".repeat(1024 * 1024));
    cases.push(case("1 MiB body", add, &big, S::PAYLOAD_TOO_LARGE));
    cases.push(case(
        "1 MiB password",
        "/register",
        &format!(
            "email=big%40example.com&password={}",
            "p".repeat(1024 * 1024)
        ),
        S::PAYLOAD_TOO_LARGE,
    ));
    for (name, content_type) in [
        ("JSON instead of a form", Some("application/json")),
        (
            "multipart instead of a form",
            Some("multipart/form-data; boundary=x"),
        ),
        ("plain text instead of a form", Some("text/plain")),
        ("no content type", None),
    ] {
        let mut c = case(
            name,
            add,
            "product_id=1&quantity=1",
            S::UNSUPPORTED_MEDIA_TYPE,
        );
        c.content_type = content_type;
        cases.push(c);
    }
    for (name, method, path) in [
        ("GET of a form target", "GET", add),
        ("PUT on the cart", "PUT", add),
        ("DELETE of the cart", "DELETE", "/cart"),
        ("POST to a page", "POST", "/cart"),
        ("PATCH of a line", "PATCH", "/cart/items/1"),
    ] {
        let mut c = case(name, path, "product_id=2&quantity=1", S::METHOD_NOT_ALLOWED);
        c.method = method;
        cases.push(c);
    }
    for (name, token) in [
        ("no CSRF token", Token::Missing),
        ("a wrong CSRF token", Token::Wrong),
        ("another session's CSRF token", Token::Another),
    ] {
        let mut c = case(name, add, "product_id=2&quantity=1", S::FORBIDDEN);
        c.token = token;
        cases.push(c);
        let mut c = case(name, "/checkout", "", S::FORBIDDEN);
        c.token = token;
        cases.push(c);
    }
    for (name, cookie) in [
        ("a tampered cookie", Jar::Tampered),
        ("a truncated cookie", Jar::Truncated),
        ("another app's cookie", Jar::Foreign),
        ("an oversized cookie", Jar::Oversized),
    ] {
        // A POST with a broken cookie is a fresh guest whose token cannot match.
        let mut c = case(name, add, "product_id=2&quantity=1", S::FORBIDDEN);
        c.cookie = cookie;
        cases.push(c);
    }
    cases.push(Case {
        name: "another user's order",
        method: "GET",
        path: "/orders/1",
        content_type: None,
        body: Vec::new(),
        token: Token::Missing,
        cookie: Jar::Mine,
        expect: S::NOT_FOUND,
    });
    cases
}

/// Everything the cases must leave alone: the shopper's stored session, and the data.
async fn snapshot(app: &TestApp, pool: &AnyPool, key: &str) -> (Option<String>, (i64, i64, i64)) {
    let stored = store_of(&app.settings)
        .await
        .raw(key)
        .await
        .unwrap()
        .map(|(state, _)| state);
    let counts: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM orders), (SELECT CAST(SUM(stock) AS BIGINT) FROM products)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    (stored, counts)
}

#[tokio::test]
async fn hostile_requests_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    app.register(&unique_email("target")).await;
    app.add_to_cart(1, "2").await;
    // An order of someone else, so that /orders/1 exists but is not ours.
    let other = spawn_client(&app);
    other.register(&unique_email("other")).await;
    other.add_to_cart(3, "1").await;
    other.post("/checkout", &[]).await;
    app.get("/cart").await; // shows the pending flash message, so nothing is pending
    let my_cookie = app.session_cookie().unwrap();
    let my_token = app.csrf_token().await;
    let their_token = other.csrf_token().await;
    let key = crate::helpers::session_key(&app);
    sqlx::any::install_default_drivers();
    let pool = AnyPool::connect(&app.settings["DATABASE_URL"])
        .await
        .unwrap();
    let before = snapshot(&app, &pool, &key).await;
    let (name, value) = my_cookie.split_once('=').unwrap();
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let client = crate::helpers::fresh_client(&app);
    for case in &cases {
        let mut body = case.body.clone();
        let token = match case.token {
            Token::Mine => Some(my_token.clone()),
            Token::Missing => None,
            Token::Wrong => Some("0".repeat(64)),
            Token::Another => Some(their_token.clone()),
        };
        if let Some(token) = token.filter(|_| case.method != "GET") {
            if !body.is_empty() {
                body.push(b'&');
            }
            body.extend_from_slice(format!("csrf_token={token}").as_bytes());
        }
        let cookie = match case.cookie {
            Jar::Mine => my_cookie.clone(),
            Jar::Tampered => format!("{name}={}A", &value[..value.len() - 1]),
            Jar::Truncated => format!("{name}={}", &value[..value.len() / 2]),
            Jar::Foreign => "session=eyJ1c2VyIjoxfQ; other_app=1".to_owned(),
            Jar::Oversized => format!("{name}={}", "A".repeat(6000)),
        };
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
        let mut request = client
            .request(method, app.url(case.path))
            .header(COOKIE, cookie)
            .body(body);
        if let Some(content_type) = case.content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let page = response.text().await.unwrap();
        assert_eq!(status, case.expect, "{}: {page}", case.name);
        assert!(
            !page.contains("<script>alert"),
            "{}: markup is escaped",
            case.name
        );
        assert!(
            !page.contains("panicked") && !page.contains("sqlx"),
            "{}: no internals",
            case.name
        );
        assert_eq!(
            snapshot(&app, &pool, &key).await,
            before,
            "{} changed something",
            case.name
        );
    }
    println!(
        "{} hostile cases refused, store and database unchanged",
        cases.len()
    );
    assert_eq!(app.cart().await, vec![(1, 2)]);
}
