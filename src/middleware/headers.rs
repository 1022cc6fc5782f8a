//! The headers every response carries: `X-Served-By`, the security headers, `no-store` for
//! everything personal, and a public cache life for static assets only.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;

use actix_web::web;

use crate::state::AppState;

/// How long browsers and proxies may keep a static asset before asking again (with its
/// `ETag`/`Last-Modified`, which answers 304 while it is unchanged).
/// A static file asked for by its plain path, or by a version this replica does not have (a
/// page of another release during a deploy): kept for a day.
const STATIC_CACHE_CONTROL: &str = "public, max-age=86400";

/// A static file asked for by its current version's address (`crate::assets`): its bytes never
/// change under that address.
const VERSIONED_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// Lets browsers and shared caches keep a static asset, and only an asset: a 404 or 405 under
/// `/static` (a file not yet on this replica during a rolling deploy) stays `no-store`, or a CDN
/// would serve it for a day.
pub async fn cache_static_assets(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let current = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|state| state.assets.is_current(req.path(), req.query_string()));
    let mut response = next.call(req).await?;
    let status = response.status();
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static(if current {
                VERSIONED_CACHE_CONTROL
            } else {
                STATIC_CACHE_CONTROL
            }),
        );
    }
    Ok(response)
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

/// Every response but a static asset is `no-store`: pages carry the shopper's cart, orders and
/// form tokens, and no shared cache may keep them.
pub(super) fn add_headers(state: &AppState, headers: &mut header::HeaderMap) {
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
