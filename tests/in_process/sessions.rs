//! What the session layer promises: the cookie holds only an opaque key, the key rotates on
//! login, logout ends the session for good, and expiry is enforced by the store.

use reqwest::StatusCode;
use shop::session::{Backend, Operation, Store};

use crate::helpers::{
    PASSWORD, TestApp, fresh_client, session_key, signed_in_as, spawn_app, spawn_app_with,
    store_of, unique_email,
};

async fn session_store(app: &TestApp) -> Store {
    store_of(&app.settings).await
}

fn store_backend(app: &TestApp) -> Backend {
    app.store
        .as_ref()
        .expect("an in-process instance")
        .backend()
}

/// A client that sends exactly this cookie, as an attacker replaying it would.
async fn get_with_cookie(app: &TestApp, cookie: &str, path: &str) -> (StatusCode, String) {
    let client = fresh_client(app);
    let response = client
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_cookie_holds_only_an_opaque_key_and_stays_small() {
    let app = spawn_app().await;
    app.register(&unique_email("small")).await;
    for id in 1..=12 {
        app.add_to_cart(id, "3").await;
    }
    let key = session_key(&app);
    assert_eq!(key.len(), 64);
    assert!(
        key.bytes().all(|b| b.is_ascii_hexdigit()),
        "the key is opaque: {key}"
    );
    let cookie = app.session_cookie().unwrap();
    assert!(cookie.len() < 200, "the cookie is {} bytes", cookie.len());
    assert!(!cookie.contains("cart") && !cookie.contains("user"));
    // The state itself is in the store, under that key, with an expiry.
    let (state, ttl) = session_store(&app)
        .await
        .raw(&key)
        .await
        .unwrap()
        .expect("stored state");
    assert!(state.contains("\\\"product_id\\\":12"), "{state}");
    assert!((1700..=1800).contains(&ttl), "ttl {ttl}");
}

#[tokio::test]
async fn the_session_key_changes_on_login_and_the_old_one_is_gone() {
    let app = spawn_app().await;
    let email = unique_email("rotate");
    app.register(&email).await;
    app.logout().await;
    app.add_to_cart(1, "1").await;
    let guest_key = session_key(&app);
    app.login(&email, crate::helpers::PASSWORD)
        .await
        .assert_redirects_to("/");
    let user_key = session_key(&app);
    assert_ne!(guest_key, user_key);
    let store = session_store(&app).await;
    assert!(
        store.raw(&guest_key).await.unwrap().is_none(),
        "the guest key was deleted"
    );
    assert!(store.raw(&user_key).await.unwrap().is_some());
}

#[tokio::test]
async fn a_cookie_replayed_after_logout_gets_a_guest_session() {
    let app = spawn_app().await;
    let email = unique_email("replay");
    app.register(&email).await;
    app.add_to_cart(2, "2").await;
    let stolen = app.session_cookie().unwrap();
    let (_, before) = get_with_cookie(&app, &stolen, "/").await;
    assert_eq!(signed_in_as(&before), Some(email));
    app.logout().await;
    let (status, after) = get_with_cookie(&app, &stolen, "/cart").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(signed_in_as(&after), None);
    assert!(after.contains("Your cart is empty"));
}

#[tokio::test]
async fn a_tampered_cookie_is_treated_as_a_fresh_guest() {
    let app = spawn_app().await;
    app.register(&unique_email("tamper")).await;
    let cookie = app.session_cookie().unwrap();
    let (name, value) = cookie.split_once('=').unwrap();
    let mut bytes = value.as_bytes().to_vec();
    bytes[10] = if bytes[10] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{name}={}", String::from_utf8(bytes).unwrap());
    let truncated = format!("{name}={}", &value[..value.len() / 2]);
    let foreign = "shop_session=eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl".to_owned();
    for cookie in [
        tampered,
        truncated,
        foreign,
        format!("{name}={}", "A".repeat(5000)),
    ] {
        let (status, body) = get_with_cookie(&app, &cookie, "/").await;
        assert_eq!(status, StatusCode::OK, "{cookie}");
        assert_eq!(signed_in_as(&body), None);
    }
}

#[tokio::test]
async fn an_idle_session_expires_in_the_store_and_the_reaper_deletes_it() {
    let app = spawn_app_with(|s| {
        s.insert("SESSION_TTL_SECONDS".into(), "2".into());
    })
    .await;
    app.register(&unique_email("idle")).await;
    app.add_to_cart(1, "1").await;
    let key = session_key(&app);
    let stolen = app.session_cookie().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    // The browser would have dropped the cookie; a client that kept it gets a guest session.
    let (_, body) = get_with_cookie(&app, &stolen, "/cart").await;
    assert_eq!(signed_in_as(&body), None);
    assert!(body.contains("Your cart is empty"));
    let store = session_store(&app).await;
    match store.backend() {
        // The SQL stores keep the row until the reaper runs; it never loads meanwhile.
        Backend::Sqlite | Backend::Postgres => {
            assert!(
                store.raw(&key).await.unwrap().is_some(),
                "expired but not yet reaped"
            );
            assert!(store.reap_expired().await.unwrap() >= 1);
        }
        // Redis and Memcached expire keys themselves.
        _ => {}
    }
    assert!(store.raw(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn a_page_view_slides_the_expiry_without_rewriting_the_session() {
    let app = spawn_app_with(|s| {
        s.insert("SESSION_TTL_SECONDS".into(), "4".into());
    })
    .await;
    app.add_to_cart(1, "1").await;
    app.get("/cart").await; // shows and clears the flash message
    let key = session_key(&app);
    let store = session_store(&app).await;
    let (before, _) = store.raw(&key).await.unwrap().unwrap();
    // Past half the TTL, so even the SQL stores' lazy slide is due.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let response = app.client().get(app.url("/cart")).send().await.unwrap();
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.starts_with("shop_session=") && cookie.contains("Max-Age=4"),
        "the cookie's Max-Age slides too: {cookie}"
    );
    let (after, ttl_after) = store.raw(&key).await.unwrap().unwrap();
    assert_eq!(before, after, "the slide kept the stored bytes");
    assert!(
        ttl_after >= 3,
        "the expiry was pushed back by the read: {ttl_after} s left"
    );
}

#[tokio::test]
async fn a_page_view_costs_one_store_read_and_no_write() {
    let app = spawn_app().await;
    app.register(&unique_email("reader")).await;
    app.add_to_cart(1, "1").await;
    app.get("/cart").await; // shows, and so removes, the flash message
    let stats = app.store.as_ref().unwrap().stats();
    let (trips, writes) = (stats.round_trips(), stats.writes());
    for path in ["/", "/cart", "/products/2", "/orders"] {
        assert_eq!(app.get(path).await.status, StatusCode::OK, "{path}");
    }
    assert_eq!(
        stats.round_trips() - trips,
        4,
        "one store call per page view"
    );
    assert_eq!(stats.writes() - writes, 0, "no write for a page view");
}

#[tokio::test]
async fn a_hundred_page_views_cost_a_hundred_reads_and_at_most_a_few_slides() {
    let app = spawn_app_with(|s| {
        s.insert("SESSION_TTL_SECONDS".into(), "4".into());
    })
    .await;
    app.register(&unique_email("browser")).await;
    app.add_to_cart(3, "2").await;
    app.get("/cart").await;
    let stats = app.store.as_ref().unwrap().stats();
    let calls = |op| stats.calls(op);
    let (trips, loads, slides) = (
        stats.round_trips(),
        calls(Operation::Load),
        calls(Operation::Slide),
    );
    for _ in 0..100 {
        assert_eq!(app.get("/cart").await.status, StatusCode::OK);
    }
    let (loads, slides) = (
        calls(Operation::Load) - loads,
        calls(Operation::Slide) - slides,
    );
    assert_eq!(loads, 100, "one read per view");
    assert_eq!(stats.round_trips() - trips, loads + slides, "nothing else");
    match store_backend(&app) {
        // The slide rides in the read itself.
        Backend::Redis | Backend::Memcached | Backend::Memory => assert_eq!(slides, 0),
        // A separate write, only once less than half the TTL is left.
        Backend::Sqlite | Backend::Postgres => assert!(slides <= 5, "{slides} slides"),
    }
}

#[tokio::test]
async fn an_active_shopper_stays_signed_in_and_an_idle_one_expires() {
    const TTL: u64 = 6;
    let settings = |s: &mut std::collections::HashMap<String, String>| {
        s.insert("SESSION_TTL_SECONDS".into(), TTL.to_string());
    };
    let active = spawn_app_with(settings).await;
    let idle = crate::helpers::spawn_client(&active);
    let (active_email, idle_email) = (unique_email("active"), unique_email("idle"));
    active.register(&active_email).await;
    active.add_to_cart(2, "1").await;
    idle.register(&idle_email).await;
    idle.add_to_cart(2, "1").await;
    let started = std::time::Instant::now();
    let mut views = 0;
    // A view every TTL/3 for 3 × TTL: the idle expiry is counted from the last request.
    while started.elapsed() < std::time::Duration::from_secs(3 * TTL) {
        tokio::time::sleep(std::time::Duration::from_secs(TTL / 3)).await;
        let page = active.get("/cart").await;
        assert_eq!(
            signed_in_as(&page.body).as_deref(),
            Some(active_email.as_str()),
            "still signed in after {:?}",
            started.elapsed()
        );
        assert_eq!(crate::helpers::cart_lines(&page.body), vec![(2, 1)]);
        views += 1;
    }
    assert!(views >= 8, "{views} views");
    assert_eq!(idle.signed_in_as().await, None, "the idle shopper expired");
    assert!(idle.cart().await.is_empty());
}

#[tokio::test]
async fn the_inspector_shows_what_the_store_holds_but_never_the_whole_key() {
    let app = spawn_app().await;
    let email = unique_email("inspect");
    app.register(&email).await;
    app.add_to_cart(4, "3").await;
    let key = session_key(&app);
    let page = app.get("/session").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&format!("<code>{}…</code>", &key[..8])));
    assert!(!page.body.contains(&key), "the whole key is never shown");
    assert!(page.body.contains(&email));
    assert!(page.body.contains("product_id"), "the stored cart is shown");
    assert!(page.body.contains(" seconds, unless something changes"));
    let guest = crate::helpers::spawn_client(&app);
    let first = guest.get("/session").await;
    assert!(first.body.contains("Nothing is stored for you yet"));
}

#[tokio::test]
async fn a_sign_in_ends_after_its_absolute_lifetime_however_active() {
    let app = spawn_app_with(|s| {
        s.insert("SESSION_MAX_LOGIN_SECONDS".into(), "2".into());
    })
    .await;
    let email = unique_email("tireless");
    app.register(&email).await;
    app.add_to_cart(1, "1").await;
    let signed_in_key = session_key(&app);
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_millis(1500) {
        assert_eq!(
            app.signed_in_as().await,
            Some(email.clone()),
            "active and young"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let page = app.get("/").await;
    assert_eq!(signed_in_as(&page.body), None, "past the absolute lifetime");
    assert!(
        page.body
            .contains("For your security you were signed out after 2 seconds."),
        "the shopper is told why: {}",
        page.body
    );
    let store = session_store(&app).await;
    assert_eq!(
        store.raw(&signed_in_key).await.unwrap(),
        None,
        "the signed-in session is deleted from the store"
    );
    let next = app.get("/").await;
    assert!(!next.body.contains("signed out after"), "told once");
    assert_eq!(app.cart().await, vec![(1, 1)], "the cart is kept");
    app.get("/orders")
        .await
        .assert_redirects_to("/login?reason=orders");
}

#[tokio::test]
async fn a_cart_left_by_an_ended_sign_in_goes_back_to_its_account_only() {
    let app = spawn_app_with(|s| {
        s.insert("SESSION_MAX_LOGIN_SECONDS".into(), "1".into());
    })
    .await;
    let (owner, next) = (unique_email("owner"), unique_email("next"));
    app.register(&next).await;
    app.logout().await;
    app.register(&owner).await;
    app.add_to_cart(1, "2").await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(app.signed_in_as().await, None, "past the absolute lifetime");
    assert_eq!(app.cart().await, vec![(1, 2)], "kept for its account");
    // The next account to sign in on this browser does not get it, nor can it order it.
    app.login(&next, PASSWORD).await.assert_redirects_to("/");
    assert!(
        app.cart().await.is_empty(),
        "another account's cart stayed behind"
    );
    app.post("/checkout", &[])
        .await
        .assert_redirects_to("/cart");
    assert!(app.order_ids().await.is_empty());
    // The same account signing in again gets its cart back.
    app.logout().await;
    app.register(&unique_email("spare")).await;
    app.logout().await;
    app.login(&owner, PASSWORD).await.assert_redirects_to("/");
    app.add_to_cart(1, "1").await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(app.signed_in_as().await, None);
    app.login(&owner, PASSWORD).await.assert_redirects_to("/");
    assert_eq!(app.cart().await, vec![(1, 1)], "its own cart comes back");
}

/// Whoever can write to the session store (a pod beside it, `redis-cli` on the network) but
/// does not hold `SESSION_SECRET` cannot sign in as anyone: a state edited by hand, or another
/// session's state copied under one's own key, does not verify and loads as no session.
#[tokio::test]
async fn state_written_into_the_store_by_hand_signs_nobody_in() {
    let app = spawn_app().await;
    let victim = crate::helpers::spawn_client(&app);
    victim.register(&unique_email("victim")).await;
    victim.add_to_cart(1, "1").await;
    victim.post("/checkout", &[]).await;
    let victims_orders = victim.order_ids().await;
    assert_eq!(victims_orders.len(), 1);
    let attacker = crate::helpers::spawn_client(&app);
    attacker.register(&unique_email("attacker")).await;
    attacker.add_to_cart(2, "1").await;
    let store = session_store(&app).await;
    let (own, victims) = (session_key(&attacker), session_key(&victim));
    let (stored, _) = store.raw(&own).await.unwrap().unwrap();
    let (victim_state, _) = store.raw(&victims).await.unwrap().unwrap();
    let mut state: std::collections::HashMap<String, String> =
        serde_json::from_str(&stored).unwrap();
    let victim_user: std::collections::HashMap<String, String> =
        serde_json::from_str(&victim_state).unwrap();
    state.insert("user".into(), victim_user["user"].clone());
    let edited_keeping_tag = serde_json::to_string(&state).unwrap();
    state.remove("__mac");
    let edited_untagged = serde_json::to_string(&state).unwrap();
    for (how, forged) in [
        ("the victim's login written in, untagged", edited_untagged),
        (
            "the victim's login written in, the old tag kept",
            edited_keeping_tag,
        ),
        (
            "the victim's whole state copied under one's own key",
            victim_state.clone(),
        ),
    ] {
        actix_session::storage::SessionStore::delete(&store, &own.clone().try_into().unwrap())
            .await
            .unwrap();
        assert!(
            store
                .insert_new(
                    &own,
                    &forged,
                    &actix_web::cookie::time::Duration::seconds(600)
                )
                .await
                .unwrap()
        );
        assert_eq!(attacker.signed_in_as().await, None, "{how}");
        attacker
            .get("/orders")
            .await
            .assert_redirects_to("/login?reason=orders");
        for id in &victims_orders {
            assert_eq!(
                attacker.get(&format!("/orders/{id}")).await.status,
                reqwest::StatusCode::SEE_OTHER,
                "{how}"
            );
        }
    }
    // The victim's own session, untouched, still works.
    assert_eq!(victim.order_ids().await, victims_orders);
}
