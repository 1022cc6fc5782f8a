//! What one client may cost the shop: failed sign-ins, new sessions, registrations. Every limit
//! is a counter in the session store (so every replica sees it), under a name keyed with
//! `SESSION_SECRET` (neither an email nor an address is stored, and nobody without the secret can
//! tell whose a counter is), counted in a fixed window that starts with the first count. A
//! refused attempt is not counted and never extends a window: an address that keeps trying is
//! free again when the window it started ends.
//!
//! - **Failed sign-ins**, per account from one client (an IPv4 address, an IPv6 /64), from each
//!   wider IPv6 network (`IPV6_NETWORK_PREFIXES`, /56 and /48 by default, each allowed twice the
//!   one before), and per client over all accounts. A browser that has signed in to an account
//!   before carries a signed device cookie (OWASP's "device cookie" design) and is counted by
//!   that cookie instead of its address, for that account: nobody behind the same NAT can lock
//!   its owner out.
//! - **New guest sessions** per client (`NEW_SESSIONS_PER_CLIENT`): a flood that keeps no
//!   session cookie cannot fill the store and push shoppers out of it. Sign-ins and
//!   registrations are bounded by their own limits instead, so a flood never stops an owner
//!   from signing in.
//! - **Registrations** per client (`REGISTRATIONS_PER_CLIENT`), counted before the email is
//!   looked up, so the answers cannot be used to list accounts.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::cookie::time::Duration;
use actix_web::cookie::{Cookie, SameSite};
use ipnet::IpNet;

pub use crate::config::Limits;
use crate::domain::Email;
pub use crate::error::Limit;
use crate::error::ShopError;
use crate::session::csrf::{Signer, new_nonce};
use crate::state::AppState;

/// Failed sign-ins allowed for one account from one client (or one known browser) within the
/// window; each wider IPv6 network is allowed twice as many as the one inside it.
pub const MAX_FAILED_LOGINS: i64 = 5;

/// Failed sign-ins allowed from one client over all accounts within the window (credential
/// stuffing).
pub const MAX_FAILED_LOGINS_PER_CLIENT: i64 = 20;

/// How long a browser stays known to an account after it signed in.
const DEVICE_COOKIE_DAYS: i64 = 365;

/// One counter an attempt is counted in.
struct Counter {
    name: String,
    limit: i64,
    which: Limit,
}

fn counter_name(state: &AppState, purpose: &str, value: &str) -> String {
    let hash = state.sessions.signer.hash(purpose, value.as_bytes());
    format!("{}-{}", purpose.replace(' ', "-"), &hash[..32])
}

/// Counts an attempt in every counter, or in none: when one refuses, the counts already taken
/// are given back.
async fn count_all(state: &AppState, counters: &[Counter]) -> Result<Result<(), Limit>, ShopError> {
    let (store, window) = (&state.store, &state.limits.window);
    for (i, counter) in counters.iter().enumerate() {
        if !store
            .count_within(&counter.name, counter.limit, window)
            .await?
        {
            for counted in &counters[..i] {
                store.take_back(&counted.name, window).await?;
            }
            return Ok(Err(counter.which));
        }
    }
    Ok(Ok(()))
}

/// The networks a client is counted in: itself, then each wider IPv6 network.
fn networks(state: &AppState, address: Option<IpAddr>) -> Vec<(u8, String)> {
    let Some(address) = address else {
        return vec![(0, "unknown".to_owned())];
    };
    state
        .clients
        .networks(address)
        .into_iter()
        .map(|net: IpNet| (net.prefix_len(), net.to_string()))
        .collect()
}

/// The counters one sign-in attempt is counted in.
pub struct LoginLimits {
    counters: Vec<Counter>,
    /// The counters a right password clears (the account's), and the client's, which it
    /// gives its count back to: none when the attempt is counted by a known browser.
    account: Vec<String>,
    client: Option<String>,
}

impl LoginLimits {
    pub fn of(req: &HttpRequest, state: &AppState, email: &Email) -> Self {
        if let Some(device) = known_device(req, state, email) {
            let name = counter_name(state, "login device", &format!("{device}\n{email}"));
            return Self {
                counters: vec![Counter {
                    name: name.clone(),
                    limit: MAX_FAILED_LOGINS,
                    which: Limit::AccountFromDevice,
                }],
                account: vec![name],
                client: None,
            };
        }
        let networks = networks(state, state.clients.address(req));
        // The client's own counter first, then the account's from the widest network in: a
        // counter that refuses is one that already holds counts, so a refused attempt makes
        // no new counter.
        let client = counter_name(state, "login client", &networks[0].1);
        let mut counters = vec![Counter {
            name: client.clone(),
            limit: MAX_FAILED_LOGINS_PER_CLIENT,
            which: Limit::Client,
        }];
        let mut account = Vec::new();
        for (level, (prefix, net)) in networks.iter().enumerate().rev() {
            let name = counter_name(state, "login account", &format!("{email}\n{net}"));
            account.push(name.clone());
            counters.push(Counter {
                name,
                limit: MAX_FAILED_LOGINS << level,
                which: Limit::AccountFrom(*prefix),
            });
        }
        Self {
            counters,
            account,
            client: Some(client),
        }
    }

    /// Whether the attempt comes from a browser that signed in to this account before.
    pub fn from_known_device(&self) -> bool {
        self.client.is_none()
    }

    /// Counts this attempt before any password is checked, atomically in the store: of N
    /// concurrent guesses, at most the limit get through. A refused attempt is not counted.
    pub async fn reserve(&self, state: &AppState) -> Result<Result<(), Limit>, ShopError> {
        count_all(state, &self.counters).await
    }

    /// A right password: the account's failures are forgotten, and this attempt no longer
    /// counts against the client.
    pub async fn succeeded(&self, state: &AppState) -> Result<(), ShopError> {
        let store = &state.store;
        for name in &self.account {
            store.reset(name).await?;
        }
        if let Some(client) = &self.client {
            store.take_back(client, &state.limits.window).await?;
        }
        Ok(())
    }
}

/// Counts a registration attempt from this request's client.
pub async fn count_registration(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Result<(), Limit>, ShopError> {
    let limit = state.limits.registrations_per_client;
    count_per_client(
        req,
        state,
        "registrations client",
        Limit::Registrations,
        limit,
    )
    .await
}

/// Counts a new guest session from this request's client.
pub async fn count_new_session(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Result<(), Limit>, ShopError> {
    let limit = state.limits.new_sessions_per_client;
    count_per_client(req, state, "sessions client", Limit::NewSessions, limit).await
}

/// Counts one in the client's own counter for `purpose` (by its address, or its IPv6 /64).
async fn count_per_client(
    req: &HttpRequest,
    state: &AppState,
    purpose: &str,
    which: Limit,
    limit: i64,
) -> Result<Result<(), Limit>, ShopError> {
    let client = &networks(state, state.clients.address(req))[0].1;
    let counter = Counter {
        name: counter_name(state, purpose, client),
        limit,
        which,
    };
    count_all(state, std::slice::from_ref(&counter)).await
}

/// The device cookie's name for the `Secure` setting.
pub fn device_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-shop_device"
    } else {
        "shop_device"
    }
}

fn device_tag(signer: &Signer, nonce: &str, email: &Email) -> String {
    signer.hash("shop device v1", format!("{nonce}\n{email}").as_bytes())[..32].to_owned()
}

/// The nonce of this request's device cookie, if it was issued to this browser for `email`.
fn known_device(req: &HttpRequest, state: &AppState, email: &Email) -> Option<String> {
    let cookie = req.cookie(device_cookie_name(state.sessions.cookie_secure))?;
    let (nonce, tag) = cookie.value().split_once('.')?;
    let expected = device_tag(&state.sessions.signer, nonce, email);
    use subtle::ConstantTimeEq;
    bool::from(expected.as_bytes().ct_eq(tag.as_bytes())).then(|| nonce.to_owned())
}

/// Gives the browser a device cookie for `email` with this response (see [`device_cookie`]).
pub fn remember_device(
    response: &mut actix_web::HttpResponse,
    state: &AppState,
    email: &Email,
) -> Result<(), ShopError> {
    response
        .add_cookie(&device_cookie(state, email))
        .map_err(|err| ShopError::Unexpected(anyhow::anyhow!("could not set a cookie: {err}")))
}

/// The device cookie a browser gets when it signs in to `email`: it names no account, only
/// a nonce and a tag that the shop can check against the email typed at the next sign-in.
fn device_cookie(state: &AppState, email: &Email) -> Cookie<'static> {
    let nonce = new_nonce();
    let tag = device_tag(&state.sessions.signer, &nonce, email);
    Cookie::build(
        device_cookie_name(state.sessions.cookie_secure),
        format!("{nonce}.{tag}"),
    )
    .path("/")
    .http_only(true)
    .secure(state.sessions.cookie_secure)
    .same_site(SameSite::Lax)
    .max_age(Duration::days(DEVICE_COOKIE_DAYS))
    .finish()
}
