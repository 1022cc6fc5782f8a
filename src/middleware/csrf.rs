//! The guest nonce cookie (see `session::csrf`): set on the response of a request that made a
//! new nonce.

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

use crate::session::SessionSettings;
use crate::session::csrf::{Nonce, cookie_name};

/// Sets the nonce cookie on the response when this request made a new nonce (a page that showed
/// a form to a visitor without one).
pub async fn issue_cookie(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let secure = req
        .app_data::<actix_web::web::Data<SessionSettings>>()
        .is_some_and(|state| state.cookie_secure);
    let mut response = next.call(req).await?;
    let new = response
        .request()
        .extensions()
        .get::<Nonce>()
        .filter(|nonce| nonce.is_new)
        .map(|nonce| nonce.value.clone());
    if let Some(value) = new {
        let cookie = Cookie::build(cookie_name(secure), value)
            .path("/")
            .http_only(true)
            .secure(secure)
            .same_site(SameSite::Lax)
            .finish();
        response.response_mut().add_cookie(&cookie)?;
    }
    Ok(response)
}
