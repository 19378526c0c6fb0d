//! Continuing a trace begun by the caller: W3C Trace Context (`traceparent`, `tracestate`)
//! taken from HTTP headers and from MCP `_meta` (2026-07-28, basic/index "OpenTelemetry trace
//! context": the `_meta` keys `traceparent`, `tracestate` and `baggage`).
//!
//! The application names no tracing backend: spans are `tracing` spans, and what makes one
//! the child of a remote parent is a [`TraceContinuation`] the bootstrap installs once
//! (OpenTelemetry when built with its `otlp` feature). Without one, [`continue_trace`] does
//! nothing and spans nest as they are entered.

use std::sync::OnceLock;

/// The W3C Trace Context a request carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemoteContext<'a> {
    /// `traceparent`: `version-traceid-parentid-flags`.
    pub traceparent: Option<&'a str>,
    /// `tracestate`: vendor entries, passed on as given.
    pub tracestate: Option<&'a str>,
}

impl RemoteContext<'_> {
    /// Whether the request carried a `traceparent` at all.
    pub fn is_present(&self) -> bool {
        self.traceparent.is_some()
    }
}

/// Makes a span the child of a remote parent.
pub trait TraceContinuation: Send + Sync + 'static {
    /// Set `span`'s parent to `remote` when `remote.traceparent` is well formed; leave the span
    /// as it is otherwise (a malformed header must not break the request or its trace).
    fn continue_trace(&self, span: &tracing::Span, remote: RemoteContext<'_>);
}

static CONTINUATION: OnceLock<Box<dyn TraceContinuation>> = OnceLock::new();

/// Install the process-wide [`TraceContinuation`] (the tracing subscriber is process-wide
/// too). Returns `false` when one was already installed.
pub fn install(continuation: Box<dyn TraceContinuation>) -> bool {
    CONTINUATION.set(continuation).is_ok()
}

/// Make `span` the child of `remote` when a continuation is installed and `remote` carries a
/// `traceparent`.
pub fn continue_trace(span: &tracing::Span, remote: RemoteContext<'_>) {
    if remote.is_present()
        && let Some(continuation) = CONTINUATION.get()
    {
        continuation.continue_trace(span, remote);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    struct Recorder(Mutex<Vec<(String, Option<String>)>>);

    impl TraceContinuation for &'static Recorder {
        fn continue_trace(&self, _span: &tracing::Span, remote: RemoteContext<'_>) {
            let seen = (remote.traceparent.unwrap_or_default().to_owned(), remote.tracestate.map(str::to_owned));
            self.0.lock().expect("not poisoned").push(seen);
        }
    }

    #[test]
    fn the_installed_continuation_sees_only_requests_that_carry_a_traceparent() {
        let recorder: &'static Recorder = Box::leak(Box::new(Recorder(Mutex::new(Vec::new()))));
        assert!(install(Box::new(recorder)));
        assert!(!install(Box::new(recorder)), "a second continuation is refused");
        let span = tracing::Span::none();
        continue_trace(&span, RemoteContext { traceparent: None, tracestate: Some("k=v") });
        let parent = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01";
        continue_trace(&span, RemoteContext { traceparent: Some(parent), tracestate: Some("k=v") });
        let seen = recorder.0.lock().expect("not poisoned").clone();
        assert_eq!(seen, vec![(parent.to_owned(), Some("k=v".to_owned()))]);
    }
}
