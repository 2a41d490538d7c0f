//! `lineage-bus ingest`: Dagster's external-asset REST API, so that scripts written for
//! Dagster (`POST /report_asset_materialization/<key>`, `/report_asset_check/<key>`,
//! `/report_asset_observation/<key>`) report into `dagster.events` instead, with the same
//! request formats and the same answers ([`report`] reads requests exactly as Dagster 1.13's
//! webserver does, [`pyjson`] speaks Python's JSON).
//!
//! Each accepted report becomes the [`DagsterEvent`](lineage_schemas::records::DagsterEvent)
//! that `produce dagster` would read from the row Dagster stores for it (a runless event:
//! no run id, key = asset key), sent with an idempotent producer (acks=all); the answer 200
//! `{}` leaves only once Kafka acknowledged it. Concurrent requests are batched by the
//! producer's linger, never serialized.
//!
//! Config keys: [`config`]. Metrics: `metrics.rs` (requests by endpoint and status, latency).
//! Readiness: true while the listener serves and the producer is up.

pub mod config;
mod http;
mod metrics;
pub mod pyjson;
pub mod report;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lineage_bus_core::KafkaConfig;
use lineage_bus_core::topics::first_missing;
use lineage_schemas::{CodecError, RecordCodec, RegistryClient};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::util::Timeout;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::IngestConfig;

/// How long checking the events topic may take at start.
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the role could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The listen address is taken or invalid.
    #[error("ingest cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("ingest server on {addr}: {source}")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// Kafka refused the producer.
    #[error("kafka: cannot {step}: {source}")]
    Kafka {
        /// What was attempted.
        step: &'static str,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// The events topic is missing.
    #[error("topic {0} does not exist; run `lineage-bus topics apply` (or create it)")]
    MissingTopic(String),
    /// The Schema Registry refused or could not be reached.
    #[error("schema registry: {0}")]
    Registry(#[from] CodecError),
    /// A task panicked.
    #[error("an ingest task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// A started ingest server.
pub struct RunningIngest {
    local_addr: SocketAddr,
    server: JoinHandle<std::io::Result<()>>,
    app: Arc<http::App>,
}

impl RunningIngest {
    /// The address the API is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits until the server stopped (after `shutdown` was cancelled: requests in flight
    /// are answered first), then flushes the producer.
    pub async fn wait(self) -> Result<(), IngestError> {
        let served = self.server.await?;
        let app = self.app;
        let flushed = tokio::task::spawn_blocking(move || {
            let flushed = app.producer.flush(Timeout::After(METADATA_TIMEOUT));
            // Destroying a librdkafka client joins its threads: not on the reactor.
            drop(app);
            flushed
        })
        .await?;
        served.map_err(|source| IngestError::Serve {
            addr: self.local_addr,
            source,
        })?;
        flushed.map_err(|source| IngestError::Kafka {
            step: "flush the producer",
            source,
        })
    }
}

/// Creates the producer, checks the topic, registers the schema and binds the listener; the
/// server runs until `shutdown` is cancelled.
pub async fn start(
    config: IngestConfig,
    tenant: String,
    kafka: &KafkaConfig,
    registry: RegistryClient,
    shutdown: CancellationToken,
) -> Result<RunningIngest, IngestError> {
    let codec = RecordCodec::for_topic(registry, &config.events_topic).await?;
    let producer: FutureProducer = kafka
        .idempotent_producer_config("ingest")
        .set(
            "message.timeout.ms",
            config.delivery_timeout.as_millis().to_string(),
        )
        .create()
        .map_err(|source| IngestError::Kafka {
            step: "create the producer",
            source,
        })?;
    let producer = {
        let topic = config.events_topic.clone();
        tokio::task::spawn_blocking(move || check_topic(producer, &topic)).await??
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| IngestError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| IngestError::Bind {
        addr: config.listen,
        source,
    })?;
    let app = Arc::new(http::App {
        tenant,
        api_token: config.api_token,
        path_prefix: config.path_prefix.trim_end_matches('/').to_owned(),
        max_body_size: config.max_body_size,
        topic: config.events_topic.clone(),
        producer,
        codec,
        queue_timeout: config.delivery_timeout,
    });
    let router = axum::Router::new()
        .fallback(http::handle)
        .with_state(Arc::clone(&app));
    let server = tokio::spawn(
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .into_future(),
    );
    tracing::info!(listen = %local_addr, topic = config.events_topic, "ingest listening");
    Ok(RunningIngest {
        local_addr,
        server,
        app,
    })
}

/// Runs the role until `shutdown` is cancelled; `ready` is true while it serves.
pub async fn run(
    config: IngestConfig,
    tenant: String,
    kafka: KafkaConfig,
    registry: RegistryClient,
    ready: watch::Sender<bool>,
    shutdown: CancellationToken,
) -> Result<(), IngestError> {
    let running = start(config, tenant, &kafka, registry, shutdown).await?;
    ready.send_replace(true);
    let stopped = running.wait().await;
    ready.send_replace(false);
    stopped
}

/// Fails unless `topic` exists. Blocking.
fn check_topic(producer: FutureProducer, topic: &str) -> Result<FutureProducer, IngestError> {
    let metadata = producer
        .client()
        .fetch_metadata(None, Timeout::After(METADATA_TIMEOUT))
        .map_err(|source| IngestError::Kafka {
            step: "fetch topic metadata",
            source,
        })?;
    if first_missing(&metadata, [topic]).is_some() {
        return Err(IngestError::MissingTopic(topic.to_owned()));
    }
    Ok(producer)
}
