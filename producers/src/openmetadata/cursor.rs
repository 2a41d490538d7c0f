//! The producer's two positions in OpenMetadata, kept as [`SourceCursor`]s in the compacted
//! cursor topic and written in the same Kafka transaction as the snapshots they cover:
//!
//! - `events`: change events with a timestamp before it are in the topic (read again from
//!   `event_overlap` before it);
//! - `listing`: when the last complete full listing started (the next one is due
//!   `full_relist_interval` later, across restarts).
//!
//! Keys are `producer.openmetadata/<tenant>/<snapshots topic>/<kind>`: one pair per instance.

use std::time::Duration;

use lineage_bus_core::KafkaConfig;
use lineage_bus_core::clock::now_ms;
use lineage_bus_core::compacted::CompactedReader;
use lineage_schemas::RecordCodec;
use lineage_schemas::records::SourceCursor;
use tokio_util::sync::CancellationToken;

use super::OpenMetadataError;

/// The `producer` of the cursor records.
const PRODUCER: &str = "producer.openmetadata";

/// Which position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The change-event cursor.
    Events,
    /// The start of the last complete full listing.
    Listing,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Events => "events",
            Kind::Listing => "listing",
        }
    }
}

/// The committed positions (ms since the Unix epoch, OpenMetadata's event timestamps).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Positions {
    /// The change-event cursor.
    pub(crate) events: Option<i64>,
    /// The start of the last complete full listing.
    pub(crate) listing: Option<i64>,
}

/// Builds and reads the cursor records of one producer instance.
pub(crate) struct Cursors {
    codec: RecordCodec<SourceCursor>,
    topic: String,
    tenant: String,
    snapshots_topic: String,
}

impl Cursors {
    /// Cursors of the instance writing `snapshots_topic` for `tenant`, kept in `topic`.
    pub(crate) fn new(
        codec: RecordCodec<SourceCursor>,
        topic: &str,
        tenant: &str,
        snapshots_topic: &str,
    ) -> Self {
        Self {
            codec,
            topic: topic.to_owned(),
            tenant: tenant.to_owned(),
            snapshots_topic: snapshots_topic.to_owned(),
        }
    }

    /// The cursor topic.
    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    fn key(&self, kind: Kind) -> String {
        format!(
            "{PRODUCER}/{}/{}/{}",
            self.tenant,
            self.snapshots_topic,
            kind.name()
        )
    }

    /// The record (key, encoded value) setting `kind` to `position`.
    pub(crate) fn record(
        &self,
        kind: Kind,
        position: i64,
    ) -> Result<(String, Vec<u8>), OpenMetadataError> {
        let cursor = SourceCursor {
            producer: PRODUCER.to_owned(),
            tenant: self.tenant.clone(),
            source: format!("openmetadata:{}:{}", kind.name(), self.snapshots_topic),
            position,
            updated_ms: now_ms(),
        };
        let value = self
            .codec
            .encode(&cursor)
            .map_err(|source| OpenMetadataError::Codec {
                what: format!("encoding the {} cursor", kind.name()),
                source,
            })?;
        Ok((self.key(kind), value))
    }

    /// Reads the committed positions (call after the publisher initialised its transactions,
    /// which aborted whatever a predecessor left open). `None` on shutdown.
    pub(crate) async fn load(
        &self,
        kafka: &KafkaConfig,
        timeout: Duration,
        shutdown: &CancellationToken,
    ) -> Result<Option<Positions>, OpenMetadataError> {
        let reader =
            CompactedReader::new(kafka, "producer-openmetadata-cursor", &self.topic, timeout)?;
        let (events_key, listing_key) = (self.key(Kind::Events), self.key(Kind::Listing));
        let mut latest: [Option<Vec<u8>>; 2] = [None, None];
        let complete = reader
            .fold_to_end(shutdown, |key, value| {
                let slot = if key == events_key.as_bytes() {
                    0
                } else if key == listing_key.as_bytes() {
                    1
                } else {
                    return;
                };
                latest[slot] = value.map(<[u8]>::to_vec);
            })
            .await?;
        if !complete {
            return Ok(None);
        }
        let mut positions = [None, None];
        for (slot, bytes) in latest.into_iter().enumerate() {
            if let Some(bytes) = bytes {
                let cursor =
                    self.codec
                        .decode(&bytes)
                        .await
                        .map_err(|source| OpenMetadataError::Codec {
                            what: format!("decoding a cursor of {}", self.topic),
                            source,
                        })?;
                positions[slot] = Some(cursor.position);
            }
        }
        Ok(Some(Positions {
            events: positions[0],
            listing: positions[1],
        }))
    }
}
