//! The cart: lines live in the session as product ids, quantities and the price first seen;
//! names, prices and stock are read from the catalog every time the cart is shown or changed.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::catalog::ProductPage;
use super::{CheckedForm, Layout, NoFields, render_with_status, see_other};
use crate::db::products::Product;
use crate::domain::{Cart, Money, ProductId, Quantity};
use crate::error::ShopError;
use crate::session::{Flash, FlashKind, ModifyError, cart_in, put_cart_and_flash};
use crate::shop_session::ShopSession;
use crate::state::AppState;

pub struct CartRow {
    pub product: Product,
    pub quantity: u32,
    pub line_total: Money,
    /// The unit price when the line was added, when the catalog's has changed since.
    pub was: Option<Money>,
    /// A refused change of this line: what the shopper typed, and why it was refused.
    pub refused: Option<(String, String)>,
}

impl CartRow {
    /// The most the quantity box takes: the stock and the per-line limit.
    pub fn max_quantity(&self) -> u32 {
        self.product.line_limit().max(self.quantity)
    }

    /// What the quantity box holds: the line's quantity, or what was typed and refused.
    pub fn typed(&self) -> String {
        match &self.refused {
            Some((typed, _)) => typed.clone(),
            None => self.quantity.to_string(),
        }
    }
}

#[derive(Template)]
#[template(path = "cart.html")]
pub struct CartPage {
    layout: Layout,
    rows: Vec<CartRow>,
    total: Money,
}

super::page!(CartPage);

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
                was: line
                    .unit_price_cents
                    .filter(|&cents| cents != product.price_cents)
                    .map(Money::from_cents),
                line_total: product.price().times(line.quantity.get()),
                quantity: line.quantity.get(),
                product: product.clone(),
                refused: None,
            })
        })
        .collect())
}

pub async fn show(
    state: web::Data<AppState>,
    session: ShopSession,
    layout: Layout,
) -> Result<CartPage, ShopError> {
    // A cart this version cannot read is not shown as empty: the page says the shop is being
    // updated, and the next request, on any replica, tries again.
    let mut cart = session.try_cart()?;
    let rows = priced_rows(&state, &cart).await?;
    if rows.len() != cart.lines().len() {
        cart.retain(|id| rows.iter().any(|row| row.product.product_id() == id));
        session.set_cart(&cart)?;
    }
    Ok(CartPage::new(layout, rows))
}

impl CartPage {
    fn new(layout: Layout, rows: Vec<CartRow>) -> Self {
        let total = rows.iter().map(|row| row.line_total).sum();
        Self {
            layout,
            rows,
            total,
        }
    }
}

/// The product a cart change names, from the catalog cache: its stock may be a second old, and
/// checkout checks it again in the transaction that takes it.
async fn existing_product(state: &AppState, raw_id: &str) -> Result<Product, ShopError> {
    let unknown = || ShopError::bad_input("That product does not exist. Nothing was added.");
    let id = ProductId::parse(raw_id).map_err(|_| unknown())?;
    state.db.cached_product(id).await?.ok_or_else(unknown)
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

/// Applies a cart change as one compare-and-set on the stored session (see `Store::modify`),
/// with the confirmation message, so concurrent changes of one shopper never lose each other.
/// A session not stored yet (a new visitor) goes through actix-session, which creates it.
pub async fn change_cart(
    state: &AppState,
    session: &ShopSession,
    mut change: impl FnMut(&mut Cart) -> Result<String, ShopError>,
) -> Result<(), ShopError> {
    if let Some(key) = session.stored_key() {
        let applied = state
            .store
            .modify(
                &key,
                &state.session_ttl,
                session.read_at_start(),
                |stored| {
                    let mut cart = cart_in(stored)?;
                    let text = change(&mut cart)?;
                    let flash = Flash::new(FlashKind::Info, text);
                    put_cart_and_flash(stored, &cart, &flash)
                        .map_err(|err| ShopError::Unexpected(err.into()))
                },
            )
            .await;
        match applied {
            Ok(Some(())) => return Ok(()),
            // Read at the start of the request, gone now: a logout won the race.
            Ok(None) if session.was_stored() => return Err(ShopError::SessionEnded),
            Ok(None) => {}
            Err(ModifyError::Rejected(err)) => return Err(err),
            Err(ModifyError::Conflict) => return Err(ShopError::Conflict),
            Err(ModifyError::Store(err)) => return Err(err.into()),
        }
    }
    let mut cart = session.try_cart()?;
    let text = change(&mut cart)?;
    session.set_cart(&cart)?;
    session.flash(FlashKind::Info, text)
}

/// A mistake in a quantity (not a number, too many, more than the stock) is shown on the page
/// the shopper was on, beside the box, with what they typed kept; the session is not changed.
/// Other failures (an unknown product, a store down) are the error pages'.
pub async fn add(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: ShopSession,
    CheckedForm(form): CheckedForm<AddForm>,
) -> Result<HttpResponse, ShopError> {
    let product = existing_product(&state, &form.product_id).await?;
    let added = match Quantity::parse(&form.quantity) {
        Ok(quantity) => {
            change_cart(&state, &session, |cart| {
                let new_quantity = cart
                    .add(product.product_id(), quantity)
                    .map_err(ShopError::bad_input)?;
                cart.remember_price(product.product_id(), product.price());
                check_stock(&product, new_quantity)?;
                Ok(format!("Added {quantity} × {} to your cart.", product.name))
            })
            .await
        }
        Err(err) => Err(ShopError::bad_input(err)),
    };
    match added {
        Ok(()) => Ok(see_other("/cart")),
        Err(ShopError::BadInput(error)) => {
            let in_cart = session
                .cart()
                .quantity_of(product.product_id())
                .map_or(0, |q| q.get());
            let page = ProductPage::new(Layout::of_request(&req)?, product, in_cart)
                .refused(&form.quantity, error);
            render_with_status(&page, StatusCode::BAD_REQUEST)
        }
        Err(err) => Err(err),
    }
}

/// A refused quantity is shown on the cart page, beside that line's box, with what was typed.
pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: ShopSession,
    path: web::Path<String>,
    CheckedForm(form): CheckedForm<QuantityForm>,
) -> Result<HttpResponse, ShopError> {
    let product = existing_product(&state, &path).await?;
    let checked = Quantity::parse_field(&form.quantity)
        .map_err(ShopError::bad_input)
        .and_then(|quantity| {
            if let Some(quantity) = quantity {
                check_stock(&product, quantity)?;
            }
            Ok(quantity)
        });
    let quantity = match checked {
        Ok(quantity) => quantity,
        Err(ShopError::BadInput(error)) => {
            let mut rows = priced_rows(&state, &session.try_cart()?).await?;
            let Some(row) = rows
                .iter_mut()
                .find(|row| row.product.product_id() == product.product_id())
            else {
                return Err(ShopError::BadInput(error));
            };
            row.refused = Some((form.quantity.chars().take(20).collect(), error));
            let page = CartPage::new(Layout::of_request(&req)?, rows);
            return render_with_status(&page, StatusCode::BAD_REQUEST);
        }
        Err(err) => return Err(err),
    };
    change_cart(&state, &session, |cart| {
        cart.set(product.product_id(), quantity)
            .map_err(ShopError::bad_input)?;
        Ok(match quantity {
            Some(q) => format!("{} now has quantity {q}.", product.name),
            None => format!("Removed {} from your cart.", product.name),
        })
    })
    .await?;
    Ok(see_other("/cart"))
}

pub async fn remove(
    state: web::Data<AppState>,
    session: ShopSession,
    path: web::Path<String>,
    _: CheckedForm<NoFields>,
) -> Result<HttpResponse, ShopError> {
    let product = existing_product(&state, &path).await?;
    change_cart(&state, &session, |cart| {
        cart.set(product.product_id(), None)
            .map_err(ShopError::bad_input)?;
        Ok(format!("Removed {} from your cart.", product.name))
    })
    .await?;
    Ok(see_other("/cart"))
}
