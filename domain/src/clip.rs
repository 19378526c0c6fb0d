//! Caller-supplied text kept to a fixed size.
//!
//! Whatever a caller sends — a tool name, a resource URI, `clientInfo`, a bad argument — may
//! end up in an audit record, a log line, an error message or a stored session. None of
//! those keeps it whole: text longer than its bound keeps its first bytes (cut at a
//! character boundary), then `…`, then the first 16 hex digits of the BLAKE3 digest of the
//! whole text. Two long values that share a prefix stay distinguishable, and whoever holds
//! the original can still match it. This is the one rule for all of them.

use std::borrow::Cow;

/// Bytes kept of a name, URI, identifier or client self-description.
pub const NAME_BYTES: usize = 128;

/// Bytes kept of a free-text message (an error's description).
pub const TEXT_BYTES: usize = 512;

/// Bytes kept of a bad value quoted in an error message.
pub const QUOTE_BYTES: usize = 64;

/// Hex digits of the digest appended to clipped text.
const DIGEST_HEX: usize = 16;

/// The most bytes [`clip`] returns for a bound of `max`.
pub const fn clipped_len(max: usize) -> usize {
    max + '…'.len_utf8() + DIGEST_HEX
}

/// `text` if it is at most `max` bytes; otherwise its first `max` bytes (fewer if that would
/// split a character), `…` and a short BLAKE3 digest of the whole.
pub fn clip(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let digest = blake3::hash(text.as_bytes()).to_hex();
    Cow::Owned(format!("{}…{}", &text[..end], &digest.as_str()[..DIGEST_HEX]))
}

/// [`clip`] of an owned string, reusing it when it is short enough.
pub fn clip_owned(text: String, max: usize) -> String {
    match clip(&text, max) {
        Cow::Borrowed(_) => text,
        Cow::Owned(clipped) => clipped,
    }
}

/// An error message with every quoted value in it (between `"` or backticks, as serde
/// quotes a bad value) clipped to [`QUOTE_BYTES`], and the whole to [`TEXT_BYTES`]: the
/// message still says what was wrong and what was expected, but repeats at most a short
/// prefix of what was sent.
pub fn clip_quoted(message: &str) -> Cow<'_, str> {
    if message.len() <= QUOTE_BYTES {
        return Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(message.len().min(TEXT_BYTES * 2));
    let mut rest = message;
    let mut changed = false;
    while let Some(open) = rest.find(['"', '`']) {
        let quote = rest.as_bytes()[open];
        out.push_str(&rest[..=open]);
        let body = &rest[open + 1..];
        // The closing quote, skipping backslash escapes; none: the quote runs to the end.
        let mut close = None;
        let mut escaped = false;
        for (i, b) in body.bytes().enumerate() {
            match b {
                b'\\' if !escaped => escaped = true,
                b if b == quote && !escaped => {
                    close = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let end = close.unwrap_or(body.len());
        let quoted = clip(&body[..end], QUOTE_BYTES);
        changed |= matches!(quoted, Cow::Owned(_));
        out.push_str(&quoted);
        match close {
            Some(i) => {
                out.push(quote as char);
                rest = &body[i + 1..];
            }
            None => rest = "",
        }
    }
    out.push_str(rest);
    if !changed && out.len() <= TEXT_BYTES {
        return Cow::Borrowed(message);
    }
    Cow::Owned(clip_owned(out, TEXT_BYTES))
}

/// [`clip_quoted`] of an owned message, reusing it when nothing in it is cut.
pub fn clip_quoted_owned(message: String) -> String {
    match clip_quoted(&message) {
        Cow::Borrowed(_) => message,
        Cow::Owned(clipped) => clipped,
    }
}

/// [`clip`] every string in `value` (object keys too) to `max` bytes, in place.
pub fn clip_json(value: &mut serde_json::Value, max: usize) {
    use serde_json::Value;
    match value {
        Value::String(s) if s.len() > max => *s = clip(s, max).into_owned(),
        Value::Array(items) => items.iter_mut().for_each(|item| clip_json(item, max)),
        Value::Object(map) => {
            if map.keys().any(|k| k.len() > max) {
                let entries = std::mem::take(map);
                for (key, item) in entries {
                    map.insert(clip_owned(key, max), item);
                }
            }
            map.values_mut().for_each(|item| clip_json(item, max));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn short_text_is_kept_as_it_is() {
        assert!(matches!(clip("echo", NAME_BYTES), Cow::Borrowed("echo")));
        let exact = "a".repeat(NAME_BYTES);
        assert_eq!(clip(&exact, NAME_BYTES), exact);
    }

    #[test]
    fn long_text_keeps_a_prefix_and_a_digest_of_the_whole() {
        let long = "x".repeat(2_000_000);
        let clipped = clip(&long, NAME_BYTES);
        assert!(clipped.len() <= clipped_len(NAME_BYTES), "{}", clipped.len());
        assert!(clipped.starts_with(&"x".repeat(NAME_BYTES)));
        let digest = blake3::hash(long.as_bytes()).to_hex();
        assert!(clipped.ends_with(&format!("…{}", &digest.as_str()[..16])), "{clipped}");
        // Same prefix, different tail: different clip.
        let other = format!("{}y", "x".repeat(1_999_999));
        assert_ne!(clip(&other, NAME_BYTES), clipped);
    }

    #[test]
    fn clipping_never_splits_a_character() {
        let text = "é".repeat(100); // two bytes each
        let clipped = clip(&text, 5);
        assert!(clipped.starts_with("éé…"), "{clipped}");
        assert_eq!(clip_owned(text.clone(), 400), text);
    }

    #[test]
    fn quoted_values_in_messages_are_clipped_and_the_rest_kept() {
        let huge = "z".repeat(2_000_000);
        let message = format!("invalid type: string {huge:?}, expected u32");
        let clipped = clip_quoted(&message);
        assert!(clipped.len() < 200, "{}", clipped.len());
        assert!(clipped.starts_with("invalid type: string \"zzzz"), "{clipped}");
        assert!(clipped.ends_with("\", expected u32"), "{clipped}");
        let variant = format!("unknown variant `{huge}`, expected one of `a`, `b`");
        let clipped = clip_quoted(&variant);
        assert!(clipped.ends_with("`, expected one of `a`, `b`"), "{clipped}");
        assert!(clipped.len() < 200);
        let escaped = format!("bad {:?} here", format!("{}\"{}", "q".repeat(100), "r".repeat(100)));
        assert!(clip_quoted(&escaped).ends_with("\" here"), "{}", clip_quoted(&escaped));
        let unterminated = format!("oops \"{huge}");
        assert!(clip_quoted(&unterminated).len() < 200);
        let plain = "missing field `qubits` at line 1 column 2, nothing long in it at all here";
        assert!(matches!(clip_quoted(plain), Cow::Borrowed(_)));
        assert_eq!(clip_quoted_owned(plain.to_owned()), plain);
        assert_eq!(clip_quoted_owned(message.clone()), clip_quoted(&message));
        let long_plain = "w ".repeat(1_000);
        assert!(clip_quoted(&long_plain).len() <= clipped_len(TEXT_BYTES));
    }

    #[test]
    fn json_strings_and_keys_are_clipped_at_every_depth() {
        let long = "k".repeat(1_000);
        let mut value = json!({ "a": [long.clone(), 1, {"b": long.clone()}], long.clone(): true, "short": "s" });
        clip_json(&mut value, 16);
        let text = value.to_string();
        assert!(text.len() < 300, "{text}");
        assert_eq!(value["short"], "s");
        assert_eq!(value["a"][1], 1);
        assert_eq!(value["a"][0], json!(clip(&long, 16)));
        assert_eq!(value[clip(&long, 16).as_ref()], true);
    }
}
