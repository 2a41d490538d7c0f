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

use std::collections::BTreeSet;

/// Adds `value` to `set`, copying it only when it is new; true when it was new. For the sets
/// every event passes through, where the value is usually known already.
pub(crate) fn insert_new(set: &mut BTreeSet<String>, value: &str) -> bool {
    !set.contains(value) && set.insert(value.to_owned())
}
