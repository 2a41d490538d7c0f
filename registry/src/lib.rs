//! A Confluent-compatible Schema Registry for Avro, persisted in a compacted Kafka topic.
//!
//! Producers and consumers use it through the Confluent REST API (for example with
//! `schema_registry_converter`); in production they may point at Confluent, Karapace or Apicurio
//! instead. Any number of instances may serve one topic: reads answer from each instance's fold
//! of the topic, writes are serialised across instances by Kafka transactional fencing (see
//! `store.rs`).
//!
//! Not supported: schema types other than AVRO and schema references (both answer 42201),
//! modes, contexts, metadata and rule sets (accepted in bodies and ignored).

mod api;
mod avro;
mod config;
mod error;
mod metrics;
mod record;
mod state;
mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use rdkafka::ClientConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use config::{Compatibility, RegistryConfig, UnknownCompatibility};
pub use error::RegistryError;

use store::Store;

/// A registry that has read its topic to the end and is listening.
#[derive(Debug)]
pub struct RunningRegistry {
    local_addr: SocketAddr,
    server: JoinHandle<std::io::Result<()>>,
    reader: JoinHandle<()>,
}

impl RunningRegistry {
    /// The address the HTTP API is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits until the registry stopped (after `shutdown` was cancelled, or on a failure).
    pub async fn wait(self) -> Result<(), RegistryError> {
        let served = self.server.await;
        if !matches!(served, Ok(Ok(()))) {
            self.reader.abort();
        }
        served
            .map_err(|source| RegistryError::Task {
                task: "http",
                source,
            })?
            .map_err(|source| RegistryError::Serve {
                addr: self.local_addr,
                source,
            })?;
        self.reader.await.map_err(|source| RegistryError::Task {
            task: "reader",
            source,
        })
    }
}

/// Starts a registry: creates the topic if missing, reads it to its end, binds the listener.
/// It runs until `shutdown` is cancelled; [`RunningRegistry::wait`] waits for that.
pub async fn start(
    config: RegistryConfig,
    kafka: ClientConfig,
    shutdown: CancellationToken,
) -> Result<RunningRegistry, RegistryError> {
    let (store, reader) = Store::open(&config, &kafka, shutdown.clone()).await?;
    if !store.caught_up().await {
        if shutdown.is_cancelled() {
            return Err(RegistryError::Cancelled);
        }
        return Err(match reader.await {
            Err(source) => RegistryError::Task {
                task: "reader",
                source,
            },
            Ok(()) => RegistryError::Cancelled,
        });
    }
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| RegistryError::Bind {
                addr: config.listen,
                source,
            })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| RegistryError::Bind {
            addr: config.listen,
            source,
        })?;
    let app = api::router(Arc::new(store));
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .into_future(),
    );
    info!(listen = %local_addr, topic = %config.topic, "schema registry listening");
    Ok(RunningRegistry {
        local_addr,
        server,
        reader,
    })
}

/// Runs the registry until `shutdown` is cancelled. `kafka` carries `bootstrap.servers` and any
/// client options (security etc.); the registry adds what it needs. `ready` is set true once the
/// topic has been read to its end and the HTTP listener is bound, and false again when it stops.
pub async fn serve(
    config: RegistryConfig,
    kafka: ClientConfig,
    ready: watch::Sender<bool>,
    shutdown: CancellationToken,
) -> Result<(), RegistryError> {
    let running = match start(config, kafka, shutdown).await {
        Err(RegistryError::Cancelled) => return Ok(()),
        started => started?,
    };
    ready.send_replace(true);
    let stopped = running.wait().await;
    ready.send_replace(false);
    stopped
}
