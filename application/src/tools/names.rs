//! `.dark` names: `dark_address_register` and `dark_address_resolve`.
//!
//! The registry signs every record with the server's ML-DSA-65 key over the canonical
//! bytes of `qudag_domain::dark::NameRecordBody`, and checks that signature again on every
//! resolve: a record edited in storage resolves as an integrity failure, never as data.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use qudag_domain::dark::{DarkName, NameRecordBody, check_address};
use qudag_domain::pqc::{DsaAlgorithm, KemAlgorithm, dsa};
use qudag_domain::rbac::Permission;
use rmcp::model::JsonObject;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::mcp::catalog::ToolResponse;
use crate::mcp::context::CallContext;
use crate::ports::{Clock, NameRegistry, NameRegistryError, SignedNameRecord};
use crate::tools::keys::ServerKeys;
use crate::tools::support::{QudagTool, ToolFailure, ToolSpec, b64, from_b64, parse, random, short, success};
use crate::tools::vault::owner;

/// The default lifetime of a registration.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// The longest lifetime of a registration.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// The names use case.
pub struct Names {
    registry: Arc<dyn NameRegistry>,
    keys: Arc<ServerKeys>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Names {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Names").finish_non_exhaustive()
    }
}

fn registry_failure(e: NameRegistryError) -> ToolFailure {
    match e {
        NameRegistryError::Taken { name } => {
            ToolFailure::argument("name", format!("{name} is registered to someone else"))
        }
        other => {
            tracing::error!(error = %other, "Name registry failed");
            ToolFailure::operation(format!("the name registry is unavailable ({other}); try again later"))
        }
    }
}

/// What resolving a name found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// A live record whose signature verified.
    Verified(Box<SignedNameRecord>),
    /// No live record.
    Unknown,
}

impl Names {
    /// The use case over `registry`, signing with `keys`.
    pub fn new(registry: Arc<dyn NameRegistry>, keys: Arc<ServerKeys>, clock: Arc<dyn Clock>) -> Self {
        Self { registry, keys, clock }
    }

    /// Sign and store a record.
    ///
    /// # Errors
    /// Taken by someone else, or the registry is unavailable.
    pub async fn register(&self, body: NameRecordBody) -> Result<SignedNameRecord, ToolFailure> {
        let signature = self
            .keys
            .signing()
            .sign(&body.signing_bytes(), b"", &random::<32>()?)
            .map_err(|e| ToolFailure::operation(format!("signing failed: {e}")))?;
        let record = SignedNameRecord {
            body,
            signature_algorithm: DsaAlgorithm::MlDsa65.as_str().to_owned(),
            signer_key_id: self.keys.signing_key_id(),
            signature,
        };
        self.registry.register(&record, self.clock.now()).await.map_err(registry_failure)?;
        Ok(record)
    }

    /// Resolve and verify.
    ///
    /// # Errors
    /// The registry is unavailable, or the stored record fails verification.
    pub async fn resolve(&self, name: &DarkName) -> Result<Resolution, ToolFailure> {
        let Some(record) = self.registry.resolve(name, self.clock.now()).await.map_err(registry_failure)? else {
            return Ok(Resolution::Unknown);
        };
        let tampered = |why: &str| {
            tracing::error!(%name, why, "A stored name record failed verification");
            ToolFailure::operation(format!("the record for {name} failed signature verification and was not returned"))
        };
        if record.signature_algorithm != DsaAlgorithm::MlDsa65.as_str()
            || record.signer_key_id != self.keys.signing_key_id()
        {
            return Err(tampered("signed by another key"));
        }
        if &record.body.name != name {
            return Err(tampered("stored under another name"));
        }
        dsa::verify(
            DsaAlgorithm::MlDsa65,
            self.keys.signing().verifying_key(),
            &record.body.signing_bytes(),
            b"",
            &record.signature,
        )
        .map_err(|_| tampered("bad signature"))?;
        Ok(Resolution::Verified(Box::new(record)))
    }

    /// Remove the owner's record.
    ///
    /// # Errors
    /// The registry is unavailable.
    pub async fn remove(&self, name: &DarkName, owner: &str) -> Result<bool, ToolFailure> {
        self.registry.remove(name, owner).await.map_err(registry_failure)
    }

    /// The live record count.
    ///
    /// # Errors
    /// The registry is unavailable.
    pub async fn count(&self) -> Result<u64, ToolFailure> {
        self.registry.count(self.clock.now()).await.map_err(registry_failure)
    }
}

fn record_json(record: &SignedNameRecord) -> Value {
    let b = &record.body;
    json!({
        "name": b.name.as_str(),
        "address": b.address,
        "public_key": b64(&b.public_key),
        "key_algorithm": b.key_algorithm,
        "quantum_fingerprint": qudag_domain::pqc::fingerprint(&b.public_key),
        "owner": b.owner,
        "registered_at": b.registered_at.to_rfc3339(),
        "expires_at": b.expires_at.to_rfc3339(),
        "signature": {
            "algorithm": record.signature_algorithm,
            "signer_key_id": record.signer_key_id,
            "value": b64(&record.signature),
            "verified": true
        }
    })
}

fn record_schema() -> Value {
    json!({
        "type": "object",
        "required": ["name", "address", "public_key", "key_algorithm", "quantum_fingerprint", "owner", "registered_at", "expires_at", "signature"],
        "properties": {
            "name": { "type": "string" },
            "address": { "type": "string" },
            "public_key": { "type": "string", "contentEncoding": "base64" },
            "key_algorithm": { "type": "string" },
            "quantum_fingerprint": { "type": "string", "description": "BLAKE3 of the public key, hex." },
            "owner": { "type": "string" },
            "registered_at": { "type": "string", "format": "date-time" },
            "expires_at": { "type": "string", "format": "date-time" },
            "signature": {
                "type": "object",
                "required": ["algorithm", "signer_key_id", "value", "verified"],
                "properties": {
                    "algorithm": { "type": "string" },
                    "signer_key_id": { "type": "string" },
                    "value": { "type": "string", "contentEncoding": "base64" },
                    "verified": { "type": "boolean" }
                }
            }
        }
    })
}

fn parse_name(path: &str, raw: &str) -> Result<DarkName, ToolFailure> {
    DarkName::parse(raw).map_err(|e| ToolFailure::argument(path, e.to_string()))
}

// ---------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct ResolveArgs {
    address: String,
}

/// `dark_address_resolve`.
#[derive(Debug)]
pub struct ResolveTool(pub Arc<Names>);

#[async_trait]
impl QudagTool for ResolveTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "dark_address_resolve",
            title: "Resolve a .dark address",
            description: "Resolve a .dark name to its network address and public key. The record's ML-DSA-65 signature is verified before anything is returned.",
            input: json!({
                "type": "object",
                "required": ["address"],
                "properties": {
                    "address": { "type": "string", "description": "The .dark name, e.g. alice.dark." },
                    "options": { "type": "object", "description": "Accepted for compatibility; records are always verified." }
                }
            }),
            output: json!({
                "type": "object",
                "required": ["name", "found"],
                "properties": {
                    "name": { "type": "string" },
                    "found": { "type": "boolean" },
                    "record": record_schema()
                }
            }),
            permission: Permission::NetworkRead,
            cost: 1,
            read_only: true,
            idempotent: true,
            destructive: false,
        }
    }

    async fn run(&self, _cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ToolFailure> {
        let args: ResolveArgs = parse(arguments)?;
        let name = parse_name("address", &args.address)?;
        match self.0.resolve(&name).await? {
            Resolution::Verified(record) => {
                let text = format!(
                    "{name} → {} ({} key {}…, signature verified)",
                    record.body.address,
                    record.body.key_algorithm,
                    short(&qudag_domain::pqc::fingerprint(&record.body.public_key))
                );
                Ok(success(json!({ "name": name.as_str(), "found": true, "record": record_json(&record) }), text))
            }
            Resolution::Unknown => {
                Ok(success(json!({ "name": name.as_str(), "found": false }), format!("{name} is not registered.")))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct RegisterArgs {
    name: String,
    address: String,
    public_key: String,
    key_algorithm: String,
    ttl_seconds: Option<u64>,
}

/// `dark_address_register`.
#[derive(Debug)]
pub struct RegisterTool(pub Arc<Names>);

#[async_trait]
impl QudagTool for RegisterTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "dark_address_register",
            title: "Register a .dark address",
            description: "Register (or update your own) .dark name pointing at a network address and a post-quantum public key. The registry signs the record with its ML-DSA-65 key.",
            input: json!({
                "type": "object",
                "required": ["name", "address", "public_key", "key_algorithm"],
                "properties": {
                    "name": { "type": "string", "description": "e.g. alice.dark (labels of a-z, 0-9, -)." },
                    "address": { "type": "string", "maxLength": 512, "description": "Where the name points, e.g. quic://203.0.113.7:4001." },
                    "public_key": { "type": "string", "contentEncoding": "base64", "description": "The owner's ML-DSA verifying key or ML-KEM encapsulation key." },
                    "key_algorithm": { "type": "string", "enum": ["ml-dsa-44", "ml-dsa-65", "ml-dsa-87", "ml-kem-512", "ml-kem-768", "ml-kem-1024"] },
                    "ttl_seconds": { "type": "integer", "minimum": 60, "maximum": MAX_TTL.as_secs(), "default": DEFAULT_TTL.as_secs() }
                }
            }),
            output: record_schema(),
            permission: Permission::NetworkWrite,
            cost: 3,
            read_only: false,
            idempotent: false,
            destructive: false,
        }
    }

    async fn run(&self, cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ToolFailure> {
        let args: RegisterArgs = parse(arguments)?;
        let name = parse_name("name", &args.name)?;
        check_address(&args.address).map_err(|e| ToolFailure::argument("address", e.to_string()))?;
        let public_key = from_b64("public_key", &args.public_key)?;
        let expected = match (DsaAlgorithm::parse(&args.key_algorithm), KemAlgorithm::parse(&args.key_algorithm)) {
            (Some(a), _) => a.verifying_key_len(),
            (None, Some(a)) => a.encapsulation_key_len(),
            (None, None) => {
                return Err(ToolFailure::argument(
                    "key_algorithm",
                    format!(
                        "unknown algorithm \"{}\"; expected ml-dsa-44/65/87 or ml-kem-512/768/1024",
                        args.key_algorithm
                    ),
                ));
            }
        };
        if public_key.len() != expected {
            return Err(ToolFailure::argument(
                "public_key",
                format!("is {} bytes; a {} key is {expected} bytes", public_key.len(), args.key_algorithm),
            ));
        }
        let ttl = Duration::from_secs(args.ttl_seconds.unwrap_or(DEFAULT_TTL.as_secs()));
        if ttl < Duration::from_secs(60) || ttl > MAX_TTL {
            return Err(ToolFailure::argument("ttl_seconds", format!("must be between 60 and {}", MAX_TTL.as_secs())));
        }
        let now = self.0.clock.now();
        let body = NameRecordBody {
            name: name.clone(),
            address: args.address,
            public_key,
            key_algorithm: args.key_algorithm,
            owner: owner(cx),
            registered_at: now,
            expires_at: now.saturating_add(ttl),
        };
        let record = self.0.register(body).await?;
        let text = format!("Registered {name} → {} until {}.", record.body.address, record.body.expires_at);
        Ok(success(record_json(&record), text))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;

    use qudag_domain::Timestamp;

    use super::*;
    use crate::ports::MockNameRegistry;
    use crate::testkit::ManualClock;

    fn names_over(stored: Arc<Mutex<Option<SignedNameRecord>>>) -> Names {
        let mut registry = MockNameRegistry::new();
        let on_register = stored.clone();
        registry.expect_register().returning(move |r, _| {
            *on_register.lock().unwrap() = Some(r.clone());
            Ok(())
        });
        registry.expect_resolve().returning(move |_, _| Ok(stored.lock().unwrap().clone()));
        Names::new(
            Arc::new(registry),
            Arc::new(ServerKeys::ephemeral().unwrap()),
            Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000))),
        )
    }

    fn body(name: &DarkName) -> NameRecordBody {
        NameRecordBody {
            name: name.clone(),
            address: "quic://203.0.113.7:4001".into(),
            public_key: vec![9; 32],
            key_algorithm: "ml-kem-512".into(),
            owner: "iss#alice".into(),
            registered_at: Timestamp::from_secs(1_800_000_000),
            expires_at: Timestamp::from_secs(1_800_003_600),
        }
    }

    #[tokio::test]
    async fn a_record_altered_in_storage_is_refused() {
        let stored = Arc::new(Mutex::new(None));
        let names = names_over(stored.clone());
        let name = DarkName::parse("alice.dark").unwrap();
        names.register(body(&name)).await.unwrap();
        assert!(matches!(names.resolve(&name).await.unwrap(), Resolution::Verified(_)));

        let original = stored.lock().unwrap().clone().unwrap();
        let tamper: [&dyn Fn(&mut SignedNameRecord); 5] = [
            &|r| r.body.address = "quic://198.51.100.1:4001".into(),
            &|r| r.body.owner = "iss#mallory".into(),
            &|r| r.body.expires_at = Timestamp::from_secs(1_900_000_000),
            &|r| r.signature[0] ^= 1,
            &|r| r.signer_key_id = "0".repeat(64),
        ];
        for (i, change) in tamper.iter().enumerate() {
            let mut record = original.clone();
            change(&mut record);
            *stored.lock().unwrap() = Some(record);
            let refused = names.resolve(&name).await.unwrap_err();
            assert!(refused.message.contains("failed signature verification"), "change {i}: {refused}");
        }
        // A record stored under another name (moved rows) is refused too.
        let mut moved = original;
        moved.body.name = DarkName::parse("bob.dark").unwrap();
        *stored.lock().unwrap() = Some(moved);
        assert!(names.resolve(&name).await.is_err());
    }
}
