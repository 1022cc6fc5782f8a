//! A session store that goes away: the shop answers 503 with `Retry-After` and a friendly page,
//! never a 500 or a panic, and recovers by itself when the store is back. Each test starts its
//! own store process on a spare loopback port, then stops and restarts it.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{StoreProcess, TestApp, spawn_app_with, unique_email};

async fn wait_until_ready(app: &TestApp) -> Duration {
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        if app.get("/readyz").await.status == StatusCode::OK {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the shop did not recover within 15 seconds of the store coming back");
}

/// Eight cart views at once, their statuses.
async fn concurrent_cart_views(app: &TestApp) -> Vec<StatusCode> {
    let mut views = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let request = app.client().get(app.url("/cart"));
        views.spawn(async move { request.send().await.unwrap().status() });
    }
    views.join_all().await
}

async fn the_shop_answers_503_while_the_store_is_down_and_recovers(kind: &'static str) {
    let mut server = StoreProcess::start(kind).await;
    let app = spawn_app_with(|settings| server.configure(settings)).await;
    let email = unique_email("outage");
    app.register(&email).await.assert_redirects_to("/");
    app.add_to_cart(1, "2").await.assert_redirects_to("/cart");
    let token = app.csrf_token().await;
    // Several requests at once, so the pool holds several connections when the store goes.
    assert!(
        concurrent_cart_views(&app)
            .await
            .iter()
            .all(|s| *s == StatusCode::OK),
        "before the outage"
    );

    server.stop().await;
    for path in ["/", "/cart", "/products/1", "/orders"] {
        let response = app.client().get(app.url(path)).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "GET {path}"
        );
        assert_eq!(response.headers()["retry-after"], "5");
        assert_eq!(response.headers()["x-served-by"], app.instance.as_str());
        let body = response.text().await.unwrap();
        assert!(
            body.contains("Back in a moment"),
            "a friendly page for {path}"
        );
        assert!(body.contains(&app.instance));
    }
    let add = app
        .post_raw(
            "/cart/items",
            &[
                ("product_id", "2"),
                ("quantity", "1"),
                ("csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(add.status, StatusCode::SERVICE_UNAVAILABLE);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.body.contains("session store: unavailable"));
    assert_eq!(
        app.get("/healthz").await.status,
        StatusCode::OK,
        "the process is alive"
    );

    server.resume().await;
    let took = wait_until_ready(&app).await;
    println!(
        "{kind}: ready again {} ms after the store came back",
        took.as_millis()
    );
    assert_eq!(app.get("/").await.status, StatusCode::OK);
    // Every pooled connection died with the store; none of them answers a shopper 503 now.
    for round in 0..3 {
        let statuses = concurrent_cart_views(&app).await;
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "round {round} after the store came back: {statuses:?}"
        );
    }
    if kind == "postgres" {
        // PostgreSQL keeps its data across a restart: the shopper is still signed in.
        assert_eq!(app.signed_in_as().await, Some(email));
        assert_eq!(app.cart().await, vec![(1, 2)]);
    } else {
        // Redis and Memcached here keep nothing on disk: the shopper is a guest again, and the
        // shop works for them at once.
        app.add_to_cart(3, "1").await.assert_redirects_to("/cart");
        assert_eq!(app.cart().await, vec![(3, 1)]);
    }
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_outage_gives_503_and_the_shop_recovers() {
    the_shop_answers_503_while_the_store_is_down_and_recovers("redis").await;
}

#[cfg(feature = "memcached")]
#[tokio::test]
async fn memcached_outage_gives_503_and_the_shop_recovers() {
    the_shop_answers_503_while_the_store_is_down_and_recovers("memcached").await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_outage_gives_503_and_the_shop_recovers() {
    the_shop_answers_503_while_the_store_is_down_and_recovers("postgres").await;
}

/// Three Memcached servers, one lost: only the sessions that lived on it are logged out, and
/// the shop keeps working for everyone.
#[cfg(feature = "memcached")]
#[tokio::test]
async fn losing_one_of_three_memcached_servers_logs_out_only_its_sessions() {
    use memcache::exp::Router;
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(StoreProcess::start("memcached").await);
    }
    let list: Vec<String> = servers
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port))
        .collect();
    let first = spawn_app_with(|settings| {
        settings.insert("SESSION_BACKEND".into(), "memcached".into());
        settings.insert("MEMCACHED_SERVERS".into(), list.join(","));
    })
    .await;
    let mut shoppers = vec![first];
    for _ in 1..30 {
        shoppers.push(crate::helpers::spawn_client(&shoppers[0]));
    }
    for shopper in &shoppers {
        shopper
            .add_to_cart(1, "1")
            .await
            .assert_redirects_to("/cart");
    }
    // Each session lives on the server the published routing function names, and only there.
    let prefix = shoppers[0].settings["SESSION_KEY_PREFIX"].clone();
    let mut on_the_lost_server = Vec::new();
    for shopper in &shoppers {
        let key = format!("{prefix}{}", crate::helpers::session_key(shopper));
        let home = shop::session::XxhRendezvous.route(key.as_bytes(), &list);
        for (index, server) in list.iter().enumerate() {
            assert_eq!(
                memcached_has(server, &key).await,
                index == home,
                "{key} on {server}"
            );
        }
        on_the_lost_server.push(home == 1);
    }
    servers[1].stop().await;
    let mut kept = 0;
    for (shopper, lost) in shoppers.iter().zip(on_the_lost_server) {
        let page = shopper.get("/cart").await;
        assert_eq!(page.status, StatusCode::OK, "the shop keeps working");
        match crate::helpers::cart_lines(&page.body).as_slice() {
            [(1, 1)] if !lost => kept += 1,
            [] => {
                assert!(lost, "a session on a live server was lost");
                // Logged out: a new session works at once.
                shopper
                    .add_to_cart(2, "1")
                    .await
                    .assert_redirects_to("/cart");
                assert_eq!(shopper.cart().await, vec![(2, 1)]);
            }
            other => panic!("unexpected cart {other:?} (on the lost server: {lost})"),
        }
    }
    println!(
        "{kept} of {} sessions survived losing one of three servers",
        shoppers.len()
    );
    assert!(
        kept > 0 && kept < shoppers.len(),
        "only the lost server's sessions are gone"
    );
    assert_eq!(shoppers[0].get("/readyz").await.status, StatusCode::OK);
}

/// Whether a Memcached server holds `key`, asked with the meta protocol over a plain socket.
#[cfg(feature = "memcached")]
async fn memcached_has(server: &str, key: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server).await.unwrap();
    stream
        .write_all(format!("mg {key}\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = [0_u8; 64];
    let n = stream.read(&mut answer).await.unwrap();
    match &answer[..n] {
        [b'H', b'D', ..] => true,
        [b'E', b'N', ..] => false,
        other => panic!("memcached answered {}", String::from_utf8_lossy(other)),
    }
}

/// Three replicas behind nginx, a shopper browsing steadily, and the store unreachable for ten
/// seconds: only 503s with Retry-After meanwhile (no 500, no panic, no replica exits), full
/// recovery within seconds, and the cart from before the outage intact.
async fn an_outage_under_load_gives_503s_and_loses_nothing(kind: &'static str) {
    use shop_lab::shopper::Shopper;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let mut server = StoreProcess::start(kind).await;
    let (mut settings, _data) = crate::helpers::test_settings_for(kind).await;
    server.configure(&mut settings);
    let (cluster, _work) = crate::helpers::round_robin_cluster(settings).await;
    let shopper = Shopper::new(&cluster.url, &unique_email("steady"), None).unwrap();
    assert!(shopper.register("steady-password").await.unwrap().0);
    for product in [1, 4, 7] {
        shopper.add(product, 2).await.unwrap();
    }
    let (_, cart_before, _) = shopper.look().await.unwrap();

    // The steady client: a cart view every 20 ms, recording what it saw.
    let stop = Arc::new(AtomicBool::new(false));
    let browsing = {
        let (stop, shopper, url) = (stop.clone(), shopper.clone(), cluster.url.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut seen = Vec::new();
            let started = std::time::Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                let cookie = shopper.cookie_header().unwrap_or_default();
                let at = started.elapsed();
                match client
                    .get(format!("{url}/cart"))
                    .header("cookie", cookie)
                    .send()
                    .await
                {
                    Ok(response) => {
                        let retry_after = response.headers().contains_key("retry-after");
                        seen.push((at, Some(response.status()), retry_after));
                    }
                    Err(_) => seen.push((at, None, false)),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.freeze(true).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    server.freeze(false).await;
    let back = std::time::Instant::now();
    let mut recovered = None;
    while back.elapsed() < Duration::from_secs(15) {
        if shopper
            .get("/readyz")
            .await
            .is_ok_and(|seen| seen.status == StatusCode::OK)
            && shopper
                .get("/cart")
                .await
                .is_ok_and(|seen| seen.status == StatusCode::OK)
        {
            recovered = Some(back.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = browsing.await.unwrap();

    let ok = seen
        .iter()
        .filter(|(_, s, _)| *s == Some(StatusCode::OK))
        .count();
    let unavailable: Vec<_> = seen
        .iter()
        .filter(|(_, s, _)| *s == Some(StatusCode::SERVICE_UNAVAILABLE))
        .collect();
    let other: Vec<_> = seen
        .iter()
        .filter(|(_, s, _)| {
            !matches!(
                *s,
                Some(StatusCode::OK) | Some(StatusCode::SERVICE_UNAVAILABLE)
            )
        })
        .collect();
    let recovered = recovered.expect("the shop recovers within 15 seconds");
    println!(
        "{kind}: {} requests, {ok} × 200, {} × 503, {} other; recovered {} ms after the store came back",
        seen.len(),
        unavailable.len(),
        other.len(),
        recovered.as_millis()
    );
    assert!(other.is_empty(), "only 200 and 503 answers: {other:?}");
    assert!(!unavailable.is_empty(), "the outage was seen");
    assert!(
        unavailable.iter().all(|(_, _, retry_after)| *retry_after),
        "every 503 says Retry-After"
    );
    assert!(
        recovered < Duration::from_secs(5),
        "recovery took {recovered:?}"
    );
    for replica in &cluster.replicas {
        let alive = reqwest::get(format!("http://127.0.0.1:{}/healthz", replica.port)).await;
        assert!(
            alive.is_ok_and(|r| r.status().is_success()),
            "{} is still running",
            replica.name
        );
    }
    let (user, cart_after, _) = shopper.look().await.unwrap();
    assert!(user.is_some(), "still logged in after the outage");
    assert_eq!(
        cart_after, cart_before,
        "no cart line from before the outage is lost"
    );
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_outage_under_load_gives_503s_and_loses_nothing() {
    an_outage_under_load_gives_503s_and_loses_nothing("redis").await;
}

#[cfg(feature = "memcached")]
#[tokio::test]
async fn memcached_outage_under_load_gives_503s_and_loses_nothing() {
    an_outage_under_load_gives_503s_and_loses_nothing("memcached").await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_outage_under_load_gives_503s_and_loses_nothing() {
    an_outage_under_load_gives_503s_and_loses_nothing("postgres").await;
}
