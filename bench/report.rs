//! The benchmark's tables, the targets they are held to, and a chart.

use std::fmt::Write;

use shop::lab::svg::Chart;
use shop::session::Backend;

use crate::wrk::WrkResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Anonymous,
    Read,
    ManySessions,
    Write,
    Login,
}

impl Path {
    pub fn label(self) -> &'static str {
        match self {
            Path::Anonymous => "anonymous: GET / (no cookie)",
            Path::Read => "read: GET /cart",
            Path::ManySessions => "read, 1,000 sessions",
            Path::Write => "write: POST /cart/items",
            Path::Login => "login: POST /login",
        }
    }
}

pub struct Row {
    pub path: Path,
    pub wrk: WrkResult,
    pub calls_per_request: f64,
    pub writes_per_request: f64,
    pub bytes_written_per_request: f64,
}

pub struct StoreRun {
    pub store: Backend,
    pub rows: Vec<Row>,
    pub bytes_per_session: usize,
    pub acknowledged_adds: u64,
    pub items_in_carts: u64,
    pub rss_small_kib: u64,
    pub rss_large_kib: u64,
    pub sessions_created: u64,
    pub peak_rss_kib: u64,
}

impl StoreRun {
    fn row(&self, path: Path) -> Option<&Row> {
        self.rows.iter().find(|r| r.path == path)
    }
}

/// The issue's targets: (read ratio, write ratio) of the ceiling.
fn targets(store: Backend) -> (f64, f64) {
    match store {
        Backend::Redis | Backend::Memcached => (0.5, 0.3),
        Backend::Postgres => (0.25, 0.05),
        _ => (0.25, 0.0),
    }
}

pub fn print_store(run: &StoreRun) {
    for row in &run.rows {
        println!(
            "   {:<26} {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  store calls/req {:.2}  writes/req {:.2}  non-2xx/3xx {}",
            row.path.label(),
            row.wrk.rps,
            row.wrk.p50_ms,
            row.wrk.p99_ms,
            row.calls_per_request,
            row.writes_per_request,
            row.wrk.non_success
        );
    }
    println!(
        "   write check: {} adds acknowledged to 64 clients, {} items added to the carts",
        run.acknowledged_adds, run.items_in_carts
    );
}

fn held(ok: bool) -> &'static str {
    if ok { "holds" } else { "MISSED" }
}

pub fn markdown(runs: &[StoreRun], ceiling: &WrkResult, seconds: u32) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Session store benchmark\n\nRelease build; the shop (1 worker) pinned to core 0, wrk pinned to core 1 \
         (`taskset`), 64 connections, {seconds} s a run, loopback. The store servers are not pinned. \
         Ceiling: a bare actix-web server serving the same cart page with no session and no \
         database: **{:.0} req/s**, p99 {:.2} ms.\n",
        ceiling.rps, ceiling.p99_ms
    );
    for run in runs {
        let _ = writeln!(out, "## {}\n", run.store);
        out.push_str(
            "| path | req/s | p50 ms | p99 ms | × ceiling | store calls/req | store writes/req | bytes written/req | errors |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        );
        for row in &run.rows {
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {} |",
                row.path.label(),
                row.wrk.rps,
                row.wrk.p50_ms,
                row.wrk.p99_ms,
                row.wrk.rps / ceiling.rps,
                row.calls_per_request,
                row.writes_per_request,
                row.bytes_written_per_request,
                row.wrk.non_success + row.wrk.socket_errors
            );
        }
        let _ = writeln!(
            out,
            "\nBytes stored for a logged-in session with a 5-line cart: {}. Server peak RSS: {:.1} MiB. \
             RSS before and after {} more live sessions: {:.1} → {:.1} MiB. Write check (64 clients, every \
             add completed): {} adds acknowledged, {} items added to the carts ({}).\n",
            run.bytes_per_session,
            run.peak_rss_kib as f64 / 1024.0,
            run.sessions_created,
            run.rss_small_kib as f64 / 1024.0,
            run.rss_large_kib as f64 / 1024.0,
            run.acknowledged_adds,
            run.items_in_carts,
            if run.acknowledged_adds == run.items_in_carts {
                "equal"
            } else {
                "NOT EQUAL"
            }
        );
    }
    out.push_str("## Targets\n\n| store | read ≥ target × ceiling | write ≥ target × ceiling | read p99 < 3 ms | one store call, no write on a read | no store call for anonymous views | RSS growth ≤ 5 MiB |\n| --- | --- | --- | --- | --- | --- | --- |\n");
    for run in runs {
        let (read_target, write_target) = targets(run.store);
        let (Some(read), Some(write)) = (run.row(Path::Read), run.row(Path::Write)) else {
            continue;
        };
        let read_ratio = read.wrk.rps / ceiling.rps;
        let write_ratio = write.wrk.rps / ceiling.rps;
        let p99 = if matches!(run.store, Backend::Redis | Backend::Memcached) {
            format!("{:.2} ms: {}", read.wrk.p99_ms, held(read.wrk.p99_ms < 3.0))
        } else {
            format!("{:.2} ms (no target)", read.wrk.p99_ms)
        };
        let write = if write_target > 0.0 {
            format!(
                "{write_ratio:.2} vs {write_target}: {}",
                held(write_ratio >= write_target)
            )
        } else {
            format!("{write_ratio:.2} (no target)")
        };
        let one_call =
            (read.calls_per_request - 1.0).abs() < 0.01 && read.writes_per_request == 0.0;
        let anonymous = run.row(Path::Anonymous).map_or_else(
            || "not run".to_owned(),
            |row| {
                format!(
                    "{:.2} calls, {:.2} writes: {}",
                    row.calls_per_request,
                    row.writes_per_request,
                    held(row.calls_per_request == 0.0 && row.writes_per_request == 0.0)
                )
            },
        );
        // Growth is what would betray state kept in the process; shrinking is the allocator.
        let rss_delta = run.rss_large_kib.saturating_sub(run.rss_small_kib) as f64 / 1024.0;
        let _ = writeln!(
            out,
            "| {} | {read_ratio:.2} vs {read_target}: {} | {write} | {p99} | {:.2} calls, {:.2} writes: {} | {anonymous} | {rss_delta:.1} MiB: {} |",
            run.store,
            held(read_ratio >= read_target),
            read.calls_per_request,
            read.writes_per_request,
            held(one_call),
            held(rss_delta <= 5.0)
        );
    }
    out
}

/// Bars of each path's throughput as a fraction of the ceiling, per store.
pub fn svg(runs: &[StoreRun], ceiling: &WrkResult) -> String {
    let paths = [
        Path::Anonymous,
        Path::Read,
        Path::ManySessions,
        Path::Write,
        Path::Login,
    ];
    let colors = ["#38a169", "#2b6cb0", "#63b3ed", "#dd6b20", "#718096"];
    let (group, bar, left, width) = (132.0, 22.0, 40.0, 720.0);
    let mut chart = Chart::new(
        width + 260.0,
        108.0 + group * runs.len() as f64,
        13,
        &format!(
            "Requests per second as a fraction of the ceiling ({:.0} req/s)",
            ceiling.rps
        ),
    );
    for (i, (path, color)) in paths.iter().zip(colors).enumerate() {
        let x = 20.0 + 190.0 * (i % 4) as f64;
        let y = 38.0 + 18.0 * (i / 4) as f64;
        chart.bar(x, y, 12.0, 12.0, color);
        chart.text(x + 16.0, y + 11.0, "", path.label());
    }
    for (g, run) in runs.iter().enumerate() {
        let y0 = 88.0 + group * g as f64;
        chart.text(20.0, y0 + 12.0, r#"font-weight="bold""#, run.store.name());
        for (i, (path, color)) in paths.iter().zip(colors).enumerate() {
            let Some(row) = run.row(*path) else { continue };
            let ratio = (row.wrk.rps / ceiling.rps).min(1.0);
            let y = y0 + 18.0 + bar * i as f64;
            chart.bar(left, y, ratio * width * 0.8, bar - 4.0, color);
            chart.text(
                left + ratio * width * 0.8 + 6.0,
                y + 13.0,
                "",
                &format!("{:.2} ({:.0}/s)", row.wrk.rps / ceiling.rps, row.wrk.rps),
            );
        }
    }
    chart.finish()
}
