//! The backend comparison benchmark: for each compiled store, the release shop on core 0 and
//! wrk on core 1, 64 connections, bounded runs, on loopback; each path three times, reported as
//! the median and the spread, with the CPU use of every party; the read and write paths again at
//! half that rate, open loop (`steady.rs`); then 2 workers, unpinned; then what 100,000
//! signed-in sessions cost the store (`store_memory.rs`). Prints a table per store and writes
//! `latest.md` and `latest.svg` into the run's folder (`bench/results/runs/<UTC time>` unless
//! `--results` names another; the servers' logs go there too, as `servers.log`); with
//! `--flames`, a flame graph of the shop per store and path beside them.
//!
//! Usage (from the repository root; `bash bench/run` builds and starts everything first):
//!   target/release/bench [--seconds 5] [--sessions 1000] [--rss-sessions 100000]
//!                        [--stores redis,postgres] [--runs 3] [--flames] [--peer]
//!                        [--paths anonymous,read,many-sessions,write,login]
//!                        [--store-sessions 100000] [--results DIR]
//!   target/release/bench --instructions [--stores redis,postgres] [--peer]
//!     (the shop's instructions per request under callgrind instead: see `instructions.rs`)
//!   target/release/bench --store-memory [--stores …] [--store-sessions 100000]
//!     (only what sessions cost each store: `store-memory.md`)

mod cpu;
mod durability;
mod instructions;
mod load;
mod measure;
mod options;
mod peers;
mod report;
mod servers;
mod steady;
mod store_memory;
mod stores;
mod wrk;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use rand::RngCore;
use shop::session::Backend;
use shop_lab::{RedisCluster, Shopper, free_port};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

use load::*;
use measure::*;
use options::*;
use peers::*;
use report::{Path as BenchPath, Row, Sample, StoreRun};
use servers::*;
use stores::*;
use wrk::Load;

const PASSWORD: &str = "bench-password-1";
const SERVER_CORE: &str = "0";

/// What is measured: a store as the shop is configured for it, or the Redis store on a Redis
/// Cluster of three masters on loopback, with writes waiting for a replica or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    Store(Backend),
    RedisCluster {
        wait: bool,
    },
    /// The same store with the other durability a team weighs: Redis with an append-only file
    /// fsynced every second (a server of the run's own), PostgreSQL with
    /// `synchronous_commit=off` (the shop's sessions only).
    OtherDurability(Backend),
    /// The same store reached over TLS: a Redis of the run's own that speaks only TLS (a CA
    /// made for the run), PostgreSQL with `sslmode=require`.
    Tls(Backend),
}

impl Subject {
    fn backend(self) -> Backend {
        match self {
            Subject::Store(backend) | Subject::OtherDurability(backend) | Subject::Tls(backend) => {
                backend
            }
            Subject::RedisCluster { .. } => Backend::Redis,
        }
    }

    fn name(self) -> String {
        match self {
            Subject::Store(backend) => backend.name().to_owned(),
            Subject::RedisCluster { wait: false } => "redis-cluster".to_owned(),
            Subject::RedisCluster { wait: true } => "redis-cluster-wait".to_owned(),
            Subject::OtherDurability(Backend::Redis) => "redis-aof".to_owned(),
            Subject::OtherDurability(backend) => format!("{}-async-commit", backend.name()),
            Subject::Tls(backend) => format!("{}-tls", backend.name()),
        }
    }

    fn parse(name: &str) -> anyhow::Result<Self> {
        Ok(match name {
            "redis-cluster" => Subject::RedisCluster { wait: false },
            "redis-cluster-wait" => Subject::RedisCluster { wait: true },
            "redis-aof" => Subject::OtherDurability(Backend::Redis),
            "postgres-async-commit" => Subject::OtherDurability(Backend::Postgres),
            "redis-tls" => Subject::Tls(Backend::Redis),
            "postgres-tls" => Subject::Tls(Backend::Postgres),
            other => Subject::Store(Backend::parse(other).map_err(anyhow::Error::msg)?),
        })
    }

    /// How the report heads its section.
    fn title(self) -> String {
        match self {
            Subject::Store(backend) => backend.name().to_owned(),
            Subject::RedisCluster { wait: false } => {
                "redis-cluster (3 masters, 3 replicas; asynchronous replication)".to_owned()
            }
            Subject::RedisCluster { wait: true } => {
                "redis-cluster-wait (3 masters, 3 replicas; REDIS_MIN_REPLICAS_ACK=1)".to_owned()
            }
            Subject::OtherDurability(Backend::Redis) => {
                "redis-aof (append-only file, fsync every second)".to_owned()
            }
            Subject::OtherDurability(backend) => {
                format!("{}-async-commit (synchronous_commit=off)", backend.name())
            }
            Subject::Tls(Backend::Redis) => "redis-tls (rediss:// on loopback)".to_owned(),
            Subject::Tls(backend) => format!("{}-tls (sslmode=require)", backend.name()),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let here = std::env::current_exe()?;
    let shop = here.with_file_name("shop");
    let ceiling_program = here.with_file_name("ceiling");
    if !shop.exists() || !ceiling_program.exists() {
        bail!("build first: cargo build --release --all-features --bins");
    }
    std::fs::create_dir_all(&options.results)
        .with_context(|| format!("could not create {}", options.results.display()))?;
    let log = options.results.join("servers.log");
    println!(
        "Results and the servers' logs go to {} (servers.log).",
        options.results.display()
    );
    let _ = servers::SERVER_LOG.set(log);
    let work = tempfile::tempdir()?;
    let servers = Started::start(&options, work.path()).await?;
    if options.instructions {
        let mut counted = Vec::new();
        let mut page = String::new();
        for store in &options.stores {
            let (row, cart_page) =
                instructions::count(*store, &shop, work.path(), &servers).await?;
            counted.push(row);
            page = cart_page;
        }
        if options.peer {
            for store in [Backend::Redis, Backend::Postgres] {
                if !options.stores.contains(&Subject::Store(store)) {
                    continue;
                }
                let env = shop_env(store, work.path()).await?;
                let program = Path::new(PEER_PROGRAM);
                for mode in PeerMode::ALL {
                    counted.push(
                        instructions::count_peer(
                            program,
                            store,
                            &peer_url(store, &env),
                            &page,
                            mode,
                        )
                        .await?,
                    );
                }
            }
        }
        counted.push(instructions::count_ceiling(&ceiling_program, &page).await?);
        let markdown = instructions::markdown(&counted);
        println!("\n{markdown}");
        write_result(&options, "instructions.md", &markdown)?;
        return Ok(());
    }
    if options.store_memory {
        let mut costs = Vec::new();
        for store in &options.stores {
            if let Some(cost) =
                store_memory_only(*store, &options, &shop, work.path(), &servers).await?
            {
                costs.push((store.name(), cost));
            }
        }
        let named: Vec<_> = costs.iter().map(|(n, c)| (n.as_str(), c)).collect();
        let markdown = format!(
            "# What sessions cost the store{}",
            report::store_memory_section(&named)
                .trim_start_matches("\n## What sessions cost the store")
        );
        println!("\n{markdown}");
        write_result(&options, "store-memory.md", &markdown)?;
        return Ok(());
    }
    let mut runs = Vec::new();
    let mut page = String::new();
    let all_started = std::time::Instant::now();
    for (done, store) in options.stores.iter().enumerate() {
        let started = std::time::Instant::now();
        let (run, cart_page) = bench_store(*store, &options, &shop, work.path(), &servers).await?;
        report::print_store(&run);
        // The stores so far predict the rest (the ceilings after them take about as long as
        // one store's read and write).
        let measured = done + 1;
        let per_store = all_started.elapsed().as_secs_f64() / measured as f64;
        let left = options.stores.len() - measured;
        println!(
            "   ({} measured in {:.0} s; {measured} of {} done, about {:.0} min left)",
            store.name(),
            started.elapsed().as_secs_f64(),
            options.stores.len(),
            (per_store * left as f64 + per_store / 2.0) / 60.0
        );
        page = cart_page;
        runs.push(run);
    }
    let page_file = work.path().join("cart.html");
    std::fs::write(&page_file, &page)?;
    let ceilings = report::Ceilings {
        one: ceiling(&ceiling_program, &page_file, &options, 1).await?,
        two: ceiling(&ceiling_program, &page_file, &options, 2).await?,
    };
    let markdown = report::markdown(&runs, &ceilings, &options_line(&options));
    println!("\n{markdown}");
    write_result(&options, "latest.md", &markdown)?;
    write_result(&options, "latest.svg", &report::svg(&runs))?;
    if runs.iter().any(|run| !run.curve.is_empty()) {
        write_result(&options, "curve.svg", &report::curve_svg(&runs))?;
    }
    let failures = report::failures(&runs);
    if !failures.is_empty() {
        bail!(
            "the run saw {} failure(s) of the shop (the servers' log in {} says why):\n  {}",
            failures.len(),
            options.results.display(),
            failures.join("\n  ")
        );
    }
    // Only a run without failures goes into the README.
    if options.readme {
        // BENCH_README: another copy to write (CI's smoke run writes a scratch one).
        let file = std::env::var("BENCH_README").unwrap_or_else(|_| "README.md".to_owned());
        let readme = std::fs::read_to_string(&file).with_context(|| file.clone())?;
        let results = options.results.display().to_string();
        std::fs::write(
            &file,
            report::with_decision_table(&readme, &runs, &options_line(&options), &results)?,
        )?;
        println!("Written: {file} (the decision table and the chart)");
    }
    Ok(())
}

/// Writes one result file into the results folder and says where.
fn write_result(options: &Options, name: &str, contents: &str) -> anyhow::Result<()> {
    let file = options.results.join(name);
    std::fs::write(&file, contents)
        .with_context(|| format!("could not write {}", file.display()))?;
    println!("Written: {}", file.display());
    Ok(())
}
