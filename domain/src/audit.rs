//! Audit events and their hash chain.
//!
//! Every record carries the hash of the record before it, and its own hash is BLAKE3 over
//! a domain-separation tag, that previous hash and the record's canonical JSON. Editing,
//! deleting, inserting or reordering any record breaks a link that [`verify_chain`] finds;
//! only truncating the tail cannot be seen from the records alone, which is why sinks sign
//! the chain head at intervals (checkpoints) and record how far the chain reached.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

mod verify;
pub use verify::{ChainVerifier, CheckpointKey, CheckpointSummary, LinkError};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AuditAction {
    /// The server started (details: configuration digest).
    #[serde(rename = "server.started")]
    ServerStarted,
    /// The server stopped.
    #[serde(rename = "server.stopped")]
    ServerStopped,
    /// A credential was accepted.
    #[serde(rename = "auth.succeeded")]
    AuthSucceeded,
    /// A credential was refused (details: reason).
    #[serde(rename = "auth.failed")]
    AuthFailed,
    /// An MCP session was created.
    #[serde(rename = "session.created")]
    SessionCreated,
    /// An MCP session ended (deleted or expired).
    #[serde(rename = "session.terminated")]
    SessionTerminated,
    /// A session was presented by a principal other than its owner.
    #[serde(rename = "session.hijack_attempt")]
    SessionHijackAttempt,
    /// A tool whose effect cannot be undone (a vault entry deleted, a `.dark` name
    /// registered) is about to run: written durably before it runs, so the act is on record
    /// even if the process dies before `tool.called` (details: argument digest).
    #[serde(rename = "tool.started")]
    ToolStarted,
    /// A tool ran (details: tool, duration, argument digest).
    #[serde(rename = "tool.called")]
    ToolCalled,
    /// A tool call was refused by authorization.
    #[serde(rename = "tool.denied")]
    ToolDenied,
    /// A request was refused by a rate limit or quota.
    #[serde(rename = "rate.limited")]
    RateLimited,
    /// An administrative action.
    #[serde(rename = "admin.action")]
    AdminAction,
    /// A vault entry was asked for by a principal other than its owner (refused).
    #[serde(rename = "vault.access_denied")]
    VaultAccessDenied,
    /// A signed checkpoint of the chain: an anchor event, then the signature over the
    /// anchor's seq and hash (see [`checkpoint_message`]).
    #[serde(rename = "audit.checkpoint")]
    Checkpoint,
}

impl AuditAction {
    /// Every action, for filters and documentation.
    pub const ALL: [Self; 14] = [
        Self::ServerStarted,
        Self::ServerStopped,
        Self::AuthSucceeded,
        Self::AuthFailed,
        Self::SessionCreated,
        Self::SessionTerminated,
        Self::SessionHijackAttempt,
        Self::ToolStarted,
        Self::ToolCalled,
        Self::ToolDenied,
        Self::RateLimited,
        Self::AdminAction,
        Self::VaultAccessDenied,
        Self::Checkpoint,
    ];

    /// The dotted name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServerStarted => "server.started",
            Self::ServerStopped => "server.stopped",
            Self::AuthSucceeded => "auth.succeeded",
            Self::AuthFailed => "auth.failed",
            Self::SessionCreated => "session.created",
            Self::SessionTerminated => "session.terminated",
            Self::SessionHijackAttempt => "session.hijack_attempt",
            Self::ToolStarted => "tool.started",
            Self::ToolCalled => "tool.called",
            Self::ToolDenied => "tool.denied",
            Self::RateLimited => "rate.limited",
            Self::AdminAction => "admin.action",
            Self::VaultAccessDenied => "vault.access_denied",
            Self::Checkpoint => "audit.checkpoint",
        }
    }

    /// Parse a dotted name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It worked.
    Success,
    /// It was attempted and failed.
    Failure,
    /// It was refused by policy (authentication, authorization, quota).
    Denied,
}

/// The bytes a checkpoint signs: a domain-separation label, the anchor event's seq
/// (u64 big-endian) and its hash. Whoever can recompute the hash chain still cannot move a
/// signed checkpoint without the signing key.
pub fn checkpoint_message(seq: u64, hash: &ChainHash) -> Vec<u8> {
    let mut out = b"qudag-audit-checkpoint/v1".to_vec();
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(hash.as_bytes());
    out
}

/// One thing worth remembering, before it is chained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    pub action: AuditAction,
    /// How it ended.
    pub outcome: Outcome,
    /// Who did it (principal), when known.
    pub actor: Option<String>,
    /// What it was done to (tool name, session, endpoint), when there is one.
    pub target: Option<String>,
    /// The request id (`X-Request-Id`) it belongs to.
    pub request_id: Option<String>,
    /// The client's network address.
    pub client_addr: Option<String>,
    /// Which server node recorded it.
    pub node: Option<String>,
    /// Action-specific facts. Never secrets: digests stand in for sensitive values.
    pub details: serde_json::Value,
}

impl AuditRecord {
    /// A record of `action` with `outcome` at `at`, everything else empty.
    pub fn new(at: Timestamp, action: AuditAction, outcome: Outcome) -> Self {
        Self {
            at,
            action,
            outcome,
            actor: None,
            target: None,
            request_id: None,
            client_addr: None,
            node: None,
            details: serde_json::Value::Null,
        }
    }

    /// With the actor.
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// With the target.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// With the request id.
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// With the client address.
    pub fn client_addr(mut self, addr: impl Into<String>) -> Self {
        self.client_addr = Some(addr.into());
        self
    }

    /// With details.
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// The record with every string kept to a fixed size ([`crate::clip`]): actor, target,
    /// request id, address and node to [`NAME_BYTES`](crate::clip::NAME_BYTES), each string
    /// in the details to [`TEXT_BYTES`](crate::clip::TEXT_BYTES), each list in them to
    /// [`ITEMS`](crate::clip::ITEMS) entries. Much of a record comes from
    /// callers (tool names, resource URIs, `clientInfo`, error messages quoting arguments);
    /// none of it is stored whole.
    #[must_use]
    pub fn bounded(mut self) -> Self {
        use crate::clip::{NAME_BYTES, TEXT_BYTES, clip_json, clip_owned};
        for field in [&mut self.actor, &mut self.target, &mut self.request_id, &mut self.client_addr, &mut self.node] {
            if let Some(text) = field.take() {
                *field = Some(clip_owned(text, NAME_BYTES));
            }
        }
        clip_json(&mut self.details, TEXT_BYTES);
        self
    }
}

/// A BLAKE3 digest in the chain.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChainHash([u8; 32]);

impl ChainHash {
    /// The `prev_hash` of the first record of a chain.
    pub const GENESIS: Self = Self([0; 32]);

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// From raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({})", hex::encode(self.0))
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl TryFrom<String> for ChainHash {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&value, &mut out).map_err(|e| format!("bad chain hash {value:?}: {e}"))?;
        Ok(Self(out))
    }
}

impl From<ChainHash> for String {
    fn from(h: ChainHash) -> Self {
        h.to_string()
    }
}

/// A record as stored: its place in the chain and the two hashes that link it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChainedEvent {
    /// Position in the chain, from 0, without gaps.
    pub seq: u64,
    /// The record.
    #[serde(flatten)]
    pub record: AuditRecord,
    /// The hash of the previous event ([`ChainHash::GENESIS`] for the first).
    pub prev_hash: ChainHash,
    /// This event's hash.
    pub hash: ChainHash,
}

/// A head a trail is expected to contain: the event `seq` with `hash`, as a witness kept it
/// (a logged checkpoint, a head `verify` printed before). A trail whose last events were cut
/// off still verifies as a chain; against such a head it does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpectedHead {
    /// The event's seq.
    pub seq: u64,
    /// Its hash.
    pub hash: ChainHash,
}

impl ExpectedHead {
    /// What `event` says of this head: `None` when it is another seq.
    pub fn check(&self, event: &ChainedEvent) -> Option<HeadCheck> {
        (event.seq == self.seq)
            .then(|| if event.hash == self.hash { HeadCheck::Found } else { HeadCheck::Differs { found: event.hash } })
    }
}

impl std::str::FromStr for ExpectedHead {
    type Err = String;

    /// `SEQ:HASH`, the hash in hex.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (seq, hash) = text.split_once(':').ok_or_else(|| format!("expected SEQ:HASH, got {text:?}"))?;
        let seq = seq.trim().parse().map_err(|_| format!("the seq {seq:?} is not a number"))?;
        let hash = ChainHash::try_from(hash.trim().to_owned()).map_err(|e| format!("the hash {hash:?}: {e}"))?;
        Ok(Self { seq, hash })
    }
}

/// What a trail holds of an [`ExpectedHead`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadCheck {
    /// The event is there with that hash.
    Found,
    /// The trail ends (or breaks) before that seq: events were cut off its end.
    EndsBefore,
    /// The event at that seq has another hash: the trail is not the one the head came from.
    Differs {
        /// The hash found at that seq.
        found: ChainHash,
    },
}

impl HeadCheck {
    /// One sentence for a verification report.
    pub fn describe(&self, head: &ExpectedHead) -> String {
        match self {
            Self::Found => format!("Expected head seq {} found with its hash.", head.seq),
            Self::EndsBefore => format!(
                "EXPECTED HEAD MISSING: the trail ends before seq {} (hash {}); events were cut off its end.",
                head.seq, head.hash
            ),
            Self::Differs { found } => format!(
                "EXPECTED HEAD DIFFERS: seq {} has hash {found}, not {}; this is not the trail that head came from.",
                head.seq, head.hash
            ),
        }
    }
}

/// Domain separation, so a chain hash can never be confused with another BLAKE3 use.
const HASH_CONTEXT: &[u8] = b"qudag-mcp audit chain v1\0";

/// The hash of `record` at `seq` following `prev`.
pub fn chain_hash(prev: &ChainHash, seq: u64, record: &AuditRecord) -> ChainHash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(HASH_CONTEXT);
    hasher.update(prev.as_bytes());
    hasher.update(&seq.to_be_bytes());
    hasher.update(&canonical_bytes(&to_value(record)));
    ChainHash(*hasher.finalize().as_bytes())
}

/// Serialising plain data into a `Value` cannot fail for our record types.
fn to_value<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// The canonical JSON of a record: object keys sorted, no insignificant whitespace.
///
/// Sorting is done here rather than trusting the map type, so the hash does not depend on
/// whether some crate in the build turned on `serde_json/preserve_order`.
pub fn canonical_json<T: Serialize>(value: &T) -> String {
    canonical_json_value(&to_value(value))
}

/// [`canonical_json`] of a value that is already JSON, without copying it first.
pub fn canonical_json_value(value: &serde_json::Value) -> String {
    // Only serde_json's own output goes in, and that is UTF-8.
    String::from_utf8(canonical_bytes(value)).unwrap_or_default()
}

/// The canonical form's bytes.
fn canonical_bytes(value: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_canonical(value, &mut out);
    out
}

/// Append the canonical form of `value`: strings and scalars exactly as serde_json writes
/// them compactly, object keys in sorted order at every depth.
fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            if !entries.is_sorted_by(|a, b| a.0 <= b.0) {
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            }
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_compact(key, out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_compact(scalar, out),
    }
}

/// serde_json's compact form of a string or scalar. Writing into a `Vec` cannot fail, and
/// neither can serialising a string or a JSON scalar.
fn write_compact<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(out, value);
}

/// A BLAKE3 digest (hex) of a JSON value's canonical form: what the audit trail records
/// in place of arguments that may hold secrets.
pub fn digest_json(value: &serde_json::Value) -> String {
    blake3::hash(&canonical_bytes(value)).to_hex().to_string()
}

/// Where a chain stands: the next sequence number and the hash to link it to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// The sequence number the next event gets.
    pub next_seq: u64,
    /// The hash of the last event ([`ChainHash::GENESIS`] for an empty chain).
    pub head: ChainHash,
}

impl ChainHead {
    /// An empty chain.
    pub const GENESIS: Self = Self { next_seq: 0, head: ChainHash::GENESIS };

    /// Link `record` to the chain, returning the stored event and moving the head.
    pub fn append(&mut self, record: AuditRecord) -> ChainedEvent {
        let seq = self.next_seq;
        let prev_hash = self.head;
        let hash = chain_hash(&prev_hash, seq, &record);
        self.next_seq += 1;
        self.head = hash;
        ChainedEvent { seq, record, prev_hash, hash }
    }
}

impl Default for ChainHead {
    fn default() -> Self {
        Self::GENESIS
    }
}

/// The first broken link found by [`verify_chain`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// The event's content no longer matches its hash: it was edited.
    #[error("event {seq} (position {position}) was altered: its hash does not match its content")]
    Altered {
        /// The event's sequence number.
        seq: u64,
        /// Its position in what was verified, from 0.
        position: usize,
    },
    /// The event does not link to the one before it: something was removed, inserted or
    /// reordered.
    #[error(
        "event {seq} (position {position}) does not follow the previous event: records were removed, inserted or reordered"
    )]
    Unlinked {
        /// The event's sequence number.
        seq: u64,
        /// Its position in what was verified, from 0.
        position: usize,
    },
    /// The sequence numbers skip or repeat.
    #[error("expected event {expected} at position {position} but found event {found}")]
    SequenceGap {
        /// The sequence number that should be here.
        expected: u64,
        /// The sequence number found.
        found: u64,
        /// Its position in what was verified, from 0.
        position: usize,
    },
}

/// Check that `events` continue the chain from `start` without a broken link; returns where
/// the chain stands after them.
///
/// # Errors
/// The first [`ChainBreak`] found.
pub fn verify_chain<'a>(
    start: ChainHead,
    events: impl IntoIterator<Item = &'a ChainedEvent>,
) -> Result<ChainHead, ChainBreak> {
    let mut head = start;
    for (position, event) in events.into_iter().enumerate() {
        if event.seq != head.next_seq {
            return Err(ChainBreak::SequenceGap { expected: head.next_seq, found: event.seq, position });
        }
        if event.prev_hash != head.head {
            return Err(ChainBreak::Unlinked { seq: event.seq, position });
        }
        if chain_hash(&event.prev_hash, event.seq, &event.record) != event.hash {
            return Err(ChainBreak::Altered { seq: event.seq, position });
        }
        head = ChainHead { next_seq: event.seq + 1, head: event.hash };
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(n: u64) -> Vec<ChainedEvent> {
        let mut head = ChainHead::GENESIS;
        (0..n)
            .map(|i| {
                head.append(
                    AuditRecord::new(Timestamp::from_secs(i), AuditAction::ToolCalled, Outcome::Success)
                        .actor("iss#alice")
                        .target(format!("tool-{i}"))
                        .details(json!({"b": i, "a": [1, {"z": 1, "y": 2}]})),
                )
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies() {
        let events = chain(5);
        let head = verify_chain(ChainHead::GENESIS, &events).unwrap();
        assert_eq!(head.next_seq, 5);
        assert_eq!(head.head, events[4].hash);
        // Verification can resume from any head.
        let mid = ChainHead { next_seq: 2, head: events[1].hash };
        assert_eq!(verify_chain(mid, &events[2..]).unwrap(), head);
    }

    #[test]
    fn editing_a_record_is_detected() {
        let mut events = chain(5);
        events[2].record.outcome = Outcome::Failure;
        assert_eq!(verify_chain(ChainHead::GENESIS, &events), Err(ChainBreak::Altered { seq: 2, position: 2 }));
        let mut events = chain(5);
        events[3].record.details = json!({"b": 3, "a": [1, {"z": 1, "y": 3}]});
        assert_eq!(verify_chain(ChainHead::GENESIS, &events), Err(ChainBreak::Altered { seq: 3, position: 3 }));
    }

    #[test]
    fn deleting_a_record_is_detected() {
        let mut events = chain(5);
        events.remove(2);
        assert_eq!(
            verify_chain(ChainHead::GENESIS, &events),
            Err(ChainBreak::SequenceGap { expected: 2, found: 3, position: 2 })
        );
    }

    #[test]
    fn deleting_and_renumbering_is_still_detected() {
        let mut events = chain(5);
        events.remove(2);
        for (i, e) in events.iter_mut().enumerate() {
            e.seq = i as u64;
        }
        assert_eq!(verify_chain(ChainHead::GENESIS, &events), Err(ChainBreak::Unlinked { seq: 2, position: 2 }));
    }

    #[test]
    fn reordering_is_detected() {
        let mut events = chain(5);
        events.swap(1, 3);
        assert!(verify_chain(ChainHead::GENESIS, &events).is_err());
    }

    #[test]
    fn rehashing_one_record_breaks_the_next_link() {
        let mut events = chain(4);
        events[1].record.actor = Some("iss#mallory".into());
        events[1].hash = chain_hash(&events[1].prev_hash, 1, &events[1].record);
        assert_eq!(verify_chain(ChainHead::GENESIS, &events), Err(ChainBreak::Unlinked { seq: 2, position: 2 }));
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let v = json!({"b": 1, "a": {"d": [3, {"f": 1, "e": 2}], "c": null}});
        assert_eq!(canonical_json(&v), r#"{"a":{"c":null,"d":[3,{"e":2,"f":1}]},"b":1}"#);
    }

    #[test]
    fn stored_form_round_trips_and_still_verifies() {
        let events = chain(3);
        let lines: Vec<String> = events.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
        assert!(lines[0].contains(r#""action":"tool.called""#));
        assert!(lines[0].contains(&format!(r#""prev_hash":"{}""#, "0".repeat(64))));
        let back: Vec<ChainedEvent> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(back, events);
        assert!(verify_chain(ChainHead::GENESIS, &back).is_ok());
    }

    #[test]
    fn canonical_form_writes_strings_and_scalars_as_serde_json_does() {
        let v = json!({"z": "tab\tquote\"slash\\ é \u{1F600} \u{0001}", "n": -12.5e-3, "i": u64::MAX, "b": false,
                       "a": [null, 1.0, "x"], "k\"ey": {}});
        let mut expected = String::from("{");
        let mut keys: Vec<_> = v.as_object().unwrap().keys().collect();
        keys.sort();
        for (i, k) in keys.iter().enumerate() {
            if i > 0 {
                expected.push(',');
            }
            expected.push_str(&serde_json::to_string(k).unwrap());
            expected.push(':');
            expected.push_str(&serde_json::to_string(&v[k.as_str()]).unwrap());
        }
        expected.push('}');
        assert_eq!(canonical_json_value(&v), expected);
    }

    #[test]
    fn bounded_records_keep_no_caller_string_whole() {
        let huge = "u".repeat(1_000_000);
        let record = AuditRecord::new(Timestamp::from_secs(1), AuditAction::ToolCalled, Outcome::Failure)
            .actor(huge.clone())
            .target(huge.clone())
            .request_id(huge.clone())
            .details(json!({ "error": huge.clone(), "nested": [{ "uri": huge.clone() }], "small": 7 }))
            .bounded();
        let stored = serde_json::to_string(&record).unwrap();
        assert!(stored.len() < 2_000, "{} bytes", stored.len());
        assert_eq!(record.target.as_deref(), Some(crate::clip::clip(&huge, crate::clip::NAME_BYTES).as_ref()));
        assert_eq!(record.details["small"], 7);
        let short = AuditRecord::new(Timestamp::from_secs(1), AuditAction::ToolCalled, Outcome::Success).target("echo");
        assert_eq!(short.clone().bounded(), short, "short records are unchanged");
    }

    #[test]
    fn digest_ignores_key_order_but_not_values() {
        assert_eq!(digest_json(&json!({"a": 1, "b": 2})), digest_json(&json!({"b": 2, "a": 1})));
        assert_ne!(digest_json(&json!({"a": 1})), digest_json(&json!({"a": 2})));
        assert_eq!(digest_json(&json!(null)).len(), 64);
    }

    #[test]
    fn action_names_round_trip() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
            assert_eq!(serde_json::to_value(a).unwrap(), json!(a.as_str()));
        }
        assert_eq!(AuditAction::parse("nope"), None);
    }
}
