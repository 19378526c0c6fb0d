//! Request bodies, bounded in size and in time on every route, while they are read.
//!
//! [`BodyLimit`] is one middleware in front of every endpoint:
//!
//! - a declared `Content-Length` over the route's limit is answered 413 before any byte of
//!   the body is read;
//! - any other body (chunked, HTTP/2 without a length) is counted as the endpoint reads it,
//!   and the read fails as soon as it passes the limit: the request is answered 413 and
//!   nothing beyond the limit is ever held;
//! - a body still arriving when the body deadline passes fails the same way and is answered
//!   408, so a slowly sent body holds its connection for that long at most, however long
//!   `QUDAG_REQUEST_TIMEOUT_SECS` allows a handler to run.
//!
//! Across requests, the bytes of bodies read and still held (until each request ends) are
//! counted per client address, and a read that would take an address past
//! `QUDAG_MAX_BODY_BYTES_PER_ADDRESS` fails the same way and is answered 429 with
//! `Retry-After`: many connections each sending a large body slowly hold at most that much
//! memory per address, not connections × body limit.
//!
//! The limit is `QUDAG_MAX_BODY_BYTES` for `/mcp` and every route outside `/admin/`, and
//! `QUDAG_ADMIN_MAX_BODY_BYTES` for `/admin/*`, whose bodies are read (to be parsed) before
//! their caller is authenticated. An unfinished body is never drained: hyper closes an
//! HTTP/1.1 connection whose request body was not read to its end.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body as HttpBody, Bytes, Frame, SizeHint};
use poem::http::{HeaderValue, StatusCode, Version, header};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response, Result};
use qudag_application::admission::Address;
use tokio::time::{Instant, Sleep};

/// The path prefix of the admin endpoints, which have their own limit.
const ADMIN_PREFIX: &str = "/admin/";

/// How large and how slow a request body may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    /// The largest body on `/mcp` and every route outside `/admin/` (`QUDAG_MAX_BODY_BYTES`).
    pub max_bytes: usize,
    /// The largest body on `/admin/*` (`QUDAG_ADMIN_MAX_BODY_BYTES`).
    pub admin_max_bytes: usize,
    /// The most time a body may take to arrive, counted from the request's head
    /// (`QUDAG_BODY_TIMEOUT_SECS`).
    pub timeout: Duration,
    /// The most body bytes one client address may have held at once, across its requests
    /// in flight (`QUDAG_MAX_BODY_BYTES_PER_ADDRESS`); 0 for no bound.
    pub per_address_bytes: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            max_bytes: 4 << 20,
            admin_max_bytes: 64 << 10,
            timeout: Duration::from_secs(30),
            per_address_bytes: 16 << 20,
        }
    }
}

impl BodyLimits {
    /// The limit for `path`, and the variable that sets it.
    fn for_path(&self, path: &str) -> (usize, &'static str) {
        if path.starts_with(ADMIN_PREFIX) {
            (self.admin_max_bytes, "QUDAG_ADMIN_MAX_BODY_BYTES")
        } else {
            (self.max_bytes, "QUDAG_MAX_BODY_BYTES")
        }
    }
}

/// The body-limit middleware (see the module documentation): the limits, and how a
/// request's client address is found (the one admission counts).
#[derive(Clone, Debug)]
pub struct BodyLimit(pub BodyLimits, pub crate::auth::PublicOrigin);

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        BodyLimitEndpoint { inner, limits: self.0, origin: self.1.clone(), held: Arc::default() }
    }
}

/// [`BodyLimit`] around an endpoint.
#[derive(Debug)]
pub struct BodyLimitEndpoint<E> {
    inner: E,
    limits: BodyLimits,
    origin: crate::auth::PublicOrigin,
    held: Arc<Held>,
}

/// Body bytes held per client address; an address holding none has no entry.
#[derive(Debug, Default)]
struct Held(Mutex<HashMap<Address, usize>>);

/// What one request's body holds of its address's allowance, given back when the
/// request ends (dropped after the endpoint has answered).
#[derive(Debug)]
struct Charge {
    held: Arc<Held>,
    addr: Address,
    budget: usize,
    bytes: AtomicUsize,
}

impl Charge {
    /// Take `n` more bytes of the address's allowance; `false` (nothing taken) when that
    /// would pass the budget.
    fn take(&self, n: usize) -> bool {
        let mut map = self.held.0.lock().unwrap_or_else(PoisonError::into_inner);
        let total = map.entry(self.addr).or_insert(0);
        if total.saturating_add(n) > self.budget {
            if *total == 0 {
                map.remove(&self.addr);
            }
            return false;
        }
        *total += n;
        self.bytes.fetch_add(n, Ordering::Relaxed);
        true
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        let bytes = *self.bytes.get_mut();
        if bytes == 0 {
            return;
        }
        let mut map = self.held.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(total) = map.get_mut(&self.addr) {
            *total = total.saturating_sub(bytes);
            if *total == 0 {
                map.remove(&self.addr);
            }
        }
    }
}

/// How the reading of a body went, shared between the body and the middleware.
const READING: u8 = 0;
const TOO_LARGE: u8 = 1;
const TOO_SLOW: u8 = 2;
const OVER_BUDGET: u8 = 3;

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let path = req.uri().path();
        let (limit, variable) = self.limits.for_path(path);
        let admin = path.starts_with(ADMIN_PREFIX);
        let http1 = req.version() <= Version::HTTP_11;
        let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse().ok());
        if declared.is_some_and(|length: u64| length > limit as u64) {
            return Ok(too_large(limit, variable, admin, http1));
        }
        let body = req.take_body();
        if body.is_empty() {
            req.set_body(body);
            return self.inner.call(req).await.map(IntoResponse::into_response);
        }
        let outcome = Arc::new(AtomicU8::new(READING));
        let budget = self.limits.per_address_bytes;
        let charge = match self.origin.client_addr(&req) {
            Some(addr) if budget > 0 => Some(Arc::new(Charge {
                held: self.held.clone(),
                addr: Address::of(Some(addr)),
                budget,
                bytes: AtomicUsize::new(0),
            })),
            _ => None,
        };
        let bounded = Bounded {
            inner: body.into(),
            read: 0,
            limit,
            deadline: Box::pin(tokio::time::sleep_until(Instant::now() + self.limits.timeout)),
            outcome: outcome.clone(),
            charge: charge.clone(),
        };
        req.set_body(Body::from(http_body_util::combinators::BoxBody::new(bounded)));
        let response = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        // What the body held is given back once the endpoint has answered (it held the
        // bytes, or what it made of them, until then).
        drop(charge);
        // The endpoint's own answer to a failed read (a 400 "cannot read the body") is
        // replaced by the reason the read failed.
        Ok(match outcome.load(Ordering::Acquire) {
            TOO_LARGE => too_large(limit, variable, admin, http1),
            TOO_SLOW => too_slow(self.limits.timeout, admin, http1),
            OVER_BUDGET => over_budget(budget, admin, http1),
            _ => response,
        })
    }
}

/// 413 naming the limit.
fn too_large(limit: usize, variable: &str, admin: bool, http1: bool) -> Response {
    let text = format!("request body exceeds {limit} bytes ({variable})");
    refusal(StatusCode::PAYLOAD_TOO_LARGE, &text, "payload_too_large", admin, http1)
}

/// 408 naming the deadline.
fn too_slow(timeout: Duration, admin: bool, http1: bool) -> Response {
    let text = format!("request body not received within {} s (QUDAG_BODY_TIMEOUT_SECS)", timeout.as_secs());
    refusal(StatusCode::REQUEST_TIMEOUT, &text, "body_timeout", admin, http1)
}

/// 429 naming the per-address allowance; the bytes free up as the address's other
/// requests end, so it may come back in a second.
fn over_budget(budget: usize, admin: bool, http1: bool) -> Response {
    let text = format!(
        "request bodies in flight from this address would exceed {budget} bytes (QUDAG_MAX_BODY_BYTES_PER_ADDRESS)"
    );
    let mut response = refusal(StatusCode::TOO_MANY_REQUESTS, &text, "body_bytes_per_address", admin, http1);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// A refusal of the body: in the admin endpoints' error shape under `/admin/`, plain text
/// elsewhere; on HTTP/1.1 the connection is closed after it (the rest of the body is not
/// read).
fn refusal(status: StatusCode, text: &str, reason: &str, admin: bool, http1: bool) -> Response {
    let mut response = if admin {
        Response::builder()
            .status(status)
            .content_type("application/json; charset=utf-8")
            .body(serde_json::json!({"error": text, "reason": reason}).to_string())
    } else {
        Response::builder().status(status).content_type("text/plain; charset=utf-8").body(text.to_owned())
    };
    if http1 {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A body that fails once more than `limit` bytes have come, or once `deadline` passes
/// while it is still arriving; `outcome` says which.
struct Bounded {
    inner: http_body_util::combinators::BoxBody<Bytes, io::Error>,
    read: usize,
    limit: usize,
    deadline: Pin<Box<Sleep>>,
    outcome: Arc<AtomicU8>,
    /// The address's allowance each frame is taken from, if there is one.
    charge: Option<Arc<Charge>>,
}

impl Bounded {
    fn fail(&self, outcome: u8) -> io::Error {
        self.outcome.store(outcome, Ordering::Release);
        match outcome {
            TOO_LARGE => io::Error::other(format!("request body exceeds {} bytes", self.limit)),
            OVER_BUDGET => io::Error::other("request bodies in flight from this address exceed their allowance"),
            _ => io::Error::new(io::ErrorKind::TimedOut, "request body not received in time"),
        }
    }
}

impl HttpBody for Bounded {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let failed = self.outcome.load(Ordering::Acquire);
        if failed != READING {
            return Poll::Ready(Some(Err(self.fail(failed))));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.read = self.read.saturating_add(data.len());
                    if self.read > self.limit {
                        return Poll::Ready(Some(Err(self.fail(TOO_LARGE))));
                    }
                    if let Some(charge) = &self.charge
                        && !charge.take(data.len())
                    {
                        return Poll::Ready(Some(Err(self.fail(OVER_BUDGET))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                // Checked only while waiting for bytes: a body already here is never refused.
                if self.deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(self.fail(TOO_SLOW))));
                }
                Poll::Pending
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt as _;
    use poem::handler;
    use poem::test::TestClient;
    use poem::{EndpointExt, Route, post};

    use super::*;

    #[handler]
    async fn echo(body: Body) -> Result<String> {
        match body.into_bytes().await {
            Ok(b) => Ok(format!("{} bytes", b.len())),
            Err(e) => Err(poem::Error::from_string(e.to_string(), StatusCode::BAD_REQUEST)),
        }
    }

    fn app(limits: BodyLimits) -> impl Endpoint {
        Route::new()
            .at("/mcp", post(echo))
            .at("/admin/authz/explain", post(echo))
            .with(BodyLimit(limits, crate::auth::PublicOrigin::default()))
    }

    fn limits() -> BodyLimits {
        BodyLimits { max_bytes: 4096, admin_max_bytes: 1024, timeout: Duration::from_millis(300), per_address_bytes: 0 }
    }

    #[tokio::test]
    async fn bodies_within_the_limit_pass_whole() {
        let cli = TestClient::new(app(limits()));
        let resp = cli.post("/mcp").body(vec![b'x'; 4096]).send().await;
        resp.assert_status_is_ok();
        resp.assert_text("4096 bytes").await;
        let resp = cli.post("/admin/authz/explain").body(vec![b'x'; 1024]).send().await;
        resp.assert_text("1024 bytes").await;
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_unread() {
        let cli = TestClient::new(app(limits()));
        // The body never comes: the answer cannot have waited for it.
        let never = Body::from_bytes_stream(futures::stream::pending::<io::Result<Bytes>>());
        let resp = cli.post("/admin/authz/explain").header("content-length", "200000000").body(never).send();
        let resp = tokio::time::timeout(Duration::from_millis(200), resp).await.expect("answered before any body");
        resp.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
        resp.assert_header("connection", "close");
        let body: serde_json::Value = serde_json::from_str(&resp.0.into_body().into_string().await.unwrap()).unwrap();
        assert_eq!(body["reason"], "payload_too_large");
        assert!(body["error"].as_str().unwrap().contains("1024 bytes (QUDAG_ADMIN_MAX_BODY_BYTES)"), "{body}");
    }

    #[tokio::test]
    async fn a_body_of_unknown_length_is_cut_at_the_limit() {
        let cli = TestClient::new(app(limits()));
        let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = sent.clone();
        // An endless body: it is refused once past the limit, never read whole.
        let endless = futures::stream::repeat_with(move || {
            counter.fetch_add(512, Ordering::Relaxed);
            Ok::<_, io::Error>(Bytes::from_static(&[b'x'; 512]))
        });
        let resp = cli.post("/mcp").body(Body::from_bytes_stream(endless.boxed())).send().await;
        resp.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
        resp.assert_text("request body exceeds 4096 bytes (QUDAG_MAX_BODY_BYTES)").await;
        assert!(sent.load(Ordering::Relaxed) <= 4096 + 512, "read past the limit: {sent:?}");
    }

    #[tokio::test]
    async fn a_body_still_arriving_at_the_deadline_gets_408() {
        let cli = TestClient::new(app(limits()));
        let slow = futures::stream::once(async { Ok::<_, io::Error>(Bytes::from_static(b"{")) })
            .chain(futures::stream::pending());
        let started = std::time::Instant::now();
        let resp = cli.post("/admin/authz/explain").body(Body::from_bytes_stream(slow)).send().await;
        resp.assert_status(StatusCode::REQUEST_TIMEOUT);
        assert!(started.elapsed() >= Duration::from_millis(300) && started.elapsed() < Duration::from_secs(2));
        let body: serde_json::Value = serde_json::from_str(&resp.0.into_body().into_string().await.unwrap()).unwrap();
        assert_eq!(body["reason"], "body_timeout");
        assert!(body["error"].as_str().unwrap().contains("QUDAG_BODY_TIMEOUT_SECS"), "{body}");
    }
}
