//! The join state: table index, asset graph, the latest materialization hints, and every
//! known asset's resolution, kept current as records arrive in any order.
//!
//! Invariant: the cached resolution of every known asset equals [`resolve`] run on the
//! current content; the `on_*` methods re-resolve exactly the assets an input can change (the
//! asset itself, or the assets watching a table name — see [`Pending`]) and return those whose
//! resolution changed, sorted, so the processor emits the lineage that became possible.
//! An asset is *known* when it is defined, declared as a dep of a defined asset, was
//! materialized, or was named as an input by a materialization (Dagster's recorded inputs, the
//! assets its column lineage reads): the lineage of a materialization processed before the
//! asset graph is published then still follows its tables.

use std::collections::{BTreeSet, HashMap};

use hashbrown::HashSet;

use lineage_schemas::records::{AssetDefinition, MetadataEntry, TableSnapshot};
use serde::{Deserialize, Serialize};

use super::config::ResolverConfig;
use super::hints::TableHints;
use super::pending::Pending;
use super::rules::{Resolution, resolve};
use crate::state::assets::{AssetGraph, AssetKeyRef, AssetRef};
use crate::state::tables::{TableIndex, TableRef};

/// A lineage edge between two assets (upstream dep → downstream asset) and its tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    /// The dep.
    pub upstream: AssetRef,
    /// The asset declaring the dep.
    pub downstream: AssetRef,
    /// FQN of the upstream asset's table, when resolved.
    pub upstream_table: Option<String>,
    /// FQN of the downstream asset's table, when resolved.
    pub downstream_table: Option<String>,
}

impl Edge {
    /// Whether both ends resolved: the table → table lineage can be emitted.
    pub fn is_ready(&self) -> bool {
        self.upstream_table.is_some() && self.downstream_table.is_some()
    }
}

/// The processor's resolution state. See the module documentation.
#[derive(Debug, Default)]
pub struct JoinState {
    config: ResolverConfig,
    tables: TableIndex,
    assets: AssetGraph,
    materialized: HashMap<AssetRef, TableHints>,
    inputs: HashSet<AssetRef>,
    resolutions: HashMap<AssetRef, Resolution>,
    pending: Pending,
}

impl JoinState {
    /// An empty state resolving with `config`.
    pub fn new(config: ResolverConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// The resolver configuration.
    pub fn config(&self) -> &ResolverConfig {
        &self.config
    }

    /// The table index.
    pub fn tables(&self) -> &TableIndex {
        &self.tables
    }

    /// The asset graph.
    pub fn assets(&self) -> &AssetGraph {
        &self.assets
    }

    /// Applies a table snapshot (`deleted = true` removes the table). Returns the assets whose
    /// resolution changed — in particular the pending assets that now resolve.
    pub fn on_table_upsert(&mut self, snapshot: &TableSnapshot) -> Vec<AssetRef> {
        let names = self.tables.apply(snapshot);
        self.refresh_watchers(&names)
    }

    /// Applies a tombstone of `openmetadata.tables` (key = table FQN). Returns the assets
    /// whose resolution changed.
    pub fn on_table_delete(&mut self, table_fqn: &str) -> Vec<AssetRef> {
        let names: Vec<String> = self.tables.delete(table_fqn).into_iter().collect();
        self.refresh_watchers(&names)
    }

    /// Applies an asset definition. Returns the asset itself (its edges changed) and every
    /// other asset whose resolution changed (deps that became known or unknown).
    pub fn on_asset_upsert(&mut self, definition: AssetDefinition) -> Vec<AssetRef> {
        let asset = AssetRef::of(&definition);
        let change = self.assets.upsert(definition);
        let mut changed = BTreeSet::from([asset.clone()]);
        for other in std::iter::once(&asset)
            .chain(&change.added)
            .chain(&change.removed)
        {
            if self.refresh(other) {
                changed.insert(other.clone());
            }
        }
        changed.into_iter().collect()
    }

    /// Applies a tombstone of `dagster.assets`. Returns the asset (when it was defined) and
    /// every other asset whose resolution changed.
    pub fn on_asset_delete(&mut self, asset: &AssetRef) -> Vec<AssetRef> {
        let Some(definition) = self.assets.remove(asset) else {
            return Vec::new();
        };
        let mut changed = BTreeSet::from([asset.clone()]);
        let deps = definition.deps.iter().map(|d| asset.sibling(d));
        for other in std::iter::once(asset.clone()).chain(deps) {
            if self.refresh(&other) {
                changed.insert(other);
            }
        }
        changed.into_iter().collect()
    }

    /// Records a materialization of `asset` with its metadata and the upstream keys it names
    /// (`inputs`: Dagster's recorded inputs and the assets of its column lineage), which all
    /// become known. Its table hints override the earlier ones field by field (a materialization
    /// without hints changes no hint). Returns the assets whose resolution changed, sorted.
    pub fn on_materialization(
        &mut self,
        asset: &AssetRef,
        metadata: &[MetadataEntry],
        inputs: &[Vec<String>],
    ) -> Vec<AssetRef> {
        let mut changed = BTreeSet::new();
        for key in inputs {
            let tenant = asset.tenant.as_str();
            // looked up borrowed: the owned key is built once per input asset, not per event
            if !self.inputs.contains(&AssetKeyRef { tenant, key }) {
                let input = asset.sibling(key);
                self.inputs.insert(input.clone());
                if self.refresh(&input) {
                    changed.insert(input);
                }
            }
        }
        let hints = TableHints::from_metadata(metadata);
        let first = !self.materialized.contains_key(asset);
        if first || !hints.is_empty() {
            let merged = match self.materialized.get(asset) {
                Some(old) => old.overlay(&hints),
                None => hints,
            };
            self.materialized.insert(asset.clone(), merged);
            if self.refresh(asset) {
                changed.insert(asset.clone());
            }
        }
        changed.into_iter().collect()
    }

    /// The hints `asset` resolves with: its definition's metadata overlaid with its
    /// materializations'.
    pub fn hints(&self, asset: &AssetRef) -> TableHints {
        let defined = self
            .assets
            .get(asset)
            .map(|d| TableHints::from_metadata(&d.metadata))
            .unwrap_or_default();
        match self.materialized.get(asset) {
            Some(materialized) => defined.overlay(materialized),
            None => defined,
        }
    }

    /// The resolution of `asset`: cached for known assets, computed for others.
    pub fn resolution(&self, asset: &AssetRef) -> Resolution {
        match self.resolutions.get(asset) {
            Some(resolution) => resolution.clone(),
            None => self.compute(asset),
        }
    }

    /// The cached resolution of a known asset, borrowed (the hot path's accessor).
    pub fn cached(&self, asset: &AssetRef) -> Option<&Resolution> {
        self.resolutions.get(asset)
    }

    /// The table `asset` resolved to.
    pub fn table_of(&self, asset: &AssetRef) -> Option<TableRef<'_>> {
        let slot = match self.resolutions.get(asset) {
            Some(resolution) => resolution.table()?.slot?,
            None => self.compute(asset).table()?.slot?,
        };
        self.tables.get(slot)
    }

    /// The edges touching `asset`: from each of its deps, then to each of its dependents.
    pub fn edges(&self, asset: &AssetRef) -> Vec<Edge> {
        let upstream = self
            .assets
            .deps(asset)
            .into_iter()
            .map(|dep| (dep, asset.clone()));
        let downstream = self
            .assets
            .dependents(asset)
            .map(|dependent| (asset.clone(), dependent.clone()));
        upstream
            .chain(downstream)
            .map(|(upstream, downstream)| Edge {
                upstream_table: self.table_fqn(&upstream),
                downstream_table: self.table_fqn(&downstream),
                upstream,
                downstream,
            })
            .collect()
    }

    /// The case-folded table names `asset`'s resolution looked up (what it waits for when
    /// unresolved).
    pub fn watched_names(&self, asset: &AssetRef) -> &[String] {
        self.pending.names_of(asset)
    }

    fn table_fqn(&self, asset: &AssetRef) -> Option<String> {
        match self.resolutions.get(asset) {
            Some(resolution) => resolution.table().map(|t| t.fqn.clone()),
            None => self.compute(asset).table().map(|t| t.fqn.clone()),
        }
    }

    fn compute(&self, asset: &AssetRef) -> Resolution {
        resolve(&self.config, &self.tables, &asset.key, &self.hints(asset))
    }

    fn is_known(&self, asset: &AssetRef) -> bool {
        self.assets.get(asset).is_some()
            || self.assets.is_referenced(asset)
            || self.materialized.contains_key(asset)
            || self.inputs.contains(asset)
    }

    /// Re-resolves `asset` (or forgets it when no longer known); true when it changed.
    fn refresh(&mut self, asset: &AssetRef) -> bool {
        if !self.is_known(asset) {
            self.pending.unwatch(asset);
            return self.resolutions.remove(asset).is_some();
        }
        let resolution = self.compute(asset);
        self.pending.watch(asset, resolution.watched_names());
        let changed = self.resolutions.get(asset) != Some(&resolution);
        if changed {
            tracing::debug!(
                asset = %asset,
                rule = resolution.rule.map(|r| r.as_str()),
                table = resolution.table().map(|t| t.fqn.as_str()),
                ambiguous = resolution.ambiguous,
                "asset resolution changed"
            );
            self.resolutions.insert(asset.clone(), resolution);
        }
        changed
    }

    fn refresh_watchers(&mut self, names: &[String]) -> Vec<AssetRef> {
        let affected: BTreeSet<AssetRef> = names
            .iter()
            .flat_map(|name| self.pending.watchers(name).cloned())
            .collect();
        affected
            .into_iter()
            .filter(|asset| self.refresh(asset))
            .collect()
    }
}
