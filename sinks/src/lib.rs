//! Sinks: deliver `lineage.openlineage` to OpenLineage backends and `lineage.openmetadata` to
//! the OpenMetadata API, each its own consumer group, committing offsets only after the
//! backend acknowledged. Not built yet.
