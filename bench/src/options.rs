//! The command line: what to measure, how long and how often.

use super::*;

/// What `--help` prints (and `bench/run --help`, before it installs or builds anything).
const USAGE: &str = include_str!("../usage.txt");

pub(crate) struct Options {
    pub(crate) seconds: u32,
    pub(crate) sessions: usize,
    pub(crate) rss_sessions: u64,
    pub(crate) stores: Vec<Subject>,
    /// Valid runs per path; the report gives their median and spread.
    pub(crate) runs: usize,
    pub(crate) flames: bool,
    /// Count instructions per request under callgrind instead of measuring with wrk.
    pub(crate) instructions: bool,
    /// The paths to measure (all by default).
    pub(crate) paths: Vec<BenchPath>,
    /// Also measure the peer (`bench/peer`, built by `bench/run --peer`) on Redis and
    /// PostgreSQL, pinned and loaded as the shop is.
    pub(crate) peer: bool,
    /// Signed-in sessions saved to measure what they cost each store (0: not measured).
    pub(crate) store_sessions: u64,
    /// Measure only that (`--store-memory`), no wrk runs.
    pub(crate) store_memory: bool,
    /// Where the reports, flame graphs and the shop's log go (`--results`; by default a folder
    /// of the run's own, `bench/results/runs/<UTC time>`, untracked: the tracked reports in
    /// `bench/results` change only when `--results bench/results` asks).
    pub(crate) results: PathBuf,
    /// Also write the run's decision table into README.md (`--readme`): its reports then go to
    /// the tracked `bench/results`, which the README's table and chart link to.
    pub(crate) readme: bool,
}

pub(crate) fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        seconds: 5,
        sessions: 1000,
        rss_sessions: 100_000,
        stores: [
            Backend::Sqlite,
            Backend::Redis,
            Backend::Postgres,
            Backend::Memcached,
        ]
        .into_iter()
        .filter(|b| b.is_compiled())
        .map(Subject::Store)
        .chain(
            Backend::Redis
                .is_compiled()
                .then_some([
                    Subject::RedisCluster { wait: false },
                    Subject::RedisCluster { wait: true },
                ])
                .into_iter()
                .flatten(),
        )
        // Each durable store beside its other durability: what the guarantee costs; and over
        // TLS: what encryption in transit costs.
        .chain(
            [Backend::Redis, Backend::Postgres]
                .into_iter()
                .filter(|b| b.is_compiled())
                .flat_map(|b| [Subject::OtherDurability(b), Subject::Tls(b)]),
        )
        .collect(),
        runs: 3,
        flames: false,
        instructions: false,
        paths: BenchPath::ALL.to_vec(),
        peer: false,
        store_sessions: 100_000,
        store_memory: false,
        readme: false,
        results: PathBuf::from("bench/results/runs").join(utc_stamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_secs()),
        )),
    };
    let mut args = std::env::args().skip(1);
    let mut results_named = false;
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            print!("{USAGE}");
            std::process::exit(0);
        }
        if flag == "--flames" {
            options.flames = true;
            continue;
        }
        if flag == "--instructions" {
            options.instructions = true;
            continue;
        }
        if flag == "--peer" {
            options.peer = true;
            continue;
        }
        if flag == "--store-memory" {
            options.store_memory = true;
            continue;
        }
        if flag == "--readme" {
            options.readme = true;
            continue;
        }
        if flag == "--quick" {
            // A first look in a few minutes: one run of each path, fewer sessions. Figures
            // from one run carry no spread; the flags after --quick still apply.
            options.runs = 1;
            options.seconds = 3;
            options.rss_sessions = 10_000;
            options.store_sessions = 10_000;
            continue;
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value\n\n{USAGE}"))?;
        match flag.as_str() {
            "--seconds" => options.seconds = value.parse()?,
            "--sessions" => options.sessions = value.parse()?,
            "--rss-sessions" => options.rss_sessions = value.parse()?,
            "--store-sessions" => options.store_sessions = value.parse()?,
            "--runs" => options.runs = value.parse()?,
            "--results" => {
                options.results = value.into();
                results_named = true;
            }
            "--paths" => {
                options.paths = value
                    .split(',')
                    .map(|name| {
                        BenchPath::ALL
                            .into_iter()
                            .find(|p| p.slug() == name)
                            .with_context(|| format!("no path {name}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--stores" => {
                options.stores = value
                    .split(',')
                    .map(Subject::parse)
                    .collect::<Result<_, _>>()?;
            }
            other => bail!("unknown argument {other}\n\n{USAGE}"),
        }
    }
    if options.readme && !results_named {
        options.results = PathBuf::from("bench/results");
    }
    if !(1..=60).contains(&options.seconds)
        || !(1..=5000).contains(&options.sessions)
        || !(1..=9).contains(&options.runs)
    {
        bail!("--seconds must be 1 to 60, --sessions 1 to 5000 and --runs 1 to 9");
    }
    Ok(options)
}

pub(crate) fn options_line(options: &Options) -> String {
    format!(
        "{} s a run, {} valid run{} per path",
        options.seconds,
        options.runs,
        if options.runs == 1 { "" } else { "s" }
    )
}

/// A UTC time as a folder name: `2026-12-07T05-01-02Z`.
fn utc_stamp(unix_seconds: u64) -> String {
    let days = i64::try_from(unix_seconds / 86_400).unwrap_or(0);
    let rest = unix_seconds % 86_400;
    // Days to a civil date (Howard Hinnant's algorithm), for dates after 1970.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}-{:02}-{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::utc_stamp;

    #[test]
    fn a_run_folder_is_named_by_its_utc_time() {
        assert_eq!(utc_stamp(0), "1970-01-01T00-00-00Z");
        assert_eq!(utc_stamp(951_782_400), "2000-02-29T00-00-00Z");
        assert_eq!(utc_stamp(1_796_619_662), "2026-12-07T05-01-02Z");
    }
}
