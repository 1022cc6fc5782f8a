//! A deploy and its rollback under shoppers, with real binaries: three replicas of the previous
//! release behind the round-robin nginx are replaced one by one by this release's, each stopped
//! with SIGTERM (it drains) and started again on its port, then replaced back (the rollback),
//! while shoppers keep adding, changing, removing and checking out. Each shopper's acknowledged
//! actions are a model of their cart, compared with the cart page after every action. The lab's
//! `--deploy` narrates it for a class; `tests/system/deploys.rs` asserts it on every store.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use shop::session::Backend;

use super::cluster::{Balancing, Cluster, ClusterConfig, NginxConfs};
use super::scenario::{Narrator, replica_env};
use super::shopper::{Shopper, cart_lines, signed_in_as};

const PASSWORD: &str = "deploy-lab-password-1";
/// Products with the stock for every order below on a fresh database (40 or more each): at
/// most two of each in a cart and one order per shopper, for up to 20 shoppers.
const PRODUCTS: [i64; 4] = [1, 2, 9, 11];
pub const MAX_SHOPPERS: u8 = 20;

/// What runs, and where.
pub struct Deploy {
    /// The previous release's binary (`.ci/build-previous.sh` builds it).
    pub previous: PathBuf,
    /// This release's: the program and its arguments (the lab runs itself as `lab serve`).
    pub current: PathBuf,
    pub args: Vec<String>,
    pub backend: Backend,
    /// What the replicas share besides what each run makes its own (secret, key prefix).
    pub env: HashMap<String, String>,
    pub nginx: NginxConfs,
    pub shoppers: u8,
}

/// What the shoppers saw.
#[derive(Debug, Default, Clone)]
pub struct DeployOutcome {
    pub shoppers: u8,
    pub requests: u64,
    pub outside_2xx_3xx: u64,
    pub signed_out: u64,
    pub carts_wrong: u64,
    pub adds: u64,
    pub changes: u64,
    pub removals: u64,
    pub checkouts: u64,
    /// From the start to the last replica running this release, and to the rollback's end.
    pub deployed: Duration,
    pub rolled_back: Duration,
    /// The first few things that went wrong, in words.
    pub problems: Vec<String>,
}

impl DeployOutcome {
    /// Nobody signed out, no cart line lost or changed, nothing but 2xx and 3xx from nginx.
    pub fn lost_nothing(&self) -> bool {
        self.signed_out == 0 && self.carts_wrong == 0 && self.outside_2xx_3xx == 0
    }

    /// The counts in one sentence.
    pub fn summary(&self) -> String {
        format!(
            "{} shoppers, {} requests ({} adds, {} changes, {} removals, {} checkouts): {} signed \
             out, {} carts lost or changed a line, {} answers outside 2xx/3xx",
            self.shoppers,
            self.requests,
            self.adds,
            self.changes,
            self.removals,
            self.checkouts,
            self.signed_out,
            self.carts_wrong,
            self.outside_2xx_3xx
        )
    }

    fn problem(&mut self, text: String) {
        if self.problems.len() < 10 {
            self.problems.push(text);
        }
    }
}

type Shared = Arc<Mutex<DeployOutcome>>;

fn record(outcome: &Shared, change: impl FnOnce(&mut DeployOutcome)) {
    change(&mut outcome.lock().unwrap_or_else(PoisonError::into_inner));
}

/// Runs the deploy and the rollback, narrating through `say`. Everything it starts, it stops.
pub async fn run(deploy: &Deploy, say: &mut dyn FnMut(String)) -> anyhow::Result<DeployOutcome> {
    anyhow::ensure!(
        deploy.previous.exists(),
        "{} is missing: `bash .ci/build-previous.sh` builds the release .ci/previous-release names",
        deploy.previous.display()
    );
    anyhow::ensure!(
        (1..=MAX_SHOPPERS).contains(&deploy.shoppers),
        "between 1 and {MAX_SHOPPERS} shoppers"
    );
    let mut narrator = Narrator {
        started: Instant::now(),
        say,
    };
    let work = tempfile::tempdir().context("could not make a working folder")?;
    let mut env = replica_env(&deploy.env, deploy.backend, work.path());
    // Longer than nginx's upstream keepalive_timeout (4 s), as the default (6 s) is.
    env.entry("DRAIN_SECONDS".into()).or_insert("5".into());
    let mut cluster = Cluster::start(ClusterConfig {
        program: deploy.previous.clone(),
        args: deploy.args.clone(),
        replicas: 3,
        balancing: Balancing::RoundRobin,
        env,
        work_dir: work.path().to_owned(),
        nginx: deploy.nginx.clone(),
    })
    .await?;
    narrator.say(format!(
        "3 replicas of the previous release are up behind nginx at {}, sessions in {}.",
        cluster.url,
        deploy.backend.name()
    ));
    let mut shoppers = Vec::new();
    for number in 1..=deploy.shoppers {
        // Each from an address of its own, as shoppers are: the sign-in limits count addresses.
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 3, number));
        let email = format!("deploy-{number}-{:016x}@example.com", rand::random::<u64>());
        let shopper = Shopper::with_fresh_connections(&cluster.url, &email, Some(source))?;
        let (registered, _) = shopper.register(PASSWORD).await?;
        anyhow::ensure!(registered, "shopper {number} could not register");
        shoppers.push(shopper);
    }
    narrator.say(format!(
        "{} shoppers registered; they keep adding, changing, removing and checking out, and check \
         their cart after every action.",
        deploy.shoppers
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let outcome: Shared = Arc::new(Mutex::new(DeployOutcome {
        shoppers: deploy.shoppers,
        ..Default::default()
    }));
    let tasks: Vec<_> = shoppers
        .into_iter()
        .zip(1..)
        .map(|(shopper, number)| tokio::spawn(shop(number, shopper, stop.clone(), outcome.clone())))
        .collect();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let names: Vec<String> = cluster.replicas.iter().map(|r| r.name.clone()).collect();
    for name in &names {
        narrator.say(format!(
            "Deploy: {name} leaves nginx's upstream and is SIGTERMed (it drains, then stops); \
             this release starts on its port and rejoins."
        ));
        cluster.replace_with(name, &deploy.current).await?;
    }
    let deployed = started.elapsed();
    narrator.say("Every replica runs this release. Now the rollback, one replica at a time.");
    tokio::time::sleep(Duration::from_secs(1)).await;
    for name in &names {
        narrator.say(format!(
            "Rollback: {name} back to the previous release, the same way."
        ));
        cluster.replace_with(name, &deploy.previous).await?;
    }
    let rolled_back = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .context("a shopper did not stop")??
            .context("a shopper failed")?;
    }
    drop(cluster);
    let mut outcome = outcome
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    outcome.deployed = deployed;
    outcome.rolled_back = rolled_back;
    narrator.say(format!(
        "Deployed in {:.1} s, rolled back by {:.1} s: {}.",
        deployed.as_secs_f64(),
        rolled_back.as_secs_f64(),
        outcome.summary()
    ));
    Ok(outcome)
}

/// One shopper: an action, then the cart page against what was acknowledged, until told to stop.
async fn shop(
    number: u8,
    shopper: Shopper,
    stop: Arc<AtomicBool>,
    outcome: Shared,
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(u64::from(number));
    let mut model: BTreeMap<i64, u32> = BTreeMap::new();
    let mut ordered = false;
    for _ in 0..5_000 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let product = PRODUCTS[rng.random_range(0..PRODUCTS.len())];
        let mut action = ["add", "add", "change", "remove", "checkout"][rng.random_range(0..5)];
        if model.is_empty() || (action == "checkout" && ordered) {
            action = "add";
        }
        if action == "add" && model.get(&product).is_some_and(|q| *q >= 2) {
            action = "remove";
        }
        let line = *model
            .keys()
            .nth(rng.random_range(0..model.len().max(1)))
            .unwrap_or(&product);
        let quantity = rng.random_range(1..=2_u32);
        let (what, answer) = match action {
            "add" => (
                format!("add {product}"),
                shopper
                    .post(
                        "/cart/items",
                        &[("product_id", &product.to_string()), ("quantity", "1")],
                    )
                    .await,
            ),
            "change" => (
                format!("change {line} to {quantity}"),
                shopper
                    .post(
                        &format!("/cart/items/{line}"),
                        &[("quantity", &quantity.to_string())],
                    )
                    .await,
            ),
            "remove" => (
                format!("remove {line}"),
                shopper
                    .post(&format!("/cart/items/{line}/remove"), &[])
                    .await,
            ),
            _ => ("checkout".to_owned(), shopper.post("/checkout", &[]).await),
        };
        let acknowledged = match &answer {
            Ok(seen) => seen.status.is_success() || seen.status.is_redirection(),
            Err(_) => false,
        };
        let placed = answer.as_ref().is_ok_and(|seen| {
            seen.location
                .as_deref()
                .is_some_and(|l| l.starts_with("/orders/"))
        });
        if acknowledged {
            match action {
                "add" => *model.entry(product).or_default() += 1,
                "change" => {
                    model.insert(line, quantity);
                }
                "remove" => {
                    model.remove(&line);
                }
                _ if placed => {
                    model.clear();
                    ordered = true;
                }
                _ => {}
            }
        }
        record(&outcome, |o| {
            o.requests += 1;
            match (&answer, acknowledged, action) {
                (_, true, "add") => o.adds += 1,
                (_, true, "change") => o.changes += 1,
                (_, true, "remove") => o.removals += 1,
                (_, true, _) if placed => o.checkouts += 1,
                (_, true, _) => o.problem(format!("shopper {number}: the checkout was refused")),
                (Ok(seen), false, _) => {
                    o.outside_2xx_3xx += 1;
                    o.problem(format!(
                        "shopper {number}: {what} answered {} by {}",
                        seen.status, seen.served_by
                    ));
                }
                (Err(err), _, _) => {
                    o.outside_2xx_3xx += 1;
                    o.problem(format!("shopper {number}: {what} failed: {err:#}"));
                }
            }
        });
        let page = shopper.get("/cart").await;
        let mut seen_cart = None;
        record(&outcome, |o| {
            o.requests += 1;
            match &page {
                Ok(page) if page.status == StatusCode::OK => {
                    if signed_in_as(&page.body).as_deref() != Some(shopper.email.as_str()) {
                        o.signed_out += 1;
                        o.problem(format!("shopper {number} signed out on {}", page.served_by));
                    }
                    let cart: BTreeMap<i64, u32> = cart_lines(&page.body).into_iter().collect();
                    if cart != model {
                        o.carts_wrong += 1;
                        o.problem(format!(
                            "shopper {number} after {what}: cart {cart:?} on {}, acknowledged \
                             {model:?}",
                            page.served_by
                        ));
                        seen_cart = Some(cart);
                    }
                }
                Ok(page) => {
                    o.outside_2xx_3xx += 1;
                    o.problem(format!(
                        "shopper {number}: the cart page answered {} by {}",
                        page.status, page.served_by
                    ));
                }
                Err(err) => {
                    o.outside_2xx_3xx += 1;
                    o.problem(format!("shopper {number}: the cart page failed: {err:#}"));
                }
            }
        });
        // Go on from what the shop shows, so one wrong cart is counted once.
        if let Some(cart) = seen_cart {
            model = cart;
        }
    }
    Ok(())
}
