//! OpenMetadata output: the operations of `lineage.openmetadata`, built from Dagster records.
//!
//! - [`pipeline_service`]: one pipeline service per Dagster deployment (tenant), named after it.
//! - [`pipeline_operations`]: a pipeline per job with a stable name ([`pipeline_name`]: job and
//!   code location, not a hash), its tasks with edges upstream → downstream, Dagster tags (the
//!   classification and tag upserts come first) and owners.
//! - [`RunStatus`]: folds a run's events into ONE run-level pipeline status holding every task
//!   status (ms timestamps; `SKIPPED` → `Skipped`), keyed by the run's anchor time so every
//!   update of a run overwrites the same status row.
//! - [`lineage_operations`]: table → table edges with the pipeline reference and
//!   `columnsLineage` from `dagster/column_lineage`, for every upstream whose table resolved.
//!
//! Every operation carries its tenant and the input record it derives from ([`Origin`]).
//!
//! [`Origin`]: lineage_schemas::records::Origin

mod lineage;
mod pipeline;
mod status;
mod tags;

pub use lineage::{
    LineageOutput, lineage_for_materialization, lineage_operations, lineage_record,
    materialization_lineage, materialization_pipeline, materialization_upstream,
};
pub use pipeline::{JobSpec, pipeline_fqn, pipeline_name, pipeline_operations, pipeline_service};
pub use status::RunStatus;
pub use tags::{tag_fqn, tag_name};

pub use lineage_schemas::records::quote_fqn_part;
