//! Hostile traffic at the store: floods of new sessions, refused requests, shared addresses,
//! whole IPv6 networks, registrations. Each limit is checked by what the store holds after, and
//! by what an honest shopper behind the same address can still do.

use reqwest::StatusCode;
use tokio::task::JoinSet;

use crate::helpers::{
    PASSWORD, TestApp, spawn_app, spawn_app_with, spawn_client, stored_keys, unique_email,
};

/// A client that keeps only the guest nonce cookie, never a session cookie: what a flood
/// script does. Its requests carry the nonce cookie and the form token by hand.
struct CookieOnly {
    client: reqwest::Client,
    cookie: String,
    token: String,
}

impl CookieOnly {
    async fn of(app: &TestApp) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let page = client.get(app.url("/login")).send().await.unwrap();
        let cookie = page
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned())
            .find(|c| c.starts_with("shop_csrf="))
            .expect("a nonce cookie");
        let token = shop_lab::shopper::csrf_token(&page.text().await.unwrap()).unwrap();
        Self {
            client,
            cookie,
            token,
        }
    }

    /// Posts a form; the status, and whether a session cookie came back.
    fn post(
        &self,
        app: &TestApp,
        path: &str,
        form: &[(&str, &str)],
    ) -> impl Future<Output = (StatusCode, bool)> + use<> {
        let mut fields: Vec<(String, String)> = form
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        fields.push(("csrf_token".into(), self.token.clone()));
        let request = self
            .client
            .post(app.url(path))
            .header("cookie", &self.cookie)
            .form(&fields);
        async move {
            let response = request.send().await.unwrap();
            let session = response
                .headers()
                .get_all("set-cookie")
                .iter()
                .any(|c| c.to_str().unwrap().starts_with("shop_session="));
            (response.status(), session)
        }
    }
}

/// Signed-in shoppers, each with a cart of one product.
async fn shoppers_with_carts(app: &TestApp, count: usize) -> Vec<(TestApp, String)> {
    let mut shoppers = Vec::new();
    for i in 0..count {
        let shopper = spawn_client(app);
        let email = unique_email(&format!("shopper{i}"));
        shopper.register(&email).await.assert_redirects_to("/");
        shopper.add_to_cart(1 + i as i64 % 3, "2").await;
        shoppers.push((shopper, email));
    }
    shoppers
}

async fn assert_all_kept(shoppers: &[(TestApp, String)]) {
    for (i, (shopper, email)) in shoppers.iter().enumerate() {
        assert_eq!(
            shopper.signed_in_as().await.as_deref(),
            Some(email.as_str()),
            "shopper {i} is still signed in"
        );
        assert_eq!(
            shopper.cart().await,
            vec![(1 + i as i64 % 3, 2)],
            "shopper {i} still has the cart"
        );
    }
}

/// The value after `flag` in the `command` list of a docker-compose.yml service: what the
/// deployment gives the store, which the flood runs against.
fn compose_setting(service: &str, flag: &str) -> String {
    let compose = include_str!("../../docker-compose.yml");
    let start = compose
        .find(&format!("\n  {service}:\n"))
        .unwrap_or_else(|| panic!("service {service} in docker-compose.yml"));
    let section = &compose[start + 1..];
    let section = &section[..section.find("\n\n").unwrap_or(section.len())];
    let mut words = section
        .split(|c: char| c.is_whitespace() || "[]\",".contains(c))
        .filter(|w| !w.is_empty() && *w != "-");
    words.find(|w| *w == flag).expect(flag);
    words.next().unwrap().to_owned()
}

/// Checks that the store under test is sized as the deployment files size it.
async fn assert_sized_as_deployed(app: &TestApp) {
    match app.settings["SESSION_BACKEND"].as_str() {
        #[cfg(feature = "redis")]
        "redis" => {
            let client = redis::Client::open(app.settings["REDIS_URL"].as_str()).unwrap();
            let mut connection = client.get_multiplexed_async_connection().await.unwrap();
            let config: Vec<String> = redis::cmd("CONFIG")
                .arg("GET")
                .arg("maxmemory*")
                .query_async(&mut connection)
                .await
                .unwrap();
            let value =
                |name: &str| config[config.iter().position(|c| c == name).unwrap() + 1].clone();
            let bytes = compose_setting("redis", "--maxmemory")
                .trim_end_matches("mb")
                .parse::<u64>()
                .unwrap()
                << 20;
            assert_eq!(value("maxmemory"), bytes.to_string(), "Redis's --maxmemory");
            assert_eq!(
                value("maxmemory-policy"),
                compose_setting("redis", "--maxmemory-policy")
            );
        }
        #[cfg(feature = "memcached")]
        "memcached" => {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let server = app.settings["MEMCACHED_SERVERS"]
                .split(',')
                .next()
                .unwrap()
                .to_owned();
            let mut stream = tokio::net::TcpStream::connect(server).await.unwrap();
            stream.write_all(b"stats settings\r\n").await.unwrap();
            let mut reply = Vec::new();
            let mut buffer = [0_u8; 4096];
            while !reply.ends_with(b"END\r\n") {
                let n = stream.read(&mut buffer).await.unwrap();
                assert!(n > 0);
                reply.extend_from_slice(&buffer[..n]);
            }
            let megabytes: u64 = compose_setting("memcached", "-m").parse().unwrap();
            let expected = format!("STAT maxbytes {}\r\n", megabytes << 20);
            assert!(
                String::from_utf8_lossy(&reply).contains(&expected),
                "Memcached runs with -m {megabytes}, as compose does"
            );
        }
        _ => {}
    }
}

#[tokio::test]
async fn a_flood_of_new_sessions_from_one_address_is_bounded_and_costs_shoppers_nothing() {
    const FLOOD: usize = 25_000;
    let app = spawn_app_with(|settings| {
        settings.insert("NEW_SESSIONS_PER_CLIENT".into(), "300".into());
    })
    .await;
    assert_sized_as_deployed(&app).await;
    let shoppers = shoppers_with_carts(&app, 5).await;
    let before = stored_keys(&app).await;
    let flood = std::sync::Arc::new(CookieOnly::of(&app).await);
    let started = std::time::Instant::now();
    let (mut stored, mut refused) = (0, 0);
    let mut requests: JoinSet<(StatusCode, bool)> = JoinSet::new();
    for i in 0..FLOOD {
        if requests.len() >= 32 {
            let (status, session): (StatusCode, bool) =
                requests.join_next().await.unwrap().unwrap();
            match status {
                StatusCode::SEE_OTHER => stored += usize::from(session),
                StatusCode::TOO_MANY_REQUESTS => refused += usize::from(!session),
                other => panic!("a flood request answered {other}"),
            }
        }
        let product = (1 + i % 3).to_string();
        requests.spawn(flood.post(
            &app,
            "/cart/items",
            &[("product_id", &product), ("quantity", "1")],
        ));
    }
    while let Some(answer) = requests.join_next().await {
        let (status, session) = answer.unwrap();
        match status {
            StatusCode::SEE_OTHER => stored += usize::from(session),
            StatusCode::TOO_MANY_REQUESTS => refused += usize::from(!session),
            other => panic!("a flood request answered {other}"),
        }
    }
    let after = stored_keys(&app).await;
    println!(
        "{FLOOD} cart adds without a session cookie in {:?}: {stored} sessions started, {refused} \
         refused; the store went from {before} to {after} keys",
        started.elapsed()
    );
    assert_eq!(stored, 300, "the client's allowance of new sessions");
    assert_eq!(
        refused,
        FLOOD - 300,
        "every other request refused, with no session"
    );
    assert!(
        after <= before + 300 + 1,
        "the store holds the allowance and its counter, no more: {before} -> {after}"
    );
    assert_all_kept(&shoppers).await;
    // A shopper behind the flooding address who has an account still signs in.
    let (owner, email) = &shoppers[0];
    owner.logout().await;
    owner.login(email, PASSWORD).await.assert_redirects_to("/");
}

#[tokio::test]
async fn refused_sign_ins_store_nothing_and_start_no_session() {
    let app = spawn_app().await;
    let guesser = CookieOnly::of(&app).await;
    let before = stored_keys(&app).await;
    let mut answers = Vec::new();
    for _ in 0..40 {
        let email = unique_email("nobody");
        answers.push(
            guesser
                .post(&app, "/login", &[("email", &email), ("password", "wrong")])
                .await,
        );
    }
    let checked = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::UNAUTHORIZED)
        .count();
    let refused = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((checked, refused), (20, 20), "{answers:?}");
    assert!(
        answers.iter().all(|(_, session)| !session),
        "no failed or refused sign-in starts a session"
    );
    let after = stored_keys(&app).await;
    // The client's counter and one per account guessed; the refused ones add nothing.
    assert_eq!(after - before, 21, "{before} -> {after}");
}

#[tokio::test]
async fn a_browser_that_signed_in_before_is_not_locked_out_by_its_address() {
    let app = spawn_app().await;
    let owner = spawn_client(&app);
    let email = unique_email("owner");
    owner.register(&email).await.assert_redirects_to("/");
    owner.logout().await;
    // Someone on the same address (a NAT, a class) fails twenty times, five on this account.
    let neighbour = spawn_client(&app);
    for i in 0..20 {
        let target = if i < 5 {
            email.clone()
        } else {
            unique_email("random")
        };
        let page = neighbour.login(&target, "wrong password").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    let page = neighbour.login(&email, PASSWORD).await;
    assert_eq!(
        page.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the address is refused"
    );
    assert!(page.body.contains("Too many failed attempts"));
    // The owner's browser signed in before: it is counted by its device cookie, not the address.
    owner.login(&email, PASSWORD).await.assert_redirects_to("/");
    assert_eq!(owner.signed_in_as().await, Some(email.clone()));
    // The device cookie is the account's: a wrong password from that browser is still limited.
    owner.logout().await;
    for _ in 0..5 {
        let page = owner.login(&email, "wrong").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    let page = owner.login(&email, PASSWORD).await;
    assert_eq!(
        page.status,
        StatusCode::TOO_MANY_REQUESTS,
        "five per browser"
    );
}

#[tokio::test]
async fn a_refused_attempt_never_extends_the_window() {
    let app = spawn_app_with(|settings| {
        settings.insert("LIMIT_WINDOW_SECONDS".into(), "4".into());
    })
    .await;
    let email = unique_email("patient");
    let owner = spawn_client(&app);
    owner.register(&email).await;
    owner.logout().await;
    let stranger = spawn_client(&app);
    let started = std::time::Instant::now();
    for _ in 0..5 {
        assert_eq!(
            stranger.login(&email, "wrong").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Refused again and again until well into the window; each would have restarted it.
    let mut refused = 0;
    while started.elapsed() < std::time::Duration::from_millis(2600) {
        let page = stranger.login(&email, PASSWORD).await;
        assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
        refused += 1;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refused > 5);
    // The window started with the first failure: it has ended 4 s later (Memcached's clock
    // ticks in whole seconds, so up to a second after). Had the refusals restarted it, it would
    // last until 6.6 s.
    tokio::time::sleep(std::time::Duration::from_millis(5200).saturating_sub(started.elapsed()))
        .await;
    stranger
        .login(&email, PASSWORD)
        .await
        .assert_redirects_to("/");
}

#[tokio::test]
async fn one_ipv6_48_gets_a_bounded_number_of_guesses_at_one_account() {
    let app = spawn_app_with(|settings| {
        settings.insert("TRUSTED_PROXIES".into(), "127.0.0.1".into());
    })
    .await;
    let email = unique_email("ipv6-48");
    app.register(&email).await;
    app.logout().await;
    let attacker = spawn_client(&app);
    let token = attacker.csrf_token().await;
    let mut checked = 0;
    // Sixty /64s of one /48, five guesses each.
    for network in 0..60 {
        for guess in 0..5 {
            let from = format!("2001:db8:48:{:x}{:02x}::{guess}", network / 16, network);
            let status = attacker
                .client()
                .post(app.url("/login"))
                .header("x-forwarded-for", from)
                .form(&[
                    ("email", email.as_str()),
                    ("password", "wrong"),
                    ("csrf_token", token.as_str()),
                ])
                .send()
                .await
                .unwrap()
                .status();
            match status {
                StatusCode::UNAUTHORIZED => checked += 1,
                StatusCode::TOO_MANY_REQUESTS => {}
                other => panic!("a guess answered {other}"),
            }
        }
    }
    println!("300 guesses from 60 /64s of one /48: {checked} passwords checked");
    assert_eq!(checked, 20, "the /48's allowance for one account");
    // Another /48 is not touched.
    let owner = attacker
        .client()
        .post(app.url("/login"))
        .header("x-forwarded-for", "2001:db8:49::1")
        .form(&[
            ("email", email.as_str()),
            ("password", PASSWORD),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(owner.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn registrations_are_limited_per_client_and_a_refused_one_creates_nothing() {
    let app = spawn_app_with(|settings| {
        settings.insert("REGISTRATIONS_PER_CLIENT".into(), "10".into());
    })
    .await;
    let taken = unique_email("taken");
    spawn_client(&app).register(&taken).await;
    let prober = CookieOnly::of(&app).await;
    let mut answers = Vec::new();
    for i in 0..30 {
        let email = if i % 2 == 0 {
            taken.clone()
        } else {
            unique_email("probe")
        };
        answers.push(
            prober
                .post(
                    &app,
                    "/register",
                    &[("email", &email), ("password", PASSWORD)],
                )
                .await
                .0,
        );
    }
    let refused = answers
        .iter()
        .filter(|status| **status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    // Ten a window from this address, of which the first account took one.
    assert_eq!(refused, 21, "{answers:?}");
    assert!(
        answers[..9]
            .iter()
            .all(|status| *status != StatusCode::TOO_MANY_REQUESTS),
        "{answers:?}"
    );
}

#[tokio::test]
async fn a_sign_in_ending_at_its_lifetime_keeps_the_cart_on_an_address_out_of_new_sessions() {
    let app = spawn_app_with(|settings| {
        settings.insert("NEW_SESSIONS_PER_CLIENT".into(), "1".into());
        settings.insert("SESSION_MAX_LOGIN_SECONDS".into(), "1".into());
    })
    .await;
    let shopper = spawn_client(&app);
    shopper.register(&unique_email("lifetime")).await;
    shopper.add_to_cart(2, "3").await;
    // Someone on the same address uses up its allowance of new sessions.
    let flood = CookieOnly::of(&app).await;
    for expected in [StatusCode::SEE_OTHER, StatusCode::TOO_MANY_REQUESTS] {
        let (status, _) = flood
            .post(
                &app,
                "/cart/items",
                &[("product_id", "1"), ("quantity", "1")],
            )
            .await;
        assert_eq!(status, expected);
    }
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    // The ended sign-in's session is renewed, not new: it is kept, with its cart.
    let page = shopper.get("/").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(shopper.signed_in_as().await, None);
    assert_eq!(shopper.cart().await, vec![(2, 3)]);
}
