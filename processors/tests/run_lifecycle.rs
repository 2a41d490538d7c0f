//! The processor's run bookkeeping, event by event through [`LineageProcessor::handle`] (codecs
//! from the testbed's Schema Registry, no broker): every step child run left open at the run's
//! end is closed (OpenLineage `ABORT` with the reason, OpenMetadata task status), and events
//! that precede the run's first run-level event see the run's tags.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;
mod spec;

use std::collections::{BTreeMap, HashMap};

use lineage_bus_core::exactly_once::Output;
use lineage_processors::output::OutputSettings;
use lineage_processors::processor::{
    LineageProcessor, ProcessConfig, ProcessTopics, output_settings,
};
use lineage_schemas::RecordCodec;
use lineage_schemas::catalog::{DAGSTER_EVENTS, LINEAGE_OPENMETADATA};
use lineage_schemas::records::{
    DagsterEvent, DagsterEventType as T, ErrorInfo, ExecutionStatus, OpenMetadataOperation,
    Operation, Origin, SourceKind, SourcePosition, TaskStatus,
};
use serde_json::Value;
use spec::OpenLineageSpec;

const T0: i64 = 1_795_241_804_000;

fn event(run: &str, kind: T, step: Option<&str>, at: i64) -> DagsterEvent {
    DagsterEvent {
        tenant: "prod".into(),
        source: SourcePosition {
            kind: SourceKind::PostgresEventLog,
            storage_id: Some(at),
            shard: None,
            cursor: None,
        },
        event_type: kind,
        raw_event_type: format!("{kind:?}"),
        run_id: Some(run.into()),
        job_name: Some("vendor_job".into()),
        step_key: step.map(str::to_owned),
        asset_key: None,
        partition: None,
        timestamp_ms: T0 + at,
        message: None,
        description: None,
        metadata: vec![],
        tags: BTreeMap::new(),
        check: None,
        error: None,
        raw_json: None,
    }
}

/// A run event: it carries the run's tags (the others carry none).
fn run_event(run: &str, kind: T, at: i64) -> DagsterEvent {
    let mut e = event(run, kind, None, at);
    e.tags = BTreeMap::from([
        (
            "dagster/code_location".to_owned(),
            "lineage_sample".to_owned(),
        ),
        ("team".to_owned(), "data".to_owned()),
    ]);
    e
}

fn planned(run: &str, asset: &str, at: i64) -> DagsterEvent {
    let mut e = event(run, T::AssetMaterializationPlanned, Some(asset), at);
    e.asset_key = Some(vec!["warehouse_db".into(), asset.into()]);
    e
}

/// The shape of the testbed's failing `vendor_job` run: two assets planned before the run is
/// enqueued, the first step fails, the second never starts.
fn failed_run(run: &str) -> Vec<DagsterEvent> {
    let mut failure = run_event(run, T::RunFailure, 9);
    failure.error = Some(ErrorInfo {
        message: "Execution of run for \"vendor_job\" failed. Steps failed: ['a'].\n".into(),
        class_name: None,
        stack: vec![],
        cause: None,
    });
    vec![
        planned(run, "a", 1),
        planned(run, "b", 2),
        run_event(run, T::RunEnqueued, 3),
        run_event(run, T::RunStarting, 4),
        run_event(run, T::RunStart, 5),
        event(run, T::StepStart, Some("a"), 6),
        event(run, T::StepFailure, Some("a"), 7),
        event(run, T::Other, None, 8),
        failure,
        // Dagster writes engine events after the run's end
        event(run, T::Other, None, 10),
    ]
}

fn origin(offset: i64) -> Origin {
    Origin {
        topic: DAGSTER_EVENTS.into(),
        partition: 0,
        offset,
    }
}

async fn run_all(processor: &mut LineageProcessor, events: &[DagsterEvent]) -> Vec<Output> {
    let mut out = Vec::new();
    for (offset, e) in events.iter().enumerate() {
        out.extend(processor.handle(e, &origin(offset as i64)).unwrap());
    }
    out
}

fn openlineage(out: &[Output]) -> Vec<Value> {
    out.iter()
        .filter(|o| o.topic == ProcessTopics::default().openlineage)
        .map(|o| serde_json::from_slice(o.payload.as_deref().unwrap()).unwrap())
        .collect()
}

async fn last_status(out: &[Output]) -> Vec<TaskStatus> {
    let codec =
        RecordCodec::<OpenMetadataOperation>::for_topic(harness::registry(), LINEAGE_OPENMETADATA)
            .await
            .unwrap();
    let mut last = None;
    for o in out.iter().filter(|o| o.topic == LINEAGE_OPENMETADATA) {
        if let Operation::AddPipelineStatus(s) = codec
            .decode(o.payload.as_deref().unwrap())
            .await
            .unwrap()
            .operation
        {
            last = Some(s.tasks);
        }
    }
    last.expect("a pipeline status")
}

/// `(eventType, job name)` of every event.
fn kinds(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["eventType"].as_str().unwrap_or("-").to_owned(),
                e["job"]["name"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_step_that_never_ran_in_a_failed_run_is_aborted_with_the_reason() {
    let mut processor = harness::processor(OutputSettings::default()).await;
    let out = run_all(&mut processor, &failed_run("r-failed")).await;
    let events = openlineage(&out);
    let kinds = kinds(&events);
    let spec = OpenLineageSpec::load();
    for event in &events {
        assert_eq!(spec.problems(event), Vec::<String>::new(), "{event:#}");
    }

    // each step child run has exactly one terminal event
    let terminal = |job: &str| {
        kinds
            .iter()
            .filter(|(kind, name)| {
                name == job && matches!(kind.as_str(), "COMPLETE" | "FAIL" | "ABORT")
            })
            .map(|(kind, _)| kind.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(terminal("vendor_job.a"), ["FAIL"], "{kinds:?}");
    assert_eq!(terminal("vendor_job.b"), ["ABORT"], "{kinds:?}");
    let abort = events
        .iter()
        .find(|e| e["eventType"] == "ABORT" && e["job"]["name"] == "vendor_job.b")
        .unwrap();
    let message = abort["run"]["facets"]["errorMessage"]["message"]
        .as_str()
        .unwrap();
    assert!(
        message.starts_with("step did not run: the run failed: Execution of run"),
        "{message}"
    );
    // the step run is a child of the Dagster run, keyed with it
    assert_eq!(
        abort["run"]["facets"]["parent"]["job"]["name"], "vendor_job",
        "{abort:#}"
    );
    // children close before their run: the ABORT comes before the run's FAIL
    let position = |kind: &str, job: &str| {
        kinds
            .iter()
            .position(|(k, n)| k == kind && n == job)
            .unwrap_or_else(|| panic!("no {kind} {job} in {kinds:?}"))
    };
    assert!(position("ABORT", "vendor_job.b") < position("FAIL", "vendor_job"));
    assert!(position("FAIL", "warehouse_db/b") < position("FAIL", "vendor_job"));

    let tasks: HashMap<String, ExecutionStatus> = last_status(&out)
        .await
        .into_iter()
        .map(|t| (t.name, t.status))
        .collect();
    assert_eq!(tasks["a"], ExecutionStatus::Failed);
    assert_eq!(tasks["b"], ExecutionStatus::Skipped, "{tasks:?}");
    assert_eq!(
        processor.open_runs(),
        0,
        "the trailing engine event reopened the run"
    );
}

#[tokio::test]
async fn a_step_running_when_its_run_is_canceled_is_aborted_and_failed() {
    let mut processor = harness::processor(OutputSettings::default()).await;
    let run = "r-canceled";
    let events = vec![
        planned(run, "slow", 1),
        run_event(run, T::RunEnqueued, 2),
        run_event(run, T::RunStart, 3),
        event(run, T::StepStart, Some("slow"), 4),
        run_event(run, T::RunCanceling, 5),
        run_event(run, T::RunCanceled, 6),
    ];
    let out = run_all(&mut processor, &events).await;
    let lineage = openlineage(&out);
    let abort = lineage
        .iter()
        .find(|e| e["eventType"] == "ABORT" && e["job"]["name"] == "vendor_job.slow")
        .unwrap_or_else(|| panic!("{:?}", kinds(&lineage)));
    assert_eq!(
        abort["run"]["facets"]["errorMessage"]["message"],
        "step did not finish: the run was canceled"
    );
    // the step's ABORT carries the runId of its START
    let start = lineage
        .iter()
        .find(|e| e["eventType"] == "START" && e["job"]["name"] == "vendor_job.slow")
        .unwrap();
    assert_eq!(abort["run"]["runId"], start["run"]["runId"]);
    let tasks = last_status(&out).await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].status, ExecutionStatus::Failed);
    assert_eq!(tasks[0].end_time_ms, Some(T0 + 6));
}

#[tokio::test]
async fn a_successful_run_leaves_no_step_open() {
    let mut processor = harness::processor(OutputSettings::default()).await;
    let run = "r-ok";
    let events = vec![
        planned(run, "a", 1),
        run_event(run, T::RunStart, 2),
        event(run, T::StepStart, Some("a"), 3),
        event(run, T::StepSuccess, Some("a"), 4),
        run_event(run, T::RunSuccess, 5),
    ];
    let out = run_all(&mut processor, &events).await;
    let kinds = kinds(&openlineage(&out));
    assert!(
        !kinds.iter().any(|(k, _)| k == "ABORT"),
        "nothing to close: {kinds:?}"
    );
    assert_eq!(
        last_status(&out).await[0].status,
        ExecutionStatus::Successful
    );
}

#[tokio::test]
async fn events_before_the_run_enqueued_see_the_run_tags() {
    let config = ProcessConfig {
        namespace_template: "{namespace}/{tag:team}/{code_location}".into(),
        ..ProcessConfig::default()
    };
    let mut processor = harness::processor(output_settings(&config).unwrap()).await;
    let events = failed_run("r-tags");
    // the planned events come first and carry no tags: they are held, nothing is output
    for (offset, e) in events[..2].iter().enumerate() {
        assert!(
            processor
                .handle(e, &origin(offset as i64))
                .unwrap()
                .is_empty(),
            "a planned event before the run's tags is output"
        );
    }
    let mut out = Vec::new();
    for (offset, e) in events[2..].iter().enumerate() {
        out.extend(processor.handle(e, &origin(offset as i64 + 2)).unwrap());
    }
    let lineage = openlineage(&out);
    assert!(lineage.len() >= 8, "{:?}", kinds(&lineage));
    for event in &lineage {
        assert_eq!(
            event["job"]["namespace"], "dagster/data/lineage_sample",
            "{event:#}"
        );
    }
    let planned_start = lineage
        .iter()
        .find(|e| e["eventType"] == "START" && e["job"]["name"] == "warehouse_db/a")
        .unwrap();
    let tags = planned_start["run"]["facets"]["tags"]["tags"].to_string();
    assert!(
        tags.contains("\"team\"") && tags.contains("\"data\""),
        "{tags}"
    );
    // the planned START is output before the run's own START, in log order
    let kinds = kinds(&lineage);
    assert_eq!(
        kinds[0],
        ("START".into(), "warehouse_db/a".into()),
        "{kinds:?}"
    );
}

/// The OpenMetadata operations of `out`, with their Kafka keys.
async fn operations(out: &[Output]) -> Vec<(String, Operation)> {
    let codec =
        RecordCodec::<OpenMetadataOperation>::for_topic(harness::registry(), LINEAGE_OPENMETADATA)
            .await
            .unwrap();
    let mut ops = Vec::new();
    for o in out.iter().filter(|o| o.topic == LINEAGE_OPENMETADATA) {
        let op = codec.decode(o.payload.as_deref().unwrap()).await.unwrap();
        ops.push((
            String::from_utf8(o.key.clone().unwrap()).unwrap(),
            op.operation,
        ));
    }
    ops
}

/// The sink writes one key in order and a status waits for its pipeline: a job's first run
/// writes the pipeline before its status, under the same key (a status first would wait for a
/// record queued behind it). A second run of the same job writes only its status.
#[tokio::test]
async fn a_jobs_pipeline_comes_before_its_first_status_under_the_same_key() {
    let mut processor = harness::processor(OutputSettings::default()).await;
    let run_events = |run: &str, base: i64| {
        vec![
            run_event(run, T::RunStart, base + 1),
            event(run, T::StepStart, Some("a"), base + 2),
            event(run, T::StepSuccess, Some("a"), base + 3),
            run_event(run, T::RunSuccess, base + 4),
        ]
    };
    let is_pipeline = |op: &Operation| matches!(op, Operation::UpsertPipeline(_));
    let is_status = |op: &Operation| matches!(op, Operation::AddPipelineStatus(_));
    let first = operations(&run_all(&mut processor, &run_events("r-1", 0)).await).await;
    let pipeline = first.iter().position(|(_, op)| is_pipeline(op));
    let status = first.iter().position(|(_, op)| is_status(op));
    let (Some(pipeline), Some(status)) = (pipeline, status) else {
        panic!("a pipeline and a status: {first:#?}")
    };
    assert!(
        pipeline < status,
        "pipeline at {pipeline}, status at {status}"
    );
    assert_eq!(first[pipeline].0, first[status].0, "one key");

    let second = operations(&run_all(&mut processor, &run_events("r-2", 10)).await).await;
    assert_eq!(second.iter().filter(|(_, op)| is_pipeline(op)).count(), 0);
    assert_eq!(second.iter().filter(|(_, op)| is_status(op)).count(), 1);
}
