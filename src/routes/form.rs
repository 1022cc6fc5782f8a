//! The one way a POST form reaches a handler: its content type checked, its size bounded, its
//! CSRF token compared with the session's before anything else is read.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::ShopError;
use crate::session::ShopSession;

/// A form that carries only its CSRF token (logout, checkout, remove).
#[derive(Deserialize)]
pub struct NoFields {}

/// A form body of type `T` whose `csrf_token` field matched the session's token.
pub struct CheckedForm<T>(pub T);

#[derive(Deserialize)]
struct TokenOnly {
    #[serde(default)]
    csrf_token: String,
}

impl<T: DeserializeOwned + 'static> FromRequest for CheckedForm<T> {
    type Error = ShopError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ShopError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            if req.content_type() != "application/x-www-form-urlencoded" {
                return Err(ShopError::UnsupportedMediaType);
            }
            let body =
                web::Bytes::from_request(&req, &mut payload)
                    .await
                    .map_err(|err| match err.as_response_error().status_code().as_u16() {
                        413 => ShopError::TooLarge,
                        _ => {
                            ShopError::bad_input("The form could not be read. Nothing was changed.")
                        }
                    })?;
            let token: TokenOnly = serde_urlencoded::from_bytes(&body).map_err(|_| {
                ShopError::bad_input("The form could not be read. Nothing was changed.")
            })?;
            ShopSession::of(&req).verify_csrf(&token.csrf_token)?;
            serde_urlencoded::from_bytes(&body)
                .map(CheckedForm)
                .map_err(|_| {
                    ShopError::bad_input(
                        "The form was incomplete or malformed. Nothing was changed.",
                    )
                })
        })
    }
}
