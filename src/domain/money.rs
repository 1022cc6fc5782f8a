use std::fmt;

/// An amount of money in integer cents; never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Money(i64);

impl Money {
    pub fn from_cents(cents: i64) -> Self {
        Self(cents)
    }

    pub fn cents(self) -> i64 {
        self.0
    }

    /// The price of `quantity` items at this unit price.
    pub fn times(self, quantity: u32) -> Self {
        Self(self.0.saturating_mul(i64::from(quantity)))
    }
}

impl std::ops::Add for Money {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), |a, b| a + b)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let cents = self.0.unsigned_abs();
        write!(
            f,
            "{sign}${}.{:02}",
            group_thousands(cents / 100),
            cents % 100
        )
    }
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_prints_as_dollars_and_cents() {
        assert_eq!(Money::from_cents(0).to_string(), "$0.00");
        assert_eq!(Money::from_cents(1999).to_string(), "$19.99");
        assert_eq!(Money::from_cents(123_456_789).to_string(), "$1,234,567.89");
        assert_eq!(Money::from_cents(-250).to_string(), "-$2.50");
    }

    #[test]
    fn line_totals_multiply_and_sum() {
        let price = Money::from_cents(1250);
        assert_eq!(price.times(3), Money::from_cents(3750));
        let total: Money = [price, price.times(2)].into_iter().sum();
        assert_eq!(total, Money::from_cents(3750));
    }
}
