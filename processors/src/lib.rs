//! The lineage processor (`process`): joins Dagster events with the asset graph and the
//! OpenMetadata table index, resolves asset keys to tables, and writes OpenLineage events and
//! OpenMetadata operations in Kafka transactions.

pub mod ingest;
pub mod offline;
pub mod output;
pub mod processor;
pub mod resolve;
pub mod state;
pub mod workload;
