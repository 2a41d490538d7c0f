//! `lineage-bus process` end to end on the real broker and registry: Dagster events, asset
//! definitions and table snapshots in; OpenLineage events and OpenMetadata operations out,
//! read_committed. A table that arrives after the materialization still gets its edge; a
//! processor killed with SIGKILL mid-stream and restarted leaves every output exactly once.
#![allow(clippy::unwrap_used)]

mod common;

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lineage_schemas::catalog::{
    DAGSTER_ASSETS, DAGSTER_EVENTS, LINEAGE_OPENMETADATA, LINEAGE_RESOLUTION, OPENMETADATA_TABLES,
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
    resolution: String,
    ingest: String,
}

impl Topics {
    async fn create() -> Self {
        let topics = Self {
            events: common::unique_topic("p-events"),
            assets: common::unique_topic("p-assets"),
            tables: common::unique_topic("p-tables"),
            openlineage: common::unique_topic("p-ol"),
            openmetadata: common::unique_topic("p-om"),
            resolution: common::unique_topic("p-res"),
            ingest: common::unique_topic("p-ingest"),
        };
        for topic in [
            &topics.ingest,
            &topics.events,
            &topics.openlineage,
            &topics.openmetadata,
            &topics.resolution,
        ] {
            common::create_topic(topic, 3).await;
        }
        for topic in [&topics.assets, &topics.tables] {
            common::create_topic(topic, 2).await;
        }
        topics
    }
}

impl Topics {
    /// The same inputs, new output topics.
    async fn with_fresh_outputs(&self) -> Self {
        let topics = Self {
            events: self.events.clone(),
            assets: self.assets.clone(),
            tables: self.tables.clone(),
            openlineage: common::unique_topic("p-ol"),
            openmetadata: common::unique_topic("p-om"),
            resolution: common::unique_topic("p-res"),
            ingest: self.ingest.clone(),
        };
        for topic in [
            &topics.openlineage,
            &topics.openmetadata,
            &topics.resolution,
        ] {
            common::create_topic(topic, 3).await;
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

/// A producer and the catalog codecs a test publishes its input records with.
struct Inputs {
    producer: FutureProducer,
    assets: RecordCodec<AssetDefinition>,
    tables: RecordCodec<TableSnapshot>,
    events: RecordCodec<DagsterEvent>,
}

impl Inputs {
    async fn new() -> Self {
        Self {
            producer: common::kafka()
                .idempotent_producer_config("test")
                .create()
                .unwrap(),
            assets: codec(DAGSTER_ASSETS).await,
            tables: codec(OPENMETADATA_TABLES).await,
            events: codec(DAGSTER_EVENTS).await,
        }
    }

    /// Publishes asset definitions to `topic` in order, keyed by tenant and asset.
    async fn definitions(
        &self,
        topic: &str,
        definitions: impl IntoIterator<Item = impl Borrow<AssetDefinition>>,
    ) {
        let key = AssetDefinition::kafka_key;
        self.publish(topic, &self.assets, definitions, key).await;
    }

    /// Publishes table snapshots to `topic` in order, keyed by FQN.
    async fn tables(
        &self,
        topic: &str,
        snapshots: impl IntoIterator<Item = impl Borrow<TableSnapshot>>,
    ) {
        let key = |snapshot: &TableSnapshot| snapshot.fqn.clone();
        self.publish(topic, &self.tables, snapshots, key).await;
    }

    /// Publishes Dagster events to `topic` in order, keyed like the producer (by run).
    async fn events(
        &self,
        topic: &str,
        events: impl IntoIterator<Item = impl Borrow<DagsterEvent>>,
    ) {
        let key = DagsterEvent::kafka_key;
        self.publish(topic, &self.events, events, key).await;
    }

    /// Encodes each record with `codec` and sends it to `topic` under `key(record)`, in order.
    async fn publish<T: AvroRecord>(
        &self,
        topic: &str,
        codec: &RecordCodec<T>,
        records: impl IntoIterator<Item = impl Borrow<T>>,
        key: impl Fn(&T) -> String,
    ) {
        for record in records {
            let record = record.borrow();
            let value = codec.encode(record).unwrap();
            send(&self.producer, topic, &key(record), Some(value)).await;
        }
    }
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

/// The sample graph's definitions: raw orders, and daily_revenue depending on it.
fn orders_and_revenue() -> [AssetDefinition; 2] {
    [
        asset(&["warehouse_db", "raw", "orders"], vec![]),
        asset(
            &["warehouse_db", "analytics", "daily_revenue"],
            vec![key(&["warehouse_db", "raw", "orders"])],
        ),
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
    let output = common::lineage_bus()
        .args(["explain", "asset", key, "--tenant", "it", "--json"])
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
    common::lineage_bus()
        .arg("process")
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
        .env(
            "LINEAGE_BUS__PROCESS__TOPICS__RESOLUTION",
            &topics.resolution,
        )
        .env("LINEAGE_BUS__PROCESS__TOPICS__INGEST", &topics.ingest)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(processor_log(txn)).unwrap())
        .spawn()
        .unwrap()
}

/// Where the processor started with transactional id `txn` writes its log (shown when a test
/// fails).
fn processor_log(txn: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{txn}.stderr"))
}

/// The last lines of the log of the processor started with transactional id `txn`.
fn processor_log_tail(txn: &str) -> String {
    let log = std::fs::read_to_string(processor_log(txn)).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
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
    let inputs = Inputs::new().await;
    inputs
        .definitions(&topics.assets, orders_and_revenue())
        .await;
    let raw = table("raw", "orders");
    inputs.tables(&topics.tables, [&raw]).await;
    inputs.events(&topics.events, run_events("run-1")).await;

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
    inputs.tables(&topics.tables, [&late]).await;
    let ops = wait_for_ops(&topics.openmetadata, Duration::from_secs(30), |ops| {
        !edges(ops).is_empty()
    })
    .await;
    assert_eq!(edges(&ops), vec![(raw.fqn.clone(), late.fqn.clone())]);
    let after = explain(&topics, "warehouse_db/analytics/daily_revenue").to_string();
    assert!(after.contains(&late.fqn), "{after}");
    assert!(!after.contains("table_not_found"), "{after}");

    // the resolution report of daily_revenue, last record of its key, names the late table
    let report_codec = codec::<ResolutionReport>(LINEAGE_RESOLUTION).await;
    let mut report = None;
    for (key, value) in read_committed(&topics.resolution).await {
        if key == "it/warehouse_db/analytics/daily_revenue" {
            report = Some(report_codec.decode(&value).await.unwrap());
        }
    }
    let report = report.expect("a resolution report of daily_revenue");
    assert_eq!(report.chosen_table_fqn.as_deref(), Some(late.fqn.as_str()));
    assert_eq!(report.rule.as_deref(), Some("asset_key"));

    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_processor_restarts_without_loss_or_duplicates() {
    const RUNS: usize = 100;
    let topics = Topics::create().await;
    let inputs = Inputs::new().await;
    for run in 0..RUNS {
        inputs
            .events(&topics.events, run_events(&format!("run-{run:03}")))
            .await;
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

/// One committed record as read back: partition, key, value and headers.
type Record = (
    i32,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Vec<u8>)>,
);

/// Every committed record of `topic` with its headers, in log order per partition.
async fn records_with_headers(topic: &str) -> Vec<Record> {
    use rdkafka::error::KafkaError;
    use rdkafka::message::{Headers, Message};
    let mut config = common::kafka().client_config("test-headers");
    config
        .set("group.id", common::unique_topic("g"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
    let consumer: StreamConsumer = config.create().unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    let mut assignment = rdkafka::TopicPartitionList::new();
    for partition in &partitions {
        assignment
            .add_partition_offset(topic, *partition, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut open: HashSet<i32> = partitions.into_iter().collect();
    let mut records = Vec::new();
    let mut stream = consumer.stream();
    while !open.is_empty() {
        match tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("reading took over 30 s")
        {
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                open.remove(&partition);
            }
            Some(Ok(message)) => {
                let headers = message
                    .headers()
                    .map(|headers| {
                        headers
                            .iter()
                            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                records.push((
                    message.partition(),
                    message.key().map(<[u8]>::to_vec),
                    message.payload().map(<[u8]>::to_vec),
                    headers,
                ));
            }
            other => panic!("reading {topic}: {other:?}"),
        }
    }
    records
}

/// The records of `topic` by key, in log order (the order a consumer of the key sees).
async fn by_key(topic: &str) -> BTreeMap<Vec<u8>, Vec<Record>> {
    let mut keys: BTreeMap<Vec<u8>, Vec<Record>> = BTreeMap::new();
    for record in records_with_headers(topic).await {
        keys.entry(record.1.clone().unwrap_or_default())
            .or_default()
            .push(record);
    }
    keys
}

/// A failed run shaped like the testbed's `vendor_job`: two assets planned before the run is
/// enqueued (the run's tags come with the run events), the first step fails, the second never
/// starts.
fn failed_run_events(run: &str) -> Vec<DagsterEvent> {
    use DagsterEventType as T;
    let mut planned_a = event(
        run,
        T::AssetMaterializationPlanned,
        "ASSET_MATERIALIZATION_PLANNED",
        1,
    );
    planned_a.asset_key = Some(key(&["warehouse_db", "analytics", "daily_revenue"]));
    planned_a.step_key = Some("a".into());
    planned_a.tags.clear();
    let mut planned_b = planned_a.clone();
    planned_b.asset_key = Some(key(&["warehouse_db", "raw", "orders"]));
    planned_b.step_key = Some("b".into());
    let mut step_start = event(run, T::StepStart, "STEP_START", 4);
    step_start.step_key = Some("a".into());
    let mut step_failure = event(run, T::StepFailure, "STEP_FAILURE", 5);
    step_failure.step_key = Some("a".into());
    let mut failure = event(run, T::RunFailure, "PIPELINE_FAILURE", 6);
    failure.error = Some(ErrorInfo {
        message: "Steps failed: ['a'].".into(),
        class_name: None,
        stack: vec![],
        cause: None,
    });
    vec![
        planned_a,
        planned_b,
        event(run, T::RunEnqueued, "PIPELINE_ENQUEUED", 2),
        event(run, T::RunStart, "PIPELINE_START", 3),
        step_start,
        step_failure,
        failure,
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn reprocessing_from_offset_zero_gives_identical_output() {
    const RUNS: usize = 20;
    let first = Topics::create().await;
    // one input partition: the order of every input record is the log's (with several, the
    // interleaving of partitions in a batch is the consumer's)
    let events_topic = common::unique_topic("p-events1");
    common::create_topic(&events_topic, 1).await;
    let first = Topics {
        events: events_topic,
        ..first
    };
    let inputs = Inputs::new().await;
    inputs
        .definitions(&first.assets, orders_and_revenue())
        .await;
    let mut ambiguous = table("raw", "orders");
    ambiguous.service = "pg2".into();
    ambiguous.fqn = "pg2.warehouse_db.raw.orders".into();
    inputs
        .tables(
            &first.tables,
            [
                table("raw", "orders"),
                ambiguous,
                table("analytics", "daily_revenue"),
            ],
        )
        .await;
    let mut log = Vec::new();
    for run in 0..RUNS {
        log.extend(run_events(&format!("run-{run:03}")));
    }
    log.extend(failed_run_events("run-failed"));
    inputs.events(&first.events, &log).await;

    let ended = |ops: &[OpenMetadataOperation]| {
        ops.iter()
            .filter(|o| matches!(&o.operation, Operation::AddPipelineStatus(s) if s.end_time_ms.is_some()))
            .count()
    };
    let mut outputs = Vec::new();
    for topics in [
        first.with_fresh_outputs().await,
        first.with_fresh_outputs().await,
    ] {
        let mut child = start_processor(
            &topics,
            &common::unique_topic("pg"),
            &common::unique_topic("ptx"),
            7,
        );
        wait_for_ops(&topics.openmetadata, Duration::from_secs(90), |ops| {
            ended(ops) > RUNS
        })
        .await;
        child.kill().unwrap();
        child.wait().unwrap();
        outputs.push((
            by_key(&topics.openlineage).await,
            by_key(&topics.openmetadata).await,
            by_key(&topics.resolution).await,
        ));
    }
    let (ol, om, res) = &outputs[0];
    assert!(
        ol.values().map(Vec::len).sum::<usize>() > RUNS * 5,
        "OpenLineage output"
    );
    assert!(
        !om.is_empty() && !res.is_empty(),
        "OpenMetadata and report output"
    );
    let aborts = ol
        .values()
        .flatten()
        .filter(|r| {
            String::from_utf8_lossy(r.2.as_deref().unwrap_or_default()).contains("\"ABORT\"")
        })
        .count();
    assert_eq!(aborts, 1, "the failed run's step b is closed");
    for (name, (a, b)) in [
        ("openlineage", (&outputs[0].0, &outputs[1].0)),
        ("openmetadata", (&outputs[0].1, &outputs[1].1)),
        ("resolution", (&outputs[0].2, &outputs[1].2)),
    ] {
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "{name}: the same keys"
        );
        for (key, records) in a {
            assert!(
                records == &b[key],
                "{name}: records of key {} differ between the two processings",
                String::from_utf8_lossy(key)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ingested_openlineage_events_are_validated_and_forwarded() {
    let topics = Topics::create().await;
    let inputs = Inputs::new().await;
    let run_event = serde_json::json!({
        "eventType": "COMPLETE",
        "eventTime": "2026-11-21T09:00:00.000Z",
        "producer": "https://github.com/apache/airflow",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {
            "runId": "01936f6e-6f00-7000-8000-000000000001",
            "facets": {"parent": {
                "_producer": "https://github.com/apache/airflow",
                "_schemaURL": "https://openlineage.io/spec/facets/1-1-0/ParentRunFacet.json#/$defs/ParentRunFacet",
                "run": {"runId": "01936f6e-6f00-7000-8000-000000000002"},
                "job": {"namespace": "airflow", "name": "dag.group"},
                "root": {
                    "run": {"runId": "01936f6e-6f00-7000-8000-000000000003"},
                    "job": {"namespace": "airflow", "name": "dag"}
                }
            }}
        },
        "job": {"namespace": "airflow", "name": "dag.group.task"}
    });
    let dataset_event = serde_json::json!({
        "eventTime": "2026-11-21T09:00:01Z",
        "producer": "https://github.com/dbt-labs/dbt-core",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/DatasetEvent",
        "dataset": {"namespace": "postgres://db:5432", "name": "public.orders"}
    });
    let mut bad_run_id = run_event.clone();
    bad_run_id["run"]["runId"] = serde_json::Value::from("not-a-uuid");
    let valid = [
        serde_json::to_vec(&run_event).unwrap(),
        serde_json::to_vec(&dataset_event).unwrap(),
    ];
    let invalid = [
        serde_json::to_vec(&bad_run_id).unwrap(),
        b"{not json".to_vec(),
    ];
    for (i, value) in valid.iter().chain(&invalid).enumerate() {
        send(
            &inputs.producer,
            &topics.ingest,
            &format!("k{i}"),
            Some(value.clone()),
        )
        .await;
    }

    let txn = common::unique_topic("ptx");
    let mut child = start_processor(&topics, &common::unique_topic("pg"), &txn, 20);
    let deadline = Instant::now() + Duration::from_secs(120);
    let forwarded = loop {
        let records = read_committed(&topics.openlineage).await;
        if records.len() >= 2 {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "nothing forwarded: {records:?}; processor log:\n{}",
            processor_log_tail(&txn)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // the dead letters of this test's ingest topic
    let dead_letters = codec::<DeadLetter>(lineage_schemas::catalog::DEAD_LETTER).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let rejected = loop {
        let mut rejected = Vec::new();
        for (_, value) in read_committed(lineage_schemas::catalog::DEAD_LETTER).await {
            let Ok(record) = dead_letters.decode(&value).await else {
                continue;
            };
            if record.source_topic.as_deref() == Some(topics.ingest.as_str()) {
                rejected.push(record);
            }
        }
        if rejected.len() >= 2 || Instant::now() >= deadline {
            break rejected;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();

    let mut forwarded = forwarded;
    forwarded.sort();
    assert_eq!(
        forwarded,
        vec![
            (
                "dataset:postgres://db:5432/public.orders".to_owned(),
                valid[1].clone()
            ),
            ("run:airflow/dag".to_owned(), valid[0].clone()),
        ],
        "valid events forwarded unchanged, with the transport key of the root job"
    );
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    let schema = rejected
        .iter()
        .find(|r| r.original_value.as_deref() == Some(invalid[0].as_slice()))
        .expect("the invalid runId is dead-lettered");
    assert_eq!(schema.error_kind, DeadLetterKind::SchemaMismatch);
    assert!(schema.reason.contains("/run/runId"), "{}", schema.reason);
    let json = rejected
        .iter()
        .find(|r| r.original_value.as_deref() == Some(invalid[1].as_slice()))
        .expect("the non-JSON record is dead-lettered");
    assert_eq!(json.error_kind, DeadLetterKind::MalformedInput);
    assert!(json.reason.contains("not a JSON object"), "{}", json.reason);
}

/// Sends SIGTERM to `child` and waits for it to exit (a graceful stop: the consumer leaves the
/// group and its partitions move at once).
fn terminate(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the processor did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// (eventType, job, runId, Dagster run) of every OpenLineage event of `topic`.
async fn lineage_runs(topic: &str) -> Vec<(String, String, String)> {
    read_committed(topic)
        .await
        .into_iter()
        .map(|(_, value)| {
            let json: serde_json::Value = serde_json::from_slice(&value).unwrap();
            (
                json["eventType"].as_str().unwrap_or("-").to_owned(),
                json["job"]["name"].as_str().unwrap_or("-").to_owned(),
                json["run"]["runId"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_moving_between_instances_keep_their_run_ids() {
    const RUNS: usize = 30;
    let topics = Topics::create().await;
    let inputs = Inputs::new().await;
    let group = common::unique_topic("pg");
    let mut a = start_processor(&topics, &group, &common::unique_topic("ptx-a"), 5);
    let mut b = start_processor(&topics, &group, &common::unique_topic("ptx-b"), 5);
    // both join the group and share the three partitions
    tokio::time::sleep(Duration::from_secs(10)).await;

    // the first half of every run (up to its first step): processed by A or B
    let logs: Vec<Vec<DagsterEvent>> = (0..RUNS)
        .map(|run| run_events(&format!("move-{run:03}")))
        .collect();
    for log in &logs {
        inputs.events(&topics.events, &log[..4]).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let starts = lineage_runs(&topics.openlineage)
            .await
            .iter()
            .filter(|(kind, job, _)| kind == "START" && job == "transform_job")
            .count();
        if starts >= RUNS {
            break;
        }
        assert!(Instant::now() < deadline, "{starts} run STARTs of {RUNS}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A stops: B takes its partitions over and must continue A's runs
    terminate(&mut a);
    for log in &logs {
        inputs.events(&topics.events, &log[4..]).await;
    }
    let ops = wait_for_ops(&topics.openmetadata, Duration::from_secs(90), |ops| {
        ops.iter()
            .filter(|o| matches!(&o.operation, Operation::AddPipelineStatus(s) if s.status == ExecutionStatus::Successful))
            .count()
            >= RUNS
    })
    .await;
    b.kill().unwrap();
    b.wait().unwrap();

    let lineage = lineage_runs(&topics.openlineage).await;
    let ids = |kind: &str, job: &str| -> Vec<String> {
        let mut ids: Vec<String> = lineage
            .iter()
            .filter(|(k, j, _)| k == kind && j == job)
            .map(|(_, _, id)| id.clone())
            .collect();
        ids.sort();
        ids
    };
    let starts = ids("START", "transform_job");
    assert_eq!(starts.len(), RUNS, "one START per run");
    assert_eq!(
        ids("COMPLETE", "transform_job"),
        starts,
        "every run's COMPLETE carries its START's runId, whichever instance wrote it"
    );
    let step = "transform_job.warehouse_db__analytics__daily_revenue";
    assert_eq!(ids("COMPLETE", step), ids("START", step), "step runs too");
    // one final status per run, keyed by the run's anchor (its first event's time)
    let mut finals: HashMap<String, Vec<i64>> = HashMap::new();
    for op in &ops {
        if let Operation::AddPipelineStatus(s) = &op.operation
            && s.status == ExecutionStatus::Successful
        {
            finals
                .entry(s.execution_id.clone())
                .or_default()
                .push(s.timestamp_ms);
        }
    }
    assert_eq!(finals.len(), RUNS);
    for (run, stamps) in &finals {
        assert_eq!(
            stamps,
            &[1_763_600_000_000 + 1],
            "{run}: anchored at its first event"
        );
    }
}

/// The demo's order: the runs are processed while neither the asset graph nor the tables are
/// published; the definitions come next, then the tables. Every edge follows, once, with the
/// run's pipeline; a dep added to a definition later adds its edge; a restart writes none
/// again.
#[tokio::test(flavor = "multi_thread")]
async fn runs_before_the_asset_graph_and_the_tables_still_get_their_edges_once() {
    use DagsterEventType as T;
    let topics = Topics::create().await;
    let inputs = Inputs::new().await;
    // run-1 materializes orders (naming its table, as the sample project does) before
    // daily_revenue; the kpi feed is named by its definition only
    let orders_key = key(&["warehouse_db", "raw", "orders"]);
    let kpi_key = key(&["kpi"]);
    let mut log = run_events("run-1");
    let mut orders_mat = event("run-1", T::AssetMaterialization, "ASSET_MATERIALIZATION", 4);
    orders_mat.asset_key = Some(orders_key.clone());
    orders_mat.metadata = vec![MetadataEntry::text(
        "dagster/table_name",
        MetadataKind::Text,
        "warehouse_db.raw.orders",
    )];
    let mut kpi_mat = event("run-1", T::AssetMaterialization, "ASSET_MATERIALIZATION", 6);
    kpi_mat.asset_key = Some(kpi_key.clone());
    log.insert(4, orders_mat);
    log.insert(6, kpi_mat);
    inputs.events(&topics.events, &log).await;
    let (group, txn) = (common::unique_topic("pg"), common::unique_topic("ptx"));
    let mut child = start_processor(&topics, &group, &txn, 20);
    let successful = |ops: &[OpenMetadataOperation]| {
        ops.iter().any(|o| matches!(&o.operation, Operation::AddPipelineStatus(s) if s.status == ExecutionStatus::Successful))
    };
    let ops = wait_for_ops(&topics.openmetadata, Duration::from_secs(60), successful).await;
    assert!(edges(&ops).is_empty(), "{:?}", edges(&ops));

    let revenue_key = key(&["warehouse_db", "analytics", "daily_revenue"]);
    let mut kpi = asset(&["kpi"], vec![revenue_key.clone()]);
    kpi.metadata = vec![MetadataEntry::text(
        "dagster/table_name",
        MetadataKind::Text,
        "warehouse_db.reporting.kpi_feed",
    )];
    inputs
        .definitions(
            &topics.assets,
            [
                &asset(&["warehouse_db", "raw", "orders"], vec![]),
                &asset(
                    &["warehouse_db", "analytics", "daily_revenue"],
                    vec![orders_key.clone()],
                ),
                &kpi,
            ],
        )
        .await;
    inputs
        .tables(
            &topics.tables,
            [
                table("raw", "orders"),
                table("analytics", "daily_revenue"),
                table("reporting", "kpi_feed"),
            ],
        )
        .await;
    let fqn = |s: &str| format!("pg.warehouse_db.{s}");
    let expected = vec![
        (fqn("analytics.daily_revenue"), fqn("reporting.kpi_feed")),
        (fqn("raw.orders"), fqn("analytics.daily_revenue")),
    ];
    let sorted = |ops: &[OpenMetadataOperation]| {
        let mut e = edges(ops);
        e.sort();
        e
    };
    let ops = wait_for_ops(&topics.openmetadata, Duration::from_secs(60), |ops| {
        sorted(ops).len() >= expected.len()
    })
    .await;
    assert_eq!(sorted(&ops), expected);
    for op in &ops {
        if let Operation::AddLineage(edge) = &op.operation {
            let pipeline = edge.pipeline_fqn.as_deref().unwrap_or_default();
            assert!(
                pipeline.contains("transform_job") && pipeline.contains("lineage_sample"),
                "the run's pipeline: {edge:?}"
            );
        }
    }

    // kpi also reads orders from now on: that edge follows
    let mut kpi_v2 = kpi.clone();
    kpi_v2.deps.push(orders_key);
    inputs.definitions(&topics.assets, [&kpi_v2]).await;
    let ops = wait_for_ops(&topics.openmetadata, Duration::from_secs(30), |ops| {
        edges(ops).len() > expected.len()
    })
    .await;
    let mut all = expected.clone();
    all.push((fqn("raw.orders"), fqn("reporting.kpi_feed")));
    all.sort();
    assert_eq!(sorted(&ops), all);
    child.kill().unwrap();
    child.wait().unwrap();

    // a restart rebuilds the state from the log: no edge is written again
    let mut child = start_processor(&topics, &group, &txn, 20);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(sorted(&operations(&topics.openmetadata).await), all);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Tables published while the processor is down: the restart's replay does not take the edges
/// they make possible as written (the published resolution reports name no table for them),
/// so the first transaction writes them, once; another restart writes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn tables_published_while_the_processor_is_down_get_their_edges_at_restart() {
    let topics = Topics::create().await;
    let inputs = Inputs::new().await;
    inputs
        .definitions(&topics.assets, orders_and_revenue())
        .await;
    inputs.events(&topics.events, run_events("run-1")).await;
    let (group, txn) = (common::unique_topic("pg"), common::unique_topic("ptx"));
    let mut child = start_processor(&topics, &group, &txn, 20);
    let successful = |ops: &[OpenMetadataOperation]| {
        ops.iter().any(|o| matches!(&o.operation, Operation::AddPipelineStatus(s) if s.status == ExecutionStatus::Successful))
    };
    let ops = wait_for_ops(&topics.openmetadata, Duration::from_secs(60), successful).await;
    assert!(edges(&ops).is_empty(), "{:?}", edges(&ops));
    // the reports of the first transactions are committed (no table for either asset)
    let deadline = Instant::now() + Duration::from_secs(30);
    while read_committed(&topics.resolution).await.len() < 2 {
        assert!(Instant::now() < deadline, "no resolution reports");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let (raw, late) = (table("raw", "orders"), table("analytics", "daily_revenue"));
    inputs.tables(&topics.tables, [&raw, &late]).await;
    let expected = vec![(raw.fqn.clone(), late.fqn.clone())];
    let mut child = start_processor(&topics, &group, &txn, 20);
    let ops = wait_for_ops(&topics.openmetadata, Duration::from_secs(60), |ops| {
        !edges(ops).is_empty()
    })
    .await;
    assert_eq!(edges(&ops), expected);
    let edge = ops
        .iter()
        .find_map(|o| match &o.operation {
            Operation::AddLineage(l) => Some(l.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        edge.pipeline_fqn.as_deref(),
        Some("it.transform_job@lineage_sample"),
        "the run's pipeline, as if written at once"
    );
    // the reports now name the tables: a restart has nothing to write again
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reports = codec::<ResolutionReport>(LINEAGE_RESOLUTION).await;
        let mut named = 0;
        for (_, value) in read_committed(&topics.resolution).await {
            if !value.is_empty()
                && reports
                    .decode(&value)
                    .await
                    .unwrap()
                    .chosen_table_fqn
                    .is_some()
            {
                named += 1;
            }
        }
        if named >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reports never named the tables"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut child = start_processor(&topics, &group, &txn, 20);
    tokio::time::sleep(Duration::from_secs(10)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(edges(&operations(&topics.openmetadata).await), expected);
}

/// A definition that gains a dep while the processor is down, both tables known: the restart's
/// replay computes the new edge, but the published resolution report of the downstream asset
/// does not list it as written, so the first transaction writes it, once; the edge written
/// before is not written again, and another restart writes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_dep_gained_while_the_processor_is_down_is_written_at_restart() {
    let topics = Topics::create().await;
    let inputs = Inputs::new().await;
    let (orders, payments, revenue) = (
        table("raw", "orders"),
        table("raw", "payments"),
        table("analytics", "daily_revenue"),
    );
    inputs
        .tables(&topics.tables, [&orders, &payments, &revenue])
        .await;
    let mut definitions = orders_and_revenue().to_vec();
    definitions.push(asset(&["warehouse_db", "raw", "payments"], vec![]));
    inputs.definitions(&topics.assets, definitions).await;
    inputs.events(&topics.events, run_events("run-1")).await;
    let (group, txn) = (common::unique_topic("pg"), common::unique_topic("ptx"));
    let mut child = start_processor(&topics, &group, &txn, 20);
    let first = vec![(orders.fqn.clone(), revenue.fqn.clone())];
    let ops = wait_for_ops(&topics.openmetadata, Duration::from_secs(60), |ops| {
        !edges(ops).is_empty()
    })
    .await;
    assert_eq!(edges(&ops), first, "{}", processor_log_tail(&txn));
    // the report listing the written edge is committed with it
    let reports = codec::<ResolutionReport>(LINEAGE_RESOLUTION).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    'listed: loop {
        for (_, value) in read_committed(&topics.resolution).await {
            if !value.is_empty()
                && reports.decode(&value).await.unwrap().written_upstream == [orders.fqn.clone()]
            {
                break 'listed;
            }
        }
        assert!(Instant::now() < deadline, "no report lists the edge");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // daily_revenue now also reads payments
    let gained = asset(
        &["warehouse_db", "analytics", "daily_revenue"],
        vec![
            key(&["warehouse_db", "raw", "orders"]),
            key(&["warehouse_db", "raw", "payments"]),
        ],
    );
    inputs.definitions(&topics.assets, [gained]).await;
    let mut expected = vec![
        (orders.fqn.clone(), revenue.fqn.clone()),
        (payments.fqn.clone(), revenue.fqn.clone()),
    ];
    expected.sort();
    let mut child = start_processor(&topics, &group, &txn, 20);
    let ops = wait_for_ops(&topics.openmetadata, Duration::from_secs(60), |ops| {
        edges(ops).len() >= 2
    })
    .await;
    let mut written = edges(&ops);
    written.sort();
    assert_eq!(written, expected, "{}", processor_log_tail(&txn));
    child.kill().unwrap();
    child.wait().unwrap();
    let mut child = start_processor(&topics, &group, &txn, 20);
    tokio::time::sleep(Duration::from_secs(10)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let mut written = edges(&operations(&topics.openmetadata).await);
    written.sort();
    assert_eq!(written, expected, "each edge written once");
}
