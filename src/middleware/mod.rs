//! Every middleware of the shop, outermost first as `startup` wraps them:
//!
//! - `access_log::access_log`: the request's id, and its line in the access log;
//! - `errors::finish_response`: error pages, the 503 of a failed store, headers, metrics;
//! - `headers::cache_static_assets`: a public cache life for static assets that were served;
//! - (actix-session's `SessionMiddleware`, configured in `startup`);
//! - `new_sessions::bound_new_sessions`: what a new session may cost the store;
//! - `session_cookie::refresh_session_cookie`: the cookie's fresh `Max-Age`;
//! - `csrf::issue_cookie`: the guest nonce cookie;
//! - `lifetime::end_expired_sign_in`: a sign-in past its absolute lifetime ends;
//! - `errors::keep_shoppers_header`: an error page's header, taken while the session is loaded.

pub mod access_log;
pub mod csrf;
pub mod errors;
pub mod headers;
pub mod lifetime;
pub mod new_sessions;
pub mod session_cookie;

pub use access_log::access_log;
pub use csrf::issue_cookie;
pub use errors::{finish_response, keep_shoppers_header};
pub use headers::cache_static_assets;
pub use lifetime::end_expired_sign_in;
pub use new_sessions::bound_new_sessions;
pub use session_cookie::refresh_session_cookie;
