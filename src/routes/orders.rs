//! Order history: a user sees only their own orders; another user's order id is a 404.

use actix_web::web;
use askama::Template;

use super::{Layout, require_user};
use crate::db::orders::{OrderLineRow, OrderRow};
use crate::domain::OrderId;
use crate::error::{ShopError, SignInReason};
use crate::shop_session::ShopSession;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "orders.html")]
pub struct OrdersPage {
    layout: Layout,
    orders: Vec<OrderRow>,
}

super::page!(OrdersPage);

#[derive(Template)]
#[template(path = "order.html")]
pub struct OrderPage {
    layout: Layout,
    order: OrderRow,
    lines: Vec<OrderLineRow>,
}

super::page!(OrderPage);

pub async fn list(
    state: web::Data<AppState>,
    session: ShopSession,
    layout: Layout,
) -> Result<OrdersPage, ShopError> {
    let user = require_user(&session, SignInReason::Orders)?;
    let orders = state.db.orders_of(user.id).await?;
    Ok(OrdersPage { layout, orders })
}

pub async fn show(
    state: web::Data<AppState>,
    session: ShopSession,
    path: web::Path<String>,
    layout: Layout,
) -> Result<OrderPage, ShopError> {
    let user = require_user(&session, SignInReason::Orders)?;
    let id = OrderId::parse(&path).map_err(|_| ShopError::NotFound)?;
    let (order, lines) = state
        .db
        .order_of(user.id, id)
        .await?
        .ok_or(ShopError::NotFound)?;
    Ok(OrderPage {
        layout,
        order,
        lines,
    })
}
