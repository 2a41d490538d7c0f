//! `produce dagster` with `source = "sqlite"` against a real Dagster's SQLite storage: the
//! default run-sharded layout (`<run_id>.db` per run, `.db` for runless events, `index.db`
//! mirroring asset, check and run-status events) and the consolidated one (`event_log.db`).
//!
//! The storages are filled by the real Dagster of the testbed venv with
//! `testbed/dagster/run_jobs_sqlite.sh` (`make test` runs it once for each layout; the homes are
//! `DAGSTER_SQLITE_HOME` and `DAGSTER_SQLITE_CONSOLIDATED_HOME` from `testbed/env.sh`). Tests that
//! add runs or rows work on copies in a temporary directory; every test has its own topics and
//! tenant.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use common::DagsterTopics as Topics;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lineage_producers::dagster::{DagsterProducerConfig, EventLogSource, SqliteLayout};
use lineage_schemas::records::{DagsterEvent, DagsterEventType, SourceCursor, SourceKind};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use rusqlite::{Connection, OpenFlags};

/// (shard, storage id): the run id for a run shard, `""` for the runless shard and for the
/// consolidated database.
type Position = (String, i64);

/// What Dagster stored for one row: run id and `dagster_event_type`.
type Stored = (String, Option<String>);

/// The event-log directory of the fixture home named by `var`.
fn fixture(var: &str) -> PathBuf {
    let dir = PathBuf::from(common::service_env(var)).join("history/runs");
    assert!(
        dir.is_dir(),
        "{} is missing: run testbed/dagster/run_jobs_sqlite.sh --if-empty (and with \
         --layout consolidated), or `make test`",
        dir.display()
    );
    dir
}

fn open_read_only(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// The databases of `dir` holding events, with their shard names (not the index).
fn shard_files(dir: &Path, layout: SqliteLayout) -> Vec<(String, PathBuf)> {
    if layout == SqliteLayout::Consolidated {
        return vec![(String::new(), dir.join("event_log.db"))];
    }
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.strip_suffix(".db")?.to_owned();
            (name != "index").then_some((name, path))
        })
        .collect();
    files.sort();
    files
}

/// Every event-log row Dagster stored in `dir`.
fn stored_rows(dir: &Path, layout: SqliteLayout) -> BTreeMap<Position, Stored> {
    let mut rows = BTreeMap::new();
    for (shard, path) in shard_files(dir, layout) {
        let connection = open_read_only(&path);
        let mut statement = connection
            .prepare("SELECT id, run_id, dagster_event_type FROM event_logs")
            .unwrap();
        let shard_rows = statement
            .query_map([], |row| {
                Ok((
                    (shard.clone(), row.get::<_, i64>(0)?),
                    (row.get::<_, String>(1)?, row.get::<_, Option<String>>(2)?),
                ))
            })
            .unwrap();
        for row in shard_rows {
            let (position, stored) = row.unwrap();
            rows.insert(position, stored);
        }
    }
    rows
}

/// The last id of each shard of `stored`.
fn last_ids(stored: &BTreeMap<Position, Stored>) -> HashMap<String, i64> {
    let mut last = HashMap::new();
    for (shard, id) in stored.keys() {
        let entry = last.entry(shard.clone()).or_insert(0);
        *entry = (*entry).max(*id);
    }
    last
}

fn sqlite_config(dir: &Path, layout: SqliteLayout, topics: &Topics) -> DagsterProducerConfig {
    DagsterProducerConfig {
        source: EventLogSource::Sqlite,
        sqlite_layout: layout,
        sqlite_storage_dir: Some(dir.to_owned()),
        poll_interval: Duration::from_millis(20),
        events_topic: topics.events.clone(),
        cursor_topic: topics.cursors.clone(),
        dead_letter_topic: topics.dead_letters.clone(),
        ..DagsterProducerConfig::default()
    }
}

/// The latest committed cursor of every key of the cursor topic.
async fn cursors(topic: &str) -> HashMap<String, SourceCursor> {
    common::read_to_end(topic)
        .await
        .into_iter()
        .filter_map(|(key, value)| Some((key, common::decode::<SourceCursor>(&value?))))
        .collect()
}

/// Waits until the committed cursors of `tenant` cover `last` (shard → last id; the
/// consolidated layout has a single position under the main key).
async fn wait_for_cursors(
    topic: &str,
    tenant: &str,
    layout: SqliteLayout,
    last: &HashMap<String, i64>,
    timeout: Duration,
) -> HashMap<String, SourceCursor> {
    let main = format!("producer.dagster/{tenant}");
    let deadline = Instant::now() + timeout;
    loop {
        let committed = cursors(topic).await;
        let position = |key: &str| committed.get(key).map_or(0, |c| c.position);
        let covered = match layout {
            SqliteLayout::Consolidated => position(&main) >= last[""],
            SqliteLayout::RunSharded => last
                .iter()
                .all(|(shard, id)| position(&format!("{main}/shard/{shard}")) >= *id),
        };
        if covered {
            return committed;
        }
        assert!(
            Instant::now() < deadline,
            "cursors do not cover the event log within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A consumer of `topic`'s single partition from its beginning (read_committed).
fn cursor_stream(topic: &str) -> StreamConsumer {
    let consumer: StreamConsumer = common::kafka()
        .consumer_config("test-reader", &format!("test-{}", uuid::Uuid::new_v4()))
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    consumer
}

/// The events topic, read to its end: (key, event) in log order per partition.
async fn events(topic: &str) -> Vec<(String, DagsterEvent)> {
    common::read_to_end(topic)
        .await
        .into_iter()
        .map(|(key, value)| (key, common::decode::<DagsterEvent>(&value.unwrap())))
        .collect()
}

/// The position of a published event.
fn position_of(event: &DagsterEvent) -> Position {
    (
        event.source.shard.clone().unwrap_or_default(),
        event.source.storage_id.unwrap(),
    )
}

/// Asserts `received` holds each of `stored`'s rows exactly once, each key's events of one
/// shard in id order (a run's events share a key, so this is the run's order).
fn assert_exact(received: &[(String, DagsterEvent)], stored: &BTreeMap<Position, Stored>) {
    let mut seen: BTreeMap<Position, usize> = BTreeMap::new();
    let mut last: HashMap<(&str, String), i64> = HashMap::new();
    for (key, event) in received {
        let position = position_of(event);
        *seen.entry(position.clone()).or_default() += 1;
        if let Some(previous) = last.insert((key.as_str(), position.0.clone()), position.1) {
            assert!(
                previous < position.1,
                "key {key}, shard {:?}: {previous} before {}",
                position.0,
                position.1
            );
        }
        assert_eq!(event.source.kind, SourceKind::SqliteEventLog);
        assert_eq!(key, &event.kafka_key());
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "published twice: {duplicated:?}");
    let missing: Vec<_> = stored.keys().filter(|p| !seen.contains_key(*p)).collect();
    assert!(missing.is_empty(), "never published: {missing:?}");
    let extra: Vec<_> = seen.keys().filter(|p| !stored.contains_key(*p)).collect();
    assert!(extra.is_empty(), "published but not stored: {extra:?}");
}

/// The checks shared by the two layouts' sample-job tests.
fn assert_sample_jobs(received: &[(String, DagsterEvent)], stored: &BTreeMap<Position, Stored>) {
    assert_exact(received, stored);
    let mut runless = 0;
    let mut partitioned = 0;
    for (key, event) in received {
        let (run_id, stored_type) = &stored[&position_of(event)];
        assert_eq!(event.run_id.as_deref().unwrap_or(""), run_id.as_str());
        assert_eq!(
            &event.raw_event_type,
            stored_type.as_deref().unwrap_or_default()
        );
        if run_id.is_empty() {
            runless += 1;
            assert!(event.asset_key.is_some(), "runless events name an asset");
            assert_ne!(key, "", "runless events are keyed by asset");
        }
        partitioned += usize::from(event.partition.is_some());
    }
    assert!(runless >= 6, "the runless reports: {runless}");
    assert!(partitioned > 0, "the partitioned runs");
    let types: std::collections::HashSet<_> = received.iter().map(|(_, e)| e.event_type).collect();
    for expected in [
        DagsterEventType::RunStart,
        DagsterEventType::RunSuccess,
        DagsterEventType::RunFailure,
        DagsterEventType::RunCanceling,
        DagsterEventType::RunCanceled,
        DagsterEventType::StepFailure,
        DagsterEventType::StepUpForRetry,
        DagsterEventType::StepRestarted,
        DagsterEventType::AssetMaterializationPlanned,
        DagsterEventType::AssetMaterialization,
        DagsterEventType::AssetObservation,
        DagsterEventType::AssetCheckEvaluation,
        DagsterEventType::LogMessage,
        DagsterEventType::Other,
    ] {
        assert!(types.contains(&expected), "{expected:?} missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_sharded_sqlite_event_log_lands_in_kafka_exactly() {
    let dir = fixture("DAGSTER_SQLITE_HOME");
    let stored = stored_rows(&dir, SqliteLayout::RunSharded);
    let last = last_ids(&stored);
    assert!(last.contains_key(""), "the runless shard .db exists");
    let mirrored: i64 = open_read_only(&dir.join("index.db"))
        .query_row("SELECT count(*) FROM event_logs", [], |row| row.get(0))
        .unwrap();
    assert!(
        mirrored > 0,
        "index.db mirrors events (which must not be published twice)"
    );

    let topics = common::dagster_topics("dagster-sqlite", 3).await;
    let tenant = format!("it-sqlite-{}", uuid::Uuid::new_v4().simple());
    let producer = common::start_dagster_producer(
        sqlite_config(&dir, SqliteLayout::RunSharded, &topics),
        &tenant,
    );
    let committed = wait_for_cursors(
        &topics.cursors,
        &tenant,
        SqliteLayout::RunSharded,
        &last,
        Duration::from_secs(60),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await; // duplicates would show
    assert!(
        *producer.ready.borrow(),
        "ready while the storage is readable"
    );
    producer.stop().await;
    let received = events(&topics.events).await;
    assert_sample_jobs(&received, &stored);
    println!(
        "{} rows in {} shards published once; index.db holds {mirrored} mirrors, not published",
        stored.len(),
        last.len()
    );

    let main = &committed[&format!("producer.dagster/{tenant}")];
    assert_eq!(main.source, "sqlite:run-sharded");
    assert_eq!(main.position, stored.len() as i64, "rows published");
    for (shard, id) in &last {
        let cursor = &committed[&format!("producer.dagster/{tenant}/shard/{shard}")];
        assert_eq!(
            (cursor.position, cursor.tenant.as_str()),
            (*id, tenant.as_str())
        );
    }
    assert!(
        common::read_to_end(&topics.dead_letters).await.is_empty(),
        "no dead letter"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consolidated_sqlite_event_log_lands_in_kafka_exactly() {
    let dir = fixture("DAGSTER_SQLITE_CONSOLIDATED_HOME");
    let stored = stored_rows(&dir, SqliteLayout::Consolidated);
    let last = last_ids(&stored);
    let topics = common::dagster_topics("dagster-sqlite-cons", 3).await;
    let tenant = format!("it-sqlite-cons-{}", uuid::Uuid::new_v4().simple());
    let producer = common::start_dagster_producer(
        sqlite_config(&dir, SqliteLayout::Consolidated, &topics),
        &tenant,
    );
    let committed = wait_for_cursors(
        &topics.cursors,
        &tenant,
        SqliteLayout::Consolidated,
        &last,
        Duration::from_secs(60),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    producer.stop().await;
    let received = events(&topics.events).await;
    assert_sample_jobs(&received, &stored);
    assert!(
        received.iter().all(|(_, e)| e.source.shard.is_none()),
        "one database, no shard"
    );
    assert_eq!(committed.len(), 1, "a single cursor");
    let main = &committed[&format!("producer.dagster/{tenant}")];
    assert_eq!(
        (main.source.as_str(), main.position),
        ("sqlite:consolidated", last[""])
    );
}

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A Dagster home whose event-log storage (`history/runs`, returned with the row count) holds
/// `shards` databases of `rows` rows each (one `event_log.db` for the consolidated layout),
/// made of the real rows of the run-sharded fixture: each is a copy of a real shard (`VACUUM
/// INTO`: Dagster's schema), emptied and refilled in WAL mode with the real rows in turn, ids
/// from 1. The run storage `history/runs.db` is the fixture's.
fn synthetic_storage(
    home: &Path,
    layout: SqliteLayout,
    shards: usize,
    rows: usize,
) -> (PathBuf, usize) {
    let fixture = fixture("DAGSTER_SQLITE_HOME");
    let dir = home.join("history/runs");
    std::fs::create_dir_all(&dir).unwrap();
    open_read_only(&fixture.with_extension("db"))
        .execute(
            "VACUUM INTO ?1",
            [home.join("history/runs.db").to_str().unwrap()],
        )
        .unwrap();
    let files = shard_files(&fixture, SqliteLayout::RunSharded);
    let mut template: Vec<(String, String, Option<String>)> = Vec::new();
    for (_, path) in &files {
        let connection = open_read_only(path);
        let mut statement = connection
            .prepare("SELECT run_id, event, dagster_event_type FROM event_logs ORDER BY id")
            .unwrap();
        let shard_rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap();
        template.extend(shard_rows.map(Result::unwrap));
    }
    let names: Vec<String> = match layout {
        SqliteLayout::Consolidated => vec!["event_log".to_owned()],
        SqliteLayout::RunSharded => (0..shards)
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect(),
    };
    for name in &names {
        let path = dir.join(format!("{name}.db"));
        open_read_only(&files[0].1)
            .execute("VACUUM INTO ?1", [path.to_str().unwrap()])
            .unwrap();
        let mut connection = Connection::open(&path).unwrap();
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .unwrap();
        let transaction = connection.transaction().unwrap();
        transaction.execute("DELETE FROM event_logs", []).unwrap();
        {
            let mut insert = transaction
                .prepare(
                    "INSERT INTO event_logs (run_id, event, dagster_event_type) VALUES (?1, ?2, ?3)",
                )
                .unwrap();
            for (run_id, event, kind) in template.iter().cycle().take(rows) {
                insert.execute((run_id, event, kind)).unwrap();
            }
        }
        transaction.commit().unwrap();
    }
    (dir, names.len() * rows)
}

/// `lineage-bus produce dagster` as a process reading the SQLite storage in `dir`.
fn spawn_role(dir: &Path, topics: &Topics, tenant: &str, batch_size: u32) -> Child {
    let source = [
        ("SOURCE", "sqlite".as_ref()),
        ("SQLITE_STORAGE_DIR", dir.as_os_str()),
    ];
    common::spawn_dagster_role(&source, topics, tenant, batch_size)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_drain_and_restart_leave_the_same_topic_content() {
    let home = TempDir::new("lineage-bus-sqlite-kill");
    let (dir, total) = synthetic_storage(&home.0, SqliteLayout::RunSharded, 20, 2_000);
    let stored = stored_rows(&dir, SqliteLayout::RunSharded);
    assert_eq!(stored.len(), total);
    let last = last_ids(&stored);
    let topics = common::dagster_topics("dagster-sqlite-kill", 3).await;
    let tenant = format!("it-sqlite-kill-{}", uuid::Uuid::new_v4().simple());

    // A committed transaction is visible on the cursor topic: kill right after the first.
    let consumer = cursor_stream(&topics.cursors);
    let spawned = Instant::now();
    let mut first = spawn_role(&dir, &topics, &tenant, 100);
    tokio::time::timeout(Duration::from_secs(60), consumer.recv())
        .await
        .expect("a transaction is committed within 60 s")
        .unwrap();
    println!("first commit seen {:?} after the spawn", spawned.elapsed());
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let committed = events(&topics.events).await.len();
    assert!(
        0 < committed && committed < total,
        "the kill must land mid-drain: {committed} of {total} committed"
    );
    println!("killed with {committed} of {total} rows committed");

    let mut second = spawn_role(&dir, &topics, &tenant, 100);
    wait_for_cursors(
        &topics.cursors,
        &tenant,
        SqliteLayout::RunSharded,
        &last,
        Duration::from_secs(120),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert_exact(&events(&topics.events).await, &stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_started_while_the_producer_runs_are_picked_up() {
    // A copy of the fixture home, to which Dagster adds a second set of runs.
    let home = TempDir::new("lineage-bus-sqlite-live");
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", common::service_env("DAGSTER_SQLITE_HOME")))
        .arg(&home.0)
        .status()
        .unwrap();
    assert!(status.success());
    let dir = home.0.join("history/runs");
    let before = stored_rows(&dir, SqliteLayout::RunSharded);
    let topics = common::dagster_topics("dagster-sqlite-live", 3).await;
    let tenant = format!("it-sqlite-live-{}", uuid::Uuid::new_v4().simple());
    let producer = common::start_dagster_producer(
        sqlite_config(&dir, SqliteLayout::RunSharded, &topics),
        &tenant,
    );
    wait_for_cursors(
        &topics.cursors,
        &tenant,
        SqliteLayout::RunSharded,
        &last_ids(&before),
        Duration::from_secs(60),
    )
    .await;

    // Dagster writes new shards (and more runless events) while the producer reads them.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("testbed/dagster/run_jobs_sqlite.sh");
    let home_arg = home.0.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(script)
            .arg("--home")
            .arg(home_arg)
            .stderr(Stdio::inherit())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "Dagster's runs went as expected while the producer read: {summary}"
    );
    let after = stored_rows(&dir, SqliteLayout::RunSharded);
    let new_shards = last_ids(&after).len() - last_ids(&before).len();
    assert!(new_shards >= 7, "new runs: {new_shards} new shards");
    wait_for_cursors(
        &topics.cursors,
        &tenant,
        SqliteLayout::RunSharded,
        &last_ids(&after),
        Duration::from_secs(60),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    producer.stop().await;
    assert_exact(&events(&topics.events).await, &after);
    println!(
        "{} rows before, {} after ({new_shards} new shards), all published once",
        before.len(),
        after.len()
    );
}

/// Drain throughput of a large SQLite event log, both layouts: 50,000 real Dagster rows
/// (copied) in 25 run shards, then in one consolidated database. Run in release:
/// `cargo test --release --test dagster_producer_sqlite -- --ignored --nocapture drain_throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run in release with --ignored"]
async fn drain_throughput() {
    for (layout, shards) in [
        (SqliteLayout::RunSharded, 25),
        (SqliteLayout::Consolidated, 1),
    ] {
        let home = TempDir::new("lineage-bus-sqlite-drain");
        let (dir, total) = synthetic_storage(&home.0, layout, shards, 50_000 / shards);
        let topics = common::dagster_topics("dagster-sqlite-drain", 12).await;
        let tenant = format!("it-sqlite-drain-{}", uuid::Uuid::new_v4().simple());
        // The main cursor of each committed transaction, as it becomes visible.
        let main = format!("producer.dagster/{tenant}");
        let cursors = cursor_stream(&topics.cursors);
        let started = Instant::now();
        let producer =
            common::start_dagster_producer(sqlite_config(&dir, layout, &topics), &tenant);
        let mut first: Option<(Instant, i64)> = None;
        let mut transactions = 0;
        loop {
            let message = tokio::time::timeout(Duration::from_secs(300), cursors.recv())
                .await
                .expect("the drain ends within 300 s")
                .unwrap();
            if message.key() != Some(main.as_bytes()) {
                continue;
            }
            let cursor: SourceCursor = common::decode(message.payload().unwrap());
            transactions += 1;
            first.get_or_insert((Instant::now(), cursor.position));
            if cursor.position >= total as i64 {
                break;
            }
        }
        let finished = Instant::now();
        producer.stop().await;
        let (first_at, first_position) = first.unwrap();
        let drain = finished - first_at;
        println!(
            "{layout:?}: {total} rows from {shards} database(s) in {transactions} transactions: \
             {:.0} records/s after the first commit ({:.2} s), {:.0} records/s including \
             start-up ({:.2} s)",
            (total as i64 - first_position) as f64 / drain.as_secs_f64(),
            drain.as_secs_f64(),
            total as f64 / (finished - started).as_secs_f64(),
            (finished - started).as_secs_f64()
        );
        assert_eq!(events(&topics.events).await.len(), total);
    }
}
