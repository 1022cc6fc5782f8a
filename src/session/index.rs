//! Which sessions a signed-in user has, so they can see them and end any of them, from any
//! replica, on every store.
//!
//! One small record per user (`user-sessions-<id>`) in the session store itself, beside the
//! sessions, changed only by compare-and-set, so concurrent logins and endings never lose each
//! other's change. A login adds its new session to the record (in `save`, where its key is
//! made); a logout only deletes the session, and entries whose session has gone (logout, idle
//! expiry, ended elsewhere) are dropped the next time the list is read. Entries older than the
//! absolute sign-in lifetime are dropped on every login, and the record itself expires with
//! that lifetime, so it stays small without a reaper of its own. A user who signs in more than
//! `MAX_ENTRIES` times at once has their oldest sessions ended, never left live and unlisted.
//!
//! What it costs: a login reads and compare-and-sets the record (two round trips more); the
//! sessions page reads the record and each listed session (one round trip per session, plus a
//! compare-and-set when it drops ended ones). Page views and cart changes cost nothing more.

use actix_web::cookie::time::Duration;
use serde::{Deserialize, Serialize};

use super::values::UnknownFields;
use super::{SignedInUser, State, Store, StoreError, StoreResult, now, user_in};
use crate::domain::UserId;

/// Entries kept per user: the newest sign-ins win, and the session of an entry dropped to make
/// room is ended.
const MAX_ENTRIES: usize = 50;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    /// What the sessions page names the session by; the key itself never leaves the server.
    id: String,
    key: String,
    signed_in_at: i64,
    #[serde(flatten)]
    unknown: UnknownFields,
}

/// What asking to end one of a user's sessions came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It was live, and is deleted.
    Ended,
    /// It is the asking request's own session: the caller logs out.
    Current,
    /// The user has no such live session (it ended already, or never was).
    NoSuchSession,
}

/// A live session of a user, as the sessions page shows it.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub id: String,
    pub signed_in_at: i64,
    /// When the session was last used: exact on Redis, Memcached and memory, whose every read
    /// slides the expiry; on the SQL stores up to half the idle TTL early, as they slide lazily.
    pub last_seen_at: i64,
    pub agent: String,
    /// The session of the request that asked.
    pub current: bool,
}

fn record_name(user: UserId) -> String {
    format!("user-sessions-{user}")
}

/// The entries of a record; a record another version wrote in a shape this one cannot read is
/// refused rather than read as empty, so that no login of this version writes over it.
fn entries(raw: Option<&[u8]>) -> StoreResult<Vec<Entry>> {
    match raw {
        None => Ok(Vec::new()),
        Some(raw) => {
            serde_json::from_slice(raw).map_err(|_| StoreError::OtherVersion("sessions index"))
        }
    }
}

fn encoded(entries: &[Entry]) -> String {
    serde_json::to_string(entries).expect("entries encode")
}

fn public_id() -> String {
    let mut bytes = [0_u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    hex::encode(bytes)
}

impl Store {
    fn index_ttl(&self) -> Duration {
        Duration::seconds(self.max_login_seconds)
    }

    /// Adds a just-saved signed-in session to its user's record.
    pub(super) async fn index_session(&self, user: &SignedInUser, key: &str) -> StoreResult<()> {
        let oldest = now() - self.max_login_seconds;
        let entry = Entry {
            id: public_id(),
            key: key.to_owned(),
            signed_in_at: user.signed_in_at,
            unknown: UnknownFields::new(),
        };
        let evicted = self
            .update_record(&record_name(user.id), &self.index_ttl(), |raw| {
                let mut list = entries(raw)?;
                list.retain(|e| e.signed_in_at >= oldest && e.key != entry.key);
                list.push(entry.clone());
                let excess = list.len().saturating_sub(MAX_ENTRIES);
                let evicted: Vec<Entry> = list.drain(..excess).collect();
                Ok((encoded(&list), evicted))
            })
            .await?;
        // A session the record no longer names could not be ended from the sessions page or by
        // "log out everywhere else": it is ended now rather than left live and unlisted.
        for dropped in evicted {
            self.remove_key(&dropped.key).await?;
        }
        Ok(())
    }

    /// The user's live sessions, newest sign-in first, `current_key`'s marked. Entries whose
    /// session has ended are dropped from the record on the way.
    pub async fn sessions_of(
        &self,
        user: UserId,
        current_key: Option<&str>,
    ) -> StoreResult<Vec<LiveSession>> {
        let name = record_name(user);
        let list = entries(self.read_record(&name).await?.as_deref())?;
        let now = now();
        let idle = self.ttl.whole_seconds();
        let mut live = Vec::new();
        let mut ended = Vec::new();
        for entry in list {
            let signed_in = self.read_raw(&entry.key).await?.and_then(|(state, left)| {
                let state: State = serde_json::from_str(&state).ok()?;
                let signed_in = user_in(&state)?;
                let alive = left > 0
                    && signed_in.id == user
                    && now - signed_in.signed_in_at <= self.max_login_seconds;
                alive.then_some((signed_in, left))
            });
            match signed_in {
                Some((signed_in, left)) => live.push(LiveSession {
                    current: current_key == Some(entry.key.as_str()),
                    id: entry.id,
                    signed_in_at: signed_in.signed_in_at,
                    last_seen_at: (now - (idle - left).max(0)).max(signed_in.signed_in_at),
                    agent: signed_in.agent,
                }),
                None => ended.push(entry.id),
            }
        }
        if !ended.is_empty() {
            self.drop_entries(&name, |e| ended.contains(&e.id)).await?;
        }
        live.sort_by_key(|s| std::cmp::Reverse(s.signed_in_at));
        Ok(live)
    }

    /// Ends the user's session named `id` (deletes it from the store, so its next request is a
    /// guest's, on any replica), unless it is `current_key`'s, which the caller ends as a logout.
    /// Reads the record and that one session, not the whole list.
    pub async fn end_session(
        &self,
        user: UserId,
        id: &str,
        current_key: Option<&str>,
    ) -> StoreResult<Ending> {
        let name = record_name(user);
        let list = entries(self.read_record(&name).await?.as_deref())?;
        let Some(entry) = list.into_iter().find(|e| e.id == id) else {
            return Ok(Ending::NoSuchSession);
        };
        if current_key == Some(entry.key.as_str()) {
            return Ok(Ending::Current);
        }
        let live = self
            .read_raw(&entry.key)
            .await?
            .is_some_and(|(_, left)| left > 0);
        if live {
            self.remove_key(&entry.key).await?;
        }
        self.drop_entries(&name, |e| e.id == entry.id).await?;
        Ok(if live {
            Ending::Ended
        } else {
            Ending::NoSuchSession
        })
    }

    /// Ends every session of the user but `keep_key`'s: "log out everywhere else". Returns how
    /// many were ended (sessions that had already ended count too).
    pub async fn end_other_sessions(&self, user: UserId, keep_key: &str) -> StoreResult<usize> {
        let name = record_name(user);
        let others: Vec<Entry> = entries(self.read_record(&name).await?.as_deref())?
            .into_iter()
            .filter(|e| e.key != keep_key)
            .collect();
        for entry in &others {
            self.remove_key(&entry.key).await?;
        }
        self.drop_entries(&name, |e| others.iter().any(|o| o.id == e.id))
            .await?;
        Ok(others.len())
    }

    async fn drop_entries(&self, name: &str, gone: impl Fn(&Entry) -> bool) -> StoreResult<()> {
        self.update_record(name, &self.index_ttl(), |raw| {
            let mut list = entries(raw)?;
            list.retain(|e| !gone(e));
            Ok((encoded(&list), ()))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_in_another_shape_is_refused_not_read_as_empty() {
        assert!(entries(None).unwrap().is_empty());
        assert!(matches!(
            entries(Some(br#"{"v":2,"entries":[]}"#)),
            Err(StoreError::OtherVersion(_))
        ));
        let newer = br#"[{"id":"a","key":"k","signed_in_at":1,"device":"phone"}]"#;
        let released = include_bytes!("../../tests/fixtures/sessions/0.1.0.index.json");
        assert_eq!(entries(Some(released)).unwrap().len(), 1, "0.1.0's record");
        let list = entries(Some(newer)).unwrap();
        assert_eq!(list.len(), 1);
        assert!(encoded(&list).contains(r#""device":"phone""#));
    }
}
