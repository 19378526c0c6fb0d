//! The TLS acceptor's counters: handshakes by negotiated key-exchange group (to see how
//! many clients already get the post-quantum hybrid), failed handshakes, certificate
//! reloads; and their registration on `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The key-exchange groups offered, most preferred first: the hybrid post-quantum group,
/// then the classical ones that every TLS 1.3 client has.
pub(super) const GROUP_NAMES: [&str; 4] = ["X25519MLKEM768", "X25519", "secp256r1", "secp384r1"];

/// Handshakes completed, per negotiated key-exchange group, plus failed handshakes.
///
/// Plain atomics so that a metrics endpoint can read them without locking.
#[derive(Debug, Default)]
pub struct TlsStats {
    groups: [AtomicU64; GROUP_NAMES.len()],
    other_group: AtomicU64,
    failed: AtomicU64,
    reloads: AtomicU64,
    failed_reloads: AtomicU64,
}

impl TlsStats {
    /// Count a completed handshake that negotiated `group` (rustls's name, e.g.
    /// `X25519MLKEM768`).
    pub fn record_group(&self, group: &str) {
        match GROUP_NAMES.iter().position(|g| *g == group) {
            Some(i) => self.groups[i].fetch_add(1, Ordering::Relaxed),
            None => self.other_group.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Count a handshake that failed or timed out.
    pub fn record_failure(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Handshakes per group name (every offered group listed, zero included), then `other`.
    pub fn groups(&self) -> Vec<(&'static str, u64)> {
        GROUP_NAMES
            .iter()
            .zip(&self.groups)
            .map(|(name, n)| (*name, n.load(Ordering::Relaxed)))
            .chain(std::iter::once(("other", self.other_group.load(Ordering::Relaxed))))
            .collect()
    }

    /// Handshakes that negotiated `group`.
    pub fn group(&self, group: &str) -> u64 {
        self.groups().into_iter().find(|(g, _)| *g == group).map_or(0, |(_, n)| n)
    }

    /// Handshakes that failed or timed out.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Count a certificate reload, successful or not.
    pub(super) fn record_reload(&self, ok: bool) {
        let counter = if ok { &self.reloads } else { &self.failed_reloads };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Successful and failed reloads.
    pub fn reloads(&self) -> (u64, u64) {
        (self.reloads.load(Ordering::Relaxed), self.failed_reloads.load(Ordering::Relaxed))
    }
}

/// The TLS acceptor's counters on `/metrics`: handshakes by negotiated key-exchange group,
/// failed handshakes, certificate reloads by outcome.
pub fn register_metrics(metrics: &crate::prometheus::PrometheusMetrics, stats: Arc<TlsStats>) {
    let groups = stats.clone();
    metrics.register_counters(
        "qudag_tls_handshakes_total",
        "TLS handshakes completed, by negotiated key-exchange group (X25519MLKEM768 is the post-quantum hybrid).",
        "group",
        move || groups.groups(),
    );
    let failed = stats.clone();
    metrics.register_counters(
        "qudag_tls_handshake_failures_total",
        "TLS handshakes that failed or timed out.",
        "",
        move || vec![("", failed.failed())],
    );
    metrics.register_counters(
        "qudag_tls_certificate_reloads_total",
        "Certificate reloads (SIGHUP or a changed file), by outcome.",
        "outcome",
        move || {
            let (ok, failed) = stats.reloads();
            vec![("success", ok), ("failure", failed)]
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_counted_by_name_and_the_rest_as_other() {
        let stats = TlsStats::default();
        stats.record_group("X25519MLKEM768");
        stats.record_group("X25519MLKEM768");
        stats.record_group("secp384r1");
        stats.record_group("ffdhe2048");
        stats.record_failure();
        stats.record_reload(true);
        stats.record_reload(false);
        assert_eq!(stats.group("X25519MLKEM768"), 2);
        assert_eq!(stats.group("X25519"), 0);
        assert_eq!(stats.group("secp384r1"), 1);
        assert_eq!(stats.group("other"), 1);
        assert_eq!(stats.failed(), 1);
        assert_eq!(stats.reloads(), (1, 1));
        let names: Vec<_> = stats.groups().into_iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["X25519MLKEM768", "X25519", "secp256r1", "secp384r1", "other"]);
    }
}
