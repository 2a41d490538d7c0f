//! Realistic OpenLineage 2-0-2 events as the processor writes them to `lineage.openlineage`,
//! with their Kafka transport keys. Shared by the sink tests of this crate and the root
//! package's integration tests (`#[path]`), so it depends only on serde_json and uuid.
#![allow(dead_code)] // each test binary uses a subset

use serde_json::{Value, json};

/// The producer URI on every event and facet.
pub const PRODUCER: &str = "https://example.invalid/lineage-bus/tests";
const RUN_EVENT: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const DATASET_EVENT: &str =
    "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/DatasetEvent";

/// A dataset `(namespace, name)` with its columns.
pub type Dataset<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

fn facet(schema: &str) -> Value {
    json!({ "_producer": PRODUCER, "_schemaURL": schema })
}

fn dataset(ds: &Dataset<'_>) -> Value {
    let (namespace, name, columns) = ds;
    let mut schema = facet(
        "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet",
    );
    schema["fields"] = columns
        .iter()
        .map(|(name, kind)| json!({ "name": name, "type": kind }))
        .collect();
    json!({ "namespace": namespace, "name": name, "facets": { "schema": schema } })
}

/// The parent of a child run.
#[derive(Debug, Clone, Copy)]
pub struct Parent<'a> {
    /// Parent job namespace.
    pub namespace: &'a str,
    /// Parent job name.
    pub name: &'a str,
    /// Parent run id.
    pub run_id: &'a str,
}

/// A RunEvent of job `namespace`/`name`, run `run_id`.
#[allow(clippy::too_many_arguments)]
pub fn run_event(
    event_type: &str,
    event_time: &str,
    run_id: &str,
    namespace: &str,
    name: &str,
    inputs: &[Dataset<'_>],
    outputs: &[Dataset<'_>],
    parent: Option<Parent<'_>>,
) -> Value {
    let mut run_facets = serde_json::Map::new();
    if let Some(parent) = parent {
        let mut f = facet(
            "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
        );
        f["run"] = json!({ "runId": parent.run_id });
        f["job"] = json!({ "namespace": parent.namespace, "name": parent.name });
        f["root"] = json!({
            "run": { "runId": parent.run_id },
            "job": { "namespace": parent.namespace, "name": parent.name },
        });
        run_facets.insert("parent".into(), f);
    }
    let mut job_type = facet(
        "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
    );
    job_type["processingType"] = json!("BATCH");
    job_type["integration"] = json!("DAGSTER");
    job_type["jobType"] = json!(if parent.is_some() { "ASSET" } else { "JOB" });
    json!({
        "eventType": event_type,
        "eventTime": event_time,
        "run": { "runId": run_id, "facets": run_facets },
        "job": { "namespace": namespace, "name": name, "facets": { "jobType": job_type } },
        "inputs": inputs.iter().map(dataset).collect::<Vec<_>>(),
        "outputs": outputs.iter().map(dataset).collect::<Vec<_>>(),
        "producer": PRODUCER,
        "schemaURL": RUN_EVENT,
    })
}

/// A DatasetEvent for `ds`.
pub fn dataset_event(event_time: &str, ds: &Dataset<'_>) -> Value {
    json!({
        "eventTime": event_time,
        "dataset": dataset(ds),
        "producer": PRODUCER,
        "schemaURL": DATASET_EVENT,
    })
}

/// The OpenLineage Kafka transport key of a run of the root job `namespace`/`name`.
pub fn run_key(namespace: &str, name: &str) -> String {
    format!("run:{namespace}/{name}")
}

/// The key of a DatasetEvent.
pub fn dataset_key(namespace: &str, name: &str) -> String {
    format!("dataset:{namespace}/{name}")
}

/// A new UUIDv7 run id.
pub fn run_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// One Dagster run as OpenLineage: the run job START, one child run per step/asset (START,
/// COMPLETE with inputs and outputs) and the run job COMPLETE, all under the root's key, in
/// order. `steps` are (asset job name, inputs, outputs).
pub fn pipeline_run(
    namespace: &str,
    job: &str,
    steps: &[(&str, &[Dataset<'_>], &[Dataset<'_>])],
    minute: u32,
) -> Vec<(String, Value)> {
    let key = run_key(namespace, job);
    let root = run_id();
    let t = |second: u32| format!("2024-05-01T10:{minute:02}:{second:02}.000Z");
    let mut events = vec![(
        key.clone(),
        run_event("START", &t(0), &root, namespace, job, &[], &[], None),
    )];
    let parent = Parent {
        namespace,
        name: job,
        run_id: &root,
    };
    for (i, (step, inputs, outputs)) in steps.iter().enumerate() {
        let child = run_id();
        let second = 1 + 2 * u32::try_from(i).unwrap_or(0);
        events.push((
            key.clone(),
            run_event(
                "START",
                &t(second),
                &child,
                namespace,
                step,
                inputs,
                &[],
                Some(parent),
            ),
        ));
        events.push((
            key.clone(),
            run_event(
                "COMPLETE",
                &t(second + 1),
                &child,
                namespace,
                step,
                inputs,
                outputs,
                Some(parent),
            ),
        ));
    }
    events.push((
        key,
        run_event("COMPLETE", &t(59), &root, namespace, job, &[], &[], None),
    ));
    events
}
