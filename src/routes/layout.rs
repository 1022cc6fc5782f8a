//! What every page shows around its content: navigation with the cart count and the signed-in
//! user, a one-time message, and the footer badge naming the instance and the session store.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use crate::error::ShopError;
use crate::session::{Flash, ShopSession, SignedInUser};
use crate::state::AppState;

pub struct Layout {
    pub instance: String,
    pub backend: &'static str,
    pub user: Option<SignedInUser>,
    pub cart_count: u32,
    pub csrf_token: String,
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
            csrf_token: String::new(),
            flash: None,
            inspector: state.session_inspector,
        }
    }

    fn for_session(state: &AppState, session: &ShopSession) -> Result<Self, ShopError> {
        Ok(Self {
            user: session.user(),
            cart_count: session.cart().item_count(),
            csrf_token: session.csrf_token()?,
            flash: session.take_flash(),
            ..Self::bare(state)
        })
    }
}

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
