//! The shop in this process, over HTTP: its flows on the store under test
//! (`TEST_SESSION_BACKEND`, SQLite by default, so a plain `cargo test` needs no server), and
//! the conformance suite and direct reads of every compiled store. One binary, so the crate is
//! linked once. The tests that start processes are the other binary, `tests/system`.

#[path = "../support/mod.rs"]
mod helpers;

mod account;
mod anonymous;
mod auth;
mod cart;
mod catalog;
mod checkout;
mod conformance;
mod csrf;
mod deploys;
mod docs;
// Reads each network store directly, so it has nothing to read without one.
#[cfg(any(feature = "redis", feature = "postgres", feature = "memcached"))]
mod direct;
mod exactly_once;
mod hostile;
mod http;
mod layers;
mod limits;
mod operator;
mod sessions;
mod shopper;
