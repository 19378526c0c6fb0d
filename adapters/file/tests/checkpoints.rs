//! Signed checkpoints: a chain rewritten and re-hashed by someone without the signing key
//! is caught by `verify_with` at the first checkpoint after the rewrite; retention removes
//! only what a checkpoint covers, and what remains still verifies.
#![allow(clippy::unwrap_used)]

use qudag_adapter_file::{
    BreakReason, CheckpointKey, FileAuditConfig, FileAuditSink, FsyncPolicy, prune, verify, verify_with,
};
use qudag_application::ports::AuditSink;
use qudag_application::usecases::checkpoint;
use qudag_domain::Timestamp;
use qudag_domain::audit::{ChainHash, ChainedEvent, chain_hash};
use qudag_domain::pqc::{DsaAlgorithm, DsaKeyPair};

mod common;
use common::{files, record};
use qudag_test_support::temp::temp_dir;

fn key() -> DsaKeyPair {
    DsaKeyPair::from_seed(DsaAlgorithm::MlDsa65, &[42; 32])
}

fn public(key: &DsaKeyPair) -> CheckpointKey {
    CheckpointKey { algorithm: DsaAlgorithm::MlDsa65, verifying_key: key.verifying_key().to_vec() }
}

/// 10 events, a checkpoint (seq 10 and 11), 5 events, a checkpoint (17, 18), 3 events.
async fn chain(dir: &std::path::Path, signer: &DsaKeyPair) {
    let mut config = FileAuditConfig::new(dir.join("audit.jsonl"));
    config.fsync = FsyncPolicy::Always;
    let sink = FileAuditSink::open(config).unwrap();
    let mut i = 0;
    for batch in [10, 5, 3] {
        for _ in 0..batch {
            sink.record(record(i)).await.unwrap();
            i += 1;
        }
        if batch != 3 {
            checkpoint(&sink, signer, Timestamp::from_secs(5_000)).await.unwrap();
        }
    }
    sink.flush().await.unwrap();
}

/// Edit event `target`'s details and recompute every hash after it, as an attacker with
/// write access but without the signing key could. With `also_checkpoints`, the attacker
/// also rewrites each checkpoint's `covers_hash` to the new anchor hash.
fn rewrite(path: &std::path::Path, target: u64, also_checkpoints: bool) {
    let mut events: Vec<ChainedEvent> =
        std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut prev = ChainHash::GENESIS;
    let mut anchors = std::collections::HashMap::new();
    for e in &mut events {
        if e.seq == target {
            e.record.details["i"] = serde_json::json!(999);
        }
        if also_checkpoints && e.record.details["phase"] == "signature" {
            let covers = e.record.details["covers_seq"].as_u64().unwrap();
            let hash: &ChainHash = anchors.get(&covers).unwrap();
            e.record.details["covers_hash"] = serde_json::json!(hash.to_string());
        }
        e.prev_hash = prev;
        e.hash = chain_hash(&prev, e.seq, &e.record);
        if e.record.details["phase"] == "anchor" {
            anchors.insert(e.seq, e.hash);
        }
        prev = e.hash;
    }
    let text: String = events.iter().map(|e| format!("{}\n", serde_json::to_string(e).unwrap())).collect();
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn checkpoints_verify_with_the_published_key() {
    let dir = temp_dir("file-audit-checkpoints-ok");
    let signer = key();
    chain(dir.path(), &signer).await;
    let report = verify_with(&files(dir.path()), Some(&public(&signer))).unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!((report.verified, report.checkpoints, report.signed_through), (22, 2, Some(17)));
    assert!(report.to_string().contains("2 signed checkpoint(s) verified"), "{report}");
    // Another key does not vouch for them.
    let other = DsaKeyPair::from_seed(DsaAlgorithm::MlDsa65, &[1; 32]);
    let report = verify_with(&files(dir.path()), Some(&public(&other))).unwrap();
    assert!(matches!(report.broken.unwrap().reason, BreakReason::BadCheckpoint(_)));
}

#[tokio::test]
async fn a_rewritten_and_rehashed_history_is_caught() {
    let dir = temp_dir("file-audit-checkpoints-rewrite");
    let signer = key();
    chain(dir.path(), &signer).await;
    let path = dir.path().join("audit.jsonl");

    // The hash chain alone is fooled; the checkpoint's record of the anchor hash is not.
    rewrite(&path, 3, false);
    let report = verify(&files(dir.path())).unwrap();
    let broken = report.broken.unwrap();
    assert_eq!(broken.seq, Some(11), "caught at the first checkpoint after the edit");
    assert!(matches!(broken.reason, BreakReason::BadCheckpoint(_)));

    // Rewriting the checkpoints too fools everything but the signature.
    let dir = temp_dir("file-audit-checkpoints-rewrite-all");
    chain(dir.path(), &signer).await;
    let path = dir.path().join("audit.jsonl");
    rewrite(&path, 3, true);
    let unsigned = verify(&files(dir.path())).unwrap();
    assert!(unsigned.is_intact(), "without the key the rewrite is consistent: {unsigned}");
    assert!(unsigned.to_string().contains("signatures not checked"), "{unsigned}");
    let signed = verify_with(&files(dir.path()), Some(&public(&signer))).unwrap();
    let broken = signed.broken.unwrap();
    assert_eq!(broken.seq, Some(11));
    assert!(
        matches!(broken.reason, BreakReason::BadCheckpoint(ref why) if why.contains("does not verify")),
        "{broken:?}"
    );
}

/// `before` events (old timestamps), a checkpoint, then `after` events, in small files.
async fn small_files(dir: &std::path::Path, signer: Option<&DsaKeyPair>, before: u64, after: u64) {
    let mut config = FileAuditConfig::new(dir.join("audit.jsonl"));
    config.fsync = FsyncPolicy::Always;
    config.max_file_bytes = 2_000;
    let sink = FileAuditSink::open(config).unwrap();
    for i in 0..before {
        sink.record(record(i)).await.unwrap();
    }
    if let Some(signer) = signer {
        checkpoint(&sink, signer, Timestamp::from_secs(5_000)).await.unwrap();
    }
    for i in before..before + after {
        sink.record(record(i)).await.unwrap();
    }
    sink.flush().await.unwrap();
}

#[tokio::test]
async fn retention_removes_only_old_files_a_checkpoint_covers() {
    let cutoff = Timestamp::from_secs(1_000_000);
    // Without a checkpoint nothing may go, however old.
    let dir = temp_dir("file-audit-retention-unsigned");
    small_files(dir.path(), None, 60, 0).await;
    let before = files(dir.path());
    assert!(before.len() > 3);
    let report = prune(&dir.path().join("audit.jsonl"), cutoff, &public(&key())).unwrap();
    assert_eq!((report.removed.len(), report.covered_through), (0, None));
    assert_eq!(files(dir.path()), before);

    // With one: the files wholly before its anchor go; the rest still verifies, signatures included.
    let dir = temp_dir("file-audit-retention-signed");
    let signer = key();
    small_files(dir.path(), Some(&signer), 40, 40).await;
    let all = files(dir.path()).len();
    let report = prune(&dir.path().join("audit.jsonl"), cutoff, &public(&signer)).unwrap();
    assert_eq!(report.covered_through, Some(40), "the anchor follows the first 40 events");
    assert_eq!(report.unverified, None);
    assert!(!report.removed.is_empty() && report.removed.len() < all, "{report:?}");
    let left = verify_with(&files(dir.path()), Some(&public(&signer))).unwrap();
    assert!(left.is_intact(), "{left}");
    let first = left.first_seq.unwrap();
    assert!(first > 0 && first <= 41, "nothing after the covered part was removed: starts at {first}");
    assert_eq!(left.verified + first, 82, "40 + anchor + signature + 40 events, minus the pruned ones");
    assert_eq!(left.checkpoints, 1);

    // A cut-off before the events keeps everything.
    let dir = temp_dir("file-audit-retention-recent");
    small_files(dir.path(), Some(&signer), 40, 10).await;
    let report = prune(&dir.path().join("audit.jsonl"), Timestamp::from_secs(1_000), &public(&signer)).unwrap();
    assert!(report.removed.is_empty());
}

#[tokio::test]
async fn retention_keeps_and_reports_a_file_that_does_not_verify() {
    let cutoff = Timestamp::from_secs(1_000_000);
    let dir = temp_dir("file-audit-retention-edited");
    let signer = key();
    small_files(dir.path(), Some(&signer), 40, 40).await;
    let before = files(dir.path());
    // An event of the oldest file edited in place (its hash no longer matches).
    let oldest = &before[0];
    let text = std::fs::read_to_string(oldest).unwrap();
    let edited = text.replacen("\"tool-1\"", "\"tool-X\"", 1);
    assert_ne!(text, edited, "the edit applies");
    std::fs::write(oldest, edited).unwrap();

    let report = prune(&dir.path().join("audit.jsonl"), cutoff, &public(&signer)).unwrap();
    assert!(report.removed.is_empty(), "nothing is deleted from a chain that breaks in its first file: {report:?}");
    let broken = report.unverified.expect("the break is reported");
    assert_eq!(&broken.file, oldest);
    assert_eq!(broken.reason, BreakReason::Edited);
    assert_eq!(files(dir.path()), before, "every file is kept");
}

#[tokio::test]
async fn retention_trusts_only_checkpoints_signed_with_the_server_key() {
    let cutoff = Timestamp::from_secs(1_000_000);
    // A chain whose only checkpoint was signed by another key (as someone with write access
    // but without the server's key could make): it vouches for nothing here.
    let dir = temp_dir("file-audit-retention-foreign");
    let forger = DsaKeyPair::from_seed(DsaAlgorithm::MlDsa65, &[7; 32]);
    small_files(dir.path(), Some(&forger), 40, 40).await;
    let before = files(dir.path());
    let report = prune(&dir.path().join("audit.jsonl"), cutoff, &public(&key())).unwrap();
    assert_eq!((report.removed.len(), report.covered_through), (0, None), "{report:?}");
    assert_eq!(report.unverified, None, "another key's checkpoint is not a break");
    assert_eq!(files(dir.path()), before);
}
