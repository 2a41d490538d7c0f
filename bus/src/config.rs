//! Configuration: one TOML file plus environment overrides.
//!
//! Precedence, lowest first: built-in defaults → the TOML file → environment variables named
//! `LINEAGE_BUS__<SECTION>__<KEY>` (e.g. `LINEAGE_BUS__KAFKA__BOOTSTRAP_SERVERS`). Unknown keys
//! are errors, so a typo never silently falls back to a default. `config/lineage-bus.toml`
//! documents every key with its default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::secret::serialize_masked;
use crate::telemetry::LogFormat;

/// Prefix of environment overrides; sections and keys are separated by `__`.
pub const ENV_PREFIX: &str = "LINEAGE_BUS__";

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The named file does not exist.
    #[error("config file {0} does not exist")]
    MissingFile(String),
    /// A value is missing, of the wrong type, or unknown.
    #[error("invalid configuration: {0}")]
    Invalid(Box<figment::Error>),
}

/// Loads a configuration of type `T` from defaults, `file` (if given) and the environment.
pub fn load<T: DeserializeOwned>(file: Option<&Path>) -> Result<T, ConfigError> {
    let mut figment = Figment::new();
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::MissingFile(path.display().to_string()));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment
        .merge(Env::prefixed(ENV_PREFIX).split("__"))
        .extract()
        .map_err(|e| ConfigError::Invalid(Box::new(e)))
}

/// `[tenant]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantConfig {
    /// Id carried on every record this process writes. Default `default`.
    pub id: String,
}

impl Default for TenantConfig {
    fn default() -> Self {
        Self {
            id: "default".into(),
        }
    }
}

/// `[kafka]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `bootstrap.servers`. Default `127.0.0.1:9092`.
    pub bootstrap_servers: String,
    /// `client.id` prefix; the role name is appended. Default `lineage-bus`.
    pub client_id: String,
    /// `security.protocol`: plaintext, ssl, sasl_plaintext, sasl_ssl. Default `plaintext`.
    pub security_protocol: String,
    /// `sasl.mechanism` when SASL is used, e.g. `SCRAM-SHA-512`. Default none.
    pub sasl_mechanism: Option<String>,
    /// `sasl.username`. Default none.
    pub sasl_username: Option<String>,
    /// `sasl.password` (secret). Default none.
    #[serde(serialize_with = "serialize_masked")]
    pub sasl_password: Option<SecretString>,
    /// Replication factor of the topics lineage-bus creates. Default: min(3, brokers).
    pub replication_factor: Option<i32>,
    /// Any other librdkafka option, passed through verbatim (e.g. `"ssl.ca.location"`).
    pub options: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: "127.0.0.1:9092".into(),
            client_id: "lineage-bus".into(),
            security_protocol: "plaintext".into(),
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            replication_factor: None,
            options: BTreeMap::new(),
        }
    }
}

/// `[schema_registry]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchemaRegistryConfig {
    /// Base URL of a Confluent-compatible registry. Default `http://127.0.0.1:8081`.
    pub url: String,
    /// Request timeout. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Basic-auth user. Default none.
    pub username: Option<String>,
    /// Basic-auth password (secret). Default none.
    #[serde(serialize_with = "serialize_masked")]
    pub password: Option<SecretString>,
}

impl Default for SchemaRegistryConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8081".into(),
            timeout: Duration::from_secs(10),
            username: None,
            password: None,
        }
    }
}

/// `[telemetry]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `text` for people, `json` for log pipelines. Default `text`.
    pub log_format: LogFormat,
    /// Log filter in `tracing` syntax; `RUST_LOG` wins when set. Default `info`.
    pub log_level: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Text,
            log_level: "info".into(),
        }
    }
}

/// `[admin]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of `/metrics`, `/health/live` and `/health/ready`. Default `127.0.0.1:9464`.
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// `[shutdown]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// How long draining, flushing and committing may take after a stop signal. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub grace_period: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            grace_period: Duration::from_secs(30),
        }
    }
}
