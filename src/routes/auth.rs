//! Register, log in, log out. Passwords are hashed with Argon2id off the async threads; a wrong
//! password and an unknown email get the same answer and take about the same time.

use std::sync::LazyLock;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use askama::Template;
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::{CheckedForm, Layout, NoFields, render_with_status, see_other};
use crate::db::users::CreateUserError;
use crate::domain::{Email, Password, UserId};
use crate::error::ShopError;
use crate::session::{FlashKind, ShopSession};
use crate::startup::AppState;

/// A hash of a password nobody has, verified when the email is unknown so that both cases cost
/// the same.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Bq0z1VN5KqWhbr8o8hxRRfcvd5fKmeGHXlaR9pd0kEU";

const WRONG_CREDENTIALS: &str = "That email and password do not match an account.";

#[derive(Template)]
#[template(path = "register.html")]
pub struct RegisterPage {
    layout: Layout,
    email: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    layout: Layout,
    email: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct Credentials {
    email: String,
    password: String,
}

pub async fn register_form(layout: Layout) -> Result<HttpResponse, ShopError> {
    let page = RegisterPage {
        layout,
        email: String::new(),
        error: None,
    };
    render_with_status(&page, StatusCode::OK)
}

pub async fn login_form(layout: Layout) -> Result<HttpResponse, ShopError> {
    let page = LoginPage {
        layout,
        email: String::new(),
        error: None,
    };
    render_with_status(&page, StatusCode::OK)
}

pub async fn register(
    state: web::Data<AppState>,
    session: ShopSession,
    layout: Layout,
    CheckedForm(form): CheckedForm<Credentials>,
) -> Result<HttpResponse, ShopError> {
    let again = |layout, error: String| {
        let email = form.email.chars().take(254).collect();
        render_with_status(
            &RegisterPage {
                layout,
                email,
                error: Some(error),
            },
            StatusCode::BAD_REQUEST,
        )
    };
    let email = match Email::parse(&form.email) {
        Ok(email) => email,
        Err(err) => return again(layout, err.to_string()),
    };
    let password = match Password::parse(&form.password) {
        Ok(password) => password,
        Err(err) => return again(layout, err.to_string()),
    };
    let hash = hash_password(password).await?;
    let id = match state.db.create_user(&email, &hash).await {
        Ok(id) => id,
        Err(CreateUserError::Duplicate) => {
            return again(
                layout,
                "An account with this email already exists. Please log in.".into(),
            );
        }
        Err(CreateUserError::Database(err)) => return Err(err.into()),
    };
    log::info!("User {id} registered.");
    session.log_in(id, email.to_string())?;
    session.flash(FlashKind::Info, "Welcome! Your account is ready.")?;
    Ok(see_other("/"))
}

pub async fn login(
    state: web::Data<AppState>,
    session: ShopSession,
    layout: Layout,
    CheckedForm(form): CheckedForm<Credentials>,
) -> Result<HttpResponse, ShopError> {
    let refuse = |layout| {
        let email = form.email.chars().take(254).collect();
        let page = LoginPage {
            layout,
            email,
            error: Some(WRONG_CREDENTIALS.into()),
        };
        render_with_status(&page, StatusCode::UNAUTHORIZED)
    };
    let (Ok(email), true) = (
        Email::parse(&form.email),
        form.password.chars().count() <= 128,
    ) else {
        return refuse(layout);
    };
    // Failures are counted per account in the session store, so the limit holds across
    // replicas; a locked account is refused before any password is checked.
    let counter = failures_key(&email);
    if state
        .store
        .counted(&counter)
        .await
        .map_err(ShopError::Unavailable)?
        >= MAX_FAILED_LOGINS
    {
        log::warn!("Login refused: too many failures for one account in the window.");
        let page = LoginPage {
            layout,
            email: email.to_string(),
            error: Some(LOCKED_OUT.into()),
        };
        let mut response = render_with_status(&page, StatusCode::TOO_MANY_REQUESTS)?;
        response.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderValue::from(FAILED_LOGIN_WINDOW.whole_seconds()),
        );
        return Ok(response);
    }
    let user = state.db.user_by_email(&email).await?;
    let hash = user
        .as_ref()
        .map_or(DUMMY_HASH, |u| u.password_hash.as_str())
        .to_owned();
    let matches = verify_password(form.password.clone(), hash).await?;
    match user {
        Some(user) if matches => {
            let id = UserId::from_db(user.id);
            state
                .store
                .reset(&counter)
                .await
                .map_err(ShopError::Unavailable)?;
            session.log_in(id, user.email)?;
            log::info!("User {id} logged in.");
            Ok(see_other("/"))
        }
        _ => {
            state
                .store
                .count(&counter, &FAILED_LOGIN_WINDOW)
                .await
                .map_err(ShopError::Unavailable)?;
            refuse(layout)
        }
    }
}

/// Failed logins allowed per account within the window before it is locked for the window.
pub const MAX_FAILED_LOGINS: u32 = 5;

/// The window in which failures count, and how long a locked account stays locked after the
/// last failure.
pub const FAILED_LOGIN_WINDOW: actix_web::cookie::time::Duration =
    actix_web::cookie::time::Duration::minutes(15);

const LOCKED_OUT: &str =
    "Too many failed attempts for this account. Please wait 15 minutes and try again.";

/// The store key of an account's failure count: a fixed hash of the email, the same in every
/// replica, never the email itself.
fn failures_key(email: &Email) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    email.as_str().hash(&mut hasher);
    format!("login-failures-{:016x}", hasher.finish())
}

pub async fn logout(session: ShopSession, _: CheckedForm<NoFields>) -> HttpResponse {
    if let Some(user) = session.user() {
        log::info!("User {} logged out.", user.id);
    }
    session.log_out();
    see_other("/")
}

/// Argon2 takes 19 MiB and tens of milliseconds per hash. At most one hash per core runs at a
/// time, so a flood of logins waits its turn instead of exhausting memory (measured: 64
/// concurrent logins took the process past 2 GiB before this gate).
static HASHING: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())));

async fn hashing<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ShopError> {
    let _permit = HASHING
        .acquire()
        .await
        .context("the password hashing gate is closed")?;
    Ok(web::block(work)
        .await
        .context("the password hashing task failed")?)
}

async fn hash_password(password: Password) -> Result<String, ShopError> {
    let hash = hashing(move || {
        Argon2::default()
            .hash_password(password.expose().as_bytes())
            .map(|hash| hash.to_string())
    })
    .await?
    .map_err(|err| anyhow::anyhow!("could not hash a password: {err}"))?;
    Ok(hash)
}

async fn verify_password(password: String, hash: String) -> Result<bool, ShopError> {
    hashing(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
}
