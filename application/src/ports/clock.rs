//! `Clock`: the current time.
//!
//! Adapters: `SystemClock` (adapters/memory), `ManualClock` (testkit) for tests that drive
//! time by hand instead of sleeping.

use qudag_domain::Timestamp;

/// A source of the current time.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
pub trait Clock: Send + Sync + 'static {
    /// The current time. Successive calls on one clock never go backwards.
    fn now(&self) -> Timestamp;
}
