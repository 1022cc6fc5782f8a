//! The live proof: three real shop processes behind a real nginx (deploy/nginx/round-robin.conf)
//! on loopback. A shopper's requests land on all three; the replica that served the login is
//! killed with SIGKILL; every shopper is still logged in with their cart and can check out; a
//! rolling restart under a browsing client fails no request. On the `memory` store the same
//! journey loses the login and cart: that loss is the demonstration, and the test asserts it.

use std::path::PathBuf;

use shop::session::Backend;
use shop_lab::NginxConfs;
use shop_lab::scenario::{self, LabConfig, Mode, Outcome};

use crate::helpers::test_settings_for;

async fn journey(backend: &str, mode: Mode) -> Outcome {
    let (mut env, dir) = test_settings_for(backend).await;
    for variable in ["PORT", "HOST", "INSTANCE_NAME"] {
        env.remove(variable);
    }
    let lab = LabConfig {
        program: PathBuf::from(env!("CARGO_BIN_EXE_shop")),
        args: Vec::new(),
        env,
        nginx: NginxConfs::BuiltIn,
        replicas: 3,
        shoppers: 4,
        rolling_restart: matches!(mode, Mode::External(_)),
    };
    let mut say = |line: String| println!("{line}");
    let outcome = scenario::run(&lab, mode, &mut say)
        .await
        .expect("the scenario runs");
    drop(dir);
    outcome
}

async fn nothing_is_lost_when_a_replica_dies(backend: &str) {
    let store = Backend::parse(backend).unwrap();
    let o = journey(backend, Mode::External(store)).await;
    assert_eq!(
        o.replicas_seen.len(),
        3,
        "shopper 1's requests landed on every replica: {:?}",
        o.replicas_seen
    );
    assert_eq!(o.carts_filled, o.shoppers, "every add was acknowledged");
    assert_eq!(
        o.kept_login, o.shoppers,
        "everyone is still logged in after {} died",
        o.killed
    );
    assert_eq!(o.kept_cart, o.shoppers, "every cart is intact");
    assert_eq!(o.checked_out, o.shoppers, "everyone could check out");
    let (requests, failures) = o.rolling_restart.expect("a rolling restart ran");
    assert!(
        requests > 20,
        "the client kept browsing ({requests} requests)"
    );
    assert_eq!(
        failures, 0,
        "{failures} of {requests} requests failed during the rolling restart"
    );
}

#[tokio::test]
async fn sqlite_store_loses_nothing_when_a_replica_dies() {
    nothing_is_lost_when_a_replica_dies("sqlite").await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_store_loses_nothing_when_a_replica_dies() {
    nothing_is_lost_when_a_replica_dies("redis").await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_store_loses_nothing_when_a_replica_dies() {
    nothing_is_lost_when_a_replica_dies("postgres").await;
}

#[cfg(feature = "memcached")]
#[tokio::test]
async fn memcached_store_loses_nothing_when_a_replica_dies() {
    nothing_is_lost_when_a_replica_dies("memcached").await;
}

#[tokio::test]
async fn process_memory_behind_round_robin_loses_logins_and_carts() {
    let o = journey("memory", Mode::Memory).await;
    assert_eq!(
        o.kept_login, 0,
        "process memory cannot keep a login across replicas"
    );
    assert_eq!(o.kept_cart, 0);
    assert_eq!(o.checked_out, 0);
}

#[tokio::test]
async fn sticky_sessions_lose_the_dead_replicas_shoppers() {
    let o = journey("memory", Mode::StickyMemory).await;
    assert_eq!(
        o.carts_filled, o.shoppers,
        "while nothing fails, stickiness seems to work"
    );
    assert!(
        o.kept_cart < o.shoppers,
        "the shoppers pinned to {} lost everything",
        o.killed
    );
}

/// The lab's `--store redis-cluster`: the same journey, but a Redis master is killed instead of
/// a shop replica; after its replica takes over every shopper still has their login and cart.
#[cfg(feature = "redis")]
#[tokio::test]
async fn nothing_is_lost_when_a_redis_cluster_master_dies() {
    let o = journey("redis", Mode::RedisCluster).await;
    assert!(o.killed.starts_with("redis master"), "{}", o.killed);
    assert_eq!(o.carts_filled, o.shoppers, "every add was acknowledged");
    assert_eq!(o.kept_login, o.shoppers, "everyone is still logged in");
    assert_eq!(o.kept_cart, o.shoppers, "every cart is intact");
    assert_eq!(o.checked_out, o.shoppers, "everyone could check out");
}
