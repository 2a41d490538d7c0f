//! Dagster metadata values → typed [`MetadataEntry`]s. Both the legacy storage class names
//! (`TextMetadataEntryData`, ...) and the newer `*MetadataValue` names are read; a class this
//! code does not know becomes an `OTHER` entry holding the value's JSON, never an error.

use lineage_schemas::records::{
    ColumnDeps, ColumnLineage, ColumnRef, MetadataEntry, MetadataKind, TableColumn, TableSchema,
};
use serde_json::value::RawValue;

use super::serdes::{
    ColumnLineageJson, MetadataJson, MetadataValueJson, TableSchemaJson, raw_float,
};

/// The typed entries of stored metadata, in stored order.
pub(crate) fn entries(metadata: MetadataJson<'_>) -> Result<Vec<MetadataEntry>, String> {
    match metadata {
        MetadataJson::Entries(list) => list
            .into_iter()
            .map(|entry| value(&entry.label, entry.entry_data))
            .collect(),
        MetadataJson::Dict(dict) => dict
            .into_iter()
            .map(|(label, raw)| value(&label, raw))
            .collect(),
    }
}

/// One metadata value labelled `label`.
fn value(label: &str, raw: &RawValue) -> Result<MetadataEntry, String> {
    let other = || MetadataEntry::text(label, MetadataKind::Other, raw.get());
    if !raw.get().starts_with('{') {
        return Ok(other());
    }
    let value: MetadataValueJson<'_> =
        serde_json::from_str(raw.get()).map_err(|e| format!("metadata entry '{label}': {e}"))?;
    let class = value
        .class
        .strip_suffix("MetadataEntryData")
        .or_else(|| value.class.strip_suffix("MetadataValue"))
        .unwrap_or(&value.class);
    let text = |kind, text: Option<String>| MetadataEntry {
        text,
        ..MetadataEntry::empty(label, kind)
    };
    let entry = match class {
        "Text" => text(MetadataKind::Text, value.text),
        "Url" => text(MetadataKind::Url, value.url),
        "Path" => text(MetadataKind::Path, value.path),
        "Notebook" => text(MetadataKind::Notebook, value.path),
        "Markdown" => text(MetadataKind::Markdown, value.md_str),
        "Json" => text(
            MetadataKind::Json,
            value.data.map(|data| data.get().to_owned()),
        ),
        "PythonArtifact" => text(
            MetadataKind::PythonArtifact,
            match (value.module, value.name) {
                (Some(module), Some(name)) => Some(format!("{module}.{name}")),
                (module, name) => module.or(name),
            },
        ),
        "DagsterPipelineRun" | "DagsterRun" => text(MetadataKind::Run, value.run_id),
        "DagsterJob" => text(MetadataKind::Job, value.job_name),
        "Pool" => text(MetadataKind::Pool, value.pool),
        "CodeReferences" => text(
            MetadataKind::CodeReferences,
            value.code_references.map(|refs| refs.get().to_owned()),
        ),
        "Int" => int(label, value.value)?,
        "Float" | "Timestamp" => {
            let kind = if class == "Float" {
                MetadataKind::Float
            } else {
                MetadataKind::Timestamp
            };
            MetadataEntry {
                float: value
                    .value
                    .map(raw_float)
                    .transpose()
                    .map_err(|e| format!("metadata entry '{label}': {e}"))?
                    .flatten(),
                ..MetadataEntry::empty(label, kind)
            }
        }
        "Bool" => MetadataEntry {
            bool: match value.value.map(RawValue::get) {
                Some("true") => Some(true),
                Some("false") => Some(false),
                None | Some("null") => None,
                Some(other) => {
                    return Err(format!("metadata entry '{label}': {other} is not a bool"));
                }
            },
            ..MetadataEntry::empty(label, MetadataKind::Bool)
        },
        "Null" => MetadataEntry::empty(label, MetadataKind::Null),
        "DagsterAsset" => MetadataEntry {
            asset_key: value.asset_key.map(|key| key.path),
            ..MetadataEntry::empty(label, MetadataKind::Asset)
        },
        "TableSchema" => MetadataEntry {
            table_schema: value.schema.map(table_schema),
            ..MetadataEntry::empty(label, MetadataKind::TableSchema)
        },
        "TableColumnLineage" => MetadataEntry {
            column_lineage: value.column_lineage.map(column_lineage),
            ..MetadataEntry::empty(label, MetadataKind::ColumnLineage)
        },
        "Table" => MetadataEntry {
            text: value.records.map(|records| {
                let rows: Vec<&str> = records.iter().map(|r| r.data.get()).collect();
                format!("[{}]", rows.join(", "))
            }),
            table_schema: value.schema.map(table_schema),
            ..MetadataEntry::empty(label, MetadataKind::Table)
        },
        _ => other(),
    };
    Ok(entry)
}

/// An `INT` entry. Python ints are unbounded: a value outside `i64` keeps its exact digits
/// in `text` (with `int` unset) rather than being rounded.
fn int(label: &str, raw: Option<&RawValue>) -> Result<MetadataEntry, String> {
    let digits = raw.map(RawValue::get).filter(|text| *text != "null");
    let mut entry = MetadataEntry::empty(label, MetadataKind::Int);
    let Some(digits) = digits else {
        return Ok(entry);
    };
    match digits.parse::<i64>() {
        Ok(value) => entry.int = Some(value),
        Err(_) if is_integer_literal(digits) => entry.text = Some(digits.to_owned()),
        Err(_) => return Err(format!("metadata entry '{label}': {digits} is not an int")),
    }
    Ok(entry)
}

fn is_integer_literal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn table_schema(schema: TableSchemaJson) -> TableSchema {
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
                    tags: column.tags.unwrap_or_default(),
                }
            })
            .collect(),
    }
}

fn column_lineage(lineage: ColumnLineageJson) -> ColumnLineage {
    ColumnLineage {
        columns: lineage
            .deps_by_column
            .into_iter()
            .map(|(column, deps)| ColumnDeps {
                column,
                deps: deps
                    .into_iter()
                    .map(|dep| ColumnRef {
                        asset_key: dep.asset_key.path,
                        column: dep.column_name,
                    })
                    .collect(),
            })
            .collect(),
    }
}
