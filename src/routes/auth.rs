//! Register, log in, log out. Passwords are hashed with Argon2id off the async threads; a wrong
//! password and an unknown email get the same answer and take about the same time.

use std::sync::LazyLock;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
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
use crate::error::{ShopError, SignInReason};
use crate::limits::{self, LoginLimits};
use crate::session::FlashKind;
use crate::shop_session::ShopSession;
use crate::state::AppState;

/// A hash of a password nobody has, verified when the email is unknown so that both cases cost
/// the same.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Bq0z1VN5KqWhbr8o8hxRRfcvd5fKmeGHXlaR9pd0kEU";

const DUPLICATE: &str = "An account with this email already exists. Please log in.";

const WRONG_CREDENTIALS: &str = "That email and password do not match an account.";

#[derive(Template)]
#[template(path = "register.html")]
pub struct RegisterPage {
    layout: Layout,
    email: String,
    error: Option<String>,
    /// Why the shopper was sent to sign in, carried through the form to send them back.
    reason: Option<SignInReason>,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    layout: Layout,
    email: String,
    error: Option<String>,
    /// Why the shopper was sent here, from the page's address; said on the page, and carried
    /// through the form so that signing in returns them to what they were doing.
    reason: Option<SignInReason>,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    reason: Option<String>,
}

#[derive(Deserialize)]
pub struct Credentials {
    email: String,
    password: String,
    /// The sign-in reason the form carried, if any; anything else is ignored.
    #[serde(default)]
    reason: String,
}

/// `?reason=` names why a page sent the shopper to sign in (anything else is ignored).
fn reason_in_query(req: &HttpRequest) -> Option<SignInReason> {
    web::Query::<LoginQuery>::from_query(req.query_string())
        .ok()
        .and_then(|query| SignInReason::parse(query.reason.as_deref()?))
}

pub async fn register_form(req: HttpRequest, layout: Layout) -> Result<HttpResponse, ShopError> {
    let page = RegisterPage {
        layout,
        email: String::new(),
        error: None,
        reason: reason_in_query(&req),
    };
    render_with_status(&page, StatusCode::OK)
}

pub async fn login_form(req: HttpRequest, layout: Layout) -> Result<HttpResponse, ShopError> {
    let page = LoginPage {
        layout,
        email: String::new(),
        error: None,
        reason: reason_in_query(&req),
    };
    render_with_status(&page, StatusCode::OK)
}

/// Where a sign-in goes next, and what it says there: back to what the shopper was doing, with
/// the greeting and what is there, or to the catalog with the greeting and `otherwise`.
fn signed_in(
    reason: Option<SignInReason>,
    greeting: &str,
    otherwise: &str,
) -> (&'static str, String) {
    match reason {
        Some(reason) => (
            reason.destination(),
            format!("{greeting} {}", reason.welcome()),
        ),
        None => ("/", format!("{greeting} {otherwise}").trim_end().to_owned()),
    }
}

pub async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: ShopSession,
    layout: Layout,
    CheckedForm(form): CheckedForm<Credentials>,
) -> Result<HttpResponse, ShopError> {
    let reason = SignInReason::parse(&form.reason);
    let again = |layout, error: String| {
        let email = form.email.chars().take(254).collect();
        render_with_status(
            &RegisterPage {
                layout,
                email,
                error: Some(error),
                reason,
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
    // Counted before the email is looked up: whether an account exists is told to a client at
    // most this many times a window.
    if let Err(limit) = limits::count_registration(&req, &state).await? {
        log::warn!(
            "Registration refused ({}): too many {limit}.",
            crate::middleware::access_log::who(&req)
        );
        return Err(ShopError::TooManyRequests(
            limit,
            state.limits.window.whole_seconds(),
        ));
    }
    // A duplicate is refused before the (deliberately slow) hash is made.
    if state.db.user_by_email(&email).await?.is_some() {
        return again(layout, DUPLICATE.into());
    }
    let hash = hash_password(password).await?;
    let id = match state.db.create_user(&email, &hash).await {
        Ok(id) => id,
        Err(CreateUserError::Duplicate) => return again(layout, DUPLICATE.into()),
        Err(CreateUserError::Database(err)) => return Err(err.into()),
    };
    log::info!("User {id} registered.");
    session.log_in(id, email.to_string())?;
    let (next, welcome) = signed_in(reason, "Welcome! Your account is ready.", "");
    session.flash(FlashKind::Info, welcome)?;
    let mut response = see_other(next);
    limits::remember_device(&mut response, &state, &email)?;
    Ok(response)
}

pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: ShopSession,
    layout: Layout,
    CheckedForm(form): CheckedForm<Credentials>,
) -> Result<HttpResponse, ShopError> {
    let reason = SignInReason::parse(&form.reason);
    let refuse = |layout| {
        let email = form.email.chars().take(254).collect();
        let page = LoginPage {
            layout,
            email,
            error: Some(WRONG_CREDENTIALS.into()),
            reason,
        };
        render_with_status(&page, StatusCode::UNAUTHORIZED)
    };
    let (Ok(email), true) = (
        Email::parse(&form.email),
        form.password.chars().count() <= 128,
    ) else {
        return refuse(layout);
    };
    let limits = LoginLimits::of(&req, &state, &email);
    if let Err(limit) = limits.reserve(&state).await? {
        log::warn!(
            "Login refused ({}): too many {limit}.",
            crate::middleware::access_log::who(&req)
        );
        let page = LoginPage {
            layout,
            email: email.to_string(),
            error: Some(format!(
                "Too many failed attempts to sign in to this account from here. Please wait {} \
                 and try again, or sign in from a browser you have signed in with before.",
                crate::error::span(state.limits.window.whole_seconds())
            )),
            reason,
        };
        let mut response = render_with_status(&page, StatusCode::TOO_MANY_REQUESTS)?;
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(state.limits.window.whole_seconds()),
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
            limits.succeeded(&state).await?;
            session.log_in(id, user.email)?;
            log::info!(
                "User {id} logged in{}.",
                if limits.from_known_device() {
                    " from a browser it knows"
                } else {
                    ""
                }
            );
            let (next, welcome) = signed_in(reason, "Welcome back!", "You are signed in.");
            session.flash(FlashKind::Info, welcome)?;
            let mut response = see_other(next);
            limits::remember_device(&mut response, &state, &email)?;
            Ok(response)
        }
        // The attempt was counted when it was reserved.
        _ => refuse(layout),
    }
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

/// How long a request waits for a hashing slot before it is answered 503 with `Retry-After`:
/// a flood of logins gets a quick "try again" instead of a queue that stalls every login.
const HASHING_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

async fn hashing<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ShopError> {
    let _permit = tokio::time::timeout(HASHING_WAIT, HASHING.acquire())
        .await
        .map_err(|_| {
            ShopError::Unavailable(anyhow::anyhow!(
                "no password hashing slot was free within {HASHING_WAIT:?}"
            ))
        })?
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
