//! What the compacted topic holds: every key's latest value folded into FQN → content hash,
//! read from the beginning to the end (read_committed, no consumer group) at start-up.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hasher};
use std::time::Duration;

use futures::StreamExt;
use lineage_schemas::RecordCodec;
use lineage_schemas::records::TableSnapshot;
use lineage_schemas::wire;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::OpenMetadataError;

/// The content hash of an encoded snapshot (wire bytes of the producer's own schema id).
pub(crate) fn content_hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(bytes);
    hasher.finish()
}

/// Reads `topic` to its end and returns FQN → hash of the latest snapshot (tombstoned keys
/// removed). Values written with another schema id are decoded and re-encoded with ours, so
/// that equal content hashes equal across schema versions. `None` on shutdown.
pub(crate) async fn read_topic(
    kafka: &ClientConfig,
    topic: &str,
    codec: &RecordCodec<TableSnapshot>,
    timeout: Duration,
    shutdown: &CancellationToken,
) -> Result<Option<HashMap<String, u64>>, OpenMetadataError> {
    let error = |action: &'static str| {
        let topic = topic.to_owned();
        move |source: KafkaError| OpenMetadataError::Topic {
            topic,
            action,
            source,
        }
    };
    let consumer: StreamConsumer = kafka
        .clone()
        .set(
            "group.id",
            format!("lineage-bus-openmetadata-reader-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(error("creating the consumer"))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(error("fetching metadata"))?;
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len())
        .unwrap_or_default();
    if partitions == 0 {
        return Err(OpenMetadataError::MissingTopic(topic.to_owned()));
    }
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions as i32 {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .map_err(error("assigning partitions"))?;
    }
    consumer
        .assign(&assignment)
        .map_err(error("assigning partitions"))?;
    let mut open: HashSet<i32> = (0..partitions as i32).collect();
    let mut known = HashMap::new();
    let mut stream = consumer.stream();
    while !open.is_empty() {
        let next = tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            next = stream.next() => next,
        };
        let message = match next {
            None => break,
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                open.remove(&partition);
                continue;
            }
            Some(Err(e)) => return Err(error("consuming")(e)),
            Some(Ok(message)) => message,
        };
        let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
            tracing::warn!(
                topic,
                offset = message.offset(),
                "record without a UTF-8 key; ignored"
            );
            continue;
        };
        match message.payload() {
            None => {
                known.remove(key);
            }
            Some(bytes) => {
                let hash = match wire::split(bytes) {
                    Ok((id, _)) if id == codec.schema_id() => content_hash(bytes),
                    _ => {
                        let snapshot = codec.decode(bytes).await.map_err(|source| {
                            OpenMetadataError::Codec {
                                what: format!("decoding {topic} offset {}", message.offset()),
                                source,
                            }
                        })?;
                        let own =
                            codec
                                .encode(&snapshot)
                                .map_err(|source| OpenMetadataError::Codec {
                                    what: format!("re-encoding {}", snapshot.fqn),
                                    source,
                                })?;
                        content_hash(&own)
                    }
                };
                known.insert(key.to_owned(), hash);
            }
        }
    }
    Ok(Some(known))
}
