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
    pub agent: String,
    pub current: bool,
}

impl SessionRow {
    fn of(session: LiveSession, now: i64) -> Self {
        Self {
            signed_in: utc_minute(session.signed_in_at),
            last_seen: ago(now - session.last_seen_at),
            agent: session.agent,
            current: session.current,
            id: session.id,
        }
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
    use super::ago;

    #[test]
    fn time_ago_reads_as_words() {
        assert_eq!(ago(5), "just now");
        assert_eq!(ago(90), "a minute ago");
        assert_eq!(ago(600), "10 minutes ago");
        assert_eq!(ago(3 * 3600 + 5), "3 hours ago");
    }
}
