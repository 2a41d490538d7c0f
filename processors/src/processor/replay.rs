//! Rebuilding the state of runs already processed: when partitions of the event topic are
//! assigned to this instance (at start, and at every rebalance), their events before the
//! group's committed offsets are read again and folded into the state without output (their
//! output is already in the output topics, written by whichever instance owned them). Open
//! runs then continue with their whole context: the anchor time of their run ids, their tags,
//! the tasks seen, the assets planned.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use lineage_bus_core::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::ProcessError;
use super::batch::{LineageProcessor, origin_of};

/// The group's committed offset per partition of `topic` (0 where none is committed).
async fn committed_offsets(
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
    timeout: Duration,
) -> Result<HashMap<i32, i64>, KafkaError> {
    let consumer: BaseConsumer = kafka.consumer_config("processor-replay", group).create()?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
        let mut partitions = TopicPartitionList::new();
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            partitions.add_partition(&topic, partition.id());
        }
        let committed = consumer.committed_offsets(partitions, timeout)?;
        Ok(committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(offset) => (e.partition(), offset),
                _ => (e.partition(), 0),
            })
            .collect())
    })
    .await
    .unwrap_or(Err(KafkaError::Canceled))
}

/// Whether `topic` exists (the cluster's metadata lists it with partitions).
pub async fn topic_exists(
    kafka: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<bool, KafkaError> {
    let consumer: BaseConsumer = kafka.client_config("processor-metadata").create()?;
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
        Ok(metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty()))
    })
    .await
    .unwrap_or(Err(KafkaError::Canceled))
}

/// Where and how to replay the event topic's history (the processor's rebuild on
/// assignment).
#[derive(Clone)]
pub struct Replayer {
    /// Kafka settings.
    pub kafka: KafkaConfig,
    /// The processor's consumer group (whose committed offsets end the replay).
    pub group: String,
    /// The event topic.
    pub topic: String,
    /// Timeout of metadata and offset requests.
    pub timeout: Duration,
    /// Stops a replay early.
    pub shutdown: CancellationToken,
}

impl Replayer {
    /// The group's committed offset of every partition of the event topic (0 where none is
    /// committed).
    pub async fn committed(&self) -> Result<HashMap<i32, i64>, ProcessError> {
        committed_offsets(&self.kafka, &self.group, &self.topic, self.timeout)
            .await
            .map_err(|source| ProcessError::Kafka {
                action: format!("reading the committed offsets of {}", self.topic),
                source,
            })
    }

    /// Folds the events of each partition of `targets` before its offset into `processor`;
    /// returns how many.
    pub async fn replay(
        &self,
        processor: &mut LineageProcessor,
        targets: HashMap<i32, i64>,
    ) -> Result<usize, ProcessError> {
        replay_history(
            &self.kafka,
            &self.group,
            &self.topic,
            processor,
            targets,
            &self.shutdown,
        )
        .await
    }
}

/// Folds every event of each partition of `targets` before its offset into `processor`;
/// returns how many.
async fn replay_history(
    kafka: &KafkaConfig,
    group: &str,
    topic: &str,
    processor: &mut LineageProcessor,
    mut targets: HashMap<i32, i64>,
    shutdown: &CancellationToken,
) -> Result<usize, ProcessError> {
    let kafka_error = |action: &str| {
        let action = format!("replaying {topic}: {action}");
        move |source| ProcessError::Kafka { action, source }
    };
    targets.retain(|_, offset| *offset > 0);
    if targets.is_empty() {
        return Ok(0);
    }
    let mut config = kafka.client_config("processor-replay");
    config
        .set("group.id", format!("{group}-replay"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
    let consumer: StreamConsumer = config.create().map_err(kafka_error("creating a reader"))?;
    let mut assignment = TopicPartitionList::new();
    for partition in targets.keys() {
        assignment
            .add_partition_offset(topic, *partition, Offset::Beginning)
            .map_err(kafka_error("assigning partitions"))?;
    }
    consumer
        .assign(&assignment)
        .map_err(kafka_error("assigning partitions"))?;

    let mut replayed = 0;
    let mut stream = consumer.stream();
    while !targets.is_empty() {
        let next = tokio::select! {
            () = shutdown.cancelled() => break,
            next = stream.next() => next,
        };
        let message = match next {
            None => break,
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                targets.remove(&partition);
                continue;
            }
            Some(Err(e)) => return Err(kafka_error("consuming")(e)),
            Some(Ok(message)) => message,
        };
        let partition = message.partition();
        let Some(&target) = targets.get(&partition) else {
            continue;
        };
        if message.offset() >= target {
            targets.remove(&partition);
            continue;
        }
        let owned = message.detach();
        if message.offset() + 1 >= target {
            targets.remove(&partition);
        }
        if let Some(payload) = owned.payload()
            && let Ok(event) = processor.decode(payload).await
        {
            processor.replay(&event, &origin_of(&owned))?;
            replayed += 1;
        }
    }
    Ok(replayed)
}
