//! Types that parse, not validate: a value of one of these types is valid by construction, so the
//! handlers past the edge never see a bad quantity, email or id.

mod cart;
mod email;
mod money;
mod password;
#[cfg(test)]
mod properties;
mod quantity;

pub use cart::{Cart, CartError, CartLine};
pub use email::{Email, EmailError};
pub use money::Money;
pub use password::{Password, PasswordError};
pub use quantity::{MAX_PER_LINE, Quantity, QuantityError};

/// The id of a product, parsed from a path or a form field.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct ProductId(i64);

/// The id of an order, parsed from a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct OrderId(i64);

/// The id of a registered user, as kept in the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct UserId(i64);

/// A text that is not a positive whole number where an id was expected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{0}' is not a valid id")]
pub struct IdError(String);

macro_rules! id_type {
    ($name:ident) => {
        impl $name {
            /// Parses a positive whole number.
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                match raw.trim().parse::<i64>() {
                    Ok(id) if id > 0 => Ok(Self(id)),
                    _ => Err(IdError(raw.chars().take(40).collect())),
                }
            }

            /// Wraps an id read back from the database.
            pub fn from_db(id: i64) -> Self {
                Self(id)
            }

            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(ProductId);
id_type!(OrderId);
id_type!(UserId);

/// Seconds since the epoch: how the shop stores moments (sign-ins, orders) in every store and
/// dialect.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A moment (seconds since the epoch) in UTC to the minute, as a person reads it.
pub fn utc_minute(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .map(|t| {
            format!(
                "{}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_whole_numbers() {
        assert_eq!(ProductId::parse("7").map(ProductId::get), Ok(7));
        assert_eq!(ProductId::parse(" 12 ").map(ProductId::get), Ok(12));
        for bad in [
            "0",
            "-1",
            "abc",
            "1.5",
            "",
            "99999999999999999999",
            "1; DROP TABLE",
        ] {
            assert!(ProductId::parse(bad).is_err(), "{bad} must be refused");
        }
    }
}
