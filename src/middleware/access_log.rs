//! One line per request, naming the client the limits count (its address past
//! `TRUSTED_PROXIES`, not the proxy's), the request's id, and the request line escaped, so that
//! nothing a client sends can forge a field of its own line or start another.
//!
//! The id comes from `X-Request-Id` when a trusted proxy sent it (nginx sets `$request_id`,
//! ingress-nginx its own), else the shop makes one; it is returned in the response's
//! `X-Request-Id`, and every log line about the request names it, so a class or an operator can
//! follow one request from nginx's log through a replica's.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, web};

use crate::state::AppState;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, in its extensions.
#[derive(Clone)]
pub struct RequestId(pub HeaderValue);

/// At most this many slow-request lines a second: when everything is slow, logging each one
/// made it slower still (measured: a 5 ms threshold at saturation turned a half-load run's
/// p50 from 0.18 ms into 7 s).
const SLOW_LINES_PER_SECOND: u32 = 20;

static SLOW_LINES: crate::timing::LinesPerSecond =
    crate::timing::LinesPerSecond::new(SLOW_LINES_PER_SECOND);

/// The longest id taken from a proxy.
const MAX_ID_LEN: usize = 64;

/// Who made a request and which it is, for a log line: `client 198.51.100.7, request 5f1c…`.
pub fn who(req: &HttpRequest) -> String {
    let client = req
        .app_data::<web::Data<AppState>>()
        .map_or_else(|| "unknown".to_owned(), |state| client_name(state, req));
    let id = req
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.0.to_str().ok().map(str::to_owned))
        .unwrap_or_else(|| "-".to_owned());
    format!("client {client}, request {id}")
}

/// The client as the limits count it (past `TRUSTED_PROXIES`), for a log line.
fn client_name(state: &AppState, req: &HttpRequest) -> String {
    state
        .clients
        .address(req)
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

/// The id a trusted proxy gave the request, if it is one to keep: 1 to 64 letters, digits and
/// dashes (nothing a log or a header could be forged with).
fn from_proxy(req: &ServiceRequest, state: &AppState) -> Option<HeaderValue> {
    let peer = req.peer_addr()?.ip().to_canonical();
    if !state
        .clients
        .trusted_proxies
        .iter()
        .any(|net| net.contains(&peer))
    {
        return None;
    }
    let value = req.headers().get(X_REQUEST_ID)?;
    let bytes = value.as_bytes();
    let fine = (1..=MAX_ID_LEN).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-');
    fine.then(|| value.clone())
}

fn new_id() -> HeaderValue {
    let id = hex::encode(rand::random::<[u8; 12]>());
    HeaderValue::from_str(&id).expect("hex is a valid header value")
}

/// The request line as logged: method, target and version, every `"`, `\`, control and
/// non-ASCII character escaped (`\"`, `\\`, `\u{…}`).
fn request_line(req: &ServiceRequest) -> String {
    let target = req.uri().to_string();
    format!(
        "{} {} {:?}",
        req.method(),
        target.escape_default(),
        req.version()
    )
}

/// The outermost layer: gives the request its id and, with access logging on (`RUST_LOG` at
/// `info` for `shop::access`), logs one line when it is answered.
pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(req).await;
    };
    let id = from_proxy(&req, &state).unwrap_or_else(new_id);
    req.extensions_mut().insert(RequestId(id.clone()));
    let access = log::log_enabled!(target: "shop::access", log::Level::Info);
    if state.slow_request.is_none() && !access {
        return next.call(req).await;
    }
    let line = request_line(&req);
    let client = access.then(|| client_name(&state, req.request()));
    let started = std::time::Instant::now();
    let answered = match state.slow_request {
        Some(threshold) => {
            let (answered, phases) = crate::timing::recorded(next.call(req)).await;
            if phases.total() >= threshold && SLOW_LINES.admit() {
                log::warn!(
                    target: "shop::slow",
                    "request {} \"{line}\" took {:.1} ms: {phases}",
                    id.to_str().unwrap_or("-"),
                    phases.total().as_secs_f64() * 1000.0
                );
            }
            answered
        }
        None => next.call(req).await,
    };
    if let Some(client) = client {
        let status = match &answered {
            Ok(response) => response.status(),
            Err(err) => err.as_response_error().status_code(),
        };
        log::info!(
            target: "shop::access",
            "{client} {} \"{line}\" {} {:.1}ms",
            id.to_str().unwrap_or("-"),
            status.as_u16(),
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    answered
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn a_request_line_cannot_forge_fields_or_lines() {
        let req = TestRequest::get().uri("/search?q=%22a%22").to_srv_request();
        assert_eq!(request_line(&req), "GET /search?q=%22a%22 HTTP/1.1");
        let forged: String = "/x\" 200 0.1ms\nfake".escape_default().to_string();
        assert_eq!(forged, "/x\\\" 200 0.1ms\\nfake");
    }
}
