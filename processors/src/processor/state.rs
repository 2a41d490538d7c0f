//! The processor's state: the join (tables, asset graph, resolutions), what it knows of each
//! run, and the latest materialization of each asset, whose table lineage is recomputed when a
//! table or definition it depends on changes. It answers the output builders' questions
//! ([`Lookup`]).

use std::collections::{BTreeSet, VecDeque};
use std::hash::{Hash, Hasher};

use hashbrown::{Equivalent, HashMap, HashSet};

use lineage_schemas::records::{AssetDefinition, DagsterEvent, Origin, TableSnapshot};

use super::updates::StateUpdate;
use crate::insert_new;
use crate::output::openmetadata::{RunStatus, lineage_record, materialization_pipeline};
use crate::output::{Lookup, ResolvedTable, RunContext};
use crate::resolve::{JoinState, ResolverConfig};
use crate::state::{AssetKeyRef, AssetRef};

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
    /// Steps that started (`STEP_START`).
    pub started_steps: BTreeSet<String>,
    /// Steps that ended (`STEP_SUCCESS`, `STEP_FAILURE`).
    pub ended_steps: BTreeSet<String>,
    /// Whether a run-level event (which brings the run's tags) has been seen.
    pub has_run_event: bool,
    /// Events that came before the run's first run-level event, held so that they are
    /// output with the run's tags (see [`HELD_EVENTS_PER_RUN`]).
    pub held: Vec<(DagsterEvent, Origin)>,
    /// Input partition of the run's events (all events of a run share its key, the run id).
    pub partition: i32,
}

/// Most events of one run held while waiting for its first run-level event; beyond, they are
/// output with what is known (the bound keeps a run whose run events are missing from the log
/// from growing without end, and is deterministic: it counts input events).
pub const HELD_EVENTS_PER_RUN: usize = 10_000;

/// Most ended runs whose context is kept for events that come after the run's end (Dagster
/// writes engine events after `RUN_SUCCESS`); the oldest is forgotten first.
pub const CLOSED_RUNS_KEPT: usize = 100_000;

/// The latest materialization of an asset, kept so that the table lineage it implies can be
/// emitted when a table or an asset definition it depends on arrives or changes later.
#[derive(Debug, Clone)]
pub struct MaterializedLineage {
    /// The materialization, reduced to what its lineage reads.
    pub event: DagsterEvent,
    /// Where it was read.
    pub origin: Origin,
    /// The pipeline its edges refer to, taken when it was processed.
    pub pipeline: Option<String>,
    /// The upstream assets the event names itself (recorded inputs, column lineage).
    pub inputs: Vec<AssetRef>,
}

/// Everything the processor holds between batches.
#[derive(Debug)]
pub struct LineageState {
    join: JoinState,
    tables: HashMap<AssetRef, ResolvedTable>,
    runs: HashMap<(String, String), RunState>,
    closed: HashMap<(String, String), (i32, RunContext)>,
    closed_order: VecDeque<(String, String)>,
    materializations: HashMap<AssetRef, MaterializedLineage>,
    /// Upstream asset → the materialized assets whose event names it (the definitions' deps
    /// are in the asset graph).
    named_by: HashMap<AssetRef, BTreeSet<AssetRef>>,
    emitted_edges: HashSet<(String, String)>,
    /// Materialized asset → FQNs of the tables whose edges into its table were written for
    /// it (what its resolution report publishes, for a restart to compare with).
    written_upstream: HashMap<AssetRef, BTreeSet<String>>,
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
            closed: HashMap::new(),
            closed_order: VecDeque::new(),
            materializations: HashMap::new(),
            named_by: HashMap::new(),
            emitted_edges: HashSet::new(),
            written_upstream: HashMap::new(),
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

    /// Takes a materialization into account: its table hints and the upstream assets it names
    /// (the join), and the materialization itself, kept as its asset's latest for the lineage
    /// that may come later. Returns the assets whose resolution changed.
    pub fn materialized(&mut self, event: &DagsterEvent, origin: &Origin) -> Vec<AssetRef> {
        let Some(key) = &event.asset_key else {
            return Vec::new();
        };
        let asset = AssetRef::new(&event.tenant, key.clone());
        let pipeline = materialization_pipeline(event, &*self);
        let (record, upstream) = lineage_record(event);
        let changed = self
            .join
            .on_materialization(&asset, &event.metadata, &upstream);
        self.refresh(&changed);
        let inputs: Vec<AssetRef> = upstream.iter().map(|key| asset.sibling(key)).collect();
        self.forget_materialization(&asset);
        for input in &inputs {
            self.named_by
                .entry(input.clone())
                .or_default()
                .insert(asset.clone());
        }
        self.materializations.insert(
            asset,
            MaterializedLineage {
                event: record,
                origin: origin.clone(),
                pipeline,
                inputs,
            },
        );
        changed
    }

    fn forget_materialization(&mut self, asset: &AssetRef) {
        let Some(old) = self.materializations.remove(asset) else {
            return;
        };
        for input in &old.inputs {
            if let Some(set) = self.named_by.get_mut(input) {
                set.remove(asset);
                if set.is_empty() {
                    self.named_by.remove(input);
                }
            }
        }
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
                    // the asset's key is copied only when it is new
                    match self.tables.get_mut(asset) {
                        Some(current) => {
                            if current.fqn != resolved.fqn {
                                self.written_upstream.remove(asset);
                            }
                            *current = resolved;
                        }
                        None => {
                            self.tables.insert(asset.clone(), resolved);
                        }
                    }
                }
                None => {
                    self.tables.remove(asset);
                    self.written_upstream.remove(asset);
                }
            }
        }
    }

    /// The open run `run_id` of `tenant`, created from `event` when first seen. A run event
    /// brings the run's tags; the anchor time stays that of the first event.
    pub fn run_mut(&mut self, event: &DagsterEvent, run_id: &str) -> &mut RunState {
        // looked up by a borrowed key: the owned key is built once per run, not per event
        let key = RunKeyRef(&event.tenant, run_id);
        if !self.runs.contains_key(&key) {
            let owned = (event.tenant.clone(), run_id.to_owned());
            self.runs.entry(owned).or_insert_with(|| {
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
                    started_steps: BTreeSet::new(),
                    ended_steps: BTreeSet::new(),
                    has_run_event: false,
                    held: Vec::new(),
                    partition: 0,
                }
            });
        }
        let run = self
            .runs
            .get_mut(&key)
            .expect("invariant: the run was inserted above");
        if let Some(from_run) = RunContext::from_run_event(event) {
            run.has_run_event = true;
            run.context.tags.extend(from_run.tags);
            if run.context.job_name.is_empty() {
                run.context.job_name = from_run.job_name;
            }
            run.status.set_code_location(run.context.code_location());
        }
        run
    }

    /// The open run `run_id` of `tenant`, if any.
    pub fn run_mut_existing(&mut self, tenant: &str, run_id: &str) -> Option<&mut RunState> {
        self.runs.get_mut(&RunKeyRef(tenant, run_id))
    }

    /// Ends a run: its state is returned, its context kept (bounded by [`CLOSED_RUNS_KEPT`])
    /// for the events that come after its end.
    pub fn close_run(&mut self, tenant: &str, run_id: &str) -> Option<RunState> {
        let key = (tenant.to_owned(), run_id.to_owned());
        let run = self.runs.remove(&key)?;
        if self
            .closed
            .insert(key.clone(), (run.partition, run.context.clone()))
            .is_none()
        {
            self.closed_order.push_back(key);
            if self.closed_order.len() > CLOSED_RUNS_KEPT
                && let Some(oldest) = self.closed_order.pop_front()
            {
                self.closed.remove(&oldest);
            }
        }
        Some(run)
    }

    /// Whether the run `run_id` of `tenant` has ended (and is still remembered).
    pub fn is_closed(&self, tenant: &str, run_id: &str) -> bool {
        self.closed.contains_key(&RunKeyRef(tenant, run_id))
    }

    /// Forgets what came from `partitions` of the event topic `topic` (the runs, ended or
    /// not, and the lineage waiting for tables): another instance owns them now, and the
    /// state is rebuilt from their history if they come back. Returns how many runs were
    /// forgotten.
    pub fn forget_partitions(&mut self, topic: &str, partitions: &[i32]) -> usize {
        let before = self.runs.len();
        self.runs
            .retain(|_, run| !partitions.contains(&run.partition));
        let forgotten = before - self.runs.len();
        self.closed
            .retain(|_, (partition, _)| !partitions.contains(partition));
        self.closed_order
            .retain(|key| self.closed.contains_key(key));
        let gone: Vec<AssetRef> = self
            .materializations
            .iter()
            .filter(|(_, m)| m.origin.topic == topic && partitions.contains(&m.origin.partition))
            .map(|(asset, _)| asset.clone())
            .collect();
        for asset in &gone {
            self.forget_materialization(asset);
        }
        forgotten
    }

    /// The latest materialization of `asset`, if it was materialized.
    pub fn materialization(&self, asset: &AssetRef) -> Option<&MaterializedLineage> {
        self.materializations.get(asset)
    }

    /// The materialized assets whose table lineage `changed` may change: those in `changed`,
    /// and those depending on one of them (by their definition's deps or by what their latest
    /// materialization names). Sorted, so that the lineage is emitted in the same order on
    /// every run.
    pub fn lineage_affected_by(&self, changed: &[AssetRef]) -> Vec<AssetRef> {
        if self.materializations.is_empty() {
            return Vec::new();
        }
        let mut affected = BTreeSet::new();
        for asset in changed {
            let dependents = self
                .join
                .assets()
                .dependents(asset)
                .chain(self.named_by.get(asset).into_iter().flatten());
            for candidate in std::iter::once(asset).chain(dependents) {
                if self.materializations.contains_key(candidate) {
                    affected.insert(candidate.clone());
                }
            }
        }
        affected.into_iter().collect()
    }

    /// Every materialized asset, sorted.
    pub fn materialized_assets(&self) -> Vec<AssetRef> {
        let mut assets: Vec<AssetRef> = self.materializations.keys().cloned().collect();
        assets.sort();
        assets
    }

    /// Forgets that the edge `from → to` was emitted: the next emission of it is written.
    pub fn forget_edge(&mut self, from: &str, to: &str) {
        self.emitted_edges.remove(&(from.to_owned(), to.to_owned()));
    }

    /// True the first time the edge `from → to` is seen; later calls are false.
    pub fn first_emission_of_edge(&mut self, from: &str, to: &str) -> bool {
        self.emitted_edges.insert((from.to_owned(), to.to_owned()))
    }

    /// Records that the edge from table `source_fqn` into `asset`'s table is written (now or
    /// by an earlier emission); true when it was not recorded yet.
    pub fn record_written_upstream(&mut self, asset: &AssetRef, source_fqn: &str) -> bool {
        // looked up by reference: the owned key and FQN are built only when new (every
        // materialization's edges pass here)
        match self.written_upstream.get_mut(asset) {
            Some(written) => insert_new(written, source_fqn),
            None => {
                let written = BTreeSet::from([source_fqn.to_owned()]);
                self.written_upstream.insert(asset.clone(), written);
                true
            }
        }
    }

    /// The FQNs of the tables whose edges into `asset`'s table were written, sorted.
    pub fn written_upstream(&self, asset: &AssetRef) -> Vec<String> {
        self.written_upstream
            .get(asset)
            .map(|written| written.iter().cloned().collect())
            .unwrap_or_default()
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

// The builders ask these several times per event: borrowed keys, no allocation.
impl Lookup for LineageState {
    fn asset(&self, tenant: &str, key: &[String]) -> Option<&AssetDefinition> {
        self.join.assets().get_ref(AssetKeyRef { tenant, key })
    }

    fn table(&self, tenant: &str, key: &[String]) -> Option<&ResolvedTable> {
        self.tables.get(&AssetKeyRef { tenant, key })
    }

    fn run(&self, tenant: &str, run_id: &str) -> Option<&RunContext> {
        let key = RunKeyRef(tenant, run_id);
        self.runs
            .get(&key)
            .map(|run| &run.context)
            .or_else(|| self.closed.get(&key).map(|(_, context)| context))
    }
}

/// A borrowed `(tenant, run id)` key of the run maps; hashes as the owned tuple.
struct RunKeyRef<'a>(&'a str, &'a str);

impl Hash for RunKeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl From<&RunKeyRef<'_>> for (String, String) {
    fn from(key: &RunKeyRef<'_>) -> Self {
        (key.0.to_owned(), key.1.to_owned())
    }
}

impl Equivalent<(String, String)> for RunKeyRef<'_> {
    fn equivalent(&self, key: &(String, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}
