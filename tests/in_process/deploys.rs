//! Two versions of the shop serving the same shoppers, as during a deploy or a rollback: what one
//! version stored, the other reads, and what it cannot read it never overwrites. The state of a
//! real session is rewritten in the store as another version would have written it (fields this
//! version does not know, a value or a whole state in a shape it cannot read), then the shopper
//! goes on through this version; and every released format in `tests/fixtures/sessions/` must be
//! read by this one.

use std::collections::HashMap;

use actix_session::storage::{SessionKey, SessionStore};
use actix_web::cookie::time::Duration;
use reqwest::StatusCode;
use serde_json::{Value, json};
use shop::session::{MAC_ENTRY, StateMac, TAG_REQUIRED, Tag};

use crate::helpers::{PASSWORD, Page, TestApp, session_key, spawn_app, unique_email};

async fn stored(app: &TestApp, key: &str) -> String {
    let store = app.store.as_ref().expect("an in-process store");
    store
        .raw(key)
        .await
        .expect("the store answers")
        .expect("a live session")
        .0
}

async fn state_of(app: &TestApp, key: &str) -> HashMap<String, String> {
    serde_json::from_str(&stored(app, key).await).expect("a state this version wrote")
}

/// Puts a state under `key` as another version of the shop would have written it: tagged, as
/// every release since 0.4.0 tags what it writes (a whole state in another format is written
/// as it is).
async fn write_as_another_version(app: &TestApp, key: &str, bytes: &str) {
    let sealed = match serde_json::from_str::<serde_json::Map<String, Value>>(bytes) {
        Ok(mut state) if !state.contains_key("v") => {
            state.remove(MAC_ENTRY);
            state_mac(app).seal(key, serde_json::to_string(&state).unwrap())
        }
        _ => bytes.to_owned(),
    };
    write_raw(app, key, &sealed).await;
}

/// Puts exactly `bytes` under `key`.
async fn write_raw(app: &TestApp, key: &str, bytes: &str) {
    let store = app.store.as_ref().expect("an in-process store");
    let session_key = SessionKey::try_from(key.to_owned()).unwrap();
    store.delete(&session_key).await.unwrap();
    assert!(
        store
            .insert_new(key, bytes, &Duration::seconds(1800))
            .await
            .unwrap()
    );
}

async fn shopper_with_a_cart(app: &TestApp) -> (String, String) {
    let email = unique_email("deploy");
    app.register(&email).await.assert_redirects_to("/");
    app.add_to_cart(3, "2").await.assert_redirects_to("/cart");
    (email, session_key(app))
}

/// The tag key of the app's `SESSION_SECRET`.
fn state_mac(app: &TestApp) -> StateMac {
    StateMac::new(
        crate::helpers::config_of(&app.settings)
            .session
            .secret
            .bytes(),
    )
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn being_updated(page: &Page) -> bool {
    page.status == StatusCode::SERVICE_UNAVAILABLE && page.body.contains("being updated")
}

#[tokio::test]
async fn an_edit_keeps_the_fields_a_newer_version_wrote() {
    let app = spawn_app().await;
    let (email, key) = shopper_with_a_cart(&app).await;
    let mut state = state_of(&app, &key).await;
    // What a newer release writes: a field on the cart line, a setting on the login, and a
    // value of its own.
    let mut cart = json_of(&state["cart"]);
    cart[0]["gift_wrap"] = json!(true);
    state.insert("cart".into(), cart.to_string());
    let mut user = json_of(&state["user"]);
    user["locale"] = json!("fr-FR");
    state.insert("user".into(), user.to_string());
    state.insert("wishlist".into(), "[7,9]".into());
    write_as_another_version(&app, &key, &serde_json::to_string(&state).unwrap()).await;

    app.add_to_cart(3, "1").await.assert_redirects_to("/cart");
    app.add_to_cart(5, "1").await.assert_redirects_to("/cart");
    assert_eq!(app.cart().await, vec![(3, 3), (5, 1)]);

    let after = state_of(&app, &key).await;
    let cart = json_of(&after["cart"]);
    assert_eq!(
        cart[0],
        json!({"product_id": 3, "quantity": 3, "unit_price_cents": 4900, "gift_wrap": true}),
        "the edited line keeps the field it does not know: {cart}"
    );
    assert_eq!(
        cart[1],
        json!({"product_id": 5, "quantity": 1, "unit_price_cents": 6500})
    );
    assert_eq!(json_of(&after["user"])["locale"], json!("fr-FR"));
    assert_eq!(after["wishlist"], "[7,9]");
    assert_eq!(app.signed_in_as().await.as_deref(), Some(email.as_str()));
}

#[tokio::test]
async fn a_cart_this_version_cannot_read_survives_every_change_byte_for_byte() {
    let app = spawn_app().await;
    let (email, key) = shopper_with_a_cart(&app).await;
    let newer_cart = r#"{"v":2,"lines":[{"product":3,"qty":2,"unit_price_cents":1450}]}"#;
    let mut state = state_of(&app, &key).await;
    state.insert("cart".into(), newer_cart.into());
    // Without the last add's message, which a page view would show and so write away: every
    // refused change below must leave the state exactly as it is.
    state.remove("flash");
    write_as_another_version(&app, &key, &serde_json::to_string(&state).unwrap()).await;
    let before = stored(&app, &key).await;

    let cart_page = app.get("/cart").await;
    assert!(
        being_updated(&cart_page),
        "the cart page says the shop is being updated, not that the cart is empty: {} {}",
        cart_page.status,
        cart_page.body
    );
    let added = app.add_to_cart(4, "1").await;
    assert!(being_updated(&added), "{} {}", added.status, added.body);
    let token = app.csrf_token().await;
    let changed = app
        .post_raw(
            "/cart/items/3",
            &[("quantity", "1"), ("csrf_token", token.as_str())],
        )
        .await;
    assert!(
        being_updated(&changed),
        "{} {}",
        changed.status,
        changed.body
    );
    let checkout = app.post("/checkout", &[]).await;
    assert!(
        being_updated(&checkout),
        "{} {}",
        checkout.status,
        checkout.body
    );
    assert_eq!(
        stored(&app, &key).await,
        before,
        "the stored bytes are untouched"
    );
    // The login is a value of its own: still readable, still signed in.
    assert_eq!(app.signed_in_as().await.as_deref(), Some(email.as_str()));
    assert_eq!(stored(&app, &key).await, before);
    assert_eq!(state_of(&app, &key).await["cart"], newer_cart);
}

#[tokio::test]
async fn a_login_this_version_cannot_read_is_kept_while_the_cart_still_works() {
    let app = spawn_app().await;
    let (email, key) = shopper_with_a_cart(&app).await;
    let mut state = state_of(&app, &key).await;
    let newer_user = r#"{"v":2,"account":{"id":1,"email":"someone@example.com"}}"#;
    state.insert("user".into(), newer_user.into());
    write_as_another_version(&app, &key, &serde_json::to_string(&state).unwrap()).await;

    // Shown as signed out here, but the cart goes on, and the login stays as it was written.
    assert_eq!(app.signed_in_as().await, None);
    app.add_to_cart(4, "1").await.assert_redirects_to("/cart");
    assert_eq!(app.cart().await, vec![(3, 2), (4, 1)]);
    assert_eq!(state_of(&app, &key).await["user"], newer_user);
    // Signing in here would renew the session and replace the login it cannot read.
    let login = app.login(&email, PASSWORD).await;
    assert!(being_updated(&login), "{} {}", login.status, login.body);
    assert_eq!(state_of(&app, &key).await["user"], newer_user);
}

#[tokio::test]
async fn a_state_in_another_versions_format_is_never_overwritten() {
    let app = spawn_app().await;
    let (email, key) = shopper_with_a_cart(&app).await;
    let state = state_of(&app, &key).await;
    // The shape actix-session's next release stores: versioned, the values inside.
    let newer = json!({"v": 2, "state": state}).to_string();
    write_as_another_version(&app, &key, &newer).await;

    let home = app.get("/").await;
    assert_eq!(home.status, StatusCode::OK, "it reads as no session here");
    let added = app.add_to_cart(4, "1").await;
    assert!(being_updated(&added), "{} {}", added.status, added.body);
    let login = app.login(&email, PASSWORD).await;
    assert!(being_updated(&login), "{} {}", login.status, login.body);
    assert_eq!(
        stored(&app, &key).await,
        newer,
        "the stored bytes are untouched"
    );
}

/// Every format a release stored is read by this version (Kubernetes keeps such fixtures of
/// every released object): the login, the cart and the message come through, and an edit keeps
/// what this version does not know. Each fixture is the exact bytes a store held (every store
/// holds the same encoding: the codec's JSON object of strings).
#[tokio::test]
async fn every_released_session_format_is_read_and_edited_without_loss() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sessions");
    let mut fixtures: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".state.json"))
        .collect();
    fixtures.sort();
    let signed_in_at = regex::Regex::new(r#"\\"signed_in_at\\":(\d+)"#).unwrap();
    assert!(fixtures.len() >= 2, "fixtures in {dir}: {fixtures:?}");
    for fixture in fixtures {
        let name = fixture.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read_to_string(&fixture).unwrap();
        // The bytes as stored, but for the time of the sign-in, which must be within the
        // absolute lifetime to count: it is set to now, digits for digits.
        let bytes = signed_in_at.replace(bytes.trim_end(), |_: &regex::Captures<'_>| {
            format!(r#"\"signed_in_at\":{}"#, shop::domain::now())
        });
        let mut written: HashMap<String, String> = serde_json::from_str(&bytes).unwrap();
        let app = spawn_app().await;
        let (_, key) = shopper_with_a_cart(&app).await;
        let tagged = written.remove(MAC_ENTRY).is_some();
        // What a later release may write: tagged, as every release since 0.4.0 tags its states.
        let later = name.starts_with("newer.");
        if tagged {
            // The tag as that release wrote it verifies under the key it was written for and the
            // tests' secret; the state, its time set to now, is tagged again for this session.
            let tag_key = std::fs::read_to_string(fixture.with_extension("key")).unwrap();
            let as_stored = std::fs::read_to_string(&fixture).unwrap();
            assert_eq!(
                state_mac(&app).check(tag_key.trim(), as_stored.trim_end().as_bytes()),
                Tag::Valid,
                "{name}: its tag"
            );
        } else if TAG_REQUIRED && !later {
            // A release before tags: its state is read as no session now.
            write_raw(&app, &key, &bytes).await;
            assert_eq!(
                app.signed_in_as().await,
                None,
                "{name}: untagged state is refused"
            );
            assert!(app.cart().await.is_empty(), "{name}");
            continue;
        }
        match tagged || later {
            true => {
                write_as_another_version(&app, &key, &serde_json::to_string(&written).unwrap())
                    .await
            }
            // As stored: a release before tags.
            false => write_raw(&app, &key, &bytes).await,
        }

        let email = json_of(&written["user"])["email"]
            .as_str()
            .unwrap()
            .to_owned();
        let lines: Vec<(i64, u32)> = json_of(&written["cart"])
            .as_array()
            .unwrap()
            .iter()
            .map(|line| {
                let id = line["product_id"].as_i64().unwrap();
                (
                    id,
                    u32::try_from(line["quantity"].as_u64().unwrap()).unwrap(),
                )
            })
            .collect();
        let message = json_of(&written["flash"])["text"]
            .as_str()
            .unwrap()
            .to_owned();
        let home = app.get("/").await;
        assert!(home.body.contains(&message), "{name}: the message is shown");
        assert_eq!(app.signed_in_as().await, Some(email.clone()), "{name}");
        assert_eq!(app.cart().await, lines, "{name}");

        app.add_to_cart(lines[0].0, "1")
            .await
            .assert_redirects_to("/cart");
        let after = state_of(&app, &key).await;
        let (cart_before, cart_after) = (json_of(&written["cart"]), json_of(&after["cart"]));
        for (field, value) in cart_before[0].as_object().unwrap() {
            if field != "quantity" {
                assert_eq!(
                    &cart_after[0][field], value,
                    "{name}: cart line field {field}"
                );
            }
        }
        assert_eq!(cart_after[0]["quantity"], json!(lines[0].1 + 1), "{name}");
        assert_eq!(
            cart_after[1], cart_before[1],
            "{name}: an untouched line is kept whole"
        );
        assert_eq!(
            json_of(&after["user"]),
            json_of(&written["user"]),
            "{name}: the login"
        );
        for (value, text) in &written {
            if !["cart", "flash", "rev"].contains(&value.as_str()) {
                assert_eq!(
                    &after[value], text,
                    "{name}: the value {value} is kept as written"
                );
            }
        }
    }
}
