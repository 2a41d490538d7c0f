//! `[producers.dagster]`: settings of `lineage-bus produce dagster`. The tenant comes from
//! `[tenant] id`.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `source` | `postgres` | where Dagster's event log is: `postgres` (dagster-postgres), `sqlite` (Dagster's SQLite storage) or `graphql` (Dagster's GraphQL API, for Dagster+ or when the database is out of reach; see [`crate::dagster::graphql::poller`]) |
//! | `postgres_url` | none (required by `postgres`) | dagster-postgres database, e.g. `postgresql://dagster:secret@db:5432/dagster` (secret: masked by `check-config`, never logged) |
//! | `table` | `event_logs` | `postgres`: the event-log table, optionally schema-qualified (`dagster.event_logs`) |
//! | `sqlite_layout` | `run-sharded` | `sqlite`: `run-sharded` (Dagster's default `SqliteEventLogStorage`: `<run_id>.db` per run, `index.db`) or `consolidated` (`ConsolidatedSqliteEventLogStorage`: `event_log.db`) |
//! | `sqlite_storage_dir` | none: `$DAGSTER_HOME/history/runs` | `sqlite`: the event-log storage's `base_dir`, where the `.db` files are |
//! | `batch_size` | `5000` | most rows read and published per Kafka transaction |
//! | `poll_interval` | `500ms` | wait between polls once caught up |
//! | `transactional_id_prefix` | `lineage-bus-producer-dagster` | the producer's `transactional.id` is `<prefix>-<tenant>`: a restarted instance fences its predecessor |
//! | `events_topic` | `dagster.events` | where events go |
//! | `cursor_topic` | `lineage-bus.cursors` | compacted topic holding the source cursor |
//! | `dead_letter_topic` | `lineage.deadletter` | where unparseable rows go |
//! | `transaction_timeout` | `60s` | Kafka `transaction.timeout.ms`: how long a crashed instance's open transaction can hold back readers |
//! | `[producers.dagster.graphql]` | | Dagster's GraphQL API: the asset graph (`dagster.assets`) and the `graphql` source; keys in [`crate::dagster::graphql::config`] |

use std::path::PathBuf;
use std::time::Duration;

use lineage_bus_core::secret::serialize_masked;
use lineage_schemas::catalog::{DAGSTER_EVENTS, DEAD_LETTER, SOURCE_CURSORS};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::graphql::GraphqlConfig;

/// Where Dagster's event log is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventLogSource {
    /// dagster-postgres' `event_logs` table.
    Postgres,
    /// Dagster's SQLite storage (the default of a Dagster instance without storage config).
    Sqlite,
    /// Dagster's GraphQL API (`[producers.dagster.graphql] url`).
    Graphql,
}

/// The layout of Dagster's SQLite event-log storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SqliteLayout {
    /// `SqliteEventLogStorage`, Dagster's default: one database per run plus `index.db`.
    RunSharded,
    /// `ConsolidatedSqliteEventLogStorage`: one `event_log.db`.
    Consolidated,
}

/// Settings of the Dagster producer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DagsterProducerConfig {
    /// Where the event log is read from.
    pub source: EventLogSource,
    /// PostgreSQL URL of Dagster's storage (dagster-postgres). Required by `postgres`.
    #[serde(serialize_with = "serialize_masked")]
    pub postgres_url: Option<SecretString>,
    /// The event-log table, optionally schema-qualified (`postgres`).
    pub table: String,
    /// The layout of the SQLite storage (`sqlite`).
    pub sqlite_layout: SqliteLayout,
    /// The directory of the SQLite event-log databases (`sqlite`); unset:
    /// `$DAGSTER_HOME/history/runs`, where a Dagster instance without storage config keeps them.
    pub sqlite_storage_dir: Option<PathBuf>,
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
    /// `[producers.dagster.graphql]`: the asset graph and the `graphql` source.
    pub graphql: GraphqlConfig,
}

impl Default for DagsterProducerConfig {
    fn default() -> Self {
        Self {
            source: EventLogSource::Postgres,
            postgres_url: None,
            table: "event_logs".to_owned(),
            sqlite_layout: SqliteLayout::RunSharded,
            sqlite_storage_dir: None,
            batch_size: 5_000,
            poll_interval: Duration::from_millis(500),
            transactional_id_prefix: "lineage-bus-producer-dagster".to_owned(),
            events_topic: DAGSTER_EVENTS.to_owned(),
            cursor_topic: SOURCE_CURSORS.to_owned(),
            dead_letter_topic: DEAD_LETTER.to_owned(),
            transaction_timeout: Duration::from_secs(60),
            graphql: GraphqlConfig::default(),
        }
    }
}

impl DagsterProducerConfig {
    /// Whether the role has what it needs to run (`up` starts it only then).
    pub fn is_configured(&self) -> bool {
        match self.source {
            EventLogSource::Postgres => self.postgres_url.is_some(),
            EventLogSource::Sqlite => self.sqlite_dir(None).is_some(),
            EventLogSource::Graphql => self.graphql.url.is_some(),
        }
    }

    /// The SQLite storage directory: `sqlite_storage_dir`, else `<dagster_home>/history/runs`
    /// with `dagster_home` or, when `None`, the `DAGSTER_HOME` environment variable.
    pub fn sqlite_dir(&self, dagster_home: Option<PathBuf>) -> Option<PathBuf> {
        self.sqlite_storage_dir.clone().or_else(|| {
            dagster_home
                .or_else(|| std::env::var_os("DAGSTER_HOME").map(PathBuf::from))
                .filter(|home| !home.as_os_str().is_empty())
                .map(|home| home.join("history").join("runs"))
        })
    }

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

    #[test]
    fn sqlite_source_and_its_directory() {
        let config: DagsterProducerConfig =
            serde_json::from_str(r#"{"source": "sqlite", "sqlite_layout": "consolidated"}"#)
                .unwrap();
        assert_eq!(config.source, EventLogSource::Sqlite);
        assert_eq!(config.sqlite_layout, SqliteLayout::Consolidated);
        assert_eq!(
            config.sqlite_dir(Some("/srv/dagster".into())),
            Some(PathBuf::from("/srv/dagster/history/runs")),
            "Dagster's default event-log directory under DAGSTER_HOME"
        );
        let config: DagsterProducerConfig =
            serde_json::from_str(r#"{"source": "sqlite", "sqlite_storage_dir": "/data/runs"}"#)
                .unwrap();
        assert_eq!(config.sqlite_layout, SqliteLayout::RunSharded);
        assert_eq!(
            config.sqlite_dir(Some("/srv/dagster".into())),
            Some(PathBuf::from("/data/runs"))
        );
        assert!(serde_json::from_str::<DagsterProducerConfig>(r#"{"source": "mysql"}"#).is_err());
    }
}
