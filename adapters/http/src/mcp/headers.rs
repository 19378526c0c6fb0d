//! Request headers of MCP Streamable HTTP.
//!
//! The 2026-07-28 request-metadata headers (`Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`)
//! follow basic/transports/streamable-http, "Request Metadata Headers": values that are not
//! plain visible ASCII arrive as `=?base64?…?=` and are decoded before comparison; header
//! names compare case-insensitively and values case-sensitively.

use base64::Engine as _;
use poem::http::HeaderMap;

/// The session header.
pub const SESSION_ID: &str = "mcp-session-id";
/// The protocol version header.
pub const PROTOCOL_VERSION: &str = "mcp-protocol-version";
/// The method header (2026-07-28).
pub const METHOD: &str = "mcp-method";
/// The name header (2026-07-28).
pub const NAME: &str = "mcp-name";
/// The prefix of parameter headers (2026-07-28).
pub const PARAM_PREFIX: &str = "mcp-param-";
/// SSE resumption.
pub const LAST_EVENT_ID: &str = "last-event-id";

/// A header's value as text, if present and valid UTF-8.
pub fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Decode a metadata header value: the base64 sentinel form `=?base64?…?=`, or the plain
/// value. `None` when the sentinel form is malformed (bad base64, or not UTF-8).
pub fn decode_value(raw: &str) -> Option<String> {
    match raw.strip_prefix("=?base64?").and_then(|rest| rest.strip_suffix("?=")) {
        Some(encoded) => {
            // Strict standard base64 with padding (RFC 4648 §4).
            let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
            String::from_utf8(bytes).ok()
        }
        None => Some(raw.to_owned()),
    }
}

/// Whether the `Accept` header lists `media` (or a wildcard covering it).
pub fn accepts(headers: &HeaderMap, media: &str) -> bool {
    let (kind, _) = media.split_once('/').unwrap_or((media, ""));
    headers.get_all("accept").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|item| {
        let item = item.split(';').next().unwrap_or("").trim();
        item == media || item == "*/*" || item.strip_suffix("/*") == Some(kind)
    })
}

/// Whether the body is declared as JSON.
pub fn is_json(headers: &HeaderMap) -> bool {
    text(headers, "content-type")
        .map(|ct| ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use poem::http::HeaderValue;

    use super::*;

    #[test]
    fn sentinel_values_are_decoded_strictly() {
        assert_eq!(decode_value("=?base64?SGVsbG8=?=").as_deref(), Some("Hello"));
        assert_eq!(decode_value("SGVsbG8=").as_deref(), Some("SGVsbG8="));
        assert_eq!(
            decode_value("=?base64?SGVsbG8="),
            Some("=?base64?SGVsbG8=".into()),
            "unterminated: taken literally"
        );
        assert_eq!(decode_value("=?base64?SGVsbG8?="), None, "bad padding");
        assert_eq!(decode_value("=?base64?SGVs!!!bG8=?="), None, "bad characters");
        assert_eq!(decode_value("=?base64?4pyTIMOgIGxhIG1vZGU=?=").as_deref(), Some("✓ à la mode"));
    }

    #[test]
    fn accept_lists_are_parsed() {
        let mut h = HeaderMap::new();
        h.insert("accept", HeaderValue::from_static("application/json, text/event-stream;q=0.9"));
        assert!(accepts(&h, "application/json") && accepts(&h, "text/event-stream"));
        h.insert("accept", HeaderValue::from_static("text/*"));
        assert!(accepts(&h, "text/event-stream") && !accepts(&h, "application/json"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        assert!(accepts(&h, "application/json"));
        h.remove("accept");
        assert!(!accepts(&h, "application/json"));
    }

    #[test]
    fn content_type_is_checked() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json; charset=utf-8"));
        assert!(is_json(&h));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        assert!(!is_json(&h));
    }
}
