//! Dagster event → OpenLineage events.

use std::borrow::Cow;

use lineage_schemas::records::{
    AssetDefinition, CheckSeverity, DagsterEvent, DagsterEventType, ErrorInfo, MetadataEntry,
};
use uuid::Uuid;

use super::facets::{
    Assertion, ColumnLineageFacet, DataQualityAssertionsFacet, DatasourceFacet, DocumentationFacet,
    ErrorMessageFacet, Identifier, InputField, JobRef, JobTypeFacet, NominalTimeFacet,
    OutputStatisticsFacet, OwnershipFacet, ParentRunFacet, Position, ProcessingEngineFacet,
    RootRef, RunRef, SchemaFacet, SchemaField, SymlinksFacet, TagsFacet,
};
use super::model::{
    CORE_SCHEMA_JOB_EVENT, CORE_SCHEMA_RUN_EVENT, DatasetEvent, DatasetFacets, Event, EventType,
    InputDataset, InputFacets, Job, JobEvent, JobFacets, OutputDataset, OutputFacets, Run,
    RunEvent, RunFacets,
};
use crate::output::context::{Lookup, OutputSettings, ResolvedTable, RunContext, asset_job_name};
use crate::output::ids;
use crate::output::metadata::{self, upstream_keys};
use crate::output::namespace::TemplateValues;
use crate::output::nominal;
use crate::output::time::rfc3339_ms;

/// The OpenLineage events a Dagster event implies (none for most event types).
///
/// `lookup` gives the asset definitions (deps, owners, description, tags), the resolved tables
/// (the `symlinks` facet) and the run context (tags for `{tag:KEY}`, the code location, the
/// anchor time of the run ids). The caller records a run's [`RunContext`] before it calls this
/// for the run's events; a run event without one uses its own tags and time.
pub fn events_for(
    event: &DagsterEvent,
    lookup: &impl Lookup,
    settings: &OutputSettings,
) -> Vec<Event> {
    let scope = Scope::new(event, lookup, settings);
    use DagsterEventType as T;
    let built = match event.event_type {
        T::RunStart => scope.run_job_event(EventType::Start, None),
        T::RunSuccess => scope.run_job_event(EventType::Complete, None),
        T::RunFailure => scope.run_job_event(EventType::Fail, Some(scope.error_facet())),
        T::RunCanceled => scope.run_job_event(EventType::Abort, None),
        T::StepStart => scope.step_event(EventType::Start, None),
        T::StepSuccess => scope.step_event(EventType::Complete, None),
        T::StepFailure => scope.step_event(EventType::Fail, Some(scope.error_facet())),
        T::StepUpForRetry => scope.step_event(EventType::Other, Some(scope.error_facet())),
        T::AssetMaterializationPlanned => scope.asset_planned(),
        T::AssetMaterialization => scope.asset_materialized(),
        T::AssetFailedToMaterialize => {
            let key = event.asset_key.as_deref();
            key.map(|key| scope.asset_failed(key, scope.error_facet()))
        }
        T::AssetObservation => scope.asset_observed(),
        T::AssetCheckEvaluationPlanned => scope.check_event(EventType::Start),
        T::AssetCheckEvaluation => scope.check_event(EventType::Complete),
        _ => None,
    };
    built.into_iter().collect()
}

/// The `FAIL` of an asset that was planned in a run but not materialized when the run ended
/// (OSS Dagster does not store `ASSET_FAILED_TO_MATERIALIZE`). `run_end` is the run's
/// `RUN_FAILURE` / `RUN_CANCELED` / `RUN_SUCCESS` event; the state tracks the planned assets and
/// the partition they were planned for (part of the asset run's id, as on its `START`).
pub fn unmaterialized_asset(
    run_end: &DagsterEvent,
    asset_key: &[String],
    partition: Option<&str>,
    lookup: &impl Lookup,
    settings: &OutputSettings,
) -> Event {
    let mut scope = Scope::new(run_end, lookup, settings);
    scope.partition = partition;
    let message = match &run_end.error {
        Some(error) => format!(
            "asset planned for the run, run ended before materialization: {}",
            user_error(error).message.trim_end()
        ),
        None => "asset planned for the run, run ended before materialization".to_owned(),
    };
    let facet = ErrorMessageFacet::python(settings.producer, message, None);
    scope.asset_failed(asset_key, facet)
}

/// Why a step's child run is closed by its run's end ([`unfinished_step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepClosure {
    /// The step started (`STEP_START`) and never reported success or failure.
    Unfinished,
    /// The step was planned or skipped but never started.
    NeverStarted,
}

/// The `ABORT` of a step child run still open when its run ended: a step that started and
/// never finished, or one that was planned (an asset planned in it, `STEP_SKIPPED`) and never
/// started. `run_end` is the run's `RUN_SUCCESS` / `RUN_FAILURE` / `RUN_CANCELED`; the
/// `errorMessage` says why (`step did not finish|run: ...` and the run's outcome, with the run's
/// error on a failure). dagster-openlineage leaves such steps open (`RUNNING` in Marquez).
pub fn unfinished_step(
    run_end: &DagsterEvent,
    step_key: &str,
    closure: StepClosure,
    lookup: &impl Lookup,
    settings: &OutputSettings,
) -> Option<Event> {
    let mut scope = Scope::new(run_end, lookup, settings);
    scope.step = Some(step_key);
    let what = match closure {
        StepClosure::Unfinished => "step did not finish",
        StepClosure::NeverStarted => "step did not run",
    };
    let why = match run_end.event_type {
        DagsterEventType::RunSuccess if closure == StepClosure::NeverStarted => {
            "skipped".to_owned()
        }
        DagsterEventType::RunSuccess => "the run ended".to_owned(),
        DagsterEventType::RunCanceled => "the run was canceled".to_owned(),
        _ => match &run_end.error {
            Some(error) => format!("the run failed: {}", user_error(error).message.trim_end()),
            None => "the run failed".to_owned(),
        },
    };
    let facet = ErrorMessageFacet::python(settings.producer, format!("{what}: {why}"), None);
    scope.step_event(EventType::Abort, Some(facet))
}

/// Static metadata of an asset definition: a `JobEvent` for the asset's job (its deps as
/// inputs, the asset as output) and a `DatasetEvent` for its dataset, with owners,
/// description, tags, the definition's column schema and the resolved table. Emit it when a
/// definition changes or its table resolves. Without a run, `{tag:KEY}` reads the definition's
/// tags.
pub fn definition_events(
    asset: &AssetDefinition,
    lookup: &impl Lookup,
    settings: &OutputSettings,
) -> Vec<Event> {
    // the scope is built around an event: a definition stands in as a runless one
    let as_event = DagsterEvent {
        tenant: asset.tenant.clone(),
        source: asset.source.clone(),
        event_type: DagsterEventType::Other,
        raw_event_type: String::new(),
        run_id: None,
        job_name: None,
        step_key: None,
        asset_key: Some(asset.asset_key.clone()),
        partition: None,
        timestamp_ms: asset.updated_ms,
        message: None,
        description: None,
        metadata: Vec::new(),
        tags: asset.tags.clone(),
        check: None,
        error: None,
        raw_json: None,
    };
    let scope = Scope::new(&as_event, lookup, settings);
    let key = asset.asset_key.as_slice();
    let name = asset_job_name(key);
    let inputs = asset
        .deps
        .iter()
        .map(|upstream| scope.input_dataset(upstream, InputFacets::default()))
        .collect();
    let output = scope.output_dataset(key, &name, Some(asset), &[]);
    let dataset = super::model::Dataset {
        namespace: output.namespace.clone(),
        name: output.name.clone(),
        facets: output.facets.clone(),
    };
    let event_time = rfc3339_ms(asset.updated_ms);
    vec![
        Event::Job(JobEvent {
            event_time: event_time.clone(),
            job: scope.job(name, "ASSET", Some(asset)),
            inputs,
            outputs: vec![output],
            producer: settings.producer,
            schema_url: CORE_SCHEMA_JOB_EVENT,
        }),
        Event::Dataset(DatasetEvent {
            event_time,
            dataset,
            producer: settings.producer,
            schema_url: super::model::CORE_SCHEMA_DATASET_EVENT,
        }),
    ]
}

struct Scope<'a, L> {
    event: &'a DagsterEvent,
    lookup: &'a L,
    settings: &'a OutputSettings,
    run: Option<Cow<'a, RunContext>>,
    namespace: String,
    anchor_ms: i64,
    partition: Option<&'a str>,
    step: Option<&'a str>,
}

impl<'a, L: Lookup> Scope<'a, L> {
    fn new(event: &'a DagsterEvent, lookup: &'a L, settings: &'a OutputSettings) -> Self {
        let run_id = event.run_id.as_deref().filter(|id| !id.is_empty());
        let run = run_id
            .and_then(|id| lookup.run(&event.tenant, id))
            .map(Cow::Borrowed)
            .or_else(|| RunContext::from_run_event(event).map(Cow::Owned));
        let asset = event
            .asset_key
            .as_deref()
            .and_then(|key| lookup.asset(&event.tenant, key));
        let tags = run.as_ref().map_or(&event.tags, |run| &run.tags);
        let code_location = run
            .as_ref()
            .and_then(|run| run.code_location())
            .or_else(|| asset.and_then(|a| a.code_location.as_deref()));
        let namespace = settings.namespace_template.resolve(&TemplateValues {
            namespace: &settings.namespace,
            tenant: &event.tenant,
            code_location,
            tags: Some(tags),
        });
        let anchor_ms = run
            .as_ref()
            .map_or(event.timestamp_ms, |run| run.started_ms);
        let partition = event.partition.as_deref();
        Self {
            event,
            lookup,
            settings,
            run,
            namespace,
            anchor_ms,
            partition,
            step: event.step_key.as_deref(),
        }
    }

    fn producer(&self) -> &'static str {
        self.settings.producer
    }

    fn run_id(&self) -> Option<&str> {
        self.event.run_id.as_deref().filter(|id| !id.is_empty())
    }

    fn job_name(&self) -> &str {
        self.run
            .as_ref()
            .map(|run| run.job_name.as_str())
            .filter(|name| !name.is_empty())
            .or(self.event.job_name.as_deref())
            .unwrap_or("")
    }

    fn derive_id(&self, parts: &[&str]) -> String {
        let mut all = Vec::with_capacity(parts.len() + 2);
        all.push(self.event.tenant.as_str());
        all.push(self.run_id().unwrap_or(""));
        all.extend_from_slice(parts);
        let mut text = Uuid::encode_buffer(); // without the formatting machinery: per event
        ids::run_id(self.anchor_ms, &all)
            .hyphenated()
            .encode_lower(&mut text)
            .to_owned()
    }

    fn run_job_ref(&self) -> Option<(String, JobRef)> {
        self.run_id()?;
        Some((
            self.derive_id(&["run"]),
            JobRef {
                namespace: self.namespace.clone(),
                name: self.job_name().to_owned(),
            },
        ))
    }

    fn step_job_ref(&self) -> Option<(String, JobRef)> {
        self.run_id()?;
        let step = self.step.filter(|s| !s.is_empty())?;
        Some((
            self.derive_id(&["step", step]),
            JobRef {
                namespace: self.namespace.clone(),
                name: format!("{}.{step}", self.job_name()),
            },
        ))
    }

    /// The parent facet of a run's direct children.
    fn run_parent(&self) -> Option<ParentRunFacet> {
        let (run_id, job) = self.run_job_ref()?;
        Some(ParentRunFacet::new(self.producer(), run_id, job, None))
    }

    /// The parent facet of what runs inside a step: the step, rooted at the run.
    fn step_parent(&self) -> Option<ParentRunFacet> {
        let Some((step_id, step_job)) = self.step_job_ref() else {
            return self.run_parent();
        };
        let (root_id, root_job) = self.run_job_ref()?;
        let root = RootRef {
            run: RunRef { run_id: root_id },
            job: root_job,
        };
        Some(ParentRunFacet::new(
            self.producer(),
            step_id,
            step_job,
            Some(root),
        ))
    }

    fn run_facets(&self, parent: Option<ParentRunFacet>) -> RunFacets {
        let producer = self.producer();
        let partition = self.partition();
        let nominal_time = partition.and_then(nominal::from_partition).map(|window| {
            NominalTimeFacet::new(
                producer,
                rfc3339_ms(window.start_ms),
                rfc3339_ms(window.end_ms),
            )
        });
        let tags = self.run.as_ref().and_then(|run| {
            TagsFacet::new(
                producer,
                Position::Run,
                run.tags
                    .iter()
                    .filter(|(key, _)| !key.starts_with('.'))
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
        });
        let version = self
            .settings
            .dagster_version
            .as_deref()
            .unwrap_or("unknown");
        RunFacets {
            parent,
            nominal_time,
            error_message: None,
            processing_engine: Some(ProcessingEngineFacet::dagster(producer, version)),
            tags,
        }
    }

    fn job(&self, name: String, job_type: &'static str, asset: Option<&AssetDefinition>) -> Job {
        let producer = self.producer();
        let mut facets = JobFacets {
            job_type: Some(JobTypeFacet::dagster(producer, job_type)),
            ..JobFacets::default()
        };
        if let Some(asset) = asset {
            facets.ownership = OwnershipFacet::new(producer, Position::Job, &asset.owners);
            facets.documentation = asset
                .description
                .as_deref()
                .and_then(|d| DocumentationFacet::new(producer, Position::Job, d));
            facets.tags = TagsFacet::new(producer, Position::Job, definition_tags(asset));
        }
        Job {
            namespace: self.namespace.clone(),
            name,
            facets,
        }
    }

    fn run_event(
        &self,
        event_type: EventType,
        run_id: String,
        facets: RunFacets,
        job: Job,
        inputs: Vec<InputDataset>,
        outputs: Vec<OutputDataset>,
    ) -> Event {
        Event::Run(Box::new(RunEvent {
            event_type,
            event_time: rfc3339_ms(self.event.timestamp_ms),
            run: Run { run_id, facets },
            job,
            inputs,
            outputs,
            producer: self.settings.producer,
            schema_url: CORE_SCHEMA_RUN_EVENT,
        }))
    }

    fn run_job_event(
        &self,
        event_type: EventType,
        error: Option<ErrorMessageFacet>,
    ) -> Option<Event> {
        let (run_id, job_ref) = self.run_job_ref()?;
        let mut facets = self.run_facets(None);
        facets.error_message = error;
        let job = self.job(job_ref.name, "JOB", None);
        Some(self.run_event(event_type, run_id, facets, job, Vec::new(), Vec::new()))
    }

    fn step_event(&self, event_type: EventType, error: Option<ErrorMessageFacet>) -> Option<Event> {
        let (step_id, step_job) = self.step_job_ref()?;
        let mut facets = self.run_facets(self.run_parent());
        facets.error_message = error;
        let job = self.job(step_job.name, "STEP", None);
        Some(self.run_event(event_type, step_id, facets, job, Vec::new(), Vec::new()))
    }

    /// The event's partition, else the run's.
    fn partition(&self) -> Option<&str> {
        self.partition
            .or_else(|| self.run.as_ref().and_then(|run| run.partition()))
    }

    fn asset_run_id(&self, key_name: &str) -> String {
        let partition = self.partition().unwrap_or("");
        if self.run_id().is_some() {
            self.derive_id(&["asset", key_name, partition])
        } else {
            // a runless report is its own run, identified by its time
            let at = self.event.timestamp_ms.to_string();
            self.derive_id(&["asset", key_name, partition, &at])
        }
    }

    fn asset_planned(&self) -> Option<Event> {
        let key = self.event.asset_key.as_deref()?;
        let asset = self.lookup.asset(&self.event.tenant, key);
        let name = asset_job_name(key);
        let output = self.output_dataset(key, &name, asset, &[]);
        let facets = self.run_facets(self.step_parent());
        let job = self.job(name.clone(), "ASSET", asset);
        Some(self.run_event(
            EventType::Start,
            self.asset_run_id(&name),
            facets,
            job,
            Vec::new(),
            vec![output],
        ))
    }

    fn asset_materialized(&self) -> Option<Event> {
        let key = self.event.asset_key.as_deref()?;
        let asset = self.lookup.asset(&self.event.tenant, key);
        let name = asset_job_name(key);
        let inputs = upstream_keys(self.event, asset)
            .iter()
            .map(|upstream| self.input_dataset(upstream, InputFacets::default()))
            .collect();
        let output = self.output_dataset(key, &name, asset, &self.event.metadata);
        let facets = self.run_facets(self.step_parent());
        let job = self.job(name.clone(), "ASSET", asset);
        Some(self.run_event(
            EventType::Complete,
            self.asset_run_id(&name),
            facets,
            job,
            inputs,
            vec![output],
        ))
    }

    fn asset_failed(&self, key: &[String], error: ErrorMessageFacet) -> Event {
        let asset = self.lookup.asset(&self.event.tenant, key);
        let name = asset_job_name(key);
        let output = self.output_dataset(key, &name, asset, &[]);
        let mut facets = self.run_facets(self.step_parent());
        facets.error_message = Some(error);
        let job = self.job(name.clone(), "ASSET", asset);
        self.run_event(
            EventType::Fail,
            self.asset_run_id(&name),
            facets,
            job,
            Vec::new(),
            vec![output],
        )
    }

    fn asset_observed(&self) -> Option<Event> {
        let key = self.event.asset_key.as_deref()?;
        let asset = self.lookup.asset(&self.event.tenant, key);
        let name = asset_job_name(key);
        let facets = self.dataset_facets(key, asset, &self.event.metadata);
        Some(Event::Dataset(DatasetEvent {
            event_time: rfc3339_ms(self.event.timestamp_ms),
            dataset: super::model::Dataset {
                namespace: self.namespace.clone(),
                name,
                facets,
            },
            producer: self.settings.producer,
            schema_url: super::model::CORE_SCHEMA_DATASET_EVENT,
        }))
    }

    fn check_event(&self, event_type: EventType) -> Option<Event> {
        let key = self.event.asset_key.as_deref()?;
        let check = self.event.check.as_ref()?;
        let asset = self.lookup.asset(&self.event.tenant, key);
        let name = asset_job_name(key);
        let input_facets = match (event_type, check.passed) {
            (EventType::Complete, Some(passed)) => {
                let failed_warn_counts =
                    self.settings.strict_assertions && check.severity == CheckSeverity::Warn;
                let assertion = Assertion {
                    assertion: check.name.clone(),
                    success: passed && !failed_warn_counts,
                    column: metadata::text(&self.event.metadata, &["column", "dagster/column"])
                        .map(str::to_owned),
                    severity: match check.severity {
                        CheckSeverity::Error => "error",
                        CheckSeverity::Warn => "warn",
                    },
                };
                InputFacets {
                    data_quality_assertions: Some(DataQualityAssertionsFacet::new(
                        self.producer(),
                        vec![assertion],
                    )),
                }
            }
            _ => InputFacets::default(),
        };
        let input = self.input_dataset(key, input_facets);
        let run_id = self.derive_id(&["check", &name, &check.name]);
        let facets = self.run_facets(self.step_parent());
        let job = self.job(format!("{name}__checks"), "ASSET_CHECK", asset);
        Some(self.run_event(event_type, run_id, facets, job, vec![input], Vec::new()))
    }

    fn input_dataset(&self, key: &[String], input_facets: InputFacets) -> InputDataset {
        let mut facets = DatasetFacets::default();
        if let Some(table) = self.lookup.table(&self.event.tenant, key) {
            facets.symlinks = Some(symlinks(self.producer(), table));
        }
        InputDataset {
            namespace: self.namespace.clone(),
            name: asset_job_name(key),
            facets,
            input_facets,
        }
    }

    fn output_dataset(
        &self,
        key: &[String],
        name: &str,
        asset: Option<&AssetDefinition>,
        event_metadata: &[MetadataEntry],
    ) -> OutputDataset {
        let output_facets = OutputFacets {
            output_statistics: metadata::row_count(event_metadata)
                .map(|rows| OutputStatisticsFacet::new(self.producer(), rows)),
        };
        OutputDataset {
            namespace: self.namespace.clone(),
            name: name.to_owned(),
            facets: self.dataset_facets(key, asset, event_metadata),
            output_facets,
        }
    }

    /// The facets of an asset's dataset: from the event's metadata first, then the definition.
    fn dataset_facets(
        &self,
        key: &[String],
        asset: Option<&AssetDefinition>,
        event_metadata: &[MetadataEntry],
    ) -> DatasetFacets {
        let producer = self.producer();
        let definition_metadata = asset.map_or(&[][..], |a| a.metadata.as_slice());
        let schema = metadata::column_schema(event_metadata)
            .or_else(|| metadata::column_schema(definition_metadata))
            .map(|schema| {
                let fields = schema
                    .columns
                    .iter()
                    .map(|column| SchemaField {
                        name: column.name.clone(),
                        data_type: column.data_type.clone(),
                        description: column.description.clone(),
                    })
                    .collect();
                SchemaFacet::new(producer, fields)
            });
        let column_lineage = metadata::column_lineage(event_metadata)
            .or_else(|| metadata::column_lineage(definition_metadata))
            .map(|lineage| {
                let fields = lineage
                    .columns
                    .iter()
                    .map(|column| {
                        let inputs = column
                            .deps
                            .iter()
                            .map(|dep| InputField {
                                namespace: self.namespace.clone(),
                                name: asset_job_name(&dep.asset_key),
                                field: dep.column.clone(),
                            })
                            .collect();
                        (column.column.clone(), inputs)
                    })
                    .collect();
                ColumnLineageFacet::new(producer, fields)
            });
        let data_source = metadata::data_source_uri(event_metadata)
            .or_else(|| metadata::data_source_uri(definition_metadata))
            .map(|uri| DatasourceFacet::new(producer, None, Some(uri)));
        let mut facets = DatasetFacets {
            schema,
            column_lineage,
            data_source,
            ..DatasetFacets::default()
        };
        if let Some(table) = self.lookup.table(&self.event.tenant, key) {
            facets.symlinks = Some(symlinks(producer, table));
        }
        if let Some(asset) = asset {
            facets.ownership = OwnershipFacet::new(producer, Position::Dataset, &asset.owners);
            facets.documentation = asset
                .description
                .as_deref()
                .and_then(|d| DocumentationFacet::new(producer, Position::Dataset, d));
            facets.tags = TagsFacet::new(producer, Position::Dataset, definition_tags(asset));
        }
        facets
    }

    /// `errorMessage` from the event's error (the user's exception: the first cause), else its
    /// message.
    fn error_facet(&self) -> ErrorMessageFacet {
        match &self.event.error {
            Some(error) => {
                let user = user_error(error);
                let stack = (!user.stack.is_empty()).then(|| {
                    let mut trace = String::from("Traceback (most recent call last):\n");
                    for line in &user.stack {
                        trace.push_str(line);
                    }
                    trace.push_str(&user.message);
                    trace
                });
                ErrorMessageFacet::python(
                    self.producer(),
                    user.message.trim_end().to_owned(),
                    stack,
                )
            }
            None => {
                let message = self
                    .event
                    .message
                    .clone()
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| format!("Dagster {}", self.event.raw_event_type));
                ErrorMessageFacet::python(self.producer(), message, None)
            }
        }
    }
}

/// The user's exception of a Dagster error: its first cause, else the error itself.
fn user_error(error: &ErrorInfo) -> &ErrorInfo {
    error.cause.as_deref().unwrap_or(error)
}

/// An asset definition's tags and kinds (`kind` = each kind), ordered.
fn definition_tags(asset: &AssetDefinition) -> impl Iterator<Item = (&str, &str)> {
    asset
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(asset.kinds.iter().map(|kind| ("kind", kind.as_str())))
}

fn symlinks(producer: &'static str, table: &ResolvedTable) -> SymlinksFacet {
    let mut identifiers = vec![Identifier {
        namespace: table.namespace.clone(),
        name: table.fqn.clone(),
        kind: "TABLE",
    }];
    if table.name != table.fqn {
        identifiers.push(Identifier {
            namespace: table.namespace.clone(),
            name: table.name.clone(),
            kind: "TABLE",
        });
    }
    SymlinksFacet::new(producer, identifiers)
}
