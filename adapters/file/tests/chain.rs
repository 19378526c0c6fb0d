//! The chain on disk: rotation, reopening, repair, tamper detection by `verify`, health.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use qudag_adapter_file::{BreakReason, FileAuditConfig, FileAuditSink, FsyncPolicy, verify};
use qudag_application::ports::{AuditFilter, AuditQuery, AuditSink, HealthIndicator, HealthStatus};
use qudag_domain::Timestamp;
use qudag_domain::audit::{AuditAction, AuditRecord, ChainHead, ChainedEvent, Outcome, verify_chain};

mod common;
use common::{files, record};
use qudag_test_support::temp::{TempDir, temp_dir};

const SMALL: u64 = 2_000;

fn config(dir: &Path, max_file_bytes: u64) -> FileAuditConfig {
    let mut config = FileAuditConfig::new(dir.join("audit.jsonl"));
    config.max_file_bytes = max_file_bytes;
    config.fsync = FsyncPolicy::Always;
    config
}

async fn write(dir: &Path, max_file_bytes: u64, range: std::ops::Range<u64>) -> ChainHead {
    let sink = FileAuditSink::open(config(dir, max_file_bytes)).unwrap();
    for i in range {
        let event = sink.record(record(i)).await.unwrap();
        assert_eq!(event.seq, i);
    }
    sink.flush().await.unwrap();
    sink.head().await
}

async fn all(sink: &FileAuditSink) -> Vec<ChainedEvent> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = sink.query(&AuditFilter::default(), cursor, 7).await.unwrap();
        out.extend(page.events);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
}

fn seq_of(line: &str) -> u64 {
    serde_json::from_str::<ChainedEvent>(line).unwrap().seq
}

/// A chain of `N` events over several files, and a copy of its files to tamper with.
struct Tamper {
    _original: TempDir,
    copy: TempDir,
    files: Vec<PathBuf>,
}

const N: u64 = 60;

async fn tamper_setup(label: &str) -> Tamper {
    let original = temp_dir(&format!("file-audit-{label}"));
    let head = write(original.path(), SMALL, 0..N).await;
    let clean = verify(&[original.path().to_owned()]).unwrap();
    assert!(clean.is_intact(), "{clean}");
    assert_eq!((clean.verified, clean.head), (N, Some(head)));
    let copy = temp_dir(&format!("file-audit-{label}-copy"));
    for f in files(original.path()) {
        std::fs::copy(&f, copy.path().join(f.file_name().unwrap())).unwrap();
    }
    let files = files(copy.path());
    assert!(files.len() >= 8, "several files: {files:?}");
    for f in &files[..files.len() - 1] {
        assert!(lines(f).len() >= 4, "{} has at least 4 lines", f.display());
    }
    Tamper { _original: original, copy, files }
}

fn assert_break(t: &Tamper, file: usize, line: u64, seq: Option<u64>, reason: BreakReason) {
    let report = verify(&[t.copy.path().to_owned()]).unwrap();
    let broken = report.broken.clone().unwrap_or_else(|| panic!("not detected: {report}"));
    assert_eq!(broken.file, t.files[file], "{report}");
    assert_eq!((broken.line, broken.seq, broken.reason), (line, seq, reason), "{report}");
    let text = report.to_string();
    assert!(text.contains(&t.files[file].display().to_string()) && text.contains(&format!("line {line}")), "{text}");
    // Everything before the tampered file still verifies on its own.
    let before: Vec<PathBuf> = t.files[..file].iter().filter(|f| f.exists()).cloned().collect();
    let before = verify(&before).unwrap();
    assert!(before.is_intact(), "{before}");
    assert_eq!(before.first_seq, Some(0));
}

#[tokio::test]
async fn an_edited_record_is_found() {
    let t = tamper_setup("edit").await;
    let mut l = lines(&t.files[3]);
    let seq = seq_of(&l[1]);
    assert!(l[1].contains(r#""outcome":"success""#));
    l[1] = l[1].replace(r#""outcome":"success""#, r#""outcome":"failure""#);
    write_lines(&t.files[3], &l);
    assert_break(&t, 3, 2, Some(seq), BreakReason::Edited);
}

#[tokio::test]
async fn a_deleted_line_is_found() {
    let t = tamper_setup("delete-line").await;
    let mut l = lines(&t.files[4]);
    let seq = seq_of(&l[2]);
    l.remove(2);
    write_lines(&t.files[4], &l);
    assert_break(&t, 4, 3, Some(seq + 1), BreakReason::Gap { expected: seq });
}

#[tokio::test]
async fn swapped_lines_are_found() {
    let t = tamper_setup("swap").await;
    let mut l = lines(&t.files[5]);
    let (a, b) = (seq_of(&l[1]), seq_of(&l[3]));
    l.swap(1, 3);
    write_lines(&t.files[5], &l);
    assert_break(&t, 5, 2, Some(b), BreakReason::Reordered { expected: a });
}

#[tokio::test]
async fn a_truncated_last_file_is_found() {
    let t = tamper_setup("truncate").await;
    let last = t.files.len() - 1;
    let count = lines(&t.files[last]).len() as u64;
    let len = std::fs::metadata(&t.files[last]).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&t.files[last]).unwrap().set_len(len - 10).unwrap();
    assert_break(&t, last, count, None, BreakReason::Truncated);
}

#[tokio::test]
async fn a_deleted_middle_file_is_found() {
    let t = tamper_setup("delete-file").await;
    let missing = seq_of(&lines(&t.files[4])[0]);
    let next = seq_of(&lines(&t.files[5])[0]);
    std::fs::remove_file(&t.files[4]).unwrap();
    assert_break(&t, 5, 1, Some(next), BreakReason::Gap { expected: missing });
}

#[tokio::test]
async fn files_are_verified_in_chain_order_whatever_order_they_are_given_in() {
    let t = tamper_setup("order").await;
    let mut shuffled = t.files.clone();
    shuffled.reverse();
    let report = verify(&shuffled).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.files, t.files);
    assert_eq!(report.verified, N);
    assert!(report.to_string().starts_with(&format!("audit chain intact: {N} events verified (seq 0 to {})", N - 1)));
    // A tail of the chain verifies, and says its first link is taken on trust.
    let tail = verify(&t.files[3..]).unwrap();
    assert!(tail.is_intact() && tail.first_seq > Some(0), "{tail}");
    assert!(tail.to_string().contains("taken on trust"), "{tail}");
    // An unreadable path is an error naming it, not a report.
    let err = verify(&[t.copy.path().join("nope.jsonl")]).unwrap_err();
    assert!(err.to_string().contains("nope.jsonl"), "{err}");
}

#[tokio::test]
async fn a_replaced_record_breaks_the_next_link() {
    let t = tamper_setup("relink").await;
    let mut l = lines(&t.files[2]);
    // Re-hash an edited record so its own hash checks out: the next event no longer links.
    let mut event: ChainedEvent = serde_json::from_str(&l[1]).unwrap();
    event.record.actor = Some("iss#mallory".into());
    event.hash = qudag_domain::audit::chain_hash(&event.prev_hash, event.seq, &event.record);
    l[1] = serde_json::to_string(&event).unwrap();
    write_lines(&t.files[2], &l);
    assert_break(&t, 2, 3, Some(event.seq + 1), BreakReason::BrokenLink);
}

#[tokio::test]
async fn the_chain_continues_across_reopen_and_rotation() {
    let dir = temp_dir("file-audit-reopen");
    write(dir.path(), SMALL, 0..25).await;
    write(dir.path(), SMALL, 25..50).await;
    let sink = FileAuditSink::open(config(dir.path(), SMALL)).unwrap();
    assert_eq!(sink.head().await.next_seq, 50);
    let events = all(&sink).await;
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), (0..50).collect::<Vec<_>>());
    assert_eq!(verify_chain(ChainHead::GENESIS, &events).unwrap(), sink.head().await);
    let report = verify(&[dir.path().to_owned()]).unwrap();
    assert!(report.is_intact() && report.verified == 50, "{report}");
    assert!(files(dir.path()).len() > 3);
    // Rotated files are named by their first seq, and the active file keeps its name.
    for f in files(dir.path()) {
        let first = seq_of(&lines(&f)[0]);
        let name = f.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(name == "audit.jsonl" || name == format!("audit-{first:020}.jsonl"), "{name}");
    }
}

#[tokio::test]
async fn a_torn_last_line_is_repaired_at_open() {
    for torn in [&b"{\"seq\":10,\"at\":"[..], b"{\"seq\":10,\"at\":12}", b"not json\n"] {
        let dir = temp_dir("file-audit-torn");
        write(dir.path(), 1 << 20, 0..10).await;
        let active = dir.path().join("audit.jsonl");
        let clean_len = std::fs::metadata(&active).unwrap().len();
        let mut bytes = std::fs::read(&active).unwrap();
        bytes.extend_from_slice(torn);
        std::fs::write(&active, bytes).unwrap();
        let sink = FileAuditSink::open(config(dir.path(), 1 << 20)).unwrap();
        assert_eq!(std::fs::metadata(&active).unwrap().len(), clean_len);
        assert_eq!(sink.record(record(10)).await.unwrap().seq, 10);
        drop(sink);
        let report = verify(&[dir.path().to_owned()]).unwrap();
        assert!(report.is_intact() && report.verified == 11, "{report}");
    }
}

#[tokio::test]
async fn a_corrupt_middle_line_makes_open_fail_naming_file_and_line() {
    let dir = temp_dir("file-audit-corrupt");
    write(dir.path(), 1 << 20, 0..10).await;
    let active = dir.path().join("audit.jsonl");
    let mut l = lines(&active);
    l[4] = "garbage".into();
    write_lines(&active, &l);
    let err = FileAuditSink::open(config(dir.path(), 1 << 20)).unwrap_err().to_string();
    assert!(err.contains(&active.display().to_string()) && err.contains("line 5"), "{err}");
    // An edited (still parseable) middle line is refused too.
    let mut l = lines(&active);
    l[4] = lines(&active)[4].clone();
    let seq3: ChainedEvent = serde_json::from_str(&l[3]).unwrap();
    l[4] = serde_json::to_string(&seq3).unwrap();
    write_lines(&active, &l);
    let err = FileAuditSink::open(config(dir.path(), 1 << 20)).unwrap_err().to_string();
    assert!(err.contains("line 5"), "{err}");
}

#[tokio::test]
async fn a_new_utc_day_starts_a_new_file() {
    for (rotate_daily, expected_files) in [(true, 3), (false, 1)] {
        let dir = temp_dir("file-audit-daily");
        let mut config = config(dir.path(), 1 << 20);
        config.rotate_daily = rotate_daily;
        let sink = FileAuditSink::open(config).unwrap();
        for (i, day) in [0u64, 0, 1, 1, 1, 2].into_iter().enumerate() {
            let at = Timestamp::from_secs(day * 86_400 + 3_600 + i as u64);
            sink.record(AuditRecord::new(at, AuditAction::ToolCalled, Outcome::Success)).await.unwrap();
        }
        drop(sink);
        let f = files(dir.path());
        assert_eq!(f.len(), expected_files, "{f:?}");
        if rotate_daily {
            assert_eq!(f.iter().map(|p| lines(p).len()).collect::<Vec<_>>(), vec![2, 3, 1]);
        }
        let report = verify(&[dir.path().to_owned()]).unwrap();
        assert!(report.is_intact() && report.verified == 6, "{report}");
    }
}

#[tokio::test]
async fn health_reports_the_file_and_seq_and_goes_down_when_a_write_fails() {
    let dir = temp_dir("file-audit-health");
    let sub = dir.path().join("logs");
    let sink = FileAuditSink::open(config(&sub, 1 << 20)).unwrap();
    let h = sink.health().await;
    assert_eq!(h.status, HealthStatus::Up);
    assert!(h.detail.as_deref().unwrap().contains("audit.jsonl"), "{h:?}");
    // The directory disappears before the first write: the write fails, nothing is recorded.
    std::fs::remove_dir_all(&sub).unwrap();
    assert!(sink.record(record(0)).await.is_err());
    let h = sink.health().await;
    assert_eq!(h.status, HealthStatus::Down, "{h:?}");
    std::fs::create_dir_all(&sub).unwrap();
    assert_eq!(sink.record(record(0)).await.unwrap().seq, 0);
    let h = sink.health().await;
    assert_eq!(h.status, HealthStatus::Up);
    assert!(h.detail.as_deref().unwrap().contains("next seq 1"), "{h:?}");
}

#[tokio::test]
async fn interval_sync_acknowledges_and_flushes() {
    let dir = temp_dir("file-audit-interval");
    let mut config = config(dir.path(), SMALL);
    config.fsync = FsyncPolicy::Interval(std::time::Duration::from_millis(20));
    let sink = FileAuditSink::open(config).unwrap();
    for i in 0..20 {
        sink.record(record(i)).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    sink.flush().await.unwrap();
    assert_eq!(all(&sink).await.len(), 20);
    let report = verify(&[dir.path().to_owned()]).unwrap();
    assert!(report.is_intact() && report.verified == 20, "{report}");
}

#[test]
fn a_bad_configuration_is_refused() {
    let dir = temp_dir("file-audit-config");
    let mut c = config(dir.path(), 0);
    assert!(FileAuditSink::open(c.clone()).unwrap_err().to_string().contains("max_file_bytes"));
    c.max_file_bytes = 10;
    c.fsync = FsyncPolicy::Interval(std::time::Duration::ZERO);
    assert!(FileAuditSink::open(c).is_err());
}

#[tokio::test]
async fn a_crash_between_rotation_and_the_next_write_is_picked_up() {
    let dir = temp_dir("file-audit-rotation-crash");
    write(dir.path(), SMALL, 0..20).await;
    // What rotation leaves behind: the active file renamed, no new active file yet.
    let active = dir.path().join("audit.jsonl");
    let first = seq_of(&lines(&active)[0]);
    let rotated = dir.path().join(format!("audit-{first:020}.jsonl"));
    std::fs::rename(&active, &rotated).unwrap();
    let sink = FileAuditSink::open(config(dir.path(), SMALL)).unwrap();
    assert_eq!(sink.record(record(20)).await.unwrap().seq, 20);
    drop(sink);
    let report = verify(&[dir.path().to_owned()]).unwrap();
    assert!(report.is_intact() && report.verified == 21, "{report}");
    // A rotated file is never repaired: a torn tail there is refused, and left as it is.
    std::fs::remove_file(&active).unwrap();
    let mut bytes = std::fs::read(&rotated).unwrap();
    bytes.extend_from_slice(b"{\"seq\":");
    std::fs::write(&rotated, &bytes).unwrap();
    let err = FileAuditSink::open(config(dir.path(), SMALL)).unwrap_err().to_string();
    assert!(err.contains(&rotated.display().to_string()), "{err}");
    assert_eq!(std::fs::read(&rotated).unwrap(), bytes);
}
