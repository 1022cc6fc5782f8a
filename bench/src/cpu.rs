//! CPU use read from `/proc`: per core, per process and per store, so that a run can say whether
//! the shop was the bottleneck, and whether the machine was quiet when it started.

use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc`'s times (`getconf CLK_TCK`; 100 on Linux x86-64 and arm64).
const TICKS: f64 = 100.0;

/// The fields after a `/proc/<pid>/stat` line's `(comm)`, which may itself hold spaces.
fn stat_fields(path: &str) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(path).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(
        rest.split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// CPU seconds of one process: (user, system).
fn process_times(pid: u32) -> (f64, f64) {
    // Field 14 and 15 of the line; the vector starts at field 3.
    stat_fields(&format!("/proc/{pid}/stat"))
        .map_or((0.0, 0.0), |f| (f[11] as f64 / TICKS, f[12] as f64 / TICKS))
}

/// CPU seconds (user + system) of one process.
pub fn process_seconds(pid: u32) -> f64 {
    let (user, system) = process_times(pid);
    user + system
}

/// CPU seconds of this process's children that have ended and been waited for (fields 16, 17).
pub fn children_seconds() -> f64 {
    stat_fields("/proc/self/stat").map_or(0.0, |f| (f[13] + f[14]) as f64 / TICKS)
}

/// CPU seconds of every process whose name is one of `names` (a store's server processes).
pub fn named_seconds(names: &[&str]) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| names.contains(&comm.trim()))
        })
        .map(process_seconds)
        .sum()
}

/// (busy, total) jiffies of each core, from `/proc/stat`.
fn cores() -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            let total: u64 = v.iter().take(8).sum();
            // idle and iowait are not busy.
            (
                total - v.get(3).unwrap_or(&0) - v.get(4).unwrap_or(&0),
                total,
            )
        })
        .collect()
}

/// The share of each core that was busy between two readings.
fn busy_between(before: &[(u64, u64)], after: &[(u64, u64)]) -> Vec<f64> {
    before
        .iter()
        .zip(after)
        .map(|((b0, t0), (b1, t1))| (b1 - b0) as f64 / (t1 - t0).max(1) as f64)
        .collect()
}

/// How busy the whole machine is over `window` (mean over cores), with nothing of ours running.
pub async fn machine_busy(window: Duration) -> f64 {
    let before = cores();
    tokio::time::sleep(window).await;
    let busy = busy_between(&before, &cores());
    busy.iter().sum::<f64>() / busy.len().max(1) as f64
}

/// A reading taken before a run; [`Readings::finish`] turns it into the run's CPU use.
pub struct Readings {
    at: Instant,
    cores: Vec<(u64, u64)>,
    server: (f64, f64),
    store: f64,
}

/// CPU use during a run, in cores (1.0 = one core fully busy).
#[derive(Debug, Clone, Default)]
pub struct Use {
    pub per_core: Vec<f64>,
    pub server: f64,
    /// The part of `server` spent in the kernel on the shop's behalf: its system calls, and the
    /// loopback packets they send and receive.
    pub server_kernel: f64,
    pub store: f64,
}

impl Readings {
    pub fn start(server_pid: u32, store: &[&str]) -> Self {
        Self {
            at: Instant::now(),
            cores: cores(),
            server: process_times(server_pid),
            store: named_seconds(store),
        }
    }

    pub fn finish(self, server_pid: u32, store: &[&str]) -> Use {
        let wall = self.at.elapsed().as_secs_f64();
        let (user, system) = process_times(server_pid);
        Use {
            per_core: busy_between(&self.cores, &cores()),
            server: (user + system - self.server.0 - self.server.1) / wall,
            server_kernel: (system - self.server.1) / wall,
            store: (named_seconds(store) - self.store) / wall,
        }
    }
}
