//! The environment as the settings read it, for `config` and for each session store's own
//! settings: an empty value counts as unset, each kind of value (text, number, number in a
//! range, flag, list) is parsed one way, and every error names its variable in one wording.
//! A leaf: it imports nothing of the shop.

/// A variable that stops start-up, and why.
#[derive(Debug, thiserror::Error)]
#[error("configuration error in {variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

pub(crate) fn invalid(variable: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        reason: reason.into(),
    }
}

/// The environment as the settings read it: an empty value counts as unset, and each kind of
/// value (text, number, number in a range, flag, list) is parsed one way, with one wording for
/// its errors.
pub(crate) struct Env<'a>(pub(crate) &'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    pub(crate) fn text(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|value| !value.trim().is_empty())
    }

    pub(crate) fn text_or(&self, name: &str, default: &str) -> String {
        self.text(name).unwrap_or_else(|| default.to_owned())
    }

    pub(crate) fn number<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        match self.text(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|_| invalid(name, format!("'{raw}' is not a valid number"))),
        }
    }

    pub(crate) fn number_in<T>(
        &self,
        name: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Bounded,
    {
        let value = self.number(name, default)?;
        if range.contains(&value) {
            return Ok(value);
        }
        Err(invalid(
            name,
            match (range.start(), range.end()) {
                (start, end) if end.is_max() => format!("must be at least {start}"),
                (start, end) => format!("must be {start} to {end}"),
            },
        ))
    }

    /// `true`/`1` or `false`/`0`.
    pub(crate) fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.text(name).as_deref().map(str::trim) {
            None => Ok(default),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(invalid(
                name,
                format!("'{other}' is not true (1) or false (0)"),
            )),
        }
    }

    /// A comma list, its items trimmed, empty ones left out.
    pub(crate) fn list(&self, name: &str, default: &str) -> Vec<String> {
        self.text_or(name, default)
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// Numbers whose largest value means "no upper bound" in a range's wording.
pub(crate) trait Bounded {
    fn is_max(&self) -> bool;
}

macro_rules! bounded {
    ($($t:ty),+) => {$(
        impl Bounded for $t {
            fn is_max(&self) -> bool {
                *self == <$t>::MAX
            }
        }
    )+};
}
bounded!(u8, u16, u32, i64, usize);
