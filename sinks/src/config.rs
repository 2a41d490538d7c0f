//! `[sinks]`: configuration of the sink roles, one sub-section per sink.
//!
//! `[sinks.openlineage]` follows OpenLineage's client conventions (url, endpoint, API key sent
//! as `Authorization: Bearer`, timeout, gzip compression, custom headers); `OPENLINEAGE_URL`
//! and `OPENLINEAGE_API_KEY` are honoured when the file leaves `url` / `api_key` unset.
//! `[sinks.openmetadata]` holds the OpenMetadata server's URL and a bot's JWT.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use lineage_bus_core::secret::serialize_masked;
use lineage_schemas::catalog::{DEAD_LETTER, LINEAGE_OPENLINEAGE, LINEAGE_OPENMETADATA};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Environment variable of the backend URL (OpenLineage's convention).
pub const OPENLINEAGE_URL_ENV: &str = "OPENLINEAGE_URL";
/// Environment variable of the API key (OpenLineage's convention).
pub const OPENLINEAGE_API_KEY_ENV: &str = "OPENLINEAGE_API_KEY";

/// `[sinks]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinksConfig {
    /// `[sinks.openlineage]`
    pub openlineage: OpenLineageSinkConfig,
    /// `[sinks.openmetadata]`
    pub openmetadata: OpenMetadataSinkConfig,
}

/// Where `sink openlineage` delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationKind {
    /// POST each event to an OpenLineage HTTP endpoint.
    Http,
    /// Append each event as one JSON line to a file.
    File,
}

/// Request body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain JSON.
    None,
    /// `Content-Encoding: gzip`.
    Gzip,
}

/// `[sinks.openlineage]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenLineageSinkConfig {
    /// Name of this destination: in the default consumer group, metrics and logs. Default
    /// `default`.
    pub name: String,
    /// `http` or `file`. Default `http`.
    pub destination: DestinationKind,
    /// Topic consumed. Default `lineage.openlineage`.
    pub topic: String,
    /// Consumer group. Default `lineage-bus-sink-openlineage-<name>`.
    pub group: Option<String>,
    /// Base URL of the backend, e.g. `http://marquez:5000`. Default: `OPENLINEAGE_URL`.
    pub url: Option<String>,
    /// Path appended to `url`. Default `api/v1/lineage` (DataHub:
    /// `openapi/openlineage/api/v1/lineage`).
    pub endpoint: String,
    /// API key sent as `Authorization: Bearer <key>` (secret). Default: `OPENLINEAGE_API_KEY`.
    #[serde(serialize_with = "serialize_masked")]
    pub api_key: Option<SecretString>,
    /// Timeout of one request. Default `5s`.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// `none` or `gzip`. Default `none`.
    pub compression: Compression,
    /// Extra request headers. Default none.
    pub headers: BTreeMap<String, String>,
    /// TLS settings of the HTTP client.
    pub tls: TlsConfig,
    /// File the `file` destination appends JSON lines to. Default
    /// `lineage-bus-openlineage.jsonl`.
    pub file_path: PathBuf,
    /// Most requests in flight at once (each for a different key). Default `16`.
    pub max_in_flight: usize,
    /// Records of one partition received but not yet acknowledged before the partition is
    /// paused; it resumes below half of it. Default `1000`.
    pub max_buffered_per_partition: usize,
    /// How often acknowledged offsets are committed. Default `1s`.
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// Retries of failed requests.
    pub retry: RetryConfig,
    /// Topic of records the backend rejected permanently. Default `lineage.deadletter`.
    pub dead_letter_topic: String,
    /// Most bytes of a rejecting response body kept in the dead letter. Default `4096`.
    pub max_response_body: usize,
    /// Requests per second per tenant (0 = unlimited). Default `0`.
    pub rate_limit_per_tenant: u32,
    /// Per-tenant routing: tenant (the `lineage-bus-tenant` record header) → its own endpoint,
    /// credentials and rate limit. Tenants not listed use the settings above.
    pub tenants: BTreeMap<String, TenantRoute>,
}

impl Default for OpenLineageSinkConfig {
    fn default() -> Self {
        Self {
            name: "default".into(),
            destination: DestinationKind::Http,
            topic: LINEAGE_OPENLINEAGE.into(),
            group: None,
            url: None,
            endpoint: "api/v1/lineage".into(),
            api_key: None,
            timeout: Duration::from_secs(5),
            compression: Compression::None,
            headers: BTreeMap::new(),
            tls: TlsConfig::default(),
            file_path: PathBuf::from("lineage-bus-openlineage.jsonl"),
            max_in_flight: 16,
            max_buffered_per_partition: 1000,
            commit_interval: Duration::from_secs(1),
            retry: RetryConfig::default(),
            dead_letter_topic: DEAD_LETTER.into(),
            max_response_body: 4096,
            rate_limit_per_tenant: 0,
            tenants: BTreeMap::new(),
        }
    }
}

impl OpenLineageSinkConfig {
    /// The consumer group: `group`, else `lineage-bus-sink-openlineage-<name>`.
    pub fn group(&self) -> String {
        self.group
            .clone()
            .unwrap_or_else(|| format!("lineage-bus-sink-openlineage-{}", self.name))
    }

    /// `url`, else `OPENLINEAGE_URL` from `env`.
    pub fn effective_url(&self, env: impl Fn(&str) -> Option<String>) -> Option<String> {
        self.url.clone().or_else(|| env(OPENLINEAGE_URL_ENV))
    }

    /// `api_key`, else `OPENLINEAGE_API_KEY` from `env`.
    pub fn effective_api_key(&self, env: impl Fn(&str) -> Option<String>) -> Option<SecretString> {
        self.api_key
            .clone()
            .or_else(|| env(OPENLINEAGE_API_KEY_ENV).map(SecretString::from))
    }
}

/// `[sinks.openmetadata]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenMetadataSinkConfig {
    /// Name of this destination: in the default consumer group, metrics and logs. Default
    /// `default`.
    pub name: String,
    /// Topic consumed. Default `lineage.openmetadata`.
    pub topic: String,
    /// Consumer group. Default `lineage-bus-sink-openmetadata-<name>`.
    pub group: Option<String>,
    /// Base URL of the OpenMetadata server (without `/api`). Default `http://127.0.0.1:8585`.
    pub url: String,
    /// A bot's JWT, sent as `Authorization: Bearer` (secret). `up` runs the sink when set.
    /// Default none.
    #[serde(serialize_with = "serialize_masked")]
    pub jwt_token: Option<SecretString>,
    /// Timeout of one request. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// TLS settings of the HTTP client.
    pub tls: TlsConfig,
    /// Entity ids (tables, pipelines, users, teams by FQN or name) kept in the cache; an entry
    /// is dropped when a write naming it answers 404. Default `10000`.
    pub entity_cache_size: u64,
    /// How long an operation whose table, pipeline, service, classification or tag does not
    /// exist yet (404) is retried before it is dead-lettered as unresolvable. Default `10m`.
    #[serde(with = "humantime_serde")]
    pub missing_reference_timeout: Duration,
    /// Most operations in flight at once (each for a different key). Default `16`.
    pub max_in_flight: usize,
    /// Records of one partition received but not yet acknowledged before the partition is
    /// paused; it resumes below half of it. Default `1000`.
    pub max_buffered_per_partition: usize,
    /// How often acknowledged offsets are committed. Default `1s`.
    #[serde(with = "humantime_serde")]
    pub commit_interval: Duration,
    /// Retries of failed requests.
    pub retry: RetryConfig,
    /// Topic of operations OpenMetadata rejected permanently. Default `lineage.deadletter`.
    pub dead_letter_topic: String,
    /// Most bytes of a rejecting response body kept in the dead letter. Default `4096`.
    pub max_response_body: usize,
    /// Operations per second per tenant (0 = unlimited). Default `0`.
    pub rate_limit_per_tenant: u32,
    /// Per-tenant routing: tenant (the operation's `tenant`) → its own OpenMetadata server, JWT
    /// and rate limit. Tenants not listed use the settings above.
    pub tenants: BTreeMap<String, OpenMetadataTenantRoute>,
}

impl Default for OpenMetadataSinkConfig {
    fn default() -> Self {
        Self {
            name: "default".into(),
            topic: LINEAGE_OPENMETADATA.into(),
            group: None,
            url: "http://127.0.0.1:8585".into(),
            jwt_token: None,
            timeout: Duration::from_secs(10),
            tls: TlsConfig::default(),
            entity_cache_size: 10_000,
            missing_reference_timeout: Duration::from_secs(600),
            max_in_flight: 16,
            max_buffered_per_partition: 1000,
            commit_interval: Duration::from_secs(1),
            retry: RetryConfig::default(),
            dead_letter_topic: DEAD_LETTER.into(),
            max_response_body: 4096,
            rate_limit_per_tenant: 0,
            tenants: BTreeMap::new(),
        }
    }
}

impl OpenMetadataSinkConfig {
    /// The consumer group: `group`, else `lineage-bus-sink-openmetadata-<name>`.
    pub fn group(&self) -> String {
        self.group
            .clone()
            .unwrap_or_else(|| format!("lineage-bus-sink-openmetadata-{}", self.name))
    }
}

/// `[sinks.openlineage.tls]`, `[sinks.openmetadata.tls]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file of an extra CA to trust. Default none (the system roots).
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. Never in production. Default `false`.
    pub insecure_skip_verify: bool,
}

/// `[sinks.openlineage.retry]`, `[sinks.openmetadata.retry]`: backoff with jitter between `initial_backoff` and
/// `max_backoff`; a `Retry-After` answer waits at least that long.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// First delay. Default `500ms`.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Longest delay between attempts. Default `60s`.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Give up (dead-letter) after retrying this long. Default none: a failing backend is
    /// retried until it answers, never skipped.
    #[serde(with = "humantime_serde")]
    pub max_elapsed: Option<Duration>,
    /// Longest `Retry-After` honoured. Default `10m`.
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            max_elapsed: None,
            max_retry_after: Duration::from_secs(600),
        }
    }
}

/// `[sinks.openlineage.tenants.<tenant>]`: what differs for one tenant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantRoute {
    /// Base URL. Default: the sink's.
    pub url: Option<String>,
    /// Endpoint path. Default: the sink's.
    pub endpoint: Option<String>,
    /// API key (secret). Default: the sink's.
    #[serde(serialize_with = "serialize_masked")]
    pub api_key: Option<SecretString>,
    /// Extra headers, added to the sink's. Default none.
    pub headers: BTreeMap<String, String>,
    /// Requests per second (0 = unlimited). Default: the sink's `rate_limit_per_tenant`.
    pub rate_limit: Option<u32>,
}

/// `[sinks.openmetadata.tenants.<tenant>]`: what differs for one tenant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenMetadataTenantRoute {
    /// Base URL of the tenant's OpenMetadata server (without `/api`). Default: the sink's.
    pub url: Option<String>,
    /// The tenant's bot JWT (secret). Default: the sink's.
    #[serde(serialize_with = "serialize_masked")]
    pub jwt_token: Option<SecretString>,
    /// Operations per second (0 = unlimited). Default: the sink's `rate_limit_per_tenant`.
    pub rate_limit: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_defaults_to_the_destination_name() {
        let config = OpenLineageSinkConfig {
            name: "marquez".into(),
            ..OpenLineageSinkConfig::default()
        };
        assert_eq!(config.group(), "lineage-bus-sink-openlineage-marquez");
        let named = OpenLineageSinkConfig {
            group: Some("replay-1".into()),
            ..config
        };
        assert_eq!(named.group(), "replay-1");
        let openmetadata = OpenMetadataSinkConfig {
            name: "catalog".into(),
            ..OpenMetadataSinkConfig::default()
        };
        assert_eq!(
            openmetadata.group(),
            "lineage-bus-sink-openmetadata-catalog"
        );
        assert_eq!(openmetadata.topic, "lineage.openmetadata");
    }

    #[test]
    fn openlineage_environment_fills_only_unset_keys() {
        use secrecy::ExposeSecret;
        let env = |name: &str| match name {
            OPENLINEAGE_URL_ENV => Some("http://from-env:5000".to_owned()),
            OPENLINEAGE_API_KEY_ENV => Some("env-key".to_owned()),
            _ => None,
        };
        let unset = OpenLineageSinkConfig::default();
        assert_eq!(
            unset.effective_url(env).as_deref(),
            Some("http://from-env:5000")
        );
        assert_eq!(
            unset.effective_api_key(env).unwrap().expose_secret(),
            "env-key"
        );
        let set = OpenLineageSinkConfig {
            url: Some("http://configured".into()),
            api_key: Some("file-key".to_owned().into()),
            ..OpenLineageSinkConfig::default()
        };
        assert_eq!(set.effective_url(env).as_deref(), Some("http://configured"));
        assert_eq!(
            set.effective_api_key(env).unwrap().expose_secret(),
            "file-key"
        );
    }
}
