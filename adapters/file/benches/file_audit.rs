//! Audit throughput: the file sink with fsync `Always` and with `Interval(1s)`, against the
//! in-memory sink as the baseline, measured in the same run on this machine.
//!
//! `cargo bench -p qudag-adapter-file --bench file_audit`
//!
//! Prints events per second for each sink and how many times slower than memory it is.
//! `FILE_AUDIT_BENCH_EVENTS` sets the events per measurement (default 20000; the `Always`
//! run uses a tenth of it, at least 200, since each event waits for the disk).
//! `FILE_AUDIT_BENCH_DIR` sets where the files go (default: the system temp dir) — point it
//! at the disk the server will log to; tmpfs makes `fsync` free.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use qudag_adapter_file::{FileAuditConfig, FileAuditSink, FsyncPolicy};
use qudag_adapter_memory::MemoryAuditSink;
use qudag_application::ports::AuditSink;
use qudag_domain::Timestamp;
use qudag_domain::audit::{AuditAction, AuditRecord, Outcome};

fn record(i: u64) -> AuditRecord {
    AuditRecord::new(Timestamp::from_secs(1_700_000_000 + i / 1_000), AuditAction::ToolCalled, Outcome::Success)
        .actor("https://issuer.example#alice")
        .target("dag.query")
        .request_id(format!("req-{i:012}"))
        .client_addr("203.0.113.7:52344")
        .details(serde_json::json!({ "duration_ms": 3, "args_digest": "9f86d081884c7d659a2feaa0c55ad015" }))
}

async fn run(sink: &dyn AuditSink, n: u64) -> Duration {
    let started = Instant::now();
    for i in 0..n {
        sink.record(record(i)).await.expect("record");
    }
    sink.flush().await.expect("flush");
    started.elapsed()
}

fn main() {
    let n: u64 = std::env::var("FILE_AUDIT_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let base = std::env::var_os("FILE_AUDIT_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let dir = base.join(format!("qudag-file-audit-bench-{}-{nanos}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let memory = MemoryAuditSink::new(n as usize);
        let baseline = run(&memory, n).await;
        let per_sec = |events: u64, d: Duration| events as f64 / d.as_secs_f64();
        let memory_rate = per_sec(n, baseline);
        println!("files in {}", dir.display());
        println!("{:<22} {:>8} {:>14} {:>12} {:>14}", "sink", "events", "events/s", "µs/event", "× slower");
        let row = |name: &str, events: u64, d: Duration| {
            let rate = per_sec(events, d);
            println!(
                "{name:<22} {events:>8} {rate:>14.0} {:>12.2} {:>13.1}x",
                d.as_secs_f64() * 1e6 / events as f64,
                memory_rate / rate
            );
        };
        row("memory (baseline)", n, baseline);
        for (name, fsync, events) in [
            ("file, fsync 1s", FsyncPolicy::Interval(Duration::from_secs(1)), n),
            ("file, fsync always", FsyncPolicy::Always, (n / 10).max(200)),
        ] {
            let path = dir.join(name.replace([',', ' '], "")).join("audit.jsonl");
            let mut config = FileAuditConfig::new(path);
            config.fsync = fsync;
            let sink = FileAuditSink::open(config).expect("open");
            let d = run(&sink, events).await;
            row(name, events, d);
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}
