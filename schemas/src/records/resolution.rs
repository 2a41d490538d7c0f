//! Record of `lineage.resolution`.

use serde::{Deserialize, Serialize};

/// How one asset key resolved to an OpenMetadata table (topic `lineage.resolution`,
/// compacted): the processor's answer to "which table is this asset, and why".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolutionReport {
    /// Dagster deployment of the asset.
    pub tenant: String,
    /// The asset key's path.
    pub asset_key: Vec<String>,
    /// The key after `strip_asset_key_prefix_length`.
    pub key_after_strip: Vec<String>,
    /// Rule of the deciding lookup; `None` when no lookup matched.
    pub rule: Option<String>,
    /// Every lookup tried, in order; the deciding one is last.
    pub lookups: Vec<ResolutionLookup>,
    /// The tables the deciding lookup matched, best first.
    pub candidates: Vec<ResolutionCandidate>,
    /// Whether the deciding lookup matched more than one table.
    pub ambiguous: bool,
    /// FQN of the table chosen.
    pub chosen_table_fqn: Option<String>,
    /// Why no table was chosen (`not_found`, `ambiguous`, `no_name`).
    pub reason: Option<String>,
    /// Names the resolver could not use, with the reason.
    pub ignored: Vec<String>,
    /// FQNs of the tables whose edges into the chosen table were written for this asset,
    /// sorted.
    #[serde(default)]
    pub written_upstream: Vec<String>,
}

/// One lookup of a [`ResolutionReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolutionLookup {
    /// The rule the name came from.
    pub rule: String,
    /// Database service searched; `None` = every service.
    pub service: Option<String>,
    /// The name looked up, `[database.][schema.]table`.
    pub name: String,
    /// How many tables matched.
    pub matches: i32,
}

/// A table a [`ResolutionReport`]'s deciding lookup matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolutionCandidate {
    /// Table FQN.
    pub fqn: String,
    /// Whether the names matched in case too.
    pub exact_case: bool,
}

impl ResolutionReport {
    /// The Kafka key: tenant and asset key, joined by `/` (as `dagster.assets`).
    pub fn kafka_key(&self) -> String {
        format!("{}/{}", self.tenant, self.asset_key.join("/"))
    }
}
