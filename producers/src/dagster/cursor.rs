//! Reading the committed source cursor back from the compacted cursor topic at start.
//!
//! Call after the publisher initialised its transactions: that aborted any transaction a
//! predecessor left open, so reading with `read_committed` up to the end of every partition
//! sees the last committed cursor and nothing newer can be committed by the old instance.
//!
//! A producer has one cursor under its key (`producer.dagster/<tenant>`); the run-sharded
//! SQLite tail also has one per shard under [`shard_key`], committed in the same transactions.

use std::collections::HashMap;

use std::time::{Duration, Instant};

use futures::StreamExt;
use lineage_bus_core::KafkaConfig;
use lineage_bus_core::compacted::QuietEof;
use lineage_schemas::RecordCodec;
use lineage_schemas::records::SourceCursor;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};

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
    /// The committed cursor belongs to another source.
    #[error(
        "the committed cursor of {key} counts in {found}, but this producer reads {expected}; \
         use another tenant id or transactional id prefix for another source"
    )]
    Foreign {
        /// Cursor key.
        key: String,
        /// Source named by the committed cursor.
        found: String,
        /// Source of this producer.
        expected: String,
    },
}

/// What separates a producer's cursor key from a shard name in [`shard_key`].
const SHARD_INFIX: &str = "/shard/";

/// The key of the cursor of `shard` (a run-sharded SQLite shard) of the producer keyed `key`.
pub fn shard_key(key: &str, shard: &str) -> String {
    format!("{key}{SHARD_INFIX}{shard}")
}

/// The cursors committed under one key and its shard keys.
#[derive(Debug, Default)]
pub struct Committed {
    /// The cursor under the key itself; `None` when the producer never committed one.
    pub main: Option<SourceCursor>,
    /// The cursors under [`shard_key`]s, by shard (only when asked for).
    pub shards: HashMap<String, SourceCursor>,
}

impl Committed {
    /// The position of the cursor under `key` itself, 0 when there is none; an error when
    /// another source than `source` committed it.
    pub fn main_position(&self, key: &str, source: &str) -> Result<i64, CursorError> {
        match &self.main {
            Some(cursor) if cursor.source != source => Err(CursorError::Foreign {
                key: key.to_owned(),
                found: cursor.source.clone(),
                expected: source.to_owned(),
            }),
            Some(cursor) => Ok(cursor.position),
            None => Ok(0),
        }
    }
}

/// The latest committed cursor under `key` and, when `with_shards`, under each of its shard
/// keys.
pub async fn load(
    kafka_config: &KafkaConfig,
    topic: &str,
    key: &str,
    with_shards: bool,
    codec: &RecordCodec<SourceCursor>,
    timeout: Duration,
) -> Result<Committed, CursorError> {
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
    let shard_prefix = format!("{key}{SHARD_INFIX}");
    // The latest payload by key (None: a tombstone), decoded once at the end.
    let mut latest: HashMap<Vec<u8>, Option<(i64, Vec<u8>)>> = HashMap::new();
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
                let Some(message_key) = message.key() else {
                    continue;
                };
                let ours = message_key == key.as_bytes()
                    || (with_shards && message_key.starts_with(shard_prefix.as_bytes()));
                if ours {
                    // A tombstone resets the cursor.
                    let payload = message.payload().map(|p| (message.offset(), p.to_vec()));
                    latest.insert(message_key.to_vec(), payload);
                }
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
    let mut committed = Committed::default();
    for (message_key, payload) in latest {
        let Some((offset, bytes)) = payload else {
            continue;
        };
        let cursor = codec
            .decode(&bytes)
            .await
            .map_err(|source| CursorError::Decode {
                topic: topic.to_owned(),
                offset,
                source,
            })?;
        match message_key.strip_prefix(shard_prefix.as_bytes()) {
            Some(shard) => {
                committed
                    .shards
                    .insert(String::from_utf8_lossy(shard).into_owned(), cursor);
            }
            None => committed.main = Some(cursor),
        }
    }
    Ok(committed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_position_is_ours_only() {
        let cursor = |source: &str| SourceCursor {
            producer: "p".into(),
            tenant: "t".into(),
            source: source.into(),
            position: 42,
            updated_ms: 0,
        };
        assert_eq!(
            Committed::default().main_position("k", "pg:a").ok(),
            Some(0)
        );
        let ours = Committed {
            main: Some(cursor("pg:a")),
            ..Committed::default()
        };
        assert_eq!(ours.main_position("k", "pg:a").ok(), Some(42));
        let error = ours.main_position("k", "graphql:b").err();
        assert!(
            matches!(&error, Some(CursorError::Foreign { key, found, expected })
                if key == "k" && found == "pg:a" && expected == "graphql:b"),
            "{error:?}"
        );
    }
}
