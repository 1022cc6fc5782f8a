//! What every handler can reach: one `AppState` per application, shared by `startup` (which
//! builds it) and every route (which reads it), so neither imports the other.

use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::cookie::time::Duration;

use crate::db::Database;
use crate::metrics::Metrics;
use crate::session::{Backend, SessionSettings, Store};

/// The name of the cookie that carries the encrypted session key, over plain HTTP.
pub const SESSION_COOKIE: &str = "shop_session";
/// Its name when cookies are Secure: the `__Host-` prefix makes browsers refuse it unless it is
/// Secure, for this host only (no `Domain`) and for every path, so a sibling subdomain cannot
/// plant or shadow it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-shop_session";

/// The session cookie's name for the `Secure` setting.
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// What every handler can reach.
pub struct AppState {
    pub db: Database,
    pub store: Store,
    pub instance: String,
    /// `instance` as the `X-Served-By` value every response carries, made once (none if the
    /// name is not a valid header value).
    pub served_by: Option<actix_web::http::header::HeaderValue>,
    pub backend: Backend,
    pub metrics: Metrics,
    /// The idle expiry every write gives a session.
    pub session_ttl: Duration,
    /// The cookie key, the Secure flag and the sign-in lifetime, which the session layer reads
    /// too (registered beside this as its own app data).
    pub sessions: SessionSettings,
    /// How clients are told apart: the trusted proxies and the IPv6 prefix.
    pub clients: crate::client::Clients,
    /// What one client may cost: new sessions and registrations per window.
    pub limits: crate::limits::Limits,
    /// How long an unfinished checkout is joined before a retry voids it
    /// (`CHECKOUT_CLAIM_SECONDS`).
    pub checkout_claim_seconds: i64,
    /// The versioned addresses of the static files.
    pub assets: std::sync::Arc<crate::assets::Assets>,
    /// Requests slower than this are logged with where their time went (`SLOW_REQUEST_MILLIS`).
    pub slow_request: Option<std::time::Duration>,
    /// Whether `/session` shows the store inspector (`SESSION_INSPECTOR`).
    pub session_inspector: bool,
    /// Whether responses carry `Strict-Transport-Security`: in production with Secure cookies,
    /// that is behind TLS.
    pub strict_transport_security: bool,
    /// Set on SIGTERM: the instance is draining before it stops (see `DRAIN_SECONDS`).
    pub draining: AtomicBool,
}

impl AppState {
    /// Whether this instance is draining: `/readyz` answers 503 and connections are closed
    /// after each response.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Starts draining.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
    /// This instance's session cookie name.
    pub fn session_cookie(&self) -> &'static str {
        session_cookie_name(self.sessions.cookie_secure)
    }

    /// The session key in the request's cookie, decrypted; `None` without a valid cookie.
    pub fn session_key(&self, req: &actix_web::HttpRequest) -> Option<String> {
        let name = self.session_cookie();
        let mut jar = actix_web::cookie::CookieJar::new();
        jar.add_original(req.cookie(name)?);
        Some(
            jar.private(&self.sessions.cookie_key)
                .get(name)?
                .value()
                .to_owned(),
        )
    }
}
