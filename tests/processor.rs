//! `lineage-bus process` end to end on the real broker and registry: Dagster events, asset
//! definitions and table snapshots in; OpenLineage events and OpenMetadata operations out,
//! read_committed. A table that arrives after the materialization still gets its edge; a
//! processor killed with SIGKILL mid-stream and restarted leaves every output exactly once.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lineage_schemas::catalog::{
    DAGSTER_ASSETS, DAGSTER_EVENTS, LINEAGE_OPENMETADATA, OPENMETADATA_TABLES,
};
use lineage_schemas::records::*;
use lineage_schemas::{AvroRecord, RecordCodec};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

struct Topics {
    events: String,
    assets: String,
    tables: String,
    openlineage: String,
    openmetadata: String,
}

impl Topics {
    async fn create() -> Self {
        let topics = Self {
            events: common::unique_topic("p-events"),
            assets: common::unique_topic("p-assets"),
            tables: common::unique_topic("p-tables"),
            openlineage: common::unique_topic("p-ol"),
            openmetadata: common::unique_topic("p-om"),
        };
        for topic in [&topics.events, &topics.openlineage, &topics.openmetadata] {
            common::create_topic(topic, 3).await;
        }
        for topic in [&topics.assets, &topics.tables] {
            common::create_topic(topic, 2).await;
        }
        topics
    }
}

/// Encodes with the catalog topic's subject (the processor reads any registered id).
async fn codec<T: AvroRecord>(catalog_topic: &str) -> RecordCodec<T> {
    RecordCodec::for_topic(common::registry(), catalog_topic)
        .await
        .unwrap()
}

async fn send(producer: &FutureProducer, topic: &str, key: &str, payload: Option<Vec<u8>>) {
    let mut record = FutureRecord::<str, [u8]>::to(topic).key(key);
    if let Some(payload) = &payload {
        record = record.payload(payload.as_slice());
    }
    producer
        .send(record, Duration::from_secs(10))
        .await
        .unwrap();
}

fn key(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| (*p).to_owned()).collect()
}

fn event(run: &str, kind: DagsterEventType, raw: &str, at: i64) -> DagsterEvent {
    DagsterEvent {
        tenant: "it".into(),
        source: SourcePosition {
            kind: SourceKind::PostgresEventLog,
            storage_id: Some(at),
            shard: None,
            cursor: None,
        },
        event_type: kind,
        raw_event_type: raw.into(),
        run_id: Some(run.into()),
        job_name: Some("transform_job".into()),
        step_key: None,
        asset_key: None,
        partition: None,
        timestamp_ms: 1_763_600_000_000 + at,
        message: None,
        description: None,
        metadata: vec![],
        tags: BTreeMap::from([(
            "dagster/code_location".to_owned(),
            "lineage_sample".to_owned(),
        )]),
        check: None,
        error: None,
        raw_json: None,
    }
}

/// The events of one successful run materializing daily_revenue (deps: raw orders).
fn run_events(run: &str) -> Vec<DagsterEvent> {
    use DagsterEventType as T;
    let revenue = key(&["warehouse_db", "analytics", "daily_revenue"]);
    let step = "warehouse_db__analytics__daily_revenue".to_owned();
    let mut planned = event(
        run,
        T::AssetMaterializationPlanned,
        "ASSET_MATERIALIZATION_PLANNED",
        1,
    );
    planned.asset_key = Some(revenue.clone());
    let mut start_step = event(run, T::StepStart, "STEP_START", 4);
    start_step.step_key = Some(step.clone());
    let mut materialized = event(run, T::AssetMaterialization, "ASSET_MATERIALIZATION", 5);
    materialized.step_key = Some(step.clone());
    materialized.asset_key = Some(revenue);
    materialized.metadata = vec![MetadataEntry::int("dagster/row_count", 42)];
    let mut step_ok = event(run, T::StepSuccess, "STEP_SUCCESS", 6);
    step_ok.step_key = Some(step);
    vec![
        planned,
        event(run, T::RunEnqueued, "PIPELINE_ENQUEUED", 2),
        event(run, T::RunStart, "PIPELINE_START", 3),
        start_step,
        materialized,
        step_ok,
        event(run, T::RunSuccess, "PIPELINE_SUCCESS", 7),
    ]
}

fn asset(parts: &[&str], deps: Vec<Vec<String>>) -> AssetDefinition {
    AssetDefinition {
        tenant: "it".into(),
        source: SourcePosition {
            kind: SourceKind::Graphql,
            storage_id: None,
            shard: None,
            cursor: None,
        },
        asset_key: key(parts),
        code_location: Some("lineage_sample".into()),
        repository: None,
        group: None,
        description: None,
        job_names: vec!["transform_job".into()],
        deps,
        owners: vec![],
        tags: BTreeMap::new(),
        kinds: vec![],
        metadata: vec![],
        is_materializable: true,
        partitions: None,
        checks: vec![],
        updated_ms: 0,
    }
}

fn table(schema: &str, name: &str) -> TableSnapshot {
    TableSnapshot {
        tenant: "om".into(),
        fqn: format!("pg.warehouse_db.{schema}.{name}"),
        id: uuid::Uuid::new_v4().to_string(),
        service: "pg".into(),
        database: "warehouse_db".into(),
        schema: schema.into(),
        table: name.into(),
        service_type: Some("Postgres".into()),
        table_type: None,
        description: None,
        columns: vec![],
        tags: vec![],
        owners: vec![],
        deleted: false,
        version: 0.1,
        updated_at_ms: 0,
    }
}

/// `lineage-bus explain asset KEY --tenant it --json` against the test's topics.
fn explain(topics: &Topics, key: &str) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_lineage-bus"))
        .args(["explain", "asset", key, "--tenant", "it", "--json"])
        .env(
            "LINEAGE_BUS__KAFKA__BOOTSTRAP_SERVERS",
            common::service_env("KAFKA_BOOTSTRAP"),
        )
        .env(
            "LINEAGE_BUS__SCHEMA_REGISTRY__URL",
            common::service_env("SCHEMA_REGISTRY_URL"),
        )
        .env("LINEAGE_BUS__PROCESS__TOPICS__ASSETS", &topics.assets)
        .env("LINEAGE_BUS__PROCESS__TOPICS__TABLES", &topics.tables)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn start_processor(topics: &Topics, group: &str, txn: &str, max_batch: usize) -> Child {
    Command::new(env!("CARGO_BIN_EXE_lineage-bus"))
        .arg("process")
        .env(
            "LINEAGE_BUS__KAFKA__BOOTSTRAP_SERVERS",
            common::service_env("KAFKA_BOOTSTRAP"),
        )
        .env(
            "LINEAGE_BUS__SCHEMA_REGISTRY__URL",
            common::service_env("SCHEMA_REGISTRY_URL"),
        )
        .env("LINEAGE_BUS__ADMIN__LISTEN", "127.0.0.1:0")
        .env("LINEAGE_BUS__PROCESS__GROUP", group)
        .env("LINEAGE_BUS__PROCESS__TRANSACTIONAL_ID", txn)
        .env("LINEAGE_BUS__PROCESS__MAX_BATCH", max_batch.to_string())
        .env("LINEAGE_BUS__PROCESS__TOPICS__EVENTS", &topics.events)
        .env("LINEAGE_BUS__PROCESS__TOPICS__ASSETS", &topics.assets)
        .env("LINEAGE_BUS__PROCESS__TOPICS__TABLES", &topics.tables)
        .env(
            "LINEAGE_BUS__PROCESS__TOPICS__OPENLINEAGE",
            &topics.openlineage,
        )
        .env(
            "LINEAGE_BUS__PROCESS__TOPICS__OPENMETADATA",
            &topics.openmetadata,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Every committed record of `topic` up to its current end: (key, value).
async fn read_committed(topic: &str) -> Vec<(String, Vec<u8>)> {
    common::read_to_end(topic)
        .await
        .into_iter()
        .map(|(key, value)| (key, value.unwrap_or_default()))
        .collect()
}

async fn operations(topic: &str) -> Vec<OpenMetadataOperation> {
    let codec = codec::<OpenMetadataOperation>(LINEAGE_OPENMETADATA).await;
    let mut ops = Vec::new();
    for (_, value) in read_committed(topic).await {
        ops.push(codec.decode(&value).await.unwrap());
    }
    ops
}

/// Waits until `check` holds for the committed operations, or panics after `timeout`.
async fn wait_for_ops(
    topic: &str,
    timeout: Duration,
    check: impl Fn(&[OpenMetadataOperation]) -> bool,
) -> Vec<OpenMetadataOperation> {
    let deadline = Instant::now() + timeout;
    loop {
        let ops = operations(topic).await;
        if check(&ops) {
            return ops;
        }
        assert!(
            Instant::now() < deadline,
            "timed out; operations so far: {ops:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn edges(ops: &[OpenMetadataOperation]) -> Vec<(String, String)> {
    ops.iter()
        .filter_map(|op| match &op.operation {
            Operation::AddLineage(l) => Some((l.from_table_fqn.clone(), l.to_table_fqn.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn events_become_lineage_and_a_late_table_still_gets_its_edge() {
    let topics = Topics::create().await;
    let producer: FutureProducer = common::kafka()
        .idempotent_producer_config("test")
        .create()
        .unwrap();
    let assets = codec::<AssetDefinition>(DAGSTER_ASSETS).await;
    let tables = codec::<TableSnapshot>(OPENMETADATA_TABLES).await;
    let events = codec::<DagsterEvent>(DAGSTER_EVENTS).await;
    let orders = asset(&["warehouse_db", "raw", "orders"], vec![]);
    let revenue = asset(
        &["warehouse_db", "analytics", "daily_revenue"],
        vec![key(&["warehouse_db", "raw", "orders"])],
    );
    for definition in [&orders, &revenue] {
        send(
            &producer,
            &topics.assets,
            &definition.kafka_key(),
            Some(assets.encode(definition).unwrap()),
        )
        .await;
    }
    let raw = table("raw", "orders");
    send(
        &producer,
        &topics.tables,
        &raw.fqn,
        Some(tables.encode(&raw).unwrap()),
    )
    .await;
    for e in run_events("run-1") {
        send(
            &producer,
            &topics.events,
            &e.kafka_key(),
            Some(events.encode(&e).unwrap()),
        )
        .await;
    }

    let mut child = start_processor(
        &topics,
        &common::unique_topic("pg"),
        &common::unique_topic("ptx"),
        20,
    );
    let ops = wait_for_ops(&topics.openmetadata, Duration::from_secs(60), |ops| {
        ops.iter().any(|o| matches!(&o.operation, Operation::AddPipelineStatus(s) if s.status == ExecutionStatus::Successful))
    })
    .await;
    assert!(
        edges(&ops).is_empty(),
        "no edge while daily_revenue has no table: {:?}",
        edges(&ops)
    );
    assert!(ops.iter().any(
        |o| matches!(&o.operation, Operation::UpsertPipeline(p) if p.name.contains("transform_job"))
    ));
    let status = ops
        .iter()
        .rev()
        .find_map(|o| match &o.operation {
            Operation::AddPipelineStatus(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        status
            .tasks
            .iter()
            .any(|t| t.name == "warehouse_db__analytics__daily_revenue"
                && t.status == ExecutionStatus::Successful),
        "{status:?}"
    );

    let ol = read_committed(&topics.openlineage).await;
    let kinds: Vec<String> = ol
        .iter()
        .map(|(_, v)| {
            let json: serde_json::Value = serde_json::from_slice(v).unwrap();
            format!(
                "{}:{}",
                json["eventType"].as_str().unwrap_or("-"),
                json["job"]["name"].as_str().unwrap_or("-")
            )
        })
        .collect();
    assert!(
        kinds.iter().any(|k| k == "START:transform_job"),
        "{kinds:?}"
    );
    assert!(
        kinds.iter().any(|k| k == "COMPLETE:transform_job"),
        "{kinds:?}"
    );
    assert!(
        ol.iter().all(|(key, _)| key.starts_with("run:")),
        "transport keys"
    );

    let before = explain(&topics, "warehouse_db/analytics/daily_revenue").to_string();
    assert!(before.contains("table_not_found"), "{before}");
    assert!(before.contains("\"ready\":false"), "{before}");

    // The table of daily_revenue appears later: the edge orders -> daily_revenue follows.
    let late = table("analytics", "daily_revenue");
    send(
        &producer,
        &topics.tables,
        &late.fqn,
        Some(tables.encode(&late).unwrap()),
    )
    .await;
    let ops = wait_for_ops(&topics.openmetadata, Duration::from_secs(30), |ops| {
        !edges(ops).is_empty()
    })
    .await;
    assert_eq!(edges(&ops), vec![(raw.fqn.clone(), late.fqn.clone())]);
    let after = explain(&topics, "warehouse_db/analytics/daily_revenue").to_string();
    assert!(after.contains(&late.fqn), "{after}");
    assert!(!after.contains("table_not_found"), "{after}");

    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_processor_restarts_without_loss_or_duplicates() {
    const RUNS: usize = 100;
    let topics = Topics::create().await;
    let producer: FutureProducer = common::kafka()
        .idempotent_producer_config("test")
        .create()
        .unwrap();
    let events = codec::<DagsterEvent>(DAGSTER_EVENTS).await;
    for run in 0..RUNS {
        for e in run_events(&format!("run-{run:03}")) {
            send(
                &producer,
                &topics.events,
                &e.kafka_key(),
                Some(events.encode(&e).unwrap()),
            )
            .await;
        }
    }
    let (group, txn) = (common::unique_topic("pg"), common::unique_topic("ptx"));
    // One event per transaction: hundreds of transactions, so the kill lands mid-stream.
    let mut child = start_processor(&topics, &group, &txn, 1);
    // Kill as soon as some output is committed.
    let deadline = Instant::now() + Duration::from_secs(60);
    let finished = |ops: &[OpenMetadataOperation]| {
        ops.iter()
            .filter(|o| {
                matches!(&o.operation, Operation::AddPipelineStatus(s)
                    if s.status == ExecutionStatus::Successful)
            })
            .count()
    };
    let watcher: StreamConsumer = common::kafka()
        .consumer_config("test-watch", &common::unique_topic("g"))
        .create()
        .unwrap();
    watcher.subscribe(&[topics.openmetadata.as_str()]).unwrap();
    let mut stream = watcher.stream();
    while tokio::time::timeout(Duration::from_millis(100), stream.next())
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "no output before the kill");
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill = finished(&operations(&topics.openmetadata).await);
    assert!(
        at_kill < RUNS,
        "the kill came after the end ({at_kill} runs done): nothing tested"
    );

    let mut child = start_processor(&topics, &group, &txn, 20);
    let ops = wait_for_ops(&topics.openmetadata, Duration::from_secs(120), |ops| {
        finished(ops) >= RUNS
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();

    let mut finals: HashMap<String, usize> = HashMap::new();
    for op in &ops {
        if let Operation::AddPipelineStatus(s) = &op.operation
            && s.status == ExecutionStatus::Successful
        {
            *finals.entry(s.execution_id.clone()).or_default() += 1;
        }
    }
    assert_eq!(finals.len(), RUNS);
    assert!(
        finals.values().all(|n| *n == 1),
        "a run's final status twice: {finals:?}"
    );

    let ol = read_committed(&topics.openlineage).await;
    let mut seen = HashSet::new();
    for (_, value) in &ol {
        assert!(
            seen.insert(value.clone()),
            "duplicate OpenLineage event: {}",
            String::from_utf8_lossy(value)
        );
    }
    let completes = ol
        .iter()
        .filter(|(_, v)| {
            let json: serde_json::Value = serde_json::from_slice(v).unwrap();
            json["eventType"] == "COMPLETE" && json["job"]["name"] == "transform_job"
        })
        .count();
    assert_eq!(completes, RUNS, "one run COMPLETE per run");
}
