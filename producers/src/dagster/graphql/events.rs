//! Dagster's GraphQL run events (`logsForRun`) → [`DagsterEvent`], the same records the
//! event-log tail publishes, as far as GraphQL shows them.
//!
//! What GraphQL does not expose, so the record lacks it or differs:
//! - the storage id of each event (only a page's end cursor is known): `source.storage_id`
//!   is unset and `source.cursor` holds the run-log cursor after the event's page;
//! - the stored type names: `raw_event_type` is GraphQL's `eventType` (`RUN_START` where
//!   storage says `PIPELINE_START`), or the `__typename` when `eventType` is null;
//! - the job name per event (taken from the run);
//! - the partition of `ASSET_MATERIALIZATION_PLANNED`, the metadata of step failures
//!   (`failureMetadata`), the error's `context` chain beyond `cause`, and for `OTHER` events
//!   Dagster's serialized event (`raw_json` holds the GraphQL event's JSON instead);
//! - runless events (reported without a run) appear in no run's log.
//!
//! Run-lifecycle events carry the run's tags from the run listing (`runsOrError { tags }`), as
//! the event-log tails' do ([`crate::dagster::run_tags`]), except Dagster's hidden tags, which
//! GraphQL does not show: `.dagster/repository` is rebuilt from the run's repository origin,
//! `.dagster/grpc_info` (a process address) is missing.

use std::collections::BTreeMap;

use lineage_schemas::records::{
    AssetCheck, CheckSeverity, DagsterEvent, DagsterEventType, ErrorInfo, SourceKind,
    SourcePosition,
};
use serde::Deserialize;

use super::metadata::{self, EntryJson, KeyJson, TagJson};
use crate::dagster::parse::event_type;
use crate::dagster::run_tags::attach_run_tags;

/// The selection of one run's events (metadata fragments appended).
pub const RUN_LOGS: &str = r"
query LineageBusRunLogs($runId: ID!, $cursor: String, $limit: Int) {
  logsForRun(runId: $runId, afterCursor: $cursor, limit: $limit) {
    __typename
    ... on PythonError { message }
    ... on RunNotFoundError { message }
    ... on EventConnection {
      cursor
      events {
        __typename
        ... on MessageEvent { runId message timestamp stepKey eventType }
        ... on ErrorEvent { error { ...Error } }
        ... on DisplayableEvent { description metadataEntries { ...Metadata } }
        ... on MaterializationEvent { assetKey { path } partition tags { key value } }
        ... on ObservationEvent { assetKey { path } partition tags { key value } }
        ... on FailedToMaterializeEvent { assetKey { path } partition tags { key value } }
        ... on AssetMaterializationPlannedEvent { assetKey { path } }
        ... on AssetCheckEvaluationPlannedEvent { checkAssetKey: assetKey { path } checkName }
        ... on AssetCheckEvaluationEvent {
          evaluation {
            checkName success severity partition description
            assetKey { path }
            targetMaterialization { storageId }
            metadataEntries { ...Metadata }
          }
        }
      }
    }
  }
}
fragment Error on PythonError {
  message className stack
  cause { message className stack cause { message className stack cause { message className stack } } }
}";

/// One GraphQL event: the union of the fields the selection asks for.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EventJson {
    #[serde(rename = "__typename")]
    typename: String,
    run_id: Option<String>,
    message: Option<String>,
    timestamp: Option<String>,
    step_key: Option<String>,
    event_type: Option<String>,
    error: Option<ErrorJson>,
    description: Option<String>,
    metadata_entries: Vec<EntryJson>,
    asset_key: Option<KeyJson>,
    check_asset_key: Option<KeyJson>,
    check_name: Option<String>,
    partition: Option<String>,
    tags: Vec<TagJson>,
    evaluation: Option<EvaluationJson>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorJson {
    #[serde(default)]
    message: String,
    class_name: Option<String>,
    #[serde(default)]
    stack: Vec<String>,
    cause: Option<Box<ErrorJson>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EvaluationJson {
    check_name: String,
    success: Option<bool>,
    severity: Option<String>,
    partition: Option<String>,
    description: Option<String>,
    asset_key: Option<KeyJson>,
    target_materialization: Option<TargetJson>,
    #[serde(default)]
    metadata_entries: Vec<EntryJson>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TargetJson {
    storage_id: Option<String>,
}

/// Where the events of one page come from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// The run's job.
    pub job_name: &'a str,
    /// The run-log cursor after the page.
    pub cursor: &'a str,
    /// The run's tags, put on its run-lifecycle events.
    pub run_tags: Option<&'a BTreeMap<String, String>>,
}

/// The record of one GraphQL event; `raw` is the event's JSON (kept on `OTHER` events).
pub fn to_record(origin: Origin<'_>, raw: &serde_json::Value) -> DagsterEvent {
    let json: EventJson = serde_json::from_value(raw.clone()).unwrap_or_else(|error| {
        tracing::debug!(%error, "graphql event read on a best-effort basis");
        EventJson {
            typename: raw["__typename"].as_str().unwrap_or_default().to_owned(),
            ..EventJson::default()
        }
    });
    let (kind, raw_type) = match json.event_type.as_deref() {
        Some(stored) => (event_type(stored), stored.to_owned()),
        None if json.typename == "LogMessageEvent" => (DagsterEventType::LogMessage, String::new()),
        None => (DagsterEventType::Other, json.typename.clone()),
    };
    let mut event = DagsterEvent {
        tenant: origin.tenant.to_owned(),
        source: SourcePosition {
            kind: SourceKind::Graphql,
            storage_id: None,
            shard: None,
            cursor: Some(origin.cursor.to_owned()),
        },
        event_type: kind,
        raw_event_type: raw_type,
        run_id: json.run_id.filter(|r| !r.is_empty()),
        job_name: Some(origin.job_name.to_owned()).filter(|j| !j.is_empty()),
        step_key: json.step_key.filter(|s| !s.is_empty()),
        asset_key: json.asset_key.or(json.check_asset_key).map(|key| key.path),
        partition: json.partition,
        timestamp_ms: json
            .timestamp
            .as_deref()
            .and_then(|t| t.parse().ok())
            .unwrap_or_default(),
        message: json.message.filter(|m| !m.is_empty()),
        description: json.description,
        metadata: metadata::entries(json.metadata_entries),
        tags: metadata::tag_map(json.tags),
        check: None,
        error: json.error.map(error_info),
        raw_json: None,
    };
    if let Some(name) = json.check_name {
        event.check = Some(AssetCheck {
            name,
            passed: None,
            severity: CheckSeverity::Error,
            target_storage_id: None,
        });
    }
    if let Some(evaluation) = json.evaluation {
        event.asset_key = evaluation.asset_key.map(|key| key.path).or(event.asset_key);
        event.partition = evaluation.partition.or(event.partition);
        event.description = evaluation.description.or(event.description);
        event.metadata = metadata::entries(evaluation.metadata_entries);
        event.check = Some(AssetCheck {
            name: evaluation.check_name,
            passed: evaluation.success,
            severity: match evaluation.severity.as_deref() {
                Some("WARN") => CheckSeverity::Warn,
                _ => CheckSeverity::Error,
            },
            target_storage_id: evaluation
                .target_materialization
                .and_then(|t| t.storage_id)
                .and_then(|id| id.parse().ok()),
        });
    }
    if event.event_type == DagsterEventType::Other {
        event.raw_json = Some(raw.to_string());
    }
    if let Some(run_tags) = origin.run_tags {
        attach_run_tags(&mut event, run_tags);
    }
    event
}

fn error_info(error: ErrorJson) -> ErrorInfo {
    ErrorInfo {
        message: error.message,
        class_name: error.class_name,
        stack: error.stack,
        cause: error.cause.map(|cause| Box::new(error_info(*cause))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ORIGIN: Origin<'static> = Origin {
        tenant: "t",
        job_name: "job",
        cursor: "c",
        run_tags: None,
    };

    #[test]
    fn a_materialization() {
        let raw = serde_json::json!({
            "__typename": "MaterializationEvent", "runId": "r1", "message": "m",
            "timestamp": "1795246848735", "stepKey": "s", "eventType": "ASSET_MATERIALIZATION",
            "description": null, "assetKey": {"path": ["a", "b"]}, "partition": "2024-01-01",
            "tags": [{"key": "k", "value": "v"}],
            "metadataEntries": [{"__typename": "IntMetadataEntry", "label": "dagster/row_count", "intRepr": "3"}]
        });
        let event = to_record(ORIGIN, &raw);
        assert_eq!(event.event_type, DagsterEventType::AssetMaterialization);
        assert_eq!(event.kafka_key(), "r1");
        assert_eq!(
            event.asset_key.as_deref(),
            Some(&["a".to_owned(), "b".to_owned()][..])
        );
        assert_eq!(event.partition.as_deref(), Some("2024-01-01"));
        assert_eq!(event.timestamp_ms, 1_795_246_848_735);
        assert_eq!(event.metadata[0].int, Some(3));
        assert_eq!(event.tags["k"], "v");
        assert_eq!(event.job_name.as_deref(), Some("job"));
        assert_eq!(event.source.kind, SourceKind::Graphql);
        assert!(event.raw_json.is_none());
    }

    #[test]
    fn run_lifecycle_checks_errors_logs_and_unknown_events() {
        let start = to_record(
            ORIGIN,
            &serde_json::json!({"__typename": "RunStartEvent", "eventType": "RUN_START", "runId": "r", "timestamp": "1"}),
        );
        assert_eq!(start.event_type, DagsterEventType::RunStart);
        assert!(start.tags.is_empty());
        let run_tags = BTreeMap::from([("team".to_owned(), "analytics".to_owned())]);
        let tagged = Origin {
            run_tags: Some(&run_tags),
            ..ORIGIN
        };
        let start = to_record(
            tagged,
            &serde_json::json!({"__typename": "RunStartEvent", "eventType": "RUN_START", "runId": "r", "timestamp": "1"}),
        );
        assert_eq!(start.tags, run_tags, "run events carry the run's tags");
        let step = to_record(
            tagged,
            &serde_json::json!({"__typename": "ExecutionStepStartEvent", "eventType": "STEP_START", "runId": "r", "timestamp": "1"}),
        );
        assert!(step.tags.is_empty(), "other events do not");
        let check = to_record(
            ORIGIN,
            &serde_json::json!({
            "__typename": "AssetCheckEvaluationEvent", "eventType": "ASSET_CHECK_EVALUATION", "runId": "r",
            "timestamp": "1", "evaluation": {"checkName": "c", "success": false, "severity": "WARN",
            "partition": null, "description": null, "assetKey": {"path": ["x"]},
            "targetMaterialization": {"storageId": "42"}, "metadataEntries": []}}),
        );
        let verdict = check.check.unwrap();
        assert_eq!(
            (verdict.passed, verdict.severity, verdict.target_storage_id),
            (Some(false), CheckSeverity::Warn, Some(42))
        );
        assert_eq!(check.asset_key.unwrap(), ["x"]);
        let failure = to_record(
            ORIGIN,
            &serde_json::json!({
            "__typename": "ExecutionStepFailureEvent", "eventType": "STEP_FAILURE", "runId": "r", "timestamp": "1",
            "error": {"message": "outer", "className": "DagsterError", "stack": [], "cause": {"message": "inner", "className": "ValueError", "stack": ["l"], "cause": null}}}),
        );
        assert_eq!(failure.error.unwrap().cause.unwrap().message, "inner");
        let log = to_record(
            ORIGIN,
            &serde_json::json!({"__typename": "LogMessageEvent", "eventType": null, "runId": "r", "timestamp": "1", "message": "hello"}),
        );
        assert_eq!(
            (log.event_type, log.message.as_deref()),
            (DagsterEventType::LogMessage, Some("hello"))
        );
        let other = to_record(
            ORIGIN,
            &serde_json::json!({"__typename": "EngineEvent", "eventType": "ENGINE_EVENT", "runId": "r", "timestamp": "1"}),
        );
        assert_eq!(other.event_type, DagsterEventType::Other);
        assert!(other.raw_json.unwrap().contains("EngineEvent"));
    }
}
