//! `EventStore`: the SSE events of stateful-era streams, kept so that a client that lost
//! its connection can resume with `Last-Event-ID` (2025-11-25 basic/transports,
//! "Resumability and Redelivery").
//!
//! Adapters: `MemoryEventStore` (adapters/memory) and `RedisEventStore` (adapters/redis,
//! on Redis Streams), which lets the client resume on another node.
//!
//! Each stream belongs to one session and has an id of its own; an event id names its
//! stream and its position (`<stream>-<seq>`), so a resumption replays exactly the stream
//! that was cut and never messages of another stream.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::BoxError;

/// One stream of one session.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    /// The session id.
    pub session: String,
    /// The stream's id within the session (`0` is the standalone GET stream).
    pub stream: u64,
}

/// The position of an event: its stream and its sequence number in that stream, from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId {
    /// The stream.
    pub stream: u64,
    /// The position, from 1.
    pub seq: u64,
}

impl EventId {
    /// Parse the `Last-Event-ID` form `<stream>-<seq>`.
    pub fn parse(text: &str) -> Option<Self> {
        let (stream, seq) = text.split_once('-')?;
        Some(Self { stream: stream.parse().ok()?, seq: seq.parse().ok()? })
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.stream, self.seq)
    }
}

/// What a read returned.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventBatch {
    /// Events after the requested position, oldest first, as `(seq, payload)`.
    pub events: Vec<(u64, String)>,
    /// Whether the stream has ended (its final message is among or before these events).
    pub closed: bool,
}

/// Errors an event store may return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventStoreError {
    /// The stream is unknown (never existed, expired, or its session ended).
    #[error("unknown stream")]
    UnknownStream,
    /// The backend cannot be reached.
    #[error("event store unavailable")]
    Unavailable {
        /// What went wrong.
        #[source]
        source: BoxError,
    },
}

/// Storage of resumable SSE streams.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Open a new stream for `session`; returns its id (never 0, which is the session's
    /// standalone stream and exists implicitly).
    ///
    /// # Errors
    /// `Unavailable`.
    async fn open(&self, session: &str) -> Result<u64, EventStoreError>;

    /// Append `payload` (one JSON-RPC message) to a stream; returns its sequence number.
    /// Once this returns, a reader on any node sharing the store can read it.
    ///
    /// # Errors
    /// `UnknownStream`, `Unavailable`.
    async fn append(&self, key: &StreamKey, payload: String) -> Result<u64, EventStoreError>;

    /// Mark a stream as ended: readers drain it and stop.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn close(&self, key: &StreamKey) -> Result<(), EventStoreError>;

    /// The events after `after` (0 for all), waiting up to `wait` for at least one when
    /// there is none yet and the stream is still open.
    ///
    /// # Errors
    /// `UnknownStream`, `Unavailable`.
    async fn read(&self, key: &StreamKey, after: u64, wait: Duration) -> Result<EventBatch, EventStoreError>;

    /// Forget every stream of `session` (it ended).
    ///
    /// # Errors
    /// `Unavailable`.
    async fn forget_session(&self, session: &str) -> Result<(), EventStoreError>;
}
