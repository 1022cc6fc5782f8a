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

pub use form::{CheckedForm, NoFields};
pub use layout::Layout;

use actix_web::HttpResponse;
use actix_web::http::{StatusCode, header};
use askama::Template;

use crate::error::{ShopError, SignInReason};
use crate::session::{ShopSession, SignedInUser};

/// After a POST: 303, so a reload does not send the form again.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// Renders a page with a status other than 200 (a form shown again with its error).
pub fn render_with_status(
    page: &impl Template,
    status: StatusCode,
) -> Result<HttpResponse, ShopError> {
    let body = page
        .render()
        .map_err(|err| ShopError::Unexpected(anyhow::anyhow!("template failed: {err}")))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body))
}

/// The signed-in user; otherwise the login page is next, with a message saying why.
/// Writes nothing: the reason travels in the login page's address.
pub fn require_user(session: &ShopSession, why: SignInReason) -> Result<SignedInUser, ShopError> {
    session.user().ok_or(ShopError::LoginRequired(why))
}
