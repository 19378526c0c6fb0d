//! What the fuzz targets share: the server's real HTTP router built in process over the
//! in-memory adapters, a way to send it one request and read the answer, and the text
//! formats of the targets' inputs.

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt as _;
use poem::endpoint::BoxEndpoint;
use poem::http::header::{HeaderName, HeaderValue};
use poem::http::{HeaderMap, Method, StatusCode, Uri};
use poem::{Body, Endpoint as _, EndpointExt as _, Request, Response};
use qudag_mcp::cli::Fixtures;
use qudag_mcp::settings::{FlagOverrides, Settings};
use serde_json::Value;

/// The stateful-era protocol version the targets speak.
pub const STATEFUL_VERSION: &str = "2025-11-25";
/// The stateless-era protocol version the targets speak.
pub const STATELESS_VERSION: &str = "2026-07-28";

/// The settings of the in-process server: no authentication (every caller is an admin, so
/// every tool runs), no rate limit, small simulations so a run stays fast.
fn settings() -> Settings {
    let env = [
        ("QUDAG_REQUIRE_AUTH", "false"),
        ("QUDAG_RATE_LIMIT", "0"),
        ("QUDAG_MAX_QUBITS", "10"),
        ("QUDAG_MAX_AMPLITUDE_UPDATES", "2000000"),
        ("QUDAG_REQUEST_TIMEOUT_SECS", "10"),
        ("QUDAG_AUDIT_SINK", "memory"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    Settings::load(None, env, &FlagOverrides::default()).expect("the fuzz server's settings are valid")
}

/// The server: a runtime and the router of every route.
pub struct Server {
    runtime: tokio::runtime::Runtime,
    endpoint: BoxEndpoint<'static, Response>,
}

/// An answer: status, headers and as much of the body as arrived in time.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body (an SSE stream is read until it pauses).
    pub body: Vec<u8>,
}

impl Answer {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How long a finite answer may take before the target gives up on it (a hang is a bug
/// libFuzzer reports with `-timeout`).
const ANSWER_LIMIT: Duration = Duration::from_secs(20);
/// An SSE stream that sends nothing for this long is dropped (a client disconnect).
const STREAM_IDLE: Duration = Duration::from_millis(50);

impl Server {
    fn build(fixtures: Option<Fixtures>) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        let state = runtime
            .block_on(qudag_mcp::fuzzing::http_state(&settings(), fixtures))
            .expect("the in-process server can be built");
        let endpoint = qudag_adapter_http::router(state).map_to_response().boxed();
        Self { runtime, endpoint }
    }

    /// The server with the product's tools.
    pub fn product() -> &'static Self {
        static SERVER: OnceLock<Server> = OnceLock::new();
        SERVER.get_or_init(|| Self::build(None))
    }

    /// The server with the MCP conformance suite's fixtures (a tool with an `Mcp-Param-*`
    /// header, progress, sampling, ...).
    pub fn fixtures() -> &'static Self {
        static SERVER: OnceLock<Server> = OnceLock::new();
        SERVER.get_or_init(|| Self::build(Some(Fixtures::Conformance)))
    }

    /// Send one request to `path`. Headers whose name or value HTTP cannot carry are left
    /// out. With `read_stream` false an SSE answer is dropped unread.
    pub fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        read_stream: bool,
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/mcp")))
            .body(Body::from(body));
        for (name, value) in headers {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value.as_bytes()))
            {
                req.headers_mut().append(n, v);
            }
        }
        self.runtime.block_on(async {
            let response = tokio::time::timeout(ANSWER_LIMIT, self.endpoint.call(req))
                .await
                .expect("the server answers in time")
                .unwrap_or_else(|e| e.into_response());
            let (parts, body) = response.into_parts();
            let sse = parts
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.starts_with("text/event-stream"));
            let mut out = Vec::new();
            if sse {
                if read_stream {
                    let mut stream = Box::pin(body.into_bytes_stream());
                    while let Ok(Some(Ok(chunk))) = tokio::time::timeout(STREAM_IDLE, stream.next()).await {
                        out.extend_from_slice(&chunk);
                    }
                }
            } else {
                out = tokio::time::timeout(ANSWER_LIMIT, body.into_vec())
                    .await
                    .expect("the server finishes its answer in time")
                    .unwrap_or_default();
            }
            Answer { status: parts.status, headers: parts.headers, body: out }
        })
    }

    /// POST `body` to `/mcp` as JSON with `extra` headers.
    pub fn post(&self, extra: &[(&str, &str)], body: &[u8]) -> Answer {
        let mut headers = vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("host", "127.0.0.1"),
        ];
        headers.extend_from_slice(extra);
        self.send(Method::POST, "/mcp", &headers, body.to_vec(), true)
    }

    /// Open a stateful session (`initialize`, then `notifications/initialized`); its id.
    pub fn initialize(&self) -> Option<String> {
        let init = serde_json::json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {
                "protocolVersion": STATEFUL_VERSION,
                "capabilities": {"sampling": {}, "elicitation": {}, "roots": {"listChanged": true}},
                "clientInfo": {"name": "fuzz", "version": "1"}
            }
        });
        let answer = self.post(&[], init.to_string().as_bytes());
        let session = answer.header("mcp-session-id")?.to_owned();
        let done = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        self.post(&session_headers(&session), done.to_string().as_bytes());
        Some(session)
    }

    /// End a stateful session.
    pub fn delete(&self, session: &str) {
        let headers = [("mcp-session-id", session), ("mcp-protocol-version", STATEFUL_VERSION), ("host", "127.0.0.1")];
        self.send(Method::DELETE, "/mcp", &headers, Vec::new(), false);
    }
}

/// The headers of a request in a stateful session.
pub fn session_headers(session: &str) -> [(&str, &str); 2] {
    [("mcp-session-id", session), ("mcp-protocol-version", STATEFUL_VERSION)]
}

/// A request-metadata header value as 2026-07-28 clients send it: plain when it is visible
/// ASCII without surrounding spaces, else in the `=?base64?…?=` form.
pub fn metadata_value(text: &str) -> String {
    let plain = !text.is_empty()
        && text.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !text.starts_with(' ')
        && !text.ends_with(' ')
        && !text.starts_with("=?");
    if plain {
        text.to_owned()
    } else {
        format!("=?base64?{}?=", base64::engine::general_purpose::STANDARD.encode(text))
    }
}

/// The 2026-07-28 request-metadata headers a client sends with `message`, so that the
/// server's header checks pass and the message reaches the engine.
pub fn stateless_headers(message: &Value) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    let version = message
        .pointer("/params/_meta/io.modelcontextprotocol~1protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or(STATELESS_VERSION);
    headers.push(("mcp-protocol-version".to_owned(), version.to_owned()));
    if let Some(method) = message.get("method").and_then(Value::as_str) {
        headers.push(("mcp-method".to_owned(), method.to_owned()));
    }
    let params = message.get("params");
    for field in ["name", "uri"] {
        if let Some(name) = params.and_then(|p| p.get(field)).and_then(Value::as_str) {
            headers.push(("mcp-name".to_owned(), metadata_value(name)));
            break;
        }
    }
    if let Some(region) = params.and_then(|p| p.pointer("/arguments/region")) {
        let text = match region {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        headers.push(("mcp-param-region".to_owned(), metadata_value(&text)));
    }
    headers
}

/// `message` with the 2026-07-28 `_meta` a stateless request must carry, where it has an
/// object `params` (or none) and no `_meta` of its own.
pub fn with_stateless_meta(mut message: Value) -> Value {
    let meta = serde_json::json!({
        "io.modelcontextprotocol/protocolVersion": STATELESS_VERSION,
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    if let Some(object) = message.as_object_mut() {
        let params = object.entry("params").or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(params) = params.as_object_mut() {
            params.entry("_meta").or_insert(meta);
        }
    }
    message
}

/// A header block and a body: `Name: value` lines, an empty line, then the body (the
/// whole input is the body when it has no empty line).
pub fn split_headers(data: &[u8]) -> (Vec<(String, String)>, &[u8]) {
    let Some(at) = data.windows(2).position(|w| w == b"\n\n") else { return (Vec::new(), data) };
    let (block, body) = (&data[..at], &data[at + 2..]);
    let headers = String::from_utf8_lossy(block)
        .lines()
        .filter_map(|line| line.split_once(':').map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())))
        .collect();
    (headers, body)
}

/// `headers` as a header map, leaving out what HTTP cannot carry.
pub fn header_map(headers: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value.as_bytes())) {
            map.append(n, v);
        }
    }
    map
}

/// The time the token targets run at (seconds since the epoch).
pub const NOW: u64 = 1_800_000_000;

/// A clock stopped at [`NOW`].
#[derive(Debug)]
pub struct FixedClock;

impl qudag_application::ports::Clock for FixedClock {
    fn now(&self) -> qudag_domain::Timestamp {
        qudag_domain::Timestamp::from_secs(NOW)
    }
}

/// base64url without padding, as JOSE writes it.
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A P-256 key the targets sign with, so that fuzzed headers and claims get past the
/// signature check to the code that reads them.
pub struct EcKey {
    pair: aws_lc_rs::signature::EcdsaKeyPair,
    x: String,
    y: String,
}

impl std::fmt::Debug for EcKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcKey").field("x", &self.x).finish_non_exhaustive()
    }
}

impl EcKey {
    /// A fresh key.
    pub fn generate() -> Self {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("a P-256 key");
        // Uncompressed point: 0x04, x, y.
        let point = pair.public_key().as_ref().to_vec();
        let (x, y) = (b64url(&point[1..33]), b64url(&point[33..65]));
        Self { pair, x, y }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        serde_json::json!({"kty": "EC", "crv": "P-256", "x": self.x, "y": self.y})
    }

    /// Its RFC 7638 thumbprint (SHA-256, base64url).
    pub fn thumbprint(&self) -> String {
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#, self.x, self.y);
        b64url(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
    }

    /// An ES256 signature of `message` (r ‖ s).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.pair.sign(&rng, message).expect("signing succeeds").as_ref().to_vec()
    }
}

/// The compact JWS of `header` and `payload` (JSON text, taken byte for byte), signed as
/// its `alg` says when the target holds such a key (`ES256` with `ec`, `HS256` with
/// `hmac`), else with a signature of junk.
pub fn compact_jws(header: &str, payload: &str, ec: &EcKey, hmac: &[u8]) -> String {
    let input = format!("{}.{}", b64url(header.as_bytes()), b64url(payload.as_bytes()));
    let alg = serde_json::from_str::<Value>(header).ok().and_then(|h| h.get("alg")?.as_str().map(str::to_owned));
    let signature = match alg.as_deref() {
        Some("ES256") => ec.sign(input.as_bytes()),
        Some("HS256") => {
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, hmac);
            aws_lc_rs::hmac::sign(&key, input.as_bytes()).as_ref().to_vec()
        }
        _ => b"not a signature".to_vec(),
    };
    format!("{input}.{}", b64url(&signature))
}
