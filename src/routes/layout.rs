//! What every page shows around its content: navigation with the cart count and the signed-in
//! user, a one-time message, and the footer badge naming the instance and the session store.

use std::fmt;
use std::future::{Ready, ready};

use std::sync::Arc;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use crate::assets::Assets;
use crate::error::ShopError;
use crate::session::{Flash, SignedInUser};
use crate::shop_session::ShopSession;
use crate::state::AppState;

pub struct Layout {
    pub instance: String,
    pub backend: &'static str,
    pub user: Option<SignedInUser>,
    pub cart_count: u32,
    pub csrf_token: FormToken,
    pub flash: Option<Flash>,
    /// Whether the footer links to the store inspector (`SESSION_INSPECTOR`).
    pub inspector: bool,
    pub assets: Arc<Assets>,
}

impl Layout {
    /// The layout of an error page, drawn without the session (which may be what failed).
    pub fn bare(state: &AppState) -> Self {
        Self {
            instance: state.instance.clone(),
            backend: state.backend.name(),
            user: None,
            cart_count: 0,
            csrf_token: FormToken::default(),
            flash: None,
            inspector: state.session_inspector,
            assets: state.assets.clone(),
        }
    }

    fn for_session(state: &AppState, session: &ShopSession) -> Result<Self, ShopError> {
        Ok(Self {
            flash: session.take_flash(),
            ..Self::keeping_flash(state, session)
        })
    }

    /// The shopper's real header (their name, their cart's count, a working logout form)
    /// without taking their pending message, which stays for the next page: for an error page,
    /// and for a form shown again with its mistake, where the session must not change.
    pub fn keeping_flash(state: &AppState, session: &ShopSession) -> Self {
        Self {
            user: session.user(),
            cart_count: session.cart_count(),
            csrf_token: session.csrf_token().map(FormToken::new).unwrap_or_default(),
            ..Self::bare(state)
        }
    }

    /// The header for a form shown again with its mistake, from the request.
    pub fn of_request(req: &HttpRequest) -> Result<Self, ShopError> {
        let state = app_state(req)?;
        Ok(Self::keeping_flash(state, &ShopSession::of(req)))
    }
}

fn app_state(req: &HttpRequest) -> Result<&web::Data<AppState>, ShopError> {
    req.app_data::<web::Data<AppState>>()
        .ok_or_else(|| ShopError::Unexpected(anyhow::anyhow!("AppState is not registered")))
}

/// The form token as pages print it: hex digits only, checked once here, so the twelve forms of
/// a cart page write it without escaping it twelve times.
#[derive(Default)]
pub struct FormToken(String);

impl FormToken {
    /// A token that is not hex (a foreign value in a stored session) is printed as none: the
    /// forms then fail their CSRF check with the usual message, and nothing unescaped is printed.
    pub(super) fn new(token: String) -> Self {
        if token.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            Self(token)
        } else {
            log::warn!("The session's form token is not hex; the page prints none.");
            Self::default()
        }
    }
}

impl Layout {
    /// The versioned address of a static file, for a page to name.
    pub fn asset<'a>(&'a self, path: &'a str) -> &'a str {
        self.assets.url(path)
    }
}

impl FormToken {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FormToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl askama::filters::HtmlSafe for FormToken {}

impl FromRequest for Layout {
    type Error = ShopError;
    type Future = Ready<Result<Self, ShopError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(app_state(req).and_then(|state| Self::for_session(state, &ShopSession::of(req))))
    }
}

#[cfg(test)]
mod tests {
    use super::FormToken;

    #[test]
    fn a_hex_token_prints_as_it_is_and_anything_else_prints_as_none() {
        let hex = "0123456789abcdefABCDEF";
        assert_eq!(FormToken::new(hex.to_owned()).to_string(), hex);
        assert_eq!(FormToken::new("\"><script>".to_owned()).to_string(), "");
        assert_eq!(FormToken::new("abc def".to_owned()).to_string(), "");
        assert_eq!(FormToken::new(String::new()).to_string(), "");
    }
}
