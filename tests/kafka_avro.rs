//! Avro records produced through the Schema Registry into the real Kafka, read back by a
//! consumer group that commits its offsets.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::StreamExt;
use lineage_schemas::records::{DagsterEvent, DagsterEventType, SourceKind, SourcePosition};
use lineage_schemas::{RecordCodec, RegistryClient};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

fn event(run: usize, seq: usize) -> DagsterEvent {
    DagsterEvent {
        tenant: "it".into(),
        source: SourcePosition {
            kind: SourceKind::PostgresEventLog,
            storage_id: Some((run * 1000 + seq) as i64),
            shard: None,
            cursor: None,
        },
        event_type: DagsterEventType::StepSuccess,
        raw_event_type: "STEP_SUCCESS".into(),
        run_id: Some(format!("run-{run}")),
        job_name: Some("job".into()),
        step_key: Some(format!("step_{seq}")),
        asset_key: None,
        partition: None,
        timestamp_ms: 1_700_000_000_000 + seq as i64,
        message: None,
        description: None,
        metadata: vec![],
        tags: BTreeMap::new(),
        check: None,
        error: None,
        raw_json: None,
    }
}

async fn codec(topic: &str) -> RecordCodec<DagsterEvent> {
    let registry = RegistryClient::new(
        &common::service_env("SCHEMA_REGISTRY_URL"),
        Duration::from_secs(10),
        None,
    )
    .unwrap();
    RecordCodec::for_topic(registry, topic).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn avro_through_registry_and_kafka_with_committed_group_offsets() {
    let topic = common::unique_topic("avro");
    common::create_topic(&topic, 3).await;
    let codec = codec(&topic).await;

    // The schema is registered under the topic's value subject.
    let subjects: Vec<String> = reqwest::get(format!(
        "{}/subjects",
        common::service_env("SCHEMA_REGISTRY_URL")
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert!(subjects.contains(&format!("{topic}-value")), "{subjects:?}");
    // Registering again (a second producer) gives the same id.
    assert_eq!(codec.schema_id(), self::codec(&topic).await.schema_id());

    let producer: FutureProducer = common::kafka()
        .idempotent_producer_config("test-producer")
        .create()
        .unwrap();
    let sent: Vec<DagsterEvent> = (0..4)
        .flat_map(|run| (0..25).map(move |seq| event(run, seq)))
        .collect();
    for record in &sent {
        let payload = codec.encode(record).unwrap();
        let key = record.kafka_key();
        producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }

    let group = format!("it-group-{}", uuid::Uuid::new_v4().simple());
    let consumer: StreamConsumer = common::kafka()
        .consumer_config("test-consumer", &group)
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut received: HashMap<String, Vec<DagsterEvent>> = HashMap::new();
    let mut stream = consumer.stream();
    for _ in 0..sent.len() {
        let message = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("timed out waiting for records")
            .unwrap()
            .unwrap();
        let decoded = codec.decode(message.payload().unwrap()).await.unwrap();
        assert_eq!(message.key().unwrap(), decoded.kafka_key().as_bytes());
        consumer.store_offset_from_message(&message).unwrap();
        received
            .entry(decoded.kafka_key())
            .or_default()
            .push(decoded);
    }
    drop(stream);
    consumer.commit_consumer_state(CommitMode::Sync).unwrap();

    // Every run's events arrive complete and in order (one key, one partition).
    for run in 0..4 {
        let expected: Vec<DagsterEvent> = (0..25).map(|seq| event(run, seq)).collect();
        assert_eq!(received[&format!("run-{run}")], expected);
    }

    // The group's committed offsets cover every record.
    let mut wanted = TopicPartitionList::new();
    for partition in 0..3 {
        wanted.add_partition(&topic, partition);
    }
    let committed = consumer
        .committed_offsets(wanted, Duration::from_secs(10))
        .unwrap();
    let mut total = 0;
    for element in committed.elements() {
        let (_, high) = consumer
            .fetch_watermarks(&topic, element.partition(), Duration::from_secs(10))
            .unwrap();
        assert_eq!(
            element.offset(),
            Offset::Offset(high),
            "partition {}",
            element.partition()
        );
        total += high;
    }
    assert_eq!(total, sent.len() as i64);
    drop(consumer);

    // A new member of the same group resumes after the committed offsets: nothing to read.
    let again: StreamConsumer = common::kafka()
        .consumer_config("test-consumer", &group)
        .create()
        .unwrap();
    again.subscribe(&[&topic]).unwrap();
    let next = tokio::time::timeout(Duration::from_secs(8), again.stream().next()).await;
    assert!(
        next.is_err(),
        "the group re-read a committed record: {next:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_not_in_the_wire_format_is_rejected_with_the_reason() {
    let codec = codec(&common::unique_topic("bad-frame")).await;
    let err = codec.decode(b"{\"json\": true}").await.unwrap_err();
    assert!(err.to_string().contains("magic byte"), "{err}");
    let err = codec.decode(&[0, 0, 0, 0x7f, 0xff, 1]).await.unwrap_err();
    assert!(err.to_string().contains("schema id"), "{err}");
}
