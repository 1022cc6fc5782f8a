//! The session cookie's `Max-Age`, refreshed on every request of a live session.

use actix_session::{SessionExt, SessionStatus};
use actix_web::body::MessageBody;
use actix_web::cookie::SameSite;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web;

use crate::state::AppState;

/// After a request of a live session that changed nothing (actix-session writes the cookie
/// itself when something changed), sends the browser its session cookie again with a fresh
/// `Max-Age`, since the store slid the expiry during the read. The value goes back exactly as
/// it came, already encrypted: a page view costs a header, not a cipher.
pub async fn refresh_session_cookie(
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
