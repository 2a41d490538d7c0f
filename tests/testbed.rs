//! The testbed's real services answer, and `topics apply` is idempotent against the real
//! broker.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use lineage_bus_core::topics::{self, TopicChange};
use lineage_schemas::catalog::{DEAD_LETTER, TOPICS};
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

#[test]
fn kafka_answers_metadata() {
    let consumer: BaseConsumer = common::kafka().client_config("test").create().unwrap();
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    assert_eq!(metadata.brokers().len(), 1);
}

#[tokio::test]
async fn dagster_graphql_answers_version() {
    let body: serde_json::Value = reqwest::Client::new()
        .post(common::service_env("DAGSTER_GRAPHQL_URL"))
        .json(&serde_json::json!({"query": "{ version }"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let version = body["data"]["version"].as_str().unwrap();
    assert!(version.starts_with("1.13"), "{body}");
}

#[tokio::test]
async fn marquez_answers_namespaces() {
    let url = format!("{}/api/v1/namespaces", common::service_env("MARQUEZ_URL"));
    let body: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    let names: Vec<&str> = body["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"default"), "{body}");
}

#[tokio::test]
async fn registry_answers_subjects() {
    let url = format!("{}/subjects", common::service_env("SCHEMA_REGISTRY_URL"));
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200);
    let subjects: Vec<String> = response.json().await.unwrap();
    assert!(subjects.iter().all(|s| !s.is_empty()));
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_apply_is_idempotent_and_restores_drifted_configs() {
    let kafka = common::kafka();
    let timeout = Duration::from_secs(30);
    topics::apply(&kafka, TOPICS, timeout).await.unwrap();
    let second = topics::apply(&kafka, TOPICS, timeout).await.unwrap();
    assert!(
        second.iter().all(|(_, c)| *c == TopicChange::Unchanged),
        "second apply changed something: {second:?}"
    );

    // Someone shortens the dead-letter retention by hand: apply puts the catalog's back.
    let admin: AdminClient<DefaultClientContext> =
        kafka.client_config("test-admin").create().unwrap();
    admin
        .alter_configs(
            [&AlterConfig::new(ResourceSpecifier::Topic(DEAD_LETTER))
                .set("cleanup.policy", "delete")
                .set("retention.ms", "1000")],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    let third = topics::apply(&kafka, TOPICS, timeout).await.unwrap();
    let (_, change) = third.iter().find(|(t, _)| *t == DEAD_LETTER).unwrap();
    match change {
        TopicChange::Reconfigured(diffs) => {
            assert_eq!(diffs.len(), 1, "{diffs:?}");
            assert_eq!(diffs[0].0, "retention.ms");
            assert_eq!(diffs[0].1, "1000");
        }
        other => panic!("expected a reconfiguration, got {other:?}"),
    }
    let fourth = topics::apply(&kafka, TOPICS, timeout).await.unwrap();
    assert!(
        fourth.iter().all(|(_, c)| *c == TopicChange::Unchanged),
        "{fourth:?}"
    );
}
