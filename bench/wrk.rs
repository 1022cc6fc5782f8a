//! Runs wrk pinned to its own core and reads its summary.

use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, bail};
use tokio::process::Command;

/// The core wrk runs on; the shop runs on core 0.
pub const LOAD_CORE: &str = "1";

#[derive(Debug, Clone, Default)]
pub struct WrkResult {
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Responses that were not 2xx or 3xx.
    pub non_success: u64,
    pub socket_errors: u64,
}

pub struct Load<'a> {
    pub url: String,
    pub script: Option<&'a Path>,
    pub headers: Vec<String>,
    pub connections: u32,
    pub seconds: u32,
}

fn millis(value: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = value.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = value.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    Some(number.parse::<f64>().ok()? * factor)
}

pub fn parse(output: &str) -> anyhow::Result<WrkResult> {
    let mut result = WrkResult::default();
    for line in output.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", value] => result.p50_ms = millis(value).context("a 50% latency")?,
            ["99%", value] => result.p99_ms = millis(value).context("a 99% latency")?,
            ["Requests/sec:", value] => result.rps = value.parse()?,
            [count, "requests", "in", ..] => result.requests = count.parse()?,
            ["Non-2xx", "or", "3xx", "responses:", count] => result.non_success = count.parse()?,
            ["Socket", "errors:", rest @ ..] => {
                result.socket_errors = rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    if result.requests == 0 {
        bail!("wrk completed no request:\n{output}");
    }
    Ok(result)
}

pub async fn run(load: &Load<'_>) -> anyhow::Result<WrkResult> {
    let mut command = Command::new("taskset");
    command
        .args([
            "-c",
            LOAD_CORE,
            "wrk",
            "-t1",
            "--latency",
            "--timeout",
            "5s",
        ])
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.seconds));
    if let Some(script) = load.script {
        command.arg("-s").arg(script);
    }
    for header in &load.headers {
        command.arg("-H").arg(header);
    }
    let output = command
        .arg(&load.url)
        .stderr(Stdio::inherit())
        .output()
        .await
        .context("could not run wrk (apt-get install wrk)")?;
    parse(&String::from_utf8_lossy(&output.stdout))
}

#[cfg(test)]
mod tests {
    #[test]
    fn wrk_output_is_read() {
        let output = "Running 5s test @ http://127.0.0.1:1/cart
  1 threads and 64 connections
  Latency Distribution
     50%  512.00us
     75%    1.02ms
     90%    2.00ms
     99%    3.50ms
  53021 requests in 5.00s, 400.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  10604.20
";
        let r = super::parse(output).unwrap();
        assert_eq!(r.requests, 53021);
        assert!((r.p50_ms - 0.512).abs() < 1e-9);
        assert!((r.p99_ms - 3.5).abs() < 1e-9);
        assert_eq!(r.non_success, 7);
        assert_eq!(r.socket_errors, 3);
        assert!((r.rps - 10604.2).abs() < 1e-9);
    }
}
