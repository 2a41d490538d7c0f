//! The run's tags on its run-lifecycle events.
//!
//! Dagster's event log does not hold a run's tags (`RunEnqueuedData` carries only the code
//! location, repository and partition): user tags and Dagster's own (`dagster/partition`,
//! `dagster/schedule_name`, `dagster/backfill`, `.dagster/repository`, ...) live in the run
//! storage, table `run_tags (run_id, key, value)`. The event-log tails read them for the runs
//! of each batch, in one query, while the batch is built (before it is published with its
//! cursor), and every run-lifecycle event of the batch
//! ([`DagsterEventType::is_run_event`](lineage_schemas::records::DagsterEventType::is_run_event),
//! the events the processor takes a run's tags from) carries its run's tags; a batch read again
//! after a crash queries them again. Where the tags are read:
//!
//! - PostgreSQL: `run_tags` beside the event-log table (same database and schema;
//!   [`super::tail`]);
//! - SQLite: `runs.db` in the parent of the event-log directory (`history/runs.db` beside
//!   `history/runs/`, for both layouts; [`read_sqlite`]);
//! - GraphQL: the run listing's `tags` ([`super::graphql::poller`]).
//!
//! The tags are those of the run when the batch is read: a tag Dagster adds later (e.g.
//! `dagster/failure_reason`) appears on the run events read after it was added.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use lineage_schemas::records::DagsterEvent;
use rusqlite::{Connection, OpenFlags};

use super::sqlite::is_missing_table;
use super::tail::Row;

/// Tags by run id.
pub type RunTags = HashMap<String, BTreeMap<String, String>>;

/// Most run ids in one SQLite query (SQLite's oldest limit on bound parameters is 999).
const SQLITE_IDS_PER_QUERY: usize = 500;
/// How long a SQLite read waits for Dagster's writer.
const SQLITE_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The distinct run ids of `rows` (runless rows left out), in first-seen order.
pub fn run_ids(rows: &[Row]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    rows.iter()
        .filter_map(|row| row.run_id.as_deref())
        .filter(|run_id| !run_id.is_empty() && seen.insert(*run_id))
        .map(str::to_owned)
        .collect()
}

/// Puts the run's tags (from `tags`, by run id) on `event` when it is a run-lifecycle event;
/// tags the event already has are kept.
pub fn attach(event: &mut DagsterEvent, tags: &RunTags) {
    if let Some(run_tags) = event.run_id.as_ref().and_then(|run_id| tags.get(run_id)) {
        attach_run_tags(event, run_tags);
    }
}

/// Puts `run_tags`, the tags of the event's run, on `event` when it is a run-lifecycle event;
/// tags the event already has are kept.
pub fn attach_run_tags(event: &mut DagsterEvent, run_tags: &BTreeMap<String, String>) {
    if !event.event_type.is_run_event() {
        return;
    }
    for (key, value) in run_tags {
        event
            .tags
            .entry(key.clone())
            .or_insert_with(|| value.clone());
    }
}

/// A failure reading SQLite's `runs.db`, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("sqlite {path}: cannot read run tags: {source}")]
pub struct SqliteRunTagsError {
    /// The database.
    pub path: PathBuf,
    /// SQLite's error.
    pub source: rusqlite::Error,
}

/// Where Dagster's SQLite run storage is for the event-log directory `event_log_dir`:
/// `runs.db` in its parent (`$DAGSTER_HOME/history/runs.db` beside `history/runs/`).
pub fn sqlite_runs_db(event_log_dir: &Path) -> PathBuf {
    event_log_dir
        .parent()
        .unwrap_or(event_log_dir)
        .join("runs.db")
}

/// Reads the tags of `run_ids` from the SQLite run storage `path` (read-only). Blocking. A
/// missing file or table gives no tags (logged): the events are published without them.
pub fn read_sqlite(path: &Path, run_ids: &[String]) -> Result<RunTags, SqliteRunTagsError> {
    if run_ids.is_empty() {
        return Ok(RunTags::new());
    }
    if !path.exists() {
        tracing::warn!(path = %path.display(), "no sqlite run storage: run events carry no run tags");
        return Ok(RunTags::new());
    }
    let fail = |source| SqliteRunTagsError {
        path: path.to_owned(),
        source,
    };
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(fail)?;
    connection.busy_timeout(SQLITE_BUSY_TIMEOUT).map_err(fail)?;
    query_sqlite(&connection, run_ids).map_err(fail)
}

/// The tags of `run_ids` in the `run_tags` table of `connection`; none without the table.
fn query_sqlite(connection: &Connection, run_ids: &[String]) -> Result<RunTags, rusqlite::Error> {
    let mut tags = RunTags::new();
    for chunk in run_ids.chunks(SQLITE_IDS_PER_QUERY) {
        let marks = vec!["?"; chunk.len()].join(",");
        let sql = format!("SELECT run_id, key, value FROM run_tags WHERE run_id IN ({marks})");
        let mut statement = match connection.prepare(&sql) {
            Ok(statement) => statement,
            Err(error) if is_missing_table(&error) => {
                tracing::warn!(
                    "sqlite run storage has no run_tags table: run events carry no run tags"
                );
                return Ok(tags);
            }
            Err(error) => return Err(error),
        };
        let rows = statement.query_map(rusqlite::params_from_iter(chunk), |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, Option<String>>(2)?,
            ))
        })?;
        for row in rows {
            let (run_id, key, value) = row?;
            if let Some(key) = key {
                tags.entry(run_id)
                    .or_default()
                    .insert(key, value.unwrap_or_default());
            }
        }
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use lineage_schemas::records::{DagsterEventType, SourceKind, SourcePosition};

    use super::*;

    fn event(event_type: DagsterEventType, run_id: Option<&str>) -> DagsterEvent {
        DagsterEvent {
            tenant: "t".into(),
            source: SourcePosition {
                kind: SourceKind::PostgresEventLog,
                storage_id: Some(1),
                shard: None,
                cursor: None,
            },
            event_type,
            raw_event_type: String::new(),
            run_id: run_id.map(str::to_owned),
            job_name: None,
            step_key: None,
            asset_key: None,
            partition: None,
            timestamp_ms: 0,
            message: None,
            description: None,
            metadata: Vec::new(),
            tags: BTreeMap::new(),
            check: None,
            error: None,
            raw_json: None,
        }
    }

    fn tags() -> RunTags {
        RunTags::from([(
            "r1".to_owned(),
            BTreeMap::from([
                ("team".to_owned(), "analytics".to_owned()),
                ("dagster/partition".to_owned(), "2024-01-01".to_owned()),
            ]),
        )])
    }

    #[test]
    fn run_events_get_their_run_s_tags_and_keep_their_own() {
        for event_type in [
            DagsterEventType::RunEnqueued,
            DagsterEventType::RunStarting,
            DagsterEventType::RunStart,
            DagsterEventType::RunSuccess,
            DagsterEventType::RunCanceled,
        ] {
            let mut run_event = event(event_type, Some("r1"));
            run_event.tags.insert("team".into(), "own".into());
            attach(&mut run_event, &tags());
            assert_eq!(run_event.tags["team"], "own", "{event_type:?}");
            assert_eq!(run_event.tags["dagster/partition"], "2024-01-01");
        }
    }

    #[test]
    fn other_events_and_other_runs_are_left_alone() {
        let mut step = event(DagsterEventType::StepStart, Some("r1"));
        attach(&mut step, &tags());
        assert!(step.tags.is_empty());
        let mut other_run = event(DagsterEventType::RunStart, Some("r2"));
        attach(&mut other_run, &tags());
        assert!(other_run.tags.is_empty());
        let mut runless = event(DagsterEventType::RunStart, None);
        attach(&mut runless, &tags());
        assert!(runless.tags.is_empty());
    }

    #[test]
    fn distinct_run_ids_without_runless_rows() {
        let row = |id, run_id: &str| Row {
            id,
            run_id: Some(run_id.to_owned()),
            event: String::new(),
            shard: None,
        };
        let rows = [row(1, "b"), row(2, ""), row(3, "a"), row(4, "b")];
        assert_eq!(run_ids(&rows), ["b", "a"]);
    }

    #[test]
    fn sqlite_run_tags_by_run_in_chunks() {
        let connection = Connection::open_in_memory().unwrap();
        connection
            .execute_batch(
                "CREATE TABLE run_tags (id INTEGER PRIMARY KEY, run_id VARCHAR(255), key TEXT, value TEXT);
                 INSERT INTO run_tags (run_id, key, value) VALUES
                   ('r1', 'team', 'analytics'), ('r1', 'dagster/partition', '2024-01-01'),
                   ('r2', 'team', 'ingest'), ('r3', 'team', 'other');",
            )
            .unwrap();
        let mut ids: Vec<String> = (0..SQLITE_IDS_PER_QUERY).map(|i| format!("x{i}")).collect();
        ids.extend(["r1".to_owned(), "r2".to_owned()]);
        let tags = query_sqlite(&connection, &ids).unwrap();
        assert_eq!(tags.len(), 2, "{tags:?}");
        assert_eq!(tags["r1"]["dagster/partition"], "2024-01-01");
        assert_eq!(tags["r2"]["team"], "ingest");
    }

    #[test]
    fn sqlite_without_a_run_tags_table_gives_no_tags() {
        let connection = Connection::open_in_memory().unwrap();
        assert!(
            query_sqlite(&connection, &["r1".into()])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn runs_db_beside_the_event_log_directory() {
        assert_eq!(
            sqlite_runs_db(Path::new("/home/d/history/runs")),
            Path::new("/home/d/history/runs.db")
        );
    }
}
