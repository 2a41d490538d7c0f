//! The transactional writer: one Kafka transaction per batch holds the batch's events (and
//! dead letters) and the new source cursor, so a reader with `read_committed` sees the records
//! exactly when the cursor covering them is committed, and a restart resumes after them.
//!
//! The `transactional.id` is derived from the tenant: a restarted instance's
//! `init_transactions` aborts the transaction its predecessor left open and fences it, so a
//! zombie can never commit again. Every call here blocks (librdkafka's transaction API and the
//! CPU-bound parsing and Avro encoding) and runs on a blocking thread.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lineage_bus_core::KafkaConfig;
use lineage_bus_core::clock::now_ms;
use lineage_bus_core::topics::first_missing;
use lineage_schemas::RecordCodec;
use lineage_schemas::records::{
    DagsterEvent, DagsterEventType, DeadLetter, DeadLetterKind, SourceCursor, SourceKind,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::util::Timeout;

use super::cursor::shard_key;
use super::parse::parse_event;
use super::run_tags::{self, RunTags};
use super::tail::{Batch, Row};

/// Most threads parsing and encoding one batch.
const ENCODE_THREADS: usize = 4;

/// One row, encoded for its topic.
struct Encoded {
    /// The event's type; `None` for a dead letter.
    event_type: Option<DagsterEventType>,
    key: String,
    value: Vec<u8>,
}

/// The name of this producer on dead letters and cursors.
pub const COMPONENT: &str = "producer.dagster";

/// A Kafka failure, naming the step.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A Kafka call failed.
    #[error("kafka: cannot {step}: {source}")]
    Kafka {
        /// What was attempted.
        step: &'static str,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// A record could not be Avro-encoded.
    #[error("cannot encode a record: {0}")]
    Encode(#[from] lineage_schemas::CodecError),
    /// A topic the producer writes is missing.
    #[error("topic {0} does not exist; run `lineage-bus topics apply` (or create it)")]
    MissingTopic(String),
}

impl PublishError {
    /// True when another instance with the same `transactional.id` took over.
    pub fn is_fenced(&self) -> bool {
        matches!(
            self,
            PublishError::Kafka { source, .. } if matches!(
                source.rdkafka_error_code(),
                Some(RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch)
            )
        )
    }
}

fn kafka(step: &'static str) -> impl FnOnce(KafkaError) -> PublishError {
    move |source| PublishError::Kafka { step, source }
}

/// Where and as whom the publisher writes.
#[derive(Debug, Clone)]
pub struct Destination {
    /// Tenant id carried on every record.
    pub tenant: String,
    /// `postgres:<table>`, `sqlite:consolidated` or `sqlite:run-sharded`: what the cursor
    /// position counts in.
    pub source: String,
    /// The kind of source, carried on every event.
    pub kind: SourceKind,
    /// Events topic.
    pub events_topic: String,
    /// Cursor topic.
    pub cursor_topic: String,
    /// Dead-letter topic.
    pub dead_letter_topic: String,
}

impl Destination {
    /// The cursor's Kafka key.
    pub fn cursor_key(&self) -> String {
        format!("{COMPONENT}/{}", self.tenant)
    }
}

/// The codecs of the three record types.
pub struct Codecs {
    /// `DagsterEvent` on the events topic.
    pub events: RecordCodec<DagsterEvent>,
    /// `DeadLetter` on the dead-letter topic.
    pub dead_letters: RecordCodec<DeadLetter>,
    /// `SourceCursor` on the cursor topic.
    pub cursors: RecordCodec<SourceCursor>,
}

/// What one committed batch contained.
#[derive(Debug, Default)]
pub struct Published {
    /// Events by type.
    pub by_type: HashMap<DagsterEventType, u64>,
    /// Rows sent to the dead-letter topic.
    pub dead_letters: u64,
}

/// A transactional producer bound to one tenant.
pub struct Publisher {
    producer: ThreadedProducer<DefaultProducerContext>,
    destination: Destination,
    codecs: Codecs,
    timeout: Duration,
}

impl Publisher {
    /// Creates the producer and initialises its transactions (fencing any predecessor with
    /// the same `transactional_id`). Blocking.
    pub fn open(
        kafka_config: &KafkaConfig,
        transactional_id: &str,
        transaction_timeout: Duration,
        destination: Destination,
        codecs: Codecs,
    ) -> Result<Self, PublishError> {
        let producer: ThreadedProducer<DefaultProducerContext> = kafka_config
            .transactional_producer_config("producer-dagster", transactional_id)
            .set(
                "transaction.timeout.ms",
                transaction_timeout.as_millis().to_string(),
            )
            .set("linger.ms", "5")
            .set("batch.size", "1000000")
            // The coordinator answers CONCURRENT_TRANSACTIONS while it still writes the
            // previous commit's markers; librdkafka's default 100 ms back-off would add a
            // tenth of a second to every batch.
            .set("retry.backoff.ms", "5")
            .create()
            .map_err(kafka("create the producer"))?;
        let timeout = transaction_timeout.max(Duration::from_secs(10));
        let metadata = producer
            .client()
            .fetch_metadata(None, Timeout::After(timeout))
            .map_err(kafka("fetch topic metadata"))?;
        let topics = [
            &destination.events_topic,
            &destination.cursor_topic,
            &destination.dead_letter_topic,
        ];
        if let Some(topic) = first_missing(&metadata, topics.map(String::as_str)) {
            return Err(PublishError::MissingTopic(topic.to_owned()));
        }
        producer
            .init_transactions(Timeout::After(timeout))
            .map_err(kafka("initialise transactions"))?;
        Ok(Self {
            producer,
            destination,
            codecs,
            timeout,
        })
    }

    /// The codecs the publisher encodes with.
    pub fn codecs(&self) -> &Codecs {
        &self.codecs
    }

    /// Parses, encodes and publishes `batch` with its cursor in one transaction; its
    /// run-lifecycle events carry their run's tags from `tags` ([`run_tags`]). Blocking.
    /// On failure the transaction is aborted; nothing of the batch becomes visible.
    pub fn publish(&self, batch: &Batch, tags: &RunTags) -> Result<Published, PublishError> {
        let started = Instant::now();
        let records = self.encode_rows(&batch.rows, tags)?;
        let encoded = started.elapsed();
        self.producer
            .begin_transaction()
            .map_err(kafka("begin a transaction"))?;
        let result = self.send_batch(records, batch).and_then(|published| {
            self.wait_delivered()?;
            self.producer
                .commit_transaction(Timeout::After(self.timeout))
                .map_err(kafka("commit the transaction"))?;
            Ok(published)
        });
        match &result {
            Ok(_) => tracing::debug!(
                rows = batch.rows.len(),
                encode_ms = encoded.as_millis(),
                send_and_commit_ms = (started.elapsed() - encoded).as_millis(),
                "transaction committed"
            ),
            Err(_) => {
                if let Err(abort) = self
                    .producer
                    .abort_transaction(Timeout::After(self.timeout))
                {
                    tracing::warn!(error = %abort, "cannot abort the failed transaction");
                }
            }
        }
        result
    }

    fn send_batch(&self, records: Vec<Encoded>, batch: &Batch) -> Result<Published, PublishError> {
        let mut published = Published::default();
        for record in records {
            let topic = match record.event_type {
                Some(event_type) => {
                    *published.by_type.entry(event_type).or_default() += 1;
                    &self.destination.events_topic
                }
                None => {
                    published.dead_letters += 1;
                    &self.destination.dead_letter_topic
                }
            };
            self.send(topic, record.key.as_bytes(), &record.value)?;
        }
        let key = self.destination.cursor_key();
        let shards = batch
            .shards
            .iter()
            .map(|(shard, position)| (shard_key(&key, shard), *position));
        for (key, position) in std::iter::once((key.clone(), batch.position)).chain(shards) {
            let cursor = SourceCursor {
                producer: COMPONENT.to_owned(),
                tenant: self.destination.tenant.clone(),
                source: self.destination.source.clone(),
                position,
                updated_ms: now_ms(),
            };
            let value = self.codecs.cursors.encode(&cursor)?;
            self.send(&self.destination.cursor_topic, key.as_bytes(), &value)?;
        }
        Ok(published)
    }

    /// Parses and encodes `rows` in order, on up to [`ENCODE_THREADS`] threads.
    fn encode_rows(&self, rows: &[Row], tags: &RunTags) -> Result<Vec<Encoded>, PublishError> {
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, ENCODE_THREADS);
        let chunk = rows.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let mut chunks = rows.chunks(chunk);
            let first = chunks.next().unwrap_or_default();
            let others: Vec<_> = chunks
                .map(|rows| scope.spawn(move || self.encode_chunk(rows, tags)))
                .collect();
            let mut encoded = self.encode_chunk(first, tags)?;
            for handle in others {
                let part = handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
                encoded.extend(part);
            }
            Ok(encoded)
        })
    }

    fn encode_chunk(&self, rows: &[Row], tags: &RunTags) -> Result<Vec<Encoded>, PublishError> {
        let tenant = &self.destination.tenant;
        rows.iter()
            .map(|row| match parse_event(tenant, row.id, &row.event) {
                Ok(mut event) => {
                    event.source.kind = self.destination.kind;
                    event.source.shard.clone_from(&row.shard);
                    run_tags::attach(&mut event, tags);
                    Ok(Encoded {
                        event_type: Some(event.event_type),
                        key: event.kafka_key(),
                        value: self.codecs.events.encode(&event)?,
                    })
                }
                Err(error) => {
                    tracing::warn!(storage_id = row.id, %error, "dead-lettering an unparseable row");
                    let key = row.run_id.clone().unwrap_or_default();
                    let letter = DeadLetter {
                        component: COMPONENT.to_owned(),
                        tenant: Some(tenant.clone()),
                        error_kind: DeadLetterKind::MalformedInput,
                        reason: error.to_string(),
                        http_status: None,
                        response_body: None,
                        source_topic: None,
                        source_partition: None,
                        source_offset: None,
                        source_position: Some(match &row.shard {
                            Some(shard) => format!("{}:{shard}:{}", self.destination.source, row.id),
                            None => format!("{}:{}", self.destination.source, row.id),
                        }),
                        original_key: (!key.is_empty()).then(|| key.as_bytes().to_vec()),
                        original_value: Some(row.event.as_bytes().to_vec()),
                        attempts: 1,
                        timestamp_ms: now_ms(),
                    };
                    Ok(Encoded {
                        event_type: None,
                        value: self.codecs.dead_letters.encode(&letter)?,
                        key,
                    })
                }
            })
            .collect()
    }

    /// Waits until every enqueued record is acknowledged. `commit_transaction` flushes too,
    /// but rust-rdkafka's flush polls the event queue in 100 ms steps, which the
    /// `ThreadedProducer`'s own thread serves, so it always sleeps 100 ms when a record is
    /// still in flight; waiting here first makes its flush return at once.
    fn wait_delivered(&self) -> Result<(), PublishError> {
        let deadline = Instant::now() + self.timeout;
        while self.producer.in_flight_count() > 0 {
            if Instant::now() >= deadline {
                return Err(PublishError::Kafka {
                    step: "deliver the batch",
                    source: KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Enqueues one record, waiting while librdkafka's queue is full.
    fn send(&self, topic: &str, key: &[u8], value: &[u8]) -> Result<(), PublishError> {
        let mut record = BaseRecord::to(topic).key(key).payload(value);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((source, _)) => {
                    return Err(PublishError::Kafka {
                        step: "enqueue a record",
                        source,
                    });
                }
            }
        }
    }
}
