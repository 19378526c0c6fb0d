//! `X-Request-Id`: taken from the client when well formed, generated otherwise, echoed on
//! the response, put in the request's extensions for handlers and audit, and attached to
//! one tracing span per request.

use std::time::Instant;

use poem::http::HeaderValue;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use tracing::Instrument;

/// The header carrying the request id.
pub const HEADER: &str = "x-request-id";

/// The longest client-supplied request id we keep.
const MAX_LEN: usize = 128;

/// A request's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// The client's id when it is 1–128 characters of `[A-Za-z0-9._:-]`; anything else is
    /// replaced, so header contents never flow unchecked into logs and audit records.
    pub fn from_client(value: Option<&HeaderValue>) -> Self {
        value
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= MAX_LEN
                    && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
            })
            .map_or_else(Self::generate, |v| Self(v.to_owned()))
    }

    /// A fresh random id (UUID v4). Request ids correlate logs and audit records; they are
    /// not secrets, so they come from a per-thread generator seeded once from the operating
    /// system rather than from a system call per request.
    pub fn generate() -> Self {
        thread_local! {
            static STATE: std::cell::Cell<u64> = std::cell::Cell::new({
                let mut seed = [0u8; 8];
                // Without OS entropy, fall back to the address of a stack value and the time:
                // uniqueness within a process is what matters here.
                if getrandom::fill(&mut seed).is_err() {
                    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                    seed = (now.as_nanos() as u64 ^ (&seed as *const _ as u64)).to_le_bytes();
                }
                u64::from_le_bytes(seed) | 1
            });
        }
        // SplitMix64: two outputs fill the 128 bits.
        let next = || {
            STATE.with(|s| {
                let mut z = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
                s.set(z);
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^ (z >> 31)
            })
        };
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&next().to_le_bytes());
        bytes[8..].copy_from_slice(&next().to_le_bytes());
        Self(uuid::Builder::from_random_bytes(bytes).into_uuid().to_string())
    }
}

/// Middleware adding request ids and per-request spans.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestIdMiddleware;

impl<E: Endpoint> Middleware<E> for RequestIdMiddleware {
    type Output = RequestIdEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RequestIdEndpoint(ep)
    }
}

/// The endpoint [`RequestIdMiddleware`] produces.
#[derive(Debug)]
pub struct RequestIdEndpoint<E>(E);

impl<E: Endpoint> Endpoint for RequestIdEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let id = RequestId::from_client(req.headers().get(HEADER));
        // Attributes after the OpenTelemetry HTTP semantic conventions; `http.route` is
        // recorded by the timing middleware once the route is known.
        let span = tracing::info_span!(
            "http.request",
            otel.name = %req.method(),
            otel.kind = "server",
            http.request.method = %req.method(),
            url.path = %req.uri().path(),
            http.route = tracing::field::Empty,
            client.address = tracing::field::Empty,
            request_id = %id.0,
            http.response.status_code = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        if let Some(addr) = req.remote_addr().as_socket_addr() {
            span.record("client.address", tracing::field::display(addr.ip()));
        }
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        qudag_application::tracecontext::continue_trace(
            &span,
            qudag_application::tracecontext::RemoteContext {
                traceparent: header("traceparent"),
                tracestate: header("tracestate"),
            },
        );
        req.extensions_mut().insert(id.clone());
        let started = Instant::now();
        async move {
            let mut resp = match self.0.call(req).await {
                Ok(r) => r.into_response(),
                Err(e) => e.into_response(),
            };
            if let Ok(value) = HeaderValue::from_str(&id.0) {
                resp.headers_mut().insert(HEADER, value);
            }
            let status = resp.status().as_u16();
            let span = tracing::Span::current();
            span.record("http.response.status_code", status);
            if status >= 500 {
                span.record("error.type", status);
            }
            tracing::debug!(status, elapsed_ms = started.elapsed().as_secs_f64() * 1e3, "Request finished");
            Ok(resp)
        }
        .instrument(span)
        .await
    }
}

#[cfg(test)]
mod tests {
    use poem::handler;
    use poem::test::TestClient;
    use poem::web::Data;
    use poem::{EndpointExt, Route};

    use super::*;

    #[handler]
    fn echo(id: Data<&RequestId>) -> String {
        id.0.0.clone()
    }

    fn client() -> TestClient<impl Endpoint> {
        TestClient::new(Route::new().at("/", echo).with(RequestIdMiddleware))
    }

    #[tokio::test]
    async fn a_well_formed_client_id_is_kept_and_echoed() {
        let resp = client().get("/").header(HEADER, "abc-123.x:y_z").send().await;
        resp.assert_status_is_ok();
        resp.assert_header(HEADER, "abc-123.x:y_z");
        resp.assert_text("abc-123.x:y_z").await;
    }

    #[tokio::test]
    async fn a_missing_or_malformed_id_is_replaced_by_a_uuid() {
        let long = "a".repeat(129);
        let cli = client();
        for bad in [None, Some("has space"), Some("<script>"), Some(long.as_str())] {
            let mut req = cli.get("/");
            if let Some(v) = bad {
                req = req.header(HEADER, v);
            }
            let resp = req.send().await;
            let id = resp.0.headers().get(HEADER).unwrap().to_str().unwrap().to_owned();
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{bad:?} gave {id}");
            resp.assert_text(id).await;
        }
    }

    #[test]
    fn generated_ids_are_unique_v4_uuids() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| RequestId::generate().0).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10) {
            assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
        }
    }

    #[tokio::test]
    async fn error_responses_carry_the_id_too() {
        let resp = client().get("/missing").header(HEADER, "req-404").send().await;
        resp.assert_status(poem::http::StatusCode::NOT_FOUND);
        resp.assert_header(HEADER, "req-404");
    }
}
