//! The resolution report (`lineage.resolution`) as the processor writes it, through
//! [`LineageProcessor::apply_update`] and [`LineageProcessor::flush_reports`] (codecs from the
//! testbed's Schema Registry, no broker): an ambiguous key is resolved deterministically,
//! reported with its candidates and counted; an unchanged resolution is not written again; a
//! change rewrites the record; an asset that goes away leaves a tombstone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::{asset_update, table_update};

use lineage_bus_core::exactly_once::Output;
use lineage_processors::output::OutputSettings;
use lineage_processors::processor::{LineageProcessor, ReportWriter, StateUpdate};
use lineage_processors::state::AssetRef;
use lineage_schemas::RecordCodec;
use lineage_schemas::catalog::LINEAGE_RESOLUTION;
use lineage_schemas::records::{AssetDefinition, ResolutionReport, TableSnapshot};

async fn report_codec() -> RecordCodec<ResolutionReport> {
    RecordCodec::for_topic(harness::registry(), LINEAGE_RESOLUTION)
        .await
        .unwrap()
}

async fn processor() -> LineageProcessor {
    harness::processor(OutputSettings::default())
        .await
        .with_reports(ReportWriter::new(LINEAGE_RESOLUTION, report_codec().await))
}

fn definition(parts: &[&str]) -> AssetDefinition {
    harness::definition(
        parts.iter().map(|p| (*p).to_owned()).collect(),
        vec![],
        "job",
    )
}

fn table(service: &str, schema: &str, name: &str) -> TableSnapshot {
    harness::table(service, "warehouse", schema, name)
}

async fn reports(out: &[Output]) -> Vec<(String, Option<ResolutionReport>)> {
    let codec = report_codec().await;
    let mut reports = Vec::new();
    for o in out {
        assert_eq!(o.topic, LINEAGE_RESOLUTION, "only reports expected: {o:?}");
        let key = String::from_utf8(o.key.clone().unwrap()).unwrap();
        let value = match &o.payload {
            Some(bytes) => Some(codec.decode(bytes).await.unwrap()),
            None => None,
        };
        reports.push((key, value));
    }
    reports
}

fn ambiguous_count(outcome: &str) -> f64 {
    prometheus::default_registry()
        .gather()
        .iter()
        .filter(|family| family.name() == "lineage_bus_processor_resolution_ambiguous_total")
        .flat_map(|family| family.get_metric().iter())
        .filter(|metric| {
            metric
                .get_label()
                .iter()
                .any(|l| l.name() == "outcome" && l.value() == outcome)
        })
        .map(|metric| metric.get_counter().get_value())
        .sum()
}

#[tokio::test]
async fn an_ambiguous_key_is_chosen_deterministically_and_reported() {
    let mut processor = processor().await;
    let mut out = Vec::new();
    // two services hold analytics.daily_revenue: the 2-part key matches both
    for update in [
        table_update(table("snow", "analytics", "daily_revenue")),
        table_update(table("pg", "analytics", "daily_revenue")),
        table_update(table("pg", "raw", "orders")),
        asset_update(definition(&["analytics", "daily_revenue"])),
        asset_update(definition(&["raw", "orders"])),
    ] {
        processor.apply_update(update, &mut out).unwrap();
    }
    assert!(out.is_empty(), "updates alone write no report: {out:?}");
    let before = ambiguous_count("chosen");
    processor.flush_reports(&mut out).unwrap();
    let written = reports(&out).await;
    let keys: Vec<&str> = written.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["prod/analytics/daily_revenue", "prod/raw/orders"],
        "one report per asset, by asset"
    );
    let revenue = written[0].1.clone().unwrap();
    assert!(revenue.ambiguous);
    assert_eq!(revenue.rule.as_deref(), Some("asset_key"));
    let candidates: Vec<&str> = revenue.candidates.iter().map(|c| c.fqn.as_str()).collect();
    assert_eq!(
        candidates,
        [
            "pg.warehouse.analytics.daily_revenue",
            "snow.warehouse.analytics.daily_revenue"
        ],
        "candidates ordered by FQN, whatever the arrival order"
    );
    assert_eq!(
        revenue.chosen_table_fqn.as_deref(),
        Some("pg.warehouse.analytics.daily_revenue")
    );
    assert_eq!(revenue.reason, None);
    assert_eq!(revenue.lookups.last().unwrap().matches, 2);
    assert_eq!(
        revenue.lookups.last().unwrap().name,
        "analytics.daily_revenue"
    );
    let orders = written[1].1.clone().unwrap();
    assert!(!orders.ambiguous);
    assert_eq!(
        orders.chosen_table_fqn.as_deref(),
        Some("pg.warehouse.raw.orders")
    );
    assert_eq!(ambiguous_count("chosen") - before, 1.0, "counted once");

    // nothing changed: nothing written, nothing counted
    let mut again = Vec::new();
    processor
        .apply_update(
            table_update(table("pg", "analytics", "daily_revenue")),
            &mut again,
        )
        .unwrap();
    processor.flush_reports(&mut again).unwrap();
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(ambiguous_count("chosen") - before, 1.0);

    // the pg table goes: the other candidate is chosen, unambiguously
    let mut changed = Vec::new();
    processor
        .apply_update(
            StateUpdate::Table {
                fqn: "pg.warehouse.analytics.daily_revenue".into(),
                snapshot: None,
            },
            &mut changed,
        )
        .unwrap();
    processor.flush_reports(&mut changed).unwrap();
    let written = reports(&changed).await;
    assert_eq!(written.len(), 1, "{written:?}");
    let revenue = written[0].1.clone().unwrap();
    assert!(!revenue.ambiguous);
    assert_eq!(
        revenue.chosen_table_fqn.as_deref(),
        Some("snow.warehouse.analytics.daily_revenue")
    );

    // the asset goes: its report is tombstoned
    let mut gone = Vec::new();
    processor
        .apply_update(
            StateUpdate::Asset {
                asset: AssetRef::new("prod", ["raw", "orders"]),
                definition: None,
            },
            &mut gone,
        )
        .unwrap();
    processor.flush_reports(&mut gone).unwrap();
    let written = reports(&gone).await;
    assert_eq!(written, [("prod/raw/orders".to_owned(), None)]);
}

#[tokio::test]
async fn an_unresolved_key_is_reported_with_the_reason() {
    let mut processor = processor().await;
    let mut out = Vec::new();
    processor
        .apply_update(
            asset_update(definition(&["analytics", "missing"])),
            &mut out,
        )
        .unwrap();
    processor.flush_reports(&mut out).unwrap();
    let written = reports(&out).await;
    let report = written[0].1.clone().unwrap();
    assert_eq!(report.chosen_table_fqn, None);
    assert_eq!(report.reason.as_deref(), Some("not_found"));
    assert_eq!(report.rule, None);
    assert!(!report.lookups.is_empty());
}
