//! The accept loop: the connection limit, one task per connection, and the drain at
//! shutdown (stop accepting, give open connections the grace period, close the rest).
//!
//! At the limit the loop stops calling `accept`, so new connections wait in the kernel's
//! backlog instead of being accepted and refused. One client address may hold only so many
//! of those places ([`ServerConfig::max_connections_per_address`]): a connection beyond
//! that is closed as soon as it is accepted, so a few addresses (slow senders, say) cannot
//! take every place and leave other clients waiting. Trusted proxies are exempt; IPv4-mapped
//! IPv6 peers (`::ffff:a.b.c.d`) count, and are seen by the endpoints, as their IPv4 address.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::{Endpoint, EndpointExt};
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
}

/// The connections each client address holds open.
#[derive(Debug)]
struct PerAddress {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    /// A place for one more connection from `ip`, or `None` when it holds its limit.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
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
    ip: IpAddr,
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
