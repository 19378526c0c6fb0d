//! What every QuDAG tool shares: argument parsing that names the bad argument, results with
//! both `structuredContent` and a text rendering, failures, and binary encodings.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use qudag_domain::clip::{NAME_BYTES, clip_owned, clip_quoted_owned};
use qudag_domain::quota::Cost;
use qudag_domain::rbac::Permission;
use rmcp::model::{CallToolResult, ContentBlock, ErrorData, JsonObject, Tool, ToolAnnotations};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::mcp::catalog::{ToolHandler, ToolResponse};
use crate::mcp::context::CallContext;
use crate::usecases::Unavailable;
use crate::usecases::keys::NoEntropy;

/// A tool call that cannot go on.
///
/// A [`ToolFailure::Refused`] call — bad arguments (naming the argument) or an operation
/// that failed for the caller's reasons — becomes a tool result with `isError: true`, never
/// a protocol error. A [`ToolFailure::Unavailable`] call met a backend outage: that is no
/// answer to the caller's arguments, so it is not a tool result at all but a retryable
/// refusal of the request (HTTP 503 with `Retry-After`, counted in `backend_errors`).
#[derive(Debug)]
pub enum ToolFailure {
    /// The tool refuses or failed: a tool error result.
    Refused {
        /// The argument at fault, as a path (`circuit.gates[2].target`), if one is.
        argument: Option<String>,
        /// What is wrong, for the caller.
        message: String,
    },
    /// A backend the tool needs cannot be reached: retry later.
    Unavailable(Unavailable),
}

impl ToolFailure {
    /// A bad argument. The message quotes at most a short prefix of any value in it (a
    /// tool's message often repeats what the caller sent), and the path is kept short.
    pub fn argument(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Refused {
            argument: Some(clip_owned(path.into(), NAME_BYTES)),
            message: clip_quoted_owned(message.into()),
        }
    }

    /// A failure not caused by one argument (its message clipped as [`Self::argument`]'s).
    pub fn operation(message: impl Into<String>) -> Self {
        Self::Refused { argument: None, message: clip_quoted_owned(message.into()) }
    }

    /// The argument at fault, if one is.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::Refused { argument, .. } => argument.as_deref(),
            Self::Unavailable(_) => None,
        }
    }

    /// The failure as what the tool answers: an error result, or (for an outage) the
    /// request's refusal.
    pub fn into_response(self) -> ToolResponse {
        match self {
            Self::Refused { argument, message } => {
                let text = match &argument {
                    Some(path) => format!("Invalid argument `{path}`: {message}"),
                    None => message,
                };
                ToolResponse::Complete(CallToolResult::error(vec![ContentBlock::text(text)]))
            }
            Self::Unavailable(outage) => ToolResponse::Unavailable(outage),
        }
    }
}

impl std::fmt::Display for ToolFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused { argument: Some(path), message } => write!(f, "{path}: {message}"),
            Self::Refused { argument: None, message } => f.write_str(message),
            Self::Unavailable(outage) => std::fmt::Display::fmt(outage, f),
        }
    }
}

impl From<Unavailable> for ToolFailure {
    fn from(e: Unavailable) -> Self {
        Self::Unavailable(e)
    }
}

impl From<NoEntropy> for ToolFailure {
    fn from(e: NoEntropy) -> Self {
        Self::operation(e.to_string())
    }
}

/// Parse a tool's arguments into `T`. A failure names the argument's path as the caller
/// wrote it (`circuit.gates[3].target`); unknown extra arguments are ignored.
///
/// # Errors
/// A [`ToolFailure`] naming the first bad argument.
pub fn parse<T: DeserializeOwned>(arguments: JsonObject) -> Result<T, ToolFailure> {
    let value = Value::Object(arguments);
    serde_path_to_error::deserialize(value).map_err(|e| {
        // serde repeats a bad value in its message, and a path may name a caller's key: the
        // failure quotes only a short prefix of either.
        let path = clip_owned(e.path().to_string(), NAME_BYTES);
        let inner = e.into_inner().to_string();
        // serde says "missing field `x`" at the parent's path; name the field itself.
        match inner.strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
            Some(field) => {
                let full = if path == "." { field.to_owned() } else { format!("{path}.{field}") };
                ToolFailure::argument(full, "is required")
            }
            None => ToolFailure::argument(if path == "." { "arguments".to_owned() } else { path }, inner),
        }
    })
}

/// A successful result: `structured` as `structuredContent`, `text` as its rendering.
pub fn success(structured: Value, text: String) -> ToolResponse {
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(structured);
    ToolResponse::Complete(result)
}

/// The first 16 characters of a fingerprint, for text renderings.
pub fn short(fingerprint: &str) -> &str {
    fingerprint.get(..16).unwrap_or(fingerprint)
}

/// Standard base64 (with padding).
pub fn b64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// Decode the base64 argument at `path`.
///
/// # Errors
/// A [`ToolFailure`] naming `path`.
pub fn from_b64(path: &str, text: &str) -> Result<Vec<u8>, ToolFailure> {
    BASE64.decode(text.trim()).map_err(|e| ToolFailure::argument(path, format!("is not valid standard base64 ({e})")))
}

/// How a `data` argument is encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataEncoding {
    /// UTF-8 text, used as is.
    #[default]
    Utf8,
    /// Standard base64.
    Base64,
    /// Hexadecimal.
    Hex,
}

impl DataEncoding {
    /// The bytes of `data`, the argument at `path`.
    ///
    /// # Errors
    /// A [`ToolFailure`] naming `path` when `data` does not decode.
    pub fn decode(self, path: &str, data: &str) -> Result<Vec<u8>, ToolFailure> {
        match self {
            Self::Utf8 => Ok(data.as_bytes().to_vec()),
            Self::Base64 => from_b64(path, data),
            Self::Hex => {
                hex::decode(data.trim()).map_err(|e| ToolFailure::argument(path, format!("is not valid hex ({e})")))
            }
        }
    }

    /// The JSON Schema of an `encoding` argument.
    pub fn schema() -> Value {
        serde_json::json!({
            "type": "string",
            "enum": ["utf8", "base64", "hex"],
            "default": "utf8",
            "description": "How `data` is encoded."
        })
    }
}

/// A tool's fixed description: everything listed about it and what it needs.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    /// Its name.
    pub name: &'static str,
    /// A short human title.
    pub title: &'static str,
    /// What it does, for the model.
    pub description: &'static str,
    /// The JSON Schema of its arguments.
    pub input: Value,
    /// The JSON Schema of its `structuredContent`.
    pub output: Value,
    /// The permission a caller needs.
    pub permission: Permission,
    /// Its quota cost.
    pub cost: u32,
    /// Whether it changes nothing.
    pub read_only: bool,
    /// Whether calling it twice with the same arguments has no further effect.
    pub idempotent: bool,
    /// Whether it may delete something.
    pub destructive: bool,
    /// Whether its effect cannot be undone (deleting, registering): its attempt is then
    /// recorded durably before it runs (`tool.started`).
    pub irreversible: bool,
}

impl ToolSpec {
    /// The tool definition as listed.
    pub fn tool(&self) -> Tool {
        let object = |v: &Value| v.as_object().cloned().unwrap_or_default();
        let mut tool = Tool::new(self.name, self.description, object(&self.input));
        tool.title = Some(self.title.to_owned());
        tool.output_schema = Some(std::sync::Arc::new(object(&self.output)));
        let mut annotations = ToolAnnotations::default();
        annotations.title = Some(self.title.to_owned());
        annotations.read_only_hint = Some(self.read_only);
        annotations.destructive_hint = Some(self.destructive);
        annotations.idempotent_hint = Some(self.idempotent);
        annotations.open_world_hint = Some(false);
        tool.annotations = Some(annotations);
        tool
    }

    /// The quota cost.
    pub fn cost(&self) -> Cost {
        Cost::new(self.cost)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        circuit: Inner,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        qubits: u32,
        gates: Vec<Gate>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Gate {
        target: u32,
    }

    fn args(v: Value) -> JsonObject {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn parse_names_the_bad_argument() {
        let e = parse::<Outer>(args(json!({"circuit": {"qubits": 2, "gates": [{"target": 0}, {"target": "x"}]}})))
            .unwrap_err();
        assert_eq!(e.path(), Some("circuit.gates[1].target"));
        let e = parse::<Outer>(args(json!({"circuit": {"gates": []}}))).unwrap_err();
        assert_eq!(e.path(), Some("circuit.qubits"));
        assert_eq!(e.to_string(), "circuit.qubits: is required");
        let e = parse::<Outer>(args(json!({}))).unwrap_err();
        assert_eq!(e.path(), Some("circuit"));
        let e = parse::<Outer>(args(json!({"circuit": {"qubits": -1, "gates": []}}))).unwrap_err();
        assert_eq!(e.path(), Some("circuit.qubits"));
    }

    #[test]
    fn a_huge_bad_value_is_quoted_only_by_a_short_prefix() {
        let huge = "x".repeat(2_000_000);
        let e = parse::<Outer>(args(json!({"circuit": {"qubits": huge, "gates": []}}))).unwrap_err();
        assert_eq!(e.path(), Some("circuit.qubits"));
        let text = e.to_string();
        assert!(text.len() < 300, "the error repeats {} bytes", text.len());
        assert!(text.contains("expected u32"), "{text}");
        let key = "k".repeat(1_000_000);
        let e = parse::<std::collections::HashMap<String, u32>>(args(json!({ key: "no" }))).unwrap_err();
        assert!(e.to_string().len() < 600, "the path repeats {} bytes", e.to_string().len());
    }

    #[test]
    fn encodings_decode_or_name_the_argument() {
        assert_eq!(DataEncoding::Utf8.decode("data", "hé").unwrap(), "hé".as_bytes());
        assert_eq!(DataEncoding::Hex.decode("data", "00ff").unwrap(), [0, 255]);
        assert_eq!(DataEncoding::Base64.decode("data", "AP8=").unwrap(), [0, 255]);
        assert_eq!(DataEncoding::Hex.decode("data", "zz").unwrap_err().path(), Some("data"));
        assert_eq!(from_b64("signature", "!!").unwrap_err().path(), Some("signature"));
    }
}

/// A QuDAG tool: its fixed [`ToolSpec`] and how to run it. Wrapped by [`Registered`] into a
/// [`crate::mcp::catalog::ToolHandler`], which turns a [`ToolFailure`] into an error result.
#[async_trait::async_trait]
pub trait QudagTool: Send + Sync + 'static {
    /// What is listed and required.
    fn spec(&self) -> ToolSpec;
    /// Run with the caller's arguments.
    async fn run(&self, cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ToolFailure>;
}

/// A [`QudagTool`] as the catalog sees it, with its spec read once.
#[derive(Debug)]
pub struct Registered<T> {
    tool: T,
    spec: ToolSpec,
}

impl<T: QudagTool> Registered<T> {
    /// Wrap `tool`.
    pub fn new(tool: T) -> Self {
        let spec = tool.spec();
        Self { tool, spec }
    }
}

#[async_trait::async_trait]
impl<T: QudagTool + std::fmt::Debug> ToolHandler for Registered<T> {
    fn tool(&self) -> Tool {
        self.spec.tool()
    }
    fn permission(&self) -> Permission {
        self.spec.permission
    }
    fn cost(&self) -> Cost {
        self.spec.cost()
    }
    fn irreversible(&self) -> bool {
        self.spec.irreversible
    }
    async fn call(&self, cx: &CallContext, arguments: JsonObject) -> Result<ToolResponse, ErrorData> {
        Ok(self.tool.run(cx, arguments).await.unwrap_or_else(ToolFailure::into_response))
    }
}
