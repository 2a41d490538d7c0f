//! Records/s of the output builders on a realistic event mix: per Dagster run of an asset job,
//! the run's lifecycle, a step per asset with its planned event, materialization (column schema,
//! column lineage, row count) and step end, and a check evaluation; plus runless observations.
//! Each Dagster event is turned into its OpenLineage events (serialized to JSON, keyed) and its
//! OpenMetadata operations (run status, lineage). `cargo bench -p lineage-processors --bench output`.

#![allow(missing_docs)] // criterion_group! generates an undocumented public function

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lineage_processors::output::openlineage::events_for;
use lineage_processors::output::openmetadata::{RunStatus, lineage_for_materialization};
use lineage_processors::output::{Lookup, OutputSettings, ResolvedTable, RunContext};
use lineage_processors::workload::{self, TENANT, materialization_metadata};
use lineage_schemas::records::{
    AssetCheck, AssetDefinition, CheckSeverity, DagsterEvent, DagsterEventType as T, MetadataEntry,
    Origin, SourceKind, SourcePosition,
};

const ASSETS_PER_RUN: usize = 8;
const RUNS: usize = 50;

struct State {
    assets: BTreeMap<Vec<String>, AssetDefinition>,
    tables: BTreeMap<Vec<String>, ResolvedTable>,
    runs: BTreeMap<String, RunContext>,
}

impl Lookup for State {
    fn asset(&self, _: &str, key: &[String]) -> Option<&AssetDefinition> {
        self.assets.get(key)
    }
    fn table(&self, _: &str, key: &[String]) -> Option<&ResolvedTable> {
        self.tables.get(key)
    }
    fn run(&self, _: &str, run_id: &str) -> Option<&RunContext> {
        self.runs.get(run_id)
    }
}

fn asset_key(i: usize) -> Vec<String> {
    vec!["warehouse".into(), "analytics".into(), format!("table_{i}")]
}

fn event(event_type: T, run: &str, step: Option<String>, at: i64) -> DagsterEvent {
    let raw = format!("{event_type:?}");
    DagsterEvent {
        step_key: step,
        ..workload::event(event_type, &raw, run, "nightly_job", at)
    }
}

fn workload() -> (State, Vec<DagsterEvent>) {
    let mut state = State {
        assets: BTreeMap::new(),
        tables: BTreeMap::new(),
        runs: BTreeMap::new(),
    };
    for i in 0..ASSETS_PER_RUN {
        let key = asset_key(i);
        state.tables.insert(
            key.clone(),
            ResolvedTable {
                namespace: "pg".into(),
                name: format!("warehouse.analytics.table_{i}"),
                fqn: format!("pg.warehouse.analytics.table_{i}"),
            },
        );
        state.assets.insert(
            key.clone(),
            AssetDefinition {
                tenant: TENANT.into(),
                source: SourcePosition {
                    kind: SourceKind::Graphql,
                    storage_id: None,
                    shard: None,
                    cursor: None,
                },
                asset_key: key,
                code_location: Some("analytics".into()),
                repository: None,
                group: None,
                description: Some("A table.".into()),
                job_names: vec!["nightly_job".into()],
                deps: if i == 0 {
                    Vec::new()
                } else {
                    vec![asset_key(i - 1)]
                },
                owners: vec!["team:data".into()],
                tags: BTreeMap::from([("domain".to_owned(), "sales".to_owned())]),
                kinds: vec!["postgres".into()],
                metadata: Vec::new(),
                is_materializable: true,
                partitions: None,
                checks: vec!["not_null".into()],
                updated_ms: 0,
            },
        );
    }
    let mut events = Vec::new();
    let mut at = 1_795_241_820_000;
    for r in 0..RUNS {
        let run = format!("00000000-0000-4000-8000-{r:012}");
        let mut tags = BTreeMap::from([
            ("dagster/code_location".to_owned(), "analytics".to_owned()),
            ("dagster/partition".to_owned(), "2026-11-20".to_owned()),
            ("team".to_owned(), "data".to_owned()),
        ]);
        tags.insert(
            ".dagster/repository".into(),
            "__repository__@analytics".into(),
        );
        state.runs.insert(
            run.clone(),
            RunContext {
                job_name: "nightly_job".into(),
                tags: tags.clone(),
                started_ms: at,
            },
        );
        let mut start = event(T::RunStart, &run, None, at);
        start.tags = tags;
        events.push(start);
        for i in 0..ASSETS_PER_RUN {
            let step = format!("warehouse__analytics__table_{i}");
            at += 10;
            let mut planned = event(T::AssetMaterializationPlanned, &run, Some(step.clone()), at);
            planned.asset_key = Some(asset_key(i));
            events.push(planned);
            events.push(event(T::StepStart, &run, Some(step.clone()), at + 1));
            let mut mat = event(T::AssetMaterialization, &run, Some(step.clone()), at + 2);
            mat.asset_key = Some(asset_key(i));
            mat.metadata = materialization_metadata(asset_key(i.saturating_sub(1)));
            events.push(mat);
            events.push(event(T::StepSuccess, &run, Some(step.clone()), at + 3));
            let mut check = event(
                T::AssetCheckEvaluation,
                &run,
                Some(format!("{step}_not_null")),
                at + 4,
            );
            check.asset_key = Some(asset_key(i));
            check.check = Some(AssetCheck {
                name: "not_null".into(),
                passed: Some(true),
                severity: CheckSeverity::Error,
                target_storage_id: None,
            });
            events.push(check);
        }
        events.push(event(T::RunSuccess, &run, None, at + 100));
        let mut observation = event(T::AssetObservation, "", None, at + 200);
        observation.run_id = None;
        observation.asset_key = Some(asset_key(r % ASSETS_PER_RUN));
        observation.metadata = vec![MetadataEntry::int("dagster/row_count", 42)];
        events.push(observation);
        at += 1_000;
    }
    (state, events)
}

fn bench(c: &mut Criterion) {
    let (state, events) = workload();
    let settings = OutputSettings::default();
    let origin = Origin {
        topic: "dagster.events".into(),
        partition: 0,
        offset: 0,
    };
    let mut group = c.benchmark_group("output");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("openlineage_json", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            for event in &events {
                for out in events_for(event, &state, &settings) {
                    bytes += out.kafka_key().len() + out.to_json().len();
                }
            }
            black_box(bytes)
        });
    });
    group.bench_function("openlineage_and_openmetadata", |b| {
        b.iter(|| {
            let mut produced = 0usize;
            let mut statuses: BTreeMap<&str, RunStatus> = BTreeMap::new();
            for event in &events {
                for out in events_for(event, &state, &settings) {
                    produced += out.kafka_key().len() + out.to_json().len();
                }
                if let Some(run) = event.run_id.as_deref() {
                    let status = statuses.entry(run).or_insert_with(|| {
                        RunStatus::new(
                            TENANT,
                            run,
                            "nightly_job",
                            Some("analytics"),
                            event.timestamp_ms,
                        )
                    });
                    if status.apply(event) {
                        black_box(status.operation(&origin, &settings));
                        produced += 1;
                    }
                }
                produced += lineage_for_materialization(event, &state, &origin)
                    .operations
                    .len();
            }
            black_box(produced)
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
