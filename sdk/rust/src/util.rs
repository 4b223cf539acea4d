//! Small conversions and a JSON string writer (the SDK has no serde).

/// The bytes as text; invalid UTF-8 sequences become U+FFFD.
pub fn to_string(input: Vec<u8>) -> String {
    match String::from_utf8(input) {
        Ok(text) => text,
        Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
    }
}

/// The text's UTF-8 bytes.
pub fn to_vec(input: impl Into<String>) -> Vec<u8> {
    input.into().into_bytes()
}

/// `text` as a JSON string literal, quotes included: `"`, `\` and control characters escaped,
/// everything else (non-ASCII too) copied as is.
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A compact JSON object of string members, in the given order:
/// `json_object(&[("a", "1")])` is `{"a":"1"}`.
pub fn json_object(members: &[(&str, &str)]) -> String {
    let members: Vec<String> =
        members.iter().map(|(key, value)| format!("{}:{}", json_string(key), json_string(value))).collect();
    format!("{{{}}}", members.join(","))
}
