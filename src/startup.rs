//! Middleware and routes in one place, and the `Application` that binds them to a listener.

use std::net::TcpListener;
use std::time::Duration as StdDuration;

use actix_session::config::PersistentSession;
use actix_session::{SessionExt, SessionMiddleware, SessionStatus};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::cookie::{Key, SameSite, time::Duration};
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::Method;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::middleware::{Condition, Logger, Next, from_fn};
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use askama::Template;

use crate::client::Clients;
use crate::config::{AppEnv, Config};
use crate::db::Database;
use crate::error::{RETRY_AFTER_SECONDS, ShopError, status_text};
use crate::metrics::Metrics;
use crate::routes::{Layout, account, auth, cart, catalog, checkout, health, inspector, orders};
use crate::session::{Backend, SessionSettings, Store, csrf, end_expired_sign_in};
pub use crate::state::{AppState, SECURE_SESSION_COOKIE, SESSION_COOKIE, session_cookie_name};

/// Largest form body accepted; the biggest real form is well under 1 KiB.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// How long browsers and proxies may keep a static asset before asking again (with its
/// `ETag`/`Last-Modified`, which answers 304 while it is unchanged).
const STATIC_CACHE_CONTROL: &str = "public, max-age=86400";

/// Lets browsers and shared caches keep a static asset, and only an asset: a 404 or 405 under
/// `/static` (a file not yet on this replica during a rolling deploy) stays `no-store`, or a CDN
/// would serve it for a day.
async fn cache_static_assets(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut response = next.call(req).await?;
    let status = response.status();
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static(STATIC_CACHE_CONTROL),
        );
    }
    Ok(response)
}

/// How often expired sessions are swept from stores that do not expire them on their own.
const REAP_EVERY: StdDuration = StdDuration::from_secs(60);

/// A shop instance bound to its port, ready to run.
pub struct Application {
    port: u16,
    /// The port of the separate metrics listener, when `METRICS_PORT` asked for one.
    metrics_port: Option<u16>,
    server: Server,
    store: Store,
}

impl Application {
    /// Connects to the database and the session store, binds the listener (port 0 picks a free
    /// port), and wires the routes.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = Database::connect(&config.database_url).await?;
        let store = Store::connect(&config.session).await.with_context(|| {
            format!(
                "could not reach the {} session store",
                config.session.backend
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
        let listener = TcpListener::bind((config.host.as_str(), config.port))
            .with_context(|| format!("could not listen on {}:{}", config.host, config.port))?;
        let port = listener.local_addr()?.port();
        spawn_reaper(store.clone());
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
            },
            session_inspector: config.session_inspector,
            strict_transport_security: config.app_env == AppEnv::Production
                && config.session.cookie_secure,
        });
        let metrics_port = match config.metrics_port {
            Some(port) => Some(serve_metrics(&config.metrics_host, port, state.clone())?),
            None => None,
        };
        let server = run(listener, state, &config)?;
        Ok(Self {
            port,
            metrics_port,
            server,
            store,
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

    /// Serves until SIGINT or SIGTERM; in-flight requests finish first.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
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

/// `/metrics` on its own listener (`METRICS_HOST`:`METRICS_PORT`), for Prometheus: operators
/// reach it on a private address while the public port, in production, does not serve it.
/// Returns the bound port.
fn serve_metrics(host: &str, port: u16, state: web::Data<AppState>) -> anyhow::Result<u16> {
    let listener = TcpListener::bind((host, port))
        .with_context(|| format!("could not listen for metrics on {host}:{port}"))?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/metrics", web::get().to(health::metrics))
    })
    .workers(1)
    .listen(listener)?
    .run();
    tokio::spawn(server);
    log::info!("Metrics are served on {host}:{port}/metrics.");
    Ok(port)
}

fn spawn_reaper(store: Store) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(REAP_EVERY);
        loop {
            every.tick().await;
            match store.reap_expired().await {
                Ok(0) => {}
                Ok(n) => log::info!("The reaper deleted {n} expired sessions."),
                Err(err) => log::warn!("The reaper could not delete expired sessions: {err:#}"),
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
    // The access log formats each request's parts before it knows whether the line will be
    // written; with access logging off (RUST_LOG=error, say) that was 2% of a page view.
    let access_log = log::log_enabled!(target: "actix_web::middleware::logger", log::Level::Info);
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
            .wrap(Condition::new(
                access_log,
                Logger::new("%a \"%r\" %s %b %Dms"),
            ))
            .wrap(from_fn(finish_response))
            .app_data(state.clone())
            .app_data(session_settings.clone())
            .app_data(anonymous_catalog.clone())
            .app_data(web::PayloadConfig::new(MAX_FORM_BYTES))
            .service(
                web::scope("/static")
                    .wrap(from_fn(cache_static_assets))
                    .service(actix_files::Files::new("", &static_dir)),
            )
            .route("/healthz", web::get().to(health::healthz))
            .route("/readyz", web::get().to(health::readyz))
            .configure(|app| {
                if public_metrics {
                    app.route("/metrics", web::get().to(health::metrics));
                }
            })
            .service(
                web::scope("")
                    .wrap(from_fn(end_expired_sign_in))
                    .wrap(from_fn(csrf::issue_cookie))
                    .wrap(from_fn(refresh_session_cookie))
                    .wrap(sessions)
                    .route("/", web::get().to(catalog::index))
                    .route("/products/{id}", web::get().to(catalog::product))
                    .service(
                        web::resource("/register")
                            .get(auth::register_form)
                            .post(auth::register),
                    )
                    .service(
                        web::resource("/login")
                            .get(auth::login_form)
                            .post(auth::login),
                    )
                    .route("/logout", web::post().to(auth::logout))
                    .route("/cart", web::get().to(cart::show))
                    .route("/cart/items", web::post().to(cart::add))
                    .route("/cart/items/{id}", web::post().to(cart::update))
                    .route("/cart/items/{id}/remove", web::post().to(cart::remove))
                    .route("/checkout", web::post().to(checkout::checkout))
                    .route("/orders", web::get().to(orders::list))
                    .route("/orders/{id}", web::get().to(orders::show))
                    .route("/account/sessions", web::get().to(account::sessions))
                    .route(
                        "/account/sessions/end-others",
                        web::post().to(account::end_others),
                    )
                    .route("/account/sessions/{id}/end", web::post().to(account::end))
                    .route("/session", web::get().to(inspector::show)),
            )
            .default_service(web::to(not_found))
    })
    .listen(listener)?;
    if let Some(workers) = config.workers {
        server = server.workers(workers);
    }
    Ok(server.run())
}

/// What no route answers: an unknown path is a 404; a known path asked with a method it does
/// not take (actix-web hands those to the default service too) is a 405.
/// After a request of a live session that changed nothing (actix-session writes the cookie
/// itself when something changed), sends the browser its session cookie again with a fresh
/// `Max-Age`, since the store slid the expiry during the read. The value goes back exactly as
/// it came, already encrypted: a page view costs a header, not a cipher.
async fn refresh_session_cookie(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut response = next.call(req).await?;
    let request = response.request();
    let session = request.get_session();
    let Some(state) = request.app_data::<web::Data<AppState>>() else {
        return Ok(response);
    };
    let name = state.session_cookie();
    let Some(cookie) = request.cookie(name) else {
        return Ok(response);
    };
    if session.status() != SessionStatus::Unchanged || !session.contains_key(crate::session::LOADED)
    {
        return Ok(response);
    }
    let refreshed = actix_web::cookie::Cookie::build(name, cookie.value().to_owned())
        .path("/")
        .http_only(true)
        .secure(state.sessions.cookie_secure)
        .same_site(SameSite::Lax)
        .max_age(state.session_ttl)
        .finish();
    // Written as actix-session writes it, not percent-encoded: the value is the cookie's own
    // base64 (it decrypted, or the session would not have loaded), and percent-encoding it
    // cost more than writing the rest of the header.
    if let Ok(value) = header::HeaderValue::from_str(&refreshed.to_string()) {
        response
            .response_mut()
            .headers_mut()
            .append(header::SET_COOKIE, value);
    }
    Ok(response)
}

async fn not_found(req: actix_web::HttpRequest) -> Result<HttpResponse, ShopError> {
    match req.match_pattern().as_deref().and_then(allowed_methods) {
        Some(_) => Err(ShopError::MethodNotAllowed),
        None => Err(ShopError::NotFound),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    title: &'static str,
    message: String,
}

/// Behind TLS (production with Secure cookies): browsers that have seen the shop over HTTPS
/// never try plain HTTP for it again for a year, so no first request can be downgraded.
const STRICT_TRANSPORT_SECURITY: header::HeaderValue =
    header::HeaderValue::from_static("max-age=31536000; includeSubDomains");

const X_SERVED_BY: header::HeaderName = header::HeaderName::from_static("x-served-by");

/// Security headers every response carries, besides `X-Served-By`. The values are checked
/// when the shop is compiled (`from_static` in a constant), not on every response.
const SECURITY_HEADERS: [(header::HeaderName, header::HeaderValue); 4] = [
    (
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ),
    (
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    ),
    (
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    ),
    (
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("same-origin"),
    ),
];

/// The outermost layer. Every response gets `X-Served-By` and the security headers; every error
/// response without a body gets the friendly page with the instance badge; a failure of the
/// session store, which actix-session reports as an error from its middleware, becomes a 503
/// page with `Retry-After`. Logs the cause of a server error once.
///
/// The request cannot be kept across `next.call` (routing needs it unshared), so the 503 for a
/// store failure travels as an `InternalError` that carries the finished response.
async fn finish_response(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // HEAD is GET without the body: routed as GET, and the server sends no body for a HEAD.
    let method = req.method().clone();
    if method == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let Some(state) = state else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let path = req.path().to_owned();
    let started = std::time::Instant::now();
    let response = match next.call(req).await {
        Ok(response) => response.map_into_boxed_body(),
        Err(err) => {
            // The store logged the causes (`Store`'s `reported`); actix-session's error
            // carries them only in its `Debug`, with the backtrace RUST_BACKTRACE captured.
            log::error!("The session store failed while serving {method} {path}: {err}");
            let status = StatusCode::SERVICE_UNAVAILABLE;
            state.metrics.observe(
                "session store failed",
                method.as_str(),
                503,
                started.elapsed(),
            );
            let mut response = error_page(&state, status, status_text(status))
                .unwrap_or_else(|| HttpResponse::new(status));
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
            add_headers(&state, response.headers_mut());
            return Err(InternalError::from_response("session store unavailable", response).into());
        }
    };
    let status = response.status();
    let needs_page = (status.is_client_error() || status.is_server_error())
        && !response.headers().contains_key(header::CONTENT_TYPE);
    let mut response = if needs_page {
        let shop_error = response
            .response()
            .error()
            .and_then(|e| e.as_error::<ShopError>());
        match shop_error {
            // A bug: its backtrace, when RUST_BACKTRACE asked for one.
            Some(ShopError::Unexpected(cause)) => log::error!("{method} {path} failed: {cause:?}"),
            // A store down or every hashing slot busy: the causes, never a backtrace. Printing
            // one symbolizes the binary's debug info (150 MiB held from then on, measured with
            // RUST_BACKTRACE=1), once per 503 of a login flood or an outage.
            Some(ShopError::Unavailable(cause)) => log::error!("{method} {path} failed: {cause:#}"),
            _ => {}
        }
        let text = shop_error.map_or_else(|| status_text(status), ShopError::page_text);
        match error_page(&state, status, text) {
            Some(mut page) => {
                for (name, value) in response.headers() {
                    if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
                        page.headers_mut().append(name.clone(), value.clone());
                    }
                }
                response.into_response(page)
            }
            None => response,
        }
    } else {
        response
    };
    let route = response.request().match_pattern();
    if status == StatusCode::METHOD_NOT_ALLOWED
        && let Some(allow) = route.as_deref().and_then(allowed_methods)
    {
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    }
    add_headers(&state, response.headers_mut());
    let route = route.unwrap_or_else(|| "unmatched".into());
    state
        .metrics
        .observe(&route, method.as_str(), status.as_u16(), started.elapsed());
    Ok(response)
}

/// The methods each route answers, for the `Allow` header of a 405; kept beside `run`, whose
/// routes it mirrors (a test sends every route a wrong method and then each allowed one).
fn allowed_methods(route: &str) -> Option<&'static str> {
    Some(match route {
        "/register" | "/login" => "GET, HEAD, POST",
        "/" | "/products/{id}" | "/cart" | "/orders" | "/orders/{id}" | "/account/sessions"
        | "/session" | "/healthz" | "/readyz" | "/metrics" => "GET, HEAD",
        "/logout"
        | "/cart/items"
        | "/cart/items/{id}"
        | "/cart/items/{id}/remove"
        | "/checkout"
        | "/account/sessions/end-others"
        | "/account/sessions/{id}/end" => "POST",
        _ => return None,
    })
}

/// Every response but a static asset is `no-store`: pages carry the shopper's cart, orders and
/// form tokens, and no shared cache may keep them.
fn add_headers(state: &AppState, headers: &mut header::HeaderMap) {
    if let Some(served_by) = &state.served_by {
        headers.insert(X_SERVED_BY, served_by.clone());
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, value);
    }
    if state.strict_transport_security {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, STRICT_TRANSPORT_SECURITY);
    }
}

fn error_page(
    state: &AppState,
    status: StatusCode,
    (title, message): (&'static str, String),
) -> Option<HttpResponse> {
    let page = ErrorPage {
        layout: Layout::bare(state),
        status: status.as_u16(),
        title,
        message,
    };
    match page.render() {
        Ok(body) => Some(
            HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .body(body),
        ),
        Err(err) => {
            log::error!("The error page failed to render: {err}");
            None
        }
    }
}
