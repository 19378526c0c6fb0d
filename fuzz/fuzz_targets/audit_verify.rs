//! Audit files through the offline verifier (`qudag-mcp audit verify`): line reading, event
//! parsing, the hash chain, checkpoints, file ordering and the report.
//!
//! Input: JSON lines; a line `---` starts the next file. With a first line `rechain`,
//! every line that parses as an event gets the `prev_hash` and `hash` that link it to the
//! event before it, so the fuzzer reaches what lies past the hash checks (and checkpoint
//! placeholders are filled in, see `rechain`); with `key` in it too, checkpoint signatures
//! are checked with the target's key.
#![no_main]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use qudag_adapter_file::{CheckpointKey, verify_with};
use qudag_domain::audit::{ChainHash, ChainedEvent, chain_hash, checkpoint_message};
use qudag_domain::pqc::{DSA_SEED_LEN, DsaAlgorithm, DsaKeyPair, fingerprint};
use serde_json::Value;

fn dir() -> PathBuf {
    std::env::temp_dir().join(format!("qudag-fuzz-audit-{}", std::process::id()))
}

/// The key that signs checkpoints, and its public half as the verifier takes it.
fn checkpoint_key() -> &'static (DsaKeyPair, CheckpointKey) {
    static KEY: OnceLock<(DsaKeyPair, CheckpointKey)> = OnceLock::new();
    KEY.get_or_init(|| {
        let pair = DsaKeyPair::from_seed(DsaAlgorithm::MlDsa65, &[3; DSA_SEED_LEN]);
        let public = CheckpointKey { algorithm: DsaAlgorithm::MlDsa65, verifying_key: pair.verifying_key().to_vec() };
        (pair, public)
    })
}

/// Give each event the hashes that chain it to the previous one. In a checkpoint's
/// details, `"covers_hash": "ANCHOR"` becomes the hash of the event at `covers_seq`,
/// `"key_id": "KEY"` the target key's id and `"signature": "SIGN"` its signature.
fn rechain(text: &str) -> String {
    let mut prev: Option<ChainHash> = None;
    let mut hashes = HashMap::new();
    let mut out = String::new();
    for line in text.split('\n') {
        match serde_json::from_str::<ChainedEvent>(line) {
            Ok(mut event) => {
                fill_checkpoint(&mut event.record.details, &hashes);
                event.prev_hash = prev.unwrap_or(if event.seq == 0 { ChainHash::GENESIS } else { event.prev_hash });
                event.hash = chain_hash(&event.prev_hash, event.seq, &event.record);
                prev = Some(event.hash);
                hashes.insert(event.seq, event.hash);
                out.push_str(&serde_json::to_string(&event).unwrap_or_default());
            }
            Err(_) => out.push_str(line),
        }
        out.push('\n');
    }
    out.pop();
    out
}

fn fill_checkpoint(details: &mut Value, hashes: &HashMap<u64, ChainHash>) {
    let covers = details.get("covers_seq").and_then(Value::as_u64);
    let Some(d) = details.as_object_mut() else { return };
    if d.get("covers_hash").and_then(Value::as_str) == Some("ANCHOR")
        && let Some(hash) = covers.and_then(|c| hashes.get(&c))
    {
        d.insert("covers_hash".into(), hash.to_string().into());
    }
    let (pair, key) = checkpoint_key();
    if d.get("key_id").and_then(Value::as_str) == Some("KEY") {
        d.insert("key_id".into(), fingerprint(&key.verifying_key).into());
    }
    if d.get("signature").and_then(Value::as_str) == Some("SIGN") {
        let hash: Option<ChainHash> =
            d.get("covers_hash").and_then(Value::as_str).and_then(|h| h.to_owned().try_into().ok());
        if let (Some(covers), Some(hash)) = (covers, hash)
            && let Ok(signature) = pair.sign(&checkpoint_message(covers, &hash), b"", &[0; 32])
        {
            d.insert("signature".into(), hex_encode(&signature).into());
        }
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (mode, body) = text.split_once('\n').unwrap_or(("", &text));
    let content = if mode.starts_with("rechain") { rechain(body) } else { text.to_string() };
    let dir = dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    for (i, part) in content.split("\n---\n").enumerate() {
        std::fs::write(dir.join(format!("audit-{i:020}.jsonl")), part).expect("writing a temporary file");
    }
    let key = mode.contains("key").then(|| &checkpoint_key().1);
    let report = verify_with(std::slice::from_ref(&dir), key).expect("the files can be read");
    let _ = report.to_string();
});
