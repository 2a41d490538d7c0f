//! Late arrival end to end through the processor (codecs from the testbed's Schema Registry,
//! no broker): Dagster runs processed before the asset graph and the OpenMetadata tables were
//! published still get every table → table edge once both arrive, in whatever order, exactly
//! once, with the run's pipeline reference and the materialization's `columnsLineage`; an
//! asset definition that gains a dep later adds that edge; and the output is the same byte for
//! byte whenever the same input is processed again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::{TENANT, asset_update, table_update};

use std::collections::BTreeMap;

use lineage_bus_core::exactly_once::Output;
use lineage_processors::output::OutputSettings;
use lineage_processors::output::openmetadata::{pipeline_fqn, pipeline_name};
use lineage_processors::processor::{LineageProcessor, StateUpdate};
use lineage_processors::workload;
use lineage_schemas::catalog::LINEAGE_OPENMETADATA;
use lineage_schemas::records::{
    AddLineage, AssetDefinition, ColumnDeps, ColumnLineage, ColumnRef, DagsterEvent,
    DagsterEventType as T, MetadataEntry, MetadataKind, Operation, Origin, TableSnapshot,
};

const RUN: &str = "0b7c6f0e-2f5e-4a57-9a55-5a1d3f1f6c01";
const JOB: &str = "transform_job";
const LOCATION: &str = "lineage_sample";

fn key(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| (*p).to_owned()).collect()
}

fn orders() -> Vec<String> {
    key(&["warehouse_db", "raw", "orders"])
}
fn payments() -> Vec<String> {
    key(&["warehouse_db", "raw", "payments"])
}
fn orders_clean() -> Vec<String> {
    key(&["acme", "warehouse_db", "staging", "orders_clean"])
}
fn daily_revenue() -> Vec<String> {
    key(&["analytics", "daily_revenue"])
}
fn kpi() -> Vec<String> {
    key(&["kpi"])
}

fn event(event_type: T, asset: Option<Vec<String>>, at: i64) -> DagsterEvent {
    let tags = if asset.is_none() {
        BTreeMap::from([("dagster/code_location".to_owned(), LOCATION.to_owned())])
    } else {
        BTreeMap::new()
    };
    let raw = format!("{event_type:?}");
    DagsterEvent {
        step_key: asset.as_ref().map(|k| k.join("__")),
        asset_key: asset,
        timestamp_ms: 1_795_241_820_000 + at,
        tags,
        ..workload::event(event_type, &raw, RUN, JOB, at)
    }
}

/// orders_clean's column lineage: every column from raw orders.
fn column_lineage() -> MetadataEntry {
    let dep = |column: &str, upstream: &str| ColumnDeps {
        column: column.into(),
        deps: vec![ColumnRef {
            asset_key: orders(),
            column: upstream.into(),
        }],
    };
    MetadataEntry {
        column_lineage: Some(ColumnLineage {
            columns: vec![dep("order_id", "order_id"), dep("amount_usd", "amount")],
        }),
        ..MetadataEntry::empty("dagster/column_lineage", MetadataKind::ColumnLineage)
    }
}

/// One run of `transform_job` materializing orders, orders_clean, daily_revenue and kpi.
fn run_log() -> Vec<DagsterEvent> {
    let mut log = vec![event(T::RunStart, None, 1)];
    for (i, asset) in [orders(), orders_clean(), daily_revenue(), kpi()]
        .into_iter()
        .enumerate()
    {
        let mut mat = event(T::AssetMaterialization, Some(asset.clone()), 10 + i as i64);
        if asset == orders_clean() {
            mat.metadata.push(column_lineage());
        }
        if asset == kpi() {
            // as the sample project does: the materialization names its table too
            mat.metadata.push(MetadataEntry::text(
                "dagster/table_name",
                MetadataKind::Text,
                "warehouse_db.reporting.kpi_feed",
            ));
        }
        log.push(mat);
    }
    log.push(event(T::RunSuccess, None, 20));
    log
}

fn definition(asset: Vec<String>, deps: Vec<Vec<String>>) -> AssetDefinition {
    let metadata = if asset == kpi() {
        // only the definition names kpi's table
        vec![MetadataEntry::text(
            "dagster/table_name",
            MetadataKind::Text,
            "warehouse_db.reporting.kpi_feed",
        )]
    } else {
        Vec::new()
    };
    AssetDefinition {
        code_location: Some(LOCATION.into()),
        metadata,
        ..harness::definition(asset, deps, JOB)
    }
}

fn assets() -> Vec<StateUpdate> {
    [
        definition(orders(), vec![]),
        definition(orders_clean(), vec![orders()]),
        definition(daily_revenue(), vec![orders_clean(), payments()]),
        definition(kpi(), vec![daily_revenue()]),
    ]
    .into_iter()
    .map(asset_update)
    .collect()
}

fn table(schema: &str, name: &str) -> TableSnapshot {
    harness::table("pg", "warehouse_db", schema, name)
}

fn tables() -> Vec<StateUpdate> {
    [
        table("raw", "orders"),
        table("raw", "payments"),
        table("staging", "orders_clean"),
        table("analytics", "daily_revenue"),
        table("reporting", "kpi_feed"),
    ]
    .into_iter()
    .map(table_update)
    .collect()
}

/// Which input comes when.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Input {
    Runs,
    Assets,
    Tables,
    /// The tables one by one, last first.
    TablesReversed,
}

async fn process(order: &[Input]) -> Vec<Output> {
    let mut processor = harness::processor(OutputSettings::default()).await;
    let mut out = Vec::new();
    for input in order {
        feed(&mut processor, *input, &mut out);
    }
    out
}

fn feed(processor: &mut LineageProcessor, input: Input, out: &mut Vec<Output>) {
    match input {
        Input::Runs => {
            for (offset, event) in run_log().iter().enumerate() {
                let origin = Origin {
                    topic: "dagster.events".into(),
                    partition: 0,
                    offset: offset as i64,
                };
                out.extend(processor.handle(event, &origin).unwrap());
            }
        }
        Input::Assets => {
            for update in assets() {
                processor.apply_update(update, out).unwrap();
            }
        }
        Input::Tables => {
            for update in tables() {
                processor.apply_update(update, out).unwrap();
            }
        }
        Input::TablesReversed => {
            for update in tables().into_iter().rev() {
                processor.apply_update(update, out).unwrap();
            }
        }
    }
}

async fn edges(processor: &LineageProcessor, out: &[Output]) -> Vec<AddLineage> {
    let mut edges = Vec::new();
    for o in out.iter().filter(|o| o.topic == LINEAGE_OPENMETADATA) {
        let op = processor
            .codecs()
            .operations
            .decode(o.payload.as_deref().unwrap())
            .await
            .unwrap();
        if let Operation::AddLineage(edge) = op.operation {
            edges.push(edge);
        }
    }
    edges
}

fn pairs(edges: &[AddLineage]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = edges
        .iter()
        .map(|e| (e.from_table_fqn.clone(), e.to_table_fqn.clone()))
        .collect();
    pairs.sort();
    pairs
}

fn expected() -> Vec<(String, String)> {
    let fqn = |s: &str| format!("pg.warehouse_db.{s}");
    let mut expected = vec![
        (fqn("raw.orders"), fqn("staging.orders_clean")),
        (fqn("staging.orders_clean"), fqn("analytics.daily_revenue")),
        (fqn("raw.payments"), fqn("analytics.daily_revenue")),
        (fqn("analytics.daily_revenue"), fqn("reporting.kpi_feed")),
    ];
    expected.sort();
    expected
}

fn check_edges(order: &[Input], edges: &[AddLineage]) {
    assert_eq!(pairs(edges), expected(), "order {order:?}: each edge once");
    let pipeline = pipeline_fqn(TENANT, &pipeline_name(JOB, Some(LOCATION)));
    for edge in edges {
        assert_eq!(
            edge.pipeline_fqn.as_deref(),
            Some(pipeline.as_str()),
            "order {order:?}: the run's pipeline on {edge:?}"
        );
        let has_columns = edge.to_table_fqn.ends_with("orders_clean");
        assert_eq!(
            !edge.columns.is_empty(),
            has_columns,
            "order {order:?}: columnsLineage only where the materialization had it: {edge:?}"
        );
    }
    let clean = edges
        .iter()
        .find(|e| e.to_table_fqn.ends_with("orders_clean"))
        .unwrap();
    let amount = clean
        .columns
        .iter()
        .find(|c| c.to_column == "pg.warehouse_db.staging.orders_clean.amount_usd")
        .expect("amount_usd column lineage");
    assert_eq!(amount.from_columns, ["pg.warehouse_db.raw.orders.amount"]);
}

const ORDERS: &[&[Input]] = &[
    &[Input::Runs, Input::Assets, Input::Tables],
    &[Input::Runs, Input::Tables, Input::Assets],
    &[Input::Runs, Input::Assets, Input::TablesReversed],
    &[Input::Runs, Input::TablesReversed, Input::Assets],
    &[Input::Assets, Input::Runs, Input::Tables],
    &[Input::Tables, Input::Runs, Input::Assets],
    &[Input::Assets, Input::Tables, Input::Runs],
    &[Input::Tables, Input::Assets, Input::Runs],
];

#[tokio::test]
async fn runs_before_assets_and_tables_get_every_edge_once_in_any_order() {
    for order in ORDERS {
        let probe = harness::processor(OutputSettings::default()).await;
        let out = process(order).await;
        check_edges(order, &edges(&probe, &out).await);
    }
}

#[tokio::test]
async fn the_same_input_in_the_same_order_gives_the_same_bytes() {
    for order in ORDERS {
        let first = process(order).await;
        let second = process(order).await;
        assert_eq!(first.len(), second.len(), "order {order:?}");
        for (a, b) in first.iter().zip(&second) {
            assert_eq!(
                (&a.topic, &a.key, &a.payload),
                (&b.topic, &b.key, &b.payload),
                "order {order:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_dep_added_to_a_definition_after_the_run_adds_its_edge_once() {
    let mut processor = harness::processor(OutputSettings::default()).await;
    let mut out = Vec::new();
    for input in [Input::Runs, Input::Tables, Input::Assets] {
        feed(&mut processor, input, &mut out);
    }
    assert_eq!(pairs(&edges(&processor, &out).await), expected());

    // kpi now also reads orders_clean: that edge follows, the others are not written again
    let mut later = Vec::new();
    let changed = definition(kpi(), vec![daily_revenue(), orders_clean()]);
    processor
        .apply_update(asset_update(changed.clone()), &mut later)
        .unwrap();
    processor
        .apply_update(asset_update(changed), &mut later)
        .unwrap();
    let added = edges(&processor, &later).await;
    assert_eq!(
        pairs(&added),
        [(
            "pg.warehouse_db.staging.orders_clean".to_owned(),
            "pg.warehouse_db.reporting.kpi_feed".to_owned()
        )]
    );
    assert_eq!(
        added[0].pipeline_fqn.as_deref(),
        Some(pipeline_fqn(TENANT, &pipeline_name(JOB, Some(LOCATION))).as_str())
    );
}

#[tokio::test]
async fn a_table_name_given_by_a_later_definition_redirects_the_lineage() {
    let mut processor = harness::processor(OutputSettings::default()).await;
    let mut out = Vec::new();
    for input in [Input::Runs, Input::Tables, Input::Assets] {
        feed(&mut processor, input, &mut out);
    }
    // daily_revenue's definition now names another table, which exists: the edges into it
    // and out of it follow, once
    let mut later = Vec::new();
    processor
        .apply_update(
            StateUpdate::Table {
                fqn: "pg.warehouse_db.analytics.revenue_v2".into(),
                snapshot: Some(table("analytics", "revenue_v2")),
            },
            &mut later,
        )
        .unwrap();
    let mut moved = definition(daily_revenue(), vec![orders_clean(), payments()]);
    moved.metadata = vec![MetadataEntry::text(
        "dagster/table_name",
        MetadataKind::Text,
        "analytics.revenue_v2",
    )];
    processor
        .apply_update(asset_update(moved.clone()), &mut later)
        .unwrap();
    processor
        .apply_update(asset_update(moved), &mut later)
        .unwrap();
    let v2 = "pg.warehouse_db.analytics.revenue_v2".to_owned();
    let mut expected = vec![
        ("pg.warehouse_db.raw.payments".to_owned(), v2.clone()),
        (
            "pg.warehouse_db.staging.orders_clean".to_owned(),
            v2.clone(),
        ),
        (v2.clone(), "pg.warehouse_db.reporting.kpi_feed".to_owned()),
    ];
    expected.sort();
    assert_eq!(pairs(&edges(&processor, &later).await), expected);
}

#[tokio::test]
async fn without_definitions_the_inputs_dagster_recorded_give_the_edges() {
    for tables_first in [true, false] {
        let mut processor = harness::processor(OutputSettings::default()).await;
        let mut out = Vec::new();
        if tables_first {
            feed(&mut processor, Input::Tables, &mut out);
        }
        for (offset, mut event) in run_log().into_iter().enumerate() {
            if event.asset_key == Some(orders_clean()) {
                // Dagster's record of the inputs a materialization read
                event.tags.insert(
                    "dagster/input_data_version/warehouse_db/raw/orders".into(),
                    "v1".into(),
                );
            }
            let origin = Origin {
                topic: "dagster.events".into(),
                partition: 0,
                offset: offset as i64,
            };
            out.extend(processor.handle(&event, &origin).unwrap());
        }
        if !tables_first {
            feed(&mut processor, Input::Tables, &mut out);
        }
        let edges = edges(&processor, &out).await;
        assert_eq!(
            pairs(&edges),
            [(
                "pg.warehouse_db.raw.orders".to_owned(),
                "pg.warehouse_db.staging.orders_clean".to_owned()
            )],
            "tables first: {tables_first}"
        );
        assert!(!edges[0].columns.is_empty());
    }
}
