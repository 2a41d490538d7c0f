//! Wires `[sinks.openmetadata]` into the delivery engine: the destination, the dead-letter
//! writer, the retry policy (missing references bounded by `missing_reference_timeout`) and the
//! consumer group.

use std::sync::Arc;

use lineage_bus_core::KafkaConfig;
use lineage_schemas::{RecordCodec, RegistryClient};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::OpenMetadataSinkConfig;
use crate::delivery::dead_letter::DeadLetterWriter;
use crate::delivery::engine::{self, EngineConfig, Replay, RunSummary};
use crate::delivery::retry::{RetryPolicy, RetryReason};
use crate::error::SinkError;
use crate::openmetadata::routes::RoutedDestination;

/// The role name: Kafka `client.id` suffix.
pub const ROLE: &str = "sink-openmetadata";
/// The component named in dead letters.
pub const COMPONENT: &str = "sink.openmetadata";

/// Runs `sink openmetadata` until `shutdown` (or a replay with `until_caught_up` caught up).
/// `ready` turns true once the consumer joined its group and OpenMetadata answers.
pub async fn run(
    kafka: &KafkaConfig,
    registry: RegistryClient,
    config: &OpenMetadataSinkConfig,
    replay: Option<Replay>,
    ready: watch::Sender<bool>,
    shutdown: CancellationToken,
) -> Result<RunSummary, SinkError> {
    if config.jwt_token.is_none() {
        tracing::warn!(url = %config.url, "[sinks.openmetadata] jwt_token is not set: requests go without a token");
    }
    let codec = RecordCodec::for_topic(registry.clone(), &config.topic)
        .await
        .map_err(|source| SinkError::Codec {
            topic: config.topic.clone(),
            source,
        })?;
    let destination = Arc::new(RoutedDestination::new(config, codec)?);
    let dead_letters = Arc::new(
        DeadLetterWriter::connect(
            kafka,
            registry,
            &config.dead_letter_topic,
            COMPONENT,
            config.max_response_body,
        )
        .await?,
    );
    let policy = RetryPolicy::new(config.retry.clone()).with_limit(
        RetryReason::MissingReference,
        config.missing_reference_timeout,
    );
    let engine_config = EngineConfig {
        sink: "openmetadata",
        destination: config.name.clone(),
        role: ROLE.to_owned(),
        topic: config.topic.clone(),
        group: config.group(),
        max_in_flight: config.max_in_flight,
        max_buffered_per_partition: config.max_buffered_per_partition,
        commit_interval: config.commit_interval,
        replay,
    };
    tracing::info!(url = %config.url, authenticated = config.jwt_token.is_some(), tenant_routes = config.tenants.len(), "delivering to the OpenMetadata API");
    engine::run(
        kafka,
        engine_config,
        destination,
        dead_letters,
        policy,
        ready,
        shutdown,
    )
    .await
}
