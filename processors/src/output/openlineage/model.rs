//! The OpenLineage 2-0-2 event model (serialize side), typed: every facet lineage-bus emits is a
//! field, not a map entry. Field names follow the spec's JSON.

use serde::Serialize;

use super::facets::{
    ColumnLineageFacet, DataQualityAssertionsFacet, DatasourceFacet, DocumentationFacet,
    ErrorMessageFacet, JobTypeFacet, NominalTimeFacet, OutputStatisticsFacet, OwnershipFacet,
    ParentRunFacet, ProcessingEngineFacet, SchemaFacet, SymlinksFacet, TagsFacet,
};

/// `schemaURL` of run events: the core schema's `$id` plus `#/$defs/RunEvent`.
pub const CORE_SCHEMA_RUN_EVENT: &str =
    "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
/// `schemaURL` of dataset events.
pub const CORE_SCHEMA_DATASET_EVENT: &str =
    "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/DatasetEvent";
/// `schemaURL` of job events.
pub const CORE_SCHEMA_JOB_EVENT: &str =
    "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent";

/// Initial capacity of an event's JSON: a materialization with schema and column lineage
/// facets takes about 3 KB.
const JSON_CAPACITY: usize = 4096;

/// An OpenLineage event of any kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Event {
    /// A run state transition (boxed: it is the large variant).
    Run(Box<RunEvent>),
    /// Static metadata about a dataset.
    Dataset(DatasetEvent),
    /// Static metadata about a job.
    Job(JobEvent),
}

/// A run's state transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)] // the spec's names
pub enum EventType {
    Start,
    Running,
    Complete,
    Abort,
    Fail,
    Other,
}

/// `RunEvent`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunEvent {
    /// The transition.
    pub event_type: EventType,
    /// RFC 3339 time.
    pub event_time: String,
    /// The run.
    pub run: Run,
    /// The job.
    pub job: Job,
    /// Input datasets.
    pub inputs: Vec<InputDataset>,
    /// Output datasets.
    pub outputs: Vec<OutputDataset>,
    /// Producer URI.
    pub producer: &'static str,
    /// `…/OpenLineage.json#/$defs/RunEvent`.
    #[serde(rename = "schemaURL")]
    pub schema_url: &'static str,
}

/// `DatasetEvent`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetEvent {
    /// RFC 3339 time.
    pub event_time: String,
    /// The dataset.
    pub dataset: Dataset,
    /// Producer URI.
    pub producer: &'static str,
    /// `…/OpenLineage.json#/$defs/DatasetEvent`.
    #[serde(rename = "schemaURL")]
    pub schema_url: &'static str,
}

/// `JobEvent`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobEvent {
    /// RFC 3339 time.
    pub event_time: String,
    /// The job.
    pub job: Job,
    /// Input datasets.
    pub inputs: Vec<InputDataset>,
    /// Output datasets.
    pub outputs: Vec<OutputDataset>,
    /// Producer URI.
    pub producer: &'static str,
    /// `…/OpenLineage.json#/$defs/JobEvent`.
    #[serde(rename = "schemaURL")]
    pub schema_url: &'static str,
}

/// `Run`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// UUID of the run.
    pub run_id: String,
    /// Run facets.
    pub facets: RunFacets,
}

/// The run facets lineage-bus emits.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunFacets {
    /// `parent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRunFacet>,
    /// `nominalTime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nominal_time: Option<NominalTimeFacet>,
    /// `errorMessage`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<ErrorMessageFacet>,
    /// `processing_engine` (the spec's key is snake case).
    #[serde(rename = "processing_engine", skip_serializing_if = "Option::is_none")]
    pub processing_engine: Option<ProcessingEngineFacet>,
    /// `tags`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<TagsFacet>,
}

/// `Job`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Job facets.
    pub facets: JobFacets,
}

/// The job facets lineage-bus emits.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobFacets {
    /// `jobType`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_type: Option<JobTypeFacet>,
    /// `ownership`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ownership: Option<OwnershipFacet>,
    /// `tags`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<TagsFacet>,
    /// `documentation`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documentation: Option<DocumentationFacet>,
}

/// `StaticDataset` (a `DatasetEvent`'s dataset).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dataset {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Dataset facets.
    pub facets: DatasetFacets,
}

/// `InputDataset`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InputDataset {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Dataset facets.
    pub facets: DatasetFacets,
    /// Input facets.
    pub input_facets: InputFacets,
}

/// `OutputDataset`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputDataset {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Dataset facets.
    pub facets: DatasetFacets,
    /// Output facets.
    pub output_facets: OutputFacets,
}

/// The dataset facets lineage-bus emits.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetFacets {
    /// `schema`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaFacet>,
    /// `columnLineage`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column_lineage: Option<ColumnLineageFacet>,
    /// `dataSource`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_source: Option<DatasourceFacet>,
    /// `symlinks`: the resolved OpenMetadata table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symlinks: Option<SymlinksFacet>,
    /// `ownership`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ownership: Option<OwnershipFacet>,
    /// `documentation`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documentation: Option<DocumentationFacet>,
    /// `tags`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<TagsFacet>,
}

/// The input dataset facets lineage-bus emits.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InputFacets {
    /// `dataQualityAssertions`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_quality_assertions: Option<DataQualityAssertionsFacet>,
}

/// The output dataset facets lineage-bus emits.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputFacets {
    /// `outputStatistics`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_statistics: Option<OutputStatisticsFacet>,
}

impl Event {
    /// The Kafka key, as the official OpenLineage Kafka transport computes it:
    /// `run:{namespace}/{name}` of the root parent job (else the parent job, else the job),
    /// `job:{namespace}/{name}`, `dataset:{namespace}/{name}`.
    pub fn kafka_key(&self) -> String {
        match self {
            Event::Dataset(e) => format!("dataset:{}/{}", e.dataset.namespace, e.dataset.name),
            Event::Job(e) => format!("job:{}/{}", e.job.namespace, e.job.name),
            Event::Run(e) => {
                let (namespace, name) = match &e.run.facets.parent {
                    Some(parent) => match &parent.root {
                        Some(root) => (&root.job.namespace, &root.job.name),
                        None => (&parent.job.namespace, &parent.job.name),
                    },
                    None => (&e.job.namespace, &e.job.name),
                };
                format!("run:{namespace}/{name}")
            }
        }
    }

    /// The event as JSON bytes (the record value).
    pub fn to_json(&self) -> Vec<u8> {
        // Most events fit, so the buffer is rarely grown (each growth copies what was written).
        let mut json = Vec::with_capacity(JSON_CAPACITY);
        sonic_rs::to_writer(&mut json, self)
            .expect("invariant: the OpenLineage model has only string map keys and derived impls");
        json
    }
}
