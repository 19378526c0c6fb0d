//! The spool a remote sink keeps events in while its backend is unreachable.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs::OpenOptions;
use std::io::Write;

use qudag_adapter_file::Spool;
use qudag_domain::Timestamp;
use qudag_domain::audit::{AuditAction, AuditRecord, ChainHead, ChainedEvent, Outcome};
use qudag_test_support::temp::temp_dir;

fn events(n: u64) -> Vec<ChainedEvent> {
    let mut head = ChainHead::GENESIS;
    (0..n)
        .map(|i| head.append(AuditRecord::new(Timestamp::from_secs(i), AuditAction::ToolCalled, Outcome::Success)))
        .collect()
}

#[test]
fn appended_events_come_back_in_order_across_reopen_and_clear() {
    let dir = temp_dir("file-audit-spool");
    let path = dir.path().join("spool.jsonl");
    let all = events(5);
    let mut spool = Spool::open(&path).unwrap();
    assert!(spool.is_empty());
    spool.append(&all[..2]).unwrap();
    spool.append(&all[2..]).unwrap();
    assert_eq!((spool.len(), spool.last()), (5, Some(&all[4])));
    drop(spool);
    let mut spool = Spool::open(&path).unwrap();
    assert_eq!(spool.events().unwrap(), all);
    assert_eq!(spool.last(), Some(&all[4]));
    spool.clear().unwrap();
    assert!(spool.is_empty() && spool.events().unwrap().is_empty());
    drop(spool);
    assert!(Spool::open(&path).unwrap().is_empty());
}

#[test]
fn a_torn_tail_is_cut_and_a_corrupt_line_refused() {
    let dir = temp_dir("file-audit-spool");
    let path = dir.path().join("spool.jsonl");
    let all = events(3);
    let mut spool = Spool::open(&path).unwrap();
    spool.append(&all[..2]).unwrap();
    drop(spool);
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(br#"{"seq":2,"act"#).unwrap();
    let mut spool = Spool::open(&path).unwrap();
    assert_eq!(spool.len(), 2, "the torn line is gone");
    spool.append(&all[2..]).unwrap();
    assert_eq!(Spool::open(&path).unwrap().events().unwrap(), all);

    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"seq\":1", "\"seq\":x", 1)).unwrap();
    let err = Spool::open(&path).unwrap_err().to_string();
    assert!(err.contains("line 2"), "{err}");
}
