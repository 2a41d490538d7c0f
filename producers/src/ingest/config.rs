//! `[ingest]`: settings of `lineage-bus ingest`. The tenant comes from `[tenant] id`.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `listen` | `127.0.0.1:3030` | address of Dagster's external-asset REST API (`/report_asset_materialization/` ...) |
//! | `api_token` | none | when set, every request must carry it in `Dagster-Cloud-Api-Token` (as Dagster+ expects) or `Authorization: Bearer`; otherwise 401 (secret: masked by `check-config`, never logged) |
//! | `path_prefix` | `""` | a prefix before the routes, e.g. `/prod` to keep Dagster+ URLs (`/{deployment}/report_asset_check/`) |
//! | `events_topic` | `dagster.events` | where the reports go |
//! | `delivery_timeout` | `30s` | longest wait for Kafka's acknowledgement before the request fails with 503 |
//! | `max_body_size` | `1MiB` in bytes (`1048576`) | larger bodies get 413 (Kafka's default record limit is 1 MB) |

use std::net::SocketAddr;
use std::time::Duration;

use lineage_bus_core::secret::serialize_masked;
use lineage_schemas::catalog::DAGSTER_EVENTS;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Settings of the ingest role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Listen address of the REST API.
    pub listen: SocketAddr,
    /// Token every request must carry (`Dagster-Cloud-Api-Token` or `Authorization: Bearer`).
    #[serde(serialize_with = "serialize_masked")]
    pub api_token: Option<SecretString>,
    /// Prefix before the routes (`/prod`); empty for none.
    pub path_prefix: String,
    /// Topic of the events.
    pub events_topic: String,
    /// Longest wait for Kafka's acknowledgement of one report.
    #[serde(with = "humantime_serde")]
    pub delivery_timeout: Duration,
    /// Largest accepted body, in bytes.
    pub max_body_size: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3030)),
            api_token: None,
            path_prefix: String::new(),
            events_topic: DAGSTER_EVENTS.to_owned(),
            delivery_timeout: Duration::from_secs(30),
            max_body_size: 1024 * 1024,
        }
    }
}
