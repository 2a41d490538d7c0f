//! What the builders are given: settings, per-run context, resolved tables, and the [`Lookup`]
//! through which they ask the processor's state.

use std::collections::BTreeMap;

use lineage_schemas::records::{AssetDefinition, DagsterEvent, DagsterEventType};

use super::namespace::NamespaceTemplate;

/// The producer URI written in every OpenLineage event and facet.
pub const DEFAULT_PRODUCER: &str = concat!(
    env!("CARGO_PKG_REPOSITORY"),
    "/tree/v",
    env!("CARGO_PKG_VERSION")
);

/// Settings of the output builders (from the `[process]` config section).
#[derive(Debug, Clone)]
pub struct OutputSettings {
    /// The default OpenLineage namespace, `{namespace}` in templates.
    pub namespace: String,
    /// How the namespace of every job and dataset is built.
    pub namespace_template: NamespaceTemplate,
    /// Producer URI of every event and facet: `DEFAULT_PRODUCER`, this build's release (a
    /// static string, so no facet copies it).
    pub producer: &'static str,
    /// Dagster webserver base URL, for links (`sourceUrl`, task log links); `None` = no links.
    pub dagster_url: Option<String>,
    /// Dagster version for the `processing_engine` run facet; `"unknown"` when not set.
    pub dagster_version: Option<String>,
    /// OpenMetadata classification that holds the Dagster tags.
    pub tag_classification: String,
    /// Whether a failed check of severity WARN counts as a failed assertion (as ERROR does).
    pub strict_assertions: bool,
}

impl Default for OutputSettings {
    fn default() -> Self {
        Self {
            namespace: "dagster".to_owned(),
            namespace_template: NamespaceTemplate::default(),
            producer: DEFAULT_PRODUCER,
            dagster_url: None,
            dagster_version: None,
            tag_classification: "DagsterTags".to_owned(),
            strict_assertions: false,
        }
    }
}

/// What the state knows about one Dagster run, collected from its run events.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunContext {
    /// The Dagster job name.
    pub job_name: String,
    /// The run's tags (from its run events), incl. `dagster/code_location`.
    pub tags: BTreeMap<String, String>,
    /// Anchor time of the run, ms since the Unix epoch: the timestamp of the first event of the
    /// run seen in the log. It is the time part of every run id derived for the run (see
    /// [`super::ids`]), so it must not change between events of one run.
    pub started_ms: i64,
}

impl RunContext {
    /// The context a run event starts: its job, its tags (run events carry the run's tags),
    /// its time. `None` for events of other kinds or without a run id.
    pub fn from_run_event(event: &DagsterEvent) -> Option<Self> {
        let is_run_event = matches!(
            event.event_type,
            DagsterEventType::RunEnqueued
                | DagsterEventType::RunDequeued
                | DagsterEventType::RunStarting
                | DagsterEventType::RunStart
                | DagsterEventType::RunSuccess
                | DagsterEventType::RunFailure
                | DagsterEventType::RunCanceling
                | DagsterEventType::RunCanceled
        );
        if !is_run_event || event.run_id.as_deref().is_none_or(str::is_empty) {
            return None;
        }
        Some(Self {
            job_name: event.job_name.clone().unwrap_or_default(),
            tags: event.tags.clone(),
            started_ms: event.timestamp_ms,
        })
    }

    /// The run's code location: tag `dagster/code_location`, else the part after `@` of
    /// `.dagster/repository`.
    pub fn code_location(&self) -> Option<&str> {
        if let Some(location) = self.tags.get("dagster/code_location") {
            return Some(location.as_str());
        }
        self.tags
            .get(".dagster/repository")
            .and_then(|repo| repo.rsplit_once('@'))
            .map(|(_, location)| location)
    }

    /// The run's partition key (tag `dagster/partition`).
    pub fn partition(&self) -> Option<&str> {
        self.tags.get("dagster/partition").map(String::as_str)
    }
}

/// An asset key resolved to an OpenMetadata table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTable {
    /// OpenLineage namespace of the physical table (e.g. the database service), used in the
    /// `symlinks` identifiers.
    pub namespace: String,
    /// OpenLineage name of the physical table, e.g. `database.schema.table`.
    pub name: String,
    /// OpenMetadata fully qualified name `service.database.schema.table`.
    pub fqn: String,
}

/// What the builders ask the processor's state.
pub trait Lookup {
    /// The definition of an asset of a tenant.
    fn asset(&self, tenant: &str, key: &[String]) -> Option<&AssetDefinition>;
    /// The table an asset key of a tenant resolved to.
    fn table(&self, tenant: &str, key: &[String]) -> Option<&ResolvedTable>;
    /// The context of a run of a tenant.
    fn run(&self, tenant: &str, run_id: &str) -> Option<&RunContext>;
}

/// A [`Lookup`] that knows nothing: output from the events alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLookup;

impl Lookup for NoLookup {
    fn asset(&self, _: &str, _: &[String]) -> Option<&AssetDefinition> {
        None
    }
    fn table(&self, _: &str, _: &[String]) -> Option<&ResolvedTable> {
        None
    }
    fn run(&self, _: &str, _: &str) -> Option<&RunContext> {
        None
    }
}

/// The OpenLineage job (and dataset) name of an asset: Dagster's user string, the path joined
/// by `/` (what dagster-openlineage uses).
pub fn asset_job_name(key: &[String]) -> String {
    key.join("/")
}

/// Dagster's step key (op name) of an asset: the path joined by `__`, every character that is
/// not ASCII alphanumeric or `_` replaced by `_` (`AssetKey.to_python_identifier`).
pub fn asset_step_key(key: &[String]) -> String {
    let joined = key.join("__");
    joined
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_location_from_tag_or_repository_origin() {
        let mut run = RunContext::default();
        assert_eq!(run.code_location(), None);
        run.tags.insert(
            ".dagster/repository".into(),
            "__repository__@lineage_sample".into(),
        );
        assert_eq!(run.code_location(), Some("lineage_sample"));
        run.tags
            .insert("dagster/code_location".into(), "other".into());
        assert_eq!(run.code_location(), Some("other"));
    }

    #[test]
    fn asset_names() {
        let key = vec![
            "acme-project".to_owned(),
            "db".to_owned(),
            "orders".to_owned(),
        ];
        assert_eq!(asset_job_name(&key), "acme-project/db/orders");
        assert_eq!(asset_step_key(&key), "acme_project__db__orders");
    }
}
