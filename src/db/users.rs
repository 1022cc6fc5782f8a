//! Registered users and their password hashes.

use sqlx::FromRow;

use super::{Database, now};
use crate::domain::{Email, UserId};

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("an account with this email already exists")]
    Duplicate,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl Database {
    pub async fn user_by_email(&self, email: &Email) -> Result<Option<UserRow>, sqlx::Error> {
        sqlx::query_as("SELECT id, email, password_hash FROM users WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(&self.pool())
            .await
    }

    pub async fn create_user(
        &self,
        email: &Email,
        password_hash: &str,
    ) -> Result<UserId, CreateUserError> {
        let row: Result<(i64,), sqlx::Error> = sqlx::query_as(
            "INSERT INTO users (email, password_hash, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(email.as_str())
        .bind(password_hash)
        .bind(now())
        .fetch_one(&self.pool())
        .await;
        match row {
            Ok((id,)) => Ok(UserId::from_db(id)),
            Err(sqlx::Error::Database(err)) if err.is_unique_violation() => {
                Err(CreateUserError::Duplicate)
            }
            Err(err) => Err(err.into()),
        }
    }
}
