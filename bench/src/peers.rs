//! The comparisons: the bare actix-web ceiling and the axum peer, measured as the shop is.

use super::*;

/// The ceiling, measured as the shop is: pinned with 1 worker, and with 2 workers unpinned.
pub(crate) async fn ceiling(
    program: &Path,
    page: &Path,
    options: &Options,
    workers: u32,
) -> anyhow::Result<Row> {
    let port = free_port()?;
    let pinned = workers == 1;
    let server = Server::start(
        program,
        &[
            page.to_str().context("a path")?,
            &port.to_string(),
            &workers.to_string(),
        ],
        &HashMap::new(),
        port,
        pinned,
    )
    .await?;
    let scripts = tempfile::tempdir()?;
    let plain = wrk::script(scripts.path(), "plain", "")?;
    let bench = Bench {
        server: &server,
        store: Backend::Memory,
        name: "ceiling".to_owned(),
        options,
    };
    println!("== ceiling: a bare actix-web server with the same cart page, {workers} worker(s)");
    bench
        .measure(
            BenchPath::Read,
            &Load {
                url: format!("{}/cart", server.url),
                script: &plain,
                headers: vec![],
                connections: 64,
                seconds: options.seconds,
                pinned,
            },
        )
        .await?
        .context("the ceiling's run")
}

/// The store the peer uses: the shop's Redis, or the shop's session database of this run.
pub(crate) fn peer_url(store: Backend, env: &HashMap<String, String>) -> String {
    match store {
        Backend::Redis => env
            .get("REDIS_URL")
            .cloned()
            .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned()),
        _ => env["SESSION_DATABASE_URL"].clone(),
    }
}

/// What the peer does: the session's part of each path only, or the shop's whole work.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum PeerMode {
    /// Loads the session and answers fixed page bytes; no render, token or headers.
    Bare,
    /// Private cookie, the cart page rendered with askama from the shop's templates, the shop's
    /// headers, a form token checked on writes.
    Same,
}

impl PeerMode {
    pub(crate) const ALL: [PeerMode; 2] = [PeerMode::Same, PeerMode::Bare];

    /// The peer's last argument.
    pub(crate) fn arg(self) -> &'static str {
        match self {
            PeerMode::Bare => "bare",
            PeerMode::Same => "same",
        }
    }

    /// How the reports name it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            PeerMode::Bare => "bare peer (session only)",
            PeerMode::Same => "peer doing the same work",
        }
    }
}

/// Where `bench/run --peer` builds the peer.
pub(crate) const PEER_PROGRAM: &str = "target/peer/release/peer";

/// What the peer did in one mode: its saturated rows, and (doing the same work) its write at
/// the shop's own half-load rate, open loop.
pub(crate) struct PeerRun {
    pub(crate) mode: PeerMode,
    pub(crate) rows: Vec<Row>,
    pub(crate) steady_write: Option<crate::steady::Steady>,
}

/// The peer (`bench/peer`: axum with tower-sessions) on the same store as the shop,
/// pinned and loaded as the shop is: the read with one session's cookie, the write spread over
/// as many sessions with 5-line carts as the shop's (`--sessions`, at least 64). Doing the
/// same work, it then writes open loop at `steady_write_rate` (the shop's half-load rate), so
/// the two tails are measured at one rate with one generator on one machine, minutes apart.
pub(crate) async fn peer(
    store: Backend,
    store_url: &str,
    page: &Path,
    options: &Options,
    mode: PeerMode,
    steady_write_rate: Option<f64>,
) -> anyhow::Result<PeerRun> {
    let program = Path::new(PEER_PROGRAM);
    if !program.exists() {
        bail!("--peer: build the peer first (bash bench/run --peer builds it)");
    }
    let port = free_port()?;
    let args = [
        store.name(),
        store_url,
        page.to_str().context("a path")?,
        &port.to_string(),
        mode.arg(),
    ];
    let server = Server::start(program, &args, &HashMap::new(), port, true).await?;
    println!(
        "== {}: the {} (axum with tower-sessions) on core {SERVER_CORE}",
        store.name(),
        mode.label()
    );
    let client = reqwest::Client::new();
    let mut sessions = Vec::new();
    for _ in 0..options.sessions.max(64) {
        let response = client
            .post(format!("{}/setup", server.url))
            .send()
            .await?
            .error_for_status()?;
        let cookie = response
            .headers()
            .get(reqwest::header::SET_COOKIE)
            .context("the peer set no cookie")?
            .to_str()?
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned();
        // The same-work peer answers the session's form token, which every write carries.
        let token = match mode {
            PeerMode::Same => response.text().await?,
            PeerMode::Bare => String::new(),
        };
        sessions.push((cookie, token));
    }
    let scripts = tempfile::tempdir()?;
    let plain = wrk::script(scripts.path(), "plain", "")?;
    let writes = lua_script(
        scripts.path(),
        "write",
        &sessions,
        "POST",
        "/cart/items/{line}",
        "quantity={quantity}&csrf_token={token}",
    )?;
    let bench = Bench {
        server: &server,
        store,
        name: format!("peer-{}-{}", mode.arg(), store.name()),
        options,
    };
    let mut rows = Vec::new();
    for (path, route, script, headers) in [
        (
            BenchPath::Read,
            "/cart",
            &plain,
            vec![format!("Cookie: {}", sessions[0].0)],
        ),
        (BenchPath::Write, "/cart/items/1", &writes, vec![]),
    ] {
        let load = Load {
            url: format!("{}{route}", server.url),
            script,
            headers,
            connections: 64,
            seconds: options.seconds,
            pinned: true,
        };
        rows.extend(bench.measure(path, &load).await?);
    }
    let steady_write = match steady_write_rate {
        Some(rate) if mode == PeerMode::Same => {
            let run = crate::steady::run(
                &server.url,
                steady_writes(&sessions),
                rate,
                options.seconds,
                wrk::LOAD_CORE,
            )
            .await?;
            println!(
                "   the peer's write at {rate:.0} req/s, open loop: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, {} failed (generator late p99 {:.2} ms)",
                run.p50_ms, run.p99_ms, run.p999_ms, run.failed, run.late_p99_ms
            );
            Some(run)
        }
        _ => None,
    };
    Ok(PeerRun {
        mode,
        rows,
        steady_write,
    })
}
