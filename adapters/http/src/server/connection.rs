//! One connection: the TLS handshake (bounded in time, counted), then HTTP/1.1 or HTTP/2
//! with the header limits, and the close after a silence or at the drain.
//!
//! Silence is measured on the bytes themselves ([`Watched`]) and on the requests in flight,
//! the same way for both protocols, so a connection holding a long response open (an SSE
//! stream) is never closed as idle while a silent one is, whatever protocol it speaks.

use std::convert::Infallible;
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
use poem::{Endpoint, Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::config::ServerConfig;
use super::tls::TlsState;

/// The endpoint every connection serves, shared.
pub(super) type Ep = Arc<poem::endpoint::BoxEndpoint<'static, Response>>;

/// Serve one accepted connection until it ends, falls silent, or the drain closes it.
pub(super) async fn connection(
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    tls: Option<Arc<TlsState>>,
    limits: &ServerConfig,
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
    limits: &ServerConfig,
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
