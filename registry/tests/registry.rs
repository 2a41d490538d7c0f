//! Integration tests against a real Kafka broker, started by `testbed/up.sh kafka`.
//! Each test uses its own topic and transactional id.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use apache_avro::types::Value as AvroValue;
use lineage_registry::{RegistryConfig, RunningRegistry};
use rdkafka::ClientConfig;
use reqwest::Method;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;
const V2: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string","default":"x"}]}"#;
/// V2 without the default of `b`: not backward compatible with V1.
const V3: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#;

fn kafka() -> ClientConfig {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| {
        panic!(
            "KAFKA_BOOTSTRAP not set: start the testbed with testbed/up.sh kafka and eval \"$(testbed/env.sh)\""
        )
    });
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

/// A topic and transactional id of one test, shared by its registry instances.
struct Namespace {
    topic: String,
    transactional_id: String,
}

impl Namespace {
    fn new() -> Self {
        let id = Uuid::new_v4();
        Self {
            topic: format!("_schemas-test-{id}"),
            transactional_id: format!("registry-test-{id}"),
        }
    }

    async fn start(&self) -> Instance {
        // Logs go to the test output; RUST_LOG=lineage_registry=debug shows every request.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "lineage_registry=info".into()),
            )
            .with_test_writer()
            .try_init();
        let config = RegistryConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            topic: self.topic.clone(),
            writer_transactional_id: self.transactional_id.clone(),
            write_timeout: Duration::from_secs(30),
            ..RegistryConfig::default()
        };
        let shutdown = CancellationToken::new();
        let running = tokio::time::timeout(
            Duration::from_secs(60),
            lineage_registry::start(config, kafka(), shutdown.clone()),
        )
        .await
        .expect("the registry starts within 60 s")
        .unwrap();
        Instance {
            url: format!("http://{}", running.local_addr()),
            http: reqwest::Client::new(),
            shutdown,
            running,
        }
    }
}

struct Instance {
    url: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
    running: RunningRegistry,
}

impl Instance {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("Accept", "application/vnd.schemaregistry.v1+json");
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path} answered non-JSON {text:?}: {e}"));
        (status, value)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn register(&self, subject: &str, schema: &str) -> (u16, Value) {
        let path = format!("/subjects/{subject}/versions");
        self.call(Method::POST, &path, Some(json!({ "schema": schema })))
            .await
    }

    async fn register_id(&self, subject: &str, schema: &str) -> u64 {
        let (status, body) = self.register(subject, schema).await;
        assert_eq!(status, 200, "{body}");
        body["id"].as_u64().unwrap()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.running.wait().await.unwrap();
    }
}

fn error_code(answer: &(u16, Value)) -> (u16, u64) {
    let code = answer.1["error_code"].as_u64().unwrap_or_else(|| {
        panic!("expected an error, got {} {}", answer.0, answer.1);
    });
    assert!(answer.1["message"].as_str().is_some_and(|m| !m.is_empty()));
    (answer.0, code)
}

/// Polls `path` on `instance` until it answers `expected` (readers apply the topic shortly after
/// another instance wrote to it).
async fn eventually(instance: &Instance, path: &str, expected: (u16, Value)) {
    let mut last = (0, Value::Null);
    for _ in 0..100 {
        last = instance.get(path).await;
        if last == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} answered {last:?}, expected {expected:?}");
}

#[tokio::test]
async fn documented_responses() {
    let ns = Namespace::new();
    let sr = ns.start().await;

    assert_eq!(sr.get("/").await, (200, json!({})));
    assert_eq!(sr.get("/schemas/types").await, (200, json!(["AVRO"])));
    assert_eq!(sr.get("/subjects").await, (200, json!([])));
    assert_eq!(
        error_code(&sr.get("/subjects/s/versions").await),
        (404, 40401)
    );

    // Registering, ids shared across subjects.
    assert_eq!(sr.register("s", V1).await, (200, json!({"id": 1})));
    assert_eq!(sr.register("s", V1).await, (200, json!({"id": 1})));
    assert_eq!(sr.register("t", V1).await, (200, json!({"id": 1})));
    assert_eq!(sr.register("s", V2).await, (200, json!({"id": 2})));
    assert_eq!(sr.get("/subjects").await, (200, json!(["s", "t"])));
    assert_eq!(sr.get("/subjects/s/versions").await, (200, json!([1, 2])));
    let latest = json!({"subject": "s", "version": 2, "id": 2, "schema": V2});
    assert_eq!(
        sr.get("/subjects/s/versions/latest").await,
        (200, latest.clone())
    );
    assert_eq!(sr.get("/subjects/s/versions/2").await, (200, latest));
    let raw = sr.get("/subjects/s/versions/1/schema").await;
    assert_eq!(raw, (200, serde_json::from_str::<Value>(V1).unwrap()));
    assert_eq!(
        error_code(&sr.get("/subjects/s/versions/3").await),
        (404, 40402)
    );
    assert_eq!(
        error_code(&sr.get("/subjects/x/versions/1").await),
        (404, 40401)
    );
    for bad in ["abc", "0", "-5"] {
        let path = format!("/subjects/s/versions/{bad}");
        assert_eq!(error_code(&sr.get(&path).await), (422, 42202), "{bad}");
    }

    // Invalid and unsupported schemas.
    let invalid = sr.register("s", r#"{"type":"record","name":"R"}"#).await;
    assert_eq!(error_code(&invalid), (422, 42201));
    let protobuf = sr
        .call(
            Method::POST,
            "/subjects/p/versions",
            Some(json!({"schema": "syntax = \"proto3\";", "schemaType": "PROTOBUF"})),
        )
        .await;
    assert_eq!(error_code(&protobuf), (422, 42201));
    assert!(protobuf.1["message"].as_str().unwrap().contains("AVRO"));
    let referencing = sr
        .call(
            Method::POST,
            "/subjects/p/versions",
            Some(
                json!({"schema": V1, "references": [{"name": "x", "subject": "s", "version": 1}]}),
            ),
        )
        .await;
    assert_eq!(error_code(&referencing), (422, 42201));

    // Incompatible under the default BACKWARD level (t's latest is V1).
    let incompatible = sr.register("t", V3).await;
    assert_eq!(error_code(&incompatible), (409, 409));
    let message = incompatible.1["message"].as_str().unwrap();
    assert!(
        message.contains("'b'") && message.contains("default"),
        "{message}"
    );

    // Lookup.
    let found = sr
        .call(Method::POST, "/subjects/t", Some(json!({ "schema": V1 })))
        .await;
    assert_eq!(
        found,
        (
            200,
            json!({"subject": "t", "version": 1, "id": 1, "schema": V1})
        )
    );
    let missing = sr
        .call(Method::POST, "/subjects/t", Some(json!({ "schema": V2 })))
        .await;
    assert_eq!(error_code(&missing), (404, 40403));
    let no_subject = sr
        .call(Method::POST, "/subjects/x", Some(json!({ "schema": V1 })))
        .await;
    assert_eq!(error_code(&no_subject), (404, 40401));

    // Schemas by id.
    assert_eq!(
        sr.get("/schemas/ids/2").await,
        (200, json!({ "schema": V2 }))
    );
    assert_eq!(error_code(&sr.get("/schemas/ids/99").await), (404, 40403));
    assert_eq!(
        sr.get("/schemas/ids/1/versions").await,
        (
            200,
            json!([{"subject": "s", "version": 1}, {"subject": "t", "version": 1}])
        )
    );
    assert_eq!(
        sr.get("/schemas/ids/1/subjects").await,
        (200, json!(["s", "t"]))
    );

    // Compatibility levels.
    assert_eq!(
        sr.get("/config").await,
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );
    let put = sr
        .call(
            Method::PUT,
            "/config",
            Some(json!({"compatibility": "FULL"})),
        )
        .await;
    assert_eq!(put, (200, json!({"compatibility": "FULL"})));
    assert_eq!(
        sr.get("/config").await,
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    let invalid_level = sr
        .call(
            Method::PUT,
            "/config",
            Some(json!({"compatibility": "SIDEWAYS"})),
        )
        .await;
    assert_eq!(error_code(&invalid_level), (422, 42203));
    assert_eq!(error_code(&sr.get("/config/s").await), (404, 40408));
    assert_eq!(
        sr.get("/config/s?defaultToGlobal=true").await,
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    let put = sr
        .call(
            Method::PUT,
            "/config/s",
            Some(json!({"compatibility": "NONE"})),
        )
        .await;
    assert_eq!(put, (200, json!({"compatibility": "NONE"})));
    assert_eq!(
        sr.get("/config/s").await,
        (200, json!({"compatibilityLevel": "NONE"}))
    );
    let deleted = sr.call(Method::DELETE, "/config/s", None).await;
    assert_eq!(deleted, (200, json!({"compatibilityLevel": "NONE"})));
    assert_eq!(error_code(&sr.get("/config/s").await), (404, 40408));
    let deleted_again = sr.call(Method::DELETE, "/config/s", None).await;
    assert_eq!(error_code(&deleted_again), (404, 40408));

    // Compatibility checks (now FULL).
    let check = |version: &str, schema: &str, verbose: bool| {
        let path = format!("/compatibility/subjects/s/versions/{version}?verbose={verbose}");
        let body = json!({ "schema": schema });
        let sr = &sr;
        async move { sr.call(Method::POST, &path, Some(body)).await }
    };
    assert_eq!(
        check("latest", V2, false).await,
        (200, json!({"is_compatible": true}))
    );
    assert_eq!(
        check("1", V3, false).await,
        (200, json!({"is_compatible": false}))
    );
    let verbose = check("1", V3, true).await;
    assert_eq!(verbose.1["is_compatible"], json!(false));
    assert!(!verbose.1["messages"].as_array().unwrap().is_empty());
    assert_eq!(error_code(&check("7", V2, false).await), (404, 40402));
    assert_eq!(error_code(&check("x", V2, false).await), (422, 42202));

    // Unknown routes still answer JSON.
    assert_eq!(error_code(&sr.get("/nope").await), (404, 404));

    // Metrics land on the default registry.
    let names: Vec<String> = prometheus::default_registry()
        .gather()
        .iter()
        .map(|family| family.name().to_owned())
        .collect();
    for name in [
        "lineage_bus_registry_http_requests_total",
        "lineage_bus_registry_schemas_registered_total",
        "lineage_bus_registry_records_applied_total",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
    sr.stop().await;
}

#[tokio::test]
async fn soft_and_permanent_deletes() {
    let ns = Namespace::new();
    let sr = ns.start().await;
    sr.register_id("s", V1).await;
    sr.register_id("s", V2).await;

    // Versions.
    let permanent_first = sr
        .call(
            Method::DELETE,
            "/subjects/s/versions/2?permanent=true",
            None,
        )
        .await;
    assert_eq!(error_code(&permanent_first), (404, 40407));
    assert_eq!(
        sr.call(Method::DELETE, "/subjects/s/versions/2", None)
            .await,
        (200, json!(2))
    );
    let again = sr
        .call(Method::DELETE, "/subjects/s/versions/2", None)
        .await;
    assert_eq!(error_code(&again), (404, 40406));
    assert_eq!(
        error_code(&sr.get("/subjects/s/versions/2").await),
        (404, 40402)
    );
    assert_eq!(sr.get("/subjects/s/versions/2?deleted=true").await.0, 200);
    assert_eq!(sr.get("/subjects/s/versions").await, (200, json!([1])));
    assert_eq!(
        sr.get("/subjects/s/versions?deleted=true").await,
        (200, json!([1, 2]))
    );
    // Soft-deleted schemas stay readable by id, for consumers of old records.
    assert_eq!(
        sr.get("/schemas/ids/2").await,
        (200, json!({ "schema": V2 }))
    );
    let removed = sr
        .call(
            Method::DELETE,
            "/subjects/s/versions/2?permanent=true",
            None,
        )
        .await;
    assert_eq!(removed, (200, json!(2)));
    assert_eq!(error_code(&sr.get("/schemas/ids/2").await), (404, 40403));
    let missing = sr
        .call(Method::DELETE, "/subjects/s/versions/5", None)
        .await;
    assert_eq!(error_code(&missing), (404, 40402));

    // Subjects.
    let permanent_first = sr
        .call(Method::DELETE, "/subjects/s?permanent=true", None)
        .await;
    assert_eq!(error_code(&permanent_first), (404, 40405));
    assert_eq!(
        sr.call(Method::DELETE, "/subjects/s", None).await,
        (200, json!([1]))
    );
    let again = sr.call(Method::DELETE, "/subjects/s", None).await;
    assert_eq!(error_code(&again), (404, 40404));
    assert_eq!(sr.get("/subjects").await, (200, json!([])));
    assert_eq!(sr.get("/subjects?deleted=true").await, (200, json!(["s"])));
    assert_eq!(
        error_code(&sr.get("/subjects/s/versions").await),
        (404, 40401)
    );
    let removed = sr
        .call(Method::DELETE, "/subjects/s?permanent=true", None)
        .await;
    assert_eq!(removed, (200, json!([1])));
    assert_eq!(sr.get("/subjects?deleted=true").await, (200, json!([])));
    let gone = sr.call(Method::DELETE, "/subjects/s", None).await;
    assert_eq!(error_code(&gone), (404, 40401));
    // Ids are not given again after a permanent delete; versions restart.
    assert_eq!(sr.register("s", V3).await, (200, json!({"id": 3})));
    assert_eq!(sr.get("/subjects/s/versions").await, (200, json!([1])));
    sr.stop().await;
}

#[tokio::test]
async fn state_survives_a_restart() {
    let ns = Namespace::new();
    let first = ns.start().await;
    assert_eq!(first.register_id("a", V1).await, 1);
    assert_eq!(first.register_id("a", V2).await, 2);
    assert_eq!(first.register_id("b", V3).await, 3);
    first
        .call(
            Method::PUT,
            "/config/a",
            Some(json!({"compatibility": "FORWARD"})),
        )
        .await;
    first.call(Method::DELETE, "/subjects/b", None).await;
    first.stop().await;

    let second = ns.start().await;
    assert_eq!(second.get("/subjects").await, (200, json!(["a"])));
    assert_eq!(
        second.get("/subjects?deleted=true").await,
        (200, json!(["a", "b"]))
    );
    assert_eq!(
        second.get("/subjects/a/versions/2").await,
        (
            200,
            json!({"subject": "a", "version": 2, "id": 2, "schema": V2})
        )
    );
    assert_eq!(
        second.get("/schemas/ids/3").await,
        (200, json!({ "schema": V3 }))
    );
    assert_eq!(
        second.get("/config/a").await,
        (200, json!({"compatibilityLevel": "FORWARD"}))
    );
    assert_eq!(second.register_id("a", V1).await, 1, "same schema, same id");
    assert_eq!(
        second.register_id("c", r#""string""#).await,
        4,
        "ids continue"
    );
    second.stop().await;
}

#[tokio::test]
async fn two_instances_agree() {
    let ns = Namespace::new();
    let (a, b) = tokio::join!(ns.start(), ns.start());

    assert_eq!(a.register_id("shared", V1).await, 1);
    eventually(&b, "/subjects/shared/versions", (200, json!([1]))).await;
    assert_eq!(b.register_id("shared", V1).await, 1);
    // B registers on the state A wrote: V3 must be refused there too.
    assert_eq!(error_code(&b.register("shared", V3).await), (409, 409));
    let none = Some(json!({"compatibility": "NONE"}));
    assert_eq!(a.call(Method::PUT, "/config/shared", none).await.0, 200);

    // Concurrent registrations of different schemas, on both instances, into one subject and
    // into per-schema subjects.
    let schema = |i: usize| format!(r#"{{"type":"record","name":"N{i}","fields":[]}}"#);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let instance = if i % 2 == 0 { &a } else { &b };
        let schema = schema(i);
        tasks.push(async move {
            let shared = instance.register_id("shared", &schema).await;
            let own = instance.register_id(&format!("own-{i}"), &schema).await;
            assert_eq!(shared, own, "one schema, one id");
            (i, shared)
        });
    }
    let ids = futures::future::join_all(tasks).await;
    let mut distinct: Vec<u64> = ids.iter().map(|(_, id)| *id).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        12,
        "different schemas got the same id: {ids:?}"
    );
    assert!(!distinct.contains(&1));

    let expected_versions = json!((1..=13).collect::<Vec<_>>());
    for instance in [&a, &b] {
        eventually(
            instance,
            "/subjects/shared/versions",
            (200, expected_versions.clone()),
        )
        .await;
        for (i, id) in &ids {
            let expected: Value = serde_json::from_str(&schema(*i)).unwrap();
            let answer = instance.get(&format!("/schemas/ids/{id}")).await;
            assert_eq!(answer.0, 200);
            let stored: Value = serde_json::from_str(answer.1["schema"].as_str().unwrap()).unwrap();
            assert_eq!(stored, expected, "id {id}");
        }
    }
    // Every version of the shared subject holds a different id.
    let mut version_ids = Vec::new();
    for version in 1..=13 {
        let (_, body) = b.get(&format!("/subjects/shared/versions/{version}")).await;
        version_ids.push(body["id"].as_u64().unwrap());
    }
    version_ids.sort_unstable();
    version_ids.dedup();
    assert_eq!(version_ids.len(), 13);
    tokio::join!(a.stop(), b.stop());
}

#[tokio::test]
async fn schema_registry_converter_round_trip() {
    let ns = Namespace::new();
    let sr = ns.start().await;
    let settings = SrSettings::new(sr.url.clone());
    let encoder = AvroEncoder::new(settings.clone());
    let decoder = AvroDecoder::new(settings);
    let schema = r#"{"type":"record","name":"Heartbeat","namespace":"lineage.test","fields":[{"name":"beat","type":"long"},{"name":"note","type":["null","string"],"default":null}]}"#;
    let supplied = SuppliedSchema::new(
        Some("lineage.test.Heartbeat".to_owned()),
        SchemaType::Avro,
        schema.to_owned(),
    );
    let strategy =
        SubjectNameStrategy::TopicNameStrategyWithSchema("heartbeats".to_owned(), false, supplied);
    let values = vec![
        ("beat", AvroValue::Long(42)),
        (
            "note",
            AvroValue::Union(1, Box::new(AvroValue::String("hi".into()))),
        ),
    ];
    let bytes = encoder.encode(values, strategy).await.unwrap();
    assert_eq!(&bytes[..5], &[0, 0, 0, 0, 1], "magic byte and schema id 1");
    let decoded = decoder.decode(Some(&bytes)).await.unwrap();
    assert_eq!(
        decoded.value,
        AvroValue::Record(vec![
            ("beat".to_owned(), AvroValue::Long(42)),
            (
                "note".to_owned(),
                AvroValue::Union(1, Box::new(AvroValue::String("hi".into())))
            ),
        ])
    );
    assert_eq!(
        sr.get("/subjects/heartbeats-value/versions").await,
        (200, json!([1]))
    );
    sr.stop().await;
}
