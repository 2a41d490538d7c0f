//! One run-level pipeline status per Dagster run, folded from the run's events.

use std::collections::{BTreeMap, BTreeSet};

use lineage_schemas::records::{
    AddPipelineStatus, DagsterEvent, DagsterEventType, ExecutionStatus, OpenMetadataOperation,
    Operation, Origin, TaskStatus,
};

use super::pipeline::{pipeline_fqn, pipeline_name};
use crate::insert_new;
use crate::output::OutputSettings;

/// The status of one Dagster run and of each of its steps, as OpenMetadata stores it: ONE
/// pipeline status per run (unlike OpenMetadata's connector, which writes one row per step
/// keyed by a truncated step start time). The status is keyed by the run's anchor time, which
/// never changes, so each update of the run overwrites the same row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStatus {
    tenant: String,
    run_id: String,
    job_name: String,
    code_location: Option<String>,
    anchor_ms: i64,
    status: ExecutionStatus,
    ended_ms: Option<i64>,
    tasks: BTreeMap<String, TaskState>,
    /// Steps named by other events of the run (an asset planned in a step) that may never
    /// start; at the run's end they become `Skipped` tasks.
    planned: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TaskState {
    status: ExecutionStatus,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
}

impl RunStatus {
    /// A run seen for the first time; `anchor_ms` is the time of its first event (the same
    /// anchor as [`crate::output::RunContext::started_ms`]).
    pub fn new(
        tenant: &str,
        run_id: &str,
        job_name: &str,
        code_location: Option<&str>,
        anchor_ms: i64,
    ) -> Self {
        Self {
            tenant: tenant.to_owned(),
            run_id: run_id.to_owned(),
            job_name: job_name.to_owned(),
            code_location: code_location.map(str::to_owned),
            anchor_ms,
            status: ExecutionStatus::Pending,
            ended_ms: None,
            tasks: BTreeMap::new(),
            planned: BTreeSet::new(),
        }
    }

    /// Folds one event of the run in; true when the status changed. Events of other runs and
    /// other kinds change nothing.
    pub fn apply(&mut self, event: &DagsterEvent) -> bool {
        if event.run_id.as_deref() != Some(self.run_id.as_str()) {
            return false;
        }
        let at = event.timestamp_ms;
        use DagsterEventType as T;
        match event.event_type {
            T::RunSuccess => self.finish(ExecutionStatus::Successful, at),
            T::RunFailure | T::RunCanceled => self.finish(ExecutionStatus::Failed, at),
            T::StepStart | T::StepRestarted | T::StepUpForRetry => {
                self.step(event, ExecutionStatus::Pending, at, false)
            }
            T::StepSuccess => self.step(event, ExecutionStatus::Successful, at, true),
            T::StepFailure => self.step(event, ExecutionStatus::Failed, at, true),
            T::StepSkipped => self.step(event, ExecutionStatus::Skipped, at, true),
            _ => {
                if let Some(step) = event.step_key.as_deref().filter(|s| !s.is_empty()) {
                    insert_new(&mut self.planned, step);
                }
                false
            }
        }
    }

    /// Sets the run's code location (part of the pipeline name) when it is first known: run
    /// tags may arrive after the run's first event.
    pub fn set_code_location(&mut self, code_location: Option<&str>) {
        if self.code_location.is_none() {
            self.code_location = code_location.map(str::to_owned);
        }
    }

    /// Whether the run has ended.
    pub fn is_finished(&self) -> bool {
        self.ended_ms.is_some()
    }

    fn finish(&mut self, status: ExecutionStatus, at: i64) -> bool {
        let before = (self.status, self.ended_ms);
        self.status = status;
        self.ended_ms = Some(at);
        // a step still running when its run ended never ends by itself (its OpenLineage run
        // gets an ABORT)
        for task in self.tasks.values_mut() {
            if task.status == ExecutionStatus::Pending {
                task.status = ExecutionStatus::Failed;
                task.end_ms = Some(at);
            }
        }
        // a step that was planned and never started did not run, whatever the run's outcome
        for step in &self.planned {
            self.tasks.entry(step.clone()).or_insert(TaskState {
                status: ExecutionStatus::Skipped,
                start_ms: None,
                end_ms: Some(at),
            });
        }
        before != (self.status, self.ended_ms)
    }

    fn step(&mut self, event: &DagsterEvent, status: ExecutionStatus, at: i64, ends: bool) -> bool {
        let Some(step) = event.step_key.as_deref().filter(|s| !s.is_empty()) else {
            return false;
        };
        let task = self.tasks.entry(step.to_owned()).or_insert(TaskState {
            status,
            start_ms: None,
            end_ms: None,
        });
        let before = task.clone();
        task.status = status;
        if ends {
            task.end_ms = Some(at);
        } else {
            task.end_ms = None;
            // the first attempt's start stays the task's start
            task.start_ms.get_or_insert(at);
        }
        *task != before
    }

    /// The pipeline status operation of the run as it stands.
    pub fn operation(&self, origin: &Origin, settings: &OutputSettings) -> OpenMetadataOperation {
        let pipeline = pipeline_name(&self.job_name, self.code_location.as_deref());
        let tasks = self
            .tasks
            .iter()
            .map(|(name, task)| TaskStatus {
                name: name.clone(),
                status: task.status,
                start_time_ms: task.start_ms,
                end_time_ms: task.end_ms,
                log_link: settings.dagster_url.as_deref().map(|base| {
                    format!(
                        "{}/runs/{}?logs=step:{name}",
                        base.trim_end_matches('/'),
                        self.run_id
                    )
                }),
            })
            .collect();
        OpenMetadataOperation {
            tenant: self.tenant.clone(),
            origin: origin.clone(),
            operation: Operation::AddPipelineStatus(AddPipelineStatus {
                pipeline_fqn: pipeline_fqn(&self.tenant, &pipeline),
                execution_id: self.run_id.clone(),
                status: self.status,
                timestamp_ms: self.anchor_ms,
                end_time_ms: self.ended_ms,
                tasks,
            }),
        }
    }
}
