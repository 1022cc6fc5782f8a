//! The scenario, told as it happens: replicas behind nginx, shoppers who register and fill carts,
//! the replica that served a login killed, and then what every shopper still has.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::RngCore;

use super::cluster::{Balancing, Cluster, ClusterConfig, NginxConfs};
use super::redis_cluster::{NODE_TIMEOUT_MS, RedisCluster};
use super::shopper::Shopper;
use shop::session::Backend;

const PASSWORD: &str = "lab-password-1";

/// What is being demonstrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The rule kept: round robin, state in a backing store.
    External(Backend),
    /// The rule kept on a Redis Cluster of three masters with a replica each, writes waiting
    /// for a replica: the journey kills a store master instead of a shop replica.
    RedisCluster,
    /// Round robin over process memory: the anti-pattern at its plainest.
    Memory,
    /// `ip_hash` over process memory: sticky sessions, which "work" until a replica dies.
    StickyMemory,
}

impl Mode {
    pub fn label(self) -> String {
        match self {
            Mode::External(backend) => format!("round robin, sessions in {backend}"),
            Mode::RedisCluster => {
                "round robin, sessions in a Redis Cluster (a master killed)".into()
            }
            Mode::Memory => "round robin, sessions in process memory".into(),
            Mode::StickyMemory => "sticky ip_hash, sessions in process memory".into(),
        }
    }

    fn backend(self) -> Backend {
        match self {
            Mode::External(backend) => backend,
            Mode::RedisCluster => Backend::Redis,
            Mode::Memory | Mode::StickyMemory => Backend::Memory,
        }
    }

    fn balancing(self) -> Balancing {
        match self {
            Mode::StickyMemory => Balancing::Sticky,
            _ => Balancing::RoundRobin,
        }
    }
}

/// How to start replicas: the program, and the environment they all share.
#[derive(Clone)]
pub struct LabConfig {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: HashMap<String, String>,
    pub nginx: NginxConfs,
    pub replicas: usize,
    pub shoppers: usize,
    /// Whether to finish with a rolling restart under a browsing client.
    pub rolling_restart: bool,
}

/// What happened to the shoppers.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub mode: Mode,
    pub shoppers: usize,
    pub killed: String,
    /// Shoppers whose every add was acknowledged before the kill.
    pub carts_filled: usize,
    pub kept_login: usize,
    pub kept_cart: usize,
    pub checked_out: usize,
    /// The replicas that served the first shopper before the kill.
    pub replicas_seen: BTreeSet<String>,
    /// Requests and failed requests of a client browsing through a rolling restart.
    pub rolling_restart: Option<(u64, u64)>,
}

impl Outcome {
    /// Every shopper kept their login and cart and checked out, and no request failed in the
    /// rolling restart: what the rule promises.
    pub fn kept_everything(&self) -> bool {
        self.kept_login == self.shoppers
            && self.kept_cart == self.shoppers
            && self.checked_out == self.shoppers
            && self.rolling_restart.is_none_or(|(_, failed)| failed == 0)
    }
}

/// Tells the story with the seconds since it began.
pub(crate) struct Narrator<'a> {
    pub(crate) started: Instant,
    pub(crate) say: &'a mut dyn FnMut(String),
}

impl Narrator<'_> {
    pub(crate) fn say(&mut self, text: impl Into<String>) {
        let elapsed = self.started.elapsed().as_secs_f32();
        (self.say)(format!("[{elapsed:5.1}s] {}", text.into()));
    }
}

fn random_hex() -> String {
    let mut bytes = [0_u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What every replica of a run shares: `base` with the store, a fresh secret and key prefix, and
/// SQLite files in `dir` for what `base` does not name.
pub(crate) fn replica_env(
    base: &HashMap<String, String>,
    backend: Backend,
    dir: &std::path::Path,
) -> HashMap<String, String> {
    let dir = dir.display().to_string();
    let mut secret = [0_u8; 48];
    rand::rng().fill_bytes(&mut secret);
    let mut env = base.clone();
    env.entry("DATABASE_URL".into())
        .or_insert(format!("sqlite://{dir}/shop.db"));
    if backend == Backend::Sqlite || !env.contains_key("SESSION_DATABASE_URL") {
        env.insert(
            "SESSION_DATABASE_URL".into(),
            format!("sqlite://{dir}/sessions.db"),
        );
    }
    if backend == Backend::Postgres && env["SESSION_DATABASE_URL"].starts_with("sqlite") {
        let url = env.get("LAB_POSTGRES_URL").cloned();
        env.insert(
            "SESSION_DATABASE_URL".into(),
            url.unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        );
    }
    env.insert("SESSION_BACKEND".into(), backend.name().into());
    // Every shopper of the lab comes from loopback: one client, to the per-client limits.
    for limit in ["NEW_SESSIONS_PER_CLIENT", "REGISTRATIONS_PER_CLIENT"] {
        env.entry(limit.into()).or_insert_with(|| "100000".into());
    }
    env.insert("SESSION_SECRET".into(), hex::encode(secret));
    env.insert(
        "SESSION_KEY_PREFIX".into(),
        format!("lab:{}:", random_hex()),
    );
    env.entry("WORKERS".into()).or_insert("1".into());
    env
}

/// Runs the scenario once, narrating through `say`. Everything it starts, it stops.
pub async fn run(
    lab: &LabConfig,
    mode: Mode,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<Outcome> {
    let mut narrator = Narrator {
        started: Instant::now(),
        say,
    };
    let work = tempfile::tempdir().context("could not make a working folder")?;
    let mut env = replica_env(&lab.env, mode.backend(), work.path());

    narrator.say(format!("Scenario: {}.", mode.label()));
    let prefix = env["SESSION_KEY_PREFIX"].clone();
    let mut redis = None;
    if mode == Mode::RedisCluster {
        let dir = work.path().join("redis-cluster");
        std::fs::create_dir_all(&dir)?;
        let cluster = RedisCluster::start(&dir).await?;
        env.insert("REDIS_CLUSTER_NODES".into(), cluster.seeds());
        env.insert("REDIS_MIN_REPLICAS_ACK".into(), "1".into());
        narrator.say(format!(
            "A Redis Cluster is up: masters on ports {:?}, each with a replica; a master is \
             failed over after {NODE_TIMEOUT_MS} ms of silence. Every session write waits until \
             a replica has it.",
            cluster.masters().await?
        ));
        redis = Some(cluster);
    }
    let mut cluster = Cluster::start(ClusterConfig {
        program: lab.program.clone(),
        args: lab.args.clone(),
        replicas: lab.replicas,
        balancing: mode.balancing(),
        env,
        work_dir: work.path().to_owned(),
        nginx: lab.nginx.clone(),
    })
    .await?;
    let names: Vec<String> = cluster
        .replicas
        .iter()
        .map(|r| format!("{} (port {})", r.name, r.port))
        .collect();
    narrator.say(format!(
        "{} replicas are up: {}. nginx spreads requests over them {} at {}.",
        names.len(),
        names.join(", "),
        match mode.balancing() {
            Balancing::RoundRobin => "in turn, with no affinity,",
            Balancing::Sticky => "by client address (ip_hash),",
        },
        cluster.url
    ));

    // Each shopper comes from its own loopback address, so ip_hash tells them apart.
    let run_id = random_hex();
    let mut shoppers = Vec::new();
    for i in 0..lab.shoppers {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, u8::try_from(i + 1).unwrap_or(1), 1));
        let email = format!("shopper{}-{run_id}@example.com", i + 1);
        shoppers.push(Shopper::new(&cluster.url, &email, Some(source))?);
    }

    let mut expected: Vec<HashMap<i64, u32>> = vec![HashMap::new(); shoppers.len()];
    let mut acknowledged_all = vec![true; shoppers.len()];
    let mut login_replica = String::new();
    let mut replicas_seen = BTreeSet::new();
    for (i, shopper) in shoppers.iter().enumerate() {
        let (registered, served) = shopper.register(PASSWORD).await?;
        acknowledged_all[i] &= registered;
        if i == 0 {
            narrator.say(if registered {
                format!(
                    "Shopper 1 ({}) registered and logged in on {served}.",
                    shopper.email
                )
            } else {
                format!(
                    "Shopper 1 ({}) could not even register: {served} had never seen the session \
                     that another replica gave them the form in, so the form's token was refused.",
                    shopper.email
                )
            });
            login_replica = served.clone();
            replicas_seen.insert(served);
        }
        // The first shopper adds until their requests have landed on every replica.
        let adds = if i == 0 { 3 * lab.replicas } else { 2 };
        for n in 0..adds {
            let product = i64::try_from((i * 5 + n) % 12 + 1).unwrap_or(1);
            match shopper.add(product, 1).await {
                Ok(served) => {
                    *expected[i].entry(product).or_default() += 1;
                    if i == 0 {
                        replicas_seen.insert(served);
                    }
                }
                Err(err) => {
                    if i == 0 && acknowledged_all[i] {
                        narrator.say(format!(
                            "Shopper 1's add to cart failed ({err:#}): the replica it reached \
                             does not know their session."
                        ));
                    }
                    acknowledged_all[i] = false;
                }
            }
            if i == 0 && n + 1 >= lab.replicas && replicas_seen.len() == lab.replicas {
                break;
            }
        }
    }
    let items: u32 = expected[0].values().sum();
    narrator.say(format!(
        "Shopper 1 put {items} items in the cart; their requests were served by {}.",
        replicas_seen.iter().cloned().collect::<Vec<_>>().join(", ")
    ));
    let others = shoppers.len().saturating_sub(1);
    let others_ok = acknowledged_all.iter().skip(1).filter(|&&ok| ok).count();
    narrator.say(if others_ok == others {
        format!("{others} more shoppers registered and filled carts.")
    } else {
        format!(
            "{others} more shoppers tried to register and fill carts; {others_ok} of them had \
             every request go through."
        )
    });

    let killed = match redis.as_mut() {
        Some(redis) => kill_a_master(redis, &prefix, &mut narrator).await?,
        None => {
            cluster.kill(&login_replica).await?;
            narrator.say(format!(
                "SIGKILL {login_replica}, the replica that served shopper 1's login: it dies at once, as in a crash."
            ));
            login_replica.clone()
        }
    };

    let (mut kept_login, mut kept_cart, mut checked_out) = (0, 0, 0);
    for (i, shopper) in shoppers.iter().enumerate() {
        let (user, cart, served) = shopper.look().await?;
        let logged_in = user.as_deref() == Some(shopper.email.as_str());
        let cart: HashMap<i64, u32> = cart.into_iter().collect();
        let cart_intact = logged_in && cart == expected[i] && !cart.is_empty();
        kept_login += usize::from(logged_in);
        kept_cart += usize::from(cart_intact);
        let order = if cart_intact {
            shopper.checkout().await?
        } else {
            None
        };
        checked_out += usize::from(order.is_some());
        if i == 0 {
            narrator.say(match (logged_in, cart_intact, &order) {
                (true, true, Some(order)) => format!(
                    "Shopper 1 reloads the cart on {served}: still logged in, all {items} items there; checkout succeeds ({order})."
                ),
                (true, _, _) => format!("Shopper 1 reloads the cart on {served}: still logged in, but the cart is not what they left."),
                (false, _, _) => format!("Shopper 1 reloads the cart on {served}: logged out, the cart is gone."),
            });
        }
    }
    narrator.say(format!(
        "After the kill: {kept_login} of {} shoppers still logged in, {kept_cart} with their cart intact, {checked_out} checked out.",
        shoppers.len()
    ));

    let mut rolling_restart = None;
    if lab.rolling_restart {
        cluster.start_again(&login_replica).await?;
        narrator.say(format!("{login_replica} is started again. Now a rolling restart of every replica (SIGTERM, wait, start) while a shopper keeps browsing."));
        let (requests, failures) = browse_through(&mut cluster, shoppers[0].clone()).await?;
        narrator.say(format!("The browsing shopper made {requests} requests during the rolling restart; {failures} failed."));
        rolling_restart = Some((requests, failures));
    }
    drop(cluster);
    drop(redis);
    narrator.say("Everything this scenario started is stopped.");

    Ok(Outcome {
        mode,
        shoppers: shoppers.len(),
        killed,
        carts_filled: acknowledged_all.iter().filter(|&&ok| ok).count(),
        kept_login,
        kept_cart,
        checked_out,
        replicas_seen,
        rolling_restart,
    })
}

/// SIGKILLs the Redis master holding the most of this run's keys, and waits until its replica
/// has taken over; returns what was killed, for the report.
async fn kill_a_master(
    redis: &mut RedisCluster,
    prefix: &str,
    narrator: &mut Narrator<'_>,
) -> anyhow::Result<String> {
    let spread = redis.keys_by_master(prefix).await?;
    narrator.say(format!(
        "The shoppers' keys (sessions, sign-in counters, session lists) per master: {}.",
        spread
            .iter()
            .map(|(port, keys)| format!("port {port}: {}", keys.len()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let (victim, keys) = spread
        .into_iter()
        .max_by_key(|(_, keys)| keys.len())
        .context("the cluster has no master")?;
    let slots = redis
        .topology()
        .await?
        .into_iter()
        .find(|n| n.port == victim)
        .map(|n| n.slots)
        .unwrap_or_default();
    redis.kill(victim);
    let killed_at = Instant::now();
    narrator.say(format!(
        "SIGKILL the Redis master on port {victim}, holding {} of those keys: it dies at once, as in a crash.",
        keys.len()
    ));
    let deadline = killed_at + Duration::from_secs(30);
    loop {
        if let Some(port) = redis.promoted_for(&slots).await
            && redis.all_slots_served().await
        {
            narrator.say(format!(
                "After {:.1} s its replica on port {port} is the master of its slots; the shop \
                 follows the new topology without a restart.",
                killed_at.elapsed().as_secs_f32()
            ));
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "no replica took over from the Redis master on port {victim} within 30 s"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Writes wait for a replica, and the promoted master has none: start the dead node again,
    // as an orchestrator would; it rejoins as that master's replica.
    redis.restart(victim).await?;
    redis.wait_replicated(Duration::from_secs(30)).await?;
    narrator.say(format!(
        "The dead node is started again and rejoins as its replica ({:.1} s after the kill): \
         writes to those slots are acknowledged again.",
        killed_at.elapsed().as_secs_f32()
    ));
    Ok(format!("redis master :{victim}"))
}

/// Restarts every replica in turn while `shopper` browses; returns requests and failures.
async fn browse_through(cluster: &mut Cluster, shopper: Shopper) -> anyhow::Result<(u64, u64)> {
    let stop = Arc::new(AtomicBool::new(false));
    let (requests, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let browser = {
        let (stop, requests, failures) = (stop.clone(), requests.clone(), failures.clone());
        tokio::spawn(async move {
            let pages = ["/", "/cart", "/products/3", "/orders"];
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && n < 20_000 {
                let result = shopper.get(pages[n % pages.len()]).await;
                let ok = result.as_ref().is_ok_and(|seen| seen.status.is_success());
                if !ok && failures.load(Ordering::Relaxed) < 3 {
                    log::warn!(
                        "A request during the rolling restart failed: {:?}",
                        result.map(|seen| (seen.status, seen.served_by))
                    );
                }
                requests.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let restarted = cluster.rolling_restart().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    browser.await?;
    restarted?;
    Ok((
        requests.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed),
    ))
}
