//! `lineage-bus topics apply`: creates the catalog's topics and brings their managed configs
//! (`cleanup.policy`, `retention.ms`) in line, idempotently. Partition counts are never
//! changed on an existing topic: that would move keys between partitions and break ordering,
//! so a mismatch is reported for the operator to decide.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lineage_schemas::catalog::{CleanupPolicy, TopicSpec};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;

/// What `apply` did to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicChange {
    /// Created with the catalog's settings.
    Created {
        /// Partitions.
        partitions: i32,
        /// Replication factor.
        replication: i32,
    },
    /// Managed configs changed: `(key, old value, new value)`.
    Reconfigured(Vec<(String, String, String)>),
    /// Already as the catalog says.
    Unchanged,
    /// Exists with a different partition count; left alone.
    PartitionMismatch {
        /// Partitions the topic has.
        actual: i32,
        /// Partitions the catalog asks for.
        catalog: i32,
    },
}

/// A topic operation that failed.
#[derive(Debug, thiserror::Error)]
#[error("{action}: {source}")]
pub struct TopicsError {
    action: String,
    source: KafkaError,
}

fn failed(action: impl Into<String>) -> impl FnOnce(KafkaError) -> TopicsError {
    let action = action.into();
    move |source| TopicsError { action, source }
}

/// The first of `topics` that `metadata` does not show as usable: absent, in error or
/// without partitions. A role checks its topics with it before it starts writing.
pub fn first_missing<'a>(
    metadata: &Metadata,
    topics: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    topics.into_iter().find(|topic| {
        !metadata
            .topics()
            .iter()
            .any(|t| t.name() == *topic && t.error().is_none() && !t.partitions().is_empty())
    })
}

/// The configs the catalog manages for `spec`.
pub fn managed_configs(spec: &TopicSpec) -> BTreeMap<&'static str, String> {
    let mut configs = BTreeMap::from([("cleanup.policy", spec.cleanup.as_config().to_owned())]);
    if let (CleanupPolicy::Delete, Some(retention)) = (spec.cleanup, spec.retention_ms) {
        configs.insert("retention.ms", retention.to_string());
    }
    configs
}

/// Creates missing topics and reconciles managed configs; returns what happened per topic.
pub async fn apply(
    kafka: &KafkaConfig,
    specs: &[TopicSpec],
    timeout: Duration,
) -> Result<Vec<(&'static str, TopicChange)>, TopicsError> {
    let admin: Arc<AdminClient<DefaultClientContext>> = Arc::new(
        kafka
            .client_config("topics")
            .create()
            .map_err(failed(format!(
                "connecting to Kafka at {}",
                kafka.bootstrap_servers
            )))?,
    );
    let (brokers, partitions) = cluster_layout(admin.clone(), timeout).await?;
    let replication = kafka.replication_factor.unwrap_or(brokers.min(3));
    let options = AdminOptions::new().operation_timeout(Some(timeout));

    let mut changes = Vec::with_capacity(specs.len());
    for spec in specs {
        let change = match partitions.get(spec.name) {
            None => match create(&admin, &options, spec, replication).await? {
                Some(created) => created,
                // Created by someone else since we looked: reconcile it like any other.
                None => reconcile(&admin, &options, spec).await?,
            },
            Some(&actual) if actual != spec.partitions => TopicChange::PartitionMismatch {
                actual,
                catalog: spec.partitions,
            },
            Some(_) => reconcile(&admin, &options, spec).await?,
        };
        changes.push((spec.name, change));
    }
    let created: Vec<&str> = changes
        .iter()
        .filter(|(_, change)| matches!(change, TopicChange::Created { .. }))
        .map(|(name, _)| *name)
        .collect();
    wait_until_visible(admin, &created, timeout).await?;
    Ok(changes)
}

/// Waits until the cluster metadata lists every topic in `names`, so that whoever runs next
/// (a producer, a second `apply`) sees them.
async fn wait_until_visible(
    admin: Arc<AdminClient<DefaultClientContext>>,
    names: &[&str],
    timeout: Duration,
) -> Result<(), TopicsError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (_, partitions) = cluster_layout(admin.clone(), timeout).await?;
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|name| !partitions.contains_key(*name))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(TopicsError {
                action: format!("waiting for created topics {missing:?} to appear in metadata"),
                source: KafkaError::Canceled,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Number of brokers and the partition count of every existing topic.
async fn cluster_layout(
    admin: Arc<AdminClient<DefaultClientContext>>,
    timeout: Duration,
) -> Result<(i32, BTreeMap<String, i32>), TopicsError> {
    // fetch_metadata blocks; keep it off the reactor.
    let metadata = tokio::task::spawn_blocking(move || admin.inner().fetch_metadata(None, timeout))
        .await
        .unwrap_or(Err(KafkaError::Canceled))
        .map_err(failed("fetching cluster metadata"))?;
    let partitions = metadata
        .topics()
        .iter()
        .map(|t| (t.name().to_owned(), t.partitions().len() as i32))
        .collect();
    Ok((metadata.brokers().len() as i32, partitions))
}

/// Creates the topic; `None` when it already existed.
async fn create(
    admin: &AdminClient<DefaultClientContext>,
    options: &AdminOptions,
    spec: &TopicSpec,
    replication: i32,
) -> Result<Option<TopicChange>, TopicsError> {
    let configs = managed_configs(spec);
    let mut topic = NewTopic::new(
        spec.name,
        spec.partitions,
        TopicReplication::Fixed(replication),
    );
    for (key, value) in &configs {
        topic = topic.set(key, value);
    }
    let results = admin
        .create_topics([&topic], options)
        .await
        .map_err(failed(format!("creating topic {}", spec.name)))?;
    match results.into_iter().next() {
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => Ok(None),
        Some(Err((name, code))) => Err(TopicsError {
            action: format!("creating topic {name} with replication factor {replication}"),
            source: KafkaError::AdminOp(code),
        }),
        _ => Ok(Some(TopicChange::Created {
            partitions: spec.partitions,
            replication,
        })),
    }
}

async fn reconcile(
    admin: &AdminClient<DefaultClientContext>,
    options: &AdminOptions,
    spec: &TopicSpec,
) -> Result<TopicChange, TopicsError> {
    let resource = ResourceSpecifier::Topic(spec.name);
    let described = admin
        .describe_configs([&resource], options)
        .await
        .map_err(failed(format!("describing topic {}", spec.name)))?;
    let current = match described.into_iter().next() {
        Some(Ok(resource)) => resource,
        Some(Err(code)) => {
            return Err(TopicsError {
                action: format!("describing topic {}", spec.name),
                source: KafkaError::AdminOp(code),
            });
        }
        None => return Ok(TopicChange::Unchanged),
    };
    let value_of = |key: &str| {
        current
            .get(key)
            .and_then(|entry| entry.value.clone())
            .unwrap_or_default()
    };
    let diffs: Vec<(String, String, String)> = managed_configs(spec)
        .into_iter()
        .filter(|(key, wanted)| value_of(key) != *wanted)
        .map(|(key, wanted)| (key.to_owned(), value_of(key), wanted))
        .collect();
    if diffs.is_empty() {
        return Ok(TopicChange::Unchanged);
    }
    // AlterConfigs replaces the topic's whole dynamic config: carry over the operator's own
    // settings, then apply ours.
    let mut alter = AlterConfig::new(resource);
    let operator_settings: Vec<(String, String)> = current
        .entries
        .iter()
        .filter(|e| matches!(e.source, ConfigSource::DynamicTopic) && !e.is_sensitive)
        .filter_map(|e| e.value.clone().map(|v| (e.name.clone(), v)))
        .collect();
    for (key, value) in &operator_settings {
        alter = alter.set(key, value);
    }
    for (key, _, wanted) in &diffs {
        alter = alter.set(key, wanted);
    }
    let results = admin
        .alter_configs([&alter], options)
        .await
        .map_err(failed(format!("altering topic {}", spec.name)))?;
    if let Some(Err((_, code))) = results.into_iter().next() {
        return Err(TopicsError {
            action: format!("altering topic {}", spec.name),
            source: KafkaError::AdminOp(code),
        });
    }
    Ok(TopicChange::Reconfigured(diffs))
}
