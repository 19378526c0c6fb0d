//! Reading one value's text: the rules every section shares, so a number, a switch, a list
//! or a choice is read, and its mistake worded, the same way whichever variable holds it.

use std::fmt;

/// A whole number of type `T`.
pub(super) fn parse_num<T: std::str::FromStr>(v: &str) -> Result<T, String>
where
    T::Err: fmt::Display,
{
    v.parse::<T>().map_err(|e| format!("expected a whole number: {e}"))
}

/// The trimmed text, or nothing when it is blank (an empty variable unsets an optional value).
pub(super) fn non_empty(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_owned())
}

/// A switch: `true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off`, in any case.
pub(super) fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

/// One of `choices`, by name in any case.
pub(super) fn parse_choice<T: Copy>(v: &str, choices: &[(&str, T)]) -> Result<T, String> {
    choices
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(v))
        .map(|(_, t)| *t)
        .ok_or_else(|| format!("expected one of: {}", choices.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")))
}

/// A comma-separated list, items trimmed, empty items left out.
pub(super) fn parse_list(v: &str) -> Vec<String> {
    v.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect()
}

/// The reason given for a key no section knows: a variable table row naming a key its
/// section does not read (a test runs every row, so this never reaches an operator).
pub(super) fn unknown(key: &str) -> String {
    format!("no setting is called `{key}`")
}
