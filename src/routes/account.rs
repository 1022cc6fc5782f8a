//! A signed-in shopper's own sessions: where they are signed in, and ending any of them (or all
//! but this one) from any replica. The index behind it lives in the session store
//! (`session/index.rs`).

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::{CheckedForm, Layout, NoFields, require_user, see_other};
use crate::domain::utc_minute;
use crate::error::{ShopError, SignInReason};
use crate::session::{Ending, FlashKind, LiveSession, now};
use crate::shop_session::ShopSession;
use crate::state::AppState;

/// One row of the sessions page.
pub struct SessionRow {
    pub id: String,
    pub signed_in: String,
    pub last_seen: String,
    /// The browser as a person names it: "Chrome on Linux".
    pub device: String,
    /// The browser's own `User-Agent` text, shown on hover and to assistive technology.
    pub agent: String,
    pub current: bool,
}

impl SessionRow {
    fn of(session: LiveSession, now: i64) -> Self {
        Self {
            signed_in: utc_minute(session.signed_in_at),
            last_seen: ago(now - session.last_seen_at),
            device: device_name(&session.agent),
            agent: session.agent,
            current: session.current,
            id: session.id,
        }
    }
}

/// A browser's `User-Agent` as a person names it: "Chrome on Linux", "Safari on iPhone"; what
/// the parser does not know is called by the part it knows, or "An unknown browser".
fn device_name(agent: &str) -> String {
    let known = |text: &str| !text.is_empty() && text != woothee::woothee::VALUE_UNKNOWN;
    let parsed = woothee::parser::Parser::new().parse(agent);
    let (browser, os) = parsed.map_or(("", ""), |result| (result.name, result.os));
    match (known(browser), known(os)) {
        (true, true) => format!("{browser} on {os}"),
        (true, false) => browser.to_owned(),
        (false, true) => format!("A browser on {os}"),
        (false, false) => "An unknown browser".to_owned(),
    }
}

/// How long ago, in the words a person uses.
fn ago(seconds: i64) -> String {
    match seconds {
        s if s < 60 => "just now".to_owned(),
        s if s < 120 => "a minute ago".to_owned(),
        s if s < 3600 => format!("{} minutes ago", s / 60),
        s if s < 7200 => "an hour ago".to_owned(),
        s => format!("{} hours ago", s / 3600),
    }
}

#[derive(Template)]
#[template(path = "sessions.html")]
pub struct SessionsPage {
    layout: Layout,
    sessions: Vec<SessionRow>,
}

super::page!(SessionsPage);

pub async fn sessions(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: ShopSession,
    layout: Layout,
) -> Result<SessionsPage, ShopError> {
    let user = require_user(&session, SignInReason::Sessions)?;
    let current = state.session_key(&req);
    let now = now();
    let sessions = state
        .store
        .sessions_of(user.id, current.as_deref())
        .await?
        .into_iter()
        .map(|s| SessionRow::of(s, now))
        .collect();
    Ok(SessionsPage { layout, sessions })
}

/// Ends one session. Ending the current one is a logout.
pub async fn end(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: ShopSession,
    path: web::Path<String>,
    _: CheckedForm<NoFields>,
) -> Result<HttpResponse, ShopError> {
    let user = require_user(&session, SignInReason::Sessions)?;
    let current = state.session_key(&req);
    let ending = state
        .store
        .end_session(user.id, &path, current.as_deref())
        .await?;
    match ending {
        Ending::Current => {
            log::info!("User {} ended their current session.", user.id);
            session.log_out();
            Ok(see_other("/"))
        }
        Ending::Ended => {
            log::info!("User {} ended one of their other sessions.", user.id);
            session.flash(FlashKind::Info, "That session was signed out.")?;
            Ok(see_other("/account/sessions"))
        }
        Ending::NoSuchSession => {
            session.flash(
                FlashKind::Info,
                "That session had already ended. Nothing was changed.",
            )?;
            Ok(see_other("/account/sessions"))
        }
    }
}

/// Logs out everywhere else: every session of the user but this one.
pub async fn end_others(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: ShopSession,
    _: CheckedForm<NoFields>,
) -> Result<HttpResponse, ShopError> {
    let user = require_user(&session, SignInReason::Sessions)?;
    let Some(current) = state.session_key(&req) else {
        return Err(ShopError::LoginRequired(SignInReason::Sessions));
    };
    let ended = state.store.end_other_sessions(user.id, &current).await?;
    log::info!(
        "User {} logged out everywhere else ({ended} sessions).",
        user.id
    );
    session.flash(
        FlashKind::Info,
        match ended {
            0 => "You were not signed in anywhere else.".to_owned(),
            1 => "You are now signed out everywhere else (1 other session).".to_owned(),
            n => format!("You are now signed out everywhere else ({n} other sessions)."),
        },
    )?;
    Ok(see_other("/account/sessions"))
}

#[cfg(test)]
mod tests {
    use super::{ago, device_name};

    #[test]
    fn time_ago_reads_as_words() {
        assert_eq!(ago(5), "just now");
        assert_eq!(ago(90), "a minute ago");
        assert_eq!(ago(600), "10 minutes ago");
        assert_eq!(ago(3 * 3600 + 5), "3 hours ago");
    }

    #[test]
    fn browsers_are_named_as_people_name_them() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                 Chrome/156.0.0.0 Safari/537.36",
                "Chrome on Linux",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
                 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari on iPhone",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 \
                 Firefox/128.0",
                "Firefox on Windows 10",
            ),
            ("", "An unknown browser"),
            ("reqwest/0.12", "An unknown browser"),
        ];
        for (agent, name) in cases {
            assert_eq!(device_name(agent), name, "{agent}");
        }
    }
}
