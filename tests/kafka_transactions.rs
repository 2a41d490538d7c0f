//! A transactional produce is seen by a `read_committed` consumer only after commit, and
//! never after abort, on the real broker.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

fn consumer(topic: &str, isolation: &str) -> BaseConsumer {
    let mut config = common::kafka().consumer_config("test-txn", "unused");
    config.set("isolation.level", isolation);
    let consumer: BaseConsumer = config.create().unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    consumer
}

/// Values the consumer reads within `wait`.
fn drain(consumer: &BaseConsumer, wait: Duration) -> Vec<String> {
    let deadline = std::time::Instant::now() + wait;
    let mut values = Vec::new();
    while std::time::Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.unwrap();
            values.push(String::from_utf8(message.payload().unwrap().to_vec()).unwrap());
        }
    }
    values
}

fn send(producer: &ThreadedProducer<DefaultProducerContext>, topic: &str, value: &str) {
    producer
        .send(BaseRecord::to(topic).key("k").payload(value))
        .map_err(|(e, _)| e)
        .unwrap();
}

#[test]
fn read_committed_sees_commits_only_after_commit_and_never_aborts() {
    let topic = common::unique_topic("txn");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(common::create_topic(&topic, 1));
    let txn_id = format!("it-txn-{}", uuid::Uuid::new_v4().simple());
    let producer: ThreadedProducer<DefaultProducerContext> = common::kafka()
        .transactional_producer_config("test-txn", &txn_id)
        .create()
        .unwrap();
    let timeout = Duration::from_secs(30);
    producer.init_transactions(timeout).unwrap();
    let committed_reader = consumer(&topic, "read_committed");
    let uncommitted_reader = consumer(&topic, "read_uncommitted");

    // Open transaction: the records are in the log but not visible to read_committed.
    producer.begin_transaction().unwrap();
    send(&producer, &topic, "first");
    producer.flush(timeout).unwrap();
    assert_eq!(
        drain(&uncommitted_reader, Duration::from_secs(3)),
        vec!["first"]
    );
    assert!(drain(&committed_reader, Duration::from_secs(3)).is_empty());
    producer.commit_transaction(timeout).unwrap();
    assert_eq!(
        drain(&committed_reader, Duration::from_secs(5)),
        vec!["first"]
    );

    // Aborted transaction: written, then never visible to read_committed.
    producer.begin_transaction().unwrap();
    send(&producer, &topic, "aborted");
    producer.flush(timeout).unwrap();
    assert_eq!(
        drain(&uncommitted_reader, Duration::from_secs(3)),
        vec!["aborted"]
    );
    producer.abort_transaction(timeout).unwrap();

    producer.begin_transaction().unwrap();
    send(&producer, &topic, "second");
    producer.commit_transaction(timeout).unwrap();
    assert_eq!(
        drain(&committed_reader, Duration::from_secs(5)),
        vec!["second"]
    );
    // A fresh read_committed reader of the whole log sees exactly the committed records.
    assert_eq!(
        drain(&consumer(&topic, "read_committed"), Duration::from_secs(5)),
        vec!["first", "second"]
    );
}
