//! The vault's four tools (`vault_quantum_store`, `vault_quantum_retrieve`,
//! `vault_quantum_list`, `vault_quantum_delete`): arguments in, the
//! [`Vault`](crate::usecases::vault::Vault) use case, results out.
//!
//! Sealing, ownership and the audit of refused access are the use case's; here the
//! arguments are checked and named, and a [`VaultError`] becomes the tool error it has
//! always been — except a store outage, which is the request's retryable refusal.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use qudag_domain::Timestamp;
use qudag_domain::pqc::KemAlgorithm;
use qudag_domain::rbac::Permission;
use rmcp::model::JsonObject;
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::mcp::catalog::ToolResponse;
use crate::mcp::context::CallContext;
use crate::ports::{VaultEntrySummary, VaultListQuery};
use crate::tools::support::{DataEncoding, QudagTool, ToolFailure, ToolSpec, b64, parse, success};
use crate::usecases::vault::VaultError;
pub use crate::usecases::vault::{KEY_CATEGORY_PREFIX, MAX_LABEL_LEN, MAX_SECRET_BYTES, NewSecret, Selector, Vault};

/// The tool failure for `e`; a missing entry is blamed on the argument at `not_found_at`.
pub fn vault_failure(e: VaultError, not_found_at: &str) -> ToolFailure {
    match e {
        VaultError::NotFound => ToolFailure::argument(not_found_at, e.to_string()),
        VaultError::Vanished => ToolFailure::argument("entry", e.to_string()),
        VaultError::LabelTaken { .. } => ToolFailure::argument("secret.label", e.to_string()),
        VaultError::QuotaExceeded { .. } => ToolFailure::operation(e.to_string()),
        VaultError::UnsupportedAlgorithm => ToolFailure::argument("encryption.algorithm", e.to_string()),
        VaultError::CapacityExceeded { .. } | VaultError::IdTaken => {
            ToolFailure::operation(format!("the vault is unavailable ({e}); try again later"))
        }
        VaultError::Integrity { .. } | VaultError::Sealing(_) | VaultError::NoEntropy(_) => {
            ToolFailure::operation(e.to_string())
        }
        VaultError::Unavailable(outage) => outage.into(),
    }
}

/// Where a missing entry named by `selector` is blamed.
fn selector_path(selector: &Selector) -> &'static str {
    match selector {
        Selector::Id(_) => "entry.entry_id",
        Selector::Label(_) => "entry.label",
    }
}

/// The JSON shape of an entry's metadata.
pub fn summary_json(e: &VaultEntrySummary) -> Value {
    json!({
        "entry_id": e.id,
        "label": e.label,
        "category": e.category,
        "tags": e.tags,
        "algorithm": e.algorithm,
        "size": e.size,
        "created_at": e.created_at.to_rfc3339(),
        "expires_at": e.expires_at.map(Timestamp::to_rfc3339),
    })
}

fn summary_schema() -> Value {
    json!({
        "type": "object",
        "required": ["entry_id", "label", "algorithm", "size", "created_at", "tags"],
        "properties": {
            "entry_id": { "type": "string" },
            "label": { "type": "string" },
            "category": { "type": ["string", "null"] },
            "tags": { "type": "array", "items": { "type": "string" } },
            "algorithm": { "type": "string" },
            "size": { "type": "integer", "minimum": 0 },
            "created_at": { "type": "string", "format": "date-time" },
            "expires_at": { "type": ["string", "null"], "format": "date-time" }
        }
    })
}

fn entry_selector_schema() -> Value {
    json!({
        "type": "object",
        "description": "Which entry: by `entry_id` or by `label` (one of them).",
        "properties": {
            "entry_id": { "type": "string", "description": "The id returned by vault_quantum_store." },
            "label": { "type": "string", "description": "Your label for the entry." }
        }
    })
}

#[derive(Debug, Deserialize)]
struct EntryArg {
    entry_id: Option<String>,
    label: Option<String>,
}

impl EntryArg {
    fn selector(self) -> Result<Selector, ToolFailure> {
        match (self.entry_id, self.label) {
            (Some(id), None) => Ok(Selector::Id(id)),
            (None, Some(label)) => Ok(Selector::Label(label)),
            (Some(_), Some(_)) => Err(ToolFailure::argument("entry", "give entry_id or label, not both")),
            (None, None) => Err(ToolFailure::argument("entry", "give entry_id or label")),
        }
    }
}

/// Check a label: 1–128 characters, no control characters.
///
/// # Errors
/// A [`ToolFailure`] naming `path`.
pub fn check_label(path: &str, label: &str) -> Result<(), ToolFailure> {
    if label.is_empty() || label.chars().count() > MAX_LABEL_LEN || label.chars().any(char::is_control) {
        return Err(ToolFailure::argument(path, "must be 1-128 characters without control characters"));
    }
    Ok(())
}

/// Parse a vault algorithm argument at `path`.
///
/// # Errors
/// A [`ToolFailure`] naming `path` (HQC is named and refused: not standardised yet).
pub fn vault_algorithm(path: &str, name: &str) -> Result<KemAlgorithm, ToolFailure> {
    match KemAlgorithm::parse(name) {
        Some(a @ (KemAlgorithm::MlKem768 | KemAlgorithm::MlKem1024)) => Ok(a),
        Some(KemAlgorithm::MlKem512) => {
            Err(ToolFailure::argument(path, "the vault seals with ml-kem-768 or ml-kem-1024"))
        }
        None if name.starts_with("hqc") => Err(ToolFailure::argument(
            path,
            format!("\"{name}\" is not supported: HQC has no final standard yet; use ml-kem-768 or ml-kem-1024"),
        )),
        None => Err(ToolFailure::argument(
            path,
            format!("unknown algorithm \"{name}\"; expected ml-kem-768 or ml-kem-1024"),
        )),
    }
}

// ---------------------------------------------------------------------------------------
// vault_quantum_store

#[derive(Debug, Deserialize)]
struct StoreArgs {
    secret: SecretArg,
    #[serde(default)]
    encryption: Option<EncryptionArg>,
    #[serde(default)]
    access_control: Option<AccessArg>,
}

#[derive(Deserialize)]
struct SecretArg {
    label: String,
    data: String,
    #[serde(default)]
    encoding: DataEncoding,
    category: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
}

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretArg").field("label", &self.label).finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct EncryptionArg {
    algorithm: String,
}

#[derive(Debug, Deserialize)]
struct AccessArg {
    expiry_time: Option<String>,
    ttl_seconds: Option<u64>,
}

/// `vault_quantum_store`.
#[derive(Debug)]
pub struct StoreTool(pub Arc<Vault>);

#[async_trait]
impl QudagTool for StoreTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "vault_quantum_store",
            title: "Store a secret in the quantum-safe vault",
            description: "Store a secret for the calling principal, sealed at rest with ML-KEM (FIPS 203) + HKDF-SHA256 + ChaCha20-Poly1305. Returns the entry id; the secret itself is never echoed.",
            input: json!({
                "type": "object",
                "required": ["secret"],
                "properties": {
                    "secret": {
                        "type": "object",
                        "required": ["label", "data"],
                        "properties": {
                            "label": { "type": "string", "minLength": 1, "maxLength": MAX_LABEL_LEN, "description": "Your unique name for it." },
                            "data": { "type": "string", "description": "The secret (at most 64 KiB once decoded)." },
                            "encoding": DataEncoding::schema(),
                            "category": { "type": "string", "maxLength": 64 },
                            "tags": { "type": "array", "items": { "type": "string", "maxLength": 64 }, "maxItems": 16 }
                        }
                    },
                    "encryption": {
                        "type": "object",
                        "properties": {
                            "algorithm": { "type": "string", "enum": ["ml-kem-768", "ml-kem-1024"], "default": "ml-kem-768" }
                        }
                    },
                    "access_control": {
                        "type": "object",
                        "properties": {
                            "expiry_time": { "type": "string", "format": "date-time", "description": "When the entry stops being retrievable (RFC 3339)." },
                            "ttl_seconds": { "type": "integer", "minimum": 1, "description": "Alternatively, a lifetime in seconds." }
                        }
                    }
                }
            }),
            output: summary_schema_with_key(),
            permission: Permission::VaultWrite,
            cost: 2,
            read_only: false,
            idempotent: false,
            destructive: false,
            irreversible: false,
        }
    }

    async fn run(&self, cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ToolFailure> {
        self.store(cx, arguments).await
    }
}

fn summary_schema_with_key() -> Value {
    let mut schema = summary_schema();
    schema["properties"]["key_id"] =
        json!({ "type": "string", "description": "Fingerprint of the vault key that sealed it." });
    if let Some(required) = schema["required"].as_array_mut() {
        required.push(json!("key_id"));
    }
    schema
}

fn expiry(now: Timestamp, access: Option<AccessArg>) -> Result<Option<Timestamp>, ToolFailure> {
    let Some(access) = access else { return Ok(None) };
    match (access.expiry_time, access.ttl_seconds) {
        (Some(_), Some(_)) => Err(ToolFailure::argument("access_control", "give expiry_time or ttl_seconds, not both")),
        (Some(text), None) => {
            let t = Timestamp::parse_rfc3339(&text).ok_or_else(|| {
                ToolFailure::argument(
                    "access_control.expiry_time",
                    "must be an RFC 3339 date-time, e.g. 2027-01-31T12:00:00Z",
                )
            })?;
            if t <= now {
                return Err(ToolFailure::argument("access_control.expiry_time", "is in the past"));
            }
            Ok(Some(t))
        }
        (None, Some(0)) => Err(ToolFailure::argument("access_control.ttl_seconds", "must be at least 1")),
        (None, Some(secs)) => Ok(Some(now.saturating_add(Duration::from_secs(secs)))),
        (None, None) => Ok(None),
    }
}

impl StoreTool {
    async fn store(&self, cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ToolFailure> {
        let args: StoreArgs = parse(arguments)?;
        let secret = args.secret;
        check_label("secret.label", &secret.label)?;
        if secret.category.as_ref().is_some_and(|c| c.is_empty() || c.len() > 64) {
            return Err(ToolFailure::argument("secret.category", "must be 1-64 characters"));
        }
        if secret.category.as_ref().is_some_and(|c| c.starts_with(KEY_CATEGORY_PREFIX)) {
            return Err(ToolFailure::argument(
                "secret.category",
                "categories starting with key/ are reserved for server-held keys",
            ));
        }
        if secret.tags.len() > 16 || secret.tags.iter().any(|t| t.len() > 64) {
            return Err(ToolFailure::argument("secret.tags", "at most 16 tags of at most 64 characters"));
        }
        let plaintext = Zeroizing::new(secret.encoding.decode("secret.data", &secret.data)?);
        if plaintext.len() > MAX_SECRET_BYTES {
            return Err(ToolFailure::argument(
                "secret.data",
                format!("is {} bytes; at most {MAX_SECRET_BYTES} are allowed", plaintext.len()),
            ));
        }
        let algorithm = match &args.encryption {
            Some(e) => vault_algorithm("encryption.algorithm", &e.algorithm)?,
            None => KemAlgorithm::MlKem768,
        };
        let expires_at = expiry(self.0.now(), args.access_control)?;
        let new = NewSecret {
            label: secret.label.clone(),
            category: secret.category.clone(),
            tags: secret.tags.clone(),
            plaintext,
            algorithm,
            expires_at,
        };
        let entry = self.0.put(&cx.principal, new).await.map_err(|e| vault_failure(e, "entry"))?;
        let mut out = summary_json(&entry.summary());
        out["key_id"] = json!(entry.key_id);
        let text = format!(
            "Stored \"{}\" as {} ({} bytes, sealed with {}).",
            entry.label, entry.id, entry.size, entry.algorithm
        );
        Ok(success(out, text))
    }
}

// ---------------------------------------------------------------------------------------
// vault_quantum_retrieve

#[derive(Debug, Deserialize)]
struct RetrieveArgs {
    entry: EntryArg,
    #[serde(default)]
    encoding: Option<RetrieveEncoding>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RetrieveEncoding {
    Utf8,
    Base64,
}

/// `vault_quantum_retrieve`.
#[derive(Debug)]
pub struct RetrieveTool(pub Arc<Vault>);

#[async_trait]
impl QudagTool for RetrieveTool {
    fn spec(&self) -> ToolSpec {
        let mut output = summary_schema();
        output["properties"]["data"] = json!({ "type": "string" });
        output["properties"]["encoding"] = json!({ "type": "string", "enum": ["utf8", "base64"] });
        if let Some(r) = output["required"].as_array_mut() {
            r.extend([json!("data"), json!("encoding")]);
        }
        ToolSpec {
            name: "vault_quantum_retrieve",
            title: "Retrieve a secret from the vault",
            description: "Open one of your vault entries (by entry_id or label) and return its contents, after checking its integrity. Entries of other principals are never returned.",
            input: json!({
                "type": "object",
                "required": ["entry"],
                "properties": {
                    "entry": entry_selector_schema(),
                    "encoding": { "type": "string", "enum": ["utf8", "base64"], "description": "How to return the data; by default UTF-8 when it is valid UTF-8, else base64." },
                    "authentication": { "type": "object", "description": "Accepted for compatibility; the caller's OAuth identity is what authorizes." }
                }
            }),
            output,
            permission: Permission::VaultRead,
            cost: 2,
            read_only: true,
            idempotent: true,
            destructive: false,
            irreversible: false,
        }
    }
    async fn run(&self, cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ToolFailure> {
        {
            let args: RetrieveArgs = parse(arguments)?;
            let selector = args.entry.selector()?;
            let (entry, plaintext) = self
                .0
                .open(&cx.request, &cx.principal, &selector)
                .await
                .map_err(|e| vault_failure(e, selector_path(&selector)))?;
            if entry.category.as_deref().is_some_and(|c| c.starts_with(KEY_CATEGORY_PREFIX)) {
                return Err(ToolFailure::argument(
                    "entry",
                    "this entry is a private key held by the server; it is used through its key_handle and never returned",
                ));
            }
            let text_form = std::str::from_utf8(&plaintext).ok();
            let (data, encoding) = match (args.encoding, text_form) {
                (Some(RetrieveEncoding::Utf8), Some(text)) | (None, Some(text)) => (text.to_owned(), "utf8"),
                (Some(RetrieveEncoding::Utf8), None) => {
                    return Err(ToolFailure::argument("encoding", "the entry is not valid UTF-8; ask for base64"));
                }
                (Some(RetrieveEncoding::Base64), _) | (None, None) => (b64(&plaintext), "base64"),
            };
            let mut out = summary_json(&entry.summary());
            out["data"] = json!(data);
            out["encoding"] = json!(encoding);
            let text = format!("Retrieved \"{}\" ({}, {} bytes):\n{data}", entry.label, entry.id, entry.size);
            Ok(success(out, text))
        }
    }
}

// ---------------------------------------------------------------------------------------
// vault_quantum_list

#[derive(Debug, Deserialize)]
struct ListArgs {
    category: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// `vault_quantum_list`.
#[derive(Debug)]
pub struct ListTool(pub Arc<Vault>);

#[async_trait]
impl QudagTool for ListTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "vault_quantum_list",
            title: "List your vault entries",
            description: "List the calling principal's vault entries (metadata only, never contents), in pages.",
            input: json!({
                "type": "object",
                "properties": {
                    "category": { "type": "string" },
                    "cursor": { "type": "string", "description": "next_cursor of the previous page." },
                    "limit": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 }
                }
            }),
            output: json!({
                "type": "object",
                "required": ["entries"],
                "properties": {
                    "entries": { "type": "array", "items": summary_schema() },
                    "next_cursor": { "type": ["string", "null"] }
                }
            }),
            permission: Permission::VaultRead,
            cost: 1,
            read_only: true,
            idempotent: true,
            destructive: false,
            irreversible: false,
        }
    }
    async fn run(&self, cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ToolFailure> {
        {
            let args: ListArgs = parse(arguments)?;
            let limit = args.limit.unwrap_or(100);
            if !(1..=1000).contains(&limit) {
                return Err(ToolFailure::argument("limit", "must be between 1 and 1000"));
            }
            let query = VaultListQuery { category: args.category, after: args.cursor, limit };
            let page = self.0.list(&cx.principal, &query).await.map_err(|e| vault_failure(e, "entry"))?;
            let entries: Vec<Value> = page.entries.iter().map(summary_json).collect();
            let mut text = format!("{} vault entries", entries.len());
            for e in &page.entries {
                text.push_str(&format!("\n- {} \"{}\" ({} bytes, {})", e.id, e.label, e.size, e.algorithm));
            }
            if page.next.is_some() {
                text.push_str("\n(more: pass next_cursor as cursor)");
            }
            Ok(success(json!({ "entries": entries, "next_cursor": page.next }), text))
        }
    }
}

// ---------------------------------------------------------------------------------------
// vault_quantum_delete

#[derive(Debug, Deserialize)]
struct DeleteArgs {
    entry: EntryArg,
}

/// `vault_quantum_delete`.
#[derive(Debug)]
pub struct DeleteTool(pub Arc<Vault>);

#[async_trait]
impl QudagTool for DeleteTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "vault_quantum_delete",
            title: "Delete a vault entry",
            description: "Delete one of your vault entries (by entry_id or label). Deletion is permanent.",
            input: json!({
                "type": "object",
                "required": ["entry"],
                "properties": { "entry": entry_selector_schema() }
            }),
            output: json!({
                "type": "object",
                "required": ["deleted", "entry_id", "label"],
                "properties": {
                    "deleted": { "type": "boolean" },
                    "entry_id": { "type": "string" },
                    "label": { "type": "string" }
                }
            }),
            permission: Permission::VaultWrite,
            cost: 1,
            read_only: false,
            idempotent: true,
            destructive: true,
            irreversible: true,
        }
    }
    async fn run(&self, cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ToolFailure> {
        {
            let args: DeleteArgs = parse(arguments)?;
            let selector = args.entry.selector()?;
            let entry = self
                .0
                .delete(&cx.request, &cx.principal, &selector)
                .await
                .map_err(|e| vault_failure(e, selector_path(&selector)))?;
            let text = format!("Deleted \"{}\" ({}).", entry.label, entry.id);
            Ok(success(json!({ "deleted": true, "entry_id": entry.id, "label": entry.label }), text))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use qudag_domain::principal::Principal;
    use qudag_domain::rbac::Role;

    use super::*;
    use crate::mcp::catalog::ToolHandler as _;
    use crate::ports::{MockAuditSink, MockVaultStore, VaultStoreError};
    use crate::testkit::ManualClock;
    use crate::tools::support::Registered;
    use crate::usecases::keys::ServerKeys;

    fn vault(store: MockVaultStore) -> Arc<Vault> {
        Arc::new(Vault::new(
            Arc::new(store),
            Arc::new(ServerKeys::ephemeral().unwrap()),
            Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000))),
            Arc::new(MockAuditSink::new()),
        ))
    }

    fn arguments(v: Value) -> JsonObject {
        v.as_object().cloned().unwrap()
    }

    /// A store outage is not a tool error result: the tool answers `Unavailable`, which the
    /// engine turns into the request's retryable refusal; a refusal of the store stays the
    /// tool error it always was.
    #[tokio::test]
    async fn an_outage_is_no_tool_error_but_a_refusal_stays_one() {
        let cx = CallContext::for_tests(Principal::anonymous([Role::Admin]));
        let mut down = MockVaultStore::new();
        down.expect_put()
            .returning(|_, _, _| Err(VaultStoreError::Unavailable { source: "connection refused".into() }));
        let tool = Registered::new(StoreTool(vault(down)));
        let args = arguments(json!({"secret": {"label": "api", "data": "s3cr3t"}}));
        match tool.call(&cx, args.clone()).await.unwrap() {
            ToolResponse::Unavailable(outage) => assert_eq!(outage.component, "vault_store"),
            other => panic!("expected Unavailable, got {other:?}"),
        }

        let mut taken = MockVaultStore::new();
        taken.expect_put().returning(|e, _, _| Err(VaultStoreError::LabelTaken { label: e.label.clone() }));
        let tool = Registered::new(StoreTool(vault(taken)));
        let ToolResponse::Complete(result) = tool.call(&cx, args).await.unwrap() else { panic!("expected a result") };
        assert_eq!(result.is_error, Some(true));
        assert_eq!(
            crate::mcp::wire::first_text(&result.content).unwrap(),
            "Invalid argument `secret.label`: an entry labelled \"api\" already exists; delete it first or choose another label"
        );
    }
}
