//! The catalog.

use sqlx::{AssertSqlSafe, FromRow};

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

    pub fn in_stock(&self) -> bool {
        self.stock > 0
    }
}

impl Database {
    pub async fn all_products(&self) -> Result<Vec<Product>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, name, description, price_cents, stock, image FROM products ORDER BY id",
        )
        .fetch_all(self.pool())
        .await
    }

    pub async fn product(&self, id: ProductId) -> Result<Option<Product>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, name, description, price_cents, stock, image FROM products WHERE id = $1",
        )
        .bind(id.get())
        .fetch_optional(self.pool())
        .await
    }

    /// The products with these ids, in id order; unknown ids are left out.
    pub async fn products_by_ids(&self, ids: &[ProductId]) -> Result<Vec<Product>, sqlx::Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        // Only numbered placeholders are spliced in; every value is bound.
        let sql = format!(
            "SELECT id, name, description, price_cents, stock, image FROM products WHERE id IN ({}) ORDER BY id",
            placeholders.join(", ")
        );
        let mut query = sqlx::query_as(AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id.get());
        }
        query.fetch_all(self.pool()).await
    }
}
