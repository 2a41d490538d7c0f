//! `lineage-bus sink openlineage` against the testbed's Kafka, Schema Registry and Marquez
//! (`MARQUEZ_URL`; here the Marquez contract server, see testbed/marquez_contract): delivery
//! visible through Marquez's read API, a crash between delivery and commit, a backend that is
//! down for a while, and a replay into a second, empty Marquez.
//!
//! The backend-down and replay tests use a SECOND Marquez instance of their own on port 15100
//! (database/journal `marquez_replay`), started and stopped by these tests; the shared one on
//! `MARQUEZ_URL` is never stopped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../sinks/tests/common/mod.rs"]
mod kit;
#[path = "common/process.rs"]
mod process;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::time::Duration;

use kit::events::{Dataset, pipeline_run};
use kit::{
    committed, create_topic, eventually, free_port, metric, produce, produce_raw, scrape,
    service_env, sink_config, start_sink, unique, wait_for_zero_lag,
};
use process::Process;
use serde_json::Value;

const REPLAY_PORT: u16 = 15100;
const REPLAY_ADMIN_PORT: u16 = 15101;

/// Serializes the tests that use (and stop/start) the second Marquez instance.
static SECOND_MARQUEZ: LazyLock<tokio::sync::Mutex<()>> =
    LazyLock::new(|| tokio::sync::Mutex::new(()));

fn replay_url() -> String {
    format!("http://127.0.0.1:{REPLAY_PORT}")
}

/// `marquez.sh start|stop` of the second instance.
fn second_marquez(action: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/testbed/services/marquez.sh");
    let status = Command::new(script)
        .arg(action)
        .env("MARQUEZ_DB", "marquez_replay")
        .env("TESTBED_MARQUEZ_PORT", REPLAY_PORT.to_string())
        .env("TESTBED_MARQUEZ_ADMIN_PORT", REPLAY_ADMIN_PORT.to_string())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "marquez.sh {action} of the second instance failed"
    );
}

/// Starts the second instance with no data (the contract server's journal removed while
/// stopped; for a real Marquez the check below fails loudly if its database is not empty).
fn fresh_second_marquez() {
    second_marquez("stop");
    let state = std::env::var("TESTBED_STATE_DIR").map_or_else(
        |_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/testbed/.state")),
        PathBuf::from,
    );
    let journal = state.join("marquez-contract/marquez_replay.jsonl");
    if journal.exists() {
        std::fs::remove_file(&journal).unwrap();
    }
    second_marquez("start");
}

async fn get(url: &str) -> Value {
    let response = reqwest::get(url).await.unwrap();
    assert!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// Jobs of `namespace`: (name, latest run state), sorted.
async fn jobs(base: &str, namespace: &str) -> Vec<(String, String)> {
    let url = format!("{base}/api/v1/namespaces/{namespace}/jobs?limit=1000");
    let response = reqwest::get(&url).await.unwrap();
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Vec::new();
    }
    let body: Value = response.json().await.unwrap();
    let mut jobs: Vec<(String, String)> = body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| {
            (
                job["name"].as_str().unwrap().to_owned(),
                job["latestRun"]["state"]
                    .as_str()
                    .unwrap_or("NONE")
                    .to_owned(),
            )
        })
        .collect();
    jobs.sort();
    jobs
}

/// The lineage graph around `node` as (node id, in-edges, out-edges), sorted.
async fn graph(base: &str, node: &str) -> BTreeSet<(String, Vec<String>, Vec<String>)> {
    let url = format!("{base}/api/v1/lineage?nodeId={}&depth=20", urlencode(node));
    let body = get(&url).await;
    let edges = |node: &Value, which: &str| {
        let mut edges: Vec<String> = node[which]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}->{}",
                    e["origin"].as_str().unwrap(),
                    e["destination"].as_str().unwrap()
                )
            })
            .collect();
        edges.sort();
        edges
    };
    body["graph"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| {
            (
                node["id"].as_str().unwrap().to_owned(),
                edges(node, "inEdges"),
                edges(node, "outEdges"),
            )
        })
        .collect()
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Events of `namespace` the backend stored (duplicates included), oldest first.
async fn stored_events(base: &str, namespace: &str) -> Vec<Value> {
    let body = get(&format!(
        "{base}/api/v1/events/lineage?limit=100000&sortDirection=asc"
    ))
    .await;
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["job"]["namespace"] == namespace)
        .cloned()
        .collect()
}

const LAKE: &str = "s3://lake";
const WAREHOUSE: &str = "postgres://warehouse:5432";
const ORDER_COLUMNS: &[(&str, &str)] = &[("id", "bigint"), ("amount", "decimal")];
const REVENUE_COLUMNS: &[(&str, &str)] = &[("day", "date"), ("revenue", "decimal")];

/// Dataset names of one test (unique, so graphs of other tests never touch them).
struct Names {
    raw: String,
    orders: String,
    revenue: String,
}

fn names(namespace: &str) -> Names {
    Names {
        raw: format!("raw/{namespace}/orders"),
        orders: format!("{namespace}.public.orders"),
        revenue: format!("{namespace}.public.daily_revenue"),
    }
}

/// Three runs of a two-step pipeline raw → orders → daily_revenue in `namespace`.
fn history(namespace: &str) -> Vec<(String, Value)> {
    let n = names(namespace);
    let raw: Dataset<'_> = (LAKE, &n.raw, ORDER_COLUMNS);
    let orders: Dataset<'_> = (WAREHOUSE, &n.orders, ORDER_COLUMNS);
    let revenue: Dataset<'_> = (WAREHOUSE, &n.revenue, REVENUE_COLUMNS);
    let mut events = Vec::new();
    for minute in 0..3 {
        events.extend(pipeline_run(
            namespace,
            "etl",
            &[
                ("orders", &[raw], &[orders]),
                ("daily_revenue", &[orders], &[revenue]),
            ],
            minute,
        ));
    }
    events
}

fn expected_jobs() -> Vec<(String, String)> {
    let mut jobs = vec![
        ("etl".to_owned(), "COMPLETED".to_owned()),
        ("etl.daily_revenue".to_owned(), "COMPLETED".to_owned()),
        ("etl.orders".to_owned(), "COMPLETED".to_owned()),
    ];
    jobs.sort();
    jobs
}

async fn topics(partitions: i32) -> (String, String) {
    let (topic, dlq) = (unique("ol"), unique("dlq"));
    create_topic(&topic, partitions).await;
    create_topic(&dlq, 1).await;
    (topic, dlq)
}

#[tokio::test]
async fn events_reach_marquez_as_jobs_runs_and_lineage() {
    let marquez = service_env("MARQUEZ_URL");
    let (topic, dlq) = topics(3).await;
    let namespace = unique("ns").replace('.', "-");
    let events = history(&namespace);
    produce(&topic, &events, None).await;
    let config = sink_config(&topic, &dlq, &marquez);
    let group = config.group();
    let mut sink = start_sink(config, None);

    eventually(Duration::from_secs(30), "all events stored", || async {
        stored_events(&marquez, &namespace).await.len() >= events.len()
    })
    .await;
    eventually(Duration::from_secs(10), "ready", || {
        let ready = *sink.ready.borrow_and_update();
        async move { ready }
    })
    .await;
    eventually(Duration::from_secs(10), "offsets committed", || async {
        committed(&group, &topic, 3)
            .await
            .iter()
            .filter(|&&o| o > 0)
            .sum::<i64>()
            == events.len() as i64
    })
    .await;
    let summary = sink.stop().await;
    assert_eq!(summary.delivered, events.len() as u64);
    assert_eq!(
        summary.dead_lettered, 0,
        "every event is valid OpenLineage 2-0-2"
    );

    assert_eq!(jobs(&marquez, &namespace).await, expected_jobs());
    let stored = stored_events(&marquez, &namespace).await;
    let sent: Vec<&Value> = events.iter().map(|(_, e)| e).collect();
    assert_eq!(stored.len(), sent.len(), "each event exactly once");
    // The events API lists by eventTime, which is the order they were produced in.
    assert_eq!(stored.iter().collect::<Vec<_>>(), sent);
    let n = names(&namespace);
    let graph = graph(&marquez, &format!("dataset:{WAREHOUSE}:{}", n.orders)).await;
    let ids: BTreeSet<&str> = graph.iter().map(|(id, _, _)| id.as_str()).collect();
    for id in [
        format!("job:{namespace}:etl.orders"),
        format!("job:{namespace}:etl.daily_revenue"),
        format!("dataset:{LAKE}:{}", n.raw),
        format!("dataset:{WAREHOUSE}:{}", n.orders),
        format!("dataset:{WAREHOUSE}:{}", n.revenue),
    ] {
        assert!(ids.contains(id.as_str()), "{id} missing from {ids:?}");
    }
    let orders_job = graph
        .iter()
        .find(|(id, _, _)| id.ends_with(":etl.orders"))
        .unwrap();
    assert!(
        orders_job
            .2
            .iter()
            .any(|e| e.ends_with(&format!("dataset:{WAREHOUSE}:{}", n.orders))),
        "etl.orders writes orders: {orders_job:?}"
    );
}

/// The binary, as a separate process: `sink openlineage` with settings from the environment.
fn sink_process(
    topic: &str,
    dlq: &str,
    url: &str,
    group: &str,
    commit: &str,
    extra: &[&str],
) -> Process {
    Process(
        sink_command(topic, dlq, url, group, commit, extra)
            .spawn()
            .unwrap(),
    )
}

/// The command of [`sink_process`], to add to.
fn sink_command(
    topic: &str,
    dlq: &str,
    url: &str,
    group: &str,
    commit: &str,
    extra: &[&str],
) -> Command {
    let mut command = process::lineage_bus(service_env);
    command
        .args(["sink", "openlineage", "--group", group])
        .args(extra)
        .env_remove("LINEAGE_BUS_CONFIG")
        .env("LINEAGE_BUS__ADMIN__LISTEN", "127.0.0.1:0")
        .env("LINEAGE_BUS__SINKS__OPENLINEAGE__TOPIC", topic)
        .env("LINEAGE_BUS__SINKS__OPENLINEAGE__DEAD_LETTER_TOPIC", dlq)
        .env("LINEAGE_BUS__SINKS__OPENLINEAGE__COMMIT_INTERVAL", commit)
        .env(
            "LINEAGE_BUS__SINKS__OPENLINEAGE__RETRY__INITIAL_BACKOFF",
            "100ms",
        )
        .env("LINEAGE_BUS__SINKS__OPENLINEAGE__RETRY__MAX_BACKOFF", "1s")
        // OpenLineage's own convention, honoured when the config leaves `url` unset.
        .env("OPENLINEAGE_URL", url)
        .stdout(Stdio::null());
    command
}

#[tokio::test]
async fn a_crash_between_delivery_and_commit_redelivers_harmlessly() {
    let marquez = service_env("MARQUEZ_URL");
    let (topic, dlq) = topics(2).await;
    let namespace = unique("ns").replace('.', "-");
    let events = history(&namespace);
    produce(&topic, &events, None).await;
    let group = unique("group");

    // Commits only every hour: everything is delivered, nothing committed, then SIGKILL.
    let mut crashing = sink_process(&topic, &dlq, &marquez, &group, "1h", &[]);
    eventually(Duration::from_secs(30), "first delivery", || async {
        stored_events(&marquez, &namespace).await.len() >= events.len()
    })
    .await;
    crashing.0.kill().unwrap();
    crashing.0.wait().unwrap();
    assert!(
        committed(&group, &topic, 2).await.iter().all(|&o| o < 0),
        "nothing was committed before the crash"
    );

    let mut restarted = sink_process(&topic, &dlq, &marquez, &group, "200ms", &[]);
    // The killed member holds its partitions until its session times out (45 s by default).
    eventually(
        Duration::from_secs(90),
        "redelivered and committed",
        || async {
            committed(&group, &topic, 2)
                .await
                .iter()
                .filter(|&&o| o > 0)
                .sum::<i64>()
                == events.len() as i64
        },
    )
    .await;
    // SIGTERM: a clean stop.
    Command::new("kill")
        .args(["-TERM", &restarted.0.id().to_string()])
        .status()
        .unwrap();
    assert!(
        restarted.0.wait().unwrap().success(),
        "clean exit on SIGTERM"
    );

    let stored = stored_events(&marquez, &namespace).await;
    assert_eq!(
        stored.len(),
        2 * events.len(),
        "every event twice: redelivered, none lost"
    );
    // Redelivery replays each run in order, so Marquez ends in the same state.
    assert_eq!(jobs(&marquez, &namespace).await, expected_jobs());
    for (_, event) in &events {
        let copies = stored.iter().filter(|e| *e == event).count();
        assert_eq!(copies, 2, "each event delivered before and after the crash");
    }
}

#[tokio::test]
async fn a_backend_down_for_a_while_loses_nothing_and_delivery_resumes_by_itself() {
    let _second = SECOND_MARQUEZ.lock().await;
    second_marquez("start");
    let (topic, dlq) = topics(3).await;
    let namespace = unique("ns").replace('.', "-");
    let events = history(&namespace);
    let (first, rest) = events.split_at(events.len() / 3);
    let config = sink_config(&topic, &dlq, &replay_url());
    let group = config.group();
    let mut sink = start_sink(config, None);
    produce(&topic, first, None).await;
    eventually(Duration::from_secs(30), "first part delivered", || async {
        stored_events(&replay_url(), &namespace).await.len() >= first.len()
    })
    .await;

    second_marquez("stop");
    produce(&topic, rest, None).await;
    eventually(
        Duration::from_secs(15),
        "not ready while the backend is down",
        || {
            let ready = *sink.ready.borrow_and_update();
            async move { !ready }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stuck = committed(&group, &topic, 3).await;
    assert!(
        stuck.iter().filter(|&&o| o > 0).sum::<i64>() < events.len() as i64,
        "nothing undelivered is committed: {stuck:?}"
    );
    second_marquez("start");

    eventually(
        Duration::from_secs(60),
        "delivery resumed by itself",
        || async { stored_events(&replay_url(), &namespace).await.len() >= events.len() },
    )
    .await;
    eventually(Duration::from_secs(10), "all committed", || async {
        committed(&group, &topic, 3)
            .await
            .iter()
            .filter(|&&o| o > 0)
            .sum::<i64>()
            == events.len() as i64
    })
    .await;
    let summary = sink.stop().await;
    assert_eq!(
        summary.dead_lettered, 0,
        "a failing backend is retried, never skipped"
    );
    let stored = stored_events(&replay_url(), &namespace).await;
    let sent: Vec<&Value> = events.iter().map(|(_, e)| e).collect();
    assert_eq!(
        stored.iter().collect::<Vec<_>>(),
        sent,
        "nothing lost, no duplicates"
    );
    assert_eq!(jobs(&replay_url(), &namespace).await, expected_jobs());
}

#[tokio::test]
async fn a_replay_into_an_empty_marquez_yields_the_same_graph() {
    let _second = SECOND_MARQUEZ.lock().await;
    let marquez = service_env("MARQUEZ_URL");
    let (topic, dlq) = topics(3).await;
    let namespace = unique("ns").replace('.', "-");
    let events = history(&namespace);
    produce(&topic, &events, None).await;
    // The live sink fills the shared Marquez.
    let live = start_sink(sink_config(&topic, &dlq, &marquez), None);
    eventually(Duration::from_secs(30), "live delivery", || async {
        stored_events(&marquez, &namespace).await.len() >= events.len()
    })
    .await;
    live.stop().await;

    fresh_second_marquez();
    let namespaces = get(&format!("{}/api/v1/namespaces", replay_url())).await;
    assert!(
        namespaces["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["name"] == "default"),
        "the second Marquez starts empty: {namespaces}"
    );
    // A replay under a new group from the beginning, stopping once caught up.
    let replay_group = unique("replay");
    let mut replay = sink_process(
        &topic,
        &dlq,
        &replay_url(),
        &replay_group,
        "200ms",
        &["--from", "earliest", "--until-caught-up"],
    );
    let status = tokio::task::spawn_blocking(move || replay.0.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "the replay exits 0 once caught up");
    assert_eq!(
        committed(&replay_group, &topic, 3)
            .await
            .iter()
            .filter(|&&o| o > 0)
            .sum::<i64>(),
        events.len() as i64
    );

    assert_eq!(
        jobs(&replay_url(), &namespace).await,
        jobs(&marquez, &namespace).await
    );
    assert_eq!(jobs(&replay_url(), &namespace).await, expected_jobs());
    for node in [
        format!("dataset:{WAREHOUSE}:{}", names(&namespace).orders),
        format!("job:{namespace}:etl.daily_revenue"),
    ] {
        let live_graph = graph(&marquez, &node).await;
        assert!(!live_graph.is_empty());
        assert_eq!(
            graph(&replay_url(), &node).await,
            live_graph,
            "graph around {node}"
        );
    }
}

#[tokio::test]
async fn the_binary_serves_delivery_dead_letter_latency_in_flight_and_lag_metrics() {
    let marquez = service_env("MARQUEZ_URL");
    let (topic, dlq) = topics(3).await;
    let namespace = unique("ns").replace('.', "-");
    let events = history(&namespace);
    produce(&topic, &events, None).await;
    // Not an OpenLineage run event: Marquez rejects it (422), the sink dead-letters it.
    produce_raw(&topic, "run:bad/job", br#"{"eventType":"START"}"#).await;
    let admin = format!("127.0.0.1:{}", free_port());
    let name = unique("metrics").replace('.', "_");
    let group = unique("group");
    let _sink = Process(
        sink_command(&topic, &dlq, &marquez, &group, "200ms", &[])
            .env("LINEAGE_BUS__ADMIN__LISTEN", &admin)
            .env("LINEAGE_BUS__SINKS__OPENLINEAGE__NAME", &name)
            .spawn()
            .unwrap(),
    );
    let total = events.len() as i64 + 1;
    eventually(Duration::from_secs(60), "every event committed", || async {
        committed(&group, &topic, 3)
            .await
            .iter()
            .filter(|&&o| o > 0)
            .sum::<i64>()
            == total
    })
    .await;
    let labels = [("sink", "openlineage"), ("destination", name.as_str())];
    // The partitions that got records report a lag, 0 once delivered.
    let used: Vec<i32> = (0..3)
        .zip(committed(&group, &topic, 3).await)
        .filter_map(|(p, offset)| (offset > 0).then_some(p))
        .collect();
    assert!(!used.is_empty());
    wait_for_zero_lag(&admin, &labels, &used).await;
    let text = scrape(&admin).await;
    let value = |name: &str, extra: &[(&str, &str)]| {
        let mut series = labels.to_vec();
        series.extend_from_slice(extra);
        metric(&text, name, &series).unwrap_or_else(|| panic!("{name} {series:?} missing:\n{text}"))
    };
    assert_eq!(
        value(
            "lineage_bus_sink_records_total",
            &[("outcome", "delivered")]
        ),
        events.len() as f64
    );
    assert_eq!(
        value(
            "lineage_bus_sink_records_total",
            &[("outcome", "dead_lettered")]
        ),
        1.0
    );
    assert!(
        value(
            "lineage_bus_sink_request_duration_seconds_count",
            &[("result", "success")]
        ) >= events.len() as f64
    );
    assert_eq!(
        value(
            "lineage_bus_sink_request_duration_seconds_count",
            &[("result", "permanent")]
        ),
        1.0
    );
    assert!(
        value(
            "lineage_bus_sink_request_duration_seconds_bucket",
            &[("le", "0.5")]
        ) > 0.0
    );
    assert_eq!(value("lineage_bus_sink_requests_in_flight", &[]), 0.0);
    assert_eq!(value("lineage_bus_sink_paused_partitions", &[]), 0.0);
}
