//! `produce dagster` against the real testbed: the sample jobs' event log lands in Kafka
//! exactly, a kill -9 mid-drain loses and duplicates nothing, and late commits from
//! concurrent writers are neither missed nor duplicated.
//!
//! Every test writes to its own topics and tenant; the late-commit and kill tests use their
//! own `event_logs` table (same DDL as dagster-postgres) in a scratch schema of the database
//! `lineage_bus_scratch`, created here.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use common::{DagsterTopics as Topics, dagster_topics as topics};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lineage_processors::processor::{
    Codecs, LineageProcessor, LineageState, ProcessConfig, output_settings,
};
use lineage_producers::dagster::DagsterProducerConfig;
use lineage_schemas::records::{
    DagsterEvent, DagsterEventType, DeadLetter, DeadLetterKind, Origin, SourceCursor,
};
use lineage_schemas::{AvroRecord, RecordCodec};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio_postgres::{Client, NoTls};

const SCRATCH_DB: &str = "lineage_bus_scratch";

/// The testbed's PostgreSQL URL with another database name.
fn pg_url(database: &str) -> String {
    let dagster = common::service_env("DAGSTER_PG_URL");
    let (server, _) = dagster.rsplit_once('/').unwrap();
    format!("{server}/{database}")
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// A fresh `event_logs` table (dagster-postgres' DDL) in its own schema of the scratch
/// database; returns the database URL and the qualified table name.
async fn scratch_table() -> (String, String) {
    let admin = connect(&pg_url("postgres")).await;
    if let Err(error) = admin
        .batch_execute(&format!("CREATE DATABASE {SCRATCH_DB}"))
        .await
    {
        // Another test (or an earlier run) created it.
        let code = error.code().map(|c| c.code().to_owned());
        assert!(
            matches!(code.as_deref(), Some("42P04" | "23505")),
            "cannot create the scratch database: {error}"
        );
    }
    let url = pg_url(SCRATCH_DB);
    let schema = format!("s_{}", uuid::Uuid::new_v4().simple());
    connect(&url)
        .await
        .batch_execute(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.event_logs (
                 id BIGSERIAL PRIMARY KEY,
                 run_id VARCHAR(255),
                 event TEXT NOT NULL,
                 dagster_event_type TEXT,
                 timestamp TIMESTAMP,
                 step_key TEXT,
                 asset_key TEXT,
                 partition TEXT
             );
             CREATE INDEX ON {schema}.event_logs (run_id, id);"
        ))
        .await
        .unwrap();
    (url, format!("{schema}.event_logs"))
}

/// Drops the scratch schema of `table` (at the end of a passing test).
async fn drop_scratch(url: &str, table: &str) {
    let (schema, _) = table.split_once('.').unwrap();
    connect(url)
        .await
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// The real rows of the testbed's Dagster: (id, run_id, event, dagster_event_type).
async fn dagster_rows() -> Vec<(i64, String, String, Option<String>)> {
    connect(&common::service_env("DAGSTER_PG_URL"))
        .await
        .query(
            "SELECT id, run_id, event, dagster_event_type FROM event_logs ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

/// Fills `table` with at least `count` rows: the real Dagster rows, copied with new ids.
async fn fill_with_copies(url: &str, table: &str, count: usize) -> i64 {
    let real = dagster_rows().await;
    assert!(
        !real.is_empty(),
        "the testbed's Dagster has no events: run the sample jobs"
    );
    let client = connect(url).await;
    let (mut runs, mut events, mut types) = (Vec::new(), Vec::new(), Vec::new());
    for (_, run, event, kind) in real {
        runs.push(run);
        events.push(event);
        types.push(kind);
    }
    let copies = count.div_ceil(runs.len()) as i32;
    client
        .execute(
            &format!(
                "INSERT INTO {table} (run_id, event, dagster_event_type)
                 SELECT r.run_id, r.event, r.kind
                 FROM generate_series(1, $4) AS copy,
                      unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS r(run_id, event, kind, n)
                 ORDER BY copy, r.n"
            ),
            &[&runs, &events, &types, &copies],
        )
        .await
        .unwrap();
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

/// Unique topics for one test.
fn producer_config(url: &str, table: &str, topics: &Topics) -> DagsterProducerConfig {
    DagsterProducerConfig {
        postgres_url: Some(url.to_owned().into()),
        table: table.to_owned(),
        poll_interval: Duration::from_millis(20),
        events_topic: topics.events.clone(),
        cursor_topic: topics.cursors.clone(),
        dead_letter_topic: topics.dead_letters.clone(),
        ..DagsterProducerConfig::default()
    }
}

/// One record read back from the events topic.
#[derive(Debug)]
struct Received {
    partition: i32,
    key: String,
    event: DagsterEvent,
}

impl Received {
    fn storage_id(&self) -> i64 {
        self.event.source.storage_id.unwrap()
    }
}

/// Reads `topic` with read_committed from the beginning until `done` holds for what was
/// read, then `settle` longer (so duplicates would show); panics after `timeout`.
async fn read_until<T: AvroRecord>(
    topic: &str,
    timeout: Duration,
    settle: Duration,
    done: impl Fn(&[(i32, String, T)]) -> bool,
) -> Vec<(i32, String, T)> {
    let consumer: StreamConsumer = common::kafka()
        .consumer_config("test-reader", &format!("test-{}", uuid::Uuid::new_v4()))
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in metadata.topics()[0].partitions() {
        assignment
            .add_partition_offset(topic, partition.id(), Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let deadline = Instant::now() + timeout;
    let mut settle_until: Option<Instant> = None;
    let mut received = Vec::new();
    let mut stream = consumer.stream();
    loop {
        let now = Instant::now();
        if settle_until.is_some_and(|until| now >= until) {
            return received;
        }
        assert!(
            now < deadline,
            "{topic}: condition not met within {timeout:?} ({} records read)",
            received.len()
        );
        let wait = settle_until.unwrap_or(deadline).min(deadline) - now;
        if let Ok(Some(message)) = tokio::time::timeout(wait, stream.next()).await {
            let message = message.unwrap();
            let key = String::from_utf8(message.key().unwrap_or_default().to_vec()).unwrap();
            received.push((
                message.partition(),
                key,
                common::decode::<T>(message.payload().unwrap()),
            ));
        }
        if settle_until.is_none() && done(&received) {
            settle_until = Some(Instant::now() + settle);
        }
    }
}

async fn read_events(
    topic: &str,
    timeout: Duration,
    done: impl Fn(&[(i32, String, DagsterEvent)]) -> bool,
) -> Vec<Received> {
    read_until(topic, timeout, Duration::from_secs(2), done)
        .await
        .into_iter()
        .map(|(partition, key, event)| Received {
            partition,
            key,
            event,
        })
        .collect()
}

/// Storage ids of `received`, asserting none is duplicated and each partition is in
/// ascending storage-id order.
fn ids_checked(received: &[Received]) -> Vec<i64> {
    let mut seen = BTreeSet::new();
    let mut last_by_partition: HashMap<i32, i64> = HashMap::new();
    for record in received {
        let id = record.storage_id();
        assert!(seen.insert(id), "storage id {id} published twice");
        if let Some(last) = last_by_partition.insert(record.partition, id) {
            assert!(
                last < id,
                "partition {} out of order: {last} then {id}",
                record.partition
            );
        }
    }
    seen.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_jobs_event_log_lands_in_kafka_exactly() {
    let rows = dagster_rows().await;
    assert!(rows.len() > 100, "run testbed/dagster/run_jobs.sh first");
    let horizon = rows.last().unwrap().0;
    let topics = topics("dagster", 3).await;
    let tenant = format!("it-{}", uuid::Uuid::new_v4().simple());
    let producer = common::start_dagster_producer(
        producer_config(
            &common::service_env("DAGSTER_PG_URL"),
            "event_logs",
            &topics,
        ),
        &tenant,
    );
    let expected: BTreeMap<i64, _> = rows.into_iter().map(|row| (row.0, row)).collect();
    let received = read_events(&topics.events, Duration::from_secs(60), |got| {
        got.iter()
            .filter(|(_, _, e)| e.source.storage_id.unwrap() <= horizon)
            .count()
            >= expected.len()
    })
    .await;
    assert!(*producer.ready.borrow(), "ready while the database answers");
    producer.stop().await;

    let ids = ids_checked(&received);
    let published: Vec<i64> = ids.into_iter().filter(|id| *id <= horizon).collect();
    let stored: Vec<i64> = expected.keys().copied().collect();
    assert_eq!(
        published, stored,
        "exactly the stored ids, no gap, no extra"
    );
    let mut types = BTreeSet::new();
    let mut runless = 0;
    for record in received.iter().filter(|r| r.storage_id() <= horizon) {
        let (_, run_id, _, stored_type) = &expected[&record.storage_id()];
        let event = &record.event;
        assert_eq!(event.tenant, tenant);
        assert_eq!(event.run_id.as_deref().unwrap_or(""), run_id.as_str());
        assert_eq!(
            event.raw_event_type,
            stored_type.clone().unwrap_or_default(),
            "row {}",
            record.storage_id()
        );
        assert_eq!(record.key, event.kafka_key());
        if run_id.is_empty() {
            runless += 1;
            let asset_key = event.asset_key.as_ref().map(|key| key.join("/"));
            assert_eq!(
                Some(&record.key),
                asset_key.as_ref(),
                "runless events are keyed by asset (Dagster accepts an empty key part, so the key may be empty): {event:?}"
            );
        }
        types.insert(format!("{:?}", event.event_type));
    }
    assert!(runless > 0, "the sample jobs report runless events");
    for expected_type in [
        DagsterEventType::RunSuccess,
        DagsterEventType::RunFailure,
        DagsterEventType::RunCanceled,
        DagsterEventType::StepUpForRetry,
        DagsterEventType::AssetMaterialization,
        DagsterEventType::AssetCheckEvaluation,
        DagsterEventType::LogMessage,
        DagsterEventType::Other,
    ] {
        assert!(
            types.contains(&format!("{expected_type:?}")),
            "{expected_type:?} missing"
        );
    }
    // Each run's events are in one partition, in storage-id order (checked above).
    let mut partition_of_run: HashMap<&str, i32> = HashMap::new();
    for record in &received {
        if let Some(run) = record.event.run_id.as_deref() {
            let partition = *partition_of_run.entry(run).or_insert(record.partition);
            assert_eq!(
                partition, record.partition,
                "run {run} split across partitions"
            );
        }
    }
    let cursors = read_until::<SourceCursor>(
        &topics.cursors,
        Duration::from_secs(30),
        Duration::ZERO,
        |got| got.iter().any(|(_, _, c)| c.position >= horizon),
    )
    .await;
    let (_, key, cursor) = cursors.last().unwrap();
    assert_eq!(key, &format!("producer.dagster/{tenant}"));
    assert_eq!(cursor.source, "postgres:event_logs");
}

/// The run's tags are not in Dagster's event log but in its run storage: the producer puts
/// them on every run-lifecycle event (the sample jobs tag runs with `team` and
/// `dagster/partition`), and the processor's `{tag:KEY}` namespace template sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_events_carry_the_run_s_tags_and_feed_tag_namespaces() {
    let run_tags = common::dagster_finished_run_tags().await;
    let rows = dagster_rows().await;
    let horizon = rows.last().unwrap().0;
    let team_runs = run_tags.values().filter(|t| t.contains_key("team")).count();
    assert!(
        team_runs > 0,
        "run testbed/dagster/run_jobs.sh first (it tags runs with `team`)"
    );
    let topics = topics("dagster-tags", 3).await;
    let tenant = format!("it-{}", uuid::Uuid::new_v4().simple());
    let producer = common::start_dagster_producer(
        producer_config(
            &common::service_env("DAGSTER_PG_URL"),
            "event_logs",
            &topics,
        ),
        &tenant,
    );
    let received = read_events(&topics.events, Duration::from_secs(60), |got| {
        got.iter()
            .filter(|(_, _, e)| e.source.storage_id.unwrap() <= horizon)
            .count()
            >= rows.len()
    })
    .await;
    producer.stop().await;

    let mut events: Vec<DagsterEvent> = received
        .into_iter()
        .map(|r| r.event)
        .filter(|e| e.source.storage_id.unwrap() <= horizon)
        .collect();
    events.sort_by_key(|e| e.source.storage_id);
    let (mut checked, mut with_team) = (HashMap::<DagsterEventType, usize>::new(), 0);
    for event in &events {
        let Some(tags) = event.run_id.as_ref().and_then(|run| run_tags.get(run)) else {
            continue; // runless, or a run still going on (another test's)
        };
        if event.event_type.is_run_event() {
            assert_eq!(
                &event.tags, tags,
                "{:?} of run {:?}",
                event.event_type, event.run_id
            );
            *checked.entry(event.event_type).or_default() += 1;
            with_team += usize::from(event.tags.contains_key("team"));
        } else if !matches!(
            event.event_type,
            DagsterEventType::AssetMaterialization
                | DagsterEventType::AssetObservation
                | DagsterEventType::AssetFailedToMaterialize
        ) {
            assert!(event.tags.is_empty(), "{event:?} carries no run tags");
        }
    }
    println!("run events checked: {checked:?}, {with_team} with a team tag");
    for run_event in [
        DagsterEventType::RunEnqueued,
        DagsterEventType::RunStarting,
        DagsterEventType::RunStart,
        DagsterEventType::RunSuccess,
        DagsterEventType::RunFailure,
        DagsterEventType::RunCanceled,
    ] {
        assert!(checked.contains_key(&run_event), "no {run_event:?} checked");
    }
    assert!(
        with_team >= team_runs * 3,
        "every tagged run's enqueued/starting/start events"
    );

    // End to end: the processor names the run's job namespace after its `team` tag.
    let config = ProcessConfig {
        namespace_template: "{namespace}/{tag:team}".into(),
        ..ProcessConfig::default()
    };
    let registry = common::registry();
    let codecs = Codecs {
        events: RecordCodec::for_topic(registry.clone(), &config.topics.events)
            .await
            .unwrap(),
        operations: RecordCodec::for_topic(registry.clone(), &config.topics.openmetadata)
            .await
            .unwrap(),
        dead_letters: RecordCodec::for_topic(registry, lineage_schemas::catalog::DEAD_LETTER)
            .await
            .unwrap(),
    };
    let (_updates, receiver) = tokio::sync::mpsc::channel(1);
    let mut processor = LineageProcessor::new(
        LineageState::new(config.resolver.clone()),
        output_settings(&config).unwrap(),
        config.topics.clone(),
        Arc::new(codecs),
        receiver,
    );
    let team_of_job: HashMap<String, String> = events
        .iter()
        .filter_map(|e| {
            let team = e.tags.get("team")?;
            Some((e.job_name.clone()?, team.clone()))
        })
        .collect();
    let mut namespaced = 0;
    for (offset, event) in events.iter().enumerate() {
        let origin = Origin {
            topic: topics.events.clone(),
            partition: 0,
            offset: offset as i64,
        };
        for output in processor.handle(event, &origin).unwrap() {
            if output.topic != config.topics.openlineage {
                continue;
            }
            let ol: serde_json::Value = serde_json::from_slice(&output.payload.unwrap()).unwrap();
            let job = &ol["job"];
            if let Some(team) = job["name"].as_str().and_then(|name| team_of_job.get(name)) {
                assert_eq!(job["namespace"], format!("dagster/{team}"), "{ol}");
                namespaced += 1;
            }
        }
    }
    println!("{namespaced} OpenLineage events of tagged runs namespaced by their team");
    assert!(
        namespaced >= team_runs * 2,
        "START and COMPLETE of every tagged run: {namespaced}"
    );
}

/// `lineage-bus produce dagster` as a process.
fn spawn_role(url: &str, table: &str, topics: &Topics, tenant: &str, batch_size: u32) -> Child {
    let source = [("POSTGRES_URL", url.as_ref()), ("TABLE", table.as_ref())];
    common::spawn_dagster_role(&source, topics, tenant, batch_size)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_drain_and_restart_leave_no_gap_and_no_duplicate() {
    let (url, table) = scratch_table().await;
    let total = fill_with_copies(&url, &table, 40_000).await;
    let topics = topics("dagster-kill", 3).await;
    let tenant = format!("it-kill-{}", uuid::Uuid::new_v4().simple());

    let mut first = spawn_role(&url, &table, &topics, &tenant, 200);
    // Kill as soon as some transactions are committed.
    read_until::<SourceCursor>(
        &topics.cursors,
        Duration::from_secs(60),
        Duration::ZERO,
        |got| !got.is_empty(),
    )
    .await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let before_restart = read_events(&topics.events, Duration::from_secs(30), |_| true).await;
    let committed = before_restart.len() as i64;
    assert!(
        0 < committed && committed < total,
        "the kill must land mid-drain: {committed} of {total} committed"
    );

    println!("killed with {committed} of {total} rows committed");
    let mut second = spawn_role(&url, &table, &topics, &tenant, 200);
    let received = read_events(&topics.events, Duration::from_secs(120), |got| {
        got.len() as i64 >= total
    })
    .await;
    second.kill().unwrap();
    second.wait().unwrap();
    let ids = ids_checked(&received);
    assert_eq!(ids, (1..=total).collect::<Vec<_>>(), "every id once");
    drop_scratch(&url, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn late_commits_are_neither_missed_nor_duplicated() {
    let (url, table) = scratch_table().await;
    let template = dagster_rows().await.into_iter().next().unwrap().2;
    let topics = topics("dagster-late", 1).await;
    let tenant = format!("it-late-{}", uuid::Uuid::new_v4().simple());
    let producer = common::start_dagster_producer(
        DagsterProducerConfig {
            batch_size: 25,
            poll_interval: Duration::from_millis(5),
            ..producer_config(&url, &table, &topics)
        },
        &tenant,
    );
    // The producer is tailing (it polled once) before the writers start.
    let mut ready = producer.ready.clone();
    tokio::time::timeout(Duration::from_secs(60), ready.wait_for(|ready| *ready))
        .await
        .expect("the producer becomes ready")
        .unwrap();

    // A deterministic late commit: A draws an id, B draws a higher one and commits, the
    // producer sees B's row; only then A commits.
    let a = connect(&url).await;
    let b = connect(&url).await;
    let insert = format!("INSERT INTO {table} (run_id, event) VALUES ('', $1) RETURNING id");
    a.batch_execute("BEGIN").await.unwrap();
    let id_a: i64 = a.query_one(&insert, &[&template]).await.unwrap().get(0);
    let id_b: i64 = b.query_one(&insert, &[&template]).await.unwrap().get(0);
    assert!(id_a < id_b);
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.batch_execute("COMMIT").await.unwrap();

    // Then 8 concurrent writers holding transactions open for random times, committing out of
    // order, a fifth of them rolling back.
    let committed = Arc::new(std::sync::Mutex::new(vec![id_a, id_b]));
    let max_committed = Arc::new(AtomicI64::new(id_b));
    let late = Arc::new(AtomicUsize::new(1));
    let mut writers = Vec::new();
    for writer in 0..8u64 {
        let (url, insert, template) = (url.clone(), insert.clone(), template.clone());
        let (committed, max_committed, late) =
            (committed.clone(), max_committed.clone(), late.clone());
        writers.push(tokio::spawn(async move {
            let client = connect(&url).await;
            let mut seed = writer * 7919 + 17;
            for _ in 0..60 {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let hold = Duration::from_millis((seed >> 33) % 40);
                let rollback = (seed >> 20) % 5 == 0;
                client.batch_execute("BEGIN").await.unwrap();
                let id: i64 = client
                    .query_one(&insert, &[&template])
                    .await
                    .unwrap()
                    .get(0);
                tokio::time::sleep(hold).await;
                if rollback {
                    client.batch_execute("ROLLBACK").await.unwrap();
                } else {
                    client.batch_execute("COMMIT").await.unwrap();
                    if max_committed.fetch_max(id, Ordering::SeqCst) > id {
                        late.fetch_add(1, Ordering::SeqCst);
                    }
                    committed.lock().unwrap().push(id);
                }
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let mut expected = committed.lock().unwrap().clone();
    expected.sort_unstable();
    let last = *expected.last().unwrap();
    // Until every row arrived, or the newest did (a tail that skips late rows stops there).
    let received = read_events(&topics.events, Duration::from_secs(60), |got| {
        got.len() >= expected.len()
            || got
                .iter()
                .any(|(_, _, e)| e.source.storage_id == Some(last))
    })
    .await;
    producer.stop().await;
    let late = late.load(Ordering::SeqCst);
    assert!(
        late > 1,
        "the writers committed out of order ({late} late commits)"
    );
    let ids: Vec<i64> = received.iter().map(Received::storage_id).collect();
    assert_eq!(
        ids, expected,
        "every committed row once, in id order; no rolled-back id"
    );
    println!(
        "late commits: {late}; rows: {}; rolled back: {}",
        expected.len(),
        8 * 60 + 2 - expected.len()
    );
    drop_scratch(&url, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparseable_rows_go_to_the_dead_letter_topic_and_do_not_block() {
    let (url, table) = scratch_table().await;
    let template = dagster_rows().await.into_iter().next().unwrap().2;
    let client = connect(&url).await;
    for event in [
        template.as_str(),
        "{\"__class__\": \"EventLogEntry\", trunc",
        &template,
    ] {
        client
            .execute(
                &format!("INSERT INTO {table} (run_id, event) VALUES ('run-1', $1)"),
                &[&event],
            )
            .await
            .unwrap();
    }
    let topics = topics("dagster-dlq", 1).await;
    let tenant = format!("it-dlq-{}", uuid::Uuid::new_v4().simple());
    let producer = common::start_dagster_producer(producer_config(&url, &table, &topics), &tenant);
    let received = read_events(&topics.events, Duration::from_secs(60), |got| {
        got.len() >= 2
    })
    .await;
    let letters = read_until::<DeadLetter>(
        &topics.dead_letters,
        Duration::from_secs(30),
        Duration::from_secs(1),
        |got| !got.is_empty(),
    )
    .await;
    producer.stop().await;
    assert_eq!(
        ids_checked(&received),
        vec![1, 3],
        "the good rows pass the bad one"
    );
    assert_eq!(letters.len(), 1);
    let (_, key, letter) = &letters[0];
    assert_eq!(key, "run-1");
    assert_eq!(letter.component, "producer.dagster");
    assert_eq!(letter.error_kind, DeadLetterKind::MalformedInput);
    assert_eq!(letter.tenant.as_deref(), Some(tenant.as_str()));
    assert!(letter.reason.contains("storage id 2"), "{}", letter.reason);
    assert!(letter.reason.contains("invalid JSON"), "{}", letter.reason);
    assert_eq!(
        letter.source_position.as_deref(),
        Some(format!("postgres:{table}:2").as_str())
    );
    assert_eq!(
        letter.original_value.as_deref(),
        Some(&b"{\"__class__\": \"EventLogEntry\", trunc"[..])
    );
    drop_scratch(&url, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_while_postgres_is_unreachable_and_stops_cleanly() {
    let topics = topics("dagster-down", 1).await;
    let tenant = format!("it-down-{}", uuid::Uuid::new_v4().simple());
    let closed = format!(
        "postgresql://lineage:lineage@127.0.0.1:{}/dagster",
        common::free_port()
    );
    let producer =
        common::start_dagster_producer(producer_config(&closed, "event_logs", &topics), &tenant);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        !producer.task.is_finished(),
        "an unreachable database is retried, not fatal"
    );
    assert!(!*producer.ready.borrow(), "not ready without the database");
    producer.stop().await;
}

/// Drain throughput: a backlog of at least 50,000 rows (the real Dagster rows, copied with new
/// ids into a scratch table) from PostgreSQL into Kafka. Run in release:
/// `cargo test --release --test dagster_producer -- --ignored --nocapture drain_throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run in release with --ignored"]
async fn drain_throughput() {
    let (url, table) = scratch_table().await;
    let total = fill_with_copies(&url, &table, 50_000).await;
    let topics = topics("dagster-drain", 12).await;
    let tenant = format!("it-drain-{}", uuid::Uuid::new_v4().simple());
    lineage_bus_core::telemetry::init_logging(
        lineage_bus_core::telemetry::LogFormat::Text,
        "lineage_producers=debug",
    );
    let started = Instant::now();
    let producer = common::start_dagster_producer(producer_config(&url, &table, &topics), &tenant);
    // Time from the first committed cursor to the last, read from the cursor topic.
    let first_commit = Arc::new(std::sync::Mutex::new(None::<(Instant, i64)>));
    let seen_first = first_commit.clone();
    let cursors = read_until::<SourceCursor>(
        &topics.cursors,
        Duration::from_secs(120),
        Duration::ZERO,
        move |got| {
            if let Some((_, _, cursor)) = got.first() {
                seen_first
                    .lock()
                    .unwrap()
                    .get_or_insert((Instant::now(), cursor.position));
            }
            got.last().is_some_and(|(_, _, c)| c.position >= total)
        },
    )
    .await;
    let finished = Instant::now();
    producer.stop().await;
    let (first_at, first_position) = first_commit.lock().unwrap().unwrap();
    let drain = finished - first_at;
    let rate = (total - first_position) as f64 / drain.as_secs_f64();
    let overall = total as f64 / (finished - started).as_secs_f64();
    println!(
        "drained {total} rows in {} transactions: {rate:.0} records/s after the first commit \
         ({:.2} s), {overall:.0} records/s including start-up ({:.2} s)",
        cursors.len(),
        drain.as_secs_f64(),
        (finished - started).as_secs_f64()
    );
    let received = read_events(&topics.events, Duration::from_secs(60), |got| {
        got.len() as i64 >= total
    })
    .await;
    assert_eq!(ids_checked(&received).len() as i64, total);
    drop_scratch(&url, &table).await;
}
