//! The catalog and product pages.
//!
//! Most of a real shop's views are these two pages seen by a visitor with no session (a
//! crawler, a first visit), so those come from the catalog cache: no database query in steady
//! state, stock as much as a second old (checkout re-checks it in its transaction). A shopper
//! with a session (a cart, a sign-in) sees stock as it is now.

use std::sync::Arc;

use actix_web::web;
use askama::Template;

use super::Layout;
use crate::db::products::Product;
use crate::domain::{MAX_PER_LINE, ProductId};
use crate::error::ShopError;
use crate::session::ShopSession;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "catalog.html")]
pub struct CatalogPage {
    layout: Layout,
    products: Arc<Vec<Product>>,
}

super::page!(CatalogPage);

#[derive(Template)]
#[template(path = "product.html")]
pub struct ProductPage {
    layout: Layout,
    product: Product,
    in_cart: u32,
    max_quantity: u32,
}

super::page!(ProductPage);

pub async fn index(
    state: web::Data<AppState>,
    layout: Layout,
    session: ShopSession,
) -> Result<CatalogPage, ShopError> {
    let products = if session.was_stored() {
        Arc::new(state.db.all_products().await?)
    } else {
        state.db.catalog_for_display().await?
    };
    Ok(CatalogPage { layout, products })
}

pub async fn product(
    state: web::Data<AppState>,
    path: web::Path<String>,
    layout: Layout,
    session: ShopSession,
) -> Result<ProductPage, ShopError> {
    let id = ProductId::parse(&path).map_err(|_| ShopError::NotFound)?;
    let product = if session.was_stored() {
        state.db.product(id).await?
    } else {
        state.db.cached_product(id).await?
    };
    let product = product.ok_or(ShopError::NotFound)?;
    let in_cart = session.cart().quantity_of(id).map_or(0, |q| q.get());
    Ok(ProductPage {
        layout,
        max_quantity: MAX_PER_LINE.saturating_sub(in_cart).max(1),
        in_cart,
        product,
    })
}
