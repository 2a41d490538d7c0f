//! Helpers of the sink tests: the testbed's Kafka and Schema Registry (the tests fail loudly
//! when they are missing), topics, producing events, running the sink, reading dead letters.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each test binary uses a subset

pub mod events;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lineage_schemas::RecordCodec;
use lineage_schemas::records::DeadLetter;
use lineage_sinks::delivery::engine::Replay;
use lineage_sinks::{OpenLineageSinkConfig, RunSummary, SinkError};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[path = "../../../tests/common/base.rs"]
mod base;

#[allow(unused_imports)] // each test binary uses a subset
pub use base::{create_topic, free_port, kafka, registry, service_env, unique_topic as unique};

/// Produces `events` (key, JSON value) to `topic` in order, with the tenant header if given.
pub async fn produce(topic: &str, events: &[(String, serde_json::Value)], tenant: Option<&str>) {
    let producer: FutureProducer = kafka()
        .idempotent_producer_config("test-producer")
        .create()
        .unwrap();
    for (key, value) in events {
        let payload = serde_json::to_vec(value).unwrap();
        let mut record = FutureRecord::to(topic).key(key.as_str()).payload(&payload);
        if let Some(tenant) = tenant {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: "lineage-bus-tenant",
                value: Some(tenant),
            }));
        }
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
}

/// Produces raw bytes.
pub async fn produce_raw(topic: &str, key: &str, value: &[u8]) {
    let producer: FutureProducer = kafka()
        .idempotent_producer_config("test-producer")
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(value),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

/// A sink config for tests: fast retries and commits, consuming `topic`, dead letters to
/// `dead_letters`, delivering to `url`.
pub fn sink_config(topic: &str, dead_letters: &str, url: &str) -> OpenLineageSinkConfig {
    let mut config = OpenLineageSinkConfig {
        name: "test".into(),
        topic: topic.into(),
        group: Some(unique("group")),
        url: Some(url.into()),
        dead_letter_topic: dead_letters.into(),
        commit_interval: Duration::from_millis(200),
        ..OpenLineageSinkConfig::default()
    };
    config.retry.initial_backoff = Duration::from_millis(50);
    config.retry.max_backoff = Duration::from_millis(500);
    config
}

/// A running sink.
pub struct RunningSink {
    pub stop: CancellationToken,
    pub ready: watch::Receiver<bool>,
    pub task: JoinHandle<Result<RunSummary, SinkError>>,
}

impl RunningSink {
    /// Stops the sink (drain and commit) and returns what it did.
    pub async fn stop(self) -> RunSummary {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the sink stops within 30 s")
            .unwrap()
            .unwrap()
    }
}

/// Starts the OpenLineage sink with `config`.
pub fn start_sink(config: OpenLineageSinkConfig, replay: Option<Replay>) -> RunningSink {
    let stop = CancellationToken::new();
    let (ready_tx, ready) = watch::channel(false);
    let token = stop.clone();
    let config = Arc::new(config);
    let task = tokio::spawn(async move {
        lineage_sinks::openlineage::run(&kafka(), registry(), &config, replay, ready_tx, token)
            .await
    });
    RunningSink { stop, ready, task }
}

/// Starts the OpenMetadata sink with `config`.
pub fn start_openmetadata_sink(
    config: lineage_sinks::OpenMetadataSinkConfig,
    replay: Option<Replay>,
) -> RunningSink {
    let stop = CancellationToken::new();
    let (ready_tx, ready) = watch::channel(false);
    let token = stop.clone();
    let task = tokio::spawn(async move {
        lineage_sinks::openmetadata::run(&kafka(), registry(), &config, replay, ready_tx, token)
            .await
    });
    RunningSink { stop, ready, task }
}

/// Polls `check` every 100 ms until it returns true, or panics after `timeout` with `what`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The committed offsets of `group` on `topic`, by partition.
pub async fn committed(group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = kafka()
        .consumer_config("test-offsets", group)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let committed = tokio::task::spawn_blocking(move || {
        consumer.committed_offsets(list, Duration::from_secs(10))
    })
    .await
    .unwrap()
    .unwrap();
    (0..partitions)
        .map(
            |p| match committed.find_partition(topic, p).unwrap().offset() {
                Offset::Offset(offset) => offset,
                _ => -1,
            },
        )
        .collect()
}

/// Every dead letter in `topic` (reads until `expected` arrived or 20 s passed).
pub async fn dead_letters(topic: &str, expected: usize) -> Vec<DeadLetter> {
    let codec: RecordCodec<DeadLetter> = RecordCodec::for_topic(registry(), topic).await.unwrap();
    let consumer: rdkafka::consumer::StreamConsumer = kafka()
        .consumer_config("test-dlq", &unique("dlq-reader"))
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut letters = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while letters.len() < expected && Instant::now() < deadline {
        if let Ok(Ok(message)) =
            tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await
        {
            letters.push(codec.decode(message.payload().unwrap()).await.unwrap());
        }
    }
    // Anything more arriving shortly after would be a duplicate: wait a little for it.
    if let Ok(Ok(message)) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await {
        letters.push(codec.decode(message.payload().unwrap()).await.unwrap());
    }
    letters
}

/// The sum of the series of metric `name` (Prometheus text format) whose labels include every
/// `labels` pair; `None` when no series matches.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, label_text) = series.split_once('{').unwrap_or((series, ""));
        if metric != name {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")))
        {
            *found.get_or_insert(0.0) += value.parse::<f64>().unwrap();
        }
    }
    found
}

/// `GET http://{admin}/metrics`.
pub async fn scrape(admin: &str) -> String {
    reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits until the sink serving `/metrics` on `admin` reports a consumer lag of 0 for each of
/// `partitions` (series with `labels`); the gauge follows librdkafka's statistics (every 2 s).
pub async fn wait_for_zero_lag(admin: &str, labels: &[(&str, &str)], partitions: &[i32]) {
    eventually(Duration::from_secs(15), "consumer lag 0", || async {
        let text = scrape(admin).await;
        partitions.iter().all(|p| {
            let partition = p.to_string();
            let mut series = labels.to_vec();
            series.push(("partition", partition.as_str()));
            metric(&text, "lineage_bus_sink_consumer_lag_records", &series) == Some(0.0)
        })
    })
    .await;
}
