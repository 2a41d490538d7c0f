//! What the compacted topic holds for this tenant (key → content hash and code location),
//! and the comparison of a fresh reading of the asset graph with it.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hasher};
use std::time::Duration;

use lineage_bus_core::KafkaConfig;
use lineage_bus_core::compacted::{CompactedError, CompactedReader};
use lineage_schemas::records::AssetDefinition;
use lineage_schemas::{CodecError, RecordCodec};
use tokio_util::sync::CancellationToken;

/// What the topic holds for one asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Known {
    /// [`content_hash`] of the definition.
    pub(crate) hash: u64,
    /// Its code location.
    pub(crate) code_location: Option<String>,
}

/// The hash of what a definition says, leaving out when it was seen and where it was read.
pub(crate) fn content_hash(definition: &AssetDefinition) -> u64 {
    let mut normalized = definition.clone();
    normalized.updated_ms = 0;
    normalized.source.cursor = None;
    // Serialising a record of strings, numbers and maps to JSON cannot fail.
    let bytes = serde_json::to_vec(&normalized).unwrap_or_default();
    let mut hasher = DefaultHasher::new();
    hasher.write(&bytes);
    hasher.finish()
}

/// Why the topic could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Kafka failed.
    #[error(transparent)]
    Topic(#[from] CompactedError),
    /// A record of this tenant does not decode.
    #[error("record {key} does not decode: {source}")]
    Decode {
        /// Its key.
        key: String,
        /// The codec error.
        source: CodecError,
    },
}

/// Reads `topic` to its end: the live assets of `tenant` (keys `tenant/...`). `None` when
/// shutdown interrupted the read.
pub(crate) async fn read_topic(
    kafka: &KafkaConfig,
    topic: &str,
    tenant: &str,
    codec: &RecordCodec<AssetDefinition>,
    timeout: Duration,
    shutdown: &CancellationToken,
) -> Result<Option<HashMap<String, Known>>, StateError> {
    let reader = CompactedReader::new(kafka, "producer-dagster-assets", topic, timeout)?;
    let prefix = format!("{tenant}/");
    let mut latest: HashMap<String, Vec<u8>> = HashMap::new();
    let complete = reader
        .fold_to_end(shutdown, |key, value| {
            let Ok(key) = std::str::from_utf8(key) else {
                return;
            };
            if !key.starts_with(&prefix) {
                return;
            }
            match value {
                Some(bytes) => {
                    latest.insert(key.to_owned(), bytes.to_vec());
                }
                None => {
                    latest.remove(key);
                }
            }
        })
        .await?;
    if !complete {
        return Ok(None);
    }
    let mut known = HashMap::with_capacity(latest.len());
    for (key, bytes) in latest {
        let definition = codec
            .decode(&bytes)
            .await
            .map_err(|source| StateError::Decode {
                key: key.clone(),
                source,
            })?;
        known.insert(
            key,
            Known {
                hash: content_hash(&definition),
                code_location: definition.code_location,
            },
        );
    }
    Ok(Some(known))
}

/// What a reading changes.
#[derive(Debug, Default)]
pub(crate) struct Diff {
    /// New or changed definitions.
    pub(crate) publish: Vec<AssetDefinition>,
    /// Keys of removed assets.
    pub(crate) tombstone: Vec<String>,
    /// Definitions the topic already holds.
    pub(crate) unchanged: usize,
}

/// Compares `current` (every asset of the loaded locations) with `known`. An asset missing
/// from `current` is removed unless its code location is in `unavailable` (not loaded now:
/// its assets are unknown, not gone).
pub(crate) fn diff(
    known: &HashMap<String, Known>,
    current: Vec<AssetDefinition>,
    unavailable: &HashSet<String>,
) -> Diff {
    let mut out = Diff::default();
    let mut seen = HashSet::with_capacity(current.len());
    for definition in current {
        let key = definition.kafka_key();
        let hash = content_hash(&definition);
        if known.get(&key).is_some_and(|k| k.hash == hash) {
            out.unchanged += 1;
        } else {
            out.publish.push(definition);
        }
        seen.insert(key);
    }
    let mut gone: Vec<String> = known
        .iter()
        .filter(|(key, k)| {
            !seen.contains(*key)
                && !k
                    .code_location
                    .as_ref()
                    .is_some_and(|location| unavailable.contains(location))
        })
        .map(|(key, _)| key.clone())
        .collect();
    gone.sort();
    out.tombstone = gone;
    out
}

#[cfg(test)]
mod tests {
    use lineage_schemas::records::{SourceKind, SourcePosition};

    use super::*;

    fn definition(key: &[&str], location: &str, deps: &[&[&str]]) -> AssetDefinition {
        AssetDefinition {
            tenant: "t".into(),
            source: SourcePosition {
                kind: SourceKind::Graphql,
                storage_id: None,
                shard: None,
                cursor: None,
            },
            asset_key: key.iter().map(|s| (*s).to_owned()).collect(),
            code_location: Some(location.into()),
            repository: None,
            group: None,
            description: None,
            job_names: vec![],
            deps: deps
                .iter()
                .map(|d| d.iter().map(|s| (*s).to_owned()).collect())
                .collect(),
            owners: vec![],
            tags: Default::default(),
            kinds: vec![],
            metadata: vec![],
            is_materializable: true,
            partitions: None,
            checks: vec![],
            updated_ms: 1,
        }
    }

    fn known(definitions: &[AssetDefinition]) -> HashMap<String, Known> {
        definitions
            .iter()
            .map(|d| {
                (
                    d.kafka_key(),
                    Known {
                        hash: content_hash(d),
                        code_location: d.code_location.clone(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn the_time_seen_is_not_a_change() {
        let a = definition(&["a"], "loc", &[]);
        let mut later = a.clone();
        later.updated_ms = 99;
        later.source.cursor = Some("page-2".into());
        assert_eq!(content_hash(&a), content_hash(&later));
        let diff = diff(&known(&[a]), vec![later], &HashSet::new());
        assert_eq!((diff.publish.len(), diff.unchanged), (0, 1));
    }

    #[test]
    fn new_and_changed_assets_are_published_and_removed_ones_tombstoned() {
        let a = definition(&["a"], "loc", &[]);
        let b = definition(&["b"], "loc", &[&["a"]]);
        let gone = definition(&["gone"], "loc", &[]);
        let held = known(&[a.clone(), b.clone(), gone]);
        let b2 = definition(&["b"], "loc", &[]);
        let c = definition(&["c"], "loc", &[]);
        let diff = diff(&held, vec![a, b2, c], &HashSet::new());
        let published: Vec<String> = diff.publish.iter().map(|d| d.kafka_key()).collect();
        assert_eq!(published, ["t/b", "t/c"]);
        assert_eq!(diff.tombstone, ["t/gone"]);
        assert_eq!(diff.unchanged, 1);
    }

    #[test]
    fn assets_of_an_unloaded_location_are_kept() {
        let a = definition(&["a"], "broken", &[]);
        let b = definition(&["b"], "loc", &[]);
        let held = known(&[a, b]);
        let unavailable = HashSet::from(["broken".to_owned()]);
        let diff = diff(&held, vec![], &unavailable);
        assert_eq!(diff.tombstone, ["t/b"]);
    }
}
