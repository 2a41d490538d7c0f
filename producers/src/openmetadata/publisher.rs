//! The transactional writer of the snapshots topic and the producer's cursors. One transaction
//! per batch: a batch (with the cursors it moves) is in the topics whole or not at all, and a
//! restarted producer (same transactional id) fences its predecessor and aborts whatever the
//! predecessor left open before it reads the topics.

use std::time::Duration;

use futures::future::join_all;
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use super::OpenMetadataError;

/// Records per transaction (a first listing of a big catalog is split).
const BATCH: usize = 5_000;

/// One record: key (FQN) and value (`None` = tombstone).
pub(crate) type Record = (String, Option<Vec<u8>>);
/// One cursor record: key and value.
pub(crate) type CursorRecord = (String, Vec<u8>);

/// The transactional producer of one topic.
pub(crate) struct Publisher {
    producer: FutureProducer,
    topic: String,
    cursor_topic: String,
    timeout: Duration,
}

impl Publisher {
    /// Creates the producer and initialises its transactions (fencing older instances).
    pub(crate) async fn new(
        mut config: ClientConfig,
        topic: &str,
        cursor_topic: &str,
        timeout: Duration,
    ) -> Result<Self, OpenMetadataError> {
        let error = |action| {
            let topic = topic.to_owned();
            move |source| OpenMetadataError::Publish {
                topic,
                action,
                source,
            }
        };
        // Java's partitioner, so that other Kafka clients put the same key in the same partition.
        config
            .set("partitioner", "murmur2_random")
            .set("transaction.timeout.ms", "60000");
        let producer: FutureProducer = config.create().map_err(error("creating the producer"))?;
        let init = producer.clone();
        tokio::task::spawn_blocking(move || init.init_transactions(Timeout::After(timeout)))
            .await
            .map_err(OpenMetadataError::Task)?
            .map_err(error("initialising transactions"))?;
        Ok(Self {
            producer,
            topic: topic.to_owned(),
            cursor_topic: cursor_topic.to_owned(),
            timeout,
        })
    }

    /// Writes `records` in transactions of at most [`BATCH`] records, `cursors` in the last
    /// one (alone when there are no records); returns once committed.
    pub(crate) async fn publish(
        &self,
        records: Vec<Record>,
        cursors: Vec<CursorRecord>,
    ) -> Result<(), OpenMetadataError> {
        let mut chunks: Vec<&[Record]> = records.chunks(BATCH).collect();
        if chunks.is_empty() {
            if cursors.is_empty() {
                return Ok(());
            }
            chunks.push(&[]);
        }
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let cursors = if i == last { cursors.as_slice() } else { &[] };
            if let Err(e) = self.transaction(chunk, cursors).await {
                let abort = self.producer.clone();
                let timeout = self.timeout;
                let _ = tokio::task::spawn_blocking(move || {
                    abort.abort_transaction(Timeout::After(timeout))
                })
                .await;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn transaction(
        &self,
        records: &[Record],
        cursors: &[CursorRecord],
    ) -> Result<(), OpenMetadataError> {
        let error = |action| {
            let topic = self.topic.clone();
            move |source: KafkaError| OpenMetadataError::Publish {
                topic,
                action,
                source,
            }
        };
        self.producer
            .begin_transaction()
            .map_err(error("beginning a transaction"))?;
        let sends = records.iter().map(|(key, value)| {
            let mut record = FutureRecord::<str, [u8]>::to(&self.topic).key(key.as_str());
            if let Some(value) = value {
                record = record.payload(value.as_slice());
            }
            self.producer.send(record, Timeout::After(self.timeout))
        });
        let cursor_sends = cursors.iter().map(|(key, value)| {
            let record = FutureRecord::<str, [u8]>::to(&self.cursor_topic)
                .key(key.as_str())
                .payload(value.as_slice());
            self.producer.send(record, Timeout::After(self.timeout))
        });
        let (results, cursor_results) = futures::join!(join_all(sends), join_all(cursor_sends));
        for result in results.into_iter().chain(cursor_results) {
            result.map_err(|(e, _)| error("producing")(e))?;
        }
        let commit = self.producer.clone();
        let timeout = self.timeout;
        tokio::task::spawn_blocking(move || commit.commit_transaction(Timeout::After(timeout)))
            .await
            .map_err(OpenMetadataError::Task)?
            .map_err(error("committing"))
    }
}
