//! Orders: checkout turns a cart into an order and takes the items out of stock in one
//! transaction, so a refused checkout changes nothing.

use sqlx::FromRow;

use super::{Database, now};
use crate::domain::{CartLine, Money, OrderId, UserId};

#[derive(Debug, Clone, FromRow)]
pub struct OrderRow {
    pub id: i64,
    pub total_cents: i64,
    pub item_count: i64,
    pub created_at: i64,
}

impl OrderRow {
    pub fn total(&self) -> Money {
        Money::from_cents(self.total_cents)
    }

    /// When the order was placed, in UTC, as a person reads it.
    pub fn placed_at(&self) -> String {
        crate::domain::utc_minute(self.created_at)
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct OrderLineRow {
    pub product_id: i64,
    pub product_name: String,
    pub unit_price_cents: i64,
    pub quantity: i64,
}

impl OrderLineRow {
    pub fn unit_price(&self) -> Money {
        Money::from_cents(self.unit_price_cents)
    }

    pub fn line_total(&self) -> Money {
        self.unit_price()
            .times(u32::try_from(self.quantity).unwrap_or(0))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("Your cart is empty.")]
    EmptyCart,
    #[error(
        "Sorry, there are not enough of {0} left in stock. Nothing was ordered; please lower the quantity and try again."
    )]
    OutOfStock(String),
    #[error(
        "A product in your cart is no longer sold. Nothing was ordered; please remove it and try again."
    )]
    ProductGone,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl Database {
    /// Places an order for `lines` at today's prices and decrements stock, all or nothing.
    pub async fn place_order(
        &self,
        user: UserId,
        lines: &[CartLine],
    ) -> Result<OrderId, CheckoutError> {
        if lines.is_empty() {
            return Err(CheckoutError::EmptyCart);
        }
        let mut tx = self.pool().begin().await?;
        let mut priced = Vec::with_capacity(lines.len());
        for line in lines {
            let quantity = i64::from(line.quantity.get());
            // The write comes first so SQLite takes its write lock at once rather than
            // upgrading a read lock later, which could deadlock two checkouts.
            let taken =
                sqlx::query("UPDATE products SET stock = stock - $1 WHERE id = $2 AND stock >= $1")
                    .bind(quantity)
                    .bind(line.product_id.get())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            let product: Option<(String, i64)> =
                sqlx::query_as("SELECT name, price_cents FROM products WHERE id = $1")
                    .bind(line.product_id.get())
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((name, price_cents)) = product else {
                return Err(CheckoutError::ProductGone);
            };
            if taken == 0 {
                return Err(CheckoutError::OutOfStock(name));
            }
            priced.push((line, name, price_cents, quantity));
        }
        let total: i64 = priced.iter().map(|(_, _, price, qty)| price * qty).sum();
        let item_count: i64 = priced.iter().map(|(_, _, _, qty)| qty).sum();
        let (order_id,): (i64,) = sqlx::query_as(
            "INSERT INTO orders (user_id, total_cents, item_count, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(user.get())
        .bind(total)
        .bind(item_count)
        .bind(now())
        .fetch_one(&mut *tx)
        .await?;
        for (line, name, price_cents, quantity) in priced {
            sqlx::query(
                "INSERT INTO order_lines (order_id, product_id, product_name, unit_price_cents, quantity)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(order_id)
            .bind(line.product_id.get())
            .bind(name)
            .bind(price_cents)
            .bind(quantity)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(OrderId::from_db(order_id))
    }

    pub async fn orders_of(&self, user: UserId) -> Result<Vec<OrderRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, total_cents, item_count, created_at FROM orders WHERE user_id = $1 ORDER BY id DESC",
        )
        .bind(user.get())
        .fetch_all(self.pool())
        .await
    }

    /// The order with its lines, only if it belongs to `user`.
    pub async fn order_of(
        &self,
        user: UserId,
        id: OrderId,
    ) -> Result<Option<(OrderRow, Vec<OrderLineRow>)>, sqlx::Error> {
        let order: Option<OrderRow> = sqlx::query_as(
            "SELECT id, total_cents, item_count, created_at FROM orders WHERE id = $1 AND user_id = $2",
        )
        .bind(id.get())
        .bind(user.get())
        .fetch_optional(self.pool())
        .await?;
        let Some(order) = order else { return Ok(None) };
        let lines = sqlx::query_as(
            "SELECT product_id, product_name, unit_price_cents, quantity FROM order_lines
             WHERE order_id = $1 ORDER BY id",
        )
        .bind(order.id)
        .fetch_all(self.pool())
        .await?;
        Ok(Some((order, lines)))
    }
}
