//! `/session`: the store inspector that makes the rule visible. It shows the visitor what the
//! backing store holds for them, exactly as stored, and how long it has left; the cookie in
//! their browser holds only the encrypted key, of which this page shows the first characters.

use actix_web::{HttpRequest, web};
use askama::Template;

use super::Layout;
use crate::error::ShopError;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "session.html")]
pub struct SessionPage {
    layout: Layout,
    key_prefix: Option<String>,
    stored: Option<String>,
    ttl_seconds: i64,
    cookie_bytes: usize,
}

super::page!(SessionPage);

pub async fn show(
    req: HttpRequest,
    state: web::Data<AppState>,
    layout: Layout,
) -> Result<SessionPage, ShopError> {
    // An operator's tool: off in production unless SESSION_INSPECTOR=1.
    if !state.session_inspector {
        return Err(ShopError::NotFound);
    }
    let cookie_bytes = req
        .cookie(state.session_cookie())
        .map_or(0, |c| c.value().len());
    let key = state.session_key(&req);
    let stored = match &key {
        Some(key) => state.store.raw(key).await?,
        None => None,
    };
    Ok(SessionPage {
        layout,
        key_prefix: key.map(|k| k.chars().take(8).collect()),
        ttl_seconds: stored.as_ref().map_or(0, |(_, ttl)| *ttl),
        stored: stored.map(|(value, _)| value),
        cookie_bytes,
    })
}
