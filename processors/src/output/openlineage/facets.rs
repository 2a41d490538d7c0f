//! The facets lineage-bus emits. Each carries `_producer` and `_schemaURL`; the schema URL is the
//! facet file's `$id` (OpenLineage 2-0-2 spec files) plus `#/$defs/<Facet>`, as the official
//! clients write it.

use serde::Serialize;

macro_rules! facet_url {
    ($version:literal, $file:literal) => {
        concat!(
            "https://openlineage.io/spec/facets/",
            $version,
            "/",
            $file,
            ".json#/$defs/",
            $file
        )
    };
}

/// `_schemaURL` of every facet emitted, by facet file name: `(file, url)`.
pub const FACET_SCHEMA_URLS: &[(&str, &str)] = &[
    ("ParentRunFacet", PARENT),
    ("NominalTimeRunFacet", NOMINAL_TIME),
    ("ErrorMessageRunFacet", ERROR_MESSAGE),
    ("ProcessingEngineRunFacet", PROCESSING_ENGINE),
    ("TagsRunFacet", TAGS_RUN),
    ("JobTypeJobFacet", JOB_TYPE),
    ("OwnershipJobFacet", OWNERSHIP_JOB),
    ("TagsJobFacet", TAGS_JOB),
    ("DocumentationJobFacet", DOCUMENTATION_JOB),
    ("SchemaDatasetFacet", SCHEMA),
    ("ColumnLineageDatasetFacet", COLUMN_LINEAGE),
    ("DatasourceDatasetFacet", DATASOURCE),
    ("SymlinksDatasetFacet", SYMLINKS),
    ("OwnershipDatasetFacet", OWNERSHIP_DATASET),
    ("DocumentationDatasetFacet", DOCUMENTATION_DATASET),
    ("TagsDatasetFacet", TAGS_DATASET),
    ("DataQualityAssertionsDatasetFacet", DATA_QUALITY_ASSERTIONS),
    ("OutputStatisticsOutputDatasetFacet", OUTPUT_STATISTICS),
];

const PARENT: &str = facet_url!("1-2-0", "ParentRunFacet");
const NOMINAL_TIME: &str = facet_url!("1-0-1", "NominalTimeRunFacet");
const ERROR_MESSAGE: &str = facet_url!("1-0-1", "ErrorMessageRunFacet");
const PROCESSING_ENGINE: &str = facet_url!("1-1-1", "ProcessingEngineRunFacet");
const TAGS_RUN: &str = facet_url!("1-0-0", "TagsRunFacet");
const JOB_TYPE: &str = facet_url!("2-0-4", "JobTypeJobFacet");
const OWNERSHIP_JOB: &str = facet_url!("1-0-1", "OwnershipJobFacet");
const TAGS_JOB: &str = facet_url!("1-0-0", "TagsJobFacet");
const DOCUMENTATION_JOB: &str = facet_url!("1-1-0", "DocumentationJobFacet");
const SCHEMA: &str = facet_url!("1-2-0", "SchemaDatasetFacet");
const COLUMN_LINEAGE: &str = facet_url!("1-2-0", "ColumnLineageDatasetFacet");
const DATASOURCE: &str = facet_url!("1-0-1", "DatasourceDatasetFacet");
const SYMLINKS: &str = facet_url!("1-0-1", "SymlinksDatasetFacet");
const OWNERSHIP_DATASET: &str = facet_url!("1-0-1", "OwnershipDatasetFacet");
const DOCUMENTATION_DATASET: &str = facet_url!("1-1-0", "DocumentationDatasetFacet");
const TAGS_DATASET: &str = facet_url!("1-0-0", "TagsDatasetFacet");
const DATA_QUALITY_ASSERTIONS: &str = facet_url!("1-1-0", "DataQualityAssertionsDatasetFacet");
const OUTPUT_STATISTICS: &str = facet_url!("1-0-2", "OutputStatisticsOutputDatasetFacet");

/// Where a facet sits; `tags`, `ownership` and `documentation` have one schema per position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// `run.facets`.
    Run,
    /// `job.facets`.
    Job,
    /// `*.facets` of a dataset.
    Dataset,
}

/// Declares a facet: `_producer` and `_schemaURL` first, then the given fields. They are plain
/// fields of the struct, not a flattened base struct: `#[serde(flatten)]` serializes every
/// facet through a map, and the processor measured faster without it (`make bench-process`).
macro_rules! facet {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* pub $field:ident: $type:ty, )*
        }
    ) => {
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        $(#[$meta])*
        pub struct $name {
            /// Producer URI.
            #[serde(rename = "_producer")]
            pub producer: &'static str,
            /// Facet schema URL.
            #[serde(rename = "_schemaURL")]
            pub schema_url: &'static str,
            $( $(#[$field_meta])* pub $field: $type, )*
        }
    };
}

facet! {
    /// `parent` (ParentRunFacet 1-2-0), with `root`.
    pub struct ParentRunFacet {
        /// The parent run.
        pub run: RunRef,
        /// The parent job.
        pub job: JobRef,
        /// The root run and job, when the parent has a parent.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub root: Option<RootRef>,
    }
}

/// A run reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRef {
    /// Run id.
    pub run_id: String,
}

/// A job reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// The root of a parent chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootRef {
    /// Root run.
    pub run: RunRef,
    /// Root job.
    pub job: JobRef,
}

impl ParentRunFacet {
    /// A parent facet; `root` only when the parent is not itself the root.
    pub fn new(producer: &'static str, run_id: String, job: JobRef, root: Option<RootRef>) -> Self {
        Self {
            producer,
            schema_url: PARENT,
            run: RunRef { run_id },
            job,
            root,
        }
    }
}

facet! {
    /// `nominalTime` (NominalTimeRunFacet 1-0-1).
    #[serde(rename_all = "camelCase")]
    pub struct NominalTimeFacet {
        /// Start, RFC 3339.
        pub nominal_start_time: String,
        /// End, RFC 3339.
        pub nominal_end_time: String,
    }
}

impl NominalTimeFacet {
    /// The facet of a nominal window.
    pub fn new(producer: &'static str, start: String, end: String) -> Self {
        Self {
            producer,
            schema_url: NOMINAL_TIME,
            nominal_start_time: start,
            nominal_end_time: end,
        }
    }
}

facet! {
    /// `errorMessage` (ErrorMessageRunFacet 1-0-1).
    #[serde(rename_all = "camelCase")]
    pub struct ErrorMessageFacet {
        /// The message.
        pub message: String,
        /// Always `python` for Dagster.
        pub programming_language: &'static str,
        /// The stack trace.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub stack_trace: Option<String>,
    }
}

impl ErrorMessageFacet {
    /// A Python error.
    pub fn python(producer: &'static str, message: String, stack_trace: Option<String>) -> Self {
        Self {
            producer,
            schema_url: ERROR_MESSAGE,
            message,
            programming_language: "python",
            stack_trace,
        }
    }
}

facet! {
    /// `processing_engine` (ProcessingEngineRunFacet 1-1-1).
    #[serde(rename_all = "camelCase")]
    pub struct ProcessingEngineFacet {
        /// Engine version.
        pub version: String,
        /// Engine name (`Dagster`).
        pub name: &'static str,
        /// lineage-bus's version.
        pub openlineage_adapter_version: &'static str,
    }
}

impl ProcessingEngineFacet {
    /// Dagster at `version`, converted by this lineage-bus.
    pub fn dagster(producer: &'static str, version: &str) -> Self {
        Self {
            producer,
            schema_url: PROCESSING_ENGINE,
            version: version.to_owned(),
            name: "Dagster",
            openlineage_adapter_version: env!("CARGO_PKG_VERSION"),
        }
    }
}

facet! {
    /// `tags` on runs, jobs and datasets (Tags*Facet 1-0-0).
    pub struct TagsFacet {
        /// The tags.
        pub tags: Vec<Tag>,
    }
}

/// One tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tag {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
    /// Where it came from (`DAGSTER`).
    pub source: &'static str,
}

impl TagsFacet {
    /// The tags facet for `position`, `None` when there are no tags.
    pub fn new<'a>(
        producer: &'static str,
        position: Position,
        tags: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<Self> {
        let tags: Vec<Tag> = tags
            .into_iter()
            .map(|(key, value)| Tag {
                key: key.to_owned(),
                value: value.to_owned(),
                source: "DAGSTER",
            })
            .collect();
        if tags.is_empty() {
            return None;
        }
        let url = match position {
            Position::Run => TAGS_RUN,
            Position::Job => TAGS_JOB,
            Position::Dataset => TAGS_DATASET,
        };
        Some(Self {
            producer,
            schema_url: url,
            tags,
        })
    }
}

facet! {
    /// `jobType` (JobTypeJobFacet 2-0-4).
    #[serde(rename_all = "camelCase")]
    pub struct JobTypeFacet {
        /// `BATCH`.
        pub processing_type: &'static str,
        /// `DAGSTER`.
        pub integration: &'static str,
        /// `JOB`, `STEP`, `ASSET` or `ASSET_CHECK`.
        pub job_type: &'static str,
    }
}

impl JobTypeFacet {
    /// A Dagster batch job of `job_type`.
    pub fn dagster(producer: &'static str, job_type: &'static str) -> Self {
        Self {
            producer,
            schema_url: JOB_TYPE,
            processing_type: "BATCH",
            integration: "DAGSTER",
            job_type,
        }
    }
}

facet! {
    /// `ownership` on jobs and datasets (Ownership*Facet 1-0-1).
    pub struct OwnershipFacet {
        /// The owners.
        pub owners: Vec<Owner>,
    }
}

/// One owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    /// `user:<email>` or `team:<name>`.
    pub name: String,
}

impl OwnershipFacet {
    /// Dagster owners (`a@b.c` or `team:x`) as URNs (`user:a@b.c`, `team:x`); `None` when empty.
    pub fn new(producer: &'static str, position: Position, owners: &[String]) -> Option<Self> {
        if owners.is_empty() {
            return None;
        }
        let owners = owners
            .iter()
            .map(|owner| Owner {
                name: if owner.starts_with("team:") || owner.starts_with("user:") {
                    owner.clone()
                } else {
                    format!("user:{owner}")
                },
            })
            .collect();
        let url = if position == Position::Job {
            OWNERSHIP_JOB
        } else {
            OWNERSHIP_DATASET
        };
        Some(Self {
            producer,
            schema_url: url,
            owners,
        })
    }
}

facet! {
    /// `documentation` on jobs and datasets (Documentation*Facet 1-1-0).
    #[serde(rename_all = "camelCase")]
    pub struct DocumentationFacet {
        /// The description.
        pub description: String,
        /// `text/markdown`: Dagster descriptions are Markdown.
        pub content_type: &'static str,
    }
}

impl DocumentationFacet {
    /// `None` for an empty description.
    pub fn new(producer: &'static str, position: Position, description: &str) -> Option<Self> {
        if description.trim().is_empty() {
            return None;
        }
        let url = if position == Position::Job {
            DOCUMENTATION_JOB
        } else {
            DOCUMENTATION_DATASET
        };
        Some(Self {
            producer,
            schema_url: url,
            description: description.to_owned(),
            content_type: "text/markdown",
        })
    }
}

facet! {
    /// `schema` (SchemaDatasetFacet 1-2-0).
    pub struct SchemaFacet {
        /// Columns.
        pub fields: Vec<SchemaField>,
    }
}

/// One column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaField {
    /// Name.
    pub name: String,
    /// Type as Dagster reports it.
    #[serde(rename = "type")]
    pub data_type: String,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl SchemaFacet {
    /// The facet of `fields`.
    pub fn new(producer: &'static str, fields: Vec<SchemaField>) -> Self {
        Self {
            producer,
            schema_url: SCHEMA,
            fields,
        }
    }
}

facet! {
    /// `columnLineage` (ColumnLineageDatasetFacet 1-2-0).
    pub struct ColumnLineageFacet {
        /// Output column → its input fields, in column order of the source metadata.
        pub fields: ColumnLineageFields,
    }
}

/// The `fields` map of [`ColumnLineageFacet`], kept in the order Dagster reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnLineageFields(pub Vec<(String, Vec<InputField>)>);

impl Serialize for ColumnLineageFields {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Entry<'a> {
            input_fields: &'a [InputField],
        }
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (column, input_fields) in &self.0 {
            map.serialize_entry(column, &Entry { input_fields })?;
        }
        map.end()
    }
}

/// An input column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputField {
    /// Dataset namespace.
    pub namespace: String,
    /// Dataset name.
    pub name: String,
    /// Column.
    pub field: String,
}

impl ColumnLineageFacet {
    /// The facet of `fields`.
    pub fn new(producer: &'static str, fields: Vec<(String, Vec<InputField>)>) -> Self {
        Self {
            producer,
            schema_url: COLUMN_LINEAGE,
            fields: ColumnLineageFields(fields),
        }
    }
}

facet! {
    /// `dataSource` (DatasourceDatasetFacet 1-0-1).
    pub struct DatasourceFacet {
        /// Name.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        /// URI.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub uri: Option<String>,
    }
}

impl DatasourceFacet {
    /// The data source at `uri`.
    pub fn new(producer: &'static str, name: Option<String>, uri: Option<String>) -> Self {
        Self {
            producer,
            schema_url: DATASOURCE,
            name,
            uri,
        }
    }
}

facet! {
    /// `symlinks` (SymlinksDatasetFacet 1-0-1).
    pub struct SymlinksFacet {
        /// Other names of the dataset.
        pub identifiers: Vec<Identifier>,
    }
}

/// Another name of a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identifier {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `TABLE`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

impl SymlinksFacet {
    /// The facet of `identifiers`.
    pub fn new(producer: &'static str, identifiers: Vec<Identifier>) -> Self {
        Self {
            producer,
            schema_url: SYMLINKS,
            identifiers,
        }
    }
}

facet! {
    /// `dataQualityAssertions` (DataQualityAssertionsDatasetFacet 1-1-0, an input facet).
    pub struct DataQualityAssertionsFacet {
        /// The assertions.
        pub assertions: Vec<Assertion>,
    }
}

/// One assertion (a Dagster asset check evaluation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assertion {
    /// The check name.
    pub assertion: String,
    /// Whether it passed.
    pub success: bool,
    /// The column it tested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// `error` or `warn`.
    pub severity: &'static str,
}

impl DataQualityAssertionsFacet {
    /// The facet of `assertions`.
    pub fn new(producer: &'static str, assertions: Vec<Assertion>) -> Self {
        Self {
            producer,
            schema_url: DATA_QUALITY_ASSERTIONS,
            assertions,
        }
    }
}

facet! {
    /// `outputStatistics` (OutputStatisticsOutputDatasetFacet 1-0-2).
    #[serde(rename_all = "camelCase")]
    pub struct OutputStatisticsFacet {
        /// Rows written.
        pub row_count: i64,
    }
}

impl OutputStatisticsFacet {
    /// `row_count` rows written.
    pub fn new(producer: &'static str, row_count: i64) -> Self {
        Self {
            producer,
            schema_url: OUTPUT_STATISTICS,
            row_count,
        }
    }
}
