//! Checkout: the cart becomes an order in one transaction, or nothing happens.

use actix_web::{HttpRequest, HttpResponse, web};

use super::{CheckedForm, NoFields, require_user, see_other};
use crate::db::orders::CheckoutError;
use crate::error::ShopError;
use crate::routes::cart::change_cart;
use crate::session::{FlashKind, ShopSession};
use crate::startup::AppState;

pub async fn checkout(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: ShopSession,
    _: CheckedForm<NoFields>,
) -> Result<HttpResponse, ShopError> {
    let user = require_user(&session, "Please log in to check out. Your cart is kept.")?;
    let cart = session.cart();
    match state.db.place_order(user.id, cart.lines()).await {
        Ok(order) => {
            // Only what was ordered leaves the cart: an add made in another tab meanwhile stays.
            let ordered = cart.lines().to_vec();
            let cleared = change_cart(&req, &state, &session, |cart| {
                cart.remove_ordered(&ordered);
                Ok(format!("Thank you! Order #{order} is placed."))
            })
            .await;
            if let Err(err) = cleared {
                // The order stands; the shopper sees it and can tidy the cart themselves.
                log::warn!("Order {order} is placed but its lines could not leave the cart: {err}");
            }
            log::info!("User {} placed order {order}.", user.id);
            Ok(see_other(&format!("/orders/{order}")))
        }
        Err(CheckoutError::Database(err)) => Err(err.into()),
        Err(refused) => {
            session.flash(FlashKind::Error, refused.to_string())?;
            Ok(see_other("/cart"))
        }
    }
}
