//! The parser against real rows of the testbed's `event_logs` (`tests/fixtures/event_logs.tsv`,
//! dumped with `psql -At -F '\t' -c "select id, event from event_logs ..."`) and rows
//! serialized by Dagster's own serdes for what the sample jobs do not produce
//! (`tests/fixtures/synthetic.tsv`, made by `make_synthetic.py` beside it).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use lineage_schemas::records::{
    CheckSeverity, DagsterEvent, DagsterEventType as T, MetadataEntry, MetadataKind, SourceKind,
};

use super::{event_type, parse_event};

const REAL: &str = include_str!("../../../tests/fixtures/event_logs.tsv");
const SYNTHETIC: &str = include_str!("../../../tests/fixtures/synthetic.tsv");

fn rows(tsv: &'static str) -> impl Iterator<Item = (i64, &'static str)> {
    tsv.lines().map(|line| {
        let (id, event) = line.split_once('\t').unwrap();
        (id.parse().unwrap(), event)
    })
}

fn parsed(tsv: &'static str) -> BTreeMap<i64, DagsterEvent> {
    rows(tsv)
        .map(|(id, text)| (id, parse_event("acme", id, text).unwrap()))
        .collect()
}

fn entry<'a>(event: &'a DagsterEvent, label: &str) -> &'a MetadataEntry {
    event
        .metadata
        .iter()
        .find(|m| m.label == label)
        .unwrap_or_else(|| panic!("no metadata entry {label} in {:?}", event.metadata))
}

#[test]
fn every_real_row_parses_with_its_source_and_type() {
    let events = parsed(REAL);
    assert_eq!(events.len(), REAL.lines().count());
    let mut raw_types = BTreeSet::new();
    for (id, event) in &events {
        assert_eq!(event.tenant, "acme");
        assert_eq!(event.source.kind, SourceKind::PostgresEventLog);
        assert_eq!(event.source.storage_id, Some(*id));
        assert!(event.timestamp_ms > 1_700_000_000_000, "row {id}");
        let expected = if event.raw_event_type.is_empty() {
            T::LogMessage // a plain log line has no stored type
        } else {
            event_type(&event.raw_event_type)
        };
        assert_eq!(event.event_type, expected, "row {id}");
        assert_eq!(
            event.raw_json.is_some(),
            event.event_type == T::Other,
            "raw JSON only on OTHER (row {id})"
        );
        raw_types.insert(event.raw_event_type.clone());
    }
    // Every type the sample jobs write is in the fixture.
    for stored in [
        "",
        "PIPELINE_ENQUEUED",
        "PIPELINE_STARTING",
        "PIPELINE_START",
        "PIPELINE_SUCCESS",
        "PIPELINE_FAILURE",
        "PIPELINE_CANCELING",
        "PIPELINE_CANCELED",
        "STEP_START",
        "STEP_OUTPUT",
        "STEP_SUCCESS",
        "STEP_FAILURE",
        "STEP_UP_FOR_RETRY",
        "STEP_RESTARTED",
        "ASSET_MATERIALIZATION_PLANNED",
        "ASSET_MATERIALIZATION",
        "ASSET_OBSERVATION",
        "ASSET_CHECK_EVALUATION_PLANNED",
        "ASSET_CHECK_EVALUATION",
        "ENGINE_EVENT",
        "FRESHNESS_STATE_CHANGE",
        "LOGS_CAPTURED",
        "RESOURCE_INIT_STARTED",
        "RESOURCE_INIT_SUCCESS",
        "STEP_WORKER_STARTING",
        "STEP_WORKER_STARTED",
    ] {
        assert!(raw_types.contains(stored), "fixture lacks {stored}");
    }
}

#[test]
fn run_lifecycle_names_map_to_run_types() {
    for (stored, expected) in [
        ("PIPELINE_ENQUEUED", T::RunEnqueued),
        ("PIPELINE_DEQUEUED", T::RunDequeued),
        ("PIPELINE_STARTING", T::RunStarting),
        ("PIPELINE_START", T::RunStart),
        ("PIPELINE_SUCCESS", T::RunSuccess),
        ("PIPELINE_FAILURE", T::RunFailure),
        ("PIPELINE_CANCELING", T::RunCanceling),
        ("PIPELINE_CANCELED", T::RunCanceled),
        ("RUN_START", T::RunStart),
        ("RUN_SUSPENDED", T::Other),
        ("STEP_SKIPPED", T::StepSkipped),
        ("STEP_INPUT", T::StepInput),
        ("HANDLED_OUTPUT", T::Other),
    ] {
        assert_eq!(event_type(stored), expected, "{stored}");
    }
}

#[test]
fn materialization_carries_asset_metadata_tags_and_column_lineage() {
    let events = parsed(REAL);
    let event = &events[&163];
    assert_eq!(event.event_type, T::AssetMaterialization);
    assert_eq!(
        event.run_id.as_deref(),
        Some("31ba27d7-9aa5-4c1b-b274-b51eaeb40617")
    );
    assert_eq!(event.job_name.as_deref(), Some("transform_job"));
    assert_eq!(
        event.step_key.as_deref(),
        Some("acme_project__warehouse_db__staging__orders_clean")
    );
    assert_eq!(
        event.asset_key.as_deref().unwrap(),
        ["acme_project", "warehouse_db", "staging", "orders_clean"]
    );
    assert_eq!(event.kafka_key(), "31ba27d7-9aa5-4c1b-b274-b51eaeb40617");
    assert_eq!(event.timestamp_ms, 1_795_241_820_383);
    assert_eq!(
        event.tags["dagster/input_event_pointer/warehouse_db/raw/orders"],
        "58"
    );
    let schema = entry(event, "dagster/column_schema");
    assert_eq!(schema.kind, MetadataKind::TableSchema);
    let columns = &schema.table_schema.as_ref().unwrap().columns;
    assert_eq!(columns[2].name, "amount_usd");
    assert_eq!(columns[2].data_type, "numeric(12,2)");
    assert_eq!(
        (columns[2].nullable, columns[2].unique),
        (Some(true), Some(false))
    );
    let lineage = entry(event, "dagster/column_lineage");
    assert_eq!(lineage.kind, MetadataKind::ColumnLineage);
    let amount = &lineage.column_lineage.as_ref().unwrap().columns[0];
    assert_eq!(amount.column, "amount_usd");
    assert_eq!(amount.deps[0].asset_key, ["warehouse_db", "raw", "orders"]);
    assert_eq!(amount.deps[0].column, "amount");
    assert_eq!(entry(event, "dagster/row_count").int, Some(1234));
}

#[test]
fn runless_events_have_no_run_and_are_keyed_by_asset() {
    let events = parsed(REAL);
    let reported = &events[&30];
    assert_eq!(reported.event_type, T::AssetMaterialization);
    assert_eq!(
        (reported.run_id.as_deref(), reported.job_name.as_deref()),
        (None, None)
    );
    assert_eq!(reported.partition.as_deref(), Some("2024-01-03"));
    assert_eq!(reported.kafka_key(), "warehouse_db/raw/events_source");
    let observed = &events[&31];
    assert_eq!(observed.event_type, T::AssetObservation);
    assert_eq!(
        entry(observed, "last_event_ts").text.as_deref(),
        Some("2024-01-03T23:59:58Z")
    );
    let freshness = &events[&1];
    assert_eq!(freshness.event_type, T::Other);
    assert_eq!(
        freshness.kafka_key(),
        "acme_project/warehouse_db/staging/orders_clean"
    );
}

#[test]
fn checks_take_the_asset_key_from_the_json() {
    let events = parsed(REAL);
    let runless = &events[&32];
    assert_eq!(runless.event_type, T::AssetCheckEvaluation);
    assert_eq!(
        runless.asset_key.as_deref().unwrap(),
        ["warehouse_db", "raw", "events_source"]
    );
    let check = runless.check.as_ref().unwrap();
    assert_eq!(
        (check.name.as_str(), check.passed),
        ("events_fresh", Some(true))
    );
    assert_eq!(entry(runless, "lag_minutes").int, Some(4));
    let warn = events[&33].check.as_ref().unwrap();
    assert_eq!(
        (warn.passed, warn.severity),
        (Some(false), CheckSeverity::Warn)
    );

    let failed = &events[&167];
    let check = failed.check.as_ref().unwrap();
    assert_eq!(check.name, "no_null_customer_id");
    assert_eq!(
        (check.passed, check.severity, check.target_storage_id),
        (Some(false), CheckSeverity::Error, Some(163))
    );
    assert_eq!(
        failed.description.as_deref(),
        Some("17 orders have no customer")
    );
    let sample = entry(failed, "sample_order_ids");
    assert_eq!(
        (sample.kind, sample.text.as_deref()),
        (MetadataKind::Json, Some("[101, 205, 333]"))
    );

    let planned = &events[&123];
    assert_eq!(planned.event_type, T::AssetCheckEvaluationPlanned);
    assert_eq!(planned.check.as_ref().unwrap().passed, None);
    assert_eq!(planned.asset_key.as_ref().unwrap().len(), 4);
}

#[test]
fn failures_carry_the_error_and_its_cause() {
    let events = parsed(REAL);
    let run = &events[&85];
    assert_eq!(run.event_type, T::RunFailure);
    let error = run.error.as_ref().unwrap();
    assert_eq!(
        error.class_name.as_deref(),
        Some("DagsterExecutionStepExecutionError")
    );
    let cause = error.cause.as_ref().unwrap();
    assert_eq!(cause.class_name.as_deref(), Some("RuntimeError"));
    assert!(cause.message.contains("HTTP 503"));
    assert!(!cause.stack.is_empty());
    assert_eq!(events[&82].event_type, T::StepFailure);
    assert!(events[&82].error.is_some());
    let retry = &events[&81];
    assert_eq!(retry.event_type, T::StepUpForRetry);
    assert_eq!(
        retry
            .error
            .as_ref()
            .unwrap()
            .cause
            .as_ref()
            .unwrap()
            .class_name
            .as_deref(),
        Some("ConnectionError")
    );
    assert_eq!(events[&97].event_type, T::StepRestarted);
    assert_eq!(events[&89].event_type, T::RunCanceled);
}

#[test]
fn log_lines_and_other_events() {
    let events = parsed(REAL);
    let line = &events[&55];
    assert_eq!(line.event_type, T::LogMessage);
    assert_eq!(line.raw_event_type, "");
    assert_eq!(
        line.message.as_deref(),
        Some("loading orders from events_source")
    );
    assert_eq!(line.step_key.as_deref(), Some("warehouse_db__raw__orders"));
    let engine = &events[&36];
    assert_eq!(engine.event_type, T::Other);
    assert_eq!(engine.raw_event_type, "ENGINE_EVENT");
    assert_eq!(
        engine.raw_json.as_deref(),
        Some(rows(REAL).find(|(id, _)| *id == 36).unwrap().1)
    );
    let planned = &events[&23];
    assert_eq!(planned.event_type, T::AssetMaterializationPlanned);
    assert_eq!(planned.partition.as_deref(), Some("2024-01-01"));
    let output = &events[&48];
    assert_eq!(output.event_type, T::StepOutput);
    assert_eq!(entry(output, "dagster/row_count").int, Some(310));
}

#[test]
fn every_metadata_kind_and_non_finite_and_huge_numbers() {
    let events = parsed(SYNTHETIC);
    let event = &events[&100_001];
    assert_eq!(event.partition.as_deref(), Some("2024-01-01"));
    assert_eq!(event.description.as_deref(), Some("all metadata kinds"));
    assert_eq!(event.tags["team"], "data");
    let text = |label, kind| {
        let e = entry(event, label);
        assert_eq!(e.kind, kind, "{label}");
        e.text.clone().unwrap()
    };
    assert_eq!(text("text", MetadataKind::Text), "hello");
    assert_eq!(text("url", MetadataKind::Url), "https://example.com/x");
    assert_eq!(text("path", MetadataKind::Path), "/data/x.parquet");
    assert_eq!(text("notebook", MetadataKind::Notebook), "/nb/x.ipynb");
    assert_eq!(text("md", MetadataKind::Markdown), "# title");
    assert_eq!(
        text("python", MetadataKind::PythonArtifact),
        "dagster._core.definitions.asset_key.AssetKey"
    );
    assert_eq!(
        text("json", MetadataKind::Json),
        r#"{"a": [1, 2], "b": null}"#
    );
    assert_eq!(text("run", MetadataKind::Run), "abc-run");
    assert_eq!(text("job", MetadataKind::Job), "other_job");
    assert_eq!(text("pool", MetadataKind::Pool), "db_pool");
    assert!(text("code", MetadataKind::CodeReferences).contains("/src/x.py"));
    assert_eq!(entry(event, "int").int, Some(42));
    assert_eq!(entry(event, "float").float, Some(2.5));
    assert_eq!(entry(event, "bool").bool, Some(true));
    assert_eq!(entry(event, "null").kind, MetadataKind::Null);
    let timestamp = entry(event, "timestamp");
    assert_eq!(
        (timestamp.kind, timestamp.float),
        (MetadataKind::Timestamp, Some(1_700_000_000.5))
    );
    assert_eq!(
        entry(event, "asset").asset_key.as_deref().unwrap(),
        ["db", "schema", "t"]
    );
    let table = entry(event, "table");
    assert_eq!(table.kind, MetadataKind::Table);
    assert_eq!(table.text.as_deref(), Some(r#"[{"x": 1, "y": "a"}]"#));
    assert_eq!(table.table_schema.as_ref().unwrap().columns.len(), 2);
    let schema = entry(event, "dagster/column_schema")
        .table_schema
        .as_ref()
        .unwrap();
    let id = &schema.columns[0];
    assert_eq!(
        (
            id.description.as_deref(),
            id.nullable,
            id.unique,
            id.tags["pii"].as_str()
        ),
        (Some("primary key"), Some(false), Some(true), "no")
    );
    let lineage = entry(event, "dagster/column_lineage")
        .column_lineage
        .as_ref()
        .unwrap();
    assert_eq!(lineage.columns[0].deps[0].column, "uid");
    assert!(entry(event, "nan").float.unwrap().is_nan());
    assert_eq!(entry(event, "inf").float, Some(f64::INFINITY));
    assert_eq!(entry(event, "neg_inf").float, Some(f64::NEG_INFINITY));
    assert_eq!(entry(event, "big").int, Some((1 << 60) + 1));
    let huge = entry(event, "huge");
    assert_eq!(
        (huge.int, huge.text.as_deref()),
        (None, Some("1180591620717411303424"))
    );
}

#[test]
fn skipped_dequeued_failed_to_materialize_and_runless_lines() {
    let events = parsed(SYNTHETIC);
    assert_eq!(events[&100_002].event_type, T::StepSkipped);
    assert_eq!(events[&100_003].event_type, T::RunDequeued);
    let failed = &events[&100_004];
    assert_eq!(failed.event_type, T::AssetFailedToMaterialize);
    assert_eq!(
        failed.asset_key.as_deref().unwrap(),
        ["db", "schema", "failed"]
    );
    assert_eq!(failed.partition.as_deref(), Some("p1"));
    assert_eq!(
        failed.error.as_ref().unwrap().class_name.as_deref(),
        Some("ValueError")
    );
    let line = &events[&100_005];
    assert_eq!(
        (line.event_type, line.run_id.as_deref()),
        (T::LogMessage, None)
    );
    assert_eq!(line.message.as_deref(), Some("a runless log line"));
    let unknown = &events[&100_006];
    assert_eq!(
        (unknown.event_type, unknown.raw_event_type.as_str()),
        (T::Other, "ASSET_HEALTH_CHANGED")
    );
    assert!(
        unknown
            .raw_json
            .as_deref()
            .unwrap()
            .contains("ASSET_HEALTH_CHANGED")
    );
}

#[test]
fn malformed_rows_name_the_storage_id_and_the_failure() {
    let truncated = &REAL.lines().next().unwrap().split_once('\t').unwrap().1[..200];
    let err = parse_event("acme", 7, truncated).unwrap_err();
    assert_eq!(err.storage_id, 7);
    assert!(err.to_string().contains("storage id 7"), "{err}");
    assert!(err.reason.contains("invalid JSON"), "{err}");
    let no_time = r#"{"__class__": "EventLogEntry", "dagster_event": null, "run_id": "r"}"#;
    assert!(
        parse_event("acme", 8, no_time)
            .unwrap_err()
            .reason
            .contains("timestamp")
    );
    let bad_int = r#"{"__class__": "EventLogEntry", "timestamp": 1.0, "run_id": "r",
        "dagster_event": {"__class__": "DagsterEvent", "event_type_value": "STEP_OUTPUT",
        "event_specific_data": {"metadata_entries": [{"label": "n",
        "entry_data": {"__class__": "IntMetadataEntryData", "value": "x"}}]}}}"#;
    let err = parse_event("acme", 9, bad_int).unwrap_err();
    assert!(err.reason.contains("metadata entry 'n'"), "{err}");
}

#[test]
fn non_string_tags_keep_their_json_text() {
    // A materialization reported through Dagster's REST API with `"data_version": 5`.
    let text = r#"{"__class__": "EventLogEntry", "dagster_event": {"__class__": "DagsterEvent", "event_specific_data": {"__class__": "StepMaterializationData", "asset_lineage": [], "materialization": {"__class__": "AssetMaterialization", "asset_key": {"__class__": "AssetKey", "path": ["a"]}, "description": null, "metadata_entries": [], "partition": null, "tags": {"dagster/data_version": 5, "dagster/data_version_is_user_provided": "true", "o": {"b": [1, 2.5]}}}}, "event_type_value": "ASSET_MATERIALIZATION", "logging_tags": {}, "message": null, "pid": null, "pipeline_name": "", "solid_handle": null, "step_handle": null, "step_key": null, "step_kind_value": null}, "error_info": null, "level": 20, "message": "", "pipeline_name": "", "run_id": "", "step_key": null, "timestamp": 1795250820.4449682, "user_message": ""}"#;
    let event = parse_event("acme", 729, text).unwrap();
    let tags: Vec<(&str, &str)> = event
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        tags,
        [
            ("dagster/data_version", "5"),
            ("dagster/data_version_is_user_provided", "true"),
            ("o", r#"{"b": [1, 2.5]}"#)
        ]
    );
}
