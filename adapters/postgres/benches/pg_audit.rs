//! Audit throughput of the PostgreSQL sink beside the in-memory sink (the baseline) and the
//! file sink with fsync `always`, measured in the same run on this machine.
//!
//! `QUDAG_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p qudag-adapter-postgres --bench pg_audit`
//!
//! Each sink is measured two ways: one `record` at a time (what a caller waiting for each
//! event gets), and through the bounded queue the server puts in front of a durable sink
//! (`submit` of every event, then `flush`: the queue's writer hands the sink what has queued
//! up as one batch). Prints events per second and how many times slower than memory each is.
//! `PG_AUDIT_BENCH_EVENTS` sets the events per measurement (default 5000). Works in a schema
//! of its own, dropped at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use qudag_adapter_file::{FileAuditConfig, FileAuditSink, FsyncPolicy};
use qudag_adapter_postgres::{PgAuditConfig, PostgresAuditSink};
use qudag_application::ports::AuditSink;
use qudag_application::usecases::{QueueFullPolicy, QueuedAuditSink};
use qudag_domain::Timestamp;
use qudag_domain::audit::{AuditAction, AuditRecord, Outcome};
use qudag_test_support::temp::temp_dir;

fn record(i: u64) -> AuditRecord {
    AuditRecord::new(Timestamp::from_secs(1_700_000_000 + i / 1_000), AuditAction::ToolCalled, Outcome::Success)
        .actor("https://issuer.example#alice")
        .target("quantum_execute_circuit")
        .request_id(format!("req-{i:012}"))
        .client_addr("203.0.113.7:52344")
        .details(serde_json::json!({ "duration_ms": 3, "arguments_digest": "9f86d081884c7d659a2feaa0c55ad015" }))
}

/// `n` events one `record` at a time.
async fn one_by_one(sink: &dyn AuditSink, n: u64) -> Duration {
    let started = Instant::now();
    for i in 0..n {
        sink.record(record(i)).await.expect("record");
    }
    sink.flush().await.expect("flush");
    started.elapsed()
}

/// `n` events through the server's queue (capacity `n`, so submitting never waits).
async fn queued(sink: Arc<dyn AuditSink>, n: u64) -> Duration {
    let queue = QueuedAuditSink::start(sink, n as usize, QueueFullPolicy::Block(Duration::from_secs(5)));
    let started = Instant::now();
    for i in 0..n {
        queue.submit(record(i)).await.expect("submit");
    }
    queue.flush().await.expect("flush");
    started.elapsed()
}

fn main() {
    let n: u64 = std::env::var("PG_AUDIT_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000);
    let tmp = temp_dir("pg-audit-bench");
    let dir = tmp.path();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let memory = qudag_adapter_memory::MemoryAuditSink::new(n as usize);
        let baseline = one_by_one(&memory, n).await;
        let memory_rate = n as f64 / baseline.as_secs_f64();
        println!("{:<34} {:>8} {:>12} {:>12} {:>10}", "sink", "events", "events/s", "µs/event", "× slower");
        let row = |name: &str, d: Duration| {
            let rate = n as f64 / d.as_secs_f64();
            println!(
                "{name:<34} {n:>8} {rate:>12.0} {:>12.2} {:>9.1}x",
                d.as_secs_f64() * 1e6 / n as f64,
                memory_rate / rate
            );
        };
        row("memory (baseline)", baseline);

        let file = |name: &str| {
            let mut config = FileAuditConfig::new(dir.join(name).join("audit.jsonl"));
            config.fsync = FsyncPolicy::Always;
            Arc::new(FileAuditSink::open(config).expect("open the file sink"))
        };
        row("file, fsync always, one by one", one_by_one(file("one").as_ref(), n).await);
        row("file, fsync always, queued", queued(file("queued"), n).await);

        let db = support::TestDb::new().await;
        let pg = |node: &str| {
            let db = db.db.clone();
            let config = PgAuditConfig::new(node, dir.join(format!("{node}-spool.jsonl")));
            async move { Arc::new(PostgresAuditSink::open(db, config).await.expect("open the PostgreSQL sink")) }
        };
        row("postgres, one by one", one_by_one(pg("one").await.as_ref(), n).await);
        row("postgres, queued (batched inserts)", queued(pg("queued").await, n).await);
    });
}
