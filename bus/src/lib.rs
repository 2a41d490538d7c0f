//! What every lineage-bus role shares: configuration loading, Kafka client setup and topic
//! management, telemetry (tracing logs, Prometheus metrics), the admin HTTP server with
//! health endpoints, and ordered graceful shutdown.

pub mod admin;
pub mod clock;
pub mod compacted;
pub mod config;
pub mod exactly_once;
pub mod kafka;
pub mod secret;
pub mod shutdown;
pub mod telemetry;
pub mod topics;

pub use admin::Health;
pub use config::{
    AdminConfig, ConfigError, KafkaConfig, SchemaRegistryConfig, ShutdownConfig, TelemetryConfig,
    TenantConfig,
};
pub use shutdown::Shutdown;
