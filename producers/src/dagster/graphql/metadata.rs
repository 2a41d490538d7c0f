//! Dagster's GraphQL `MetadataEntry` union → typed [`MetadataEntry`]s, the same values the
//! event-log parser reads from storage ([`crate::dagster::parse`]). Where GraphQL shows less
//! than storage: `CODE_REFERENCES` is the GraphQL objects as JSON (storage has serdes JSON);
//! a column without stored constraints shows GraphQL's defaults (nullable, not unique). An
//! unknown `__typename` becomes an `OTHER` entry holding the entry's JSON.

use std::collections::BTreeMap;

use lineage_schemas::records::{
    ColumnDeps, ColumnLineage, ColumnRef, MetadataEntry, MetadataKind, TableColumn, TableSchema,
};
use serde::Deserialize;

/// The selection of a metadata entry (spread `...Metadata` and include [`FRAGMENTS`]).
pub const FRAGMENTS: &str = r"
fragment Metadata on MetadataEntry {
  __typename label
  ... on TextMetadataEntry { text }
  ... on UrlMetadataEntry { url }
  ... on PathMetadataEntry { path }
  ... on NotebookMetadataEntry { path }
  ... on MarkdownMetadataEntry { mdStr }
  ... on JsonMetadataEntry { jsonString }
  ... on PythonArtifactMetadataEntry { module name }
  ... on PipelineRunMetadataEntry { runId }
  ... on JobMetadataEntry { jobName }
  ... on PoolMetadataEntry { pool }
  ... on IntMetadataEntry { intRepr }
  ... on FloatMetadataEntry { floatValue floatRepr }
  ... on TimestampMetadataEntry { timestamp }
  ... on BoolMetadataEntry { boolValue }
  ... on AssetMetadataEntry { assetKey { path } }
  ... on TableSchemaMetadataEntry { schema { ...Schema } }
  ... on TableMetadataEntry { table { records schema { ...Schema } } }
  ... on TableColumnLineageMetadataEntry { lineage { columnName columnDeps { assetKey { path } columnName } } }
  ... on CodeReferencesMetadataEntry { codeReferences {
    __typename
    ... on LocalFileCodeReference { filePath lineNumber label }
    ... on UrlCodeReference { url label }
  } }
}
fragment Schema on TableSchema {
  columns { name type description constraints { nullable unique } tags { key value } }
}
";

/// `AssetKey { path }`.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyJson {
    /// The key path.
    pub path: Vec<String>,
}

/// `{ key value }` (definition and event tags).
#[derive(Debug, Clone, Deserialize)]
pub struct TagJson {
    /// Tag key.
    pub key: String,
    /// Tag value.
    pub value: String,
}

/// Tags as a map.
pub fn tag_map(tags: Vec<TagJson>) -> BTreeMap<String, String> {
    tags.into_iter().map(|t| (t.key, t.value)).collect()
}

/// One entry of the union, every member's fields optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EntryJson {
    #[serde(rename = "__typename")]
    typename: String,
    label: String,
    text: Option<String>,
    url: Option<String>,
    path: Option<String>,
    md_str: Option<String>,
    json_string: Option<String>,
    module: Option<String>,
    name: Option<String>,
    run_id: Option<String>,
    job_name: Option<String>,
    pool: Option<String>,
    int_repr: Option<String>,
    float_value: Option<f64>,
    float_repr: Option<String>,
    timestamp: Option<f64>,
    bool_value: Option<bool>,
    asset_key: Option<KeyJson>,
    schema: Option<SchemaJson>,
    table: Option<TableJson>,
    lineage: Option<Vec<LineageJson>>,
    code_references: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct SchemaJson {
    #[serde(default)]
    columns: Vec<ColumnJson>,
}

#[derive(Debug, Deserialize)]
struct ColumnJson {
    name: String,
    #[serde(rename = "type", default)]
    data_type: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    constraints: Option<ConstraintsJson>,
    #[serde(default)]
    tags: Vec<TagJson>,
}

#[derive(Debug, Deserialize)]
struct ConstraintsJson {
    nullable: Option<bool>,
    unique: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct TableJson {
    #[serde(default)]
    records: Vec<String>,
    schema: Option<SchemaJson>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LineageJson {
    column_name: String,
    #[serde(default)]
    column_deps: Vec<ColumnDepJson>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ColumnDepJson {
    asset_key: KeyJson,
    column_name: String,
}

/// The typed entries, in GraphQL order.
pub fn entries(list: Vec<EntryJson>) -> Vec<MetadataEntry> {
    list.into_iter().map(entry).collect()
}

/// One typed entry.
pub fn entry(json: EntryJson) -> MetadataEntry {
    let label = json.label.clone();
    let text = |kind, text: Option<String>| MetadataEntry {
        text,
        ..MetadataEntry::empty(&label, kind)
    };
    let class = json
        .typename
        .strip_suffix("MetadataEntry")
        .unwrap_or(&json.typename);
    match class {
        "Text" => text(MetadataKind::Text, json.text),
        "Url" => text(MetadataKind::Url, json.url),
        "Path" => text(MetadataKind::Path, json.path),
        "Notebook" => text(MetadataKind::Notebook, json.path),
        "Markdown" => text(MetadataKind::Markdown, json.md_str),
        "Json" => text(MetadataKind::Json, json.json_string),
        "PythonArtifact" => text(
            MetadataKind::PythonArtifact,
            match (json.module, json.name) {
                (Some(module), Some(name)) => Some(format!("{module}.{name}")),
                (module, name) => module.or(name),
            },
        ),
        "PipelineRun" => text(MetadataKind::Run, json.run_id),
        "Job" => text(MetadataKind::Job, json.job_name),
        "Pool" => text(MetadataKind::Pool, json.pool),
        "CodeReferences" => text(
            MetadataKind::CodeReferences,
            json.code_references.map(|refs| refs.to_string()),
        ),
        "Int" => {
            let mut entry = MetadataEntry::empty(&label, MetadataKind::Int);
            if let Some(digits) = json.int_repr {
                match digits.parse::<i64>() {
                    Ok(value) => entry.int = Some(value),
                    Err(_) => entry.text = Some(digits),
                }
            }
            entry
        }
        "Float" => MetadataEntry {
            float: json
                .float_value
                .or_else(|| json.float_repr.as_deref().and_then(python_float)),
            ..MetadataEntry::empty(&label, MetadataKind::Float)
        },
        "Timestamp" => MetadataEntry {
            float: json.timestamp,
            ..MetadataEntry::empty(&label, MetadataKind::Timestamp)
        },
        "Bool" => MetadataEntry {
            bool: json.bool_value,
            ..MetadataEntry::empty(&label, MetadataKind::Bool)
        },
        "Null" => MetadataEntry::empty(&label, MetadataKind::Null),
        "Asset" => MetadataEntry {
            asset_key: json.asset_key.map(|key| key.path),
            ..MetadataEntry::empty(&label, MetadataKind::Asset)
        },
        "TableSchema" => MetadataEntry {
            table_schema: json.schema.map(table_schema),
            ..MetadataEntry::empty(&label, MetadataKind::TableSchema)
        },
        "Table" => {
            let table = json.table;
            MetadataEntry {
                text: table
                    .as_ref()
                    .map(|t| format!("[{}]", t.records.join(", "))),
                table_schema: table.and_then(|t| t.schema).map(table_schema),
                ..MetadataEntry::empty(&label, MetadataKind::Table)
            }
        }
        "TableColumnLineage" => MetadataEntry {
            column_lineage: json.lineage.map(column_lineage),
            ..MetadataEntry::empty(&label, MetadataKind::ColumnLineage)
        },
        _ => text(
            MetadataKind::Other,
            Some(serde_json::json!({"__typename": json.typename, "label": label}).to_string()),
        ),
    }
}

/// Python's `repr` of a non-finite float (`nan`, `inf`, `-inf`).
fn python_float(repr: &str) -> Option<f64> {
    match repr {
        "nan" => Some(f64::NAN),
        "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

fn table_schema(schema: SchemaJson) -> TableSchema {
    TableSchema {
        columns: schema
            .columns
            .into_iter()
            .map(|column| {
                let (nullable, unique) = column
                    .constraints
                    .map(|c| (c.nullable, c.unique))
                    .unwrap_or_default();
                TableColumn {
                    name: column.name,
                    data_type: column.data_type,
                    description: column.description,
                    nullable,
                    unique,
                    tags: tag_map(column.tags),
                }
            })
            .collect(),
    }
}

/// Column lineage, columns sorted by name (storage order, a sorted map).
fn column_lineage(lineage: Vec<LineageJson>) -> ColumnLineage {
    let mut columns: Vec<ColumnDeps> = lineage
        .into_iter()
        .map(|entry| ColumnDeps {
            column: entry.column_name,
            deps: entry
                .column_deps
                .into_iter()
                .map(|dep| ColumnRef {
                    asset_key: dep.asset_key.path,
                    column: dep.column_name,
                })
                .collect(),
        })
        .collect();
    columns.sort_by(|a, b| a.column.cmp(&b.column));
    ColumnLineage { columns }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(json: &str) -> MetadataEntry {
        entry(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn scalar_entries() {
        let text = parse(
            r#"{"__typename": "TextMetadataEntry", "label": "dagster/table_name", "text": "db.s.t"}"#,
        );
        assert_eq!(
            (text.kind, text.text.as_deref()),
            (MetadataKind::Text, Some("db.s.t"))
        );
        let int = parse(r#"{"__typename": "IntMetadataEntry", "label": "n", "intRepr": "12"}"#);
        assert_eq!(int.int, Some(12));
        let big = parse(
            r#"{"__typename": "IntMetadataEntry", "label": "n", "intRepr": "123456789012345678901234"}"#,
        );
        assert_eq!(
            (big.int, big.text.as_deref()),
            (None, Some("123456789012345678901234"))
        );
        let nan = parse(
            r#"{"__typename": "FloatMetadataEntry", "label": "f", "floatValue": null, "floatRepr": "nan"}"#,
        );
        assert!(nan.float.unwrap().is_nan());
        let artifact = parse(
            r#"{"__typename": "PythonArtifactMetadataEntry", "label": "a", "module": "m", "name": "f"}"#,
        );
        assert_eq!(artifact.text.as_deref(), Some("m.f"));
        let other = parse(r#"{"__typename": "FutureMetadataEntry", "label": "x"}"#);
        assert_eq!(other.kind, MetadataKind::Other);
        assert!(other.text.unwrap().contains("FutureMetadataEntry"));
    }

    #[test]
    fn schema_and_column_lineage() {
        let schema = parse(
            r#"{"__typename": "TableSchemaMetadataEntry", "label": "dagster/column_schema",
                "schema": {"columns": [{"name": "id", "type": "int", "description": null,
                "constraints": {"nullable": false, "unique": true}, "tags": [{"key": "pii", "value": "no"}]}]}}"#,
        );
        let column = &schema.table_schema.unwrap().columns[0];
        assert_eq!(
            (column.name.as_str(), column.nullable, column.unique),
            ("id", Some(false), Some(true))
        );
        assert_eq!(column.tags["pii"], "no");
        let lineage = parse(
            r#"{"__typename": "TableColumnLineageMetadataEntry", "label": "dagster/column_lineage",
                "lineage": [{"columnName": "b", "columnDeps": [{"assetKey": {"path": ["u"]}, "columnName": "x"}]},
                            {"columnName": "a", "columnDeps": []}]}"#,
        );
        let columns = lineage.column_lineage.unwrap().columns;
        assert_eq!(columns[0].column, "a", "sorted like storage");
        assert_eq!(columns[1].deps[0].asset_key, ["u"]);
    }
}
