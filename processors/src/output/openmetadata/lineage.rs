//! Table → table lineage.

use std::borrow::Cow;

use lineage_schemas::records::{
    AddLineage, ColumnLineage, ColumnLineageEdge, DagsterEvent, DagsterEventType,
    OpenMetadataOperation, Operation, Origin,
};

use super::pipeline::{pipeline_fqn, pipeline_name};
use super::quote_fqn_part;
use crate::output::metadata::{column_lineage, lineage_part, upstream_keys};
use crate::output::{Lookup, ResolvedTable};

/// The lineage an asset implies: the edges whose both ends resolved, and the keys that did not
/// resolve yet (the state waits for their tables and calls again when one appears).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineageOutput {
    /// One `AddLineage` per upstream table, in upstream order.
    pub operations: Vec<OpenMetadataOperation>,
    /// Keys without a table: the asset itself and/or upstream assets.
    pub unresolved: Vec<Vec<String>>,
}

/// The edges `upstream → asset` for `tenant`, with `pipeline_fqn` as the pipeline reference
/// and `columnsLineage` from `columns` (the asset's `dagster/column_lineage`).
pub fn lineage_operations(
    tenant: &str,
    asset_key: &[String],
    upstream: &[Cow<'_, [String]>],
    columns: Option<&ColumnLineage>,
    pipeline_fqn: Option<&str>,
    lookup: &impl Lookup,
    origin: &Origin,
) -> LineageOutput {
    let mut out = LineageOutput::default();
    let target = lookup.table(tenant, asset_key);
    if target.is_none() {
        out.unresolved.push(asset_key.to_vec());
    }
    for key in upstream {
        let Some(source) = lookup.table(tenant, key) else {
            out.unresolved.push(key.to_vec());
            continue;
        };
        let Some(target) = target else { continue };
        if source.fqn == target.fqn {
            continue;
        }
        out.operations.push(OpenMetadataOperation {
            tenant: tenant.to_owned(),
            origin: origin.clone(),
            operation: Operation::AddLineage(AddLineage {
                from_table_fqn: source.fqn.clone(),
                to_table_fqn: target.fqn.clone(),
                pipeline_fqn: pipeline_fqn.map(str::to_owned),
                description: Some(format!(
                    "Dagster asset {} depends on {}",
                    asset_key.join("/"),
                    key.join("/")
                )),
                columns: column_edges(columns, key, source, target),
            }),
        });
    }
    out
}

/// The lineage of a materialization: the asset's deps (its definition's, else the inputs the
/// event recorded, plus the assets its column lineage names), the column lineage of the event
/// (else the definition's), and the pipeline of the run's job
/// ([`materialization_pipeline`]). Empty for other events.
pub fn lineage_for_materialization(
    event: &DagsterEvent,
    lookup: &impl Lookup,
    origin: &Origin,
) -> LineageOutput {
    let pipeline = materialization_pipeline(event, lookup);
    materialization_lineage(event, pipeline.as_deref(), lookup, origin)
}

/// The pipeline a materialization's edges refer to: the FQN of its run's job (else the
/// event's job) in the run's code location (else the asset definition's). The processor takes
/// it when the materialization is processed, so edges emitted later (a table or definition
/// that came late) name the same pipeline even when the run is no longer remembered.
pub fn materialization_pipeline(event: &DagsterEvent, lookup: &impl Lookup) -> Option<String> {
    let key = event.asset_key.as_deref()?;
    let run = event
        .run_id
        .as_deref()
        .and_then(|id| lookup.run(&event.tenant, id));
    let job_name = run
        .map(|r| r.job_name.as_str())
        .filter(|name| !name.is_empty())
        .or(event.job_name.as_deref())?;
    let location = run.and_then(|r| r.code_location()).or_else(|| {
        lookup
            .asset(&event.tenant, key)
            .and_then(|a| a.code_location.as_deref())
    });
    Some(pipeline_fqn(
        &event.tenant,
        &pipeline_name(job_name, location),
    ))
}

/// A materialization as its lineage is kept for later: what [`materialization_lineage`] reads
/// of it (the event without its schema, statistics and raw JSON), and the upstream keys it
/// names itself (Dagster's recorded inputs, the assets of its column lineage).
pub fn lineage_record(event: &DagsterEvent) -> (DagsterEvent, Vec<Vec<String>>) {
    let upstream = upstream_keys(event, None)
        .into_iter()
        .map(Cow::into_owned)
        .collect();
    (lineage_part(event), upstream)
}

/// The upstream keys of a materialization's edges as the current asset graph makes them: the
/// definition's deps (else the inputs the event recorded), plus the assets of its column
/// lineage.
pub fn materialization_upstream<'a>(
    event: &'a DagsterEvent,
    lookup: &'a impl Lookup,
) -> Vec<Cow<'a, [String]>> {
    let Some(key) = event.asset_key.as_deref() else {
        return Vec::new();
    };
    upstream_keys(event, lookup.asset(&event.tenant, key))
}

/// [`lineage_for_materialization`] with the pipeline reference given: the edges as the
/// current asset graph and tables make them.
pub fn materialization_lineage(
    event: &DagsterEvent,
    pipeline: Option<&str>,
    lookup: &impl Lookup,
    origin: &Origin,
) -> LineageOutput {
    let (DagsterEventType::AssetMaterialization, Some(key)) =
        (event.event_type, event.asset_key.as_deref())
    else {
        return LineageOutput::default();
    };
    let asset = lookup.asset(&event.tenant, key);
    let upstream = materialization_upstream(event, lookup);
    let columns =
        column_lineage(&event.metadata).or_else(|| asset.and_then(|a| column_lineage(&a.metadata)));
    lineage_operations(
        &event.tenant,
        key,
        &upstream,
        columns,
        pipeline,
        lookup,
        origin,
    )
}

fn column_edges(
    columns: Option<&ColumnLineage>,
    upstream: &[String],
    source: &ResolvedTable,
    target: &ResolvedTable,
) -> Vec<ColumnLineageEdge> {
    let Some(columns) = columns else {
        return Vec::new();
    };
    columns
        .columns
        .iter()
        .filter_map(|column| {
            let from_columns: Vec<String> = column
                .deps
                .iter()
                .filter(|dep| dep.asset_key == upstream)
                .map(|dep| format!("{}.{}", source.fqn, quote_fqn_part(&dep.column)))
                .collect();
            (!from_columns.is_empty()).then(|| ColumnLineageEdge {
                from_columns,
                to_column: format!("{}.{}", target.fqn, quote_fqn_part(&column.column)),
            })
        })
        .collect()
}
