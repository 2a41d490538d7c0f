//! The compacted inputs (`openmetadata.tables`, `dagster.assets`): read whole before the
//! first event, then followed; each later change reaches the processor as a [`StateUpdate`]
//! and wakes it, so lineage waiting for a table is emitted as soon as the table appears.

use std::sync::Arc;
use std::time::Duration;

use lineage_bus_core::KafkaConfig;
use lineage_bus_core::compacted::{CompactedError, CompactedReader};
use lineage_schemas::records::{AssetDefinition, TableSnapshot};
use lineage_schemas::{AvroRecord, CodecError, RecordCodec};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::state::AssetRef;

/// A change of the processor's global tables.
#[derive(Debug, Clone)]
pub enum StateUpdate {
    /// A table snapshot; `None` when the table was deleted.
    Table {
        /// Table FQN (the record key).
        fqn: String,
        /// The snapshot.
        snapshot: Option<TableSnapshot>,
    },
    /// An asset definition; `None` when the asset was removed.
    Asset {
        /// The asset (from the record key).
        asset: AssetRef,
        /// The definition.
        definition: Option<AssetDefinition>,
    },
}

/// A global-table input that failed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// Reading the topic failed.
    #[error(transparent)]
    Read(#[from] CompactedError),
    /// A record did not decode.
    #[error("{topic} record {key:?}: {source}")]
    Decode {
        /// Topic.
        topic: String,
        /// Record key.
        key: String,
        /// The codec error.
        source: CodecError,
    },
    /// A `dagster.assets` key is not `tenant/asset key`.
    #[error("{topic}: {source}")]
    Key {
        /// Topic.
        topic: String,
        /// The key error.
        source: crate::state::assets::AssetKeyError,
    },
}

/// One compacted input: its topic and how a record becomes an update.
pub struct GlobalTable<T> {
    topic: String,
    codec: Arc<RecordCodec<T>>,
    reader: CompactedReader,
}

impl<T: AvroRecord> GlobalTable<T> {
    /// Opens `topic` for reading from the beginning.
    pub fn open(
        kafka: &KafkaConfig,
        topic: &str,
        codec: Arc<RecordCodec<T>>,
        timeout: Duration,
    ) -> Result<Self, UpdateError> {
        Ok(Self {
            topic: topic.to_owned(),
            codec,
            reader: CompactedReader::new(kafka, "processor", topic, timeout)?,
        })
    }

    async fn decode(&self, key: &[u8], value: Option<&[u8]>) -> Result<Option<T>, UpdateError> {
        let Some(value) = value else { return Ok(None) };
        self.codec
            .decode(value)
            .await
            .map(Some)
            .map_err(|source| UpdateError::Decode {
                topic: self.topic.clone(),
                key: String::from_utf8_lossy(key).into_owned(),
                source,
            })
    }
}

/// The two global inputs.
pub enum GlobalInput {
    /// `openmetadata.tables`.
    Tables(GlobalTable<TableSnapshot>),
    /// `dagster.assets`.
    Assets(GlobalTable<AssetDefinition>),
}

impl GlobalInput {
    fn reader(&self) -> &CompactedReader {
        match self {
            GlobalInput::Tables(table) => &table.reader,
            GlobalInput::Assets(table) => &table.reader,
        }
    }

    /// The update a record of this input means.
    async fn update(&self, key: &[u8], value: Option<&[u8]>) -> Result<StateUpdate, UpdateError> {
        match self {
            GlobalInput::Tables(table) => Ok(StateUpdate::Table {
                fqn: String::from_utf8_lossy(key).into_owned(),
                snapshot: table.decode(key, value).await?,
            }),
            GlobalInput::Assets(table) => {
                let asset =
                    AssetRef::from_kafka_key(&String::from_utf8_lossy(key)).map_err(|source| {
                        UpdateError::Key {
                            topic: table.topic.clone(),
                            source,
                        }
                    })?;
                Ok(StateUpdate::Asset {
                    asset,
                    definition: table.decode(key, value).await?,
                })
            }
        }
    }

    /// Reads the input to its end, handing each live record to `apply`; returns how many.
    pub async fn bootstrap(
        &self,
        shutdown: &CancellationToken,
        mut apply: impl FnMut(StateUpdate),
    ) -> Result<usize, UpdateError> {
        let records = self.reader().read_to_end(shutdown).await?;
        let count = records.len();
        for (key, value) in records {
            apply(self.update(&key, Some(&value)).await?);
        }
        Ok(count)
    }

    /// Follows the input after its bootstrap, sending each change and waking the processor,
    /// until shutdown or an error.
    pub async fn follow(
        self,
        sender: mpsc::Sender<StateUpdate>,
        wake: Arc<Notify>,
        shutdown: CancellationToken,
    ) -> Result<(), UpdateError> {
        while let Some(record) = self.reader().next_update(&shutdown).await? {
            let update = self.update(&record.key, record.value.as_deref()).await?;
            if sender.send(update).await.is_err() {
                break;
            }
            wake.notify_one();
        }
        Ok(())
    }
}
