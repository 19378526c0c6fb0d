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

/// Items kept of an array, and entries of an object, by [`clip_json`].
pub const ITEMS: usize = 64;

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

/// [`clip`] every string in `value` (object keys too) to `max` bytes, and keep at most
/// [`ITEMS`] items of each array and entries of each object, in place. What is cut from an
/// array is replaced by one last item, and from an object by one last entry under the key
/// `…`: a string saying how many were left out and the BLAKE3 digest of their JSON.
pub fn clip_json(value: &mut serde_json::Value, max: usize) {
    use serde_json::Value;
    match value {
        Value::String(s) if s.len() > max => *s = clip(s, max).into_owned(),
        Value::Array(items) => {
            if items.len() > ITEMS {
                let rest: Vec<Value> = items.split_off(ITEMS - 1);
                items.push(Value::String(left_out(rest.len(), &Value::Array(rest))));
            }
            items.iter_mut().for_each(|item| clip_json(item, max));
        }
        Value::Object(map) => {
            let too_many = map.len() > ITEMS;
            if too_many || map.keys().any(|k| k.len() > max) {
                let mut entries = std::mem::take(map).into_iter();
                for (key, item) in entries.by_ref().take(if too_many { ITEMS - 1 } else { usize::MAX }) {
                    map.insert(clip_owned(key, max), item);
                }
                let rest: serde_json::Map<String, Value> = entries.collect();
                if !rest.is_empty() {
                    let count = rest.len();
                    map.insert("…".to_owned(), Value::String(left_out(count, &Value::Object(rest))));
                }
            }
            map.values_mut().for_each(|item| clip_json(item, max));
        }
        _ => {}
    }
}

/// What stands for `count` items cut from a list: their number and a digest of `cut`.
fn left_out(count: usize, cut: &serde_json::Value) -> String {
    let digest = blake3::hash(cut.to_string().as_bytes()).to_hex();
    format!("… {count} more, {}", &digest.as_str()[..DIGEST_HEX])
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

    #[test]
    fn long_lists_keep_their_first_items_and_a_digest_of_the_rest() {
        let mut value = json!({
            "many": (0..1_000).collect::<Vec<_>>(),
            "wide": (0..1_000).map(|i| (format!("k{i:04}"), json!(i))).collect::<serde_json::Map<_, _>>(),
            "few": [1, 2, 3],
        });
        clip_json(&mut value, TEXT_BYTES);
        let many = value["many"].as_array().unwrap();
        assert_eq!(many.len(), ITEMS);
        assert_eq!(many[ITEMS - 2], json!(ITEMS - 2));
        let marker = many[ITEMS - 1].as_str().unwrap();
        assert!(marker.starts_with(&format!("… {} more, ", 1_000 - (ITEMS - 1))), "{marker}");
        let wide = value["wide"].as_object().unwrap();
        assert_eq!(wide.len(), ITEMS);
        assert!(wide["…"].as_str().unwrap().starts_with(&format!("… {} more, ", 1_000 - (ITEMS - 1))));
        assert_eq!(value["few"], json!([1, 2, 3]));
        // Different cut-off tails give different digests.
        let mut other = json!((0..1_000).map(|i| if i == 999 { 0 } else { i }).collect::<Vec<_>>());
        clip_json(&mut other, TEXT_BYTES);
        assert_ne!(other[ITEMS - 1], many[ITEMS - 1]);
        let exact = json!((0..ITEMS).collect::<Vec<_>>());
        let mut kept = exact.clone();
        clip_json(&mut kept, TEXT_BYTES);
        assert_eq!(kept, exact, "a list of exactly ITEMS is kept whole");
    }
}
