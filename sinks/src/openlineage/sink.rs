//! Wires `[sinks.openlineage]` into the delivery engine: the destination (HTTP or file), the
//! dead-letter writer, the retry policy and the consumer group.

use std::sync::Arc;

use lineage_bus_core::KafkaConfig;
use lineage_schemas::RegistryClient;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{DestinationKind, OpenLineageSinkConfig};
use crate::delivery::dead_letter::DeadLetterWriter;
use crate::delivery::engine::{self, EngineConfig, Replay, RunSummary};
use crate::delivery::retry::RetryPolicy;
use crate::error::SinkError;
use crate::openlineage::file::FileDestination;
use crate::openlineage::request::HttpDestination;

/// The role name: Kafka `client.id` suffix; `sink.openlineage` in dead letters.
pub const ROLE: &str = "sink-openlineage";

/// Runs `sink openlineage` until `shutdown` (or a replay with `until_caught_up` caught up).
/// `ready` turns true once the consumer joined its group and the backend answers.
pub async fn run(
    kafka: &KafkaConfig,
    registry: RegistryClient,
    config: &OpenLineageSinkConfig,
    replay: Option<Replay>,
    ready: watch::Sender<bool>,
    shutdown: CancellationToken,
) -> Result<RunSummary, SinkError> {
    let engine_config = EngineConfig {
        sink: "openlineage",
        destination: config.name.clone(),
        role: ROLE.to_owned(),
        topic: config.topic.clone(),
        group: config.group(),
        max_in_flight: config.max_in_flight,
        max_buffered_per_partition: config.max_buffered_per_partition,
        commit_interval: config.commit_interval,
        replay,
    };
    let dead_letters = Arc::new(
        DeadLetterWriter::connect(
            kafka,
            registry,
            &config.dead_letter_topic,
            "sink.openlineage",
            config.max_response_body,
        )
        .await?,
    );
    let policy = RetryPolicy::new(config.retry.clone());
    match config.destination {
        DestinationKind::Http => {
            let env = |name: &str| std::env::var(name).ok();
            let url = config.effective_url(env).ok_or_else(|| {
                SinkError::Config(
                    "[sinks.openlineage] url is not set and OPENLINEAGE_URL is not in the \
                     environment"
                        .into(),
                )
            })?;
            let api_key = config.effective_api_key(env);
            let destination = Arc::new(HttpDestination::new(config, &url, api_key.as_ref())?);
            tracing::info!(url, endpoint = %config.endpoint, authenticated = api_key.is_some(), "delivering to an OpenLineage HTTP backend");
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
        DestinationKind::File => {
            let destination = Arc::new(FileDestination::open(&config.file_path).await?);
            tracing::info!(path = %config.file_path.display(), "delivering to a JSON-lines file");
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
    }
}
