//! What a handler may do while it runs: report progress, log, ask the client for input,
//! and seal state for an input-required round trip.
#![allow(deprecated)] // logging and sampling are deprecated in 2026-07-28 but still part of the stateful era

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use qudag_domain::principal::Principal;
use rmcp::model::{
    ClientCapabilities, ClientResult, ErrorCode, ErrorData, InputResponses, LoggingLevel, LoggingMessageNotification,
    LoggingMessageNotificationParam, NumberOrString, ProgressNotification, ProgressNotificationParam, ProgressToken,
    ProtocolVersion, RequestStateCodec, SealOptions, ServerJsonRpcMessage, ServerNotification, ServerRequest,
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::bus::NodeMessage;
use crate::admission::RequestContext;
use crate::limits::{Limit, Slot, Slots};
use crate::ports::EventBus;

/// Where the messages of one request's response stream go (notifications, and in the
/// stateful era requests to the client), before its final response.
pub type Outbox = mpsc::UnboundedSender<ServerJsonRpcMessage>;

/// The JSON-RPC code of a refusal for a bound per caller (as a rate limit's).
const LIMIT_CODE: i32 = -31002;

/// How long a server-to-client request may wait for the client's answer.
pub const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How long sealed request state stays valid.
pub const REQUEST_STATE_TTL: Duration = Duration::from_secs(600);

/// What changed, for list-changed and resource-updated notifications.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The tool list.
    Tools,
    /// The prompt list.
    Prompts,
    /// The resource list.
    Resources,
    /// One resource's content.
    Resource(String),
}

impl From<Change> for NodeMessage {
    fn from(change: Change) -> Self {
        match change {
            Change::Tools => Self::Tools,
            Change::Prompts => Self::Prompts,
            Change::Resources => Self::Resources,
            Change::Resource(uri) => Self::Resource { uri },
        }
    }
}

type Answer = oneshot::Sender<Result<ClientResult, ErrorData>>;

/// Server-to-client requests waiting for their answers, by session and request id, at most
/// a bound per caller ([`Limit::pending_requests`]).
///
/// Request ids are `qudag-<node>-<n>-<tag>`: the tag is a keyed digest of the session and
/// the rest of the id, under a key every node shares (derived from the request-state key),
/// so any node can tell an answer to a request some node really sent in this session from
/// one nobody asked for ([`PendingRequests::origin`]) — and only the first kind is ever
/// forwarded to the other nodes.
pub struct PendingRequests {
    next: AtomicU64,
    key: [u8; 32],
    /// Places per caller: each waiting request holds one.
    slots: Arc<Slots>,
    /// The answer channel and the caller's place, by (session, request id).
    waiting: std::sync::Mutex<Waiting>,
}

impl std::fmt::Debug for PendingRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRequests").field("max_per_holder", &self.slots.max()).finish_non_exhaustive()
    }
}

/// Where the request a client's answer names was sent from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerOrigin {
    /// This node, and it still waits.
    Waiting,
    /// This node, and it no longer waits (answered, timed out, cancelled).
    Gone,
    /// Another node sent it in this session: forward the answer there.
    OtherNode,
    /// No node sent a request with this id in this session.
    Unknown,
}

/// Hex digits of the tag in a request id.
const TAG_HEX: usize = 16;

/// This process's part of request ids.
fn process_id() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    static PROCESS: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PROCESS.get_or_init(|| std::collections::hash_map::RandomState::new().build_hasher().finish() as u32)
}

type Waiting = HashMap<(String, String), (Answer, Slot)>;

impl Default for PendingRequests {
    fn default() -> Self {
        Self::new(crate::limits::CallerLimits::default().pending_requests, b"")
    }
}

impl PendingRequests {
    /// At most `max_per_holder` requests waiting per caller; ids tagged under a key derived
    /// from `secret` (nodes that route answers to each other must share it).
    pub fn new(max_per_holder: usize, secret: &[u8]) -> Self {
        Self::with_key(blake3::derive_key("qudag-mcp server-to-client request ids v1", secret), max_per_holder)
    }

    fn with_key(key: [u8; 32], max_per_holder: usize) -> Self {
        Self { next: AtomicU64::new(0), key, slots: Slots::new(max_per_holder), waiting: std::sync::Mutex::default() }
    }

    /// A fresh set under the same key with another bound per caller.
    pub(crate) fn with_max(&self, max_per_holder: usize) -> Self {
        Self::with_key(self.key, max_per_holder)
    }

    /// The tag of request id `body` (`qudag-<node>-<n>`) in `session`.
    fn tag(&self, session: &str, body: &str) -> String {
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        hasher.update(session.as_bytes());
        hasher.update(b"\0");
        hasher.update(body.as_bytes());
        hasher.finalize().to_hex()[..TAG_HEX].to_owned()
    }

    /// Who sent the request a client's answer with this id names, in `session`. Cheap for
    /// an id nobody minted: no lock is taken for it.
    pub fn origin(&self, session: &str, id: &NumberOrString) -> AnswerOrigin {
        let NumberOrString::String(text) = id else { return AnswerOrigin::Unknown };
        let Some((body, tag)) = text.rsplit_once('-') else { return AnswerOrigin::Unknown };
        let Some(node) = body.strip_prefix("qudag-").and_then(|rest| rest.split('-').next()) else {
            return AnswerOrigin::Unknown;
        };
        if tag.len() != TAG_HEX || body.len() > 64 || tag != self.tag(session, body) {
            return AnswerOrigin::Unknown;
        }
        if node != format!("{:08x}", process_id()) {
            return AnswerOrigin::OtherNode;
        }
        if self.waits(session, id) { AnswerOrigin::Waiting } else { AnswerOrigin::Gone }
    }

    fn register(
        &self,
        session: &str,
        holder: crate::limits::Holder,
    ) -> Result<(NumberOrString, oneshot::Receiver<Result<ClientResult, ErrorData>>), Limit> {
        // Ids differ between processes too: with a shared session store, another node may
        // have requests of the same session waiting, and answers are routed between nodes.
        let slot = self.slots.acquire(holder).ok_or_else(|| Limit::pending_requests(self.slots.max()))?;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let body = format!("qudag-{:08x}-{n}", process_id());
        let id = format!("{body}-{}", self.tag(session, &body));
        let (tx, rx) = oneshot::channel();
        self.lock().insert((session.to_owned(), id.clone()), (tx, slot));
        Ok((NumberOrString::String(id.into()), rx))
    }

    fn forget(&self, session: &str, id: &NumberOrString) {
        self.lock().remove(&(session.to_owned(), id.to_string()));
    }

    /// Hand the client's answer to the request waiting for it; false if none waits.
    pub fn deliver(&self, session: &str, id: &NumberOrString, answer: Result<ClientResult, ErrorData>) -> bool {
        let waiting = self.lock().remove(&(session.to_owned(), id.to_string()));
        match waiting {
            Some((tx, _slot)) => tx.send(answer).is_ok(),
            None => false,
        }
    }

    /// Whether a request of `session` with this id waits here.
    pub fn waits(&self, session: &str, id: &NumberOrString) -> bool {
        self.lock().contains_key(&(session.to_owned(), id.to_string()))
    }

    /// Requests waiting now, and callers with at least one waiting.
    pub fn counts(&self) -> (usize, usize) {
        (self.lock().len(), self.slots.holders())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A registered request's place, given up however the wait ends — answered, timed out,
/// or the handler's task dropped (a cancelled request, a closed connection).
struct Registered<'a> {
    pending: &'a PendingRequests,
    session: &'a str,
    id: NumberOrString,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.pending.forget(self.session, &self.id);
    }
}

/// Where a handler's requests to the client go: its session, whose allowance they count
/// against, and the requests waiting on this node.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    pub(crate) session: String,
    pub(crate) holder: crate::limits::Holder,
    pub(crate) pending: Arc<PendingRequests>,
}

/// The context of one request, as a handler sees it.
pub struct CallContext {
    /// Transport facts: request id, client address.
    pub request: RequestContext,
    /// Who is calling.
    pub principal: Principal,
    /// Whether this is a stateless (2026-07-28) request.
    pub stateless: bool,
    /// The protocol version in force.
    pub protocol_version: ProtocolVersion,
    /// What the client can do (from `initialize`, or from this request's `_meta`).
    pub client_capabilities: ClientCapabilities,
    /// The progress token, if the client asked for progress.
    pub progress_token: Option<ProgressToken>,
    /// The least severe log level the client wants, if it asked for logs.
    pub log_level: Option<LoggingLevel>,
    /// Answers to an earlier input-required result.
    pub input_responses: Option<InputResponses>,
    /// Sealed state echoed from an earlier input-required result.
    pub request_state: Option<String>,
    pub(crate) outbox: Option<Outbox>,
    pub(crate) peer: Option<Peer>,
    pub(crate) codec: Arc<RequestStateCodec>,
    pub(crate) binding: String,
    pub(crate) events: Option<Arc<dyn EventBus>>,
    pub(crate) disconnect: Option<Arc<tokio::sync::watch::Sender<bool>>>,
}

impl std::fmt::Debug for CallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("request_id", &self.request.request_id)
            .field("principal", self.principal.id())
            .field("stateless", &self.stateless)
            .finish_non_exhaustive()
    }
}

impl CallContext {
    /// A stateless context for `principal` with no client connection (unit tests).
    #[cfg(test)]
    pub(crate) fn for_tests(principal: Principal) -> Self {
        Self {
            request: RequestContext::default(),
            principal,
            stateless: true,
            protocol_version: ProtocolVersion::V_2026_07_28,
            client_capabilities: ClientCapabilities::default(),
            progress_token: None,
            log_level: None,
            input_responses: None,
            request_state: None,
            outbox: None,
            peer: None,
            codec: Arc::new(RequestStateCodec::try_new(vec![7u8; 32]).unwrap_or_else(|e| panic!("{e}"))),
            binding: "test".into(),
            events: None,
            disconnect: None,
        }
    }

    /// Send `notifications/progress`, when the client asked for progress.
    pub fn progress(&self, progress: f64, total: Option<f64>, message: Option<String>) {
        let Some(token) = self.progress_token.clone() else { return };
        let mut param = ProgressNotificationParam::new(token, progress);
        if let Some(total) = total {
            param = param.with_total(total);
        }
        if let Some(message) = message {
            param = param.with_message(message);
        }
        self.send(ServerNotification::ProgressNotification(ProgressNotification::new(param)));
    }

    /// Send `notifications/message` at `level`, when the client wants that level.
    ///
    /// Stateless requests get logs only when they set `io.modelcontextprotocol/logLevel`
    /// (2026-07-28 basic/utilities/logging); stateful sessions get everything at or above
    /// the level set with `logging/setLevel`, or everything when none was set.
    pub fn log(&self, level: LoggingLevel, data: Value) {
        let wanted = match self.log_level {
            Some(min) => rank(level) >= rank(min),
            None => !self.stateless,
        };
        if wanted {
            let param = LoggingMessageNotificationParam::new(level, data);
            self.send(ServerNotification::LoggingMessageNotification(LoggingMessageNotification::new(param)));
        }
    }

    /// Whether the client can answer a request for `method` (`sampling/createMessage`,
    /// `elicitation/create`, `roots/list`).
    pub fn client_supports(&self, method: &str) -> bool {
        let c = &self.client_capabilities;
        match method {
            "sampling/createMessage" => c.sampling.is_some(),
            "elicitation/create" => c.elicitation.is_some(),
            "roots/list" => c.roots.is_some(),
            _ => false,
        }
    }

    /// Ask the client (stateful era only) and wait for its answer.
    ///
    /// # Errors
    /// -32601 on a stateless request (2026-07-28 servers send no requests: use an
    /// input-required result), -32603 when the client does not answer in time or the
    /// stream is gone, or the client's own error.
    pub async fn request_client(&self, request: ServerRequest) -> Result<ClientResult, ErrorData> {
        let (Some(peer), Some(outbox)) = (&self.peer, &self.outbox) else {
            return Err(ErrorData::internal_error(
                "server-to-client requests need a stateful session and a response stream",
                None,
            ));
        };
        let (id, answer) = peer.pending.register(&peer.session, peer.holder).map_err(|limit| {
            ErrorData::new(
                ErrorCode(LIMIT_CODE),
                limit.to_string(),
                Some(serde_json::json!({ "limit": limit.max, "setting": limit.setting })),
            )
        })?;
        let _registered = Registered { pending: &peer.pending, session: &peer.session, id: id.clone() };
        if outbox.send(ServerJsonRpcMessage::request(request, id)).is_err() {
            return Err(ErrorData::internal_error("the response stream is closed", None));
        }
        match tokio::time::timeout(CLIENT_REQUEST_TIMEOUT, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ErrorData::internal_error("the session ended before the client answered", None)),
            Err(_) => Err(ErrorData::internal_error("the client did not answer in time", None)),
        }
    }

    /// Seal `state` for an input-required result: integrity-protected, bound to this
    /// caller and operation, expiring after [`REQUEST_STATE_TTL`].
    pub fn seal_state(&self, state: &Value) -> String {
        let options = SealOptions::new().associated_data(self.binding.as_bytes()).ttl(REQUEST_STATE_TTL);
        self.codec.seal_with(state.to_string().as_bytes(), &options)
    }

    /// Open the request state the client echoed.
    ///
    /// # Errors
    /// -32602 when it is absent, altered, expired, or sealed for another caller or
    /// operation (2026-07-28 basic/patterns/mrtr: state that fails verification MUST be
    /// rejected).
    pub fn open_state(&self) -> Result<Option<Value>, ErrorData> {
        let Some(sealed) = &self.request_state else { return Ok(None) };
        let invalid = || ErrorData::invalid_params("requestState is invalid or expired", None);
        let bytes = self.codec.open_with(sealed, self.binding.as_bytes()).map_err(|_| invalid())?;
        serde_json::from_slice(&bytes).map(Some).map_err(|_| invalid())
    }

    /// Announce a change to every open stream that asked for it (stateful GET streams and
    /// `subscriptions/listen` streams, on every node sharing the event bus).
    pub async fn publish_change(&self, change: Change) {
        let Some(events) = &self.events else { return };
        if let Err(e) = NodeMessage::from(change.clone()).publish(events.as_ref()).await {
            tracing::warn!(error = %e, change = ?change, "Change notification not published");
        }
    }

    /// Close the connection carrying this request's response stream without ending the
    /// request (2025-11-25 basic/transports: the server "MAY close the connection (without
    /// terminating the SSE stream)"); the client resumes with `Last-Event-ID` and receives
    /// the rest. Stateful sessions only; elsewhere nothing happens.
    pub fn close_connection(&self) {
        if let Some(tx) = &self.disconnect {
            let _ = tx.send(true);
        }
    }

    /// The client's answer under `key`, from `inputResponses`.
    pub fn input_response(&self, key: &str) -> Option<&Value> {
        self.input_responses.as_ref().and_then(|r| r.get(key))
    }

    fn send(&self, notification: ServerNotification) {
        if let Some(outbox) = &self.outbox {
            // A closed outbox means nobody listens any more; the notification has nowhere to go.
            let _ = outbox.send(ServerJsonRpcMessage::notification(notification));
        }
    }
}

/// Severity order of MCP log levels (RFC 5424).
pub fn rank(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}
