//! The sink loop: consume → deliver (ordered per key, concurrent across keys) → acknowledge →
//! commit the contiguous prefix of acknowledged offsets.
//!
//! One task runs the loop; the deliveries are futures in a `FuturesUnordered` driven by the
//! same `select!`, at most `max_in_flight` at once. The consumer is polled all the time, also
//! while deliveries are stuck in retries: slow partitions are paused instead
//! ([`super::pause`]), so the group membership and the other partitions are unaffected.
//!
//! Rebalances: on revoke, the revoked partitions' acknowledged prefix is committed
//! synchronously in the callback and their tracking is dropped (their records still in hand
//! are delivered again by the new owner: at-least-once); on assign, tracking starts with a new
//! epoch. Shutdown: stop consuming, cancel the retry waits, let attempts in progress finish,
//! commit, leave the group.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use lineage_bus_core::KafkaConfig;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::delivery::dead_letter::{DeadLetterWriter, Rejection};
use crate::delivery::offsets::{OffsetTracker, Partition};
use crate::delivery::ordering::KeyedScheduler;
use crate::delivery::pause::{FlowChange, FlowControl};
use crate::delivery::progress::{self, Progress};
use crate::delivery::retry::{AttemptError, RetryPolicy, RetryReason};
use crate::delivery::start::{self, ReplayRange, StartFrom};
use crate::delivery::{Destination, SinkRecord, TENANT_HEADER};
use crate::error::{SinkError, kafka};
use crate::metrics::{AttemptResult, Outcome, SinkMetrics};

/// How often librdkafka reports statistics (consumer lag).
const STATISTICS_INTERVAL_MS: &str = "2000";
/// How often the backend is probed for readiness.
const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// What the loop consumes and how it delivers.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The sink, a metric label (`openlineage`).
    pub sink: &'static str,
    /// The destination's name, a metric label.
    pub destination: String,
    /// Role name in the Kafka `client.id` and the dead letters (`sink-openlineage`).
    pub role: String,
    /// Topic consumed.
    pub topic: String,
    /// Consumer group.
    pub group: String,
    /// Most deliveries at once.
    pub max_in_flight: usize,
    /// Unacknowledged records of one partition before it is paused.
    pub max_buffered_per_partition: usize,
    /// How often acknowledged offsets are committed.
    pub commit_interval: Duration,
    /// Start from a position instead of the group's committed offsets.
    pub replay: Option<Replay>,
}

/// A replay.
#[derive(Debug, Clone)]
pub struct Replay {
    /// Where to start.
    pub from: StartFrom,
    /// Stop once the offsets the log had at the start are done.
    pub until_caught_up: bool,
    /// Show a progress bar (stderr is a terminal) instead of log lines.
    pub terminal: bool,
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Records the backend acknowledged.
    pub delivered: u64,
    /// Records sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Tombstones skipped.
    pub skipped: u64,
}

/// State shared with the rebalance and statistics callbacks.
#[derive(Debug)]
struct Shared {
    tracker: OffsetTracker,
    flow: FlowControl,
    /// Log end offsets (last stable offset under read_committed) from the statistics.
    ends: BTreeMap<Partition, i64>,
}

struct SinkContext {
    shared: Arc<Mutex<Shared>>,
    joined: Arc<AtomicBool>,
    metrics: SinkMetrics,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ClientContext for SinkContext {
    fn stats(&self, statistics: Statistics) {
        let mut shared = lock(&self.shared);
        for (topic, stats) in &statistics.topics {
            for (&partition, p) in &stats.partitions {
                let key = (topic.clone(), partition);
                if partition < 0 || shared.tracker.epoch(&key).is_none() {
                    continue;
                }
                let end = if p.ls_offset >= 0 {
                    p.ls_offset
                } else {
                    p.hi_offset
                };
                if end >= 0 {
                    shared.ends.insert(key, end);
                }
                if p.consumer_lag >= 0 {
                    self.metrics.set_lag(topic, partition, p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for SinkContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let mut commits = TopicPartitionList::new();
        {
            let mut shared = lock(&self.shared);
            for element in revoked.elements() {
                let partition = (element.topic().to_owned(), element.partition());
                shared.flow.forget(&partition);
                shared.ends.remove(&partition);
                if let Some(position) = shared.tracker.revoke(&partition) {
                    let _ = commits.add_partition_offset(
                        element.topic(),
                        element.partition(),
                        Offset::Offset(position),
                    );
                }
            }
        }
        info!(partitions = revoked.count(), "partitions revoked");
        if commits.count() > 0 && !consumer.assignment_lost() {
            // Blocks the poll briefly, once per rebalance: the new owner must start after
            // what this instance acknowledged.
            if let Err(error) = consumer.commit(&commits, CommitMode::Sync) {
                warn!(%error, "committing the revoked partitions' offsets failed; they are delivered again");
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(assigned) => {
                let mut shared = lock(&self.shared);
                for element in assigned.elements() {
                    shared
                        .tracker
                        .assign((element.topic().to_owned(), element.partition()));
                }
                self.joined.store(true, Ordering::Release);
                info!(partitions = assigned.count(), "partitions assigned");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => warn!(%error, "rebalance failed"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => debug!(partitions = offsets.count(), "offsets committed"),
            Err(error) => warn!(%error, "committing offsets failed; retried at the next commit"),
        }
    }
}

type SinkConsumer = StreamConsumer<SinkContext>;

/// The ordering key: the record key (one run, job or dataset); records without a key are
/// unordered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum OrderKey {
    Key(Vec<u8>),
    Unkeyed(i32, i64),
}

/// A record waiting for or in delivery.
#[derive(Debug)]
struct Work {
    key: OrderKey,
    epoch: u64,
    record: SinkRecord,
}

/// How a delivery future ended.
#[derive(Debug)]
struct Done {
    key: OrderKey,
    partition: Partition,
    epoch: u64,
    offset: i64,
    /// `None` when cancelled by shutdown (not acknowledged).
    outcome: Option<Outcome>,
}

/// What every delivery future needs.
struct Deliverer<D> {
    destination: Arc<D>,
    dead_letters: Arc<DeadLetterWriter>,
    policy: RetryPolicy,
    metrics: SinkMetrics,
    cancel: CancellationToken,
}

impl<D> Clone for Deliverer<D> {
    fn clone(&self) -> Self {
        Self {
            destination: self.destination.clone(),
            dead_letters: self.dead_letters.clone(),
            policy: self.policy.clone(),
            metrics: self.metrics.clone(),
            cancel: self.cancel.clone(),
        }
    }
}

impl<D: Destination> Deliverer<D> {
    /// Delivers `record`, retrying until the backend acknowledges it, rejects it for good (the
    /// record is then dead-lettered), or the retries are cancelled (`None`).
    async fn deliver(self, record: &SinkRecord) -> Option<Outcome> {
        let mut schedule = self.policy.schedule();
        let mut attempts: u32 = 0;
        let rejection = loop {
            attempts += 1;
            let started = Instant::now();
            let error = match self.destination.deliver(record).await {
                Ok(()) => {
                    self.metrics
                        .attempt(AttemptResult::Success, started.elapsed());
                    return Some(Outcome::Delivered);
                }
                Err(error) => error,
            };
            match error {
                AttemptError::Permanent {
                    kind,
                    status,
                    body,
                    detail,
                } => {
                    self.metrics
                        .attempt(AttemptResult::Permanent, started.elapsed());
                    break Rejection {
                        kind,
                        status,
                        body,
                        reason: detail,
                        attempts,
                    };
                }
                AttemptError::Retryable {
                    reason,
                    retry_after,
                    detail,
                } => {
                    self.metrics
                        .attempt(AttemptResult::Retryable, started.elapsed());
                    self.metrics.retried(reason);
                    let Some(delay) = schedule.next_delay(reason, retry_after) else {
                        break Rejection {
                            kind: reason.give_up_kind(),
                            status: None,
                            body: None,
                            reason: format!("gave up after {attempts} attempts: {detail}"),
                            attempts,
                        };
                    };
                    warn!(
                        position = %record.position(),
                        attempts,
                        reason = reason.as_label(),
                        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        error = %detail,
                        "delivery failed; retrying"
                    );
                    if !self.wait(delay).await {
                        return None;
                    }
                }
            }
        };
        warn!(
            position = %record.position(),
            status = rejection.status,
            reason = %rejection.reason,
            "record rejected; writing it to the dead-letter topic"
        );
        let mut schedule = self.policy.schedule();
        loop {
            match self.dead_letters.write(record, &rejection).await {
                Ok(()) => return Some(Outcome::DeadLettered),
                Err(error) => {
                    warn!(position = %record.position(), %error, "dead-letter write failed; retrying");
                    let delay = schedule
                        .next_delay(RetryReason::Io, None)
                        .unwrap_or(Duration::from_secs(1));
                    if !self.wait(delay).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Sleeps `delay`; `false` when cancelled first.
    async fn wait(&self, delay: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = self.cancel.cancelled() => false,
        }
    }
}

/// The loop's own state.
struct Engine<D> {
    config: EngineConfig,
    consumer: Arc<SinkConsumer>,
    shared: Arc<Mutex<Shared>>,
    scheduler: KeyedScheduler<OrderKey, Work>,
    running: FuturesUnordered<BoxFuture<'static, Done>>,
    deliverer: Deliverer<D>,
    metrics: SinkMetrics,
    summary: RunSummary,
}

/// Runs the sink until `shutdown` (or, for a replay with `until_caught_up`, until caught up).
pub async fn run<D: Destination>(
    kafka_config: &KafkaConfig,
    config: EngineConfig,
    destination: Arc<D>,
    dead_letters: Arc<DeadLetterWriter>,
    policy: RetryPolicy,
    ready: watch::Sender<bool>,
    shutdown: CancellationToken,
) -> Result<RunSummary, SinkError> {
    let metrics = SinkMetrics::new(config.sink, &config.destination);
    let range = match &config.replay {
        Some(replay) => Some(
            start::reset_group(
                kafka_config,
                &config.role,
                &config.group,
                &config.topic,
                &replay.from,
            )
            .await?,
        ),
        None => None,
    };
    let shared = Arc::new(Mutex::new(Shared {
        tracker: OffsetTracker::default(),
        flow: FlowControl::new(config.max_buffered_per_partition),
        ends: BTreeMap::new(),
    }));
    let joined = Arc::new(AtomicBool::new(false));
    let context = SinkContext {
        shared: shared.clone(),
        joined: joined.clone(),
        metrics: metrics.clone(),
    };
    let consumer: SinkConsumer = kafka_config
        .consumer_config(&config.role, &config.group)
        .set("statistics.interval.ms", STATISTICS_INTERVAL_MS)
        .create_with_context(context)
        .map_err(kafka("creating the sink consumer"))?;
    consumer
        .subscribe(&[&config.topic])
        .map_err(kafka(format!("subscribing to {}", config.topic)))?;
    info!(topic = %config.topic, group = %config.group, destination = %config.destination, "sink started");

    let stop_probe = CancellationToken::new();
    tokio::spawn(follow_readiness(
        destination.clone(),
        joined,
        ready,
        stop_probe.clone(),
    ));
    let mut engine = Engine {
        scheduler: KeyedScheduler::new(config.max_in_flight),
        running: FuturesUnordered::new(),
        deliverer: Deliverer {
            destination,
            dead_letters,
            policy,
            metrics: metrics.clone(),
            cancel: CancellationToken::new(),
        },
        consumer: Arc::new(consumer),
        shared,
        metrics,
        summary: RunSummary::default(),
        config,
    };
    let result = engine.run(range, &shutdown).await;
    stop_probe.cancel();
    let drained = engine.drain().await;
    result.and(drained).map(|()| engine.summary)
}

/// Keeps `ready` = joined the group and the backend answers.
async fn follow_readiness<D: Destination>(
    destination: Arc<D>,
    joined: Arc<AtomicBool>,
    ready: watch::Sender<bool>,
    stop: CancellationToken,
) {
    loop {
        let reachable = destination.probe().await;
        let now = joined.load(Ordering::Acquire) && reachable;
        if *ready.borrow() != now {
            info!(
                ready = now,
                joined = joined.load(Ordering::Acquire),
                reachable,
                "sink readiness"
            );
        }
        ready.send_replace(now);
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(PROBE_INTERVAL) => {}
        }
    }
    ready.send_replace(false);
}

impl<D: Destination> Engine<D> {
    async fn run(
        &mut self,
        range: Option<ReplayRange>,
        shutdown: &CancellationToken,
    ) -> Result<(), SinkError> {
        let mut tick = tokio::time::interval(self.config.commit_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let terminal = self.config.replay.as_ref().is_some_and(|r| r.terminal);
        let until_caught_up = self
            .config
            .replay
            .as_ref()
            .is_some_and(|r| r.until_caught_up);
        let mut progress = range.as_ref().map(|range| {
            let total = progress::measure(range, &BTreeMap::new(), &BTreeMap::new()).total;
            Progress::new(total, terminal)
        });
        let consumer = self.consumer.clone();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(done) = self.running.next() => self.finished(done, true),
                message = consumer.recv() => match message {
                    Ok(message) => self.received(&message),
                    Err(error) => warn!(%error, "consumer error"),
                },
                _ = tick.tick() => {
                    self.commit(CommitMode::Async)?;
                    if let (Some(range), Some(progress)) = (&range, &mut progress) {
                        let done = self.progress(range);
                        let caught_up = until_caught_up
                            && self.running.is_empty()
                            && self.scheduler.waiting() == 0
                            && done.done >= done.total;
                        if caught_up {
                            progress.finish(done);
                            break;
                        }
                        progress.update(done);
                    }
                }
            }
        }
        Ok(())
    }

    /// Handles one consumed record.
    fn received(&mut self, message: &BorrowedMessage<'_>) {
        let partition = (message.topic().to_owned(), message.partition());
        let offset = message.offset();
        let Some(epoch) = lock(&self.shared).tracker.received(&partition, offset) else {
            debug!(topic = %partition.0, partition = partition.1, offset, "record of an unassigned partition dropped");
            return;
        };
        let Some(value) = message.payload() else {
            self.acknowledge(&partition, epoch, offset, Outcome::Skipped);
            return;
        };
        let key = match message.key() {
            Some(key) => OrderKey::Key(key.to_vec()),
            None => OrderKey::Unkeyed(partition.1, offset),
        };
        let tenant = message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == TENANT_HEADER)
                .and_then(|h| h.value)
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_owned)
        });
        let work = Work {
            key: key.clone(),
            epoch,
            record: SinkRecord {
                topic: partition.0.clone(),
                partition: partition.1,
                offset,
                key: message.key().map(<[u8]>::to_vec),
                value: value.to_vec(),
                tenant,
            },
        };
        if let Some(work) = self.scheduler.push(key, work) {
            self.start(vec![work]);
        }
        self.flow(&partition);
    }

    /// Starts deliveries (skipping records of partitions revoked meanwhile).
    fn start(&mut self, mut works: Vec<Work>) {
        while let Some(work) = works.pop() {
            let partition = (work.record.topic.clone(), work.record.partition);
            if lock(&self.shared).tracker.epoch(&partition) != Some(work.epoch) {
                works.extend(self.scheduler.finish(&work.key).into_iter().map(|(_, w)| w));
                continue;
            }
            let deliverer = self.deliverer.clone();
            self.running.push(Box::pin(async move {
                let outcome = deliverer.deliver(&work.record).await;
                Done {
                    key: work.key,
                    partition,
                    epoch: work.epoch,
                    offset: work.record.offset,
                    outcome,
                }
            }));
        }
        self.metrics.set_in_flight(self.running.len());
    }

    /// Handles a finished delivery; `start_next` is false while draining.
    fn finished(&mut self, done: Done, start_next: bool) {
        if let Some(outcome) = done.outcome {
            self.acknowledge(&done.partition, done.epoch, done.offset, outcome);
        }
        let next = self.scheduler.finish(&done.key);
        if start_next {
            self.start(next.into_iter().map(|(_, work)| work).collect());
        }
        self.metrics.set_in_flight(self.running.len());
        self.flow(&done.partition);
    }

    fn acknowledge(&mut self, partition: &Partition, epoch: u64, offset: i64, outcome: Outcome) {
        lock(&self.shared)
            .tracker
            .acknowledge(partition, epoch, offset);
        self.metrics.record_finished(outcome);
        match outcome {
            Outcome::Delivered => self.summary.delivered += 1,
            Outcome::DeadLettered => self.summary.dead_lettered += 1,
            Outcome::Skipped => self.summary.skipped += 1,
        }
    }

    /// Pauses or resumes `partition` by its unacknowledged records.
    fn flow(&mut self, partition: &Partition) {
        let change = {
            let mut shared = lock(&self.shared);
            let pending = shared.tracker.pending(partition);
            let change = shared.flow.check(partition, pending);
            self.metrics.set_paused(shared.flow.paused());
            change
        };
        let Some(change) = change else { return };
        let mut list = TopicPartitionList::new();
        list.add_partition(&partition.0, partition.1);
        let result = match change {
            FlowChange::Pause => self.consumer.pause(&list),
            FlowChange::Resume => self.consumer.resume(&list),
        };
        match result {
            Ok(()) => {
                info!(topic = %partition.0, partition = partition.1, ?change, "partition flow changed")
            }
            Err(error) => {
                warn!(topic = %partition.0, partition = partition.1, ?change, %error, "pause/resume failed")
            }
        }
    }

    /// Commits the positions that moved. Idle partitions advance to the consumer's position,
    /// which is past transaction markers.
    fn commit(&mut self, mode: CommitMode) -> Result<(), SinkError> {
        let positions = self.consumer.position().ok();
        let commits = {
            let mut shared = lock(&self.shared);
            if let Some(positions) = &positions {
                for element in positions.elements() {
                    if let Offset::Offset(position) = element.offset() {
                        shared.tracker.advance_idle(
                            &(element.topic().to_owned(), element.partition()),
                            position,
                        );
                    }
                }
            }
            shared.tracker.take_commits()
        };
        if commits.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for ((topic, partition), offset) in &commits {
            list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .map_err(kafka("building the offsets to commit"))?;
        }
        if let Err(error) = self.consumer.commit(&list, mode) {
            warn!(%error, "committing offsets failed; retried at the next commit");
        }
        Ok(())
    }

    fn progress(&self, range: &ReplayRange) -> progress::Done {
        let shared = lock(&self.shared);
        let positions: BTreeMap<i32, i64> = shared
            .tracker
            .positions()
            .into_iter()
            .filter(|((topic, _), _)| *topic == self.config.topic)
            .filter_map(|((_, partition), position)| Some((partition, position?)))
            .collect();
        let ends: BTreeMap<i32, i64> = shared
            .ends
            .iter()
            .filter(|((topic, _), _)| *topic == self.config.topic)
            .map(|((_, partition), end)| (*partition, *end))
            .collect();
        progress::measure(range, &positions, &ends)
    }

    /// Stops: cancels retry waits, lets attempts in progress finish, commits what was
    /// acknowledged and leaves the group.
    async fn drain(&mut self) -> Result<(), SinkError> {
        self.deliverer.cancel.cancel();
        let in_flight = self.running.len();
        while let Some(done) = self.running.next().await {
            self.finished(done, false);
        }
        let commits = lock(&self.shared).tracker.positions();
        let mut list = TopicPartitionList::new();
        for ((topic, partition), position) in commits {
            if let Some(position) = position {
                list.add_partition_offset(&topic, partition, Offset::Offset(position))
                    .map_err(kafka("building the final offsets"))?;
            }
        }
        let consumer = self.consumer.clone();
        let committed = list.count();
        tokio::task::spawn_blocking(move || {
            let result = if list.count() > 0 {
                consumer.commit(&list, CommitMode::Sync)
            } else {
                Ok(())
            };
            consumer.unsubscribe();
            result
        })
        .await
        .map_err(|e| SinkError::Task(format!("the final commit task failed: {e}")))?
        .map_err(kafka("committing the final offsets"))?;
        info!(
            in_flight,
            partitions = committed,
            delivered = self.summary.delivered,
            dead_lettered = self.summary.dead_lettered,
            "sink stopped; offsets committed"
        );
        Ok(())
    }
}
