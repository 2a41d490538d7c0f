//! Logs through `tracing` (text for people, JSON for log pipelines) and metrics through the
//! process-wide Prometheus registry, served by [`crate::admin`].
//!
//! Metric names follow `lineage_bus_<component>_<noun>_<unit>[_total]` with bounded labels;
//! components declare them as `LazyLock` statics registered in the default registry.

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global log subscriber. `RUST_LOG`, when set, overrides `level`. Logs go to
/// stderr so that stdout stays free for command output.
pub fn init_logging(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second call (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
