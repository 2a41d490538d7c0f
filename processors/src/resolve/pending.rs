//! Late arrival: which assets looked up which table names, so that a table appearing (or
//! going away) re-resolves exactly the assets whose answer it can change. An asset whose
//! lookups all found nothing is *pending*: its lineage waits for one of these names.

use std::collections::{BTreeSet, HashMap};

use crate::state::assets::AssetRef;

/// The watch lists: case-folded table name → assets whose resolution looked it up.
#[derive(Debug, Default)]
pub struct Pending {
    by_name: HashMap<String, BTreeSet<AssetRef>>,
    names_of: HashMap<AssetRef, Vec<String>>,
}

impl Pending {
    /// Replaces the names `asset` watches.
    pub fn watch(&mut self, asset: &AssetRef, names: impl IntoIterator<Item = String>) {
        self.unwatch(asset);
        let mut names: Vec<String> = names.into_iter().collect();
        names.sort();
        names.dedup();
        for name in &names {
            self.by_name
                .entry(name.clone())
                .or_default()
                .insert(asset.clone());
        }
        if !names.is_empty() {
            self.names_of.insert(asset.clone(), names);
        }
    }

    /// Forgets `asset`.
    pub fn unwatch(&mut self, asset: &AssetRef) {
        for name in self.names_of.remove(asset).unwrap_or_default() {
            if let Some(set) = self.by_name.get_mut(&name) {
                set.remove(asset);
                if set.is_empty() {
                    self.by_name.remove(&name);
                }
            }
        }
    }

    /// The assets watching the case-folded table `name`, sorted.
    pub fn watchers(&self, name: &str) -> impl Iterator<Item = &AssetRef> {
        self.by_name.get(name).into_iter().flatten()
    }

    /// The case-folded names `asset` watches, sorted.
    pub fn names_of(&self, asset: &AssetRef) -> &[String] {
        self.names_of
            .get(asset)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watching_replaces_and_unwatching_forgets() {
        let mut pending = Pending::default();
        let a = AssetRef::new("t", ["a"]);
        pending.watch(&a, ["orders".to_owned(), "orders".to_owned()]);
        assert_eq!(pending.names_of(&a), ["orders"]);
        pending.watch(&a, ["users".to_owned()]);
        assert_eq!(pending.watchers("orders").count(), 0);
        assert_eq!(pending.watchers("users").collect::<Vec<_>>(), vec![&a]);
        pending.unwatch(&a);
        assert!(pending.names_of(&a).is_empty());
        assert_eq!(pending.watchers("users").count(), 0);
    }
}
