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
    /// Where the reports and flame graphs go (`--results`, `bench/results` by default: the
    /// tracked results; CI's smoke runs write elsewhere).
    pub(crate) results: PathBuf,
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
        .collect(),
        runs: 3,
        flames: false,
        instructions: false,
        paths: BenchPath::ALL.to_vec(),
        peer: false,
        store_sessions: 100_000,
        store_memory: false,
        results: PathBuf::from("bench/results"),
    };
    let mut args = std::env::args().skip(1);
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
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value\n\n{USAGE}"))?;
        match flag.as_str() {
            "--seconds" => options.seconds = value.parse()?,
            "--sessions" => options.sessions = value.parse()?,
            "--rss-sessions" => options.rss_sessions = value.parse()?,
            "--store-sessions" => options.store_sessions = value.parse()?,
            "--runs" => options.runs = value.parse()?,
            "--results" => options.results = value.into(),
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
        "{} s a run, {} valid runs per path",
        options.seconds, options.runs
    )
}
