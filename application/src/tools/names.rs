//! `.dark` name tools: `dark_address_register` and `dark_address_resolve`, thin adapters
//! from arguments to the [`Names`] use case, which signs records and verifies them on
//! every resolve.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use qudag_domain::dark::DarkName;
use qudag_domain::rbac::Permission;
use rmcp::model::JsonObject;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::mcp::catalog::ToolResponse;
use crate::mcp::context::CallContext;
use crate::ports::SignedNameRecord;
use crate::tools::support::{QudagTool, ToolFailure, ToolSpec, b64, from_b64, parse, short, success};
pub use crate::usecases::names::{DEFAULT_TTL, MAX_TTL, Names, Resolution};
use crate::usecases::names::{NamesError, Registration};

/// The tool failure for `e`: invalid registrations name their argument, a registry outage
/// is the request's retryable refusal.
pub fn names_failure(e: NamesError) -> ToolFailure {
    match e {
        NamesError::InvalidAddress(_) => ToolFailure::argument("address", e.to_string()),
        NamesError::UnknownKeyAlgorithm { .. } => ToolFailure::argument("key_algorithm", e.to_string()),
        NamesError::KeyLength { .. } => ToolFailure::argument("public_key", e.to_string()),
        NamesError::Ttl => ToolFailure::argument("ttl_seconds", e.to_string()),
        NamesError::Taken { .. } | NamesError::UnderAnothersName { .. } => ToolFailure::argument("name", e.to_string()),
        NamesError::QuotaExceeded { .. } => ToolFailure::operation(e.to_string()),
        NamesError::CapacityExceeded { .. } => {
            ToolFailure::operation(format!("the name registry is unavailable ({e}); try again later"))
        }
        NamesError::Tampered { .. } | NamesError::Signing(_) | NamesError::NoEntropy(_) => {
            ToolFailure::operation(e.to_string())
        }
        NamesError::Unavailable(outage) => outage.into(),
    }
}

/// Who sees a record: its owner (who just registered it) sees all of it; a resolver sees
/// what it needs to reach the name — never who owns it, nor the signature, which covers the
/// owner and so would let anyone confirm a guess of who it is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Audience {
    Owner,
    Resolver,
}

fn record_json(record: &SignedNameRecord, audience: Audience) -> Value {
    let b = &record.body;
    let mut out = json!({
        "name": b.name.as_str(),
        "address": b.address,
        "public_key": b64(&b.public_key),
        "key_algorithm": b.key_algorithm,
        "quantum_fingerprint": qudag_domain::pqc::fingerprint(&b.public_key),
        "registered_at": b.registered_at.to_rfc3339(),
        "expires_at": b.expires_at.to_rfc3339(),
        "signature": {
            "algorithm": record.signature_algorithm,
            "signer_key_id": record.signer_key_id,
            "verified": true
        }
    });
    if audience == Audience::Owner {
        out["owner"] = json!(b.owner);
        out["signature"]["value"] = json!(b64(&record.signature));
    }
    out
}

fn record_schema(audience: Audience) -> Value {
    let mut schema = json!({
        "type": "object",
        "required": ["name", "address", "public_key", "key_algorithm", "quantum_fingerprint", "registered_at", "expires_at", "signature"],
        "properties": {
            "name": { "type": "string" },
            "address": { "type": "string" },
            "public_key": { "type": "string", "contentEncoding": "base64" },
            "key_algorithm": { "type": "string" },
            "quantum_fingerprint": { "type": "string", "description": "BLAKE3 of the public key, hex." },
            "registered_at": { "type": "string", "format": "date-time" },
            "expires_at": { "type": "string", "format": "date-time" },
            "signature": {
                "type": "object",
                "required": ["algorithm", "signer_key_id", "verified"],
                "properties": {
                    "algorithm": { "type": "string" },
                    "signer_key_id": { "type": "string" },
                    "verified": { "type": "boolean", "description": "The server checked the record's ML-DSA-65 signature before answering." }
                }
            }
        }
    });
    if audience == Audience::Owner {
        if let Some(required) = schema["required"].as_array_mut() {
            required.push(json!("owner"));
        }
        schema["properties"]["owner"] =
            json!({ "type": "string", "description": "You, as the registry knows you (issuer#subject)." });
        if let Some(required) = schema["properties"]["signature"]["required"].as_array_mut() {
            required.push(json!("value"));
        }
        schema["properties"]["signature"]["properties"]["value"] = json!({ "type": "string", "contentEncoding": "base64", "description": "The ML-DSA-65 signature over the record, owner included." });
    }
    schema
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
            description: "Resolve a .dark name to its network address and public key. The record's ML-DSA-65 signature is verified before anything is returned. Who owns the name is not shown.",
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
                    "record": record_schema(Audience::Resolver)
                }
            }),
            permission: Permission::NetworkRead,
            cost: 1,
            read_only: true,
            idempotent: true,
            destructive: false,
            irreversible: false,
        }
    }

    async fn run(&self, _cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ToolFailure> {
        let args: ResolveArgs = parse(arguments)?;
        let name = parse_name("address", &args.address)?;
        match self.0.resolve(&name).await.map_err(names_failure)? {
            Resolution::Verified(record) => {
                let text = format!(
                    "{name} → {} ({} key {}…, signature verified)",
                    record.body.address,
                    record.body.key_algorithm,
                    short(&qudag_domain::pqc::fingerprint(&record.body.public_key))
                );
                Ok(success(
                    json!({ "name": name.as_str(), "found": true, "record": record_json(&record, Audience::Resolver) }),
                    text,
                ))
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
            output: record_schema(Audience::Owner),
            permission: Permission::NetworkWrite,
            cost: 3,
            read_only: false,
            idempotent: false,
            destructive: false,
            irreversible: true,
        }
    }

    async fn run(&self, cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ToolFailure> {
        let args: RegisterArgs = parse(arguments)?;
        let name = parse_name("name", &args.name)?;
        let public_key = from_b64("public_key", &args.public_key)?;
        let registration = Registration {
            name: name.clone(),
            address: args.address,
            public_key,
            key_algorithm: args.key_algorithm,
            ttl: Duration::from_secs(args.ttl_seconds.unwrap_or(DEFAULT_TTL.as_secs())),
        };
        let record = self.0.register(&cx.principal, registration).await.map_err(names_failure)?;
        let text = format!("Registered {name} → {} until {}.", record.body.address, record.body.expires_at);
        Ok(success(record_json(&record, Audience::Owner), text))
    }
}
