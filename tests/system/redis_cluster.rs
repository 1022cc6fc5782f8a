//! Redis Cluster: sessions sharded over three masters with a replica each, three shop replicas
//! behind round-robin nginx, shoppers adding to their carts while one store master is killed.
//! With `REDIS_MIN_REPLICAS_ACK=1` nothing acknowledged is lost; 503s (never 500s, never a
//! wrong cart) only while the cluster fails over; and an add answered 503 is not in the cart
//! unless its page said the shop could not learn whether it was saved.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use shop_lab::RedisCluster;
use shop_lab::shopper::{Shopper, cart_lines, signed_in_as};
use tokio::sync::Mutex;

use crate::helpers::{round_robin_cluster, test_settings_for, unique_email};

const PASSWORD: &str = "cluster-pass-1";
const SHOPPERS: usize = 20;

/// What a 503 says when the change may have been kept (its reply was lost in the failover).
const MAYBE_KEPT: &str = "could not learn whether it was saved";

/// What one shopper saw.
#[derive(Default)]
struct Tally {
    acknowledged: u32,
    /// Adds answered 503 "could not learn whether it was saved": each may be in the cart.
    maybe_kept: u32,
    /// When each 503 came, since the start.
    unavailable: Vec<Duration>,
    /// Anything that is neither success nor 503.
    unexpected: Vec<String>,
}

struct Outcome {
    /// Acknowledged adds missing from their carts.
    lost: i64,
    /// Items in carts beyond what was acknowledged and what may have been kept: adds applied
    /// although the shopper was told they failed, or applied twice.
    unexplained: i64,
    window: Option<(Duration, Duration)>,
    killed_at: Duration,
    promoted_at: Duration,
    /// When the killed node, started again, was a replica in sync of the promoted master.
    replicated_at: Duration,
}

async fn failover(min_replicas_ack: u32) -> Outcome {
    let store_dir = tempfile::tempdir().unwrap();
    let mut redis = RedisCluster::start(store_dir.path())
        .await
        .expect("a Redis Cluster on loopback");
    let (mut settings, _data) = test_settings_for("redis").await;
    settings.insert("REDIS_CLUSTER_NODES".into(), redis.seeds());
    settings.insert(
        "REDIS_MIN_REPLICAS_ACK".into(),
        min_replicas_ack.to_string(),
    );
    let prefix = settings["SESSION_KEY_PREFIX"].clone();
    let (cluster, _work) = round_robin_cluster(settings).await;

    // Shoppers sign in with a first item, each from its own address, until their sessions
    // provably live on every master (20 nearly always do; more only if one master got none).
    let mut shoppers = Vec::new();
    let masters = redis.masters().await.unwrap();
    assert_eq!(masters.len(), 3, "three masters");
    loop {
        let i = shoppers.len();
        let source = std::net::Ipv4Addr::new(127, 3, 0, u8::try_from(i + 1).unwrap());
        let shopper =
            Shopper::new(&cluster.url, &unique_email("cluster"), Some(source.into())).unwrap();
        assert!(shopper.register(PASSWORD).await.unwrap().0, "registered");
        shopper.add(1, 1).await.unwrap();
        shoppers.push(shopper);
        if shoppers.len() < SHOPPERS {
            continue;
        }
        let spread = redis.keys_by_master(&prefix).await.unwrap();
        let sessions_on =
            |keys: &Vec<String>| keys.iter().filter(|k| k.len() == prefix.len() + 64).count();
        println!(
            "sessions per master: {:?}",
            spread
                .iter()
                .map(|(port, keys)| (port, sessions_on(keys)))
                .collect::<Vec<_>>()
        );
        if spread.iter().all(|(_, keys)| sessions_on(keys) > 0) {
            break;
        }
        assert!(
            shoppers.len() < 40,
            "40 sessions and still a master holds none"
        );
    }
    // The master to kill: the one with the most sessions.
    let spread = redis.keys_by_master(&prefix).await.unwrap();
    let (victim, _) = spread
        .iter()
        .max_by_key(|(_, keys)| keys.len())
        .cloned()
        .unwrap();
    let victim_slots = redis
        .topology()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.port == victim)
        .unwrap()
        .slots;

    // Every shopper keeps adding one item and looking at the cart, until told to stop.
    let started = Instant::now();
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut adders = tokio::task::JoinSet::new();
    for (i, shopper) in shoppers.iter().enumerate() {
        let shopper = shopper.clone();
        let stopping = stopping.clone();
        let tally = Arc::new(Mutex::new(Tally {
            acknowledged: 1,
            ..Tally::default()
        }));
        adders.spawn(async move {
            let token = shopper.csrf_token().await.unwrap();
            let email = shopper.email.clone();
            // Products with 30 or more in stock, at most 24 of each: no add is refused for stock
            // or a line's limit, so every answer is a success or a 503.
            let products = ["1", "2", "4", "8", "9"];
            let mut n = i;
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) && n < i + 120 {
                n += 1;
                let product = products[n % products.len()];
                tokio::time::sleep(Duration::from_millis(120)).await;
                let seen = shopper
                    .post_with_token(
                        "/cart/items",
                        &[("product_id", product), ("quantity", "1")],
                        &token,
                    )
                    .await;
                let mut t = tally.lock().await;
                match seen {
                    Ok(seen) if seen.status == StatusCode::SEE_OTHER => t.acknowledged += 1,
                    Ok(seen) if seen.status == StatusCode::SERVICE_UNAVAILABLE => {
                        t.unavailable.push(started.elapsed());
                        if seen.body.contains(MAYBE_KEPT) {
                            t.maybe_kept += 1;
                        }
                    }
                    Ok(seen) => t.unexpected.push(format!("add: {}", seen.status)),
                    Err(err) => t.unexpected.push(format!("add: {err:#}")),
                }
                // The cart page: theirs and whole, or a 503; never another's or an empty one.
                match shopper.get("/cart").await {
                    Ok(seen) if seen.status == StatusCode::OK => {
                        if signed_in_as(&seen.body).as_deref() != Some(email.as_str()) {
                            t.unexpected
                                .push("a cart page not signed in as them".into());
                        }
                        let items: u32 = cart_lines(&seen.body).iter().map(|(_, q)| q).sum();
                        let acknowledged = t.acknowledged;
                        if min_replicas_ack > 0 && items < acknowledged {
                            t.unexpected.push(format!(
                                "a cart page with {items} items after {acknowledged} acknowledged"
                            ));
                        }
                    }
                    Ok(seen) if seen.status == StatusCode::SERVICE_UNAVAILABLE => {
                        t.unavailable.push(started.elapsed());
                    }
                    Ok(seen) => t.unexpected.push(format!("cart: {}", seen.status)),
                    Err(err) => t.unexpected.push(format!("cart: {err:#}")),
                }
            }
            let t = Arc::try_unwrap(tally).ok().unwrap().into_inner();
            (shopper, t)
        });
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.kill(victim);
    let killed_at = started.elapsed();
    // The promotion: a replica serves the dead master's slots and every live node says ok.
    let deadline = Instant::now() + Duration::from_secs(30);
    let promoted = loop {
        if let Some(port) = redis.promoted_for(&victim_slots).await
            && redis.all_slots_served().await
        {
            break port;
        }
        assert!(
            Instant::now() < deadline,
            "no replica was promoted within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let promoted_at = started.elapsed();
    // The dead node is started again, as an orchestrator would: it rejoins as the promoted
    // master's replica. Until then that master has none, and a write that must reach one
    // (`WAIT 1`) cannot be acknowledged.
    redis.restart(victim).await.unwrap();
    redis
        .wait_replicated(Duration::from_secs(30))
        .await
        .expect("the restarted node replicates the promoted master");
    let replicated_at = started.elapsed();
    // Keep shopping for 3 s on the new topology, then stop.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stopping.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut lost, mut unexplained, mut maybe_kept) = (0_i64, 0_i64, 0_u32);
    let mut unavailable = Vec::new();
    let mut unexpected = Vec::new();
    while let Some(done) = adders.join_next().await {
        let (shopper, tally) = done.unwrap();
        let (user, lines, _) = shopper.look().await.expect("the cart after the failover");
        assert_eq!(
            user.as_deref(),
            Some(shopper.email.as_str()),
            "{} is still signed in",
            shopper.email
        );
        let items = i64::from(lines.iter().map(|(_, q)| q).sum::<u32>());
        let acknowledged = i64::from(tally.acknowledged);
        lost += (acknowledged - items).max(0);
        unexplained += (items - acknowledged - i64::from(tally.maybe_kept)).max(0);
        maybe_kept += tally.maybe_kept;
        unavailable.extend(tally.unavailable);
        unexpected.extend(tally.unexpected);
    }
    println!(
        "REDIS_MIN_REPLICAS_ACK={min_replicas_ack}: master {victim} killed at {killed_at:?}, \
         replica {promoted} promoted at {promoted_at:?}, {victim} back as its replica at \
         {replicated_at:?}; {maybe_kept} add(s) answered \"may or may not be saved\""
    );
    assert!(
        unexpected.is_empty(),
        "only successes and 503s during a failover; {} others, the first: {:?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(10)]
    );
    unavailable.sort();
    let window = unavailable
        .first()
        .zip(unavailable.last())
        .map(|(a, b)| (*a, *b));
    Outcome {
        lost,
        unexplained,
        window,
        killed_at,
        promoted_at,
        replicated_at,
    }
}

fn report(outcome: &Outcome, label: &str) {
    match outcome.window {
        Some((first, last)) => println!(
            "{label}: 503s from {:.2} s to {:.2} s after the kill: a window of {:.2} s \
             (promotion seen at {:.2} s, a replica in sync again at {:.2} s); acknowledged adds \
             lost: {}; items no answer explains: {}",
            (first.saturating_sub(outcome.killed_at)).as_secs_f64(),
            (last.saturating_sub(outcome.killed_at)).as_secs_f64(),
            (last - first).as_secs_f64(),
            (outcome.promoted_at - outcome.killed_at).as_secs_f64(),
            (outcome.replicated_at - outcome.killed_at).as_secs_f64(),
            outcome.lost,
            outcome.unexplained
        ),
        None => println!(
            "{label}: no 503 at all; acknowledged adds lost: {}; items no answer explains: {}",
            outcome.lost, outcome.unexplained
        ),
    }
}

#[tokio::test]
async fn a_killed_master_loses_nothing_acknowledged_when_writes_wait_for_a_replica() {
    let outcome = failover(1).await;
    report(&outcome, "with WAIT 1");
    assert_eq!(outcome.lost, 0, "every acknowledged add is in its cart");
    assert_eq!(
        outcome.unexplained, 0,
        "an add answered as failed (not as \"may or may not be saved\") is in its cart"
    );
    if let Some((first, last)) = outcome.window {
        assert!(first >= outcome.killed_at, "no 503 before the kill");
        // Writes to the dead master's slots wait for a replica: they come back once the
        // restarted node replicates the promoted master.
        assert!(
            last <= outcome.replicated_at + Duration::from_secs(2),
            "503s end with the failover (last at {last:?}, a replica again at {:?})",
            outcome.replicated_at
        );
    }
}

#[tokio::test]
async fn without_wait_the_same_failover_says_what_it_lost() {
    let outcome = failover(0).await;
    report(&outcome, "without WAIT");
    // Asynchronous replication may lose the last writes before the kill; the count is printed,
    // and it can only be the few in flight, never a whole cart.
    assert!(
        outcome.lost <= SHOPPERS as i64,
        "lost {} acknowledged adds: more than one in flight per shopper",
        outcome.lost
    );
    assert_eq!(
        outcome.unexplained, 0,
        "an add answered as failed (not as \"may or may not be saved\") is in its cart"
    );
    if let Some((first, last)) = outcome.window {
        assert!(first >= outcome.killed_at, "no 503 before the kill");
        // Without WAIT nothing waits for the restarted node: writes resume at the promotion.
        assert!(
            last <= outcome.promoted_at + Duration::from_secs(2),
            "503s end with the promotion (last at {last:?}, promoted at {:?})",
            outcome.promoted_at
        );
    }
}
