//! `lineage-bus process`: the stateful join, exactly once.
//!
//! Start-up: the compacted inputs (`openmetadata.tables`, `dagster.assets`) are read whole
//! into the state (every instance sees every table and asset), and so is the resolution-report
//! topic (what differs from the state is rewritten in the first transaction). Each batch of
//! `dagster.events` (and `openlineage.ingest` when that topic exists) is one Kafka transaction
//! (bus's exactly-once engine): the OpenLineage events, OpenMetadata operations, resolution
//! reports and dead letters it produces commit together with the consumed offsets. Later table
//! and asset changes wake the processor, which emits the lineage they unblock in a
//! transaction of its own; the edges of tables that changed while it was down are written by
//! the first transaction after the start-up replay (`docs/resolution.md`, late tables and
//! definitions).
//!
//! Several instances may share the consumer group (each with its own `transactional_id`).
//! Run state is partition-local: all events of a run share its key (the run id), hence one
//! partition. At start, before joining the group, an instance replays the history of every
//! partition before the group's committed offsets, without output ([`replay`]). At each
//! rebalance it forgets the runs of the partitions it lost, and replays again the partitions
//! it gained whose state is not at the committed offset (another instance processed them
//! since), so a run that moves continues with its run ids, tags and tasks. An instance that lost partitions without knowing it (a
//! zombie) cannot commit: the engine commits offsets with the consumer's group metadata, so
//! the coordinator fences its transaction (KIP-447) and the role stops. Emit-once decisions
//! that span partitions (pipeline service, pipeline, table edge) are per instance: after a
//! rebalance an upsert may be written again, which the sinks apply idempotently.
//!
//! Determinism: for the same input log (events and compacted inputs as they stand when
//! processing starts), reprocessing into fresh output topics writes byte-identical records in
//! the same order per key (tested with one event partition). With several event partitions
//! the interleaving of partitions in a batch is the consumer's: per-run output stays
//! identical, but which run first writes an emit-once upsert (pipeline, service, table edge),
//! and the order of records of different runs sharing a key, may differ. Table or asset
//! changes that arrive while events are processed are applied between batches.

mod batch;
mod config;
mod metrics;
mod replay;
mod report;
mod state;
mod updates;

use std::sync::Arc;

use lineage_bus_core::KafkaConfig;
use lineage_bus_core::admin::Readiness;
use lineage_bus_core::exactly_once::{self, ExactlyOnceConfig, ExactlyOnceError};
use lineage_schemas::records::DagsterEvent;
use lineage_schemas::{CodecError, RecordCodec, RegistryClient};
use rdkafka::error::KafkaError;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

pub use batch::{BatchError, Codecs, LineageProcessor};
pub use config::{ProcessConfig, ProcessTopics};
pub use report::{ReportWriter, report_of};
pub use state::LineageState;
pub use updates::{GlobalInput, GlobalTable, StateUpdate, UpdateError};

use crate::output::OutputSettings;
use crate::output::namespace::NamespaceTemplate;
use crate::resolve::Explanation;
use crate::state::AssetRef;

/// Why the processor stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The configuration is not usable.
    #[error("invalid [process] configuration: {0}")]
    Config(String),
    /// The Schema Registry could not be used.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A compacted input failed.
    #[error(transparent)]
    Update(#[from] UpdateError),
    /// The resolution-report topic could not be read.
    #[error(transparent)]
    Reports(#[from] lineage_bus_core::compacted::CompactedError),
    /// A Kafka operation failed.
    #[error("{action}: {source}")]
    Kafka {
        /// What was being done.
        action: String,
        /// The Kafka error.
        source: KafkaError,
    },
    /// Output could not be built.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// The transactional loop failed.
    #[error(transparent)]
    Engine(#[from] ExactlyOnceError),
}

impl LineageProcessor {
    /// Decodes a `dagster.events` value.
    pub async fn decode(&self, payload: &[u8]) -> Result<DagsterEvent, CodecError> {
        self.codecs().events.decode(payload).await
    }
}

/// The builders' settings from the configuration.
pub fn output_settings(config: &ProcessConfig) -> Result<OutputSettings, ProcessError> {
    let namespace_template: NamespaceTemplate = config
        .namespace_template
        .parse()
        .map_err(|e| ProcessError::Config(format!("namespace_template: {e}")))?;
    Ok(OutputSettings {
        namespace: config.namespace.clone(),
        namespace_template,
        dagster_url: config.dagster_url.clone(),
        tag_classification: config.tag_classification.clone(),
        strict_assertions: config.strict_assertions,
        ..OutputSettings::default()
    })
}

/// The compacted inputs, opened at their beginning.
async fn open_global_inputs(
    config: &ProcessConfig,
    kafka: &KafkaConfig,
    registry: &RegistryClient,
) -> Result<(GlobalInput, GlobalInput), ProcessError> {
    let topics = &config.topics;
    let timeout = config.transaction_timeout;
    let tables = GlobalInput::Tables(GlobalTable::open(
        kafka,
        &topics.tables,
        Arc::new(RecordCodec::for_topic(registry.clone(), &topics.tables).await?),
        timeout,
    )?);
    let assets = GlobalInput::Assets(GlobalTable::open(
        kafka,
        &topics.assets,
        Arc::new(RecordCodec::for_topic(registry.clone(), &topics.assets).await?),
        timeout,
    )?);
    Ok((tables, assets))
}

/// Every live record of the compacted inputs, tables first.
async fn read_global_inputs(
    tables: &GlobalInput,
    assets: &GlobalInput,
    shutdown: &CancellationToken,
) -> Result<Vec<StateUpdate>, ProcessError> {
    let mut updates = Vec::new();
    let table_count = tables.bootstrap(shutdown, |u| updates.push(u)).await?;
    let asset_count = assets.bootstrap(shutdown, |u| updates.push(u)).await?;
    metrics::GLOBAL_RECORDS
        .with_label_values(&["tables"])
        .set(table_count as i64);
    metrics::GLOBAL_RECORDS
        .with_label_values(&["assets"])
        .set(asset_count as i64);
    tracing::info!(
        tables = table_count,
        assets = asset_count,
        "global inputs read"
    );
    Ok(updates)
}

/// Explains how `asset` resolves, from the compacted inputs as they are now
/// (`lineage-bus explain asset`).
pub async fn explain(
    config: &ProcessConfig,
    kafka: &KafkaConfig,
    registry: &RegistryClient,
    asset: &AssetRef,
) -> Result<Explanation, ProcessError> {
    let (tables, assets) = open_global_inputs(config, kafka, registry).await?;
    let updates = read_global_inputs(&tables, &assets, &CancellationToken::new()).await?;
    let mut state = LineageState::new(config.resolver.clone());
    for update in updates {
        state.apply(update);
    }
    Ok(state.join().explain(asset))
}

/// Runs the processor until `shutdown` or a failure.
pub async fn run(
    config: ProcessConfig,
    kafka: KafkaConfig,
    registry: RegistryClient,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> Result<(), ProcessError> {
    let settings = output_settings(&config)?;
    let topics = &config.topics;
    let codecs = Arc::new(Codecs {
        events: RecordCodec::for_topic(registry.clone(), &topics.events).await?,
        operations: RecordCodec::for_topic(registry.clone(), &topics.openmetadata).await?,
        dead_letters: RecordCodec::for_topic(
            registry.clone(),
            lineage_schemas::catalog::DEAD_LETTER,
        )
        .await?,
    });
    let timeout = config.transaction_timeout;
    let (tables, assets) = open_global_inputs(&config, &kafka, &registry).await?;
    let (sender, receiver) = mpsc::channel(10_000);
    let bootstrap = read_global_inputs(&tables, &assets, &shutdown).await?;
    let reports = ReportWriter::open(
        &kafka,
        &topics.resolution,
        RecordCodec::for_topic(registry.clone(), &topics.resolution).await?,
        timeout,
        &shutdown,
    )
    .await?;
    let mut processor = LineageProcessor::new(
        LineageState::new(config.resolver.clone()),
        settings,
        topics.clone(),
        codecs,
        receiver,
    )
    .with_reports(reports);
    let mut input_topics = vec![topics.events.clone()];
    let ingest = replay::topic_exists(&kafka, &topics.ingest, timeout)
        .await
        .map_err(|source| ProcessError::Kafka {
            action: format!("looking for {}", topics.ingest),
            source,
        })?;
    if ingest {
        processor = processor.with_ingest();
        input_topics.push(topics.ingest.clone());
    }
    tracing::info!(topic = %topics.ingest, read = ingest, "openlineage ingest input");
    let mut discarded = Vec::new();
    for update in bootstrap {
        processor.apply_update(update, &mut discarded)?;
    }
    let replayer = replay::Replayer {
        kafka: kafka.clone(),
        group: config.group.clone(),
        topic: topics.events.clone(),
        timeout,
        shutdown: shutdown.clone(),
    };
    // every partition, before joining the group (a replay inside the group would delay its
    // polls); at each assignment only partitions processed elsewhere since are replayed again
    processor.rebuild(&replayer, None).await?;
    processor.recheck_replayed_edges();
    processor = processor.with_replayer(replayer);

    let wake = Arc::new(Notify::new());
    // the first transaction writes the resolution reports the state differs from the topic by
    wake.notify_one();
    let followers = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    for input in [tables, assets] {
        tasks.spawn(input.follow(sender.clone(), wake.clone(), followers.clone()));
    }
    readiness.set(true);
    let engine = ExactlyOnceConfig {
        group: config.group.clone(),
        input_topics,
        transactional_id: config.transactional_id.clone(),
        max_batch: config.max_batch,
        max_wait: config.max_wait,
        transaction_timeout: timeout,
    };
    let result = tokio::select! {
        result = exactly_once::run(&kafka, "processor", &engine, &mut processor, &wake, shutdown.clone()) => result.map_err(ProcessError::from),
        Some(Ok(Err(e))) = tasks.join_next() => Err(ProcessError::from(e)),
    };
    readiness.set(false);
    followers.cancel();
    tasks.shutdown().await;
    result
}
