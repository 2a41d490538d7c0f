//! The output builders on real Dagster event shapes (modelled on the testbed's event log: the
//! `transform_job` run, a failing `broken_feed_job`, a partitioned `daily_events_job`, checks,
//! a runless observation): every OpenLineage event validates against the OpenLineage 2-0-2
//! spec and every OpenMetadata body against OpenMetadata's schemas.

mod spec;

use std::collections::{BTreeMap, HashSet};

use lineage_processors::output::namespace::NamespaceTemplate;
use lineage_processors::output::openlineage::{
    Event, definition_events, events_for, unmaterialized_asset,
};
use lineage_processors::output::openmetadata::{
    JobSpec, RunStatus, lineage_for_materialization, pipeline_operations, pipeline_service,
};
use lineage_processors::output::{Lookup, OutputSettings, ResolvedTable, RunContext};
use lineage_schemas::openmetadata_rest;
use lineage_schemas::records::{
    AssetCheck, AssetDefinition, CheckSeverity, ColumnDeps, ColumnLineage, ColumnRef, DagsterEvent,
    DagsterEventType as T, ErrorInfo, ExecutionStatus, MetadataEntry, MetadataKind,
    OpenMetadataOperation, Operation, Origin, SourceKind, SourcePosition, TableColumn, TableSchema,
};
use serde_json::Value;
use spec::{OpenLineageSpec, OpenMetadataSpec};

const TENANT: &str = "prod";
const RUN: &str = "31ba27d7-9aa5-4c1b-b274-b51eaeb40617";
const FAILED_RUN: &str = "37179a6f-e74a-48bb-b4c6-2eded01759e4";
const DAILY_RUN: &str = "3d8a0b68-8290-485f-ad64-6752a8bf2bb3";
const T0: i64 = 1_795_241_820_175;

fn key(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| (*p).to_owned()).collect()
}

fn orders_clean() -> Vec<String> {
    key(&["acme_project", "warehouse_db", "staging", "orders_clean"])
}

fn raw_orders() -> Vec<String> {
    key(&["warehouse_db", "raw", "orders"])
}

fn event(
    event_type: T,
    run_id: Option<&str>,
    job: &str,
    step: Option<&str>,
    at: i64,
) -> DagsterEvent {
    DagsterEvent {
        tenant: TENANT.to_owned(),
        source: SourcePosition {
            kind: SourceKind::PostgresEventLog,
            storage_id: Some(at - T0 + 100),
            shard: None,
            cursor: None,
        },
        event_type,
        raw_event_type: format!("{event_type:?}"),
        run_id: run_id.map(str::to_owned),
        job_name: (!job.is_empty()).then(|| job.to_owned()),
        step_key: step.map(str::to_owned),
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

fn run_tags(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::from([
        (
            ".dagster/repository".to_owned(),
            "__repository__@lineage_sample".to_owned(),
        ),
        (
            "dagster/code_location".to_owned(),
            "lineage_sample".to_owned(),
        ),
        (
            ".dagster/grpc_info".to_owned(),
            "{\"host\": \"localhost\"}".to_owned(),
        ),
    ]);
    for (k, v) in extra {
        tags.insert((*k).to_owned(), (*v).to_owned());
    }
    tags
}

fn column_schema() -> MetadataEntry {
    let column = |name: &str, data_type: &str| TableColumn {
        name: name.to_owned(),
        data_type: data_type.to_owned(),
        description: None,
        nullable: Some(true),
        unique: Some(false),
        tags: BTreeMap::new(),
    };
    MetadataEntry {
        table_schema: Some(TableSchema {
            columns: vec![
                column("order_id", "bigint"),
                column("customer_id", "bigint"),
                column("amount_usd", "numeric(12,2)"),
                column("order_date", "date"),
            ],
        }),
        ..MetadataEntry::empty("dagster/column_schema", MetadataKind::TableSchema)
    }
}

fn column_lineage() -> MetadataEntry {
    let dep = |column: &str, upstream: &str| ColumnDeps {
        column: column.to_owned(),
        deps: vec![ColumnRef {
            asset_key: raw_orders(),
            column: upstream.to_owned(),
        }],
    };
    MetadataEntry {
        column_lineage: Some(ColumnLineage {
            columns: vec![
                dep("amount_usd", "amount"),
                dep("customer_id", "customer_id"),
                dep("order_date", "ordered_at"),
                dep("order_id", "order_id"),
            ],
        }),
        ..MetadataEntry::empty("dagster/column_lineage", MetadataKind::ColumnLineage)
    }
}

fn user_error() -> ErrorInfo {
    ErrorInfo {
        message: "dagster._core.errors.DagsterExecutionStepExecutionError: Error occurred while executing op \"warehouse_db__raw__vendor_orders\":\n".to_owned(),
        class_name: Some("DagsterExecutionStepExecutionError".to_owned()),
        stack: vec!["  File \"execute_plan.py\", line 243, in dagster_event_sequence_for_step\n".to_owned()],
        cause: Some(Box::new(ErrorInfo {
            message: "RuntimeError: vendor API returned HTTP 503 (simulated permanent failure)\n".to_owned(),
            class_name: Some("RuntimeError".to_owned()),
            stack: vec!["  File \"definitions.py\", line 354, in vendor_orders\n    raise RuntimeError(\"vendor API returned HTTP 503\")\n".to_owned()],
            cause: None,
        })),
    }
}

/// The `transform_job` run of the testbed, in log order (planned events, run, steps,
/// materializations, checks), plus a failing run, a partitioned run and a runless observation.
fn event_log() -> Vec<DagsterEvent> {
    let step = "acme_project__warehouse_db__staging__orders_clean";
    let check_step = "acme_project__warehouse_db__staging__orders_clean_no_null_customer_id";
    let mut log = Vec::new();
    let mut planned = event(
        T::AssetMaterializationPlanned,
        Some(RUN),
        "transform_job",
        Some(step),
        T0,
    );
    planned.asset_key = Some(orders_clean());
    log.push(planned);
    let mut check_planned = event(
        T::AssetCheckEvaluationPlanned,
        Some(RUN),
        "transform_job",
        Some(check_step),
        T0 + 1,
    );
    check_planned.asset_key = Some(orders_clean());
    check_planned.check = Some(AssetCheck {
        name: "no_null_customer_id".into(),
        passed: None,
        severity: CheckSeverity::Error,
        target_storage_id: None,
    });
    log.push(check_planned);
    let mut start = event(T::RunStart, Some(RUN), "transform_job", None, T0 + 5);
    start.tags = run_tags(&[("team", "analytics")]);
    log.push(start);
    log.push(event(
        T::StepStart,
        Some(RUN),
        "transform_job",
        Some(step),
        T0 + 10,
    ));
    let mut mat = event(
        T::AssetMaterialization,
        Some(RUN),
        "transform_job",
        Some(step),
        T0 + 20,
    );
    mat.asset_key = Some(orders_clean());
    mat.metadata = vec![
        column_schema(),
        column_lineage(),
        MetadataEntry::int("dagster/row_count", 1234),
    ];
    mat.tags = BTreeMap::from([
        ("dagster/code_version".to_owned(), RUN.to_owned()),
        (
            "dagster/input_data_version/warehouse_db/raw/orders".to_owned(),
            "d8c3".to_owned(),
        ),
        (
            "dagster/input_event_pointer/warehouse_db/raw/orders".to_owned(),
            "58".to_owned(),
        ),
    ]);
    log.push(mat);
    log.push(event(
        T::StepSuccess,
        Some(RUN),
        "transform_job",
        Some(step),
        T0 + 30,
    ));
    log.push(event(
        T::StepStart,
        Some(RUN),
        "transform_job",
        Some(check_step),
        T0 + 40,
    ));
    let mut check = event(
        T::AssetCheckEvaluation,
        Some(RUN),
        "transform_job",
        Some(check_step),
        T0 + 50,
    );
    check.asset_key = Some(orders_clean());
    check.metadata = vec![MetadataEntry::text(
        "column",
        MetadataKind::Text,
        "customer_id",
    )];
    check.check = Some(AssetCheck {
        name: "no_null_customer_id".into(),
        passed: Some(false),
        severity: CheckSeverity::Warn,
        target_storage_id: Some(163),
    });
    log.push(check);
    log.push(event(
        T::StepSuccess,
        Some(RUN),
        "transform_job",
        Some(check_step),
        T0 + 60,
    ));
    log.push(event(
        T::StepSkipped,
        Some(RUN),
        "transform_job",
        Some("kpi_feed"),
        T0 + 65,
    ));
    log.push(event(
        T::RunSuccess,
        Some(RUN),
        "transform_job",
        None,
        T0 + 70,
    ));

    let vendor = "warehouse_db__raw__vendor_orders";
    let mut failed_start = event(
        T::RunStart,
        Some(FAILED_RUN),
        "broken_feed_job",
        None,
        T0 + 1000,
    );
    failed_start.tags = run_tags(&[]);
    log.push(failed_start);
    log.push(event(
        T::StepStart,
        Some(FAILED_RUN),
        "broken_feed_job",
        Some(vendor),
        T0 + 1010,
    ));
    let mut retry = event(
        T::StepUpForRetry,
        Some(FAILED_RUN),
        "broken_feed_job",
        Some(vendor),
        T0 + 1015,
    );
    retry.error = Some(user_error());
    log.push(retry);
    log.push(event(
        T::StepRestarted,
        Some(FAILED_RUN),
        "broken_feed_job",
        Some(vendor),
        T0 + 1016,
    ));
    let mut step_failed = event(
        T::StepFailure,
        Some(FAILED_RUN),
        "broken_feed_job",
        Some(vendor),
        T0 + 1020,
    );
    step_failed.error = Some(user_error());
    log.push(step_failed);
    let mut run_failed = event(
        T::RunFailure,
        Some(FAILED_RUN),
        "broken_feed_job",
        None,
        T0 + 1030,
    );
    run_failed.error = Some(user_error());
    run_failed.message = Some("Execution of run for \"broken_feed_job\" failed. Steps failed: ['warehouse_db__raw__vendor_orders'].".into());
    log.push(run_failed);

    let mut daily_start = event(
        T::RunStart,
        Some(DAILY_RUN),
        "daily_events_job",
        None,
        T0 + 2000,
    );
    daily_start.tags = run_tags(&[("dagster/partition", "2024-01-01")]);
    log.push(daily_start);
    let mut daily_mat = event(
        T::AssetMaterialization,
        Some(DAILY_RUN),
        "daily_events_job",
        Some("daily_events"),
        T0 + 2010,
    );
    daily_mat.asset_key = Some(key(&["daily_events"]));
    daily_mat.partition = Some("2024-01-01".into());
    daily_mat.metadata = vec![MetadataEntry::text(
        "dagster/uri",
        MetadataKind::Url,
        "s3://lake/daily_events/2024-01-01",
    )];
    log.push(daily_mat);
    log.push(event(
        T::RunCanceled,
        Some(DAILY_RUN),
        "daily_events_job",
        None,
        T0 + 2020,
    ));

    let mut observed = event(T::AssetObservation, None, "", None, T0 + 3000);
    observed.asset_key = Some(raw_orders());
    observed.metadata = vec![column_schema(), MetadataEntry::int("dagster/row_count", 99)];
    log.push(observed);
    log
}

#[derive(Default)]
struct State {
    assets: BTreeMap<Vec<String>, AssetDefinition>,
    tables: BTreeMap<Vec<String>, ResolvedTable>,
    runs: BTreeMap<String, RunContext>,
}

impl Lookup for State {
    fn asset(&self, tenant: &str, key: &[String]) -> Option<&AssetDefinition> {
        (tenant == TENANT).then(|| self.assets.get(key)).flatten()
    }
    fn table(&self, tenant: &str, key: &[String]) -> Option<&ResolvedTable> {
        (tenant == TENANT).then(|| self.tables.get(key)).flatten()
    }
    fn run(&self, tenant: &str, run_id: &str) -> Option<&RunContext> {
        (tenant == TENANT).then(|| self.runs.get(run_id)).flatten()
    }
}

fn definition(asset_key: Vec<String>, deps: Vec<Vec<String>>, job: &str) -> AssetDefinition {
    AssetDefinition {
        tenant: TENANT.to_owned(),
        source: SourcePosition {
            kind: SourceKind::Graphql,
            storage_id: None,
            shard: None,
            cursor: Some("c1".into()),
        },
        asset_key,
        code_location: Some("lineage_sample".into()),
        repository: Some("__repository__".into()),
        group: Some("default".into()),
        description: Some("Cleaned **orders**.".into()),
        job_names: vec![job.to_owned()],
        deps,
        owners: vec!["data@acme.example".into(), "team:analytics".into()],
        tags: BTreeMap::from([("domain".to_owned(), "sales".to_owned())]),
        kinds: vec!["postgres".into()],
        metadata: Vec::new(),
        is_materializable: true,
        partitions: None,
        checks: vec!["no_null_customer_id".into()],
        updated_ms: T0 - 5000,
    }
}

fn table(fqn: &str) -> ResolvedTable {
    let (service, name) = fqn.split_once('.').expect("service.rest");
    ResolvedTable {
        namespace: service.to_owned(),
        name: name.to_owned(),
        fqn: fqn.to_owned(),
    }
}

fn state() -> State {
    let mut state = State::default();
    state.assets.insert(
        orders_clean(),
        definition(orders_clean(), vec![raw_orders()], "transform_job"),
    );
    let mut raw = definition(raw_orders(), Vec::new(), "ingest_raw_job");
    raw.checks.clear();
    state.assets.insert(raw_orders(), raw);
    state.tables.insert(
        orders_clean(),
        table("pg.warehouse_db.staging.orders_clean"),
    );
    state
        .tables
        .insert(raw_orders(), table("pg.warehouse_db.raw.orders"));
    state
}

/// Runs the log as the processor must: a run's context (job, run tags, anchor = time of the
/// run's first event) is known before its first event is built. In Dagster's log the planned
/// events of a run come BEFORE its `RUN_ENQUEUED`, so the run tags must reach the state first
/// (here: a first pass over the log).
fn run_log(state: &mut State, settings: &OutputSettings) -> Vec<Event> {
    let log = event_log();
    for ev in &log {
        let Some(run_id) = &ev.run_id else { continue };
        let context = state
            .runs
            .entry(run_id.clone())
            .or_insert_with(|| RunContext {
                job_name: ev.job_name.clone().unwrap_or_default(),
                tags: BTreeMap::new(),
                started_ms: ev.timestamp_ms,
            });
        if let Some(from_event) = RunContext::from_run_event(ev)
            && !from_event.tags.is_empty()
        {
            context.tags = from_event.tags;
        }
    }
    log.iter()
        .flat_map(|ev| events_for(ev, &*state, settings))
        .collect()
}

fn json(event: &Event) -> Value {
    serde_json::from_slice(&event.to_json()).expect("valid JSON")
}

fn origin(offset: i64) -> Origin {
    Origin {
        topic: "dagster.events".into(),
        partition: 0,
        offset,
    }
}

#[test]
fn every_openlineage_event_validates_against_the_spec() {
    let spec = OpenLineageSpec::load();
    // the facets we emit are checked against their own schema files, not only the base
    for (position, key) in [
        ("RunFacet", "parent"),
        ("RunFacet", "nominalTime"),
        ("RunFacet", "errorMessage"),
        ("RunFacet", "processing_engine"),
        ("RunFacet", "tags"),
        ("JobFacet", "jobType"),
        ("JobFacet", "ownership"),
        ("JobFacet", "tags"),
        ("JobFacet", "documentation"),
        ("DatasetFacet", "schema"),
        ("DatasetFacet", "columnLineage"),
        ("DatasetFacet", "dataSource"),
        ("DatasetFacet", "symlinks"),
        ("DatasetFacet", "ownership"),
        ("DatasetFacet", "documentation"),
        ("DatasetFacet", "tags"),
        ("InputDatasetFacet", "dataQualityAssertions"),
        ("OutputDatasetFacet", "outputStatistics"),
    ] {
        assert!(
            spec.facet_schema(position, key).is_some(),
            "no schema for {position} {key}"
        );
    }
    let mut state = state();
    let settings = OutputSettings::default();
    let mut events = run_log(&mut state, &settings);
    let run_end = event_log()
        .into_iter()
        .find(|e| e.event_type == T::RunFailure)
        .expect("failure");
    events.push(unmaterialized_asset(
        &run_end,
        &key(&["vendor_orders"]),
        None,
        &state,
        &settings,
    ));
    events.extend(definition_events(
        &state.assets[&orders_clean()],
        &state,
        &settings,
    ));
    assert!(events.len() >= 20, "{} events", events.len());
    let mut seen_facets = HashSet::new();
    for event in &events {
        let value = json(event);
        let problems = spec.problems(&value);
        assert!(problems.is_empty(), "{problems:#?}\n{value:#}");
        collect_facet_keys(&value, &mut seen_facets);
    }
    for expected in [
        "parent",
        "nominalTime",
        "errorMessage",
        "processing_engine",
        "tags",
        "jobType",
        "ownership",
        "documentation",
        "schema",
        "columnLineage",
        "dataSource",
        "symlinks",
        "dataQualityAssertions",
        "outputStatistics",
    ] {
        assert!(
            seen_facets.contains(expected),
            "no event carries {expected}"
        );
    }
}

fn collect_facet_keys(value: &Value, out: &mut HashSet<String>) {
    if let Value::Object(map) = value {
        for (k, v) in map {
            if matches!(k.as_str(), "facets" | "inputFacets" | "outputFacets")
                && let Value::Object(facets) = v
            {
                for (fk, fv) in facets {
                    out.insert(fk.clone());
                    assert!(
                        fv.get("_producer").is_some() && fv.get("_schemaURL").is_some(),
                        "{fk}"
                    );
                }
            }
            collect_facet_keys(v, out);
        }
    } else if let Value::Array(items) = value {
        items.iter().for_each(|v| collect_facet_keys(v, out));
    }
}

#[test]
fn facet_schema_urls_match_the_spec_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/openlineage-spec/facets");
    for (file, url) in lineage_processors::output::openlineage::facets::FACET_SCHEMA_URLS {
        let text = std::fs::read_to_string(dir.join(format!("{file}.json"))).expect("facet file");
        let doc: Value = serde_json::from_str(&text).expect("json");
        let id = doc["$id"].as_str().expect("$id");
        assert_eq!(*url, format!("{id}#/$defs/{file}"));
    }
}

fn run_events(events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| matches!(e, Event::Run(_)))
        .map(json)
        .collect()
}

#[test]
fn run_ids_are_deterministic_distinct_per_job_and_shared_by_start_and_end() {
    let settings = OutputSettings::default();
    let first = run_log(&mut state(), &settings);
    let second = run_log(&mut state(), &settings);
    let bytes = |events: &[Event]| events.iter().map(Event::to_json).collect::<Vec<_>>();
    assert_eq!(
        bytes(&first),
        bytes(&second),
        "reprocessing gives identical records"
    );

    let mut ids_by_job: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for value in run_events(&first) {
        let run_id = value["run"]["runId"].as_str().expect("runId").to_owned();
        let uuid = uuid::Uuid::parse_str(&run_id).expect("uuid");
        assert_eq!(uuid.get_version_num(), 7, "{run_id}");
        ids_by_job
            .entry(value["job"]["name"].as_str().expect("name").to_owned())
            .or_default()
            .insert(run_id);
    }
    // START and COMPLETE of the Dagster run share one id; steps, assets and checks have their own
    assert_eq!(ids_by_job["transform_job"].len(), 1);
    assert_eq!(
        ids_by_job["transform_job.acme_project__warehouse_db__staging__orders_clean"].len(),
        1
    );
    assert_eq!(
        ids_by_job["acme_project/warehouse_db/staging/orders_clean"].len(),
        1,
        "planned START and COMPLETE share the id"
    );
    let all: Vec<&String> = ids_by_job.values().flatten().collect();
    let distinct: HashSet<&&String> = all.iter().collect();
    assert_eq!(
        all.len(),
        distinct.len(),
        "no id is reused across jobs: {ids_by_job:#?}"
    );
    // the Dagster run id itself is never the OpenLineage run id (dagster-openlineage reuses it)
    assert!(
        all.iter()
            .all(|id| id.as_str() != RUN && id.as_str() != FAILED_RUN)
    );
}

#[test]
fn children_point_at_their_parent_and_root() {
    let events = run_log(&mut state(), &OutputSettings::default());
    let values = run_events(&events);
    let run_id = values
        .iter()
        .find(|v| v["job"]["name"] == "transform_job")
        .map(|v| v["run"]["runId"].clone())
        .expect("run event");
    let step = values
        .iter()
        .find(|v| {
            v["job"]["name"] == "transform_job.acme_project__warehouse_db__staging__orders_clean"
        })
        .expect("step event");
    assert_eq!(step["run"]["facets"]["parent"]["run"]["runId"], run_id);
    assert_eq!(
        step["run"]["facets"]["parent"]["job"]["name"],
        "transform_job"
    );
    let asset = values
        .iter()
        .find(|v| {
            v["eventType"] == "COMPLETE"
                && v["job"]["name"] == "acme_project/warehouse_db/staging/orders_clean"
        })
        .expect("materialization");
    assert_eq!(
        asset["run"]["facets"]["parent"]["run"]["runId"],
        step["run"]["runId"]
    );
    assert_eq!(
        asset["run"]["facets"]["parent"]["root"]["run"]["runId"],
        run_id
    );
    assert_eq!(asset["inputs"][0]["name"], "warehouse_db/raw/orders");
    assert_eq!(
        asset["inputs"][0]["facets"]["symlinks"]["identifiers"][0]["name"],
        "pg.warehouse_db.raw.orders"
    );
    let output = &asset["outputs"][0];
    assert_eq!(
        output["facets"]["symlinks"]["identifiers"][0]["name"],
        "pg.warehouse_db.staging.orders_clean"
    );
    assert_eq!(output["outputFacets"]["outputStatistics"]["rowCount"], 1234);
    assert_eq!(
        output["facets"]["schema"]["fields"][2]["type"],
        "numeric(12,2)"
    );
    assert_eq!(
        output["facets"]["columnLineage"]["fields"]["order_date"]["inputFields"][0]["field"],
        "ordered_at"
    );
    let check = values
        .iter()
        .find(|v| {
            v["eventType"] == "COMPLETE"
                && v["job"]["name"] == "acme_project/warehouse_db/staging/orders_clean__checks"
        })
        .expect("check");
    let assertion = &check["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"][0];
    assert_eq!(assertion["assertion"], "no_null_customer_id");
    assert_eq!(assertion["success"], false);
    assert_eq!(assertion["column"], "customer_id");
    assert_eq!(assertion["severity"], "warn");
}

#[test]
fn kafka_keys_follow_the_official_transport() {
    let events = run_log(&mut state(), &OutputSettings::default());
    for event in &events {
        let key = event.kafka_key();
        match json(event) {
            v if v["schemaURL"]
                .as_str()
                .is_some_and(|u| u.ends_with("RunEvent")) =>
            {
                let job = v["job"]["name"].as_str().expect("name");
                let root = if job.starts_with("transform_job") || job.starts_with("acme_project") {
                    "transform_job"
                } else if job.starts_with("broken_feed_job") {
                    "broken_feed_job"
                } else {
                    "daily_events_job"
                };
                assert_eq!(key, format!("run:dagster/{root}"), "{job}");
            }
            v => assert_eq!(
                key,
                format!(
                    "dataset:dagster/{}",
                    v["dataset"]["name"].as_str().expect("name")
                )
            ),
        }
    }
    let definition = definition_events(
        &state().assets[&orders_clean()],
        &state(),
        &OutputSettings::default(),
    );
    assert_eq!(
        definition[0].kafka_key(),
        "job:dagster/acme_project/warehouse_db/staging/orders_clean"
    );
    assert_eq!(
        definition[1].kafka_key(),
        "dataset:dagster/acme_project/warehouse_db/staging/orders_clean"
    );
}

#[test]
fn namespace_template_sees_run_tags_on_every_event_of_the_run() {
    let settings = OutputSettings {
        namespace_template: "{namespace}/{tenant}/{tag:team}"
            .parse::<NamespaceTemplate>()
            .expect("template"),
        ..OutputSettings::default()
    };
    let events = run_log(&mut state(), &settings);
    for value in run_events(&events) {
        let job = value["job"]["name"].as_str().expect("name");
        let expected = if job.contains("broken_feed") || job.contains("daily_events") {
            "dagster/prod"
        } else {
            "dagster/prod/analytics"
        };
        assert_eq!(value["job"]["namespace"], expected, "{job}");
        for output in value["outputs"].as_array().expect("outputs") {
            assert_eq!(output["namespace"], expected);
        }
    }
}

#[test]
fn failures_carry_the_users_exception_and_partitions_the_nominal_time() {
    let events = run_log(&mut state(), &OutputSettings::default());
    let values = run_events(&events);
    let failures: Vec<&Value> = values
        .iter()
        .filter(|v| v["eventType"] == "FAIL" || v["eventType"] == "OTHER")
        .collect();
    assert_eq!(failures.len(), 3, "step retry, step failure, run failure");
    for failure in failures {
        let error = &failure["run"]["facets"]["errorMessage"];
        assert_eq!(
            error["message"],
            "RuntimeError: vendor API returned HTTP 503 (simulated permanent failure)"
        );
        assert_eq!(error["programmingLanguage"], "python");
        assert!(
            error["stackTrace"]
                .as_str()
                .expect("stack")
                .contains("definitions.py")
        );
    }
    let abort = values
        .iter()
        .find(|v| v["eventType"] == "ABORT")
        .expect("canceled run");
    assert_eq!(
        abort["run"]["facets"]["nominalTime"]["nominalStartTime"],
        "2024-01-01T00:00:00.000Z"
    );
    assert_eq!(
        abort["run"]["facets"]["nominalTime"]["nominalEndTime"],
        "2024-01-02T00:00:00.000Z"
    );
    let daily = values
        .iter()
        .find(|v| v["job"]["name"] == "daily_events")
        .expect("daily");
    assert_eq!(
        daily["outputs"][0]["facets"]["dataSource"]["uri"],
        "s3://lake/daily_events/2024-01-01"
    );
    assert_eq!(
        daily["run"]["facets"]["nominalTime"]["nominalStartTime"],
        "2024-01-01T00:00:00.000Z"
    );
}

fn job_spec_ops(state: &State) -> Vec<OpenMetadataOperation> {
    let assets: Vec<&AssetDefinition> = state.assets.values().collect();
    let run = state.runs.get(RUN);
    pipeline_operations(
        &JobSpec {
            tenant: TENANT,
            job_name: "transform_job",
            code_location: Some("lineage_sample"),
            run,
            assets: &assets,
            steps: &["some_op".to_owned()],
        },
        &origin(1),
        &OutputSettings::default(),
    )
}

#[test]
fn pipeline_tasks_point_downstream_and_the_name_is_stable() {
    let mut state = state();
    run_log(&mut state, &OutputSettings::default());
    let ops = job_spec_ops(&state);
    let Some(Operation::UpsertPipeline(pipeline)) = ops.last().map(|op| &op.operation) else {
        panic!("the pipeline comes last: {ops:#?}");
    };
    assert_eq!(pipeline.name, "transform_job@lineage_sample");
    assert_eq!(pipeline.service, TENANT);
    let task = |name: &str| {
        pipeline
            .tasks
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("task {name}"))
    };
    // raw orders is upstream of orders_clean: the edge sits on the upstream task
    assert_eq!(
        task("warehouse_db__raw__orders").downstream_tasks,
        ["acme_project__warehouse_db__staging__orders_clean"]
    );
    assert_eq!(
        task("acme_project__warehouse_db__staging__orders_clean").downstream_tasks,
        ["acme_project__warehouse_db__staging__orders_clean_no_null_customer_id"]
    );
    assert!(task("some_op").downstream_tasks.is_empty());
    assert_eq!(pipeline.tags, ["DagsterTags.team:analytics"]);
    assert_eq!(pipeline.owners, ["data@acme.example", "team:analytics"]);
    let tag_ops = ops
        .iter()
        .filter(|op| matches!(op.operation, Operation::UpsertTag(_)))
        .count();
    assert_eq!(tag_ops, 3, "domain:sales, kind:postgres, team:analytics");
}

#[test]
fn one_run_level_status_holds_every_task() {
    let mut status = RunStatus::new(TENANT, RUN, "transform_job", Some("lineage_sample"), T0);
    let mut changes = 0;
    for ev in event_log() {
        if status.apply(&ev) {
            changes += 1;
        }
    }
    assert!(status.is_finished());
    assert_eq!(
        changes, 6,
        "2 steps x (start, success), 1 skip, the run end; other runs ignored"
    );
    let op = status.operation(&origin(9), &OutputSettings::default());
    let Operation::AddPipelineStatus(body) = &op.operation else {
        panic!("{op:?}")
    };
    assert_eq!(body.pipeline_fqn, "prod.transform_job@lineage_sample");
    assert_eq!(body.timestamp_ms, T0, "keyed by the run's anchor, in ms");
    assert_eq!(body.status, ExecutionStatus::Successful);
    assert_eq!(body.end_time_ms, Some(T0 + 70));
    let statuses: BTreeMap<&str, ExecutionStatus> = body
        .tasks
        .iter()
        .map(|t| (t.name.as_str(), t.status))
        .collect();
    assert_eq!(statuses.len(), 3);
    assert_eq!(statuses["kpi_feed"], ExecutionStatus::Skipped);
    assert_eq!(
        statuses["acme_project__warehouse_db__staging__orders_clean"],
        ExecutionStatus::Successful
    );
    let main = body
        .tasks
        .iter()
        .find(|t| t.name.ends_with("orders_clean"))
        .expect("task");
    assert_eq!(
        (main.start_time_ms, main.end_time_ms),
        (Some(T0 + 10), Some(T0 + 30))
    );

    let mut failed = RunStatus::new(
        TENANT,
        FAILED_RUN,
        "broken_feed_job",
        Some("lineage_sample"),
        T0 + 1000,
    );
    for ev in event_log() {
        failed.apply(&ev);
    }
    let Operation::AddPipelineStatus(body) = failed
        .operation(&origin(10), &OutputSettings::default())
        .operation
    else {
        panic!()
    };
    assert_eq!(body.status, ExecutionStatus::Failed);
    assert_eq!(body.tasks.len(), 1);
    assert_eq!(body.tasks[0].status, ExecutionStatus::Failed);
    assert_eq!(
        body.tasks[0].start_time_ms,
        Some(T0 + 1010),
        "the first attempt's start"
    );
}

#[test]
fn lineage_edges_carry_the_pipeline_and_column_lineage() {
    let mut state = state();
    run_log(&mut state, &OutputSettings::default());
    let mat = event_log()
        .into_iter()
        .find(|e| e.event_type == T::AssetMaterialization)
        .expect("mat");
    let out = lineage_for_materialization(&mat, &state, &origin(4));
    assert!(out.unresolved.is_empty());
    assert_eq!(out.operations.len(), 1);
    let Operation::AddLineage(edge) = &out.operations[0].operation else {
        panic!()
    };
    assert_eq!(edge.from_table_fqn, "pg.warehouse_db.raw.orders");
    assert_eq!(edge.to_table_fqn, "pg.warehouse_db.staging.orders_clean");
    assert_eq!(
        edge.pipeline_fqn.as_deref(),
        Some("prod.transform_job@lineage_sample")
    );
    let order_date = edge
        .columns
        .iter()
        .find(|c| c.to_column.ends_with(".order_date"))
        .expect("column");
    assert_eq!(
        order_date.from_columns,
        ["pg.warehouse_db.raw.orders.ordered_at"]
    );
    assert_eq!(
        out.operations[0].kafka_key(),
        "pg.warehouse_db.staging.orders_clean"
    );

    // the upstream table not known yet: no edge, the key is reported for late arrival
    state.tables.remove(&raw_orders());
    let out = lineage_for_materialization(&mat, &state, &origin(4));
    assert!(out.operations.is_empty());
    assert_eq!(out.unresolved, [raw_orders()]);
}

#[test]
fn every_openmetadata_body_validates_against_the_schemas() {
    let spec = OpenMetadataSpec::load();
    let mut state = state();
    let settings = OutputSettings {
        dagster_url: Some("http://127.0.0.1:13000".into()),
        ..OutputSettings::default()
    };
    run_log(&mut state, &settings);
    let mut ops = vec![pipeline_service(TENANT, &origin(0), &settings)];
    ops.extend(job_spec_ops(&state));
    let mut status = RunStatus::new(TENANT, RUN, "transform_job", Some("lineage_sample"), T0);
    event_log().iter().for_each(|e| {
        status.apply(e);
    });
    ops.push(status.operation(&origin(2), &settings));
    let mat = event_log()
        .into_iter()
        .find(|e| e.event_type == T::AssetMaterialization)
        .expect("mat");
    ops.extend(lineage_for_materialization(&mat, &state, &origin(3)).operations);
    let mut schemas_seen = HashSet::new();
    for op in &ops {
        let refs = openmetadata_rest::references(&op.operation);
        let request = openmetadata_rest::request(&op.operation, |entity| {
            refs.contains(entity)
                .then(|| lineage_processors::output::ids::run_id(0, &[&entity.name]).to_string())
        })
        .expect("all references resolved");
        let schema = OpenMetadataSpec::schema_for(request.method, &request.path);
        schemas_seen.insert(schema);
        let problems = spec.problems(schema, &request.body);
        assert!(problems.is_empty(), "{problems:#?}\n{:#}", request.body);
    }
    assert_eq!(schemas_seen.len(), 6, "{schemas_seen:?}");
    let status_path = ops
        .iter()
        .find_map(|op| match &op.operation {
            Operation::AddPipelineStatus(_) => Some(
                openmetadata_rest::request(&op.operation, |_| None)
                    .expect("no refs")
                    .path,
            ),
            _ => None,
        })
        .expect("status");
    assert_eq!(
        status_path,
        "/api/v1/pipelines/prod.transform_job@lineage_sample/status"
    );
}
