//! `lineage-bus produce dagster`: every row of Dagster's PostgreSQL event log
//! (dagster-postgres' `event_logs`) into `dagster.events`, exactly once and in storage-id order.
//!
//! Two stages run side by side, joined by a bounded channel of batches:
//! - the **reader** ([`tail`]) polls the table by storage id in bounded batches, never past a
//!   gap that a late commit could still fill (the proof is in [`tail`]'s documentation), and
//!   reconnects when PostgreSQL is unreachable (readiness is false meanwhile);
//! - the **publisher** ([`publish`]) parses each row ([`parse`]), encodes it as Avro and
//!   commits the batch's events, its dead letters and the new source cursor in one Kafka
//!   transaction.
//!
//! At start the publisher initialises its transactions, which fences a previous instance of
//! the same tenant, and the cursor is read back from the cursor topic ([`cursor`]). On stop
//! the batch being published is committed (or aborted on error), and batches read but not
//! yet published are dropped: they are read again on the next start.
//!
//! Config keys: [`config`]. Metrics: [`metrics`].

pub mod config;
pub mod cursor;
mod metrics;
pub mod parse;
pub mod publish;
pub mod tail;

use std::sync::Arc;
use std::time::Duration;

use lineage_bus_core::KafkaConfig;
use lineage_schemas::{CodecError, RecordCodec, RegistryClient};
use secrecy::ExposeSecret;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use config::DagsterProducerConfig;
use metrics::METRICS;
use publish::{Codecs, Destination, PublishError, Publisher};
use tail::{Batch, Tail, TailError};

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
    /// PostgreSQL failed permanently.
    #[error(transparent)]
    Tail(#[from] TailError),
    /// Kafka failed; the open transaction was aborted.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The committed cursor could not be read.
    #[error(transparent)]
    Cursor(#[from] cursor::CursorError),
    /// The Schema Registry refused or could not be reached.
    #[error("schema registry: {0}")]
    Registry(#[from] CodecError),
    /// The committed cursor belongs to another source.
    #[error(
        "the committed cursor of {key} counts in {found}, but this producer reads {expected}; \
         use another tenant id or transactional id prefix for another table"
    )]
    ForeignCursor {
        /// Cursor key.
        key: String,
        /// Source named by the committed cursor.
        found: String,
        /// Source of this producer.
        expected: String,
    },
    /// A blocking task panicked.
    #[error("a blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Runs the producer for `tenant` until `shutdown` is cancelled or a permanent error occurs.
/// `ready` is true while PostgreSQL answers and the transactional producer is up.
pub async fn run(
    config: DagsterProducerConfig,
    tenant: String,
    kafka: KafkaConfig,
    registry: RegistryClient,
    ready: watch::Sender<bool>,
    shutdown: CancellationToken,
) -> Result<(), DagsterProducerError> {
    let url = config
        .postgres_url
        .as_ref()
        .ok_or(DagsterProducerError::MissingPostgresUrl)?
        .expose_secret()
        .to_owned();
    let destination = Destination {
        tenant: tenant.clone(),
        source: format!("postgres:{}", config.table),
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
        &publisher.codecs().cursors,
        CURSOR_LOAD_TIMEOUT,
    )
    .await?;
    let position = match committed {
        Some(cursor) if cursor.source != destination.source => {
            return Err(DagsterProducerError::ForeignCursor {
                key,
                found: cursor.source,
                expected: destination.source,
            });
        }
        Some(cursor) => cursor.position,
        None => 0,
    };
    tracing::info!(
        tenant,
        table = config.table,
        position,
        "dagster producer resuming"
    );
    METRICS.position.set(position);
    let tail = Tail::new(url, &config.table, config.batch_size, position)?;

    let stop = shutdown.child_token();
    let (batches, mut received) = mpsc::channel::<Batch>(2);
    let reader = tokio::spawn(read(
        tail,
        batches,
        ready.clone(),
        config.poll_interval,
        stop.clone(),
    ));
    let result = async {
        loop {
            let batch = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                batch = received.recv() => match batch {
                    Some(batch) => batch,
                    None => return Ok(()),
                },
            };
            let publisher = Arc::clone(&publisher);
            let (published, batch) =
                tokio::task::spawn_blocking(move || (publisher.publish(&batch), batch)).await?;
            let published = published?;
            METRICS.committed(&published, batch.position);
            tracing::debug!(
                rows = batch.rows.len(),
                position = batch.position,
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
    result.and(read_result.map_err(DagsterProducerError::from))
}

/// The reader stage: polls the tail and sends batches until `stop`. Transient PostgreSQL
/// failures are retried with backoff while readiness is false.
async fn read(
    mut tail: Tail,
    batches: mpsc::Sender<Batch>,
    ready: watch::Sender<bool>,
    poll_interval: Duration,
    stop: CancellationToken,
) -> Result<(), TailError> {
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
                METRICS.lag.set((poll.max_id - poll.batch.position).max(0));
                let progressed = poll.batch.position != sent_position;
                if progressed {
                    sent_position = poll.batch.position;
                    tokio::select! {
                        () = stop.cancelled() => return Ok(()),
                        sent = batches.send(poll.batch) => if sent.is_err() { return Ok(()) },
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
            Err(error) if error.is_transient() => {
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
