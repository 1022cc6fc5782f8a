//! What every handler can reach: one `AppState` per application, shared by `startup` (which
//! builds it) and every route (which reads it), so neither imports the other.

use actix_web::cookie::time::Duration;

use crate::db::Database;
use crate::metrics::Metrics;
use crate::session::{Backend, SessionSettings, Store};

/// The name of the cookie that carries the encrypted session key.
pub const SESSION_COOKIE: &str = "shop_session";

/// What every handler can reach.
pub struct AppState {
    pub db: Database,
    pub store: Store,
    pub instance: String,
    pub backend: Backend,
    pub metrics: Metrics,
    /// The idle expiry every write gives a session.
    pub session_ttl: Duration,
    /// The cookie key, the Secure flag and the sign-in lifetime, which the session layer reads
    /// too (registered beside this as its own app data).
    pub sessions: SessionSettings,
    /// Proxies whose `X-Forwarded-For` names the client (`TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Whether `/session` shows the store inspector (`SESSION_INSPECTOR`).
    pub session_inspector: bool,
}

impl AppState {
    /// The session key in the request's cookie, decrypted; `None` without a valid cookie.
    pub fn session_key(&self, req: &actix_web::HttpRequest) -> Option<String> {
        let mut jar = actix_web::cookie::CookieJar::new();
        jar.add_original(req.cookie(SESSION_COOKIE)?);
        Some(
            jar.private(&self.sessions.cookie_key)
                .get(SESSION_COOKIE)?
                .value()
                .to_owned(),
        )
    }
}
