//! Latency at a steady rate, open loop: requests go out on a fixed schedule, whether or not
//! earlier ones have been answered (a closed-loop tool such as wrk waits for an answer before
//! it sends again, so a stall delays the requests it would have sent and hides their wait:
//! coordinated omission). Each request is timed from when it was due. The generator runs on the
//! load core, on one thread, and a request never waits for a connection: it opens another when
//! all are busy. It speaks just enough HTTP/1.1 itself (requests written out once, answers read
//! to their `Content-Length`): a general client cost tens of microseconds a request, which at
//! ten thousand a second left the generator, not the shop, as the bottleneck. How late the
//! generator itself sent is reported beside, so a figure the generator spoiled can be told from
//! one the shop earned.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// One request of the cycle the generator sends, in turn.
#[derive(Clone)]
pub struct Request {
    pub post: bool,
    pub path: String,
    pub cookie: String,
    pub body: Option<String>,
    /// The client address the request claims (`X-Forwarded-For`), as wrk's scripts do.
    pub client: String,
    /// The status it must answer: 200 for a page, 303 for a form's redirect.
    pub ok: u16,
    /// The session it belongs to (an index). One shopper does not send a second change while
    /// the first is unanswered: a write waits for the same session's write in flight (its wait
    /// counts in its latency, timed from when it was due), where sending it at once would have
    /// the shop refuse one of the two as a concurrent change (409).
    pub session: usize,
}

/// What a steady run saw.
#[derive(Debug, Clone, Default)]
pub struct Steady {
    pub rate: f64,
    pub sent: u64,
    pub failed: u64,
    /// Why they failed: each reason ("answered 503", "no answer within 10 s") and how often.
    pub failures: Vec<(String, u64)>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// How late the generator sent, at its 99th percentile: above a fraction of the p99, the
    /// figures measure the generator, not the shop.
    pub late_p99_ms: f64,
}

/// Sends `requests` in turn to `base` at `rate` a second for `seconds`, on a thread of its own
/// pinned to `core`, and answers the latencies.
pub async fn run(
    base: &str,
    requests: Vec<Request>,
    rate: f64,
    seconds: u32,
    core: &str,
) -> anyhow::Result<Steady> {
    if requests.is_empty() || !(1.0..=1_000_000.0).contains(&rate) {
        bail!("a steady run needs requests and a rate of 1 to 1,000,000 a second");
    }
    let (base, core) = (base.to_owned(), core.to_owned());
    let thread = std::thread::spawn(move || -> anyhow::Result<Steady> {
        pin_this_thread(&core)?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(generate(base, requests, rate, seconds))
    });
    tokio::task::spawn_blocking(move || thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the generator's thread panicked"))?
}

/// Pins the calling thread (and the threads it starts) to `core`, with `taskset`.
fn pin_this_thread(core: &str) -> anyhow::Result<()> {
    let me = std::fs::read_link("/proc/thread-self")?;
    let tid = me
        .file_name()
        .and_then(|n| n.to_str())
        .context("a thread id")?
        .to_owned();
    let status = std::process::Command::new("taskset")
        .args(["-cp", core, &tid])
        .stdout(std::process::Stdio::null())
        .status()
        .context("taskset (util-linux)")?;
    if !status.success() {
        bail!("taskset could not pin the generator to core {core}");
    }
    Ok(())
}

async fn generate(
    base: String,
    requests: Vec<Request>,
    rate: f64,
    seconds: u32,
) -> anyhow::Result<Steady> {
    let address: SocketAddr = base
        .trim_start_matches("http://")
        .parse()
        .context("the base is http://address:port")?;
    let sessions = requests.iter().map(|r| r.session + 1).max().unwrap_or(1);
    let requests: Arc<Vec<Written>> = Arc::new(
        requests
            .iter()
            .map(|r| Written {
                bytes: written(r),
                ok: r.ok,
                write_of: r.post.then_some(r.session),
            })
            .collect(),
    );
    let writing: Arc<Vec<tokio::sync::Mutex<()>>> =
        Arc::new((0..sessions).map(|_| tokio::sync::Mutex::new(())).collect());
    let pool = Arc::new(Pool {
        address,
        idle: Mutex::new(Vec::new()),
    });
    // A short run at the same rate first, so connections are open before anything is timed.
    let warm = send_all(&pool, &requests, &writing, rate, rate.min(2000.0) as u64).await?;
    drop(warm);
    let total = (rate * f64::from(seconds)) as u64;
    let timed = send_all(&pool, &requests, &writing, rate, total).await?;
    let failed = timed.iter().filter(|t| t.failure.is_some()).count() as u64;
    let mut failures: Vec<(String, u64)> = Vec::new();
    for why in timed.iter().filter_map(|t| t.failure.as_ref()) {
        match failures.iter_mut().find(|(reason, _)| reason == why) {
            Some((_, count)) => *count += 1,
            None => failures.push((why.clone(), 1)),
        }
    }
    let mut latencies: Vec<u64> = timed.iter().map(|t| t.micros).collect();
    let mut late: Vec<u64> = timed.iter().map(|t| t.late_micros).collect();
    latencies.sort_unstable();
    late.sort_unstable();
    Ok(Steady {
        rate,
        sent: total,
        failed,
        failures,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        p999_ms: percentile(&latencies, 99.9),
        late_p99_ms: percentile(&late, 99.0),
    })
}

/// A request as the generator sends it.
struct Written {
    bytes: Vec<u8>,
    ok: u16,
    /// For a write, its session: it waits for that session's write in flight.
    write_of: Option<usize>,
}

struct Timed {
    micros: u64,
    late_micros: u64,
    /// Why it failed, if it did.
    failure: Option<String>,
}

/// A request as it goes on the wire.
fn written(request: &Request) -> Vec<u8> {
    let method = if request.post { "POST" } else { "GET" };
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {}\r\nX-Forwarded-For: {}\r\n",
        request.path, request.cookie, request.client
    );
    if let Some(body) = &request.body {
        head.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        head.push_str("\r\n");
    }
    head.into_bytes()
}

/// Idle keep-alive connections to the shop, each with when it was last answered on.
struct Pool {
    address: SocketAddr,
    idle: Mutex<Vec<(TcpStream, Instant)>>,
}

/// A connection idle this long is closed, not reused: the shop closes one idle for 5 s
/// (actix-web's keep-alive), and a request written as it does so is answered by the close (a
/// full run had 10 of 24,440 half-load requests fail so, each on a connection left idle since
/// the warm-up). Clients keep their idle timeout under the server's for this reason, as nginx
/// does in `deploy/nginx/round-robin.conf` (4 s).
const IDLE_FOR_AT_MOST: Duration = Duration::from_secs(4);

impl Pool {
    async fn take(&self) -> std::io::Result<TcpStream> {
        let idle = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            // Put back in the order they were answered on: the longest idle are at the bottom.
            let stale = idle.partition_point(|(_, since)| since.elapsed() >= IDLE_FOR_AT_MOST);
            idle.drain(..stale);
            idle.pop()
        };
        match idle {
            Some((stream, _)) => Ok(stream),
            None => {
                // Named as the generator's: past full it opens a connection for each request
                // none is idle for, and can run out of descriptors of its own.
                let stream = TcpStream::connect(self.address).await.map_err(|err| {
                    std::io::Error::new(
                        err.kind(),
                        format!("the generator could not connect: {err}"),
                    )
                })?;
                stream.set_nodelay(true)?;
                Ok(stream)
            }
        }
    }

    fn put_back(&self, stream: TcpStream) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((stream, Instant::now()));
    }
}

/// Sends one request and reads its answer to the end: `None` when it had status `ok`, else what
/// went wrong. A connection that answered in full goes back to the pool.
async fn exchange(pool: &Pool, request: &[u8], ok: u16) -> Option<String> {
    match answer(pool, request).await {
        Ok(status) if status == Some(ok) => None,
        Ok(Some(status)) => Some(format!("answered {status}")),
        Ok(None) => Some("no status line".to_owned()),
        Err(error) => Some(error.to_string()),
    }
}

/// One request's answer: its status. The connection closing early, or an answer without a
/// length, is an error.
async fn answer(pool: &Pool, request: &[u8]) -> std::io::Result<Option<u16>> {
    let closed = || std::io::Error::other("the shop closed the connection mid-answer");
    let mut stream = pool.take().await?;
    stream.write_all(request).await?;
    let mut answer = Vec::with_capacity(8192);
    let mut chunk = [0_u8; 16384];
    let (head_end, length) = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(closed());
        }
        answer.extend_from_slice(&chunk[..n]);
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
            let Some(length) = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok())
            else {
                // No length (chunked, or a close-delimited body): the shop always sends one.
                return Err(std::io::Error::other("an answer without Content-Length"));
            };
            break (end + 4, length);
        }
    };
    while answer.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(closed());
        }
        answer.extend_from_slice(&chunk[..n]);
    }
    let status = std::str::from_utf8(answer.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|code| code.parse::<u16>().ok());
    pool.put_back(stream);
    Ok(status)
}

/// Sends `total` requests on schedule: request `i` is due `i / rate` seconds after the start.
/// The wait for the next one sleeps while it is more than two milliseconds away (tokio's timer
/// has a resolution of one) and yields to the requests in flight after that.
async fn send_all(
    pool: &Arc<Pool>,
    requests: &Arc<Vec<Written>>,
    writing: &Arc<Vec<tokio::sync::Mutex<()>>>,
    rate: f64,
    total: u64,
) -> anyhow::Result<Vec<Timed>> {
    let start = Instant::now() + Duration::from_millis(20);
    let mut flight = JoinSet::new();
    let mut timed = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        loop {
            let now = Instant::now();
            if now >= due {
                break;
            }
            if due - now > Duration::from_millis(2) {
                tokio::time::sleep(due - now - Duration::from_millis(1)).await;
            } else {
                tokio::task::yield_now().await;
            }
            while let Some(done) = flight.try_join_next() {
                timed.push(done?);
            }
        }
        let late_micros = due.elapsed().as_micros() as u64;
        let (pool, requests, writing) = (pool.clone(), requests.clone(), writing.clone());
        flight.spawn(async move {
            let request = &requests[(i as usize) % requests.len()];
            let answered = async {
                let _one_write_at_a_time = match request.write_of {
                    Some(session) => Some(writing[session].lock().await),
                    None => None,
                };
                exchange(&pool, &request.bytes, request.ok).await
            };
            let failure = tokio::time::timeout(Duration::from_secs(10), answered)
                .await
                .unwrap_or_else(|_| Some("no answer within 10 s".to_owned()));
            Timed {
                micros: due.elapsed().as_micros() as u64,
                late_micros,
                failure,
            }
        });
    }
    while let Some(done) = flight.join_next().await {
        timed.push(done?);
    }
    Ok(timed)
}

/// The `p`th percentile of sorted microseconds, in milliseconds.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[at.min(sorted.len() - 1)] as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::{IDLE_FOR_AT_MOST, Pool, exchange, percentile};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    /// A connection idle for the shop's keep-alive is not reused: the shop may be closing it.
    #[tokio::test]
    async fn a_connection_idle_past_the_limit_is_closed_not_reused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = Pool {
            address: listener.local_addr().unwrap(),
            idle: Mutex::new(Vec::new()),
        };
        let stale = pool.take().await.unwrap();
        let fresh = pool.take().await.unwrap();
        let (stale_port, fresh_port) = (
            stale.local_addr().unwrap().port(),
            fresh.local_addr().unwrap().port(),
        );
        let long_ago = Instant::now() - IDLE_FOR_AT_MOST - Duration::from_millis(1);
        pool.idle
            .lock()
            .unwrap()
            .extend([(stale, long_ago), (fresh, Instant::now())]);
        // The fresh one first, as the most recently used.
        assert_eq!(
            pool.take().await.unwrap().local_addr().unwrap().port(),
            fresh_port
        );
        // Then a new connection, not the stale one, which is dropped.
        let next = pool.take().await.unwrap();
        assert_ne!(next.local_addr().unwrap().port(), stale_port);
        assert!(pool.idle.lock().unwrap().is_empty());
    }

    /// A connection the generator cannot open is named as its own failure, not the shop's
    /// answer: past full it can run out of descriptors of its own.
    #[tokio::test]
    async fn a_connection_the_generator_cannot_open_is_named_as_its_own() {
        let address = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        let pool = Pool {
            address,
            idle: Mutex::new(Vec::new()),
        };
        let failure = exchange(&pool, b"GET / HTTP/1.1\r\n\r\n", 200).await;
        let failure = failure.expect("nothing listens there");
        assert!(
            failure.starts_with("the generator could not connect: "),
            "{failure}"
        );
    }

    #[test]
    fn percentiles_of_sorted_microseconds_are_in_milliseconds() {
        let sorted: Vec<u64> = (1..=1000).map(|i| i * 10).collect();
        // Nearest rank over the n − 1 gaps: the 50th of 1,000 values is the 501st.
        assert_eq!(percentile(&sorted, 50.0), 5.01);
        assert_eq!(percentile(&sorted, 99.0), 9.9);
        assert_eq!(percentile(&sorted, 100.0), 10.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
