//! Runs wrk and reads its figures from a Lua `done()` that prints them as JSON (wrk's own text
//! changes units with the size of a number: a latency in minutes broke the old parser).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, bail};
use serde::Deserialize;
use tokio::process::Command;

use crate::cpu;

/// The core wrk runs on in a pinned run; the shop runs on the other.
pub const LOAD_CORE: &str = "1";

/// The line `done()` prints, and the fields it carries (times in microseconds).
const MARKER: &str = "WRK_JSON ";
const DONE: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"status_errors":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
"#;

#[derive(Debug, Deserialize)]
struct Done {
    requests: u64,
    duration_us: u64,
    p50_us: u64,
    p99_us: u64,
    status_errors: u64,
    connect: u64,
    read: u64,
    write: u64,
    timeout: u64,
}

#[derive(Debug, Clone, Default)]
pub struct WrkResult {
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Responses with a status of 400 or more (wrk counts those as status errors).
    pub non_success: u64,
    pub socket_errors: u64,
    /// wrk's own CPU time over the run's wall time, in cores.
    pub wrk_cpu: f64,
}

pub struct Load<'a> {
    pub url: String,
    /// A script written by [`script`]: it carries the `done()` that reports.
    pub script: &'a Path,
    pub headers: Vec<String>,
    pub connections: u32,
    pub seconds: u32,
    /// Pinned: one wrk thread on [`LOAD_CORE`]. Unpinned: two threads, anywhere.
    pub pinned: bool,
}

impl Load<'_> {
    pub fn threads(&self) -> u32 {
        if self.pinned { 1 } else { 2 }
    }
}

/// Writes `body` (a wrk script, possibly empty) followed by the reporting `done()`.
pub fn script(dir: &Path, name: &str, body: &str) -> anyhow::Result<PathBuf> {
    let file = dir.join(format!("{name}.lua"));
    std::fs::write(&file, format!("{body}\n{DONE}"))?;
    Ok(file)
}

pub fn parse(output: &str) -> anyhow::Result<WrkResult> {
    let json = output
        .lines()
        .find_map(|line| line.strip_prefix(MARKER))
        .with_context(|| format!("wrk printed no report:\n{output}"))?;
    let done: Done = serde_json::from_str(json).context("wrk's report")?;
    if done.requests == 0 || done.duration_us == 0 {
        bail!("wrk completed no request:\n{output}");
    }
    Ok(WrkResult {
        requests: done.requests,
        rps: done.requests as f64 / (done.duration_us as f64 / 1e6),
        p50_ms: done.p50_us as f64 / 1000.0,
        p99_ms: done.p99_us as f64 / 1000.0,
        non_success: done.status_errors,
        socket_errors: done.connect + done.read + done.write + done.timeout,
        wrk_cpu: 0.0,
    })
}

pub async fn run(load: &Load<'_>) -> anyhow::Result<WrkResult> {
    let mut command = if load.pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", LOAD_CORE, "wrk"]);
        c
    } else {
        Command::new("wrk")
    };
    command.arg(format!("-t{}", load.threads()));
    command
        .args(["--timeout", "5s"])
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.seconds))
        .arg("-s")
        .arg(load.script);
    for header in &load.headers {
        command.arg("-H").arg(header);
    }
    // wrk's CPU time: what this process's waited-for children used, before and after.
    let cpu_before = cpu::children_seconds();
    let started = Instant::now();
    let output = command
        .arg(&load.url)
        .arg("--")
        .arg(load.threads().to_string())
        .stderr(Stdio::inherit())
        .output()
        .await
        .context("could not run wrk (apt-get install wrk)")?;
    let wall = started.elapsed().as_secs_f64();
    let mut result = parse(&String::from_utf8_lossy(&output.stdout))?;
    result.wrk_cpu = (cpu::children_seconds() - cpu_before) / wall;
    Ok(result)
}

#[cfg(test)]
mod tests {
    #[test]
    fn wrk_report_is_read() {
        // Latencies in microseconds whatever their size: 2 minutes is just a big number.
        let output = "Running 5s test @ http://127.0.0.1:1/cart
  1 threads and 64 connections
WRK_JSON {\"requests\":53021,\"duration_us\":5000000,\"p50_us\":512,\"p99_us\":120000000,\
\"status_errors\":7,\"connect\":0,\"read\":2,\"write\":0,\"timeout\":1}
";
        let r = super::parse(output).unwrap();
        assert_eq!(r.requests, 53021);
        assert!((r.p50_ms - 0.512).abs() < 1e-9);
        assert!((r.p99_ms - 120_000.0).abs() < 1e-9);
        assert_eq!(r.non_success, 7);
        assert_eq!(r.socket_errors, 3);
        assert!((r.rps - 10604.2).abs() < 1e-9);
    }

    #[test]
    fn a_run_without_a_report_is_an_error() {
        assert!(super::parse("Running 5s test\n").is_err());
    }
}
