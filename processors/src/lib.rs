//! The lineage processor (`process`): joins Dagster events with the asset graph and the
//! OpenMetadata table index, resolves asset keys to tables, and writes OpenLineage events and
//! OpenMetadata operations in Kafka transactions. Not built yet.
