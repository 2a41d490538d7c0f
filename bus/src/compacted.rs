//! Compacted topics as tables: read every partition from the beginning to its current end
//! (global-table semantics: every instance sees every key), then follow new updates.
//!
//! The end is detected with partition-EOF events rather than by comparing offsets with the
//! high watermark, because a log that ends with transaction markers never delivers a record
//! at the last offsets. An EOF event names only the partition, so a reader follows one topic.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;

/// One change of a compacted topic: the latest value of `key`, or `None` when deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableUpdate {
    /// Partition of the record.
    pub partition: i32,
    /// Offset of the record.
    pub offset: i64,
    /// Record key.
    pub key: Vec<u8>,
    /// Record value; `None` for a tombstone.
    pub value: Option<Vec<u8>>,
}

/// A compacted-topic reader that failed.
#[derive(Debug, thiserror::Error)]
#[error("reading compacted topic {topic}: {action}: {source}")]
pub struct CompactedError {
    topic: String,
    action: &'static str,
    source: KafkaError,
}

impl CompactedError {
    /// True when the topic does not exist (a setup error, not a transient one).
    pub fn is_missing_topic(&self) -> bool {
        matches!(
            self.source,
            KafkaError::MetadataFetch(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition)
        )
    }
}

/// Client context of readers that detect the end of a topic with partition-EOF events:
/// keeps those expected events out of the error log and logs other client errors as warnings.
pub struct QuietEof;

impl ClientContext for QuietEof {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::PartitionEOF) {
            tracing::warn!(%error, reason, "kafka client error");
        }
    }
}

impl ConsumerContext for QuietEof {}

/// Reads one compacted topic without a consumer group (every partition, from the
/// beginning, read_committed).
pub struct CompactedReader {
    consumer: StreamConsumer<QuietEof>,
    topic: String,
}

impl CompactedReader {
    /// Assigns every partition of `topic` from the beginning.
    pub fn new(
        kafka: &KafkaConfig,
        role: &str,
        topic: &str,
        timeout: Duration,
    ) -> Result<Self, CompactedError> {
        let error = |action| {
            let topic = topic.to_owned();
            move |source| CompactedError {
                topic,
                action,
                source,
            }
        };
        let mut config = kafka.client_config(role);
        config
            .set(
                "group.id",
                format!("{}-{role}-table-reader", kafka.client_id),
            )
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true");
        let consumer: StreamConsumer<QuietEof> = config
            .create_with_context(QuietEof)
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
            return Err(error("finding its partitions")(KafkaError::MetadataFetch(
                rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
            )));
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
        Ok(Self {
            consumer,
            topic: topic.to_owned(),
        })
    }

    /// Reads up to the end of every partition, returning the latest value per key
    /// (tombstoned keys removed). Stops early, with what it has, on shutdown.
    pub async fn read_to_end(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, CompactedError> {
        let mut table = BTreeMap::new();
        self.fold_to_end(shutdown, |key, value| match value {
            Some(value) => {
                table.insert(key.to_vec(), value.to_vec());
            }
            None => {
                table.remove(key);
            }
        })
        .await?;
        Ok(table)
    }

    /// Hands every record up to the end of every partition to `apply` (key, value; `None` for
    /// a tombstone), in log order per partition, without keeping them: for callers that fold
    /// a large topic into something small. False when shutdown stopped it early.
    pub async fn fold_to_end(
        &self,
        shutdown: &CancellationToken,
        mut apply: impl FnMut(&[u8], Option<&[u8]>),
    ) -> Result<bool, CompactedError> {
        let assignment = self
            .consumer
            .assignment()
            .map_err(self.error("reading the assignment"))?;
        let mut open: HashSet<i32> = assignment
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect();
        let mut stream = self.consumer.stream();
        while !open.is_empty() {
            let next = tokio::select! {
                () = shutdown.cancelled() => return Ok(false),
                next = stream.next() => next,
            };
            match next {
                None => return Ok(false),
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    open.remove(&partition);
                }
                Some(Err(e)) => return Err(self.error("consuming")(e)),
                Some(Ok(message)) => {
                    apply(message.key().unwrap_or_default(), message.payload());
                }
            }
        }
        Ok(true)
    }

    /// The next update after [`read_to_end`](Self::read_to_end); `None` on shutdown.
    pub async fn next_update(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<Option<TableUpdate>, CompactedError> {
        let mut stream = self.consumer.stream();
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return Ok(None),
                next = stream.next() => next,
            };
            match next {
                None => return Ok(None),
                Some(Err(KafkaError::PartitionEOF(_))) => continue,
                Some(Err(e)) => return Err(self.error("consuming")(e)),
                Some(Ok(message)) => {
                    return Ok(Some(TableUpdate {
                        partition: message.partition(),
                        offset: message.offset(),
                        key: message.key().unwrap_or_default().to_vec(),
                        value: message.payload().map(<[u8]>::to_vec),
                    }));
                }
            }
        }
    }

    fn error(&self, action: &'static str) -> impl FnOnce(KafkaError) -> CompactedError {
        let topic = self.topic.clone();
        move |source| CompactedError {
            topic,
            action,
            source,
        }
    }
}
