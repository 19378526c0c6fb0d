//! `AuditSink` and `AuditQuery`: the tamper-evident record of security-relevant acts.
//!
//! Adapters: `MemoryAuditSink` and `NullAuditSink` (adapters/memory; embedded use, and audit
//! turned off), `FileAuditSink` (adapters/file), `PostgresAuditSink` (adapters/postgres); the
//! durable ones are written through the application's `QueuedAuditSink`. A sink owns its
//! hash chain: callers hand it plain [`AuditRecord`]s and it links them.

use async_trait::async_trait;
use qudag_domain::Timestamp;
use qudag_domain::audit::{AuditAction, AuditRecord, ChainedEvent, Outcome};

use crate::BoxError;

/// Errors an audit sink may return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditSinkError {
    /// The sink cannot record now; the record was **not** stored and the caller must keep
    /// it (or refuse the request) — never drop it.
    #[error("audit sink unavailable")]
    Unavailable {
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// A query's cursor was not produced by this sink.
    #[error("invalid audit cursor {0:?}")]
    InvalidCursor(String),
}

/// What [`AuditSink::record_batch`] did.
#[derive(Debug)]
pub struct BatchOutcome {
    /// The events recorded: the first `recorded.len()` records of the batch, in order.
    pub recorded: Vec<ChainedEvent>,
    /// Why the rest was not recorded (`None` when all were).
    pub error: Option<AuditSinkError>,
}

/// Where audit records go.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait AuditSink: Send + Sync + 'static {
    /// Append `record` to the chain. When this returns `Ok`, the record is durable to the
    /// sink's stated policy and ordered after every record acknowledged before it.
    ///
    /// # Errors
    /// `Unavailable`: nothing was recorded.
    async fn record(&self, record: AuditRecord) -> Result<ChainedEvent, AuditSinkError>;

    /// Record `records` in order, as one write where the sink can (one transaction, one
    /// sync). What was recorded is always a prefix of `records`: all of them, or those
    /// before the error that stopped the batch (the caller keeps the rest).
    async fn record_batch(&self, records: Vec<AuditRecord>) -> BatchOutcome {
        let mut recorded = Vec::with_capacity(records.len());
        for record in records {
            match self.record(record).await {
                Ok(event) => recorded.push(event),
                Err(error) => return BatchOutcome { recorded, error: Some(error) },
            }
        }
        BatchOutcome { recorded, error: None }
    }

    /// Hand `record` over without waiting for it to be written: a queueing sink returns as
    /// soon as the record holds a place in its queue (and then never drops it); others
    /// record it at once. Request paths use this; whoever needs the chained event uses
    /// [`AuditSink::record`].
    ///
    /// # Errors
    /// `Unavailable`: the record was not taken (a full queue under the refuse policy, or
    /// past the blocking time).
    async fn submit(&self, record: AuditRecord) -> Result<(), AuditSinkError> {
        self.record(record).await.map(|_| ())
    }

    /// Whether a new request should be admitted: `false` only while a queueing sink is full
    /// under the refuse policy, so the request is refused before it runs rather than run
    /// and left unaudited.
    fn accepting(&self) -> bool {
        true
    }

    /// Make everything acknowledged so far durable (called at shutdown).
    ///
    /// # Errors
    /// `Unavailable`.
    async fn flush(&self) -> Result<(), AuditSinkError>;
}

/// Which records a query wants; every given field must match.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditFilter {
    /// At or after this instant.
    pub from: Option<Timestamp>,
    /// Before this instant.
    pub to: Option<Timestamp>,
    /// Exactly this actor.
    pub actor: Option<String>,
    /// Exactly this action.
    pub action: Option<AuditAction>,
    /// Exactly this outcome.
    pub outcome: Option<Outcome>,
}

impl AuditFilter {
    /// Whether `event` matches.
    pub fn matches(&self, event: &ChainedEvent) -> bool {
        let r = &event.record;
        self.from.is_none_or(|from| r.at >= from)
            && self.to.is_none_or(|to| r.at < to)
            && self.actor.as_ref().is_none_or(|a| r.actor.as_deref() == Some(a.as_str()))
            && self.action.is_none_or(|a| r.action == a)
            && self.outcome.is_none_or(|o| r.outcome == o)
    }
}

/// One page of a query, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditPage {
    /// The matching events.
    pub events: Vec<ChainedEvent>,
    /// Pass this back for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Reading the audit trail.
#[cfg_attr(any(test, feature = "testkit"), mockall::automock)]
#[async_trait]
pub trait AuditQuery: Send + Sync + 'static {
    /// Up to `limit` events matching `filter`, oldest first, starting after `cursor`.
    ///
    /// # Errors
    /// `InvalidCursor` for a cursor this sink did not hand out; `Unavailable`.
    async fn query(
        &self,
        filter: &AuditFilter,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<AuditPage, AuditSinkError>;
}
