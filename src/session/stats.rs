//! What a store is asked to do: calls of each kind with their latency, failures, and bytes
//! written. Prometheus collectors, so `/metrics` exposes them as they are; the tests read the
//! same numbers to prove that a page view costs one read and no write.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

use super::Backend;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Load,
    Save,
    Update,
    /// A separate write that pushed a session's expiry back (the SQL stores' lazy slide).
    Slide,
    Delete,
}

impl Operation {
    pub const ALL: [Operation; 5] = [
        Operation::Load,
        Operation::Save,
        Operation::Update,
        Operation::Slide,
        Operation::Delete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operation::Load => "load",
            Operation::Save => "save",
            Operation::Update => "update",
            Operation::Slide => "slide",
            Operation::Delete => "delete",
        }
    }

    /// Whether the operation writes to the store.
    pub fn writes(self) -> bool {
        self != Operation::Load
    }
}

/// Latency buckets from 50 µs (a local Redis) to 1 s (a store in trouble).
const BUCKETS: [f64; 13] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

pub struct StoreStats {
    store: &'static str,
    latency: HistogramVec,
    errors: IntCounterVec,
    bytes_written: IntCounter,
}

impl StoreStats {
    pub fn new(backend: Backend) -> Self {
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "shop_session_store_operation_duration_seconds",
                "Time taken by session store operations.",
            )
            .buckets(BUCKETS.to_vec()),
            &["operation", "store"],
        )
        .expect("a valid histogram");
        let errors = IntCounterVec::new(
            Opts::new(
                "shop_session_store_errors_total",
                "Session store operations that failed.",
            ),
            &["operation", "store"],
        )
        .expect("a valid counter");
        let bytes_written = IntCounter::with_opts(
            Opts::new(
                "shop_session_store_written_bytes_total",
                "Bytes of session state written to the store.",
            )
            .const_label("store", backend.name()),
        )
        .expect("a valid counter");
        Self {
            store: backend.name(),
            latency,
            errors,
            bytes_written,
        }
    }

    /// Adds these collectors to an application's registry.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.latency.clone()))?;
        registry.register(Box::new(self.errors.clone()))?;
        registry.register(Box::new(self.bytes_written.clone()))
    }

    pub(super) fn record(&self, operation: Operation, took: Duration, ok: bool) {
        crate::timing::store_call(operation.name(), took);
        let labels = [operation.name(), self.store];
        self.latency
            .with_label_values(&labels)
            .observe(took.as_secs_f64());
        if !ok {
            self.errors.with_label_values(&labels).inc();
        }
    }

    pub(super) fn wrote(&self, bytes: usize) {
        self.bytes_written.inc_by(bytes as u64);
    }

    pub fn calls(&self, operation: Operation) -> u64 {
        self.latency
            .with_label_values(&[operation.name(), self.store])
            .get_sample_count()
    }

    pub fn failures(&self, operation: Operation) -> u64 {
        self.errors
            .with_label_values(&[operation.name(), self.store])
            .get()
    }

    /// Every call so far, of any kind.
    pub fn round_trips(&self) -> u64 {
        Operation::ALL.iter().map(|&op| self.calls(op)).sum()
    }

    /// Every call so far that wrote to the store.
    pub fn writes(&self) -> u64 {
        Operation::ALL
            .iter()
            .filter(|op| op.writes())
            .map(|&op| self.calls(op))
            .sum()
    }

    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.get()
    }
}
