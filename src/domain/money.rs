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
    /// `-$1,234.56`: written right to left into a buffer on the stack and handed to the
    /// formatter in one piece (a cart page prints eleven amounts; each used to allocate).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The longest amount: `-$92,233,720,368,547,758.08` is 27 bytes.
        let mut buf = [0u8; 32];
        let mut at = buf.len();
        let mut put = |byte: u8| {
            at -= 1;
            buf[at] = byte;
        };
        let cents = self.0.unsigned_abs();
        put(b'0' + (cents % 10) as u8);
        put(b'0' + (cents / 10 % 10) as u8);
        put(b'.');
        let mut dollars = cents / 100;
        let mut digits = 0;
        loop {
            if digits > 0 && digits % 3 == 0 {
                put(b',');
            }
            put(b'0' + (dollars % 10) as u8);
            digits += 1;
            dollars /= 10;
            if dollars == 0 {
                break;
            }
        }
        put(b'$');
        if self.0 < 0 {
            put(b'-');
        }
        // Only ASCII digits and `-$,.` were written.
        f.write_str(std::str::from_utf8(&buf[at..]).map_err(|_| fmt::Error)?)
    }
}

/// An amount prints only digits and `-$,.`: templates write it without escaping.
impl askama::filters::HtmlSafe for Money {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_prints_as_dollars_and_cents() {
        assert_eq!(Money::from_cents(0).to_string(), "$0.00");
        assert_eq!(Money::from_cents(1999).to_string(), "$19.99");
        assert_eq!(Money::from_cents(123_456_789).to_string(), "$1,234,567.89");
        assert_eq!(Money::from_cents(-250).to_string(), "-$2.50");
        assert_eq!(Money::from_cents(5).to_string(), "$0.05");
        assert_eq!(Money::from_cents(100_000).to_string(), "$1,000.00");
        assert_eq!(Money::from_cents(99_999).to_string(), "$999.99");
        assert_eq!(
            Money::from_cents(i64::MIN).to_string(),
            "-$92,233,720,368,547,758.08"
        );
        assert_eq!(
            Money::from_cents(i64::MAX).to_string(),
            "$92,233,720,368,547,758.07"
        );
    }

    #[test]
    fn line_totals_multiply_and_sum() {
        let price = Money::from_cents(1250);
        assert_eq!(price.times(3), Money::from_cents(3750));
        let total: Money = [price, price.times(2)].into_iter().sum();
        assert_eq!(total, Money::from_cents(3750));
    }
}
