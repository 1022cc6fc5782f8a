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
    /// The checkout's claim was taken over by a later request after it stalled, and voided:
    /// this attempt orders nothing (the later one orders the cart).
    #[error(
        "That checkout took too long and was cancelled; nothing was ordered from it. Please check your orders and your cart."
    )]
    Voided,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What a checkout token came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    /// An order was placed with it.
    Placed(OrderId),
    /// It was voided: nothing can be ordered with it.
    Voided,
}

/// An order placed for a checkout token: by this call, or by an earlier one with the same token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub id: OrderId,
    /// False when another attempt with the same token had already placed it.
    pub just_now: bool,
}

impl Database {
    /// Places an order for `lines` at today's prices and decrements stock, all or nothing, at
    /// most once per `token`: the order row is inserted first, under the token's unique index,
    /// so a second attempt with the same token (a double click, a retry, a racing replica)
    /// waits for the first to commit and then finds its order instead of placing another.
    pub async fn place_order(
        &self,
        user: UserId,
        lines: &[CartLine],
        token: &str,
    ) -> Result<Placed, CheckoutError> {
        if lines.is_empty() {
            return Err(CheckoutError::EmptyCart);
        }
        let mut tx = self.pool().begin().await?;
        // The write comes first so SQLite takes its write lock at once. The token's row is
        // where a checkout and a void of the same token meet (see `void_checkout`).
        let claimed: Option<(String,)> = sqlx::query_as(
            "INSERT INTO checkout_tokens (token, user_id, voided, created_at)
             VALUES ($1, $2, 0, $3)
             ON CONFLICT (token) DO NOTHING RETURNING token",
        )
        .bind(token)
        .bind(user.get())
        .bind(now())
        .fetch_optional(&mut *tx)
        .await?;
        // An older release may have placed or voided the token in `orders` alone.
        let inserted: Option<(i64,)> = match claimed {
            None => None,
            Some(_) => sqlx::query_as(
                "INSERT INTO orders (user_id, total_cents, item_count, created_at, checkout_token)
                     VALUES ($1, 0, 0, $2, $3)
                     ON CONFLICT (checkout_token) DO NOTHING RETURNING id",
            )
            .bind(user.get())
            .bind(now())
            .bind(token)
            .fetch_optional(&mut *tx)
            .await?,
        };
        let Some((order_id,)) = inserted else {
            tx.rollback().await?;
            return match self.checkout_with(user, token).await? {
                Some(TokenUse::Placed(id)) => Ok(Placed {
                    id,
                    just_now: false,
                }),
                Some(TokenUse::Voided) => Err(CheckoutError::Voided),
                // The token belongs to another user's order: never theirs to see.
                None => Err(CheckoutError::Database(sqlx::Error::RowNotFound)),
            };
        };
        // Stock rows are locked in one order, by product id, whatever the cart's order: two
        // checkouts taking the same products in opposite orders deadlocked on PostgreSQL, which
        // aborts one of them (a 500 in CI's rolling-update journey, 5 of 10,024 requests).
        let mut by_id: Vec<&CartLine> = lines.iter().collect();
        by_id.sort_by_key(|line| line.product_id.get());
        let mut priced = Vec::with_capacity(lines.len());
        for line in by_id {
            let quantity = i64::from(line.quantity.get());
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
        // The order's lines in the cart's order.
        priced.sort_by_key(|(line, ..)| lines.iter().position(|l| l.product_id == line.product_id));
        let total: i64 = priced.iter().map(|(_, _, price, qty)| price * qty).sum();
        let item_count: i64 = priced.iter().map(|(_, _, _, qty)| qty).sum();
        sqlx::query("UPDATE orders SET total_cents = $1, item_count = $2 WHERE id = $3")
            .bind(total)
            .bind(item_count)
            .bind(order_id)
            .execute(&mut *tx)
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
        Ok(Placed {
            id: OrderId::from_db(order_id),
            just_now: true,
        })
    }

    /// What became of the user's checkout token: an order, a void, or nothing yet.
    async fn checkout_with(
        &self,
        user: UserId,
        token: &str,
    ) -> Result<Option<TokenUse>, sqlx::Error> {
        let void: Option<(i64,)> = sqlx::query_as(
            "SELECT voided FROM checkout_tokens WHERE token = $1 AND user_id = $2 AND voided = 1",
        )
        .bind(token)
        .bind(user.get())
        .fetch_optional(&self.pool())
        .await?;
        if void.is_some() {
            return Ok(Some(TokenUse::Voided));
        }
        // The flag as an integer: sqlx's Any driver reads SQLite's booleans as integers. A
        // voided row here is an older release's void.
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT id, CAST(CASE WHEN voided THEN 1 ELSE 0 END AS BIGINT) FROM orders
             WHERE checkout_token = $1 AND user_id = $2",
        )
        .bind(token)
        .bind(user.get())
        .fetch_optional(&self.pool())
        .await?;
        Ok(row.map(|(id, voided)| {
            if voided != 0 {
                TokenUse::Voided
            } else {
                TokenUse::Placed(OrderId::from_db(id))
            }
        }))
    }

    /// Voids a checkout token (its claim stalled, or its order was refused) under the token's
    /// unique key, which every checkout takes first: after this, no transaction can place an
    /// order with it. If an order was placed with it first (the stalled transaction did
    /// commit), that order is the answer instead. A transaction still holding the token waits
    /// here until it commits or rolls back. The void is a row in `checkout_tokens`, never in
    /// `orders`, and is deleted once nothing can hold the token (`reap_checkout_voids`).
    pub async fn void_checkout(&self, user: UserId, token: &str) -> Result<TokenUse, sqlx::Error> {
        let inserted: Option<(String,)> = sqlx::query_as(
            "INSERT INTO checkout_tokens (token, user_id, voided, created_at)
             VALUES ($1, $2, 1, $3)
             ON CONFLICT (token) DO NOTHING RETURNING token",
        )
        .bind(token)
        .bind(user.get())
        .bind(now())
        .fetch_optional(&self.pool())
        .await?;
        if inserted.is_some() {
            return Ok(TokenUse::Voided);
        }
        self.checkout_with(user, token)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// Deletes voids older than `seconds` (in `checkout_tokens`, and those older releases wrote
    /// in `orders`): a void must outlive every transaction that may still hold its token, which
    /// is at most a claim's age (`CHECKOUT_CLAIM_SECONDS`). Returns how many.
    pub async fn reap_checkout_voids(&self, seconds: i64) -> Result<u64, sqlx::Error> {
        let before = now() - seconds;
        let tokens =
            sqlx::query("DELETE FROM checkout_tokens WHERE voided = 1 AND created_at < $1")
                .bind(before)
                .execute(&self.pool())
                .await?
                .rows_affected();
        let orders = sqlx::query(
            "DELETE FROM orders WHERE voided AND created_at < $1
             AND NOT EXISTS (SELECT 1 FROM order_lines WHERE order_id = orders.id)",
        )
        .bind(before)
        .execute(&self.pool())
        .await?
        .rows_affected();
        Ok(tokens + orders)
    }

    pub async fn orders_of(&self, user: UserId) -> Result<Vec<OrderRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, total_cents, item_count, created_at FROM orders
             WHERE user_id = $1 AND NOT voided ORDER BY id DESC",
        )
        .bind(user.get())
        .fetch_all(&self.pool())
        .await
    }

    /// The order with its lines, only if it belongs to `user`.
    pub async fn order_of(
        &self,
        user: UserId,
        id: OrderId,
    ) -> Result<Option<(OrderRow, Vec<OrderLineRow>)>, sqlx::Error> {
        let order: Option<OrderRow> = sqlx::query_as(
            "SELECT id, total_cents, item_count, created_at FROM orders
             WHERE id = $1 AND user_id = $2 AND NOT voided",
        )
        .bind(id.get())
        .bind(user.get())
        .fetch_optional(&self.pool())
        .await?;
        let Some(order) = order else { return Ok(None) };
        let lines = sqlx::query_as(
            "SELECT product_id, product_name, unit_price_cents, quantity FROM order_lines
             WHERE order_id = $1 ORDER BY id",
        )
        .bind(order.id)
        .fetch_all(&self.pool())
        .await?;
        Ok(Some((order, lines)))
    }
}
