//! `lineage-bus produce openmetadata`: OpenMetadata's tables as a compacted topic of
//! [`TableSnapshot`]s, key = table FQN.
//!
//! At start the producer fences any earlier instance (Kafka transactions, one transactional
//! id), reads the topic to its end (read_committed) into FQN → content hash, then polls: every
//! `poll_interval` it lists the catalog (`GET /api/v1/tables?fields=columns,tags,owners&
//! include=all`, paged with `after` cursors; with `services` set, per database of those
//! services) and publishes only what differs from the topic: new and changed tables as
//! snapshots, deleted ones as tombstones. A soft-deleted table is tombstoned (not published
//! with `deleted = true`): a snapshot in the topic is always a live table, and compaction
//! removes the key. A hard-deleted table is tombstoned because the full listing no longer has
//! it. Each page's changes are one Kafka transaction; tombstones are written only after a
//! complete listing, so a failed or interrupted poll never deletes anything. A crash at any
//! point is repaired by the next start, which compares the catalog with what the topic holds.
//!
//! With `services` set, only keys of those services are ever tombstoned: tables of services
//! removed from the setting stay in the topic until deleted by hand.
//!
//! Config keys: see [`config`]; metrics: see [`metrics`]. Readiness is true after a poll
//! succeeded and false while OpenMetadata cannot be read (the producer keeps retrying);
//! 401/403 stop the role with an error naming what is missing.

pub mod client;
pub mod config;
pub mod metrics;
mod poll;
mod publisher;
pub mod snapshot;
mod state;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use lineage_bus_core::KafkaConfig;
use lineage_bus_core::compacted::CompactedError;
use lineage_schemas::records::TableSnapshot;
use lineage_schemas::{CodecError, RecordCodec, RegistryClient};
use rdkafka::error::KafkaError;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use client::{ClientError, OpenMetadataClient};
pub use config::OpenMetadataConfig;
pub use poll::PollStats;

use metrics::METRICS;
use poll::Poller;
use publisher::Publisher;

/// The Kafka client role name (`client.id` suffix).
const ROLE: &str = "producer-openmetadata";
/// Timeout of Kafka metadata and transaction calls.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the OpenMetadata producer stopped.
#[derive(Debug, thiserror::Error)]
pub enum OpenMetadataError {
    /// An OpenMetadata request failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Avro encoding or the Schema Registry failed.
    #[error("{what}: {source}")]
    Codec {
        /// What was done.
        what: String,
        /// The codec error.
        source: CodecError,
    },
    /// Reading the topic failed (a missing topic says to run `lineage-bus topics apply`).
    #[error("{0} (run `lineage-bus topics apply` if the topic is missing)")]
    Topic(#[from] CompactedError),
    /// Writing the topic failed.
    #[error("writing topic {topic}: {action}: {source}")]
    Publish {
        /// Topic.
        topic: String,
        /// What was done.
        action: &'static str,
        /// The Kafka error.
        source: KafkaError,
    },
    /// A blocking task panicked.
    #[error("a blocking task failed: {0}")]
    Task(tokio::task::JoinError),
}

impl OpenMetadataError {
    /// True when polling again cannot help (configuration, auth, a missing topic, a fenced
    /// producer); such errors stop the role.
    pub fn is_fatal(&self) -> bool {
        match self {
            OpenMetadataError::Client(e) => e.is_fatal(),
            OpenMetadataError::Codec { source, .. } => !source.is_retryable(),
            OpenMetadataError::Publish { source, .. } => matches!(
                source.rdkafka_error_code(),
                Some(
                    rdkafka::types::RDKafkaErrorCode::Fenced
                        | rdkafka::types::RDKafkaErrorCode::ProducerFenced
                )
            ),
            OpenMetadataError::Task(_) => true,
            OpenMetadataError::Topic(e) => e.is_missing_topic(),
        }
    }
}

/// Runs the producer until `shutdown` is cancelled. `ready` is true while the last poll
/// succeeded.
pub async fn run(
    config: OpenMetadataConfig,
    kafka: KafkaConfig,
    registry: RegistryClient,
    tenant: String,
    ready: watch::Sender<bool>,
    shutdown: CancellationToken,
) -> Result<(), OpenMetadataError> {
    let client = OpenMetadataClient::new(&config)?;
    let codec = tokio::select! {
        () = shutdown.cancelled() => return Ok(()),
        codec = register(registry, &config.topic) => Arc::new(codec?),
    };
    let publisher = Publisher::new(
        kafka.transactional_producer_config(ROLE, &config.transactional_id),
        &config.topic,
        KAFKA_TIMEOUT,
    )
    .await?;
    let started = Instant::now();
    let Some(known) =
        state::read_topic(&kafka, &config.topic, &codec, KAFKA_TIMEOUT, &shutdown).await?
    else {
        return Ok(());
    };
    tracing::info!(
        topic = %config.topic,
        tables = known.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "snapshots topic read"
    );
    let mut poller = Poller {
        client,
        codec,
        publisher,
        tenant,
        services: config.services.clone(),
        page_size: config.page_size.max(1),
        known,
    };
    METRICS.live.set(poller.live() as i64);
    loop {
        let started = Instant::now();
        match poller.poll(&shutdown).await {
            Ok(None) => break,
            Ok(Some(stats)) => {
                let elapsed = started.elapsed();
                METRICS.poll_duration.observe(elapsed.as_secs_f64());
                METRICS.polls.with_label_values(&["ok"]).inc();
                METRICS.live.set(poller.live() as i64);
                stats.record();
                ready.send_replace(true);
                tracing::info!(
                    published = stats.published,
                    tombstoned = stats.tombstoned,
                    unchanged = stats.unchanged,
                    invalid = stats.invalid,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "openmetadata poll done"
                );
            }
            Err(e) if e.is_fatal() => {
                METRICS.polls.with_label_values(&["error"]).inc();
                ready.send_replace(false);
                return Err(e);
            }
            Err(e) => {
                METRICS.polls.with_label_values(&["error"]).inc();
                ready.send_replace(false);
                tracing::warn!(error = %e, "openmetadata poll failed; trying again at the next interval");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(config.poll_interval) => {}
        }
    }
    ready.send_replace(false);
    Ok(())
}

/// Registers the snapshot schema for `topic`, retrying while the registry is unreachable
/// (it may be starting beside this role).
async fn register(
    registry: RegistryClient,
    topic: &str,
) -> Result<RecordCodec<TableSnapshot>, OpenMetadataError> {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(20)
        .with_jitter();
    (|| RecordCodec::<TableSnapshot>::for_topic(registry.clone(), topic))
        .retry(backoff)
        .when(CodecError::is_retryable)
        .notify(|e, delay| tracing::warn!(error = %e, ?delay, "schema registry not reachable; retrying"))
        .await
        .map_err(|source| OpenMetadataError::Codec {
            what: format!("registering the schema of {topic}"),
            source,
        })
}
