//! The three reports of Dagster's external-asset REST API, read exactly as Dagster 1.13's
//! webserver reads them (`dagster_webserver/external_assets.py`): the same sources in the
//! same order (asset key from the path, else the body's `asset_key`, else the query's; every
//! other field from the body, else the query), the same checks in the same order and the
//! same answers. A valid report becomes the [`DagsterEvent`] that `produce dagster` would
//! read from the row Dagster stores for it.
//!
//! Dagster's quirks are kept on purpose, so that a script gets the same answer from both:
//! a body that is valid JSON but not an object is searched with Python's `in` (a list for an
//! element, a string for a substring; a number is a `TypeError`: 500); an asset key that is
//! not a string or a list of strings is a 500; `data_version` may be any JSON value but an
//! object, which Dagster's PostgreSQL storage cannot write (500).

use std::collections::BTreeMap;

use lineage_schemas::records::{
    AssetCheck, CheckSeverity, DagsterEvent, DagsterEventType, MetadataEntry, MetadataKind,
    SourceKind, SourcePosition,
};

use super::pyjson::{self, PyTypeError, PyValue};

/// Which report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/report_asset_materialization/`
    Materialization,
    /// `/report_asset_check/`
    Check,
    /// `/report_asset_observation/`
    Observation,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 3] = [
        Endpoint::Materialization,
        Endpoint::Check,
        Endpoint::Observation,
    ];

    /// The route prefix, with its trailing slash.
    pub fn prefix(self) -> &'static str {
        match self {
            Endpoint::Materialization => "/report_asset_materialization/",
            Endpoint::Check => "/report_asset_check/",
            Endpoint::Observation => "/report_asset_observation/",
        }
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Materialization => "report_asset_materialization",
            Endpoint::Check => "report_asset_check",
            Endpoint::Observation => "report_asset_observation",
        }
    }

    /// Dagster's message for a missing key (the check endpoint names an older route, and the
    /// observation endpoint the materialization route, as Dagster's do).
    fn empty_key_message(self) -> &'static str {
        match self {
            Endpoint::Check => {
                "Empty asset key, must provide asset key as url path after \
                 /report_asset_check_evaluation/ or query param asset_key."
            }
            _ => {
                "Empty asset key, must provide asset key as url path after \
                 /report_asset_materialization/ or query param asset_key."
            }
        }
    }
}

/// A request as the handlers see it.
#[derive(Debug, Clone, Default)]
pub struct ReportRequest<'a> {
    /// The percent-decoded path after the endpoint's prefix (may be empty).
    pub path_key: &'a str,
    /// Query parameters, percent-decoded, in order (the last of a repeated name wins).
    pub query: Vec<(String, String)>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: &'a [u8],
}

impl ReportRequest<'_> {
    fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Why a report is refused, as Dagster answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 400 `{"error": message}`
    BadRequest(String),
    /// 500 `Internal Server Error` (an exception escaped Dagster's handler).
    Internal,
}

impl From<PyTypeError> for Refusal {
    fn from(_: PyTypeError) -> Self {
        Refusal::Internal
    }
}

/// The fields of an accepted report; [`Report::into_event`] makes the record.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Which report.
    pub endpoint: Endpoint,
    /// Asset key path.
    pub asset_key: Vec<String>,
    /// Partition key.
    pub partition: Option<String>,
    /// Description (materializations and observations).
    pub description: Option<String>,
    /// Typed metadata, in Dagster's stored order.
    pub metadata: Vec<MetadataEntry>,
    /// Event tags (`dagster/data_version` ...).
    pub tags: BTreeMap<String, String>,
    /// The check (check reports).
    pub check: Option<AssetCheck>,
}

impl Report {
    /// The record of this report for `tenant`, stamped `timestamp_ms`.
    pub fn into_event(self, tenant: &str, timestamp_ms: i64) -> DagsterEvent {
        let (event_type, raw) = match self.endpoint {
            Endpoint::Materialization => (
                DagsterEventType::AssetMaterialization,
                "ASSET_MATERIALIZATION",
            ),
            Endpoint::Check => (
                DagsterEventType::AssetCheckEvaluation,
                "ASSET_CHECK_EVALUATION",
            ),
            Endpoint::Observation => (DagsterEventType::AssetObservation, "ASSET_OBSERVATION"),
        };
        DagsterEvent {
            tenant: tenant.to_owned(),
            source: SourcePosition {
                kind: SourceKind::IngestApi,
                storage_id: None,
                shard: None,
                cursor: None,
            },
            event_type,
            raw_event_type: raw.to_owned(),
            run_id: None,
            job_name: None,
            step_key: None,
            asset_key: Some(self.asset_key),
            partition: self.partition,
            timestamp_ms,
            message: None,
            description: self.description,
            metadata: self.metadata,
            tags: self.tags,
            check: self.check,
            error: None,
            raw_json: None,
        }
    }
}

/// Dagster's `DATA_VERSION_TAG`.
const DATA_VERSION_TAG: &str = "dagster/data_version";
/// Dagster's `DATA_VERSION_IS_USER_PROVIDED_TAG`.
const DATA_VERSION_IS_USER_PROVIDED_TAG: &str = "dagster/data_version_is_user_provided";

/// Reads one report as Dagster does.
pub fn read(endpoint: Endpoint, request: &ReportRequest<'_>) -> Result<Report, Refusal> {
    let body = match request.content_type.as_deref() {
        None => PyValue::empty_dict(),
        Some("application/json") => pyjson::parse_body(request.body).ok_or(Refusal::Internal)?,
        Some(other) => {
            return Err(Refusal::BadRequest(format!(
                "Unhandled content type {other}, expect no body or application/json"
            )));
        }
    };
    let reader = Reader {
        request,
        body: &body,
    };
    let asset_key = reader
        .asset_key()?
        .ok_or_else(|| Refusal::BadRequest(endpoint.empty_key_message().to_owned()))?;
    match endpoint {
        Endpoint::Materialization => reader.materialization(asset_key),
        Endpoint::Check => reader.check(asset_key),
        Endpoint::Observation => reader.observation(asset_key),
    }
}

struct Reader<'a> {
    request: &'a ReportRequest<'a>,
    body: &'a PyValue,
}

impl Reader<'_> {
    /// `_asset_key_from_request`.
    fn asset_key(&self) -> Result<Option<Vec<String>>, Refusal> {
        if !self.request.path_key.is_empty() {
            return Ok(Some(
                self.request
                    .path_key
                    .split('/')
                    .map(str::to_owned)
                    .collect(),
            ));
        }
        if self.body.contains("asset_key")? {
            // `AssetKey(value)`: a string is one part; anything but a list of strings raises
            // outside the handler's try.
            return match self.body.index("asset_key")? {
                PyValue::Str(part) => Ok(Some(vec![part.clone()])),
                PyValue::List(items) => string_list(items).map(Some).ok_or(Refusal::Internal),
                _ => Err(Refusal::Internal),
            };
        }
        let Some(text) = self.request.query("asset_key") else {
            return Ok(None);
        };
        // `AssetKey.from_db_string`.
        if text.is_empty() {
            return Ok(None);
        }
        if text.starts_with('[')
            && let Ok(decoded) = pyjson::parse(text)
        {
            return match decoded {
                PyValue::List(items) => string_list(&items).map(Some).ok_or(Refusal::Internal),
                _ => Err(Refusal::Internal),
            };
        }
        Ok(Some(
            text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|part| !part.is_empty())
                .map(str::to_owned)
                .collect(),
        ))
    }

    /// `_value_from_body_or_params`: the body's value, else the query's (a string).
    fn value(&self, key: &str) -> Result<Option<PyValue>, Refusal> {
        if self.body.contains(key)? {
            return Ok(Some(self.body.index(key)?.clone()));
        }
        Ok(self.request.query(key).map(|v| PyValue::Str(v.to_owned())))
    }

    /// A JSON-valued parameter (`metadata`, `passed`): the body's value, else the query's
    /// decoded, else `None`.
    fn json_value(&self, key: &str, parse_error: &str) -> Result<Option<PyValue>, Refusal> {
        if self.body.contains(key)? {
            return Ok(Some(self.body.index(key)?.clone()));
        }
        match self.request.query(key) {
            Some(text) => pyjson::parse(text)
                .map(Some)
                .map_err(|e| Refusal::BadRequest(format!("{parse_error}: {e}"))),
            None => Ok(None),
        }
    }

    /// The data version's tags, and whether Dagster's PostgreSQL storage fails to write them
    /// (an object: psycopg2 "can't adapt type 'dict'", a 500 once every check passed).
    fn data_version_tags(&self) -> Result<(BTreeMap<String, String>, bool), Refusal> {
        let mut tags = BTreeMap::new();
        let mut unstorable = false;
        match self.value("data_version")? {
            None | Some(PyValue::Null) => {}
            Some(version) => {
                unstorable = matches!(version, PyValue::Dict(_));
                let text = match version {
                    PyValue::Str(text) => text,
                    // Dagster stores the JSON value as it came; the record's tags are strings.
                    other => other.dumps_sorted(),
                };
                tags.insert(DATA_VERSION_TAG.to_owned(), text);
                tags.insert(
                    DATA_VERSION_IS_USER_PROVIDED_TAG.to_owned(),
                    "true".to_owned(),
                );
            }
        }
        Ok((tags, unstorable))
    }

    fn materialization(&self, asset_key: Vec<String>) -> Result<Report, Refusal> {
        let constructing = "Error constructing AssetMaterialization";
        let (tags, unstorable) = self.data_version_tags()?;
        let partition = self.value("partition")?;
        let description = self.value("description")?;
        let metadata = self.json_value("metadata", "Error parsing metadata json")?;
        let metadata =
            metadata_entries(metadata.as_ref(), false).map_err(|e| bad(constructing, &e))?;
        let partition = opt_str("partition", partition).map_err(|e| bad(constructing, &e))?;
        let description = opt_str("description", description).map_err(|e| bad(constructing, &e))?;
        if unstorable {
            return Err(Refusal::Internal);
        }
        Ok(Report {
            endpoint: Endpoint::Materialization,
            asset_key,
            partition,
            description,
            metadata,
            tags,
            check: None,
        })
    }

    fn observation(&self, asset_key: Vec<String>) -> Result<Report, Refusal> {
        // Dagster's observation handler names AssetMaterialization in its errors too.
        let constructing = "Error constructing AssetMaterialization";
        let metadata = self.json_value("metadata", "Error parsing metadata json")?;
        let partition = self.value("partition")?;
        let description = self.value("description")?;
        let (tags, unstorable) = self.data_version_tags()?;
        let metadata =
            metadata_entries(metadata.as_ref(), false).map_err(|e| bad(constructing, &e))?;
        let description = opt_str("description", description).map_err(|e| bad(constructing, &e))?;
        let partition = opt_str("partition", partition).map_err(|e| bad(constructing, &e))?;
        if unstorable {
            return Err(Refusal::Internal);
        }
        Ok(Report {
            endpoint: Endpoint::Observation,
            asset_key,
            partition,
            description,
            metadata,
            tags,
            check: None,
        })
    }

    fn check(&self, asset_key: Vec<String>) -> Result<Report, Refusal> {
        let constructing = "Error constructing AssetCheckEvaluation";
        self.value("passed")?;
        let check_name = self.value("check_name")?;
        let severity = self
            .value("severity")?
            .filter(|s| *s != PyValue::Null)
            .unwrap_or_else(|| PyValue::Str("ERROR".to_owned()));
        let passed = self
            .json_value("passed", "Error parsing 'passed'")?
            .ok_or_else(|| {
                Refusal::BadRequest("Missing required parameter 'passed'.".to_owned())
            })?;
        let metadata = self.json_value("metadata", "Error parsing metadata json")?;
        let partition = self.value("partition")?;
        let severity = match &severity {
            PyValue::Str(s) if s == "ERROR" => CheckSeverity::Error,
            PyValue::Str(s) if s == "WARN" => CheckSeverity::Warn,
            other => {
                return Err(bad(
                    constructing,
                    &format!("{} is not a valid AssetCheckSeverity", other.repr()),
                ));
            }
        };
        // Check results store their metadata as a dict, which serdes writes sorted.
        let metadata =
            metadata_entries(metadata.as_ref(), true).map_err(|e| bad(constructing, &e))?;
        let name = match check_name {
            Some(PyValue::Str(name)) => name,
            other => return Err(bad(constructing, &not_a("check_name", "str", other))),
        };
        let passed = match passed {
            PyValue::Bool(passed) => passed,
            other => return Err(bad(constructing, &not_a("passed", "bool", Some(other)))),
        };
        let partition = opt_str("partition", partition).map_err(|e| bad(constructing, &e))?;
        Ok(Report {
            endpoint: Endpoint::Check,
            asset_key,
            partition,
            description: None,
            metadata,
            tags: BTreeMap::new(),
            check: Some(AssetCheck {
                name,
                passed: Some(passed),
                severity,
                target_storage_id: None,
            }),
        })
    }
}

fn bad(prefix: &str, message: &str) -> Refusal {
    Refusal::BadRequest(format!("{prefix}: {message}"))
}

/// Dagster's check error: `Param "x" is not a str. Got 5 which is type <class 'int'>.`
fn not_a(param: &str, kind: &str, value: Option<PyValue>) -> String {
    let value = value.unwrap_or(PyValue::Null);
    format!(
        "Param \"{param}\" is not a {kind}. Got {} which is type {}.",
        value.repr(),
        value.type_name()
    )
}

/// `check.opt_str_param`.
fn opt_str(param: &str, value: Option<PyValue>) -> Result<Option<String>, String> {
    match value {
        None | Some(PyValue::Null) => Ok(None),
        Some(PyValue::Str(text)) => Ok(Some(text)),
        other => Err(not_a(param, "str", other)),
    }
}

fn string_list(items: &[PyValue]) -> Option<Vec<String>> {
    items
        .iter()
        .map(|item| match item {
            PyValue::Str(part) => Some(part.clone()),
            _ => None,
        })
        .collect()
}

/// `normalize_metadata(check.opt_mapping_param(metadata, "metadata"))`, typed as stored:
/// str → TEXT, float → FLOAT, bool → BOOL, int → INT (digits beyond 64 bits in `text`),
/// list/dict → JSON (the text Dagster stores), null → NULL. `sorted` orders by label.
fn metadata_entries(
    metadata: Option<&PyValue>,
    sorted: bool,
) -> Result<Vec<MetadataEntry>, String> {
    let entries = match metadata {
        None | Some(PyValue::Null) => return Ok(Vec::new()),
        Some(PyValue::Dict(entries)) => entries,
        Some(other) => {
            return Err(format!(
                "Param \"metadata\" is not one of ['Mapping']. Got {} which is type {}.",
                other.repr(),
                other.type_name()
            ));
        }
    };
    let mut typed: Vec<MetadataEntry> = entries
        .iter()
        .map(|(label, value)| match value {
            PyValue::Str(text) => MetadataEntry::text(label, MetadataKind::Text, text),
            PyValue::Float(value) => MetadataEntry {
                float: Some(*value),
                ..MetadataEntry::empty(label, MetadataKind::Float)
            },
            PyValue::Bool(value) => MetadataEntry {
                bool: Some(*value),
                ..MetadataEntry::empty(label, MetadataKind::Bool)
            },
            PyValue::Int(digits) => match digits.parse::<i64>() {
                Ok(value) => MetadataEntry::int(label, value),
                Err(_) => MetadataEntry::text(label, MetadataKind::Int, digits),
            },
            PyValue::List(_) | PyValue::Dict(_) => {
                MetadataEntry::text(label, MetadataKind::Json, value.dumps_sorted())
            }
            PyValue::Null => MetadataEntry::empty(label, MetadataKind::Null),
        })
        .collect();
    if sorted {
        typed.sort_by(|a, b| a.label.cmp(&b.label));
    }
    Ok(typed)
}

#[cfg(test)]
mod tests;
