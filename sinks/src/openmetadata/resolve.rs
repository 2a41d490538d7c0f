//! Entity ids by FQN or name: where to look them up, and a bounded cache of those found.
//!
//! Ids never change while an entity lives, so a found id is kept until the cache evicts it
//! (least recently used beyond `entity_cache_size`) or a write using it answers 404 (the
//! entity was deleted, maybe re-created under a new id). Misses are not cached: an entity
//! that does not exist yet is looked up again at the next attempt.
//!
//! A table also keeps its column FQNs: OpenMetadata rejects a whole lineage edge (400 `Invalid
//! fully qualified column name`) when its `columnsLineage` names a column the table lacks, so
//! the sink leaves such column pairs out ([`prune_columns`]) and writes the table-level edge.

use std::collections::BTreeSet;
use std::sync::Arc;

use lineage_schemas::openmetadata_rest::{EntityRef, EntityType, encode_path_segment};
use lineage_schemas::records::AddLineage;
use moka::sync::Cache;
use serde_json::Value;

/// What is known of an entity found: its id and, for a table, its column FQNs (nested ones
/// included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The entity id.
    pub id: String,
    /// Column FQNs (empty for other entities).
    pub columns: Arc<BTreeSet<String>>,
}

/// `GET` path of the entity `entity` names.
pub fn lookup_path(entity: &EntityRef) -> String {
    let collection = match entity.entity_type {
        EntityType::Table => "tables",
        EntityType::Pipeline => "pipelines",
        EntityType::User => "users",
        EntityType::Team => "teams",
    };
    format!(
        "/api/v1/{collection}/name/{}",
        encode_path_segment(&entity.name)
    )
}

/// Whether a write cannot be made without the entity: a lineage edge needs its tables and
/// pipeline (the operation waits for them); owners are optional (left out when unknown).
pub fn required(entity: &EntityRef) -> bool {
    matches!(entity.entity_type, EntityType::Table | EntityType::Pipeline)
}

/// The entity in an OpenMetadata answer body: its `id` and column FQNs.
pub fn resolved_in(body: &str) -> Option<Resolved> {
    let value: Value = serde_json::from_str(body).ok()?;
    let id = value.get("id")?.as_str()?.to_owned();
    let mut columns = BTreeSet::new();
    if let Some(list) = value.get("columns").and_then(Value::as_array) {
        collect_columns(list, &mut columns);
    }
    Some(Resolved {
        id,
        columns: Arc::new(columns),
    })
}

fn collect_columns(list: &[Value], into: &mut BTreeSet<String>) {
    for column in list {
        if let Some(fqn) = column.get("fullyQualifiedName").and_then(Value::as_str) {
            into.insert(fqn.to_owned());
        }
        if let Some(children) = column.get("children").and_then(Value::as_array) {
            collect_columns(children, into);
        }
    }
}

/// Leaves out of `edge` the column pairs naming a column its tables lack (`from` and `to`:
/// the column FQNs of the upstream and downstream tables); returns the columns left out.
pub fn prune_columns(
    edge: &mut AddLineage,
    from: &BTreeSet<String>,
    to: &BTreeSet<String>,
) -> Vec<String> {
    let mut dropped = Vec::new();
    edge.columns.retain_mut(|pair| {
        if !to.contains(&pair.to_column) {
            dropped.push(pair.to_column.clone());
            return false;
        }
        pair.from_columns.retain(|column| {
            let known = from.contains(column);
            if !known {
                dropped.push(column.clone());
            }
            known
        });
        !pair.from_columns.is_empty()
    });
    dropped
}

/// The `fullyQualifiedName` and `id` of an entity in an answer body.
pub fn fqn_and_id_in(body: &str) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    Some((
        value.get("fullyQualifiedName")?.as_str()?.to_owned(),
        value.get("id")?.as_str()?.to_owned(),
    ))
}

/// Entities found, bounded.
#[derive(Clone)]
pub struct EntityCache {
    ids: Cache<EntityRef, Resolved>,
}

impl std::fmt::Debug for EntityCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityCache")
            .field("entries", &self.ids.entry_count())
            .finish()
    }
}

impl EntityCache {
    /// A cache of at most `capacity` ids.
    pub fn new(capacity: u64) -> Self {
        Self {
            ids: Cache::new(capacity),
        }
    }

    /// What is cached of `entity`.
    pub fn get(&self, entity: &EntityRef) -> Option<Resolved> {
        self.ids.get(entity)
    }

    /// Remembers `entity`.
    pub fn insert(&self, entity: EntityRef, resolved: Resolved) {
        self.ids.insert(entity, resolved);
    }

    /// Forgets the ids of `entities`.
    pub fn invalidate(&self, entities: &[EntityRef]) {
        for entity in entities {
            self.ids.invalidate(entity);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str) -> EntityRef {
        EntityRef {
            entity_type: EntityType::Table,
            name: name.into(),
        }
    }

    #[test]
    fn lookup_paths_encode_the_fqn() {
        assert_eq!(
            lookup_path(&table("pg.db.\"s.x\".orders")),
            "/api/v1/tables/name/pg.db.%22s.x%22.orders"
        );
        let pipeline = EntityRef {
            entity_type: EntityType::Pipeline,
            name: "demo.job@loc".into(),
        };
        assert_eq!(
            lookup_path(&pipeline),
            "/api/v1/pipelines/name/demo.job@loc"
        );
        assert!(required(&pipeline));
        let team = EntityRef {
            entity_type: EntityType::Team,
            name: "data eng".into(),
        };
        assert_eq!(lookup_path(&team), "/api/v1/teams/name/data%20eng");
        assert!(!required(&team));
    }

    fn resolved(id: &str) -> Resolved {
        Resolved {
            id: id.into(),
            columns: Arc::default(),
        }
    }

    #[test]
    fn ids_and_columns_are_read_from_answers() {
        let body = r#"{"id":"7f1c","name":"j","fullyQualifiedName":"demo.j"}"#;
        assert_eq!(resolved_in(body), Some(resolved("7f1c")));
        assert_eq!(
            fqn_and_id_in(body),
            Some(("demo.j".to_owned(), "7f1c".to_owned()))
        );
        assert_eq!(resolved_in("not json"), None);
        assert_eq!(resolved_in(r#"{"name":"x"}"#), None);
        let table = r#"{"id":"t","columns":[{"name":"a","fullyQualifiedName":"s.d.x.t.a"},
            {"name":"s","fullyQualifiedName":"s.d.x.t.s","children":[
                {"name":"b","fullyQualifiedName":"s.d.x.t.s.b"}]}]}"#;
        let columns: Vec<String> = resolved_in(table)
            .unwrap()
            .columns
            .iter()
            .cloned()
            .collect();
        assert_eq!(columns, ["s.d.x.t.a", "s.d.x.t.s", "s.d.x.t.s.b"]);
    }

    #[test]
    fn column_pairs_naming_unknown_columns_are_left_out() {
        use lineage_schemas::records::ColumnLineageEdge;
        let pair = |from: &[&str], to: &str| ColumnLineageEdge {
            from_columns: from.iter().map(|c| (*c).to_owned()).collect(),
            to_column: to.into(),
        };
        let mut edge = AddLineage {
            from_table_fqn: "a".into(),
            to_table_fqn: "b".into(),
            pipeline_fqn: None,
            description: None,
            columns: vec![
                pair(&["a.x", "a.gone"], "b.x"),
                pair(&["a.x"], "b.gone"),
                pair(&["a.gone"], "b.y"),
                pair(&["a.y"], "b.y"),
            ],
        };
        let from = ["a.x", "a.y"].map(str::to_owned).into();
        let to = ["b.x", "b.y"].map(str::to_owned).into();
        let dropped = prune_columns(&mut edge, &from, &to);
        assert_eq!(dropped, ["a.gone", "b.gone", "a.gone"]);
        assert_eq!(
            edge.columns,
            vec![pair(&["a.x"], "b.x"), pair(&["a.y"], "b.y")]
        );
    }

    #[test]
    fn the_cache_is_bounded_and_invalidated() {
        let cache = EntityCache::new(10);
        cache.insert(table("a"), resolved("1"));
        assert_eq!(cache.get(&table("a")), Some(resolved("1")));
        cache.invalidate(&[table("a"), table("b")]);
        assert_eq!(cache.get(&table("a")), None);
        for i in 0..100 {
            cache.insert(table(&i.to_string()), resolved(&i.to_string()));
        }
        cache.ids.run_pending_tasks();
        assert!(cache.ids.entry_count() <= 10, "{}", cache.ids.entry_count());
    }
}
