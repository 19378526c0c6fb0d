//! Acknowledged records survive `kill -9` of the writing process (fsync `Always`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use qudag_adapter_file::{FileAuditConfig, FileAuditSink, FsyncPolicy, verify};
use qudag_application::ports::{AuditFilter, AuditQuery, AuditSink};

mod common;

use qudag_test_support::temp::temp_dir;

/// Set in the child: the directory to write to.
const WRITER_ENV: &str = "QUDAG_FILE_AUDIT_KILL_TEST_DIR";
const TEST_NAME: &str = "acknowledged_records_survive_kill_9";

fn config(dir: &Path) -> FileAuditConfig {
    let mut config = FileAuditConfig::new(dir.join("audit.jsonl"));
    config.max_file_bytes = 4_096;
    config.fsync = FsyncPolicy::Always;
    config
}

/// The child: record until killed, printing each acknowledged seq.
fn writer(dir: PathBuf) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let sink = FileAuditSink::open(config(&dir)).unwrap();
        let started = Instant::now();
        let mut out = std::io::stdout().lock();
        // libtest has printed "test … " without a newline: start our own lines.
        writeln!(out).unwrap();
        for i in 0.. {
            let event = sink.record(common::record(i)).await.unwrap();
            writeln!(out, "ack {}", event.seq).unwrap();
            out.flush().unwrap();
            if started.elapsed() > Duration::from_secs(60) {
                break; // the parent is gone
            }
        }
    });
}

#[test]
fn acknowledged_records_survive_kill_9() {
    if let Some(dir) = std::env::var_os(WRITER_ENV) {
        writer(PathBuf::from(dir));
        return;
    }
    let dir = temp_dir("file-audit-kill9");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(WRITER_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while acked.len() < 300 {
        let line = lines.next().expect("the writer is running").unwrap();
        if let Some(seq) = line.strip_prefix("ack ") {
            acked.push(seq.parse::<u64>().unwrap());
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert_eq!(acked, (0..300).collect::<Vec<_>>());

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let sink = FileAuditSink::open(config(dir.path())).expect("reopen after kill -9");
        let head = sink.head().await;
        assert!(head.next_seq >= 300, "every acknowledged record is there: {head:?}");
        let page = sink.query(&AuditFilter::default(), None, usize::MAX).await.unwrap();
        let seqs: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (0..head.next_seq).collect::<Vec<_>>());
        // The chain continues after the crash.
        assert_eq!(sink.record(common::record(head.next_seq)).await.unwrap().seq, head.next_seq);
    });
    let report = verify(&[dir.path().to_owned()]).unwrap();
    assert!(report.is_intact(), "{report}");
    assert!(report.verified > 300 && report.files.len() > 5, "{report}");
}
