//! What every page shows around its content: navigation with the cart count and the signed-in
//! user, a one-time message, and the footer badge naming the instance and the session store.

use std::fmt;
use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

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
        }
    }

    fn for_session(state: &AppState, session: &ShopSession) -> Result<Self, ShopError> {
        Ok(Self {
            user: session.user(),
            cart_count: session.cart_count(),
            csrf_token: FormToken::new(session.csrf_token()?),
            flash: session.take_flash(),
            ..Self::bare(state)
        })
    }
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
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return ready(Err(ShopError::Unexpected(anyhow::anyhow!(
                "AppState is not registered"
            ))));
        };
        let session = ShopSession::of(req);
        ready(Self::for_session(state, &session))
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
