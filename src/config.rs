//! The whole configuration of the binary: one section per concern, each documented with its
//! defaults in `config/lineage-bus.toml`.

use lineage_bus_core::{
    AdminConfig, KafkaConfig, SchemaRegistryConfig, ShutdownConfig, TelemetryConfig, TenantConfig,
};
use lineage_producers::dagster::DagsterProducerConfig;
use lineage_producers::openmetadata::OpenMetadataConfig;
use lineage_registry::RegistryConfig;
use serde::{Deserialize, Serialize};

/// Every section of the configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppConfig {
    /// `[tenant]`
    pub tenant: TenantConfig,
    /// `[kafka]`
    pub kafka: KafkaConfig,
    /// `[schema_registry]`
    pub schema_registry: SchemaRegistryConfig,
    /// `[telemetry]`
    pub telemetry: TelemetryConfig,
    /// `[admin]`
    pub admin: AdminConfig,
    /// `[shutdown]`
    pub shutdown: ShutdownConfig,
    /// `[registry]`: the Schema Registry role.
    pub registry: RegistryConfig,
    /// `[producers.*]`: the producer roles.
    pub producers: ProducersConfig,
    /// `[ingest]`: Dagster's external-asset REST API.
    pub ingest: lineage_producers::ingest::IngestConfig,
    /// `[process]`: the lineage processor.
    pub process: lineage_processors::processor::ProcessConfig,
    /// `[sinks.*]`: the sink roles.
    pub sinks: lineage_sinks::SinksConfig,
    /// `[up]`: the all-in-one process.
    pub up: UpConfig,
}

/// `[producers]`: one section per producer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProducersConfig {
    /// `[producers.dagster]`: `produce dagster`.
    pub dagster: DagsterProducerConfig,
    /// `[producers.openmetadata]`: `produce openmetadata`.
    pub openmetadata: OpenMetadataConfig,
}

/// `[up]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpConfig {
    /// Run the Schema Registry role inside the process. Turn off when pointing
    /// `[schema_registry] url` at an external registry. Default `true`.
    pub embedded_registry: bool,
}

impl Default for UpConfig {
    fn default() -> Self {
        Self {
            embedded_registry: true,
        }
    }
}
