//! Shared helpers of the integration tests. Tests that need a service read its address from
//! the environment `testbed/env.sh` prints, and fail loudly when it is missing. The basics are
//! in `base.rs` (included by other crates' tests too); what needs a role's crate is here.
#![allow(dead_code, clippy::unwrap_used)] // each test binary uses a subset

mod base;
mod process;

pub use base::*;
#[allow(unused_imports)] // each test binary uses a subset
pub use process::Process;

use std::time::Duration;

/// Decodes a Confluent-framed Avro value without the registry (the writer schema is `T`'s).
pub fn decode<T: lineage_schemas::AvroRecord>(bytes: &[u8]) -> T {
    lineage_schemas::wire::decode_own(lineage_schemas::wire::split(bytes).unwrap().1).unwrap()
}

/// `produce dagster` running in this process.
pub struct DagsterProducer {
    /// Stops it.
    pub stop: tokio_util::sync::CancellationToken,
    /// Its readiness.
    pub ready: tokio::sync::watch::Receiver<bool>,
    /// Its task.
    pub task: tokio::task::JoinHandle<Result<(), lineage_producers::dagster::DagsterProducerError>>,
}

/// Starts `produce dagster` with `config` for `tenant` against the testbed's Kafka and registry.
pub fn start_dagster_producer(
    config: lineage_producers::dagster::DagsterProducerConfig,
    tenant: &str,
) -> DagsterProducer {
    let stop = tokio_util::sync::CancellationToken::new();
    let (ready_tx, ready) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(lineage_producers::dagster::run(
        config,
        tenant.to_owned(),
        kafka(),
        registry(),
        ready_tx,
        stop.clone(),
    ));
    DagsterProducer { stop, ready, task }
}

impl DagsterProducer {
    /// Stops the producer and asserts it stopped in time and without error.
    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the producer stops within 30 s")
            .unwrap()
            .expect("the producer stops without error");
    }
}

/// The topics one `produce dagster` test writes to.
pub struct DagsterTopics {
    /// Events.
    pub events: String,
    /// Source cursors.
    pub cursors: String,
    /// Dead letters.
    pub dead_letters: String,
}

/// Creates unique topics for one `produce dagster` test.
pub async fn dagster_topics(prefix: &str, event_partitions: i32) -> DagsterTopics {
    let topics = DagsterTopics {
        events: unique_topic(&format!("{prefix}.events")),
        cursors: unique_topic(&format!("{prefix}.cursors")),
        dead_letters: unique_topic(&format!("{prefix}.deadletter")),
    };
    create_topic(&topics.events, event_partitions).await;
    create_topic(&topics.cursors, 1).await;
    create_topic(&topics.dead_letters, 1).await;
    topics
}

/// This package's `lineage-bus` binary pointed at the testbed's Kafka and Schema Registry; the
/// caller adds the subcommand and the role's settings.
pub fn lineage_bus() -> std::process::Command {
    process::lineage_bus(service_env)
}

/// `lineage-bus produce dagster` as a process writing to `topics` for `tenant` in batches of
/// `batch_size`; `source` sets the source's keys of `[producers.dagster]` (`("TABLE", ..)`).
pub fn spawn_dagster_role(
    source: &[(&str, &std::ffi::OsStr)],
    topics: &DagsterTopics,
    tenant: &str,
    batch_size: u32,
) -> std::process::Child {
    let mut command = lineage_bus();
    command
        .args(["produce", "dagster"])
        .env("LINEAGE_BUS__TENANT__ID", tenant)
        .env(
            "LINEAGE_BUS__ADMIN__LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env(
            "LINEAGE_BUS__PRODUCERS__DAGSTER__BATCH_SIZE",
            batch_size.to_string(),
        )
        .env("LINEAGE_BUS__PRODUCERS__DAGSTER__POLL_INTERVAL", "50ms")
        .env(
            "LINEAGE_BUS__PRODUCERS__DAGSTER__EVENTS_TOPIC",
            &topics.events,
        )
        .env(
            "LINEAGE_BUS__PRODUCERS__DAGSTER__CURSOR_TOPIC",
            &topics.cursors,
        )
        .env(
            "LINEAGE_BUS__PRODUCERS__DAGSTER__DEAD_LETTER_TOPIC",
            &topics.dead_letters,
        )
        .env("LINEAGE_BUS__TELEMETRY__LOG_LEVEL", "warn")
        .env_remove("DAGSTER_HOME")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    for (key, value) in source {
        command.env(format!("LINEAGE_BUS__PRODUCERS__DAGSTER__{key}"), value);
    }
    command.spawn().unwrap()
}

/// The tags of the testbed Dagster's finished runs (success, failure, canceled: their tags no
/// longer change), by run id, from its run storage (`run_tags`).
pub async fn dagster_finished_run_tags()
-> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
    let (client, connection) =
        tokio_postgres::connect(&service_env("DAGSTER_PG_URL"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut tags = std::collections::BTreeMap::new();
    for run in client
        .query(
            "SELECT run_id FROM runs WHERE status IN ('SUCCESS', 'FAILURE', 'CANCELED')",
            &[],
        )
        .await
        .unwrap()
    {
        tags.insert(run.get::<_, String>(0), std::collections::BTreeMap::new());
    }
    for row in client
        .query("SELECT run_id, key, value FROM run_tags", &[])
        .await
        .unwrap()
    {
        if let Some(run) = tags.get_mut(&row.get::<_, String>(0)) {
            run.insert(row.get(1), row.get(2));
        }
    }
    tags
}
