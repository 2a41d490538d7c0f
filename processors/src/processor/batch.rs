//! One transaction's worth of work: table and asset updates that arrived since the last batch,
//! then each Dagster event, turned into OpenLineage events and OpenMetadata operations.

use std::collections::HashMap;
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

use super::ProcessError;
use super::config::ProcessTopics;
use super::metrics;
use super::replay::Replayer;
use super::report::ReportWriter;
use super::state::{HELD_EVENTS_PER_RUN, LineageState};
use super::updates::StateUpdate;
use crate::ingest::{IngestError, IngestValidator};
use crate::insert_new;
use crate::output::openlineage::{
    Event, StepClosure, events_for, unfinished_step, unmaterialized_asset,
};
use crate::output::openmetadata::{
    JobSpec, materialization_lineage, materialization_upstream, pipeline_operations,
    pipeline_service,
};
use crate::output::{Lookup, OutputSettings};
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
    reports: Option<ReportWriter>,
    ingest: Option<IngestValidator>,
    replayer: Option<Replayer>,
    positions: HashMap<i32, i64>,
    /// Materialized assets whose edges the start-up replay found unwritten: emitted by the
    /// first transaction.
    unwritten: Vec<AssetRef>,
}

/// A batch that could not be turned into output.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// An output record could not be encoded.
    #[error("encoding an output record: {0}")]
    Encode(#[from] lineage_schemas::CodecError),
    /// The state of newly assigned partitions could not be rebuilt.
    #[error("rebuilding the state of {topic} partitions {partitions:?}: {reason}")]
    Replay {
        /// The event topic.
        topic: String,
        /// The partitions assigned.
        partitions: Vec<i32>,
        /// What failed.
        reason: String,
    },
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
            reports: None,
            ingest: None,
            replayer: None,
            positions: HashMap::new(),
            unwritten: Vec::new(),
        }
    }

    /// Brings the run state of `partitions` of the event topic (every partition when
    /// `None`) to the group's committed offsets: a partition whose state stops elsewhere
    /// (never built, or processed by another instance since) is forgotten and its history
    /// before the committed offset replayed, without output. Returns how many events were
    /// replayed.
    pub async fn rebuild(
        &mut self,
        replayer: &Replayer,
        partitions: Option<&[i32]>,
    ) -> Result<usize, ProcessError> {
        let mut stale = replayer.committed().await?;
        stale.retain(|partition, committed| {
            partitions.is_none_or(|wanted| wanted.contains(partition))
                && self.positions.get(partition).copied().unwrap_or(0) != *committed
        });
        if stale.is_empty() {
            return Ok(0);
        }
        let rebuilt: Vec<i32> = stale.keys().copied().collect();
        self.state.forget_partitions(&self.topics.events, &rebuilt);
        self.positions.extend(stale.iter().map(|(p, o)| (*p, *o)));
        let replayed = replayer.replay(self, stale).await?;
        tracing::info!(
            partitions = ?rebuilt,
            replayed,
            open_runs = self.state.open_runs(),
            "run state rebuilt"
        );
        Ok(replayed)
    }

    /// After the start-up replay (which takes every edge it finds ready as written): the edges
    /// the last committed transaction cannot have written, because the published resolution
    /// report of one of their two assets does not name the table it resolves to now (a table
    /// that arrived, or changed, while the processor was down) or the downstream asset's
    /// report does not list the edge (a definition that gained a dep meanwhile), are
    /// forgotten, and the first transaction writes them and republishes those reports. Needs
    /// the resolution reports ([`LineageProcessor::with_reports`]); returns how many edges are
    /// to be written.
    pub fn recheck_replayed_edges(&mut self) -> usize {
        let Some(reports) = &self.reports else {
            return 0;
        };
        let mut unwritten = Vec::new();
        let mut assets = Vec::new();
        for asset in self.state.materialized_assets() {
            let Some(materialization) = self.state.materialization(&asset) else {
                continue;
            };
            let Some(target) = self.state.table(&asset.tenant, &asset.key) else {
                continue;
            };
            let target_published = reports.published_table(&asset) == Some(target.fqn.as_str());
            let before = unwritten.len();
            for upstream in materialization_upstream(&materialization.event, &self.state) {
                let Some(source) = self.state.table(&asset.tenant, &upstream) else {
                    continue;
                };
                let source_published =
                    reports.published_table(&asset.sibling(&upstream)) == Some(source.fqn.as_str());
                let edge_published = reports.published_upstream(&asset, &source.fqn);
                if source.fqn != target.fqn
                    && !(target_published && source_published && edge_published)
                {
                    unwritten.push((source.fqn.clone(), target.fqn.clone()));
                }
            }
            if unwritten.len() > before {
                assets.push(asset);
            }
        }
        for (from, to) in &unwritten {
            self.state.forget_edge(from, to);
        }
        if !unwritten.is_empty() {
            tracing::info!(
                edges = unwritten.len(),
                assets = assets.len(),
                "edges whose tables changed while the processor was down are written again"
            );
        }
        self.note_changed(&assets);
        self.unwritten = assets;
        unwritten.len()
    }

    /// Rebuilds the run state of the event-topic partitions assigned to this instance with
    /// `replayer`, and forgets that of the partitions revoked (see
    /// [`BatchProcessor::rebalanced`]).
    pub fn with_replayer(mut self, replayer: Replayer) -> Self {
        self.replayer = Some(replayer);
        self
    }

    /// Also reads `topics.ingest`: OpenLineage events of other producers, validated and
    /// forwarded to `topics.openlineage` with the transport key; invalid ones are
    /// dead-lettered with the reason.
    pub fn with_ingest(mut self) -> Self {
        self.ingest = Some(IngestValidator::new());
        self
    }

    /// The output of one `openlineage.ingest` record: the event forwarded unchanged with its
    /// transport key, or a dead letter saying why it is not a valid OpenLineage event.
    fn ingest(&self, message: &OwnedMessage) -> Result<Output, BatchError> {
        let Some(validator) = &self.ingest else {
            return self.dead_letter(
                message,
                DeadLetterKind::Other,
                "an ingest record reached a processor that does not read ingest".into(),
            );
        };
        let payload = message.payload().unwrap_or_default();
        match validator.check(payload) {
            Ok(key) => {
                metrics::RECORDS.with_label_values(&["forwarded"]).inc();
                metrics::OUTPUTS.with_label_values(&["openlineage"]).inc();
                Ok(Output {
                    topic: self.topics.openlineage.clone(),
                    key: Some(key.into_bytes()),
                    payload: Some(payload.to_vec()),
                })
            }
            Err(e) => {
                let kind = match e {
                    IngestError::Invalid { .. } => DeadLetterKind::SchemaMismatch,
                    _ => DeadLetterKind::MalformedInput,
                };
                let reason = format!(
                    "{}/{}@{}: {e}",
                    message.topic(),
                    message.partition(),
                    message.offset()
                );
                tracing::warn!(%reason, "dead-lettering an ingested OpenLineage event");
                self.dead_letter(message, kind, reason)
            }
        }
    }

    /// Writes resolution reports with `writer` (`lineage.resolution`): each batch ends with
    /// the reports of the assets whose resolution it changed.
    pub fn with_reports(mut self, writer: ReportWriter) -> Self {
        self.reports = Some(writer);
        self
    }

    /// Folds `event` into the state without keeping its output: rebuilds the state of
    /// history already processed (its output is in the output topics).
    pub fn replay(&mut self, event: &DagsterEvent, origin: &Origin) -> Result<(), BatchError> {
        let mut discarded = Vec::new();
        self.handle_event(event, origin, &mut discarded)
    }

    /// Handles one decoded event as a batch does and returns the records it produces (what
    /// the transaction would hold): the golden test drives the processor through this,
    /// without Kafka.
    pub fn handle(
        &mut self,
        event: &DagsterEvent,
        origin: &Origin,
    ) -> Result<Vec<Output>, BatchError> {
        let mut out = Vec::new();
        self.handle_event(event, origin, &mut out)?;
        self.flush_reports(&mut out)?;
        Ok(out)
    }

    /// The resolution reports of the assets whose resolution changed since the last flush
    /// (each batch ends with them; nothing without [`LineageProcessor::with_reports`]).
    pub fn flush_reports(&mut self, out: &mut Vec<Output>) -> Result<(), BatchError> {
        if let Some(reports) = &mut self.reports {
            let before = out.len();
            reports.flush(&self.state, out)?;
            metrics::OUTPUTS
                .with_label_values(&["resolution"])
                .inc_by((out.len() - before) as u64);
        }
        Ok(())
    }

    fn note_changed(&mut self, changed: &[AssetRef]) {
        if let Some(reports) = &mut self.reports {
            reports.note(changed);
        }
    }

    /// Applies one table or asset update and emits the lineage it unblocks.
    pub fn apply_update(
        &mut self,
        update: StateUpdate,
        out: &mut Vec<Output>,
    ) -> Result<(), BatchError> {
        let changed = self.state.apply(update);
        self.note_changed(&changed);
        self.emit_unblocked(&changed, None, out)
    }

    /// Handles one event: an event of a run whose tags have not arrived yet (no run-level
    /// event so far, as for the assets planned before `RUN_ENQUEUED`) is held and output when
    /// the first run-level event brings the tags, so that every event of a run sees the same
    /// run tags (`{tag:KEY}` namespaces, the `tags` facet). Holding depends only on the input
    /// log, so the output stays deterministic.
    fn handle_event(
        &mut self,
        event: &DagsterEvent,
        origin: &Origin,
        out: &mut Vec<Output>,
    ) -> Result<(), BatchError> {
        let Some(run_id) = event.run_id.as_deref().filter(|id| !id.is_empty()) else {
            return self.output_event(event, origin, out);
        };
        if self.state.is_closed(&event.tenant, run_id) {
            return self.output_event(event, origin, out);
        }
        let run = self.state.run_mut(event, run_id);
        run.partition = origin.partition;
        if !run.has_run_event && run.held.len() < HELD_EVENTS_PER_RUN {
            run.held.push((event.clone(), origin.clone()));
            return Ok(());
        }
        let held = std::mem::take(&mut run.held);
        for (held_event, held_origin) in &held {
            self.output_event(held_event, held_origin, out)?;
        }
        self.output_event(event, origin, out)
    }

    fn output_event(
        &mut self,
        event: &DagsterEvent,
        origin: &Origin,
        out: &mut Vec<Output>,
    ) -> Result<(), BatchError> {
        use DagsterEventType as T;
        // an event after its run's end is output with the ended run's context and creates no
        // run state
        let run_id = event
            .run_id
            .as_deref()
            .filter(|id| !id.is_empty() && !self.state.is_closed(&event.tenant, id));
        if let Some(run_id) = run_id {
            let run = self.state.run_mut(event, run_id);
            if let Some(step) = &event.step_key {
                insert_new(&mut run.steps, step);
                match event.event_type {
                    T::StepStart => {
                        insert_new(&mut run.started_steps, step);
                    }
                    T::StepSuccess | T::StepFailure => {
                        insert_new(&mut run.ended_steps, step);
                    }
                    _ => {}
                }
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
            run.status.apply(event);
        }
        let materialized = match (&event.event_type, &event.asset_key) {
            (T::AssetMaterialization, Some(key)) => {
                let changed = self.state.materialized(event, origin);
                self.note_changed(&changed);
                let asset = AssetRef::new(&event.tenant, key.clone());
                // the asset's own edges follow its OpenLineage events
                self.emit_unblocked(&changed, Some(&asset), out)?;
                Some(asset)
            }
            _ => None,
        };
        let run_ended = matches!(
            event.event_type,
            T::RunSuccess | T::RunFailure | T::RunCanceled
        );
        if run_ended && let Some(run_id) = run_id {
            self.close_children(event, run_id, out);
        }

        for lineage_event in events_for(event, &self.state, &self.settings) {
            out.push(self.openlineage(&lineage_event));
        }
        if let Some(asset) = &materialized {
            self.emit_lineage(asset, out)?;
        }
        let Some(run_id) = run_id else {
            return Ok(());
        };
        if run_ended {
            self.emit_run_end(event, run_id, origin, out)?;
        }
        Ok(())
    }

    /// Before a run's terminal event: a terminal event for every child run still open. Assets
    /// planned and never materialized get a FAIL (unless the run succeeded); steps that
    /// started or were planned and never ended get an ABORT saying why. In order: assets by
    /// key and partition, then steps by key.
    fn close_children(&mut self, event: &DagsterEvent, run_id: &str, out: &mut Vec<Output>) {
        let Some(run) = self.state.run_mut_existing(&event.tenant, run_id) else {
            return;
        };
        let missing: Vec<(Vec<String>, Option<String>)> =
            if event.event_type == DagsterEventType::RunSuccess {
                Vec::new()
            } else {
                run.planned
                    .iter()
                    .filter(|(key, _)| !run.materialized.contains(key))
                    .cloned()
                    .collect()
            };
        let open_steps: Vec<(String, StepClosure)> = run
            .steps
            .iter()
            .filter(|step| !run.ended_steps.contains(*step))
            .map(|step| {
                let closure = if run.started_steps.contains(step) {
                    StepClosure::Unfinished
                } else {
                    StepClosure::NeverStarted
                };
                (step.clone(), closure)
            })
            .collect();
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
        for (step, closure) in open_steps {
            if let Some(aborted) =
                unfinished_step(event, &step, closure, &self.state, &self.settings)
            {
                out.push(self.openlineage(&aborted));
            }
        }
    }

    /// At the end of a run: the pipeline (when it changed) and the run's status with every
    /// task.
    fn emit_run_end(
        &mut self,
        event: &DagsterEvent,
        run_id: &str,
        origin: &Origin,
        out: &mut Vec<Output>,
    ) -> Result<(), BatchError> {
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

    /// The table → table edges of `asset`'s latest materialization that are ready and not
    /// emitted yet (an edge is emitted once, the first time both its tables are known).
    fn emit_lineage(&mut self, asset: &AssetRef, out: &mut Vec<Output>) -> Result<(), BatchError> {
        let Some(materialization) = self.state.materialization(asset) else {
            return Ok(());
        };
        let lineage = materialization_lineage(
            &materialization.event,
            materialization.pipeline.as_deref(),
            &self.state,
            &materialization.origin,
        );
        for op in &lineage.operations {
            if let Operation::AddLineage(edge) = &op.operation {
                if self
                    .state
                    .record_written_upstream(asset, &edge.from_table_fqn)
                {
                    self.note_changed(std::slice::from_ref(asset));
                }
                if !self
                    .state
                    .first_emission_of_edge(&edge.from_table_fqn, &edge.to_table_fqn)
                {
                    continue;
                }
            }
            out.push(self.operation(op)?);
        }
        Ok(())
    }

    /// Emits the edges that `changed` (assets whose table, or definition, changed) made
    /// possible: those of every materialized asset it affects, in asset order, `except` one.
    fn emit_unblocked(
        &mut self,
        changed: &[AssetRef],
        except: Option<&AssetRef>,
        out: &mut Vec<Output>,
    ) -> Result<(), BatchError> {
        for asset in self.state.lineage_affected_by(changed) {
            if Some(&asset) != except {
                self.emit_lineage(&asset, out)?;
            }
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

    fn dead_letter(
        &self,
        message: &OwnedMessage,
        error_kind: DeadLetterKind,
        reason: String,
    ) -> Result<Output, BatchError> {
        metrics::RECORDS.with_label_values(&["dead_lettered"]).inc();
        let record = DeadLetter {
            component: "processor".into(),
            tenant: None,
            error_kind,
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

    /// Run state is partition-local (a run's events share one partition): the runs of revoked
    /// partitions are forgotten, those of assigned partitions rebuilt from their history
    /// before the group's committed offsets, so a run that moves to this instance continues
    /// with the context (run ids, tags, tasks) its previous owner had.
    async fn rebalanced(
        &mut self,
        revoked: &[(String, i32)],
        assigned: &[(String, i32)],
    ) -> Result<(), BatchError> {
        let events = self.topics.events.clone();
        let of_events = |list: &[(String, i32)]| -> Vec<i32> {
            list.iter()
                .filter(|(topic, _)| *topic == events)
                .map(|(_, partition)| *partition)
                .collect()
        };
        let (revoked, assigned) = (of_events(revoked), of_events(assigned));
        if !revoked.is_empty() {
            let forgotten = self.state.forget_partitions(&events, &revoked);
            tracing::info!(
                ?revoked,
                forgotten,
                "run state of revoked partitions dropped"
            );
        }
        for partition in &revoked {
            self.positions.remove(partition);
        }
        let Some(replayer) = self.replayer.take() else {
            return Ok(());
        };
        let result = if assigned.is_empty() {
            Ok(0)
        } else {
            self.rebuild(&replayer, Some(&assigned)).await
        };
        self.replayer = Some(replayer);
        result.map_err(|e| BatchError::Replay {
            topic: events,
            partitions: assigned,
            reason: e.to_string(),
        })?;
        metrics::OPEN_RUNS.set(self.state.open_runs() as i64);
        Ok(())
    }

    async fn process(&mut self, batch: &[OwnedMessage]) -> Result<Vec<Output>, BatchError> {
        let mut out = Vec::new();
        for asset in std::mem::take(&mut self.unwritten) {
            self.emit_lineage(&asset, &mut out)?;
        }
        while let Ok(update) = self.updates.try_recv() {
            self.apply_update(update, &mut out)?;
        }
        for message in batch {
            if message.topic() == self.topics.events {
                self.positions
                    .insert(message.partition(), message.offset() + 1);
            }
            if message.topic() == self.topics.ingest {
                out.push(self.ingest(message)?);
                continue;
            }
            let Some(payload) = message.payload() else {
                out.push(self.dead_letter(
                    message,
                    DeadLetterKind::MalformedInput,
                    "a dagster.events record without a value".into(),
                )?);
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
                    out.push(self.dead_letter(message, DeadLetterKind::MalformedInput, reason)?);
                }
            }
        }
        self.flush_reports(&mut out)?;
        metrics::OPEN_RUNS.set(self.state.open_runs() as i64);
        Ok(out)
    }
}
