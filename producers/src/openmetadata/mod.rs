//! `lineage-bus produce openmetadata`: OpenMetadata's tables as a compacted topic of
//! [`TableSnapshot`]s, key = table FQN.
//!
//! At start the producer fences any earlier instance (Kafka transactions, one transactional
//! id), reads the topic to its end (read_committed) into FQN → (table id, fingerprint) and its
//! two cursors from the cursor topic, then polls (see [`poll`]):
//!
//! - every `poll_interval`, OpenMetadata's change events since the event cursor
//!   (`GET /api/v1/events?entityCreated=table&entityUpdated=table&entityRestored=table&
//!   entityDeleted=table&timestamp=`): the tables they name are read again by id and only what
//!   differs from the topic is published, new and changed tables as snapshots, deleted ones as
//!   tombstones, with the moved cursor in the same Kafka transaction;
//! - at start without a cursor, then every `full_relist_interval` (across restarts: the start
//!   of the last complete listing is a cursor too), a full listing (`GET /api/v1/tables?
//!   fields=columns,tags,owners&include=all`, paged with `after` cursors; with `services` set,
//!   per database of those services) that reconciles the topic with the catalog and
//!   tombstones what the listing no longer has: the safety net for events OpenMetadata lost or
//!   purged, restores older servers do not report, and clock differences beyond
//!   `event_overlap`.
//!
//! A soft-deleted table is tombstoned (not published with `deleted = true`): a snapshot in the
//! topic is always a live table, and compaction removes the key. Tombstones for tables absent
//! from a listing are written only after the complete listing, so an interrupted poll never
//! deletes anything. Whether a table changed is decided on (id, version, updatedAt), never by
//! encoding it: an unchanged catalog publishes nothing. A crash at any point loses nothing: the
//! snapshots and the cursor that covers them commit together, and a restart reads the events
//! again from the committed cursor.
//!
//! With `services` set, only keys of those services are ever tombstoned: tables of services
//! removed from the setting stay in the topic until deleted by hand.
//!
//! Config keys: see [`config`]; metrics: see [`metrics`]. Readiness is true after a poll
//! succeeded and false from the first failed request while OpenMetadata cannot be reached or
//! answers 5xx (the producer keeps retrying); 401/403 stop the role with an error naming what
//! is missing.

pub mod client;
pub mod config;
mod cursor;
pub mod events;
pub mod metrics;
mod poll;
mod publisher;
pub mod snapshot;
mod state;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use lineage_bus_core::KafkaConfig;
use lineage_bus_core::clock::now_ms;
use lineage_bus_core::compacted::CompactedError;
use lineage_schemas::records::{SourceCursor, TableSnapshot};
use lineage_schemas::{CodecError, RecordCodec, RegistryClient};
use rdkafka::error::KafkaError;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use client::{ClientError, OpenMetadataClient};
pub use config::OpenMetadataConfig;
pub use poll::PollStats;

use cursor::Cursors;
use metrics::METRICS;
use poll::Poller;
use publisher::Publisher;
use state::Index;

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
    let ready = Arc::new(ready);
    let client = OpenMetadataClient::new(&config)?.with_readiness(Arc::clone(&ready));
    let (codec, cursor_codec) = tokio::select! {
        () = shutdown.cancelled() => return Ok(()),
        codecs = async {
            let snapshots = register::<TableSnapshot>(registry.clone(), &config.topic).await?;
            let cursors = register::<SourceCursor>(registry, &config.cursor_topic).await?;
            Ok::<_, OpenMetadataError>((snapshots, cursors))
        } => codecs?,
    };
    let publisher = Publisher::new(
        kafka.transactional_producer_config(ROLE, &config.transactional_id),
        &config.topic,
        &config.cursor_topic,
        KAFKA_TIMEOUT,
    )
    .await?;
    let started = Instant::now();
    let Some(known) = state::read_topic(
        &kafka,
        &config.topic,
        &codec,
        &tenant,
        KAFKA_TIMEOUT,
        &shutdown,
    )
    .await?
    else {
        return Ok(());
    };
    let cursors = Cursors::new(cursor_codec, &config.cursor_topic, &tenant, &config.topic);
    let Some(positions) = cursors.load(&kafka, KAFKA_TIMEOUT, &shutdown).await? else {
        return Ok(());
    };
    tracing::info!(
        topic = %config.topic,
        tables = known.len(),
        event_cursor = ?positions.events,
        last_listing = ?positions.listing,
        cursor_topic = %cursors.topic(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "snapshots topic and cursors read"
    );
    let relist = config.full_relist_interval;
    // The next full listing: `full_relist_interval` after the start of the last complete one.
    let mut next_listing = match positions.listing {
        Some(at) if positions.events.is_some() => {
            let age = Duration::from_millis(now_ms().saturating_sub(at).max(0) as u64);
            Instant::now() + relist.saturating_sub(age)
        }
        _ => Instant::now(),
    };
    let mut poller = Poller {
        client,
        codec: Arc::new(codec),
        publisher,
        cursors,
        tenant,
        services: config.services.clone(),
        page_size: config.page_size.max(1),
        event_fetch_limit: config.event_fetch_limit,
        event_overlap_ms: config.event_overlap.as_millis() as i64,
        index: Index::new(known),
        positions,
    };
    METRICS.live.set(poller.live() as i64);
    loop {
        let started = Instant::now();
        let result = if started >= next_listing {
            let reason = if poller.positions.events.is_none() {
                "start"
            } else {
                "interval"
            };
            poller.listing(reason, &shutdown).await
        } else {
            poller.events(&shutdown).await
        };
        match result {
            Ok(None) => break,
            Ok(Some(stats)) => {
                let elapsed = started.elapsed();
                if stats.listing {
                    next_listing = started + relist;
                }
                METRICS.poll_duration.observe(elapsed.as_secs_f64());
                METRICS.polls.with_label_values(&["ok"]).inc();
                METRICS.live.set(poller.live() as i64);
                if let Some(cursor) = poller.positions.events {
                    METRICS
                        .event_lag
                        .set(now_ms().saturating_sub(cursor) as f64 / 1000.0);
                }
                stats.record();
                ready.send_replace(true);
                tracing::info!(
                    listing = stats.listing,
                    events = stats.events,
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

/// Registers `T`'s schema for `topic`, retrying while the registry is unreachable (it may be
/// starting beside this role).
async fn register<T: lineage_schemas::AvroRecord>(
    registry: RegistryClient,
    topic: &str,
) -> Result<RecordCodec<T>, OpenMetadataError> {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(20)
        .with_jitter();
    (|| RecordCodec::<T>::for_topic(registry.clone(), topic))
        .retry(backoff)
        .when(CodecError::is_retryable)
        .notify(|e, delay| tracing::warn!(error = %e, ?delay, "schema registry not reachable; retrying"))
        .await
        .map_err(|source| OpenMetadataError::Codec {
            what: format!("registering the schema of {topic}"),
            source,
        })
}
