//! `produce dagster` on Dagster's SQLite storage puts each run's tags, read from the run
//! storage `history/runs.db` (Dagster's event log does not hold them), on the run's
//! run-lifecycle events, in both layouts. The fixtures are the homes that
//! `testbed/dagster/run_jobs_sqlite.sh` fills (`DAGSTER_SQLITE_HOME`,
//! `DAGSTER_SQLITE_CONSOLIDATED_HOME`); their sample runs are tagged with `team` and
//! `dagster/partition`.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lineage_producers::dagster::{DagsterProducerConfig, EventLogSource, SqliteLayout};
use lineage_schemas::records::{DagsterEvent, DagsterEventType};
use rusqlite::{Connection, OpenFlags};

type Tags = BTreeMap<String, String>;

/// The fixture home named by `var` and its runs' tags (every run, tagged or not).
fn fixture(var: &str) -> (PathBuf, BTreeMap<String, Tags>) {
    let home = PathBuf::from(common::service_env(var));
    let runs_db = home.join("history/runs.db");
    assert!(
        runs_db.is_file(),
        "{} is missing: run testbed/dagster/run_jobs_sqlite.sh --if-empty (and with \
         --layout consolidated), or `make test`",
        runs_db.display()
    );
    let db = Connection::open_with_flags(&runs_db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut tags: BTreeMap<String, Tags> = BTreeMap::new();
    let mut runs = db.prepare("SELECT run_id FROM runs").unwrap();
    for run in runs.query_map([], |row| row.get::<_, String>(0)).unwrap() {
        tags.insert(run.unwrap(), Tags::new());
    }
    let mut rows = db
        .prepare("SELECT run_id, key, value FROM run_tags")
        .unwrap();
    let rows = rows
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (run_id, key, value) = row.unwrap();
        tags.entry(run_id).or_default().insert(key, value);
    }
    (home.join("history/runs"), tags)
}

/// Runs the producer on the fixture until every run's last run event is published; returns
/// the run events.
async fn run_events(
    var: &str,
    layout: SqliteLayout,
) -> (BTreeMap<String, Tags>, Vec<DagsterEvent>) {
    let (dir, tags) = fixture(var);
    let topics = common::dagster_topics("dagster-sqlite-tags", 3).await;
    let tenant = format!("it-{}", uuid::Uuid::new_v4().simple());
    let config = DagsterProducerConfig {
        source: EventLogSource::Sqlite,
        sqlite_layout: layout,
        sqlite_storage_dir: Some(dir),
        poll_interval: Duration::from_millis(20),
        events_topic: topics.events.clone(),
        cursor_topic: topics.cursors.clone(),
        dead_letter_topic: topics.dead_letters.clone(),
        ..DagsterProducerConfig::default()
    };
    let producer = common::start_dagster_producer(config, &tenant);
    let deadline = Instant::now() + Duration::from_secs(120);
    let ended = |e: &DagsterEvent| {
        matches!(
            e.event_type,
            DagsterEventType::RunSuccess
                | DagsterEventType::RunFailure
                | DagsterEventType::RunCanceled
        )
    };
    let events = loop {
        let events: Vec<DagsterEvent> = common::read_to_end(&topics.events)
            .await
            .into_iter()
            .map(|(_, value)| common::decode::<DagsterEvent>(&value.unwrap()))
            .filter(|e| e.event_type.is_run_event())
            .collect();
        if events.iter().filter(|e| ended(e)).count() >= tags.len() {
            break events;
        }
        assert!(
            Instant::now() < deadline,
            "the producer did not drain the fixture"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    producer.stop().await;
    (tags, events)
}

fn assert_tagged(layout: &str, tags: &BTreeMap<String, Tags>, events: &[DagsterEvent]) {
    let mut with = BTreeMap::<&str, usize>::new();
    for event in events {
        let run_id = event.run_id.as_ref().unwrap();
        assert_eq!(
            &event.tags, &tags[run_id],
            "{layout}: {:?} of run {run_id}",
            event.event_type
        );
        for key in ["team", "dagster/partition"] {
            *with.entry(key).or_default() += usize::from(event.tags.contains_key(key));
        }
    }
    println!("{layout}: {} run events checked, {with:?}", events.len());
    assert!(
        with["team"] > 0 && with["dagster/partition"] > 0,
        "{layout}: {with:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_sharded_run_events_carry_the_run_s_tags() {
    let (tags, events) = run_events("DAGSTER_SQLITE_HOME", SqliteLayout::RunSharded).await;
    assert_tagged("run-sharded", &tags, &events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consolidated_run_events_carry_the_run_s_tags() {
    let (tags, events) = run_events(
        "DAGSTER_SQLITE_CONSOLIDATED_HOME",
        SqliteLayout::Consolidated,
    )
    .await;
    assert_tagged("consolidated", &tags, &events);
}
