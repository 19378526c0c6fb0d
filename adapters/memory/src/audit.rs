//! `MemoryAuditSink` and `NullAuditSink`: the audit chain kept in this process (a bounded
//! window for `/admin/audit`, not durable), and the sink of a server with audit turned off,
//! which still links records so callers get the events they expect.

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;
use qudag_application::ports::{
    AuditFilter, AuditPage, AuditQuery, AuditSink, AuditSinkError, ComponentHealth, HealthIndicator,
};
use qudag_domain::audit::{AuditRecord, ChainHead, ChainedEvent};

/// The audit chain in this process's memory: for tests and development, **not durable**.
///
/// It keeps the newest `retain` events; older ones leave memory (the chain head, and so
/// the chain, continues unbroken), and queries see the retained window. Cursors are the
/// sequence number of the last event returned.
#[derive(Debug)]
pub struct MemoryAuditSink {
    state: Mutex<State>,
    retain: usize,
}

#[derive(Debug)]
struct State {
    head: ChainHead,
    events: VecDeque<ChainedEvent>,
}

impl MemoryAuditSink {
    /// A sink keeping the newest `retain` events (at least one).
    pub fn new(retain: usize) -> Self {
        Self { state: Mutex::new(State { head: ChainHead::GENESIS, events: VecDeque::new() }), retain: retain.max(1) }
    }

    /// Where the chain stands.
    pub fn head(&self) -> ChainHead {
        self.lock().head
    }

    /// The retained events, oldest first.
    pub fn events(&self) -> Vec<ChainedEvent> {
        self.lock().events.iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl AuditSink for MemoryAuditSink {
    async fn record(&self, record: AuditRecord) -> Result<ChainedEvent, AuditSinkError> {
        let mut state = self.lock();
        let event = state.head.append(record);
        state.events.push_back(event.clone());
        while state.events.len() > self.retain {
            state.events.pop_front();
        }
        Ok(event)
    }

    async fn flush(&self) -> Result<(), AuditSinkError> {
        Ok(())
    }
}

#[async_trait]
impl AuditQuery for MemoryAuditSink {
    async fn query(
        &self,
        filter: &AuditFilter,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<AuditPage, AuditSinkError> {
        let state = self.lock();
        let after = match cursor {
            None => None,
            Some(c) => match c.parse::<u64>() {
                Ok(seq) if seq < state.head.next_seq => Some(seq),
                _ => return Err(AuditSinkError::InvalidCursor(c)),
            },
        };
        let limit = limit.max(1);
        let mut matching =
            state.events.iter().filter(|e| after.is_none_or(|a| e.seq > a)).filter(|e| filter.matches(e));
        let events: Vec<ChainedEvent> = matching.by_ref().take(limit).cloned().collect();
        let more = matching.next().is_some();
        let next_cursor = match events.last() {
            Some(last) if more => Some(last.seq.to_string()),
            _ => None,
        };
        Ok(AuditPage { events, next_cursor })
    }
}

#[async_trait]
impl HealthIndicator for MemoryAuditSink {
    async fn health(&self) -> ComponentHealth {
        let head = self.head();
        ComponentHealth::up(format!("memory (not durable): {} events recorded", head.next_seq))
    }
}

#[cfg(test)]
mod tests {
    use qudag_domain::Timestamp;
    use qudag_domain::audit::{AuditAction, Outcome, verify_chain};

    use super::*;

    #[tokio::test]
    async fn retention_drops_old_events_but_the_chain_continues() {
        let sink = MemoryAuditSink::new(3);
        for i in 0..10 {
            sink.record(AuditRecord::new(Timestamp::from_secs(i), AuditAction::ToolCalled, Outcome::Success))
                .await
                .unwrap();
        }
        let kept = sink.events();
        assert_eq!(kept.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![7, 8, 9]);
        let start = ChainHead { next_seq: 7, head: kept[0].prev_hash };
        assert_eq!(verify_chain(start, &kept).unwrap(), sink.head());
    }
}

/// The sink of a server with audit turned off: links records into a chain (callers get the
/// event they expect) and keeps none of them; queries find nothing.
#[derive(Debug, Default)]
pub struct NullAuditSink {
    head: Mutex<ChainHead>,
}

#[async_trait]
impl AuditSink for NullAuditSink {
    async fn record(&self, record: AuditRecord) -> Result<ChainedEvent, AuditSinkError> {
        Ok(self.head.lock().unwrap_or_else(std::sync::PoisonError::into_inner).append(record))
    }

    async fn flush(&self) -> Result<(), AuditSinkError> {
        Ok(())
    }
}

#[async_trait]
impl AuditQuery for NullAuditSink {
    async fn query(
        &self,
        _filter: &AuditFilter,
        cursor: Option<String>,
        _limit: usize,
    ) -> Result<AuditPage, AuditSinkError> {
        match cursor {
            Some(c) => Err(AuditSinkError::InvalidCursor(c)),
            None => Ok(AuditPage { events: Vec::new(), next_cursor: None }),
        }
    }
}
