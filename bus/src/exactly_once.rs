//! Exactly-once read-process-write over Kafka transactions.
//!
//! Each batch runs in one transaction: the consumed records are handed to a
//! [`BatchProcessor`], its output records are produced, the consumer's next offsets are added
//! with `send_offsets_to_transaction`, and the transaction commits. Readers of the outputs use
//! `read_committed`, so they see a batch's output exactly when its input offsets are committed.
//!
//! A `wake` notification runs a transaction with an empty batch, for output that does not
//! come from the consumed records (a processor reacting to a table that appeared).
//!
//! Any failure aborts the open transaction and ends [`run`] with an error: the processor's
//! in-memory state may already include the aborted batch, so the caller must rebuild it (the
//! role restarts) and resume from the committed offsets. Processors that keep state across
//! batches write it to a compacted changelog topic as outputs of the same transaction, or keep
//! it partition-local and rebuild it when partitions are assigned
//! ([`BatchProcessor::rebalanced`], called before the first batch after the assignment
//! changed). Offsets are committed with the consumer's group metadata, so an instance that
//! lost its partitions in a rebalance cannot commit (KIP-447 fencing).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message, OwnedMessage};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;

/// How the engine consumes and batches.
#[derive(Debug, Clone)]
pub struct ExactlyOnceConfig {
    /// Consumer group; its offsets are committed inside the transactions.
    pub group: String,
    /// Topics to consume.
    pub input_topics: Vec<String>,
    /// `transactional.id` of this instance (stable per instance so a restart fences a zombie).
    pub transactional_id: String,
    /// Most records per transaction.
    pub max_batch: usize,
    /// How long to wait for more records before a non-empty batch is processed.
    pub max_wait: Duration,
    /// Timeout of transaction operations (init, commit, abort).
    pub transaction_timeout: Duration,
}

/// One record to produce inside the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Destination topic.
    pub topic: String,
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value; `None` is a tombstone.
    pub payload: Option<Vec<u8>>,
}

/// Turns a batch of input records into output records.
pub trait BatchProcessor: Send {
    /// The processor's error; it aborts the transaction.
    type Error: std::fmt::Display + Send;

    /// Processes `batch` (in consumption order; empty after a wake-up) and returns the
    /// records to produce.
    fn process(
        &mut self,
        batch: &[OwnedMessage],
    ) -> impl Future<Output = Result<Vec<Output>, Self::Error>> + Send;

    /// Called outside any transaction, before the first batch after the consumer's partition
    /// assignment changed (the first assignment included): `revoked` are the partitions lost,
    /// `assigned` the partitions gained, as (topic, partition). A processor with
    /// partition-local state drops the state of the revoked partitions and rebuilds that of the
    /// assigned ones (their records before the group's committed offsets). Default: nothing.
    fn rebalanced(
        &mut self,
        revoked: &[(String, i32)],
        assigned: &[(String, i32)],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = (revoked, assigned);
        async { Ok(()) }
    }
}

/// Why the engine stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExactlyOnceError {
    /// A Kafka operation failed; the open transaction (if any) was aborted.
    #[error("{action}: {source}")]
    Kafka {
        /// What was being done.
        action: String,
        /// The Kafka error.
        source: KafkaError,
    },
    /// The processor failed on a batch; its transaction was aborted.
    #[error("processing a batch of {records} records from {first}: {reason}")]
    Processor {
        /// Records in the batch.
        records: usize,
        /// Position of the batch's first record (`topic/partition@offset`).
        first: String,
        /// The processor's error.
        reason: String,
    },
}

fn kafka(action: impl Into<String>) -> impl FnOnce(KafkaError) -> ExactlyOnceError {
    let action = action.into();
    move |source| ExactlyOnceError::Kafka { action, source }
}

/// Consumes, processes and produces in transactions until `shutdown` is cancelled (then the
/// batch in hand is finished and committed) or something fails. Each notification of `wake`
/// runs the processor once on an empty batch.
pub async fn run<P: BatchProcessor>(
    kafka_config: &KafkaConfig,
    role: &str,
    config: &ExactlyOnceConfig,
    processor: &mut P,
    wake: &Notify,
    shutdown: CancellationToken,
) -> Result<(), ExactlyOnceError> {
    let consumer: StreamConsumer = kafka_config
        .consumer_config(role, &config.group)
        .create()
        .map_err(kafka("creating the consumer"))?;
    let topics: Vec<&str> = config.input_topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(kafka(format!("subscribing to {topics:?}")))?;
    let producer: TransactionalProducer = kafka_config
        .transactional_producer_config(role, &config.transactional_id)
        .set(
            "transaction.timeout.ms",
            (config.transaction_timeout.as_millis() * 2).to_string(),
        )
        .create_with_context(FirstDeliveryFailure::default())
        .map_err(kafka("creating the transactional producer"))?;
    let timeout = config.transaction_timeout;
    blocking(&producer, move |p| p.init_transactions(timeout))
        .await
        .map_err(kafka(format!(
            "initializing transactions for {}",
            config.transactional_id
        )))?;

    let mut assignment: BTreeSet<(String, i32)> = BTreeSet::new();
    while let Some(batch) = next_batch(&consumer, config, wake, &shutdown).await? {
        let current: BTreeSet<(String, i32)> = consumer
            .assignment()
            .map_err(kafka("reading the assignment"))?
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        if current != assignment {
            let revoked: Vec<_> = assignment.difference(&current).cloned().collect();
            let assigned: Vec<_> = current.difference(&assignment).cloned().collect();
            tracing::info!(?revoked, ?assigned, "partition assignment changed");
            processor
                .rebalanced(&revoked, &assigned)
                .await
                .map_err(|e| ExactlyOnceError::Processor {
                    records: 0,
                    first: "a rebalance".into(),
                    reason: e.to_string(),
                })?;
            assignment = current;
        }
        if let Err(e) = transact(&consumer, &producer, config, processor, &batch).await {
            // Best effort: the broker aborts it anyway when the producer goes away.
            let _ = blocking(&producer, move |p| p.abort_transaction(timeout)).await;
            return Err(e);
        }
    }
    Ok(())
}

/// Collects up to `max_batch` records, waiting at most `max_wait` once the first arrived; an
/// empty batch after a wake-up. `None` when shutdown was requested before any record arrived.
async fn next_batch(
    consumer: &StreamConsumer,
    config: &ExactlyOnceConfig,
    wake: &Notify,
    shutdown: &CancellationToken,
) -> Result<Option<Vec<OwnedMessage>>, ExactlyOnceError> {
    let mut stream = consumer.stream();
    let first = tokio::select! {
        () = shutdown.cancelled() => return Ok(None),
        () = wake.notified() => return Ok(Some(Vec::new())),
        message = stream.next() => message,
    };
    let Some(first) = first else { return Ok(None) };
    let mut batch = vec![first.map_err(kafka("consuming"))?.detach()];
    let deadline = tokio::time::sleep(config.max_wait);
    tokio::pin!(deadline);
    while batch.len() < config.max_batch {
        tokio::select! {
            () = &mut deadline => break,
            message = stream.next() => match message {
                Some(message) => batch.push(message.map_err(kafka("consuming"))?.detach()),
                None => break,
            },
        }
    }
    Ok(Some(batch))
}

async fn transact<P: BatchProcessor>(
    consumer: &StreamConsumer,
    producer: &TransactionalProducer,
    config: &ExactlyOnceConfig,
    processor: &mut P,
    batch: &[OwnedMessage],
) -> Result<(), ExactlyOnceError> {
    let timeout = config.transaction_timeout;
    producer
        .begin_transaction()
        .map_err(kafka("beginning a transaction"))?;
    let outputs = processor
        .process(batch)
        .await
        .map_err(|e| ExactlyOnceError::Processor {
            records: batch.len(),
            first: batch
                .first()
                .map(position)
                .unwrap_or_else(|| "a wake-up".into()),
            reason: e.to_string(),
        })?;
    for output in &outputs {
        send(producer, output).await?;
    }
    // Wait for the deliveries here: the flush inside `commit_transaction` only notices them
    // on a 100 ms cadence (rdkafka's event API), which would cap a partition at ~10
    // transactions/s. A delivery that fails ends as a failure, not a wait (message timeout).
    while producer.in_flight_count() > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let offsets = next_offsets(batch)?;
    let metadata = consumer.group_metadata().ok_or_else(|| {
        kafka("reading the consumer group metadata")(KafkaError::NoMessageReceived)
    })?;
    // Committing flushes the records produced above; one that failed fails the commit.
    let committed = blocking(producer, move |p| {
        p.send_offsets_to_transaction(&offsets, &metadata, timeout)?;
        p.commit_transaction(timeout)
    })
    .await;
    let failed_delivery = producer.context().take();
    committed.map_err(|source| ExactlyOnceError::Kafka {
        action: match failed_delivery {
            Some(failure) => format!(
                "committing a transaction of {} records ({failure})",
                batch.len()
            ),
            None => format!("committing a transaction of {} records", batch.len()),
        },
        source,
    })
}

/// The transactional producer: records are queued without a future each; the commit waits for
/// their delivery.
type TransactionalProducer = ThreadedProducer<FirstDeliveryFailure>;

/// Queues `output` in the open transaction, waiting while librdkafka's queue is full.
async fn send(producer: &TransactionalProducer, output: &Output) -> Result<(), ExactlyOnceError> {
    let mut record = BaseRecord::<[u8], [u8]>::to(&output.topic);
    if let Some(key) = &output.key {
        record = record.key(key.as_slice());
    }
    if let Some(payload) = &output.payload {
        record = record.payload(payload.as_slice());
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err((e, _)) => return Err(kafka(format!("producing to {}", output.topic))(e)),
        }
    }
}

/// Producer context remembering the first delivery that failed in the open transaction, so the
/// failed commit names the topic and the reason.
#[derive(Debug, Default)]
struct FirstDeliveryFailure(Mutex<Option<String>>);

impl FirstDeliveryFailure {
    fn take(&self) -> Option<String> {
        self.0.lock().map_or(None, |mut first| first.take())
    }
}

impl ClientContext for FirstDeliveryFailure {}

impl ProducerContext for FirstDeliveryFailure {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, (): ()) {
        // Only a failure takes the lock: this runs for every record.
        if let Err((error, message)) = result
            && let Ok(mut first) = self.0.lock()
        {
            first.get_or_insert_with(|| format!("producing to {}: {error}", message.topic()));
        }
    }
}

/// The offset after the last record of each partition in `batch`.
fn next_offsets(batch: &[OwnedMessage]) -> Result<TopicPartitionList, ExactlyOnceError> {
    let mut next: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for message in batch {
        let entry = next
            .entry((message.topic(), message.partition()))
            .or_default();
        *entry = (*entry).max(message.offset() + 1);
    }
    let mut offsets = TopicPartitionList::new();
    for ((topic, partition), offset) in next {
        offsets
            .add_partition_offset(topic, partition, Offset::Offset(offset))
            .map_err(kafka("building the offsets to commit"))?;
    }
    Ok(offsets)
}

fn position(message: &OwnedMessage) -> String {
    format!(
        "{}/{}@{}",
        message.topic(),
        message.partition(),
        message.offset()
    )
}

/// Runs a blocking transaction call off the reactor.
async fn blocking<F>(producer: &TransactionalProducer, call: F) -> Result<(), KafkaError>
where
    F: FnOnce(&TransactionalProducer) -> Result<(), KafkaError> + Send + 'static,
{
    let producer = producer.clone();
    tokio::task::spawn_blocking(move || call(&producer))
        .await
        .unwrap_or(Err(KafkaError::Canceled))
}
