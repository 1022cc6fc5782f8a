//! `--instructions`: the shop's own work per request, counted by callgrind rather than timed.
//!
//! Requests per second on a shared machine move by 10 to 30% between runs minutes apart; the
//! instructions the shop executes per request do not (valgrind counts the same total for the
//! same binary and inputs whatever else the machine does). This mode runs the shop under
//! `valgrind --tool=callgrind` per store, signs a shopper in with a 5-line cart, sends the
//! read and the write path one request after another, and counts only the measured requests
//! (`callgrind_control` zeroes the counters after a warm-up and dumps them after the last
//! request). It counts the shop's user-space instructions: not the kernel's, not the store's,
//! not the waits. It says whether a change cut the shop's work; wrk says what that is worth.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use shop::session::Backend;
use shop_lab::{Shopper, free_port};
use tokio::process::{Child, Command};

use crate::{PASSWORD, Started, Subject, launch, shop_env, subject_env};

/// Requests before the counters are zeroed (connections, caches and the allocator warm), and
/// requests counted.
const WARM_UP: u32 = 100;
const COUNTED: u32 = 500;

/// The instructions per request of one store's read and write paths (the ceiling has no
/// write path).
pub struct Counted {
    pub name: String,
    pub read: u64,
    pub write: Option<u64>,
    /// A cookie-less `GET /` and `GET /products/3`: a crawler's or a first visit's views.
    pub anonymous: Option<(u64, u64)>,
}

/// The shop under callgrind, killed when dropped.
struct Profiled {
    child: Child,
    pid: u32,
    /// The shop's `HOST`: valgrind names its control pipes after the `HOST` variable, so
    /// `callgrind_control` must be given the same one to find them.
    host: String,
    out: std::path::PathBuf,
    dumps: u32,
}

impl Profiled {
    async fn start(
        program: &Path,
        args: &[&str],
        env: &HashMap<String, String>,
        port: u16,
        dir: &Path,
        name: &str,
    ) -> anyhow::Result<Self> {
        // BENCH_CALLGRIND_DIR keeps the dumps (`<name>.callgrind.1` the reads, `.2` the writes),
        // for `callgrind_annotate`.
        let out = std::env::var("BENCH_CALLGRIND_DIR")
            .map_or_else(|_| dir.to_owned(), std::path::PathBuf::from)
            .join(format!("{name}.callgrind"));
        let out_file = format!("--callgrind-out-file={}", out.display());
        // valgrind's own messages go to a file; the shop's errors still reach the terminal.
        let log_file = format!("--log-file={}", dir.join("valgrind.log").display());
        let wrapper = ["valgrind", "--tool=callgrind", &out_file, &log_file];
        // The shop starts some fifty times slower under valgrind.
        let child = launch(&wrapper, program, args, env, port, Duration::from_secs(60))
            .await
            .context("under valgrind (apt-get install valgrind)")?;
        let pid = child.id().context("valgrind's pid")?;
        Ok(Self {
            child,
            pid,
            host: env.get("HOST").cloned().unwrap_or_default(),
            out,
            dumps: 0,
        })
    }

    async fn control(&self, args: &[&str]) -> anyhow::Result<()> {
        let status = Command::new("callgrind_control")
            .args(args)
            .arg(self.pid.to_string())
            .env("HOST", &self.host)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .context("could not run callgrind_control")?;
        if !status.success() {
            bail!("callgrind_control {args:?} failed");
        }
        Ok(())
    }

    /// The instructions per request of `COUNTED` calls of `request`, after `WARM_UP` more.
    async fn count<F, Fut>(&mut self, mut request: F) -> anyhow::Result<u64>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        for i in 0..WARM_UP {
            request(i).await?;
        }
        self.control(&["--zero"]).await?;
        for i in 0..COUNTED {
            request(i).await?;
        }
        self.control(&["--dump"]).await?;
        self.dumps += 1;
        let dump = format!("{}.{}", self.out.display(), self.dumps);
        let text = std::fs::read_to_string(&dump).with_context(|| format!("no dump {dump}"))?;
        let total: u64 = text
            .lines()
            .find_map(|line| line.strip_prefix("summary:"))
            .context("a callgrind summary")?
            .trim()
            .parse()?;
        Ok(total / u64::from(COUNTED))
    }
}

impl Profiled {
    /// Stops the shop as an orchestrator would (SIGTERM), so valgrind removes its control
    /// pipes from /tmp; a kill (the drop's fallback) leaves them behind.
    async fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .arg(self.pid.to_string())
            .status()
            .await?;
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("the shop did not stop within 30 s of SIGTERM")??;
        Ok(())
    }
}

impl Drop for Profiled {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Counts the read and write paths of `subject`; also gives the cart page it read.
pub async fn count(
    subject: Subject,
    shop: &Path,
    work: &Path,
    started: &Started,
) -> anyhow::Result<(Counted, String)> {
    let mut env = shop_env(subject.backend(), work).await?;
    subject_env(subject, started, &mut env)?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    println!("== {}: the shop under callgrind", subject.name());
    let mut shop = Profiled::start(shop, &[], &env, port, dir.path(), &subject.name()).await?;

    let url = format!("http://127.0.0.1:{port}");
    let email = format!("instructions-{}@example.com", env["BENCH_RUN"]);
    let shopper = Shopper::new(&url, &email, None)?;
    if !shopper.register(PASSWORD).await?.0 {
        bail!("could not register the shopper");
    }
    for product in 1..=5 {
        shopper.add(product, 1).await?;
    }
    let token = shopper.csrf_token().await?;
    let page = shopper.get("/cart").await?.body;

    let read = shop
        .count(|_| async {
            let seen = shopper.get("/cart").await?;
            if seen.status != 200 {
                bail!("GET /cart answered {}", seen.status);
            }
            Ok(())
        })
        .await?;
    // The write path's change: one line's quantity set to a new value (1 to 3, never a limit).
    let write = shop
        .count(|i| {
            let (shopper, token) = (&shopper, &token);
            async move {
                let path = format!("/cart/items/{}", i % 5 + 1);
                let quantity = (i % 3 + 1).to_string();
                let seen = shopper
                    .post_with_token(&path, &[("quantity", &quantity)], token)
                    .await?;
                if seen.status != 303 {
                    bail!("POST {path} answered {}", seen.status);
                }
                Ok(())
            }
        })
        .await?;
    let visitor = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut anonymous = [0; 2];
    for (count, path) in anonymous.iter_mut().zip(["/", "/products/3"]) {
        *count = shop
            .count(|_| {
                let (visitor, url) = (&visitor, &url);
                async move {
                    let status = visitor.get(format!("{url}{path}")).send().await?.status();
                    if status != 200 {
                        bail!("a cookie-less GET {path} answered {status}");
                    }
                    Ok(())
                }
            })
            .await?;
    }
    shop.stop().await?;
    let [catalog, product] = anonymous;
    println!(
        "   read {read} instructions a request, write {write}; cookie-less catalog {catalog}, product {product}"
    );
    Ok((
        Counted {
            name: subject.name(),
            read,
            write: Some(write),
            anonymous: Some((catalog, product)),
        },
        page,
    ))
}

/// One of the bench's own servers (the ceiling, the peer) under callgrind, serving `page`
/// from a file: `args` makes its arguments from the file's path and the port. Returns the
/// server, its URL and the folder that holds the page while it runs.
async fn start_serving(
    program: &Path,
    page: &str,
    name: &str,
    args: impl FnOnce(&str, &str) -> Vec<String>,
) -> anyhow::Result<(Profiled, String, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let page_file = dir.path().join("cart.html");
    std::fs::write(&page_file, page)?;
    let port = free_port()?;
    let args = args(page_file.to_str().context("a path")?, &port.to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // HOST names valgrind's control pipes (see `Profiled`); these servers ignore it.
    let env = HashMap::from([("HOST".to_owned(), "127.0.0.1".to_owned())]);
    let server = Profiled::start(program, &args, &env, port, dir.path(), name).await?;
    Ok((server, format!("http://127.0.0.1:{port}"), dir))
}

/// The instructions per `GET /cart` of `server`, which must answer 200.
async fn count_reads(
    server: &mut Profiled,
    client: &reqwest::Client,
    url: &str,
    who: &str,
) -> anyhow::Result<u64> {
    server
        .count(|_| async {
            let status = client.get(format!("{url}/cart")).send().await?.status();
            if status != 200 {
                bail!("{who} answered {status}");
            }
            Ok(())
        })
        .await
}

/// Counts the ceiling (the bare actix-web server of `ceiling.rs`) serving `page`: what
/// actix-web and the runtime cost a request with nothing around them.
pub async fn count_ceiling(program: &Path, page: &str) -> anyhow::Result<Counted> {
    println!("== ceiling: the bare server under callgrind");
    let (mut server, url, _dir) = start_serving(program, page, "ceiling", |page, port| {
        vec![page.to_owned(), port.to_owned(), "1".to_owned()]
    })
    .await?;
    let read = count_reads(&mut server, &reqwest::Client::new(), &url, "the ceiling").await?;
    server.stop().await?;
    println!("   read {read} instructions a request");
    Ok(Counted {
        name: "ceiling (bare actix-web, same page)".to_owned(),
        read,
        write: None,
        anonymous: None,
    })
}

/// Counts the peer (`bench/peer`: axum with tower-sessions) on `store`, as the shop is
/// counted: its read (the session loaded, the page bytes answered) and its write (the session
/// loaded, a line changed, the session saved) for one session with a 5-line cart.
pub async fn count_peer(
    program: &Path,
    store: Backend,
    store_url: &str,
    page: &str,
    mode: crate::peers::PeerMode,
) -> anyhow::Result<Counted> {
    println!("== {}: the {} under callgrind", store.name(), mode.label());
    let name = format!("peer-{}-{}", mode.arg(), store.name());
    let (mut server, url, _dir) = start_serving(program, page, &name, |page, port| {
        vec![
            store.name().to_owned(),
            store_url.to_owned(),
            page.to_owned(),
            port.to_owned(),
            mode.arg().to_owned(),
        ]
    })
    .await
    .context("the peer (bash bench/run --peer builds it)")?;
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    // The same-work peer answers the session's form token, which every write carries.
    let token = client
        .post(format!("{url}/setup"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let read = count_reads(&mut server, &client, &url, "the peer's read").await?;
    let write = server
        .count(|i| {
            let (client, url, token) = (&client, &url, &token);
            async move {
                let status = client
                    .post(format!("{url}/cart/items/{}", i % 5 + 1))
                    .form(&[
                        ("quantity", (i % 3 + 1).to_string()),
                        ("csrf_token", token.clone()),
                    ])
                    .send()
                    .await?
                    .status();
                if status != 303 {
                    bail!("the peer's write answered {status}");
                }
                Ok(())
            }
        })
        .await?;
    server.stop().await?;
    println!("   read {read} instructions a request, write {write}");
    Ok(Counted {
        name: format!(
            "{} on {} (axum with tower-sessions)",
            mode.label(),
            store.name()
        ),
        read,
        write: Some(write),
        anonymous: None,
    })
}

/// The report: `bench/results/instructions.md`.
pub fn markdown(counted: &[Counted]) -> String {
    let mut out = format!(
        "# Instructions per request\n\nThe shop's own user-space instructions per request, counted \
         by callgrind (`bench/run --instructions`): release build, 1 worker, one request at a \
         time, {COUNTED} requests counted after {WARM_UP} of warm-up, a signed-in shopper with a \
         5-line cart. Not the kernel's work, not the store's, not the waits: what a change to the \
         shop's code does to its cost, the same within 1% from run to run on any machine. The \
         ceiling is the wrk runs' bare actix-web server serving the same page: what a request \
         costs with nothing around it.\n\n\
         The anonymous columns are a visitor with no cookie (a crawler, a first visit).\n\n\
         | store | read: GET /cart | write: POST /cart/items/{{id}} | anonymous: GET / | anonymous: GET /products/3 |\n\
         | --- | ---: | ---: | ---: | ---: |\n"
    );
    for row in counted {
        let write = row.write.map_or("".to_owned(), |write| write.to_string());
        let (catalog, product) = row
            .anonymous
            .map_or((String::new(), String::new()), |(c, p)| {
                (c.to_string(), p.to_string())
            });
        let _ = writeln!(
            out,
            "| {} | {} | {write} | {catalog} | {product} |",
            row.name, row.read
        );
    }
    out
}
