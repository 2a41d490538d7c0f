//! What the compacted topic holds: every key's latest value folded into FQN → content hash,
//! read from the beginning to the end (read_committed, no consumer group) at start-up.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};
use std::time::Duration;

use lineage_bus_core::KafkaConfig;
use lineage_bus_core::compacted::CompactedReader;
use lineage_schemas::RecordCodec;
use lineage_schemas::records::TableSnapshot;
use lineage_schemas::wire;
use tokio_util::sync::CancellationToken;

use super::OpenMetadataError;

/// The content hash of an encoded snapshot (wire bytes of the producer's own schema id).
pub(crate) fn content_hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(bytes);
    hasher.finish()
}

/// Reads `topic` to its end and returns FQN → hash of the latest snapshot (tombstoned keys
/// removed). Values written with another schema id are decoded and re-encoded with ours, so
/// that equal content hashes equal across schema versions. `None` on shutdown.
pub(crate) async fn read_topic(
    kafka: &KafkaConfig,
    topic: &str,
    codec: &RecordCodec<TableSnapshot>,
    timeout: Duration,
    shutdown: &CancellationToken,
) -> Result<Option<HashMap<String, u64>>, OpenMetadataError> {
    let reader = CompactedReader::new(kafka, "producer-openmetadata", topic, timeout)?;
    let mut known = HashMap::new();
    // Values of other schema ids (during a schema migration): decoded after the read.
    let mut foreign: HashMap<String, Vec<u8>> = HashMap::new();
    let complete = reader
        .fold_to_end(shutdown, |key, value| {
            let Ok(key) = std::str::from_utf8(key) else {
                tracing::warn!(topic, "record without a UTF-8 key; ignored");
                return;
            };
            known.remove(key);
            foreign.remove(key);
            match value {
                None => {}
                Some(bytes) if wire::split(bytes).is_ok_and(|(id, _)| id == codec.schema_id()) => {
                    known.insert(key.to_owned(), content_hash(bytes));
                }
                Some(bytes) => {
                    foreign.insert(key.to_owned(), bytes.to_vec());
                }
            }
        })
        .await?;
    if !complete {
        return Ok(None);
    }
    for (key, bytes) in foreign {
        let snapshot = codec
            .decode(&bytes)
            .await
            .map_err(|source| OpenMetadataError::Codec {
                what: format!("decoding {topic} record {key}"),
                source,
            })?;
        let own = codec
            .encode(&snapshot)
            .map_err(|source| OpenMetadataError::Codec {
                what: format!("re-encoding {}", snapshot.fqn),
                source,
            })?;
        known.insert(key, content_hash(&own));
    }
    Ok(Some(known))
}
