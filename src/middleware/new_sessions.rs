//! A new session is stored only when it is worth storing: never for a refused request, and for a
//! guest only within the client's allowance of new sessions (see `limits`).

use actix_session::{SessionExt, SessionStatus};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};

use crate::error::ShopError;
use crate::session::{LOADED, keys::USER};
use crate::state::AppState;

/// Runs inside actix-session's middleware, after the handler and before the session is saved.
/// A session that was not in the store when the request came (no cookie, or one that no longer
/// loads) and that the request would store is dropped when the answer is an error: a refused
/// request writes nothing. A guest's (no sign-in) is counted against the client's allowance of
/// new sessions, and past it the request is answered 429 with nothing stored. Sign-ins and
/// registrations are bounded by their own limits, so a flood from a shared address never keeps
/// an owner from signing in. When the count itself fails, the session is started uncounted.
pub async fn bound_new_sessions(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // Read before the handler runs: a renewal (a sign-in, an ended sign-in) clears the state.
    let was_stored = req.get_session().contains_key(LOADED);
    let response = next.call(req).await?.map_into_boxed_body();
    let session = response.request().get_session();
    let would_store = matches!(
        session.status(),
        SessionStatus::Changed | SessionStatus::Renewed
    );
    if !would_store || was_stored {
        return Ok(response);
    }
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        session.purge();
        return Ok(response);
    }
    if session.contains_key(USER) {
        return Ok(response);
    }
    let Some(state) = response
        .request()
        .app_data::<web::Data<AppState>>()
        .cloned()
    else {
        return Ok(response);
    };
    let counted = crate::limits::count_new_session(response.request(), &state).await;
    let refusal = match counted {
        Ok(Ok(())) => return Ok(response),
        Ok(Err(limit)) => {
            log::warn!(
                "A new session was not started ({}): too many {limit}.",
                super::access_log::who(response.request())
            );
            ShopError::TooManyRequests(limit, state.limits.window.whole_seconds())
        }
        // The counter's server does not answer (one Memcached server of three is down, say):
        // the session is started uncounted. The bound keeps a flood from filling the store;
        // refusing every new visitor while a counter is out of reach would do the flood's work.
        Err(err) => {
            log::warn!("A new session was started uncounted: the count failed ({err:#}).");
            return Ok(response);
        }
    };
    session.purge();
    Ok(response.into_response(HttpResponse::from_error(refusal)))
}
