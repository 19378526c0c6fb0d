//! Limits on long-lived SSE streams (the stateful GET stream and `subscriptions/listen`),
//! per principal and in total, so one client cannot hold every stream a node can serve.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// How many long-lived streams may be open at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLimits {
    /// By one principal (HTTP 429 beyond it).
    pub per_principal: usize,
    /// On this node, by everyone (HTTP 503 beyond it).
    pub total: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self { per_principal: 16, total: 10_000 }
    }
}

pub use crate::errors::StreamRefusal;

/// The open streams, counted.
#[derive(Debug, Default)]
pub struct StreamSlots {
    limits: StreamLimits,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_principal: HashMap<String, usize>,
}

impl StreamSlots {
    /// Slots under `limits`.
    pub fn new(limits: StreamLimits) -> Arc<Self> {
        Arc::new(Self { limits, open: Mutex::default() })
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a stream of `principal`, held until the returned guard is dropped.
    ///
    /// # Errors
    /// When the principal or the node is at its limit.
    pub fn acquire(self: &Arc<Self>, principal: &str) -> Result<StreamSlot, StreamRefusal> {
        let mut open = self.lock();
        if open.total >= self.limits.total {
            return Err(StreamRefusal::NodeFull(self.limits.total));
        }
        let mine = open.by_principal.get(principal).copied().unwrap_or(0);
        if mine >= self.limits.per_principal {
            return Err(StreamRefusal::CallerFull(self.limits.per_principal));
        }
        open.total += 1;
        open.by_principal.insert(principal.to_owned(), mine + 1);
        Ok(StreamSlot { slots: self.clone(), principal: principal.to_owned() })
    }
}

/// One open stream's place; dropping it frees the place.
#[derive(Debug)]
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    principal: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_principal.get_mut(&self.principal) {
            *n -= 1;
            if *n == 0 {
                open.by_principal.remove(&self.principal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_per_principal_and_in_total_and_free_on_drop() {
        let slots = StreamSlots::new(StreamLimits { per_principal: 2, total: 3 });
        let a1 = slots.acquire("alice").unwrap();
        let _a2 = slots.acquire("alice").unwrap();
        assert!(matches!(slots.acquire("alice").unwrap_err(), StreamRefusal::CallerFull(2)));
        let _b1 = slots.acquire("bob").unwrap();
        assert!(matches!(slots.acquire("carol").unwrap_err(), StreamRefusal::NodeFull(3)));
        assert_eq!(slots.open(), 3);
        drop(a1);
        assert_eq!(slots.open(), 2);
        let _c1 = slots.acquire("carol").unwrap();
        assert!(matches!(slots.acquire("alice").unwrap_err(), StreamRefusal::NodeFull(3)));
        assert_eq!(slots.lock().by_principal.get("alice"), Some(&1));
    }
}
