//! A shopper's own sessions: listed with when and where they signed in, and ended one by one or
//! all but the current, from any replica.

use regex::Regex;
use reqwest::StatusCode;

use crate::helpers::{
    PASSWORD, TestApp, spawn_app, spawn_client_named, spawn_replica, unique_email,
};

/// The ids of the sessions listed on the page, the current one marked.
fn listed(body: &str) -> Vec<(String, bool)> {
    let row = Regex::new(
        r#"(?s)<tr( class="current")?>\s*<td[^>]*>.*?action="/account/sessions/([0-9a-f]+)/end""#,
    )
    .unwrap();
    row.captures_iter(body)
        .map(|c| (c[2].to_owned(), c.get(1).is_some()))
        .collect()
}

async fn sessions_page(app: &TestApp) -> String {
    let page = app.get("/account/sessions").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page.body
}

#[tokio::test]
async fn a_shopper_sees_every_browser_they_are_signed_in_on() {
    let app = spawn_app().await;
    let email = unique_email("many");
    let laptop = spawn_client_named(&app, "Laptop Firefox");
    laptop.register(&email).await;
    let phone = spawn_client_named(&spawn_replica(&app).await, "Phone Safari");
    phone.login(&email, PASSWORD).await.assert_redirects_to("/");
    let body = sessions_page(&laptop).await;
    let sessions = listed(&body);
    assert_eq!(sessions.len(), 2, "{body}");
    assert_eq!(sessions.iter().filter(|(_, current)| *current).count(), 1);
    assert!(body.contains("Laptop Firefox") && body.contains("Phone Safari"));
    assert!(
        body.contains("An unknown browser"),
        "a browser string no parser knows is named as unknown, the string kept beside it"
    );
    assert!(body.contains("(this session)"));
    assert!(body.contains("just now"), "last active: {body}");
    // A session that logged out is no longer listed.
    phone.logout().await;
    assert_eq!(listed(&sessions_page(&laptop).await).len(), 1);
}

#[tokio::test]
async fn logging_out_everywhere_else_ends_the_other_sessions_on_every_replica() {
    let app = spawn_app().await;
    let email = unique_email("everywhere");
    app.register(&email).await;
    app.add_to_cart(1, "1").await;
    let mut others = Vec::new();
    for agent in ["Tablet", "Office PC"] {
        let other = spawn_client_named(&spawn_replica(&app).await, agent);
        other.login(&email, PASSWORD).await.assert_redirects_to("/");
        assert_eq!(other.signed_in_as().await, Some(email.clone()));
        others.push(other);
    }
    assert_eq!(listed(&sessions_page(&app).await).len(), 3);
    let page = app.post("/account/sessions/end-others", &[]).await;
    page.assert_redirects_to("/account/sessions");
    let body = sessions_page(&app).await;
    assert!(
        body.contains("signed out everywhere else (2 other sessions)"),
        "{body}"
    );
    assert_eq!(listed(&body).len(), 1, "only this session is left");
    for other in &others {
        assert_eq!(
            other.signed_in_as().await,
            None,
            "a guest at its next request"
        );
    }
    assert_eq!(
        app.signed_in_as().await,
        Some(email),
        "the current one stays"
    );
    assert_eq!(app.cart().await, vec![(1, 1)]);
}

#[tokio::test]
async fn one_other_session_can_be_ended_and_an_unknown_one_changes_nothing() {
    let app = spawn_app().await;
    let email = unique_email("one");
    app.register(&email).await;
    let other = spawn_client_named(&spawn_replica(&app).await, "Old phone");
    other.login(&email, PASSWORD).await;
    let (their_id, _) = listed(&sessions_page(&app).await)
        .into_iter()
        .find(|(_, current)| !current)
        .expect("the other session is listed");
    let page = app
        .post("/account/sessions/0000000000000000/end", &[])
        .await;
    page.assert_redirects_to("/account/sessions");
    assert!(sessions_page(&app).await.contains("had already ended"));
    assert_eq!(other.signed_in_as().await, Some(email.clone()));
    app.post(&format!("/account/sessions/{their_id}/end"), &[])
        .await
        .assert_redirects_to("/account/sessions");
    assert_eq!(other.signed_in_as().await, None);
    assert_eq!(app.signed_in_as().await, Some(email));
}

#[tokio::test]
async fn browsers_are_named_readably_with_their_own_text_kept_in_a_detail_line() {
    let app = spawn_app().await;
    let email = unique_email("agent");
    let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                  Chrome/156.0.0.0 Safari/537.36";
    let desktop = spawn_client_named(&app, chrome);
    desktop.register(&email).await;
    let body = sessions_page(&desktop).await;
    assert!(
        body.contains(&format!(
            r#"<span title="{chrome}">Chrome on Linux</span> <strong>(this session)</strong>"#
        )),
        "{body}"
    );
    assert!(
        body.contains(&format!(r#"<small class="agent muted">{chrome}</small>"#)),
        "{body}"
    );
}

#[tokio::test]
async fn concurrent_logins_are_all_listed() {
    let app = spawn_app().await;
    let email = unique_email("crowd");
    app.register(&email).await;
    let replica = spawn_replica(&app).await;
    let mut logins = tokio::task::JoinSet::new();
    for i in 0..8 {
        // From eight addresses: one client's concurrent sign-ins beyond the limit get 429.
        let client = crate::helpers::spawn_client_from(
            if i % 2 == 0 { &app } else { &replica },
            &format!("Browser {i}"),
            format!("127.0.0.{}", 10 + i).parse().unwrap(),
        );
        let email = email.clone();
        logins.spawn(async move {
            client
                .login(&email, PASSWORD)
                .await
                .assert_redirects_to("/");
        });
    }
    while let Some(login) = logins.join_next().await {
        login.expect("a login");
    }
    let body = sessions_page(&app).await;
    assert_eq!(
        listed(&body).len(),
        9,
        "no login lost from the index: {body}"
    );
}

#[tokio::test]
async fn the_sessions_page_asks_a_guest_to_log_in() {
    let app = spawn_app().await;
    app.get("/account/sessions")
        .await
        .assert_redirects_to("/login?reason=sessions");
    let page = app.post("/account/sessions/end-others", &[]).await;
    page.assert_redirects_to("/login?reason=sessions");
    let login = app.get("/login?reason=sessions").await;
    assert!(
        login
            .body
            .contains("Please log in to see where you are signed in.")
    );
}

#[tokio::test]
async fn log_out_everywhere_else_reaches_every_session_however_many_sign_ins() {
    let app = spawn_app().await;
    let email = unique_email("fifty-one");
    let first = crate::helpers::spawn_client(&app);
    first.register(&email).await;
    let mut others = Vec::new();
    for _ in 0..50 {
        let browser = crate::helpers::spawn_client(&app);
        browser
            .login(&email, PASSWORD)
            .await
            .assert_redirects_to("/");
        others.push(browser);
    }
    let last = others.pop().unwrap();
    last.post("/account/sessions/end-others", &[])
        .await
        .assert_redirects_to("/account/sessions");
    assert_eq!(
        first.signed_in_as().await,
        None,
        "the first of 51 sessions survived log out everywhere else"
    );
    for browser in &others {
        assert_eq!(browser.signed_in_as().await, None);
    }
    assert_eq!(last.signed_in_as().await, Some(email));
}
