//! The exactly-once engine on the real broker: a batch that fails after part of its output
//! was written is aborted, and after a restart every input record is in the output exactly
//! once (read_committed), in order per key.
#![allow(clippy::unwrap_used)]

#[path = "../../tests/common/base.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use lineage_bus_core::exactly_once::{self, BatchProcessor, ExactlyOnceConfig, Output};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Upper-cases values into `output`; on batch number `fail_on` it also writes to a topic that
/// does not exist, which fails the transaction after the other records were produced.
struct Upper {
    output: String,
    /// Size of every batch processed.
    batches: Vec<usize>,
    fail_on: Option<usize>,
    /// Cancelled once `expected` records were processed.
    done: CancellationToken,
    expected: usize,
}

impl BatchProcessor for Upper {
    type Error = String;

    async fn process(&mut self, batch: &[OwnedMessage]) -> Result<Vec<Output>, String> {
        self.batches.push(batch.len());
        let mut outputs: Vec<Output> = batch
            .iter()
            .map(|m| Output {
                topic: self.output.clone(),
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().map(|p| p.to_ascii_uppercase()),
            })
            .collect();
        if self.fail_on == Some(self.batches.len()) {
            outputs.push(Output {
                topic: common::unique_topic("missing"),
                key: None,
                payload: Some(b"x".to_vec()),
            });
        }
        if self.batches.iter().sum::<usize>() >= self.expected {
            self.done.cancel();
        }
        Ok(outputs)
    }
}

async fn read_all(topic: &str, isolation: &str, wait: Duration) -> Vec<(String, String)> {
    let mut config = common::kafka().consumer_config("test-read", &common::unique_topic("g"));
    config.set("isolation.level", isolation);
    let consumer: StreamConsumer = config.create().unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut stream = consumer.stream();
    let mut out = Vec::new();
    while let Ok(Some(message)) = tokio::time::timeout(wait, stream.next()).await {
        let message = message.unwrap();
        out.push((
            String::from_utf8(message.key().unwrap().to_vec()).unwrap(),
            String::from_utf8(message.payload().unwrap().to_vec()).unwrap(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_aborted_batch_is_redone_once_after_restart() {
    const RECORDS: usize = 600;
    let (input, output) = (
        common::unique_topic("eo-in"),
        common::unique_topic("eo-out"),
    );
    common::create_topic(&input, 3).await;
    common::create_topic(&output, 3).await;
    let producer: FutureProducer = common::kafka()
        .idempotent_producer_config("test")
        .create()
        .unwrap();
    for i in 0..RECORDS {
        let (key, value) = (format!("k{}", i % 7), format!("v{i:04}"));
        producer
            .send(
                FutureRecord::to(&input).key(&key).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }

    let mut kafka = common::kafka();
    // A produce to a missing topic fails after 3 s instead of 5 minutes.
    kafka
        .options
        .insert("message.timeout.ms".into(), "3000".into());
    let config = ExactlyOnceConfig {
        group: common::unique_topic("eo-group"),
        input_topics: vec![input.clone()],
        transactional_id: common::unique_topic("eo-txn"),
        max_batch: 50,
        max_wait: Duration::from_millis(50),
        transaction_timeout: Duration::from_secs(30),
    };
    let mut failing = Upper {
        output: output.clone(),
        batches: Vec::new(),
        fail_on: Some(3),
        done: CancellationToken::new(),
        expected: RECORDS,
    };
    let err = exactly_once::run(
        &kafka,
        "test",
        &config,
        &mut failing,
        &Notify::new(),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("producing to"), "{err}");
    assert_eq!(failing.batches.len(), 3);
    let committed_before: usize = failing.batches[..2].iter().sum();

    // Restart (same group and transactional id): resumes after the two committed batches.
    let done = CancellationToken::new();
    let mut healthy = Upper {
        output: output.clone(),
        batches: Vec::new(),
        fail_on: None,
        done: done.clone(),
        expected: RECORDS - committed_before,
    };
    tokio::time::timeout(
        Duration::from_secs(120),
        exactly_once::run(&kafka, "test", &config, &mut healthy, &Notify::new(), done),
    )
    .await
    .expect("the restarted engine did not finish")
    .unwrap();

    let committed = read_all(&output, "read_committed", Duration::from_secs(5)).await;
    assert_eq!(committed.len(), RECORDS, "each input exactly once");
    let mut per_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in &committed {
        per_key.entry(key.clone()).or_default().push(value.clone());
    }
    for (key, values) in per_key {
        let mut sorted = values.clone();
        sorted.sort();
        assert_eq!(values, sorted, "order within key {key}");
    }
    // The aborted batch really wrote records that read_committed hides.
    let uncommitted = read_all(&output, "read_uncommitted", Duration::from_secs(5)).await;
    assert!(uncommitted.len() > RECORDS, "{} records", uncommitted.len());
}
