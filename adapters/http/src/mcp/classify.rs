//! Which era a POST belongs to, and the checks 2026-07-28 puts on a stateless request's
//! headers before anything else looks at it.
//!
//! A message carrying an `Mcp-Session-Id`, or an `initialize` without modern `_meta`, is
//! stateful (2025-03-26 … 2025-11-25, basic/transports); one carrying `_meta` protocol
//! metadata or a modern `MCP-Protocol-Version` is stateless (2026-07-28
//! basic/transports/streamable-http).

use poem::http::HeaderMap;
use qudag_application::mcp::{Catalog, wire};
use qudag_domain::clip::{QUOTE_BYTES, clip};
use rmcp::model::{
    CallToolRequest, CallToolRequestMethod, ClientJsonRpcMessage, ClientRequest, CompleteRequest,
    CompleteRequestMethod, ConstString, ErrorData, GetPromptRequest, GetPromptRequestMethod, JsonRpcMessage,
    JsonRpcRequest, ListPromptsRequest, ListPromptsRequestMethod, ListResourceTemplatesRequest,
    ListResourceTemplatesRequestMethod, ListResourcesRequest, ListResourcesRequestMethod, ListToolsRequest,
    ListToolsRequestMethod, PingRequest, PingRequestMethod, ReadResourceRequest, ReadResourceRequestMethod, RequestId,
};
use serde::Deserialize;
use serde_json::Value;

use super::headers;

/// Whether a single (non-batch) message belongs to the stateless era.
pub fn is_stateless(headers: &HeaderMap, value: &Value) -> bool {
    let meta_version = value
        .get("params")
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get("io.modelcontextprotocol/protocolVersion"))
        .and_then(Value::as_str);
    let header_version = headers::text(headers, headers::PROTOCOL_VERSION);
    headers::text(headers, headers::SESSION_ID).is_none()
        && (meta_version.is_some()
            || header_version.is_some_and(|v| !wire::is_stateful_version(v) && v != "2024-11-05"))
}

/// The JSON-RPC id of a message, if it has a readable one.
pub fn request_id_of(value: &Value) -> Option<RequestId> {
    value.get("id").and_then(|id| serde_json::from_value::<RequestId>(id.clone()).ok())
}

/// Decode one client message.
///
/// rmcp's own decoder tries every request type in turn until one fits, building an error
/// for each that does not (a `tools/call` is the fourteenth). A request for one of the
/// common methods is decoded straight into that method's type instead; any other message,
/// and any request that does not decode that way, takes rmcp's decoder, so the answer —
/// the message, or the error naming what is wrong — is the same either way.
///
/// # Errors
/// What rmcp's decoder says of a message that is not a client message.
pub fn client_message(value: Value) -> Result<ClientJsonRpcMessage, serde_json::Error> {
    match known_request(&value) {
        Some(message) => Ok(message),
        None => serde_json::from_value(value),
    }
}

/// `value` decoded as a request for a common method, if it is one and decodes.
fn known_request(value: &Value) -> Option<ClientJsonRpcMessage> {
    let object = value.as_object()?;
    if object.get("jsonrpc")?.as_str()? != "2.0" || object.contains_key("result") || object.contains_key("error") {
        return None;
    }
    let id = RequestId::deserialize(object.get("id")?).ok()?;
    let method = object.get("method")?.as_str()?;
    macro_rules! decode {
        ($($variant:ident: $method:ty),* $(,)?) => {
            match method {
                $(m if m == <$method as ConstString>::VALUE => ClientRequest::$variant($variant::deserialize(value).ok()?),)*
                _ => return None,
            }
        };
    }
    let request = decode!(
        CallToolRequest: CallToolRequestMethod,
        ListToolsRequest: ListToolsRequestMethod,
        PingRequest: PingRequestMethod,
        ReadResourceRequest: ReadResourceRequestMethod,
        ListResourcesRequest: ListResourcesRequestMethod,
        ListResourceTemplatesRequest: ListResourceTemplatesRequestMethod,
        ListPromptsRequest: ListPromptsRequestMethod,
        GetPromptRequest: GetPromptRequestMethod,
        CompleteRequest: CompleteRequestMethod,
    );
    Some(JsonRpcMessage::Request(JsonRpcRequest::new(id, request)))
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
        let body_name = value.get("params").and_then(|p| p.get(field)).and_then(Value::as_str).unwrap_or_default();
        match headers::text(headers, headers::NAME).map(headers::decode_value) {
            Some(Some(h)) if h == body_name => {}
            Some(Some(h)) => {
                return Err(wire::header_mismatch(format!(
                    "Mcp-Name header {} does not match body {field} {}",
                    clip(&h, QUOTE_BYTES),
                    clip(body_name, QUOTE_BYTES)
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
        Some(h) => Err(wire::header_mismatch(format!(
            "{label} header {} does not match {what} {}",
            clip(h, QUOTE_BYTES),
            clip(body, QUOTE_BYTES)
        ))),
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
        let argument =
            value.get("params").and_then(|p| p.get("arguments")).and_then(|a| a.get(property)).filter(|v| !v.is_null());
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// What rmcp's own decoder makes of `value`: the message as JSON, or the error's text.
    fn rmcp_decoded(value: &Value) -> Result<Value, String> {
        serde_json::from_value::<ClientJsonRpcMessage>(value.clone())
            .map(|m| serde_json::to_value(m).unwrap_or_default())
            .map_err(|e| e.to_string())
    }

    fn ours(value: &Value) -> Result<Value, String> {
        client_message(value.clone()).map(|m| serde_json::to_value(m).unwrap_or_default()).map_err(|e| e.to_string())
    }

    #[test]
    fn every_message_decodes_as_rmcp_decodes_it() {
        let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "progressToken": 7});
        let messages = [
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hi"}}}),
            json!({"jsonrpc": "2.0", "id": "a", "method": "tools/call", "params": {"name": "echo", "_meta": meta}}),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"cursor": "c"}}),
            json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}),
            json!({"jsonrpc": "2.0", "id": 4, "method": "resources/read", "params": {"uri": "qudag://health"}}),
            json!({"jsonrpc": "2.0", "id": 5, "method": "prompts/get", "params": {"name": "p", "arguments": {"a": "b"}}}),
            json!({"jsonrpc": "2.0", "id": 6, "method": "completion/complete",
                   "params": {"ref": {"type": "ref/prompt", "name": "p"}, "argument": {"name": "a", "value": "x"}}}),
            // Not decodable as a tools/call: rmcp falls through to its catch-all request.
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"arguments": {}}}),
            json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call"}),
            // Methods decoded only by rmcp.
            json!({"jsonrpc": "2.0", "id": 9, "method": "initialize",
                   "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}}),
            json!({"jsonrpc": "2.0", "id": 10, "method": "vendor/thing", "params": {"x": 1}}),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            json!({"jsonrpc": "2.0", "id": 11, "result": {}}),
            // Not messages.
            json!({"jsonrpc": "2.0", "id": 12, "method": "tools/list", "result": {}}),
            json!({"jsonrpc": "1.0", "id": 13, "method": "ping"}),
            json!({"jsonrpc": "2.0", "id": null, "method": "ping"}),
            json!({"jsonrpc": "2.0", "id": 1.5, "method": "ping"}),
            json!([1, 2]),
        ];
        for message in &messages {
            assert_eq!(ours(message), rmcp_decoded(message), "{message}");
        }
    }

    #[test]
    fn a_tool_call_is_decoded_as_one() {
        let value = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo"}});
        let Some(JsonRpcMessage::Request(request)) = known_request(&value) else { panic!("not decoded directly") };
        assert!(matches!(request.request, ClientRequest::CallToolRequest(ref r) if r.params.name == "echo"));
        assert_eq!(request.id, RequestId::Number(1));
    }
}
