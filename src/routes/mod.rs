//! One module per page area; `startup` wires them to paths.

pub mod account;
pub mod auth;
pub mod cart;
pub mod catalog;
pub mod checkout;
mod form;
pub mod health;
pub mod inspector;
mod layout;
pub mod orders;
mod table;

pub use form::{CheckedForm, NoFields};
pub use layout::Layout;
pub use table::{allowed_methods, not_found, pages, probes, public_metrics};

use actix_web::HttpResponse;
use actix_web::http::{StatusCode, header};
use askama::Template;

use crate::error::{ShopError, SignInReason};
use crate::session::SignedInUser;
use crate::shop_session::ShopSession;

/// After a POST: 303, so a reload does not send the form again.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// Room for a whole page in one allocation. askama's own estimate is a template's literal text,
/// so a catalog page grew its buffer from 2 KiB to 16, copying it each time (an eighth of a
/// cookie-less view's instructions); a page larger than this still grows as it must.
pub(crate) const PAGE_CAPACITY: usize = 16 * 1024;

/// Renders a page with a status other than 200 (a form shown again with its error).
pub fn render_with_status<T: Template>(
    page: &T,
    status: StatusCode,
) -> Result<HttpResponse, ShopError> {
    let mut body = String::with_capacity(PAGE_CAPACITY.max(T::SIZE_HINT));
    page.render_into(&mut body)
        .map_err(|err| ShopError::Unexpected(anyhow::anyhow!("template failed: {err}")))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body))
}

/// A page a handler returns: rendered by `render_with_status` with 200, or the error page if
/// the template fails.
macro_rules! page {
    ($($page:ty),+ $(,)?) => {$(
        impl actix_web::Responder for $page {
            type Body = actix_web::body::BoxBody;

            fn respond_to(self, _: &actix_web::HttpRequest) -> actix_web::HttpResponse {
                crate::routes::render_with_status(&self, actix_web::http::StatusCode::OK)
                    .unwrap_or_else(actix_web::HttpResponse::from_error)
            }
        }
    )+};
}
pub(crate) use page;

/// The signed-in user; otherwise the login page is next, with a message saying why.
/// Writes nothing: the reason travels in the login page's address.
pub fn require_user(session: &ShopSession, why: SignInReason) -> Result<SignedInUser, ShopError> {
    session.user().ok_or(ShopError::LoginRequired(why))
}
