//! The asset graph of every Dagster deployment (tenant), from `dagster.assets`: each asset's
//! definition (deps, metadata, jobs, owners, tags...) and the reverse edges (dependents).

use std::collections::BTreeSet;
use std::fmt;
use std::hash::{Hash, Hasher};

use hashbrown::{Equivalent, HashMap};

use lineage_schemas::records::AssetDefinition;
use serde::{Deserialize, Serialize};

/// An asset of one tenant: the Dagster deployment and the asset key path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AssetRef {
    /// Dagster deployment.
    pub tenant: String,
    /// Asset key path.
    pub key: Vec<String>,
}

/// A borrowed [`AssetRef`]: looks an asset up in a map keyed by `AssetRef` without copying
/// the key (it hashes and compares as the `AssetRef` it stands for).
#[derive(Debug, Clone, Copy)]
pub struct AssetKeyRef<'a> {
    /// Dagster deployment.
    pub tenant: &'a str,
    /// Asset key path.
    pub key: &'a [String],
}

impl Hash for AssetKeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // as AssetRef's derived Hash: the tenant, then the key (a Vec hashes as its slice)
        self.tenant.hash(state);
        self.key.hash(state);
    }
}

impl Equivalent<AssetRef> for AssetKeyRef<'_> {
    fn equivalent(&self, asset: &AssetRef) -> bool {
        self.tenant == asset.tenant && self.key == asset.key.as_slice()
    }
}

/// A `dagster.assets` key that is not `tenant/asset/key/path`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("asset record key {key:?} is not `tenant/asset key path`")]
pub struct AssetKeyError {
    /// The key as read.
    pub key: String,
}

impl AssetRef {
    /// An asset of `tenant`.
    pub fn new(
        tenant: impl Into<String>,
        key: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            tenant: tenant.into(),
            key: key.into_iter().map(Into::into).collect(),
        }
    }

    /// The asset a `dagster.assets` record key names ([`AssetDefinition::kafka_key`]: the
    /// tenant, then the key path, joined by `/`); used for tombstones, which carry no value.
    pub fn from_kafka_key(key: &str) -> Result<Self, AssetKeyError> {
        match key.split_once('/') {
            Some((tenant, path)) if !tenant.is_empty() && !path.is_empty() => {
                Ok(Self::new(tenant, path.split('/')))
            }
            _ => Err(AssetKeyError {
                key: key.to_owned(),
            }),
        }
    }

    /// The asset `definition` describes.
    pub fn of(definition: &AssetDefinition) -> Self {
        Self::new(
            definition.tenant.as_str(),
            definition.asset_key.iter().cloned(),
        )
    }

    /// An upstream asset (a dep) of this asset's tenant.
    pub fn sibling(&self, key: &[String]) -> Self {
        Self::new(self.tenant.as_str(), key.iter().cloned())
    }
}

impl fmt::Display for AssetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.key.join("/"))
    }
}

/// What an upsert changed in the edges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DepsChange {
    /// Deps the new definition has and the old one did not.
    pub added: Vec<AssetRef>,
    /// Deps the old definition had and the new one does not.
    pub removed: Vec<AssetRef>,
}

/// The asset graph.
#[derive(Debug, Default)]
pub struct AssetGraph {
    definitions: HashMap<AssetRef, AssetDefinition>,
    /// For each asset, the defined assets that declare it as a dep.
    dependents: HashMap<AssetRef, BTreeSet<AssetRef>>,
}

impl AssetGraph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of defined assets.
    pub fn len(&self) -> usize {
        self.definitions.len()
    }

    /// Whether no asset is defined.
    pub fn is_empty(&self) -> bool {
        self.definitions.is_empty()
    }

    /// Inserts or replaces an asset's definition.
    pub fn upsert(&mut self, definition: AssetDefinition) -> DepsChange {
        let asset = AssetRef::of(&definition);
        let new_deps = deps_of(&asset, &definition);
        let old_deps = self
            .definitions
            .insert(asset.clone(), definition)
            .map(|old| deps_of(&asset, &old))
            .unwrap_or_default();
        let change = DepsChange {
            added: new_deps.difference(&old_deps).cloned().collect(),
            removed: old_deps.difference(&new_deps).cloned().collect(),
        };
        self.relink(&asset, &change);
        change
    }

    /// Removes an asset's definition (a tombstone on `dagster.assets`); returns it.
    pub fn remove(&mut self, asset: &AssetRef) -> Option<AssetDefinition> {
        let definition = self.definitions.remove(asset)?;
        let change = DepsChange {
            added: Vec::new(),
            removed: deps_of(asset, &definition).into_iter().collect(),
        };
        self.relink(asset, &change);
        Some(definition)
    }

    /// The definition of `asset`.
    pub fn get(&self, asset: &AssetRef) -> Option<&AssetDefinition> {
        self.definitions.get(asset)
    }

    /// The definition of `asset`, by a borrowed key.
    pub fn get_ref(&self, asset: AssetKeyRef<'_>) -> Option<&AssetDefinition> {
        self.definitions.get(&asset)
    }

    /// The upstream assets `asset` declares (empty when it is not defined), sorted.
    pub fn deps(&self, asset: &AssetRef) -> Vec<AssetRef> {
        self.get(asset)
            .map(|d| deps_of(asset, d).into_iter().collect())
            .unwrap_or_default()
    }

    /// The defined assets that declare `asset` as a dep, sorted.
    pub fn dependents(&self, asset: &AssetRef) -> impl Iterator<Item = &AssetRef> {
        self.dependents.get(asset).into_iter().flatten()
    }

    /// Whether some defined asset declares `asset` as a dep.
    pub fn is_referenced(&self, asset: &AssetRef) -> bool {
        self.dependents.contains_key(asset)
    }

    /// Every defined asset, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&AssetRef, &AssetDefinition)> {
        self.definitions.iter()
    }

    fn relink(&mut self, asset: &AssetRef, change: &DepsChange) {
        for dep in &change.added {
            self.dependents
                .entry(dep.clone())
                .or_default()
                .insert(asset.clone());
        }
        for dep in &change.removed {
            if let Some(set) = self.dependents.get_mut(dep) {
                set.remove(asset);
                if set.is_empty() {
                    self.dependents.remove(dep);
                }
            }
        }
    }
}

fn deps_of(asset: &AssetRef, definition: &AssetDefinition) -> BTreeSet<AssetRef> {
    definition.deps.iter().map(|d| asset.sibling(d)).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use lineage_schemas::records::{SourceKind, SourcePosition};

    use super::*;

    /// A definition of `key` in tenant `t` with these deps, in job `job`.
    pub(crate) fn definition(key: &[&str], deps: &[&[&str]]) -> AssetDefinition {
        AssetDefinition {
            tenant: "t".to_owned(),
            source: SourcePosition {
                kind: SourceKind::Graphql,
                storage_id: None,
                shard: None,
                cursor: None,
            },
            asset_key: key.iter().map(|s| s.to_string()).collect(),
            code_location: None,
            repository: None,
            group: None,
            description: None,
            job_names: vec!["job".to_owned()],
            deps: deps
                .iter()
                .map(|d| d.iter().map(|s| s.to_string()).collect())
                .collect(),
            owners: Vec::new(),
            tags: BTreeMap::new(),
            kinds: Vec::new(),
            metadata: Vec::new(),
            is_materializable: true,
            partitions: None,
            checks: Vec::new(),
            updated_ms: 0,
        }
    }

    #[test]
    fn dependents_follow_upserts_and_removals() {
        let mut graph = AssetGraph::new();
        let b = AssetRef::new("t", ["b"]);
        let c = AssetRef::new("t", ["c"]);
        let change = graph.upsert(definition(&["c"], &[&["a"], &["b"]]));
        assert_eq!(change.added.len(), 2);
        assert_eq!(graph.dependents(&b).collect::<Vec<_>>(), vec![&c]);
        let change = graph.upsert(definition(&["c"], &[&["a"]]));
        assert_eq!(change.removed, vec![b.clone()]);
        assert!(!graph.is_referenced(&b));
        assert_eq!(graph.deps(&c), vec![AssetRef::new("t", ["a"])]);
        assert!(graph.remove(&c).is_some());
        assert!(!graph.is_referenced(&AssetRef::new("t", ["a"])));
        assert!(graph.is_empty());
    }

    #[test]
    fn kafka_keys_parse_back() {
        let def = definition(&["raw", "orders"], &[]);
        let asset = AssetRef::from_kafka_key(&def.kafka_key()).expect("valid key");
        assert_eq!(asset, AssetRef::of(&def));
        assert_eq!(asset.to_string(), "t/raw/orders");
        assert!(AssetRef::from_kafka_key("no-slash").is_err());
        assert!(AssetRef::from_kafka_key("/x").is_err());
    }
}
