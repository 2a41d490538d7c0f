//! Sinks: deliver `lineage.openlineage` to OpenLineage backends and `lineage.openmetadata` to
//! the OpenMetadata API, each destination its own consumer group,
//! ordered per key, concurrent across keys, retrying transient failures, dead-lettering
//! permanent ones, and committing offsets only after the backend acknowledged.

pub mod config;
pub mod delivery;
pub mod error;
pub mod http;
pub mod metrics;
pub mod openlineage;
pub mod openmetadata;

pub use config::{OpenLineageSinkConfig, OpenMetadataSinkConfig, SinksConfig};
pub use delivery::engine::{Replay, RunSummary};
pub use delivery::start::StartFrom;
pub use error::SinkError;
