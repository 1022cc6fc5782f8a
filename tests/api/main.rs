//! The shop over HTTP, against real stores. One binary, so the crate is linked once.

mod account;
mod anonymous;
mod auth;
mod browser;
mod cart;
mod catalog;
mod checkout;
mod conformance;
mod csrf;
mod direct;
mod exactly_once;
mod helpers;
mod hostile;
mod http;
mod image;
mod leftovers;
mod lost_updates;
mod operator;
mod outages;
mod processes;
mod proof;
#[cfg(feature = "redis")]
mod redis_cluster;
mod sessions;
mod tls;
