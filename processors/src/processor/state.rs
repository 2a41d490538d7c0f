//! The processor's state: the join (tables, asset graph, resolutions), what it knows of each
//! run, and the lineage still waiting for a table. It answers the output builders' questions
//! ([`Lookup`]).

use std::collections::{BTreeSet, HashMap, HashSet};

use lineage_schemas::records::{AssetDefinition, DagsterEvent, Origin, TableSnapshot};

use super::updates::StateUpdate;
use crate::output::openmetadata::RunStatus;
use crate::output::{Lookup, ResolvedTable, RunContext};
use crate::resolve::{JoinState, ResolverConfig};
use crate::state::AssetRef;

/// What the processor remembers of one run while it is open.
#[derive(Debug)]
pub struct RunState {
    /// Job, tags and anchor time.
    pub context: RunContext,
    /// The run-level status with every task.
    pub status: RunStatus,
    /// Assets planned in the run, with their partition.
    pub planned: BTreeSet<(Vec<String>, Option<String>)>,
    /// Assets materialized in the run.
    pub materialized: HashSet<Vec<String>>,
    /// Step keys seen (tasks of op jobs).
    pub steps: BTreeSet<String>,
}

/// A materialization whose lineage waits for tables, kept to emit the edges when they appear.
#[derive(Debug, Clone)]
pub struct WaitingLineage {
    /// The materialization.
    pub event: DagsterEvent,
    /// Where it was read.
    pub origin: Origin,
}

/// Everything the processor holds between batches.
#[derive(Debug)]
pub struct LineageState {
    join: JoinState,
    tables: HashMap<AssetRef, ResolvedTable>,
    runs: HashMap<(String, String), RunState>,
    waiting: HashMap<AssetRef, WaitingLineage>,
    emitted_edges: HashSet<(String, String)>,
    emitted_pipelines: HashMap<(String, String), u64>,
    services: HashSet<String>,
}

impl LineageState {
    /// Empty state resolving with `config`.
    pub fn new(config: ResolverConfig) -> Self {
        Self {
            join: JoinState::new(config),
            tables: HashMap::new(),
            runs: HashMap::new(),
            waiting: HashMap::new(),
            emitted_edges: HashSet::new(),
            emitted_pipelines: HashMap::new(),
            services: HashSet::new(),
        }
    }

    /// The join (tables, assets, resolutions).
    pub fn join(&self) -> &JoinState {
        &self.join
    }

    /// Applies a table snapshot (`None` = the table `fqn` was deleted); returns the assets
    /// whose table changed.
    pub fn table_changed(&mut self, fqn: &str, snapshot: Option<&TableSnapshot>) -> Vec<AssetRef> {
        let changed = match snapshot {
            Some(snapshot) if !snapshot.deleted => self.join.on_table_upsert(snapshot),
            _ => self.join.on_table_delete(fqn),
        };
        self.refresh(&changed);
        changed
    }

    /// Applies an asset definition (`None` = the asset was removed); returns the assets whose
    /// table changed.
    pub fn asset_changed(
        &mut self,
        asset: &AssetRef,
        definition: Option<AssetDefinition>,
    ) -> Vec<AssetRef> {
        let changed = match definition {
            Some(definition) => self.join.on_asset_upsert(definition),
            None => self.join.on_asset_delete(asset),
        };
        self.refresh(&changed);
        changed
    }

    /// Applies a change of a global input; returns the assets whose table changed.
    pub fn apply(&mut self, update: StateUpdate) -> Vec<AssetRef> {
        match update {
            StateUpdate::Table { fqn, snapshot } => self.table_changed(&fqn, snapshot.as_ref()),
            StateUpdate::Asset { asset, definition } => self.asset_changed(&asset, definition),
        }
    }

    /// Takes a materialization's metadata hints into account; returns the changed assets.
    pub fn materialized(&mut self, event: &DagsterEvent) -> Vec<AssetRef> {
        let Some(key) = &event.asset_key else {
            return Vec::new();
        };
        let asset = AssetRef::new(&event.tenant, key.clone());
        let changed = self.join.on_materialization(&asset, &event.metadata);
        self.refresh(&changed);
        changed
    }

    fn refresh(&mut self, assets: &[AssetRef]) {
        for asset in assets {
            match self.join.table_of(asset) {
                Some(table) => {
                    let resolved = ResolvedTable {
                        namespace: table.service().to_owned(),
                        name: format!("{}.{}.{}", table.database(), table.schema(), table.name()),
                        fqn: table.fqn(),
                    };
                    self.tables.insert(asset.clone(), resolved);
                }
                None => {
                    self.tables.remove(asset);
                }
            }
        }
    }

    /// The open run `run_id` of `tenant`, created from `event` when first seen. A run event
    /// brings the run's tags; the anchor time stays that of the first event.
    pub fn run_mut(&mut self, event: &DagsterEvent, run_id: &str) -> &mut RunState {
        let key = (event.tenant.clone(), run_id.to_owned());
        let run = self.runs.entry(key).or_insert_with(|| {
            let context = RunContext {
                job_name: event.job_name.clone().unwrap_or_default(),
                tags: event.tags.clone(),
                started_ms: event.timestamp_ms,
            };
            let status = RunStatus::new(
                &event.tenant,
                run_id,
                &context.job_name,
                context.code_location(),
                context.started_ms,
            );
            RunState {
                context,
                status,
                planned: BTreeSet::new(),
                materialized: HashSet::new(),
                steps: BTreeSet::new(),
            }
        });
        if let Some(from_run) = RunContext::from_run_event(event) {
            run.context.tags.extend(from_run.tags);
            if run.context.job_name.is_empty() {
                run.context.job_name = from_run.job_name;
            }
        }
        run
    }

    /// The open run `run_id` of `tenant`, if any.
    pub fn run_mut_existing(&mut self, tenant: &str, run_id: &str) -> Option<&mut RunState> {
        self.runs.get_mut(&(tenant.to_owned(), run_id.to_owned()))
    }

    /// Forgets a finished run.
    pub fn close_run(&mut self, tenant: &str, run_id: &str) -> Option<RunState> {
        self.runs.remove(&(tenant.to_owned(), run_id.to_owned()))
    }

    /// Remembers that `event`'s lineage waits for tables.
    pub fn wait_for_tables(&mut self, event: &DagsterEvent, origin: &Origin) {
        if let Some(key) = &event.asset_key {
            self.waiting.insert(
                AssetRef::new(&event.tenant, key.clone()),
                WaitingLineage {
                    event: event.clone(),
                    origin: origin.clone(),
                },
            );
        }
    }

    /// The waiting materializations that involve any of `changed` (as the asset or one of its
    /// upstream assets), removed from the waiting list; the caller re-emits their lineage and
    /// puts back what still waits.
    pub fn take_waiting_for(&mut self, changed: &[AssetRef]) -> Vec<WaitingLineage> {
        if changed.is_empty() || self.waiting.is_empty() {
            return Vec::new();
        }
        let changed: HashSet<&AssetRef> = changed.iter().collect();
        let affected: Vec<AssetRef> = self
            .waiting
            .keys()
            .filter(|asset| {
                changed.contains(asset)
                    || self
                        .join
                        .assets()
                        .deps(asset)
                        .iter()
                        .any(|dep| changed.contains(dep))
            })
            .cloned()
            .collect();
        affected
            .iter()
            .filter_map(|asset| self.waiting.remove(asset))
            .collect()
    }

    /// True the first time the edge `from → to` is seen; later calls are false.
    pub fn first_emission_of_edge(&mut self, from: &str, to: &str) -> bool {
        self.emitted_edges.insert((from.to_owned(), to.to_owned()))
    }

    /// True when the pipeline of `(tenant, job)` differs from the last emitted one (by
    /// `fingerprint`), recording it.
    pub fn pipeline_changed(&mut self, tenant: &str, job: &str, fingerprint: u64) -> bool {
        let key = (tenant.to_owned(), job.to_owned());
        self.emitted_pipelines.insert(key, fingerprint) != Some(fingerprint)
    }

    /// True the first time the pipeline service of `tenant` is needed.
    pub fn first_service_of(&mut self, tenant: &str) -> bool {
        self.services.insert(tenant.to_owned())
    }

    /// The definitions of the assets of `tenant` that job `job` materializes.
    pub fn job_assets(&self, tenant: &str, job: &str) -> Vec<&AssetDefinition> {
        self.join
            .assets()
            .iter()
            .filter(|(asset, definition)| {
                asset.tenant == tenant && definition.job_names.iter().any(|j| j == job)
            })
            .map(|(_, definition)| definition)
            .collect()
    }

    /// Number of runs open.
    pub fn open_runs(&self) -> usize {
        self.runs.len()
    }
}

impl Lookup for LineageState {
    fn asset(&self, tenant: &str, key: &[String]) -> Option<&AssetDefinition> {
        self.join.assets().get(&AssetRef::new(tenant, key.to_vec()))
    }

    fn table(&self, tenant: &str, key: &[String]) -> Option<&ResolvedTable> {
        self.tables.get(&AssetRef::new(tenant, key.to_vec()))
    }

    fn run(&self, tenant: &str, run_id: &str) -> Option<&RunContext> {
        self.runs
            .get(&(tenant.to_owned(), run_id.to_owned()))
            .map(|run| &run.context)
    }
}
