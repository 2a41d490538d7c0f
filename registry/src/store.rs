//! The schemas topic: creating it, the reader folding it into the [`State`], and the writer.
//!
//! Every instance reads the whole topic (read_committed, partition 0, no consumer group) and keeps
//! reading. Writes take Kafka's transactional fencing as a lock shared by all instances: they all
//! use one `transactional.id`, and each write
//!
//! 1. creates a producer and calls `init_transactions`, which aborts and fences the transaction
//!    of any other instance's write in flight;
//! 2. commits a NOOP barrier record and waits until the local reader has applied it, so the local
//!    state holds everything committed before the barrier;
//! 3. plans the change against that state (validation, compatibility, next id and version);
//! 4. commits the planned records in a second transaction and waits until they are applied.
//!
//! If another instance initialised in between, step 4 fails as fenced and the write starts over,
//! so no two instances ever commit records planned from the same state: ids and versions are
//! never given twice. A producer lives for one write only: writes are rare, and a producer that
//! was fenced is unusable anyway.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::config::RegistryConfig;
use crate::error::{ApiError, RegistryError};
use crate::metrics::METRICS;
use crate::record::{Change, decode, encode};
use crate::state::{Plan, State};

/// How many times a write is retried after Kafka failures (fencing included) before 50001.
const WRITE_RETRIES: usize = 8;
/// Upper bound of a transaction, so that a crashed writer cannot hold back readers for long.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// Client context keeping expected events out of the error log: end of partition (how the reader
/// knows it caught up) and fencing (how writers exclude each other).
struct RegistryContext;

impl ClientContext for RegistryContext {
    fn error(&self, error: KafkaError, reason: &str) {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::PartitionEOF) => {}
            Some(
                RDKafkaErrorCode::Fenced
                | RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch,
            ) => debug!(%error, reason, "schema registry write fenced by a newer write"),
            _ => warn!(%error, reason, "schema registry kafka client error"),
        }
    }
}

impl ConsumerContext for RegistryContext {}

/// The producer of one write, destroyed on a blocking thread: destroying a librdkafka client
/// joins its threads and flushes, which must not stall the reactor.
struct WriteProducer(Option<FutureProducer<RegistryContext>>);

impl std::ops::Deref for WriteProducer {
    type Target = FutureProducer<RegistryContext>;

    fn deref(&self) -> &Self::Target {
        // Only `drop` takes the producer out.
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("producer used after drop"))
    }
}

impl Drop for WriteProducer {
    fn drop(&mut self) {
        let producer = self.0.take();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn_blocking(move || drop(producer));
        }
    }
}

/// How far the reader got.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// All offsets below this one are applied.
    next_offset: i64,
    /// The reader reached the end of the topic at least once.
    caught_up: bool,
}

/// The registry state and the means to change it.
pub(crate) struct Store {
    topic: String,
    state: Arc<RwLock<State>>,
    progress: watch::Receiver<Progress>,
    producer_config: ClientConfig,
    write_lock: Mutex<()>,
    write_timeout: Duration,
}

/// Why one attempt of a write failed.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    /// The plan refused the request (validation, compatibility): final.
    #[error(transparent)]
    Refused(ApiError),
    /// Kafka failed (fencing included): retried.
    #[error("cannot {step}: {source}")]
    Kafka {
        step: &'static str,
        source: KafkaError,
    },
    /// A blocking Kafka call panicked: retried.
    #[error("cannot {step}: {source}")]
    Blocking {
        step: &'static str,
        source: tokio::task::JoinError,
    },
    /// The reader stopped, so the write cannot be confirmed: final.
    #[error("the schemas topic reader stopped")]
    ReaderStopped,
}

impl Store {
    /// Creates the topic if needed and starts the reader; the store is usable once
    /// [`Store::caught_up`] returns.
    pub(crate) async fn open(
        config: &RegistryConfig,
        kafka: &ClientConfig,
        shutdown: CancellationToken,
    ) -> Result<(Self, JoinHandle<()>), RegistryError> {
        ensure_topic(kafka, &config.topic, config.write_timeout).await?;
        let consumer: StreamConsumer<RegistryContext> = kafka
            .clone()
            .set(
                "group.id",
                format!("lineage-bus-registry-{}", Uuid::new_v4()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            .create_with_context(RegistryContext)
            .map_err(|source| RegistryError::Client {
                role: "consumer",
                source,
            })?;
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&config.topic, 0, Offset::Beginning)
            .and_then(|()| consumer.assign(&assignment))
            .map_err(|source| RegistryError::ReadTopic {
                topic: config.topic.clone(),
                source,
            })?;
        let state = Arc::new(RwLock::new(State::new(config.default_compatibility)));
        let (progress_tx, progress) = watch::channel(Progress::default());
        let reader = tokio::spawn(read(
            consumer,
            Arc::clone(&state),
            progress_tx,
            config.topic.clone(),
            shutdown,
        ));
        let mut producer_config = kafka.clone();
        producer_config
            .set("transactional.id", &config.writer_transactional_id)
            .set(
                "transaction.timeout.ms",
                TRANSACTION_TIMEOUT.as_millis().to_string(),
            );
        let store = Self {
            topic: config.topic.clone(),
            state,
            progress,
            producer_config,
            write_lock: Mutex::new(()),
            write_timeout: config.write_timeout,
        };
        Ok((store, reader))
    }

    /// Waits until the reader reached the end of the topic once; false if it stopped first.
    pub(crate) async fn caught_up(&self) -> bool {
        self.progress
            .clone()
            .wait_for(|p| p.caught_up)
            .await
            .is_ok()
    }

    /// Answers from the current state.
    pub(crate) fn read<R>(&self, query: impl FnOnce(&State) -> R) -> R {
        query(&self.state())
    }

    fn state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Plans against an up-to-date state, commits the plan and answers once it is applied.
    pub(crate) async fn write<T, F>(&self, plan: F) -> Result<T, ApiError>
    where
        F: Fn(&State) -> Result<Plan<T>, ApiError>,
    {
        let _serialized = self.write_lock.lock().await;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(20))
            .with_max_delay(Duration::from_secs(1))
            .with_max_times(WRITE_RETRIES)
            .with_jitter();
        let attempts = (|| self.try_write(&plan))
            .retry(backoff)
            .when(|e| matches!(e, WriteError::Kafka { .. } | WriteError::Blocking { .. }))
            .notify(|error, delay| {
                warn!(topic = %self.topic, %error, ?delay, "schema registry write failed, retrying");
            });
        match tokio::time::timeout(self.write_timeout, attempts).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(WriteError::Refused(error))) => Err(error),
            Ok(Err(error)) => Err(ApiError::Store(format!(
                "writing to topic '{}' failed: {error}",
                self.topic
            ))),
            Err(_) => Err(ApiError::Timeout(format!(
                "writing to topic '{}' took longer than {:?}",
                self.topic, self.write_timeout
            ))),
        }
    }

    async fn try_write<T, F>(&self, plan: &F) -> Result<T, WriteError>
    where
        F: Fn(&State) -> Result<Plan<T>, ApiError>,
    {
        let producer = self.transactional_producer().await?;
        let barrier = Change::Barrier(Uuid::new_v4().to_string());
        let offset = self
            .commit(&producer, std::slice::from_ref(&barrier))
            .await?;
        self.applied(offset).await?;
        let plan = plan(&self.state()).map_err(WriteError::Refused)?;
        if plan.changes.is_empty() {
            return Ok(plan.answer);
        }
        let offset = self.commit(&producer, &plan.changes).await?;
        self.applied(offset).await?;
        let registered = plan
            .changes
            .iter()
            .filter(|c| matches!(c, Change::PutSchema(v) if !v.deleted))
            .count();
        METRICS.schemas_registered.inc_by(registered as u64);
        info!(topic = %self.topic, records = plan.changes.len(), offset, "schema registry write committed");
        Ok(plan.answer)
    }

    /// A new transactional producer, after it fenced every other writer.
    async fn transactional_producer(&self) -> Result<WriteProducer, WriteError> {
        let producer = self
            .producer_config
            .create_with_context(RegistryContext)
            .map_err(|source| WriteError::Kafka {
                step: "create the transactional producer",
                source,
            })?;
        let producer = WriteProducer(Some(producer));
        let timeout = self.write_timeout;
        let init = FutureProducer::clone(&producer);
        blocking("initialise transactions", move || {
            init.init_transactions(timeout)
        })
        .await?;
        Ok(producer)
    }

    /// Produces `changes` in one transaction and commits it; returns the last record's offset.
    async fn commit(
        &self,
        producer: &WriteProducer,
        changes: &[Change],
    ) -> Result<i64, WriteError> {
        producer
            .begin_transaction()
            .map_err(|source| WriteError::Kafka {
                step: "begin a transaction",
                source,
            })?;
        let timeout = self.write_timeout;
        let last_offset = match self.produce(producer, changes).await {
            Ok(offset) => offset,
            Err(error) => {
                let abort = FutureProducer::clone(producer);
                if let Err(abort_error) = blocking("abort the transaction", move || {
                    abort.abort_transaction(timeout)
                })
                .await
                {
                    debug!(topic = %self.topic, error = %abort_error, "abort after a failed produce failed");
                }
                return Err(error);
            }
        };
        let commit = FutureProducer::clone(producer);
        blocking("commit the transaction", move || {
            commit.commit_transaction(timeout)
        })
        .await?;
        Ok(last_offset)
    }

    async fn produce(
        &self,
        producer: &WriteProducer,
        changes: &[Change],
    ) -> Result<i64, WriteError> {
        let mut last_offset = -1;
        for change in changes {
            let (key, value) = encode(change).map_err(|e| {
                WriteError::Refused(ApiError::Store(format!("cannot encode {change:?}: {e}")))
            })?;
            let mut record = FutureRecord::<Vec<u8>, Vec<u8>>::to(&self.topic)
                .partition(0)
                .key(&key);
            if let Some(value) = &value {
                record = record.payload(value);
            }
            let delivery = producer
                .send(record, Timeout::After(self.write_timeout))
                .await
                .map_err(|(source, _)| WriteError::Kafka {
                    step: "produce to the schemas topic",
                    source,
                })?;
            last_offset = last_offset.max(delivery.offset);
        }
        Ok(last_offset)
    }

    /// Waits until the reader applied the record at `offset`.
    async fn applied(&self, offset: i64) -> Result<(), WriteError> {
        self.progress
            .clone()
            .wait_for(|p| p.next_offset > offset)
            .await
            .map(|_| ())
            .map_err(|_| WriteError::ReaderStopped)
    }
}

/// Runs a blocking librdkafka call off the reactor.
async fn blocking(
    step: &'static str,
    call: impl FnOnce() -> Result<(), KafkaError> + Send + 'static,
) -> Result<(), WriteError> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|source| WriteError::Blocking { step, source })?
        .map_err(|source| WriteError::Kafka { step, source })
}

/// Creates the schemas topic unless it exists: one partition, compacted, replicated on up to
/// three brokers.
async fn ensure_topic(
    kafka: &ClientConfig,
    topic: &str,
    timeout: Duration,
) -> Result<(), RegistryError> {
    let create_error = |message: String| RegistryError::CreateTopic {
        topic: topic.to_owned(),
        message,
    };
    let admin: AdminClient<DefaultClientContext> =
        kafka.create().map_err(|source| RegistryError::Client {
            role: "admin",
            source,
        })?;
    let admin = Arc::new(admin);
    let describe = Arc::clone(&admin);
    let name = topic.to_owned();
    let (brokers, exists) = tokio::task::spawn_blocking(move || {
        describe.inner().fetch_metadata(None, timeout).map(|m| {
            let exists = m
                .topics()
                .iter()
                .any(|t| t.name() == name && t.error().is_none());
            (m.brokers().len(), exists)
        })
    })
    .await
    .map_err(|e| create_error(e.to_string()))?
    .map_err(|e| create_error(format!("cannot fetch cluster metadata: {e}")))?;
    if exists {
        return Ok(());
    }
    let replication = i32::try_from(brokers.clamp(1, 3)).unwrap_or(1);
    let new_topic = NewTopic::new(topic, 1, TopicReplication::Fixed(replication))
        .set("cleanup.policy", "compact");
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    let results = admin
        .create_topics([&new_topic], &options)
        .await
        .map_err(|e| create_error(e.to_string()))?;
    for result in results {
        match result {
            Ok(_) => info!(topic, replication, "created the schemas topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(create_error(code.to_string())),
        }
    }
    Ok(())
}

/// Folds the topic into `state` until `shutdown`, publishing how far it got.
async fn read(
    consumer: StreamConsumer<RegistryContext>,
    state: Arc<RwLock<State>>,
    progress: watch::Sender<Progress>,
    topic: String,
    shutdown: CancellationToken,
) {
    loop {
        let received = tokio::select! {
            () = shutdown.cancelled() => return,
            received = consumer.recv() => received,
        };
        match received {
            Ok(message) => {
                let offset = message.offset();
                match message.key() {
                    Some(key) => match decode(key, message.payload()) {
                        Ok(change) => {
                            state
                                .write()
                                .unwrap_or_else(PoisonError::into_inner)
                                .apply(&change);
                            METRICS.records_applied.inc();
                        }
                        Err(error) => {
                            warn!(topic, offset, %error, "skipping an unreadable schemas record");
                        }
                    },
                    None => warn!(topic, offset, "skipping a schemas record without key"),
                }
                progress.send_modify(|p| p.next_offset = offset + 1);
            }
            Err(KafkaError::PartitionEOF(_)) => {
                progress.send_if_modified(|p| !std::mem::replace(&mut p.caught_up, true));
            }
            Err(error) => {
                warn!(topic, %error, "reading the schemas topic failed");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}
