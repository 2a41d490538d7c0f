//! `lineage-bus explain asset <key>`: why an asset has (or lacks) a table and lineage,
//! answering the questions of the troubleshooting table of OpenMetadata's Dagster connector
//! ("no lineage appears", "tables not found", "wrong tables matched", "assets missing from
//! pipeline", "partial lineage") from the processor's current state.

use serde::{Deserialize, Serialize};

use super::hints::TableHints;
use super::join::{Edge, JoinState};
use super::rules::{Candidate, Resolution, Unresolved};
use crate::state::assets::AssetRef;

/// What `explain asset` reports about one asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// The asset.
    pub asset: AssetRef,
    /// Whether `dagster.assets` defines it.
    pub defined: bool,
    /// Jobs that materialize it.
    pub job_names: Vec<String>,
    /// The metadata hints it resolves with.
    pub hints: TableHints,
    /// The resolution: rule applied, lookups, candidates, the table chosen or why none was.
    pub resolution: Resolution,
    /// Edges from its deps and to its dependents; `ready` ones are emitted, the others wait.
    pub edges: Vec<ExplainedEdge>,
    /// The troubleshooting findings, most important first.
    pub findings: Vec<Finding>,
}

/// An edge and whether its lineage is emitted or still waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainedEdge {
    /// The edge.
    #[serde(flatten)]
    pub edge: Edge,
    /// Both ends resolved: the lineage is emitted.
    pub ready: bool,
}

/// One answer to a troubleshooting question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "finding", rename_all = "snake_case")]
pub enum Finding {
    /// The asset is not in `dagster.assets` for this tenant.
    NotDefined,
    /// No lineage appears: the asset declares no deps and nothing depends on it.
    NoDeps,
    /// Assets missing from pipeline: no job materializes it.
    NotInAnyJob,
    /// Tables not found: no lookup matched a table of the index.
    TableNotFound {
        /// The case-folded table names the asset waits for.
        waiting_for: Vec<String>,
    },
    /// No usable name: the key and metadata give nothing to look up.
    NoName,
    /// Wrong tables matched: several tables matched; `chosen` is the one used (if any).
    Ambiguous {
        /// The candidates, best first.
        candidates: Vec<Candidate>,
        /// The table chosen, or `None` when the rule or `on_ambiguity = skip` needs one.
        chosen: Option<String>,
    },
    /// Partial lineage: these edges wait for a table on one side.
    EdgesWaiting {
        /// How many edges wait.
        count: usize,
    },
}

impl JoinState {
    /// Explains `asset` from the current state.
    pub fn explain(&self, asset: &AssetRef) -> Explanation {
        let definition = self.assets().get(asset);
        let resolution = self.resolution(asset);
        let edges: Vec<ExplainedEdge> = self
            .edges(asset)
            .into_iter()
            .map(|edge| ExplainedEdge {
                ready: edge.is_ready(),
                edge,
            })
            .collect();

        let mut findings = Vec::new();
        match definition {
            None => findings.push(Finding::NotDefined),
            Some(d) if d.job_names.is_empty() => findings.push(Finding::NotInAnyJob),
            Some(_) => {}
        }
        if edges.is_empty() {
            findings.push(Finding::NoDeps);
        }
        match resolution.outcome {
            _ if resolution.ambiguous => findings.push(Finding::Ambiguous {
                candidates: resolution.candidates.clone(),
                chosen: resolution.table().map(|t| t.fqn.clone()),
            }),
            super::rules::Outcome::Unresolved {
                reason: Unresolved::NotFound,
            } => {
                let mut waiting_for: Vec<String> = resolution.watched_names().collect();
                waiting_for.sort();
                waiting_for.dedup();
                findings.push(Finding::TableNotFound { waiting_for });
            }
            super::rules::Outcome::Unresolved {
                reason: Unresolved::NoName,
            } => findings.push(Finding::NoName),
            _ => {}
        }
        let waiting = edges.iter().filter(|e| !e.ready).count();
        if waiting > 0 {
            findings.push(Finding::EdgesWaiting { count: waiting });
        }

        Explanation {
            asset: asset.clone(),
            defined: definition.is_some(),
            job_names: definition.map(|d| d.job_names.clone()).unwrap_or_default(),
            hints: self.hints(asset),
            resolution,
            edges,
            findings,
        }
    }
}
