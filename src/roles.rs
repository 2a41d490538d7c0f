//! Runs the subcommands: loads the configuration, starts logging, then runs the role(s) with
//! the admin server beside them and an ordered shutdown.

use std::future::Future;
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

use crate::cli::{
    Cli, Command, ExplainSubject, ProduceSource, SinkArgs, SinkDestination, TopicsAction,
};
use crate::config::AppConfig;

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
        Command::Registry => {
            serve(
                &config,
                Roles {
                    registry: true,
                    ..Roles::default()
                },
            )
            .await
        }
        Command::Explain {
            subject: ExplainSubject::Asset { key, tenant, json },
        } => explain_asset(&config, &key, tenant, json).await,
        Command::Up => {
            apply_topics(&config).await?;
            serve(
                &config,
                Roles {
                    registry: config.up.embedded_registry,
                    process: true,
                    ingest: true,
                    dagster: config.producers.dagster.is_configured(),
                    openmetadata: config.producers.openmetadata.jwt_token.is_some(),
                    openlineage: openlineage_configured(&config).then(SinkArgs::default),
                    openmetadata_sink: config
                        .sinks
                        .openmetadata
                        .jwt_token
                        .is_some()
                        .then(SinkArgs::default),
                },
            )
            .await
        }
        Command::Produce {
            source: ProduceSource::Dagster,
        } => {
            serve(
                &config,
                Roles {
                    dagster: true,
                    ..Roles::default()
                },
            )
            .await
        }
        Command::Produce {
            source: ProduceSource::Openmetadata,
        } => {
            serve(
                &config,
                Roles {
                    openmetadata: true,
                    ..Roles::default()
                },
            )
            .await
        }
        Command::Ingest => {
            serve(
                &config,
                Roles {
                    ingest: true,
                    ..Roles::default()
                },
            )
            .await
        }
        Command::Process => {
            serve(
                &config,
                Roles {
                    process: true,
                    ..Roles::default()
                },
            )
            .await
        }
        Command::Sink {
            destination: SinkDestination::Openlineage(args),
        } => {
            serve(
                &config,
                Roles {
                    openlineage: Some(args),
                    ..Roles::default()
                },
            )
            .await
        }
        Command::Sink {
            destination: SinkDestination::Openmetadata(args),
        } => {
            serve(
                &config,
                Roles {
                    openmetadata_sink: Some(args),
                    ..Roles::default()
                },
            )
            .await
        }
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

/// Prints how an asset resolves (`explain asset`).
#[allow(clippy::print_stdout)] // the command's output
async fn explain_asset(
    config: &AppConfig,
    key: &str,
    tenant: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let tenant = tenant.unwrap_or_else(|| config.tenant.id.clone());
    let asset = lineage_processors::state::AssetRef::new(tenant, key.split('/'));
    let explanation = lineage_processors::processor::explain(
        &config.process,
        &config.kafka,
        &registry_client(config)?,
        &asset,
    )
    .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&explanation)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("asset      {}/{}", asset.tenant, asset.key.join("/"));
    println!(
        "defined    {} (jobs: {})",
        if explanation.defined { "yes" } else { "no" },
        explanation.job_names.join(", ")
    );
    println!(
        "resolution {}",
        serde_json::to_string(&explanation.resolution)?
    );
    for edge in &explanation.edges {
        let state = if edge.ready { "emitted" } else { "waiting" };
        println!(
            "edge       {} [{state}]",
            serde_json::to_string(&edge.edge)?
        );
    }
    for finding in &explanation.findings {
        println!("finding    {}", serde_json::to_string(finding)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// Which long-running roles to start.
#[derive(Default)]
struct Roles {
    process: bool,
    registry: bool,
    dagster: bool,
    openmetadata: bool,
    /// `ingest`: Dagster's external-asset REST API.
    ingest: bool,
    /// `sink openlineage` with these options.
    openlineage: Option<SinkArgs>,
    /// `sink openmetadata` with these options.
    openmetadata_sink: Option<SinkArgs>,
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
        shutdown.spawn(
            "registry",
            lineage_registry::serve(
                config.registry.clone(),
                config.kafka.client_config("registry"),
                readiness_of(&health, "registry"),
                shutdown.token(),
            ),
        );
    }
    if roles.process {
        let readiness = health.component("process");
        shutdown.spawn(
            "process",
            lineage_processors::processor::run(
                config.process.clone(),
                config.kafka.clone(),
                registry_client(config)?,
                readiness,
                shutdown.token(),
            ),
        );
    }
    if roles.dagster {
        shutdown.spawn(
            "produce-dagster",
            lineage_producers::dagster::run(
                config.producers.dagster.clone(),
                config.tenant.id.clone(),
                config.kafka.clone(),
                registry_client(config)?,
                readiness_of(&health, "produce-dagster"),
                shutdown.token(),
            ),
        );
    }
    if roles.openmetadata {
        shutdown.spawn(
            "produce-openmetadata",
            lineage_producers::openmetadata::run(
                config.producers.openmetadata.clone(),
                config.kafka.clone(),
                registry_client(config)?,
                config.tenant.id.clone(),
                readiness_of(&health, "produce-openmetadata"),
                shutdown.token(),
            ),
        );
    }
    if roles.ingest {
        shutdown.spawn(
            "ingest",
            lineage_producers::ingest::run(
                config.ingest.clone(),
                config.tenant.id.clone(),
                config.kafka.clone(),
                registry_client(config)?,
                readiness_of(&health, "ingest"),
                shutdown.token(),
            ),
        );
    }
    if let Some(args) = roles.openlineage {
        let mut sink = config.sinks.openlineage.clone();
        sink.group = args.group.clone().or(sink.group);
        spawn_sink(
            "sink-openlineage",
            config,
            &args,
            &health,
            &shutdown,
            |kafka, registry, replay, ready, stop| async move {
                lineage_sinks::openlineage::run(&kafka, registry, &sink, replay, ready, stop).await
            },
        )?;
    }
    if let Some(args) = roles.openmetadata_sink {
        let mut sink = config.sinks.openmetadata.clone();
        sink.group = args.group.clone().or(sink.group);
        spawn_sink(
            "sink-openmetadata",
            config,
            &args,
            &health,
            &shutdown,
            |kafka, registry, replay, ready, stop| async move {
                lineage_sinks::openmetadata::run(&kafka, registry, &sink, replay, ready, stop).await
            },
        )?;
    }
    let result = shutdown.wait(config.shutdown.grace_period).await;
    admin_stop.cancel();
    admin_task.await.context("admin server task")??;
    result?;
    Ok(ExitCode::SUCCESS)
}

/// A role's readiness channel, mirrored into the health endpoint as `name`.
fn readiness_of(health: &Health, name: &str) -> watch::Sender<bool> {
    let (sender, mut ready) = watch::channel(false);
    let readiness = health.component(name);
    tokio::spawn(async move {
        while ready.changed().await.is_ok() {
            readiness.set(*ready.borrow());
        }
    });
    sender
}

/// Whether `[sinks.openlineage]` has somewhere to deliver (a file, or a URL in the config or
/// `OPENLINEAGE_URL`), so that `up` runs it.
fn openlineage_configured(config: &AppConfig) -> bool {
    let sink = &config.sinks.openlineage;
    sink.destination == lineage_sinks::config::DestinationKind::File
        || sink
            .effective_url(|name| std::env::var(name).ok())
            .is_some()
}

/// The replay `args` ask for (`--from`), if any.
fn replay(args: &SinkArgs) -> Option<lineage_sinks::Replay> {
    args.from.clone().map(|from| lineage_sinks::Replay {
        from,
        until_caught_up: args.until_caught_up,
        terminal: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    })
}

/// Starts a sink role (`sink-openlineage`, `sink-openmetadata`) under `shutdown`: `run` gets
/// the Kafka settings, a registry client, the replay `args` ask for, the readiness sender and
/// the stop token; its readiness is in the health endpoint as `name`, its summary in the log
/// when it stops.
fn spawn_sink<F, Fut>(
    name: &'static str,
    config: &AppConfig,
    args: &SinkArgs,
    health: &Health,
    shutdown: &Shutdown,
    run: F,
) -> anyhow::Result<()>
where
    F: FnOnce(
        lineage_bus_core::KafkaConfig,
        RegistryClient,
        Option<lineage_sinks::Replay>,
        watch::Sender<bool>,
        CancellationToken,
    ) -> Fut,
    Fut: Future<Output = Result<lineage_sinks::RunSummary, lineage_sinks::SinkError>>
        + Send
        + 'static,
{
    let task = run(
        config.kafka.clone(),
        registry_client(config)?,
        replay(args),
        readiness_of(health, name),
        shutdown.token(),
    );
    shutdown.spawn(name, async move {
        task.await.map(|summary| {
            tracing::info!(
                sink = name,
                delivered = summary.delivered,
                dead_lettered = summary.dead_lettered,
                skipped = summary.skipped,
                "sink finished"
            );
        })
    });
    Ok(())
}
