/// Fewer characters than this are too easy to guess.
pub const MIN_CHARS: usize = 8;
/// More than this is not a password but a denial-of-service attempt on the hasher.
pub const MAX_CHARS: usize = 128;

/// A password a user chose at registration: between 8 and 128 characters. Never logged.
pub struct Password(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("Your password must have at least 8 characters.")]
    TooShort,
    #[error("Your password must have at most 128 characters.")]
    TooLong,
}

impl Password {
    pub fn parse(raw: &str) -> Result<Self, PasswordError> {
        match raw.chars().count() {
            n if n < MIN_CHARS => Err(PasswordError::TooShort),
            n if n > MAX_CHARS => Err(PasswordError::TooLong),
            _ => Ok(Self(raw.to_owned())),
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_counted_in_characters() {
        assert_eq!(
            Password::parse("short").unwrap_err(),
            PasswordError::TooShort
        );
        assert!(Password::parse("ünïcødé!").is_ok());
        assert_eq!(
            Password::parse(&"x".repeat(129)).unwrap_err(),
            PasswordError::TooLong
        );
    }

    #[test]
    fn debug_output_hides_the_password() {
        let password = Password::parse("correct horse").unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }
}
