//! `lineage-bus produce dagster`: every row of Dagster's event log into `dagster.events`,
//! exactly once and in storage-id order, from PostgreSQL (dagster-postgres' `event_logs`) or
//! from Dagster's SQLite storage (run-sharded or consolidated).
//!
//! Two stages run side by side, joined by a bounded channel of batches:
//! - the **reader** polls the event log by storage id in bounded batches: [`tail`] reads
//!   PostgreSQL, never past a gap that a late commit could still fill (the proof is in
//!   [`tail`]'s documentation), and reconnects when PostgreSQL is unreachable; [`sqlite`] reads
//!   the SQLite files, each run shard by its own id. Readiness is false while the source
//!   cannot be read;
//!   Before a batch is handed on, the tags of its runs are read from Dagster's run storage
//!   ([`run_tags`]; retried like a failed poll, so a batch never leaves without them);
//! - the **publisher** ([`publish`]) parses each row ([`parse`]), puts the run's tags on the
//!   run-lifecycle events, encodes it as Avro and commits the batch's events, its dead letters
//!   and the new source cursor in one Kafka transaction.
//!
//! At start the publisher initialises its transactions, which fences a previous instance of
//! the same tenant, and the cursor is read back from the cursor topic ([`cursor`]). On stop
//! the batch being published is committed (or aborted on error), and batches read but not
//! yet published are dropped: they are read again on the next start.
//!
//! With `source = "graphql"` the events are read over Dagster's GraphQL API instead
//! ([`graphql::poller`]); with `[producers.dagster.graphql] url` set, the asset graph is
//! published to `dagster.assets` beside the event source ([`assets`]).
//!
//! Config keys: [`config`]. Metrics: [`metrics`].

pub mod assets;
pub mod config;
pub mod cursor;
pub mod graphql;
mod metrics;
pub mod parse;
pub mod publish;
pub mod run_tags;
pub mod sqlite;
pub mod tail;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lineage_bus_core::KafkaConfig;
use lineage_schemas::records::{SourceCursor, SourceKind};
use lineage_schemas::{CodecError, RecordCodec, RegistryClient};
use secrecy::ExposeSecret;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use config::{DagsterProducerConfig, EventLogSource, SqliteLayout};
use metrics::METRICS;
use publish::{Codecs, Destination, PublishError, Publisher};
use run_tags::RunTags;
use sqlite::{Layout, SqliteTail, SqliteTailError};
use tail::{Batch, Poll, Tail, TailError};

/// How long reading the cursor back may take.
const CURSOR_LOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// Wait before polling again while a gap holds rows back.
const GAP_RETRY: Duration = Duration::from_millis(10);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why the producer stopped.
#[derive(Debug, thiserror::Error)]
pub enum DagsterProducerError {
    /// No database to read.
    #[error("[producers.dagster] postgres_url is not set")]
    MissingPostgresUrl,
    /// `source = "sqlite"` without a directory.
    #[error(
        "[producers.dagster] sqlite_storage_dir is not set and DAGSTER_HOME is not in the environment"
    )]
    MissingSqliteDir,
    /// PostgreSQL failed permanently.
    #[error(transparent)]
    Tail(#[from] TailError),
    /// SQLite failed permanently.
    #[error(transparent)]
    SqliteTail(#[from] SqliteTailError),
    /// SQLite's run storage could not be read.
    #[error(transparent)]
    SqliteRunTags(#[from] run_tags::SqliteRunTagsError),
    /// Kafka failed; the open transaction was aborted.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The committed cursor could not be read.
    #[error(transparent)]
    Cursor(#[from] cursor::CursorError),
    /// The Schema Registry refused or could not be reached.
    #[error("schema registry: {0}")]
    Registry(#[from] CodecError),
    /// The GraphQL event poller failed permanently.
    #[error("dagster graphql events: {0}")]
    Graphql(#[from] graphql::poller::PollerError),
    /// The asset-graph publisher failed permanently.
    #[error("dagster asset graph: {0}")]
    Assets(#[from] assets::AssetsError),
    /// A blocking task panicked.
    #[error("a blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Where the event log is read from, resolved from the config.
enum Source {
    Postgres { url: String },
    Sqlite { dir: PathBuf, layout: Layout },
}

impl Source {
    fn resolve(config: &DagsterProducerConfig) -> Result<Self, DagsterProducerError> {
        Ok(match config.source {
            EventLogSource::Postgres => Source::Postgres {
                url: config
                    .postgres_url
                    .as_ref()
                    .ok_or(DagsterProducerError::MissingPostgresUrl)?
                    .expose_secret()
                    .to_owned(),
            },
            EventLogSource::Graphql => {
                unreachable!("the GraphQL source is dispatched before the event-log tail")
            }
            EventLogSource::Sqlite => Source::Sqlite {
                dir: config
                    .sqlite_dir(None)
                    .ok_or(DagsterProducerError::MissingSqliteDir)?,
                layout: match config.sqlite_layout {
                    SqliteLayout::RunSharded => Layout::RunSharded,
                    SqliteLayout::Consolidated => Layout::Consolidated,
                },
            },
        })
    }

    /// What the cursor counts in (a committed cursor of another source is refused).
    fn name(&self, table: &str) -> String {
        match self {
            Source::Postgres { .. } => format!("postgres:{table}"),
            Source::Sqlite {
                layout: Layout::RunSharded,
                ..
            } => "sqlite:run-sharded".to_owned(),
            Source::Sqlite {
                layout: Layout::Consolidated,
                ..
            } => "sqlite:consolidated".to_owned(),
        }
    }

    fn sharded(&self) -> bool {
        matches!(
            self,
            Source::Sqlite {
                layout: Layout::RunSharded,
                ..
            }
        )
    }
}

/// Runs the producer for `tenant` until `shutdown` is cancelled or a permanent error occurs:
/// the event source (`source`) and, when `[producers.dagster.graphql] url` is set, the
/// asset-graph publisher ([`assets`]) beside it. `ready` is true while both read their
/// sources.
pub async fn run(
    config: DagsterProducerConfig,
    tenant: String,
    kafka: KafkaConfig,
    registry: RegistryClient,
    ready: watch::Sender<bool>,
    shutdown: CancellationToken,
) -> Result<(), DagsterProducerError> {
    let graphql = config.graphql.clone();
    if graphql.url.is_none() || !graphql.assets {
        return run_events(config, tenant, kafka, registry, ready, shutdown).await;
    }
    let [events_ready, assets_ready] = graphql::readiness::join::<2>(ready);
    let codec = RecordCodec::for_topic(registry.clone(), &graphql.assets_topic).await?;
    let stop = shutdown.child_token();
    let mut assets = tokio::spawn(assets::run(
        graphql,
        format!("{}-assets-{tenant}", config.transactional_id_prefix),
        tenant.clone(),
        kafka.clone(),
        codec,
        assets_ready,
        stop.clone(),
    ));
    let events = run_events(config, tenant, kafka, registry, events_ready, stop.clone());
    tokio::pin!(events);
    tokio::select! {
        result = &mut events => {
            stop.cancel();
            let assets_result = assets.await?;
            result.and(assets_result.map_err(DagsterProducerError::from))
        }
        result = &mut assets => {
            stop.cancel();
            let events_result = events.await;
            events_result.and(result?.map_err(DagsterProducerError::from))
        }
    }
}

/// The event source alone.
async fn run_events(
    config: DagsterProducerConfig,
    tenant: String,
    kafka: KafkaConfig,
    registry: RegistryClient,
    ready: watch::Sender<bool>,
    shutdown: CancellationToken,
) -> Result<(), DagsterProducerError> {
    if config.source == EventLogSource::Graphql {
        let settings = graphql::poller::PollerSettings {
            transactional_id: config.transactional_id(&tenant),
            tenant,
            events_topic: config.events_topic.clone(),
            cursor_topic: config.cursor_topic.clone(),
        };
        let events = RecordCodec::for_topic(registry.clone(), &config.events_topic).await?;
        let cursors = RecordCodec::for_topic(registry, &config.cursor_topic).await?;
        return Ok(graphql::poller::run(
            &config.graphql,
            settings,
            &kafka,
            events,
            cursors,
            ready,
            shutdown,
        )
        .await?);
    }
    run_event_log(config, tenant, kafka, registry, ready, shutdown).await
}

/// The event-log tail (PostgreSQL or SQLite). `ready` is true while the event log can be read
/// and the transactional producer is up.
async fn run_event_log(
    config: DagsterProducerConfig,
    tenant: String,
    kafka: KafkaConfig,
    registry: RegistryClient,
    ready: watch::Sender<bool>,
    shutdown: CancellationToken,
) -> Result<(), DagsterProducerError> {
    let source = Source::resolve(&config)?;
    let destination = Destination {
        tenant: tenant.clone(),
        source: source.name(&config.table),
        kind: match source {
            Source::Postgres { .. } => SourceKind::PostgresEventLog,
            Source::Sqlite { .. } => SourceKind::SqliteEventLog,
        },
        events_topic: config.events_topic.clone(),
        cursor_topic: config.cursor_topic.clone(),
        dead_letter_topic: config.dead_letter_topic.clone(),
    };
    let codecs = Codecs {
        events: RecordCodec::for_topic(registry.clone(), &config.events_topic).await?,
        dead_letters: RecordCodec::for_topic(registry.clone(), &config.dead_letter_topic).await?,
        cursors: RecordCodec::for_topic(registry, &config.cursor_topic).await?,
    };
    let transactional_id = config.transactional_id(&tenant);
    let publisher = {
        let (kafka, destination) = (kafka.clone(), destination.clone());
        let timeout = config.transaction_timeout;
        tokio::task::spawn_blocking(move || {
            Publisher::open(&kafka, &transactional_id, timeout, destination, codecs)
        })
        .await??
    };
    let publisher = Arc::new(publisher);
    let key = destination.cursor_key();
    let committed = cursor::load(
        &kafka,
        &config.cursor_topic,
        &key,
        source.sharded(),
        &publisher.codecs().cursors,
        CURSOR_LOAD_TIMEOUT,
    )
    .await?;
    let ours = |cursor: &SourceCursor| {
        cursor.source == destination.source && cursor.tenant == destination.tenant
    };
    let position = committed.main_position(&key, &destination.source)?;
    // Shard keys of another tenant whose id extends ours are not ours.
    let shards: HashMap<String, i64> = committed
        .shards
        .into_iter()
        .filter(|(_, cursor)| ours(cursor))
        .map(|(shard, cursor)| (shard, cursor.position))
        .collect();
    tracing::info!(
        tenant,
        source = destination.source,
        position,
        shards = shards.len(),
        "dagster producer resuming"
    );
    METRICS.position.set(position);
    let stages = Stages {
        publisher,
        ready,
        poll_interval: config.poll_interval,
        shutdown,
    };
    match source {
        Source::Postgres { url } => {
            let tail = Tail::new(url, &config.table, config.batch_size, position)?;
            stages.run(tail).await
        }
        Source::Sqlite { dir, layout } => {
            tracing::info!(dir = %dir.display(), ?layout, "reading dagster's sqlite storage");
            let runs_db = run_tags::sqlite_runs_db(&dir);
            let tail = SqliteTail::new(dir, layout, config.batch_size, position, shards);
            stages.run(SqliteSource { tail, runs_db }).await
        }
    }
}

/// A tail of an event log, polled by the reader stage.
trait EventLog: Send + 'static {
    /// The tail's error.
    type Error: std::error::Error + Into<DagsterProducerError> + Send + 'static;
    /// Reads the next batch.
    fn poll(&mut self) -> impl Future<Output = Result<Poll, Self::Error>> + Send;
    /// The tags of `run_ids` from the run storage.
    fn run_tags(
        &mut self,
        run_ids: Vec<String>,
    ) -> impl Future<Output = Result<RunTags, DagsterProducerError>> + Send;
    /// The position handed out so far.
    fn position(&self) -> i64;
    /// Forgets connections after an error.
    fn disconnect(&mut self);
    /// True when polling again may help.
    fn is_transient(error: &Self::Error) -> bool;
}

impl EventLog for Tail {
    type Error = TailError;
    fn poll(&mut self) -> impl Future<Output = Result<Poll, TailError>> + Send {
        Tail::poll(self)
    }
    async fn run_tags(&mut self, run_ids: Vec<String>) -> Result<RunTags, DagsterProducerError> {
        Ok(Tail::run_tags(self, &run_ids).await?)
    }
    fn position(&self) -> i64 {
        Tail::position(self)
    }
    fn disconnect(&mut self) {
        Tail::disconnect(self);
    }
    fn is_transient(error: &TailError) -> bool {
        error.is_transient()
    }
}

/// The SQLite tail and the run storage beside it.
struct SqliteSource {
    tail: SqliteTail,
    runs_db: PathBuf,
}

impl EventLog for SqliteSource {
    type Error = SqliteTailError;
    fn poll(&mut self) -> impl Future<Output = Result<Poll, SqliteTailError>> + Send {
        self.tail.poll()
    }
    async fn run_tags(&mut self, run_ids: Vec<String>) -> Result<RunTags, DagsterProducerError> {
        let path = self.runs_db.clone();
        Ok(tokio::task::spawn_blocking(move || run_tags::read_sqlite(&path, &run_ids)).await??)
    }
    fn position(&self) -> i64 {
        self.tail.position()
    }
    fn disconnect(&mut self) {}
    fn is_transient(_: &SqliteTailError) -> bool {
        // A missing directory or file, a lock held too long, a shard being created: all may
        // pass; readiness stays false meanwhile.
        true
    }
}

/// The reader and publisher stages around one tail.
struct Stages {
    publisher: Arc<Publisher>,
    ready: watch::Sender<bool>,
    poll_interval: Duration,
    shutdown: CancellationToken,
}

impl Stages {
    async fn run<T: EventLog>(self, tail: T) -> Result<(), DagsterProducerError> {
        let Stages {
            publisher,
            ready,
            poll_interval,
            shutdown,
        } = self;
        let stop = shutdown.child_token();
        let (batches, mut received) = mpsc::channel::<(Batch, RunTags)>(2);
        let reader = tokio::spawn(read(
            tail,
            batches,
            ready.clone(),
            poll_interval,
            stop.clone(),
        ));
        let result = async {
            loop {
                let (batch, tags) = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return Ok(()),
                    batch = received.recv() => match batch {
                        Some(batch) => batch,
                        None => return Ok(()),
                    },
                };
                let publisher = Arc::clone(&publisher);
                let (published, batch) =
                    tokio::task::spawn_blocking(move || (publisher.publish(&batch, &tags), batch))
                        .await?;
                let published = published?;
                METRICS.committed(&published, batch.position);
                tracing::debug!(
                    rows = batch.rows.len(),
                    position = batch.position,
                    shards = batch.shards.len(),
                    dead_letters = published.dead_letters,
                    "batch committed"
                );
            }
        }
        .await;
        stop.cancel();
        ready.send_replace(false);
        let read_result = reader.await?;
        // Destroying a librdkafka client joins its threads: not on the reactor.
        tokio::task::spawn_blocking(move || drop(publisher)).await?;
        result.and(read_result.map_err(Into::into))
    }
}

/// The reader stage: polls the tail and sends batches, with their runs' tags, until `stop`.
/// Transient failures are retried with backoff while readiness is false.
async fn read<T: EventLog>(
    mut tail: T,
    batches: mpsc::Sender<(Batch, RunTags)>,
    ready: watch::Sender<bool>,
    poll_interval: Duration,
    stop: CancellationToken,
) -> Result<(), T::Error> {
    let mut backoff = Duration::from_millis(100);
    let mut sent_position = tail.position();
    while !stop.is_cancelled() {
        let wait = match tail.poll().await {
            Ok(poll) => {
                ready.send_replace(true);
                backoff = Duration::from_millis(100);
                METRICS.poll_duration.observe(poll.elapsed.as_secs_f64());
                tracing::trace!(
                    rows = poll.batch.rows.len(),
                    poll_ms = poll.elapsed.as_millis(),
                    "polled"
                );
                METRICS.lag.set(poll.lag);
                let progressed = poll.batch.position != sent_position;
                if progressed {
                    sent_position = poll.batch.position;
                    let run_ids = run_tags::run_ids(&poll.batch.rows);
                    let Some(tags) = read_tags(&mut tail, run_ids, &ready, &stop).await else {
                        return Ok(());
                    };
                    tokio::select! {
                        () = stop.cancelled() => return Ok(()),
                        sent = batches.send((poll.batch, tags)) => if sent.is_err() { return Ok(()) },
                    }
                }
                if progressed {
                    Duration::ZERO
                } else if poll.gap_pending {
                    GAP_RETRY.min(poll_interval)
                } else {
                    poll_interval
                }
            }
            Err(error) if T::is_transient(&error) => {
                ready.send_replace(false);
                tracing::warn!(%error, retry_in = ?backoff, "event log unreachable");
                tail.disconnect();
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
            Err(error) => return Err(error),
        };
        if !wait.is_zero() {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
    Ok(())
}

/// The tags of `run_ids`, retried with backoff (readiness false meanwhile) until read: the
/// tail has moved past the batch, so the batch must not leave without them. `None` on stop.
async fn read_tags<T: EventLog>(
    tail: &mut T,
    run_ids: Vec<String>,
    ready: &watch::Sender<bool>,
    stop: &CancellationToken,
) -> Option<RunTags> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match tail.run_tags(run_ids.clone()).await {
            Ok(tags) => return Some(tags),
            Err(error) => {
                ready.send_replace(false);
                tracing::warn!(%error, runs = run_ids.len(), retry_in = ?backoff, "run tags unreadable");
                tail.disconnect();
            }
        }
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
