//! Tailing `event_logs` by storage id without missing late commits.
//!
//! # The problem
//! `id` comes from a sequence when a row is inserted, but the row becomes visible when its
//! transaction commits. With concurrent writers, id 10 can become visible after id 11, so a
//! reader that moves its cursor past 11 as soon as it sees it skips 10 forever.
//!
//! # The design: a contiguous cursor with proven gaps
//! The tail keeps one number, `position`: every id up to it has been handed out (published)
//! or is proven never to become visible. Each poll reads the smallest visible ids above
//! `position` (`ORDER BY id LIMIT batch_size`) and accepts them in order while they are
//! contiguous. At the first missing id (a *gap*) it stops: nothing above an unresolved gap is
//! published, so records leave in storage-id order, per run and globally, and the cursor
//! persisted in Kafka is that single number (the gap set lives in memory only).
//!
//! A gap is an id that was allocated but is not visible: its transaction is still running
//! (it will appear), rolled back, or its row was deleted (it never will). To resolve it:
//!
//! 1. When a read R at snapshot S stops at a gap, note `below` = the largest id R returned,
//!    and right after R capture the *guard*: the virtual transaction ids of all transactions
//!    holding a lock on the table that an insert takes (`RowExclusiveLock`, from `pg_locks`,
//!    which every role may read).
//! 2. At each later poll, before reading, look at the locks again. Once no guard transaction
//!    is left, the gaps up to `below` are *cleared*: the next read (taken after that check)
//!    shows every one of them that will ever be visible; any still missing is skipped for good.
//!
//! Why that is sound: let g ≤ `below` be missing in S, and T the transaction that drew g from
//! the sequence. Since the sequence hands out increasing values in time (cache size 1, checked
//! at start), T drew g before `below` was drawn, and `below`'s transaction committed before S;
//! so T started before S. An `INSERT` locks its table in `RowExclusiveLock` before it evaluates
//! the `id` default and keeps the lock until its transaction ends; PostgreSQL releases locks
//! only after the commit is visible to new snapshots. So if T was still running when the guard
//! was captured (after S), it is in the guard; once the guard is empty, T has ended, and a
//! snapshot taken afterwards shows g exactly when T committed it. If T had already ended at
//! capture time, the same holds at once. Transactions starting after S draw ids above `below`
//! and do not matter. Assumptions (checked or documented): the `id` sequence has cache size 1
//! (dagster-postgres' `BIGSERIAL`); rows are inserted with the sequence default inside the
//! `INSERT`, as dagster-postgres does; visibility is by PostgreSQL MVCC (a physical standby
//! with `hot_standby_feedback` behaves the same for reads, but its `pg_locks` would not show
//! the primary's writers: point the producer at the primary).
//!
//! A gap costs one extra `pg_locks` query and, while writers are busy, a poll or two of delay
//! for the rows above it. Deleted runs leave permanent gaps that clear on the next poll.
//!
//! The runs' tags come from `run_tags` beside the event-log table (same schema), one query per
//! batch ([`Tail::run_tags`], see [`super::run_tags`]); without that table (an event log kept
//! apart from its run storage) run events carry no run tags, and a warning says so.

use std::collections::HashSet;
use std::time::Instant;

use tokio_postgres::{Client, NoTls, Statement};

use super::run_tags::RunTags;

/// Connection timeout unless the URL sets `connect_timeout`.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A PostgreSQL failure, naming what was attempted.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// A query or the connection failed (transient: the tail reconnects).
    #[error("postgres: cannot {what}: {source}")]
    Postgres {
        /// What was attempted.
        what: &'static str,
        /// The driver's error.
        source: tokio_postgres::Error,
    },
    /// `postgres_url` is not a valid connection string (permanent).
    #[error("postgres_url is not a valid connection string: {0}")]
    InvalidUrl(tokio_postgres::Error),
    /// The table cannot be tailed safely (permanent).
    #[error("table {table}: {reason}")]
    Unsupported {
        /// The table.
        table: String,
        /// Why.
        reason: String,
    },
}

impl TailError {
    /// True when reconnecting may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, TailError::Postgres { .. })
    }
}

fn pg(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> TailError {
    move |source| TailError::Postgres { what, source }
}

/// One visible row of the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Storage id.
    pub id: i64,
    /// The `run_id` column (`''` for runless events).
    pub run_id: Option<String>,
    /// Dagster's serialized `EventLogEntry`.
    pub event: String,
    /// The SQLite run shard the row was read from (run-sharded SQLite storage only; the id
    /// counts within it).
    pub shard: Option<String>,
}

/// Rows to publish and the position they bring the cursor to.
#[derive(Debug, Default)]
pub struct Batch {
    /// Contiguous rows in id order.
    pub rows: Vec<Row>,
    /// The cursor once these rows are published (may exceed the last row's id when proven
    /// gaps are skipped). Run-sharded SQLite: the count of rows published.
    pub position: i64,
    /// Run-sharded SQLite: the shards these rows advance and their last id once published.
    pub shards: Vec<(String, i64)>,
}

/// Gaps below `below` waiting for their guard transactions to end.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    below: i64,
    guard: HashSet<String>,
    cleared: bool,
}

/// The prepared statements of one connection.
struct Session {
    client: Client,
    read: Statement,
    locks: Statement,
    max_id: Statement,
    /// Tags of a set of runs; `None` when there is no `run_tags` table beside the event log.
    tags: Option<Statement>,
    oid: u32,
}

/// The tail of one event-log table.
pub struct Tail {
    url: String,
    table: String,
    batch_size: i64,
    position: i64,
    pending: Option<Pending>,
    session: Option<Session>,
}

/// What one poll saw.
#[derive(Debug)]
pub struct Poll {
    /// Rows accepted (possibly none).
    pub batch: Batch,
    /// Rows known to be waiting above the position read, for the lag metric.
    pub lag: i64,
    /// An unresolved gap holds rows back: poll again soon.
    pub gap_pending: bool,
    /// How long the poll's queries took.
    pub elapsed: std::time::Duration,
}

impl Tail {
    /// A tail of `table` (validated identifier, optionally schema-qualified) from `position`.
    pub fn new(
        url: String,
        table: &str,
        batch_size: u32,
        position: i64,
    ) -> Result<Self, TailError> {
        Ok(Self {
            url,
            table: quote_table(table)?,
            batch_size: i64::from(batch_size.max(1)),
            position,
            pending: None,
            session: None,
        })
    }

    /// The contiguous position handed out so far.
    pub fn position(&self) -> i64 {
        self.position
    }

    /// Connects (if not connected) and checks the table can be tailed safely.
    pub async fn connect(&mut self) -> Result<(), TailError> {
        if self.session.as_ref().is_some_and(|s| !s.client.is_closed()) {
            return Ok(());
        }
        self.session = None;
        let mut config: tokio_postgres::Config = self.url.parse().map_err(TailError::InvalidUrl)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let (client, connection) = config.connect(NoTls).await.map_err(pg("connect"))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "postgres connection closed");
            }
        });
        let oid: u32 = client
            .query_one("SELECT $1::text::regclass::oid", &[&self.table])
            .await
            .map_err(pg("resolve the event-log table"))?
            .get(0);
        check_sequence(&client, &self.table).await?;
        let read = client
            .prepare(&format!(
                "SELECT id, run_id, event FROM {} WHERE id > $1 ORDER BY id LIMIT $2",
                self.table
            ))
            .await
            .map_err(pg("prepare the read"))?;
        let locks = client
            .prepare(
                "SELECT virtualtransaction FROM pg_locks WHERE locktype = 'relation' \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND relation = $1 AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid()",
            )
            .await
            .map_err(pg("prepare the lock query"))?;
        let max_id = client
            .prepare(&format!("SELECT coalesce(max(id), 0) FROM {}", self.table))
            .await
            .map_err(pg("prepare the max query"))?;
        let tags = prepare_tags(&client, &self.table).await?;
        self.session = Some(Session {
            client,
            read,
            locks,
            max_id,
            tags,
            oid,
        });
        Ok(())
    }

    /// The tags of `run_ids` from `run_tags` (one query); none without that table.
    pub async fn run_tags(&mut self, run_ids: &[String]) -> Result<RunTags, TailError> {
        if run_ids.is_empty() {
            return Ok(RunTags::new());
        }
        self.connect().await?;
        let session = self
            .session
            .as_ref()
            .unwrap_or_else(|| unreachable!("connect() leaves a session"));
        let Some(statement) = &session.tags else {
            return Ok(RunTags::new());
        };
        let rows = session
            .client
            .query(statement, &[&run_ids])
            .await
            .map_err(pg("read run tags"))?;
        let mut tags = RunTags::new();
        for row in rows {
            let decode = || -> Result<_, tokio_postgres::Error> {
                Ok((
                    row.try_get::<_, String>(0)?,
                    row.try_get::<_, Option<String>>(1)?,
                    row.try_get::<_, Option<String>>(2)?,
                ))
            };
            let (run_id, key, value) = decode().map_err(pg("decode a run tag"))?;
            if let Some(key) = key {
                tags.entry(run_id)
                    .or_default()
                    .insert(key, value.unwrap_or_default());
            }
        }
        Ok(tags)
    }

    /// Drops the connection (after an error); the next [`Tail::connect`] opens a new one.
    pub fn disconnect(&mut self) {
        self.session = None;
    }

    /// Reads the next contiguous rows above the position and advances it.
    pub async fn poll(&mut self) -> Result<Poll, TailError> {
        self.connect().await?;
        let started = Instant::now();
        let session = self
            .session
            .as_ref()
            .unwrap_or_else(|| unreachable!("connect() leaves a session"));
        if let Some(pending) = self.pending.as_mut().filter(|p| !p.cleared) {
            let running = locks(session).await?;
            pending.cleared = pending.guard.is_disjoint(&running);
        }
        let rows = session
            .client
            .query(&session.read, &[&self.position, &self.batch_size])
            .await
            .map_err(pg("read the event log"))?;
        let full = rows.len() as i64 == self.batch_size;
        let rows = rows
            .into_iter()
            .map(|row| {
                Ok(Row {
                    id: row.try_get(0)?,
                    run_id: row.try_get(1)?,
                    event: row.try_get(2)?,
                    shard: None,
                })
            })
            .collect::<Result<Vec<Row>, tokio_postgres::Error>>()
            .map_err(pg("decode an event-log row"))?;
        let cleared_below = self.pending.as_ref().filter(|p| p.cleared).map(|p| p.below);
        let step = walk(self.position, rows, cleared_below, full);
        self.position = step.position;
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.cleared && p.below <= self.position)
        {
            self.pending = None;
        }
        if let Some((first_gap, below)) = step.stopped_at {
            let covered = self.pending.as_ref().is_some_and(|p| first_gap <= p.below);
            if !covered {
                let guard = locks(session).await?;
                self.pending = Some(Pending {
                    below,
                    cleared: guard.is_empty(),
                    guard,
                });
            }
        }
        let max_id: i64 = session
            .client
            .query_one(&session.max_id, &[])
            .await
            .map_err(pg("read the largest id"))?
            .get(0);
        Ok(Poll {
            batch: Batch {
                rows: step.accepted,
                position: self.position,
                shards: Vec::new(),
            },
            lag: (max_id - self.position).max(0),
            gap_pending: self.pending.is_some(),
            elapsed: started.elapsed(),
        })
    }
}

/// The transactions currently holding (or waiting for) the table's insert lock.
async fn locks(session: &Session) -> Result<HashSet<String>, TailError> {
    let rows = session
        .client
        .query(&session.locks, &[&session.oid])
        .await
        .map_err(pg("read pg_locks"))?;
    Ok(rows
        .iter()
        .filter_map(|row| row.get::<_, Option<String>>(0))
        .collect())
}

/// Prepares the run-tags query on `run_tags` in the schema of the event-log `table` (quoted);
/// `None` (logged) when that table does not exist.
async fn prepare_tags(client: &Client, table: &str) -> Result<Option<Statement>, TailError> {
    let tags_table = match table.rsplit_once('.') {
        Some((schema, _)) => format!("{schema}.\"run_tags\""),
        None => "\"run_tags\"".to_owned(),
    };
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&tags_table])
        .await
        .map_err(pg("look for the run_tags table"))?
        .get(0);
    if !exists {
        tracing::warn!(
            table = tags_table,
            "no run_tags table beside the event log: run events carry no run tags"
        );
        return Ok(None);
    }
    let statement = client
        .prepare(&format!(
            "SELECT run_id, key, value FROM {tags_table} WHERE run_id = ANY($1)"
        ))
        .await
        .map_err(pg("prepare the run-tags query"))?;
    Ok(Some(statement))
}

/// Refuses a sequence that hands out ids in blocks: the gap proof needs ids in time order.
async fn check_sequence(client: &Client, table: &str) -> Result<(), TailError> {
    let row = client
        .query_opt(
            "SELECT s.seqcache FROM pg_sequence s \
             WHERE s.seqrelid = pg_get_serial_sequence($1, 'id')::regclass",
            &[&table],
        )
        .await
        .map_err(pg("inspect the id sequence"))?;
    match row.map(|row| row.get::<_, i64>(0)) {
        Some(1) => Ok(()),
        Some(cache) => Err(TailError::Unsupported {
            table: table.to_owned(),
            reason: format!(
                "the id sequence caches {cache} values per session, so ids are not drawn in time \
                 order and late commits cannot be proven absent; set its CACHE to 1"
            ),
        }),
        None => Err(TailError::Unsupported {
            table: table.to_owned(),
            reason: "the id column has no sequence (expected dagster-postgres' BIGSERIAL)".into(),
        }),
    }
}

/// The result of walking one read.
#[derive(Debug, PartialEq, Eq)]
struct Step {
    accepted: Vec<Row>,
    position: i64,
    /// The first unresolved missing id and the largest id the read returned.
    stopped_at: Option<(i64, i64)>,
}

/// Accepts `rows` (ascending ids above `position`) while they are contiguous, skipping
/// missing ids up to `cleared_below` (proven absent). `full` says the read hit its limit, so
/// ids above its last row were not looked at.
fn walk(position: i64, rows: Vec<Row>, cleared_below: Option<i64>, full: bool) -> Step {
    let last_read = rows.last().map(|row| row.id);
    let mut expected = position + 1;
    let mut accepted = Vec::with_capacity(rows.len());
    let mut stopped_at = None;
    for row in rows {
        debug_assert!(row.id >= expected, "rows come in ascending id order");
        let proven_absent = cleared_below.is_some_and(|below| row.id - 1 <= below);
        if row.id != expected && !proven_absent {
            stopped_at = Some((expected, last_read.unwrap_or(row.id)));
            break;
        }
        expected = row.id + 1;
        accepted.push(row);
    }
    let mut position = expected - 1;
    if let (None, Some(below)) = (stopped_at, cleared_below) {
        // Every id up to `below` that will ever be visible was in this read, unless the read
        // stopped at its limit before reaching `below`.
        if !full || last_read.is_some_and(|last| last >= below) {
            position = position.max(below);
        }
    }
    Step {
        accepted,
        position,
        stopped_at,
    }
}

/// Quotes a `table` or `schema.table` name; only plain identifiers are accepted.
fn quote_table(table: &str) -> Result<String, TailError> {
    let parts: Vec<&str> = table.split('.').collect();
    let plain = |part: &&str| {
        !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    if parts.len() > 2 || !parts.iter().all(plain) {
        return Err(TailError::Unsupported {
            table: table.to_owned(),
            reason: "expected `table` or `schema.table` made of letters, digits and `_`".into(),
        });
    }
    Ok(parts
        .iter()
        .map(|part| format!("\"{part}\""))
        .collect::<Vec<_>>()
        .join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(ids: &[i64]) -> Vec<Row> {
        ids.iter()
            .map(|&id| Row {
                id,
                run_id: Some("r".into()),
                event: String::new(),
                shard: None,
            })
            .collect()
    }

    fn ids(step: &Step) -> Vec<i64> {
        step.accepted.iter().map(|row| row.id).collect()
    }

    #[test]
    fn contiguous_rows_are_accepted() {
        let step = walk(10, rows(&[11, 12, 13]), None, false);
        assert_eq!(
            (ids(&step), step.position, step.stopped_at),
            (vec![11, 12, 13], 13, None)
        );
    }

    #[test]
    fn an_unproven_gap_stops_the_walk() {
        let step = walk(10, rows(&[11, 13, 14]), None, false);
        assert_eq!(ids(&step), vec![11]);
        assert_eq!(step.position, 11);
        assert_eq!(step.stopped_at, Some((12, 14)));
        // A gap right above the position accepts nothing.
        let step = walk(10, rows(&[12]), None, false);
        assert_eq!(
            (ids(&step), step.position, step.stopped_at),
            (vec![], 10, Some((11, 12)))
        );
    }

    #[test]
    fn cleared_gaps_are_skipped_up_to_below_only() {
        let step = walk(10, rows(&[13, 16, 18]), Some(16), false);
        assert_eq!(ids(&step), vec![13, 16]);
        assert_eq!(step.position, 16);
        assert_eq!(
            step.stopped_at,
            Some((17, 18)),
            "17 is above the cleared range"
        );
    }

    #[test]
    fn cleared_trailing_gaps_move_the_position_to_below() {
        // 11..=15 were all rolled back: nothing visible, the read was not cut.
        let step = walk(10, rows(&[]), Some(15), false);
        assert_eq!((step.position, step.stopped_at), (15, None));
        // A read cut by its limit before `below` proves nothing beyond its last row.
        let step = walk(10, rows(&[11, 12]), Some(15), true);
        assert_eq!(step.position, 12);
        let step = walk(10, rows(&[11, 16]), Some(15), true);
        assert_eq!((ids(&step), step.position), (vec![11, 16], 16));
    }

    #[test]
    fn table_names_are_quoted_identifiers() {
        assert_eq!(
            quote_table("event_logs").ok().as_deref(),
            Some("\"event_logs\"")
        );
        assert_eq!(
            quote_table("scratch_1.event_logs").ok().as_deref(),
            Some("\"scratch_1\".\"event_logs\"")
        );
        for bad in ["", "a.b.c", "x; drop table y", "a.\"b\"", "a."] {
            assert!(quote_table(bad).is_err(), "{bad}");
        }
    }
}
