//! Tailing Dagster's SQLite event log, in either layout of Dagster's SQLite storage:
//!
//! - **run-sharded** (`SqliteEventLogStorage`, Dagster's default): one database per run,
//!   `<dir>/<run_id>.db`, runless events in `<dir>/.db` (the empty run id), and `<dir>/index.db`.
//!   Dagster writes every event to its run's shard first and then *mirrors* asset, asset-check
//!   and run-status events into the index shard (`SqliteEventLogStorage.store_event`), so the
//!   run shards hold every event exactly once and the index shard is never read: no duplicates.
//!   Each shard numbers its rows from 1, so the cursor is a map shard → last id (one cursor
//!   record per shard, see [`super::cursor`]). New shards are found by listing the directory at
//!   every poll; a shard is read again only when its files (`.db`, `.db-wal`) changed since it
//!   was last read to the end, and every shard at least every [`FULL_RESCAN`].
//! - **consolidated** (`ConsolidatedSqliteEventLogStorage`): one database, `<dir>/event_log.db`,
//!   and one position like the PostgreSQL tail's.
//!
//! Why `id > position` is exact here (the PostgreSQL tail needs its gap proof, SQLite does
//! not): SQLite has one writer per database at a time; a row's id is drawn while that writer
//! holds the write lock and the lock is released at commit, so rows become visible in id order
//! and a reader's snapshot always shows a prefix of the ids. Each read is one `SELECT`, one
//! snapshot. One case escapes it: the consolidated table has no `AUTOINCREMENT`, so when
//! Dagster deletes a run whose rows hold the largest ids (`delete_run`), the next rows reuse
//! those ids and are not read; the run-sharded layout is not affected (a deleted run's shard
//! gets no more rows). Dagster documents the consolidated storage as meant for tests.
//!
//! The databases are opened read-only with a busy timeout; in WAL mode (which Dagster sets)
//! readers and the writer do not block each other. A shard that exists but has no `event_logs`
//! table yet (Dagster is creating it) is skipped until it has one. Reads block and run on a
//! blocking thread.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::{Connection, OpenFlags};

use super::tail::{Batch, Poll, Row};

/// Every shard is read again at least this often, even if its files look unchanged (a guard
/// against coarse file timestamps).
const FULL_RESCAN: Duration = Duration::from_secs(10);
/// How long a read waits for a lock held by Dagster (WAL recovery, a non-WAL writer).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The index shard of the run-sharded layout (mirrors only; never read).
const INDEX_SHARD: &str = "index";
/// The database of the consolidated layout.
pub const CONSOLIDATED_FILE: &str = "event_log.db";

/// The two layouts of Dagster's SQLite event-log storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `SqliteEventLogStorage`: one database per run plus an index database.
    RunSharded,
    /// `ConsolidatedSqliteEventLogStorage`: one `event_log.db`.
    Consolidated,
}

/// A SQLite or file-system failure, naming the file. Always transient: the tail retries.
#[derive(Debug, thiserror::Error)]
pub enum SqliteTailError {
    /// A database could not be opened or read.
    #[error("sqlite {path}: cannot {what}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was attempted.
        what: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The storage directory could not be listed.
    #[error("cannot list the event-log directory {dir}: {source}")]
    List {
        /// The directory.
        dir: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The blocking read panicked.
    #[error("the sqlite read task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What a shard's files looked like: changes when Dagster writes to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Signature {
    db: Option<(SystemTime, u64)>,
    wal: Option<(SystemTime, u64)>,
}

impl Signature {
    fn of(path: &Path) -> Self {
        let stat = |path: &Path| {
            std::fs::metadata(path)
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
        };
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        Self {
            db: stat(path),
            wal: stat(Path::new(&wal)),
        }
    }
}

/// The tail's knowledge of one database.
#[derive(Debug, Default)]
struct Shard {
    /// Last id handed out.
    position: i64,
    /// The files' signature when the shard was last read to its end.
    clean: Option<Signature>,
    /// Rows known to be above the position.
    lag: i64,
}

/// The state a poll works on (moved to a blocking thread and back).
#[derive(Debug)]
struct State {
    dir: PathBuf,
    layout: Layout,
    batch_size: usize,
    /// Consolidated: the last id; run-sharded: how many rows were handed out in total.
    position: i64,
    shards: HashMap<String, Shard>,
    last_rescan: Instant,
    /// Where the next poll starts in the sorted shard list (fairness under a budget).
    rotation: usize,
}

/// The tail of a SQLite event-log storage.
#[derive(Debug)]
pub struct SqliteTail {
    state: Option<Box<State>>,
}

impl SqliteTail {
    /// A tail of the storage in `dir`. `position` is the committed main position (consolidated:
    /// the last id; run-sharded: the count of rows published) and `shards` the committed
    /// positions of the run shards.
    pub fn new(
        dir: PathBuf,
        layout: Layout,
        batch_size: u32,
        position: i64,
        shards: HashMap<String, i64>,
    ) -> Self {
        let mut known: HashMap<String, Shard> = shards
            .into_iter()
            .map(|(name, position)| {
                let shard = Shard {
                    position,
                    ..Shard::default()
                };
                (name, shard)
            })
            .collect();
        if layout == Layout::Consolidated {
            known.clear();
            known.insert(
                CONSOLIDATED_FILE.to_owned(),
                Shard {
                    position,
                    ..Shard::default()
                },
            );
        }
        let batch_size = usize::try_from(batch_size.max(1)).unwrap_or(usize::MAX);
        Self {
            state: Some(Box::new(State {
                dir,
                layout,
                batch_size,
                position,
                shards: known,
                last_rescan: Instant::now(),
                rotation: 0,
            })),
        }
    }

    /// The main position handed out so far.
    pub fn position(&self) -> i64 {
        self.state.as_ref().map_or(0, |state| state.position)
    }

    /// Reads the next rows (at most `batch_size`, across shards) on a blocking thread.
    pub async fn poll(&mut self) -> Result<Poll, SqliteTailError> {
        let mut state = self
            .state
            .take()
            .unwrap_or_else(|| unreachable!("the state is put back after every poll"));
        let (state, result) = tokio::task::spawn_blocking(move || {
            let result = state.poll();
            (state, result)
        })
        .await?;
        self.state = Some(state);
        result
    }
}

impl State {
    fn poll(&mut self) -> Result<Poll, SqliteTailError> {
        let started = Instant::now();
        let rescan = self.last_rescan.elapsed() >= FULL_RESCAN;
        if rescan {
            self.last_rescan = Instant::now();
        }
        let names = match self.layout {
            Layout::Consolidated => vec![CONSOLIDATED_FILE.to_owned()],
            Layout::RunSharded => list_shards(&self.dir)?,
        };
        let mut rows = Vec::new();
        let mut advanced = Vec::new();
        let (mut any_read, mut failure) = (false, None);
        let start = self.rotation.min(names.len());
        for index in (start..names.len()).chain(0..start) {
            let budget = self.batch_size - rows.len();
            if budget == 0 {
                self.rotation = index;
                break;
            }
            let name = &names[index];
            let path = match self.layout {
                Layout::Consolidated => self.dir.join(name),
                Layout::RunSharded => self.dir.join(format!("{name}.db")),
            };
            let shard = self.shards.entry(name.clone()).or_default();
            let signature = Signature::of(&path);
            if !rescan && shard.clean == Some(signature) {
                continue;
            }
            let read = match read_shard(&path, shard.position, budget) {
                Ok(Some(read)) => read,
                Ok(None) => continue, // Dagster is still creating the table
                Err(_) if !path.exists() => continue, // the run was deleted meanwhile
                Err(error) => {
                    // Other shards go on; the poll fails only when no shard could be read.
                    tracing::warn!(%error, "skipping an unreadable event-log shard this poll");
                    failure.get_or_insert(error);
                    continue;
                }
            };
            any_read = true;
            let full = read.rows.len() == budget;
            shard.clean = (!full).then_some(signature);
            shard.lag = if full { read.max_id - read.last } else { 0 };
            if read.rows.is_empty() {
                continue;
            }
            shard.position = read.last;
            let sharded = self.layout == Layout::RunSharded;
            rows.extend(read.rows.into_iter().map(|(id, run_id, event)| Row {
                id,
                run_id,
                event,
                shard: sharded.then(|| name.clone()),
            }));
            if sharded {
                advanced.push((name.clone(), shard.position));
            }
        }
        if let (false, Some(error)) = (any_read, failure) {
            return Err(error);
        }
        self.position = match self.layout {
            Layout::Consolidated => self.shards[CONSOLIDATED_FILE].position,
            Layout::RunSharded => self.position + rows.len() as i64,
        };
        Ok(Poll {
            batch: Batch {
                rows,
                position: self.position,
                shards: advanced,
            },
            lag: self.shards.values().map(|shard| shard.lag).sum(),
            gap_pending: false,
            elapsed: started.elapsed(),
        })
    }
}

/// The run shards in `dir` (run ids, `""` for the runless shard), sorted; not the index.
fn list_shards(dir: &Path) -> Result<Vec<String>, SqliteTailError> {
    let fail = |source| SqliteTailError::List {
        dir: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(fail)? {
        let entry = entry.map_err(fail)?;
        let file_name = entry.file_name();
        if let Some(name) = file_name.to_str().and_then(shard_name)
            && entry.file_type().is_ok_and(|t| t.is_file())
        {
            names.push(name.to_owned());
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// The run id of a run shard's file name; `None` for the index and for other files.
fn shard_name(file_name: &str) -> Option<&str> {
    file_name
        .strip_suffix(".db")
        .filter(|name| *name != INDEX_SHARD)
}

/// The rows of one read of a shard.
struct Read {
    rows: Vec<(i64, Option<String>, String)>,
    /// The last id read (the position when no row was read).
    last: i64,
    /// The largest id in the shard (only looked up when the read was cut by its limit).
    max_id: i64,
}

/// Reads up to `limit` rows above `position` from the database at `path`, read-only. `None`
/// when the database has no event log yet.
fn read_shard(path: &Path, position: i64, limit: usize) -> Result<Option<Read>, SqliteTailError> {
    let fail = |what| {
        move |source| SqliteTailError::Sqlite {
            path: path.to_owned(),
            what,
            source,
        }
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags).map_err(fail("open"))?;
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(fail("set the busy timeout"))?;
    let mut statement = match connection
        .prepare("SELECT id, run_id, event FROM event_logs WHERE id > ?1 ORDER BY id LIMIT ?2")
    {
        Ok(statement) => statement,
        Err(error) if is_missing_table(&error) => return Ok(None),
        Err(error) => return Err(fail("prepare the read")(error)),
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement
        .query_map((position, limit), |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .map_err(fail("read the event log"))?
        .collect::<Result<Vec<(i64, Option<String>, String)>, _>>()
        .map_err(fail("read the event log"))?;
    let last = rows.last().map_or(position, |row| row.0);
    let max_id = if rows.len() as i64 == limit {
        connection
            .query_row("SELECT coalesce(max(id), 0) FROM event_logs", [], |row| {
                row.get(0)
            })
            .map_err(fail("read the largest id"))?
    } else {
        last
    };
    Ok(Some(Read { rows, last, max_id }))
}

/// True when `error` says a table does not exist (yet).
pub(super) fn is_missing_table(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(_, Some(message)) if message.starts_with("no such table"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn run_shards_are_named_by_run_without_the_index() {
        assert_eq!(shard_name("0b9f-41.db"), Some("0b9f-41"));
        assert_eq!(shard_name(".db"), Some(""), "the runless shard");
        for other in ["index.db", "a.db-wal", "a.db-shm", "notes.txt", "a.db.bak"] {
            assert_eq!(shard_name(other), None, "{other}");
        }
    }
}
