//! Where a slow request's time went. With `SLOW_REQUEST_MILLIS` set, the outermost layer runs
//! each request inside a task-local record of its phases; the session layer's end, the handler,
//! the store's calls and the catalog's refresh write into it, and a request slower than the
//! threshold is logged (`shop::slow`) with the record:
//!
//! ```text
//! POST /cart/items/3 took 18.2 ms: 0.1 ms before the handler, 17.9 in it, 0.2 after;
//! store 2 calls 0.4 ms (slowest update 0.3 ms); catalog refresh 17.5 ms
//! ```
//!
//! Outside such a record (the setting unset, a spawned task) every call here does nothing.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

tokio::task_local! {
    static PHASES: Rc<RefCell<Phases>>;
}

/// What one request did, and when.
#[derive(Debug, Clone)]
pub struct Phases {
    started: Instant,
    handler_started: Option<Instant>,
    handler_ended: Option<Instant>,
    store_calls: u32,
    store_time: Duration,
    slowest_store: Option<(&'static str, Duration)>,
    notes: Vec<(&'static str, Duration)>,
}

/// Runs `future` with a record of its phases, and returns both.
pub async fn recorded<F: Future>(future: F) -> (F::Output, Phases) {
    let phases = Rc::new(RefCell::new(Phases {
        started: Instant::now(),
        handler_started: None,
        handler_ended: None,
        store_calls: 0,
        store_time: Duration::ZERO,
        slowest_store: None,
        notes: Vec::new(),
    }));
    let output = PHASES.scope(phases.clone(), future).await;
    let phases =
        Rc::try_unwrap(phases).map_or_else(|shared| shared.borrow().clone(), RefCell::into_inner);
    (output, phases)
}

fn with(change: impl FnOnce(&mut Phases)) {
    let _ = PHASES.try_with(|phases| change(&mut phases.borrow_mut()));
}

/// The innermost layer was reached: the session is loaded, the handler runs.
pub fn handler_started() {
    with(|phases| phases.handler_started = Some(Instant::now()));
}

/// The handler has answered; what follows is the session's write and the outer layers.
pub fn handler_ended() {
    with(|phases| phases.handler_ended = Some(Instant::now()));
}

/// A call to the session store.
pub fn store_call(operation: &'static str, took: Duration) {
    with(|phases| {
        phases.store_calls += 1;
        phases.store_time += took;
        if phases
            .slowest_store
            .is_none_or(|(_, slowest)| took > slowest)
        {
            phases.slowest_store = Some((operation, took));
        }
    });
}

/// Something else the request waited for (a cache refresh, a pool's connection).
pub fn note(what: &'static str, took: Duration) {
    with(|phases| phases.notes.push((what, took)));
}

/// A budget of log lines per second, shared by the process's workers: the first `per_second`
/// of each second are admitted, the rest dropped.
pub struct LinesPerSecond {
    per_second: u32,
    /// The second (since the first call) and the lines admitted in it, packed: second << 32 | n.
    state: std::sync::atomic::AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
}

impl LinesPerSecond {
    pub const fn new(per_second: u32) -> Self {
        Self {
            per_second,
            state: std::sync::atomic::AtomicU64::new(0),
            epoch: std::sync::OnceLock::new(),
        }
    }

    /// Whether one more line may be written this second.
    pub fn admit(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let second = self.epoch.get_or_init(Instant::now).elapsed().as_secs();
        let mut current = self.state.load(Relaxed);
        loop {
            let (at, lines) = (current >> 32, current & u64::from(u32::MAX));
            let next = match at == second {
                true if lines >= u64::from(self.per_second) => return false,
                true => current + 1,
                false => (second << 32) | 1,
            };
            match self
                .state
                .compare_exchange_weak(current, next, Relaxed, Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

impl Phases {
    /// How long the request took, from the start of the record.
    pub fn total(&self) -> Duration {
        self.started.elapsed()
    }
}

impl fmt::Display for Phases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let now = Instant::now();
        match (self.handler_started, self.handler_ended) {
            (Some(start), Some(end)) => write!(
                f,
                "{:.1} ms before the handler, {:.1} in it, {:.1} after",
                millis(start - self.started),
                millis(end - start),
                millis(now - end)
            )?,
            _ => write!(f, "no handler of the pages ran")?,
        }
        write!(
            f,
            "; store {} calls {:.1} ms",
            self.store_calls,
            millis(self.store_time)
        )?;
        if let Some((operation, took)) = self.slowest_store {
            write!(f, " (slowest {operation} {:.1} ms)", millis(took))?;
        }
        for (what, took) in &self.notes {
            write!(f, "; {what} {:.1} ms", millis(*took))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_admitted_up_to_the_budget_of_the_second() {
        let budget = LinesPerSecond::new(3);
        let admitted = (0..10).filter(|_| budget.admit()).count();
        assert_eq!(admitted, 3);
    }

    #[tokio::test]
    async fn a_record_collects_what_the_request_did_and_nothing_outside_it() {
        store_call("load", Duration::from_millis(1)); // outside: nothing
        let ((), phases) = recorded(async {
            handler_started();
            store_call("load", Duration::from_micros(300));
            store_call("update", Duration::from_millis(2));
            note("catalog refresh", Duration::from_millis(5));
            handler_ended();
        })
        .await;
        let text = phases.to_string();
        assert!(
            text.contains("store 2 calls 2.3 ms (slowest update 2.0 ms)"),
            "{text}"
        );
        assert!(text.contains("catalog refresh 5.0 ms"), "{text}");
        assert!(text.contains("in it"), "{text}");
    }
}
