//! Verification and retention of `audit_events`: `qudag-mcp audit verify --database URL`,
//! and the removal of old rows that a signed checkpoint covers.

use std::fmt;

use qudag_domain::Timestamp;
use qudag_domain::audit::{AuditAction, ChainHead, ChainVerifier, CheckpointKey, CheckpointSummary, LinkError};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

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
}

impl ChainReport {
    /// Whether every row verified.
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
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
                "node {node}: audit chain BROKEN at row id {} ({seq}): {}. The {} events before it verified{range}; nothing from this row on can be trusted.",
                b.id, b.reason, self.verified
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
        Ok(())
    }
}

/// The nodes with a chain in the table.
async fn nodes(db: &DatabaseConnection) -> Result<Vec<String>, PgError> {
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
    let mut reports = Vec::new();
    for node in nodes(db).await? {
        reports.push(verify_node(db, &node, key).await?);
    }
    Ok(reports)
}

async fn verify_node(db: &DatabaseConnection, node: &str, key: Option<&CheckpointKey>) -> Result<ChainReport, PgError> {
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
            let id: i64 = row.try_get("", "id").map_err(PgError::query("audit_events verify"))?;
            let seq: i64 = row.try_get("", "seq").map_err(PgError::query("audit_events verify"))?;
            after = seq;
            let broken = |reason| Some(BrokenRow { id, seq: u64::try_from(seq).ok(), reason });
            let event = match row_event(row) {
                Ok((_, event)) => event,
                Err(why) => {
                    report.broken = broken(RowBreak::Unparseable(why));
                    return Ok(report);
                }
            };
            report.first_seq.get_or_insert(event.seq);
            let pushed = chain.push(&event);
            report.verified = chain.verified();
            report.head = chain.head();
            report.checkpoints = chain.checkpoints();
            report.signed_through = chain.signed_through();
            let reason = match pushed {
                Ok(()) => match column_mismatch(row, &event) {
                    None => continue,
                    Some(column) => {
                        // The event itself verified; the row does not: count it out.
                        report.verified -= 1;
                        RowBreak::ColumnEdited(column)
                    }
                },
                Err(LinkError::OutOfSequence { expected }) => RowBreak::Gap { expected },
                Err(LinkError::BrokenLink) => RowBreak::BrokenLink,
                Err(LinkError::Edited) => RowBreak::Edited,
                Err(LinkError::BadCheckpoint(why)) => RowBreak::BadCheckpoint(why),
                Err(e @ LinkError::SeqExhausted) => RowBreak::Unparseable(e.to_string()),
            };
            report.broken = broken(reason);
            return Ok(report);
        }
    }
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
}

/// Remove the rows recorded before `before`, per node only as a prefix of its chain and only
/// as far as the node's newest signed checkpoint covers — so what remains verifies, its
/// first link taken on trust and vouched for by the signature.
///
/// # Errors
/// The table cannot be read or written.
pub async fn prune_database(db: &DatabaseConnection, before: Timestamp) -> Result<PruneReport, PgError> {
    let mut report = PruneReport::default();
    for node in nodes(db).await? {
        let Some(covered) = newest_signed(db, &node).await? else { continue };
        // The first row of the node not older than the cut-off ends the prefix.
        let young = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT min(seq) AS seq FROM audit_events WHERE node = $1 AND at >= $2",
                [node.clone().into(), micros(before).into()],
            ))
            .await
            .map_err(PgError::query("audit_events retention"))?
            .and_then(|row| row.try_get::<Option<i64>>("", "seq").ok().flatten());
        let through = match young {
            Some(young) => covered.min(young - 1),
            None => covered,
        };
        if through < 0 {
            continue;
        }
        let removed = db
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "DELETE FROM audit_events WHERE node = $1 AND seq <= $2",
                [node.clone().into(), through.into()],
            ))
            .await
            .map_err(PgError::query("audit_events retention"))?
            .rows_affected();
        if removed > 0 {
            report.rows += removed;
            report.nodes.push(node);
        }
    }
    Ok(report)
}

/// The seq covered by the node's newest checkpoint signature.
async fn newest_signed(db: &DatabaseConnection, node: &str) -> Result<Option<i64>, PgError> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT record FROM audit_events WHERE node = $1 AND action = $2 ORDER BY seq DESC LIMIT 2",
            [node.into(), AuditAction::Checkpoint.as_str().into()],
        ))
        .await
        .map_err(PgError::query("audit_events checkpoints"))?;
    for row in rows {
        let record: String = row.try_get("", "record").map_err(PgError::query("audit_events checkpoints"))?;
        let value: serde_json::Value = serde_json::from_str(&record).unwrap_or_default();
        if let Some(covers) = value["details"]["covers_seq"].as_i64() {
            return Ok(Some(covers));
        }
    }
    Ok(None)
}
