//! `[producers.openmetadata]`: settings of `lineage-bus produce openmetadata`.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `url` | `http://127.0.0.1:8585` | OpenMetadata server base URL (without `/api`) |
//! | `jwt_token` | none | bot JWT sent as `Authorization: Bearer` (secret, masked by `check-config`) |
//! | `services` | `[]` | database services to publish; empty = every service |
//! | `page_size` | `500` | tables per list request (`limit`, 1..=1000000) |
//! | `poll_interval` | `30s` | time between two listings of the catalog |
//! | `request_timeout` | `30s` | timeout of one HTTP request |
//! | `max_retries` | `8` | retries of one request on 5xx, 429 and transport errors |
//! | `topic` | `openmetadata.tables` | compacted output topic |
//! | `transactional_id` | `lineage-bus-openmetadata-producer` | Kafka transactional id; one per topic and instance |

use std::time::Duration;

use lineage_bus_core::secret::serialize_masked;
use lineage_schemas::catalog::OPENMETADATA_TABLES;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Settings of the OpenMetadata producer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenMetadataConfig {
    /// Base URL of the OpenMetadata server, e.g. `https://openmetadata.example.com`.
    pub url: String,
    /// Bot JWT, sent as `Authorization: Bearer <token>` (secret).
    #[serde(serialize_with = "serialize_masked")]
    pub jwt_token: Option<SecretString>,
    /// Database services whose tables are published; empty publishes every service.
    pub services: Vec<String>,
    /// Tables per list request.
    pub page_size: u32,
    /// Time between two listings of the catalog.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Timeout of one HTTP request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Retries of one request on 5xx, 429 and transport errors (exponential backoff, jitter,
    /// `Retry-After` honoured).
    pub max_retries: usize,
    /// The compacted topic the snapshots go to.
    pub topic: String,
    /// Kafka transactional id of the writer: a restarted producer fences its predecessor.
    pub transactional_id: String,
}

impl Default for OpenMetadataConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8585".into(),
            jwt_token: None,
            services: Vec::new(),
            page_size: 500,
            poll_interval: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            max_retries: 8,
            topic: OPENMETADATA_TABLES.into(),
            transactional_id: "lineage-bus-openmetadata-producer".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_overrides_and_unknown_keys() {
        let config: OpenMetadataConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config.topic, "openmetadata.tables");
        assert_eq!(config.poll_interval, Duration::from_secs(30));
        let config: OpenMetadataConfig = serde_json::from_str(
            r#"{"services": ["pg", "snow"], "poll_interval": "2s", "jwt_token": "abc"}"#,
        )
        .unwrap();
        assert_eq!(config.services, ["pg", "snow"]);
        assert_eq!(config.poll_interval, Duration::from_secs(2));
        let printed = serde_json::to_string(&config).unwrap();
        assert!(
            !printed.contains("abc") && printed.contains("********"),
            "{printed}"
        );
        assert!(serde_json::from_str::<OpenMetadataConfig>(r#"{"nope": 1}"#).is_err());
    }
}
