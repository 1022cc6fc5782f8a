//! What both test binaries share, split by job: an instance of the shop and its shopper
//! (`app`), what a store holds, looked at in the store itself (`stores`), and processes a test
//! owns: a store server, replicas behind nginx (`processes`).

// Each binary uses its part of the helpers; the rest is unused by it, not by the other.
#![allow(dead_code, unused_imports)]

pub mod app;
pub mod processes;
pub mod stores;

pub use app::*;
pub use processes::*;
pub use stores::*;
