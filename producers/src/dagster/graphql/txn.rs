//! The transactional writer of the GraphQL side: each call commits a set of records (values
//! or tombstones, to any of the writer's topics) in one Kafka transaction, so they become
//! visible together or not at all. The `transactional.id` fences a previous instance at open.

use std::time::Duration;

use futures::future::join_all;
use lineage_bus_core::KafkaConfig;
use lineage_bus_core::topics::first_missing;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

/// Records per transaction when a call is split.
const CHUNK: usize = 5_000;

/// One record: topic, key, value (`None` = tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Topic.
    pub topic: String,
    /// Key.
    pub key: String,
    /// Value; `None` for a tombstone.
    pub value: Option<Vec<u8>>,
}

/// A Kafka failure, naming the step.
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    /// A Kafka call failed.
    #[error("kafka: cannot {step}: {source}")]
    Kafka {
        /// What was attempted.
        step: &'static str,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// A topic the writer needs is missing.
    #[error("topic {0} does not exist; run `lineage-bus topics apply` (or create it)")]
    MissingTopic(String),
    /// A blocking task panicked.
    #[error("a blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl TxnError {
    /// True when another instance with the same `transactional.id` took over.
    pub fn is_fenced(&self) -> bool {
        matches!(
            self,
            TxnError::Kafka { source, .. } if matches!(
                source.rdkafka_error_code(),
                Some(RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch)
            )
        )
    }
}

fn kafka(step: &'static str) -> impl FnOnce(KafkaError) -> TxnError {
    move |source| TxnError::Kafka { step, source }
}

/// A transactional producer.
pub struct TxnWriter {
    producer: FutureProducer,
    timeout: Duration,
}

impl TxnWriter {
    /// Creates the producer as `role` with `transactional_id`, checks `topics` exist and
    /// initialises transactions (fencing an older instance). `java_partitioner` selects
    /// Java's partitioner (murmur2, as the compacted tables use, so that any Kafka client
    /// puts a key in the same partition); otherwise librdkafka's default, as the event-log
    /// tail writes `dagster.events`.
    pub async fn open(
        kafka_config: &KafkaConfig,
        role: &str,
        transactional_id: &str,
        topics: &[&str],
        java_partitioner: bool,
        timeout: Duration,
    ) -> Result<Self, TxnError> {
        let mut config = kafka_config.transactional_producer_config(role, transactional_id);
        config.set("transaction.timeout.ms", timeout.as_millis().to_string());
        if java_partitioner {
            config.set("partitioner", "murmur2_random");
        }
        let producer: FutureProducer = config.create().map_err(kafka("create the producer"))?;
        let probe = producer.clone();
        let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            let metadata = probe
                .client()
                .fetch_metadata(None, Timeout::After(timeout))
                .map_err(kafka("fetch topic metadata"))?;
            if let Some(topic) = first_missing(&metadata, topics.iter().map(String::as_str)) {
                return Err(TxnError::MissingTopic(topic.to_owned()));
            }
            probe
                .init_transactions(Timeout::After(timeout))
                .map_err(kafka("initialise transactions"))
        })
        .await??;
        Ok(Self { producer, timeout })
    }

    /// Commits `records` in order, in transactions of at most [`CHUNK`] records (one when
    /// `atomic`, whatever the size). On error the open transaction is aborted.
    pub async fn commit(&self, records: &[Record], atomic: bool) -> Result<(), TxnError> {
        let chunk = if atomic { records.len().max(1) } else { CHUNK };
        for part in records.chunks(chunk) {
            if let Err(error) = self.transaction(part).await {
                let abort = self.producer.clone();
                let timeout = self.timeout;
                let aborted = tokio::task::spawn_blocking(move || {
                    abort.abort_transaction(Timeout::After(timeout))
                })
                .await;
                if let Ok(Err(abort)) = aborted {
                    tracing::warn!(error = %abort, "cannot abort the failed transaction");
                }
                return Err(error);
            }
        }
        Ok(())
    }

    async fn transaction(&self, records: &[Record]) -> Result<(), TxnError> {
        self.producer
            .begin_transaction()
            .map_err(kafka("begin a transaction"))?;
        // Records are enqueued one by one, in order (librdkafka keeps the order per
        // partition), waiting while its queue is full; then every delivery is awaited.
        let mut deliveries = Vec::with_capacity(records.len());
        for record in records {
            let mut message = FutureRecord::<str, [u8]>::to(&record.topic).key(&record.key);
            if let Some(value) = &record.value {
                message = message.payload(value.as_slice());
            }
            loop {
                match self.producer.send_result(message) {
                    Ok(delivery) => {
                        deliveries.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        message = back;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err((source, _)) => return Err(kafka("enqueue a record")(source)),
                }
            }
        }
        for delivery in join_all(deliveries).await {
            match delivery {
                Ok(Ok(_)) => {}
                Ok(Err((source, _))) => return Err(kafka("deliver a record")(source)),
                Err(_) => {
                    return Err(kafka("deliver a record")(KafkaError::Canceled));
                }
            }
        }
        let commit = self.producer.clone();
        let timeout = self.timeout;
        tokio::task::spawn_blocking(move || commit.commit_transaction(Timeout::After(timeout)))
            .await?
            .map_err(kafka("commit the transaction"))
    }

    /// Closes the producer off the reactor (dropping a librdkafka client joins its threads).
    pub async fn close(self) {
        let producer = self.producer;
        let _ = tokio::task::spawn_blocking(move || drop(producer)).await;
    }
}
