//! The benchmark's tables, the targets they are held to, and a chart.

use std::fmt::Write;

use shop::session::Backend;
use shop_lab::svg::Chart;

use crate::cpu::Use;
use crate::wrk::WrkResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Anonymous,
    Read,
    ManySessions,
    Write,
    Mix,
    Login,
}

impl Path {
    pub const ALL: [Path; 6] = [
        Path::Anonymous,
        Path::Read,
        Path::ManySessions,
        Path::Write,
        Path::Mix,
        Path::Login,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Path::Anonymous => "anonymous: GET / (no cookie)",
            Path::Read => "read: GET /cart",
            Path::ManySessions => "read, 1,000 sessions",
            Path::Write => "write: POST /cart/items",
            Path::Mix => "mix: 80% pages, 15% cart, 5% changes",
            Path::Login => "login: POST /login",
        }
    }

    /// For file names.
    pub fn slug(self) -> &'static str {
        match self {
            Path::Anonymous => "anonymous",
            Path::Read => "read",
            Path::ManySessions => "many-sessions",
            Path::Write => "write",
            Path::Mix => "mix",
            Path::Login => "login",
        }
    }
}

/// The rates of the latency curve, the same for every store (each store's curve stops short
/// of 90% of what it reached with the mix saturated; the stores are compared, and the bound
/// applies, up to [`common_curve_top`]).
pub const CURVE_RATES: [f64; 6] = [250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0];

/// The rate the decision table compares every store's tail at: on the curve of each store.
const COMMON_RATE: f64 = 1000.0;

/// A point of the latency curve whose p99 is above this fails the run: a shopper waits.
const CURVE_P99_BOUND_MS: f64 = 100.0;

/// The shortest point the bound applies to.
const CURVE_BOUND_SECONDS: u32 = 3;

/// How far up the curve every store is compared: 90% of the slowest store's saturated mix in
/// this run. Each store runs the curve up to 90% of its own (the stores are measured one after
/// another, so the slowest is known only at the end); a point above this one only that store
/// reached compares nothing, and it is close enough to its closed-loop maximum to measure a
/// queue: open loop, each request pays its own wake-ups, which wrk's batches share. So the
/// bound does not apply there; a failed request there still fails the run.
pub fn common_curve_top(runs: &[StoreRun]) -> f64 {
    0.9 * runs
        .iter()
        .filter_map(|run| run.row(Path::Mix))
        .map(Row::rps)
        .fold(f64::INFINITY, f64::min)
}

/// Every failure of the shop the whole run saw, each store's named (see [`StoreRun::failures`]).
pub fn failures(runs: &[StoreRun]) -> Vec<String> {
    let top = common_curve_top(runs);
    runs.iter().flat_map(|run| run.failures(top)).collect()
}

/// One run of a path.
pub struct Sample {
    pub wrk: WrkResult,
    pub cpu: Use,
    pub calls: u64,
    pub writes: u64,
    pub bytes: u64,
    /// Why the run does not count, if it does not.
    pub invalid: Option<String>,
}

/// A path's runs; its figures are the medians of the valid ones.
pub struct Row {
    pub path: Path,
    pub samples: Vec<Sample>,
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

impl Row {
    fn valid(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(|s| s.invalid.is_none())
    }

    pub fn valid_count(&self) -> usize {
        self.valid().count()
    }

    fn median_of(&self, f: impl Fn(&Sample) -> f64) -> f64 {
        median(self.valid().map(f).collect())
    }

    /// Median requests per second of the valid runs (NaN when none was valid).
    pub fn rps(&self) -> f64 {
        self.median_of(|s| s.wrk.rps)
    }

    /// (lowest, highest) requests per second of the valid runs, as ± percent of the median.
    pub fn spread_percent(&self) -> f64 {
        let rps: Vec<f64> = self.valid().map(|s| s.wrk.rps).collect();
        let (low, high) = rps
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        (high - low) / 2.0 / self.rps() * 100.0
    }

    /// Requests per second as the report prints them: the median, and ± half the range when
    /// two or more runs were valid (one run has no spread to give: "±0.0%" read as certainty).
    pub fn rps_text(&self) -> String {
        match self.valid_count() {
            0 | 1 => format!("{:.0}", self.rps()),
            _ => format!("{:.0} ±{:.1}%", self.rps(), self.spread_percent()),
        }
    }

    pub fn p50_ms(&self) -> f64 {
        self.median_of(|s| s.wrk.p50_ms)
    }

    pub fn p99_ms(&self) -> f64 {
        self.median_of(|s| s.wrk.p99_ms)
    }

    fn per_request(&self, f: impl Fn(&Sample) -> u64) -> f64 {
        let requests: u64 = self.valid().map(|s| s.wrk.requests).sum();
        self.valid().map(f).sum::<u64>() as f64 / requests.max(1) as f64
    }

    pub fn calls_per_request(&self) -> f64 {
        self.per_request(|s| s.calls)
    }

    pub fn writes_per_request(&self) -> f64 {
        self.per_request(|s| s.writes)
    }

    pub fn bytes_per_request(&self) -> f64 {
        self.per_request(|s| s.bytes)
    }

    /// Error responses and socket errors over all runs, valid or not.
    pub fn errors(&self) -> u64 {
        self.samples
            .iter()
            .map(|s| s.wrk.non_success + s.wrk.socket_errors)
            .sum()
    }

    /// Median CPU use, in cores: (shop, store, wrk, each core).
    fn cpu(&self) -> String {
        let cores: Vec<String> = (0..self.samples.first().map_or(0, |s| s.cpu.per_core.len()))
            .map(|i| {
                format!(
                    "{:.0}",
                    self.median_of(|s| s.cpu.per_core.get(i).copied().unwrap_or(0.0)) * 100.0
                )
            })
            .collect();
        format!(
            "shop {:.2} (kernel {:.2}), store {:.2}, wrk {:.2}; cores {}%",
            self.median_of(|s| s.cpu.server),
            self.median_of(|s| s.cpu.server_kernel),
            self.median_of(|s| s.cpu.store),
            self.median_of(|s| s.wrk.wrk_cpu),
            cores.join("/")
        )
    }

    /// The shop's CPU time per request, in microseconds: (in its own code, in the kernel).
    pub fn cpu_micros(&self) -> (f64, f64) {
        let micros = |cores: f64, rps: f64| cores * 1e6 / rps;
        (
            self.median_of(|s| micros(s.cpu.server - s.cpu.server_kernel, s.wrk.rps)),
            self.median_of(|s| micros(s.cpu.server_kernel, s.wrk.rps)),
        )
    }

    fn runs(&self) -> String {
        let invalid = self.samples.len() - self.valid_count();
        if invalid == 0 {
            format!("{}", self.valid_count())
        } else {
            format!("{} (+{invalid} invalid)", self.valid_count())
        }
    }
}

pub struct StoreRun {
    pub store: Backend,
    /// The store as the report names it: `redis`, or `redis-cluster` with its settings.
    pub name: String,
    /// Its durability as the run found it configured, and what a crash loses with it.
    pub durability: String,
    pub rows: Vec<Row>,
    /// Read and write again with 2 workers on both cores, wrk unpinned.
    pub scaled: Vec<Row>,
    /// The peer's read and write on the same store (`--peer`), when it was measured: doing the
    /// same work, and bare.
    pub peer: Vec<crate::peers::PeerRun>,
    /// The read and write paths at half their rate, open loop.
    pub steady: Vec<(Path, crate::steady::Steady)>,
    /// The mix at each of [`CURVE_RATES`] up to 90% of the store's own saturated rate with it.
    pub curve: Vec<crate::steady::Steady>,
    /// Seconds each point of the curve ran: under [`CURVE_BOUND_SECONDS`], its p99 is mostly
    /// the first connections' and the bound does not apply (CI's one-second smoke runs).
    pub curve_seconds: u32,
    /// What `--store-sessions` more signed-in sessions cost the store itself.
    pub store_memory: Option<crate::store_memory::StoreMemory>,
    pub bytes_per_session: usize,
    pub acknowledged_adds: u64,
    pub items_in_carts: u64,
    /// Sessions made by the run that brought the allocator to its working set.
    pub warmup_sessions: u64,
    pub rss_small_kib: u64,
    pub rss_large_kib: u64,
    pub sessions_created: u64,
    pub peak_rss_kib: u64,
}

impl StoreRun {
    fn row(&self, path: Path) -> Option<&Row> {
        self.rows.iter().find(|r| r.path == path)
    }

    fn scaled(&self, path: Path) -> Option<&Row> {
        self.scaled.iter().find(|r| r.path == path)
    }

    /// Every failure of the shop this run saw, named: error responses and socket errors in
    /// any run (saturated, with 2 workers, or open loop), and acknowledged adds missing from
    /// the carts. A request that fails under load is a bug, so any of these fails the run, as
    /// does a p99 over the bound on the curve up to `common_top` ([`common_curve_top`]).
    pub fn failures(&self, common_top: f64) -> Vec<String> {
        let mut failures = Vec::new();
        let failed = |row: &Row, how: &str, failures: &mut Vec<String>| {
            let (status, socket) = row.samples.iter().fold((0, 0), |(s, e), sample| {
                (s + sample.wrk.non_success, e + sample.wrk.socket_errors)
            });
            if status + socket > 0 {
                failures.push(format!(
                    "{}, {}{how}: {status} error responses and {socket} socket errors",
                    self.name,
                    row.path.label()
                ));
            }
        };
        for row in &self.rows {
            failed(row, "", &mut failures);
        }
        for row in &self.scaled {
            failed(row, " (2 workers)", &mut failures);
        }
        for (path, steady) in &self.steady {
            if steady.failed > 0 {
                failures.push(format!(
                    "{}, {} at half load ({:.0} req/s, open loop): {} of {} failed ({})",
                    self.name,
                    path.label(),
                    steady.rate,
                    steady.failed,
                    steady.sent,
                    steady
                        .failures
                        .iter()
                        .map(|(why, count)| format!("{why}: {count}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        for point in &self.curve {
            let over = point.p99_ms > CURVE_P99_BOUND_MS
                && self.curve_seconds >= CURVE_BOUND_SECONDS
                && point.rate <= common_top;
            if point.failed > 0 || over {
                failures.push(format!(
                    "{}, the mix at {:.0} req/s (open loop): p99 {:.1} ms (bound {CURVE_P99_BOUND_MS:.0} ms), {} of {} failed",
                    self.name, point.rate, point.p99_ms, point.failed, point.sent
                ));
            }
        }
        if self.acknowledged_adds != self.items_in_carts {
            failures.push(format!(
                "{}: {} adds acknowledged, {} items in the carts",
                self.name, self.acknowledged_adds, self.items_in_carts
            ));
        }
        failures
    }

    fn peer(&self, mode: crate::peers::PeerMode, path: Path) -> Option<&Row> {
        self.peer
            .iter()
            .filter(|run| run.mode == mode)
            .flat_map(|run| &run.rows)
            .find(|r| r.path == path)
    }

    /// `path` at half load, open loop, if it ran.
    fn steady(&self, path: Path) -> Option<&crate::steady::Steady> {
        self.steady
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, run)| run)
    }

    /// The same-work peer's write at the shop's half-load rate, open loop, beside the shop's.
    fn steady_writes(&self) -> Option<(&crate::steady::Steady, &crate::steady::Steady)> {
        let shop = self.steady(Path::Write)?;
        let peer = self.peer.iter().find_map(|run| run.steady_write.as_ref())?;
        Some((shop, peer))
    }
}

/// What a team choosing a store needs from this one run, one row per store measured: its
/// throughput, its tail at a rate common to every store and at half its own load, what it
/// costs in CPU and memory, and what it keeps. The durability is the one the run read from the
/// store; the last columns are what the store and this shop's client of it offer.
fn decision_table(runs: &[StoreRun]) -> String {
    let mut out = format!(
        "| store | read req/s | write req/s | mix req/s | mix p99 at {} req/s | write p99 at half load | CPU-s per million (read / write / mix, shop + store) | MiB per 100,000 sessions | a crash loses | high availability, and what a failover loses | TLS, authentication |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |\n",
        grouped(COMMON_RATE)
    );
    let per_million = |row: Option<&Row>| {
        row.map_or("–".to_owned(), |row| {
            format!(
                "{:.0}",
                row.median_of(|s| (s.cpu.server + s.cpu.store) / s.wrk.rps * 1e6)
            )
        })
    };
    for (i, run) in runs.iter().enumerate() {
        let rps = |path| run.row(path).map_or("–".to_owned(), Row::rps_text);
        let tail = run.steady(Path::Write).map_or("–".to_owned(), |steady| {
            format!("{:.1} ms at {:.0} req/s", steady.p99_ms, steady.rate)
        });
        let common = run
            .curve
            .iter()
            .find(|point| point.rate == COMMON_RATE)
            .map_or("–".to_owned(), |point| format!("{:.1} ms", point.p99_ms));
        let memory = run.store_memory.as_ref().map_or("–".to_owned(), |m| {
            format!("{:.0}", m.bytes_per_session() * 100_000.0 / 1_048_576.0)
        });
        let loses = run
            .durability
            .split_once("a crash loses ")
            .map_or(run.durability.as_str(), |(_, loses)| loses);
        // A variant of a store measured above (a cluster, a setting, TLS) offers what it does:
        // its row names that row rather than repeat two long cells.
        let (available, secured) = match runs[..i].iter().find(|r| r.store == run.store) {
            Some(first) => (format!("as {}", first.name), format!("as {}", first.name)),
            None => {
                let (available, secured) = offers(run.store);
                (available.to_owned(), secured.to_owned())
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {common} | {tail} | {} / {} / {} | {memory} | {loses} | {available} | {secured} |",
            run.name,
            rps(Path::Read),
            rps(Path::Write),
            rps(Path::Mix),
            per_million(run.row(Path::Read)),
            per_million(run.row(Path::Write)),
            per_million(run.row(Path::Mix)),
        );
    }
    let _ = write!(
        out,
        "\nThroughput is one shop worker pinned to one core (req/s per shop core; the store's own \
         CPU is in the cost column). The mix is what a shop's traffic looks like: 80% catalog \
         and product pages, 15% cart reads, 5% cart changes, all signed in. Its p99 is open \
         loop at {} req/s on every store (\"–\": the store could not sustain it \
         here); the write p99 is open loop at half the store's own saturated rate. A store \
         outage is the same on every network store: pages answer 503 \"Back in a moment\" with \
         `Retry-After`, nothing acknowledged is lost, and the shop recovers without a \
         restart.\n\n",
        grouped(COMMON_RATE)
    );
    out
}

/// A whole number with its thousands grouped: 8000 as "8,000".
fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if value < 0.0 { format!("-{out}") } else { out }
}

/// Where the README's copy of the decision table starts and ends (`bash bench/run --readme`).
const README_START: &str =
    "<!-- bench:decision-table: written by `bash bench/run --readme`, from one run -->";
const README_END: &str = "<!-- /bench:decision-table -->";

/// `readme` with the part between its markers replaced by this run's decision table and
/// chart, `results` being where the run wrote its reports (relative to the README).
pub fn with_decision_table(
    readme: &str,
    runs: &[StoreRun],
    how: &str,
    results: &str,
) -> anyhow::Result<String> {
    let (Some(start), Some(end)) = (readme.find(README_START), readme.find(README_END)) else {
        anyhow::bail!("README.md has no {README_START} … {README_END} markers");
    };
    let section = format!(
        "{README_START}\n\nOne run of `bash bench/run --readme` on this 2-core machine ({how}); every \
         figure in it, the latency curve and the rest in [{results}/latest.md]({results}/latest.md).\n\n\
         {}![The mix's p99 against the offered rate, a line per store]({results}/curve.svg)\n\n",
        decision_table(runs)
    );
    Ok(format!("{}{section}{}", &readme[..start], &readme[end..]))
}

/// What a store offers for availability, and for encryption and authentication, with this
/// shop's client of it.
fn offers(store: Backend) -> (&'static str, &'static str) {
    match store {
        Backend::Redis => (
            "Redis Cluster (`REDIS_CLUSTER_NODES`): a failover loses writes acknowledged \
             but not yet on a replica when the master died (replication lags by milliseconds), \
             none with `REDIS_MIN_REPLICAS_ACK=1`",
            "TLS (`rediss://`), password",
        ),
        Backend::Postgres => (
            "a replicated PostgreSQL with failover, outside the shop: nothing committed with \
             synchronous replication, the last moments' commits with asynchronous",
            "TLS (`sslmode`), password",
        ),
        Backend::Memcached => (
            "none: keys spread over servers, a lost server signs out its sessions",
            "neither in this shop's client (the memcache crate has no TLS): a private network, \
             or a tunnel (stunnel, WireGuard)",
        ),
        _ => ("none: one host's file", "not applicable: a local file"),
    }
}

/// The ceiling with 1 worker pinned, and with 2 workers unpinned.
pub struct Ceilings {
    pub one: Row,
    pub two: Row,
}

/// The issue's targets: (read ratio, write ratio) of the ceiling.
fn targets(store: Backend) -> (f64, f64) {
    match store {
        Backend::Redis | Backend::Memcached => (0.55, 0.30),
        Backend::Postgres => (0.22, 0.05),
        _ => (0.30, 0.10),
    }
}

pub fn print_row(row: &Row) {
    println!(
        "   {:<26} {:>14} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  store calls/req {:.2}  writes/req {:.2}  errors {}  runs {}  CPU {}",
        row.path.label(),
        row.rps_text(),
        row.p50_ms(),
        row.p99_ms(),
        row.calls_per_request(),
        row.writes_per_request(),
        row.errors(),
        row.runs(),
        row.cpu()
    );
}

pub fn print_store(run: &StoreRun) {
    println!(
        "   write check: {} adds acknowledged to 64 clients, {} items added to the carts",
        run.acknowledged_adds, run.items_in_carts
    );
}

fn held(ok: bool) -> &'static str {
    if ok { "holds" } else { "MISSED" }
}

pub fn markdown(runs: &[StoreRun], ceilings: &Ceilings, how: &str) -> String {
    let ceiling = ceilings.one.rps();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Session store benchmark\n\nRelease build; the shop (1 worker) pinned to core 0, wrk (1 thread) \
         pinned to core 1 (`taskset`), 64 connections, {how}, loopback. The store servers are not \
         pinned. Figures are medians of the valid runs, ± half their range. A run is invalid (and \
         not counted) when the machine was more than 10% busy in the half second before it, or \
         when wrk used 90% or more of its core (the load, not the shop, was the limit). CPU: cores \
         used by the shop, the store's server processes and wrk, and how busy each core was. \
         The project's own yardsticks (a bare server's ceiling, its speed targets, instructions \
         per request) are in the developers' appendix at the end.\n"
    );
    let failures = failures(runs);
    if !failures.is_empty() {
        let _ = writeln!(
            out,
            "## This run failed\n\nA request that fails under load is a bug; the figures below \
             are not a result until these are explained and gone:\n"
        );
        for failure in &failures {
            let _ = writeln!(out, "- {failure}");
        }
        out.push('\n');
    }
    out.push_str("## Choosing a store: this run in one table\n\n");
    out.push_str(&decision_table(runs));
    curve_section(&mut out, runs);
    for run in runs {
        let _ = writeln!(out, "## {}\n", run.name);
        let _ = writeln!(out, "Durability as configured: {}.\n", run.durability);
        out.push_str(
            "| path | req/s | p50 ms | p99 ms | store calls/req | store writes/req | bytes written/req | errors | runs | CPU (cores) |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |\n",
        );
        for row in &run.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {} | {} | {} |",
                row.path.label(),
                row.rps_text(),
                row.p50_ms(),
                row.p99_ms(),
                row.calls_per_request(),
                row.writes_per_request(),
                row.bytes_per_request(),
                row.errors(),
                row.runs(),
                row.cpu()
            );
        }
        let _ = writeln!(
            out,
            "\nBytes stored for a logged-in session with a 5-line cart: {}. Server peak RSS: {:.1} MiB. \
             RSS after {} new sessions (the allocator's working set) and after {} more: {:.1} → {:.1} MiB. \
             Write check (64 clients, every add completed): {} adds acknowledged, {} items added to the \
             carts ({}).\n",
            run.bytes_per_session,
            run.peak_rss_kib as f64 / 1024.0,
            run.warmup_sessions,
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
    let _ = writeln!(
        out,
        "## Scaling with cores\n\nThe same shop with 2 workers on both cores, wrk unpinned with 2 threads \
         (so the shop, wrk and the store share the two cores).\n\n\
         | store | read, 1 worker | read, 2 workers | × | write, 1 worker | write, 2 workers | × |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for run in runs {
        let cell = |path| {
            let (Some(one), Some(two)) = (run.row(path), run.scaled(path)) else {
                return "| | | |".to_owned();
            };
            format!(
                "| {:.0} | {} | {:.2} ",
                one.rps(),
                two.rps_text(),
                two.rps() / one.rps()
            )
        };
        let _ = writeln!(
            out,
            "| {} {}{}|",
            run.name,
            cell(Path::Read),
            cell(Path::Write)
        );
    }
    peer_section(&mut out, runs);
    steady_section(&mut out, runs);
    let costs: Vec<_> = runs
        .iter()
        .filter_map(|run| Some((run.name.as_str(), run.store_memory.as_ref()?)))
        .collect();
    out.push_str(&store_memory_section(&costs));
    let _ = writeln!(
        out,
        "\n## Developers' appendix: the ceiling, the project's targets\n\nNot a property of the \
         stores: what the project holds its own code to. The ceiling is a bare actix-web server \
         serving the same cart page with no session and no database: **{} req/s**, p99 {:.2} ms{}; \
         with 2 workers, unpinned, **{:.0} req/s**. Its own figure moves between runs far more \
         than the shop's do; instructions per request, which do not move, are \
         `bash bench/run --instructions` (`instructions.md`).\n\n\
         | path | store | req/s | × ceiling |\n| --- | --- | ---: | ---: |",
        ceilings.one.rps_text(),
        ceilings.one.p99_ms(),
        if ceilings.one.median_of(|s| s.wrk.wrk_cpu) >= 0.9 {
            " (wrk used its whole core on it: the true ceiling may be higher, and every ratio \
             below a little flattering)"
        } else {
            ""
        },
        ceilings.two.rps()
    );
    for run in runs {
        for row in &run.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {:.2} |",
                row.path.label(),
                run.name,
                row.rps(),
                row.rps() / ceiling
            );
        }
    }
    cpu_section(&mut out, runs, ceilings);
    out.push_str("\n### Targets\n\n| store | read ≥ target × ceiling | write ≥ target × ceiling | read p99 < 3 ms | one store call, no write on a read | no store call for anonymous views | RSS growth ≤ 5 MiB |\n| --- | --- | --- | --- | --- | --- | --- |\n");
    for run in runs {
        let (read_target, write_target) = targets(run.store);
        let (Some(read), Some(write)) = (run.row(Path::Read), run.row(Path::Write)) else {
            continue;
        };
        let read_ratio = read.rps() / ceiling;
        let write_ratio = write.rps() / ceiling;
        let p99 = if matches!(run.store, Backend::Redis | Backend::Memcached) {
            format!("{:.2} ms: {}", read.p99_ms(), held(read.p99_ms() < 3.0))
        } else {
            format!("{:.2} ms (no target)", read.p99_ms())
        };
        let one_call =
            (read.calls_per_request() - 1.0).abs() < 0.01 && read.writes_per_request() == 0.0;
        let anonymous = run.row(Path::Anonymous).map_or_else(
            || "not run".to_owned(),
            |row| {
                format!(
                    "{:.2} calls, {:.2} writes: {}",
                    row.calls_per_request(),
                    row.writes_per_request(),
                    held(row.calls_per_request() == 0.0 && row.writes_per_request() == 0.0)
                )
            },
        );
        // Growth is what would betray state kept in the process; shrinking is the allocator.
        let rss_delta = run.rss_large_kib.saturating_sub(run.rss_small_kib) as f64 / 1024.0;
        let _ = writeln!(
            out,
            "| {} | {read_ratio:.2} vs {read_target}: {} | {write_ratio:.2} vs {write_target}: {} | {p99} | {:.2} calls, {:.2} writes: {} | {anonymous} | {rss_delta:.1} MiB: {} |",
            run.name,
            held(read_ratio >= read_target && read.errors() == 0),
            held(write_ratio >= write_target && write.errors() == 0),
            read.calls_per_request(),
            read.writes_per_request(),
            held(one_call),
            held(rss_delta <= 5.0)
        );
    }
    out
}

/// Where a request's time goes: the shop's CPU time per request in its own code and in the
/// kernel, against the time a request may take for the path's target to hold (the ceiling's
/// time divided by the target ratio). A kernel share above that budget is a floor no change to
/// the shop's own code can lower.
fn cpu_section(out: &mut String, runs: &[StoreRun], ceilings: &Ceilings) {
    let (user, kernel) = ceilings.one.cpu_micros();
    let ceiling = user + kernel;
    let _ = writeln!(
        out,
        "\n### Where a request's time goes\n\nThe shop's CPU time per request (1 worker, pinned: \
         cores used ÷ requests per second, medians of the valid runs), in its own code (user) and \
         in the kernel on its behalf (system calls, and the loopback packets they send and \
         receive; the store's own work is not in it). The budget is what a request may cost for \
         the path's target to hold: the ceiling's time ÷ the target ratio. The ceiling: \
         {user:.1} µs user + {kernel:.1} µs kernel = {ceiling:.1} µs a request.\n\n\
         | store | path | user µs | kernel µs | total µs | × ceiling's | budget µs (target) | kernel ÷ budget |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for run in runs {
        let (read_target, write_target) = targets(run.store);
        for (path, target) in [(Path::Read, read_target), (Path::Write, write_target)] {
            let Some(row) = run.row(path) else { continue };
            let (user, kernel) = row.cpu_micros();
            let budget = ceiling / target;
            let _ = writeln!(
                out,
                "| {} | {} | {user:.1} | {kernel:.1} | {:.1} | {:.1} | {budget:.1} ({target}) | {:.0}% |",
                run.name,
                path.label(),
                user + kernel,
                (user + kernel) / ceiling,
                kernel / budget * 100.0
            );
        }
    }
}

/// Latency at half load, open loop, beside the saturated runs' figures.
/// The latency curve: the mix at the same rates on every store, a column per rate.
fn curve_section(out: &mut String, runs: &[StoreRun]) {
    if runs.iter().all(|run| run.curve.is_empty()) {
        return;
    }
    let top = common_curve_top(runs);
    let top_rate = grouped(top.floor());
    let _ = write!(
        out,
        "## The latency curve: the mix at the same rates on every store\n\nOpen loop (as below), \
         each rate for the run's seconds; p50 / p99 / p99.9 in ms, and failed requests. A store's \
         curve stops short of 90% of the rate it reached with the mix saturated (\"–\"). The \
         stores are compared up to 90% of the slowest one's, {top_rate} req/s in this run: a \
         point above (†) only faster stores reached compares nothing and, that close to their own \
         maximum, measures a queue, so it is not drawn. Any failed request, or a p99 above \
         {CURVE_P99_BOUND_MS:.0} ms up to {top_rate} req/s (in points of {CURVE_BOUND_SECONDS} s \
         or more), fails the run. The chart: `curve.svg`.\n\n| store |"
    );
    for rate in CURVE_RATES {
        let _ = write!(out, " {} req/s |", grouped(rate));
    }
    out.push_str("\n| --- |");
    out.push_str(&" ---: |".repeat(CURVE_RATES.len()));
    out.push('\n');
    for run in runs {
        let _ = write!(out, "| {} |", run.name);
        for rate in CURVE_RATES {
            match run.curve.iter().find(|point| point.rate == rate) {
                Some(point) => {
                    let _ = write!(
                        out,
                        " {:.2} / {:.2} / {:.2}{}{} |",
                        point.p50_ms,
                        point.p99_ms,
                        point.p999_ms,
                        if point.failed > 0 {
                            format!(", **{} failed**", point.failed)
                        } else {
                            String::new()
                        },
                        if point.rate > top { " †" } else { "" }
                    );
                }
                None => out.push_str(" – |"),
            }
        }
        out.push('\n');
    }
    out.push('\n');
}

/// The latency curve drawn: p99 against the rate, a line per store, both axes logarithmic.
pub fn curve_svg(runs: &[StoreRun]) -> String {
    let colors = [
        "#2b6cb0", "#c53030", "#2f855a", "#b7791f", "#6b46c1", "#2c7a7b", "#97266d", "#4a5568",
    ];
    let (left, top, width, height) = (70.0, 60.0, 560.0, 300.0);
    let (low, high) = (CURVE_RATES[0], CURVE_RATES[CURVE_RATES.len() - 1]);
    let (floor_ms, ceiling_ms) = (0.1_f64, 1000.0_f64);
    let x = |rate: f64| left + width * (rate / low).ln() / (high / low).ln();
    let y = |ms: f64| {
        let ms = ms.clamp(floor_ms, ceiling_ms);
        top + height * (1.0 - (ms / floor_ms).ln() / (ceiling_ms / floor_ms).ln())
    };
    let mut chart = Chart::new(
        left + width + 260.0,
        top + height + 60.0,
        13,
        "p99 latency (ms) of the mix against the offered rate (req/s), open loop",
    );
    chart.bar(left, top + height, width, 1.0, "#4a5568");
    chart.bar(left, top, 1.0, height, "#4a5568");
    for rate in CURVE_RATES {
        chart.text(
            x(rate) - 14.0,
            top + height + 18.0,
            "",
            &format!("{rate:.0}"),
        );
    }
    for ms in [0.1, 1.0, 10.0, 100.0, 1000.0] {
        chart.bar(left, y(ms), width, 0.5, "#cbd5e0");
        chart.text(left - 50.0, y(ms) + 4.0, "", &format!("{ms} ms"));
    }
    chart.bar(left, y(CURVE_P99_BOUND_MS), width, 1.5, "#c53030");
    chart.text(
        left + width - 120.0,
        y(CURVE_P99_BOUND_MS) - 5.0,
        r##"fill="#c53030""##,
        "bound: fails the run",
    );
    let top = common_curve_top(runs);
    for (i, run) in runs.iter().filter(|run| !run.curve.is_empty()).enumerate() {
        let color = colors[i % colors.len()];
        let points: Vec<(f64, f64)> = run
            .curve
            .iter()
            .filter(|point| point.rate <= top)
            .map(|point| (x(point.rate), y(point.p99_ms)))
            .collect();
        chart.line(&points, color);
        let label_y = top + 16.0 + 20.0 * i as f64;
        chart.bar(left + width + 20.0, label_y - 10.0, 12.0, 12.0, color);
        chart.text(left + width + 38.0, label_y, "", &run.name);
    }
    chart.finish()
}

fn steady_section(out: &mut String, runs: &[StoreRun]) {
    if runs.iter().all(|run| run.steady.is_empty()) {
        return;
    }
    out.push_str(
        "\n## Latency at a steady rate\n\nEach path at half the rate its saturated runs \
         reached (their median), open loop: the requests go out on a fixed schedule whether or \
         not the earlier ones were answered, each timed from when it was due, from one thread \
         pinned to the load core (`bench/src/steady.rs`). Saturated: wrk's figures at full load, \
         64 connections, for comparison. Generator late: how late the generator itself sent at \
         its 99th percentile; well under the p99, the figures are the shop's.\n\n\
         | store | path | rate req/s | p50 ms | p99 ms | p99.9 ms | failed | generator late p99 ms | saturated p50 ms | saturated p99 ms |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for run in runs {
        for (path, steady) in &run.steady {
            let (p50, p99) = run
                .row(*path)
                .map_or((f64::NAN, f64::NAN), |row| (row.p50_ms(), row.p99_ms()));
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} of {} | {:.2} | {p50:.2} | {p99:.2} |",
                run.name,
                path.label(),
                steady.rate,
                steady.p50_ms,
                steady.p99_ms,
                steady.p999_ms,
                steady.failed,
                steady.sent,
                steady.late_p99_ms
            );
        }
    }
}

/// What sessions cost each store, as the store itself counts its memory or disk.
pub fn store_memory_section(costs: &[(&str, &crate::store_memory::StoreMemory)]) -> String {
    let Some((_, first)) = costs.first() else {
        return String::new();
    };
    let mut out = format!(
        "\n## What sessions cost the store\n\n{} signed-in sessions saved through the shop's own \
         store, each a copy of a real shopper's session with a 5-line cart under a user of its \
         own (so each also adds its user's sessions-index record, as a sign-in does), with the \
         store's memory or disk read by the store itself before and after. Redis's figure is \
         memory; PostgreSQL's and SQLite's are disk (PostgreSQL keeps hot pages in its shared \
         buffers besides); Memcached's `bytes` is its items' size, inside slabs of fixed size \
         classes that it allocates whole.\n\n\
         | store | bytes a session | MiB per 100,000 sessions | measured as | {} saves took |\n\
         | --- | ---: | ---: | --- | ---: |\n",
        first.sessions, first.sessions
    );
    for (name, cost) in costs {
        let _ = writeln!(
            out,
            "| {name} | {:.0} | {:.1} | {} | {:.1} s |",
            cost.bytes_per_session(),
            cost.mib_per_100k(),
            cost.measure,
            cost.seconds
        );
    }
    out
}

/// The shop against the issue's peer (axum with tower-sessions) on the same store, same run.
fn peer_section(out: &mut String, runs: &[StoreRun]) {
    if runs.iter().all(|run| run.peer.is_empty()) {
        return;
    }
    out.push_str(
        "\n## Against the peer\n\nThe peer (`bench/peer`): axum with tower-sessions, its session \
         in the same store, one worker pinned as the shop is, the same wrk loads, in two modes. \
         Doing the same work: a private (encrypted) cookie, the cart page rendered with askama \
         from the shop's own templates and the same data, the shop's security headers, a form \
         token checked on every write. Bare (what the guarantees cost): its read answers the \
         ceiling's page bytes with no render, token or headers, its write changes a line with no \
         token. Neither compares-and-sets (a concurrent change is lost). CPU: the server's \
         microseconds per request, user + kernel.\n\n\
         | store | path | peer | shop req/s | peer req/s | shop ÷ peer | shop p99 ms | peer p99 ms | shop CPU µs | peer CPU µs | peer errors |\n\
         | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for run in runs {
        for (path, mode) in [Path::Read, Path::Write]
            .into_iter()
            .flat_map(|path| crate::peers::PeerMode::ALL.map(|mode| (path, mode)))
        {
            let (Some(shop), Some(peer)) = (run.row(path), run.peer(mode, path)) else {
                continue;
            };
            let micros = |row: &Row| {
                let (user, kernel) = row.cpu_micros();
                format!("{user:.1} + {kernel:.1}")
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
                run.name,
                path.label(),
                mode.label(),
                shop.rps_text(),
                peer.rps_text(),
                shop.rps() / peer.rps(),
                shop.p99_ms(),
                peer.p99_ms(),
                micros(shop),
                micros(peer),
                peer.errors()
            );
        }
    }
    let tails: Vec<_> = runs
        .iter()
        .filter_map(|run| run.steady_writes().map(|pair| (run, pair)))
        .collect();
    if tails.is_empty() {
        return;
    }
    out.push_str(
        "\nThe write's tail at one rate: the shop's half-load write rate, open loop, sent to the \
         shop and then to the peer doing the same work, by the same generator (`steady.rs`). A \
         tail both share belongs to the machine and the store, not to the shop's code.\n\n\
         | store | write req/s, open loop | shop p50 / p99 / p99.9 ms | peer p50 / p99 / p99.9 ms | shop ÷ peer p99 | failed (shop / peer) |\n\
         | --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for (run, (shop, peer)) in tails {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} / {:.2} | {:.2} | {} / {} |",
            run.name,
            shop.rate,
            shop.p50_ms,
            shop.p99_ms,
            shop.p999_ms,
            peer.p50_ms,
            peer.p99_ms,
            peer.p999_ms,
            shop.p99_ms / peer.p99_ms,
            shop.failed,
            peer.failed
        );
    }
}

/// Bars of each path's throughput as a fraction of the ceiling, per store.
pub fn svg(runs: &[StoreRun]) -> String {
    let paths = Path::ALL;
    let colors = [
        "#38a169", "#2b6cb0", "#63b3ed", "#dd6b20", "#805ad5", "#718096",
    ];
    let (group, bar, left, width) = (150.0, 22.0, 40.0, 720.0);
    let most = runs
        .iter()
        .flat_map(|run| &run.rows)
        .map(Row::rps)
        .filter(|rps| rps.is_finite())
        .fold(1.0, f64::max);
    let mut chart = Chart::new(
        width + 260.0,
        108.0 + group * runs.len() as f64,
        13,
        "Requests per second, one shop worker on one core, per store and path",
    );
    for (i, (path, color)) in paths.iter().zip(colors).enumerate() {
        let x = 20.0 + 190.0 * (i % 4) as f64;
        let y = 38.0 + 18.0 * (i / 4) as f64;
        chart.bar(x, y, 12.0, 12.0, color);
        chart.text(x + 16.0, y + 11.0, "", path.label());
    }
    for (g, run) in runs.iter().enumerate() {
        let y0 = 88.0 + group * g as f64;
        chart.text(20.0, y0 + 12.0, r#"font-weight="bold""#, &run.name);
        for (i, (path, color)) in paths.iter().zip(colors).enumerate() {
            let Some(row) = run.row(*path) else { continue };
            let ratio = (row.rps() / most).min(1.0);
            let y = y0 + 18.0 + bar * i as f64;
            chart.bar(left, y, ratio * width * 0.8, bar - 4.0, color);
            chart.text(
                left + ratio * width * 0.8 + 6.0,
                y + 13.0,
                "",
                &format!("{:.0} req/s", row.rps()),
            );
        }
    }
    chart.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rps: f64) -> Sample {
        Sample {
            wrk: WrkResult {
                rps,
                ..Default::default()
            },
            cpu: Use::default(),
            calls: 0,
            writes: 0,
            bytes: 0,
            invalid: None,
        }
    }

    #[test]
    fn one_run_gives_no_spread_and_several_give_half_their_range() {
        let one = Row {
            path: Path::Read,
            samples: vec![sample(1000.0)],
        };
        assert_eq!(one.rps_text(), "1000");
        let three = Row {
            path: Path::Read,
            samples: vec![sample(900.0), sample(1000.0), sample(1100.0)],
        };
        assert_eq!(three.rps_text(), "1000 ±10.0%");
    }

    #[test]
    fn the_readme_gets_the_table_between_its_markers_and_nothing_else_changes() {
        let run = store_run(
            vec![Row {
                path: Path::Read,
                samples: vec![sample(1234.0)],
            }],
            Vec::new(),
        );
        let readme = format!("# Shop\n\nbefore\n{README_START}\nold table\n{README_END}\nafter\n");
        let new = with_decision_table(&readme, &[run], "3 s a run", "bench/results").unwrap();
        assert!(new.starts_with("# Shop\n\nbefore\n"));
        assert!(new.ends_with(&format!("{README_END}\nafter\n")));
        assert!(!new.contains("old table"));
        assert!(new.contains("| redis | 1234 | – |"));
        assert!(new.contains("(bench/results/curve.svg)"));
        assert!(with_decision_table("# no markers", &[], "", "x").is_err());
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(grouped(250.0), "250");
        assert_eq!(grouped(1000.0), "1,000");
        assert_eq!(grouped(123456.7), "123,457");
        assert_eq!(grouped(-8000.0), "-8,000");
    }

    fn store_run(rows: Vec<Row>, steady: Vec<(Path, crate::steady::Steady)>) -> StoreRun {
        StoreRun {
            store: Backend::Redis,
            name: "redis".to_owned(),
            durability: String::new(),
            rows,
            scaled: Vec::new(),
            peer: Vec::new(),
            steady,
            curve: Vec::new(),
            curve_seconds: 5,
            store_memory: None,
            bytes_per_session: 0,
            acknowledged_adds: 10,
            items_in_carts: 10,
            warmup_sessions: 0,
            rss_small_kib: 0,
            rss_large_kib: 0,
            sessions_created: 0,
            peak_rss_kib: 0,
        }
    }

    #[test]
    fn the_peer_section_sets_the_write_tails_at_one_rate_side_by_side() {
        let at = |p99_ms: f64| crate::steady::Steady {
            rate: 10000.0,
            sent: 50000,
            p50_ms: 0.3,
            p99_ms,
            p999_ms: 2.0 * p99_ms,
            ..Default::default()
        };
        let mut run = store_run(Vec::new(), vec![(Path::Write, at(6.0))]);
        let mut out = String::new();
        peer_section(&mut out, std::slice::from_ref(&run));
        assert!(out.is_empty(), "no peer measured, no section: {out}");

        run.peer.push(crate::peers::PeerRun {
            mode: crate::peers::PeerMode::Same,
            rows: Vec::new(),
            steady_write: Some(at(2.0)),
        });
        peer_section(&mut out, &[run]);
        assert!(
            out.contains(
                "| redis | 10000 | 0.30 / 6.00 / 12.00 | 0.30 / 2.00 / 4.00 | 3.00 | 0 / 0 |"
            ),
            "{out}"
        );
    }

    #[test]
    fn a_stores_variant_names_its_row_instead_of_repeating_what_it_offers() {
        let plain = store_run(Vec::new(), Vec::new());
        let mut variant = store_run(Vec::new(), Vec::new());
        variant.name = "redis-aof".to_owned();
        let table = decision_table(&[plain, variant]);
        let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| redis")).collect();
        assert_eq!(rows.len(), 2, "{table}");
        assert!(
            rows[0].contains("Redis Cluster (`REDIS_CLUSTER_NODES`)"),
            "{}",
            rows[0]
        );
        assert!(rows[1].ends_with("| as redis | as redis |"), "{}", rows[1]);
        assert!(!rows[1].contains("REDIS_CLUSTER_NODES"), "{}", rows[1]);
    }

    #[test]
    fn a_run_fails_on_any_failed_request_and_names_it() {
        let clean = store_run(
            vec![Row {
                path: Path::Write,
                samples: vec![sample(1000.0)],
            }],
            vec![(Path::Write, crate::steady::Steady::default())],
        );
        assert!(clean.failures(f64::INFINITY).is_empty());

        let mut erred = sample(1000.0);
        erred.wrk.non_success = 3;
        erred.wrk.socket_errors = 1;
        let mut dirty = store_run(
            vec![Row {
                path: Path::Write,
                samples: vec![sample(1000.0), erred],
            }],
            vec![(
                Path::Read,
                crate::steady::Steady {
                    rate: 500.0,
                    sent: 2500,
                    failed: 2,
                    failures: vec![("answered 503".to_owned(), 2)],
                    ..Default::default()
                },
            )],
        );
        dirty.items_in_carts = 9;
        assert_eq!(
            dirty.failures(f64::INFINITY),
            [
                "redis, write: POST /cart/items: 3 error responses and 1 socket errors",
                "redis, read: GET /cart at half load (500 req/s, open loop): 2 of 2500 failed \
                 (answered 503: 2)",
                "redis: 10 adds acknowledged, 9 items in the carts",
            ]
        );
    }

    #[test]
    fn the_curve_is_compared_and_bound_up_to_the_slowest_stores_range() {
        let point = |rate: f64, p99_ms: f64, failed: u64| crate::steady::Steady {
            rate,
            sent: 5 * rate as u64,
            failed,
            p99_ms,
            ..Default::default()
        };
        let mix = |rps: f64| Row {
            path: Path::Mix,
            samples: vec![sample(rps)],
        };
        let mut slow = store_run(vec![mix(5000.0)], Vec::new());
        slow.name = "postgres".to_owned();
        slow.curve = vec![point(2000.0, 3.0, 0), point(4000.0, 150.0, 0)];
        let mut fast = store_run(vec![mix(9000.0)], Vec::new());
        fast.curve = vec![point(4000.0, 2.0, 0), point(8000.0, 2400.0, 0)];
        let mut runs = vec![slow, fast];
        assert_eq!(common_curve_top(&runs), 4500.0);
        // The slow store's 4,000 is in the common range: over the bound, it fails the run. The
        // fast store's 8,000 is beyond it: listed and marked, not drawn, not bound.
        assert_eq!(
            failures(&runs),
            [
                "postgres, the mix at 4000 req/s (open loop): p99 150.0 ms (bound 100 ms), 0 of \
              20000 failed"
            ]
        );
        let mut section = String::new();
        curve_section(&mut section, &runs);
        assert!(section.contains("4,500 req/s in this run"), "{section}");
        assert!(section.contains("2400.00 / 0.00 †"), "{section}");
        assert!(section.contains("150.00 / 0.00 |"), "{section}");
        let chart = curve_svg(&runs);
        runs[1].curve.pop();
        assert_eq!(chart, curve_svg(&runs));
        // A failed request fails the run wherever it is.
        runs[1].curve.push(point(8000.0, 2400.0, 1));
        assert_eq!(failures(&runs).len(), 2);
    }
}
