//! The catalog and product pages.

use actix_web::web;
use askama::Template;
use askama_web::WebTemplate;

use super::Layout;
use crate::db::products::Product;
use crate::domain::{MAX_PER_LINE, ProductId};
use crate::error::ShopError;
use crate::state::AppState;

#[derive(Template, WebTemplate)]
#[template(path = "catalog.html")]
pub struct CatalogPage {
    layout: Layout,
    products: Vec<Product>,
}

#[derive(Template, WebTemplate)]
#[template(path = "product.html")]
pub struct ProductPage {
    layout: Layout,
    product: Product,
    in_cart: u32,
    max_quantity: u32,
}

pub async fn index(state: web::Data<AppState>, layout: Layout) -> Result<CatalogPage, ShopError> {
    let products = state.db.all_products().await?;
    Ok(CatalogPage { layout, products })
}

pub async fn product(
    state: web::Data<AppState>,
    path: web::Path<String>,
    layout: Layout,
    session: crate::session::ShopSession,
) -> Result<ProductPage, ShopError> {
    let id = ProductId::parse(&path).map_err(|_| ShopError::NotFound)?;
    let product = state.db.product(id).await?.ok_or(ShopError::NotFound)?;
    let in_cart = session.cart().quantity_of(id).map_or(0, |q| q.get());
    Ok(ProductPage {
        layout,
        max_quantity: MAX_PER_LINE.saturating_sub(in_cart).max(1),
        in_cart,
        product,
    })
}
