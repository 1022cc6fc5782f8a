//! The cart: lines live in the session as product ids and quantities; names, prices and stock are
//! read from the catalog every time the cart is shown or changed.

use actix_web::{HttpResponse, web};
use askama::Template;
use askama_web::WebTemplate;
use serde::Deserialize;

use super::{CheckedForm, Layout, NoFields, see_other};
use crate::db::products::Product;
use crate::domain::{Cart, Money, ProductId, Quantity};
use crate::error::ShopError;
use crate::session::{FlashKind, ShopSession};
use crate::startup::AppState;

pub struct CartRow {
    pub product: Product,
    pub quantity: u32,
    pub line_total: Money,
}

#[derive(Template, WebTemplate)]
#[template(path = "cart.html")]
pub struct CartPage {
    layout: Layout,
    rows: Vec<CartRow>,
    total: Money,
}

#[derive(Deserialize)]
pub struct AddForm {
    product_id: String,
    quantity: String,
}

#[derive(Deserialize)]
pub struct QuantityForm {
    quantity: String,
}

/// The cart's lines joined with the catalog (names and prices, from the catalog cache); lines
/// whose product is gone are dropped.
pub async fn priced_rows(state: &AppState, cart: &Cart) -> Result<Vec<CartRow>, ShopError> {
    if cart.is_empty() {
        return Ok(Vec::new());
    }
    let products = state.db.catalog_for_display().await?;
    Ok(cart
        .lines()
        .iter()
        .filter_map(|line| {
            let product = products
                .iter()
                .find(|p| p.product_id() == line.product_id)?;
            Some(CartRow {
                line_total: product.price().times(line.quantity.get()),
                quantity: line.quantity.get(),
                product: product.clone(),
            })
        })
        .collect())
}

pub async fn show(
    state: web::Data<AppState>,
    session: ShopSession,
    layout: Layout,
) -> Result<CartPage, ShopError> {
    let mut cart = session.cart();
    let rows = priced_rows(&state, &cart).await?;
    if rows.len() != cart.lines().len() {
        cart.retain(|id| rows.iter().any(|row| row.product.product_id() == id));
        session.set_cart(&cart)?;
    }
    let total = rows.iter().map(|row| row.line_total).sum();
    Ok(CartPage {
        layout,
        rows,
        total,
    })
}

async fn existing_product(state: &AppState, raw_id: &str) -> Result<Product, ShopError> {
    let unknown = || ShopError::bad_input("That product does not exist. Nothing was added.");
    let id = ProductId::parse(raw_id).map_err(|_| unknown())?;
    state.db.product(id).await?.ok_or_else(unknown)
}

fn check_stock(product: &Product, wanted: Quantity) -> Result<(), ShopError> {
    if i64::from(wanted.get()) > product.stock {
        return Err(ShopError::BadInput(match product.stock {
            0 => format!("{} is sold out. Nothing was changed.", product.name),
            n => format!(
                "Only {n} of {} are in stock. Nothing was changed.",
                product.name
            ),
        }));
    }
    Ok(())
}

pub async fn add(
    state: web::Data<AppState>,
    session: ShopSession,
    CheckedForm(form): CheckedForm<AddForm>,
) -> Result<HttpResponse, ShopError> {
    let quantity = Quantity::parse(&form.quantity).map_err(ShopError::bad_input)?;
    let product = existing_product(&state, &form.product_id).await?;
    let mut cart = session.cart();
    let new_quantity = cart
        .add(product.product_id(), quantity)
        .map_err(ShopError::bad_input)?;
    check_stock(&product, new_quantity)?;
    session.set_cart(&cart)?;
    session.flash(
        FlashKind::Info,
        format!("Added {quantity} × {} to your cart.", product.name),
    )?;
    Ok(see_other("/cart"))
}

pub async fn update(
    state: web::Data<AppState>,
    session: ShopSession,
    path: web::Path<String>,
    CheckedForm(form): CheckedForm<QuantityForm>,
) -> Result<HttpResponse, ShopError> {
    let quantity = Quantity::parse_field(&form.quantity).map_err(ShopError::bad_input)?;
    let product = existing_product(&state, &path).await?;
    if let Some(quantity) = quantity {
        check_stock(&product, quantity)?;
    }
    let mut cart = session.cart();
    cart.set(product.product_id(), quantity)
        .map_err(ShopError::bad_input)?;
    session.set_cart(&cart)?;
    let message = match quantity {
        Some(q) => format!("{} now has quantity {q}.", product.name),
        None => format!("Removed {} from your cart.", product.name),
    };
    session.flash(FlashKind::Info, message)?;
    Ok(see_other("/cart"))
}

pub async fn remove(
    state: web::Data<AppState>,
    session: ShopSession,
    path: web::Path<String>,
    _: CheckedForm<NoFields>,
) -> Result<HttpResponse, ShopError> {
    let product = existing_product(&state, &path).await?;
    let mut cart = session.cart();
    cart.set(product.product_id(), None)
        .map_err(ShopError::bad_input)?;
    session.set_cart(&cart)?;
    session.flash(
        FlashKind::Info,
        format!("Removed {} from your cart.", product.name),
    )?;
    Ok(see_other("/cart"))
}
