//! The basic helpers of the integration tests (service addresses, Kafka, registry, topics),
//! without the crates of any role, so that every crate's tests can include them
//! (`sinks/tests/common` does). Tests that need a service read its address from the
//! environment `testbed/env.sh` prints, and fail loudly when it is missing.
#![allow(dead_code, clippy::unwrap_used)] // each test binary uses a subset

use std::time::Duration;

use lineage_bus_core::KafkaConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

/// The value of `name`, or a panic telling how to start the testbed.
pub fn service_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: this test needs the real testbed services. Start them with \
             `testbed/up.sh all` and export their addresses with `eval \"$(testbed/env.sh)\"` \
             (or run `make test`, which does both)"
        )
    })
}

/// Kafka settings pointing at the testbed broker.
pub fn kafka() -> KafkaConfig {
    KafkaConfig {
        bootstrap_servers: service_env("KAFKA_BOOTSTRAP"),
        ..KafkaConfig::default()
    }
}

/// A client of the testbed's Schema Registry.
pub fn registry() -> lineage_schemas::RegistryClient {
    lineage_schemas::RegistryClient::new(
        &service_env("SCHEMA_REGISTRY_URL"),
        Duration::from_secs(10),
        None,
    )
    .unwrap()
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every committed record of `topic`, read from the beginning to its current end (key, value;
/// `None` for a tombstone), in log order per partition.
pub async fn read_to_end(topic: &str) -> Vec<(String, Option<Vec<u8>>)> {
    let reader = lineage_bus_core::compacted::CompactedReader::new(
        &kafka(),
        "test-reader",
        topic,
        Duration::from_secs(10),
    )
    .unwrap();
    let mut records = Vec::new();
    let complete = tokio::time::timeout(
        Duration::from_secs(60),
        reader.fold_to_end(&tokio_util::sync::CancellationToken::new(), |key, value| {
            records.push((
                String::from_utf8_lossy(key).into_owned(),
                value.map(<[u8]>::to_vec),
            ));
        }),
    )
    .await
    .expect("reading to the end took over 60 s")
    .unwrap();
    assert!(complete, "{topic} was not read to its end");
    records
}

/// A topic name no other test run uses.
pub fn unique_topic(prefix: &str) -> String {
    format!("it.{prefix}.{}", uuid::Uuid::new_v4().simple())
}

/// Creates `topic` with `partitions` partitions on the testbed broker.
pub async fn create_topic(topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        kafka().client_config("test-admin").create().unwrap();
    let results = admin
        .create_topics(
            [&NewTopic::new(
                topic,
                partitions,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .unwrap();
    for result in results {
        result.unwrap();
    }
}
