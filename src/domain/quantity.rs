use std::fmt;

/// How many of one product a cart line may hold.
pub const MAX_PER_LINE: u32 = 99;

/// A number of items in a cart line: 1 to 99.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Quantity(u32);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuantityError {
    #[error("Quantity must be a whole number.")]
    NotANumber,
    #[error("Quantity must be at least 1.")]
    TooSmall,
    #[error("You can have at most 99 of one product in your cart.")]
    TooLarge,
}

impl Quantity {
    /// Parses the cart page's quantity field, where 0 means "remove the line" (`None`).
    pub fn parse_field(raw: &str) -> Result<Option<Self>, QuantityError> {
        let raw = raw.trim();
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return Err(QuantityError::NotANumber);
        }
        match raw.parse::<i64>() {
            Ok(0) => Ok(None),
            Ok(n) if n < 0 => Err(QuantityError::TooSmall),
            Ok(n) => Self::try_from(u32::try_from(n).unwrap_or(u32::MAX)).map(Some),
            Err(_) if raw.starts_with('-') => Err(QuantityError::TooSmall),
            Err(_) if raw.bytes().all(|b| b.is_ascii_digit()) => Err(QuantityError::TooLarge),
            Err(_) => Err(QuantityError::NotANumber),
        }
    }

    /// Parses a form field where zero is not allowed (adding to the cart).
    pub fn parse(raw: &str) -> Result<Self, QuantityError> {
        Self::parse_field(raw)?.ok_or(QuantityError::TooSmall)
    }

    /// The sum of two quantities, if it stays within the per-line limit.
    pub fn checked_add(self, other: Self) -> Result<Self, QuantityError> {
        Self::try_from(self.0 + other.0)
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Quantity {
    type Error = QuantityError;

    fn try_from(n: u32) -> Result<Self, Self::Error> {
        match n {
            0 => Err(QuantityError::TooSmall),
            n if n > MAX_PER_LINE => Err(QuantityError::TooLarge),
            n => Ok(Self(n)),
        }
    }
}

impl From<Quantity> for u32 {
    fn from(q: Quantity) -> u32 {
        q.0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_from_one_to_ninety_nine_are_accepted() {
        assert_eq!(Quantity::parse("1").map(Quantity::get), Ok(1));
        assert_eq!(Quantity::parse(" 99 ").map(Quantity::get), Ok(99));
    }

    #[test]
    fn bad_quantities_say_why() {
        assert_eq!(Quantity::parse("0"), Err(QuantityError::TooSmall));
        assert_eq!(Quantity::parse("-3"), Err(QuantityError::TooSmall));
        assert_eq!(Quantity::parse("100"), Err(QuantityError::TooLarge));
        assert_eq!(
            Quantity::parse("99999999999999999999999"),
            Err(QuantityError::TooLarge)
        );
        assert_eq!(
            Quantity::parse("-99999999999999999999999"),
            Err(QuantityError::TooSmall)
        );
        assert_eq!(Quantity::parse("2.5"), Err(QuantityError::NotANumber));
        assert_eq!(Quantity::parse("two"), Err(QuantityError::NotANumber));
        assert_eq!(Quantity::parse(""), Err(QuantityError::NotANumber));
        assert_eq!(Quantity::parse("1-2"), Err(QuantityError::NotANumber));
    }

    #[test]
    fn zero_removes_a_line_in_the_cart_field() {
        assert_eq!(Quantity::parse_field("0"), Ok(None));
    }

    #[test]
    fn sums_stay_within_the_line_limit() {
        let fifty = Quantity::parse("50").unwrap();
        assert_eq!(fifty.checked_add(fifty), Err(QuantityError::TooLarge));
        assert_eq!(
            fifty
                .checked_add(Quantity::parse("49").unwrap())
                .map(Quantity::get),
            Ok(99)
        );
    }

    #[test]
    fn a_stored_quantity_out_of_range_does_not_deserialize() {
        assert!(serde_json::from_str::<Quantity>("0").is_err());
        assert!(serde_json::from_str::<Quantity>("100").is_err());
        assert_eq!(serde_json::from_str::<Quantity>("5").unwrap().get(), 5);
    }
}
