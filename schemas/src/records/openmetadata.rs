//! Records of `openmetadata.tables` and `lineage.openmetadata`.

use serde::{Deserialize, Serialize};

/// One OpenMetadata table (topic `openmetadata.tables`, compacted, key = FQN).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSnapshot {
    /// OpenMetadata instance the table came from.
    pub tenant: String,
    /// Fully qualified name `service.database.schema.table`.
    pub fqn: String,
    /// Entity id.
    pub id: String,
    /// Database service name.
    pub service: String,
    /// Database name.
    pub database: String,
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Service type, e.g. `Postgres`.
    pub service_type: Option<String>,
    /// Table type, e.g. `Regular`, `View`.
    pub table_type: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Columns, with nested children.
    pub columns: Vec<Column>,
    /// Tag FQNs.
    pub tags: Vec<String>,
    /// Owner names.
    pub owners: Vec<String>,
    /// Soft-deleted in OpenMetadata.
    pub deleted: bool,
    /// Entity version.
    pub version: f64,
    /// `updatedAt`, ms since the Unix epoch.
    pub updated_at_ms: i64,
}

/// A table column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// OpenMetadata data type, e.g. `VARCHAR`.
    pub data_type: String,
    /// Display form of the type, e.g. `varchar(255)`.
    pub data_type_display: Option<String>,
    /// Column FQN.
    pub fqn: String,
    /// Description.
    pub description: Option<String>,
    /// Nested columns (structs).
    pub children: Vec<Column>,
}

/// One idempotent OpenMetadata write (topic `lineage.openmetadata`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenMetadataOperation {
    /// Dagster deployment the operation derives from.
    pub tenant: String,
    /// The input record it was derived from.
    pub origin: Origin,
    /// What to write.
    pub operation: Operation,
}

/// A Kafka record position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// The write itself. On the wire it is the `Operation` record with one optional field per
/// variant, exactly one of them set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "OperationSlots", try_from = "OperationSlots")]
pub enum Operation {
    /// `PUT /api/v1/services/pipelineServices`.
    UpsertPipelineService(UpsertPipelineService),
    /// `PUT /api/v1/pipelines`.
    UpsertPipeline(UpsertPipeline),
    /// `PUT /api/v1/pipelines/{fqn}/status`.
    AddPipelineStatus(AddPipelineStatus),
    /// `PUT /api/v1/lineage`.
    AddLineage(AddLineage),
    /// `PUT /api/v1/classifications`.
    UpsertClassification(UpsertClassification),
    /// `PUT /api/v1/tags`.
    UpsertTag(UpsertTag),
}

/// The wire form of [`Operation`]; named as the Avro record, which the deserializer checks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename = "Operation")]
struct OperationSlots {
    upsert_pipeline_service: Option<UpsertPipelineService>,
    upsert_pipeline: Option<UpsertPipeline>,
    add_pipeline_status: Option<AddPipelineStatus>,
    add_lineage: Option<AddLineage>,
    upsert_classification: Option<UpsertClassification>,
    upsert_tag: Option<UpsertTag>,
}

impl From<Operation> for OperationSlots {
    fn from(op: Operation) -> Self {
        let mut slots = OperationSlots::default();
        match op {
            Operation::UpsertPipelineService(v) => slots.upsert_pipeline_service = Some(v),
            Operation::UpsertPipeline(v) => slots.upsert_pipeline = Some(v),
            Operation::AddPipelineStatus(v) => slots.add_pipeline_status = Some(v),
            Operation::AddLineage(v) => slots.add_lineage = Some(v),
            Operation::UpsertClassification(v) => slots.upsert_classification = Some(v),
            Operation::UpsertTag(v) => slots.upsert_tag = Some(v),
        }
        slots
    }
}

impl TryFrom<OperationSlots> for Operation {
    type Error = String;

    fn try_from(slots: OperationSlots) -> Result<Self, Self::Error> {
        let OperationSlots {
            upsert_pipeline_service,
            upsert_pipeline,
            add_pipeline_status,
            add_lineage,
            upsert_classification,
            upsert_tag,
        } = slots;
        let set: Vec<Operation> = [
            upsert_pipeline_service.map(Operation::UpsertPipelineService),
            upsert_pipeline.map(Operation::UpsertPipeline),
            add_pipeline_status.map(Operation::AddPipelineStatus),
            add_lineage.map(Operation::AddLineage),
            upsert_classification.map(Operation::UpsertClassification),
            upsert_tag.map(Operation::UpsertTag),
        ]
        .into_iter()
        .flatten()
        .collect();
        match <[Operation; 1]>::try_from(set) {
            Ok([op]) => Ok(op),
            Err(set) => Err(format!(
                "an OpenMetadata operation must set exactly one field, this one sets {}",
                set.len()
            )),
        }
    }
}

impl OpenMetadataOperation {
    /// The Kafka key: the FQN of the entity the operation touches (as OpenMetadata writes it,
    /// parts quoted), so writes to one entity stay in order: a pipeline's upsert and its
    /// statuses share a key.
    pub fn kafka_key(&self) -> String {
        match &self.operation {
            Operation::UpsertPipelineService(s) => quote_fqn_part(&s.name),
            Operation::UpsertPipeline(p) => fqn_of(&[&p.service, &p.name]),
            Operation::AddPipelineStatus(s) => s.pipeline_fqn.clone(),
            Operation::AddLineage(l) => l.to_table_fqn.clone(),
            Operation::UpsertClassification(c) => quote_fqn_part(&c.name),
            Operation::UpsertTag(t) => fqn_of(&[&t.classification, &t.name]),
        }
    }
}

/// Quotes one part of an OpenMetadata FQN as OpenMetadata does: a name containing `.` is
/// wrapped in double quotes.
pub fn quote_fqn_part(name: &str) -> String {
    if name.contains('.') {
        format!("\"{name}\"")
    } else {
        name.to_owned()
    }
}

/// An OpenMetadata FQN from its parts, each quoted with [`quote_fqn_part`].
pub fn fqn_of(parts: &[&str]) -> String {
    let quoted: Vec<String> = parts.iter().map(|part| quote_fqn_part(part)).collect();
    quoted.join(".")
}

/// A pipeline service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpsertPipelineService {
    /// Service name.
    pub name: String,
    /// OpenMetadata service type (`Dagster`).
    pub service_type: String,
    /// Description.
    pub description: Option<String>,
    /// Dagster webserver address.
    pub host_port: Option<String>,
}

/// A pipeline with its tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpsertPipeline {
    /// Pipeline service name.
    pub service: String,
    /// Pipeline name (stable: job name and location).
    pub name: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Link to the job in Dagster.
    pub source_url: Option<String>,
    /// Dagster code location.
    pub location: Option<String>,
    /// Tasks, with edges upstream → downstream.
    pub tasks: Vec<PipelineTask>,
    /// Tag FQNs.
    pub tags: Vec<String>,
    /// Owner names.
    pub owners: Vec<String>,
}

/// A pipeline task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineTask {
    /// Task name.
    pub name: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Task type.
    pub task_type: Option<String>,
    /// Names of the tasks that run after this one.
    pub downstream_tasks: Vec<String>,
    /// Tag FQNs.
    pub tags: Vec<String>,
}

/// OpenMetadata's execution status names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(missing_docs)] // OpenMetadata's names
pub enum ExecutionStatus {
    Successful,
    Failed,
    Pending,
    Skipped,
}

/// A run-level pipeline status holding every task status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddPipelineStatus {
    /// Pipeline FQN.
    pub pipeline_fqn: String,
    /// Dagster run id.
    pub execution_id: String,
    /// Run status.
    pub status: ExecutionStatus,
    /// Run start, ms since the Unix epoch.
    pub timestamp_ms: i64,
    /// Run end, ms since the Unix epoch.
    pub end_time_ms: Option<i64>,
    /// Task statuses.
    pub tasks: Vec<TaskStatus>,
}

/// One task's status in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// Task name.
    pub name: String,
    /// Task status.
    pub status: ExecutionStatus,
    /// Start, ms since the Unix epoch.
    pub start_time_ms: Option<i64>,
    /// End, ms since the Unix epoch.
    pub end_time_ms: Option<i64>,
    /// Link to the task's logs.
    pub log_link: Option<String>,
}

/// A table-to-table lineage edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddLineage {
    /// Upstream table FQN.
    pub from_table_fqn: String,
    /// Downstream table FQN.
    pub to_table_fqn: String,
    /// Pipeline that produced the edge.
    pub pipeline_fqn: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Column-level lineage.
    pub columns: Vec<ColumnLineageEdge>,
}

/// Column lineage within an edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnLineageEdge {
    /// Upstream column FQNs.
    pub from_columns: Vec<String>,
    /// Downstream column FQN.
    pub to_column: String,
}

/// A tag classification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpsertClassification {
    /// Classification name.
    pub name: String,
    /// Description.
    pub description: String,
}

/// A tag within a classification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpsertTag {
    /// Classification name.
    pub classification: String,
    /// Tag name.
    pub name: String,
    /// Description.
    pub description: String,
}
