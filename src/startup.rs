//! Middleware and routes in one place, and the `Application` that binds them to a listener.

use std::net::TcpListener;
use std::time::Duration as StdDuration;

use actix_session::SessionMiddleware;
use actix_session::config::PersistentSession;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::cookie::{Key, SameSite, time::Duration};
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::middleware::{Logger, Next, from_fn};
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use askama::Template;

use crate::config::Config;
use crate::db::Database;
use crate::error::{RETRY_AFTER_SECONDS, ShopError, status_text};
use crate::metrics::{Metrics, metrics};
use crate::routes::{Layout, auth, cart, catalog, checkout, health, inspector, orders};
use crate::session::{Backend, Store};

/// The name of the cookie that carries the encrypted session key.
pub const SESSION_COOKIE: &str = "shop_session";

/// Largest form body accepted; the biggest real form is well under 1 KiB.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// How often expired sessions are swept from stores that do not expire them on their own.
const REAP_EVERY: StdDuration = StdDuration::from_secs(60);

/// What every handler can reach.
pub struct AppState {
    pub db: Database,
    pub store: Store,
    pub instance: String,
    pub backend: Backend,
    /// Decrypts the session cookie, for the inspector page.
    pub cookie_key: Key,
    pub metrics: Metrics,
    /// The idle expiry every write gives a session.
    pub session_ttl: Duration,
    /// How long a sign-in lasts at most, however active (`SESSION_MAX_LOGIN_SECONDS`).
    pub max_login_seconds: i64,
}

impl AppState {
    /// The session key in the request's cookie, decrypted; `None` without a valid cookie.
    pub fn session_key(&self, req: &actix_web::HttpRequest) -> Option<String> {
        let mut jar = actix_web::cookie::CookieJar::new();
        jar.add_original(req.cookie(SESSION_COOKIE)?);
        Some(
            jar.private(&self.cookie_key)
                .get(SESSION_COOKIE)?
                .value()
                .to_owned(),
        )
    }
}

/// A shop instance bound to its port, ready to run.
pub struct Application {
    port: u16,
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
        let state = web::Data::new(AppState {
            db,
            store: store.clone(),
            instance: config.instance_name.clone(),
            backend: store.backend(),
            cookie_key: Key::from(config.session.secret.bytes()),
            metrics: Metrics::new(&store)?,
            session_ttl: Duration::seconds(config.session.ttl_seconds),
            max_login_seconds: config.session.max_login_seconds,
        });
        let server = run(listener, state, &config)?;
        Ok(Self {
            port,
            server,
            store,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
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
pub async fn serve_from_env() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
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
    let key = state.cookie_key.clone();
    let ttl = state.session_ttl;
    let cookie_secure = config.session.cookie_secure;
    let static_dir = config.static_dir.clone();
    let mut server = HttpServer::new(move || {
        let sessions = SessionMiddleware::builder(state.store.clone(), key.clone())
            .cookie_name(SESSION_COOKIE.to_owned())
            .cookie_secure(cookie_secure)
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Lax)
            .session_lifecycle(PersistentSession::default().session_ttl(ttl))
            .build();
        App::new()
            .wrap(Logger::new("%a \"%r\" %s %b %Dms"))
            .wrap(from_fn(finish_response))
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(MAX_FORM_BYTES))
            .service(actix_files::Files::new("/static", &static_dir))
            .route("/healthz", web::get().to(health::healthz))
            .route("/readyz", web::get().to(health::readyz))
            .route("/metrics", web::get().to(metrics))
            .service(
                web::scope("")
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

async fn not_found() -> Result<HttpResponse, ShopError> {
    Err(ShopError::NotFound)
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    title: &'static str,
    message: String,
}

/// Security headers every response carries, besides `X-Served-By`.
const SECURITY_HEADERS: [(header::HeaderName, &str); 4] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "same-origin"),
];

/// The outermost layer. Every response gets `X-Served-By` and the security headers; every error
/// response without a body gets the friendly page with the instance badge; a failure of the
/// session store, which actix-session reports as an error from its middleware, becomes a 503
/// page with `Retry-After`. Logs the cause of a server error once.
///
/// The request cannot be kept across `next.call` (routing needs it unshared), so the 503 for a
/// store failure travels as an `InternalError` that carries the finished response.
async fn finish_response(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let Some(state) = state else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let (method, path) = (req.method().clone(), req.path().to_owned());
    let started = std::time::Instant::now();
    let response = match next.call(req).await {
        Ok(response) => response.map_into_boxed_body(),
        Err(err) => {
            log::error!("The session store failed while serving {method} {path}: {err:?}");
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
        if let Some(ShopError::Unexpected(cause) | ShopError::Unavailable(cause)) = shop_error {
            log::error!("{method} {path} failed: {cause:?}");
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
    add_headers(&state, response.headers_mut());
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    state
        .metrics
        .observe(&route, method.as_str(), status.as_u16(), started.elapsed());
    Ok(response)
}

fn add_headers(state: &AppState, headers: &mut header::HeaderMap) {
    if let Ok(instance) = header::HeaderValue::from_str(&state.instance) {
        headers.insert(header::HeaderName::from_static("x-served-by"), instance);
    }
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, header::HeaderValue::from_static(value));
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
