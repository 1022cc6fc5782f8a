//! The catalog and product pages.
//!
//! Most of a real shop's views are these two pages seen by a visitor with no session (a
//! crawler, a first visit), so those come from the catalog cache: no database query in steady
//! state, stock as much as a second old (checkout re-checks it in its transaction). A shopper
//! with a session (a cart, a sign-in) sees stock as it is now. Such a visitor's catalog page
//! differs from the next one's only in the form token, so it is rendered once per catalog
//! snapshot and the token is put into its place on each view (`AnonymousCatalog`).

use std::sync::{Arc, PoisonError, RwLock};

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use super::layout::FormToken;
use super::{Layout, render_with_status};
use crate::db::products::Product;
use crate::domain::ProductId;
use crate::error::ShopError;
use crate::shop_session::ShopSession;
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
    /// The most this shopper can still add: the stock shown and the per-line limit, less what
    /// their cart holds. Zero hides the form.
    addable: u32,
    /// What the quantity box holds: "1", or what the shopper typed when it was refused.
    typed: String,
    /// Why the last add was refused, shown beside the quantity box.
    error: Option<String>,
}

impl ProductPage {
    /// The product page for this shopper's cart.
    pub fn new(layout: Layout, product: Product, in_cart: u32) -> Self {
        Self {
            layout,
            addable: product.line_limit().saturating_sub(in_cart),
            in_cart,
            product,
            typed: "1".to_owned(),
            error: None,
        }
    }

    /// The page again, with the refused quantity kept in its box and the reason beside it.
    pub fn refused(mut self, typed: &str, error: String) -> Self {
        self.typed = typed.chars().take(20).collect();
        self.error = Some(error);
        self
    }
}

super::page!(ProductPage);

pub async fn index(
    state: web::Data<AppState>,
    layout: Layout,
    session: ShopSession,
    rendered: web::Data<AnonymousCatalog>,
) -> Result<HttpResponse, ShopError> {
    let is_anonymous = !session.was_stored()
        && layout.user.is_none()
        && layout.cart_count == 0
        && layout.flash.is_none();
    if !is_anonymous {
        let products = Arc::new(state.db.all_products().await?);
        return render_with_status(&CatalogPage { layout, products }, StatusCode::OK);
    }
    let products = state.db.catalog_for_display().await?;
    let parts = rendered.parts(&products, layout)?;
    let token = parts.token.as_str();
    let mut body = String::with_capacity(parts.len + parts.around_token.len() * token.len());
    for (i, part) in parts.around_token.iter().enumerate() {
        if i > 0 {
            body.push_str(token);
        }
        body.push_str(part);
    }
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body))
}

/// The catalog page of a visitor with no session, rendered once per catalog snapshot with a
/// random marker where the form token goes, and kept as the text around the markers (one per
/// replica, as app data). Rendering the page was 30% of such a view's instructions.
#[derive(Default)]
pub struct AnonymousCatalog(RwLock<Option<Rendered>>);

struct Rendered {
    /// The snapshot it was rendered from: a new snapshot renders the page again.
    products: Arc<Vec<Product>>,
    around_token: Arc<[String]>,
    len: usize,
}

/// The page's text around each form token, and this view's token.
struct Parts {
    around_token: Arc<[String]>,
    len: usize,
    token: FormToken,
}

impl AnonymousCatalog {
    fn parts(&self, products: &Arc<Vec<Product>>, mut layout: Layout) -> Result<Parts, ShopError> {
        let token = std::mem::take(&mut layout.csrf_token);
        let cached = self.0.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(rendered) = cached
            .as_ref()
            .filter(|r| Arc::ptr_eq(&r.products, products))
        {
            return Ok(Parts {
                around_token: rendered.around_token.clone(),
                len: rendered.len,
                token,
            });
        }
        drop(cached);
        let marker = crate::session::csrf::new_nonce();
        layout.csrf_token = FormToken::new(marker.clone());
        let page = CatalogPage {
            layout,
            products: products.clone(),
        };
        let mut text = String::with_capacity(super::PAGE_CAPACITY);
        page.render_into(&mut text)
            .map_err(|err| ShopError::Unexpected(anyhow::anyhow!("template failed: {err}")))?;
        let around_token: Arc<[String]> = text.split(marker.as_str()).map(str::to_owned).collect();
        let len = text.len() - (around_token.len() - 1) * marker.len();
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Some(Rendered {
            products: products.clone(),
            around_token: around_token.clone(),
            len,
        });
        Ok(Parts {
            around_token,
            len,
            token,
        })
    }
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
    Ok(ProductPage::new(layout, product, in_cart))
}
