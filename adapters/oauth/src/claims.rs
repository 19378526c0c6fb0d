//! Claims the domain does not read: malformed numeric dates and the DPoP confirmation.
//! The standard claims and roles are read by the domain's `Claims::from_json`.

use serde_json::{Map, Value};

fn seconds(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        _ => None,
    }
}

/// Whether a numeric-date claim is present but not a number (a malformed token).
pub fn bad_numeric_date(claims: &Map<String, Value>) -> Option<&'static str> {
    ["exp", "nbf", "iat"].into_iter().find(|name| claims.get(*name).is_some_and(|v| seconds(Some(v)).is_none()))
}

/// The `cnf.jkt` confirmation (RFC 9449 §6): the thumbprint of the key a DPoP-bound
/// token is bound to.
pub fn jkt(claims: &Map<String, Value>) -> Option<String> {
    claims.get("cnf")?.get("jkt")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn numeric_dates_must_be_numbers() {
        assert_eq!(bad_numeric_date(&map(json!({"exp": "soon"}))), Some("exp"));
        assert_eq!(bad_numeric_date(&map(json!({"exp": 5, "iat": -3}))), Some("iat"));
        assert_eq!(bad_numeric_date(&map(json!({"exp": 5, "nbf": 1.5}))), None);
    }

    #[test]
    fn confirmation_thumbprint_is_read_from_cnf() {
        assert_eq!(jkt(&map(json!({"cnf": {"jkt": "abc"}}))).as_deref(), Some("abc"));
        assert_eq!(jkt(&map(json!({"cnf": {"x5t#S256": "abc"}}))), None);
    }
}
