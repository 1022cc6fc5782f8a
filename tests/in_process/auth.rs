use reqwest::StatusCode;

use crate::helpers::{PASSWORD, spawn_app, unique_email};

#[tokio::test]
async fn registering_signs_the_new_user_in() {
    let app = spawn_app().await;
    let email = unique_email("ada");
    app.register(&email).await.assert_redirects_to("/");
    assert_eq!(app.signed_in_as().await, Some(email));
}

#[tokio::test]
async fn emails_are_stored_lower_cased_and_trimmed() {
    let app = spawn_app().await;
    let email = unique_email("grace");
    app.register(&format!("  {}  ", email.to_uppercase()))
        .await
        .assert_redirects_to("/");
    app.logout().await;
    app.login(&email, PASSWORD).await.assert_redirects_to("/");
}

#[tokio::test]
async fn registering_an_existing_email_is_refused_with_a_clear_message() {
    let app = spawn_app().await;
    let email = unique_email("dup");
    app.register(&email).await.assert_redirects_to("/");
    app.logout().await;
    let again = app
        .post(
            "/register",
            &[("email", &email), ("password", "another password")],
        )
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.body.contains("already exists"));
    assert_eq!(app.signed_in_as().await, None);
    // The first password still works: nothing was overwritten.
    app.login(&email, PASSWORD).await.assert_redirects_to("/");
}

#[tokio::test]
async fn invalid_registrations_are_refused_and_store_nothing() {
    let app = spawn_app().await;
    let long_email = format!("{}@example.com", "a".repeat(300));
    let cases = [
        ("not-an-email", PASSWORD, "does not look like an email"),
        ("", PASSWORD, "enter your email"),
        (long_email.as_str(), PASSWORD, "too long"),
        ("short@example.com", "short", "at least 8 characters"),
        (
            "long@example.com",
            &"p".repeat(200),
            "at most 128 characters",
        ),
    ];
    for (email, password, message) in cases {
        let page = app
            .post("/register", &[("email", email), ("password", password)])
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{email}");
        assert!(page.body.contains(message), "{email}: {message}");
        assert_eq!(app.signed_in_as().await, None);
        let login = app.login(email, password).await;
        assert_eq!(
            login.status,
            StatusCode::UNAUTHORIZED,
            "no account was made for {email}"
        );
    }
}

#[tokio::test]
async fn a_form_with_missing_fields_is_refused() {
    let app = spawn_app().await;
    let page = app
        .post("/register", &[("email", "someone@example.com")])
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("incomplete"));
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = spawn_app().await;
    let email = unique_email("bob");
    app.register(&email).await;
    app.logout().await;
    let wrong_password = app.login(&email, "not the password").await;
    let unknown_email = app.login(&unique_email("nobody"), PASSWORD).await;
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_email.status, StatusCode::UNAUTHORIZED);
    let message = "That email and password do not match an account.";
    assert!(wrong_password.body.contains(message));
    assert!(unknown_email.body.contains(message));
    assert_eq!(app.signed_in_as().await, None);
}

#[tokio::test]
async fn logging_out_signs_the_user_out() {
    let app = spawn_app().await;
    app.register(&unique_email("carol")).await;
    app.logout().await.assert_redirects_to("/");
    assert_eq!(app.signed_in_as().await, None);
}

#[tokio::test]
async fn html_in_an_email_is_shown_escaped() {
    let app = spawn_app().await;
    let page = app
        .post(
            "/login",
            &[("email", "<script>alert(1)</script>"), ("password", "x")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(!page.body.contains("<script>alert(1)</script>"));
    assert!(page.body.contains("&#60;script&#62;") || page.body.contains("&lt;script&gt;"));
}

#[tokio::test]
async fn five_failed_logins_lock_the_account_on_every_replica() {
    let app = spawn_app().await;
    let replica = crate::helpers::spawn_replica(&app).await;
    let email = unique_email("locked");
    let bystander = unique_email("bystander");
    app.register(&email).await;
    app.logout().await;
    app.register(&bystander).await;
    app.logout().await;
    for attempt in 0..5 {
        let on = if attempt % 2 == 0 { &app } else { &replica };
        assert_eq!(
            on.login(&email, "wrong password").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // The sixth try, with the right password, on the other replica: refused before any check.
    let locked = replica.login(&email, PASSWORD).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.body.contains("Too many failed attempts"));
    assert_eq!(replica.signed_in_as().await, None);
    // Another account is not affected.
    app.login(&bystander, PASSWORD)
        .await
        .assert_redirects_to("/");
}

#[tokio::test]
async fn a_successful_login_clears_the_failures() {
    let app = spawn_app().await;
    let email = unique_email("forgetful");
    app.register(&email).await;
    app.logout().await;
    for _ in 0..4 {
        app.login(&email, "wrong password").await;
    }
    app.login(&email, PASSWORD).await.assert_redirects_to("/");
    app.logout().await;
    for _ in 0..4 {
        assert_eq!(
            app.login(&email, "wrong again").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    app.login(&email, PASSWORD).await.assert_redirects_to("/");
}

#[tokio::test]
async fn forty_concurrent_wrong_passwords_check_at_most_five_and_never_lock_out_the_owner() {
    let app = spawn_app().await;
    let email = unique_email("target");
    let owner = crate::helpers::spawn_client(&app);
    owner.register(&email).await.assert_redirects_to("/");
    owner.logout().await;
    let attacker = crate::helpers::spawn_client(&app);
    let token = attacker.csrf_token().await;
    let mut guesses = tokio::task::JoinSet::new();
    for i in 0..40 {
        let request = attacker.client().post(app.url("/login")).form(&[
            ("email", email.as_str()),
            ("password", &format!("wrong guess {i}")),
            ("csrf_token", token.as_str()),
        ]);
        guesses.spawn(async move { request.send().await.unwrap().status() });
    }
    let (mut checked, mut refused) = (0, 0);
    while let Some(status) = guesses.join_next().await {
        match status.unwrap() {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("a guess answered {other}"),
        }
    }
    println!("40 concurrent guesses: {checked} checked, {refused} refused");
    assert!(
        (1..=5).contains(&checked),
        "{checked} passwords were checked"
    );
    assert_eq!(checked + refused, 40);
    // The owner, from another address, signs in at the first try.
    let from_elsewhere =
        shop_lab::shopper::Shopper::new(&app.address, &email, Some("127.0.0.3".parse().unwrap()))
            .unwrap();
    assert!(
        from_elsewhere.login(PASSWORD).await.unwrap(),
        "the owner is not locked out"
    );
    // The attacker's address stays refused, even with the right password.
    let page = attacker.login(&email, PASSWORD).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn registering_a_taken_email_answers_before_any_hashing() {
    let app = spawn_app().await;
    let email = unique_email("taken");
    app.register(&email).await;
    let other = crate::helpers::spawn_client(&app);
    let started = std::time::Instant::now();
    let mut refusals = tokio::task::JoinSet::new();
    // Sixteen at once: with a hash each, two cores would take well over a second.
    for _ in 0..16 {
        let request = other.client().post(app.url("/register")).form(&[
            ("email", email.as_str()),
            ("password", PASSWORD),
            ("csrf_token", other.csrf_token().await.as_str()),
        ]);
        refusals.spawn(async move { request.send().await.unwrap().status() });
    }
    while let Some(status) = refusals.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::BAD_REQUEST);
    }
    println!(
        "16 duplicate registrations refused in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_form_token_from_before_a_sign_in_does_not_work_after_the_sign_out() {
    let app = spawn_app().await;
    let email = unique_email("nonce");
    app.register(&email).await;
    app.logout().await;
    // A guest page's token, as a shared computer's next user might find it in the history.
    let guest_token = app.csrf_token().await;
    app.login(&email, PASSWORD).await.assert_redirects_to("/");
    app.logout().await;
    for (path, form) in [
        ("/cart/items", vec![("product_id", "1"), ("quantity", "1")]),
        (
            "/login",
            vec![("email", email.as_str()), ("password", PASSWORD)],
        ),
    ] {
        let mut fields = form.clone();
        fields.push(("csrf_token", guest_token.as_str()));
        let page = app.post_raw(path, &fields).await;
        assert_eq!(
            page.status,
            StatusCode::FORBIDDEN,
            "{path} took the old token"
        );
    }
    assert!(app.cart().await.is_empty(), "nothing was added");
    assert_eq!(app.signed_in_as().await, None, "nobody was signed in");
    // The token of the page shown now works.
    app.add_to_cart(1, "1").await.assert_redirects_to("/cart");
}

#[tokio::test]
async fn signing_in_as_another_account_leaves_the_first_accounts_cart_behind() {
    let app = spawn_app().await;
    let (first, second) = (unique_email("first"), unique_email("second"));
    app.register(&second).await;
    app.logout().await;
    app.register(&first).await;
    app.add_to_cart(1, "2").await;
    // The second account signs in on the same browser without signing the first out.
    app.login(&second, PASSWORD).await.assert_redirects_to("/");
    assert_eq!(app.signed_in_as().await, Some(second.clone()));
    assert!(
        app.cart().await.is_empty(),
        "the first account's cart stayed behind"
    );
    app.post("/checkout", &[])
        .await
        .assert_redirects_to("/cart");
    assert!(app.order_ids().await.is_empty(), "nothing was ordered");
    // A guest's cart still comes along at sign-in, and so does the same account's own.
    app.logout().await;
    app.add_to_cart(2, "1").await;
    app.login(&second, PASSWORD).await.assert_redirects_to("/");
    assert_eq!(app.cart().await, vec![(2, 1)]);
    app.login(&second, PASSWORD).await.assert_redirects_to("/");
    assert_eq!(app.cart().await, vec![(2, 1)]);
}

/// A login attempt that arrives through the trusted proxy at 127.0.0.1 with this
/// `X-Forwarded-For`.
async fn login_via_proxy(
    app: &crate::helpers::TestApp,
    token: &str,
    email: &str,
    password: &str,
    forwarded_for: &str,
) -> StatusCode {
    app.client()
        .post(app.url("/login"))
        .header("x-forwarded-for", forwarded_for)
        .form(&[
            ("email", email),
            ("password", password),
            ("csrf_token", token),
        ])
        .send()
        .await
        .unwrap()
        .status()
}

/// An instance behind a trusted proxy at 127.0.0.1, with an account signed out again, its email
/// and a guest's form token.
async fn account_behind_a_proxy(who: &str) -> (crate::helpers::TestApp, String, String) {
    let app = crate::helpers::spawn_app_with(|settings| {
        settings.insert("TRUSTED_PROXIES".into(), "127.0.0.1".into());
    })
    .await;
    let email = unique_email(who);
    // The owner registers in a browser of their own: the guesses come from another, which the
    // account's device cookie does not vouch for.
    let owner = crate::helpers::spawn_client(&app);
    owner.register(&email).await;
    owner.logout().await;
    let token = app.csrf_token().await;
    (app, email, token)
}

#[tokio::test]
async fn the_addresses_of_one_ipv6_network_share_one_budget_of_guesses() {
    let (app, email, token) = account_behind_a_proxy("ipv6").await;
    let mut checked = 0;
    for host in 1..=4 {
        for guess in 0..5 {
            let from = format!("2001:db8:7:1::{host}:{guess}");
            match login_via_proxy(&app, &token, &email, "wrong password", &from).await {
                StatusCode::UNAUTHORIZED => checked += 1,
                StatusCode::TOO_MANY_REQUESTS => {}
                other => panic!("a guess answered {other}"),
            }
        }
    }
    assert_eq!(
        checked, 5,
        "twenty guesses from one /64, of which {checked} were checked"
    );
    // Another network is another client: the owner signs in from there.
    let status = login_via_proxy(&app, &token, &email, PASSWORD, "2001:db8:7:2::1").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_ipv4_address_written_as_ipv6_is_the_same_client() {
    let (app, email, token) = account_behind_a_proxy("mapped").await;
    for _ in 0..5 {
        let status = login_via_proxy(&app, &token, &email, "wrong", "198.51.100.7").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for disguise in [
        "::ffff:198.51.100.7",
        "198.51.100.7:4711",
        "[::ffff:198.51.100.7]:1",
    ] {
        let status = login_via_proxy(&app, &token, &email, "wrong", disguise).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{disguise}");
    }
}

#[tokio::test]
async fn junk_left_of_the_clients_address_neither_frees_an_attacker_nor_locks_others_out() {
    let (app, email, token) = account_behind_a_proxy("junk").await;
    for _ in 0..5 {
        let status = login_via_proxy(&app, &token, &email, "wrong", "203.0.113.5").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // The attacker is locked, and writing junk first does not free them.
    for chain in [
        "junk, 203.0.113.5",
        "unknown, 203.0.113.5",
        "[2001:db8::1], 203.0.113.5",
    ] {
        let status = login_via_proxy(&app, &token, &email, "wrong", chain).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{chain}");
    }
    // Twenty junk-prefixed failures from twenty other clients cost a shopper behind the same
    // proxy nothing.
    for other in 1..=20 {
        let chain = format!("junk, 192.0.2.{other}");
        let status = login_via_proxy(&app, &token, &unique_email("nobody"), "wrong", &chain).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{chain}");
    }
    let status = login_via_proxy(&app, &token, &email, PASSWORD, "unknown, 198.51.100.9").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}
