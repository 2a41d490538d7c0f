//! Runs the subcommands: loads the configuration, starts logging, then runs the role(s) with
//! the admin server beside them and an ordered shutdown.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use lineage_bus_core::shutdown::Shutdown;
use lineage_bus_core::telemetry::init_logging;
use lineage_bus_core::topics::{self, TopicChange};
use lineage_bus_core::{Health, admin, config};
use lineage_schemas::RegistryClient;
use lineage_schemas::catalog::{TOPICS, ValueFormat, value_subject};
use secrecy::ExposeSecret;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command, ProduceSource, SinkDestination, TopicsAction};
use crate::config::AppConfig;

/// Exit code of a role that is not built yet.
const NOT_BUILT: u8 = 2;
/// How long topic administration may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the command and returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config: AppConfig = config::load(cli.config.as_deref())?;
    init_logging(config.telemetry.log_format, &config.telemetry.log_level);
    match cli.command {
        Command::CheckConfig => print_config(&config),
        Command::Topics {
            action: TopicsAction::List,
        } => print_catalog(),
        Command::Topics {
            action: TopicsAction::Apply,
        } => apply_topics(&config).await,
        Command::Registry => serve(&config, Roles { registry: true }).await,
        Command::Up => {
            apply_topics(&config).await?;
            warn_missing_roles();
            serve(
                &config,
                Roles {
                    registry: config.up.embedded_registry,
                },
            )
            .await
        }
        Command::Produce {
            source: ProduceSource::Dagster,
        } => Ok(not_built("produce dagster", 5)),
        Command::Produce {
            source: ProduceSource::Openmetadata,
        } => Ok(not_built("produce openmetadata", 3)),
        Command::Ingest => Ok(not_built("ingest", 5)),
        Command::Process => Ok(not_built("process", 6)),
        Command::Sink {
            destination: SinkDestination::Openlineage,
        } => Ok(not_built("sink openlineage", 4)),
        Command::Sink {
            destination: SinkDestination::Openmetadata,
        } => Ok(not_built("sink openmetadata", 4)),
    }
}

/// The roles `lineage-bus` can run today, and the issue that builds each missing one.
const MISSING_ROLES: [(&str, u32); 6] = [
    ("produce dagster", 5),
    ("produce openmetadata", 3),
    ("ingest", 5),
    ("process", 6),
    ("sink openlineage", 4),
    ("sink openmetadata", 4),
];

fn not_built(role: &str, issue: u32) -> ExitCode {
    tracing::error!(
        role,
        issue,
        "this role is not built yet; available now: registry, topics apply|list, up, check-config"
    );
    ExitCode::from(NOT_BUILT)
}

fn warn_missing_roles() {
    for (role, issue) in MISSING_ROLES {
        tracing::warn!(role, issue, "role not built yet; `up` runs without it");
    }
}

#[allow(clippy::print_stdout)] // the command's output
fn print_config(config: &AppConfig) -> anyhow::Result<ExitCode> {
    let text = toml::to_string_pretty(config).context("rendering the configuration")?;
    println!("# effective configuration (defaults < file < LINEAGE_BUS__* environment)");
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)] // the command's output
fn print_catalog() -> anyhow::Result<ExitCode> {
    println!(
        "{:<22} {:>4}  {:<8} {:<10} {:<45} value",
        "topic", "part", "cleanup", "retention", "key"
    );
    for topic in TOPICS {
        let retention = topic
            .retention_ms
            .map(|ms| format!("{}d", ms / 86_400_000))
            .unwrap_or_else(|| "forever".into());
        let value = match topic.value {
            ValueFormat::Avro(file) => format!("Avro {}", file.full_name),
            ValueFormat::Json(kind) => format!("JSON {kind}"),
        };
        println!(
            "{:<22} {:>4}  {:<8} {:<10} {:<45} {value}",
            topic.name,
            topic.partitions,
            topic.cleanup.as_config(),
            retention,
            topic.key
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Creates or reconciles the catalog's topics, then registers each Avro topic's value schema,
/// so an incompatible schema fails the deployment instead of the first producer.
async fn apply_topics(config: &AppConfig) -> anyhow::Result<ExitCode> {
    let changes = topics::apply(&config.kafka, TOPICS, ADMIN_TIMEOUT).await?;
    log_topic_changes(changes);
    let registry = registry_client(config)?;
    for topic in TOPICS {
        if let ValueFormat::Avro(file) = topic.value {
            let subject = value_subject(topic.name);
            let id = registry.register(&subject, file.text).await?;
            tracing::info!(
                subject,
                id,
                schema = file.full_name,
                "value schema registered"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn registry_client(config: &AppConfig) -> anyhow::Result<RegistryClient> {
    let registry = &config.schema_registry;
    let password = registry.password.as_ref().map(|p| p.expose_secret());
    let auth = registry
        .username
        .as_deref()
        .map(|user| (user, password.unwrap_or_default()));
    Ok(RegistryClient::new(&registry.url, registry.timeout, auth)?)
}

fn log_topic_changes(changes: Vec<(&'static str, TopicChange)>) {
    for (topic, change) in changes {
        match change {
            TopicChange::Created {
                partitions,
                replication,
            } => tracing::info!(topic, partitions, replication, "topic created"),
            TopicChange::Reconfigured(diffs) => {
                for (key, old, new) in diffs {
                    tracing::info!(topic, key, old, new, "topic config updated");
                }
            }
            TopicChange::Unchanged => tracing::info!(topic, "topic up to date"),
            TopicChange::PartitionMismatch { actual, catalog } => tracing::warn!(
                topic,
                actual,
                catalog,
                "partition count differs from the catalog; left unchanged (changing it reorders keys)"
            ),
        }
    }
}

/// Which long-running roles to start.
struct Roles {
    registry: bool,
}

/// Runs the roles until a stop signal or the first failure, then shuts down in order: roles
/// drain, flush and commit (within the grace period), the admin server stops last.
async fn serve(config: &AppConfig, roles: Roles) -> anyhow::Result<ExitCode> {
    let health = Health::default();
    let listener = admin::bind(config.admin.listen).await?;
    let admin_stop = CancellationToken::new();
    let admin_task = tokio::spawn(admin::serve(listener, health.clone(), admin_stop.clone()));

    let shutdown = Shutdown::default();
    shutdown.cancel_on_signal();
    if roles.registry {
        let (ready_tx, ready_rx) = watch::channel(false);
        follow_readiness(&health, "registry", ready_rx);
        shutdown.spawn(
            "registry",
            lineage_registry::serve(
                config.registry.clone(),
                config.kafka.client_config("registry"),
                ready_tx,
                shutdown.token(),
            ),
        );
    }
    let result = shutdown.wait(config.shutdown.grace_period).await;
    admin_stop.cancel();
    admin_task.await.context("admin server task")??;
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Mirrors a role's readiness channel into the health endpoint.
fn follow_readiness(health: &Health, name: &str, mut ready: watch::Receiver<bool>) {
    let readiness = health.component(name);
    tokio::spawn(async move {
        while ready.changed().await.is_ok() {
            readiness.set(*ready.borrow());
        }
    });
}
