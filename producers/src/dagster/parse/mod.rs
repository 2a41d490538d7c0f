//! Dagster's serialized event-log entries (the `event` column of `event_logs`) →
//! [`DagsterEvent`].
//!
//! The text is Dagster's serdes JSON: objects tagged with `__class__` (legacy storage names
//! such as `PipelineFailureData` and `EventMetadataEntry` mixed with newer `*Value` names),
//! enums as `{"__enum__": "Type.VALUE"}`, bare `NaN`/`Infinity`/`-Infinity` floats and
//! integers of any size. It is read in one pass into borrowed structs ([`serdes`]) that skip
//! every field the record does not carry, after quoting the non-finite floats
//! ([`sanitize`]). What each event type contributes:
//!
//! | stored type | record |
//! |---|---|
//! | `PIPELINE_*` (and `RUN_*`) | `RUN_*`; failures carry the error and its causes |
//! | `STEP_*` (start, success, failure, skipped, up for retry, restarted, input, output) | same name; output metadata |
//! | `ASSET_MATERIALIZATION`, `ASSET_OBSERVATION`, `ASSET_FAILED_TO_MATERIALIZE` | asset key, partition, description, metadata, tags |
//! | `ASSET_MATERIALIZATION_PLANNED` | asset key, partition |
//! | `ASSET_CHECK_EVALUATION(_PLANNED)` | asset key (only in the JSON), check name, outcome, severity, target storage id, metadata |
//! | no `dagster_event` (a plain log line) | `LOG_MESSAGE` with the user message |
//! | anything else | `OTHER` with the raw JSON |

mod metadata;
mod sanitize;
mod serdes;

use std::borrow::Cow;

use lineage_schemas::records::{
    AssetCheck, CheckSeverity, DagsterEvent, DagsterEventType, ErrorInfo, SourceKind,
    SourcePosition,
};

use serdes::{AssetKeyJson, EntryJson, ErrorJson, SpecificJson};

/// A row whose `event` text could not be read; it goes to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dagster event at storage id {storage_id} is malformed: {reason}")]
pub struct ParseError {
    /// Storage id of the row.
    pub storage_id: i64,
    /// What failed.
    pub reason: String,
}

/// Parses the `event` text of the `event_logs` row `storage_id` for `tenant`.
pub fn parse_event(tenant: &str, storage_id: i64, text: &str) -> Result<DagsterEvent, ParseError> {
    let fail = |reason: String| ParseError { storage_id, reason };
    let sanitized = sanitize::quote_non_finite(text);
    let entry: EntryJson<'_> =
        serde_json::from_str(&sanitized).map_err(|e| fail(format!("invalid JSON: {e}")))?;
    let timestamp = entry
        .timestamp
        .filter(|t| t.is_finite())
        .ok_or_else(|| fail("no finite timestamp".into()))?;
    let mut event = DagsterEvent {
        tenant: tenant.to_owned(),
        source: SourcePosition {
            kind: SourceKind::PostgresEventLog,
            storage_id: Some(storage_id),
            shard: None,
            cursor: None,
        },
        event_type: DagsterEventType::LogMessage,
        raw_event_type: String::new(),
        run_id: non_empty(entry.run_id),
        job_name: non_empty(entry.pipeline_name),
        step_key: non_empty(entry.step_key),
        asset_key: None,
        partition: None,
        // Seconds to milliseconds, truncated as Dagster's GraphQL API does.
        #[allow(clippy::cast_possible_truncation)] // epoch milliseconds fit an i64
        timestamp_ms: (timestamp * 1000.0) as i64,
        message: non_empty(entry.user_message),
        description: None,
        metadata: Vec::new(),
        tags: Default::default(),
        check: None,
        error: entry.error_info.map(error_info),
        raw_json: None,
    };
    let Some(dagster_event) = entry.dagster_event else {
        return Ok(event);
    };
    event.event_type = event_type(&dagster_event.event_type_value);
    event.raw_event_type = dagster_event.event_type_value.into_owned();
    event.job_name = event.job_name.or(non_empty(dagster_event.pipeline_name));
    event.step_key = event.step_key.or(non_empty(dagster_event.step_key));
    event.message = event.message.or(non_empty(dagster_event.message));
    let specific = dagster_event
        .event_specific_data
        .filter(|raw| raw.get() != "null");
    if event.event_type == DagsterEventType::Other {
        // Unknown data classes are read on a best-effort basis: what fits (asset key, error,
        // partition) is kept, and the raw JSON always travels along.
        if let Some(specific) = specific.and_then(|raw| serde_json::from_str(raw.get()).ok()) {
            let _ = apply_specific(&mut event, specific);
        }
        event.raw_json = Some(text.to_owned());
    } else if let Some(raw) = specific {
        let specific = serde_json::from_str(raw.get())
            .map_err(|e| fail(format!("invalid event_specific_data: {e}")))?;
        apply_specific(&mut event, specific).map_err(fail)?;
    }
    Ok(event)
}

/// The normalised type of a stored `event_type_value`.
pub fn event_type(stored: &str) -> DagsterEventType {
    use DagsterEventType as T;
    let name = stored
        .strip_prefix("PIPELINE_")
        .or_else(|| stored.strip_prefix("RUN_"));
    if let Some(run_event) = name {
        return match run_event {
            "ENQUEUED" => T::RunEnqueued,
            "DEQUEUED" => T::RunDequeued,
            "STARTING" => T::RunStarting,
            "START" => T::RunStart,
            "SUCCESS" => T::RunSuccess,
            "FAILURE" => T::RunFailure,
            "CANCELING" => T::RunCanceling,
            "CANCELED" => T::RunCanceled,
            _ => T::Other,
        };
    }
    match stored {
        "STEP_START" => T::StepStart,
        "STEP_SUCCESS" => T::StepSuccess,
        "STEP_FAILURE" => T::StepFailure,
        "STEP_SKIPPED" => T::StepSkipped,
        "STEP_UP_FOR_RETRY" => T::StepUpForRetry,
        "STEP_RESTARTED" => T::StepRestarted,
        "STEP_INPUT" => T::StepInput,
        "STEP_OUTPUT" => T::StepOutput,
        "ASSET_MATERIALIZATION_PLANNED" => T::AssetMaterializationPlanned,
        "ASSET_MATERIALIZATION" => T::AssetMaterialization,
        "ASSET_FAILED_TO_MATERIALIZE" => T::AssetFailedToMaterialize,
        "ASSET_OBSERVATION" => T::AssetObservation,
        "ASSET_CHECK_EVALUATION_PLANNED" => T::AssetCheckEvaluationPlanned,
        "ASSET_CHECK_EVALUATION" => T::AssetCheckEvaluation,
        _ => T::Other,
    }
}

/// Copies what the event-specific data holds into `event`.
fn apply_specific(event: &mut DagsterEvent, specific: SpecificJson<'_>) -> Result<(), String> {
    let asset_event = specific
        .materialization
        .or(specific.asset_observation)
        .or(specific.asset_materialization_failure);
    if let Some(asset_event) = asset_event {
        event.asset_key = asset_event.asset_key.map(|key| key.path);
        event.partition = asset_event.partition;
        event.description = asset_event.description;
        event.tags = asset_event.tags.unwrap_or_default();
        if let Some(stored) = asset_event.metadata_entries.or(asset_event.metadata) {
            event.metadata = metadata::entries(stored)?;
        }
    }
    if event.asset_key.is_none() {
        event.asset_key = specific
            .asset_key
            .or_else(|| serde_json::from_str::<AssetKeyJson>(specific.key?.get()).ok())
            .map(|key| key.path);
    }
    event.partition = event.partition.take().or(specific.partition);
    event.description = event.description.take().or(specific.description);
    if let Some(stored) = specific.metadata.or(specific.metadata_entries) {
        event.metadata.extend(metadata::entries(stored)?);
    }
    if let Some(error) = specific.error {
        event.error = Some(error_info(error));
    }
    if let (Some(name), true) = (
        specific.check_name,
        matches!(
            event.event_type,
            DagsterEventType::AssetCheckEvaluation | DagsterEventType::AssetCheckEvaluationPlanned
        ),
    ) {
        let severity = match specific.severity.as_ref().map(|s| s.value.as_ref()) {
            Some("AssetCheckSeverity.WARN") => CheckSeverity::Warn,
            _ => CheckSeverity::Error,
        };
        event.check = Some(AssetCheck {
            name,
            passed: specific.success,
            severity,
            target_storage_id: specific
                .target_materialization_data
                .and_then(|target| target.storage_id),
        });
    }
    Ok(())
}

fn error_info(error: ErrorJson) -> ErrorInfo {
    ErrorInfo {
        message: error.message,
        class_name: error.cls_name,
        stack: error.stack,
        cause: error
            .cause
            .or(error.context)
            .map(|cause| Box::new(error_info(*cause))),
    }
}

fn non_empty(text: Option<Cow<'_, str>>) -> Option<String> {
    text.filter(|t| !t.is_empty()).map(Cow::into_owned)
}

#[cfg(test)]
mod tests;
