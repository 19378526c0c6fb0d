//! Server-sent events as MCP uses them: `event: message` frames of compact JSON (with an id
//! when the stream is resumable), keep-alive comments while idle, and a reconnection hint
//! (`retry:`) that ends every open stream when the server starts shutting down, so draining
//! never waits on them.
//!
//! Frames are written here rather than by poem's SSE support, because resumable streams
//! need frames that carry an id together with a retry hint and an empty `data:` line
//! (2025-11-25 basic/transports, the priming event), and stored events are already encoded.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use poem::http::StatusCode;
use poem::{Body, Response};
use qudag_application::mcp::wire;
use qudag_application::ports::EventId;
use qudag_application::ports::Metrics;
use rmcp::model::ServerJsonRpcMessage;

use super::McpEndpoint;
use super::streams::StreamSlot;

impl McpEndpoint {
    /// An SSE response of `frames` that ends, telling the client when to reconnect, as soon
    /// as the server starts shutting down.
    pub(super) fn sse(&self, frames: BoxStream<'static, Bytes>) -> Response {
        self.sse_holding(frames, None)
    }

    /// As [`Self::sse`], holding `slot` for as long as the stream is open.
    pub(super) fn sse_holding(&self, frames: BoxStream<'static, Bytes>, slot: Option<StreamSlot>) -> Response {
        let mut shutdown = self.shutdown.clone();
        let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stopped.clone();
        let until = async move {
            let _ = shutdown.wait_for(|down| *down).await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        };
        let farewell = futures::stream::once(async move {
            stopped.load(std::sync::atomic::Ordering::SeqCst).then(|| Bytes::from_static(b"retry: 1000\n\n"))
        })
        .filter_map(futures::future::ready);
        // The slot and the open-streams gauge are released when the body is dropped, however
        // the stream ends.
        let held = (slot, StreamGauge::open(self.engine.admission().metrics().clone()));
        let frames = frames.take_until(until).chain(farewell).map(move |frame| {
            let _ = &held;
            frame
        });
        body(frames.boxed(), self.config.keep_alive)
    }
}

/// One `event: message` frame of `payload` (a JSON-RPC message, already encoded), with its
/// id when the stream is resumable.
pub fn event_frame(id: Option<EventId>, payload: &str) -> Bytes {
    Bytes::from(match id {
        Some(id) => format!("id: {id}\nevent: message\ndata: {payload}\n\n"),
        None => format!("event: message\ndata: {payload}\n\n"),
    })
}

/// SSE frames of messages without event ids.
pub fn messages_to_frames(messages: BoxStream<'static, ServerJsonRpcMessage>) -> BoxStream<'static, Bytes> {
    messages.map(|m| event_frame(None, &wire::encode(&m))).boxed()
}

/// An SSE response of ready frames, with keep-alive comments while idle.
fn body(frames: BoxStream<'static, Bytes>, keep_alive: Duration) -> Response {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + keep_alive, keep_alive);
    let mut frames = frames.map(Ok::<Bytes, std::io::Error>).boxed();
    let with_keep_alive = futures::stream::poll_fn(move |cx| {
        if let std::task::Poll::Ready(next) = frames.poll_next_unpin(cx) {
            return std::task::Poll::Ready(next);
        }
        ticks.poll_tick(cx).map(|_| Some(Ok(Bytes::from_static(b": keep-alive\n\n"))))
    });
    Response::builder()
        .status(StatusCode::OK)
        .content_type("text/event-stream")
        .header("cache-control", "no-cache")
        .header("x-accel-buffering", "no")
        .body(Body::from_bytes_stream(with_keep_alive))
}

/// One open SSE stream in `qudag_mcp_sse_streams`, for as long as it lives.
struct StreamGauge(Arc<dyn Metrics>);

impl StreamGauge {
    fn open(metrics: Arc<dyn Metrics>) -> Self {
        metrics.sse_streams_add(1);
        Self(metrics)
    }
}

impl Drop for StreamGauge {
    fn drop(&mut self) {
        self.0.sse_streams_add(-1);
    }
}
