//! `lineage-bus ingest` against the real Dagster webserver of the testbed: the same requests
//! (good ones of each kind and many bad ones) get the same status, content type and body from
//! both; every accepted request is in the events topic exactly once, typed as `produce dagster`
//! reads the row Dagster stored for the same report.
//!
//! Every asset key lives under `lb_conformance/<run id>/`, so Dagster's stored rows of this run
//! are found by that id and no other test's assets are touched. Our records go to a topic of
//! their own (`it.ingest.<uuid>`), so the count is exact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{create_topic, kafka, read_to_end, registry, service_env, unique_topic};
use lineage_producers::dagster::parse::parse_event;
use lineage_producers::ingest::{self, IngestConfig};
use lineage_schemas::RecordCodec;
use lineage_schemas::records::{DagsterEvent, SourceKind, SourcePosition};
use tokio_util::sync::CancellationToken;

/// One request of the set.
struct Case {
    method: &'static str,
    /// Path and query, `{run}` replaced by the run id.
    target: String,
    content_type: Option<&'static str>,
    body: Option<String>,
    /// The asset key an accepted request reports, joined by `/`; `None` for refused ones.
    accepted_key: Option<String>,
    /// Compare the record with Dagster's stored row (`false` for NaN metadata, which equals
    /// nothing).
    compare_stored: bool,
}

fn case(
    method: &'static str,
    target: &str,
    content_type: Option<&'static str>,
    body: Option<&str>,
) -> Case {
    Case {
        method,
        target: target.to_owned(),
        content_type,
        body: body.map(str::to_owned),
        accepted_key: None,
        compare_stored: true,
    }
}

impl Case {
    fn accepts(mut self, key: &str) -> Self {
        self.accepted_key = Some(key.to_owned());
        self
    }

    fn not_compared(mut self) -> Self {
        self.compare_stored = false;
        self
    }

    fn with_run(mut self, run: &str) -> Self {
        self.target = self.target.replace("{run}", run);
        self.body = self.body.map(|b| b.replace("{run}", run));
        self.accepted_key = self.accepted_key.map(|k| k.replace("{run}", run));
        self
    }
}

const JSON: Option<&str> = Some("application/json");

fn cases(run: &str) -> Vec<Case> {
    let m = "/report_asset_materialization/";
    let c = "/report_asset_check/";
    let o = "/report_asset_observation/";
    let bad_m = "/report_asset_materialization/lb_conformance/{run}/refused";
    let bad_c = "/report_asset_check/lb_conformance/{run}/refused";
    let bad_o = "/report_asset_observation/lb_conformance/{run}/refused";
    let rich = r#"{"metadata": {"rows": 10, "ratio": 0.25, "ok": true, "none": null, "text": "é ü",
        "big": 123456789012345678901234567890, "f": 3.0, "tiny": 2.5e-8,
        "json": {"z": [1.5, 1e20, 1e-7, -0.0, "é\u2028\n\""], "a": {"b": {}}}, "list": ["x"], "rows": 11},
        "description": "dé", "partition": "2024-01-01", "data_version": "v1"}"#;
    let cases = vec![
        // Materializations that Dagster accepts.
        case("POST", &format!("{m}lb_conformance/{{run}}/m1"), None, None).accepts("lb_conformance/{run}/m1"),
        case("POST", &format!("{m}lb_conformance/{{run}}/m2"), JSON, Some(rich)).accepts("lb_conformance/{run}/m2"),
        case("POST", m, JSON, Some(r#"{"asset_key": ["lb_conformance", "{run}", "m3"], "metadata": {"rows": 10}}"#)).accepts("lb_conformance/{run}/m3"),
        case("POST", m, JSON, Some(r#"{"asset_key": "lb_conformance/{run}/m4"}"#)).accepts("lb_conformance/{run}/m4"),
        case("POST", &format!("{m}?asset_key=lb_conformance.{{run}}.m5&partition=p1&description=from+query&metadata=%7B%22a%22%3A%201%7D"), None, None).accepts("lb_conformance/{run}/m5"),
        case("POST", &format!("{m}?asset_key=%5B%22lb_conformance%22%2C%22{{run}}%22%2C%22m6%22%5D"), None, None).accepts("lb_conformance/{run}/m6"),
        case("POST", &format!("{m}lb_conformance/{{run}}/m%2F7"), None, None).accepts("lb_conformance/{run}/m/7"),
        case("POST", &format!("{m}lb_conformance/{{run}}/m8"), JSON, Some(r#"{"data_version": 5, "description": null}"#)).accepts("lb_conformance/{run}/m8"),
        case("POST", &format!("{o}lb_conformance/{{run}}/o3"), JSON, Some(r#"{"data_version": [1, 2.5], "description": "list version"}"#)).accepts("lb_conformance/{run}/o3"),
        case("POST", &format!("{m}lb_conformance/{{run}}/m13"), JSON, Some(r#"{"data_version": true}"#)).accepts("lb_conformance/{run}/m13"),
        case("POST", bad_o, JSON, Some(r#"{"data_version": {"v": 1}, "partition": 5}"#)),
        case("POST", &format!("{m}lb_conformance/{{run}}/m9"), JSON, Some(r#"["x"]"#)).accepts("lb_conformance/{run}/m9"),
        case("POST", &format!("{m}lb_conformance/{{run}}/m%C3%A910"), None, None).accepts("lb_conformance/{run}/mé10"),
        case("POST", &format!("{m}lb_conformance/{{run}}/m11"), JSON, Some("\u{feff}{\"partition\": \"bom\"}")).accepts("lb_conformance/{run}/m11"),
        case("POST", &format!("{m}lb_conformance/{{run}}/m12"), JSON, Some(r#"{"metadata": {"nan": NaN, "inf": -Infinity}}"#)).accepts("lb_conformance/{run}/m12").not_compared(),
        case("POST", bad_m, Some("Application/JSON"), Some("{}")),
        case("POST", &format!("{bad_c}?passed=%22x%22&check_name=c"), None, None),
        // Materializations that Dagster refuses.
        case("POST", m, None, None),
        case("POST", &format!("{m}?asset_key="), None, None),
        case("POST", bad_m, JSON, Some("{bad")),
        case("POST", bad_m, JSON, Some("")),
        case("POST", bad_m, JSON, Some("5")),
        case("POST", bad_m, Some("text/plain"), Some("{}")),
        case("POST", bad_m, Some("application/json; charset=utf-8"), Some("{}")),
        case("POST", bad_m, JSON, Some(r#"{"metadata": "x"}"#)),
        case("POST", bad_m, JSON, Some(r#"{"metadata": [1, 2]}"#)),
        case("POST", bad_m, JSON, Some(r#"{"partition": 5}"#)),
        case("POST", bad_m, JSON, Some(r#"{"description": ["x"], "partition": {"a": null}}"#)),
        case("POST", &format!("{bad_m}?metadata={{bad"), None, None),
        case("POST", &format!("{bad_m}?metadata=%7B%22a%22%3A1%7Dx"), None, None),
        case("POST", m, JSON, Some(r#"{"asset_key": 5}"#)),
        case("POST", m, JSON, Some(r#"{"asset_key": ["lb_conformance", 5]}"#)),
        case("POST", &format!("{m}?asset_key=[1]"), None, None),
        case("POST", bad_m, JSON, Some(r#""my metadata""#)),
        case("PUT", bad_m, None, None),
        case("DELETE", bad_c, None, None),
        case("PATCH", bad_o, JSON, Some("{}")),
        case("POST", "/report_asset_materialization", None, None),
        // Checks that Dagster accepts (an undeclared check too).
        case("POST", &format!("{c}lb_conformance/{{run}}/c1?passed=true&check_name=c1"), None, None).accepts("lb_conformance/{run}/c1"),
        case("POST", &format!("{c}lb_conformance/{{run}}/c2"), JSON, Some(r#"{"passed": false, "check_name": "c2", "severity": "WARN", "metadata": {"z": 1, "a": "x", "m": {"q": 1, "b": 2}}, "partition": "p"}"#)).accepts("lb_conformance/{run}/c2"),
        case("POST", &format!("{c}lb_conformance/{{run}}/c3"), JSON, Some(r#"{"passed": true, "check_name": "no_such_check", "severity": null}"#)).accepts("lb_conformance/{run}/c3"),
        case("POST", c, JSON, Some(r#"{"asset_key": ["lb_conformance", "{run}", "c4"], "passed": true, "check_name": "c"}"#)).accepts("lb_conformance/{run}/c4"),
        // Checks that Dagster refuses.
        case("POST", bad_c, None, None),
        case("POST", &format!("{bad_c}?passed=yes"), None, None),
        case("POST", &format!("{bad_c}?passed=true"), None, None),
        case("POST", &format!("{bad_c}?passed=true&check_name=c&severity=BAD"), None, None),
        case("POST", bad_c, JSON, Some(r#"{"passed": "true", "check_name": "c"}"#)),
        case("POST", bad_c, JSON, Some(r#"{"passed": true, "check_name": 5}"#)),
        case("POST", bad_c, JSON, Some(r#"{"passed": 1.5e20, "check_name": "c"}"#)),
        case("POST", bad_c, JSON, Some(r#"{"passed": [true, null, 1.0, {"b": 1, "a": [2]}], "check_name": "c"}"#)),
        case("POST", bad_c, JSON, Some(r#"{"passed": true, "check_name": "c", "severity": {"a": "it's"}}"#)),
        case("POST", bad_c, JSON, Some(r#"{"passed": true, "check_name": "c", "severity": "it's \"q\" \u00a0\u2028é\t\u0001\ud83d\ude00\\"}"#)),
        case("POST", bad_c, JSON, Some(r#"{"passed": true, "check_name": "c", "metadata": "x"}"#)),
        case("POST", bad_c, JSON, Some(r#"{"passed": 5, "check_name": null, "metadata": 3}"#)),
        case("POST", &format!("{c}?passed=true&check_name=c"), None, None),
        case("POST", bad_c, JSON, Some(r#"["passed"]"#)),
        // Observations.
        case("POST", &format!("{o}lb_conformance/{{run}}/o1"), JSON, Some(r#"{"metadata": {"k": "v", "n": 1.5}, "partition": "p1", "description": "d", "data_version": "dv"}"#)).accepts("lb_conformance/{run}/o1"),
        case("POST", &format!("{o}?asset_key=lb_conformance/{{run}}/o2"), None, None).accepts("lb_conformance/{run}/o2"),
        case("POST", o, None, None),
        case("POST", bad_o, JSON, Some(r#"{"partition": 5, "description": 1.5}"#)),
        case("POST", bad_o, JSON, Some(r#"{"metadata": "x"}"#)),
        case("POST", &format!("{bad_o}?metadata=%5B1%5D"), None, None),
    ];
    cases.into_iter().map(|c| c.with_run(run)).collect()
}

/// Status, content type and body of one answer.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: String,
}

async fn send(client: &reqwest::Client, base: &str, case: &Case) -> Answer {
    let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
    let mut request = client.request(method, format!("{base}{}", case.target));
    if let Some(content_type) = case.content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(body) = &case.body {
        request = request.body(body.clone());
    }
    let response = request.send().await.unwrap();
    Answer {
        status: response.status().as_u16(),
        content_type: response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: response.text().await.unwrap(),
    }
}

/// The fields a record shares with Dagster's stored event: everything but the tenant, the
/// source position and the time.
fn comparable(event: &DagsterEvent) -> DagsterEvent {
    DagsterEvent {
        tenant: String::new(),
        source: SourcePosition {
            kind: SourceKind::Other,
            storage_id: None,
            shard: None,
            cursor: None,
        },
        timestamp_ms: 0,
        ..event.clone()
    }
}

async fn start_ingest(topic: &str, stop: &CancellationToken) -> ingest::RunningIngest {
    let config = IngestConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        events_topic: topic.to_owned(),
        ..IngestConfig::default()
    };
    ingest::start(
        config,
        "lb-conformance".to_owned(),
        &kafka(),
        registry(),
        stop.clone(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dagster_and_ingest_answer_alike_and_every_accepted_report_is_published_once() {
    let dagster = service_env("DAGSTER_GRAPHQL_URL")
        .trim_end_matches('/')
        .trim_end_matches("/graphql")
        .to_owned();
    let run = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let topic = unique_topic("ingest");
    create_topic(&topic, 3).await;
    let stop = CancellationToken::new();
    let running = start_ingest(&topic, &stop).await;
    let ours = format!("http://{}", running.local_addr());
    // A fresh connection per request: uvicorn closes a connection after a 500.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();

    let started_ms = chrono_now_ms();
    let cases = cases(&run);
    let mut mismatches = Vec::new();
    let mut check_400s = 0;
    for case in &cases {
        let theirs = send(&client, &dagster, case).await;
        let mine = send(&client, &ours, case).await;
        assert_eq!(
            theirs.status == 200,
            case.accepted_key.is_some(),
            "Dagster answered {theirs:?} to {} {}",
            case.method,
            case.target
        );
        if theirs.status == 400 && case.target.starts_with("/report_asset_check/") {
            check_400s += 1;
        }
        if theirs != mine {
            mismatches.push(format!(
                "{} {} {:?} {:?}\n  dagster: {theirs:?}\n  ingest:  {mine:?}",
                case.method, case.target, case.content_type, case.body
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} different answers:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    let refused = cases.iter().filter(|c| c.accepted_key.is_none()).count();
    assert!(refused >= 35, "the set has {refused} bad requests");

    // The requests are counted by endpoint and status, and timed.
    let metrics = metrics_text(&client).await;
    let line = format!(
        "lineage_bus_ingest_requests_total{{endpoint=\"report_asset_check\",status=\"400\"}} {check_400s}"
    );
    assert!(
        check_400s >= 10 && metrics.contains(&line),
        "{line} not in\n{metrics}"
    );
    assert!(
        metrics.contains("lineage_bus_ingest_request_duration_seconds_count{endpoint=\"report_asset_materialization\"}"),
        "{metrics}"
    );

    // Dagster's UI answers GET and HEAD; ingest has none and says so.
    let get = case(
        "GET",
        "/report_asset_materialization/lb_conformance/x",
        None,
        None,
    );
    assert_eq!(send(&client, &ours, &get).await.status, 405);
    assert_eq!(
        send(&client, &ours, &case("GET", "/other", None, None))
            .await
            .status,
        404
    );

    // Every accepted report is in the topic exactly once.
    stop.cancel();
    running.wait().await.unwrap();
    let codec = RecordCodec::<DagsterEvent>::for_topic(registry(), &topic)
        .await
        .unwrap();
    let mut published: BTreeMap<String, Vec<DagsterEvent>> = BTreeMap::new();
    for (key, value) in read_to_end(&topic).await {
        let event = codec.decode(&value.unwrap()).await.unwrap();
        assert_eq!(key, event.kafka_key());
        assert_eq!(event.tenant, "lb-conformance");
        assert_eq!(event.source.kind, SourceKind::IngestApi);
        assert!(event.run_id.is_none());
        assert!(event.timestamp_ms >= started_ms, "{event:?}");
        published.entry(key).or_default().push(event);
    }
    let accepted: Vec<&Case> = cases.iter().filter(|c| c.accepted_key.is_some()).collect();
    for case in &accepted {
        let key = case.accepted_key.as_ref().unwrap();
        let count = published.get(key).map_or(0, Vec::len);
        assert_eq!(count, 1, "{key} published {count} times");
    }
    assert_eq!(published.len(), accepted.len(), "{:?}", published.keys());
    let m8 = &published[&format!("lb_conformance/{run}/m8")][0];
    assert_eq!(
        m8.tags.get("dagster/data_version").map(String::as_str),
        Some("5")
    );

    // Each record equals what `produce dagster` reads from the row Dagster stored.
    let (pg, connection) =
        tokio_postgres::connect(&service_env("DAGSTER_PG_URL"), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let rows = pg
        .query(
            "SELECT id, event FROM event_logs WHERE run_id = '' AND event LIKE $1 ORDER BY id",
            &[&format!("%{run}%")],
        )
        .await
        .unwrap();
    let mut stored: BTreeMap<String, DagsterEvent> = BTreeMap::new();
    for row in rows {
        let (id, text): (i64, String) = (row.get(0), row.get(1));
        if let Ok(event) = parse_event("dagster", id, &text) {
            stored.insert(event.kafka_key(), event);
        }
    }
    let mut compared = 0;
    for case in accepted.iter().filter(|c| c.compare_stored) {
        let key = case.accepted_key.as_ref().unwrap();
        let theirs = stored
            .get(key)
            .unwrap_or_else(|| panic!("Dagster stored no {key}"));
        let ours = &published[key][0];
        assert_eq!(comparable(ours), comparable(theirs), "{key}");
        compared += 1;
    }
    assert!(compared >= 12, "compared {compared}");
    // The rich case really carries typed metadata.
    let m2 = &published[&format!("lb_conformance/{run}/m2")][0];
    assert!(m2.metadata.len() >= 10, "{m2:?}");
}

/// What the admin server's `/metrics` serves in this process.
async fn metrics_text(client: &reqwest::Client) -> String {
    let listener = lineage_bus_core::admin::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let address = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(lineage_bus_core::admin::serve(
        listener,
        lineage_bus_core::Health::default(),
        stop.clone(),
    ));
    let text = client
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    stop.cancel();
    server.await.unwrap().unwrap();
    text
}

fn chrono_now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}
