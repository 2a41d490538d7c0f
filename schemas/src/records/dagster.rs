//! Records of `dagster.events` and `dagster.assets`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::metadata::MetadataEntry;

/// Which kind of Dagster source a record was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SourceKind {
    /// `event_logs` table of dagster-postgres.
    PostgresEventLog,
    /// SQLite event log (consolidated or run-sharded).
    SqliteEventLog,
    /// Dagster's GraphQL API.
    Graphql,
    /// lineage-bus's own external-asset REST endpoints.
    IngestApi,
    /// Anything else.
    Other,
}

/// Where in its source a record was read, so producers resume exactly and outputs trace back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePosition {
    /// The source.
    pub kind: SourceKind,
    /// Dagster storage id (`event_logs.id`).
    pub storage_id: Option<i64>,
    /// SQLite shard the storage id belongs to.
    pub shard: Option<String>,
    /// Opaque GraphQL cursor.
    pub cursor: Option<String>,
}

/// Normalised Dagster event types. Dagster's stored `PIPELINE_*` names map to `RUN_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)] // the variants are Dagster's event types, named alike
pub enum DagsterEventType {
    RunEnqueued,
    RunDequeued,
    RunStarting,
    RunStart,
    RunSuccess,
    RunFailure,
    RunCanceling,
    RunCanceled,
    StepStart,
    StepSuccess,
    StepFailure,
    StepSkipped,
    StepUpForRetry,
    StepRestarted,
    StepInput,
    StepOutput,
    AssetMaterializationPlanned,
    AssetMaterialization,
    AssetFailedToMaterialize,
    AssetObservation,
    AssetCheckEvaluationPlanned,
    AssetCheckEvaluation,
    LogMessage,
    Other,
}

impl DagsterEventType {
    /// True for the run-lifecycle events (`RUN_ENQUEUED` … `RUN_CANCELED`): the events that
    /// carry the run's tags.
    pub fn is_run_event(self) -> bool {
        matches!(
            self,
            Self::RunEnqueued
                | Self::RunDequeued
                | Self::RunStarting
                | Self::RunStart
                | Self::RunSuccess
                | Self::RunFailure
                | Self::RunCanceling
                | Self::RunCanceled
        )
    }
}

/// Severity of an asset check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CheckSeverity {
    /// A failed check is an error.
    Error,
    /// A failed check is a warning.
    Warn,
}

/// The check part of an asset check event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetCheck {
    /// Check name.
    pub name: String,
    /// Outcome; `None` while only planned.
    pub passed: Option<bool>,
    /// Severity of a failure.
    pub severity: CheckSeverity,
    /// Storage id of the materialization the check evaluated.
    pub target_storage_id: Option<i64>,
}

/// Dagster's serializable error info; the user's exception is usually the first cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// Error message.
    pub message: String,
    /// Exception class.
    pub class_name: Option<String>,
    /// Stack lines.
    pub stack: Vec<String>,
    /// The error that caused this one.
    pub cause: Option<Box<ErrorInfo>>,
}

/// One Dagster event-log entry, normalised (topic `dagster.events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DagsterEvent {
    /// Dagster deployment the event came from.
    pub tenant: String,
    /// Source position.
    pub source: SourcePosition,
    /// Normalised event type.
    pub event_type: DagsterEventType,
    /// Dagster's own name of the event type; empty for plain log lines.
    pub raw_event_type: String,
    /// Run id; `None` for runless events.
    pub run_id: Option<String>,
    /// Job name.
    pub job_name: Option<String>,
    /// Step key.
    pub step_key: Option<String>,
    /// Asset key path.
    pub asset_key: Option<Vec<String>>,
    /// Partition key.
    pub partition: Option<String>,
    /// Event time, ms since the Unix epoch.
    pub timestamp_ms: i64,
    /// Dagster's user message.
    pub message: Option<String>,
    /// Description (materializations, observations).
    pub description: Option<String>,
    /// Typed metadata entries.
    pub metadata: Vec<MetadataEntry>,
    /// Event tags (asset events) or, on run-lifecycle events
    /// ([`DagsterEventType::is_run_event`]), the run's tags from Dagster's run storage.
    pub tags: BTreeMap<String, String>,
    /// Check details on check events.
    pub check: Option<AssetCheck>,
    /// Error on failures.
    pub error: Option<ErrorInfo>,
    /// Dagster's serialized event for `OTHER` events.
    pub raw_json: Option<String>,
}

impl DagsterEvent {
    /// The Kafka key: the run id, or for runless events the asset key joined by `/`.
    pub fn kafka_key(&self) -> String {
        match (&self.run_id, &self.asset_key) {
            (Some(run_id), _) if !run_id.is_empty() => run_id.clone(),
            (_, Some(key)) => key.join("/"),
            _ => String::new(),
        }
    }
}

/// One asset of a deployment's asset graph (topic `dagster.assets`, compacted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetDefinition {
    /// Dagster deployment.
    pub tenant: String,
    /// Where the definition was read.
    pub source: SourcePosition,
    /// Asset key path.
    pub asset_key: Vec<String>,
    /// Code location name.
    pub code_location: Option<String>,
    /// Repository name.
    pub repository: Option<String>,
    /// Asset group.
    pub group: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Jobs that materialize the asset.
    pub job_names: Vec<String>,
    /// Upstream asset keys.
    pub deps: Vec<Vec<String>>,
    /// Owners: user e-mails or `team:NAME`.
    pub owners: Vec<String>,
    /// Definition tags.
    pub tags: BTreeMap<String, String>,
    /// Kinds (e.g. `snowflake`, `dbt`).
    pub kinds: Vec<String>,
    /// Definition metadata.
    pub metadata: Vec<MetadataEntry>,
    /// False for external asset specs.
    pub is_materializable: bool,
    /// Partitions definition, e.g. `daily`.
    pub partitions: Option<String>,
    /// Asset check names.
    pub checks: Vec<String>,
    /// When the producer saw this definition, ms since the Unix epoch.
    pub updated_ms: i64,
}

impl AssetDefinition {
    /// The Kafka key: tenant and asset key, joined by `/`.
    pub fn kafka_key(&self) -> String {
        format!("{}/{}", self.tenant, self.asset_key.join("/"))
    }
}
