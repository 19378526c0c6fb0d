//! The PostgreSQL audit sink on a real PostgreSQL, a fresh schema per test: the shared audit
//! contract; tampering with rows caught by `verify_database`; an outage (cut through a TCP
//! proxy the test controls) during which every event is spooled and after which every event
//! is in the table, in order, with a valid chain — also across a restart; retention.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use qudag_adapter_postgres::{
    PgAuditConfig, PgOptions, PostgresAuditSink, RowBreak, connect, prune_database, verify_database,
};
use qudag_application::ports::{
    AuditFilter, AuditPage, AuditQuery, AuditSink, AuditSinkError, BatchOutcome, HealthIndicator, HealthStatus,
};
use qudag_application::testkit::proxy::TcpProxy;
use qudag_application::usecases::checkpoint;
use qudag_domain::Timestamp;
use qudag_domain::audit::{AuditAction, AuditRecord, CheckpointKey, Outcome};
use qudag_domain::pqc::{DsaAlgorithm, DsaKeyPair};
use qudag_test_support::temp::{TempDir, temp_dir};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use support::TestDb;

/// A directory of its own for a test's spool files, removed when the test ends.
fn spool_dir() -> TempDir {
    temp_dir("pg-audit")
}

fn config(node: &str, dir: &Path) -> PgAuditConfig {
    let mut config = PgAuditConfig::new(node, dir.join(format!("{node}-spool.jsonl")));
    config.write_timeout = Duration::from_secs(2);
    config.replay_every = Duration::from_millis(100);
    config
}

fn record(i: u64) -> AuditRecord {
    AuditRecord::new(Timestamp::from_secs(10_000 + i), AuditAction::ToolCalled, Outcome::Success)
        .actor(format!("user-{}", i % 3))
        .target("quantum_execute_circuit")
        .details(serde_json::json!({ "i": i }))
}

/// The sink with the test schema it lives in, dropped together.
struct Scoped {
    sink: PostgresAuditSink,
    _db: TestDb,
    _dir: TempDir,
}

#[async_trait]
impl AuditSink for Scoped {
    async fn record(&self, record: AuditRecord) -> Result<qudag_domain::audit::ChainedEvent, AuditSinkError> {
        self.sink.record(record).await
    }

    async fn record_batch(&self, records: Vec<AuditRecord>) -> BatchOutcome {
        self.sink.record_batch(records).await
    }

    async fn flush(&self) -> Result<(), AuditSinkError> {
        self.sink.flush().await
    }
}

#[async_trait]
impl AuditQuery for Scoped {
    async fn query(
        &self,
        filter: &AuditFilter,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<AuditPage, AuditSinkError> {
        self.sink.query(filter, cursor, limit).await
    }
}

async fn make() -> Arc<Scoped> {
    let db = TestDb::new().await;
    let dir = spool_dir();
    let sink = PostgresAuditSink::open(db.db.clone(), config("contract", dir.path())).await.unwrap();
    Arc::new(Scoped { sink, _db: db, _dir: dir })
}

qudag_application::audit_contract!(make);

fn signer() -> DsaKeyPair {
    DsaKeyPair::from_seed(DsaAlgorithm::MlDsa65, &[7; 32])
}

fn public(key: &DsaKeyPair) -> CheckpointKey {
    CheckpointKey { algorithm: DsaAlgorithm::MlDsa65, verifying_key: key.verifying_key().to_vec() }
}

/// Node `n1`: 8 events, a signed checkpoint (seq 8 and 9), 4 events; node `n2`: 3 events.
async fn two_chains(db: &DatabaseConnection, dir: &Path) {
    let sink = PostgresAuditSink::open(db.clone(), config("n1", dir)).await.unwrap();
    for i in 0..8 {
        sink.record(record(i)).await.unwrap();
    }
    checkpoint(&sink, &signer(), Timestamp::from_secs(10_008)).await.unwrap();
    let outcome = sink.record_batch((10..14).map(record).collect()).await;
    assert!(outcome.error.is_none());
    let other = PostgresAuditSink::open(db.clone(), config("n2", dir)).await.unwrap();
    for i in 0..3 {
        other.record(record(i)).await.unwrap();
    }
}

async fn exec(db: &DatabaseConnection, sql: &str) {
    db.execute_unprepared(sql).await.unwrap();
}

async fn broken_n1(db: &DatabaseConnection) -> (u64, Option<u64>, RowBreak) {
    let reports = verify_database(db, None).await.unwrap();
    let n2 = reports.iter().find(|r| r.node == "n2").unwrap();
    assert!(n2.is_intact(), "the other node's chain is untouched: {n2}");
    let n1 = reports.into_iter().find(|r| r.node == "n1").unwrap();
    let broken = n1.broken.clone().unwrap_or_else(|| panic!("tampering not detected: {n1}"));
    (n1.verified, broken.seq, broken.reason)
}

#[tokio::test]
async fn intact_chains_verify_per_node_with_their_signatures() {
    let (db, dir) = (TestDb::new().await, spool_dir());
    two_chains(&db.db, dir.path()).await;
    let reports = verify_database(&db.db, Some(&public(&signer()))).await.unwrap();
    assert_eq!(reports.iter().map(|r| (r.node.as_str(), r.verified)).collect::<Vec<_>>(), [("n1", 14), ("n2", 3)]);
    let n1 = &reports[0];
    assert!(n1.is_intact() && n1.signatures_checked, "{n1}");
    assert_eq!((n1.checkpoints, n1.signed_through), (1, Some(8)));
    assert!(n1.to_string().contains("1 signed checkpoint(s) verified"), "{n1}");

    let other = DsaKeyPair::from_seed(DsaAlgorithm::MlDsa65, &[8; 32]);
    let reports = verify_database(&db.db, Some(&public(&other))).await.unwrap();
    assert!(matches!(reports[0].broken.as_ref().unwrap().reason, RowBreak::BadCheckpoint(_)), "{}", reports[0]);
}

#[tokio::test]
async fn an_edited_record_is_detected() {
    let (db, dir) = (TestDb::new().await, spool_dir());
    two_chains(&db.db, dir.path()).await;
    exec(
        &db.db,
        "UPDATE audit_events SET record = replace(record, '\"i\":5', '\"i\":6') WHERE node = 'n1' AND seq = 5",
    )
    .await;
    assert_eq!(broken_n1(&db.db).await, (5, Some(5), RowBreak::Edited));
}

#[tokio::test]
async fn an_edited_query_column_is_detected() {
    let (db, dir) = (TestDb::new().await, spool_dir());
    two_chains(&db.db, dir.path()).await;
    exec(&db.db, "UPDATE audit_events SET actor = 'someone-else' WHERE node = 'n1' AND seq = 3").await;
    assert_eq!(broken_n1(&db.db).await, (3, Some(3), RowBreak::ColumnEdited("actor")));
}

#[tokio::test]
async fn a_deleted_row_is_detected() {
    let (db, dir) = (TestDb::new().await, spool_dir());
    two_chains(&db.db, dir.path()).await;
    exec(&db.db, "DELETE FROM audit_events WHERE node = 'n1' AND seq = 4").await;
    assert_eq!(broken_n1(&db.db).await, (4, Some(5), RowBreak::Gap { expected: 4 }));
}

#[tokio::test]
async fn reordered_rows_are_detected() {
    let (db, dir) = (TestDb::new().await, spool_dir());
    two_chains(&db.db, dir.path()).await;
    // Swap the positions of seq 2 and 3.
    exec(&db.db, "UPDATE audit_events SET seq = 1000000 WHERE node = 'n1' AND seq = 2").await;
    exec(&db.db, "UPDATE audit_events SET seq = 2 WHERE node = 'n1' AND seq = 3").await;
    exec(&db.db, "UPDATE audit_events SET seq = 3 WHERE node = 'n1' AND seq = 1000000").await;
    let (verified, seq, reason) = broken_n1(&db.db).await;
    assert_eq!((verified, seq), (2, Some(2)));
    assert!(matches!(reason, RowBreak::BrokenLink | RowBreak::Edited), "{reason}");
}

#[tokio::test]
async fn a_rewritten_and_rehashed_history_fails_at_the_signed_checkpoint() {
    let (db, dir) = (TestDb::new().await, spool_dir());
    two_chains(&db.db, dir.path()).await;
    // An attacker with write access but without the signing key rewrites seq 2 and
    // recomputes every later hash of n1.
    let rows = verify_rows(&db.db, "n1").await;
    let mut prev = qudag_domain::audit::ChainHash::GENESIS;
    for (seq, mut record) in rows {
        if seq == 2 {
            record.details["i"] = serde_json::json!(999);
        }
        let hash = qudag_domain::audit::chain_hash(&prev, seq, &record);
        let sql = format!(
            "UPDATE audit_events SET record = '{}', prev_hash = '{prev}', hash = '{hash}' WHERE node = 'n1' AND seq = {seq}",
            qudag_domain::audit::canonical_json(&record).replace('\'', "''")
        );
        exec(&db.db, &sql).await;
        prev = hash;
    }
    let (verified, seq, reason) = broken_n1(&db.db).await;
    assert_eq!((verified, seq), (9, Some(9)), "caught at the checkpoint's signature event");
    assert!(matches!(reason, RowBreak::BadCheckpoint(_)), "{reason}");
}

async fn verify_rows(db: &DatabaseConnection, node: &str) -> Vec<(u64, AuditRecord)> {
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT seq, record FROM audit_events WHERE node = '{node}' ORDER BY seq"),
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            let seq: i64 = r.try_get("", "seq").unwrap();
            let record: String = r.try_get("", "record").unwrap();
            (seq as u64, serde_json::from_str(&record).unwrap())
        })
        .collect()
}

/// A pool reaching the test schema through `proxy`, opening connections lazily (as a
/// server starting during an outage does).
async fn through(proxy: &TcpProxy, db: &TestDb) -> DatabaseConnection {
    let url = db.url.replace("127.0.0.1:5432", &proxy.addr()).replace("localhost:5432", &proxy.addr());
    assert!(url.contains(&proxy.addr()), "the test database URL must name its port explicitly: {}", db.url);
    let options =
        PgOptions::default().schema(&db.schema).max_connections(4).connect_timeout(Duration::from_secs(1)).lazy(true);
    connect(&url, options).await.unwrap()
}

async fn table_count(db: &DatabaseConnection) -> i64 {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*) AS n FROM audit_events",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

async fn wait_for_replay(sink: &PostgresAuditSink) {
    for _ in 0..100 {
        if sink.spooled() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the spool was not replayed within 10 s ({} events left)", sink.spooled());
}

fn upstream(db: &TestDb) -> String {
    let rest = db.url.split_once('@').map_or(db.url.as_str(), |(_, r)| r);
    rest.split('/').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_loses_nothing_and_keeps_the_order() {
    let (db, dir) = (TestDb::new().await, spool_dir());
    let proxy = TcpProxy::start(&upstream(&db)).await;
    let pool = through(&proxy, &db).await;
    let sink = PostgresAuditSink::open(pool, config("n1", dir.path())).await.unwrap();
    for i in 0..20 {
        sink.record(record(i)).await.unwrap();
    }
    assert_eq!(sink.health().await.status, HealthStatus::Up);

    proxy.cut();
    let mut acked = 20;
    for i in 20..50 {
        sink.record(record(i)).await.expect("acknowledged while PostgreSQL is unreachable");
        acked += 1;
    }
    let outcome = sink.record_batch((50..80).map(record).collect()).await;
    assert!(outcome.error.is_none());
    acked += outcome.recorded.len();
    assert_eq!(sink.spooled(), 60, "everything since the cut waits in the spool");
    assert_eq!(sink.health().await.status, HealthStatus::Degraded);
    assert_eq!(table_count(&db.db).await, 20);

    proxy.restore();
    wait_for_replay(&sink).await;
    sink.record(record(80)).await.unwrap();
    acked += 1;
    assert_eq!(table_count(&db.db).await, acked as i64, "zero lost");
    let reports = verify_database(&db.db, None).await.unwrap();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].is_intact() && reports[0].verified == 81, "{}", reports[0]);
    let rows = verify_rows(&db.db, "n1").await;
    assert!(rows.iter().enumerate().all(|(i, (seq, r))| *seq == i as u64 && r.details["i"] == i as u64));
    assert_eq!(sink.health().await.status, HealthStatus::Up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_events_are_replayed_after_a_restart() {
    let (db, dir) = (TestDb::new().await, spool_dir());
    let proxy = TcpProxy::start(&upstream(&db)).await;
    let sink = PostgresAuditSink::open(through(&proxy, &db).await, config("n1", dir.path())).await.unwrap();
    for i in 0..5 {
        sink.record(record(i)).await.unwrap();
    }
    proxy.cut();
    for i in 5..12 {
        sink.record(record(i)).await.unwrap();
    }
    drop(sink);

    // Restarted while PostgreSQL is still unreachable: the chain continues from the spool.
    let sink = PostgresAuditSink::open(through(&proxy, &db).await, config("n1", dir.path())).await.unwrap();
    assert_eq!((sink.head().await.next_seq, sink.spooled()), (12, 7));
    for i in 12..15 {
        sink.record(record(i)).await.unwrap();
    }
    drop(sink);
    assert_eq!(table_count(&db.db).await, 5);

    // Restarted once it is back: the spool is replayed, then new events follow.
    proxy.restore();
    let sink = PostgresAuditSink::open(through(&proxy, &db).await, config("n1", dir.path())).await.unwrap();
    wait_for_replay(&sink).await;
    sink.record(record(15)).await.unwrap();
    let reports = verify_database(&db.db, None).await.unwrap();
    assert!(reports[0].is_intact() && reports[0].verified == 16, "{}", reports[0]);
    let rows = verify_rows(&db.db, "n1").await;
    assert_eq!(
        rows.iter().map(|(_, r)| r.details["i"].as_u64().unwrap()).collect::<Vec<_>>(),
        (0..16).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn an_unknown_head_refuses_to_start_and_a_second_writer_is_refused() {
    let (db, dir) = (TestDb::new().await, spool_dir());
    let proxy = TcpProxy::start(&upstream(&db)).await;
    proxy.cut();
    let err = PostgresAuditSink::open(through(&proxy, &db).await, config("n1", dir.path())).await.unwrap_err();
    assert!(err.to_string().contains("PostgreSQL"), "{err}");
    proxy.restore();

    let first = PostgresAuditSink::open(db.db.clone(), config("n1", dir.path())).await.unwrap();
    let other_dir = spool_dir();
    let second = PostgresAuditSink::open(db.db.clone(), config("n1", other_dir.path())).await.unwrap();
    first.record(record(0)).await.unwrap();
    let refused = second.record(record(1)).await.unwrap_err();
    assert!(format!("{:?}", refused).contains("chain conflict"), "{refused:?}");
    assert_eq!(second.spooled(), 0, "a conflict is not spooled");
    assert_eq!(second.health().await.status, HealthStatus::Down);
    assert_eq!(table_count(&db.db).await, 1);
}

#[tokio::test]
async fn retention_removes_only_what_a_signed_checkpoint_covers() {
    let (db, dir) = (TestDb::new().await, spool_dir());
    two_chains(&db.db, dir.path()).await;
    // n2 has no checkpoint: nothing of it goes. n1's checkpoint covers seq 8.
    let report = prune_database(&db.db, Timestamp::from_secs(10_005), &public(&signer())).await.unwrap();
    assert_eq!((report.rows, report.nodes.clone()), (5, vec!["n1".to_owned()]), "seq 0..=4 are older than the cut-off");
    assert!(report.unverified.is_empty(), "{report:?}");
    let report = prune_database(&db.db, Timestamp::from_secs(99_999), &public(&signer())).await.unwrap();
    assert_eq!(report.rows, 4, "then up to the anchor (seq 8), no further");
    let reports = verify_database(&db.db, Some(&public(&signer()))).await.unwrap();
    let n1 = &reports[0];
    assert!(n1.is_intact(), "{n1}");
    assert_eq!((n1.first_seq, n1.verified, n1.checkpoints), (Some(9), 5, 1));
    assert_eq!(reports[1].verified, 3);
}

/// Rows per node, as (node, count), in node order.
async fn rows_per_node(db: &DatabaseConnection) -> Vec<(String, i64)> {
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT node, count(*) AS n FROM audit_events GROUP BY node ORDER BY node",
        ))
        .await
        .unwrap();
    rows.iter().map(|r| (r.try_get("", "node").unwrap(), r.try_get("", "n").unwrap())).collect()
}

#[tokio::test]
async fn retention_keeps_and_reports_a_chain_that_does_not_verify() {
    let (db, dir) = (TestDb::new().await, spool_dir());
    two_chains(&db.db, dir.path()).await;
    // A row before the checkpoint edited: the checkpoint still covers it, but the chain
    // does not hold from there on.
    exec(
        &db.db,
        "UPDATE audit_events SET record = replace(record, '\"i\":2', '\"i\":7') WHERE node = 'n1' AND seq = 2",
    )
    .await;
    let report = prune_database(&db.db, Timestamp::from_secs(99_999), &public(&signer())).await.unwrap();
    assert_eq!(report.rows, 0, "nothing from the break on, nor after it, is removed: {report:?}");
    let [(node, broken)] = report.unverified.as_slice() else { panic!("the break is not reported: {report:?}") };
    assert_eq!((node.as_str(), broken.seq, &broken.reason), ("n1", Some(2), &RowBreak::Edited));
    assert_eq!(rows_per_node(&db.db).await, [("n1".to_owned(), 14), ("n2".to_owned(), 3)]);
    assert_eq!(broken_n1(&db.db).await, (2, Some(2), RowBreak::Edited), "the evidence is still there");
}

#[tokio::test]
async fn retention_keeps_a_rewritten_history_whose_checkpoint_no_longer_verifies() {
    let (db, dir) = (TestDb::new().await, spool_dir());
    two_chains(&db.db, dir.path()).await;
    // Without the signing key, seq 1 rewritten and every later hash of n1 recomputed: the
    // links hold, the signature over the anchor does not.
    let mut prev = qudag_domain::audit::ChainHash::GENESIS;
    for (seq, mut record) in verify_rows(&db.db, "n1").await {
        if seq == 1 {
            record.details["i"] = serde_json::json!(999);
        }
        let hash = qudag_domain::audit::chain_hash(&prev, seq, &record);
        let sql = format!(
            "UPDATE audit_events SET record = '{}', prev_hash = '{prev}', hash = '{hash}' WHERE node = 'n1' AND seq = {seq}",
            qudag_domain::audit::canonical_json(&record).replace('\'', "''")
        );
        exec(&db.db, &sql).await;
        prev = hash;
    }
    let report = prune_database(&db.db, Timestamp::from_secs(99_999), &public(&signer())).await.unwrap();
    assert_eq!(report.rows, 0, "{report:?}");
    let [(node, broken)] = report.unverified.as_slice() else { panic!("the break is not reported: {report:?}") };
    assert_eq!((node.as_str(), broken.seq), ("n1", Some(9)), "caught at the checkpoint's signature");
    assert!(matches!(broken.reason, RowBreak::BadCheckpoint(_)), "{}", broken.reason);
    assert_eq!(rows_per_node(&db.db).await, [("n1".to_owned(), 14), ("n2".to_owned(), 3)]);
}

#[tokio::test]
async fn retention_trusts_only_checkpoints_signed_with_the_server_key() {
    let (db, dir) = (TestDb::new().await, spool_dir());
    two_chains(&db.db, dir.path()).await;
    // n1's checkpoint was signed with another key (an earlier key of the node, say): it
    // vouches for nothing, and does not break the chain either.
    let other = DsaKeyPair::from_seed(DsaAlgorithm::MlDsa65, &[8; 32]);
    let report = prune_database(&db.db, Timestamp::from_secs(99_999), &public(&other)).await.unwrap();
    assert_eq!(report, qudag_adapter_postgres::PruneReport::default());
    assert_eq!(rows_per_node(&db.db).await, [("n1".to_owned(), 14), ("n2".to_owned(), 3)]);
    // With the key that did sign it, the same rows go.
    let report = prune_database(&db.db, Timestamp::from_secs(99_999), &public(&signer())).await.unwrap();
    assert_eq!((report.rows, report.unverified.len()), (9, 0), "{report:?}");
}
