//! Verification and retention of `audit_events`: `qudag-mcp audit verify --database URL`,
//! and the removal of old rows that a signed checkpoint covers.

use std::fmt;

use qudag_domain::Timestamp;
use qudag_domain::audit::{
    AuditAction, ChainHead, ChainVerifier, ChainedEvent, CheckpointKey, CheckpointSummary, ExpectedHead, HeadCheck,
    LinkError,
};
use qudag_domain::pqc::fingerprint;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, IsolationLevel, Statement, TransactionTrait,
};

use crate::audit::{at_column, column_text, row_event};
use crate::entity::micros;
use crate::error::PgError;

/// Rows read per query while verifying.
const PAGE: i64 = 2_000;

/// Why a row breaks its node's chain.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RowBreak {
    /// Rows before it are missing: deleted.
    Gap {
        /// The seq that should be here.
        expected: u64,
    },
    /// Its `prev_hash` is not the hash of the row before it (a row replaced, or rows
    /// renumbered).
    BrokenLink,
    /// Its record no longer matches its hash.
    Edited,
    /// A query column (`at`, `action`, `outcome`, `actor`) says something else than the
    /// record: edited to hide or misattribute the event in queries.
    ColumnEdited(&'static str),
    /// The row cannot be read as an event.
    Unparseable(String),
    /// A signed checkpoint does not hold.
    BadCheckpoint(String),
}

impl fmt::Display for RowBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gap { expected } => write!(f, "gap: expected seq {expected}, so rows from {expected} were deleted"),
            Self::BrokenLink => f.write_str("broken link: its prev_hash is not the hash of the row before it"),
            Self::Edited => f.write_str("edited: the record no longer matches its hash"),
            Self::ColumnEdited(column) => write!(f, "edited: the {column} column does not match the hashed record"),
            Self::Unparseable(why) => write!(f, "unparseable: {why}"),
            Self::BadCheckpoint(why) => write!(f, "bad checkpoint: {why}"),
        }
    }
}

/// The first broken row of a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokenRow {
    /// The row's `id`.
    pub id: i64,
    /// Its seq, when readable.
    pub seq: Option<u64>,
    /// What is wrong.
    pub reason: RowBreak,
}

/// What verification found of one node's chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainReport {
    /// The node.
    pub node: String,
    /// Events verified before the end or the first break.
    pub verified: u64,
    /// The seq of the first row (above 0 once retention removed older rows).
    pub first_seq: Option<u64>,
    /// Where the verified part stands.
    pub head: Option<ChainHead>,
    /// Signed checkpoints that held.
    pub checkpoints: u64,
    /// The highest seq such a checkpoint covers.
    pub signed_through: Option<u64>,
    /// Whether signatures were checked (a key was given).
    pub signatures_checked: bool,
    /// The first broken row; `None` when intact.
    pub broken: Option<BrokenRow>,
    /// The head this node's chain was expected to reach, and what was found of it.
    pub expected: Option<(ExpectedHead, HeadCheck)>,
}

impl ChainReport {
    /// Whether every row verified, and the expected head (if any) is in the chain.
    pub fn is_intact(&self) -> bool {
        self.broken.is_none() && self.expected.is_none_or(|(_, check)| check == HeadCheck::Found)
    }

    fn expected_sentence(&self) -> String {
        self.expected.as_ref().map(|(head, check)| format!(" {}", check.describe(head))).unwrap_or_default()
    }
}

impl fmt::Display for ChainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let range = match (self.first_seq, self.head) {
            (Some(first), Some(head)) if self.verified > 0 => format!(" (seq {first} to {})", head.next_seq - 1),
            _ => String::new(),
        };
        let node = &self.node;
        if let Some(b) = &self.broken {
            let seq = b.seq.map_or_else(|| "seq unreadable".to_owned(), |s| format!("seq {s}"));
            return write!(
                f,
                "node {node}: audit chain BROKEN at row id {} ({seq}): {}. The {} events before it verified{range}; nothing from this row on can be trusted.{}",
                b.id,
                b.reason,
                self.verified,
                self.expected_sentence()
            );
        }
        match self.head {
            Some(head) => {
                write!(
                    f,
                    "node {node}: audit chain intact: {} events verified{range}; head hash {}.",
                    self.verified, head.head
                )?;
            }
            None => write!(f, "node {node}: no events.")?,
        }
        write!(
            f,
            "{}",
            CheckpointSummary {
                checkpoints: self.checkpoints,
                signed_through: self.signed_through,
                signatures_checked: self.signatures_checked,
            }
        )?;
        if let Some(first) = self.first_seq.filter(|s| *s > 0) {
            write!(
                f,
                " The chain starts at seq {first} (older rows were removed by retention); its first link is taken on trust."
            )?;
        }
        write!(f, "{}", self.expected_sentence())
    }
}

/// The nodes with a chain in the table.
async fn nodes(db: &impl ConnectionTrait) -> Result<Vec<String>, PgError> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT DISTINCT node FROM audit_events ORDER BY node",
        ))
        .await
        .map_err(PgError::query("audit_events nodes"))?;
    rows.iter().map(|r| r.try_get::<String>("", "node").map_err(PgError::query("audit_events nodes"))).collect()
}

/// Verify every node's chain in `audit_events`: links, hashes, that the query columns agree
/// with the hashed records and, with `key`, the checkpoint signatures. One report per node,
/// in node order.
///
/// # Errors
/// The table cannot be read.
pub async fn verify_database(
    db: &DatabaseConnection,
    key: Option<&CheckpointKey>,
) -> Result<Vec<ChainReport>, PgError> {
    verify_database_expecting(db, key, None).await
}

/// As [`verify_database`], and whether the chain of the node named in `expected` reaches
/// that head ([`ChainReport::expected`]; a node with no rows gets a report that says its
/// trail ends before it).
///
/// # Errors
/// The table cannot be read.
pub async fn verify_database_expecting(
    db: &DatabaseConnection,
    key: Option<&CheckpointKey>,
    expected: Option<(&str, ExpectedHead)>,
) -> Result<Vec<ChainReport>, PgError> {
    let mut names = nodes(db).await?;
    if let Some((node, _)) = expected
        && !names.iter().any(|n| n == node)
    {
        names.push(node.to_owned());
    }
    let mut reports = Vec::new();
    for node in names {
        let head = expected.filter(|(n, _)| *n == node).map(|(_, head)| head);
        let mut report = verify_node(db, &node, key, head).await?;
        if let Some(head) = head
            && report.expected.is_none()
        {
            report.expected = Some((head, HeadCheck::EndsBefore));
        }
        reports.push(report);
    }
    Ok(reports)
}

async fn verify_node(
    db: &DatabaseConnection,
    node: &str,
    key: Option<&CheckpointKey>,
    expected: Option<ExpectedHead>,
) -> Result<ChainReport, PgError> {
    let mut chain = ChainVerifier::new(key.cloned());
    let mut report = ChainReport {
        node: node.to_owned(),
        verified: 0,
        first_seq: None,
        head: None,
        checkpoints: 0,
        signed_through: None,
        signatures_checked: key.is_some(),
        broken: None,
        expected: None,
    };
    let mut after: i64 = -1;
    loop {
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT id, seq, at, action, outcome, actor, record, prev_hash, hash FROM audit_events \
                 WHERE node = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                [node.into(), after.into(), PAGE.into()],
            ))
            .await
            .map_err(PgError::query("audit_events verify"))?;
        if rows.is_empty() {
            return Ok(report);
        }
        for row in &rows {
            let checked = check_row(&mut chain, row);
            report.verified = chain.verified();
            report.head = chain.head();
            report.checkpoints = chain.checkpoints();
            report.signed_through = chain.signed_through();
            match checked {
                Ok((seq, event)) => {
                    after = seq;
                    report.first_seq.get_or_insert(event.seq);
                    if let Some(head) = expected
                        && let Some(check) = head.check(&event)
                    {
                        report.expected = Some((head, check));
                    }
                }
                Err(broken) => {
                    if let Some(seq) = broken.seq {
                        report.first_seq.get_or_insert(seq);
                    }
                    if matches!(broken.reason, RowBreak::ColumnEdited(_)) {
                        // The event itself verified; the row does not: count it out.
                        report.verified -= 1;
                    }
                    report.broken = Some(broken);
                    return Ok(report);
                }
            }
        }
    }
}

/// Feed one `audit_events` row to `chain`: its seq and event when it continues the chain
/// and its query columns agree with its record, else where and why it breaks. A row whose
/// only fault is a query column has been counted by `chain`.
fn check_row(chain: &mut ChainVerifier, row: &sea_orm::QueryResult) -> Result<(i64, ChainedEvent), BrokenRow> {
    let id: i64 = row.try_get("", "id").unwrap_or(-1);
    let seq: Option<i64> = row.try_get("", "seq").ok();
    let broken = |reason| BrokenRow { id, seq: seq.and_then(|s| u64::try_from(s).ok()), reason };
    let event = row_event(row).map_err(|why| broken(RowBreak::Unparseable(why)))?.1;
    let reason = match chain.push(&event) {
        Ok(()) => match column_mismatch(row, &event) {
            None => return Ok((seq.unwrap_or_default(), event)),
            Some(column) => RowBreak::ColumnEdited(column),
        },
        Err(LinkError::OutOfSequence { expected }) => RowBreak::Gap { expected },
        Err(LinkError::BrokenLink) => RowBreak::BrokenLink,
        Err(LinkError::Edited) => RowBreak::Edited,
        Err(LinkError::BadCheckpoint(why)) => RowBreak::BadCheckpoint(why),
        Err(e @ LinkError::SeqExhausted) => RowBreak::Unparseable(e.to_string()),
    };
    Err(broken(reason))
}

/// The first query column of `row` that disagrees with its record.
fn column_mismatch(row: &sea_orm::QueryResult, event: &qudag_domain::audit::ChainedEvent) -> Option<&'static str> {
    let r = &event.record;
    let text = |c: &str| row.try_get::<Option<String>>("", c).ok().flatten();
    if at_column(row).ok() != Some(r.at) {
        return Some("at");
    }
    if text("action").as_deref() != Some(r.action.as_str()) {
        return Some("action");
    }
    if text("outcome") != serde_json::to_value(r.outcome).ok().and_then(|v| v.as_str().map(str::to_owned)) {
        return Some("outcome");
    }
    if text("actor") != r.actor.as_deref().map(column_text) {
        return Some("actor");
    }
    None
}

/// What [`prune_database`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Rows removed, all nodes together.
    pub rows: u64,
    /// The nodes whose chains were shortened.
    pub nodes: Vec<String>,
    /// The nodes whose chains stopped verifying before what would have been removed, with
    /// the first broken row: nothing of the node from that row on was removed.
    pub unverified: Vec<(String, BrokenRow)>,
}

/// Remove the rows recorded before `before`, per node only as a prefix of its chain, only
/// as far as a checkpoint **signed with `key`** (the server's checkpoint key) covers, and
/// only rows that **verify** — so what remains verifies, its first link taken on trust and
/// vouched for by the signature.
///
/// Before anything is removed, each node's chain is read from its first row as `audit
/// verify --database` reads it (links, seqs, hashes, query columns, every checkpoint naming
/// an anchor present as signed), and every checkpoint that names `key` must carry a
/// signature that verifies with it. Checkpoints of another key (an earlier key of this
/// node) neither vouch for rows nor break the chain. The read goes on until what may be
/// removed is known: to the node's last checkpoint, or until a verified checkpoint covers
/// every row older than `before`. Where the chain breaks first, nothing from that row on is
/// removed and the place is reported ([`PruneReport::unverified`], logged as an error; the
/// server also counts it as a backend error of `audit_retention`).
///
/// Reading and removing happen in one repeatable-read transaction: the rows removed are the
/// rows verified (a row changed meanwhile fails the transaction and nothing is removed).
///
/// # Errors
/// The table cannot be read or written. A chain that does not verify is not an error.
pub async fn prune_database(
    db: &DatabaseConnection,
    before: Timestamp,
    key: &CheckpointKey,
) -> Result<PruneReport, PgError> {
    let txn = db
        .begin_with_config(Some(IsolationLevel::RepeatableRead), None)
        .await
        .map_err(PgError::query("audit_events retention begin"))?;
    let key_id = fingerprint(&key.verifying_key);
    let mut report = PruneReport::default();
    for node in nodes(&txn).await? {
        let through = match prunable(&txn, &node, before, key, &key_id).await? {
            Prunable::Through(through) => through,
            Prunable::Nothing => continue,
            Prunable::Broken { through, broken } => {
                tracing::error!(
                    node = %node,
                    row_id = broken.id,
                    seq = ?broken.seq,
                    reason = %broken.reason,
                    "Audit retention: the chain does not verify here; no row from here on is removed"
                );
                report.unverified.push((node.clone(), broken));
                match through {
                    Some(through) => through,
                    None => continue,
                }
            }
        };
        let removed = txn
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "DELETE FROM audit_events WHERE node = $1 AND seq <= $2",
                [node.clone().into(), through.into()],
            ))
            .await
            .map_err(PgError::query("audit_events retention"))?
            .rows_affected();
        if removed > 0 {
            tracing::info!(node = %node, rows = removed, through_seq = through, "Old audit rows removed (verified, covered by a signed checkpoint)");
            report.rows += removed;
            report.nodes.push(node);
        }
    }
    txn.commit().await.map_err(PgError::query("audit_events retention commit"))?;
    Ok(report)
}

/// How far a node's chain may be removed.
enum Prunable {
    /// Nothing: no verified checkpoint of the key covers a row older than the cut-off.
    Nothing,
    /// Every row up to this seq: verified and covered.
    Through(i64),
    /// The chain breaks at `broken`; rows before it up to `through`, if any, verified and
    /// are covered.
    Broken { through: Option<i64>, broken: BrokenRow },
}

/// Read `node`'s chain from its first row (see [`prune_database`]) and say how far it may go.
async fn prunable(
    txn: &DatabaseTransaction,
    node: &str,
    before: Timestamp,
    key: &CheckpointKey,
    key_id: &str,
) -> Result<Prunable, PgError> {
    // Rows from the first one not older than the cut-off stay in any case; checkpoints after
    // the last one cannot vouch for anything.
    let bounds = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT (SELECT min(seq) FROM audit_events WHERE node = $1 AND at >= $2) AS young, \
                    (SELECT max(seq) FROM audit_events WHERE node = $1 AND action = $3) AS last_checkpoint",
            [node.into(), micros(before).into(), AuditAction::Checkpoint.as_str().into()],
        ))
        .await
        .map_err(PgError::query("audit_events retention"))?;
    let get = |c: &str| bounds.as_ref().and_then(|row| row.try_get::<Option<i64>>("", c).ok().flatten());
    let (young, Some(last_checkpoint)) = (get("young"), get("last_checkpoint")) else {
        return Ok(Prunable::Nothing);
    };
    // The highest seq that may go by age.
    let old_through = young.map_or(i64::MAX, |young| young - 1);
    let mut chain = ChainVerifier::new(None);
    let mut covered: Option<i64> = None;
    let covered_through = |covered: Option<i64>| covered.map(|c| c.min(old_through)).filter(|t| *t >= 0);
    let mut after: i64 = -1;
    loop {
        let rows = txn
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT id, seq, at, action, outcome, actor, record, prev_hash, hash FROM audit_events \
                 WHERE node = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4",
                [node.into(), after.into(), last_checkpoint.into(), PAGE.into()],
            ))
            .await
            .map_err(PgError::query("audit_events retention"))?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let signed = check_row(&mut chain, row).and_then(|(seq, event)| {
                let vouches = qudag_adapter_file::signed_with(&event, key, key_id).map_err(|why| BrokenRow {
                    id: row.try_get("", "id").unwrap_or(-1),
                    seq: Some(event.seq),
                    reason: RowBreak::BadCheckpoint(why),
                })?;
                Ok((seq, vouches))
            });
            match signed {
                Ok((seq, vouches)) => {
                    after = seq;
                    if let Some(covers) = vouches.and_then(|c| i64::try_from(c).ok()) {
                        covered = covered.max(Some(covers));
                    }
                }
                Err(broken) => {
                    // Only rows before the break count, whatever a checkpoint claims.
                    let before_break = broken.seq.and_then(|s| i64::try_from(s).ok()).map_or(-1, |s| s - 1);
                    let through = covered_through(covered).map(|t| t.min(before_break)).filter(|t| *t >= 0);
                    return Ok(Prunable::Broken { through, broken });
                }
            }
            if covered.is_some_and(|c| c >= old_through) {
                // Every row old enough to go is covered: what comes after cannot change that.
                return Ok(Prunable::Through(old_through));
            }
        }
    }
    Ok(covered_through(covered).map_or(Prunable::Nothing, Prunable::Through))
}
