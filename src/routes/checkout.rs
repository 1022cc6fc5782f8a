//! Checkout: the cart becomes an order in one transaction, or nothing happens; and a cart is
//! ordered at most once, however many requests ask for it.
//!
//! Exactly once, across replicas and stores: a checkout first claims the cart in the session by
//! compare-and-set (a `PendingCheckout` with a fresh token and the lines to order). Every
//! request that arrives while the claim stands joins it rather than starting another, and the
//! order is placed under the claim's token, which is unique among orders: the database lets
//! only one transaction place it, and the others find that order. Only then do the ordered lines
//! leave the cart, and the claim records the order, so a request that comes after (the cart is
//! empty by then) lands on the same order. A replica killed anywhere in between leaves the
//! claim behind; the shopper's retry places or finds that same order. A claim older than
//! `STALE_CLAIM_SECONDS` whose order was never placed is dropped, and the cart as it is now is
//! ordered instead; a new checkout of a refilled cart starts a new claim.

use actix_web::{HttpRequest, HttpResponse, web};

use super::{CheckedForm, NoFields, require_user, see_other};
use crate::db::orders::{CheckoutError, Placed};
use crate::domain::{Cart, OrderId, UserId};
use crate::error::{ShopError, SignInReason};
use crate::session::{
    Flash, FlashKind, ModifyError, PendingCheckout, ShopSession, cart_in, now, pending_checkout_in,
    put_cart_and_flash, put_pending_checkout,
};
use crate::state::AppState;

/// How long a claimed checkout is joined by later requests before it counts as abandoned.
const STALE_CLAIM_SECONDS: i64 = 30;

fn is_stale(pending: &PendingCheckout) -> bool {
    now() - pending.started_at > STALE_CLAIM_SECONDS
}

pub async fn checkout(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: ShopSession,
    _: CheckedForm<NoFields>,
) -> Result<HttpResponse, ShopError> {
    let user = require_user(&session, SignInReason::Checkout)?;
    let key = state.session_key(&req).ok_or(ShopError::SessionEnded)?;
    // An old claim whose order was placed (its replica died before it could say so): land on it.
    if let Some(stale) = session.pending_checkout().filter(is_stale)
        && let Some(id) = state.db.order_placed_with(user.id, &stale.token).await?
    {
        return finish(&state, &key, &stale, id, false).await;
    }
    let claim = match claim(&state, &key, &session).await? {
        Claim::Pending(claim) => claim,
        Claim::AlreadyPlaced(id) => return Ok(see_other(&format!("/orders/{id}"))),
        Claim::EmptyCart => return Ok(see_other("/cart")),
    };
    match state
        .db
        .place_order(user.id, &claim.lines, &claim.token)
        .await
    {
        Ok(Placed { id, just_now }) => {
            if just_now {
                log::info!("User {} placed order {id}.", user.id);
            }
            finish(&state, &key, &claim, id, just_now).await
        }
        Err(CheckoutError::Database(err)) => Err(err.into()),
        Err(refused) => {
            release(&state, &key, &claim, user.id, &refused).await;
            Ok(see_other("/cart"))
        }
    }
}

enum Claim {
    /// This request places (or finds) the order for this claim.
    Pending(PendingCheckout),
    /// The cart was just ordered by a request like this one.
    AlreadyPlaced(i64),
    EmptyCart,
}

/// Claims the cart for one checkout, or joins the claim already standing. (Messages go into the
/// same compare-and-set as the change: a write through actix-session after it would be dropped
/// as stale.)
async fn claim(state: &AppState, key: &str, session: &ShopSession) -> Result<Claim, ShopError> {
    let claimed = state
        .store
        .modify(key, &state.session_ttl, session.read_at_start(), |stored| {
            let cart = cart_in(stored);
            match pending_checkout_in(stored).filter(|p| !is_stale(p)) {
                Some(pending) if pending.order.is_none() => return Ok(Claim::Pending(pending)),
                Some(PendingCheckout {
                    order: Some(order), ..
                }) if cart.is_empty() => {
                    let flash = Flash {
                        kind: FlashKind::Info,
                        text: format!("Order #{order} was already placed for this cart."),
                    };
                    put_cart_and_flash(stored, &cart, &flash).map_err(unexpected)?;
                    return Ok(Claim::AlreadyPlaced(order));
                }
                _ => {}
            }
            if cart.is_empty() {
                put_pending_checkout(stored, None).map_err(unexpected)?;
                let flash = error_flash(&CheckoutError::EmptyCart);
                put_cart_and_flash(stored, &cart, &flash).map_err(unexpected)?;
                return Ok(Claim::EmptyCart);
            }
            let pending = PendingCheckout::new(cart.lines());
            put_pending_checkout(stored, Some(&pending)).map_err(unexpected)?;
            Ok(Claim::Pending(pending))
        })
        .await;
    match claimed {
        Ok(Some(claim)) => Ok(claim),
        Ok(None) => Err(ShopError::SessionEnded),
        Err(err) => Err(modify_error(err)),
    }
}

/// The order stands: its lines leave the cart and the claim records the order, once (a request
/// that finds the claim already finished changes nothing), and the shopper sees the order.
async fn finish(
    state: &AppState,
    key: &str,
    claim: &PendingCheckout,
    order: OrderId,
    just_now: bool,
) -> Result<HttpResponse, ShopError> {
    let text = if just_now {
        format!("Thank you! Order #{order} is placed.")
    } else {
        format!("Order #{order} was already placed for this cart; here it is.")
    };
    let cleared = state
        .store
        .modify(key, &state.session_ttl, None, |stored| {
            if pending_checkout_in(stored).as_ref() != Some(claim) {
                return Ok(());
            }
            let mut cart: Cart = cart_in(stored);
            cart.remove_ordered(&claim.lines);
            let placed = PendingCheckout {
                order: Some(order.get()),
                ..claim.clone()
            };
            put_pending_checkout(stored, Some(&placed)).map_err(unexpected)?;
            let flash = Flash {
                kind: FlashKind::Info,
                text: text.clone(),
            };
            put_cart_and_flash(stored, &cart, &flash).map_err(unexpected)
        })
        .await;
    if let Err(err) = cleared {
        // The order stands; the next checkout finds it under the same claim.
        log::warn!(
            "Order {order} is placed but its lines could not leave the cart yet: {}",
            modify_error(err)
        );
    }
    Ok(see_other(&format!("/orders/{order}")))
}

/// The order was refused (stock, a product gone): the claim is dropped, with the reason, so the
/// shopper can fix the cart and try again.
async fn release(
    state: &AppState,
    key: &str,
    claim: &PendingCheckout,
    user: UserId,
    why: &CheckoutError,
) {
    let released = state
        .store
        .modify(key, &state.session_ttl, None, |stored| {
            if pending_checkout_in(stored).as_ref() == Some(claim) {
                put_pending_checkout(stored, None).map_err(unexpected)?;
            }
            put_cart_and_flash(stored, &cart_in(stored), &error_flash(why)).map_err(unexpected)
        })
        .await;
    if let Err(err) = released {
        log::warn!(
            "User {user}'s checkout was refused ({why}) and its claim could not be dropped: {}",
            modify_error(err)
        );
    }
}

fn error_flash(why: &CheckoutError) -> Flash {
    Flash {
        kind: FlashKind::Error,
        text: why.to_string(),
    }
}

fn unexpected(err: serde_json::Error) -> ShopError {
    ShopError::Unexpected(err.into())
}

fn modify_error(err: ModifyError<ShopError>) -> ShopError {
    match err {
        ModifyError::Rejected(err) => err,
        ModifyError::Conflict => ShopError::Conflict,
        ModifyError::Store(err) => ShopError::Unavailable(err),
    }
}
