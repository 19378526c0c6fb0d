//! Audit files written by hand, as an attacker with access to them might: `verify` reports
//! them broken and the sink refuses to extend them, never panicking. The largest seq was
//! found by the `audit_verify` fuzz target (it overflowed `seq + 1`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use qudag_adapter_file::{BreakReason, FileAuditConfig, FileAuditError, FileAuditSink, verify};
use qudag_domain::Timestamp;
use qudag_domain::audit::{AuditAction, AuditRecord, ChainHash, ChainedEvent, Outcome, chain_hash};
use qudag_test_support::temp::temp_dir;

#[test]
fn an_event_at_the_largest_seq_is_a_break_not_a_panic() {
    let dir = temp_dir("audit-max-seq");
    let record = AuditRecord::new(Timestamp::from_secs(1), AuditAction::ToolCalled, Outcome::Success);
    let (seq, prev_hash) = (u64::MAX, ChainHash::GENESIS);
    let event = ChainedEvent { seq, hash: chain_hash(&prev_hash, seq, &record), record, prev_hash };
    let path = dir.path().join("audit.jsonl");
    std::fs::write(&path, format!("{}\n", serde_json::to_string(&event).unwrap())).unwrap();

    let report = verify(&[path]).unwrap();
    let broken = report.broken.clone().expect("reported broken");
    assert_eq!((broken.line, broken.seq), (1, Some(u64::MAX)));
    assert!(matches!(&broken.reason, BreakReason::Unparseable(why) if why.contains("no room")), "{:?}", broken.reason);
    assert!(report.to_string().contains("BROKEN"), "{report}");
}

#[test]
fn the_sink_refuses_to_continue_from_the_largest_seq() {
    let dir = temp_dir("audit-max-seq-open");
    let record = AuditRecord::new(Timestamp::from_secs(1), AuditAction::ToolCalled, Outcome::Success);
    let (seq, prev_hash) = (u64::MAX, ChainHash::GENESIS);
    let event = ChainedEvent { seq, hash: chain_hash(&prev_hash, seq, &record), record, prev_hash };
    let path = dir.path().join("audit.jsonl");
    std::fs::write(&path, format!("{}\n", serde_json::to_string(&event).unwrap())).unwrap();

    let refused = FileAuditSink::open(FileAuditConfig::new(path)).expect_err("a chain at the largest seq cannot go on");
    assert!(
        matches!(&refused, FileAuditError::Corrupt { line: 1, reason, .. } if reason.contains("no room")),
        "{refused:?}"
    );
}
