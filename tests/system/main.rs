//! The shop as processes: replicas behind a real nginx, the live proof, a store server killed or
//! frozen, a Redis Cluster, TLS, headless Chromium, the image's layout. They need programs and
//! servers a plain `cargo test` does not assume, so they are built with the `system-tests`
//! feature, which `.ci/test` turns on with every other (`--all-features`), after installing and
//! starting what they need. Nextest runs this binary one test at a time (`.config/nextest.toml`).

#[cfg(not(feature = "system-tests"))]
#[test]
#[ignore = "not built by a plain `cargo test`: the system tests (processes, nginx, Chromium, \
            store servers) and the network stores' tests; `bash .ci/test` installs and starts \
            what they need and runs every test"]
fn system_tests() {}

#[cfg(feature = "system-tests")]
#[path = "../support/mod.rs"]
mod helpers;

#[cfg(feature = "system-tests")]
mod browser;
#[cfg(feature = "system-tests")]
mod deploys;
#[cfg(feature = "system-tests")]
mod exactly_once;
#[cfg(feature = "system-tests")]
mod image;
#[cfg(feature = "system-tests")]
mod leftovers;
#[cfg(feature = "system-tests")]
mod lost_updates;
#[cfg(feature = "system-tests")]
mod outages;
#[cfg(feature = "system-tests")]
mod processes;
#[cfg(feature = "system-tests")]
mod proof;
#[cfg(all(feature = "system-tests", feature = "redis"))]
mod redis_cluster;
#[cfg(feature = "system-tests")]
mod tls;
