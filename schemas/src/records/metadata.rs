//! Dagster metadata entries, shared by events and asset definitions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The type of a Dagster metadata value; decides which field of [`MetadataEntry`] is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)] // the variants are Dagster's metadata value classes, named alike
pub enum MetadataKind {
    Text,
    Int,
    Float,
    Bool,
    Null,
    Json,
    Url,
    Path,
    Notebook,
    Markdown,
    PythonArtifact,
    Timestamp,
    Run,
    Job,
    Asset,
    Pool,
    Table,
    TableSchema,
    ColumnLineage,
    CodeReferences,
    Other,
}

/// A typed Dagster metadata entry: `label` and exactly the value field that `kind` names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataEntry {
    /// The metadata label, e.g. `dagster/column_schema`.
    pub label: String,
    /// Which value field is set.
    pub kind: MetadataKind,
    /// Text-like values; JSON, table records and unknown values as JSON text.
    pub text: Option<String>,
    /// Integer values.
    pub int: Option<i64>,
    /// Float values, and timestamps as epoch seconds.
    pub float: Option<f64>,
    /// Boolean values.
    pub bool: Option<bool>,
    /// Asset references.
    pub asset_key: Option<Vec<String>>,
    /// `TableSchema` values (`dagster/column_schema`).
    pub table_schema: Option<TableSchema>,
    /// `TableColumnLineage` values (`dagster/column_lineage`).
    pub column_lineage: Option<ColumnLineage>,
}

impl MetadataEntry {
    /// An entry of `kind` with no value set; callers fill the one field `kind` names.
    pub fn empty(label: impl Into<String>, kind: MetadataKind) -> Self {
        Self {
            label: label.into(),
            kind,
            text: None,
            int: None,
            float: None,
            bool: None,
            asset_key: None,
            table_schema: None,
            column_lineage: None,
        }
    }

    /// A text-like entry (`TEXT`, `URL`, `PATH`, `JSON`, ...).
    pub fn text(label: impl Into<String>, kind: MetadataKind, value: impl Into<String>) -> Self {
        Self {
            text: Some(value.into()),
            ..Self::empty(label, kind)
        }
    }

    /// An `INT` entry.
    pub fn int(label: impl Into<String>, value: i64) -> Self {
        Self {
            int: Some(value),
            ..Self::empty(label, MetadataKind::Int)
        }
    }
}

/// Dagster's `TableSchema`: the columns of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSchema {
    /// Columns in order.
    pub columns: Vec<TableColumn>,
}

/// One column of a [`TableSchema`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableColumn {
    /// Column name.
    pub name: String,
    /// Column type as Dagster reports it.
    pub data_type: String,
    /// Column description.
    pub description: Option<String>,
    /// Nullable constraint, when known.
    pub nullable: Option<bool>,
    /// Unique constraint, when known.
    pub unique: Option<bool>,
    /// Column tags.
    pub tags: BTreeMap<String, String>,
}

/// Dagster's `TableColumnLineage`: for each column, the upstream columns it derives from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnLineage {
    /// One entry per downstream column.
    pub columns: Vec<ColumnDeps>,
}

/// The upstream columns of one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDeps {
    /// The downstream column.
    pub column: String,
    /// The upstream columns.
    pub deps: Vec<ColumnRef>,
}

/// A column of an asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnRef {
    /// The asset holding the column.
    pub asset_key: Vec<String>,
    /// The column name.
    pub column: String,
}
