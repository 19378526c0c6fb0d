//! The accept loop: the connection limit, one task per connection, and the drain at
//! shutdown (stop accepting, give open connections the grace period, close the rest).
//!
//! At the limit the loop stops calling `accept`, so new connections wait in the kernel's
//! backlog instead of being accepted and refused.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
        let _ = stream.set_nodelay(true);
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let (endpoint, tls, config, stats) = (endpoint.clone(), tls.clone(), config.clone(), stats.clone());
        let (draining, closing) = (draining.clone(), closing.clone());
        tracker.spawn(async move {
            stats.open.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                () = connection(stream, local, remote, tls, &config, endpoint, draining) => {}
                () = closing.cancelled() => {}
            }
            stats.open.fetch_sub(1, Ordering::Relaxed);
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
