//! The vault: per-principal secrets sealed at rest, and its four tools
//! (`vault_quantum_store`, `vault_quantum_retrieve`, `vault_quantum_list`,
//! `vault_quantum_delete`).
//!
//! Each secret is sealed on its own with the hybrid envelope of `qudag_domain::pqc::envelope`:
//! a fresh ML-KEM encapsulation to the server's vault key, HKDF-SHA256 from the shared
//! secret to a ChaCha20-Poly1305 key, and the entry's id, owner and label as associated
//! data — so an envelope moved to another row, another owner or another label fails to
//! open, as does any edited byte. The store sees only envelopes and metadata; plaintexts
//! never reach the store, the logs or the audit trail.
//!
//! Entries belong to the principal that stored them. Another principal asking for an entry
//! by id gets the same answer as for an entry that does not exist, and the attempt is
//! audited as `vault.access_denied`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use qudag_domain::Timestamp;
use qudag_domain::audit::{AuditAction, AuditRecord, Outcome};
use qudag_domain::pqc::KemAlgorithm;
use qudag_domain::pqc::envelope::{self, Envelope, SealRandomness};
use qudag_domain::rbac::Permission;
use rmcp::model::JsonObject;
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::mcp::catalog::ToolResponse;
use crate::mcp::context::CallContext;
use crate::ports::{AuditSink, Clock, VaultEntry, VaultEntrySummary, VaultListQuery, VaultStore, VaultStoreError};
use crate::tools::keys::ServerKeys;
use crate::tools::support::{DataEncoding, QudagTool, ToolFailure, ToolSpec, audit, b64, parse, random, success};

/// The category prefix of entries that hold the server-held private keys minted by the
/// crypto tools (`key/ml-kem-768`, `key/ml-dsa-65`, ...); such entries are never returned.
pub const KEY_CATEGORY_PREFIX: &str = "key/";

/// The largest secret accepted, in bytes.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;
/// The longest label accepted.
pub const MAX_LABEL_LEN: usize = 128;

/// Which entry a call means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// By id.
    Id(String),
    /// By the owner's label.
    Label(String),
}

/// A secret to store.
pub struct NewSecret {
    /// Its label (unique per owner).
    pub label: String,
    /// Its category.
    pub category: Option<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// The plaintext (wiped when dropped).
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The KEM to seal with.
    pub algorithm: KemAlgorithm,
    /// When it expires, if ever.
    pub expires_at: Option<Timestamp>,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSecret").field("label", &self.label).field("len", &self.plaintext.len()).finish()
    }
}

/// The vault use case.
pub struct Vault {
    store: Arc<dyn VaultStore>,
    keys: Arc<ServerKeys>,
    clock: Arc<dyn Clock>,
    audit: Arc<dyn AuditSink>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").finish_non_exhaustive()
    }
}

fn store_failure(e: VaultStoreError) -> ToolFailure {
    match e {
        VaultStoreError::LabelTaken { label } => ToolFailure::argument(
            "secret.label",
            format!("an entry labelled \"{label}\" already exists; delete it first or choose another label"),
        ),
        other => {
            tracing::error!(error = %other, "Vault store failed");
            ToolFailure::operation(format!("the vault is unavailable ({other}); try again later"))
        }
    }
}

fn aad(id: &str, owner: &str, label: &str) -> Vec<u8> {
    let mut out = b"qudag-vault-entry/v1".to_vec();
    for part in [id, owner, label] {
        out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

impl Vault {
    /// A vault over `store`, sealing to `keys`.
    pub fn new(
        store: Arc<dyn VaultStore>,
        keys: Arc<ServerKeys>,
        clock: Arc<dyn Clock>,
        audit: Arc<dyn AuditSink>,
    ) -> Self {
        Self { store, keys, clock, audit }
    }

    /// The store (for status counts).
    pub fn store(&self) -> &Arc<dyn VaultStore> {
        &self.store
    }

    /// Seal and store a secret for `owner`.
    ///
    /// # Errors
    /// A [`ToolFailure`]: label taken, no vault key for the algorithm, store unavailable.
    pub async fn put(&self, owner: &str, secret: NewSecret) -> Result<VaultEntry, ToolFailure> {
        let key = self.keys.vault_key(secret.algorithm).ok_or_else(|| {
            ToolFailure::argument("encryption.algorithm", "the vault seals with ml-kem-768 or ml-kem-1024")
        })?;
        let id = format!("vlt_{}", hex::encode(random::<16>()?));
        let randomness = SealRandomness { m: random::<32>()?, nonce: random::<12>()? };
        let sealed = envelope::seal(
            secret.algorithm,
            key.encapsulation_key(),
            &secret.plaintext,
            &aad(&id, owner, &secret.label),
            &randomness,
        )
        .map_err(|e| ToolFailure::operation(format!("sealing failed: {e}")))?;
        let entry = VaultEntry {
            id,
            owner: owner.to_owned(),
            label: secret.label,
            category: secret.category,
            tags: secret.tags,
            algorithm: secret.algorithm.as_str().to_owned(),
            key_id: qudag_domain::pqc::fingerprint(key.encapsulation_key()),
            envelope: sealed.to_bytes().map_err(|e| ToolFailure::operation(format!("sealing failed: {e}")))?,
            size: secret.plaintext.len() as u64,
            created_at: self.clock.now(),
            expires_at: secret.expires_at,
        };
        self.store.put(&entry, entry.created_at).await.map_err(store_failure)?;
        Ok(entry)
    }

    async fn find(&self, cx: &CallContext, owner: &str, selector: &Selector) -> Result<VaultEntry, ToolFailure> {
        let now = self.clock.now();
        let (found, path) = match selector {
            Selector::Id(id) => (self.store.get(id, now).await.map_err(store_failure)?, "entry.entry_id"),
            Selector::Label(label) => {
                (self.store.find_by_label(owner, label, now).await.map_err(store_failure)?, "entry.label")
            }
        };
        match found {
            Some(entry) if entry.owner == owner => Ok(entry),
            Some(entry) => {
                self.audit_denied(cx, owner, &entry).await;
                Err(ToolFailure::argument(path, "no such vault entry"))
            }
            None => Err(ToolFailure::argument(path, "no such vault entry")),
        }
    }

    async fn audit_denied(&self, cx: &CallContext, owner: &str, entry: &VaultEntry) {
        let record = AuditRecord::new(self.clock.now(), AuditAction::VaultAccessDenied, Outcome::Denied)
            .actor(owner)
            .target(entry.id.clone())
            .details(json!({ "reason": "not_owner" }));
        audit(self.audit.as_ref(), cx, record).await;
    }

    /// Record an audit event for `cx`.
    pub async fn audit(&self, cx: &CallContext, record: AuditRecord) {
        audit(self.audit.as_ref(), cx, record).await;
    }

    /// Open `owner`'s entry.
    ///
    /// # Errors
    /// Not found (also for another owner's entry, which is audited), or an integrity failure.
    pub async fn open(
        &self,
        cx: &CallContext,
        owner: &str,
        selector: &Selector,
    ) -> Result<(VaultEntry, Zeroizing<Vec<u8>>), ToolFailure> {
        let entry = self.find(cx, owner, selector).await?;
        let integrity = |why: String| {
            tracing::error!(entry = %entry.id, %why, "Vault entry failed its integrity check");
            ToolFailure::operation(format!("vault entry {} failed its integrity check and cannot be opened", entry.id))
        };
        let sealed = Envelope::from_bytes(&entry.envelope).map_err(|e| integrity(e.to_string()))?;
        let key = self.keys.vault_key(sealed.algorithm).ok_or_else(|| integrity("no key for its algorithm".into()))?;
        let plaintext = envelope::open(key, &sealed, &aad(&entry.id, &entry.owner, &entry.label))
            .map_err(|e| integrity(e.to_string()))?;
        Ok((entry, plaintext))
    }

    /// Delete `owner`'s entry.
    ///
    /// # Errors
    /// Not found, or the store is unavailable.
    pub async fn delete(&self, cx: &CallContext, owner: &str, selector: &Selector) -> Result<VaultEntry, ToolFailure> {
        let entry = self.find(cx, owner, selector).await?;
        if self.store.delete(owner, &entry.id).await.map_err(store_failure)? {
            Ok(entry)
        } else {
            Err(ToolFailure::argument("entry", "no such vault entry"))
        }
    }

    /// A page of `owner`'s entries.
    ///
    /// # Errors
    /// The store is unavailable.
    pub async fn list(&self, owner: &str, query: &VaultListQuery) -> Result<crate::ports::VaultPage, ToolFailure> {
        self.store.list(owner, query, self.clock.now()).await.map_err(store_failure)
    }

    /// The clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
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

/// The owner key of the caller: `issuer#subject`.
pub fn owner(cx: &CallContext) -> String {
    cx.principal.id().to_string()
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
        let entry = self.0.put(&owner(cx), new).await?;
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
        }
    }
    async fn run(&self, cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ToolFailure> {
        {
            let args: RetrieveArgs = parse(arguments)?;
            let selector = args.entry.selector()?;
            let (entry, plaintext) = self.0.open(cx, &owner(cx), &selector).await?;
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
            let page = self.0.list(&owner(cx), &query).await?;
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
        }
    }
    async fn run(&self, cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ToolFailure> {
        {
            let args: DeleteArgs = parse(arguments)?;
            let selector = args.entry.selector()?;
            let entry = self.0.delete(cx, &owner(cx), &selector).await?;
            let text = format!("Deleted \"{}\" ({}).", entry.label, entry.id);
            Ok(success(json!({ "deleted": true, "entry_id": entry.id, "label": entry.label }), text))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;

    use qudag_domain::Timestamp;
    use qudag_domain::principal::Principal;
    use qudag_domain::rbac::Role;

    use super::*;
    use crate::ports::{MockAuditSink, MockVaultStore};
    use crate::testkit::ManualClock;

    fn context() -> CallContext {
        CallContext::for_tests(Principal::anonymous([Role::Admin]))
    }

    #[tokio::test]
    async fn a_stored_envelope_that_was_edited_or_moved_does_not_open() {
        let stored: Arc<Mutex<Vec<VaultEntry>>> = Arc::default();
        let mut store = MockVaultStore::new();
        let on_put = stored.clone();
        store.expect_put().returning(move |e, _| {
            on_put.lock().unwrap().push(e.clone());
            Ok(())
        });
        let on_get = stored.clone();
        store.expect_get().returning(move |id, _| Ok(on_get.lock().unwrap().iter().find(|e| e.id == id).cloned()));
        let mut audit = MockAuditSink::new();
        audit.expect_record().never();
        let vault = Vault::new(
            Arc::new(store),
            Arc::new(ServerKeys::ephemeral().unwrap()),
            Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000))),
            Arc::new(audit),
        );
        let owner = "iss#alice";
        for (label, algorithm) in [("a", KemAlgorithm::MlKem768), ("b", KemAlgorithm::MlKem1024)] {
            let secret = NewSecret {
                label: label.into(),
                category: None,
                tags: Vec::new(),
                plaintext: Zeroizing::new(b"top secret".to_vec()),
                algorithm,
                expires_at: None,
            };
            vault.put(owner, secret).await.unwrap();
        }
        let (a, b) = {
            let s = stored.lock().unwrap();
            (s[0].clone(), s[1].clone())
        };
        assert!(!a.envelope.windows(10).any(|w| w == b"top secret"), "the store sees only ciphertext");
        let cx = context();
        let (_, plain) = vault.open(&cx, owner, &Selector::Id(a.id.clone())).await.unwrap();
        assert_eq!(plain.as_slice(), b"top secret");

        type Edit = Box<dyn Fn(&mut VaultEntry)>;
        let edits: Vec<Edit> = vec![
            Box::new(|e| {
                let n = e.envelope.len();
                e.envelope[n - 1] ^= 1;
            }),
            Box::new(|e| e.envelope[40] ^= 0x80),
            Box::new(|e| e.envelope.truncate(100)),
            Box::new(|e| e.label = "renamed".into()),
            Box::new(move |e| e.envelope = b.envelope.clone()),
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut tampered = a.clone();
            edit(&mut tampered);
            *stored.lock().unwrap() = vec![tampered];
            let refused = vault.open(&cx, owner, &Selector::Id(a.id.clone())).await.unwrap_err();
            assert!(refused.message.contains("integrity check"), "edit {i}: {refused}");
        }
    }
}
