//! Checkout: the cart becomes an order in one transaction, or nothing happens.

use actix_web::{HttpResponse, web};

use super::{CheckedForm, NoFields, require_user, see_other};
use crate::db::orders::CheckoutError;
use crate::error::ShopError;
use crate::session::{FlashKind, ShopSession};
use crate::startup::AppState;

pub async fn checkout(
    state: web::Data<AppState>,
    session: ShopSession,
    _: CheckedForm<NoFields>,
) -> Result<HttpResponse, ShopError> {
    let user = require_user(&session, "Please log in to check out. Your cart is kept.")?;
    let cart = session.cart();
    match state.db.place_order(user.id, cart.lines()).await {
        Ok(order) => {
            session.set_cart(&Default::default())?;
            session.flash(
                FlashKind::Info,
                format!("Thank you! Order #{order} is placed."),
            )?;
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
