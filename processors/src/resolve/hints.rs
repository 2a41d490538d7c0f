//! Table hints carried by Dagster metadata, and the parser of dotted relation names.

use lineage_schemas::records::MetadataEntry;
use serde::{Deserialize, Serialize};

/// Dagster's table-name metadata key (`TableMetadataSet.table_name`).
pub const DAGSTER_TABLE_NAME: &str = "dagster/table_name";
/// Its older name (`TableMetadataSet.relation_identifier`), still written by integrations.
pub const DAGSTER_RELATION_IDENTIFIER: &str = "dagster/relation_identifier";

/// The metadata values the resolver reads, from an asset definition or a materialization.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableHints {
    /// `dagster/table_name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_name: Option<String>,
    /// `dagster/relation_identifier`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relation_identifier: Option<String>,
    /// Label `database`, `db` or `database_name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Label `schema` or `schema_name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Label `table` or `table_name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

impl TableHints {
    /// Reads the hints from metadata entries. Labels are compared lowercased, as the
    /// connector does; a value is the entry's text, trimmed, when not empty.
    pub fn from_metadata(entries: &[MetadataEntry]) -> Self {
        let mut hints = Self::default();
        for entry in entries {
            let Some(value) = entry
                .text
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
            else {
                continue;
            };
            let slot = match entry.label.to_lowercase().as_str() {
                DAGSTER_TABLE_NAME => &mut hints.table_name,
                DAGSTER_RELATION_IDENTIFIER => &mut hints.relation_identifier,
                "database" | "db" | "database_name" => &mut hints.database,
                "schema" | "schema_name" => &mut hints.schema,
                "table" | "table_name" => &mut hints.table,
                _ => continue,
            };
            *slot = Some(value.to_owned());
        }
        hints
    }

    /// Whether no hint is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// These hints, each field replaced by `newer`'s when `newer` sets it.
    pub fn overlay(&self, newer: &Self) -> Self {
        let pick = |new: &Option<String>, old: &Option<String>| new.clone().or_else(|| old.clone());
        Self {
            table_name: pick(&newer.table_name, &self.table_name),
            relation_identifier: pick(&newer.relation_identifier, &self.relation_identifier),
            database: pick(&newer.database, &self.database),
            schema: pick(&newer.schema, &self.schema),
            table: pick(&newer.table, &self.table),
        }
    }
}

/// A relation name that is not a dotted name of non-empty parts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("relation name {name:?} is not a dotted name of non-empty parts: {reason}")]
pub struct RelationNameError {
    /// The name as given.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Splits a dotted relation name (`db.schema.table`) into its parts. A part may be quoted with
/// `"…"` (a doubled `""` is a quote), `` `…` `` or `[…]`, and then holds dots; quotes are
/// removed, whitespace around parts is trimmed.
pub fn parse_relation(name: &str) -> Result<Vec<String>, RelationNameError> {
    let error = |reason| RelationNameError {
        name: name.to_owned(),
        reason,
    };
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted_part = false;
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '`' | '[' if current.trim().is_empty() && !quoted_part => {
                let close = if c == '[' { ']' } else { c };
                current.clear();
                loop {
                    match chars.next() {
                        Some(q) if q == close && chars.peek() == Some(&close) && close == '"' => {
                            chars.next();
                            current.push(q);
                        }
                        Some(q) if q == close => break,
                        Some(q) => current.push(q),
                        None => return Err(error("unterminated quote")),
                    }
                }
                quoted_part = true;
            }
            '.' => {
                let part = std::mem::take(&mut current);
                let part = if quoted_part {
                    part
                } else {
                    part.trim().to_owned()
                };
                if part.is_empty() {
                    return Err(error("empty part"));
                }
                parts.push(part);
                quoted_part = false;
            }
            c if quoted_part => {
                if !c.is_whitespace() {
                    return Err(error("text after a closing quote"));
                }
            }
            c => current.push(c),
        }
    }
    let last = if quoted_part {
        current
    } else {
        current.trim().to_owned()
    };
    if last.is_empty() {
        return Err(error("empty part"));
    }
    parts.push(last);
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use lineage_schemas::records::MetadataKind;

    use super::*;

    #[test]
    fn relation_names_split_on_unquoted_dots() {
        let ok = |s: &str| parse_relation(s).expect(s);
        assert_eq!(ok("db.schema.table"), vec!["db", "schema", "table"]);
        assert_eq!(ok("orders"), vec!["orders"]);
        assert_eq!(
            ok(r#""my.db"."Sch""ema".t"#),
            vec!["my.db", "Sch\"ema", "t"]
        );
        assert_eq!(ok("`proj.x`.ds.t"), vec!["proj.x", "ds", "t"]);
        assert_eq!(ok("[db].[dbo].[my table]"), vec!["db", "dbo", "my table"]);
        assert_eq!(ok(" db . s . t "), vec!["db", "s", "t"]);
        assert!(parse_relation("db..t").is_err());
        assert!(parse_relation("").is_err());
        assert!(parse_relation("\"open").is_err());
        assert!(parse_relation("\"a\"b.c").is_err());
    }

    #[test]
    fn hints_read_the_connector_labels_and_dagster_keys() {
        let entries = vec![
            MetadataEntry::text("Database", MetadataKind::Text, "analytics_db"),
            MetadataEntry::text("schema_name", MetadataKind::Text, "raw"),
            MetadataEntry::text("table", MetadataKind::Text, "customers"),
            MetadataEntry::text(DAGSTER_TABLE_NAME, MetadataKind::Text, "a.b.c"),
            MetadataEntry::text("other", MetadataKind::Text, "x"),
            MetadataEntry::int("db", 3),
        ];
        let hints = TableHints::from_metadata(&entries);
        assert_eq!(hints.database.as_deref(), Some("analytics_db"));
        assert_eq!(hints.schema.as_deref(), Some("raw"));
        assert_eq!(hints.table.as_deref(), Some("customers"));
        assert_eq!(hints.table_name.as_deref(), Some("a.b.c"));
        assert_eq!(hints.relation_identifier, None);
        let newer = TableHints {
            schema: Some("staging".to_owned()),
            ..TableHints::default()
        };
        let merged = hints.overlay(&newer);
        assert_eq!(merged.schema.as_deref(), Some("staging"));
        assert_eq!(merged.database.as_deref(), Some("analytics_db"));
    }
}
