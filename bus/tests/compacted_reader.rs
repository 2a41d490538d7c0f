//! A compacted topic read as a table on the real broker: latest value per key, tombstones
//! remove keys, the end is found even when the log ends with a transaction marker, and
//! later updates follow.
#![allow(clippy::unwrap_used)]

#[path = "../../tests/common/base.rs"]
mod common;

use std::time::Duration;

use lineage_bus_core::compacted::{CompactedReader, TableUpdate};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread")]
async fn reads_latest_per_key_to_the_end_then_follows() {
    let topic = common::unique_topic("table");
    common::create_topic(&topic, 3).await;
    let producer: ThreadedProducer<DefaultProducerContext> = common::kafka()
        .transactional_producer_config("test", &common::unique_topic("txn"))
        .create()
        .unwrap();
    let timeout = Duration::from_secs(30);
    producer.init_transactions(timeout).unwrap();
    producer.begin_transaction().unwrap();
    for i in 0..200 {
        let key = format!("k{}", i % 20);
        let value = format!("v{i}");
        producer
            .send(BaseRecord::to(&topic).key(&key).payload(&value))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    // Tombstones for k0..k4.
    for i in 0..5 {
        producer
            .send(BaseRecord::<String, ()>::to(&topic).key(&format!("k{i}")))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    // The log now ends with a commit marker on every partition written.
    producer.commit_transaction(timeout).unwrap();

    let shutdown = CancellationToken::new();
    let reader = CompactedReader::new(&common::kafka(), "test", &topic, timeout).unwrap();
    let table = tokio::time::timeout(Duration::from_secs(30), reader.read_to_end(&shutdown))
        .await
        .expect("read_to_end did not find the end")
        .unwrap();
    assert_eq!(table.len(), 15);
    assert!(!table.contains_key(b"k0".as_slice()));
    assert_eq!(table[b"k19".as_slice()], b"v199");
    assert_eq!(table[b"k5".as_slice()], b"v185");

    producer.begin_transaction().unwrap();
    producer
        .send(BaseRecord::to(&topic).key("k5").payload("new"))
        .map_err(|(e, _)| e)
        .unwrap();
    producer.commit_transaction(timeout).unwrap();
    let update = tokio::time::timeout(Duration::from_secs(30), reader.next_update(&shutdown))
        .await
        .unwrap()
        .unwrap();
    let update: TableUpdate = update.unwrap();
    assert_eq!(update.key, b"k5");
    assert_eq!(update.value.as_deref(), Some(b"new".as_slice()));
    assert!((0..3).contains(&update.partition));
    assert!(update.offset > 0, "after the first transaction's records");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_topic_ends_at_once_and_a_missing_one_is_a_clear_error() {
    let topic = common::unique_topic("empty");
    common::create_topic(&topic, 2).await;
    let reader =
        CompactedReader::new(&common::kafka(), "test", &topic, Duration::from_secs(10)).unwrap();
    let table = tokio::time::timeout(
        Duration::from_secs(20),
        reader.read_to_end(&CancellationToken::new()),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(table.is_empty());

    let missing = common::unique_topic("missing");
    let err = CompactedReader::new(&common::kafka(), "test", &missing, Duration::from_secs(5))
        .err()
        .unwrap();
    assert!(err.to_string().contains(&missing), "{err}");
}
