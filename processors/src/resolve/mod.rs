//! Asset key → OpenMetadata table.
//!
//! The default rules are OpenMetadata's Dagster connector's
//! (`metadata/ingestion/source/pipeline/dagster/metadata.py`, `_resolve_asset_to_table`):
//! strip `strip_asset_key_prefix_length` leading segments (a value ≥ the key length leaves the
//! key whole); read a 3-part key as `database.schema.table`, 2 parts as `schema.table`, 1 as
//! `table`; fill a missing database or schema from the labels `database|db|database_name`
//! and `schema|schema_name` (compared lowercased); search `db_service_names` in order, the
//! first service with a match winning, or every service when the list is empty.
//!
//! Beyond the connector, in the order tried (the first lookup that matches decides):
//! 1. `dagster/table_name`, then `dagster/relation_identifier` (dotted names, parts quoted
//!    with `"…"`, `` `…` `` or `[…]`; 4 parts name the service too);
//! 2. the labels when they name a `table` (the connector reads the table from the key only,
//!    although its documentation shows a label-named table resolving);
//! 3. the asset key as above;
//! 4. for keys longer than three parts, the last three parts, accepted only when they match
//!    a single table (`long_keys`).
//!
//! Where the connector takes the first search hit, several matches are ordered — exact-case
//! matches first (`case = insensitive`), then by FQN — the first is chosen (or none with
//! `on_ambiguity = skip`) and the ambiguity is reported in the [`Resolution`]. Where the
//! connector never looks again, [`JoinState`] re-resolves the assets a new or deleted table
//! can affect, so lineage that waited for a table is emitted when it arrives.

mod config;
mod explain;
mod hints;
mod join;
mod pending;
mod rules;

pub use config::{CaseMode, LongKeys, OnAmbiguity, ResolverConfig};
pub use explain::{ExplainedEdge, Explanation, Finding};
pub use hints::{
    DAGSTER_RELATION_IDENTIFIER, DAGSTER_TABLE_NAME, RelationNameError, TableHints, parse_relation,
};
pub use join::{Edge, JoinState};
pub use pending::Pending;
pub use rules::{Candidate, Lookup, Outcome, Resolution, ResolvedTable, Rule, Unresolved, resolve};

#[cfg(test)]
mod tests;
