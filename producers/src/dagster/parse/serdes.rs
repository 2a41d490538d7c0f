//! The shapes of Dagster's serialized objects that the producer reads, as borrowed serde
//! structs. Unknown fields are skipped without being built; a field missing from an older
//! or newer Dagster is `None`. Objects whose class decides how to read them (event-specific
//! data, metadata values) are union structs holding every field any of those classes has.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::sanitize::non_finite;

/// `EventLogEntry`: one row's `event` column.
#[derive(Debug, Deserialize)]
pub(crate) struct EntryJson<'a> {
    #[serde(borrow, default)]
    pub run_id: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "float")]
    pub timestamp: Option<f64>,
    #[serde(borrow, default)]
    pub user_message: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "job_name")]
    pub pipeline_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub step_key: Option<Cow<'a, str>>,
    #[serde(default)]
    pub error_info: Option<ErrorJson>,
    #[serde(borrow, default)]
    pub dagster_event: Option<EventJson<'a>>,
}

/// `DagsterEvent`.
#[derive(Debug, Deserialize)]
pub(crate) struct EventJson<'a> {
    #[serde(borrow)]
    pub event_type_value: Cow<'a, str>,
    #[serde(borrow, default)]
    pub event_specific_data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub message: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "job_name")]
    pub pipeline_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub step_key: Option<Cow<'a, str>>,
}

/// `event_specific_data`: the union of the fields of the data classes the producer reads
/// (`StepMaterializationData`, `AssetObservationData`, `AssetFailedToMaterializeData`,
/// `AssetMaterializationPlannedData`, `AssetCheckEvaluation(Planned)`, `StepFailureData`,
/// `PipelineFailureData`, `StepRetryData`, `StepOutputData`, `FreshnessStateChange`, ...).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SpecificJson<'a> {
    #[serde(borrow)]
    pub materialization: Option<AssetEventJson<'a>>,
    #[serde(borrow)]
    pub asset_observation: Option<AssetEventJson<'a>>,
    #[serde(borrow)]
    pub asset_materialization_failure: Option<AssetEventJson<'a>>,
    pub asset_key: Option<AssetKeyJson>,
    /// `FreshnessStateChange` and newer classes name the asset key `key`.
    #[serde(borrow)]
    pub key: Option<&'a RawValue>,
    pub partition: Option<String>,
    pub description: Option<String>,
    pub check_name: Option<String>,
    pub success: Option<bool>,
    #[serde(borrow)]
    pub severity: Option<EnumJson<'a>>,
    #[serde(borrow)]
    pub metadata: Option<MetadataJson<'a>>,
    #[serde(borrow)]
    pub metadata_entries: Option<MetadataJson<'a>>,
    pub target_materialization_data: Option<TargetJson>,
    pub error: Option<ErrorJson>,
}

/// `AssetMaterialization`, `AssetObservation`, `AssetMaterializationFailure`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AssetEventJson<'a> {
    pub asset_key: Option<AssetKeyJson>,
    pub description: Option<String>,
    #[serde(borrow)]
    pub metadata_entries: Option<MetadataJson<'a>>,
    #[serde(borrow)]
    pub metadata: Option<MetadataJson<'a>>,
    pub partition: Option<String>,
    #[serde(deserialize_with = "tags")]
    pub tags: Option<BTreeMap<String, String>>,
}

/// `AssetKey`.
#[derive(Debug, Deserialize)]
pub(crate) struct AssetKeyJson {
    pub path: Vec<String>,
}

/// A serdes enum value: `{"__enum__": "AssetCheckSeverity.WARN"}`.
#[derive(Debug, Deserialize)]
pub(crate) struct EnumJson<'a> {
    #[serde(rename = "__enum__", borrow)]
    pub value: Cow<'a, str>,
}

/// `AssetCheckEvaluationTargetMaterializationData`.
#[derive(Debug, Deserialize)]
pub(crate) struct TargetJson {
    #[serde(default)]
    pub storage_id: Option<i64>,
}

/// `SerializableErrorInfo`.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorJson {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub cls_name: Option<String>,
    #[serde(default)]
    pub stack: Vec<String>,
    #[serde(default)]
    pub cause: Option<Box<ErrorJson>>,
    #[serde(default)]
    pub context: Option<Box<ErrorJson>>,
}

/// Metadata as stored: a list of `EventMetadataEntry {label, entry_data}` (the legacy storage
/// form of materializations, observations and step outputs) or a dict label → value (checks).
#[derive(Debug)]
pub(crate) enum MetadataJson<'a> {
    /// `[{"label": ..., "entry_data": {...}}]`
    Entries(Vec<EntryDataJson<'a>>),
    /// `{"label": {...}}`
    Dict(Vec<(String, &'a RawValue)>),
}

impl<'de: 'a, 'a> Deserialize<'de> for MetadataJson<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListOrDict<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for ListOrDict<'a> {
            type Value = MetadataJson<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of metadata entries or a dict of metadata values")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(seq.size_hint().unwrap_or(4));
                while let Some(entry) = seq.next_element()? {
                    entries.push(entry);
                }
                Ok(MetadataJson::Entries(entries))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(MetadataJson::Dict(entries))
            }
        }
        deserializer.deserialize_any(ListOrDict(PhantomData))
    }
}

/// One `EventMetadataEntry`.
#[derive(Debug, Deserialize)]
pub(crate) struct EntryDataJson<'a> {
    #[serde(borrow)]
    pub label: Cow<'a, str>,
    #[serde(borrow)]
    pub entry_data: &'a RawValue,
}

/// A metadata value: the union of the fields of every metadata value class.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct MetadataValueJson<'a> {
    #[serde(rename = "__class__", borrow)]
    pub class: Cow<'a, str>,
    pub text: Option<String>,
    #[serde(borrow)]
    pub value: Option<&'a RawValue>,
    #[serde(borrow)]
    pub data: Option<&'a RawValue>,
    pub url: Option<String>,
    pub path: Option<String>,
    pub md_str: Option<String>,
    pub module: Option<String>,
    pub name: Option<String>,
    pub run_id: Option<String>,
    pub job_name: Option<String>,
    pub asset_key: Option<AssetKeyJson>,
    pub pool: Option<String>,
    pub schema: Option<TableSchemaJson>,
    pub column_lineage: Option<ColumnLineageJson>,
    #[serde(borrow)]
    pub records: Option<Vec<TableRecordJson<'a>>>,
    #[serde(borrow)]
    pub code_references: Option<&'a RawValue>,
}

/// `TableRecord`.
#[derive(Debug, Deserialize)]
pub(crate) struct TableRecordJson<'a> {
    #[serde(borrow)]
    pub data: &'a RawValue,
}

/// `TableSchema`.
#[derive(Debug, Deserialize)]
pub(crate) struct TableSchemaJson {
    #[serde(default)]
    pub columns: Vec<TableColumnJson>,
}

/// `TableColumn`.
#[derive(Debug, Deserialize)]
pub(crate) struct TableColumnJson {
    pub name: String,
    #[serde(rename = "type", default)]
    pub data_type: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub constraints: Option<ConstraintsJson>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
}

/// `TableColumnConstraints`.
#[derive(Debug, Deserialize)]
pub(crate) struct ConstraintsJson {
    #[serde(default)]
    pub nullable: Option<bool>,
    #[serde(default)]
    pub unique: Option<bool>,
}

/// `TableColumnLineage`.
#[derive(Debug, Deserialize)]
pub(crate) struct ColumnLineageJson {
    #[serde(default)]
    pub deps_by_column: BTreeMap<String, Vec<ColumnDepJson>>,
}

/// `TableColumnDep`.
#[derive(Debug, Deserialize)]
pub(crate) struct ColumnDepJson {
    pub asset_key: AssetKeyJson,
    pub column_name: String,
}

/// Event tags: strings as they are, any other value as its stored JSON text. Dagster's REST
/// API stores a `data_version` reported as a number or object as it came
/// (`{"dagster/data_version": 5}`).
fn tags<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    let raw: Option<BTreeMap<String, Box<RawValue>>> = Option::deserialize(deserializer)?;
    raw.map(|tags| {
        tags.into_iter()
            .map(|(key, value)| {
                let text = value.get();
                let value = if text.starts_with('"') {
                    serde_json::from_str(text).map_err(de::Error::custom)?
                } else {
                    text.to_owned()
                };
                Ok((key, value))
            })
            .collect()
    })
    .transpose()
}

/// A float that may be one of the quoted non-finite tokens (see [`super::sanitize`]).
fn float<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    struct FloatOrToken;
    impl<'de> Visitor<'de> for FloatOrToken {
        type Value = Option<f64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number, NaN, Infinity, -Infinity or null")
        }

        fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
            Ok(Some(value))
        }

        #[allow(clippy::cast_precision_loss)] // a JSON number read as a float
        fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
            Ok(Some(value as f64))
        }

        #[allow(clippy::cast_precision_loss)] // a JSON number read as a float
        fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
            Ok(Some(value as f64))
        }

        fn visit_str<E: de::Error>(self, token: &str) -> Result<Self::Value, E> {
            non_finite(token)
                .map(Some)
                .ok_or_else(|| E::custom(format!("'{token}' is not a float")))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<Self::Value, D::Error> {
            inner.deserialize_any(self)
        }
    }
    deserializer.deserialize_option(FloatOrToken)
}

/// A float from a raw JSON value: a number or a quoted non-finite token; `None` for null.
pub(crate) fn raw_float(raw: &RawValue) -> Result<Option<f64>, String> {
    let text = raw.get();
    if text == "null" {
        return Ok(None);
    }
    if let Some(token) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        return non_finite(token)
            .map(Some)
            .ok_or_else(|| format!("{text} is not a float"));
    }
    text.parse::<f64>()
        .map(Some)
        .map_err(|_| format!("{text} is not a float"))
}
