//! `lineage-bus process`: the stateful join, exactly once.
//!
//! Start-up: the compacted inputs (`openmetadata.tables`, `dagster.assets`) are read whole
//! into the state (every instance sees every table and asset), the events already processed
//! by the group are replayed into the state without output, and only then does processing
//! begin. Each batch of `dagster.events` is one Kafka transaction (bus's exactly-once engine):
//! the OpenLineage events, OpenMetadata operations and dead letters it produces commit
//! together with the consumed offsets. Later table and asset changes wake the processor, which
//! emits the lineage they unblock in a transaction of their own.
//!
//! Limits: the run state of other instances' partitions is not shared, so run one processor
//! instance per set of tenants; a restart replays the event topic's retained history.

mod batch;
mod config;
mod metrics;
mod replay;
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
    let mut processor = LineageProcessor::new(
        LineageState::new(config.resolver.clone()),
        settings,
        topics.clone(),
        codecs,
        receiver,
    );
    let mut discarded = Vec::new();
    for update in bootstrap {
        processor.apply_update(update, &mut discarded)?;
    }
    let replayed = replay::replay_history(
        &kafka,
        &config.group,
        &topics.events,
        &mut processor,
        timeout,
        &shutdown,
    )
    .await?;
    tracing::info!(
        replayed,
        open_runs = processor.open_runs(),
        "state rebuilt; processing"
    );

    let wake = Arc::new(Notify::new());
    let followers = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    for input in [tables, assets] {
        tasks.spawn(input.follow(sender.clone(), wake.clone(), followers.clone()));
    }
    readiness.set(true);
    let engine = ExactlyOnceConfig {
        group: config.group.clone(),
        input_topics: vec![topics.events.clone()],
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
