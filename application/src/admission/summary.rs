//! Repeated refusals, written to the audit trail once and then counted.
//!
//! A caller that keeps failing (a flood of bad tokens, a client hammering past its quota)
//! must not write one audit record per request: the trail would grow as fast as the
//! attacker can send. Within a [`WINDOW`], per topic (failed authentications from one
//! address, refusals by one quota of one rate-limit key):
//!
//! - the first refusal of each reason is recorded in full (with its request id);
//! - later ones are only counted (the metrics still count every one);
//! - when the window ends, one summary record carries the counts (`details.summary: true`,
//!   `suppressed`, `by_reason`, `window_started`, `window_secs`).
//!
//! Windows are written when the same topic is refused again after its window, when the
//! memory is full (the oldest window goes first), and by [`Admission::flush_summaries`]
//! (the server calls it every few seconds and at shutdown).
//!
//! The addresses that spent their failed-authentication allowance are remembered here too
//! ([`Blocks`]): until the allowance refills, their requests are refused before their token
//! is looked at.
//!
//! [`Admission::flush_summaries`]: super::Admission::flush_summaries

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Duration;

use qudag_domain::Timestamp;
use qudag_domain::audit::{AuditAction, AuditRecord, Outcome};
use qudag_domain::quota::Decision;
use serde_json::json;

use super::RequestContext;

/// How long a summary window lasts.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Windows tracked at most; past it the oldest is summarised early.
const MAX_WINDOWS: usize = 10_000;

/// Blocked addresses remembered at most; past it the block that ends first is forgotten
/// (that address then costs one more verification before it is blocked again).
const MAX_BLOCKS: usize = 10_000;

/// A client address as counted for per-address accounting before authentication: an IPv4
/// address (also when it arrives IPv4-mapped), or the /64 an IPv6 address is in (one host
/// commonly holds a whole /64, so single IPv6 addresses would be free to rotate). Building
/// one allocates nothing; its text (`ip:…`) is [`address_key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Address(Option<IpAddr>);

impl Address {
    /// The accounting address of `addr`.
    pub fn of(addr: Option<IpAddr>) -> Self {
        Self(addr.map(|a| match a.to_canonical() {
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
            v4 => v4,
        }))
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("ip:unknown"),
            Some(IpAddr::V4(v4)) => write!(f, "ip:{v4}"),
            Some(IpAddr::V6(v6)) => {
                let s = v6.segments();
                write!(f, "ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        }
    }
}

/// The key of a client address for per-address accounting ([`Address`]).
pub fn address_key(addr: Option<IpAddr>) -> String {
    Address::of(addr).to_string()
}

/// What a window counts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Failed authentications from one address (its [`address_key`]).
    AuthFailed(String),
    /// Refusals by one quota (`quota`) of one rate-limit key.
    RateLimited {
        /// The rate-limit key.
        key: String,
        /// The quota's label.
        quota: &'static str,
    },
}

#[derive(Debug)]
struct Window {
    started: Timestamp,
    recorded: Vec<&'static str>,
    suppressed: BTreeMap<&'static str, u64>,
    client_addr: Option<IpAddr>,
    actor: Option<String>,
}

/// A window's count, ready to be written.
#[derive(Debug)]
pub struct Summary {
    topic: Topic,
    started: Timestamp,
    suppressed: BTreeMap<&'static str, u64>,
    client_addr: Option<IpAddr>,
    actor: Option<String>,
}

impl Summary {
    /// The summary record and the context it is written for (no request: it stands for many).
    pub fn into_record(self, now: Timestamp) -> (RequestContext, AuditRecord) {
        let total: u64 = self.suppressed.values().sum();
        let mut details = json!({
            "summary": true,
            "suppressed": total,
            "by_reason": self.suppressed,
            "window_started": self.started.to_rfc3339(),
            "window_secs": WINDOW.as_secs(),
        });
        let action = match &self.topic {
            Topic::AuthFailed(address) => {
                details["reason"] = json!("repeated");
                details["address"] = json!(address);
                AuditAction::AuthFailed
            }
            Topic::RateLimited { key, quota } => {
                details["key"] = json!(key);
                details["quota"] = json!(quota);
                AuditAction::RateLimited
            }
        };
        let mut record = AuditRecord::new(now, action, Outcome::Denied).details(details);
        if let Some(actor) = self.actor {
            record = record.actor(actor);
        }
        let ctx = RequestContext { client_addr: self.client_addr, ..RequestContext::default() };
        (ctx, record)
    }
}

/// The open windows.
#[derive(Debug, Default)]
pub struct Summaries {
    windows: Mutex<HashMap<Topic, Window>>,
}

impl Summaries {
    /// Note one refusal of `topic` for `reason` at `now`: whether to record it in full, and
    /// the summaries of windows that ended (or had to make room) to write now.
    pub fn note(
        &self,
        topic: Topic,
        reason: &'static str,
        ctx: &RequestContext,
        actor: Option<&str>,
        now: Timestamp,
    ) -> (bool, Vec<Summary>) {
        let mut done = Vec::new();
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.get(&topic).is_some_and(|w| ended(w, now))
            && let Some(w) = windows.remove(&topic)
        {
            done.extend(summary(topic.clone(), w));
        }
        if !windows.contains_key(&topic) && windows.len() >= MAX_WINDOWS {
            let stale: Vec<Topic> = windows.iter().filter(|(_, w)| ended(w, now)).map(|(t, _)| t.clone()).collect();
            for t in stale {
                if let Some(w) = windows.remove(&t) {
                    done.extend(summary(t, w));
                }
            }
            if windows.len() >= MAX_WINDOWS
                && let Some(oldest) = windows.iter().min_by_key(|(_, w)| w.started).map(|(t, _)| t.clone())
                && let Some(w) = windows.remove(&oldest)
            {
                done.extend(summary(oldest, w));
            }
        }
        let window = windows.entry(topic).or_insert_with(|| Window {
            started: now,
            recorded: Vec::new(),
            suppressed: BTreeMap::new(),
            client_addr: ctx.client_addr,
            actor: actor.map(str::to_owned),
        });
        let first = !window.recorded.contains(&reason);
        if first {
            window.recorded.push(reason);
        } else {
            *window.suppressed.entry(reason).or_default() += 1;
        }
        (first, done)
    }

    /// Take the windows that ended by `now` (every window when `all`), as summaries of those
    /// that counted anything.
    pub fn take(&self, now: Timestamp, all: bool) -> Vec<Summary> {
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let topics: Vec<Topic> = windows.iter().filter(|(_, w)| all || ended(w, now)).map(|(t, _)| t.clone()).collect();
        topics.into_iter().filter_map(|t| windows.remove(&t).and_then(|w| summary(t, w))).collect()
    }

    /// Windows open now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}

fn ended(w: &Window, now: Timestamp) -> bool {
    now.saturating_duration_since(w.started) >= WINDOW
}

fn summary(topic: Topic, w: Window) -> Option<Summary> {
    (!w.suppressed.is_empty()).then_some(Summary {
        topic,
        started: w.started,
        suppressed: w.suppressed,
        client_addr: w.client_addr,
        actor: w.actor,
    })
}

/// Addresses whose failed-authentication allowance is spent, until it refills.
#[derive(Debug, Default)]
pub struct Blocks {
    until: Mutex<HashMap<Address, (Timestamp, Decision)>>,
}

impl Blocks {
    /// The refusal for `address` if it is blocked at `now` (its `Retry-After` counted from
    /// now).
    pub fn blocked(&self, address: Address, now: Timestamp) -> Option<Decision> {
        let mut until = self.until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (end, decision) = until.get(&address).copied()?;
        if now >= end {
            until.remove(&address);
            return None;
        }
        let left = end.saturating_duration_since(now);
        Some(Decision { retry_after: Some(left), reset_after: decision.reset_after.max(left), ..decision })
    }

    /// Block `address` from `now` for as long as `decision` says.
    pub fn block(&self, address: Address, decision: Decision, now: Timestamp) {
        let Some(wait) = decision.retry_after.filter(|d| !d.is_zero()) else { return };
        let mut until = self.until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if until.len() >= MAX_BLOCKS && !until.contains_key(&address) {
            until.retain(|_, (end, _)| *end > now);
            if until.len() >= MAX_BLOCKS
                && let Some(first) = until.iter().min_by_key(|(_, (end, _))| *end).map(|(k, _)| *k)
            {
                until.remove(&first);
            }
        }
        until.insert(address, (now.saturating_add(wait), decision));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    fn ctx() -> RequestContext {
        RequestContext { client_addr: Some("192.0.2.7".parse().unwrap()), ..RequestContext::default() }
    }

    #[test]
    fn the_first_of_each_reason_is_recorded_the_rest_counted_into_one_summary() {
        let s = Summaries::default();
        let topic = || Topic::AuthFailed("ip:192.0.2.7".into());
        assert!(s.note(topic(), "bad_signature", &ctx(), None, at(1_000)).0);
        for _ in 0..500 {
            let (record, done) = s.note(topic(), "bad_signature", &ctx(), None, at(1_001));
            assert!(!record && done.is_empty());
        }
        assert!(s.note(topic(), "expired", &ctx(), None, at(1_002)).0, "a new reason is recorded once");
        assert!(s.take(at(1_030), false).is_empty(), "the window is still open");
        // The same address again after the window: the old window's summary comes out.
        let (record, done) = s.note(topic(), "bad_signature", &ctx(), None, at(1_060));
        assert!(record, "a new window records its first refusal");
        assert_eq!(done.len(), 1);
        let (ctx, r) = done.into_iter().next().unwrap().into_record(at(1_060));
        assert_eq!(r.action, AuditAction::AuthFailed);
        assert_eq!(r.details["suppressed"], 500);
        assert_eq!(r.details["by_reason"]["bad_signature"], 500);
        assert_eq!(r.details["summary"], true);
        assert_eq!(ctx.client_addr, Some("192.0.2.7".parse().unwrap()));
        assert!(ctx.request_id.is_empty(), "a summary stands for many requests");
    }

    #[test]
    fn windows_are_bounded_and_flushed() {
        let s = Summaries::default();
        let mut written = 0;
        for i in 0..(MAX_WINDOWS as u64 + 50) {
            let topic = Topic::RateLimited { key: format!("ip:10.0.{}.{}", i / 256, i % 256), quota: "rate" };
            for _ in 0..2 {
                written += s.note(topic.clone(), "rate", &ctx(), None, at(1_000)).1.len();
            }
        }
        assert!(s.len() <= MAX_WINDOWS, "{}", s.len());
        assert_eq!(written, 50, "the oldest windows were summarised to make room");
        assert_eq!(s.take(at(1_000), true).len(), MAX_WINDOWS);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn a_block_lasts_until_the_allowance_refills() {
        let b = Blocks::default();
        let d = Decision {
            allowed: false,
            limit: 10,
            remaining: 0,
            reset_after: Duration::from_secs(6),
            retry_after: Some(Duration::from_secs(6)),
        };
        let address = |s: &str| Address::of(Some(s.parse().unwrap()));
        b.block(address("192.0.2.7"), d, at(100));
        assert_eq!(b.blocked(address("192.0.2.7"), at(102)).unwrap().retry_after, Some(Duration::from_secs(4)));
        assert!(b.blocked(address("192.0.2.8"), at(102)).is_none());
        assert!(b.blocked(address("192.0.2.7"), at(106)).is_none());
    }

    #[test]
    fn addresses_are_keyed_by_host_and_ipv6_by_64() {
        let key = |s: &str| address_key(Some(s.parse().unwrap()));
        assert_eq!(key("192.0.2.7"), "ip:192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "ip:192.0.2.7");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(address_key(None), "ip:unknown");
    }
}
