//! The `Application`: the state, the listeners, the reaper, and the app built from the route
//! table (`routes`) and the middleware (`middleware`).

use std::net::TcpListener;
use std::time::Duration as StdDuration;

use actix_session::SessionMiddleware;
use actix_session::config::PersistentSession;
use actix_web::cookie::{Key, SameSite, time::Duration};
use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context;

use crate::client::Clients;
use crate::config::{AppEnv, Config};
use crate::db::Database;
use crate::metrics::Metrics;
use crate::middleware;
use crate::routes::{self, catalog, health};
use crate::session::{Backend, SessionSettings, Store, csrf};
pub use crate::state::{AppState, SECURE_SESSION_COOKIE, SESSION_COOKIE, session_cookie_name};

/// Largest form body accepted; the biggest real form is well under 1 KiB.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// How long requests in flight get to finish once the shop stops accepting (after the drain).
const SHUTDOWN_SECONDS: u64 = 30;

/// How often expired sessions are swept from stores that do not expire them on their own.
const REAP_EVERY: StdDuration = StdDuration::from_secs(60);

/// A shop instance bound to its port, ready to run.
pub struct Application {
    port: u16,
    /// The port of the separate metrics listener, when `METRICS_PORT` asked for one.
    metrics_port: Option<u16>,
    server: Server,
    store: Store,
    state: web::Data<AppState>,
    /// How long a SIGTERM'd instance drains before it stops (`DRAIN_SECONDS`).
    drain: StdDuration,
}

impl Application {
    /// Connects to the database and the session store, binds the listener (port 0 picks a free
    /// port), and wires the routes.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = Database::connect(&config.database_url).await?;
        let store = Store::connect(&config.session).await.with_context(|| {
            format!(
                "could not reach the {} session store",
                config.session.backend()
            )
        })?;
        log::info!(
            "Sessions are kept in the {} store at {}, expiring after {} idle seconds.",
            store.backend(),
            store.location(),
            config.session.ttl_seconds
        );
        if store.backend() == Backend::Memory {
            log::warn!(
                "SESSION_BACKEND=memory keeps sessions in this process: behind a load balancer \
                 shoppers lose their login and cart, and a restart logs everyone out. \
                 It exists only to demonstrate that failure."
            );
        }
        if config.uses_development_secret() {
            log::warn!(
                "SESSION_SECRET is not set: using the public development key. Anyone can forge \
                 session cookies; set SESSION_SECRET (64+ bytes, the same on every instance)."
            );
        }
        let listener = listen(config.host.as_str(), config.port)
            .with_context(|| format!("could not listen on {}:{}", config.host, config.port))?;
        let port = listener.local_addr()?.port();
        spawn_reaper(store.clone(), db.clone(), config.checkout_claim_seconds);
        let cookie_key = Key::from(config.session.secret.bytes());
        let state = web::Data::new(AppState {
            db,
            store: store.clone(),
            instance: config.instance_name.clone(),
            served_by: header::HeaderValue::from_str(&config.instance_name).ok(),
            backend: store.backend(),
            metrics: Metrics::new(&store)?,
            session_ttl: Duration::seconds(config.session.ttl_seconds),
            sessions: SessionSettings {
                signer: csrf::Signer::new(&cookie_key),
                cookie_key,
                cookie_secure: config.session.cookie_secure,
                max_login_seconds: config.session.max_login_seconds,
            },
            checkout_claim_seconds: config.checkout_claim_seconds,
            clients: Clients {
                trusted_proxies: config.trusted_proxies.clone(),
                ipv6_prefix: config.ipv6_client_prefix,
                wider_prefixes: config.ipv6_network_prefixes.clone(),
            },
            limits: config.limits.clone(),
            assets: std::sync::Arc::new(crate::assets::Assets::load(std::path::Path::new(
                &config.static_dir,
            ))),
            slow_request: config.slow_request,
            session_inspector: config.session_inspector,
            strict_transport_security: config.app_env == AppEnv::Production
                && config.session.cookie_secure,
            draining: Default::default(),
        });
        let metrics_port = match config.metrics_port {
            Some(port) => Some(serve_metrics(&config.metrics_host, port, state.clone())?),
            None => None,
        };
        let server = run(listener, state.clone(), &config)?;
        Ok(Self {
            port,
            metrics_port,
            server,
            store,
            state,
            drain: StdDuration::from_secs(config.drain_seconds),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// The session store, for tests that look at what it holds.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves until SIGINT or SIGTERM. SIGTERM, what an orchestrator sends to replace a
    /// replica, first drains: `/readyz` answers 503 at once and every response closes its
    /// connection, for `DRAIN_SECONDS`, while requests are still served. Then (at once on
    /// SIGINT) the shop stops accepting, and requests in flight get `SHUTDOWN_SECONDS` to finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let (state, drain) = (self.state, self.drain);
        tokio::spawn(async move {
            if stop_signal().await == Stop::Drain && !drain.is_zero() {
                state.start_draining();
                log::info!(
                    "SIGTERM: draining for {} s (/readyz answers 503, connections close after \
                     each response), then stopping.",
                    drain.as_secs()
                );
                tokio::time::sleep(drain).await;
            }
            log::info!("The shop stops accepting; requests in flight are finishing.");
            handle.stop(true).await;
        });
        self.server.await
    }
}

/// What `main` does: logs per `RUST_LOG`, reads the configuration from the environment (a bad
/// value ends the process with a message naming the variable) and serves until stopped.
/// `env_file` is the `.env` file `main` loaded into the environment, if any.
pub async fn serve_from_env(env_file: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Some(file) = env_file {
        log::info!(
            "Settings not in the environment were read from {}.",
            file.display()
        );
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("The shop cannot start: {err}");
            std::process::exit(2);
        }
    };
    let host = config.host.clone();
    let app = Application::build(config).await?;
    log::info!("The shop is open at http://{host}:{}/", app.port());
    app.run_until_stopped().await?;
    log::info!("The shop has stopped.");
    Ok(())
}

/// Connections that may wait to be accepted: actix's own default. std's `TcpListener::bind`
/// leaves 128, and the benchmark's open-loop runs overflowed it whenever the shop paused for a
/// few milliseconds: the kernel dropped the SYNs past it (`ListenOverflows`), and those shoppers
/// waited a second for their retry (p99 1,043 ms at 19,439 reads a second on SQLite, 9,154
/// overflows in 3 minutes). The kernel caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 2048;

/// Listens on `host`:`port` (the first address the name gives that can be bound) with room for
/// [`BACKLOG`] connections waiting; `SO_REUSEADDR` as std sets it.
fn listen(host: &str, port: u16) -> std::io::Result<TcpListener> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    for address in (host, port).to_socket_addrs()? {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(address),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        match socket
            .bind(&address.into())
            .and_then(|()| socket.listen(BACKLOG))
        {
            Ok(()) => return Ok(socket.into()),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("{host} names no address"))))
}

/// `/metrics` on its own listener (`METRICS_HOST`:`METRICS_PORT`), for Prometheus: operators
/// reach it on a private address while the public port, in production, does not serve it.
/// Returns the bound port.
fn serve_metrics(host: &str, port: u16, state: web::Data<AppState>) -> anyhow::Result<u16> {
    let listener = listen(host, port)
        .with_context(|| format!("could not listen for metrics on {host}:{port}"))?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/metrics", web::get().to(health::metrics))
    })
    .workers(1)
    .listen(listener)?
    // Signals are the application's alone: actix-server's own SIGTERM handling here shut the
    // shop's workers down in the middle of the drain (503s and a 502 in the rolling update).
    // This listener ends with the process.
    .disable_signals()
    .run();
    tokio::spawn(server);
    log::info!("Metrics are served on {host}:{port}/metrics.");
    Ok(port)
}

#[derive(PartialEq, Eq)]
enum Stop {
    /// SIGTERM: drain first.
    Drain,
    /// SIGINT (Ctrl-C): stop now.
    Now,
}

async fn stop_signal() -> Stop {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        log::warn!("SIGTERM cannot be caught here; only Ctrl-C stops the shop.");
        let _ = tokio::signal::ctrl_c().await;
        return Stop::Now;
    };
    tokio::select! {
        _ = term.recv() => Stop::Drain,
        _ = tokio::signal::ctrl_c() => Stop::Now,
    }
}

/// Deletes what has expired: sessions in the stores that do not expire them themselves, and
/// checkout voids older than twice a claim's age (no transaction can still hold their tokens).
fn spawn_reaper(store: Store, db: Database, claim_seconds: i64) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(REAP_EVERY);
        loop {
            every.tick().await;
            match store.reap_expired().await {
                Ok(0) => {}
                Ok(n) => log::info!("The reaper deleted {n} expired sessions."),
                Err(err) => log::warn!("The reaper could not delete expired sessions: {err:#}"),
            }
            match db.reap_checkout_voids(2 * claim_seconds).await {
                Ok(0) => {}
                Ok(n) => log::info!("The reaper deleted {n} old checkout voids."),
                Err(err) => log::warn!("The reaper could not delete checkout voids: {err:#}"),
            }
        }
    });
}

fn run(
    listener: TcpListener,
    state: web::Data<AppState>,
    config: &Config,
) -> anyhow::Result<Server> {
    let key = state.sessions.cookie_key.clone();
    let session_settings = web::Data::new(state.sessions.clone());
    let anonymous_catalog = web::Data::new(catalog::AnonymousCatalog::default());
    let ttl = state.session_ttl;
    let cookie_secure = config.session.cookie_secure;
    let static_dir = config.static_dir.clone();
    // In production the metrics are an operator's, served only on their own listener.
    let public_metrics = config.app_env == AppEnv::Development;
    let mut server = HttpServer::new(move || {
        let sessions = SessionMiddleware::builder(state.store.clone(), key.clone())
            .cookie_name(session_cookie_name(cookie_secure).to_owned())
            .cookie_secure(cookie_secure)
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Lax)
            // Every request of a live session slides its idle expiry: the store does it inside
            // the read (see `Store::read_sliding`), and `refresh_session_cookie` gives the
            // browser's cookie the same fresh Max-Age.
            .session_lifecycle(PersistentSession::default().session_ttl(ttl))
            .build();
        App::new()
            .wrap(from_fn(middleware::finish_response))
            .wrap(from_fn(middleware::access_log))
            .app_data(state.clone())
            .app_data(session_settings.clone())
            .app_data(anonymous_catalog.clone())
            .app_data(web::PayloadConfig::new(MAX_FORM_BYTES))
            .service(
                web::scope("/static")
                    .wrap(from_fn(middleware::cache_static_assets))
                    .service(actix_files::Files::new("", &static_dir)),
            )
            .configure(routes::probes)
            .configure(|app| {
                if public_metrics {
                    routes::public_metrics(app);
                }
            })
            .service(
                web::scope("")
                    .wrap(from_fn(middleware::keep_shoppers_header))
                    .wrap(from_fn(middleware::end_expired_sign_in))
                    .wrap(from_fn(middleware::issue_cookie))
                    .wrap(from_fn(middleware::refresh_session_cookie))
                    .wrap(from_fn(middleware::bound_new_sessions))
                    .wrap(sessions)
                    .configure(routes::pages),
            )
            .default_service(web::to(routes::not_found))
    })
    .listen(listener)?
    // The signals are the application's own (`run_until_stopped`), which drains first.
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_SECONDS);
    if let Some(workers) = config.workers {
        server = server.workers(workers);
    }
    Ok(server.run())
}
