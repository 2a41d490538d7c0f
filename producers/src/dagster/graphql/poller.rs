//! The GraphQL event source of `produce dagster` (`[producers.dagster] source = "graphql"`),
//! for Dagster+ and wherever Dagster's database is out of reach: runs by update cursor, each
//! run's event log by its own cursor, exactly once into `dagster.events`.
//!
//! # Cursors
//! The source position is the runs update cursor (the newest `updateTime` handled, in ms) and
//! one log cursor per followed run (the storage id GraphQL's `logsForRun` cursor names). They
//! are [`SourceCursor`]s in the cursor topic: the update cursor under the producer's key, each
//! run's under [`crate::dagster::cursor::shard_key`]`(key, run_id)`, committed in the same Kafka
//! transaction as the events they cover. A restart reads them back and resumes exactly.
//!
//! # A poll
//! 1. Runs updated since the update cursor (less [`OVERLAP`]) are listed
//!    (`runsOrError(filter: {updatedAfter})`, paged by run id, with each run's tags for its
//!    run-lifecycle events), and the status of every
//!    followed run that is not finished is refreshed (`runsOrError(filter: {runIds})`): a
//!    run's `updateTime` changes with its status, not with each event.
//! 2. Each run with possibly new events is read from its cursor (`logsForRun`, paged). Run
//!    logs have late commits too (a step's process can commit a lower storage id after a
//!    higher one becomes visible), and GraphQL shows neither storage ids per event nor locks.
//!    So a page is published only once a second read of the same range, at least `settle`
//!    later, returns the same events (compared by content); the second read asks for exactly
//!    that many events, so its cursor ends where they end. An event is missed only if the
//!    transaction inserting it stays open longer than `settle` (Dagster inserts one event per
//!    short transaction).
//! 3. The accepted events, the moved run cursors and the update cursor are committed in one
//!    transaction. A finished run (success, failure, canceled) whose log is drained is not
//!    read again unless it is updated again; its cursor is tombstoned after
//!    `finished_run_retention`.
//!
//! Readiness is true after a poll succeeded and false while Dagster's GraphQL cannot be
//! read (the poller keeps retrying). What GraphQL does not show: [`super::events`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use lineage_bus_core::KafkaConfig;
use lineage_bus_core::clock::now_ms;
use lineage_schemas::RecordCodec;
use lineage_schemas::records::{DagsterEvent, SourceCursor};
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::GraphqlConfig;
use super::client::{GraphqlClient, GraphqlError, Typed};
use super::events::{self, Origin};
use super::metadata::{self, TagJson};
use super::metrics::METRICS as GRAPHQL_METRICS;
use super::txn::{Record, TxnError, TxnWriter};
use crate::dagster::cursor::{self, CursorError, shard_key};
use crate::dagster::metrics::METRICS;
use crate::dagster::publish::{COMPONENT, Published};

/// Runs updated this long before the update cursor are listed again (clock skew between
/// Dagster's processes, run rows committed late).
pub const OVERLAP: Duration = Duration::from_secs(30);
/// Timeout of Kafka metadata and transaction calls.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait between attempts while Dagster is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Runs whose logs are read at once.
const CONCURRENT_RUNS: usize = 4;

/// Run listing.
const RUNS: &str = r"
query LineageBusRuns($filter: RunsFilter, $cursor: String, $limit: Int) {
  runsOrError(filter: $filter, cursor: $cursor, limit: $limit) {
    __typename
    ... on PythonError { message }
    ... on InvalidPipelineRunsFilterError { message }
    ... on Runs {
      results {
        runId jobName status updateTime tags { key value }
        repositoryOrigin { repositoryName repositoryLocationName }
      }
    }
  }
}";

/// Why the poller stopped, or why a poll failed.
#[derive(Debug, thiserror::Error)]
pub enum PollerError {
    /// GraphQL failed.
    #[error(transparent)]
    Graphql(#[from] GraphqlError),
    /// Kafka failed.
    #[error(transparent)]
    Publish(#[from] TxnError),
    /// The committed cursors could not be read.
    #[error(transparent)]
    Cursor(#[from] CursorError),
    /// Encoding failed.
    #[error("cannot encode a record: {0}")]
    Encode(#[from] lineage_schemas::CodecError),
    /// A run-log cursor is not a storage-id cursor.
    #[error("run {run_id}: unexpected logsForRun cursor {cursor:?}")]
    BadRunCursor {
        /// The run.
        run_id: String,
        /// The cursor.
        cursor: String,
    },
}

impl PollerError {
    /// True when a later poll may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            PollerError::Graphql(e) => e.is_transient(),
            PollerError::Publish(e) => !e.is_fenced() && !matches!(e, TxnError::MissingTopic(_)),
            _ => false,
        }
    }
}

/// The storage id a `logsForRun` cursor names.
pub fn cursor_storage_id(cursor: &str) -> Option<i64> {
    #[derive(Deserialize)]
    struct Cursor {
        #[serde(rename = "type")]
        kind: String,
        value: i64,
    }
    let bytes = STANDARD.decode(cursor).ok()?;
    let cursor: Cursor = serde_json::from_slice(&bytes).ok()?;
    (cursor.kind == "STORAGE_ID").then_some(cursor.value)
}

/// The `logsForRun` cursor after `storage_id`.
pub fn storage_id_cursor(storage_id: i64) -> String {
    STANDARD.encode(format!(
        r#"{{"type": "STORAGE_ID", "value": {storage_id}}}"#
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunsData {
    runs_or_error: RunsOrError,
}

#[derive(Debug, Deserialize)]
struct RunsOrError {
    #[serde(flatten)]
    typed: Typed,
    results: Option<Vec<RunJson>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunJson {
    run_id: String,
    job_name: String,
    status: String,
    update_time: Option<f64>,
    #[serde(default)]
    tags: Vec<TagJson>,
    repository_origin: Option<RepositoryOriginJson>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RepositoryOriginJson {
    repository_name: String,
    repository_location_name: String,
}

impl RunJson {
    /// The run's tags as the run storage holds them, as far as GraphQL shows them: it hides
    /// Dagster's `.dagster/*` tags; `.dagster/repository` is rebuilt from the run's repository
    /// origin (`<repository>@<location>`), `.dagster/grpc_info` is left out.
    fn tags(&self) -> BTreeMap<String, String> {
        let mut tags = metadata::tag_map(self.tags.clone());
        if let Some(origin) = &self.repository_origin {
            tags.entry(".dagster/repository".to_owned())
                .or_insert_with(|| {
                    format!(
                        "{}@{}",
                        origin.repository_name, origin.repository_location_name
                    )
                });
        }
        tags
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogsData {
    logs_for_run: LogsOrError,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogsOrError {
    #[serde(flatten)]
    typed: Typed,
    cursor: Option<String>,
    events: Option<Vec<serde_json::Value>>,
}

/// A page read once, waiting to be confirmed by a second read.
#[derive(Debug)]
struct Pending {
    read_at: Instant,
    fingerprints: Vec<u64>,
}

/// A followed run.
#[derive(Debug)]
struct RunState {
    job_name: String,
    /// The run's tags, from its last listing.
    tags: BTreeMap<String, String>,
    /// Storage id of the last published event (0: none).
    position: i64,
    /// Finished (success, failure, canceled).
    finished: bool,
    /// `updateTime` (ms) when last listed.
    update_ms: i64,
    /// Nothing left to read at the last look, after the run finished.
    drained: bool,
    /// When the cursor was last committed.
    committed_ms: i64,
    pending: Option<Pending>,
    /// Whether the status was confirmed since start (runs loaded from the cursor topic).
    known: bool,
}

/// What one poll committed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EventPoll {
    /// Events published.
    pub events: usize,
    /// Runs whose log was read.
    pub runs_read: usize,
}

/// The GraphQL event poller's state.
pub struct EventPoller {
    client: GraphqlClient,
    events_codec: RecordCodec<DagsterEvent>,
    cursors_codec: RecordCodec<SourceCursor>,
    writer: TxnWriter,
    tenant: String,
    source: String,
    key: String,
    events_topic: String,
    cursor_topic: String,
    page_size: u32,
    settle: Duration,
    retention: Duration,
    update_ms: i64,
    runs: HashMap<String, RunState>,
}

/// Where the poller writes and what it reads.
#[derive(Debug, Clone)]
pub struct PollerSettings {
    /// Tenant id.
    pub tenant: String,
    /// Kafka transactional id.
    pub transactional_id: String,
    /// Events topic.
    pub events_topic: String,
    /// Cursor topic.
    pub cursor_topic: String,
}

impl EventPoller {
    /// Opens the writer (fencing an older instance) and reads the committed cursors.
    pub async fn open(
        config: &GraphqlConfig,
        settings: PollerSettings,
        kafka: &KafkaConfig,
        events_codec: RecordCodec<DagsterEvent>,
        cursors_codec: RecordCodec<SourceCursor>,
    ) -> Result<Self, PollerError> {
        let client = GraphqlClient::new(config)?;
        let writer = TxnWriter::open(
            kafka,
            "producer-dagster-graphql",
            &settings.transactional_id,
            &[&settings.events_topic, &settings.cursor_topic],
            false,
            KAFKA_TIMEOUT,
        )
        .await?;
        let source = format!("graphql:{}", client.url());
        let key = format!("{COMPONENT}/{}", settings.tenant);
        let committed = cursor::load(
            kafka,
            &settings.cursor_topic,
            &key,
            true,
            &cursors_codec,
            KAFKA_TIMEOUT,
        )
        .await?;
        let update_ms = committed.main_position(&key, &source)?;
        let runs = committed
            .shards
            .into_iter()
            .filter(|(_, cursor)| cursor.source == source)
            .map(|(run_id, cursor)| {
                let state = RunState {
                    job_name: String::new(),
                    tags: BTreeMap::new(),
                    position: cursor.position,
                    finished: false,
                    update_ms: 0,
                    drained: false,
                    committed_ms: cursor.updated_ms,
                    pending: None,
                    known: false,
                };
                (run_id, state)
            })
            .collect::<HashMap<_, _>>();
        tracing::info!(
            tenant = settings.tenant,
            update_ms,
            runs = runs.len(),
            "dagster graphql poller resuming"
        );
        Ok(Self {
            client,
            events_codec,
            cursors_codec,
            writer,
            tenant: settings.tenant,
            source,
            key,
            events_topic: settings.events_topic,
            cursor_topic: settings.cursor_topic,
            page_size: config.page_size.clamp(1, 1000),
            settle: config.settle,
            retention: config.finished_run_retention,
            update_ms,
            runs,
        })
    }

    /// The runs update cursor (ms).
    pub fn update_cursor_ms(&self) -> i64 {
        self.update_ms
    }

    /// Whether a page read is waiting for its confirmation.
    pub fn has_pending(&self) -> bool {
        self.runs.values().any(|run| run.pending.is_some())
    }

    /// One poll: list runs, read their logs, commit what is confirmed.
    pub async fn poll(&mut self) -> Result<EventPoll, PollerError> {
        let filter_after = (self.update_ms as f64 / 1000.0 - OVERLAP.as_secs_f64()).max(0.0);
        let mut listed = self
            .list_runs(serde_json::json!({"updatedAfter": filter_after}))
            .await?;
        let unknown: Vec<String> = self
            .runs
            .iter()
            .filter(|(id, run)| (!run.finished || !run.known) && !listed.contains_key(*id))
            .map(|(id, _)| id.clone())
            .collect();
        for chunk in unknown.chunks(self.page_size as usize) {
            let found = self.list_runs(serde_json::json!({"runIds": chunk})).await?;
            listed.extend(found);
        }
        let mut records = Vec::new();
        let mut dirty: HashSet<String> = HashSet::new();
        let mut newest_update = self.update_ms;
        for run in listed.values() {
            let update_ms = run.update_time.map_or(0, |t| (t * 1000.0) as i64);
            newest_update = newest_update.max(update_ms);
            let finished = matches!(run.status.as_str(), "SUCCESS" | "FAILURE" | "CANCELED");
            let state = self.runs.entry(run.run_id.clone()).or_insert_with(|| {
                dirty.insert(run.run_id.clone());
                RunState {
                    job_name: run.job_name.clone(),
                    tags: BTreeMap::new(),
                    position: 0,
                    finished,
                    update_ms,
                    drained: false,
                    committed_ms: 0,
                    pending: None,
                    known: true,
                }
            });
            if update_ms > state.update_ms || !state.known {
                state.drained = false;
            }
            state.job_name.clone_from(&run.job_name);
            state.tags = run.tags();
            state.finished = finished;
            state.update_ms = state.update_ms.max(update_ms);
            state.known = true;
        }
        // Runs the cursor topic knew that Dagster no longer has (deleted).
        let deleted: Vec<String> = self
            .runs
            .iter()
            .filter(|(id, run)| !run.known && !listed.contains_key(*id))
            .map(|(id, _)| id.clone())
            .collect();
        let mut report = EventPoll::default();
        let mut published = Published::default();
        let to_read: Vec<String> = self
            .runs
            .iter()
            .filter(|(_, run)| run.known && !run.drained)
            .map(|(id, _)| id.clone())
            .collect();
        let inputs: Vec<ReadInput> = to_read
            .into_iter()
            .map(|run_id| {
                let state = self.state(&run_id);
                ReadInput {
                    position: state.position,
                    finished: state.finished,
                    pending: state.pending.take(),
                    run_id,
                }
            })
            .collect();
        report.runs_read = inputs.len();
        let reader = Reader {
            client: &self.client,
            page_size: self.page_size,
            settle: self.settle,
        };
        let outcomes: Vec<Result<ReadOutcome, PollerError>> = futures::stream::iter(inputs)
            .map(|input| reader.run(input))
            .buffered(CONCURRENT_RUNS)
            .collect()
            .await;
        let mut failure = None;
        for outcome in outcomes {
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(error) => {
                    // Pages waiting for confirmation in this poll are read again next time.
                    failure.get_or_insert(error);
                    continue;
                }
            };
            let Some(state) = self.runs.get_mut(&outcome.run_id) else {
                continue;
            };
            state.pending = outcome.pending;
            state.drained = outcome.drained;
            let Some((events, position)) = outcome.accepted else {
                continue;
            };
            let cursor = storage_id_cursor(position);
            let origin = Origin {
                tenant: &self.tenant,
                job_name: &state.job_name,
                cursor: &cursor,
                run_tags: Some(&state.tags),
            };
            for raw in &events {
                let event = events::to_record(origin, raw);
                *published.by_type.entry(event.event_type).or_default() += 1;
                records.push(Record {
                    topic: self.events_topic.clone(),
                    key: event.kafka_key(),
                    value: Some(self.events_codec.encode(&event)?),
                });
            }
            report.events += events.len();
            state.position = position;
            dirty.insert(outcome.run_id);
        }
        let now = now_ms();
        let retention_ms = i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
        let expired: Vec<String> = self
            .runs
            .iter()
            .filter(|(_, run)| {
                run.finished
                    && run.drained
                    && run.committed_ms > 0
                    && run.committed_ms < now.saturating_sub(retention_ms)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for run_id in &dirty {
            let state = &self.runs[run_id];
            let cursor = self.cursor(state.position, now);
            records.push(Record {
                topic: self.cursor_topic.clone(),
                key: shard_key(&self.key, run_id),
                value: Some(self.cursors_codec.encode(&cursor)?),
            });
        }
        for run_id in expired.iter().chain(&deleted) {
            records.push(Record {
                topic: self.cursor_topic.clone(),
                key: shard_key(&self.key, run_id),
                value: None,
            });
        }
        let cursor_moved = newest_update != self.update_ms;
        if cursor_moved || !records.is_empty() {
            let cursor = self.cursor(newest_update, now);
            records.push(Record {
                topic: self.cursor_topic.clone(),
                key: self.key.clone(),
                value: Some(self.cursors_codec.encode(&cursor)?),
            });
            self.writer.commit(&records, true).await?;
            METRICS.committed(&published, newest_update);
        }
        self.update_ms = newest_update;
        for run_id in &dirty {
            if let Some(state) = self.runs.get_mut(run_id) {
                state.committed_ms = now;
            }
        }
        for run_id in expired.iter().chain(&deleted) {
            self.runs.remove(run_id);
        }
        GRAPHQL_METRICS.runs_followed.set(self.runs.len() as i64);
        GRAPHQL_METRICS
            .cursor_lag
            .set(now.saturating_sub(self.update_ms).max(0) / 1000);
        match failure {
            // What was confirmed is committed; the error is reported after.
            Some(error) => Err(error),
            None => Ok(report),
        }
    }

    fn cursor(&self, position: i64, now: i64) -> SourceCursor {
        SourceCursor {
            producer: COMPONENT.to_owned(),
            tenant: self.tenant.clone(),
            source: self.source.clone(),
            position,
            updated_ms: now,
        }
    }

    /// Lists runs matching `filter`, every page.
    async fn list_runs(
        &self,
        filter: serde_json::Value,
    ) -> Result<HashMap<String, RunJson>, PollerError> {
        const OPERATION: &str = "LineageBusRuns";
        let mut out = HashMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let data: RunsData = self
                .client
                .query(
                    OPERATION,
                    RUNS,
                    serde_json::json!({"filter": filter, "cursor": cursor, "limit": self.page_size}),
                )
                .await?;
            let runs = data.runs_or_error;
            let Some(results) = runs.results else {
                return Err(runs.typed.error(OPERATION).into());
            };
            let full = results.len() >= self.page_size as usize;
            cursor = results.last().map(|run| run.run_id.clone());
            out.extend(results.into_iter().map(|run| (run.run_id.clone(), run)));
            if !full || cursor.is_none() {
                return Ok(out);
            }
        }
    }

    fn state(&mut self, run_id: &str) -> &mut RunState {
        self.runs
            .get_mut(run_id)
            .unwrap_or_else(|| unreachable!("read runs are followed"))
    }

    /// Closes the Kafka producer.
    pub async fn close(self) {
        self.writer.close().await;
    }
}

/// What reading one run's log needs.
#[derive(Clone, Copy)]
struct Reader<'a> {
    client: &'a GraphqlClient,
    page_size: u32,
    settle: Duration,
}

/// A run to read: its position and the page waiting for confirmation.
struct ReadInput {
    run_id: String,
    position: i64,
    finished: bool,
    pending: Option<Pending>,
}

/// What reading a run found.
struct ReadOutcome {
    run_id: String,
    /// Events confirmed now and the position after them.
    accepted: Option<(Vec<serde_json::Value>, i64)>,
    /// The page waiting for confirmation now.
    pending: Option<Pending>,
    /// The run is finished and nothing is left to read.
    drained: bool,
}

impl Reader<'_> {
    /// One page of `run_id`'s log after `position`: the events and the position after them.
    async fn page(
        &self,
        run_id: &str,
        position: i64,
        limit: usize,
    ) -> Result<(Vec<serde_json::Value>, i64), PollerError> {
        const OPERATION: &str = "LineageBusRunLogs";
        let query = format!("{}\n{}", events::RUN_LOGS, metadata::FRAGMENTS);
        let after = (position > 0).then(|| storage_id_cursor(position));
        let data: LogsData = self
            .client
            .query(
                OPERATION,
                &query,
                serde_json::json!({"runId": run_id, "cursor": after, "limit": limit}),
            )
            .await?;
        let logs = data.logs_for_run;
        let Some(events) = logs.events else {
            return Err(logs.typed.error(OPERATION).into());
        };
        let end = match logs.cursor.as_deref() {
            Some(cursor) if !events.is_empty() => {
                cursor_storage_id(cursor).ok_or_else(|| PollerError::BadRunCursor {
                    run_id: run_id.to_owned(),
                    cursor: cursor.to_owned(),
                })?
            }
            _ => position,
        };
        Ok((events, end))
    }

    /// Advances the confirmation protocol of one run (see the module documentation).
    async fn run(&self, input: ReadInput) -> Result<ReadOutcome, PollerError> {
        let ReadInput {
            run_id,
            position,
            finished,
            pending,
        } = input;
        let mut accepted = None;
        if let Some(pending) = pending {
            if pending.read_at.elapsed() < self.settle {
                return Ok(ReadOutcome {
                    run_id,
                    accepted: None,
                    pending: Some(pending),
                    drained: false,
                });
            }
            let (events, end) = self
                .page(&run_id, position, pending.fingerprints.len())
                .await?;
            let seen = fingerprints(&events);
            if seen != pending.fingerprints {
                tracing::info!(
                    run_id,
                    "a run's log changed under its cursor (late commit); confirming again"
                );
                return Ok(ReadOutcome {
                    run_id,
                    accepted: None,
                    pending: Some(Pending {
                        read_at: Instant::now(),
                        fingerprints: seen,
                    }),
                    drained: false,
                });
            }
            accepted = Some((events, end));
        }
        let from = accepted.as_ref().map_or(position, |(_, end)| *end);
        let (events, _) = self.page(&run_id, from, self.page_size as usize).await?;
        let drained = events.is_empty() && finished && accepted.is_none();
        let pending = (!events.is_empty()).then(|| Pending {
            read_at: Instant::now(),
            fingerprints: fingerprints(&events),
        });
        Ok(ReadOutcome {
            run_id,
            accepted,
            pending,
            drained,
        })
    }
}

fn fingerprints(events: &[serde_json::Value]) -> Vec<u64> {
    events
        .iter()
        .map(|event| {
            let mut hasher = DefaultHasher::new();
            event.to_string().hash(&mut hasher);
            hasher.finish()
        })
        .collect()
}

/// Runs the poller until `shutdown`. `ready` is true while Dagster answers.
pub async fn run(
    config: &GraphqlConfig,
    settings: PollerSettings,
    kafka: &KafkaConfig,
    events_codec: RecordCodec<DagsterEvent>,
    cursors_codec: RecordCodec<SourceCursor>,
    ready: watch::Sender<bool>,
    shutdown: CancellationToken,
) -> Result<(), PollerError> {
    let mut poller =
        EventPoller::open(config, settings, kafka, events_codec, cursors_codec).await?;
    METRICS.position.set(poller.update_cursor_ms());
    let mut backoff = Duration::from_millis(200);
    let result = loop {
        let started = Instant::now();
        let wait = match poller.poll().await {
            Ok(poll) => {
                METRICS
                    .poll_duration
                    .observe(started.elapsed().as_secs_f64());
                ready.send_replace(true);
                backoff = Duration::from_millis(200);
                tracing::debug!(
                    events = poll.events,
                    runs_read = poll.runs_read,
                    "graphql poll"
                );
                if poll.events > 0 {
                    Duration::ZERO
                } else if poller.has_pending() {
                    config.settle.min(config.events_poll_interval)
                } else {
                    config.events_poll_interval
                }
            }
            Err(error) if error.is_transient() => {
                ready.send_replace(false);
                tracing::warn!(%error, retry_in = ?backoff, "dagster graphql events not read");
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
            Err(error) => break Err(error),
        };
        tokio::select! {
            () = shutdown.cancelled() => break Ok(()),
            () = tokio::time::sleep(wait) => {}
        }
    };
    ready.send_replace(false);
    poller.close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_tags_with_the_repository_rebuilt() {
        let run: RunJson = serde_json::from_value(serde_json::json!({
            "runId": "r", "jobName": "j", "status": "SUCCESS", "updateTime": 1.0,
            "tags": [{"key": "team", "value": "analytics"}],
            "repositoryOrigin": {"repositoryName": "__repository__", "repositoryLocationName": "loc"}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let tags = run.tags();
        assert_eq!(tags["team"], "analytics");
        assert_eq!(tags[".dagster/repository"], "__repository__@loc");
        let bare: RunJson = serde_json::from_value(
            serde_json::json!({"runId": "r", "jobName": "j", "status": "STARTED"}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(bare.tags().is_empty());
    }

    #[test]
    fn run_log_cursors_round_trip() {
        // As Dagster 1.13 writes them.
        assert_eq!(
            cursor_storage_id("eyJ0eXBlIjogIlNUT1JBR0VfSUQiLCAidmFsdWUiOiA2NTd9"),
            Some(657)
        );
        assert_eq!(cursor_storage_id(&storage_id_cursor(42)), Some(42));
        assert_eq!(
            cursor_storage_id(&STANDARD.encode(r#"{"type": "OFFSET", "value": 3}"#)),
            None
        );
        assert_eq!(cursor_storage_id("not base64!"), None);
    }

    #[test]
    fn fingerprints_tell_pages_apart() {
        let a = serde_json::json!({"runId": "r", "message": "a"});
        let b = serde_json::json!({"runId": "r", "message": "b"});
        // The same event read twice (a fresh parse of the same text) has the same print.
        let again: serde_json::Value = serde_json::from_str(&a.to_string()).unwrap_or_default();
        assert_eq!(
            fingerprints(&[again]),
            fingerprints(std::slice::from_ref(&a))
        );
        assert_ne!(fingerprints(&[a.clone(), b.clone()]), fingerprints(&[b, a]));
    }
}
