//! A sign-in past its absolute lifetime (`SESSION_MAX_LOGIN_SECONDS`) ends before any handler
//! sees it.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

use crate::shop_session::{ShopSession, end_if_past_lifetime};

/// Ends a sign-in that is past the absolute lifetime before any handler sees it: the session is
/// renewed, so actix-session deletes the old key from the store and the request goes on as a
/// guest's under a new one, keeping the cart and saying once why the shopper was signed out.
pub async fn end_expired_sign_in(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // The typed session holds a clone of the request, which routing needs unshared: it is
    // dropped before the request goes on.
    end_if_past_lifetime(&ShopSession::of(req.request()))?;
    next.call(req).await
}
