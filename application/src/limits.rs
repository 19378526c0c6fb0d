//! What one caller may hold at once: live sessions, subscriptions, tool calls running,
//! requests to the client waiting for answers. Each bound has a `QUDAG_*` setting; reaching
//! one is a [`Limit`] naming it (HTTP 429, JSON-RPC -31002, with `Retry-After`).
//!
//! A caller is its principal, or — for the anonymous principal of a server without
//! authentication, which every caller shares — its address ([`holder_of`], [`Holder`]).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::admission::{Address, Caller};

/// The bounds per caller the MCP engine keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallerLimits {
    /// Live sessions per caller (`QUDAG_MAX_SESSIONS_PER_PRINCIPAL`).
    pub sessions: usize,
    /// Resource subscriptions per session (`QUDAG_MAX_SUBSCRIPTIONS_PER_SESSION`).
    pub subscriptions_per_session: usize,
    /// Bytes of a subscribed resource URI (`QUDAG_MAX_SUBSCRIPTION_URI_BYTES`).
    pub subscription_uri_bytes: usize,
    /// Tool calls running at once per caller (`QUDAG_MAX_TOOL_CALLS_PER_PRINCIPAL`).
    pub tool_calls: usize,
    /// Server-to-client requests (sampling, elicitation, roots) waiting for answers per
    /// caller (`QUDAG_MAX_PENDING_REQUESTS_PER_PRINCIPAL`).
    pub pending_requests: usize,
}

impl Default for CallerLimits {
    fn default() -> Self {
        Self {
            sessions: 100,
            subscriptions_per_session: 32,
            subscription_uri_bytes: 1024,
            tool_calls: 8,
            pending_requests: 16,
        }
    }
}

/// A bound per caller was reached.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at most {max} {what}; {hint} (limit set by {setting})")]
pub struct Limit {
    /// What is bounded, in words ("live sessions per caller").
    pub what: &'static str,
    /// The bound.
    pub max: usize,
    /// The setting that sets it.
    pub setting: &'static str,
    /// What the caller can do about it.
    pub hint: &'static str,
    /// Seconds after which trying again may succeed.
    pub retry_after_secs: u64,
}

impl Limit {
    /// Live sessions per caller.
    pub fn sessions(max: usize) -> Self {
        Self {
            what: "live sessions per caller",
            max,
            setting: "QUDAG_MAX_SESSIONS_PER_PRINCIPAL",
            hint: "end one (DELETE) or let one expire first",
            retry_after_secs: 60,
        }
    }

    /// Subscriptions per session.
    pub fn subscriptions(max: usize) -> Self {
        Self {
            what: "resource subscriptions per session (or listen stream)",
            max,
            setting: "QUDAG_MAX_SUBSCRIPTIONS_PER_SESSION",
            hint: "unsubscribe from one first",
            retry_after_secs: 5,
        }
    }

    /// Tool calls running at once per caller.
    pub fn tool_calls(max: usize) -> Self {
        Self {
            what: "tool calls running at once per caller",
            max,
            setting: "QUDAG_MAX_TOOL_CALLS_PER_PRINCIPAL",
            hint: "wait for one to finish",
            retry_after_secs: 1,
        }
    }

    /// Requests to the client waiting for answers per caller.
    pub fn pending_requests(max: usize) -> Self {
        Self {
            what: "requests to the client awaiting answers per caller",
            max,
            setting: "QUDAG_MAX_PENDING_REQUESTS_PER_PRINCIPAL",
            hint: "answer or cancel one first",
            retry_after_secs: 5,
        }
    }
}

/// Whose allowance `caller` uses: `user:<principal>`, or `ip:<address>` for the anonymous
/// principal (no authentication: every caller is that one principal).
pub fn holder_of(caller: &Caller) -> String {
    let principal = caller.principal().id();
    if !principal.is_anonymous() {
        return crate::ports::RateLimitKey::principal(principal).into();
    }
    match &caller.ctx().client_addr {
        Some(addr) => crate::ports::RateLimitKey::address(addr).into(),
        None => "ip:unknown".to_owned(),
    }
}

/// A caller as [`Slots`] count it: the caller of [`holder_of`], as a 64-bit SipHash under a
/// key drawn at random once per process, so that taking a place on the request path
/// formats and allocates nothing. Two callers would share a count only if their hashes
/// collided, which a caller cannot arrange without the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Holder(u64);

impl Holder {
    /// Whose places `caller` takes.
    pub fn of(caller: &Caller) -> Self {
        static KEY: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
        let key = KEY.get_or_init(std::collections::hash_map::RandomState::new);
        let principal = caller.principal().id();
        Self(if principal.is_anonymous() {
            key.hash_one((1_u8, Address::of(caller.ctx().client_addr)))
        } else {
            key.hash_one((0_u8, principal))
        })
    }

    /// A holder for tests.
    #[cfg(any(test, feature = "testkit"))]
    pub fn of_raw(raw: u64) -> Self {
        Self(raw)
    }
}

/// Places counted per holder, at most `max` each: a place is held while its [`Slot`] lives.
/// A holder with no place taken has no entry, so the map holds only holders with something
/// running.
#[derive(Debug)]
pub struct Slots {
    max: usize,
    held: Mutex<HashMap<Holder, usize>>,
}

impl Slots {
    /// At most `max` places per holder.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self { max, held: Mutex::default() })
    }

    /// The bound per holder.
    pub fn max(&self) -> usize {
        self.max
    }

    /// A place for `holder`, or `None` when it holds `max` already.
    pub fn acquire(self: &Arc<Self>, holder: Holder) -> Option<Slot> {
        let mut held = self.lock();
        let n = held.entry(holder).or_insert(0);
        if *n >= self.max {
            if *n == 0 {
                held.remove(&holder);
            }
            return None;
        }
        *n += 1;
        Some(Slot { slots: self.clone(), holder })
    }

    /// Holders with at least one place taken.
    pub fn holders(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Holder, usize>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One taken place; dropping it gives the place back.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    holder: Holder,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.lock();
        if let Some(n) = held.get_mut(&self.holder) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.holder);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_bounded_per_holder_and_empty_holders_forgotten() {
        let slots = Slots::new(2);
        let (a, b) = (Holder::of_raw(1), Holder::of_raw(2));
        let a1 = slots.acquire(a).unwrap();
        let a2 = slots.acquire(a).unwrap();
        assert!(slots.acquire(a).is_none());
        let b1 = slots.acquire(b).unwrap();
        assert_eq!(slots.holders(), 2);
        drop(a1);
        let a3 = slots.acquire(a).unwrap();
        drop((a2, a3, b1));
        assert_eq!(slots.holders(), 0, "no entry outlives its last place");
    }

    #[test]
    fn a_limit_names_its_setting_and_bound() {
        let text = Limit::subscriptions(32).to_string();
        assert!(text.contains("32") && text.contains("QUDAG_MAX_SUBSCRIPTIONS_PER_SESSION"), "{text}");
    }
}
