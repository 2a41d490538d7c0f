//! `lineage-bus sink openmetadata` against the testbed's Kafka, Schema Registry and OpenMetadata
//! (`OPENMETADATA_URL`; here the OpenMetadata contract server, which validates every body
//! against OpenMetadata's JSON Schemas and answers with OpenMetadata's semantics, see
//! testbed/openmetadata_contract/README.md): operations become a pipeline service, pipelines
//! with tasks, one run-level status and table → table lineage, read back through the API;
//! operations arriving before what they refer to wait instead of being dropped; redelivery
//! changes nothing; a 400 dead-letters exactly that operation; OpenMetadata down for a while
//! loses nothing; each tenant's operations go to its own OpenMetadata, within its own rate.
//!
//! The down and tenant tests start a PRIVATE contract server (own port and journal) and stop
//! it; the shared one is never stopped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../sinks/tests/common/mod.rs"]
mod kit;
#[path = "common/process.rs"]
mod process;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kit::{
    committed, create_topic, dead_letters, eventually, free_port, kafka, metric, registry, scrape,
    service_env, start_openmetadata_sink, unique, wait_for_zero_lag,
};
use lineage_schemas::RecordCodec;
use lineage_schemas::records::{
    AddLineage, AddPipelineStatus, ColumnLineageEdge, DeadLetterKind, ExecutionStatus,
    OpenMetadataOperation, Operation, Origin, PipelineTask, TaskStatus, UpsertClassification,
    UpsertPipeline, UpsertPipelineService, UpsertTag,
};
use lineage_sinks::OpenMetadataSinkConfig;
use lineage_sinks::config::OpenMetadataTenantRoute;
use lineage_sinks::delivery::engine::Replay;
use lineage_sinks::delivery::start::StartFrom;
use process::Process;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};

const RUN_TS: i64 = 1_763_600_000_000;

/// The names of one test's entities (unique, so tests never share state).
struct World {
    id: String,
    /// Database service of the fixture tables.
    db_service: String,
    /// Pipeline service (the Dagster deployment).
    service: String,
    classification: String,
}

impl World {
    fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        Self {
            db_service: format!("wh_{id}"),
            service: format!("dagster_{id}"),
            classification: format!("DagsterTags_{id}"),
            id,
        }
    }

    fn table(&self, name: &str) -> String {
        format!("{}.analytics.public.{name}", self.db_service)
    }

    fn pipeline_fqn(&self) -> String {
        format!("{}.etl@sample", self.service)
    }

    fn op(&self, operation: Operation) -> OpenMetadataOperation {
        OpenMetadataOperation {
            tenant: self.service.clone(),
            origin: Origin {
                topic: "dagster.events".into(),
                partition: 0,
                offset: 0,
            },
            operation,
        }
    }

    /// What the processor emits for one run of a 3-asset job raw_orders → orders →
    /// daily_revenue: tags, the service, the pipeline, the run's status and two edges.
    fn operations(&self) -> Vec<OpenMetadataOperation> {
        let tag = |name: &str| format!("{}.{name}", self.classification);
        let task = |name: &str, downstream: &[&str]| PipelineTask {
            name: name.into(),
            display_name: Some(name.replace('_', " ")),
            description: None,
            task_type: Some("ASSET".into()),
            downstream_tasks: downstream.iter().map(|d| (*d).to_owned()).collect(),
            tags: vec![tag("kind_sql")],
        };
        let status = |name: &str, start: i64| TaskStatus {
            name: name.into(),
            status: ExecutionStatus::Successful,
            start_time_ms: Some(RUN_TS + start),
            end_time_ms: Some(RUN_TS + start + 500),
            log_link: None,
        };
        let edge = |from: &str, to: &str, column: &str| AddLineage {
            from_table_fqn: self.table(from),
            to_table_fqn: self.table(to),
            pipeline_fqn: Some(self.pipeline_fqn()),
            description: Some(format!("Dagster asset {to} depends on {from}")),
            columns: vec![ColumnLineageEdge {
                from_columns: vec![format!("{}.{column}", self.table(from))],
                to_column: format!("{}.{column}", self.table(to)),
            }],
        };
        [
            Operation::UpsertClassification(UpsertClassification {
                name: self.classification.clone(),
                description: "Dagster tags".into(),
            }),
            Operation::UpsertTag(UpsertTag {
                classification: self.classification.clone(),
                name: "kind_sql".into(),
                description: "kind=sql".into(),
            }),
            Operation::UpsertPipelineService(UpsertPipelineService {
                name: self.service.clone(),
                service_type: "Dagster".into(),
                description: Some("written by lineage-bus".into()),
                host_port: Some("http://127.0.0.1:13000".into()),
            }),
            Operation::UpsertPipeline(UpsertPipeline {
                service: self.service.clone(),
                name: "etl@sample".into(),
                display_name: Some("etl".into()),
                description: None,
                source_url: None,
                location: Some("sample".into()),
                tasks: vec![
                    task("raw_orders", &["orders"]),
                    task("orders", &["daily_revenue"]),
                    task("daily_revenue", &[]),
                ],
                tags: vec![tag("kind_sql")],
                owners: vec!["team:nobody-knows".into()],
            }),
            Operation::AddPipelineStatus(AddPipelineStatus {
                pipeline_fqn: self.pipeline_fqn(),
                execution_id: format!("run-{}", self.id),
                status: ExecutionStatus::Successful,
                timestamp_ms: RUN_TS,
                end_time_ms: Some(RUN_TS + 3_000),
                tasks: vec![
                    status("raw_orders", 0),
                    status("orders", 1_000),
                    status("daily_revenue", 2_000),
                ],
            }),
            Operation::AddLineage(edge("raw_orders", "orders", "amount")),
            Operation::AddLineage({
                let mut edge = edge("orders", "daily_revenue", "amount");
                // A column OpenMetadata's table lacks: that pair is left out, the edge written.
                edge.columns.push(ColumnLineageEdge {
                    from_columns: vec![format!("{}.not_in_openmetadata", self.table("orders"))],
                    to_column: format!("{}.id", self.table("daily_revenue")),
                });
                edge
            }),
        ]
        .into_iter()
        .map(|operation| self.op(operation))
        .collect()
    }
}

/// An OpenMetadata server: URL, token, client.
struct OpenMetadata {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl OpenMetadata {
    fn shared() -> Self {
        Self::at(service_env("OPENMETADATA_URL"))
    }

    fn at(url: String) -> Self {
        Self {
            url,
            token: service_env("OPENMETADATA_JWT"),
            http: reqwest::Client::new(),
        }
    }

    /// The fixture tables of `world` (test-only endpoint of the contract server).
    async fn create_tables(&self, world: &World) {
        let table = |name: &str| {
            json!({"service": world.db_service, "database": "analytics", "schema": "public",
                   "name": name, "columns": [{"name": "id", "dataType": "BIGINT"},
                                              {"name": "amount", "dataType": "NUMERIC"}]})
        };
        let response = self
            .http
            .post(format!("{}/contract/tables", self.url))
            .json(
                &json!({"tables": [table("raw_orders"), table("orders"), table("daily_revenue")]}),
            )
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// GET `path` with the token: `None` on 404.
    async fn get(&self, path: &str) -> Option<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        Some(response.json().await.unwrap())
    }

    /// The lineage around `table`: (from FQN, to FQN, details without timestamps), sorted.
    async fn edges(&self, table: &str) -> Vec<(String, String, Value)> {
        let Some(lineage) = self
            .get(&format!(
                "/api/v1/lineage/table/name/{table}?upstreamDepth=1&downstreamDepth=1"
            ))
            .await
        else {
            return Vec::new();
        };
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        for node in lineage["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .chain([&lineage["entity"]])
        {
            names.insert(
                node["id"].as_str().unwrap().to_owned(),
                node["fullyQualifiedName"].as_str().unwrap().to_owned(),
            );
        }
        let mut edges: Vec<(String, String, Value)> = ["upstreamEdges", "downstreamEdges"]
            .iter()
            .flat_map(|which| lineage[which].as_array().unwrap().clone())
            .map(|edge| {
                let mut details = edge["lineageDetails"].clone();
                if let Some(details) = details.as_object_mut() {
                    for stamp in ["createdAt", "updatedAt", "createdBy", "updatedBy"] {
                        details.remove(stamp);
                    }
                }
                (
                    names[edge["fromEntity"].as_str().unwrap()].clone(),
                    names[edge["toEntity"].as_str().unwrap()].clone(),
                    details,
                )
            })
            .collect();
        edges.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        edges
    }

    /// Everything the sink writes for `world`, as OpenMetadata shows it.
    async fn state(&self, world: &World) -> Value {
        let service = self
            .get(&format!(
                "/api/v1/services/pipelineServices/name/{}",
                world.service
            ))
            .await;
        let pipeline = self
            .get(&format!(
                "/api/v1/pipelines/name/{}?fields=tasks,tags,owners",
                world.pipeline_fqn()
            ))
            .await;
        let statuses = self
            .get(&format!(
                "/api/v1/pipelines/{}/status?startTs=0&endTs=9999999999999",
                world.pipeline_fqn()
            ))
            .await;
        let tag = self
            .get(&format!(
                "/api/v1/tags/name/{}.kind_sql",
                world.classification
            ))
            .await;
        json!({
            "service": service,
            "pipeline": pipeline,
            "statuses": statuses,
            "tag": tag,
            "edges": format!("{:?}", self.edges(&world.table("orders")).await),
        })
    }
}

/// Produces `operations` (Avro, keyed as the processor keys them) to `topic`.
async fn produce(topic: &str, operations: &[OpenMetadataOperation]) {
    let codec: RecordCodec<OpenMetadataOperation> =
        RecordCodec::for_topic(registry(), topic).await.unwrap();
    let producer: FutureProducer = kafka()
        .idempotent_producer_config("test-producer")
        .create()
        .unwrap();
    for operation in operations {
        let payload = codec.encode(operation).unwrap();
        let key = operation.kafka_key();
        producer
            .send(
                FutureRecord::to(topic).key(&key).payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
}

/// The shared OpenMetadata with a new world's tables created, and new operation and
/// dead-letter topics: what most tests start from.
async fn shared_case() -> (OpenMetadata, World, String, String) {
    let om = OpenMetadata::shared();
    let world = World::new();
    om.create_tables(&world).await;
    let (topic, dlq) = topics().await;
    (om, world, topic, dlq)
}

async fn topics() -> (String, String) {
    let (topic, dlq) = (unique("om"), unique("om-dlq"));
    create_topic(&topic, 3).await;
    create_topic(&dlq, 1).await;
    (topic, dlq)
}

fn sink_config(topic: &str, dlq: &str, om: &OpenMetadata) -> OpenMetadataSinkConfig {
    let mut config = OpenMetadataSinkConfig {
        name: "test".into(),
        topic: topic.into(),
        group: Some(unique("group")),
        url: om.url.clone(),
        jwt_token: Some(om.token.clone().into()),
        dead_letter_topic: dlq.into(),
        commit_interval: Duration::from_millis(200),
        ..OpenMetadataSinkConfig::default()
    };
    config.retry.initial_backoff = Duration::from_millis(50);
    config.retry.max_backoff = Duration::from_millis(500);
    config
}

/// Waits (at most 60 s) until `group` has committed `count` records of `topic`.
async fn all_committed(group: &str, topic: &str, count: i64) {
    eventually(
        Duration::from_secs(60),
        "every operation committed",
        || async { committed_total(group, topic).await == count },
    )
    .await;
}

async fn committed_total(group: &str, topic: &str) -> i64 {
    committed(group, topic, 3)
        .await
        .iter()
        .filter(|&&o| o > 0)
        .sum()
}

/// Asserts what `world`'s operations must have written.
fn assert_written(world: &World, state: &Value) {
    assert_eq!(state["service"]["serviceType"], "Dagster", "{state:#}");
    let pipeline = &state["pipeline"];
    assert_eq!(pipeline["fullyQualifiedName"], world.pipeline_fqn());
    let downstream: BTreeMap<&str, Vec<&str>> = pipeline["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap(),
                t["downstreamTasks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_str().unwrap())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        downstream,
        BTreeMap::from([
            ("raw_orders", vec!["orders"]),
            ("orders", vec!["daily_revenue"]),
            ("daily_revenue", vec![]),
        ]),
        "tasks point upstream → downstream"
    );
    assert_eq!(
        pipeline["tags"][0]["tagFQN"],
        format!("{}.kind_sql", world.classification)
    );
    assert!(
        pipeline["owners"].as_array().is_none_or(Vec::is_empty),
        "an unknown owner is left out"
    );
    let statuses = state["statuses"]["data"].as_array().unwrap();
    assert_eq!(statuses.len(), 1, "one run-level status: {statuses:?}");
    assert_eq!(statuses[0]["executionStatus"], "Successful");
    assert_eq!(statuses[0]["timestamp"], RUN_TS);
    assert_eq!(statuses[0]["taskStatus"].as_array().unwrap().len(), 3);
    let edges = state["edges"].as_str().unwrap();
    let pipeline_id = pipeline["id"].as_str().unwrap();
    for (from, to) in [("raw_orders", "orders"), ("orders", "daily_revenue")] {
        let expected = format!("(\"{}\", \"{}\"", world.table(from), world.table(to));
        assert!(edges.contains(&expected), "{expected} missing from {edges}");
    }
    assert_eq!(edges.matches(pipeline_id).count(), 2, "{edges}");
    assert_eq!(edges.matches("columnsLineage").count(), 2, "{edges}");
    assert!(edges.contains(&format!("{}.amount", world.table("raw_orders"))));
    assert!(!edges.contains("not_in_openmetadata"), "{edges}");
}

#[tokio::test]
async fn operations_become_pipelines_statuses_and_lineage_and_redelivery_changes_nothing() {
    let (om, world, topic, dlq) = shared_case().await;
    let operations = world.operations();
    // Everything that refers to something first, what it refers to two seconds later: the
    // pipeline waits for its service and tag, the status and edges for the pipeline.
    let (definitions, dependents) = operations.split_at(3);
    produce(&topic, dependents).await;
    let config = sink_config(&topic, &dlq, &om);
    let group = config.group();
    let sink = start_openmetadata_sink(config.clone(), None);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        om.get(&format!("/api/v1/pipelines/name/{}", world.pipeline_fqn()))
            .await
            .is_none(),
        "the pipeline cannot exist before its service"
    );
    produce(&topic, definitions).await;

    all_committed(&group, &topic, operations.len() as i64).await;
    let summary = sink.stop().await;
    assert_eq!(summary.delivered, operations.len() as u64);
    assert_eq!(
        summary.dead_lettered, 0,
        "waiting references are never dropped"
    );
    let before = om.state(&world).await;
    assert_written(&world, &before);

    // Redelivery: a new group from the earliest offset writes everything again.
    let mut replay = sink_config(&topic, &dlq, &om);
    replay.group = Some(unique("replay"));
    let again = start_openmetadata_sink(
        replay,
        Some(Replay {
            from: StartFrom::Earliest,
            until_caught_up: true,
            terminal: false,
        }),
    );
    let summary = tokio::time::timeout(Duration::from_secs(60), again.task)
        .await
        .expect("the replay catches up within 60 s")
        .unwrap()
        .unwrap();
    assert_eq!(summary.delivered, operations.len() as u64);
    let after = om.state(&world).await;
    assert_eq!(
        after, before,
        "idempotent: same entities, same versions, one status"
    );
}

#[tokio::test]
async fn a_rejected_operation_and_only_it_goes_to_the_dead_letter_topic() {
    let (om, world, topic, dlq) = shared_case().await;
    let mut operations = world.operations();
    // OpenMetadata's schema has no such service type: 400.
    let bad = world.op(Operation::UpsertPipelineService(UpsertPipelineService {
        name: format!("{}_bad", world.service),
        service_type: "NotAScheduler".into(),
        description: None,
        host_port: None,
    }));
    operations.insert(3, bad.clone());
    produce(&topic, &operations).await;
    let config = sink_config(&topic, &dlq, &om);
    let group = config.group();
    let sink = start_openmetadata_sink(config, None);
    all_committed(&group, &topic, operations.len() as i64).await;
    let summary = sink.stop().await;
    assert_eq!(summary.dead_lettered, 1);
    assert_eq!(summary.delivered, operations.len() as u64 - 1);
    let letters = dead_letters(&dlq, 1).await;
    assert_eq!(letters.len(), 1, "exactly one dead letter: {letters:?}");
    let letter = &letters[0];
    assert_eq!(letter.component, "sink.openmetadata");
    assert_eq!(letter.error_kind, DeadLetterKind::RejectedByBackend);
    assert_eq!(letter.http_status, Some(400));
    assert!(
        letter
            .response_body
            .as_deref()
            .unwrap()
            .contains("serviceType"),
        "{letter:?}"
    );
    assert_eq!(
        letter.original_key.as_deref(),
        Some(bad.kafka_key().as_bytes())
    );
    let codec: RecordCodec<OpenMetadataOperation> =
        RecordCodec::for_topic(registry(), &topic).await.unwrap();
    assert_eq!(
        codec
            .decode(letter.original_value.as_deref().unwrap())
            .await
            .unwrap(),
        bad
    );
    assert_written(&world, &om.state(&world).await);
}

#[tokio::test]
async fn a_table_recreated_under_a_new_id_is_looked_up_again_after_the_404() {
    let (om, world, topic, dlq) = shared_case().await;
    let operations = world.operations();
    let edge = operations[5].clone();
    assert!(matches!(edge.operation, Operation::AddLineage(_)));
    let config = sink_config(&topic, &dlq, &om);
    let group = config.group();
    let sink = start_openmetadata_sink(config, None);
    produce(&topic, &operations).await;
    all_committed(&group, &topic, operations.len() as i64).await;
    let orders = world.table("orders");
    let old_id = om
        .get(&format!("/api/v1/tables/name/{orders}"))
        .await
        .unwrap()["id"]
        .clone();

    // The table is dropped and created again: a new id, and its lineage is gone.
    let response = om
        .http
        .post(format!("{}/contract/tables/delete", om.url))
        .json(&json!({"fqns": [orders], "hardDelete": true}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    om.create_tables(&world).await;
    let new_id = om
        .get(&format!("/api/v1/tables/name/{orders}"))
        .await
        .unwrap()["id"]
        .clone();
    assert_ne!(old_id, new_id);

    // The same edge again: the cached id answers 404, the sink looks the table up again.
    produce(&topic, std::slice::from_ref(&edge)).await;
    eventually(
        Duration::from_secs(30),
        "the edge written again",
        || async { committed_total(&group, &topic).await == operations.len() as i64 + 1 },
    )
    .await;
    let summary = sink.stop().await;
    assert_eq!(summary.dead_lettered, 0);
    let edges = om.edges(&orders).await;
    assert!(
        edges
            .iter()
            .any(|(from, to, _)| *from == world.table("raw_orders") && *to == orders),
        "{edges:?}"
    );
}

#[tokio::test]
async fn a_refused_token_holds_operations_back_until_the_token_is_fixed() {
    let (om, world, topic, dlq) = shared_case().await;
    let operations = world.operations();
    produce(&topic, &operations).await;
    let mut config = sink_config(&topic, &dlq, &om);
    config.jwt_token = Some("an-expired-token".to_owned().into());
    let group = config.group();
    let refused = start_openmetadata_sink(config.clone(), None);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let summary = refused.stop().await;
    assert_eq!(summary.delivered, 0);
    assert_eq!(
        summary.dead_lettered, 0,
        "a token problem dead-letters nothing"
    );
    assert_eq!(committed_total(&group, &topic).await, 0);
    assert!(dead_letters(&dlq, 0).await.is_empty());

    // The same group with the right token delivers everything.
    config.jwt_token = Some(om.token.clone().into());
    let fixed = start_openmetadata_sink(config, None);
    all_committed(&group, &topic, operations.len() as i64).await;
    let summary = fixed.stop().await;
    assert_eq!(summary.delivered, operations.len() as u64);
    assert_written(&world, &om.state(&world).await);
}

#[tokio::test]
async fn the_binary_serves_delivery_retry_dead_letter_latency_in_flight_and_lag_metrics() {
    let (om, world, topic, dlq) = shared_case().await;
    let operations = world.operations();
    let bad = world.op(Operation::UpsertPipelineService(UpsertPipelineService {
        name: format!("{}_bad", world.service),
        service_type: "NotAScheduler".into(),
        description: None,
        host_port: None,
    }));
    // The dependents first: they wait (retried as missing references) for the rest.
    let (definitions, dependents) = operations.split_at(3);
    produce(&topic, dependents).await;
    let admin = format!("127.0.0.1:{}", free_port());
    let name = unique("metrics").replace('.', "_");
    let group = unique("group");
    let _sink = Process(
        process::lineage_bus(service_env)
            .args(["sink", "openmetadata", "--group", &group])
            .env_remove("LINEAGE_BUS_CONFIG")
            .env("LINEAGE_BUS__ADMIN__LISTEN", &admin)
            .env("LINEAGE_BUS__SINKS__OPENMETADATA__NAME", &name)
            .env("LINEAGE_BUS__SINKS__OPENMETADATA__TOPIC", &topic)
            .env("LINEAGE_BUS__SINKS__OPENMETADATA__URL", &om.url)
            .env("LINEAGE_BUS__SINKS__OPENMETADATA__JWT_TOKEN", &om.token)
            .env("LINEAGE_BUS__SINKS__OPENMETADATA__DEAD_LETTER_TOPIC", &dlq)
            .env("LINEAGE_BUS__SINKS__OPENMETADATA__COMMIT_INTERVAL", "200ms")
            .env(
                "LINEAGE_BUS__SINKS__OPENMETADATA__RETRY__INITIAL_BACKOFF",
                "100ms",
            )
            .env("LINEAGE_BUS__SINKS__OPENMETADATA__RETRY__MAX_BACKOFF", "1s")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    produce(&topic, definitions).await;
    produce(&topic, &[bad]).await;
    let total = operations.len() as i64 + 1;
    all_committed(&group, &topic, total).await;
    let labels = [("sink", "openmetadata"), ("destination", name.as_str())];
    let with = |extra: (&'static str, &'static str)| {
        let mut all = labels.to_vec();
        all.push(extra);
        all
    };
    // The partitions that got records report a lag, 0 once delivered.
    let used: Vec<i32> = (0..3)
        .zip(committed(&group, &topic, 3).await)
        .filter_map(|(p, offset)| (offset > 0).then_some(p))
        .collect();
    assert!(!used.is_empty());
    wait_for_zero_lag(&admin, &labels, &used).await;
    let text = scrape(&admin).await;
    let value = |name: &str, series: &[(&str, &str)]| {
        metric(&text, name, series).unwrap_or_else(|| panic!("{name} {series:?} missing:\n{text}"))
    };
    assert_eq!(
        value(
            "lineage_bus_sink_records_total",
            &with(("outcome", "delivered"))
        ),
        operations.len() as f64
    );
    assert_eq!(
        value(
            "lineage_bus_sink_records_total",
            &with(("outcome", "dead_lettered"))
        ),
        1.0
    );
    assert!(
        value(
            "lineage_bus_sink_retries_total",
            &with(("reason", "missing_reference"))
        ) >= 1.0,
        "the dependents waited for their references"
    );
    assert!(
        value(
            "lineage_bus_sink_request_duration_seconds_count",
            &with(("result", "success"))
        ) >= operations.len() as f64
    );
    assert_eq!(
        value(
            "lineage_bus_sink_request_duration_seconds_count",
            &with(("result", "permanent"))
        ),
        1.0
    );
    assert!(
        value(
            "lineage_bus_sink_request_duration_seconds_bucket",
            &with(("le", "+Inf"))
        ) > 0.0
    );
    assert_eq!(value("lineage_bus_sink_requests_in_flight", &labels), 0.0);
    assert_eq!(value("lineage_bus_sink_paused_partitions", &labels), 0.0);
}

/// A private contract server (own port and journal), killed when dropped.
struct PrivateServer {
    port: u16,
    journal: std::path::PathBuf,
    child: Option<Child>,
}

impl PrivateServer {
    async fn start(port: u16, journal: std::path::PathBuf) -> Self {
        let mut server = Self {
            port,
            journal,
            child: None,
        };
        server.restart().await;
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn restart(&mut self) {
        let root = env!("CARGO_MANIFEST_DIR");
        let child = Command::new(format!("{root}/testbed/.venv/bin/python"))
            .args(["-m", "openmetadata_contract", "--port"])
            .arg(self.port.to_string())
            .arg("--journal")
            .arg(&self.journal)
            .args(["--jwt-token", &service_env("OPENMETADATA_JWT")])
            .env("PYTHONPATH", format!("{root}/testbed"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the testbed venv runs the contract server (testbed/up.sh openmetadata)");
        self.child = Some(child);
        let url = format!("{}/api/v1/system/version", self.url());
        eventually(Duration::from_secs(30), "private server up", || {
            let url = url.clone();
            async move { reqwest::get(&url).await.is_ok() }
        })
        .await;
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn openmetadata_down_for_a_while_loses_nothing_and_delivery_resumes_by_itself() {
    let dir = tempfile_dir();
    let mut server = PrivateServer::start(free_port(), dir.join("openmetadata.jsonl")).await;
    let om = OpenMetadata::at(server.url());
    let world = World::new();
    om.create_tables(&world).await;
    let (topic, dlq) = topics().await;
    let operations = world.operations();
    let (first, rest) = operations.split_at(4);
    let config = sink_config(&topic, &dlq, &om);
    let group = config.group();
    let mut sink = start_openmetadata_sink(config, None);
    produce(&topic, first).await;
    eventually(
        Duration::from_secs(30),
        "the first part written",
        || async { committed_total(&group, &topic).await == first.len() as i64 },
    )
    .await;

    server.stop();
    produce(&topic, rest).await;
    eventually(
        Duration::from_secs(15),
        "not ready while OpenMetadata is down",
        || {
            let ready = *sink.ready.borrow_and_update();
            async move { !ready }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        committed_total(&group, &topic).await,
        first.len() as i64,
        "nothing undelivered is committed"
    );
    server.restart().await;

    eventually(
        Duration::from_secs(60),
        "delivery resumed by itself",
        || async { committed_total(&group, &topic).await == operations.len() as i64 },
    )
    .await;
    let summary = sink.stop().await;
    assert_eq!(
        summary.dead_lettered, 0,
        "a server that is down is waited for"
    );
    assert_written(&world, &om.state(&world).await);
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Throughput of the OpenMetadata sink, bounded: 1,000 lineage edges between 1,001 tables (each
/// edge needs two table lookups, then one `PUT`), on a PRIVATE contract server on loopback,
/// about 10 s. Run: `cargo test --test sink_openmetadata -- --ignored --nocapture
/// delivery_throughput`.
#[tokio::test]
#[ignore = "a measurement: run it explicitly"]
#[allow(clippy::print_stdout)] // the measurement's output
async fn delivery_throughput() {
    const EDGES: usize = 1_000;
    let dir = tempfile_dir();
    let server = PrivateServer::start(free_port(), dir.join("openmetadata.jsonl")).await;
    let om = OpenMetadata::at(server.url());
    let response = om
        .http
        .post(format!("{}/contract/tables/bulk", om.url))
        .json(&json!({"services": ["bulk"], "tables": EDGES + 1, "databases": 1, "schemas": 1}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let table = |i: usize| format!("bulk.db0.s0.t{i:05}");
    let operations: Vec<OpenMetadataOperation> = (0..EDGES)
        .map(|i| OpenMetadataOperation {
            tenant: "bulk".into(),
            origin: Origin {
                topic: "dagster.events".into(),
                partition: 0,
                offset: i as i64,
            },
            operation: Operation::AddLineage(AddLineage {
                from_table_fqn: table(i),
                to_table_fqn: table(i + 1),
                pipeline_fqn: None,
                description: None,
                columns: Vec::new(),
            }),
        })
        .collect();
    let (topic, dlq) = topics().await;
    produce(&topic, &operations).await;
    let config = sink_config(&topic, &dlq, &om);
    let group = config.group();
    let started = std::time::Instant::now();
    let sink = start_openmetadata_sink(config, None);
    eventually(Duration::from_secs(120), "every edge committed", || async {
        committed_total(&group, &topic).await == EDGES as i64
    })
    .await;
    let elapsed = started.elapsed();
    let summary = sink.stop().await;
    assert_eq!(summary.delivered, EDGES as u64);
    println!(
        "{EDGES} lineage edges in {:.2} s: {:.0} operations/s (max_in_flight 16, commit every 200 ms)",
        elapsed.as_secs_f64(),
        EDGES as f64 / elapsed.as_secs_f64()
    );
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A fresh directory under the system temp dir.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(unique("om-contract"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn the_documented_openlineage_kafka_connector_service_is_valid_for_openmetadata() {
    let doc = include_str!("../docs/openmetadata-openlineage-kafka.md");
    let json = doc
        .split("```json\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the doc has a JSON example");
    let body: Value = serde_json::from_str(json).unwrap();
    let om = OpenMetadata::shared();
    // The contract server validates the body against OpenMetadata's
    // CreatePipelineServiceRequest schema (400 with the first problem otherwise).
    let response = om
        .http
        .put(format!("{}/api/v1/services/pipelineServices", om.url))
        .bearer_auth(&om.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert!(
        status.is_success(),
        "{status}: {}",
        response.text().await.unwrap()
    );
    let stored = om
        .get("/api/v1/services/pipelineServices/name/dagster-openlineage")
        .await
        .unwrap();
    assert_eq!(stored["serviceType"], "OpenLineage");
    assert_eq!(
        stored["connection"]["config"]["brokerConfig"]["topicName"],
        lineage_schemas::catalog::LINEAGE_OPENLINEAGE
    );
}

/// A route of `[sinks.openmetadata.tenants.<tenant>]` to `om`, limited to `rate_limit`.
fn route(om: &OpenMetadata, rate_limit: Option<u32>) -> OpenMetadataTenantRoute {
    OpenMetadataTenantRoute {
        url: Some(om.url.clone()),
        jwt_token: Some(om.token.clone().into()),
        rate_limit,
    }
}

#[tokio::test]
async fn each_tenants_operations_land_only_on_its_own_openmetadata() {
    let dir = tempfile_dir();
    let server = PrivateServer::start(free_port(), dir.join("openmetadata.jsonl")).await;
    let (shared, private) = (OpenMetadata::shared(), OpenMetadata::at(server.url()));
    // Tenant A (its operations carry `tenant` = a.service) on the testbed's server, B on a
    // private one; each server has only its own tenant's tables.
    let (a, b) = (World::new(), World::new());
    shared.create_tables(&a).await;
    private.create_tables(&b).await;
    let (topic, dlq) = topics().await;
    let mut operations = a.operations();
    operations.extend(b.operations());
    produce(&topic, &operations).await;
    let mut config = sink_config(&topic, &dlq, &shared);
    config
        .tenants
        .insert(a.service.clone(), route(&shared, None));
    config
        .tenants
        .insert(b.service.clone(), route(&private, None));
    let group = config.group();
    let sink = start_openmetadata_sink(config, None);
    all_committed(&group, &topic, operations.len() as i64).await;
    let summary = sink.stop().await;
    assert_eq!(summary.dead_lettered, 0);

    assert_written(&a, &shared.state(&a).await);
    assert_written(&b, &private.state(&b).await);
    for (om, other) in [(&shared, &b), (&private, &a)] {
        for path in [
            format!("/api/v1/services/pipelineServices/name/{}", other.service),
            format!("/api/v1/pipelines/name/{}", other.pipeline_fqn()),
            format!("/api/v1/tags/name/{}.kind_sql", other.classification),
        ] {
            assert!(
                om.get(&path).await.is_none(),
                "{path} written to the wrong server {}",
                om.url
            );
        }
    }
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_tenants_rate_limit_bounds_only_that_tenants_delivery() {
    const EACH: usize = 10;
    const RATE: u32 = 2;
    let (om, world, topic, dlq) = shared_case().await;
    let (slow, fast) = (format!("slow_{}", world.id), format!("fast_{}", world.id));
    let service = |tenant: &str, i: usize| format!("{tenant}_svc{i}");
    let operations: Vec<OpenMetadataOperation> = [&slow, &fast]
        .iter()
        .flat_map(|tenant| (0..EACH).map(move |i| (tenant.to_string(), i)))
        .map(|(tenant, i)| OpenMetadataOperation {
            tenant: tenant.clone(),
            ..world.op(Operation::UpsertPipelineService(UpsertPipelineService {
                name: service(&tenant, i),
                service_type: "Dagster".into(),
                description: None,
                host_port: None,
            }))
        })
        .collect();
    produce(&topic, &operations).await;
    // Every tenant unlimited but `slow`: RATE operations per second (burst RATE).
    let mut config = sink_config(&topic, &dlq, &om);
    config.tenants.insert(slow.clone(), route(&om, Some(RATE)));
    let group = config.group();
    let sink = start_openmetadata_sink(config, None);

    // When each tenant's services appear, measured from the first one seen.
    let written = |tenant: &str| {
        let (om, tenant) = (&om, tenant.to_owned());
        async move {
            let mut count = 0;
            for i in 0..EACH {
                let path = format!(
                    "/api/v1/services/pipelineServices/name/{}",
                    service(&tenant, i)
                );
                count += usize::from(om.get(&path).await.is_some());
            }
            count
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (mut first, mut fast_done, mut slow_done) = (None, None, None);
    while slow_done.is_none() || fast_done.is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "not delivered in 60 s"
        );
        let (s, f) = (written(&slow).await, written(&fast).await);
        let now = std::time::Instant::now();
        if s + f > 0 {
            first.get_or_insert(now);
        }
        if f == EACH {
            fast_done.get_or_insert(now);
        }
        if s == EACH {
            slow_done.get_or_insert(now);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = first.unwrap();
    let (fast_took, slow_took) = (fast_done.unwrap() - first, slow_done.unwrap() - first);
    // 10 at 2/s with a burst of 2: the last leaves ≥ 4 s after the first.
    assert!(
        slow_took >= Duration::from_millis(3_500),
        "the limited tenant took only {slow_took:?}"
    );
    assert!(
        fast_took < Duration::from_millis(2_000) && fast_took + Duration::from_secs(1) < slow_took,
        "the unlimited tenant was slowed: {fast_took:?} (limited: {slow_took:?})"
    );
    all_committed(&group, &topic, operations.len() as i64).await;
    assert_eq!(sink.stop().await.dead_lettered, 0);
}
