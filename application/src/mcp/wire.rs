//! Wire details of the two eras that `rmcp::model` leaves to the server.
//!
//! Each item names the specification section it follows:
//! - version negotiation (2025-11-25 basic/lifecycle, "Version Negotiation"; 2026-07-28
//!   basic/versioning);
//! - methods removed from the stateless era answer -32601 (2026-07-28 changelog, and
//!   basic/transports/streamable-http: "404 Not Found and a JSON-RPC error with code
//!   -32601");
//! - a missing resource is -32602 with `data.uri` in 2026-07-28 (server/resources, "Error
//!   Handling") and -32002 before it;
//! - an empty result carries `resultType: "complete"` in 2026-07-28 (basic/index,
//!   "Result"), and no result carries `resultType` for older peers;
//! - opaque pagination cursors, invalid ones answered with -32602 (basic/utilities/
//!   pagination).

use std::borrow::Cow;

use qudag_domain::clip::{NAME_BYTES, QUOTE_BYTES, clip};
use rmcp::model::{ContentBlock, ErrorCode, ErrorData, ProtocolVersion, ServerJsonRpcMessage, ServerResult};
use serde_json::{Value, json};

/// How long list results may be cached (2026-07-28 server/utilities/caching).
pub const LIST_TTL_MS: u64 = 60_000;

/// Versions served with the initialize handshake, oldest first.
pub const STATEFUL_VERSIONS: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];

/// Versions served statelessly.
pub const STATELESS_VERSIONS: [&str; 1] = ["2026-07-28"];

/// Methods of the stateful era that 2026-07-28 removed.
pub const REMOVED_IN_STATELESS: [&str; 5] =
    ["initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"];

/// An MCP method the server knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Method {
    /// The method, as it appears on the wire.
    pub name: &'static str,
    /// Whether a request naming it is answered: with its result, or -32602 (invalid params)
    /// when its params do not parse. A method only named (tasks, which this server does
    /// not run yet, and notifications it merely receives) is -32601 (method not found).
    pub served: bool,
}

const fn served(name: &'static str) -> Method {
    Method { name, served: true }
}

const fn named(name: &'static str) -> Method {
    Method { name, served: false }
}

/// Every MCP method the server knows by name: the client-to-server requests either era
/// defines and the notifications it receives. The one list of method names: the engine
/// decides -32601 from it and metrics label `mcp_method_name` from it (anything else is
/// `other`, so a caller cannot mint label values).
pub const METHODS: [Method; 22] = [
    served("initialize"),
    served("ping"),
    served("server/discover"),
    served("completion/complete"),
    served("logging/setLevel"),
    served("prompts/get"),
    served("prompts/list"),
    served("resources/list"),
    served("resources/templates/list"),
    served("resources/read"),
    served("resources/subscribe"),
    served("resources/unsubscribe"),
    served("subscriptions/listen"),
    served("tools/call"),
    served("tools/list"),
    named("tasks/get"),
    named("tasks/list"),
    named("tasks/cancel"),
    named("tasks/result"),
    served("notifications/initialized"),
    named("notifications/cancelled"),
    named("notifications/roots/list_changed"),
];

/// `method` as one of [`METHODS`]' static names, when the server knows it.
pub fn method_name(method: &str) -> Option<&'static str> {
    METHODS.iter().find(|m| m.name == method).map(|m| m.name)
}

/// Whether `method` is one the server serves (so bad params are -32602, not -32601).
pub fn is_known_method(method: &str) -> bool {
    METHODS.iter().any(|m| m.served && m.name == method)
}

/// Whether `version` is served statefully.
pub fn is_stateful_version(version: &str) -> bool {
    STATEFUL_VERSIONS.contains(&version)
}

/// Whether `version` is served statelessly.
pub fn is_stateless_version(version: &str) -> bool {
    STATELESS_VERSIONS.contains(&version)
}

/// The version to answer an `initialize` asking for `requested` with: the same when we
/// serve it statefully, else the latest stateful one.
pub fn negotiate(requested: &str) -> ProtocolVersion {
    let chosen = if is_stateful_version(requested) { requested } else { STATEFUL_VERSIONS[2] };
    version(chosen)
}

/// Every version served, for `server/discover` and -32022 errors.
pub fn all_versions() -> Vec<ProtocolVersion> {
    STATELESS_VERSIONS.iter().chain(STATEFUL_VERSIONS.iter().rev()).map(|v| version(v)).collect()
}

/// A protocol version from its label.
pub fn version(label: &str) -> ProtocolVersion {
    // rmcp has no FromStr; its Deserialize accepts any label.
    serde_json::from_value(Value::String(label.to_owned())).unwrap_or(ProtocolVersion::LATEST_WITH_INITIALIZE)
}

/// -32601 for `method`.
pub fn method_not_found(method: &str) -> ErrorData {
    ErrorData::new(ErrorCode::METHOD_NOT_FOUND, format!("method not found: {}", clip(method, QUOTE_BYTES)), None)
}

/// The error for a resource that does not exist.
pub fn resource_not_found(uri: &str, stateless: bool) -> ErrorData {
    let code = if stateless { ErrorCode::INVALID_PARAMS } else { ErrorCode::RESOURCE_NOT_FOUND };
    let uri = clip(uri, NAME_BYTES);
    ErrorData::new(code, format!("resource not found: {uri}"), Some(json!({ "uri": uri })))
}

/// -32022 for `requested` (2026-07-28 basic/versioning).
pub fn unsupported_version(requested: &str) -> ErrorData {
    ErrorData::new(
        ErrorCode::UNSUPPORTED_PROTOCOL_VERSION,
        "Unsupported protocol version",
        Some(json!({
            "supported": all_versions().iter().map(|v| v.as_str().to_owned()).collect::<Vec<_>>(),
            "requested": requested,
        })),
    )
}

/// -32020 (2026-07-28 basic/transports/streamable-http, "Header Validation").
pub fn header_mismatch(message: impl Into<Cow<'static, str>>) -> ErrorData {
    ErrorData::new(ErrorCode::HEADER_MISMATCH, message, None)
}

/// One page of `items` starting at `cursor`, and the cursor of the next page.
///
/// # Errors
/// -32602 for a cursor this server did not issue.
pub fn page<T>(items: Vec<T>, cursor: Option<&str>, size: usize) -> Result<(Vec<T>, Option<String>), ErrorData> {
    let start = match cursor {
        None => 0,
        Some(c) => decode_cursor(c).ok_or_else(|| ErrorData::invalid_params("invalid cursor", None))?,
    };
    if start > items.len() {
        return Err(ErrorData::invalid_params("invalid cursor", None));
    }
    let end = (start + size).min(items.len());
    let next = (end < items.len()).then(|| encode_cursor(end));
    Ok((items.into_iter().skip(start).take(end - start).collect(), next))
}

fn encode_cursor(offset: usize) -> String {
    format!("p{}", hex_encode(&(offset as u64).to_be_bytes()))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let hex = cursor.strip_prefix('p')?;
    if hex.len() != 16 {
        return None;
    }
    let mut bytes = [0u8; 8];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    usize::try_from(u64::from_be_bytes(bytes)).ok()
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first text block's text.
pub fn first_text(content: &[ContentBlock]) -> Option<String> {
    content.iter().find_map(|c| c.as_text().map(|t| t.text.clone()))
}

/// Shape a result for its era: older peers never see `resultType` or cache hints, and an
/// empty result is `{}` for them but `{"resultType":"complete"}` for 2026-07-28, whose
/// list and read results also carry the cache hints a handler did not set
/// (server/utilities/caching: lists private for [`LIST_TTL_MS`] — each caller is shown
/// only what its roles and scopes allow, so no list may be served to another — and reads
/// private and immediately stale, since what a caller may read can depend on who asks).
pub fn shape_result(mut result: ServerResult, stateless: bool) -> ServerResult {
    if stateless {
        if matches!(result, ServerResult::EmptyResult(_)) {
            return ServerResult::task_ack(());
        }
        use rmcp::model::CacheScope;
        let (ttl, scope, default_ttl, default_scope) = match &mut result {
            ServerResult::ListToolsResult(r) => (&mut r.ttl_ms, &mut r.cache_scope, LIST_TTL_MS, CacheScope::Private),
            ServerResult::ListPromptsResult(r) => (&mut r.ttl_ms, &mut r.cache_scope, LIST_TTL_MS, CacheScope::Private),
            ServerResult::ListResourcesResult(r) => {
                (&mut r.ttl_ms, &mut r.cache_scope, LIST_TTL_MS, CacheScope::Private)
            }
            ServerResult::ListResourceTemplatesResult(r) => {
                (&mut r.ttl_ms, &mut r.cache_scope, LIST_TTL_MS, CacheScope::Private)
            }
            ServerResult::ReadResourceResult(r) => (&mut r.ttl_ms, &mut r.cache_scope, 0, CacheScope::Private),
            _ => return result,
        };
        ttl.get_or_insert(default_ttl);
        scope.get_or_insert(default_scope);
    } else {
        result.strip_result_type_for_legacy_peer();
        result.strip_non_object_output_for_legacy_peer();
    }
    result
}

/// Serialise a message as one line of compact JSON (SSE `data:` lines and
/// newline-delimited readers need exactly that).
pub fn encode(message: &ServerJsonRpcMessage) -> String {
    serde_json::to_string(message).unwrap_or_else(|e| {
        json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32603, "message": format!("cannot encode: {e}")}})
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_method_list_says_what_is_served_and_what_is_named() {
        assert!(is_known_method("tools/call") && is_known_method("notifications/initialized"));
        assert!(!is_known_method("tasks/get") && !is_known_method("x/unknown"));
        assert_eq!(method_name("tasks/get"), Some("tasks/get"));
        assert_eq!(method_name("notifications/cancelled"), Some("notifications/cancelled"));
        assert_eq!(method_name("x/unknown"), None);
        assert_eq!(METHODS.iter().filter(|m| m.served).count(), 16);
    }

    #[test]
    fn negotiation_keeps_supported_versions_and_offers_the_latest_otherwise() {
        assert_eq!(negotiate("2025-06-18").as_str(), "2025-06-18");
        assert_eq!(negotiate("2024-11-05").as_str(), "2025-11-25");
        assert_eq!(negotiate("2026-07-28").as_str(), "2025-11-25", "no handshake in 2026-07-28");
        assert_eq!(negotiate("garbage").as_str(), "2025-11-25");
    }

    #[test]
    fn pages_walk_every_item_once() {
        let items: Vec<u32> = (0..250).collect();
        let (first, next) = page(items.clone(), None, 100).unwrap();
        assert_eq!(first.len(), 100);
        let (second, next) = page(items.clone(), next.as_deref(), 100).unwrap();
        assert_eq!(second[0], 100);
        let (third, next) = page(items.clone(), next.as_deref(), 100).unwrap();
        assert_eq!(third.len(), 50);
        assert!(next.is_none());
        for bad in ["", "x", "p12", "pzzzzzzzzzzzzzzzz", &encode_cursor(251)] {
            assert!(page(items.clone(), Some(bad), 100).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn missing_resources_use_the_era_code() {
        assert_eq!(resource_not_found("x://y", true).code, ErrorCode::INVALID_PARAMS);
        assert_eq!(resource_not_found("x://y", false).code, ErrorCode::RESOURCE_NOT_FOUND);
        assert_eq!(resource_not_found("x://y", true).data, Some(json!({"uri": "x://y"})));
    }

    #[test]
    fn errors_quote_only_a_prefix_of_a_callers_name() {
        let huge = "m".repeat(1_000_000);
        assert!(method_not_found(&huge).message.len() < 200);
        let missing = resource_not_found(&huge, true);
        assert!(missing.message.len() < 300);
        assert!(missing.data.unwrap().to_string().len() < 300);
    }

    #[test]
    fn empty_results_are_shaped_per_era() {
        let legacy = serde_json::to_value(shape_result(ServerResult::empty(()), false)).unwrap();
        assert_eq!(legacy, json!({}));
        let modern = serde_json::to_value(shape_result(ServerResult::empty(()), true)).unwrap();
        assert_eq!(modern, json!({"resultType": "complete"}));
        let tool = ServerResult::CallToolResult(rmcp::model::CallToolResult::success(vec![ContentBlock::text("hi")]));
        let legacy = serde_json::to_value(shape_result(tool.clone(), false)).unwrap();
        assert!(legacy.get("resultType").is_none());
        let modern = serde_json::to_value(shape_result(tool, true)).unwrap();
        assert_eq!(modern["resultType"], "complete");
    }

    #[test]
    fn stateless_lists_and_reads_get_cache_hints_and_older_peers_none() {
        let list = ServerResult::ListToolsResult(rmcp::model::ListToolsResult::with_all_items(vec![]));
        let modern = serde_json::to_value(shape_result(list.clone(), true)).unwrap();
        assert_eq!((modern["ttlMs"].clone(), modern["cacheScope"].clone()), (json!(LIST_TTL_MS), json!("private")));
        let legacy = serde_json::to_value(shape_result(list, false)).unwrap();
        assert!(legacy.get("ttlMs").is_none() && legacy.get("cacheScope").is_none());
        let read = ServerResult::ReadResourceResult(
            rmcp::model::ReadResourceResult::new(vec![])
                .with_ttl_ms(5)
                .with_cache_scope(rmcp::model::CacheScope::Public),
        );
        let modern = serde_json::to_value(shape_result(read, true)).unwrap();
        assert_eq!(modern["ttlMs"], 5, "a handler's own hints are kept");
    }

    #[test]
    fn unsupported_version_lists_what_is_served() {
        let e = unsupported_version("v999");
        assert_eq!(e.code, ErrorCode::UNSUPPORTED_PROTOCOL_VERSION);
        let data = e.data.unwrap();
        assert_eq!(data["requested"], "v999");
        assert!(data["supported"].as_array().unwrap().contains(&json!("2026-07-28")));
    }
}
