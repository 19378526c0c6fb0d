//! A request's answer: plain JSON when the handler finishes without emitting anything first
//! (the common case, and the cheapest); as soon as it emits a notification or a request to
//! the client, an SSE stream carrying those messages and then the final response. In the
//! stateful era that stream goes through the event store, so a client that loses the
//! connection resumes it with `Last-Event-ID`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use poem::Response;
use poem::http::StatusCode;
use qudag_application::mcp::{Call, EngineError, McpEngine, wire};
use qudag_application::ports::{EventId, EventStoreError, StreamKey};
use qudag_domain::backoff::Backoff;
use qudag_domain::session::Session;
use rmcp::model::{ErrorData, RequestId, ServerJsonRpcMessage, ServerResult};
use tokio::sync::mpsc;
use tracing::Instrument as _;

use super::McpEndpoint;
use super::sse::{event_frame, messages_to_frames};
use crate::errors::{engine_error_message, json_response};

/// How a request's task ended.
pub(super) type Joined = Result<Result<ServerResult, EngineError>, tokio::task::JoinError>;

/// The longest pause between two attempts to reach an unreachable event store.
const STORE_RETRY_MAX: Duration = Duration::from_secs(2);
/// How long a stream's writer keeps retrying before it gives an event up as lost.
const STORE_RETRY_FOR: Duration = Duration::from_secs(300);

impl McpEndpoint {
    /// Run `call` (answering `id`) and answer with JSON, or with SSE once it emits anything
    /// before its final response.
    pub(super) async fn respond(&self, mut call: Call, id: RequestId) -> Response {
        let stateless = call.is_stateless();
        let session = call.session().cloned();
        // A stateful handler may ask for its response's connection to be closed mid-call.
        let mut disconnect = call.close_signal();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let engine = self.engine.clone();
        let rpc_id = id.clone();
        // The handler runs as its own task (it may outlive this response); it stays a child
        // of this request's span.
        let mut task =
            tokio::spawn(async move { engine.run(call, &rpc_id, Some(tx)).await }.instrument(tracing::Span::current()));
        if let Some(session) = &session {
            self.engine.track(session, &id, task.abort_handle());
        }
        // Closing a stateless response stream cancels its request (2026-07-28
        // streamable-http, "Cancellation"); in the stateful era disconnection is not
        // cancellation, so the work finishes.
        let guard = AbortGuard { handle: task.abort_handle(), armed: stateless };
        let untrack = Untrack { engine: self.engine.clone(), session, id: id.clone() };
        let (first, close_early) = tokio::select! {
            biased;
            joined = &mut task => {
                let mut queued = Vec::new();
                while let Ok(m) = rx.try_recv() {
                    queued.push(m);
                }
                drop(untrack);
                let retry = retry_after_of(&joined);
                let Some((message, status)) = final_message(id, joined, stateless) else {
                    return Response::builder().status(StatusCode::NO_CONTENT).finish();
                };
                if queued.is_empty() {
                    drop(guard);
                    return answer(status, &message, retry);
                }
                queued.push(message);
                return self.sse(messages_to_frames(futures::stream::iter(queued).boxed()));
            }
            first = rx.recv() => match first {
                Some(message) => (Some(message), false),
                // The handler finished without sending anything: its channel closed just
                // before its task reported the result. Answer as JSON, as above.
                None => {
                    let joined = (&mut task).await;
                    drop(untrack);
                    let retry = retry_after_of(&joined);
                    let Some((message, status)) = final_message(id, joined, stateless) else {
                        return Response::builder().status(StatusCode::NO_CONTENT).finish();
                    };
                    drop(guard);
                    return answer(status, &message, retry);
                }
            },
            true = closed(disconnect.as_mut()) => (None, true),
        };
        if let Some(session) = untrack.session.clone()
            && let Ok(stream) = self.store.open(session.id().as_str()).await
        {
            // Stateful: every message goes through the event store first, so a client that
            // loses the connection resumes with Last-Event-ID (2025-11-25 basic/transports,
            // "Resumability and Redelivery").
            let key = StreamKey { session: session.id().as_str().to_owned(), stream };
            let store = self.store.clone();
            let pump_key = key.clone();
            // While the store is unreachable the handler goes on (its messages queue here)
            // and each event is retried in order, so a store outage delays the stream
            // instead of losing its events or its result.
            tokio::spawn(async move {
                let mut rx = rx;
                let mut next = match first {
                    Some(message) => Some(message),
                    None => rx.recv().await,
                };
                while let Some(message) = next {
                    let payload = wire::encode(&message);
                    retry_store("store an SSE event", || store.append(&pump_key, payload.clone())).await;
                    next = rx.recv().await;
                }
                let joined = task.await;
                drop(untrack);
                drop(guard);
                if let Some((last, _)) = final_message(id, joined, false) {
                    let payload = wire::encode(&last);
                    retry_store("store the final SSE event", || store.append(&pump_key, payload.clone())).await;
                }
                retry_store("close an SSE stream", || store.close(&pump_key)).await;
            });
            let priming = close_early || session.protocol_version().as_str() >= "2025-11-25";
            let frames = self.tail(key, 0, priming);
            let frames = if close_early {
                // The priming event carries the id and retry hint to resume from.
                frames.take(1).boxed()
            } else {
                frames.take_until(async move { closed(disconnect.as_mut()).await }).boxed()
            };
            return self.sse(frames);
        }
        let head = futures::stream::iter(first);
        let tail = futures::stream::unfold(Some((rx, task, guard, untrack, id)), move |state| async move {
            let (mut rx, task, guard, untrack, id) = state?;
            match rx.recv().await {
                Some(m) => Some((m, Some((rx, task, guard, untrack, id)))),
                None => {
                    let joined = task.await;
                    drop(untrack);
                    drop(guard);
                    final_message(id, joined, stateless).map(|(m, _)| (m, None))
                }
            }
        });
        self.sse(messages_to_frames(head.chain(tail).boxed()))
    }

    /// The frames of a stored stream after `after`, following it until it closes; with
    /// `priming`, first an event carrying only an id and a retry hint (2025-11-25
    /// basic/transports: the server SHOULD prime the client to reconnect).
    pub(super) fn tail(&self, key: StreamKey, after: u64, priming: bool) -> futures::stream::BoxStream<'static, Bytes> {
        let store = self.store.clone();
        let wait = self.config.keep_alive;
        let prime = priming.then(|| Bytes::from(format!("id: {}-{after}\nretry: 1000\ndata: \n\n", key.stream)));
        let events = futures::stream::unfold(Some((store, key, after)), move |state| async move {
            let (store, key, after) = state?;
            match store.read(&key, after, wait).await {
                Ok(batch) => {
                    let last = batch.events.last().map_or(after, |(seq, _)| *seq);
                    let frames: Vec<Bytes> = batch
                        .events
                        .iter()
                        .map(|(seq, payload)| event_frame(Some(EventId { stream: key.stream, seq: *seq }), payload))
                        .collect();
                    let next = if batch.closed && last == after { None } else { Some((store, key, last)) };
                    if frames.is_empty() && next.is_none() {
                        return None;
                    }
                    Some((futures::stream::iter(frames), next))
                }
                // The store is unreachable: keep the client's connection (keep-alive
                // comments go on) and read again once it answers; the events written
                // meanwhile are delivered then, in order.
                Err(e @ EventStoreError::Unavailable { .. }) => {
                    tracing::debug!(error = %e, "SSE stream waits for the event store");
                    tokio::time::sleep(STORE_RETRY_MAX / 4).await;
                    Some((futures::stream::iter(Vec::new()), Some((store, key, after))))
                }
                Err(e) => {
                    tracing::debug!(error = %e, "SSE stream ended");
                    None
                }
            }
        })
        .flatten();
        futures::stream::iter(prime).chain(events).boxed()
    }
}

/// Completes (with `true`) once a handler asks for its connection to be closed; never
/// when there is no such signal or the handler finished without asking.
async fn closed(signal: Option<&mut tokio::sync::watch::Receiver<bool>>) -> bool {
    if let Some(rx) = signal
        && rx.wait_for(|close| *close).await.is_ok()
    {
        return true;
    }
    std::future::pending().await
}

/// Aborts a request's task when the response is dropped, if armed.
struct AbortGuard {
    handle: tokio::task::AbortHandle,
    armed: bool,
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if self.armed && !self.handle.is_finished() {
            self.handle.abort();
        }
    }
}

/// Forgets a stateful request in the engine's cancellation registry when done.
struct Untrack {
    engine: Arc<McpEngine>,
    session: Option<Arc<Session>>,
    id: RequestId,
}

impl Drop for Untrack {
    fn drop(&mut self) {
        if let Some(session) = &self.session {
            self.engine.untrack(session, &self.id);
        }
    }
}

/// Seconds a refused request may be retried after (a limit reached, a backend away), for
/// the `Retry-After` of an answer sent alone.
fn retry_after_of(joined: &Joined) -> Option<u64> {
    match joined {
        Ok(Err(e)) => crate::errors::retry_after(e),
        _ => None,
    }
}

/// A request's final message sent alone as JSON, with `Retry-After` when it says when.
fn answer(status: StatusCode, message: &ServerJsonRpcMessage, retry_after: Option<u64>) -> Response {
    let mut response = json_response(status, message);
    if let Some(secs) = retry_after {
        crate::errors::set_retry_after(&mut response, secs);
    }
    response
}

/// The final message for a request and the HTTP status it warrants when sent alone;
/// `None` when the request was cancelled, which gets no response (basic/utilities/
/// cancellation: the receiver SHOULD NOT send one).
pub(super) fn final_message(
    id: RequestId,
    joined: Joined,
    stateless: bool,
) -> Option<(ServerJsonRpcMessage, StatusCode)> {
    if let Err(e) = &joined
        && e.is_cancelled()
    {
        return None;
    }
    Some(match joined {
        Ok(Ok(result)) => (ServerJsonRpcMessage::response(wire::shape_result(result, stateless), id), StatusCode::OK),
        Ok(Err(e)) => engine_error_message(e, Some(id), stateless),
        Err(e) => {
            tracing::error!(error = %e, "Request handler failed");
            (ServerJsonRpcMessage::error(ErrorData::internal_error("internal error", None), Some(id)), StatusCode::OK)
        }
    })
}

/// Run `op` until it succeeds, backing off from 50 ms to [`STORE_RETRY_MAX`] while the
/// store is unavailable; after [`STORE_RETRY_FOR`] of that, or at any other error (the
/// stream is gone: its session ended), log `what` as lost and give up.
async fn retry_store<T, F, Fut>(what: &str, mut op: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, EventStoreError>>,
{
    let started = tokio::time::Instant::now();
    let mut backoff = Backoff::exponential(Duration::from_millis(50), STORE_RETRY_MAX).give_up_after(STORE_RETRY_FOR);
    let mut warned = false;
    loop {
        let error = match op().await {
            Ok(_) => {
                if warned {
                    tracing::info!(waited_ms = started.elapsed().as_millis() as u64, "The event store answers again");
                }
                return;
            }
            Err(e @ EventStoreError::UnknownStream) => {
                tracing::debug!(error = %e, "Cannot {what}: the stream is gone");
                return;
            }
            Err(e) => e,
        };
        let Some(pause) = backoff.next_delay_within(started.elapsed()) else {
            tracing::error!(error = %error, "Cannot {what}: the event store did not answer for 5 minutes; given up");
            return;
        };
        if !warned {
            tracing::warn!(error = %error, "Cannot {what} yet: retrying until the event store answers");
            warned = true;
        }
        tokio::time::sleep(pause).await;
    }
}
