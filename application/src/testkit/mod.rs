//! Test support shared by every adapter crate (feature `testkit`).
//!
//! - one contract suite per port with backend adapters ([`session_store`], [`rate_limiter`],
//!   [`audit`], [`event_bus`], [`event_store`], [`vault_store`], [`name_registry`],
//!   [`membership`]): `pub async fn` checks taking a fresh adapter, and a macro that expands
//!   them into one `#[tokio::test]` each, so `adapters/<tech>/tests/contract.rs` runs the
//!   same checks against every implementation;
//! - [`ManualClock`], to drive time by hand instead of sleeping;
//! - [`proxy::TcpProxy`], to cut an adapter off from its backend in a test;
//! - the mockall mocks generated on each port (`MockSessionStore`, ...), re-exported from
//!   [`crate::ports`].

pub mod audit;
pub mod event_bus;
pub mod event_store;
pub mod membership;
pub mod name_registry;
pub mod proxy;
pub mod rate_limiter;
pub mod session_store;
pub mod vault_store;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use qudag_domain::Timestamp;

use crate::ports::Clock;

/// `bytes` random bytes as hex, for names and ids no other check (or test run) uses.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("entropy");
    hex::encode(buf)
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: Timestamp) -> Self {
        Self(AtomicU64::new(start.as_micros()))
    }

    /// Move the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(qudag_domain::time::duration_micros(d), Ordering::SeqCst);
    }

    /// Set the clock to `t` (tests may move it backwards to check monotonic handling).
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.as_micros(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.0.load(Ordering::SeqCst))
    }
}
