//! `processor_throughput`: records/s of `lineage-bus process` end to end through the real
//! Kafka, per core, side by side with dagster-openlineage's converter on the same events.
//!
//! 1. Builds the workload of `processors/src/workload.rs` (a realistic event mix against a
//!    100k-table index), produces the tables and assets into fresh compacted-input topics and
//!    `--events` events into a fresh one-partition `dagster.events`-like topic (unique names).
//! 2. Runs the release binary's `lineage-bus process` on them (`LINEAGE_BUS_BIN`, default
//!    `target/release/lineage-bus`) and follows the group's committed offset. The clock and
//!    the process's CPU time (every thread, librdkafka's included, from `/proc/<pid>/stat`)
//!    start at its first commit (state bootstrap excluded) and stop when the last event is
//!    committed: records/s wall and per CPU-second (= per core).
//! 3. Runs the processor alone on the same events in this process, without Kafka
//!    ([`lineage_processors::offline`], one thread, the median and best of 5 passes).
//! 4. Times the peer's converter (`testbed/peer/emit_events.py --bench`, the sensor's handlers
//!    and adapter, one Python thread) on the same events, written as JSON lines.
//!
//! Prints the three rates and the ratios to the peer: converter to converter (the processor
//! alone) and end to end. Bounded: at most `--events` records (default 100 000,
//! capped at 1 000 000), 300 s for the processor, 600 s for the peer; loopback only (the
//! testbed's Kafka and Schema Registry, `eval "$(testbed/env.sh)"`). Deletes its topics.
//! `cargo build --release -p lineage-bus -p load-tests && target/release/processor_throughput`.
#![allow(clippy::print_stdout)] // the scenario's report

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use lineage_bus_core::KafkaConfig;
use lineage_processors::offline::OfflineRun;
use lineage_processors::workload::{Workload, workload};
use lineage_schemas::catalog::{DAGSTER_ASSETS, DAGSTER_EVENTS, OPENMETADATA_TABLES};
use lineage_schemas::records::{DagsterEvent, DagsterEventType as T, MetadataKind};
use lineage_schemas::{RecordCodec, RegistryClient};
use rdkafka::TopicPartitionList;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::json;

// The allocator of the lineage-bus binary (src/main.rs), for the in-process figure.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TABLES: usize = 100_000;
const OFFLINE_PASSES: usize = 5;
const MAX_EVENTS: usize = 1_000_000;
const PROCESS_TIMEOUT: Duration = Duration::from_secs(300);

fn env(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| {
        format!("{name} is not set: start the testbed and `eval \"$(testbed/env.sh)\"`")
    })
}

fn main() -> Result<()> {
    let mut events = 100_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--events" => events = args.next().context("--events N")?.parse()?,
            other => bail!("unknown argument {other} (usage: processor_throughput [--events N])"),
        }
    }
    ensure!(
        (1_000..=MAX_EVENTS).contains(&events),
        "--events must be in 1000..={MAX_EVENTS}"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let kafka = KafkaConfig {
        bootstrap_servers: env("KAFKA_BOOTSTRAP")?,
        ..KafkaConfig::default()
    };
    let registry =
        RegistryClient::new(&env("SCHEMA_REGISTRY_URL")?, Duration::from_secs(10), None)?;
    let runtime = tokio::runtime::Runtime::new()?;

    let mut work = workload(events / 80 + 1, TABLES); // ~84 events a run
    work.events.truncate(events);
    let n = work.events.len();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let topic = |name: &str| format!("lt-throughput-{name}-{suffix}");
    let topics = [
        topic("events"),
        topic("assets"),
        topic("tables"),
        topic("openlineage"),
        topic("openmetadata"),
    ];
    runtime.block_on(create_topics(&kafka, &topics))?;
    let result = run(&root, &kafka, &registry, &runtime, &work, &topics, &suffix);
    runtime.block_on(delete_topics(&kafka, &topics));
    let (ours, ours_wall) = result?;

    let alone = OfflineRun::new(&work).per_core(OFFLINE_PASSES);
    let peer = peer_rate(&root, &work.events)?;
    println!("processor_throughput: {n} events (realistic mix), {TABLES} tables");
    println!(
        "  lineage-bus processor alone (in process, one thread, no Kafka): median {:.0}, \
         best {:.0} records/s per core",
        alone.median, alone.best
    );
    println!(
        "  lineage-bus process (release, through Kafka): {ours:.0} records/s per core \
         ({ours_wall:.0} records/s wall)"
    );
    println!("  dagster-openlineage 0.2.1 converter (Python): {peer:.0} records/s per core");
    println!(
        "  ratio to the peer: {:.1}x converter to converter (median), {:.1}x end to end",
        alone.median / peer,
        ours / peer
    );
    Ok(())
}

/// Produces the inputs, runs the processor, returns (records per CPU-second, records/s wall).
fn run(
    root: &Path,
    kafka: &KafkaConfig,
    registry: &RegistryClient,
    runtime: &tokio::runtime::Runtime,
    work: &Workload,
    topics: &[String; 5],
    suffix: &str,
) -> Result<(f64, f64)> {
    let [events, assets, tables, openlineage, openmetadata] = topics;
    let producer: ThreadedProducer<DefaultProducerContext> = kafka
        .idempotent_producer_config("load-test")
        .set("linger.ms", "20")
        .create()?;
    let table_codec = runtime.block_on(RecordCodec::for_topic(
        registry.clone(),
        OPENMETADATA_TABLES,
    ))?;
    for table in &work.tables {
        send(&producer, tables, &table.fqn, table_codec.encode(table)?)?;
    }
    let asset_codec = runtime.block_on(RecordCodec::for_topic(registry.clone(), DAGSTER_ASSETS))?;
    for asset in &work.assets {
        send(
            &producer,
            assets,
            &asset.kafka_key(),
            asset_codec.encode(asset)?,
        )?;
    }
    let event_codec = runtime.block_on(RecordCodec::for_topic(registry.clone(), DAGSTER_EVENTS))?;
    for event in &work.events {
        let key = event.run_id.clone().unwrap_or_default();
        send(&producer, events, &key, event_codec.encode(event)?)?;
    }
    producer.flush(Duration::from_secs(60))?;

    let group = format!("lt-throughput-{suffix}");
    let binary = std::env::var_os("LINEAGE_BUS_BIN")
        .map_or_else(|| root.join("target/release/lineage-bus"), PathBuf::from);
    ensure!(
        binary.exists(),
        "{} not found: `cargo build --release --bin lineage-bus` (or set LINEAGE_BUS_BIN)",
        binary.display()
    );
    let mut child = Command::new(&binary)
        .arg("process")
        .env(
            "LINEAGE_BUS__KAFKA__BOOTSTRAP_SERVERS",
            &kafka.bootstrap_servers,
        )
        .env(
            "LINEAGE_BUS__SCHEMA_REGISTRY__URL",
            env("SCHEMA_REGISTRY_URL")?,
        )
        .env("LINEAGE_BUS__ADMIN__LISTEN", "127.0.0.1:0")
        .env("LINEAGE_BUS__PROCESS__GROUP", &group)
        .env("LINEAGE_BUS__PROCESS__TRANSACTIONAL_ID", &group)
        .env("LINEAGE_BUS__PROCESS__TOPICS__EVENTS", events)
        .env("LINEAGE_BUS__PROCESS__TOPICS__ASSETS", assets)
        .env("LINEAGE_BUS__PROCESS__TOPICS__TABLES", tables)
        .env("LINEAGE_BUS__PROCESS__TOPICS__OPENLINEAGE", openlineage)
        .env("LINEAGE_BUS__PROCESS__TOPICS__OPENMETADATA", openmetadata)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let measured = measure(&mut child, kafka, &group, events, work.events.len());
    let _ = child.kill();
    let _ = child.wait();
    measured
}

fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    key: &str,
    payload: Vec<u8>,
) -> Result<()> {
    let mut record = BaseRecord::to(topic).key(key).payload(&payload);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                back,
            )) => {
                record = back;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

/// Follows the group's committed offset: from the first commit to `total`.
fn measure(
    child: &mut Child,
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
    total: usize,
) -> Result<(f64, f64)> {
    let consumer: BaseConsumer = kafka.consumer_config("load-test-probe", group).create()?;
    let mut partitions = TopicPartitionList::new();
    partitions.add_partition(topic, 0);
    let committed = || -> i64 {
        consumer
            .committed_offsets(partitions.clone(), Duration::from_secs(5))
            .ok()
            .and_then(|list| {
                list.find_partition(topic, 0)
                    .and_then(|p| p.offset().to_raw())
            })
            .unwrap_or(-1)
    };
    let deadline = Instant::now() + PROCESS_TIMEOUT;
    let mut start: Option<(Instant, f64, i64)> = None;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("the processor exited early: {status}");
        }
        ensure!(
            Instant::now() < deadline,
            "the processor did not finish in {PROCESS_TIMEOUT:?}"
        );
        let offset = committed();
        if offset > 0 && start.is_none() {
            start = Some((Instant::now(), cpu_seconds(child.id())?, offset));
        }
        if let Some((at, cpu, from)) = start
            && offset >= total as i64
        {
            let records = (offset - from) as f64;
            let wall = at.elapsed().as_secs_f64();
            let cpu = cpu_seconds(child.id())? - cpu;
            ensure!(
                records > 0.0 && cpu > 0.0,
                "nothing measured (one batch held everything)"
            );
            return Ok((records / cpu, records / wall));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// CPU time (user + system, every thread) of process `pid`, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // fields after the parenthesized command: state is field 3, utime 14, stime 15
    let rest = stat.rsplit_once(')').context("malformed /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0) // USER_HZ: 100 on Linux
}

async fn create_topics(kafka: &KafkaConfig, topics: &[String]) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = kafka.client_config("load-test").create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)))
        .collect();
    for result in admin.create_topics(&new, &AdminOptions::new()).await? {
        result.map_err(|(topic, e)| anyhow::anyhow!("creating {topic}: {e}"))?;
    }
    Ok(())
}

async fn delete_topics(kafka: &KafkaConfig, topics: &[String]) {
    if let Ok(admin) = kafka
        .client_config("load-test")
        .create::<AdminClient<DefaultClientContext>>()
    {
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        let _ = admin.delete_topics(&names, &AdminOptions::new()).await;
    }
}

/// The peer's records/s on the same events (one Python thread).
fn peer_rate(root: &Path, events: &[DagsterEvent]) -> Result<f64> {
    let file =
        std::env::temp_dir().join(format!("processor_throughput-{}.jsonl", std::process::id()));
    let mut text = String::new();
    for event in events {
        text.push_str(&peer_row(event).to_string());
        text.push('\n');
    }
    std::fs::write(&file, text)?;
    let setup = Command::new(root.join("testbed/peer/setup.sh")).output()?;
    ensure!(
        setup.status.success(),
        "testbed/peer/setup.sh failed: {}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let python = String::from_utf8(setup.stdout)?.trim().to_owned();
    let output = Command::new("timeout")
        .arg("600")
        .arg(python)
        .args(["-W", "ignore"])
        .arg(root.join("testbed/peer/emit_events.py"))
        .args(["--bench", "--input"])
        .arg(&file)
        .output()?;
    let _ = std::fs::remove_file(&file);
    ensure!(
        output.status.success(),
        "the peer's bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let seconds = report["seconds"].as_f64().context("no seconds")?;
    let count = report["events"].as_f64().context("no events")?;
    println!("  (peer emitted {} OpenLineage events)", report["emitted"]);
    Ok(count / seconds)
}

/// An event as the peer bench reads it (the fields its handlers use).
fn peer_row(event: &DagsterEvent) -> serde_json::Value {
    let kind = match event.event_type {
        T::RunEnqueued => "PIPELINE_ENQUEUED",
        T::RunStarting => "PIPELINE_STARTING",
        T::RunStart => "PIPELINE_START",
        T::RunSuccess => "PIPELINE_SUCCESS",
        T::RunFailure => "PIPELINE_FAILURE",
        T::RunCanceled => "PIPELINE_CANCELED",
        T::StepStart => "STEP_START",
        T::StepSuccess => "STEP_SUCCESS",
        T::StepFailure => "STEP_FAILURE",
        T::StepOutput => "STEP_OUTPUT",
        T::AssetMaterializationPlanned => "ASSET_MATERIALIZATION_PLANNED",
        T::AssetMaterialization => "ASSET_MATERIALIZATION",
        T::AssetObservation => "ASSET_OBSERVATION",
        T::AssetCheckEvaluationPlanned => "ASSET_CHECK_EVALUATION_PLANNED",
        T::AssetCheckEvaluation => "ASSET_CHECK_EVALUATION",
        _ => event.raw_event_type.as_str(),
    };
    let metadata: Vec<serde_json::Value> = event
        .metadata
        .iter()
        .map(|entry| match entry.kind {
            MetadataKind::TableSchema => json!({
                "key": entry.label, "kind": "schema",
                "columns": entry.table_schema.iter().flat_map(|s| s.columns.iter().map(|c| c.name.clone())).collect::<Vec<_>>(),
            }),
            MetadataKind::ColumnLineage => json!({
                "key": entry.label, "kind": "lineage",
                "deps": entry.column_lineage.iter().flat_map(|l| l.columns.iter().filter_map(|c| {
                    c.deps.first().map(|d| (c.column.clone(), json!({"asset": d.asset_key, "column": d.column})))
                })).collect::<serde_json::Map<_, _>>(),
            }),
            _ => json!({"key": entry.label, "kind": "int", "value": entry.int.unwrap_or_default()}),
        })
        .collect();
    json!({
        "type": kind,
        "run": event.run_id,
        "job": event.job_name,
        "step": event.step_key,
        "asset": event.asset_key,
        "partition": event.partition,
        "timestamp": event.timestamp_ms as f64 / 1000.0,
        "metadata": metadata,
        "check": event.check.as_ref().map(|c| c.name.clone()),
        "passed": event.check.as_ref().and_then(|c| c.passed),
    })
}
