//! The asset-graph publisher of `produce dagster`: Dagster's asset graph, read over GraphQL,
//! as the compacted topic `dagster.assets` (key = tenant + `/` + asset key path).
//!
//! At start it fences an earlier instance (Kafka transactions, transactional id
//! `<prefix>-assets-<tenant>`) and reads the topic to its end (read_committed) into key →
//! content hash for this tenant's keys. Then, every `asset_poll_interval`, it lists the
//! workspace's code locations and, for each repository of each loaded location, its asset
//! nodes page by page (`assetNodesConnection`: key, deps, jobs, group, owners, tags, kinds,
//! description, definition metadata, partitions definition, checks). It publishes only what
//! differs from the topic (the time seen and the source position do not count), and a
//! tombstone for each asset the topic holds that Dagster no longer defines, all in one
//! transaction per reading. Assets of a code location that is loading or failed to load are
//! left as they are; placeholder nodes Dagster creates for deps defined nowhere
//! (`isAutoCreatedStub`) are not published. A key defined in two repositories is published
//! once, the materializable definition first.
//!
//! Readiness is true after a reading succeeded and false while Dagster's GraphQL cannot be
//! read; the publisher keeps retrying. Config keys: [`crate::dagster::graphql::config`];
//! metrics: [`crate::dagster::graphql::metrics`].

mod convert;
mod state;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use lineage_bus_core::KafkaConfig;
use lineage_bus_core::clock::now_ms;
use lineage_schemas::RecordCodec;
use lineage_schemas::records::AssetDefinition;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use state::StateError;

use super::graphql::GraphqlConfig;
use super::graphql::client::{GraphqlClient, GraphqlError};
use super::graphql::metrics::METRICS;
use super::graphql::txn::{Record, TxnError, TxnWriter};
use state::Known;

/// Timeout of Kafka metadata and transaction calls.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the asset-graph publisher stopped, or why one reading failed.
#[derive(Debug, thiserror::Error)]
pub enum AssetsError {
    /// GraphQL failed.
    #[error(transparent)]
    Graphql(#[from] GraphqlError),
    /// Kafka failed.
    #[error("assets topic: {0}")]
    Publish(#[from] TxnError),
    /// The topic could not be read at start.
    #[error("assets topic: {0}")]
    State(#[from] StateError),
    /// A definition could not be encoded.
    #[error("cannot encode an asset definition: {0}")]
    Encode(#[from] lineage_schemas::CodecError),
}

impl AssetsError {
    /// True when the next reading may succeed (Dagster or Kafka unreachable for a while).
    fn is_transient(&self) -> bool {
        match self {
            AssetsError::Graphql(e) => e.is_transient(),
            AssetsError::Publish(e) => !e.is_fenced() && !matches!(e, TxnError::MissingTopic(_)),
            AssetsError::State(_) | AssetsError::Encode(_) => false,
        }
    }
}

/// What one reading did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AssetPoll {
    /// Definitions written (new or changed).
    pub published: usize,
    /// Tombstones written (removed assets).
    pub tombstoned: usize,
    /// Definitions the topic already held.
    pub unchanged: usize,
}

/// The publisher's state between readings.
pub struct AssetPublisher {
    client: GraphqlClient,
    codec: RecordCodec<AssetDefinition>,
    writer: TxnWriter,
    tenant: String,
    topic: String,
    page_size: u32,
    known: HashMap<String, Known>,
}

impl AssetPublisher {
    /// Opens the writer (fencing an older instance) and reads what the topic holds for
    /// `tenant`. `None` on shutdown.
    pub async fn open(
        config: &GraphqlConfig,
        transactional_id: &str,
        tenant: String,
        kafka: &KafkaConfig,
        codec: RecordCodec<AssetDefinition>,
        shutdown: &CancellationToken,
    ) -> Result<Option<Self>, AssetsError> {
        let client = GraphqlClient::new(config)?;
        let writer = TxnWriter::open(
            kafka,
            "producer-dagster-assets",
            transactional_id,
            &[&config.assets_topic],
            true,
            KAFKA_TIMEOUT,
        )
        .await?;
        let Some(known) = state::read_topic(
            kafka,
            &config.assets_topic,
            &tenant,
            &codec,
            KAFKA_TIMEOUT,
            shutdown,
        )
        .await?
        else {
            writer.close().await;
            return Ok(None);
        };
        tracing::info!(
            topic = config.assets_topic,
            tenant,
            assets = known.len(),
            "assets topic read"
        );
        METRICS.assets_live.set(known.len() as i64);
        Ok(Some(Self {
            client,
            codec,
            writer,
            tenant,
            topic: config.assets_topic.clone(),
            page_size: config.page_size,
            known,
        }))
    }

    /// Reads the asset graph and publishes what changed.
    pub async fn poll(&mut self) -> Result<AssetPoll, AssetsError> {
        let workspace = convert::workspace(&self.client).await?;
        let now = now_ms();
        let mut current: HashMap<String, (bool, AssetDefinition)> = HashMap::new();
        for (location, repository) in &workspace.repositories {
            let nodes =
                convert::asset_nodes(&self.client, location, repository, self.page_size).await?;
            for node in nodes.into_iter().filter(|n| !n.is_stub()) {
                let materializable = node.is_materializable();
                let key = node.key().join("/");
                if current
                    .get(&key)
                    .is_some_and(|(held, _)| *held || !materializable)
                {
                    continue;
                }
                let definition = node.into_definition(&self.tenant, location, repository, now);
                current.insert(key, (materializable, definition));
            }
        }
        let mut current: Vec<AssetDefinition> = current.into_values().map(|(_, d)| d).collect();
        current.sort_by(|a, b| a.asset_key.cmp(&b.asset_key));
        let unavailable: HashSet<String> = workspace.unavailable.into_iter().collect();
        let diff = state::diff(&self.known, current, &unavailable);
        let mut records = Vec::with_capacity(diff.publish.len() + diff.tombstone.len());
        let mut updates = Vec::with_capacity(diff.publish.len());
        for definition in &diff.publish {
            let key = definition.kafka_key();
            records.push(Record {
                topic: self.topic.clone(),
                key: key.clone(),
                value: Some(self.codec.encode(definition)?),
            });
            updates.push((
                key,
                Known {
                    hash: state::content_hash(definition),
                    code_location: definition.code_location.clone(),
                },
            ));
        }
        for key in &diff.tombstone {
            records.push(Record {
                topic: self.topic.clone(),
                key: key.clone(),
                value: None,
            });
        }
        if !records.is_empty() {
            self.writer.commit(&records, true).await?;
        }
        self.known.extend(updates);
        for key in &diff.tombstone {
            self.known.remove(key);
        }
        Ok(AssetPoll {
            published: diff.publish.len(),
            tombstoned: diff.tombstone.len(),
            unchanged: diff.unchanged,
        })
    }

    /// Closes the Kafka producer.
    pub async fn close(self) {
        self.writer.close().await;
    }
}

/// Runs the publisher until `shutdown`, reading every `config.asset_poll_interval`. `ready`
/// is true while the last reading succeeded.
pub async fn run(
    config: GraphqlConfig,
    transactional_id: String,
    tenant: String,
    kafka: KafkaConfig,
    codec: RecordCodec<AssetDefinition>,
    ready: watch::Sender<bool>,
    shutdown: CancellationToken,
) -> Result<(), AssetsError> {
    let Some(mut publisher) =
        AssetPublisher::open(&config, &transactional_id, tenant, &kafka, codec, &shutdown).await?
    else {
        return Ok(());
    };
    let result = loop {
        let started = Instant::now();
        match publisher.poll().await {
            Ok(poll) => {
                let elapsed = started.elapsed();
                METRICS.asset_poll_duration.observe(elapsed.as_secs_f64());
                let assets = &METRICS.assets;
                assets
                    .with_label_values(&["published"])
                    .inc_by(poll.published as u64);
                assets
                    .with_label_values(&["tombstoned"])
                    .inc_by(poll.tombstoned as u64);
                assets
                    .with_label_values(&["unchanged"])
                    .inc_by(poll.unchanged as u64);
                METRICS.assets_live.set(publisher.known.len() as i64);
                ready.send_replace(true);
                tracing::info!(
                    published = poll.published,
                    tombstoned = poll.tombstoned,
                    unchanged = poll.unchanged,
                    elapsed_ms = elapsed.as_millis() as u64,
                    "asset graph read"
                );
            }
            Err(error) if error.is_transient() => {
                ready.send_replace(false);
                tracing::warn!(%error, "asset graph not read; trying again at the next interval");
            }
            Err(error) => break Err(error),
        }
        tokio::select! {
            () = shutdown.cancelled() => break Ok(()),
            () = tokio::time::sleep(config.asset_poll_interval) => {}
        }
    };
    ready.send_replace(false);
    publisher.close().await;
    result
}
