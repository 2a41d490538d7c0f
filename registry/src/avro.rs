//! Avro schemas as the registry sees them: parsing, the stored text form, compatibility.

use apache_avro::Schema;
use apache_avro::schema_compatibility::{Compatibility as Resolution, SchemaCompatibility};

use crate::error::ApiError;

/// A schema submitted to the registry: its stored text and its parsed form.
#[derive(Debug, Clone)]
pub(crate) struct ParsedSchema {
    /// The submitted JSON without insignificant whitespace; the identity of a schema (two
    /// submissions with the same text get the same id).
    pub(crate) text: String,
    /// The parsed schema, for compatibility checks.
    pub(crate) schema: Schema,
}

impl ParsedSchema {
    /// Parses a schema string as sent in a request body; 42201 when it is not valid Avro.
    pub(crate) fn parse(raw: &str) -> Result<Self, ApiError> {
        if raw.trim().is_empty() {
            return Err(ApiError::InvalidSchema("the schema is empty".to_owned()));
        }
        let schema = Schema::parse_str(raw)
            .map_err(|e| ApiError::InvalidSchema(format!("{e} (schema: {raw})")))?;
        Ok(Self {
            text: minify(raw),
            schema,
        })
    }
}

/// Removes whitespace outside JSON strings; keeps key order and everything else as submitted.
fn minify(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Why data written with `writer` may not be readable with `reader`; `None` when it always is.
///
/// apache-avro's "partial" resolution (some union branches or enum symbols unreadable) counts as
/// incompatible, as it does for Confluent.
pub(crate) fn read_failure(writer: &Schema, reader: &Schema) -> Option<String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Resolution::Full) => None,
        Ok(Resolution::Partial) => Some(
            "some values cannot be resolved (a union branch or enum symbol of the writer is \
             missing in the reader)"
                .to_owned(),
        ),
        Err(e) => Some(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn minify_keeps_strings_and_order() {
        let raw = "{ \"type\" : \"record\", \"name\": \"R\", \"doc\": \"a \\\" b  c\",\n \"fields\": [] }";
        assert_eq!(
            minify(raw),
            r#"{"type":"record","name":"R","doc":"a \" b  c","fields":[]}"#
        );
    }

    #[test]
    fn invalid_schemas_are_42201() {
        for raw in [
            "",
            "{",
            r#"{"type":"record","name":"R"}"#,
            r#""nosuchtype""#,
        ] {
            let err = ParsedSchema::parse(raw).unwrap_err();
            assert_eq!(err.error_code(), 42201, "{raw}");
        }
    }

    #[test]
    fn read_failure_follows_avro_resolution() {
        let int = Schema::Int;
        let long = Schema::Long;
        assert_eq!(read_failure(&int, &long), None);
        assert!(read_failure(&long, &int).is_some());
        let abc = ParsedSchema::parse(r#"{"type":"enum","name":"E","symbols":["A","B","C"]}"#)
            .unwrap()
            .schema;
        let ab = ParsedSchema::parse(r#"{"type":"enum","name":"E","symbols":["A","B"]}"#)
            .unwrap()
            .schema;
        assert_eq!(read_failure(&ab, &abc), None);
        assert!(read_failure(&abc, &ab).unwrap().contains("enum"));
    }
}
