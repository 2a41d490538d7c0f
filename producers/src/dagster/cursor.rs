//! Reading the committed source cursor back from the compacted cursor topic at start.
//!
//! Call after the publisher initialised its transactions: that aborted any transaction a
//! predecessor left open, so reading with `read_committed` up to the end of every partition
//! sees the last committed cursor and nothing newer can be committed by the old instance.

use std::time::{Duration, Instant};

use futures::StreamExt;
use lineage_bus_core::KafkaConfig;
use lineage_schemas::RecordCodec;
use lineage_schemas::records::SourceCursor;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};

/// Keeps the end-of-partition events (how the loader knows it read everything) out of the
/// error log.
struct QuietEof;

impl ClientContext for QuietEof {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::PartitionEOF) {
            tracing::warn!(%error, reason, "cursor reader kafka client error");
        }
    }
}

impl ConsumerContext for QuietEof {}

/// Why the cursor could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    /// Kafka failed.
    #[error("cursor topic {topic}: cannot {step}: {source}")]
    Kafka {
        /// The cursor topic.
        topic: String,
        /// What was attempted.
        step: &'static str,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// A cursor record for our key does not decode.
    #[error("cursor topic {topic}: the record at offset {offset} does not decode: {source}")]
    Decode {
        /// The cursor topic.
        topic: String,
        /// Its offset.
        offset: i64,
        /// The codec error.
        source: lineage_schemas::CodecError,
    },
    /// The end of the topic was not reached in time.
    #[error("cursor topic {topic}: end not reached within {0:?}", .timeout)]
    Timeout {
        /// The cursor topic.
        topic: String,
        /// How long was waited.
        timeout: Duration,
    },
}

/// The latest committed cursor under `key`, or `None` when the producer never committed one.
pub async fn load(
    kafka_config: &KafkaConfig,
    topic: &str,
    key: &str,
    codec: &RecordCodec<SourceCursor>,
    timeout: Duration,
) -> Result<Option<SourceCursor>, CursorError> {
    let fail = |step| {
        let topic = topic.to_owned();
        move |source| CursorError::Kafka {
            topic,
            step,
            source,
        }
    };
    let consumer: StreamConsumer<QuietEof> = kafka_config
        .consumer_config(
            "producer-dagster-cursor",
            "lineage-bus-producer-dagster-cursor",
        )
        .set("enable.partition.eof", "true")
        .create_with_context(QuietEof)
        .map_err(fail("create a consumer"))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Timeout::After(timeout))
        .map_err(fail("fetch metadata"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut assignment = TopicPartitionList::new();
    for &partition in &partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .map_err(fail("assign partitions"))?;
    }
    consumer
        .assign(&assignment)
        .map_err(fail("assign partitions"))?;
    let deadline = Instant::now() + timeout;
    let mut at_end = vec![false; partitions.len()];
    let mut latest = None;
    let mut stream = consumer.stream();
    while at_end.iter().any(|done| !done) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(remaining, stream.next())
            .await
            .map_err(|_| CursorError::Timeout {
                topic: topic.to_owned(),
                timeout,
            })?;
        match next {
            Some(Ok(message)) => {
                if message.key() != Some(key.as_bytes()) {
                    continue;
                }
                latest =
                    match message.payload() {
                        None => None, // a tombstone resets the cursor
                        Some(bytes) => Some(codec.decode(bytes).await.map_err(|source| {
                            CursorError::Decode {
                                topic: topic.to_owned(),
                                offset: message.offset(),
                                source,
                            }
                        })?),
                    };
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                if let Some(index) = partitions.iter().position(|p| *p == partition) {
                    at_end[index] = true;
                }
            }
            Some(Err(error))
                if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) => {}
            Some(Err(error)) => return Err(fail("read")(error)),
            None => break,
        }
    }
    Ok(latest)
}
