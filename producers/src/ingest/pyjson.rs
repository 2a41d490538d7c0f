//! JSON as Python's `json` module and Dagster's webserver see it, so that `ingest` answers
//! byte for byte what Dagster answers.
//!
//! - [`parse`] accepts what `json.loads` accepts (`NaN`, `Infinity`, `-Infinity`, integers of
//!   any size, duplicate keys: first position, last value) and fails with the same message
//!   (`Expecting value: line 1 column 1 (char 0)`), positions counted in characters.
//! - [`PyValue::repr`] is Python's `repr()` of the decoded value and [`PyValue::type_name`]
//!   its `type()`, both quoted in Dagster's error messages.
//! - [`PyValue::dumps_sorted`] is the text Dagster's serdes stores for JSON metadata
//!   (`json.dumps(sort_keys=True)`: `", "`/`": "` separators, ASCII only).
//! - [`PyValue::contains`] and [`PyValue::index`] are Python's `key in body` and
//!   `body[key]`, which the webserver applies to whatever JSON the body holds.
//!
//! Lone UTF-16 surrogates (`"\ud800"`) decode to U+FFFD here (Python keeps them).

use std::fmt::Write as _;

/// A decoded JSON value, typed as Python would type it.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    /// `None`
    Null,
    /// `bool`
    Bool(bool),
    /// `int`, as its decimal digits (Python integers are unbounded).
    Int(String),
    /// `float`
    Float(f64),
    /// `str`
    Str(String),
    /// `list`
    List(Vec<PyValue>),
    /// `dict`, in insertion order.
    Dict(Vec<(String, PyValue)>),
}

/// Python's `JSONDecodeError`, formatted as `str(error)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PyJsonError(pub String);

/// Nesting deeper than this is refused (Python would hit its recursion limit near 1000).
const MAX_DEPTH: usize = 512;

/// Parses `text` as `json.loads` does.
pub fn parse(text: &str) -> Result<PyValue, PyJsonError> {
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        depth: 0,
    };
    if text.starts_with('\u{feff}') {
        return Err(parser.error("Unexpected UTF-8 BOM (decode using utf-8-sig)", 0));
    }
    let start = parser.skip_ws(0);
    let (value, end) = parser.value(start)?;
    let end = parser.skip_ws(end);
    if end != text.len() {
        return Err(parser.error("Extra data", end));
    }
    Ok(value)
}

/// Parses a request body as Starlette's `request.json()` does: UTF-8 (a leading BOM is
/// dropped), then [`parse`]. `None` when it fails (Dagster answers 500 then).
pub fn parse_body(body: &[u8]) -> Option<PyValue> {
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    parse(std::str::from_utf8(body).ok()?).ok()
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    depth: usize,
}

/// What a value parse returns: the value and the byte offset after it.
type Parsed = Result<(PyValue, usize), PyJsonError>;

impl Parser<'_> {
    /// `msg: line L column C (char P)` at byte offset `at`, counted in characters.
    fn error(&self, msg: &str, at: usize) -> PyJsonError {
        let before = &self.text[..at.min(self.text.len())];
        let pos = before.chars().count();
        let line = before.matches('\n').count() + 1;
        let column = match before.rfind('\n') {
            Some(newline) => before[newline + 1..].chars().count() + 1,
            None => pos + 1,
        };
        PyJsonError(format!("{msg}: line {line} column {column} (char {pos})"))
    }

    fn skip_ws(&self, mut at: usize) -> usize {
        while matches!(self.bytes.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            at += 1;
        }
        at
    }

    fn value(&mut self, at: usize) -> Parsed {
        let rest = &self.text[at..];
        match self.bytes.get(at) {
            Some(b'"') => {
                let (text, end) = self.string(at)?;
                Ok((PyValue::Str(text), end))
            }
            Some(b'{') => self.nested(at, Self::object),
            Some(b'[') => self.nested(at, Self::array),
            _ if rest.starts_with("null") => Ok((PyValue::Null, at + 4)),
            _ if rest.starts_with("true") => Ok((PyValue::Bool(true), at + 4)),
            _ if rest.starts_with("false") => Ok((PyValue::Bool(false), at + 5)),
            _ if rest.starts_with("NaN") => Ok((PyValue::Float(f64::NAN), at + 3)),
            _ if rest.starts_with("Infinity") => Ok((PyValue::Float(f64::INFINITY), at + 8)),
            _ if rest.starts_with("-Infinity") => Ok((PyValue::Float(f64::NEG_INFINITY), at + 9)),
            _ => self.number(at),
        }
    }

    fn nested(&mut self, at: usize, parse: fn(&mut Self, usize) -> Parsed) -> Parsed {
        if self.depth >= MAX_DEPTH {
            return Err(PyJsonError(
                "maximum recursion depth exceeded while decoding a JSON document".to_owned(),
            ));
        }
        self.depth += 1;
        let parsed = parse(self, at);
        self.depth -= 1;
        parsed
    }

    fn number(&self, start: usize) -> Parsed {
        let bytes = self.bytes;
        let digits = |mut at: usize| {
            while bytes.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            at
        };
        let mut at = start;
        if bytes.get(at) == Some(&b'-') {
            at += 1;
        }
        match bytes.get(at) {
            Some(b'1'..=b'9') => at = digits(at + 1),
            Some(b'0') => at += 1,
            _ => return Err(self.error("Expecting value", start)),
        }
        let mut is_float = false;
        if bytes.get(at) == Some(&b'.') && bytes.get(at + 1).is_some_and(u8::is_ascii_digit) {
            at = digits(at + 1);
            is_float = true;
        }
        if matches!(bytes.get(at), Some(b'e' | b'E')) {
            let mut exp = at + 1;
            if matches!(bytes.get(exp), Some(b'+' | b'-')) {
                exp += 1;
            }
            let end = digits(exp);
            if end > exp {
                at = end;
                is_float = true;
            }
        }
        let text = &self.text[start..at];
        let value = if is_float {
            // Rust's float parsing rounds correctly, as Python's does; overflow gives inf.
            PyValue::Float(text.parse().unwrap_or(f64::NAN))
        } else if text == "-0" {
            PyValue::Int("0".to_owned())
        } else {
            PyValue::Int(text.to_owned())
        };
        Ok((value, at))
    }

    /// A string starting at the quote at `start`.
    fn string(&self, start: usize) -> Result<(String, usize), PyJsonError> {
        let unterminated = || self.error("Unterminated string starting at", start);
        let mut out = String::new();
        let mut at = start + 1;
        loop {
            let chunk_end = self.bytes[at..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .map(|offset| at + offset)
                .ok_or_else(unterminated)?;
            out.push_str(&self.text[at..chunk_end]);
            match self.bytes[chunk_end] {
                b'"' => return Ok((out, chunk_end + 1)),
                b'\\' => {
                    let escape = chunk_end + 1;
                    let simple = match self.bytes.get(escape) {
                        None => return Err(unterminated()),
                        Some(b'u') => None,
                        Some(b'"') => Some('"'),
                        Some(b'\\') => Some('\\'),
                        Some(b'/') => Some('/'),
                        Some(b'b') => Some('\u{8}'),
                        Some(b'f') => Some('\u{c}'),
                        Some(b'n') => Some('\n'),
                        Some(b'r') => Some('\r'),
                        Some(b't') => Some('\t'),
                        Some(_) => return Err(self.error("Invalid \\escape", chunk_end)),
                    };
                    if let Some(c) = simple {
                        out.push(c);
                        at = escape + 1;
                        continue;
                    }
                    let (c, end) = self.unicode_escape(escape)?;
                    out.push(c);
                    at = end;
                }
                _ => return Err(self.error("Invalid control character at", chunk_end)),
            }
        }
    }

    /// `\uXXXX` (with `u` at `at`), joining a surrogate pair.
    fn unicode_escape(&self, at: usize) -> Result<(char, usize), PyJsonError> {
        let hex = |from: usize| {
            self.text
                .get(from..from + 4)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
        };
        let first = hex(at + 1).ok_or_else(|| self.error("Invalid \\uXXXX escape", at))?;
        let end = at + 5;
        if (0xd800..0xdc00).contains(&first)
            && self.text[end..].starts_with("\\u")
            && let Some(second) = hex(end + 2).filter(|s| (0xdc00..0xe000).contains(s))
        {
            let code = 0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00);
            return Ok((char::from_u32(code).unwrap_or('\u{fffd}'), end + 6));
        }
        Ok((char::from_u32(first).unwrap_or('\u{fffd}'), end))
    }

    fn object(&mut self, start: usize) -> Parsed {
        let mut entries: Vec<(String, PyValue)> = Vec::new();
        let mut at = self.skip_ws(start + 1);
        if self.bytes.get(at) == Some(&b'}') {
            return Ok((PyValue::Dict(entries), at + 1));
        }
        loop {
            if self.bytes.get(at) != Some(&b'"') {
                return Err(self.error("Expecting property name enclosed in double quotes", at));
            }
            let (key, after_key) = self.string(at)?;
            at = self.skip_ws(after_key);
            if self.bytes.get(at) != Some(&b':') {
                return Err(self.error("Expecting ':' delimiter", at));
            }
            at = self.skip_ws(at + 1);
            let (value, after_value) = self.value(at)?;
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = value,
                None => entries.push((key, value)),
            }
            at = self.skip_ws(after_value);
            match self.bytes.get(at) {
                Some(b'}') => return Ok((PyValue::Dict(entries), at + 1)),
                Some(b',') => at = self.skip_ws(at + 1),
                _ => return Err(self.error("Expecting ',' delimiter", at)),
            }
        }
    }

    fn array(&mut self, start: usize) -> Parsed {
        let mut items = Vec::new();
        let mut at = self.skip_ws(start + 1);
        if self.bytes.get(at) == Some(&b']') {
            return Ok((PyValue::List(items), at + 1));
        }
        loop {
            let (value, after) = self.value(at)?;
            items.push(value);
            at = self.skip_ws(after);
            match self.bytes.get(at) {
                Some(b']') => return Ok((PyValue::List(items), at + 1)),
                Some(b',') => at = self.skip_ws(at + 1),
                _ => return Err(self.error("Expecting ',' delimiter", at)),
            }
        }
    }
}

/// Python raised `TypeError` (Dagster answers 500 then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PyTypeError;

impl PyValue {
    /// An empty `dict`.
    pub fn empty_dict() -> Self {
        PyValue::Dict(Vec::new())
    }

    /// Python's `key in self`: a dict key, a list element, a substring; a `TypeError` for
    /// numbers, booleans and `None`.
    pub fn contains(&self, key: &str) -> Result<bool, PyTypeError> {
        match self {
            PyValue::Dict(entries) => Ok(entries.iter().any(|(k, _)| k == key)),
            PyValue::List(items) => Ok(items
                .iter()
                .any(|item| matches!(item, PyValue::Str(s) if s == key))),
            PyValue::Str(text) => Ok(text.contains(key)),
            _ => Err(PyTypeError),
        }
    }

    /// Python's `self[key]` after `key in self` held: a `TypeError` unless `self` is a dict.
    pub fn index(&self, key: &str) -> Result<&PyValue, PyTypeError> {
        match self {
            PyValue::Dict(entries) => entries
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .ok_or(PyTypeError),
            _ => Err(PyTypeError),
        }
    }

    /// `type(value)` as Python prints it: `<class 'int'>`.
    pub fn type_name(&self) -> &'static str {
        match self {
            PyValue::Null => "<class 'NoneType'>",
            PyValue::Bool(_) => "<class 'bool'>",
            PyValue::Int(_) => "<class 'int'>",
            PyValue::Float(_) => "<class 'float'>",
            PyValue::Str(_) => "<class 'str'>",
            PyValue::List(_) => "<class 'list'>",
            PyValue::Dict(_) => "<class 'dict'>",
        }
    }

    /// Python's `repr(value)`.
    pub fn repr(&self) -> String {
        let mut out = String::new();
        self.write_repr(&mut out);
        out
    }

    fn write_repr(&self, out: &mut String) {
        match self {
            PyValue::Null => out.push_str("None"),
            PyValue::Bool(true) => out.push_str("True"),
            PyValue::Bool(false) => out.push_str("False"),
            PyValue::Int(digits) => out.push_str(digits),
            PyValue::Float(value) => out.push_str(&float_repr(*value)),
            PyValue::Str(text) => str_repr(text, out),
            PyValue::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_repr(out);
                }
                out.push(']');
            }
            PyValue::Dict(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    str_repr(key, out);
                    out.push_str(": ");
                    value.write_repr(out);
                }
                out.push('}');
            }
        }
    }

    /// `json.dumps(value, sort_keys=True)`: the text Dagster stores for JSON metadata.
    pub fn dumps_sorted(&self) -> String {
        let mut out = String::new();
        self.write_dumps(&mut out);
        out
    }

    fn write_dumps(&self, out: &mut String) {
        match self {
            PyValue::Null => out.push_str("null"),
            PyValue::Bool(true) => out.push_str("true"),
            PyValue::Bool(false) => out.push_str("false"),
            PyValue::Int(digits) => out.push_str(digits),
            PyValue::Float(value) if value.is_nan() => out.push_str("NaN"),
            PyValue::Float(value) if value.is_infinite() => {
                out.push_str(if *value > 0.0 {
                    "Infinity"
                } else {
                    "-Infinity"
                });
            }
            PyValue::Float(value) => out.push_str(&float_repr(*value)),
            PyValue::Str(text) => json_ascii_string(text, out),
            PyValue::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_dumps(out);
                }
                out.push(']');
            }
            PyValue::Dict(entries) => {
                let mut sorted: Vec<&(String, PyValue)> = entries.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                out.push('{');
                for (i, (key, value)) in sorted.into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    json_ascii_string(key, out);
                    out.push_str(": ");
                    value.write_dumps(out);
                }
                out.push('}');
            }
        }
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, fixed notation for decimal
/// exponents in -4..16 (with `.0` for whole numbers), otherwise `1.5e+20`, `1e-05`.
pub fn float_repr(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    // `{:e}` gives the shortest round-trip digits: "-1.5e20", "1e-7", "0e0".
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exponent) {
        let point = exponent + 1; // digits before the decimal point
        let body = if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else {
            let point = point as usize;
            if digits.len() <= point {
                format!("{digits}{}.0", "0".repeat(point - digits.len()))
            } else {
                format!("{}.{}", &digits[..point], &digits[point..])
            }
        };
        format!("{sign}{body}")
    } else {
        let mantissa = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exponent.abs())
    }
}

/// Python's `repr(str)`.
fn str_repr(text: &str, out: &mut String) {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_printable(c) => out.push(c),
            c => {
                let code = u32::from(c);
                let _ = if code <= 0xff {
                    write!(out, "\\x{code:02x}")
                } else if code <= 0xffff {
                    write!(out, "\\u{code:04x}")
                } else {
                    write!(out, "\\U{code:08x}")
                };
            }
        }
    }
    out.push(quote);
}

/// Python's `str.isprintable()` for one character: false for controls, separators other
/// than the space, format characters and private-use characters. (Unassigned code points,
/// which Python also escapes, are printed as they are.)
fn is_printable(c: char) -> bool {
    let code = u32::from(c);
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || matches!(code,
            0x00a0 | 0x00ad | 0x1680 | 0x2000..=0x200f | 0x2028..=0x202f | 0x205f..=0x2064
            | 0x2066..=0x206f | 0x3000 | 0xfeff | 0xfff9..=0xfffb | 0x0600..=0x0605 | 0x061c
            | 0x06dd | 0x070f | 0x0890 | 0x0891 | 0x08e2 | 0x180e | 0x110bd | 0x110cd
            | 0x13430..=0x1343f | 0x1bca0..=0x1bca3 | 0x1d173..=0x1d17a | 0xe0001
            | 0xe0020..=0xe007f | 0xe000..=0xf8ff | 0xf0000..=0x10ffff))
}

/// A JSON string with `ensure_ascii`, as Python writes it.
fn json_ascii_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text).unwrap_err().0
    }

    #[test]
    fn errors_read_like_pythons() {
        // Each expectation is what Python 3.11's json.loads says.
        let cases = [
            ("", "Expecting value: line 1 column 1 (char 0)"),
            (" ", "Expecting value: line 1 column 2 (char 1)"),
            (
                "{bad",
                "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
            ),
            (
                "{\"a\"",
                "Expecting ':' delimiter: line 1 column 5 (char 4)",
            ),
            ("{\"a\":", "Expecting value: line 1 column 6 (char 5)"),
            (
                "{\"a\":1",
                "Expecting ',' delimiter: line 1 column 7 (char 6)",
            ),
            (
                "{\"a\":1,}",
                "Expecting property name enclosed in double quotes: line 1 column 8 (char 7)",
            ),
            ("[1,]", "Expecting value: line 1 column 4 (char 3)"),
            ("[1 2", "Expecting ',' delimiter: line 1 column 4 (char 3)"),
            (
                "\"abc",
                "Unterminated string starting at: line 1 column 1 (char 0)",
            ),
            (
                "\"a\u{1}\"",
                "Invalid control character at: line 1 column 3 (char 2)",
            ),
            ("\"a\\x\"", "Invalid \\escape: line 1 column 3 (char 2)"),
            (
                "\"a\\u12zz\"",
                "Invalid \\uXXXX escape: line 1 column 4 (char 3)",
            ),
            (
                "\"\\",
                "Unterminated string starting at: line 1 column 1 (char 0)",
            ),
            ("tru", "Expecting value: line 1 column 1 (char 0)"),
            ("1.", "Extra data: line 1 column 2 (char 1)"),
            ("01", "Extra data: line 1 column 2 (char 1)"),
            ("1e+", "Extra data: line 1 column 2 (char 1)"),
            ("[-]", "Expecting value: line 1 column 2 (char 1)"),
            (
                "\n\n  {\"a\":\n x}",
                "Expecting value: line 4 column 2 (char 11)",
            ),
            ("{\"é\": x}", "Expecting value: line 1 column 7 (char 6)"),
            ("true false", "Extra data: line 1 column 6 (char 5)"),
            (
                "\u{feff}1",
                "Unexpected UTF-8 BOM (decode using utf-8-sig): line 1 column 1 (char 0)",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(err(text), expected, "{text:?}");
        }
    }

    #[test]
    fn values_are_typed_as_python_types_them() {
        let value = parse(
            r#"{"a": 1, "b": 1.0, "c": 1E5, "d": -0, "e": NaN, "f": -Infinity,
                "g": 123456789012345678901234567890, "a": [true, null, "\ud83d\ude00\/"]}"#,
        )
        .unwrap();
        let PyValue::Dict(entries) = &value else {
            panic!("not a dict: {value:?}")
        };
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c", "d", "e", "f", "g"]);
        assert_eq!(
            entries[0].1,
            PyValue::List(vec![
                PyValue::Bool(true),
                PyValue::Null,
                PyValue::Str("😀/".into())
            ])
        );
        assert_eq!(entries[1].1, PyValue::Float(1.0));
        assert_eq!(entries[2].1, PyValue::Float(100_000.0));
        assert_eq!(entries[3].1, PyValue::Int("0".into()));
        assert!(matches!(entries[4].1, PyValue::Float(f) if f.is_nan()));
        assert_eq!(entries[5].1, PyValue::Float(f64::NEG_INFINITY));
        assert_eq!(
            entries[6].1,
            PyValue::Int("123456789012345678901234567890".into())
        );
    }

    #[test]
    fn repr_matches_python() {
        let value = parse(r#"[true, null, 1.0, {"b": 1, "a": [2]}, "it's", "q\"'"]"#).unwrap();
        assert_eq!(
            value.repr(),
            r#"[True, None, 1.0, {'b': 1, 'a': [2]}, "it's", 'q"\'']"#
        );
        let text = PyValue::Str("it's \"q\" \u{a0}\u{2028}é\t\u{1}😀\\".into());
        assert_eq!(text.repr(), r#"'it\'s "q" \xa0\u2028é\t\x01😀\\'"#);
        assert_eq!(PyValue::Null.type_name(), "<class 'NoneType'>");
    }

    #[test]
    fn floats_print_like_python() {
        let cases = [
            (1.5e20, "1.5e+20"),
            (1e-7, "1e-07"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (100.0, "100.0"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (2.5e-8, "2.5e-08"),
            (1e300, "1e+300"),
            (123.456, "123.456"),
            (3.0, "3.0"),
        ];
        for (value, expected) in cases {
            assert_eq!(float_repr(value), expected, "{value}");
        }
    }

    #[test]
    fn dumps_sorted_matches_dagsters_stored_text() {
        // From a row Dagster 1.13 stored for the same metadata value.
        let value = parse(
            r#"{"z": 1, "a": [1.5, 1e20, 1e-7, 0.1, -0.0, 100.0, 1E5, 12345678901234567890,
                "é\u2028\n\"", null, true, {"b": {}}], "m": []}"#,
        )
        .unwrap();
        assert_eq!(
            value.dumps_sorted(),
            r#"{"a": [1.5, 1e+20, 1e-07, 0.1, -0.0, 100.0, 100000.0, 12345678901234567890, "\u00e9\u2028\n\"", null, true, {"b": {}}], "m": [], "z": 1}"#
        );
    }

    #[test]
    fn membership_follows_python() {
        let list = parse(r#"["asset_key", 1]"#).unwrap();
        assert_eq!(list.contains("asset_key"), Ok(true));
        assert_eq!(list.index("asset_key"), Err(PyTypeError));
        let text = PyValue::Str("my metadata".into());
        assert_eq!(text.contains("metadata"), Ok(true));
        assert_eq!(PyValue::Int("5".into()).contains("x"), Err(PyTypeError));
        assert_eq!(PyValue::Null.contains("x"), Err(PyTypeError));
    }

    #[test]
    fn bodies_decode_as_starlette_does() {
        assert_eq!(parse_body(b"\xef\xbb\xbf{}"), Some(PyValue::empty_dict()));
        assert_eq!(parse_body(b"{\xff}"), None);
        assert_eq!(parse_body(b"{bad"), None);
    }
}
