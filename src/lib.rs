//! A server-rendered web shop whose processes share nothing: the login and the cart live in a
//! session store with time-expiration, so any instance can serve any request and an instance can
//! die without logging anyone out. `main.rs` only reads the configuration and runs this library,
//! which tests start on port 0.

pub mod assets;
pub mod client;
pub mod config;
pub mod db;
pub mod domain;
pub mod env;
pub mod error;
pub mod healthcheck;
pub mod limits;
pub mod metrics;
pub mod middleware;
pub mod per_thread;
pub mod routes;
pub mod session;
pub mod shop_session;
pub mod startup;
pub mod state;
pub mod timing;

pub use config::Config;
pub use startup::Application;
