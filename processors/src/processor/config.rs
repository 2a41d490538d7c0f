//! `[process]`: the processor role's settings.

use std::time::Duration;

use lineage_schemas::catalog::{
    DAGSTER_ASSETS, DAGSTER_EVENTS, LINEAGE_OPENLINEAGE, LINEAGE_OPENMETADATA, LINEAGE_RESOLUTION,
    OPENLINEAGE_INGEST, OPENMETADATA_TABLES,
};
use serde::{Deserialize, Serialize};

use crate::resolve::ResolverConfig;

/// Settings of `lineage-bus process`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessConfig {
    /// Consumer group of the event input. Default `lineage-bus-processor`.
    pub group: String,
    /// `transactional.id` of this instance; give each instance its own. Default
    /// `lineage-bus-processor-0`.
    pub transactional_id: String,
    /// Most records per transaction. Default 5000: larger transactions cost less per record
    /// (on a 2-vCPU machine, 5000 gave 1.5x the wall rate of 1000); `max_wait` bounds latency.
    pub max_batch: usize,
    /// Longest wait for a batch to fill. Default `100ms`.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    /// Timeout of transaction operations. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub transaction_timeout: Duration,
    /// Topics read and written.
    pub topics: ProcessTopics,
    /// The OpenLineage namespace, `{namespace}` in the template. Default `dagster`.
    pub namespace: String,
    /// Namespace of jobs and datasets: `{namespace}`, `{tenant}`, `{code_location}`,
    /// `{tag:KEY}` (run tags). Default `{namespace}`.
    pub namespace_template: String,
    /// Dagster webserver URL for links in the output. Default none.
    pub dagster_url: Option<String>,
    /// OpenMetadata classification holding Dagster tags. Default `DagsterTags`.
    pub tag_classification: String,
    /// Count a failed WARN check as a failed assertion. Default false.
    pub strict_assertions: bool,
    /// Asset key → table resolution (`[process.resolver]`).
    pub resolver: ResolverConfig,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        Self {
            group: "lineage-bus-processor".into(),
            transactional_id: "lineage-bus-processor-0".into(),
            max_batch: 5000,
            max_wait: Duration::from_millis(100),
            transaction_timeout: Duration::from_secs(30),
            topics: ProcessTopics::default(),
            namespace: "dagster".into(),
            namespace_template: "{namespace}".into(),
            dagster_url: None,
            tag_classification: "DagsterTags".into(),
            strict_assertions: false,
            resolver: ResolverConfig::default(),
        }
    }
}

/// `[process.topics]`: defaults are the catalog's names.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessTopics {
    /// Dagster events (input).
    pub events: String,
    /// Asset graph, compacted (input, read whole).
    pub assets: String,
    /// Table snapshots, compacted (input, read whole).
    pub tables: String,
    /// OpenLineage events (output).
    pub openlineage: String,
    /// OpenMetadata operations (output).
    pub openmetadata: String,
    /// Resolution reports, compacted (output, read whole at start).
    pub resolution: String,
    /// OpenLineage events of other producers (input, read when the topic exists): validated
    /// and forwarded to `openlineage`.
    pub ingest: String,
}

impl Default for ProcessTopics {
    fn default() -> Self {
        Self {
            events: DAGSTER_EVENTS.into(),
            assets: DAGSTER_ASSETS.into(),
            tables: OPENMETADATA_TABLES.into(),
            openlineage: LINEAGE_OPENLINEAGE.into(),
            openmetadata: LINEAGE_OPENMETADATA.into(),
            resolution: LINEAGE_RESOLUTION.into(),
            ingest: OPENLINEAGE_INGEST.into(),
        }
    }
}
