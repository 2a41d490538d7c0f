//! `[producers.dagster.graphql]`: Dagster's GraphQL API, read by the asset-graph publisher
//! (always, when `url` is set) and by the GraphQL event poller (when `[producers.dagster]
//! source = "graphql"`).
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `url` | none | the GraphQL endpoint, e.g. `http://dagster:3000/graphql` or `https://<org>.dagster.cloud/<deployment>/graphql`; unset = no asset graph, no GraphQL events |
//! | `api_token` | none | Dagster+ user token, sent as `Dagster-Cloud-Api-Token` (secret: masked by `check-config`, never logged) |
//! | `request_timeout` | `30s` | timeout of one GraphQL request |
//! | `max_retries` | `5` | retries of one request on transport errors, 5xx and 429 (exponential backoff with jitter) |
//! | `page_size` | `500` | asset nodes per page (`assetNodesConnection`), runs per page (`runsOrError`) and events per page (`logsForRun`, capped at 1000 by Dagster) |
//! | `assets` | `true` | publish the asset graph to `assets_topic` |
//! | `asset_poll_interval` | `60s` | time between two readings of the asset graph |
//! | `assets_topic` | `dagster.assets` | compacted topic of the asset definitions |
//! | `events_poll_interval` | `1s` | wait between two event polls once caught up (GraphQL event source) |
//! | `settle` | `2s` | a run's events are published once two reads this far apart agree (late commits; see [`super::events`]) |
//! | `finished_run_retention` | `7d` | how long a finished run's cursor is kept (a run updated again within it is not read twice) |

use std::time::Duration;

use lineage_bus_core::secret::serialize_masked;
use lineage_schemas::catalog::DAGSTER_ASSETS;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Settings of the GraphQL side of `produce dagster`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphqlConfig {
    /// The GraphQL endpoint; `None` disables everything GraphQL.
    pub url: Option<String>,
    /// Dagster+ API token (`Dagster-Cloud-Api-Token`).
    #[serde(serialize_with = "serialize_masked")]
    pub api_token: Option<SecretString>,
    /// Timeout of one request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Retries of one request on transient failures.
    pub max_retries: usize,
    /// Asset nodes, runs and events per page.
    pub page_size: u32,
    /// Publish the asset graph.
    pub assets: bool,
    /// Time between two readings of the asset graph.
    #[serde(with = "humantime_serde")]
    pub asset_poll_interval: Duration,
    /// Compacted topic of the asset definitions.
    pub assets_topic: String,
    /// Wait between event polls once caught up.
    #[serde(with = "humantime_serde")]
    pub events_poll_interval: Duration,
    /// Two reads of a run's log this far apart must agree before its events are published.
    #[serde(with = "humantime_serde")]
    pub settle: Duration,
    /// How long a finished run's cursor is kept.
    #[serde(with = "humantime_serde")]
    pub finished_run_retention: Duration,
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        Self {
            url: None,
            api_token: None,
            request_timeout: Duration::from_secs(30),
            max_retries: 5,
            page_size: 500,
            assets: true,
            asset_poll_interval: Duration::from_secs(60),
            assets_topic: DAGSTER_ASSETS.to_owned(),
            events_poll_interval: Duration::from_secs(1),
            settle: Duration::from_secs(2),
            finished_run_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_overrides_and_masking() {
        let config: GraphqlConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config.url, None);
        assert_eq!(config.assets_topic, "dagster.assets");
        assert_eq!(config.asset_poll_interval, Duration::from_secs(60));
        let config: GraphqlConfig = serde_json::from_str(
            r#"{"url": "http://d/graphql", "api_token": "user:sekrit", "settle": "500ms"}"#,
        )
        .unwrap();
        assert_eq!(config.settle, Duration::from_millis(500));
        let printed = serde_json::to_string(&config).unwrap();
        assert!(!printed.contains("sekrit"), "{printed}");
        assert!(serde_json::from_str::<GraphqlConfig>(r#"{"nope": 1}"#).is_err());
    }
}
