//! A realistic synthetic workload for the processor's benchmarks
//! (`processors/benches/processor.rs`) and the `processor_throughput` load test: an
//! OpenMetadata table index, the asset graph of a few asset jobs resolving into it, and the
//! Dagster event log of many runs of those jobs.
//!
//! The event mix follows the testbed's real event log (the sample jobs): per run the run's
//! lifecycle (`RUN_ENQUEUED`, `RUN_STARTING`, `RUN_START` with tags, engine events, the end),
//! per asset its planned event, step start, resource and log-capture events (`OTHER`), step
//! output, the materialization (12-column schema, column lineage, row count), a check (planned
//! and evaluated) and the step's success; one run in ten fails (step failure with a Python
//! error, run failure: the unmaterialized assets' FAIL events); one runless observation a run.
//! About half the records are lifecycle noise that produces nothing, as in the real log.

use std::collections::BTreeMap;

use lineage_schemas::records::{
    AssetCheck, AssetDefinition, CheckSeverity, Column, ColumnDeps, ColumnLineage, ColumnRef,
    DagsterEvent, DagsterEventType as T, ErrorInfo, MetadataEntry, MetadataKind, SourceKind,
    SourcePosition, TableColumn, TableSchema, TableSnapshot,
};

/// The tenant of every record.
pub const TENANT: &str = "prod";
/// Assets per job (= steps per run).
pub const ASSETS_PER_JOB: usize = 8;
/// Asset jobs.
pub const JOBS: usize = 10;

/// Tables, asset definitions and events.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The OpenMetadata table index (`openmetadata.tables`).
    pub tables: Vec<TableSnapshot>,
    /// The asset graph (`dagster.assets`).
    pub assets: Vec<AssetDefinition>,
    /// The event log (`dagster.events`), in log order.
    pub events: Vec<DagsterEvent>,
}

/// `runs` runs over an index of `tables` tables (at least `JOBS * ASSETS_PER_JOB`).
pub fn workload(runs: usize, tables: usize) -> Workload {
    let tables = tables.max(JOBS * ASSETS_PER_JOB);
    let index = (0..tables).map(table).collect();
    let assets = (0..JOBS)
        .flat_map(|job| (0..ASSETS_PER_JOB).map(move |i| asset(job, i)))
        .collect();
    let mut events = Vec::new();
    let mut at = 1_795_241_820_000;
    for run in 0..runs {
        run_events(run, &mut at, &mut events);
    }
    Workload {
        tables: index,
        assets,
        events,
    }
}

/// Table `i`: `svc_{i%3}.db_{i%20}.schema_{i%200}.t_{i}`.
fn table(i: usize) -> TableSnapshot {
    let (service, database, schema, name) = table_parts(i);
    let fqn = format!("{service}.{database}.{schema}.{name}");
    let columns = (0..12)
        .map(|c| Column {
            name: format!("column_{c}"),
            data_type: "BIGINT".to_owned(),
            data_type_display: None,
            fqn: format!("{fqn}.column_{c}"),
            description: None,
            children: Vec::new(),
        })
        .collect();
    TableSnapshot {
        tenant: "om".to_owned(),
        fqn,
        id: format!("{i:08x}-0000-4000-8000-000000000000"),
        service,
        database,
        schema,
        table: name,
        service_type: Some("Postgres".to_owned()),
        table_type: None,
        description: None,
        columns,
        tags: Vec::new(),
        owners: Vec::new(),
        deleted: false,
        version: 0.1,
        updated_at_ms: 0,
    }
}

fn table_parts(i: usize) -> (String, String, String, String) {
    (
        format!("svc_{}", i % 3),
        format!("db_{}", i % 20),
        format!("schema_{}", i % 200),
        format!("t_{i}"),
    )
}

/// The asset key of asset `i` of `job`: the 3-part key of table `job * ASSETS_PER_JOB + i`.
pub fn asset_key(job: usize, i: usize) -> Vec<String> {
    let (_, database, schema, name) = table_parts(job * ASSETS_PER_JOB + i);
    vec![database, schema, name]
}

fn job_name(job: usize) -> String {
    format!("asset_job_{job}")
}

fn asset(job: usize, i: usize) -> AssetDefinition {
    AssetDefinition {
        tenant: TENANT.into(),
        source: SourcePosition {
            kind: SourceKind::Graphql,
            storage_id: None,
            shard: None,
            cursor: None,
        },
        asset_key: asset_key(job, i),
        code_location: Some("analytics".into()),
        repository: Some("__repository__".into()),
        group: Some("default".into()),
        description: Some("A table of the warehouse.".into()),
        job_names: vec![job_name(job)],
        deps: if i == 0 {
            Vec::new()
        } else {
            vec![asset_key(job, i - 1)]
        },
        owners: vec!["team:data".into(), "ana@example.com".into()],
        tags: BTreeMap::from([("domain".to_owned(), "sales".to_owned())]),
        kinds: vec!["postgres".into()],
        metadata: Vec::new(),
        is_materializable: true,
        partitions: None,
        checks: vec!["not_null".into()],
        updated_ms: 0,
    }
}

/// An event of `run` of `job` as the PostgreSQL event-log tail publishes it: tenant [`TENANT`],
/// storage id and timestamp `at`, the raw type `raw`; no step, asset, metadata or tags.
pub fn event(event_type: T, raw: &str, run: &str, job: &str, at: i64) -> DagsterEvent {
    DagsterEvent {
        tenant: TENANT.into(),
        source: SourcePosition {
            kind: SourceKind::PostgresEventLog,
            storage_id: Some(at),
            shard: None,
            cursor: None,
        },
        event_type,
        raw_event_type: raw.to_owned(),
        run_id: Some(run.to_owned()),
        job_name: Some(job.to_owned()),
        step_key: None,
        asset_key: None,
        partition: None,
        timestamp_ms: at,
        message: None,
        description: None,
        metadata: Vec::new(),
        tags: BTreeMap::new(),
        check: None,
        error: None,
        raw_json: None,
    }
}

/// A materialization's metadata as the sample jobs record it: a 12-column schema
/// (`column_0`..`column_11`), column lineage from `upstream`'s same-named columns and a row count.
pub fn materialization_metadata(upstream: Vec<String>) -> Vec<MetadataEntry> {
    let columns = (0..12)
        .map(|c| TableColumn {
            name: format!("column_{c}"),
            data_type: "bigint".into(),
            description: None,
            nullable: Some(true),
            unique: None,
            tags: BTreeMap::new(),
        })
        .collect();
    let lineage = ColumnLineage {
        columns: (0..12)
            .map(|c| ColumnDeps {
                column: format!("column_{c}"),
                deps: vec![ColumnRef {
                    asset_key: upstream.clone(),
                    column: format!("column_{c}"),
                }],
            })
            .collect(),
    };
    vec![
        MetadataEntry {
            table_schema: Some(TableSchema { columns }),
            ..MetadataEntry::empty("dagster/column_schema", MetadataKind::TableSchema)
        },
        MetadataEntry {
            column_lineage: Some(lineage),
            ..MetadataEntry::empty("dagster/column_lineage", MetadataKind::ColumnLineage)
        },
        MetadataEntry::int("dagster/row_count", 1_000_000),
    ]
}

fn run_events(run: usize, at: &mut i64, events: &mut Vec<DagsterEvent>) {
    let job = run % JOBS;
    let name = job_name(job);
    let run_id = format!("00000000-0000-4000-8000-{run:012}");
    let fails = run % 10 == 9;
    let tags = BTreeMap::from([
        ("dagster/code_location".to_owned(), "analytics".to_owned()),
        (
            ".dagster/repository".to_owned(),
            "__repository__@analytics".to_owned(),
        ),
        ("dagster/partition".to_owned(), "2026-11-20".to_owned()),
        ("team".to_owned(), "data".to_owned()),
    ]);
    let mut next = |event_type: T, raw: &str| {
        *at += 3;
        event(event_type, raw, &run_id, &name, *at)
    };
    for (event_type, raw) in [
        (T::RunEnqueued, "PIPELINE_ENQUEUED"),
        (T::RunStarting, "PIPELINE_STARTING"),
        (T::RunStart, "PIPELINE_START"),
    ] {
        let mut e = next(event_type, raw);
        e.tags = tags.clone();
        events.push(e);
    }
    events.push(next(T::Other, "ENGINE_EVENT"));
    for i in 0..ASSETS_PER_JOB {
        let key = asset_key(job, i);
        let step = key.join("__");
        let with_step = |mut e: DagsterEvent| {
            e.step_key = Some(step.clone());
            e
        };
        let mut planned = next(
            T::AssetMaterializationPlanned,
            "ASSET_MATERIALIZATION_PLANNED",
        );
        planned.asset_key = Some(key.clone());
        events.push(with_step(planned));
        events.push(with_step(next(T::StepStart, "STEP_START")));
        for raw in [
            "RESOURCE_INIT_STARTED",
            "RESOURCE_INIT_SUCCESS",
            "LOGS_CAPTURED",
        ] {
            events.push(with_step(next(T::Other, raw)));
        }
        if fails && i == ASSETS_PER_JOB / 2 {
            let mut failure = with_step(next(T::StepFailure, "STEP_FAILURE"));
            failure.error = Some(ErrorInfo {
                message: "dagster._core.errors.DagsterExecutionStepExecutionError: Error \
                          occurred while executing op\n"
                    .into(),
                class_name: Some("DagsterExecutionStepExecutionError".into()),
                stack: vec!["  File \"dagster/_core/execution/plan/utils.py\", line 54\n".into()],
                cause: Some(Box::new(ErrorInfo {
                    message: "ValueError: the upstream feed is empty\n".into(),
                    class_name: Some("ValueError".into()),
                    stack: vec!["  File \"assets.py\", line 12, in feed\n".into()],
                    cause: None,
                })),
            });
            events.push(failure);
            break;
        }
        events.push(with_step(next(T::StepOutput, "STEP_OUTPUT")));
        let mut materialized = with_step(next(T::AssetMaterialization, "ASSET_MATERIALIZATION"));
        materialized.asset_key = Some(key.clone());
        materialized.metadata = materialization_metadata(asset_key(job, i.saturating_sub(1)));
        events.push(materialized);
        let check = |passed| AssetCheck {
            name: "not_null".into(),
            passed,
            severity: CheckSeverity::Error,
            target_storage_id: None,
        };
        let mut planned_check = with_step(next(
            T::AssetCheckEvaluationPlanned,
            "ASSET_CHECK_EVALUATION_PLANNED",
        ));
        planned_check.asset_key = Some(key.clone());
        planned_check.check = Some(check(None));
        events.push(planned_check);
        let mut evaluated = with_step(next(T::AssetCheckEvaluation, "ASSET_CHECK_EVALUATION"));
        evaluated.asset_key = Some(key.clone());
        evaluated.check = Some(check(Some(i % 4 != 3)));
        events.push(evaluated);
        events.push(with_step(next(T::StepSuccess, "STEP_SUCCESS")));
    }
    if fails {
        let mut failure = next(T::RunFailure, "PIPELINE_FAILURE");
        failure.tags = tags.clone();
        failure.message = Some("Execution of run for \"job\" failed. Steps failed: 1.".into());
        events.push(failure);
    } else {
        let mut success = next(T::RunSuccess, "PIPELINE_SUCCESS");
        success.tags = tags.clone();
        events.push(success);
    }
    events.push(next(T::Other, "ENGINE_EVENT"));
    let mut observation = next(T::AssetObservation, "ASSET_OBSERVATION");
    observation.run_id = None;
    observation.job_name = None;
    observation.asset_key = Some(asset_key(job, run % ASSETS_PER_JOB));
    observation.metadata = vec![MetadataEntry::int("dagster/row_count", 42)];
    events.push(observation);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_has_every_kind_and_resolvable_keys() {
        let w = workload(20, 1_000);
        assert_eq!(w.tables.len(), 1_000);
        assert_eq!(w.assets.len(), JOBS * ASSETS_PER_JOB);
        let count = |t: T| w.events.iter().filter(|e| e.event_type == t).count();
        assert_eq!(count(T::RunStart), 20);
        assert_eq!(count(T::RunFailure), 2);
        assert_eq!(count(T::AssetObservation), 20);
        assert!(count(T::AssetMaterialization) > 100);
        assert!(count(T::Other) > w.events.len() / 4);
        // every asset key names a table of the index (3-part key = database.schema.table)
        for asset in &w.assets {
            let name = asset.asset_key.join(".");
            assert!(w.tables.iter().any(|t| t.fqn.ends_with(&name)), "{name}");
        }
    }
}
