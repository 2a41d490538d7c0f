//! Rust types of the Avro records. Field names and order follow the `.avsc` files in
//! `schemas/avro/`, which are the source of truth; `tests` round-trips every type through them.

mod cursor;
mod dagster;
mod dead_letter;
mod metadata;
mod openmetadata;
mod resolution;

pub use cursor::SourceCursor;
pub use dagster::{
    AssetCheck, AssetDefinition, CheckSeverity, DagsterEvent, DagsterEventType, ErrorInfo,
    SourceKind, SourcePosition,
};
pub use dead_letter::{DeadLetter, DeadLetterKind};
pub use metadata::{
    ColumnDeps, ColumnLineage, ColumnRef, MetadataEntry, MetadataKind, TableColumn, TableSchema,
};
pub use openmetadata::{
    AddLineage, AddPipelineStatus, Column, ColumnLineageEdge, ExecutionStatus,
    OpenMetadataOperation, Operation, Origin, PipelineTask, TableSnapshot, TaskStatus,
    UpsertClassification, UpsertPipeline, UpsertPipelineService, UpsertTag, fqn_of, quote_fqn_part,
};
pub use resolution::{ResolutionCandidate, ResolutionLookup, ResolutionReport};
