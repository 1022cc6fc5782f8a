//! The catalog.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use sqlx::FromRow;

use super::Database;
use crate::domain::{Money, ProductId};

#[derive(Debug, Clone, FromRow)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub price_cents: i64,
    pub stock: i64,
    pub image: String,
}

impl Product {
    pub fn price(&self) -> Money {
        Money::from_cents(self.price_cents)
    }

    pub fn product_id(&self) -> ProductId {
        ProductId::from_db(self.id)
    }

    /// The most of it one cart line may hold: the stock, and at most the per-line limit.
    pub fn line_limit(&self) -> u32 {
        u32::try_from(self.stock.max(0))
            .unwrap_or(u32::MAX)
            .min(crate::domain::MAX_PER_LINE)
    }

    pub fn in_stock(&self) -> bool {
        self.stock > 0
    }
}

/// How long the cart page, and the catalog and product pages of a visitor with no session, may
/// show a product without asking the database. Names and prices change only with a migration.
/// Stock changes all the time: a cart change checks it against this cache (at most this old),
/// and checkout, which takes it, re-checks it inside its transaction; a shopper with a session
/// reads it fresh on the product page.
const CATALOG_TTL: Duration = Duration::from_secs(1);

/// The whole catalog, kept for [`CATALOG_TTL`]: the cart page is the busiest read, and without
/// it every view paid a database round trip for data that does not change (measured: 10,200 vs
/// 33,000 req/s on one core). It is a cache of the shop's own data, not session state: any
/// instance can fill it, and losing it costs one query.
#[derive(Clone, Default)]
pub struct CatalogCache(Arc<RwLock<Option<Snapshot>>>);

/// The catalog as read at an instant.
type Snapshot = (Instant, Arc<Vec<Product>>);

impl Database {
    /// Every product, from a cache at most [`CATALOG_TTL`] old: names, prices, and stock for a
    /// first check only.
    pub async fn catalog_for_display(&self) -> Result<Arc<Vec<Product>>, sqlx::Error> {
        let cached = self
            .catalog
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some((_, products)) = cached.filter(|(at, _)| at.elapsed() < CATALOG_TTL) {
            return Ok(products);
        }
        let refreshing = Instant::now();
        let products = Arc::new(self.all_products().await?);
        crate::timing::note("catalog refresh", refreshing.elapsed());
        *self
            .catalog
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), products.clone()));
        Ok(products)
    }

    /// A product from the cache (see [`CATALOG_TTL`]): a cart change asked the database for its
    /// product every time, the largest cost of a cart change in the benchmark's profile.
    pub async fn cached_product(&self, id: ProductId) -> Result<Option<Product>, sqlx::Error> {
        Ok(self
            .catalog_for_display()
            .await?
            .iter()
            .find(|p| p.product_id() == id)
            .cloned())
    }

    pub async fn all_products(&self) -> Result<Vec<Product>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, name, description, price_cents, stock, image FROM products ORDER BY id",
        )
        .fetch_all(&self.pool())
        .await
    }

    pub async fn product(&self, id: ProductId) -> Result<Option<Product>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, name, description, price_cents, stock, image FROM products WHERE id = $1",
        )
        .bind(id.get())
        .fetch_optional(&self.pool())
        .await
    }
}
