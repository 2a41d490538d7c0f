//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Dagster runs and assets into OpenMetadata and OpenLineage backends, over Apache Kafka.
#[derive(Debug, Parser)]
#[command(name = "lineage-bus", version, about)]
pub struct Cli {
    /// TOML configuration file; environment variables LINEAGE_BUS__<SECTION>__<KEY> override it.
    #[arg(long, short, global = true, env = "LINEAGE_BUS_CONFIG")]
    pub config: Option<PathBuf>,

    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The roles and tools.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Schema Registry (Confluent API, Avro) persisted in a compacted Kafka topic.
    Registry,
    /// Topic catalog.
    Topics {
        /// What to do with the catalog.
        #[command(subcommand)]
        action: TopicsAction,
    },
    /// Producers: publish a source into Kafka.
    Produce {
        /// Which source.
        #[command(subcommand)]
        source: ProduceSource,
    },
    /// Dagster's external-asset REST API (`/report_asset_materialization/` ...) into
    /// `dagster.events`.
    Ingest,
    /// The lineage processor: resolve asset keys and build OpenLineage and OpenMetadata output.
    Process,
    /// Sinks: deliver lineage to a backend.
    Sink {
        /// Which backend.
        #[command(subcommand)]
        destination: SinkDestination,
    },
    /// Explain from the current state why something has (or lacks) lineage.
    Explain {
        /// What to explain.
        #[command(subcommand)]
        subject: ExplainSubject,
    },
    /// Every role in one process (the local default).
    Up,
    /// Print the effective configuration (secrets masked) and exit.
    CheckConfig,
}

/// `topics` subcommands.
#[derive(Debug, Subcommand)]
pub enum TopicsAction {
    /// Create missing topics and reconcile their configs (idempotent).
    Apply,
    /// Print the topic catalog.
    List,
}

/// `produce` subcommands.
#[derive(Debug, Subcommand)]
pub enum ProduceSource {
    /// Dagster events and the asset graph.
    Dagster,
    /// OpenMetadata table snapshots.
    Openmetadata,
}

/// `sink` subcommands.
#[derive(Debug, Subcommand)]
pub enum SinkDestination {
    /// OpenLineage HTTP backends (Marquez, DataHub, OpenMetadata) and files.
    Openlineage(SinkArgs),
    /// The OpenMetadata REST API.
    Openmetadata(SinkArgs),
}

/// Options of a sink run; with `--from` it is a replay.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SinkArgs {
    /// Consumer group, instead of the configured one. A replay needs a new or idle group.
    #[arg(long)]
    pub group: Option<String>,
    /// Replay: set the group's offsets first to `earliest`, an RFC 3339 time
    /// (2024-05-01T00:00:00Z) or `partition:offset,...`, then deliver from there (and keep
    /// running live afterwards).
    #[arg(long, value_name = "earliest|TIME|P:O,...")]
    pub from: Option<lineage_sinks::StartFrom>,
    /// With --from: stop once every record the topic held at the start is delivered.
    #[arg(long, requires = "from")]
    pub until_caught_up: bool,
}

/// `explain` subcommands.
#[derive(Debug, Subcommand)]
pub enum ExplainSubject {
    /// How an asset key resolves to an OpenMetadata table, and which edges wait.
    Asset {
        /// The asset key, its parts joined by `/` (e.g. `warehouse_db/raw/orders`).
        key: String,
        /// The Dagster deployment; default `[tenant] id`.
        #[arg(long)]
        tenant: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}
