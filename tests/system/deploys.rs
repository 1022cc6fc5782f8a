//! A deploy and its rollback with real binaries, on each store (`shop_lab::deploy`): three
//! replicas of the previous release (`.ci/previous-release`, built as
//! `target/debug/shop-previous` by `.ci/build-previous.sh`) behind the round-robin nginx are
//! replaced one by one by this tree's, each drained on SIGTERM, then replaced back, while 20
//! shoppers keep shopping. No shopper is signed out, no cart line is lost or changed, and nginx
//! answers nothing outside 2xx and 3xx; the counts are printed.

use std::path::PathBuf;

use shop::session::Backend;
use shop_lab::NginxConfs;
use shop_lab::deploy::{self, Deploy, MAX_SHOPPERS};

use crate::helpers::test_settings_for;

async fn deploy_and_roll_back(backend: Backend) {
    let (mut env, _dir) = test_settings_for(backend.name()).await;
    for variable in ["PORT", "HOST", "INSTANCE_NAME", "WORKERS"] {
        env.remove(variable);
    }
    let deploy = Deploy {
        previous: PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/debug/shop-previous"
        )),
        current: PathBuf::from(env!("CARGO_BIN_EXE_shop")),
        args: Vec::new(),
        backend,
        env,
        nginx: NginxConfs::BuiltIn,
        shoppers: MAX_SHOPPERS,
    };
    let mut say = |line: String| println!("{line}");
    let outcome = deploy::run(&deploy, &mut say)
        .await
        .expect("the deploy and the rollback run");
    println!(
        "{}: deployed in {:.1?}, rolled back by {:.1?}; {}",
        backend.name(),
        outcome.deployed,
        outcome.rolled_back,
        outcome.summary()
    );
    assert!(
        outcome.lost_nothing(),
        "{}: {}; {:?}",
        backend.name(),
        outcome.summary(),
        outcome.problems
    );
    assert!(
        outcome.adds >= u64::from(outcome.shoppers) && outcome.checkouts > 0,
        "the shoppers shopped: {}",
        outcome.summary()
    );
}

#[tokio::test]
async fn a_deploy_and_its_rollback_lose_nothing_on_sqlite() {
    deploy_and_roll_back(Backend::Sqlite).await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn a_deploy_and_its_rollback_lose_nothing_on_redis() {
    deploy_and_roll_back(Backend::Redis).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn a_deploy_and_its_rollback_lose_nothing_on_postgres() {
    deploy_and_roll_back(Backend::Postgres).await;
}

#[cfg(feature = "memcached")]
#[tokio::test]
async fn a_deploy_and_its_rollback_lose_nothing_on_memcached() {
    deploy_and_roll_back(Backend::Memcached).await;
}
