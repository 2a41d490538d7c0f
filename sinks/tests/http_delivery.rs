//! Component tests of `sink openlineage`: the real consumer loop on the testbed's Kafka (and
//! Schema Registry, for dead letters), the backend played by `wiremock`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::events::{dataset_event, dataset_key, pipeline_run, run_event, run_id, run_key};
use common::{
    committed, create_topic, dead_letters, eventually, produce, produce_raw, sink_config,
    start_sink, unique,
};
use lineage_schemas::records::DeadLetterKind;
use serde_json::Value;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const ENDPOINT: &str = "/api/v1/lineage";

/// The POST requests a mock server received (the readiness probe sends HEAD), in order.
async fn posts(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method == wiremock::http::Method::POST)
        .collect()
}

/// The events a mock server received, in arrival order.
async fn received(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.method == wiremock::http::Method::POST && r.url.path() == ENDPOINT)
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

fn job_and_type(event: &Value) -> (String, String) {
    (
        event["job"]["name"].as_str().unwrap_or_default().to_owned(),
        event["eventType"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn topics() -> (String, String) {
    let (topic, dlq) = (unique("ol"), unique("dlq"));
    create_topic(&topic, 3).await;
    create_topic(&dlq, 1).await;
    (topic, dlq)
}

#[tokio::test]
async fn a_503_is_retried_and_the_event_delivered_once_with_bearer_and_offsets_committed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(ENDPOINT))
        .respond_with(ResponseTemplate::new(503).set_body_string("warming up"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(ENDPOINT))
        .and(header("authorization", "Bearer test-key"))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(201))
        .with_priority(2)
        .mount(&server)
        .await;
    let (topic, dlq) = topics().await;
    let mut config = sink_config(&topic, &dlq, &server.uri());
    config.api_key = Some("test-key".to_owned().into());
    let group = config.group();
    let event = run_event(
        "START",
        "2024-05-01T10:00:00Z",
        &run_id(),
        "dagster",
        "daily_etl",
        &[],
        &[],
        None,
    );
    produce(
        &topic,
        &[(run_key("dagster", "daily_etl"), event.clone())],
        None,
    )
    .await;

    let sink = start_sink(config, None);
    eventually(
        Duration::from_secs(30),
        "the event is delivered",
        || async { received(&server).await.len() >= 2 },
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "the offset is committed",
        || async { committed(&group, &topic, 3).await.contains(&1) },
    )
    .await;
    let summary = sink.stop().await;

    let bodies = received(&server).await;
    assert_eq!(bodies.len(), 2, "one 503, one 201, no more");
    assert_eq!(bodies[0], event);
    assert_eq!(bodies[1], event);
    assert_eq!(summary.delivered, 1);
    assert_eq!(summary.dead_lettered, 0);
    assert!(dead_letters(&dlq, 0).await.is_empty());
    // The retry is counted by reason (what `/metrics` serves: the default registry).
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&prometheus::gather())
        .unwrap();
    let retried = common::metric(
        &text,
        "lineage_bus_sink_retries_total",
        &[
            ("sink", "openlineage"),
            ("destination", "test"),
            ("reason", "server_error"),
        ],
    );
    assert!(retried >= Some(1.0), "{text}");
}

#[tokio::test]
async fn retry_after_of_a_429_is_honoured() {
    let server = MockServer::start().await;
    let times = Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let first = Arc::new(AtomicUsize::new(0));
    let (t, f) = (times.clone(), first.clone());
    Mock::given(method("POST"))
        .respond_with(move |_: &Request| {
            t.lock().unwrap().push(Instant::now());
            if f.fetch_add(1, Ordering::SeqCst) == 0 {
                ResponseTemplate::new(429).insert_header("retry-after", "2")
            } else {
                ResponseTemplate::new(201)
            }
        })
        .mount(&server)
        .await;
    let (topic, dlq) = topics().await;
    let config = sink_config(&topic, &dlq, &server.uri());
    let event = dataset_event(
        "2024-05-01T10:00:00Z",
        &("postgres://db:5432", "public.orders", &[("id", "bigint")]),
    );
    produce(
        &topic,
        &[(dataset_key("postgres://db:5432", "public.orders"), event)],
        None,
    )
    .await;
    let sink = start_sink(config, None);
    eventually(
        Duration::from_secs(30),
        "delivered after the 429",
        || async { times.lock().unwrap().len() >= 2 },
    )
    .await;
    sink.stop().await;
    let times = times.lock().unwrap();
    let waited = times[1] - times[0];
    assert!(
        waited >= Duration::from_millis(1900),
        "Retry-After: 2 honoured, waited {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
}

/// Answers 400 to events of job `bad_job`, 201 to the rest.
struct RejectJob(&'static str);

impl Respond for RejectJob {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let event: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        if event["job"]["name"] == self.0 {
            ResponseTemplate::new(400).set_body_string(format!(
                "{{\"code\":400,\"message\":\"job {} is not allowed\"}}",
                self.0
            ))
        } else {
            ResponseTemplate::new(201)
        }
    }
}

#[tokio::test]
async fn a_400_sends_exactly_that_event_to_the_dead_letter_topic_and_later_events_flow() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(RejectJob("bad_job"))
        .mount(&server)
        .await;
    let (topic, dlq) = topics().await;
    let config = sink_config(&topic, &dlq, &server.uri());
    let group = config.group();
    let key = run_key("dagster", "etl");
    let run = run_id();
    let events: Vec<(String, Value)> =
        [("START", "etl"), ("START", "bad_job"), ("COMPLETE", "etl")]
            .iter()
            .enumerate()
            .map(|(i, (kind, job))| {
                (
                    key.clone(),
                    run_event(
                        kind,
                        &format!("2024-05-01T10:00:0{i}Z"),
                        &run,
                        "dagster",
                        job,
                        &[],
                        &[],
                        None,
                    ),
                )
            })
            .collect();
    produce(&topic, &events, None).await;
    produce_raw(&topic, &key, b"{not json").await;

    let sink = start_sink(config, None);
    let letters = dead_letters(&dlq, 2).await;
    eventually(Duration::from_secs(10), "everything committed", || async {
        committed(&group, &topic, 3).await.contains(&4)
    })
    .await;
    let summary = sink.stop().await;

    assert_eq!(letters.len(), 2, "{letters:?}");
    let rejected = &letters[0];
    assert_eq!(rejected.error_kind, DeadLetterKind::RejectedByBackend);
    assert_eq!(rejected.http_status, Some(400));
    assert_eq!(
        rejected.response_body.as_deref(),
        Some("{\"code\":400,\"message\":\"job bad_job is not allowed\"}")
    );
    assert_eq!(rejected.source_topic.as_deref(), Some(topic.as_str()));
    assert_eq!(rejected.source_offset, Some(1));
    assert_eq!(rejected.original_key.as_deref(), Some(key.as_bytes()));
    let original: Value =
        serde_json::from_slice(rejected.original_value.as_ref().unwrap()).unwrap();
    assert_eq!(original, events[1].1);
    assert_eq!(rejected.component, "sink.openlineage");
    let malformed = &letters[1];
    assert_eq!(malformed.error_kind, DeadLetterKind::MalformedInput);
    assert_eq!(malformed.source_offset, Some(3));
    assert_eq!(malformed.http_status, None);

    let delivered: Vec<(String, String)> = received(&server)
        .await
        .iter()
        .map(job_and_type)
        .filter(|(job, _)| job != "bad_job")
        .collect();
    assert_eq!(
        delivered,
        vec![
            ("etl".to_owned(), "START".to_owned()),
            ("etl".to_owned(), "COMPLETE".to_owned())
        ]
    );
    assert_eq!(summary.delivered, 2);
    assert_eq!(summary.dead_lettered, 2);
}

/// 503 for every event of namespace `broken`, 201 otherwise.
struct FailNamespace(&'static str);

impl Respond for FailNamespace {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let event: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        if event["job"]["namespace"] == self.0 {
            ResponseTemplate::new(503)
        } else {
            ResponseTemplate::new(201)
        }
    }
}

#[tokio::test]
async fn a_failing_key_does_not_block_other_keys_which_arrive_in_order() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(FailNamespace("broken"))
        .mount(&server)
        .await;
    // One partition: both keys share it, so only per-key scheduling can keep `good` moving.
    let (topic, dlq) = (unique("ol"), unique("dlq"));
    create_topic(&topic, 1).await;
    create_topic(&dlq, 1).await;
    let config = sink_config(&topic, &dlq, &server.uri());
    let group = config.group();
    let input: &[common::events::Dataset<'_>] = &[("s3://lake", "raw/orders", &[("id", "bigint")])];
    let output: &[common::events::Dataset<'_>] = &[(
        "postgres://db:5432",
        "analytics.public.orders",
        &[("id", "bigint")],
    )];
    let broken = pipeline_run("broken", "stuck_job", &[("stuck_asset", input, output)], 1);
    let mut good = Vec::new();
    for minute in 0..5 {
        good.extend(pipeline_run(
            "good",
            "etl",
            &[("orders", input, output)],
            minute,
        ));
    }
    // The broken run's first event comes first in the partition.
    produce(&topic, &broken, None).await;
    produce(&topic, &good, None).await;

    let sink = start_sink(config, None);
    eventually(
        Duration::from_secs(30),
        "every good event delivered",
        || async {
            received(&server)
                .await
                .iter()
                .filter(|e| e["job"]["namespace"] == "good")
                .count()
                >= good.len()
        },
    )
    .await;
    let arrived: Vec<Value> = received(&server)
        .await
        .into_iter()
        .filter(|e| e["job"]["namespace"] == "good")
        .collect();
    let expected: Vec<Value> = good.iter().map(|(_, e)| e.clone()).collect();
    assert_eq!(
        arrived, expected,
        "the good key's events arrive once each, in order"
    );
    eventually(
        Duration::from_secs(10),
        "the broken key is retried",
        || async {
            received(&server)
                .await
                .iter()
                .filter(|e| e["job"]["namespace"] == "broken")
                .count()
                >= 3
        },
    )
    .await;
    let broken_attempts: Vec<Value> = received(&server)
        .await
        .into_iter()
        .filter(|e| e["job"]["namespace"] == "broken")
        .collect();
    assert!(
        broken_attempts.iter().all(|e| *e == broken[0].1),
        "only the broken key's first event is attempted: its order holds"
    );
    // Nothing past the stuck record is committed.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(committed(&group, &topic, 1).await, vec![0]);
    let summary = sink.stop().await;
    assert_eq!(summary.delivered, good.len() as u64);
    assert_eq!(
        summary.dead_lettered, 0,
        "a failing backend is never skipped"
    );
}

#[tokio::test]
async fn gzip_bodies_and_custom_headers_reach_the_backend() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("content-encoding", "gzip"))
        .and(header("x-lineage-test", "yes"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&server)
        .await;
    let (topic, dlq) = topics().await;
    let mut config = sink_config(&topic, &dlq, &server.uri());
    config.compression = lineage_sinks::config::Compression::Gzip;
    config.headers.insert("X-Lineage-Test".into(), "yes".into());
    let event = run_event(
        "START",
        "2024-05-01T10:00:00Z",
        &run_id(),
        "dagster",
        "gz",
        &[],
        &[],
        None,
    );
    produce(&topic, &[(run_key("dagster", "gz"), event.clone())], None).await;
    let sink = start_sink(config, None);
    eventually(Duration::from_secs(30), "delivered", || async {
        !posts(&server).await.is_empty()
    })
    .await;
    let summary = sink.stop().await;
    assert_eq!(
        summary.delivered, 1,
        "matched the gzip + header mock (else 404 → DLQ)"
    );
    let request = &posts(&server).await[0];
    let mut plain = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(request.body.as_slice()),
        &mut plain,
    )
    .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&plain).unwrap(), event);
}

#[tokio::test]
async fn a_tenant_with_its_own_route_goes_to_its_own_backend_with_its_own_key() {
    let shared = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("authorization", "Bearer shared-key"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&shared)
        .await;
    let acme = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/custom/lineage"))
        .and(header("authorization", "Bearer acme-key"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&acme)
        .await;
    let (topic, dlq) = topics().await;
    let mut config = sink_config(&topic, &dlq, &shared.uri());
    config.api_key = Some("shared-key".to_owned().into());
    config.tenants.insert(
        "acme".into(),
        lineage_sinks::config::TenantRoute {
            url: Some(acme.uri()),
            endpoint: Some("custom/lineage".into()),
            api_key: Some("acme-key".to_owned().into()),
            ..Default::default()
        },
    );
    let event = |job: &str| {
        run_event(
            "START",
            "2024-05-01T10:00:00Z",
            &run_id(),
            "dagster",
            job,
            &[],
            &[],
            None,
        )
    };
    produce(
        &topic,
        &[(run_key("dagster", "acme_job"), event("acme_job"))],
        Some("acme"),
    )
    .await;
    produce(
        &topic,
        &[(run_key("dagster", "other_job"), event("other_job"))],
        Some("other"),
    )
    .await;
    produce(
        &topic,
        &[(run_key("dagster", "plain_job"), event("plain_job"))],
        None,
    )
    .await;

    let sink = start_sink(config, None);
    eventually(Duration::from_secs(30), "all three delivered", || async {
        posts(&acme).await.len() + posts(&shared).await.len() >= 3
    })
    .await;
    let summary = sink.stop().await;
    assert_eq!(
        summary.delivered, 3,
        "each matched its backend's key (else 404 → DLQ)"
    );
    let jobs = |requests: Vec<Request>| {
        let mut jobs: Vec<String> = requests
            .iter()
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["job"]["name"].to_string())
            .collect();
        jobs.sort();
        jobs
    };
    assert_eq!(jobs(posts(&acme).await), vec!["\"acme_job\""]);
    assert_eq!(
        jobs(posts(&shared).await),
        vec!["\"other_job\"", "\"plain_job\""]
    );
}
