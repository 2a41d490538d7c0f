//! The processor's output side: pure functions from Dagster records (plus what the state has
//! resolved) to OpenLineage events and OpenMetadata operations. No IO, no Kafka: the
//! transactional loop calls these and produces what they return.
//!
//! - [`openlineage::events_for`] turns one [`DagsterEvent`] into the OpenLineage events it
//!   implies (each with its Kafka key as the official OpenLineage Kafka transport computes it).
//! - [`openmetadata`] builds [`OpenMetadataOperation`]s: the pipeline service, pipelines with
//!   their tasks, the run-level pipeline status ([`openmetadata::RunStatus`] folds a run's
//!   events), table → table lineage, tags and owners.
//! - [`Lookup`] is what the builders ask the processor's state: asset definitions, resolved
//!   tables and per-run context.
//!
//! Output is a pure function of its inputs: run ids are derived ([`ids`]), never random, and
//! nothing reads the clock, so reprocessing the same input log gives byte-identical records.
//!
//! [`DagsterEvent`]: lineage_schemas::records::DagsterEvent
//! [`OpenMetadataOperation`]: lineage_schemas::records::OpenMetadataOperation

mod context;
pub mod ids;
mod metadata;
pub mod namespace;
pub mod nominal;
pub mod openlineage;
pub mod openmetadata;
mod time;

pub use context::{
    Lookup, NoLookup, OutputSettings, ResolvedTable, RunContext, asset_job_name, asset_step_key,
};
