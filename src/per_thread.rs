//! Values kept per thread for an owner held elsewhere (a store, a database), which go when the
//! owner does. A socket belongs to the runtime of the thread that opened it, and each actix
//! worker runs its own, so connections are kept per thread (see `db::Pools` and the Memcached
//! store); a process that opens an owner more than once (the tests) lets go of the values of
//! those it dropped.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

/// A value, beside whether its owner is still held.
type Kept = (Weak<u64>, Box<dyn Any>);

thread_local! {
    static VALUES: RefCell<HashMap<u64, Kept>> = RefCell::new(HashMap::new());
}

/// An owner's handle on its per-thread values; clones share them.
#[derive(Clone)]
pub struct PerThread {
    id: Arc<u64>,
}

impl Default for PerThread {
    fn default() -> Self {
        Self {
            id: Arc::new(rand::random()),
        }
    }
}

impl PerThread {
    /// What this thread keeps for the owner, if anything, as `pick` sees it.
    pub fn with<T: 'static, R>(&self, pick: impl FnOnce(&T) -> R) -> Option<R> {
        VALUES.with(|values| {
            values
                .borrow()
                .get(&*self.id)
                .and_then(|(_, value)| value.downcast_ref::<T>())
                .map(pick)
        })
    }

    /// Keeps `value` for the owner on this thread, and lets go of what this thread kept for
    /// owners no longer held (their connections close).
    pub fn keep<T: 'static>(&self, value: T) {
        VALUES.with(|values| {
            let mut values = values.borrow_mut();
            values.retain(|_, (held, _)| held.strong_count() > 0);
            values.insert(*self.id, (Arc::downgrade(&self.id), Box::new(value)));
        });
    }
}
