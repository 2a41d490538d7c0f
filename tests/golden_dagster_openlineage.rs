//! Golden test against the peer: dagster-openlineage 0.2.1 (PyPI) and lineage-bus turn the SAME
//! Dagster event log (the testbed's PostgreSQL `event_logs`, up to one storage id) into
//! OpenLineage events; after normalization (docs/divergences.md: producer, eventTime precision,
//! runId values compared by structure, order) every difference must be one of the intended
//! divergences listed in docs/divergences.md, by id. A new, unlisted difference fails the test.
//!
//! - The peer: its own sensor (Mechanism B, `include_asset_events=True`) ticked over a
//!   DagsterInstance on the testbed's PostgreSQL, emitting into a capturing emitter
//!   (`testbed/peer/emit_events.py`, venv `testbed/.venv-peer` from `testbed/peer/setup.sh`).
//! - lineage-bus: each `event_logs` row parsed by the Dagster producer's parser
//!   (`produce dagster`'s), then handled by the processor (`LineageProcessor::handle`, its
//!   state and builders, as in a transaction), the records of `lineage.openlineage` kept.
//!
//! Needs the testbed (PostgreSQL with the sample jobs' event log, Schema Registry); fails
//! loudly without it.
#![allow(clippy::unwrap_used)]
#![allow(clippy::print_stdout)] // the comparison report

mod common;
mod golden;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use golden::diff::{self, Difference, Norm};
use lineage_processors::output::openlineage::model::CORE_SCHEMA_RUN_EVENT;
use lineage_processors::processor::{
    Codecs, LineageProcessor, LineageState, ProcessConfig, output_settings,
};
use lineage_schemas::RecordCodec;
use lineage_schemas::records::{DagsterEventType, Origin};
use serde_json::Value;
use tokio_postgres::NoTls;

/// Every divergence id the classifier below may return; each must be a row of
/// docs/divergences.md.
const DIVERGENCE_IDS: &[&str] = &[
    "OL-1", "OL-2", "OL-3", "OL-4", "OL-6", "OL-7", "OL-8", "OL-9", "OL-10", "OL-11", "OL-13",
    "OL-15", "OL-17",
];

/// Which intended divergence explains `d`, or `None` (a bug on one side, or an unlisted
/// divergence: the test fails).
fn classify(d: &Difference) -> Option<&'static str> {
    let path = d.path.as_str();
    let jt = d.job_type.as_str();
    let is_asset_like = jt == "ASSET" || jt == "ASSET_CHECK";
    // events only one side has
    if path.is_empty() {
        let ours_only = d.ours.is_some();
        return match (ours_only, jt, d.event_type.as_str()) {
            // a retried step's failed attempt
            (true, "STEP", "OTHER") => Some("OL-7"),
            // steps left open by their run's end are closed
            (true, "STEP", "ABORT") => Some("OL-17"),
            // runless materializations and check evaluations: the peer raises on them
            (true, "ASSET" | "ASSET_CHECK", _) if runless(d) => Some("OL-15"),
            _ => None,
        };
    }
    // run ids: one per (run, what ran) vs the Dagster run id reused
    if path.ends_with("runId") {
        return Some("OL-1");
    }
    // nominal times: ms vs µs, the same instant
    if path.starts_with("run.facets.nominalTime.nominal")
        && let (Some(Value::String(o)), Some(Value::String(p))) = (&d.ours, &d.peer)
        && diff::parse_time_ms(o) == diff::parse_time_ms(p)
    {
        return Some("OL-11");
    }
    let ours_only = d.ours.is_some() && d.peer.is_none();
    let peer_only = d.peer.is_some() && d.ours.is_none();
    match path {
        "run.facets.parent" if ours_only && is_asset_like => Some("OL-2"),
        "run.facets.parent.root" if ours_only && is_asset_like => Some("OL-2"),
        "inputs[]" if ours_only && jt == "ASSET" && d.event_type == "COMPLETE" => Some("OL-3"),
        "run.facets.errorMessage" if ours_only && (jt == "JOB" || jt == "STEP") => Some("OL-4"),
        "run.facets.errorMessage.message" if jt == "ASSET" && d.event_type == "FAIL" => {
            Some("OL-13")
        }
        "run.facets.errorMessage.stackTrace" if ours_only => Some("OL-4"),
        "run.facets.nominalTime" if ours_only => Some("OL-10"),
        "run.facets.dagster_asset_check" if peer_only && jt == "ASSET_CHECK" => Some("OL-8"),
        "inputs[].inputFacets.dataQualityAssertions.assertions[].severity" if ours_only => {
            Some("OL-8")
        }
        "run.facets.processing_engine"
        | "run.facets.tags"
        | "job.facets.jobType"
        | "job.facets.ownership"
        | "job.facets.documentation"
        | "job.facets.tags"
        | "outputs[].outputFacets.outputStatistics"
        | "outputs[].facets.symlinks"
        | "outputs[].facets.dataSource"
        | "dataset.facets.dataSource"
        | "outputs[].facets.ownership"
        | "outputs[].facets.documentation"
        | "outputs[].facets.tags"
        | "inputs[].facets.symlinks"
        | "dataset.facets.symlinks"
        | "dataset.facets.ownership"
        | "dataset.facets.documentation"
        | "dataset.facets.tags"
            if ours_only =>
        {
            Some("OL-9")
        }
        // pipeline and step events: the repository name vs the one namespace
        "job.namespace" | "run.facets.parent.job.namespace"
            if (jt == "JOB" || jt == "STEP") && d.peer == Some(Value::from("__repository__")) =>
        {
            Some("OL-6")
        }
        _ => None,
    }
}

/// An event of ours from a runless report: its job has no parent run.
fn runless(d: &Difference) -> bool {
    d.ours
        .as_ref()
        .is_some_and(|v| v["run"]["facets"].get("parent").is_none())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_event_log_same_lineage_except_the_listed_divergences() {
    let pg_url = common::service_env("DAGSTER_PG_URL");
    let (client, connection) = tokio_postgres::connect(&pg_url, NoTls).await.unwrap();
    tokio::spawn(connection);
    // the snapshot both sides read: every row up to the current last storage id
    let max_id: i64 = client
        .query_one("SELECT coalesce(max(id), 0) FROM event_logs", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        max_id > 0,
        "the testbed's Dagster event log is empty: run testbed/dagster/run_jobs.sh"
    );

    let (ours, skipped) = our_output(&client, max_id).await;
    let (peer_events, peer_errors) = peer_output(&pg_url, max_id, &skipped);
    assert!(
        peer_events.len() > 50,
        "the peer emitted only {} events",
        peer_events.len()
    );

    // every event we emit is a valid OpenLineage 2-0-2 event kind
    for event in &ours {
        if event.get("run").is_some() {
            assert_eq!(event["schemaURL"], CORE_SCHEMA_RUN_EVENT);
        }
    }
    let ours_norm: Vec<Norm> = ours.iter().map(diff::normalize).collect();
    let peer_norm: Vec<Norm> = peer_events.iter().map(diff::normalize).collect();
    let differences = diff::diff(&ours_norm, &peer_norm);
    let (counts, unlisted) = diff::classify_all(&differences, classify);

    // the records the peer's sensor cannot convert (it stops at them for good)
    let mut error_counts = 0;
    for error in &peer_errors {
        let runless = error["runId"].as_str().is_some_and(str::is_empty);
        assert!(
            runless,
            "the peer failed on an event that is not runless, no divergence lists it: {error}"
        );
        error_counts += 1;
    }

    println!(
        "event log rows 1..={max_id}: lineage-bus {} events, dagster-openlineage {} events \
         (+{error_counts} records it raised on); {} differences",
        ours.len(),
        peer_events.len(),
        differences.len()
    );
    for (id, count) in &counts {
        println!("  {id}: {count}");
    }
    if !unlisted.is_empty() {
        // one example per (kind, event type, job type, path)
        let mut shown: BTreeMap<String, (usize, String)> = BTreeMap::new();
        for d in &unlisted {
            let group = format!(
                "{} {} [{}] at `{}`",
                d.kind, d.event_type, d.job_type, d.path
            );
            let example = format!(
                "e.g. {}: ours {} / peer {}",
                d.name,
                short(d.ours.as_ref()),
                short(d.peer.as_ref())
            );
            shown.entry(group).or_insert((0, example)).0 += 1;
        }
        let shown: Vec<String> = shown
            .iter()
            .map(|(group, (count, example))| format!("{count}× {group}\n    {example}"))
            .collect();
        panic!(
            "{} differences from dagster-openlineage are not intended divergences \
             (docs/divergences.md):\n{}",
            unlisted.len(),
            shown.join("\n")
        );
    }

    // the ids used are the documented ones, and the comparison is not vacuous
    let documented = documented_ids();
    for id in DIVERGENCE_IDS {
        assert!(
            documented.contains(*id),
            "divergence {id} is not in docs/divergences.md"
        );
    }
    for id in counts.keys() {
        assert!(
            DIVERGENCE_IDS.contains(id),
            "{id} missing from DIVERGENCE_IDS"
        );
    }
    for id in ["OL-1", "OL-2", "OL-3", "OL-9"] {
        assert!(
            counts.contains_key(id),
            "divergence {id} did not show on the sample jobs' log: the comparison lost coverage"
        );
    }
    let paired = ours_norm.len() as i64
        - differences
            .iter()
            .filter(|d| d.path.is_empty() && d.ours.is_some())
            .count() as i64;
    assert!(paired > 50, "only {paired} events paired with the peer's");
    if !peer_errors.is_empty() {
        assert!(counts.contains_key("OL-15"));
    }
}

fn short(value: Option<&Value>) -> String {
    match value {
        None => "absent".into(),
        Some(v) => {
            let text = v.to_string();
            if text.len() > 160 {
                format!("{}…", &text[..160])
            } else {
                text
            }
        }
    }
}

/// The ids (`OL-n`, `OM-n`) of docs/divergences.md's table rows.
fn documented_ids() -> BTreeSet<String> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/divergences.md"))
            .unwrap();
    doc.lines()
        .filter_map(|line| line.strip_prefix("| "))
        .filter_map(|rest| rest.split(' ').next())
        .filter(|id| id.starts_with("OL-") || id.starts_with("OM-"))
        .map(str::to_owned)
        .collect()
}

/// The peer's events and the records it raised on.
fn peer_output(pg_url: &str, max_id: i64, skipped: &[i64]) -> (Vec<Value>, Vec<Value>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let setup = Command::new(root.join("testbed/peer/setup.sh"))
        .output()
        .unwrap();
    assert!(
        setup.status.success(),
        "testbed/peer/setup.sh failed: {}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let python = String::from_utf8(setup.stdout).unwrap().trim().to_owned();
    let output = Command::new(&python)
        .args(["-W", "ignore"])
        .arg(root.join("testbed/peer/emit_events.py"))
        .args(["--pg-dsn", pg_url, "--max-storage-id", &max_id.to_string()])
        .arg(format!(
            "--skip-ids={}",
            skipped
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the peer's converter failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let value: Value = serde_json::from_str(line).unwrap();
        if value.get("peerError").is_some() {
            errors.push(value);
        } else {
            events.push(value);
        }
    }
    (events, errors)
}

/// lineage-bus's OpenLineage events for the rows `1..=max_id`, in emission order, and the
/// rows left out: runless rows the producer's parser rejects (it dead-letters them; other
/// tests write such rows into the shared event log). A rejected row of a run fails the test.
async fn our_output(client: &tokio_postgres::Client, max_id: i64) -> (Vec<Value>, Vec<i64>) {
    let config = ProcessConfig::default();
    let settings = output_settings(&config).unwrap();
    let topics = config.topics.clone();
    let registry = common::registry();
    let codecs = Codecs {
        events: RecordCodec::for_topic(registry.clone(), &topics.events)
            .await
            .unwrap(),
        operations: RecordCodec::for_topic(registry.clone(), &topics.openmetadata)
            .await
            .unwrap(),
        dead_letters: RecordCodec::for_topic(registry, lineage_schemas::catalog::DEAD_LETTER)
            .await
            .unwrap(),
    };
    let (_sender, receiver) = tokio::sync::mpsc::channel(1);
    let mut processor = LineageProcessor::new(
        LineageState::new(config.resolver.clone()),
        settings,
        topics.clone(),
        std::sync::Arc::new(codecs),
        receiver,
    );
    let rows = client
        .query(
            "SELECT id, event, run_id FROM event_logs WHERE id <= $1 ORDER BY id",
            &[&max_id],
        )
        .await
        .unwrap();
    let mut events = Vec::new();
    let mut skipped = Vec::new();
    for row in rows {
        let (id, text, run_id): (i64, String, Option<String>) =
            (row.get(0), row.get(1), row.get(2));
        let event = match lineage_producers::dagster::parse::parse_event("default", id, &text) {
            Ok(event) => event,
            Err(e) if run_id.as_deref().is_none_or(str::is_empty) => {
                println!("left out (dead-lettered by the producer): {e}");
                skipped.push(id);
                continue;
            }
            Err(e) => panic!("row {id} of a run: {e}"),
        };
        // OL-15: the peer raises on runless materializations and check evaluations and its
        // sensor stops there for good; they are left out of its input (ours are counted)
        if event.run_id.is_none()
            && matches!(
                event.event_type,
                DagsterEventType::AssetMaterialization | DagsterEventType::AssetCheckEvaluation
            )
        {
            skipped.push(id);
        }
        let origin = Origin {
            topic: topics.events.clone(),
            partition: 0,
            offset: id,
        };
        for output in processor.handle(&event, &origin).unwrap() {
            if output.topic == topics.openlineage {
                events.push(serde_json::from_slice(&output.payload.unwrap()).unwrap());
            }
        }
    }
    (events, skipped)
}
