//! `PostgresAuditSink`: the audit trail in `audit_events`, one hash chain per node, with a
//! local spool that keeps every event while PostgreSQL is unreachable.
//!
//! Writing: the sink links records into this node's chain (the head is read from the table
//! at open) and inserts a batch as one multi-row `INSERT` in one transaction. When the
//! insert fails for any reason but a chain conflict, the chained events go to the spool (a
//! synced local file) instead and are acknowledged; from then on every event goes to the
//! spool, behind them, until a background task has replayed the whole spool in order
//! (idempotently: rows already in the table are checked against the spooled hashes) — so
//! the table ends up with every event, in order, with a valid chain, also when the process
//! restarted in between.

use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_trait::async_trait;
use qudag_adapter_file::Spool;
use qudag_application::BoxError;
use qudag_application::ports::{
    AuditFilter, AuditPage, AuditQuery, AuditSink, AuditSinkError, BatchOutcome, ComponentHealth, HealthIndicator,
};
use qudag_domain::audit::{AuditRecord, ChainHash, ChainHead, ChainedEvent, Outcome, canonical_json};
use qudag_domain::backoff::Backoff;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait, Value};
use tokio::sync::{Mutex, Notify};

use crate::entity::{micros, timestamp};
use crate::error::{PgError, violated_unique_constraint};

/// The unique index of a chain position: a second writer with this node's id.
const NODE_SEQ_CONSTRAINT: &str = "audit_events_node_seq_key";
/// Rows per `INSERT` (10 parameters each; PostgreSQL allows 65 535).
const ROWS_PER_INSERT: usize = 1_000;

/// How a [`PostgresAuditSink`] runs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgAuditConfig {
    /// This node's id: the chain the sink extends (`QUDAG_NODE_ID`). One writer per id.
    pub node: String,
    /// The spool file (`QUDAG_AUDIT_SPOOL`): local, one per node.
    pub spool: PathBuf,
    /// How long one insert may take before the batch is spooled instead (default 5 s).
    pub write_timeout: Duration,
    /// How often a non-empty spool is replayed (default 1 s).
    pub replay_every: Duration,
}

impl PgAuditConfig {
    /// The defaults for `node` spooling to `spool`.
    pub fn new(node: impl Into<String>, spool: impl Into<PathBuf>) -> Self {
        Self {
            node: node.into(),
            spool: spool.into(),
            write_timeout: Duration::from_secs(5),
            replay_every: Duration::from_secs(1),
        }
    }
}

/// The audit sink on PostgreSQL (table `audit_events`, see `qudag-postgres-migration`).
#[derive(Debug)]
pub struct PostgresAuditSink {
    shared: Arc<Shared>,
    replayer: tokio::task::AbortHandle,
}

#[derive(Debug)]
struct Shared {
    db: DatabaseConnection,
    node: String,
    write_timeout: Duration,
    /// The chain head; held across each write so events enter table or spool in order.
    head: Mutex<ChainHead>,
    /// Taken only under `head`.
    spool: Arc<StdMutex<Spool>>,
    status: StdMutex<Status>,
    wake: Notify,
}

#[derive(Debug, Default)]
struct Status {
    spooled: usize,
    replayed: u64,
    last_error: Option<String>,
}

fn unavailable(e: impl Into<BoxError>) -> AuditSinkError {
    AuditSinkError::Unavailable { source: e.into() }
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
        Outcome::Denied => "denied",
    }
}

/// A text column's value: PostgreSQL text cannot hold NUL, so it is stored as U+FFFD (the
/// record itself keeps the original, escaped in JSON).
pub(crate) fn column_text(s: &str) -> String {
    s.replace('\0', "\u{fffd}")
}

/// Run `f` on the spool on the blocking pool.
async fn with_spool<T: Send + 'static>(
    spool: &Arc<StdMutex<Spool>>,
    f: impl FnOnce(&mut Spool) -> Result<T, qudag_adapter_file::FileAuditError> + Send + 'static,
) -> Result<T, AuditSinkError> {
    let spool = spool.clone();
    tokio::task::spawn_blocking(move || {
        let mut guard = spool.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    })
    .await
    .map_err(unavailable)?
    .map_err(unavailable)
}

/// One multi-row `INSERT` of `events`; with `idempotent`, rows already present are skipped
/// (`ON CONFLICT DO NOTHING`).
fn insert(events: &[ChainedEvent], node_of: impl Fn(&ChainedEvent) -> String, idempotent: bool) -> Statement {
    let mut sql = String::from(
        "INSERT INTO audit_events (node, seq, at, action, outcome, actor, record, prev_hash, hash) VALUES ",
    );
    let mut values: Vec<Value> = Vec::with_capacity(events.len() * 9);
    for (i, e) in events.iter().enumerate() {
        let p = i * 9;
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "(${},${},${},${},${},${},${},${},${})",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 6,
            p + 7,
            p + 8,
            p + 9
        ));
        let r = &e.record;
        values.push(node_of(e).into());
        values.push(i64::try_from(e.seq).unwrap_or(i64::MAX).into());
        values.push(micros(r.at).into());
        values.push(r.action.as_str().into());
        values.push(outcome_name(r.outcome).into());
        values.push(r.actor.as_deref().map(column_text).into());
        values.push(canonical_json(r).into());
        values.push(e.prev_hash.to_string().into());
        values.push(e.hash.to_string().into());
    }
    if idempotent {
        sql.push_str(" ON CONFLICT (node, seq) DO NOTHING");
    }
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// The chain node an event belongs to (set by the sink on every record).
fn node_of(event: &ChainedEvent) -> String {
    event.record.node.clone().unwrap_or_default()
}

/// Why a write failed: a chain conflict (another writer with this node id, or a stale
/// head) is not spooled — it would fork the chain.
enum WriteError {
    Conflict(String),
    Other(String),
}

async fn insert_all(db: &DatabaseConnection, events: &[ChainedEvent]) -> Result<(), WriteError> {
    let other = |what: &str, e: DbErr| WriteError::Other(format!("{what}: {e}"));
    let txn = db.begin().await.map_err(|e| other("begin", e))?;
    for chunk in events.chunks(ROWS_PER_INSERT) {
        if let Err(e) = txn.execute_raw(insert(chunk, node_of, false)).await {
            return Err(match violated_unique_constraint(&e) {
                Some(NODE_SEQ_CONSTRAINT) => WriteError::Conflict(format!(
                    "audit chain conflict: seq {} of node {:?} is already in audit_events (is another process running with this QUDAG_NODE_ID?)",
                    chunk[0].seq,
                    node_of(&chunk[0])
                )),
                _ => other("insert", e),
            });
        }
    }
    txn.commit().await.map_err(|e| other("commit", e))
}

/// Insert spooled `events` (possibly of several nodes, each in chain order), skipping rows
/// already present after checking they hold the same event.
async fn replay(db: &DatabaseConnection, events: &[ChainedEvent]) -> Result<(), String> {
    let txn = db.begin().await.map_err(|e| format!("begin: {e}"))?;
    for chunk in events.chunks(ROWS_PER_INSERT) {
        txn.execute_raw(insert(chunk, node_of, true)).await.map_err(|e| format!("insert: {e}"))?;
        let mut nodes: Vec<String> = chunk.iter().map(node_of).collect();
        nodes.dedup();
        for node in nodes {
            let mine: Vec<&ChainedEvent> = chunk.iter().filter(|e| node_of(e) == node).collect();
            let (first, last) = (mine[0].seq, mine[mine.len() - 1].seq);
            let rows = txn
                .query_all_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT seq, hash FROM audit_events WHERE node = $1 AND seq BETWEEN $2 AND $3",
                    [
                        node.clone().into(),
                        i64::try_from(first).unwrap_or(i64::MAX).into(),
                        i64::try_from(last).unwrap_or(i64::MAX).into(),
                    ],
                ))
                .await
                .map_err(|e| format!("read back: {e}"))?;
            let mut stored = std::collections::HashMap::new();
            for row in rows {
                let seq: i64 = row.try_get("", "seq").map_err(|e| format!("read back: {e}"))?;
                let hash: String = row.try_get("", "hash").map_err(|e| format!("read back: {e}"))?;
                stored.insert(seq, hash);
            }
            for event in mine {
                let seq = i64::try_from(event.seq).unwrap_or(i64::MAX);
                if stored.get(&seq) != Some(&event.hash.to_string()) {
                    return Err(format!(
                        "audit chain conflict: node {node:?} seq {} in audit_events is not the spooled event",
                        event.seq
                    ));
                }
            }
        }
    }
    txn.commit().await.map_err(|e| format!("commit: {e}"))
}

/// The head of `node`'s chain in the table.
async fn table_head(db: &DatabaseConnection, node: &str) -> Result<ChainHead, PgError> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT seq, hash FROM audit_events WHERE node = $1 ORDER BY seq DESC LIMIT 1",
            [node.into()],
        ))
        .await
        .map_err(PgError::query("audit_events head"))?;
    let Some(row) = row else { return Ok(ChainHead::GENESIS) };
    let seq: i64 = row.try_get("", "seq").map_err(PgError::query("audit_events head"))?;
    let hash: String = row.try_get("", "hash").map_err(PgError::query("audit_events head"))?;
    let head = ChainHash::try_from(hash).map_err(|_| PgError::Corrupt { what: format!("hash of {node} seq {seq}") })?;
    let seq = u64::try_from(seq).map_err(|_| PgError::Corrupt { what: format!("seq {seq} of {node}") })?;
    Ok(ChainHead { next_seq: seq + 1, head })
}

impl PostgresAuditSink {
    /// Open the sink for `config.node` on `db` (migrated): the chain continues from the
    /// newer of the table's head and the spool's last event of this node. Needs a Tokio
    /// runtime (the replay task).
    ///
    /// # Errors
    /// The spool cannot be opened, or the table cannot be read and the spool holds nothing
    /// of this node to continue the chain from (the head is unknown: starting anyway could
    /// fork the chain).
    pub async fn open(db: DatabaseConnection, config: PgAuditConfig) -> Result<Self, PgError> {
        let spool_path = config.spool.clone();
        let spool = tokio::task::spawn_blocking(move || Spool::open(spool_path))
            .await
            .map_err(|e| PgError::Corrupt { what: format!("audit spool task: {e}") })?
            .map_err(|e| PgError::Spool(e.to_string()))?;
        let spooled_head = spool
            .last()
            .filter(|e| e.record.node.as_deref() == Some(config.node.as_str()))
            .map(|e| ChainHead { next_seq: e.seq + 1, head: e.hash });
        let head = match (tokio::time::timeout(config.write_timeout, table_head(&db, &config.node)).await, spooled_head)
        {
            (Ok(Ok(table)), Some(spooled)) if spooled.next_seq >= table.next_seq => spooled,
            (Ok(Ok(table)), _) => table,
            (_, Some(spooled)) => {
                tracing::warn!(node = %config.node, "PostgreSQL unreachable at start: the audit chain continues from the spool");
                spooled
            }
            (Ok(Err(e)), None) => return Err(e),
            (Err(_), None) => return Err(PgError::Timeout(config.write_timeout)),
        };
        let spooled = spool.len();
        let shared = Arc::new(Shared {
            db,
            node: config.node,
            write_timeout: config.write_timeout,
            head: Mutex::new(head),
            spool: Arc::new(StdMutex::new(spool)),
            status: StdMutex::new(Status { spooled, ..Status::default() }),
            wake: Notify::new(),
        });
        let replayer = tokio::spawn(replay_loop(shared.clone(), config.replay_every)).abort_handle();
        Ok(Self { shared, replayer })
    }

    /// Where this node's chain stands (spooled events included).
    pub async fn head(&self) -> ChainHead {
        *self.shared.head.lock().await
    }

    /// Events waiting in the spool.
    pub fn spooled(&self) -> usize {
        self.shared.status().spooled
    }

    /// Replay the spool now; `Ok` when it is empty afterwards.
    ///
    /// # Errors
    /// `Unavailable` with why the replay failed (the events stay spooled).
    pub async fn replay_now(&self) -> Result<(), AuditSinkError> {
        let mut head = self.shared.head.lock().await;
        self.shared.drain(&mut head).await
    }
}

impl Drop for PostgresAuditSink {
    fn drop(&mut self) {
        self.replayer.abort();
    }
}

impl Shared {
    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replay the whole spool and clear it (the caller holds the head lock).
    async fn drain(&self, _head: &mut ChainHead) -> Result<(), AuditSinkError> {
        let events = with_spool(&self.spool, |s| s.events()).await?;
        if events.is_empty() {
            return Ok(());
        }
        let replayed = tokio::time::timeout(self.write_timeout * 4, replay(&self.db, &events)).await;
        match replayed {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                self.status().last_error = Some(why.clone());
                return Err(unavailable(why));
            }
            Err(_) => return Err(unavailable(format!("replay took longer than {:?}", self.write_timeout * 4))),
        }
        with_spool(&self.spool, |s| s.clear()).await?;
        let mut status = self.status();
        status.spooled = 0;
        status.replayed += events.len() as u64;
        status.last_error = None;
        tracing::info!(events = events.len(), "Audit spool replayed into PostgreSQL");
        Ok(())
    }

    async fn write(&self, records: Vec<AuditRecord>) -> BatchOutcome {
        if records.is_empty() {
            return BatchOutcome { recorded: Vec::new(), error: None };
        }
        let mut head = self.head.lock().await;
        let mut next = *head;
        let events: Vec<ChainedEvent> = records
            .into_iter()
            .map(|mut r| {
                r.node = Some(self.node.clone());
                next.append(r)
            })
            .collect();
        if self.status().spooled == 0 {
            let written = match tokio::time::timeout(self.write_timeout, insert_all(&self.db, &events)).await {
                Ok(result) => result,
                Err(_) => Err(WriteError::Other(format!("no answer within {:?}", self.write_timeout))),
            };
            match written {
                Ok(()) => {
                    *head = next;
                    return BatchOutcome { recorded: events, error: None };
                }
                Err(WriteError::Conflict(why)) => {
                    tracing::error!(node = %self.node, error = %why, "Audit events refused");
                    self.status().last_error = Some(why.clone());
                    return BatchOutcome { recorded: Vec::new(), error: Some(unavailable(why)) };
                }
                Err(WriteError::Other(why)) => {
                    tracing::warn!(error = %why, events = events.len(), "PostgreSQL cannot take audit events: spooling them");
                    self.status().last_error = Some(why);
                }
            }
        }
        let count = events.len();
        let spooled = events.clone();
        match with_spool(&self.spool, move |s| s.append(&spooled)).await {
            Ok(()) => {
                *head = next;
                self.status().spooled += count;
                self.wake.notify_one();
                BatchOutcome { recorded: events, error: None }
            }
            Err(error) => {
                tracing::error!(%error, "Audit spool cannot take events either");
                BatchOutcome { recorded: Vec::new(), error: Some(error) }
            }
        }
    }
}

async fn replay_loop(shared: Arc<Shared>, every: Duration) {
    // While the database is away, the replay slows down to `every` × 5 at most.
    let mut backoff = Backoff::linear(every, every.saturating_mul(5));
    let mut pause = every;
    loop {
        tokio::select! {
            () = shared.wake.notified() => tokio::time::sleep(every).await,
            () = tokio::time::sleep(pause) => {}
        }
        if shared.status().spooled == 0 {
            backoff.reset();
            pause = every;
            continue;
        }
        // Probe first, so an unreachable database does not hold up writes (to the spool)
        // while the replay waits for it.
        if !matches!(
            tokio::time::timeout(shared.write_timeout, shared.db.execute_unprepared("SELECT 1")).await,
            Ok(Ok(_))
        ) {
            pause = backoff.next_delay();
            continue;
        }
        let mut head = shared.head.lock().await;
        match shared.drain(&mut head).await {
            Ok(()) => {
                backoff.reset();
                pause = every;
            }
            Err(error) => {
                pause = backoff.next_delay();
                tracing::debug!(%error, "Audit spool replay failed; retrying");
            }
        }
    }
}

#[async_trait]
impl AuditSink for PostgresAuditSink {
    async fn record(&self, record: AuditRecord) -> Result<ChainedEvent, AuditSinkError> {
        let mut outcome = self.shared.write(vec![record]).await;
        match (outcome.recorded.pop(), outcome.error) {
            (Some(event), None) => Ok(event),
            (_, Some(error)) => Err(error),
            (None, None) => Err(unavailable("nothing recorded")),
        }
    }

    async fn record_batch(&self, records: Vec<AuditRecord>) -> BatchOutcome {
        self.shared.write(records).await
    }

    /// Inserts are committed (or spooled and synced) before `record` returns: nothing to
    /// flush but an attempt to replay the spool.
    async fn flush(&self) -> Result<(), AuditSinkError> {
        if self.spooled() == 0 {
            return Ok(());
        }
        match self.replay_now().await {
            Ok(()) => Ok(()),
            Err(error) => {
                tracing::warn!(%error, spooled = self.spooled(), "Audit spool not replayed at flush; it is replayed at the next start");
                Ok(())
            }
        }
    }
}

fn parse_cursor(cursor: &str) -> Option<i64> {
    let id = cursor.strip_prefix("id:")?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

/// A stored row back as its event.
pub(crate) fn row_event(row: &sea_orm::QueryResult) -> Result<(i64, ChainedEvent), String> {
    let get_i64 = |c: &str| row.try_get::<i64>("", c).map_err(|e| format!("{c}: {e}"));
    let get_str = |c: &str| row.try_get::<String>("", c).map_err(|e| format!("{c}: {e}"));
    let id = get_i64("id")?;
    let seq = u64::try_from(get_i64("seq")?).map_err(|_| "seq is negative".to_owned())?;
    let record: AuditRecord = serde_json::from_str(&get_str("record")?).map_err(|e| format!("record: {e}"))?;
    let prev_hash = ChainHash::try_from(get_str("prev_hash")?).map_err(|_| "prev_hash is not a hash".to_owned())?;
    let hash = ChainHash::try_from(get_str("hash")?).map_err(|_| "hash is not a hash".to_owned())?;
    Ok((id, ChainedEvent { seq, record, prev_hash, hash }))
}

#[async_trait]
impl AuditQuery for PostgresAuditSink {
    async fn query(
        &self,
        filter: &AuditFilter,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<AuditPage, AuditSinkError> {
        let after = match cursor {
            Some(c) => parse_cursor(&c).ok_or(AuditSinkError::InvalidCursor(c))?,
            None => 0,
        };
        let limit = limit.clamp(1, 10_000);
        let mut sql = String::from("SELECT id, seq, record, prev_hash, hash FROM audit_events WHERE id > $1");
        let mut values: Vec<Value> = vec![after.into()];
        let mut add = |clause: &str, value: Value| {
            values.push(value);
            sql.push_str(&format!(" AND {clause} ${}", values.len()));
        };
        if let Some(from) = filter.from {
            add("at >=", micros(from).into());
        }
        if let Some(to) = filter.to {
            add("at <", micros(to).into());
        }
        if let Some(actor) = &filter.actor {
            add("actor =", column_text(actor).into());
        }
        if let Some(action) = filter.action {
            add("action =", action.as_str().into());
        }
        if let Some(outcome) = filter.outcome {
            add("outcome =", outcome_name(outcome).into());
        }
        sql.push_str(&format!(" ORDER BY id LIMIT {}", limit + 1));
        let rows = self
            .shared
            .db
            .query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values))
            .await
            .map_err(|e| unavailable(PgError::Query { operation: "audit_events query", source: e }))?;
        let more = rows.len() > limit;
        let mut events = Vec::with_capacity(limit);
        let mut last_id = after;
        for row in rows.iter().take(limit) {
            let (id, event) = row_event(row).map_err(|what| unavailable(PgError::Corrupt { what }))?;
            // An actor column that matched only through the NUL mapping is not this actor.
            if filter.matches(&event) {
                events.push(event);
            }
            last_id = id;
        }
        Ok(AuditPage { events, next_cursor: more.then(|| format!("id:{last_id}")) })
    }
}

#[async_trait]
impl HealthIndicator for PostgresAuditSink {
    /// Up while events go straight to the table; degraded while they are spooled (durable
    /// locally, PostgreSQL unreachable); down after a chain conflict.
    async fn health(&self) -> ComponentHealth {
        let status = self.shared.status();
        match (&status.last_error, status.spooled) {
            (Some(why), _) if why.starts_with("audit chain conflict") => ComponentHealth::down(why.clone()),
            (last, n @ 1..) => ComponentHealth::degraded(format!(
                "{n} events spooled while PostgreSQL is unreachable{}",
                last.as_ref().map(|w| format!(" ({w})")).unwrap_or_default()
            )),
            _ => ComponentHealth::up(format!("postgres audit, {} events replayed from the spool", status.replayed)),
        }
    }
}

/// A stored timestamp column back as a domain value (for verification).
pub(crate) fn at_column(row: &sea_orm::QueryResult) -> Result<qudag_domain::Timestamp, String> {
    let at: i64 = row.try_get("", "at").map_err(|e| format!("at: {e}"))?;
    timestamp(at, "at").map_err(|e| e.to_string())
}
