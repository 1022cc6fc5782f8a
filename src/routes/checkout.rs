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
//! claim behind; the shopper's retry places or finds that same order.
//!
//! A claim whose order has not been placed after `CHECKOUT_CLAIM_SECONDS` (by the database's
//! clock, which every replica shares) is taken over: its token is first voided under the same
//! unique index, so the stalled transaction, if it ever commits, can order nothing, or, if it
//! committed first, its order is the answer. Only then is the cart as it is now ordered under a
//! new claim. A refused order (stock, a product gone) voids its token the same way before the
//! claim is dropped. No token is ever given up while a transaction might still order with it.

use actix_web::{HttpResponse, web};

use super::{CheckedForm, NoFields, require_user, see_other};
use crate::db::orders::{CheckoutError, Placed, TokenUse};
use crate::domain::{Cart, OrderId, UserId};
use crate::error::{ShopError, SignInReason};
use crate::session::{
    Flash, FlashKind, ModifyError, PendingCheckout, cart_in, pending_checkout_in,
    put_cart_and_flash, put_pending_checkout,
};
use crate::shop_session::ShopSession;
use crate::state::AppState;

pub async fn checkout(
    state: web::Data<AppState>,
    session: ShopSession,
    _: CheckedForm<NoFields>,
) -> Result<HttpResponse, ShopError> {
    let user = require_user(&session, SignInReason::Checkout)?;
    let key = session.stored_key().ok_or(ShopError::SessionEnded)?;
    let now = state.db.clock().await?;
    let mut voided = None;
    let claim = loop {
        let read_at_start = if voided.is_none() {
            session.read_at_start()
        } else {
            None
        };
        let ages = Ages {
            now,
            limit: state.checkout_claim_seconds,
            voided: voided.as_deref(),
        };
        match claim(&state, &key, read_at_start, &ages).await? {
            Claim::Pending(claim) => break claim,
            Claim::AlreadyPlaced(id) => return Ok(see_other(&format!("/orders/{id}"))),
            Claim::EmptyCart => return Ok(see_other("/cart")),
            Claim::Stalled(stalled) => match state.db.void_checkout(user.id, &stalled.token).await?
            {
                // Its transaction did commit: that is the order, and the cart loses its lines.
                TokenUse::Placed(id) => return finish(&state, &key, &stalled, id, false).await,
                TokenUse::Voided => {
                    log::info!(
                        "User {}'s checkout stalled past {} s; its token is voided and the cart is ordered anew.",
                        user.id,
                        state.checkout_claim_seconds
                    );
                    voided = Some(stalled.token);
                }
            },
        }
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
            // A transaction that joined this claim may still be running: the token is voided
            // before the claim is given up, or it could order after the shopper's next claim.
            if let TokenUse::Placed(id) = state.db.void_checkout(user.id, &claim.token).await? {
                return finish(&state, &key, &claim, id, false).await;
            }
            release(&state, &key, &claim, user.id, &refused).await;
            Ok(see_other("/cart"))
        }
    }
}

/// What a claim's age is judged by.
struct Ages<'a> {
    /// The database's clock at the start of this request.
    now: i64,
    /// `CHECKOUT_CLAIM_SECONDS`.
    limit: i64,
    /// A stalled claim's token this request has voided: its claim is dropped.
    voided: Option<&'a str>,
}

impl Ages<'_> {
    fn is_stalled(&self, pending: &PendingCheckout) -> bool {
        pending.order.is_none() && self.now - pending.started_at > self.limit
    }
}

enum Claim {
    /// This request places (or finds) the order for this claim.
    Pending(PendingCheckout),
    /// The cart was just ordered by a request like this one.
    AlreadyPlaced(i64),
    EmptyCart,
    /// A claim whose order was not placed in time: its token must be voided (or its order
    /// found) before anything else is ordered.
    Stalled(PendingCheckout),
}

/// Claims the cart for one checkout, or joins the claim already standing. (Messages go into the
/// same compare-and-set as the change: a write through actix-session after it would be dropped
/// as stale.)
async fn claim(
    state: &AppState,
    key: &str,
    read_at_start: Option<crate::session::ReadAtStart>,
    ages: &Ages<'_>,
) -> Result<Claim, ShopError> {
    let claimed = state
        .store
        .modify(key, &state.session_ttl, read_at_start, |stored| {
            let cart = cart_in(stored)?;
            match pending_checkout_in(stored)? {
                Some(pending) if ages.voided == Some(pending.token.as_str()) => {}
                Some(pending) if ages.is_stalled(&pending) => return Ok(Claim::Stalled(pending)),
                Some(pending) if pending.order.is_none() => return Ok(Claim::Pending(pending)),
                Some(PendingCheckout {
                    order: Some(order), ..
                }) if cart.is_empty() => {
                    let flash = Flash::new(
                        FlashKind::Info,
                        format!("Order #{order} was already placed for this cart."),
                    );
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
            let pending = PendingCheckout::new(cart.lines(), ages.now);
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
            if pending_checkout_in(stored)?.as_ref() != Some(claim) {
                return Ok(());
            }
            let mut cart: Cart = cart_in(stored)?;
            cart.remove_ordered(&claim.lines);
            let placed = PendingCheckout {
                order: Some(order.get()),
                ..claim.clone()
            };
            put_pending_checkout(stored, Some(&placed)).map_err(unexpected)?;
            let flash = Flash::new(FlashKind::Info, text.clone());
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
            if pending_checkout_in(stored)?.as_ref() == Some(claim) {
                put_pending_checkout(stored, None).map_err(unexpected)?;
            }
            put_cart_and_flash(stored, &cart_in(stored)?, &error_flash(why)).map_err(unexpected)
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
    Flash::new(FlashKind::Error, why.to_string())
}

fn unexpected(err: serde_json::Error) -> ShopError {
    ShopError::Unexpected(err.into())
}

fn modify_error(err: ModifyError<ShopError>) -> ShopError {
    match err {
        ModifyError::Rejected(err) => err,
        ModifyError::Conflict => ShopError::Conflict,
        ModifyError::Store(err) => err.into(),
    }
}
