//! `[producers.openmetadata]`: settings of `lineage-bus produce openmetadata`.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `url` | `http://127.0.0.1:8585` | OpenMetadata server base URL (without `/api`) |
//! | `jwt_token` | none | bot JWT sent as `Authorization: Bearer` (secret, masked by `check-config`) |
//! | `services` | `[]` | database services to publish; empty = every service |
//! | `page_size` | `500` | tables per list request (`limit`, 1..=1000000) |
//! | `poll_interval` | `30s` | time between two polls of OpenMetadata's change events |
//! | `full_relist_interval` | `1h` | time between two full listings of the catalog (the safety net that reconciles and tombstones tables missing from the listing) |
//! | `event_overlap` | `10s` | change events are read again from this long before the cursor (events committed late, clock differences) |
//! | `event_fetch_limit` | `1000` | more changed tables than this in one poll are read with a full listing instead of one request per table |
//! | `request_timeout` | `30s` | timeout of one HTTP request |
//! | `max_retries` | `8` | retries of one request on 5xx, 429 and transport errors |
//! | `topic` | `openmetadata.tables` | compacted output topic |
//! | `transactional_id` | `lineage-bus-openmetadata-producer` | Kafka transactional id; one per topic and instance |
//! | `cursor_topic` | `lineage-bus.cursors` | compacted topic of the event cursor, written in the transaction of the snapshots it covers |

use std::time::Duration;

use lineage_bus_core::secret::serialize_masked;
use lineage_schemas::catalog::{OPENMETADATA_TABLES, SOURCE_CURSORS};
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
    /// Time between two polls of the change events.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Time between two full listings of the catalog, the safety net that reconciles what
    /// change events missed.
    #[serde(with = "humantime_serde")]
    pub full_relist_interval: Duration,
    /// How far before the cursor change events are read again.
    #[serde(with = "humantime_serde")]
    pub event_overlap: Duration,
    /// Changed tables per poll above which a full listing replaces one request per table.
    pub event_fetch_limit: usize,
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
    /// The compacted topic of the event cursor.
    pub cursor_topic: String,
}

impl Default for OpenMetadataConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8585".into(),
            jwt_token: None,
            services: Vec::new(),
            page_size: 500,
            poll_interval: Duration::from_secs(30),
            full_relist_interval: Duration::from_secs(3600),
            event_overlap: Duration::from_secs(10),
            event_fetch_limit: 1000,
            request_timeout: Duration::from_secs(30),
            max_retries: 8,
            topic: OPENMETADATA_TABLES.into(),
            transactional_id: "lineage-bus-openmetadata-producer".into(),
            cursor_topic: SOURCE_CURSORS.into(),
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
        assert_eq!(config.full_relist_interval, Duration::from_secs(3600));
        assert_eq!(config.cursor_topic, "lineage-bus.cursors");
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
