//! The lab for educators: runs the live proof and narrates it.
//!
//! ```text
//! cargo run -p shop-lab -- --store redis --replicas 3
//! cargo run -p shop-lab -- --store redis-cluster   # a store master killed
//! bash .ci/build-previous.sh && cargo run -p shop-lab -- --store redis --deploy
//! ```
//!
//! `--deploy` runs a deploy and its rollback instead (`shop_lab::deploy`): replicas of the
//! previous release (`--previous`, by default `target/debug/shop-previous`) replaced one by one
//! by this one and back, under shoppers, with the counts of what they lost.
//!
//! Three runs, side by side: the shop with its sessions in a backing store behind round robin
//! (nothing lost), in process memory behind round robin (everything lost), and in process memory
//! behind sticky `ip_hash` (the dead replica's shoppers lost). Writes `lab-report.md` and
//! `lab-report.svg`. Everything it starts it stops, also on Ctrl-C.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use shop::session::Backend;
use shop_lab::scenario::{self, LabConfig, Mode, Outcome};
use shop_lab::{Balancing, NginxConfs, report};

struct Args {
    /// The rule kept: a backing store, or a Redis Cluster whose master is killed.
    store: Mode,
    replicas: usize,
    shoppers: usize,
    report: PathBuf,
    /// `--deploy`: the previous release's binary, replaced by this release and back.
    deploy: Option<PathBuf>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> anyhow::Result<Args> {
    let mut store = None;
    let mut parsed = Args {
        store: Mode::External(Backend::Sqlite),
        replicas: 3,
        shoppers: 6,
        report: PathBuf::from("lab-report.md"),
        deploy: None,
    };
    let mut previous = PathBuf::from("target/debug/shop-previous");
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--store" => {
                store = Some(match value()?.as_str() {
                    "redis-cluster" => Mode::RedisCluster,
                    name => Mode::External(Backend::parse(name).map_err(anyhow::Error::msg)?),
                });
            }
            "--replicas" => {
                parsed.replicas = value()?.parse().context("--replicas takes a number")?
            }
            "--shoppers" => {
                parsed.shoppers = value()?.parse().context("--shoppers takes a number")?
            }
            "--report" => parsed.report = value()?.into(),
            "--deploy" => parsed.deploy = Some(PathBuf::new()),
            "--previous" => previous = value()?.into(),
            "--help" | "-h" => {
                println!(
                    "usage: lab [--store sqlite|redis|redis-cluster|postgres|memcached] [--replicas N] [--shoppers N] [--report FILE.md]\n       lab --deploy [--store sqlite|redis|postgres|memcached] [--shoppers N] [--previous BINARY]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}; try --help"),
        }
    }
    parsed.store = match store {
        Some(store) => store,
        None => Mode::External(
            Backend::default_compiled().map_err(|e| anyhow::anyhow!("pass --store: {e}"))?,
        ),
    };
    if parsed.store == Mode::RedisCluster && !Backend::Redis.is_compiled() {
        bail!(
            "--store redis-cluster needs the redis feature: cargo run -p shop-lab --features redis"
        );
    }
    if !(2..=9).contains(&parsed.replicas) {
        bail!("--replicas must be between 2 and 9");
    }
    if !(1..=50).contains(&parsed.shoppers) {
        bail!("--shoppers must be between 1 and 50");
    }
    if let Some(deploy) = parsed.deploy.as_mut() {
        *deploy = previous;
        if parsed.store == Mode::RedisCluster {
            bail!("--deploy runs on one store server: sqlite, redis, postgres or memcached");
        }
        if parsed.shoppers > usize::from(shop_lab::deploy::MAX_SHOPPERS) {
            bail!(
                "--deploy takes at most {} shoppers",
                shop_lab::deploy::MAX_SHOPPERS
            );
        }
    }
    if parsed.store == Mode::External(Backend::Memory) {
        bail!(
            "--store names the backing store to compare with process memory; memory itself is always shown"
        );
    }
    Ok(parsed)
}

/// The nginx configurations built into the lab (`deploy/nginx` as it was built), or the folder
/// `LAB_NGINX_DIR` names, checked before anything starts.
fn nginx_confs() -> anyhow::Result<NginxConfs> {
    let Some(dir) = std::env::var_os("LAB_NGINX_DIR") else {
        return Ok(NginxConfs::BuiltIn);
    };
    let dir = PathBuf::from(dir);
    for balancing in [Balancing::RoundRobin, Balancing::Sticky] {
        let file = dir.join(balancing.conf_file());
        if !file.is_file() {
            bail!(
                "LAB_NGINX_DIR is {}, which has no {}: point it at a folder with \
                 round-robin.conf and sticky.conf (as deploy/nginx), or unset it to use the \
                 configurations built into the lab",
                dir.display(),
                balancing.conf_file()
            );
        }
    }
    Ok(NginxConfs::Dir(dir))
}

/// The environment the replicas inherit: this one, less what each replica or run sets itself
/// (its address and name, the store, the secret).
fn replica_base_env() -> HashMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "PORT" | "HOST" | "INSTANCE_NAME" | "SESSION_BACKEND" | "SESSION_SECRET"
            )
        })
        .collect()
}

async fn run_all(
    args: &Args,
    nginx: NginxConfs,
    narration: &mut Vec<String>,
) -> anyhow::Result<Vec<Outcome>> {
    let env = replica_base_env();
    let lab = LabConfig {
        program: std::env::current_exe()?,
        args: vec!["serve".into()],
        env,
        nginx,
        replicas: args.replicas,
        shoppers: args.shoppers,
        rolling_restart: true,
    };
    let mut outcomes = Vec::new();
    for mode in [args.store, Mode::Memory, Mode::StickyMemory] {
        let lab = LabConfig {
            rolling_restart: mode == args.store,
            ..lab.clone()
        };
        let mut say = |line: String| {
            println!("{line}");
            narration.push(line);
        };
        outcomes.push(scenario::run(&lab, mode, &mut say).await?);
        println!();
        narration.push(String::new());
    }
    Ok(outcomes)
}

/// `--deploy`: the previous release and this one side by side, narrated, with the counts; a
/// non-zero exit when a shopper lost anything.
async fn run_deploy(args: &Args, previous: PathBuf, nginx: NginxConfs) -> anyhow::Result<()> {
    let Mode::External(backend) = args.store else {
        bail!("--deploy runs on one store server");
    };
    let env = replica_base_env();
    println!(
        "A deploy and its rollback: the previous release ({}) and this one, {} shoppers, \
         sessions in {}.\n",
        previous.display(),
        args.shoppers,
        backend.name()
    );
    let deploy = shop_lab::deploy::Deploy {
        previous,
        current: std::env::current_exe()?,
        args: vec!["serve".into()],
        backend,
        env,
        nginx,
        shoppers: u8::try_from(args.shoppers)?,
    };
    let mut say = |line: String| println!("{line}");
    let outcome = tokio::select! {
        outcome = shop_lab::deploy::run(&deploy, &mut say) => outcome?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("\nInterrupted: every replica and nginx have been stopped.");
            std::process::exit(130);
        }
    };
    if !outcome.lost_nothing() {
        bail!(
            "shoppers lost something in the deploy: {}; {:?}",
            outcome.summary(),
            outcome.problems
        );
    }
    println!("\nNothing lost: {}.", outcome.summary());
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut raw = std::env::args().skip(1).peekable();
    if raw.peek().map(String::as_str) == Some("serve") {
        // A replica: the lab runs copies of itself as the shop.
        return shop::startup::serve_from_env(None).await;
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = parse_args(raw)?;
    let nginx = nginx_confs()?;
    if let Err(err) = shop_lab::cluster::find_nginx() {
        eprintln!("{err}");
        std::process::exit(1);
    }
    if let Some(previous) = &args.deploy {
        return run_deploy(&args, previous.clone(), nginx).await;
    }
    println!(
        "The sticky-session lab: {} replicas, {} shoppers; the rule kept: {}.\n",
        args.replicas,
        args.shoppers,
        args.store.label()
    );
    let mut narration = Vec::new();
    // On Ctrl-C the scenario's future is dropped, and with it every process it started.
    let outcomes = tokio::select! {
        outcomes = run_all(&args, nginx, &mut narration) => Some(outcomes?),
        _ = tokio::signal::ctrl_c() => None,
    };
    let Some(outcomes) = outcomes else {
        eprintln!("\nInterrupted: every replica and nginx have been stopped.");
        std::process::exit(130);
    };
    let table = report::summary_table(&outcomes);
    println!("{table}");
    std::fs::write(&args.report, report::markdown(&outcomes, &narration))
        .with_context(|| format!("could not write {}", args.report.display()))?;
    let svg_path = args.report.with_file_name("lab-report.svg");
    std::fs::write(&svg_path, report::svg(&outcomes))?;
    println!(
        "Report written to {} and {}.",
        args.report.display(),
        svg_path.display()
    );
    // The first run keeps the rule; losing anything there is a bug in the shop, not the lesson,
    // and a script running the lab (CI runs it as the README shows it) must see it fail.
    if let Some(kept) = outcomes.first().filter(|o| !o.kept_everything()) {
        bail!(
            "the rule was kept ({}), yet shoppers lost their login or cart, or requests failed \
             in the rolling restart: see the table above",
            kept.mode.label()
        );
    }
    Ok(())
}
