//! Signed checkpoints of the audit chain.
//!
//! A checkpoint is two chained events of action `audit.checkpoint`: an *anchor* (details
//! `{"phase": "anchor"}`), then a *signature* event whose details carry the anchor's seq
//! and hash and an ML-DSA-65 signature over `qudag_domain::audit::checkpoint_message`
//! (seq, hash) by the server's signing key. The anchor is needed because only the sink
//! knows the chain head; recording it tells us what to sign.
//!
//! Whoever can rewrite the files or rows and recompute every hash after an edit still
//! cannot produce a matching signature: `audit verify` with the published verification key
//! (`qudag://keys/signing`) catches the rewrite at the first checkpoint after it.

use qudag_domain::Timestamp;
use qudag_domain::audit::{AuditAction, AuditRecord, ChainedEvent, Outcome, checkpoint_message};
use qudag_domain::pqc::{DsaKeyPair, fingerprint};
use serde_json::json;

use crate::ports::{AuditSink, AuditSinkError};

/// Why a checkpoint could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The sink refused an event.
    #[error(transparent)]
    Sink(#[from] AuditSinkError),
    /// No randomness or the signer failed.
    #[error("checkpoint signing failed: {0}")]
    Signing(String),
}

/// Take a checkpoint: record an anchor, sign its place in the chain with `key`, record the
/// signature. Returns the signature event.
///
/// # Errors
/// [`CheckpointError`]: the sink refused, or signing failed (the anchor may then stand
/// unsigned, which verification reports as such, never as intact-and-signed).
pub async fn checkpoint(
    sink: &dyn AuditSink,
    key: &DsaKeyPair,
    now: Timestamp,
) -> Result<ChainedEvent, CheckpointError> {
    let anchor = sink
        .record(AuditRecord::new(now, AuditAction::Checkpoint, Outcome::Success).details(json!({ "phase": "anchor" })))
        .await?;
    let mut rnd = [0u8; 32];
    getrandom::fill(&mut rnd).map_err(|e| CheckpointError::Signing(e.to_string()))?;
    let signature = key
        .sign(&checkpoint_message(anchor.seq, &anchor.hash), b"", &rnd)
        .map_err(|e| CheckpointError::Signing(e.to_string()))?;
    let record = AuditRecord::new(now, AuditAction::Checkpoint, Outcome::Success).details(json!({
        "phase": "signature",
        "covers_seq": anchor.seq,
        "covers_hash": anchor.hash.to_string(),
        "algorithm": key.algorithm().as_str(),
        "key_id": fingerprint(key.verifying_key()),
        "signature": hex::encode(signature),
    }));
    Ok(sink.record(record).await?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;

    use qudag_domain::audit::ChainHead;
    use qudag_domain::pqc::{DsaAlgorithm, dsa};

    use super::*;
    use crate::ports::MockAuditSink;

    #[tokio::test]
    async fn a_checkpoint_signs_the_anchor_it_recorded() {
        let head = std::sync::Arc::new(Mutex::new(ChainHead::GENESIS));
        let mut sink = MockAuditSink::new();
        let h = head.clone();
        sink.expect_record().times(2).returning(move |r| Ok(h.lock().unwrap().append(r)));
        let key = DsaKeyPair::from_seed(DsaAlgorithm::MlDsa65, &[7; 32]);
        let signed = checkpoint(&sink, &key, Timestamp::from_secs(1)).await.unwrap();
        let d = &signed.record.details;
        assert_eq!(d["covers_seq"], 0);
        assert_eq!(signed.seq, 1);
        let hash: qudag_domain::audit::ChainHash = d["covers_hash"].as_str().unwrap().to_owned().try_into().unwrap();
        let signature = hex::decode(d["signature"].as_str().unwrap()).unwrap();
        dsa::verify(DsaAlgorithm::MlDsa65, key.verifying_key(), &checkpoint_message(0, &hash), b"", &signature)
            .unwrap();
        assert_eq!(d["key_id"], fingerprint(key.verifying_key()));
    }
}
