//! The accept loop: the connection limit, one task per connection, and the drain at
//! shutdown (stop accepting, give open connections the grace period, close the rest).
//!
//! At the limit the loop stops calling `accept`, so new connections wait in the kernel's
//! backlog instead of being accepted and refused. One client address (an IPv6 client: its
//! /64, as admission counts addresses) may hold only so many
//! of those places ([`ServerConfig::max_connections_per_address`]): a connection beyond
//! that is closed as soon as it is accepted, so a few addresses (slow senders, say) cannot
//! take every place and leave other clients waiting. A plain-HTTP client refused so is told
//! why (`429` naming the setting) as far as one non-blocking write allows; a TLS client's
//! connection is closed. Both are counted (`qudag_connections_refused_total`). Trusted
//! proxies are exempt; IPv4-mapped
//! IPv6 peers (`::ffff:a.b.c.d`) count, and are seen by the endpoints, as their IPv4 address.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::{Endpoint, EndpointExt};
use qudag_application::admission::Address;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::ServerConfig;
use super::connection::{Ep, connection};
use super::hsts::Hsts;
use super::tls::TlsState;

/// Connections currently open, for tests and diagnostics.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    open: AtomicUsize,
    accepted: AtomicU64,
    refused: AtomicU64,
}

impl ConnectionStats {
    /// Connections being served now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections accepted since start.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections closed on arrival since start, their address being at its limit.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// These counters on `/metrics`: `qudag_connections_open`,
    /// `qudag_connections_accepted_total`, `qudag_connections_refused_total{reason}`.
    pub fn register_metrics(self: &Arc<Self>, metrics: &crate::prometheus::PrometheusMetrics) {
        let stats = self.clone();
        metrics.register_gauge("qudag_connections_open", "Client connections being served now.", move || {
            stats.open() as f64
        });
        let stats = self.clone();
        metrics.register_counters(
            "qudag_connections_accepted_total",
            "Client connections accepted, refused ones included.",
            "",
            move || vec![("", stats.accepted())],
        );
        let stats = self.clone();
        metrics.register_counters(
            "qudag_connections_refused_total",
            "Client connections closed on arrival, by reason (per_address: the client's address held QUDAG_MAX_CONNECTIONS_PER_ADDRESS).",
            "reason",
            move || vec![("per_address", stats.refused())],
        );
    }
}

/// The connections each client address holds open.
#[derive(Debug)]
struct PerAddress {
    limit: usize,
    open: Mutex<HashMap<Address, usize>>,
}

impl PerAddress {
    /// A place for one more connection from `ip`, or `None` when it holds its limit.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let ip = Address::of(Some(ip));
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot { table: self.clone(), ip })
    }
}

/// One connection's place in [`PerAddress`], given back when dropped.
struct AddressSlot {
    table: Arc<PerAddress>,
    ip: Address,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// What a plain-HTTP connection refused for its address's connection limit is sent.
const REFUSAL: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nConnection: close\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Length: 84\r\n\r\n\
this address holds its limit of open connections (QUDAG_MAX_CONNECTIONS_PER_ADDRESS)";

/// Tell a refused plain-HTTP client why, without waiting for it: one non-blocking write of
/// [`REFUSAL`], then what it has already sent is read and discarded (at most 64 KiB), so
/// that closing does not reset the connection before the answer is read.
fn refuse(stream: &tokio::net::TcpStream) {
    let _ = stream.try_write(REFUSAL);
    let mut sink = [0_u8; 4096];
    for _ in 0..16 {
        match stream.try_read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

/// `addr` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) written as the IPv4 address
/// it is, so that it matches IPv4 blocks and is counted once whichever way it arrives.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Serve `endpoint` on `listener` until `signal` completes; then stop accepting, let open
/// connections finish for the configured grace period, and close what is left.
///
/// With `tls`, every connection is TLS and every response carries HSTS ([`Hsts`]).
///
/// # Errors
/// When the listener's address cannot be read. Accept errors (e.g. too many open files)
/// are logged and retried.
pub async fn serve<E>(
    listener: TcpListener,
    config: ServerConfig,
    tls: Option<Arc<TlsState>>,
    stats: Arc<ConnectionStats>,
    endpoint: E,
    signal: impl Future<Output = ()>,
) -> io::Result<()>
where
    E: Endpoint + 'static,
{
    let endpoint: Ep = if tls.is_some() {
        Arc::new(endpoint.with(Hsts).boxed())
    } else {
        Arc::new(endpoint.map_to_response().boxed())
    };
    let grace = config.shutdown_grace;
    let local = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let per_address = (config.max_connections_per_address > 0)
        .then(|| Arc::new(PerAddress { limit: config.max_connections_per_address, open: Mutex::default() }));
    let config = Arc::new(config);
    let draining = CancellationToken::new();
    let closing = CancellationToken::new();
    let tracker = TaskTracker::new();
    tokio::pin!(signal);
    loop {
        // At the limit, stop calling accept: new connections queue in the kernel's backlog.
        let permit = tokio::select! {
            () = &mut signal => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, remote) = tokio::select! {
            () = &mut signal => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "Accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let remote = canonical(remote);
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let address_slot = match &per_address {
            Some(table) if !config.unlimited_peers.iter().any(|block| block.contains(&remote.ip())) => {
                match table.admit(remote.ip()) {
                    Some(slot) => Some(slot),
                    None => {
                        stats.refused.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%remote, limit = table.limit, "Connection closed: its address holds its limit (QUDAG_MAX_CONNECTIONS_PER_ADDRESS)");
                        if tls.is_none() {
                            refuse(&stream);
                        }
                        drop(stream);
                        continue;
                    }
                }
            }
            _ => None,
        };
        let _ = stream.set_nodelay(true);
        let (endpoint, tls, config, stats) = (endpoint.clone(), tls.clone(), config.clone(), stats.clone());
        let (draining, closing) = (draining.clone(), closing.clone());
        tracker.spawn(async move {
            stats.open.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                () = connection(stream, local, remote, tls, &config, endpoint, draining) => {}
                () = closing.cancelled() => {}
            }
            stats.open.fetch_sub(1, Ordering::Relaxed);
            drop(address_slot);
            drop(permit);
        });
    }
    draining.cancel();
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(open = stats.open(), "Grace period over; closing the remaining connections");
        closing.cancel();
        tracker.wait().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let table = Arc::new(PerAddress { limit: 2, open: Mutex::default() });
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let a = table.admit(ip("2001:db8:1:2::1")).unwrap();
        let b = table.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert!(table.admit(ip("2001:db8:1:2::77")).is_none(), "a third from the same /64");
        let other = table.admit(ip("2001:db8:1:3::1"));
        assert!(other.is_some(), "another /64 has its own places");
        let v4 = table.admit(ip("192.0.2.1")).unwrap();
        let _mapped = table.admit(ip("::ffff:192.0.2.1")).unwrap();
        assert!(table.admit(ip("192.0.2.1")).is_none(), "mapped and plain IPv4 are one address");
        drop((a, v4));
        assert!(table.admit(ip("2001:db8:1:2::77")).is_some(), "a place given back is free again");
        drop(b);
    }

    #[test]
    fn the_refusal_is_one_complete_response_naming_the_setting() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 429 "));
        let length: usize =
            head.lines().find_map(|line| line.strip_prefix("Content-Length: ")).and_then(|n| n.parse().ok()).unwrap();
        assert_eq!(length, body.len());
        assert!(body.contains("QUDAG_MAX_CONNECTIONS_PER_ADDRESS"));
    }
}
