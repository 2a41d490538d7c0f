//! `[producers.dagster]`: settings of `lineage-bus produce dagster`. The tenant comes from
//! `[tenant] id`.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `postgres_url` | none (required) | dagster-postgres database, e.g. `postgresql://dagster:secret@db:5432/dagster` (secret: masked by `check-config`, never logged) |
//! | `table` | `event_logs` | the event-log table, optionally schema-qualified (`dagster.event_logs`) |
//! | `batch_size` | `5000` | most rows read and published per Kafka transaction |
//! | `poll_interval` | `500ms` | wait between polls once caught up |
//! | `transactional_id_prefix` | `lineage-bus-producer-dagster` | the producer's `transactional.id` is `<prefix>-<tenant>`: a restarted instance fences its predecessor |
//! | `events_topic` | `dagster.events` | where events go |
//! | `cursor_topic` | `lineage-bus.cursors` | compacted topic holding the source cursor |
//! | `dead_letter_topic` | `lineage.deadletter` | where unparseable rows go |
//! | `transaction_timeout` | `60s` | Kafka `transaction.timeout.ms`: how long a crashed instance's open transaction can hold back readers |

use std::time::Duration;

use lineage_bus_core::secret::serialize_masked;
use lineage_schemas::catalog::{DAGSTER_EVENTS, DEAD_LETTER, SOURCE_CURSORS};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Settings of the Dagster producer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DagsterProducerConfig {
    /// PostgreSQL URL of Dagster's storage (dagster-postgres). Required by the role.
    #[serde(serialize_with = "serialize_masked")]
    pub postgres_url: Option<SecretString>,
    /// The event-log table, optionally schema-qualified.
    pub table: String,
    /// Most rows per batch (and per Kafka transaction).
    pub batch_size: u32,
    /// Wait between polls once caught up (humantime: `500ms`, `2s`).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Prefix of the Kafka `transactional.id`; the tenant id is appended.
    pub transactional_id_prefix: String,
    /// Topic of the events.
    pub events_topic: String,
    /// Compacted topic of the source cursor.
    pub cursor_topic: String,
    /// Topic of rows that cannot be parsed.
    pub dead_letter_topic: String,
    /// Kafka `transaction.timeout.ms`.
    #[serde(with = "humantime_serde")]
    pub transaction_timeout: Duration,
}

impl Default for DagsterProducerConfig {
    fn default() -> Self {
        Self {
            postgres_url: None,
            table: "event_logs".to_owned(),
            batch_size: 5_000,
            poll_interval: Duration::from_millis(500),
            transactional_id_prefix: "lineage-bus-producer-dagster".to_owned(),
            events_topic: DAGSTER_EVENTS.to_owned(),
            cursor_topic: SOURCE_CURSORS.to_owned(),
            dead_letter_topic: DEAD_LETTER.to_owned(),
            transaction_timeout: Duration::from_secs(60),
        }
    }
}

impl DagsterProducerConfig {
    /// The `transactional.id` of the producer of `tenant`.
    pub fn transactional_id(&self, tenant: &str) -> String {
        format!("{}-{tenant}", self.transactional_id_prefix)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn defaults_overrides_and_masking() {
        let config: DagsterProducerConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config.batch_size, 5_000);
        assert_eq!(config.events_topic, "dagster.events");
        assert_eq!(
            config.transactional_id("prod"),
            "lineage-bus-producer-dagster-prod"
        );
        let config: DagsterProducerConfig = serde_json::from_str(
            r#"{"postgres_url": "postgresql://u:hunter2@db/dagster", "poll_interval": "20ms"}"#,
        )
        .unwrap();
        assert_eq!(config.poll_interval, Duration::from_millis(20));
        assert_eq!(
            config.postgres_url.as_ref().unwrap().expose_secret(),
            "postgresql://u:hunter2@db/dagster"
        );
        let printed = serde_json::to_string(&config).unwrap();
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(serde_json::from_str::<DagsterProducerConfig>(r#"{"nope": 1}"#).is_err());
    }
}
