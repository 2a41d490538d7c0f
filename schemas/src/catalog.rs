//! The topic catalog: every topic lineage-bus reads or writes, with its key, value format,
//! partitions, cleanup policy and retention. `lineage-bus topics apply` creates and updates
//! topics from this table; the README's topic table is this table.

use crate::records::{
    AssetDefinition, DagsterEvent, DeadLetter, OpenMetadataOperation, ResolutionReport,
    SourceCursor, TableSnapshot,
};
use crate::{AvroRecord, SchemaFile};

/// How a topic's values are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueFormat {
    /// Avro in the Confluent wire format, with the record's schema file.
    Avro(SchemaFile),
    /// JSON documents of the named kind.
    Json(&'static str),
}

/// Whether a topic is a log or a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// Records expire after the retention time.
    Delete,
    /// The latest record per key is kept forever; a null value deletes the key.
    Compact,
}

impl CleanupPolicy {
    /// The `cleanup.policy` topic config value.
    pub fn as_config(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
        }
    }
}

/// One topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: &'static str,
    /// Default partition count (the unit of parallelism for consumers).
    pub partitions: i32,
    /// What the key is; it decides ordering.
    pub key: &'static str,
    /// Value encoding.
    pub value: ValueFormat,
    /// Cleanup policy.
    pub cleanup: CleanupPolicy,
    /// `retention.ms` for delete topics; `None` for compacted topics (kept forever).
    pub retention_ms: Option<i64>,
    /// Who writes it and what it holds.
    pub description: &'static str,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// `dagster.events`: every Dagster event.
pub const DAGSTER_EVENTS: &str = "dagster.events";
/// `dagster.assets`: the asset graph (compacted).
pub const DAGSTER_ASSETS: &str = "dagster.assets";
/// `openmetadata.tables`: the table index (compacted).
pub const OPENMETADATA_TABLES: &str = "openmetadata.tables";
/// `openlineage.ingest`: OpenLineage events posted to lineage-bus by other tools.
pub const OPENLINEAGE_INGEST: &str = "openlineage.ingest";
/// `lineage.openlineage`: OpenLineage events for the OpenLineage sinks.
pub const LINEAGE_OPENLINEAGE: &str = "lineage.openlineage";
/// `lineage.openmetadata`: OpenMetadata operations for the OpenMetadata sink.
pub const LINEAGE_OPENMETADATA: &str = "lineage.openmetadata";
/// `lineage.resolution`: how each asset key resolved to a table (compacted), written by the
/// processor in the transaction that changes it.
pub const LINEAGE_RESOLUTION: &str = "lineage.resolution";
/// `lineage.deadletter`: records given up on, with the reason.
pub const DEAD_LETTER: &str = "lineage.deadletter";
/// `lineage-bus.cursors`: each producer's source position (compacted), committed in the same
/// transaction as the records it covers.
pub const SOURCE_CURSORS: &str = "lineage-bus.cursors";

/// Every topic of the pipeline (the registry's own `_schemas` topic is the registry's).
pub const TOPICS: &[TopicSpec] = &[
    TopicSpec {
        name: DAGSTER_EVENTS,
        partitions: 12,
        key: "run id (runless events: asset key)",
        value: ValueFormat::Avro(DagsterEvent::FILE),
        cleanup: CleanupPolicy::Delete,
        retention_ms: Some(30 * DAY_MS),
        description: "producers/dagster and ingest: every Dagster event, in order per run",
    },
    TopicSpec {
        name: DAGSTER_ASSETS,
        partitions: 6,
        key: "tenant/asset key",
        value: ValueFormat::Avro(AssetDefinition::FILE),
        cleanup: CleanupPolicy::Compact,
        retention_ms: None,
        description: "producers/dagster: the asset graph, one record per asset, tombstone on removal",
    },
    TopicSpec {
        name: OPENMETADATA_TABLES,
        partitions: 6,
        key: "table FQN",
        value: ValueFormat::Avro(TableSnapshot::FILE),
        cleanup: CleanupPolicy::Compact,
        retention_ms: None,
        description: "producers/openmetadata: one snapshot per table, tombstone on delete",
    },
    TopicSpec {
        name: OPENLINEAGE_INGEST,
        partitions: 6,
        key: "run:{namespace}/{job}",
        value: ValueFormat::Json("OpenLineage event"),
        cleanup: CleanupPolicy::Delete,
        retention_ms: Some(30 * DAY_MS),
        description: "ingest: OpenLineage events from Airflow, dbt, Spark",
    },
    TopicSpec {
        name: LINEAGE_OPENLINEAGE,
        partitions: 12,
        key: "run:{namespace}/{job} of the root parent job; job:… / dataset:… otherwise",
        value: ValueFormat::Json("OpenLineage event"),
        cleanup: CleanupPolicy::Delete,
        retention_ms: Some(365 * DAY_MS),
        description: "processor: OpenLineage events for sinks/openlineage (replayable history)",
    },
    TopicSpec {
        name: LINEAGE_OPENMETADATA,
        partitions: 6,
        key: "FQN of the entity touched",
        value: ValueFormat::Avro(OpenMetadataOperation::FILE),
        cleanup: CleanupPolicy::Delete,
        retention_ms: Some(365 * DAY_MS),
        description: "processor: OpenMetadata operations for sinks/openmetadata",
    },
    TopicSpec {
        name: LINEAGE_RESOLUTION,
        partitions: 6,
        key: "tenant/asset key",
        value: ValueFormat::Avro(ResolutionReport::FILE),
        cleanup: CleanupPolicy::Compact,
        retention_ms: None,
        description: "processor: how each asset key resolved (rule, candidates, table or why none), tombstone when the asset goes",
    },
    TopicSpec {
        name: DEAD_LETTER,
        partitions: 3,
        key: "the original key",
        value: ValueFormat::Avro(DeadLetter::FILE),
        cleanup: CleanupPolicy::Delete,
        retention_ms: Some(90 * DAY_MS),
        description: "every role: records given up on, with the reason and the original bytes",
    },
    TopicSpec {
        name: SOURCE_CURSORS,
        partitions: 1,
        key: "producer/tenant",
        value: ValueFormat::Avro(SourceCursor::FILE),
        cleanup: CleanupPolicy::Compact,
        retention_ms: None,
        description: "producers: each producer's source position, in the transaction of its records",
    },
];

/// The topic named `name`, if it is in the catalog.
pub fn topic(name: &str) -> Option<&'static TopicSpec> {
    TOPICS.iter().find(|t| t.name == name)
}

/// The Schema Registry subject of a topic's values (Confluent's TopicNameStrategy).
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}
