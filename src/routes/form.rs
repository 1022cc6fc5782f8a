//! The one way a POST form reaches a handler: its content type checked, its size bounded, its
//! CSRF token compared with the session's before anything else is read.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::ShopError;
use crate::shop_session::ShopSession;

/// A form that carries only its CSRF token (logout, checkout, remove).
#[derive(Deserialize)]
pub struct NoFields {}

/// A form body of type `T` whose `csrf_token` field matched the session's token.
pub struct CheckedForm<T>(pub T);

/// The form's `csrf_token` field (empty when absent); `None` when the field is given twice,
/// which a form of ours never does. Read with a scan of the pairs rather than a second serde
/// pass over the body: the token is checked before the form's shape, so the body is read twice.
fn csrf_token(body: &[u8]) -> Option<String> {
    let mut tokens = form_urlencoded::parse(body).filter(|(name, _)| name == "csrf_token");
    let token = tokens.next().map(|(_, value)| value.into_owned());
    match tokens.next() {
        Some(_) => None,
        None => Some(token.unwrap_or_default()),
    }
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
            let token = csrf_token(&body).ok_or_else(|| {
                ShopError::bad_input("The form could not be read. Nothing was changed.")
            })?;
            ShopSession::of(&req).verify_csrf(&token)?;
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

#[cfg(test)]
mod tests {
    use super::csrf_token;

    #[test]
    fn the_token_is_read_decoded_once_and_refused_when_given_twice() {
        assert_eq!(
            csrf_token(b"quantity=2&csrf_token=ab%2Bc+d").as_deref(),
            Some("ab+c d")
        );
        assert_eq!(csrf_token(b"quantity=2").as_deref(), Some(""));
        assert_eq!(csrf_token(b"").as_deref(), Some(""));
        assert_eq!(csrf_token(b"csrf_token=a&csrf_token=a"), None);
        assert_eq!(
            csrf_token(b"csrf_token=%FF%FE").as_deref(),
            Some("\u{FFFD}\u{FFFD}")
        );
    }
}
