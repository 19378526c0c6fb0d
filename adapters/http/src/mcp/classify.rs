//! Which era a POST belongs to, and the checks 2026-07-28 puts on a stateless request's
//! headers before anything else looks at it.
//!
//! A message carrying an `Mcp-Session-Id`, or an `initialize` without modern `_meta`, is
//! stateful (2025-03-26 … 2025-11-25, basic/transports); one carrying `_meta` protocol
//! metadata or a modern `MCP-Protocol-Version` is stateless (2026-07-28
//! basic/transports/streamable-http).

use poem::http::HeaderMap;
use qudag_application::mcp::{Catalog, wire};
use rmcp::model::{ErrorData, RequestId};
use serde_json::Value;

use super::headers;

/// Whether a single (non-batch) message belongs to the stateless era.
pub fn is_stateless(headers: &HeaderMap, value: &Value) -> bool {
    let meta_version = value.pointer("/params/_meta/io.modelcontextprotocol~1protocolVersion").and_then(Value::as_str);
    let header_version = headers::text(headers, headers::PROTOCOL_VERSION);
    headers::text(headers, headers::SESSION_ID).is_none()
        && (meta_version.is_some()
            || header_version.is_some_and(|v| !wire::is_stateful_version(v) && v != "2024-11-05"))
}

/// The JSON-RPC id of a message, if it has a readable one.
pub fn request_id_of(value: &Value) -> Option<RequestId> {
    value.get("id").and_then(|id| serde_json::from_value::<RequestId>(id.clone()).ok())
}

/// A stateless message whose metadata and headers agree.
#[derive(Debug)]
pub struct Stateless {
    /// The method.
    pub method: String,
    /// The protocol version from `_meta`.
    pub version: String,
}

/// Check a stateless message against 2026-07-28 basic/index "Request Metadata" and
/// basic/transports/streamable-http "Request Metadata Headers".
///
/// # Errors
/// The JSON-RPC error to answer with HTTP 400.
pub fn check_stateless(headers: &HeaderMap, value: &Value, catalog: &Catalog) -> Result<Stateless, ErrorData> {
    let Some(method) = value.get("method").and_then(Value::as_str).map(str::to_owned) else {
        return Err(ErrorData::invalid_request("a stateless POST carries one request or notification", None));
    };
    let Some(meta) = value.pointer("/params/_meta").and_then(Value::as_object) else {
        return Err(ErrorData::invalid_params("params._meta is required", None));
    };
    let Some(version) = meta.get("io.modelcontextprotocol/protocolVersion").and_then(Value::as_str) else {
        return Err(ErrorData::invalid_params("_meta io.modelcontextprotocol/protocolVersion is required", None));
    };
    if !meta.get("io.modelcontextprotocol/clientCapabilities").is_some_and(Value::is_object) {
        return Err(ErrorData::invalid_params("_meta io.modelcontextprotocol/clientCapabilities is required", None));
    }
    header_matches(headers, headers::PROTOCOL_VERSION, "MCP-Protocol-Version", version, "_meta protocolVersion")?;
    if !wire::is_stateless_version(version) {
        return Err(wire::unsupported_version(version));
    }
    header_matches(headers, headers::METHOD, "Mcp-Method", &method, "body method")?;
    let name_field = match method.as_str() {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    };
    if let Some(field) = name_field {
        let body_name = value.pointer(&format!("/params/{field}")).and_then(Value::as_str).unwrap_or_default();
        match headers::text(headers, headers::NAME).map(headers::decode_value) {
            Some(Some(h)) if h == body_name => {}
            Some(Some(h)) => {
                return Err(wire::header_mismatch(format!(
                    "Mcp-Name header {h} does not match body {field} {body_name}"
                )));
            }
            Some(None) => return Err(wire::header_mismatch("Mcp-Name header is malformed")),
            None => return Err(wire::header_mismatch("Mcp-Name header is required")),
        }
    }
    if method == "tools/call" {
        check_param_headers(headers, value, catalog)?;
    }
    Ok(Stateless { method, version: version.to_owned() })
}

/// The request-metadata header `name` (shown as `label`) must be present and equal what
/// the body says (`body`, shown as `what`): 2026-07-28 basic/transports, -32020 otherwise.
fn header_matches(headers: &HeaderMap, name: &str, label: &str, body: &str, what: &str) -> Result<(), ErrorData> {
    match headers::text(headers, name) {
        Some(h) if h == body => Ok(()),
        Some(h) => Err(wire::header_mismatch(format!("{label} header {h} does not match {what} {body}"))),
        None => Err(wire::header_mismatch(format!("{label} header is required"))),
    }
}

/// `Mcp-Param-*` headers against the tool's `x-mcp-header` annotations.
fn check_param_headers(headers: &HeaderMap, value: &Value, catalog: &Catalog) -> Result<(), ErrorData> {
    let Some(name) = value.pointer("/params/name").and_then(Value::as_str) else { return Ok(()) };
    let Some(tool) = catalog.tool_definition(name, true) else { return Ok(()) };
    let Some(properties) = tool.input_schema.get("properties").and_then(Value::as_object) else { return Ok(()) };
    for (property, schema) in properties {
        let Some(header) = schema.get("x-mcp-header").and_then(Value::as_str) else { continue };
        let argument = value.pointer(&format!("/params/arguments/{property}")).filter(|v| !v.is_null());
        let sent = headers::text(headers, &format!("{}{}", headers::PARAM_PREFIX, header.to_ascii_lowercase()));
        match (argument, sent) {
            (None, _) => {}
            (Some(_), None) => {
                return Err(wire::header_mismatch(format!("Mcp-Param-{header} header is required")));
            }
            (Some(arg), Some(raw)) => {
                let Some(decoded) = headers::decode_value(raw) else {
                    return Err(wire::header_mismatch(format!("Mcp-Param-{header} header is malformed")));
                };
                let matches = match arg {
                    Value::String(s) => *s == decoded,
                    Value::Bool(b) => decoded == b.to_string(),
                    Value::Number(n) => decoded.parse::<f64>().ok() == n.as_f64(),
                    _ => false,
                };
                if !matches {
                    return Err(wire::header_mismatch(format!(
                        "Mcp-Param-{header} header does not match argument {property}"
                    )));
                }
            }
        }
    }
    Ok(())
}
