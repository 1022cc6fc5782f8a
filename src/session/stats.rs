//! Counters of what a store is asked to do: how many calls of each kind, how long they took,
//! how many failed. The tests use them to prove a page view costs one read and no write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Load,
    Save,
    Update,
    UpdateTtl,
    Delete,
}

impl Operation {
    pub const ALL: [Operation; 5] = [
        Operation::Load,
        Operation::Save,
        Operation::Update,
        Operation::UpdateTtl,
        Operation::Delete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operation::Load => "load",
            Operation::Save => "save",
            Operation::Update => "update",
            Operation::UpdateTtl => "update_ttl",
            Operation::Delete => "delete",
        }
    }

    /// Whether the operation writes to the store.
    pub fn writes(self) -> bool {
        self != Operation::Load
    }
}

#[derive(Debug, Default)]
struct Counter {
    calls: AtomicU64,
    failures: AtomicU64,
    micros: AtomicU64,
}

#[derive(Debug, Default)]
pub struct StoreStats {
    counters: [Counter; 5],
}

impl StoreStats {
    pub(super) fn record(&self, operation: Operation, took: Duration, ok: bool) {
        let counter = &self.counters[operation as usize];
        counter.calls.fetch_add(1, Ordering::Relaxed);
        counter.micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if !ok {
            counter.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn calls(&self, operation: Operation) -> u64 {
        self.counters[operation as usize]
            .calls
            .load(Ordering::Relaxed)
    }

    pub fn failures(&self, operation: Operation) -> u64 {
        self.counters[operation as usize]
            .failures
            .load(Ordering::Relaxed)
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
}
