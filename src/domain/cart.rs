//! The cart as it lives in the session: product ids and quantities, and the unit price each line
//! was first added at, only to tell the shopper when a price has changed since; names and the
//! prices charged are read fresh from the catalog. A line keeps the fields another version of
//! the shop wrote that this one does not know, so editing it loses none of them.

use serde::{Deserialize, Serialize};

use super::{Money, ProductId, Quantity, QuantityError};

/// How many different products one cart may hold; keeps the session state small.
pub const MAX_LINES: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub product_id: ProductId,
    pub quantity: Quantity,
    /// The unit price in cents when the line was first added (stored since 0.3.0; a line an
    /// older release added gets one at its next add). Never what is charged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_price_cents: Option<i64>,
    /// Fields written by another version of the shop, kept as they were.
    #[serde(flatten)]
    pub unknown: serde_json::Map<String, serde_json::Value>,
}

impl CartLine {
    pub fn new(product_id: ProductId, quantity: Quantity) -> Self {
        Self {
            product_id,
            quantity,
            unit_price_cents: None,
            unknown: serde_json::Map::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cart {
    lines: Vec<CartLine>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CartError {
    #[error(transparent)]
    Quantity(#[from] QuantityError),
    #[error("Your cart can hold at most 50 different products.")]
    TooManyLines,
    #[error("That product is not in your cart.")]
    NotInCart,
}

impl Cart {
    pub fn lines(&self) -> &[CartLine] {
        &self.lines
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The number of items, counting quantities.
    pub fn item_count(&self) -> u32 {
        self.lines.iter().map(|line| line.quantity.get()).sum()
    }

    pub fn quantity_of(&self, product_id: ProductId) -> Option<Quantity> {
        self.lines
            .iter()
            .find(|line| line.product_id == product_id)
            .map(|line| line.quantity)
    }

    /// Adds items; adding a product already in the cart increases its quantity.
    pub fn add(
        &mut self,
        product_id: ProductId,
        quantity: Quantity,
    ) -> Result<Quantity, CartError> {
        if let Some(line) = self.lines.iter_mut().find(|l| l.product_id == product_id) {
            line.quantity = line.quantity.checked_add(quantity)?;
            return Ok(line.quantity);
        }
        if self.lines.len() >= MAX_LINES {
            return Err(CartError::TooManyLines);
        }
        self.lines.push(CartLine::new(product_id, quantity));
        Ok(quantity)
    }

    /// Remembers `price` as the line's unit price, unless it remembers one already: the price
    /// the shopper first saw stays.
    pub fn remember_price(&mut self, product_id: ProductId, price: Money) {
        if let Some(line) = self.lines.iter_mut().find(|l| l.product_id == product_id) {
            line.unit_price_cents.get_or_insert(price.cents());
        }
    }

    /// Sets a line's quantity; `None` removes the line.
    pub fn set(
        &mut self,
        product_id: ProductId,
        quantity: Option<Quantity>,
    ) -> Result<(), CartError> {
        let index = self
            .lines
            .iter()
            .position(|l| l.product_id == product_id)
            .ok_or(CartError::NotInCart)?;
        match quantity {
            Some(quantity) => self.lines[index].quantity = quantity,
            None => {
                self.lines.remove(index);
            }
        }
        Ok(())
    }

    /// Takes out what an order took: each ordered line's quantity is subtracted, and a line
    /// left with nothing is removed. Items added meanwhile stay.
    pub fn remove_ordered(&mut self, ordered: &[CartLine]) {
        for taken in ordered {
            if let Some(index) = self
                .lines
                .iter()
                .position(|l| l.product_id == taken.product_id)
            {
                let left = self.lines[index]
                    .quantity
                    .get()
                    .saturating_sub(taken.quantity.get());
                match Quantity::try_from(left) {
                    Ok(left) => self.lines[index].quantity = left,
                    Err(_) => {
                        self.lines.remove(index);
                    }
                }
            }
        }
    }

    /// Keeps only the lines whose product still exists.
    pub fn retain(&mut self, mut keep: impl FnMut(ProductId) -> bool) {
        self.lines.retain(|line| keep(line.product_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: i64) -> ProductId {
        ProductId::parse(&n.to_string()).unwrap()
    }

    fn qty(n: u32) -> Quantity {
        Quantity::try_from(n).unwrap()
    }

    #[test]
    fn adding_the_same_product_twice_increments_its_quantity() {
        let mut cart = Cart::default();
        cart.add(id(1), qty(2)).unwrap();
        cart.add(id(1), qty(3)).unwrap();
        assert_eq!(cart.lines().len(), 1);
        assert_eq!(cart.quantity_of(id(1)), Some(qty(5)));
        assert_eq!(cart.item_count(), 5);
    }

    #[test]
    fn a_line_never_exceeds_the_limit_and_a_refused_add_changes_nothing() {
        let mut cart = Cart::default();
        cart.add(id(1), qty(60)).unwrap();
        assert_eq!(
            cart.add(id(1), qty(40)),
            Err(CartError::Quantity(QuantityError::TooLarge))
        );
        assert_eq!(cart.quantity_of(id(1)), Some(qty(60)));
    }

    #[test]
    fn the_number_of_lines_is_capped() {
        let mut cart = Cart::default();
        for n in 1..=MAX_LINES as i64 {
            cart.add(id(n), qty(1)).unwrap();
        }
        assert_eq!(cart.add(id(999), qty(1)), Err(CartError::TooManyLines));
    }

    #[test]
    fn an_order_takes_out_only_what_it_ordered() {
        let mut cart = Cart::default();
        cart.add(id(1), qty(2)).unwrap();
        cart.add(id(2), qty(1)).unwrap();
        let ordered = cart.lines().to_vec();
        cart.add(id(1), qty(3)).unwrap(); // added in another tab while the order was placed
        cart.add(id(3), qty(1)).unwrap();
        cart.remove_ordered(&ordered);
        assert_eq!(cart.quantity_of(id(1)), Some(qty(3)));
        assert_eq!(cart.quantity_of(id(2)), None);
        assert_eq!(cart.quantity_of(id(3)), Some(qty(1)));
    }

    #[test]
    fn setting_zero_removes_the_line() {
        let mut cart = Cart::default();
        cart.add(id(1), qty(1)).unwrap();
        cart.set(id(1), None).unwrap();
        assert!(cart.is_empty());
        assert_eq!(cart.set(id(1), Some(qty(2))), Err(CartError::NotInCart));
    }
}
