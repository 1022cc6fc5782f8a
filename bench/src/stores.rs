//! One store's whole run: its environment, every path, the bytes and memory it costs.

use super::*;

/// The environment of the shop for one store: its own key prefix and databases for this run.
pub(crate) async fn shop_env(
    store: Backend,
    work: &Path,
) -> anyhow::Result<HashMap<String, String>> {
    let run_id = random_hex();
    let mut env = HashMap::from([
        ("HOST".to_owned(), "127.0.0.1".to_owned()),
        ("WORKERS".to_owned(), "1".to_owned()),
        ("SESSION_BACKEND".to_owned(), store.name().to_owned()),
        (
            "SESSION_SECRET".to_owned(),
            format!("bench-secret-{}", "x".repeat(64)),
        ),
        ("SESSION_KEY_PREFIX".to_owned(), format!("bench:{run_id}:")),
        (
            "DATABASE_URL".to_owned(),
            format!("sqlite://{}/shop-{run_id}.db", work.display()),
        ),
        (
            "SESSION_DATABASE_URL".to_owned(),
            format!("sqlite://{}/sessions-{run_id}.db", work.display()),
        ),
        ("STATIC_DIR".to_owned(), "static".to_owned()),
        // wrk's requests carry X-Forwarded-For (see `lua_script`): each session is its own
        // client, as behind a real proxy.
        ("TRUSTED_PROXIES".to_owned(), "127.0.0.1".to_owned()),
        ("BENCH_RUN".to_owned(), run_id.clone()),
    ]);
    for name in ["REDIS_URL", "MEMCACHED_SERVERS"] {
        if let Ok(value) = std::env::var(name) {
            env.insert(name.to_owned(), value);
        }
    }
    if store == Backend::Postgres {
        let server = std::env::var("BENCH_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let name = format!("shop_bench_{run_id}");
        let admin = sqlx::PgPool::connect(&format!("{server}/postgres")).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .execute(&admin)
            .await?;
        // On loopback TLS protects nothing, and PostgreSQL's default `sslmode=prefer`
        // encrypts whenever the server offers it (Debian's does): a third of the read path's
        // profile. BENCH_POSTGRES_SSLMODE=prefer measures that cost.
        let sslmode = std::env::var("BENCH_POSTGRES_SSLMODE").unwrap_or_else(|_| "disable".into());
        env.insert(
            "SESSION_DATABASE_URL".to_owned(),
            format!("{server}/{name}?sslmode={sslmode}"),
        );
    }
    Ok(env)
}

/// The settings that point the shop at the servers this run started for `subject`.
pub(crate) fn subject_env(
    subject: Subject,
    started: &Started,
    env: &mut HashMap<String, String>,
) -> anyhow::Result<()> {
    if subject.backend() == Backend::Memcached
        && let Some((address, _)) = &started.memcached
    {
        env.insert("MEMCACHED_SERVERS".to_owned(), address.clone());
    }
    match subject {
        Subject::OtherDurability(Backend::Redis) => {
            let (url, _) = started
                .redis_aof
                .as_ref()
                .context("the append-only Redis was not started")?;
            env.insert("REDIS_URL".to_owned(), url.clone());
        }
        Subject::Tls(Backend::Redis) => {
            let (url, ca, _) = started
                .redis_tls
                .as_ref()
                .context("the TLS Redis was not started")?;
            env.insert("REDIS_URL".to_owned(), url.clone());
            env.insert("REDIS_CA_FILE".to_owned(), ca.display().to_string());
        }
        Subject::Tls(Backend::Postgres) => {
            let url = env
                .get_mut("SESSION_DATABASE_URL")
                .context("the PostgreSQL session database")?;
            *url = url.replace("sslmode=disable", "sslmode=require");
        }
        Subject::OtherDurability(Backend::Postgres) => {
            let url = env
                .get_mut("SESSION_DATABASE_URL")
                .context("the PostgreSQL session database")?;
            url.push_str("&options=-c%20synchronous_commit%3Doff");
        }
        _ => {}
    }
    if let Subject::RedisCluster { wait } = subject {
        let cluster = started
            .redis_cluster
            .as_ref()
            .context("the Redis Cluster was not started")?;
        env.insert("REDIS_CLUSTER_NODES".to_owned(), cluster.seeds());
        env.insert(
            "REDIS_MIN_REPLICAS_ACK".to_owned(),
            if wait { "1" } else { "0" }.to_owned(),
        );
    }
    Ok(())
}

/// One store's whole run; afterwards, whether it succeeded or not, the keys it left in a Redis
/// the bench does not own are deleted: a run leaves 200,000 sessions behind (the memory
/// phase's), and two runs' worth filled the machine's Redis (256 MB, no eviction) so that the
/// next run's writes failed.
pub(crate) async fn bench_store(
    subject: Subject,
    options: &Options,
    shop: &Path,
    work: &Path,
    started: &Started,
) -> anyhow::Result<(StoreRun, String)> {
    let store = subject.backend();
    let mut env = shop_env(store, work).await?;
    subject_env(subject, started, &mut env)?;
    let run = measure_store(subject, options, shop, work, &env).await;
    store_memory::clean_up(store, &env).await?;
    run
}

async fn measure_store(
    subject: Subject,
    options: &Options,
    shop: &Path,
    work: &Path,
    env: &HashMap<String, String>,
) -> anyhow::Result<(StoreRun, String)> {
    let store = subject.backend();
    let name = subject.name();
    let env = env.clone();
    let durability = durability::as_configured(store, &env).await;
    let server = Server::start(shop, &[], &env, free_port()?, true).await?;
    let url = server.url.clone();
    println!(
        "== {name}: shop on core {SERVER_CORE}, wrk on core {}",
        wrk::LOAD_CORE
    );

    // One shopper with a 5-line cart for the read path.
    let email = format!("bench-{}@example.com", env["BENCH_RUN"]);
    let (shopper, cookie) = signed_in_with_a_cart(&url, &email).await?;
    let cart_page = shopper.get("/cart").await?.body;
    let stored = stored_bytes(&env, &cookie).await?;

    println!(
        "   logging in {} sessions and making {} guest sessions",
        options.sessions, options.sessions
    );
    let logged_in = sessions(&url, &email, options.sessions, true).await?;
    let guests = sessions(&url, &email, options.sessions, false).await?;
    let pairs = |v: &[(Shopper, String, String)]| {
        v.iter()
            .map(|(_, c, t)| (c.clone(), t.clone()))
            .collect::<Vec<_>>()
    };
    let scripts = tempfile::tempdir()?;
    let plain = wrk::script(scripts.path(), "plain", "")?;
    let many = lua_script(
        scripts.path(),
        "many",
        &pairs(&logged_in),
        "GET",
        "/cart",
        "",
    )?;
    // A write is one cart change: a line's quantity set to a new value.
    let writes = lua_script(
        scripts.path(),
        "write",
        &pairs(&logged_in),
        "POST",
        "/cart/items/{line}",
        "quantity={quantity}&csrf_token={token}",
    )?;
    let mix = mix_script(scripts.path(), &pairs(&logged_in))?;
    // The login path signs guests in to an account of its own: its sign-ins would otherwise end
    // the read path's session, the oldest of its account beyond 50 (see `sessions`).
    let login_email = format!("login-{email}");
    let (registered, _) = Shopper::new(&url, &login_email, None)?
        .register(PASSWORD)
        .await?;
    if !registered {
        bail!("could not register the login path's account");
    }
    let body = format!(
        "email={}&password={PASSWORD}&csrf_token={{token}}",
        login_email.replace('@', "%40")
    );
    let logins = lua_script(
        scripts.path(),
        "login",
        &pairs(&guests),
        "POST",
        "/login",
        &body,
    )?;

    let load = |url: String, script, headers: Vec<String>, pinned| Load {
        url,
        script,
        headers,
        connections: 64,
        seconds: options.seconds,
        pinned,
    };
    let bench = Bench {
        server: &server,
        store,
        name: name.clone(),
        options,
    };
    let read_cookie = vec![format!("Cookie: {cookie}")];
    let mut rows = Vec::new();
    // A crawler first: no cookie at all. A visitor who changes nothing has no stored session,
    // so it must cost the store nothing.
    for (path, route, script, headers) in [
        (BenchPath::Anonymous, "/", &plain, vec![]),
        (BenchPath::Read, "/cart", &plain, read_cookie.clone()),
        (BenchPath::ManySessions, "/cart", &many, vec![]),
        (BenchPath::Write, "/cart/items/1", &writes, vec![]),
        (BenchPath::Mix, "/", &mix, vec![]),
    ] {
        rows.extend(
            bench
                .measure(path, &load(format!("{url}{route}"), script, headers, true))
                .await?,
        );
    }
    // Latency at half the rate each path just reached, open loop (see `steady.rs`).
    let mut steady = Vec::new();
    for (path, requests) in [
        (BenchPath::Read, steady_reads(&cookie)),
        (BenchPath::Write, steady_writes(&pairs(&logged_in))),
    ] {
        let Some(row) = rows.iter().find(|r| r.path == path) else {
            continue;
        };
        let rate = (row.rps() / 2.0).floor();
        let run = steady::run(&url, requests, rate, options.seconds, wrk::LOAD_CORE).await?;
        println!(
            "   {} at {rate:.0} req/s, open loop: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, {} failed (generator late p99 {:.2} ms)",
            path.label(),
            run.p50_ms,
            run.p99_ms,
            run.p999_ms,
            run.failed,
            run.late_p99_ms
        );
        steady.push((path, run));
    }
    // The latency curve: the mix at the same rates on every store, open loop, up to 90% of
    // what this store reached with it (a rate beyond is not a point on its curve: it queues).
    let mut curve = Vec::new();
    if let Some(row) = rows.iter().find(|r| r.path == BenchPath::Mix) {
        let requests = steady_mix(&pairs(&logged_in));
        for rate in report::CURVE_RATES {
            if rate > 0.9 * row.rps() {
                break;
            }
            let run = steady::run(
                &url,
                requests.clone(),
                rate,
                options.seconds,
                wrk::LOAD_CORE,
            )
            .await?;
            println!(
                "   the mix at {rate:.0} req/s, open loop: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, {} failed",
                run.p50_ms, run.p99_ms, run.p999_ms, run.failed
            );
            curve.push(run);
        }
    }
    // The exact check: a timed run ends with requests cut off in flight, applied or not, so the
    // answers are checked on adds that all complete: 64 clients, each with its own sessions.
    let before = items_in_carts(&logged_in).await?;
    let acknowledged = checked_adds(&logged_in, 64, 40).await?;
    let in_carts = items_in_carts(&logged_in).await? - before;
    rows.extend(
        bench
            .measure(
                BenchPath::Login,
                &load(format!("{url}/login"), &logins, vec![], true),
            )
            .await?,
    );

    // Memory with few and with many live sessions: the state lives in the store. Page views
    // make no session, so each new session is a guest's first cart add: the nonce cookie and its
    // token, and no session cookie.
    let (guest_cookie, guest_token) = pairs(&guests).remove(0);
    let first_adds = lua_script(
        scripts.path(),
        "first-adds",
        &[(guest_cookie, guest_token)],
        "POST",
        "/cart/items",
        "product_id={product}&quantity=1&csrf_token={token}",
    )?;
    // A first run at full concurrency brings the allocator to its working set (per-thread
    // caches it keeps rather than returns); growth after that is what sessions would cost.
    let first_adds_load = load(format!("{url}/cart/items"), &first_adds, vec![], true);
    let saves_at_start = server.counters().await?.1;
    wrk::run(&first_adds_load).await?;
    let saves_before = server.counters().await?.1;
    let warmup_sessions = saves_before - saves_at_start;
    let (rss_before, _) = server.rss_kib();
    let mut created = 0;
    for _ in 0..12 {
        if created >= options.rss_sessions {
            break;
        }
        wrk::run(&first_adds_load).await?;
        created = server.counters().await?.1 - saves_before;
        println!("   {created} more sessions: RSS {} KiB", server.rss_kib().0);
    }
    let (rss_after, peak_rss) = server.rss_kib();
    println!(
        "   after {warmup_sessions} sessions RSS {rss_before} KiB; after {created} more {rss_after} KiB"
    );
    drop(server);

    // The same shop with 2 workers on both cores, wrk unpinned: how it scales. The sessions
    // are in the store, so the new process serves the same cookies.
    let mut two = env.clone();
    two.insert("WORKERS".to_owned(), "2".to_owned());
    let server = Server::start(shop, &[], &two, free_port()?, false).await?;
    println!("   2 workers, unpinned, wrk unpinned (2 threads)");
    let url = server.url.clone();
    let bench = Bench {
        server: &server,
        store,
        name: name.clone(),
        options,
    };
    let scaled = [
        bench
            .measure(
                BenchPath::Read,
                &load(
                    format!("{url}/cart"),
                    &plain,
                    vec![format!("Cookie: {cookie}")],
                    false,
                ),
            )
            .await?,
        bench
            .measure(
                BenchPath::Write,
                &load(format!("{url}/cart/items/1"), &writes, vec![], false),
            )
            .await?,
    ]
    .into_iter()
    .flatten()
    .collect();

    drop(server);
    let store_memory = match subject {
        Subject::Store(_) if options.store_sessions > 0 => {
            Some(store_cost(&env, &cookie, options.store_sessions).await?)
        }
        _ => None,
    };
    let peer = match subject {
        Subject::Store(Backend::Redis | Backend::Postgres) if options.peer => {
            let page = work.join(format!("cart-{name}.html"));
            std::fs::write(&page, &cart_page)?;
            let mut rows = Vec::new();
            let shops_rate = steady
                .iter()
                .find(|(path, _)| *path == BenchPath::Write)
                .map(|(_, run)| run.rate);
            for mode in PeerMode::ALL {
                rows.push(
                    peer(
                        store,
                        &peer_url(store, &env),
                        &page,
                        options,
                        mode,
                        shops_rate,
                    )
                    .await?,
                );
            }
            rows
        }
        _ => Vec::new(),
    };

    Ok((
        StoreRun {
            store,
            name: subject.title(),
            durability,
            rows,
            scaled,
            peer,
            steady,
            curve,
            curve_seconds: options.seconds,
            store_memory,
            bytes_per_session: stored,
            acknowledged_adds: acknowledged,
            items_in_carts: in_carts,
            warmup_sessions,
            rss_small_kib: rss_before,
            rss_large_kib: rss_after,
            sessions_created: created,
            peak_rss_kib: peak_rss,
        },
        cart_page,
    ))
}

/// The read path's request for a steady run: the bench shopper's cart.
fn steady_reads(cookie: &str) -> Vec<steady::Request> {
    vec![steady::Request {
        post: false,
        path: "/cart".to_owned(),
        cookie: cookie.to_owned(),
        body: None,
        client: "10.0.0.1".to_owned(),
        ok: 200,
        session: 0,
    }]
}

/// The write path's requests for a steady run, as the wrk script sends them: session `k` in
/// turn, each visit setting one of its 5 lines to a new quantity (45 rounds, 5 lines by 9
/// quantities, before the cycle repeats).
pub(crate) fn steady_writes(sessions: &[(String, String)]) -> Vec<steady::Request> {
    (0..sessions.len() * 45)
        .map(|j| {
            let (k, fill) = nth(j, sessions);
            steady::Request {
                post: true,
                path: fill("/cart/items/{line}"),
                cookie: sessions[k].0.clone(),
                body: Some(fill("quantity={quantity}&csrf_token={token}")),
                client: client_of(k),
                ok: 303,
                session: k,
            }
        })
        .collect()
}

/// A shopper signed in on the shop at `url` as `email`, with a 5-line cart, and their cookies.
pub(crate) async fn signed_in_with_a_cart(
    url: &str,
    email: &str,
) -> anyhow::Result<(Shopper, String)> {
    let shopper = Shopper::new(url, email, None)?;
    let (registered, _) = shopper.register(PASSWORD).await?;
    if !registered {
        bail!("could not register the bench shopper");
    }
    for product in 1..=5 {
        shopper.add(product, 1).await?;
    }
    let cookie = shopper.cookie_header().context("a cookie")?;
    Ok((shopper, cookie))
}

/// What `sessions` more signed-in sessions like the one in `cookie` cost the store of `env`.
pub(crate) async fn store_cost(
    env: &HashMap<String, String>,
    cookie: &str,
    sessions: u64,
) -> anyhow::Result<store_memory::StoreMemory> {
    println!("   saving {sessions} signed-in sessions with 5-line carts, measuring the store");
    let (store, template) = store_memory::session_state(env, cookie).await?;
    let cost = store_memory::measure(store, template, env, sessions).await?;
    println!(
        "   {:.0} bytes a session, {:.1} MiB per 100,000 ({}), {:.1} s",
        cost.bytes_per_session(),
        cost.mib_per_100k(),
        cost.measure,
        cost.seconds
    );
    Ok(cost)
}

/// Only what sessions cost each store (`--store-memory`): the shop started to make one real
/// signed-in session with a 5-line cart, then `--store-sessions` copies of it saved.
pub(crate) async fn store_memory_only(
    subject: Subject,
    options: &Options,
    shop: &Path,
    work: &Path,
    started: &Started,
) -> anyhow::Result<Option<store_memory::StoreMemory>> {
    let Subject::Store(store) = subject else {
        return Ok(None);
    };
    let mut env = shop_env(store, work).await?;
    subject_env(subject, started, &mut env)?;
    let server = Server::start(shop, &[], &env, free_port()?, true).await?;
    println!("== {}: what sessions cost the store", store.name());
    let email = format!("bench-{}@example.com", env["BENCH_RUN"]);
    let (_, cookie) = signed_in_with_a_cart(&server.url, &email).await?;
    drop(server);
    Ok(Some(
        store_cost(&env, &cookie, options.store_sessions.max(1)).await?,
    ))
}

/// The bytes the store holds for the session in `cookie`.
pub(crate) async fn stored_bytes(
    env: &HashMap<String, String>,
    cookie: &str,
) -> anyhow::Result<usize> {
    Ok(stored_session(env, cookie).await?.1.len())
}

/// The store of `env`, and the state it holds for the session in `cookie`, as it holds it.
pub(crate) async fn stored_session(
    env: &HashMap<String, String>,
    cookie: &str,
) -> anyhow::Result<(shop::session::Store, String)> {
    use actix_web::cookie::{Cookie, CookieJar, Key};
    let config = shop::Config::from_lookup(|name| env.get(name).cloned())?;
    let raw = cookie
        .split("; ")
        .find(|c| c.starts_with("shop_session="))
        .context("a session cookie")?;
    let mut jar = CookieJar::new();
    jar.add_original(Cookie::parse_encoded(raw.to_owned())?);
    let key = jar
        .private(&Key::from(config.session.secret.bytes()))
        .get("shop_session")
        .context("the cookie decrypts")?
        .value()
        .to_owned();
    let store = shop::session::Store::connect(&config.session).await?;
    let (raw, _) = store
        .raw(&key)
        .await?
        .context("the session is in the store")?;
    Ok((store, raw))
}
