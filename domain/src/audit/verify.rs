//! [`ChainVerifier`]: one event at a time, whether a stored chain still holds — its links,
//! hashes and signed checkpoints. Every sink's verifier (files, database rows) feeds its
//! events through this and adds only what its storage can tell besides (a torn line, a
//! column that disagrees with its record).

use std::collections::HashMap;
use std::fmt;

use crate::pqc::{DsaAlgorithm, dsa, fingerprint};

use super::{AuditAction, ChainHash, ChainHead, ChainedEvent, chain_hash, checkpoint_message};

/// The key that signs checkpoints: the server's published ML-DSA verification key
/// (resource `qudag://keys/signing`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointKey {
    /// Its algorithm.
    pub algorithm: DsaAlgorithm,
    /// The verifying key's bytes.
    pub verifying_key: Vec<u8>,
}

/// Why an event does not continue the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// Its seq is not the next one (`expected`): events before it were deleted, or the
    /// events are out of order — the caller, who can look further ahead, tells which.
    OutOfSequence {
        /// The seq that should be here.
        expected: u64,
    },
    /// Its `prev_hash` is not the hash of the event before it (an event was replaced,
    /// inserted or renumbered, or the first event of a chain does not start from genesis).
    BrokenLink,
    /// Its content no longer matches its hash.
    Edited,
    /// A signed checkpoint does not hold: its signature does not verify with the key given,
    /// or it covers an anchor that is not in the chain as signed (history was rewritten).
    BadCheckpoint(String),
    /// Its seq is the largest there is, which leaves no seq for a next event: no chain gets
    /// there by appending, so it was written by hand.
    SeqExhausted,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfSequence { expected } => write!(f, "out of sequence: expected seq {expected}"),
            Self::BrokenLink => f.write_str("broken link: its prev_hash is not the hash of the event before it"),
            Self::Edited => f.write_str("edited: the record no longer matches its hash"),
            Self::BadCheckpoint(why) => write!(f, "bad checkpoint: {why}"),
            Self::SeqExhausted => write!(f, "seq {} leaves no room for a next event", u64::MAX),
        }
    }
}

/// Checks a chain event by event, in stored order.
///
/// The first event may be any seq (a chain whose oldest part was pruned): it is taken on
/// trust as the start, and a chain from its genesis must start with seq 0 and the genesis
/// hash. After the first [`LinkError`] the verifier's counts stay where they were.
#[derive(Clone, Debug)]
pub struct ChainVerifier {
    key: Option<CheckpointKey>,
    head: Option<ChainHead>,
    first_seq: Option<u64>,
    anchors: HashMap<u64, ChainHash>,
    verified: u64,
    checkpoints: u64,
    signed_through: Option<u64>,
}

impl ChainVerifier {
    /// A verifier that checks checkpoint signatures with `key` when given (otherwise only
    /// that each checkpoint covers an anchor present as signed).
    pub fn new(key: Option<CheckpointKey>) -> Self {
        Self {
            key,
            head: None,
            first_seq: None,
            anchors: HashMap::new(),
            verified: 0,
            checkpoints: 0,
            signed_through: None,
        }
    }

    /// The seq the next event must carry (`None` before the first event).
    pub fn expected_seq(&self) -> Option<u64> {
        self.head.map(|h| h.next_seq)
    }

    /// Take the next event.
    ///
    /// # Errors
    /// Why `event` does not continue the chain.
    pub fn push(&mut self, event: &ChainedEvent) -> Result<(), LinkError> {
        let current = match self.head {
            Some(head) => head,
            None => {
                let prev = if event.seq == 0 { ChainHash::GENESIS } else { event.prev_hash };
                ChainHead { next_seq: event.seq, head: prev }
            }
        };
        if event.seq != current.next_seq {
            return Err(LinkError::OutOfSequence { expected: current.next_seq });
        }
        let next_seq = event.seq.checked_add(1).ok_or(LinkError::SeqExhausted)?;
        if event.prev_hash != current.head {
            return Err(LinkError::BrokenLink);
        }
        if chain_hash(&event.prev_hash, event.seq, &event.record) != event.hash {
            return Err(LinkError::Edited);
        }
        let first_seq = *self.first_seq.get_or_insert(event.seq);
        if event.record.action == AuditAction::Checkpoint {
            if event.record.details["phase"] == "anchor" {
                self.anchors.insert(event.seq, event.hash);
            } else {
                let covers = self.check_signature(event, first_seq).map_err(LinkError::BadCheckpoint)?;
                self.checkpoints += 1;
                self.signed_through = Some(covers);
            }
        }
        self.head = Some(ChainHead { next_seq, head: event.hash });
        self.verified += 1;
        Ok(())
    }

    /// Check a checkpoint's signature event against the anchors seen so far; the seq it
    /// covers. An anchor before the first event verified (pruned) is not looked for; its
    /// signature still is checked.
    fn check_signature(&self, event: &ChainedEvent, first_seq: u64) -> Result<u64, String> {
        let d = &event.record.details;
        let covers = d["covers_seq"].as_u64().ok_or("no covers_seq")?;
        let covers_hash: ChainHash = d["covers_hash"]
            .as_str()
            .ok_or("no covers_hash")?
            .to_owned()
            .try_into()
            .map_err(|_| "covers_hash is not a hash".to_owned())?;
        if covers >= first_seq {
            match self.anchors.get(&covers) {
                Some(h) if *h == covers_hash => {}
                Some(_) => return Err(format!("the anchor at seq {covers} is not the event that was signed")),
                None => return Err(format!("seq {covers} is not a checkpoint anchor")),
            }
        }
        if let Some(key) = &self.key {
            let algorithm = d["algorithm"].as_str().unwrap_or_default();
            if algorithm != key.algorithm.as_str() {
                return Err(format!("signed with {algorithm:?}, the key given is {}", key.algorithm));
            }
            if d["key_id"].as_str() != Some(fingerprint(&key.verifying_key).as_str()) {
                return Err("signed by another key than the one given".to_owned());
            }
            let signature = hex::decode(d["signature"].as_str().unwrap_or_default())
                .map_err(|_| "the signature is not hex".to_owned())?;
            dsa::verify(key.algorithm, &key.verifying_key, &checkpoint_message(covers, &covers_hash), b"", &signature)
                .map_err(|_| format!("the signature over seq {covers} does not verify"))?;
        }
        Ok(covers)
    }

    /// Whether a key checks the checkpoint signatures.
    pub fn checks_signatures(&self) -> bool {
        self.key.is_some()
    }

    /// How many events verified.
    pub fn verified(&self) -> u64 {
        self.verified
    }

    /// The seq of the first event verified.
    pub fn first_seq(&self) -> Option<u64> {
        self.first_seq
    }

    /// Where the verified chain stands (`None` before the first event).
    pub fn head(&self) -> Option<ChainHead> {
        self.head
    }

    /// Signed checkpoints that held.
    pub fn checkpoints(&self) -> u64 {
        self.checkpoints
    }

    /// The highest seq a checkpoint that held covers.
    pub fn signed_through(&self) -> Option<u64> {
        self.signed_through
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::Timestamp;
    use crate::audit::{AuditRecord, Outcome};

    fn chain(n: u64) -> Vec<ChainedEvent> {
        let mut head = ChainHead::GENESIS;
        (0..n)
            .map(|i| head.append(AuditRecord::new(Timestamp::from_secs(i), AuditAction::ToolCalled, Outcome::Success)))
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies_and_counts() {
        let mut v = ChainVerifier::new(None);
        for e in &chain(5) {
            v.push(e).unwrap();
        }
        assert_eq!((v.verified(), v.first_seq(), v.expected_seq()), (5, Some(0), Some(5)));
    }

    #[test]
    fn each_kind_of_break_is_named() {
        let events = chain(4);
        let mut v = ChainVerifier::new(None);
        v.push(&events[0]).unwrap();
        assert_eq!(v.push(&events[2]), Err(LinkError::OutOfSequence { expected: 1 }));
        let mut edited = events[1].clone();
        edited.record.actor = Some("mallory".into());
        assert_eq!(v.push(&edited), Err(LinkError::Edited));
        let mut relinked = events[1].clone();
        relinked.prev_hash = ChainHash::GENESIS;
        assert_eq!(v.push(&relinked), Err(LinkError::BrokenLink));
        assert_eq!(v.verified(), 1, "a failed push counts nothing");

        let mut fresh = ChainVerifier::new(None);
        let mut forged = events[0].clone();
        forged.prev_hash = events[3].hash;
        assert_eq!(fresh.push(&forged), Err(LinkError::BrokenLink), "seq 0 must start from genesis");
    }

    #[test]
    fn the_largest_seq_is_refused_not_overflowed() {
        // Found by the audit_verify fuzz target: a (pruned) chain starting at u64::MAX
        // overflowed `seq + 1`.
        let mut record = chain(1).remove(0);
        record.seq = u64::MAX;
        record.hash = chain_hash(&record.prev_hash, record.seq, &record.record);
        let mut v = ChainVerifier::new(None);
        assert_eq!(v.push(&record), Err(LinkError::SeqExhausted));
        assert_eq!((v.verified(), v.expected_seq()), (0, None), "nothing is counted");
    }

    #[test]
    fn a_pruned_chain_starts_where_it_starts() {
        let events = chain(6);
        let mut v = ChainVerifier::new(None);
        for e in &events[3..] {
            v.push(e).unwrap();
        }
        assert_eq!((v.verified(), v.first_seq()), (3, Some(3)));
    }
}

/// The checkpoint sentence of a verification report: how many signed checkpoints were
/// seen, through which seq, and whether their signatures were checked. Empty when a
/// checkpoint was seen but covers nothing yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointSummary {
    /// Checkpoints seen.
    pub checkpoints: u64,
    /// The highest seq a checkpoint covers.
    pub signed_through: Option<u64>,
    /// Whether the signatures were checked against a verification key.
    pub signatures_checked: bool,
}

impl fmt::Display for CheckpointSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.checkpoints, self.signed_through) {
            (0, _) => f.write_str(" No signed checkpoint."),
            (n, Some(through)) if self.signatures_checked => {
                write!(f, " {n} signed checkpoint(s) verified with the given key, through seq {through}.")
            }
            (n, Some(through)) => write!(
                f,
                " {n} checkpoint(s) consistent through seq {through}; signatures not checked (give the verification key)."
            ),
            (_, None) => Ok(()),
        }
    }
}
