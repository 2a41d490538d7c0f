//! Python's `json.dumps` (which Dagster's serdes uses) writes the floats NaN and ±infinity as
//! the bare tokens `NaN`, `Infinity` and `-Infinity`, which strict JSON parsers refuse. They are
//! rewritten into the JSON strings `"NaN"`, `"Infinity"` and `"-Infinity"`; the float readers
//! of [`super::serdes`] turn those strings back into the float values. Text without such a
//! token (almost every row) is returned borrowed, after one SIMD substring search.

use std::borrow::Cow;

/// `text` with bare `NaN`, `Infinity` and `-Infinity` tokens (outside strings) quoted.
pub(crate) fn quote_non_finite(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    if memchr::memmem::find(bytes, b"NaN").is_none()
        && memchr::memmem::find(bytes, b"Infinity").is_none()
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut in_string = false;
    let mut escaped = false;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if byte == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        let token = [&b"NaN"[..], b"Infinity", b"-Infinity"]
            .into_iter()
            .find(|token| bytes[i..].starts_with(token));
        match token {
            Some(token) => {
                // Tokens are ASCII, so `i` and `i + token.len()` are char boundaries.
                out.push_str(&text[copied..i]);
                out.push('"');
                out.push_str(&text[i..i + token.len()]);
                out.push('"');
                i += token.len();
                copied = i;
            }
            None => i += 1,
        }
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// The float a quoted non-finite token stands for.
pub(crate) fn non_finite(token: &str) -> Option<f64> {
    match token {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_tokens_are_quoted_and_strings_are_left_alone() {
        let text = r#"{"a": NaN, "b": [Infinity, -Infinity], "c": "NaN and \"Infinity\"", "d": 1}"#;
        assert_eq!(
            quote_non_finite(text),
            r#"{"a": "NaN", "b": ["Infinity", "-Infinity"], "c": "NaN and \"Infinity\"", "d": 1}"#
        );
    }

    #[test]
    fn text_without_tokens_is_borrowed() {
        let text = r#"{"a": 1.5, "b": "Infinity"}"#;
        // "Infinity" occurs, but only inside a string: the copy is identical.
        assert_eq!(quote_non_finite(text), text);
        assert!(matches!(quote_non_finite(r#"{"a": 1}"#), Cow::Borrowed(_)));
    }

    #[test]
    fn tokens_map_to_floats() {
        assert!(non_finite("NaN").is_some_and(f64::is_nan));
        assert_eq!(non_finite("-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(non_finite("nan"), None);
    }
}
