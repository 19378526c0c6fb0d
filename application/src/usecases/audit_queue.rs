//! The audit queue: records go to the sink off the request's path, through a bounded queue
//! that never drops one.
//!
//! `submit` takes a place in the queue and returns; one writer task hands records to the
//! wrapped sink in order, in batches of what has queued up (up to 256: one transaction or one
//! sync for many records), retrying (with backoff, logged) while the sink fails — so a sink
//! outage fills the queue instead of losing records. When the queue is full the configured
//! policy applies: **block** the caller up to a bound, then refuse; or **refuse** at once —
//! and then [`AuditSink::accepting`] turns false so admission refuses new requests (503)
//! before they run, instead of running them unaudited. `record` (for callers that need the
//! chained event) and `flush` wait for everything queued before them.
//!
//! When a submitted record counts as taken is the [`Acknowledge`] mode. **Durable** (the
//! server's default): `submit` returns only once the sink has written the record (synced or
//! committed), so a request is answered only after its record is durable; records of
//! concurrent requests share one write (one sync, one transaction), so this costs little
//! under concurrency. While the queue is full or the sink is failing, [`AuditSink::accepting`]
//! is false, and admission refuses new requests (503) before they run. **Queued**: `submit`
//! returns once the record holds a place in the queue — what is queued when the process dies
//! is lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use qudag_domain::audit::{AuditRecord, ChainedEvent};
use qudag_domain::backoff::Backoff;
use tokio::sync::{mpsc, oneshot};

use crate::ports::{AuditSink, AuditSinkError};

/// When [`QueuedAuditSink::submit`] returns (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acknowledge {
    /// Once the sink has written the record durably.
    #[default]
    Durable,
    /// Once the record holds a place in the queue.
    Queued,
}

/// What happens when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueFullPolicy {
    /// Wait up to this long for a place, then refuse.
    Block(Duration),
    /// Refuse at once (and refuse new requests while full).
    Refuse,
}

enum Job {
    Record(AuditRecord, Option<oneshot::Sender<Result<ChainedEvent, AuditSinkError>>>),
    Flush(oneshot::Sender<Result<(), AuditSinkError>>),
}

/// A bounded queue in front of a sink.
pub struct QueuedAuditSink {
    tx: mpsc::Sender<Job>,
    policy: QueueFullPolicy,
    capacity: usize,
    retries: Arc<AtomicU64>,
    /// Whether the writer's last attempt failed (it is retrying).
    failing: Arc<AtomicBool>,
    acknowledge: Acknowledge,
}

impl std::fmt::Debug for QueuedAuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuedAuditSink")
            .field("capacity", &self.capacity)
            .field("depth", &self.depth())
            .field("policy", &self.policy)
            .field("acknowledge", &self.acknowledge)
            .finish()
    }
}

fn full(why: &str) -> AuditSinkError {
    AuditSinkError::Unavailable { source: format!("audit queue {why}").into() }
}

/// The most records the writer hands the sink at once.
const MAX_BATCH: usize = 256;

type Ack = oneshot::Sender<Result<ChainedEvent, AuditSinkError>>;

/// Write `batch` in order, retrying what the sink did not take (with backoff, from 50 ms to
/// 2 s) until all of it is written; acknowledge each record as it is.
async fn write(
    inner: &dyn AuditSink,
    batch: Vec<(AuditRecord, Option<Ack>)>,
    retries: &AtomicU64,
    failing: &AtomicBool,
) {
    let (mut records, acks): (Vec<AuditRecord>, Vec<Option<Ack>>) = batch.into_iter().unzip();
    let mut acks = acks.into_iter();
    let mut backoff = Backoff::exponential(Duration::from_millis(50), Duration::from_secs(2));
    while !records.is_empty() {
        let outcome = inner.record_batch(records.clone()).await;
        records.drain(..outcome.recorded.len().min(records.len()));
        for (event, ack) in outcome.recorded.into_iter().zip(acks.by_ref()) {
            if let Some(ack) = ack {
                let _ = ack.send(Ok(event));
            }
        }
        let error = outcome
            .error
            .or_else(|| (!records.is_empty()).then(|| full("sink recorded part of a batch without an error")));
        failing.store(error.is_some(), Ordering::Release);
        if let Some(error) = error {
            retries.fetch_add(1, Ordering::Relaxed);
            let pause = backoff.next_delay();
            tracing::error!(%error, waiting = records.len(), retry_in_ms = pause.as_millis() as u64, "Audit sink refused records; they stay queued");
            tokio::time::sleep(pause).await;
        }
    }
}

impl QueuedAuditSink {
    /// Start the writer task (needs a Tokio runtime) over `inner`, acknowledging records
    /// once queued; [`QueuedAuditSink::acknowledging`] chooses durable acknowledgement.
    pub fn start(inner: Arc<dyn AuditSink>, capacity: usize, policy: QueueFullPolicy) -> Self {
        let capacity = capacity.max(1);
        let (tx, mut rx) = mpsc::channel::<Job>(capacity);
        let retries = Arc::new(AtomicU64::new(0));
        let counted = retries.clone();
        let failing = Arc::new(AtomicBool::new(false));
        let writer_failing = failing.clone();
        tokio::spawn(async move {
            let mut jobs = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
                let mut batch = Vec::new();
                for job in jobs.drain(..) {
                    match job {
                        Job::Record(record, ack) => batch.push((record, ack)),
                        Job::Flush(ack) => {
                            write(inner.as_ref(), std::mem::take(&mut batch), &counted, &writer_failing).await;
                            let _ = ack.send(inner.flush().await);
                        }
                    }
                }
                write(inner.as_ref(), batch, &counted, &writer_failing).await;
            }
        });
        Self { tx, policy, capacity, retries, failing, acknowledge: Acknowledge::Queued }
    }

    /// When `submit` returns: once queued, or once durably written.
    #[must_use]
    pub fn acknowledging(mut self, acknowledge: Acknowledge) -> Self {
        self.acknowledge = acknowledge;
        self
    }

    /// Whether the sink refused the writer's last attempt (it is being retried).
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// Records waiting to be written.
    pub fn depth(&self) -> usize {
        self.capacity.saturating_sub(self.tx.capacity())
    }

    /// How often the sink refused a record (each retried).
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    async fn place(&self) -> Result<mpsc::Permit<'_, Job>, AuditSinkError> {
        match self.policy {
            QueueFullPolicy::Refuse => self.tx.try_reserve().map_err(|e| match e {
                mpsc::error::TrySendError::Full(()) => full("is full"),
                mpsc::error::TrySendError::Closed(()) => full("is closed"),
            }),
            QueueFullPolicy::Block(limit) => match tokio::time::timeout(limit, self.tx.reserve()).await {
                Ok(Ok(permit)) => Ok(permit),
                Ok(Err(_)) => Err(full("is closed")),
                Err(_) => Err(full(&format!("stayed full for {} ms", limit.as_millis()))),
            },
        }
    }
}

#[async_trait]
impl crate::ports::HealthIndicator for QueuedAuditSink {
    /// Up with the backlog; degraded from 90 % full or while the sink is being retried;
    /// down when full under the refuse policy (requests are being refused).
    async fn health(&self) -> crate::ports::ComponentHealth {
        use crate::ports::ComponentHealth;
        let depth = self.depth();
        let detail = format!("{depth} of {} queued, {} sink retries so far", self.capacity, self.retries());
        if !self.accepting() {
            let why = if self.failing() { "the sink is failing" } else { "full" };
            ComponentHealth::down(format!("{why}: requests are refused ({detail})"))
        } else if depth * 10 >= self.capacity * 9 {
            ComponentHealth::degraded(format!("nearly full ({detail})"))
        } else {
            ComponentHealth::up(detail)
        }
    }
}

#[async_trait]
impl AuditSink for QueuedAuditSink {
    async fn record(&self, record: AuditRecord) -> Result<ChainedEvent, AuditSinkError> {
        let (ack, done) = oneshot::channel();
        self.place().await?.send(Job::Record(record, Some(ack)));
        done.await.map_err(|_| full("writer stopped"))?
    }

    async fn submit(&self, record: AuditRecord) -> Result<(), AuditSinkError> {
        if self.acknowledge == Acknowledge::Durable {
            return self.record(record).await.map(|_| ());
        }
        self.place().await?.send(Job::Record(record, None));
        Ok(())
    }

    fn accepting(&self) -> bool {
        match self.acknowledge {
            // Nothing may run that could not be recorded at once: a full queue or a failing
            // sink refuses new requests whatever the queue-full policy.
            Acknowledge::Durable => self.tx.capacity() > 0 && !self.failing(),
            Acknowledge::Queued => self.policy != QueueFullPolicy::Refuse || self.tx.capacity() > 0,
        }
    }

    async fn flush(&self) -> Result<(), AuditSinkError> {
        let (ack, done) = oneshot::channel();
        self.tx.send(Job::Flush(ack)).await.map_err(|_| full("is closed"))?;
        done.await.map_err(|_| full("writer stopped"))?
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;

    use qudag_domain::Timestamp;
    use qudag_domain::audit::{AuditAction, ChainHead, Outcome, verify_chain};
    use tokio::sync::Semaphore;

    use super::*;

    /// A sink that writes only when the test lets it, and fails while `failing`.
    struct Gate {
        open: Semaphore,
        failing: AtomicBool,
        head: Mutex<ChainHead>,
        written: Mutex<Vec<ChainedEvent>>,
        flushed: AtomicU64,
    }

    impl Gate {
        fn new(open: usize) -> Arc<Self> {
            Arc::new(Self {
                open: Semaphore::new(open),
                failing: AtomicBool::new(false),
                head: Mutex::new(ChainHead::GENESIS),
                written: Mutex::new(Vec::new()),
                flushed: AtomicU64::new(0),
            })
        }
    }

    #[async_trait]
    impl AuditSink for Gate {
        async fn record(&self, record: AuditRecord) -> Result<ChainedEvent, AuditSinkError> {
            self.open.acquire().await.unwrap().forget();
            if self.failing.load(Ordering::SeqCst) {
                self.open.add_permits(1);
                return Err(AuditSinkError::Unavailable { source: "down".into() });
            }
            let event = self.head.lock().unwrap().append(record);
            self.written.lock().unwrap().push(event.clone());
            Ok(event)
        }
        async fn flush(&self) -> Result<(), AuditSinkError> {
            self.flushed.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn rec(i: u64) -> AuditRecord {
        AuditRecord::new(Timestamp::from_secs(i), AuditAction::ToolCalled, Outcome::Success).target(format!("t{i}"))
    }

    #[tokio::test]
    async fn submit_returns_before_the_sink_writes() {
        let gate = Gate::new(0);
        let q = QueuedAuditSink::start(gate.clone(), 8, QueueFullPolicy::Refuse);
        for i in 0..5 {
            tokio::time::timeout(Duration::from_millis(100), q.submit(rec(i))).await.unwrap().unwrap();
        }
        assert!(gate.written.lock().unwrap().is_empty(), "nothing written yet: the sink is closed");
        assert!(q.depth() >= 4);
        gate.open.add_permits(100);
        q.flush().await.unwrap();
        let written = gate.written.lock().unwrap().clone();
        assert_eq!(
            written.iter().map(|e| e.record.target.clone().unwrap()).collect::<Vec<_>>(),
            ["t0", "t1", "t2", "t3", "t4"]
        );
        assert_eq!(gate.flushed.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_or_blocks_then_refuses() {
        let gate = Gate::new(0);
        let q = QueuedAuditSink::start(gate.clone(), 2, QueueFullPolicy::Refuse);
        // The writer holds one record (blocked in the sink); two more fill the queue.
        let mut taken = 0;
        while q.submit(rec(taken)).await.is_ok() {
            taken += 1;
            assert!(taken < 10, "the queue must fill");
        }
        assert!(taken >= 2);
        assert!(!q.accepting(), "a full refusing queue stops admitting requests");
        use crate::ports::{HealthIndicator, HealthStatus};
        assert_eq!(q.health().await.status, HealthStatus::Down);
        gate.open.add_permits(100);
        q.flush().await.unwrap();
        assert!(q.accepting());
        assert_eq!(q.health().await.status, HealthStatus::Up);
        assert_eq!(gate.written.lock().unwrap().len() as u64, taken, "every accepted record is written");

        let gate = Gate::new(0);
        let q = QueuedAuditSink::start(gate.clone(), 1, QueueFullPolicy::Block(Duration::from_millis(150)));
        while tokio::time::timeout(Duration::from_millis(50), q.submit(rec(0))).await.is_ok() {}
        assert!(q.accepting(), "a blocking queue keeps admitting (callers wait instead)");
        let started = std::time::Instant::now();
        let refused = q.submit(rec(1)).await;
        assert!(refused.is_err() && started.elapsed() >= Duration::from_millis(140), "{refused:?}");
        gate.open.add_permits(100);
        q.submit(rec(2)).await.unwrap();
    }

    #[tokio::test]
    async fn a_sink_outage_loses_nothing_and_keeps_the_order() {
        let gate = Gate::new(1000);
        gate.failing.store(true, Ordering::SeqCst);
        let q = QueuedAuditSink::start(gate.clone(), 100, QueueFullPolicy::Block(Duration::from_secs(5)));
        for i in 0..20 {
            q.submit(rec(i)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(gate.written.lock().unwrap().is_empty());
        assert!(q.retries() >= 1);
        gate.failing.store(false, Ordering::SeqCst);
        let last = q.record(rec(20)).await.unwrap();
        assert_eq!(last.seq, 20, "queued before it, all twenty were written first");
        let written = gate.written.lock().unwrap().clone();
        assert_eq!(written.len(), 21);
        assert!(written.iter().enumerate().all(|(i, e)| e.record.target.as_deref() == Some(format!("t{i}").as_str())));
        assert!(verify_chain(ChainHead::GENESIS, written.iter()).is_ok());
    }

    #[tokio::test]
    async fn durable_submit_returns_only_once_the_sink_has_written() {
        let gate = Gate::new(0);
        let q = Arc::new(
            QueuedAuditSink::start(gate.clone(), 8, QueueFullPolicy::Block(Duration::from_secs(5)))
                .acknowledging(Acknowledge::Durable),
        );
        let waiting = tokio::spawn({
            let q = q.clone();
            async move { q.submit(rec(0)).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "not acknowledged while the sink has not written it");
        gate.open.add_permits(1);
        waiting.await.unwrap().unwrap();
        assert_eq!(gate.written.lock().unwrap().len(), 1, "acknowledged once written");
    }

    #[tokio::test]
    async fn durable_acknowledgement_refuses_requests_while_the_sink_fails_or_the_queue_is_full() {
        let gate = Gate::new(1000);
        gate.failing.store(true, Ordering::SeqCst);
        let q = Arc::new(
            QueuedAuditSink::start(gate.clone(), 2, QueueFullPolicy::Block(Duration::from_millis(50)))
                .acknowledging(Acknowledge::Durable),
        );
        assert!(q.accepting());
        // A record that meets a failing sink stays queued, unacknowledged, and from then on
        // new requests are refused before they run.
        let pending = tokio::spawn({
            let q = q.clone();
            async move { q.submit(rec(0)).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(q.failing() && !q.accepting(), "a failing sink stops admission");
        use crate::ports::{HealthIndicator, HealthStatus};
        let health = q.health().await;
        assert_eq!(health.status, HealthStatus::Down);
        let detail = health.detail.unwrap_or_default();
        assert!(detail.contains("failing"), "{detail}");
        assert!(!pending.is_finished());
        gate.failing.store(false, Ordering::SeqCst);
        pending.await.unwrap().unwrap();
        assert_eq!(gate.written.lock().unwrap().len(), 1, "nothing was lost while the sink failed");
        assert!(q.accepting() && !q.failing());

        // A full queue refuses new requests too, even under the block policy.
        let gate = Gate::new(0);
        let q = Arc::new(
            QueuedAuditSink::start(gate.clone(), 1, QueueFullPolicy::Block(Duration::from_secs(5)))
                .acknowledging(Acknowledge::Durable),
        );
        let mut waiting = Vec::new();
        for i in 0..3 {
            let q = q.clone();
            waiting.push(tokio::spawn(async move { q.submit(rec(i)).await }));
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        assert!(!q.accepting(), "a full queue stops admission under durable acknowledgement");
        gate.open.add_permits(100);
        for w in waiting {
            w.await.unwrap().unwrap();
        }
        assert!(q.accepting());
    }

    /// Takes at most two records of each batch, then fails the rest (a sink whose
    /// transaction size is limited, say); records the batch sizes it was offered.
    struct TwoAtATime {
        inner: Arc<Gate>,
        offered: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl AuditSink for TwoAtATime {
        async fn record(&self, record: AuditRecord) -> Result<ChainedEvent, AuditSinkError> {
            self.inner.record(record).await
        }

        async fn record_batch(&self, records: Vec<AuditRecord>) -> crate::ports::BatchOutcome {
            self.offered.lock().unwrap().push(records.len());
            let rest = records.len().saturating_sub(2);
            let mut recorded = Vec::new();
            for record in records.into_iter().take(2) {
                recorded.push(self.inner.record(record).await.unwrap());
            }
            let error = (rest > 0).then(|| AuditSinkError::Unavailable { source: "batch limit".into() });
            crate::ports::BatchOutcome { recorded, error }
        }

        async fn flush(&self) -> Result<(), AuditSinkError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn batches_are_retried_from_where_the_sink_stopped() {
        let gate = Gate::new(0);
        let sink = Arc::new(TwoAtATime { inner: gate.clone(), offered: Mutex::new(Vec::new()) });
        let q = QueuedAuditSink::start(sink.clone(), 64, QueueFullPolicy::Refuse);
        for i in 0..9 {
            q.submit(rec(i)).await.unwrap();
        }
        // The writer holds the first batch while the sink is closed; the rest queue up.
        tokio::time::sleep(Duration::from_millis(50)).await;
        gate.open.add_permits(100);
        let last = q.record(rec(9)).await.unwrap();
        assert_eq!(last.seq, 9);
        let written = gate.written.lock().unwrap().clone();
        assert_eq!(written.len(), 10, "each record written once");
        assert!(written.iter().enumerate().all(|(i, e)| e.record.target.as_deref() == Some(format!("t{i}").as_str())));
        let offered = sink.offered.lock().unwrap().clone();
        assert!(offered.iter().any(|&n| n > 2), "records that queued up were offered together: {offered:?}");
        assert!(q.retries() >= 1, "the rest of a batch is retried");
    }
}
