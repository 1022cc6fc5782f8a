//! The outermost layer: the friendly error pages, the 503 for a failed session store, the
//! `Allow` of a 405, the headers and the metrics of every response.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};
use askama::Template;

use super::access_log::X_REQUEST_ID;
use super::headers::add_headers;
use crate::error::{RETRY_AFTER_SECONDS, ShopError, status_text};
use crate::routes::{Layout, allowed_methods};
use crate::shop_session::ShopSession;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    title: &'static str,
    message: String,
}

/// The outermost layer. Every response gets `X-Served-By` and the security headers; every error
/// response without a body gets the friendly page with the instance badge; a failure of the
/// session store, which actix-session reports as an error from its middleware, becomes a 503
/// page with `Retry-After`. Logs the cause of a server error once.
///
/// The request cannot be kept across `next.call` (routing needs it unshared), so the 503 for a
/// store failure travels as an `InternalError` that carries the finished response.
pub async fn finish_response(
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
    let request_id = req
        .extensions()
        .get::<super::access_log::RequestId>()
        .map(|id| id.0.clone());
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
            // The store failed: nothing of the session is known, so the header is a guest's.
            let mut response = error_page(Layout::bare(&state), status, status_text(status))
                .unwrap_or_else(|| HttpResponse::new(status));
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
            add_headers(&state, response.headers_mut());
            if let Some(id) = &request_id {
                response.headers_mut().insert(X_REQUEST_ID, id.clone());
            }
            close_if_draining(&state, response.head_mut());
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
            Some(ShopError::Store(cause)) => log::error!("{method} {path} failed: {cause:#}"),
            _ => {}
        }
        let text = shop_error.map_or_else(|| status_text(status), ShopError::page_text);
        // The shopper's own header, kept while their session was loaded; outside the pages
        // (a static file), a guest's.
        let kept = response
            .request()
            .extensions_mut()
            .remove::<ShoppersHeader>();
        let layout = kept.map_or_else(|| Layout::bare(&state), |kept| kept.0);
        match error_page(layout, status, text) {
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
    if let Some(id) = request_id {
        response.headers_mut().insert(X_REQUEST_ID, id);
    }
    close_if_draining(&state, response.response_mut().head_mut());
    let route = route.unwrap_or_else(|| "unmatched".into());
    state
        .metrics
        .observe(&route, method.as_str(), status.as_u16(), started.elapsed());
    Ok(response)
}

/// The header an error page shows: the shopper's own, taken while their session was loaded.
struct ShoppersHeader(Layout);

/// Innermost of the pages' layers, where the session is still loaded (actix-session takes its
/// state out of the request when its own layer ends): an error response without a page keeps
/// the shopper's header (their name, their cart's count, a working logout form) for
/// `finish_response` to draw the page with. Their pending message, if the failed handler took it
/// for a page it did not show, is put back for the next page.
/// Its start and end are also where a slow request's record (`crate::timing`) marks the handler.
pub async fn keep_shoppers_header(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    crate::timing::handler_started();
    let response = next.call(req).await;
    crate::timing::handler_ended();
    let response = response?;
    let status = response.status();
    if (status.is_client_error() || status.is_server_error())
        && !response.headers().contains_key(header::CONTENT_TYPE)
        && let Some(state) = response.request().app_data::<web::Data<AppState>>()
    {
        let session = ShopSession::of(response.request());
        session.put_back_flash();
        let layout = Layout::keeping_flash(state, &session);
        response
            .request()
            .extensions_mut()
            .insert(ShoppersHeader(layout));
    }
    Ok(response)
}

/// While the instance drains, each response closes its connection, so the proxy in front opens
/// its next one to another replica instead of reusing one that is about to close.
fn close_if_draining(state: &AppState, head: &mut actix_web::dev::ResponseHead) {
    if state.is_draining() {
        head.set_connection_type(actix_web::http::ConnectionType::Close);
    }
}

fn error_page(
    layout: Layout,
    status: StatusCode,
    (title, message): (&'static str, String),
) -> Option<HttpResponse> {
    let page = ErrorPage {
        layout,
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
