//! What can go wrong in a request, and what the shopper is told about it.
//!
//! Handlers return `ShopError`; its `ResponseError` gives the status, and the `finish_response`
//! middleware (`middleware::errors`) renders the friendly page (with the instance badge) and logs the cause
//! chain of a server error once. Internal text never reaches the client.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::session::StoreError;

/// Why a page sent the visitor to sign in, named in the login page's address
/// (`/login?reason=orders`) and said there in words. A redirect that said it with a flash message
/// would store a session for every cookie-less visitor who follows a link to their orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInReason {
    Orders,
    Checkout,
    Sessions,
}

impl SignInReason {
    const ALL: [Self; 3] = [Self::Orders, Self::Checkout, Self::Sessions];

    /// The reason's name in the login page's address.
    pub fn name(self) -> &'static str {
        match self {
            Self::Orders => "orders",
            Self::Checkout => "checkout",
            Self::Sessions => "sessions",
        }
    }

    /// A reason named in an address; any other text names none.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.name() == name)
    }

    /// What the login page says.
    pub fn message(self) -> &'static str {
        match self {
            Self::Orders => "Please log in to see your orders.",
            Self::Checkout => "Please log in to check out. Your cart is kept.",
            Self::Sessions => "Please log in to see where you are signed in.",
        }
    }

    /// Where a sign-in for this reason goes next: back to what the shopper was doing.
    pub fn destination(self) -> &'static str {
        match self {
            Self::Orders => "/orders",
            Self::Checkout => "/cart",
            Self::Sessions => "/account/sessions",
        }
    }

    /// What the page after the sign-in says, after the welcome.
    pub fn welcome(self) -> &'static str {
        match self {
            Self::Orders => "Here are your orders.",
            Self::Checkout => "Your cart is as you left it; check out when you are ready.",
            Self::Sessions => "Here is where you are signed in.",
        }
    }

    fn location(self) -> String {
        format!("/login?reason={}", self.name())
    }
}

/// Seconds a client is asked to wait when the session store is down.
pub const RETRY_AFTER_SECONDS: &str = "5";

/// Which limit refused an attempt, for the log and the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Failed sign-ins to one account from one client or network (the prefix length).
    AccountFrom(u8),
    /// Failed sign-ins to one account from one known browser.
    AccountFromDevice,
    /// Failed sign-ins from one client over all accounts.
    Client,
    /// New guest sessions from one client.
    NewSessions,
    /// Registrations from one client.
    Registrations,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::AccountFrom(prefix) => {
                write!(f, "failed sign-ins to one account from one /{prefix}")
            }
            Limit::AccountFromDevice => {
                f.write_str("failed sign-ins to one account from one browser")
            }
            Limit::Client => f.write_str("failed sign-ins from one client"),
            Limit::NewSessions => f.write_str("new sessions from one client"),
            Limit::Registrations => f.write_str("registrations from one client"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    /// Input the shopper can fix; the text is ours and shown as is.
    #[error("{0}")]
    BadInput(String),
    #[error("the form's CSRF token is missing or wrong")]
    Csrf,
    /// Answered with a redirect to the login page, not an error page; the reason travels in the
    /// page's address, so sending a visitor there writes no session.
    #[error("the page needs a signed-in user")]
    LoginRequired(SignInReason),
    /// Other requests kept changing the session; this change was not applied.
    #[error("the session kept changing during the request")]
    Conflict,
    /// The session was deleted (a logout elsewhere) while the request was on its way.
    #[error("the session ended during the request")]
    SessionEnded,
    #[error("no such page")]
    NotFound,
    /// The page exists but does not take this method; `Allow` names the ones it takes.
    #[error("the page does not take this method")]
    MethodNotAllowed,
    #[error("the request body is larger than the shop accepts")]
    TooLarge,
    #[error("the request body is not a form")]
    UnsupportedMediaType,
    /// A limit refused the request; it may be tried again after this many seconds.
    #[error("too many requests: {0}")]
    TooManyRequests(Limit, i64),
    #[error("a backing service is unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// The session store failed, by kind: unavailable, a change it may or may not have kept, a
    /// write that reached too few replicas, state over the limit.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl ShopError {
    pub fn bad_input(err: impl std::fmt::Display) -> Self {
        ShopError::BadInput(err.to_string())
    }

    /// The title and sentence the shopper sees.
    pub fn page_text(&self) -> (&'static str, String) {
        match self {
            ShopError::BadInput(text) => ("That did not work", text.clone()),
            ShopError::Conflict => (
                "Please try again",
                "Your cart was being changed in another tab or window at the same moment, so this \
                 change was not applied. Nothing was lost: please try again."
                    .into(),
            ),
            ShopError::SessionEnded => (
                "Your session ended",
                "You were logged out (in another tab?) while this request was on its way. \
                 Nothing was changed."
                    .into(),
            ),
            ShopError::Store(StoreError::OutcomeUnknown(_)) => (
                "Please check before trying again",
                "The shop lost touch with one of its services while saving this change, and could \
                 not learn whether it was saved. Please reload the page to see, before trying \
                 again."
                    .into(),
            ),
            ShopError::Store(StoreError::OtherVersion(_)) => (
                "The shop is being updated",
                "Part of your session was saved by a newer version of the shop, which this \
                 server cannot read yet. Nothing was changed: please try again in a moment."
                    .into(),
            ),
            ShopError::TooManyRequests(limit, seconds) => {
                ("Please wait a little", limit_text(*limit, *seconds))
            }
            ShopError::Csrf => (
                "This form has expired",
                "The form was missing its security token, or it came from another page. \
                 Nothing was changed. Please go back, reload the page and try again."
                    .into(),
            ),
            other => status_text(other.status_code()),
        }
    }
}

/// The page text for a status that carries no message of its own.
/// What a shopper refused by a limit reads: what to do, never which counter (that is the log's).
fn limit_text(limit: Limit, seconds: i64) -> String {
    let wait = span(seconds);
    match limit {
        Limit::NewSessions => format!(
            "Very many new visits have come from your network in the last few \
             minutes, so this one was not started. Nothing was changed. If you have an account, \
             log in and carry on; otherwise please try again in {wait}.",
        ),
        Limit::Registrations => format!(
            "Too many accounts have been asked for from your network in the last few minutes. \
             Nothing was changed: please try again in {wait}."
        ),
        _ => format!("Too many attempts. Nothing was changed: please try again in {wait}."),
    }
}

/// A span of time in words: "12 hours", "90 minutes", "1 second".
pub fn span(seconds: i64) -> String {
    let plural = |n: i64, unit: &str| match n {
        1 => format!("1 {unit}"),
        n => format!("{n} {unit}s"),
    };
    match seconds {
        s if s >= 3600 && s % 3600 == 0 => plural(s / 3600, "hour"),
        s if s >= 60 && s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}

pub fn status_text(status: StatusCode) -> (&'static str, String) {
    match status.as_u16() {
        400 => ("That did not work", "The request could not be understood. Nothing was changed.".into()),
        403 => ("Not allowed", "You are not allowed to do that. Nothing was changed.".into()),
        404 => ("Page not found", "We could not find that page. It may have moved, or the link is wrong.".into()),
        405 => ("Not allowed", "That page does not accept this kind of request. Nothing was changed.".into()),
        413 => ("Too large", "That request was larger than the shop accepts. Nothing was changed.".into()),
        415 => ("Wrong format", "That request was not a form this shop accepts. Nothing was changed.".into()),
        503 => (
            "Back in a moment",
            "The shop cannot reach one of its services just now. Nothing is lost: please try again in a few seconds."
                .into(),
        ),
        _ if status.is_client_error() => ("That did not work", "The request was refused. Nothing was changed.".into()),
        _ => (
            "Something went wrong",
            "Something went wrong on our side. It has been logged; please try again.".into(),
        ),
    }
}

impl ResponseError for ShopError {
    fn status_code(&self) -> StatusCode {
        match self {
            ShopError::BadInput(_) => StatusCode::BAD_REQUEST,
            ShopError::Csrf => StatusCode::FORBIDDEN,
            ShopError::LoginRequired(_) => StatusCode::SEE_OTHER,
            ShopError::Conflict | ShopError::SessionEnded => StatusCode::CONFLICT,
            ShopError::NotFound => StatusCode::NOT_FOUND,
            ShopError::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            ShopError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ShopError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ShopError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ShopError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            // Refused whole, nothing changed: the change would have made the session larger
            // than a store takes.
            ShopError::Store(StoreError::TooLarge(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            ShopError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            ShopError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// An empty response; `middleware::finish_response` renders the body where the badge is known.
    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            _ if self.status_code() == StatusCode::SERVICE_UNAVAILABLE => {
                response.insert_header(("Retry-After", RETRY_AFTER_SECONDS));
            }
            ShopError::LoginRequired(reason) => {
                response.insert_header(("Location", reason.location()));
            }
            ShopError::TooManyRequests(_, seconds) => {
                response.insert_header(("Retry-After", *seconds));
            }
            _ => {}
        }
        response.finish()
    }
}

/// Database errors that mean "the server is not there" become 503s; the rest are bugs.
impl From<sqlx::Error> for ShopError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                ShopError::Unavailable(err.into())
            }
            other => ShopError::Unexpected(other.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ShopError, SignInReason};
    use crate::session::StoreError;

    #[test]
    fn a_sign_in_reason_round_trips_through_its_name_and_nothing_else_parses() {
        for reason in SignInReason::ALL {
            assert_eq!(SignInReason::parse(reason.name()), Some(reason));
            assert!(reason.location().starts_with("/login?reason="));
        }
        assert_eq!(SignInReason::parse(""), None);
        assert_eq!(SignInReason::parse("<script>"), None);
        assert_eq!(SignInReason::parse("Orders"), None);
    }

    #[test]
    fn a_change_that_may_have_been_kept_is_not_called_lost() {
        let lost_reply = StoreError::OutcomeUnknown(anyhow::anyhow!("timed out"));
        let (title, text) = ShopError::from(lost_reply).page_text();
        assert_eq!(title, "Please check before trying again");
        assert!(
            text.contains("could not learn whether it was saved"),
            "{text}"
        );

        for refused in [
            ShopError::Unavailable(anyhow::anyhow!("refused")),
            ShopError::from(StoreError::Unavailable(anyhow::anyhow!("refused"))),
            ShopError::from(StoreError::NotReplicated { wanted: 1 }),
        ] {
            let (title, text) = refused.page_text();
            assert_eq!(title, "Back in a moment");
            assert!(text.contains("Nothing is lost"), "{text}");
        }
    }
}
