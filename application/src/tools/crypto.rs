//! Post-quantum cryptography tools: `quantum_key_exchange` (ML-KEM, FIPS 203),
//! `quantum_sign` and `quantum_verify` (ML-DSA, FIPS 204).
//!
//! Private keys the server mints live in the caller's vault (category `key/<algorithm>`,
//! sealed like any secret) and are referred to by their handle, the vault entry id. They
//! are never returned — except to an admin who asks with `options.export_private_key`,
//! which is audited.
//!
//! Minting a key, or keeping a shared secret, stores a vault entry: besides the tool's own
//! `crypto:execute` it needs `vault:write` (role and scope), checked before anything is
//! made, and counts against the caller's vault quota.

use std::sync::Arc;

use async_trait::async_trait;
use qudag_domain::pqc::{DsaAlgorithm, DsaKeyPair, DsaSigningKey, KemAlgorithm, KemKeyPair, dsa, fingerprint, kem};
use qudag_domain::rbac::{Permission, Role, authorize};
use rmcp::model::JsonObject;
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::mcp::catalog::ToolResponse;
use crate::mcp::context::CallContext;
use crate::tools::support::{DataEncoding, QudagTool, ToolFailure, ToolSpec, b64, from_b64, parse, short, success};
use crate::tools::vault::{NewSecret, Selector, Vault, check_label, vault_failure};
use crate::usecases::keys::random;

/// The longest ML-DSA context string (FIPS 204).
pub const MAX_CONTEXT_LEN: usize = 255;
/// The largest message `quantum_sign` / `quantum_verify` take, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

fn key_category(algorithm: &str) -> String {
    format!("key/{algorithm}")
}

fn kem_algorithm(path: &str, name: &str) -> Result<KemAlgorithm, ToolFailure> {
    KemAlgorithm::parse(name).ok_or_else(|| {
        ToolFailure::argument(
            path,
            format!("unknown algorithm \"{name}\"; expected ml-kem-512, ml-kem-768 or ml-kem-1024"),
        )
    })
}

fn dsa_algorithm(path: &str, name: &str) -> Result<DsaAlgorithm, ToolFailure> {
    DsaAlgorithm::parse(name).ok_or_else(|| {
        ToolFailure::argument(path, format!("unknown algorithm \"{name}\"; expected ml-dsa-44, ml-dsa-65 or ml-dsa-87"))
    })
}

/// Store a freshly minted private key (its seed) in the caller's vault; the entry id is
/// the key's handle.
async fn hold_key(
    vault: &Vault,
    cx: &CallContext,
    algorithm: &str,
    label: Option<String>,
    seed: &[u8],
    public_key: &[u8],
) -> Result<String, ToolFailure> {
    let label = match label {
        Some(l) => {
            check_label("options.vault_label", &l)?;
            l
        }
        None => format!("{algorithm}-{}", short(&fingerprint(public_key))),
    };
    let entry = vault
        .put(
            &cx.principal,
            NewSecret {
                label,
                category: Some(key_category(algorithm)),
                tags: Vec::new(),
                plaintext: Zeroizing::new(seed.to_vec()),
                algorithm: KemAlgorithm::MlKem768,
                expires_at: None,
            },
        )
        .await
        .map_err(|e| vault_failure(e, "entry"))?;
    Ok(entry.id)
}

/// The seed behind `handle`, checked to be a key of `algorithm`.
async fn load_key(
    vault: &Vault,
    cx: &CallContext,
    path: &str,
    handle: &str,
    algorithm: &str,
) -> Result<Zeroizing<Vec<u8>>, ToolFailure> {
    let (entry, seed) = vault
        .open(&cx.request, &cx.principal, &Selector::Id(handle.to_owned()))
        .await
        .map_err(|e| vault_failure(e, path))?;
    if entry.category.as_deref() != Some(key_category(algorithm).as_str()) {
        return Err(ToolFailure::argument(
            path,
            format!("is not a {algorithm} key (it holds {})", entry.category.as_deref().unwrap_or("a secret")),
        ));
    }
    Ok(seed)
}

/// Refuse a call that would store a vault entry (`what`, to say so) unless the caller may
/// write to its vault; `instead` says how to do without, if one can.
fn require_vault_write(cx: &CallContext, what: &str, instead: &str) -> Result<(), ToolFailure> {
    let decision = authorize(cx.principal.roles(), cx.principal.scopes(), Permission::VaultWrite);
    if decision.allowed {
        return Ok(());
    }
    Err(ToolFailure::operation(format!(
        "{what} stores it in your vault, which needs the {} permission: {}{instead}",
        Permission::VaultWrite,
        decision.rule
    )))
}

/// Whether a private key is to be exported: refused, before anything is made, unless the
/// caller is an admin.
fn may_export(cx: &CallContext, requested: bool) -> Result<bool, ToolFailure> {
    if requested && !cx.principal.roles().contains(&Role::Admin) {
        return Err(ToolFailure::argument("options.export_private_key", "only an admin may export a private key"));
    }
    Ok(requested)
}

// ---------------------------------------------------------------------------------------
// quantum_key_exchange

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KexRole {
    Initiator,
    Responder,
}

#[derive(Debug, Default, Deserialize)]
struct KexOptions {
    #[serde(default)]
    derive_shared_secret: bool,
    store_in_vault: Option<bool>,
    vault_label: Option<String>,
    #[serde(default)]
    export_private_key: bool,
}

#[derive(Debug, Deserialize)]
struct KexArgs {
    algorithm: String,
    role: KexRole,
    encapsulated_key: Option<String>,
    public_key: Option<String>,
    key_handle: Option<String>,
    #[serde(default)]
    options: KexOptions,
}

/// `quantum_key_exchange`.
#[derive(Debug)]
pub struct KeyExchangeTool(pub Arc<Vault>);

fn kex_output_schema() -> Value {
    json!({
        "type": "object",
        "required": ["algorithm", "role", "step"],
        "properties": {
            "algorithm": { "type": "string" },
            "role": { "type": "string", "enum": ["initiator", "responder"] },
            "step": { "type": "string", "enum": ["keypair", "encapsulated", "decapsulated"] },
            "key_handle": { "type": "string", "description": "Refers to the private key the server holds for you." },
            "public_key": { "type": "string", "contentEncoding": "base64", "description": "The ML-KEM encapsulation key to give your peer." },
            "key_id": { "type": "string", "description": "BLAKE3 fingerprint of the public key." },
            "encapsulated_key": { "type": "string", "contentEncoding": "base64", "description": "The ciphertext to send back to the initiator." },
            "shared_secret_id": { "type": "string", "description": "BLAKE3 fingerprint of the shared secret: equal on both sides when the exchange worked." },
            "shared_secret": { "type": "string", "contentEncoding": "base64", "description": "Only with options.derive_shared_secret." },
            "shared_secret_entry": { "type": "string", "description": "The vault entry holding the shared secret (options.store_in_vault, the default)." },
            "private_key": { "type": "string", "contentEncoding": "base64", "description": "Only for admins asking with options.export_private_key: the FIPS 203 decapsulation key." }
        }
    })
}

#[async_trait]
impl QudagTool for KeyExchangeTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "quantum_key_exchange",
            title: "Post-quantum key exchange (ML-KEM)",
            description: "ML-KEM (FIPS 203) key exchange in two steps. Initiator: call with no encapsulated_key to get a key_handle and public_key; send the public_key to the peer. Responder: call with the peer's public_key to get encapsulated_key (and the shared secret). Initiator again: call with key_handle and encapsulated_key to obtain the same shared secret. Shared secrets are stored in your vault by default; private keys are never returned.",
            input: json!({
                "type": "object",
                "required": ["algorithm", "role"],
                "properties": {
                    "algorithm": { "type": "string", "enum": ["ml-kem-512", "ml-kem-768", "ml-kem-1024"] },
                    "role": { "type": "string", "enum": ["initiator", "responder"] },
                    "public_key": { "type": "string", "contentEncoding": "base64", "description": "Responder: the initiator's encapsulation key." },
                    "key_handle": { "type": "string", "description": "Initiator, second step: the handle from the first step." },
                    "encapsulated_key": { "type": "string", "contentEncoding": "base64", "description": "Initiator, second step: the responder's ciphertext." },
                    "options": {
                        "type": "object",
                        "properties": {
                            "derive_shared_secret": { "type": "boolean", "default": false, "description": "Return the shared secret itself." },
                            "store_in_vault": { "type": "boolean", "default": true, "description": "Keep the shared secret in your vault." },
                            "vault_label": { "type": "string", "description": "Label for what is stored in the vault." },
                            "export_private_key": { "type": "boolean", "default": false, "description": "Admins only: also return the private key (audited)." }
                        }
                    }
                }
            }),
            output: kex_output_schema(),
            permission: Permission::CryptoExecute,
            cost: 2,
            read_only: false,
            idempotent: false,
            destructive: false,
            irreversible: false,
        }
    }

    async fn run(&self, cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ToolFailure> {
        let args: KexArgs = parse(arguments)?;
        let algorithm = kem_algorithm("algorithm", &args.algorithm)?;
        let name = algorithm.as_str();
        match (args.role, args.encapsulated_key, args.public_key, args.key_handle) {
            (KexRole::Initiator, None, None, None) => {
                let export = may_export(cx, args.options.export_private_key)?;
                require_vault_write(cx, "Generating a key pair", "")?;
                let seed = Zeroizing::new(random::<64>()?);
                let pair = KemKeyPair::from_seed(algorithm, &seed);
                let handle =
                    hold_key(&self.0, cx, name, args.options.vault_label, seed.as_slice(), pair.encapsulation_key())
                        .await?;
                let key_id = fingerprint(pair.encapsulation_key());
                let mut out = json!({
                    "algorithm": name, "role": "initiator", "step": "keypair",
                    "key_handle": handle, "public_key": b64(pair.encapsulation_key()), "key_id": key_id,
                });
                if export {
                    self.0
                        .record_key_export(&cx.request, &cx.principal, &key_id)
                        .await
                        .map_err(|e| vault_failure(e, "entry"))?;
                    out["private_key"] = json!(b64(&pair.decapsulation_key()));
                }
                let text = format!(
                    "Generated an {name} key pair (key {}…). Send public_key to your peer; then call again with key_handle {handle} and the peer's encapsulated_key.",
                    short(&key_id)
                );
                Ok(success(out, text))
            }
            (KexRole::Initiator, Some(ct), None, Some(handle)) => {
                let ct = from_b64("encapsulated_key", &ct)?;
                let seed = load_key(&self.0, cx, "key_handle", &handle, name).await?;
                let seed: &[u8; 64] = seed
                    .as_slice()
                    .try_into()
                    .map_err(|_| ToolFailure::operation("the stored key is damaged".to_owned()))?;
                let pair = KemKeyPair::from_seed(algorithm, seed);
                let secret =
                    pair.decapsulate(&ct).map_err(|e| ToolFailure::argument("encapsulated_key", e.to_string()))?;
                let mut out =
                    json!({ "algorithm": name, "role": "initiator", "step": "decapsulated", "key_handle": handle });
                self.deliver(cx, &args.options, &secret, &mut out).await?;
                let id = out["shared_secret_id"].as_str().unwrap_or_default();
                let text = format!("Decapsulated the shared secret (id {}…).", id.get(..16).unwrap_or(id));
                Ok(success(out, text))
            }
            (KexRole::Initiator, Some(_), _, None) => Err(ToolFailure::argument(
                "key_handle",
                "is required with encapsulated_key (the handle from the first step)",
            )),
            (KexRole::Initiator, None, _, Some(_)) => Err(ToolFailure::argument(
                "encapsulated_key",
                "is required with key_handle (the responder's ciphertext)",
            )),
            (KexRole::Initiator, _, Some(_), _) => Err(ToolFailure::argument(
                "public_key",
                "is for the responder; the initiator gives nothing (first step) or key_handle and encapsulated_key",
            )),
            (KexRole::Responder, _, Some(pk), None) => {
                let pk = from_b64("public_key", &pk)?;
                let (ct, secret) = kem::encapsulate(algorithm, &pk, &random::<32>()?)
                    .map_err(|e| ToolFailure::argument("public_key", e.to_string()))?;
                let mut out = json!({
                    "algorithm": name, "role": "responder", "step": "encapsulated",
                    "encapsulated_key": b64(&ct), "key_id": fingerprint(&pk),
                });
                self.deliver(cx, &args.options, &secret, &mut out).await?;
                Ok(success(out, "Encapsulated a shared secret; send encapsulated_key to the initiator.".to_owned()))
            }
            (KexRole::Responder, _, None, _) => {
                Err(ToolFailure::argument("public_key", "is required for the responder (the initiator's public key)"))
            }
            (KexRole::Responder, _, Some(_), Some(_)) => {
                Err(ToolFailure::argument("key_handle", "is for the initiator's second step, not the responder"))
            }
        }
    }
}

impl KeyExchangeTool {
    async fn deliver(
        &self,
        cx: &CallContext,
        options: &KexOptions,
        secret: &Zeroizing<[u8; 32]>,
        out: &mut Value,
    ) -> Result<(), ToolFailure> {
        let id = fingerprint(secret.as_slice());
        out["shared_secret_id"] = json!(id);
        if options.store_in_vault.unwrap_or(true) {
            require_vault_write(
                cx,
                "Keeping the shared secret",
                "; pass options.store_in_vault: false (and options.derive_shared_secret: true to receive it)",
            )?;
            let label = match &options.vault_label {
                Some(l) => {
                    check_label("options.vault_label", l)?;
                    format!("{l}-shared")
                }
                None => format!("kex-{}", short(&id)),
            };
            let entry = self
                .0
                .put(
                    &cx.principal,
                    NewSecret {
                        label,
                        category: Some("shared-secret".into()),
                        tags: Vec::new(),
                        plaintext: Zeroizing::new(secret.to_vec()),
                        algorithm: KemAlgorithm::MlKem768,
                        expires_at: None,
                    },
                )
                .await
                .map_err(|e| vault_failure(e, "entry"))?;
            out["shared_secret_entry"] = json!(entry.id);
        }
        if options.derive_shared_secret {
            out["shared_secret"] = json!(b64(secret.as_slice()));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// quantum_sign

#[derive(Debug, Default, Deserialize)]
struct SignOptions {
    context: Option<String>,
    vault_label: Option<String>,
    #[serde(default)]
    export_private_key: bool,
}

#[derive(Deserialize)]
struct SignArgs {
    data: String,
    #[serde(default)]
    encoding: DataEncoding,
    algorithm: String,
    private_key: Option<String>,
    key_handle: Option<String>,
    #[serde(default)]
    options: SignOptions,
}

impl std::fmt::Debug for SignArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignArgs").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

fn message(encoding: DataEncoding, data: &str) -> Result<Vec<u8>, ToolFailure> {
    let bytes = encoding.decode("data", data)?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ToolFailure::argument(
            "data",
            format!("is {} bytes; at most {MAX_MESSAGE_BYTES} are allowed", bytes.len()),
        ));
    }
    Ok(bytes)
}

fn context(options_context: Option<&str>) -> Result<Vec<u8>, ToolFailure> {
    let ctx = options_context.unwrap_or_default().as_bytes().to_vec();
    if ctx.len() > MAX_CONTEXT_LEN {
        return Err(ToolFailure::argument(
            "options.context",
            format!("is {} bytes; FIPS 204 allows at most 255", ctx.len()),
        ));
    }
    Ok(ctx)
}

/// `quantum_sign`.
#[derive(Debug)]
pub struct SignTool(pub Arc<Vault>);

#[async_trait]
impl QudagTool for SignTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "quantum_sign",
            title: "Post-quantum signature (ML-DSA)",
            description: "Sign data with ML-DSA (FIPS 204, hedged). Use key_handle to sign with a key the server holds for you; with neither key_handle nor private_key a new key pair is generated and kept in your vault (its handle and public key are returned).",
            input: json!({
                "type": "object",
                "required": ["data", "algorithm"],
                "properties": {
                    "data": { "type": "string", "description": "The message (at most 1 MiB once decoded)." },
                    "encoding": DataEncoding::schema(),
                    "algorithm": { "type": "string", "enum": ["ml-dsa-44", "ml-dsa-65", "ml-dsa-87"] },
                    "key_handle": { "type": "string", "description": "A key the server holds for you (from an earlier quantum_sign)." },
                    "private_key": { "type": "string", "contentEncoding": "base64", "description": "Your own signing key: the 32-byte seed or the FIPS 204 encoded private key. Prefer key_handle." },
                    "options": {
                        "type": "object",
                        "properties": {
                            "context": { "type": "string", "maxLength": MAX_CONTEXT_LEN, "description": "FIPS 204 context string (domain separation)." },
                            "vault_label": { "type": "string", "description": "Label for a newly generated key." },
                            "export_private_key": { "type": "boolean", "default": false, "description": "Admins only: return a newly generated private key (audited)." }
                        }
                    }
                }
            }),
            output: json!({
                "type": "object",
                "required": ["algorithm", "signature", "public_key", "key_id", "message_digest"],
                "properties": {
                    "algorithm": { "type": "string" },
                    "signature": { "type": "string", "contentEncoding": "base64" },
                    "public_key": { "type": "string", "contentEncoding": "base64" },
                    "key_id": { "type": "string" },
                    "key_handle": { "type": "string" },
                    "message_digest": { "type": "string", "description": "BLAKE3 of the message, hex." },
                    "context": { "type": "string" },
                    "private_key": { "type": "string", "contentEncoding": "base64" }
                }
            }),
            permission: Permission::CryptoExecute,
            cost: 2,
            read_only: false,
            idempotent: false,
            destructive: false,
            irreversible: false,
        }
    }

    async fn run(&self, cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ToolFailure> {
        let args: SignArgs = parse(arguments)?;
        let algorithm = dsa_algorithm("algorithm", &args.algorithm)?;
        let name = algorithm.as_str();
        let msg = message(args.encoding, &args.data)?;
        let ctx = context(args.options.context.as_deref())?;
        let rnd = random::<32>()?;
        let sign_failure = |e: qudag_domain::pqc::PqcError| ToolFailure::operation(format!("signing failed: {e}"));
        let mut out = json!({ "algorithm": name, "message_digest": blake3::hash(&msg).to_hex().to_string() });
        let (signature, public_key) = match (args.private_key, args.key_handle) {
            (Some(_), Some(_)) => {
                return Err(ToolFailure::argument("private_key", "give private_key or key_handle, not both"));
            }
            (Some(sk), None) => {
                let sk = Zeroizing::new(from_b64("private_key", &sk)?);
                let key = DsaSigningKey::from_bytes(algorithm, &sk)
                    .map_err(|e| ToolFailure::argument("private_key", e.to_string()))?;
                (key.sign(&msg, &ctx, &rnd).map_err(sign_failure)?, key.verifying_key().to_vec())
            }
            (None, Some(handle)) => {
                let seed = load_key(&self.0, cx, "key_handle", &handle, name).await?;
                let seed: &[u8; 32] = seed
                    .as_slice()
                    .try_into()
                    .map_err(|_| ToolFailure::operation("the stored key is damaged".to_owned()))?;
                let pair = DsaKeyPair::from_seed(algorithm, seed);
                out["key_handle"] = json!(handle);
                (pair.sign(&msg, &ctx, &rnd).map_err(sign_failure)?, pair.verifying_key().to_vec())
            }
            (None, None) => {
                let export = may_export(cx, args.options.export_private_key)?;
                require_vault_write(
                    cx,
                    "Signing without key_handle or private_key generates a key pair and",
                    "; sign with key_handle or private_key instead",
                )?;
                let seed = Zeroizing::new(random::<32>()?);
                let pair = DsaKeyPair::from_seed(algorithm, &seed);
                let handle =
                    hold_key(&self.0, cx, name, args.options.vault_label, seed.as_slice(), pair.verifying_key())
                        .await?;
                out["key_handle"] = json!(handle);
                if export {
                    self.0
                        .record_key_export(&cx.request, &cx.principal, &fingerprint(pair.verifying_key()))
                        .await
                        .map_err(|e| vault_failure(e, "entry"))?;
                    out["private_key"] = json!(b64(&pair.signing_key_encoded()));
                }
                (pair.sign(&msg, &ctx, &rnd).map_err(sign_failure)?, pair.verifying_key().to_vec())
            }
        };
        let key_id = fingerprint(&public_key);
        out["signature"] = json!(b64(&signature));
        out["public_key"] = json!(b64(&public_key));
        out["key_id"] = json!(key_id);
        if let Some(c) = args.options.context {
            out["context"] = json!(c);
        }
        let text = format!(
            "Signed {} bytes with {name} (key {}…): {} byte signature.",
            msg.len(),
            short(&key_id),
            signature.len()
        );
        Ok(success(out, text))
    }
}

// ---------------------------------------------------------------------------------------
// quantum_verify

#[derive(Debug, Deserialize)]
struct VerifyArgs {
    data: String,
    #[serde(default)]
    encoding: DataEncoding,
    algorithm: String,
    signature: String,
    public_key: String,
    #[serde(default)]
    options: SignOptions,
}

/// `quantum_verify`.
#[derive(Debug)]
pub struct VerifyTool;

#[async_trait]
impl QudagTool for VerifyTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "quantum_verify",
            title: "Verify a post-quantum signature (ML-DSA)",
            description: "Verify an ML-DSA (FIPS 204) signature over data with a public key. A signature that does not verify is a normal result with valid=false.",
            input: json!({
                "type": "object",
                "required": ["data", "algorithm", "signature", "public_key"],
                "properties": {
                    "data": { "type": "string" },
                    "encoding": DataEncoding::schema(),
                    "algorithm": { "type": "string", "enum": ["ml-dsa-44", "ml-dsa-65", "ml-dsa-87"] },
                    "signature": { "type": "string", "contentEncoding": "base64" },
                    "public_key": { "type": "string", "contentEncoding": "base64" },
                    "options": {
                        "type": "object",
                        "properties": { "context": { "type": "string", "maxLength": MAX_CONTEXT_LEN } }
                    }
                }
            }),
            output: json!({
                "type": "object",
                "required": ["valid", "algorithm", "key_id", "message_digest"],
                "properties": {
                    "valid": { "type": "boolean" },
                    "algorithm": { "type": "string" },
                    "key_id": { "type": "string" },
                    "message_digest": { "type": "string" }
                }
            }),
            permission: Permission::CryptoExecute,
            cost: 1,
            read_only: true,
            idempotent: true,
            destructive: false,
            irreversible: false,
        }
    }

    async fn run(&self, _cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ToolFailure> {
        let args: VerifyArgs = parse(arguments)?;
        let algorithm = dsa_algorithm("algorithm", &args.algorithm)?;
        let msg = message(args.encoding, &args.data)?;
        let ctx = context(args.options.context.as_deref())?;
        let public_key = from_b64("public_key", &args.public_key)?;
        let signature = from_b64("signature", &args.signature)?;
        if public_key.len() != algorithm.verifying_key_len() {
            return Err(ToolFailure::argument(
                "public_key",
                format!(
                    "is {} bytes; an {} public key is {}",
                    public_key.len(),
                    algorithm.as_str(),
                    algorithm.verifying_key_len()
                ),
            ));
        }
        if signature.len() != algorithm.signature_len() {
            return Err(ToolFailure::argument(
                "signature",
                format!(
                    "is {} bytes; an {} signature is {}",
                    signature.len(),
                    algorithm.as_str(),
                    algorithm.signature_len()
                ),
            ));
        }
        let valid = match dsa::verify(algorithm, &public_key, &msg, &ctx, &signature) {
            Ok(()) => true,
            Err(qudag_domain::pqc::PqcError::BadSignature) => false,
            Err(e) => return Err(ToolFailure::argument("public_key", e.to_string())),
        };
        let key_id = fingerprint(&public_key);
        let text = if valid {
            format!("Valid {} signature by key {}….", algorithm.as_str(), short(&key_id))
        } else {
            format!("The signature does NOT verify for key {}….", short(&key_id))
        };
        Ok(success(
            json!({ "valid": valid, "algorithm": algorithm.as_str(), "key_id": key_id, "message_digest": blake3::hash(&msg).to_hex().to_string() }),
            text,
        ))
    }
}
