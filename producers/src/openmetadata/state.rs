//! What the compacted topic holds: every key's latest snapshot folded into FQN → [`Known`]
//! (table id and a cheap fingerprint), read from the beginning to the end (read_committed, no
//! consumer group) at start-up. Deciding whether a table changed compares fingerprints, never
//! encoded snapshots: an unchanged table is neither converted nor encoded.

use std::collections::HashMap;
use std::time::Duration;

use lineage_bus_core::KafkaConfig;
use lineage_bus_core::compacted::CompactedReader;
use lineage_schemas::records::TableSnapshot;
use lineage_schemas::{RecordCodec, wire};
use tokio_util::sync::CancellationToken;

use super::OpenMetadataError;

/// What identifies a table's state: OpenMetadata bumps `version` and `updatedAt` on every
/// change of the entity (and keeps both on a write that changes nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    /// `version` as bits (versions are decimals like 0.1, compared exactly).
    version: u64,
    /// `updatedAt`, ms.
    updated_at_ms: i64,
}

impl Fingerprint {
    /// The fingerprint of a table at `version`, updated at `updated_at_ms`.
    pub(crate) fn new(version: f64, updated_at_ms: i64) -> Self {
        Self {
            version: version.to_bits(),
            updated_at_ms,
        }
    }

    /// True when the fingerprint is of `version`.
    pub(crate) fn is_version(&self, version: f64) -> bool {
        self.version == version.to_bits()
    }

    /// `updatedAt`, ms.
    pub(crate) fn updated_at_ms(&self) -> i64 {
        self.updated_at_ms
    }
}

/// A live snapshot the topic holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Known {
    /// OpenMetadata's table id.
    pub(crate) id: String,
    /// The snapshot's fingerprint; `None` when the snapshot must be written again whatever the
    /// table's state (another tenant, another schema version).
    pub(crate) fingerprint: Option<Fingerprint>,
}

impl Known {
    /// True when the topic already holds table `id` at `fingerprint`.
    pub(crate) fn is(&self, id: &str, fingerprint: Fingerprint) -> bool {
        self.id == id && self.fingerprint == Some(fingerprint)
    }
}

/// The live snapshots the topic holds, by FQN and by table id.
#[derive(Debug, Default)]
pub(crate) struct Index {
    by_fqn: HashMap<String, Known>,
    by_id: HashMap<String, String>,
}

impl Index {
    /// An index of `by_fqn`.
    pub(crate) fn new(by_fqn: HashMap<String, Known>) -> Self {
        let by_id = by_fqn
            .iter()
            .map(|(fqn, known)| (known.id.clone(), fqn.clone()))
            .collect();
        Self { by_fqn, by_id }
    }

    /// The snapshot under `fqn`.
    pub(crate) fn get(&self, fqn: &str) -> Option<&Known> {
        self.by_fqn.get(fqn)
    }

    /// The FQN under which table `id` is live in the topic.
    pub(crate) fn fqn_of(&self, id: &str) -> Option<&str> {
        self.by_id.get(id).map(String::as_str)
    }

    /// Records that `fqn` now holds `known`.
    pub(crate) fn insert(&mut self, fqn: String, known: Known) {
        self.by_id.insert(known.id.clone(), fqn.clone());
        if let Some(old) = self.by_fqn.insert(fqn, known) {
            self.forget_id(&old.id);
        }
    }

    /// Records that `fqn` was tombstoned.
    pub(crate) fn remove(&mut self, fqn: &str) {
        if let Some(old) = self.by_fqn.remove(fqn) {
            self.forget_id(&old.id);
        }
    }

    fn forget_id(&mut self, id: &str) {
        let stale = self
            .by_id
            .get(id)
            .is_some_and(|fqn| self.by_fqn.get(fqn).is_none_or(|k| k.id != id));
        if stale {
            self.by_id.remove(id);
        }
    }

    /// Every live FQN.
    pub(crate) fn fqns(&self) -> impl Iterator<Item = &String> {
        self.by_fqn.keys()
    }

    /// Live snapshots.
    pub(crate) fn len(&self) -> usize {
        self.by_fqn.len()
    }
}

/// Reads `topic` to its end and returns FQN → [`Known`] of the latest snapshot (tombstoned
/// keys removed). Snapshots of another tenant or written with another schema id get no
/// fingerprint, so they are written again (once) when their table is next seen. `None` on
/// shutdown.
pub(crate) async fn read_topic(
    kafka: &KafkaConfig,
    topic: &str,
    codec: &RecordCodec<TableSnapshot>,
    tenant: &str,
    timeout: Duration,
    shutdown: &CancellationToken,
) -> Result<Option<HashMap<String, Known>>, OpenMetadataError> {
    let reader = CompactedReader::new(kafka, "producer-openmetadata", topic, timeout)?;
    let mut latest: HashMap<String, Vec<u8>> = HashMap::new();
    let complete = reader
        .fold_to_end(shutdown, |key, value| {
            let Ok(key) = std::str::from_utf8(key) else {
                tracing::warn!(topic, "record without a UTF-8 key; ignored");
                return;
            };
            match value {
                None => latest.remove(key),
                Some(bytes) => latest.insert(key.to_owned(), bytes.to_vec()),
            };
        })
        .await?;
    if !complete {
        return Ok(None);
    }
    let own = codec.schema_id();
    let mut known = HashMap::with_capacity(latest.len());
    let mut foreign = Vec::new();
    for (key, bytes) in latest {
        match wire::split(&bytes) {
            Ok((id, _)) if id == own => {}
            _ => {
                foreign.push((key, bytes));
                continue;
            }
        }
        known.insert(key, bytes);
    }
    // Decoding every snapshot is CPU work: off the reactor.
    let tenant_owned = tenant.to_owned();
    let topic_owned = topic.to_owned();
    let mut out = tokio::task::spawn_blocking(move || {
        known
            .into_iter()
            .map(|(key, bytes)| {
                let snapshot: TableSnapshot = wire::split(&bytes)
                    .and_then(|(_, payload)| wire::decode_own(payload))
                    .map_err(|source| OpenMetadataError::Codec {
                        what: format!("decoding {topic_owned} record {key}"),
                        source,
                    })?;
                let value = known_of(&snapshot, &tenant_owned, true);
                Ok((key, value))
            })
            .collect::<Result<HashMap<_, _>, OpenMetadataError>>()
    })
    .await
    .map_err(OpenMetadataError::Task)??;
    // Values of other schema ids (during a schema migration): decoded with their writer schema.
    for (key, bytes) in foreign {
        let snapshot = codec
            .decode(&bytes)
            .await
            .map_err(|source| OpenMetadataError::Codec {
                what: format!("decoding {topic} record {key}"),
                source,
            })?;
        out.insert(key, known_of(&snapshot, tenant, false));
    }
    Ok(Some(out))
}

/// The [`Known`] of a snapshot read back from the topic.
fn known_of(snapshot: &TableSnapshot, tenant: &str, own_schema: bool) -> Known {
    Known {
        id: snapshot.id.clone(),
        fingerprint: (own_schema && snapshot.tenant == tenant)
            .then(|| Fingerprint::new(snapshot.version, snapshot.updated_at_ms)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(tenant: &str) -> TableSnapshot {
        TableSnapshot {
            tenant: tenant.into(),
            fqn: "s.d.c.t".into(),
            id: "id-1".into(),
            service: "s".into(),
            database: "d".into(),
            schema: "c".into(),
            table: "t".into(),
            service_type: None,
            table_type: None,
            description: None,
            columns: Vec::new(),
            tags: Vec::new(),
            owners: Vec::new(),
            deleted: false,
            version: 0.2,
            updated_at_ms: 1_700,
        }
    }

    #[test]
    fn fingerprints_compare_id_version_and_updated_at() {
        let known = known_of(&snapshot("t1"), "t1", true);
        assert!(known.is("id-1", Fingerprint::new(0.2, 1_700)));
        assert!(!known.is("id-2", Fingerprint::new(0.2, 1_700)));
        assert!(!known.is("id-1", Fingerprint::new(0.3, 1_700)));
        assert!(!known.is("id-1", Fingerprint::new(0.2, 1_701)));
        // another tenant or another schema version: written again
        assert!(!known_of(&snapshot("t0"), "t1", true).is("id-1", Fingerprint::new(0.2, 1_700)));
        assert!(!known_of(&snapshot("t1"), "t1", false).is("id-1", Fingerprint::new(0.2, 1_700)));
    }

    #[test]
    fn the_index_follows_renames_and_tombstones() {
        let known = |id: &str| Known {
            id: id.into(),
            fingerprint: None,
        };
        let mut index = Index::new(HashMap::from([("a".to_owned(), known("1"))]));
        assert_eq!(index.fqn_of("1"), Some("a"));
        index.insert("b".into(), known("1")); // renamed a -> b, a not yet tombstoned
        assert_eq!(index.fqn_of("1"), Some("b"));
        index.remove("a");
        assert_eq!(
            index.fqn_of("1"),
            Some("b"),
            "removing the old name keeps the new"
        );
        index.insert("b".into(), known("2")); // b now another table
        assert_eq!((index.fqn_of("1"), index.fqn_of("2")), (None, Some("b")));
        index.remove("b");
        assert_eq!((index.fqn_of("2"), index.len()), (None, 0));
    }
}
