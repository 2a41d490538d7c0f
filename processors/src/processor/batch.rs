//! One transaction's worth of work: table and asset updates that arrived since the last batch,
//! then each Dagster event, turned into OpenLineage events and OpenMetadata operations.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use lineage_bus_core::exactly_once::{BatchProcessor, Output};
use lineage_schemas::RecordCodec;
use lineage_schemas::records::{
    DagsterEvent, DagsterEventType, DeadLetter, DeadLetterKind, OpenMetadataOperation, Operation,
    Origin,
};
use rdkafka::message::{Message, OwnedMessage};
use tokio::sync::mpsc;

use super::config::ProcessTopics;
use super::metrics;
use super::state::LineageState;
use super::updates::StateUpdate;
use crate::output::OutputSettings;
use crate::output::openlineage::{Event, events_for, unmaterialized_asset};
use crate::output::openmetadata::{
    JobSpec, lineage_for_materialization, pipeline_operations, pipeline_service,
};
use crate::state::AssetRef;

/// The codecs of the processor's Avro topics.
pub struct Codecs {
    /// `dagster.events` values.
    pub events: RecordCodec<DagsterEvent>,
    /// `lineage.openmetadata` values.
    pub operations: RecordCodec<OpenMetadataOperation>,
    /// `lineage.deadletter` values.
    pub dead_letters: RecordCodec<DeadLetter>,
}

/// The processor: state, settings, and the channel of table and asset updates.
pub struct LineageProcessor {
    state: LineageState,
    settings: OutputSettings,
    topics: ProcessTopics,
    codecs: Arc<Codecs>,
    updates: mpsc::Receiver<StateUpdate>,
}

/// A batch that could not be turned into output.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// An output record could not be encoded.
    #[error("encoding an output record: {0}")]
    Encode(#[from] lineage_schemas::CodecError),
}

impl LineageProcessor {
    /// A processor over `state` (already bootstrapped).
    pub fn new(
        state: LineageState,
        settings: OutputSettings,
        topics: ProcessTopics,
        codecs: Arc<Codecs>,
        updates: mpsc::Receiver<StateUpdate>,
    ) -> Self {
        Self {
            state,
            settings,
            topics,
            codecs,
            updates,
        }
    }

    /// Folds `event` into the state without keeping its output: rebuilds the state of
    /// history already processed (its output is in the output topics).
    pub fn replay(&mut self, event: &DagsterEvent, origin: &Origin) -> Result<(), BatchError> {
        let mut discarded = Vec::new();
        self.handle_event(event, origin, &mut discarded)
    }

    /// Applies one table or asset update and emits the lineage it unblocks.
    pub fn apply_update(
        &mut self,
        update: StateUpdate,
        out: &mut Vec<Output>,
    ) -> Result<(), BatchError> {
        let changed = self.state.apply(update);
        self.emit_unblocked(&changed, out)
    }

    fn handle_event(
        &mut self,
        event: &DagsterEvent,
        origin: &Origin,
        out: &mut Vec<Output>,
    ) -> Result<(), BatchError> {
        use DagsterEventType as T;
        let run_id = event.run_id.clone().filter(|id| !id.is_empty());
        let mut status_changed = false;
        if let Some(run_id) = &run_id {
            let run = self.state.run_mut(event, run_id);
            if let Some(step) = &event.step_key {
                run.steps.insert(step.clone());
            }
            match (event.event_type, &event.asset_key) {
                (T::AssetMaterializationPlanned, Some(key)) => {
                    run.planned.insert((key.clone(), event.partition.clone()));
                }
                (T::AssetMaterialization, Some(key)) => {
                    run.materialized.insert(key.clone());
                }
                _ => {}
            }
            status_changed = run.status.apply(event);
        }
        if event.event_type == T::AssetMaterialization {
            let changed = self.state.materialized(event);
            self.emit_unblocked(&changed, out)?;
        }

        for lineage_event in events_for(event, &self.state, &self.settings) {
            out.push(self.openlineage(&lineage_event));
        }
        if event.event_type == T::AssetMaterialization {
            self.emit_lineage(event, origin, out)?;
        }
        let Some(run_id) = run_id else {
            return Ok(());
        };
        let run_ended = matches!(
            event.event_type,
            T::RunSuccess | T::RunFailure | T::RunCanceled
        );
        if run_ended {
            self.emit_run_end(event, &run_id, origin, out)?;
        } else if status_changed
            && event.event_type == T::RunStart
            && let Some(run) = self.state.run_mut_existing(&event.tenant, &run_id)
        {
            let op = run.status.operation(origin, &self.settings);
            out.push(self.operation(&op)?);
        }
        Ok(())
    }

    /// At the end of a run: FAIL events for assets planned but never materialized, the
    /// pipeline (when it changed) and the run's status with every task.
    fn emit_run_end(
        &mut self,
        event: &DagsterEvent,
        run_id: &str,
        origin: &Origin,
        out: &mut Vec<Output>,
    ) -> Result<(), BatchError> {
        if event.event_type != DagsterEventType::RunSuccess {
            let missing: Vec<(Vec<String>, Option<String>)> = self
                .state
                .run_mut_existing(&event.tenant, run_id)
                .map(|run| {
                    run.planned
                        .iter()
                        .filter(|(key, _)| !run.materialized.contains(key))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            for (key, partition) in missing {
                let failed = unmaterialized_asset(
                    event,
                    &key,
                    partition.as_deref(),
                    &self.state,
                    &self.settings,
                );
                out.push(self.openlineage(&failed));
            }
        }
        let Some(run) = self.state.close_run(&event.tenant, run_id) else {
            return Ok(());
        };
        let tenant = event.tenant.as_str();
        if self.state.first_service_of(tenant) {
            let op = pipeline_service(tenant, origin, &self.settings);
            out.push(self.operation(&op)?);
        }
        let steps: Vec<String> = run.steps.iter().cloned().collect();
        let assets = self.state.job_assets(tenant, &run.context.job_name);
        let job = JobSpec {
            tenant,
            job_name: &run.context.job_name,
            code_location: run.context.code_location(),
            run: Some(&run.context),
            assets: &assets,
            steps: &steps,
        };
        let pipeline = pipeline_operations(&job, origin, &self.settings);
        if self
            .state
            .pipeline_changed(tenant, &run.context.job_name, fingerprint(&pipeline))
        {
            for op in &pipeline {
                out.push(self.operation(op)?);
            }
        }
        let status = run.status.operation(origin, &self.settings);
        out.push(self.operation(&status)?);
        Ok(())
    }

    /// The table → table edges of a materialization that are ready and new; the rest waits.
    fn emit_lineage(
        &mut self,
        event: &DagsterEvent,
        origin: &Origin,
        out: &mut Vec<Output>,
    ) -> Result<(), BatchError> {
        let lineage = lineage_for_materialization(event, &self.state, origin);
        for op in &lineage.operations {
            if let Operation::AddLineage(edge) = &op.operation
                && !self
                    .state
                    .first_emission_of_edge(&edge.from_table_fqn, &edge.to_table_fqn)
            {
                continue;
            }
            out.push(self.operation(op)?);
        }
        if !lineage.unresolved.is_empty() {
            self.state.wait_for_tables(event, origin);
        }
        Ok(())
    }

    /// Re-emits the lineage of waiting materializations that `changed` may have unblocked.
    fn emit_unblocked(
        &mut self,
        changed: &[AssetRef],
        out: &mut Vec<Output>,
    ) -> Result<(), BatchError> {
        for waiting in self.state.take_waiting_for(changed) {
            self.emit_lineage(&waiting.event, &waiting.origin, out)?;
        }
        Ok(())
    }

    fn openlineage(&self, event: &Event) -> Output {
        metrics::OUTPUTS.with_label_values(&["openlineage"]).inc();
        Output {
            topic: self.topics.openlineage.clone(),
            key: Some(event.kafka_key().into_bytes()),
            payload: Some(event.to_json()),
        }
    }

    fn operation(&self, op: &OpenMetadataOperation) -> Result<Output, BatchError> {
        metrics::OUTPUTS.with_label_values(&["openmetadata"]).inc();
        Ok(Output {
            topic: self.topics.openmetadata.clone(),
            key: Some(op.kafka_key().into_bytes()),
            payload: Some(self.codecs.operations.encode(op)?),
        })
    }

    fn dead_letter(&self, message: &OwnedMessage, reason: String) -> Result<Output, BatchError> {
        metrics::RECORDS.with_label_values(&["dead_lettered"]).inc();
        let record = DeadLetter {
            component: "processor".into(),
            tenant: None,
            error_kind: DeadLetterKind::MalformedInput,
            reason,
            http_status: None,
            response_body: None,
            source_topic: Some(message.topic().to_owned()),
            source_partition: Some(message.partition()),
            source_offset: Some(message.offset()),
            source_position: None,
            original_key: message.key().map(<[u8]>::to_vec),
            original_value: message.payload().map(<[u8]>::to_vec),
            attempts: 1,
            timestamp_ms: message.timestamp().to_millis().unwrap_or_default(),
        };
        Ok(Output {
            topic: lineage_schemas::catalog::DEAD_LETTER.to_owned(),
            key: message.key().map(<[u8]>::to_vec),
            payload: Some(self.codecs.dead_letters.encode(&record)?),
        })
    }

    /// The codecs.
    pub fn codecs(&self) -> &Codecs {
        &self.codecs
    }

    /// Number of runs open, for the metrics.
    pub fn open_runs(&self) -> usize {
        self.state.open_runs()
    }
}

/// The origin of a consumed record.
pub fn origin_of(message: &OwnedMessage) -> Origin {
    Origin {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
    }
}

fn fingerprint(operations: &[OpenMetadataOperation]) -> u64 {
    let mut hasher = DefaultHasher::new();
    format!(
        "{:?}",
        operations.iter().map(|o| &o.operation).collect::<Vec<_>>()
    )
    .hash(&mut hasher);
    hasher.finish()
}

impl BatchProcessor for LineageProcessor {
    type Error = BatchError;

    async fn process(&mut self, batch: &[OwnedMessage]) -> Result<Vec<Output>, BatchError> {
        let mut out = Vec::new();
        while let Ok(update) = self.updates.try_recv() {
            self.apply_update(update, &mut out)?;
        }
        for message in batch {
            let Some(payload) = message.payload() else {
                out.push(
                    self.dead_letter(message, "a dagster.events record without a value".into())?,
                );
                continue;
            };
            match self.codecs.events.decode(payload).await {
                Ok(event) => {
                    metrics::RECORDS.with_label_values(&["processed"]).inc();
                    self.handle_event(&event, &origin_of(message), &mut out)?;
                }
                Err(e) => {
                    let reason = format!(
                        "{}/{}@{} is not a DagsterEvent: {e}",
                        message.topic(),
                        message.partition(),
                        message.offset()
                    );
                    tracing::warn!(%reason, "dead-lettering an input record");
                    out.push(self.dead_letter(message, reason)?);
                }
            }
        }
        metrics::OPEN_RUNS.set(self.state.open_runs() as i64);
        Ok(out)
    }
}
