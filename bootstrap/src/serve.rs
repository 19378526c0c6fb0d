//! The connection layer under poem's endpoints: accept, limit, optionally TLS, then HTTP/1.1
//! or HTTP/2 by hyper, with graceful shutdown.
//!
//! poem's own `Server` offers no HTTP/1 header size or header timeout knobs and performs an
//! acceptor's work inside its accept loop (one slow TLS handshake would hold up every other
//! client), so connections are served here with hyper-util's auto builder directly; each
//! request is handed to the poem endpoint unchanged.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::combinators::BoxBody;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::settings::ServerSettings;
use crate::tls::TlsState;

/// The connection limits (see `docs/configuration.md`).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest HTTP/1.1 request head; the HTTP/2 header list limit.
    pub max_header_bytes: usize,
    /// Time to send a complete HTTP/1.1 request head.
    pub header_timeout: Duration,
    /// Silence (no bytes, no request in flight) after which a connection is closed.
    pub keepalive_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Time to complete the TLS handshake.
    pub handshake_timeout: Duration,
}

impl Limits {
    /// The limits the settings ask for.
    pub fn from_settings(s: &ServerSettings) -> Self {
        Self {
            max_header_bytes: s.max_header_bytes,
            header_timeout: Duration::from_secs(s.header_timeout_secs),
            keepalive_timeout: Duration::from_secs(s.keepalive_timeout_secs),
            max_connections: s.max_connections,
            handshake_timeout: Duration::from_secs(s.tls_handshake_timeout_secs),
        }
    }
}

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

type Ep = Arc<poem::endpoint::BoxEndpoint<'static, Response>>;

/// Serve `endpoint` on `listener` until `signal` completes; then stop accepting, let open
/// connections finish for `grace`, and close what is left.
///
/// # Errors
/// Never at present: accept errors (e.g. too many open files) are logged and retried.
pub async fn serve<E>(
    listener: TcpListener,
    tls: Option<Arc<TlsState>>,
    limits: Limits,
    stats: Arc<ConnectionStats>,
    endpoint: E,
    signal: impl Future<Output = ()>,
    grace: Duration,
) -> io::Result<()>
where
    E: Endpoint + 'static,
{
    let endpoint: Ep = Arc::new(poem::EndpointExt::boxed(poem::EndpointExt::map_to_response(endpoint)));
    let local = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
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
        let (endpoint, tls, limits, stats) = (endpoint.clone(), tls.clone(), limits.clone(), stats.clone());
        let (draining, closing) = (draining.clone(), closing.clone());
        tracker.spawn(async move {
            stats.open.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                () = connection(stream, local, remote, tls, &limits, endpoint, draining) => {}
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

async fn connection(
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    tls: Option<Arc<TlsState>>,
    limits: &Limits,
    endpoint: Ep,
    draining: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    let stream = Watched { inner: stream, activity: activity.clone() };
    match tls {
        None => http(stream, local, remote, Scheme::HTTP, limits, endpoint, activity, draining).await,
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
            let stream = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tls.stats().record_failure();
                    tracing::debug!(%remote, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tls.stats().record_failure();
                    tracing::debug!(%remote, "TLS handshake timed out");
                    return;
                }
            };
            let (_, session) = stream.get_ref();
            let group = session.negotiated_key_exchange_group().map(|g| format!("{:?}", g.name()));
            let group = group.unwrap_or_else(|| "none".into());
            tracing::debug!(
                %remote,
                group = %group,
                version = ?session.protocol_version(),
                alpn = ?session.alpn_protocol().map(String::from_utf8_lossy),
                "TLS handshake completed"
            );
            tls.stats().record_group(&group);
            http(stream, local, remote, Scheme::HTTPS, limits, endpoint, activity, draining).await;
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn http<Io>(
    io: Io,
    local: SocketAddr,
    remote: SocketAddr,
    scheme: Scheme,
    limits: &Limits,
    endpoint: Ep,
    activity: Arc<Activity>,
    draining: CancellationToken,
) where
    Io: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let (endpoint, scheme, activity) = (endpoint.clone(), scheme.clone(), activity.clone());
            async move {
                let _busy = activity.busy();
                let request = Request::from((
                    request,
                    LocalAddr(poem::Addr::SocketAddr(local)),
                    RemoteAddr(poem::Addr::SocketAddr(remote)),
                    scheme,
                ));
                let response: hyper::Response<BoxBody<Bytes, io::Error>> = endpoint.get_response(request).await.into();
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(Some(20));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let idle = idle(activity, limits.keepalive_timeout);
    tokio::pin!(idle);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%remote, %error, "Connection ended with an error");
            }
            return;
        }
        () = &mut idle => {
            tracing::debug!(%remote, "Closing a silent connection");
            return;
        }
        () = draining.cancelled() => {}
    }
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        _ = conn => {}
        () = idle => {}
    }
}

/// Completes once the connection has been silent for `timeout` with no request in flight.
async fn idle(activity: Arc<Activity>, timeout: Duration) {
    loop {
        let since = activity.silent_for();
        if since >= timeout && activity.in_flight.load(Ordering::Relaxed) == 0 {
            return;
        }
        tokio::time::sleep(timeout.saturating_sub(since).max(Duration::from_millis(200))).await;
    }
}

/// When bytes last moved on a connection, and how many requests it has in flight.
#[derive(Debug)]
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self { start: Instant::now(), last_ms: AtomicU64::new(0), in_flight: AtomicUsize::new(0) }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        self.start.elapsed().saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }

    fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }
}

struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream that notes when bytes move.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// `Strict-Transport-Security` on every response, for https only (RFC 6797 §7.2: a
/// browser ignores it over plain HTTP, and sending it there would mislead).
#[derive(Clone, Copy, Debug, Default)]
pub struct Hsts;

/// The header value: two years, subdomains included.
pub const HSTS_VALUE: &str = "max-age=63072000; includeSubDomains";

impl<E: Endpoint> Middleware<E> for Hsts {
    type Output = HstsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        HstsEndpoint(ep)
    }
}

/// The endpoint [`Hsts`] wraps.
#[derive(Debug)]
pub struct HstsEndpoint<E>(E);

impl<E: Endpoint> Endpoint for HstsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let mut response = match self.0.call(req).await {
            Ok(output) => output.into_response(),
            Err(error) => error.into_response(),
        };
        response
            .headers_mut()
            .insert(poem::http::header::STRICT_TRANSPORT_SECURITY, poem::http::HeaderValue::from_static(HSTS_VALUE));
        Ok(response)
    }
}
