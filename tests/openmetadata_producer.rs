//! `lineage-bus produce openmetadata` as a process against the testbed's OpenMetadata
//! (OPENMETADATA_URL; the contract server here, see testbed/openmetadata_contract/README.md),
//! Kafka and the Schema Registry: 10k tables across 3 services land as exactly one live
//! snapshot each; additions, changes and deletions (tombstones) show up at the next poll; an
//! unchanged catalog publishes nothing; kill -9 and restart leaves nothing missing or stale.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lineage_schemas::records::TableSnapshot;
use lineage_schemas::{RecordCodec, RegistryClient};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use serde_json::{Value, json};

const POLL_INTERVAL: Duration = Duration::from_secs(2);
const TABLES_PER_SERVICE: usize = 3_334;

/// The OpenMetadata under test.
struct OpenMetadata {
    url: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl OpenMetadata {
    fn new() -> Self {
        Self {
            url: common::service_env("OPENMETADATA_URL"),
            token: common::service_env("OPENMETADATA_JWT"),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        }
    }

    /// Test-only fixture endpoint of the contract server.
    fn admin(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/contract/{path}", self.url))
            .json(&body)
            .send()
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.text().unwrap()
        );
        response.json().unwrap()
    }

    /// FQN → version of the live tables of `services`, through the public API.
    fn live_tables(&self, services: &[String]) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for service in services {
            let mut after: Option<String> = None;
            loop {
                let mut params = vec![("limit", "1000"), ("include", "non-deleted")];
                if let Some(after) = &after {
                    params.push(("after", after));
                }
                let url = reqwest::Url::parse_with_params(
                    &format!("{}/api/v1/tables", self.url),
                    &params,
                )
                .unwrap();
                let page: Value = self
                    .http
                    .get(url)
                    .bearer_auth(&self.token)
                    .send()
                    .unwrap()
                    .json()
                    .unwrap();
                for t in page["data"].as_array().unwrap() {
                    let fqn = t["fullyQualifiedName"].as_str().unwrap();
                    if t["service"]["name"] == service.as_str() {
                        out.insert(fqn.to_owned(), t["version"].as_f64().unwrap());
                    }
                }
                match page["paging"]["after"].as_str() {
                    Some(next) => after = Some(next.to_owned()),
                    None => break,
                }
            }
        }
        out
    }
}

/// The producer process.
struct Producer {
    child: Child,
    admin: u16,
}

impl Producer {
    fn start(topic: &str, services: &[String], token: Option<&str>) -> Self {
        let admin = common::free_port();
        let services = format!(
            "[{}]",
            services
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut command = Command::new(env!("CARGO_BIN_EXE_lineage-bus"));
        if let Some(token) = token {
            command.env("LINEAGE_BUS__PRODUCERS__OPENMETADATA__JWT_TOKEN", token);
        }
        let child = command
            .args(["produce", "openmetadata"])
            .env(
                "LINEAGE_BUS__KAFKA__BOOTSTRAP_SERVERS",
                common::service_env("KAFKA_BOOTSTRAP"),
            )
            .env(
                "LINEAGE_BUS__SCHEMA_REGISTRY__URL",
                common::service_env("SCHEMA_REGISTRY_URL"),
            )
            .env(
                "LINEAGE_BUS__PRODUCERS__OPENMETADATA__URL",
                common::service_env("OPENMETADATA_URL"),
            )
            .env("LINEAGE_BUS__PRODUCERS__OPENMETADATA__SERVICES", services)
            .env("LINEAGE_BUS__PRODUCERS__OPENMETADATA__PAGE_SIZE", "1000")
            .env(
                "LINEAGE_BUS__PRODUCERS__OPENMETADATA__POLL_INTERVAL",
                format!("{}s", POLL_INTERVAL.as_secs()),
            )
            .env("LINEAGE_BUS__PRODUCERS__OPENMETADATA__TOPIC", topic)
            .env(
                "LINEAGE_BUS__PRODUCERS__OPENMETADATA__TRANSACTIONAL_ID",
                format!("{topic}-writer"),
            )
            .env("LINEAGE_BUS__TENANT__ID", "om-test")
            .env("LINEAGE_BUS__ADMIN__LISTEN", format!("127.0.0.1:{admin}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Self { child, admin }
    }

    fn metrics(&self) -> String {
        reqwest::blocking::get(format!("http://127.0.0.1:{}/metrics", self.admin))
            .and_then(|r| r.text())
            .unwrap_or_default()
    }

    fn metric(&self, name_and_labels: &str) -> f64 {
        self.metrics()
            .lines()
            .find(|l| l.starts_with(name_and_labels))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    fn ok_polls(&self) -> f64 {
        self.metric("lineage_bus_producer_openmetadata_polls_total{result=\"ok\"}")
    }

    /// Waits until `n` more polls succeeded than `since`.
    fn wait_polls(&mut self, since: f64, n: f64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.ok_polls() < since + n {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "the producer exited: {}",
                self.stderr()
            );
            assert!(Instant::now() < deadline, "no {n} polls within {timeout:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill9(&mut self) {
        let status = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap();
    }

    fn stderr(&mut self) -> String {
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        std::io::read_to_string(self.child.stderr.take().unwrap()).unwrap_or_default()
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn create_compacted_topic(topic: &str) {
    let admin: AdminClient<DefaultClientContext> = common::kafka()
        .client_config("test-admin")
        .create()
        .unwrap();
    let new = NewTopic::new(topic, 3, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    for result in admin
        .create_topics(
            [&new],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .unwrap()
    {
        result.unwrap();
    }
}

/// The topic read committed from the beginning: last value per key (None = tombstone), and
/// the number of records read.
/// The latest value per key of `topic` (tombstones as `None`) and how many records it holds.
async fn read_topic(topic: &str) -> (HashMap<String, Option<Vec<u8>>>, usize) {
    let records = common::read_to_end(topic).await;
    let count = records.len();
    (records.into_iter().collect(), count)
}

async fn codec(topic: &str) -> RecordCodec<TableSnapshot> {
    let registry = RegistryClient::new(
        &common::service_env("SCHEMA_REGISTRY_URL"),
        Duration::from_secs(10),
        None,
    )
    .unwrap();
    RecordCodec::for_topic(registry, topic).await.unwrap()
}

/// FQN → version of the live snapshots in the topic.
async fn live_snapshots(topic: &str, codec: &RecordCodec<TableSnapshot>) -> BTreeMap<String, f64> {
    let (last, _) = read_topic(topic).await;
    let mut out = BTreeMap::new();
    for (key, value) in last {
        if let Some(bytes) = value {
            let snapshot = codec.decode(&bytes).await.unwrap();
            assert_eq!(snapshot.fqn, key, "the key is the snapshot's FQN");
            assert!(!snapshot.deleted, "a published snapshot is live");
            out.insert(key, snapshot.version);
        }
    }
    out
}

/// Waits until the topic's live snapshots equal the catalog's live tables.
fn wait_converged(
    rt: &tokio::runtime::Runtime,
    om: &OpenMetadata,
    services: &[String],
    topic: &str,
    codec: &RecordCodec<TableSnapshot>,
    timeout: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let want = om.live_tables(services);
        let have = rt.block_on(live_snapshots(topic, codec));
        if want == have {
            return started.elapsed();
        }
        if started.elapsed() > timeout {
            let missing: Vec<_> = want
                .keys()
                .filter(|k| !have.contains_key(*k))
                .take(5)
                .collect();
            let stale: Vec<_> = have
                .iter()
                .filter(|(k, v)| want.get(*k) != Some(v))
                .take(5)
                .collect();
            panic!(
                "topic != catalog after {timeout:?}: {} live in the catalog, {} in the topic; \
                 missing e.g. {missing:?}; stale e.g. {stale:?}",
                want.len(),
                have.len()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn spec(service: &str, name: &str, description: &str) -> Value {
    json!({"service": service, "database": "db0", "schema": "extra", "name": name,
           "description": description,
           "columns": [{"name": "id", "dataType": "BIGINT"},
                       {"name": "doc", "dataType": "STRUCT",
                        "children": [{"name": "x", "dataType": "INT"}]}],
           "tags": ["Tier.Tier1"], "owners": ["alice"]})
}

#[test]
fn ten_thousand_tables_changes_deletes_unchanged_and_kill_9() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let om = OpenMetadata::new();
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let services: Vec<String> = ["pg", "snow", "bq"]
        .iter()
        .map(|s| format!("om{run}{s}"))
        .collect();
    let seeded = om.admin(
        "tables/bulk",
        json!({"services": services, "tables": TABLES_PER_SERVICE, "databases": 2, "schemas": 4,
               "columns": 4, "dottedEvery": 97}),
    );
    assert_eq!(seeded["created"], 3 * TABLES_PER_SERVICE);
    // a table of another service that this producer must leave alone
    om.admin(
        "tables",
        json!({"tables": [spec(&format!("om{run}other"), "t", "x")]}),
    );
    let topic = common::unique_topic("openmetadata-tables");
    rt.block_on(create_compacted_topic(&topic));
    let codec = rt.block_on(codec(&topic));

    // 1. the first poll publishes one live snapshot per table, nothing else
    let mut producer = Producer::start(&topic, &services, Some(&om.token));
    let started = Instant::now();
    producer.wait_polls(0.0, 1.0, Duration::from_secs(180));
    let first_poll = started.elapsed();
    let (last, records) = rt.block_on(read_topic(&topic));
    assert_eq!(
        records,
        3 * TABLES_PER_SERVICE,
        "one record per table after one poll"
    );
    assert_eq!(last.len(), 3 * TABLES_PER_SERVICE);
    // checked once: the first poll alone made the topic equal to the catalog
    wait_converged(&rt, &om, &services, &topic, &codec, Duration::ZERO);
    let sample = rt
        .block_on(
            codec.decode(
                last.get(&format!("{}.db0.s0.\"t.00000\"", services[0]))
                    .unwrap()
                    .as_ref()
                    .unwrap(),
            ),
        )
        .unwrap();
    assert_eq!(
        (sample.service.as_str(), sample.table.as_str()),
        (services[0].as_str(), "t.00000")
    );
    assert_eq!(
        sample.columns[2].children[1].fqn,
        format!("{}.db0.s0.\"t.00000\".payload.b", services[0])
    );
    assert_eq!(sample.tenant, "om-test");
    assert!(
        last.keys().all(|k| !k.contains("other")),
        "a service outside the filter was published"
    );
    eprintln!(
        "first poll of {} tables: {first_poll:?}",
        3 * TABLES_PER_SERVICE
    );

    // 2. an unchanged catalog publishes nothing
    let polls = producer.ok_polls();
    producer.wait_polls(polls, 2.0, Duration::from_secs(60));
    let (_, again) = rt.block_on(read_topic(&topic));
    assert_eq!(again, records, "an unchanged catalog published something");
    assert!(
        producer.metric("lineage_bus_producer_openmetadata_tables_total{outcome=\"unchanged\"}")
            >= 2.0 * 10_002.0
    );

    // 3. add, change, soft-delete, hard-delete: visible at the next poll
    let (a, b, c) = (&services[0], &services[1], &services[2]);
    om.admin(
        "tables",
        json!({"tables": [spec(a, "new1", "n"), spec(b, "new.2", "n"), spec(c, "new3", "n")]}),
    );
    om.admin(
        "tables/bulk",
        json!({"services": [a], "tables": 3, "databases": 2, "schemas": 4, "columns": 4,
                                   "dottedEvery": 97, "description": "changed"}),
    );
    let soft = [format!("{b}.db0.s2.t00004"), format!("{b}.db1.s2.t00005")];
    let hard = [format!("{c}.db0.s3.t00006"), format!("{c}.db1.s3.t00007")];
    om.admin("tables/delete", json!({"fqns": soft, "hardDelete": false}));
    om.admin("tables/delete", json!({"fqns": hard, "hardDelete": true}));
    // the poll running now may have listed before the changes; the one after it must have them
    let changed_at = Instant::now();
    let polls = producer.ok_polls();
    producer.wait_polls(polls, 2.0, POLL_INTERVAL * 2 + Duration::from_secs(60));
    let visible = changed_at.elapsed();
    // one poll's duration (listing 10k tables, converting and comparing them)
    let poll = Duration::from_secs_f64(
        producer.metric("lineage_bus_producer_openmetadata_poll_duration_seconds_sum")
            / producer.metric("lineage_bus_producer_openmetadata_poll_duration_seconds_count"),
    );
    eprintln!(
        "changes published within {visible:?} (poll interval {POLL_INTERVAL:?}, mean poll {poll:?})"
    );
    // at worst: the rest of a poll that listed before the change, the interval, one more poll
    assert!(visible <= POLL_INTERVAL + poll * 2 + Duration::from_secs(1));
    wait_converged(&rt, &om, &services, &topic, &codec, Duration::ZERO);
    let (last, after_changes) = rt.block_on(read_topic(&topic));
    for fqn in soft.iter().chain(&hard) {
        assert_eq!(last.get(fqn), Some(&None), "{fqn} was not tombstoned");
    }
    // 3 new + 3 changed + 4 tombstones, nothing else
    assert_eq!(
        after_changes - records,
        10,
        "only the changes were published"
    );
    let changed = rt
        .block_on(
            codec.decode(
                last.get(&format!("{a}.db0.s0.\"t.00000\""))
                    .unwrap()
                    .as_ref()
                    .unwrap(),
            ),
        )
        .unwrap();
    assert_eq!(
        (changed.description.as_deref(), changed.version),
        (Some("changed"), 0.2)
    );

    // 4. kill -9 in the middle of publishing a change of every table, change more while it is
    //    down, restart: nothing missing, nothing stale
    om.admin("tables/bulk", json!({"services": services, "tables": TABLES_PER_SERVICE, "databases": 2,
                                   "schemas": 4, "columns": 4, "dottedEvery": 97, "description": "v3"}));
    let (_, before_kill) = rt.block_on(read_topic(&topic));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // kill once the producer has started writing the big change
        let (_, n) = rt.block_on(read_topic(&topic));
        if n > before_kill || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    producer.kill9();
    let (_, at_kill) = rt.block_on(read_topic(&topic));
    eprintln!(
        "killed after {} of {} changed records were committed",
        at_kill - before_kill,
        3 * TABLES_PER_SERVICE
    );
    om.admin(
        "tables/delete",
        json!({"fqns": [format!("{a}.db1.s1.t00011")], "hardDelete": true}),
    );
    om.admin("tables", json!({"tables": [spec(c, "after_kill", "k")]}));
    let mut producer = Producer::start(&topic, &services, Some(&om.token));
    let elapsed = wait_converged(
        &rt,
        &om,
        &services,
        &topic,
        &codec,
        Duration::from_secs(120),
    );
    eprintln!("converged {elapsed:?} after the restart");
    let (last, _) = rt.block_on(read_topic(&topic));
    assert_eq!(last.get(&format!("{a}.db1.s1.t00011")), Some(&None));
    let live = last.values().filter(|v| v.is_some()).count();
    assert_eq!(
        live,
        om.live_tables(&services).len(),
        "exactly one live snapshot per table"
    );
    let polls = producer.ok_polls();
    producer.wait_polls(polls, 1.0, Duration::from_secs(60));
    let _ = producer.stderr();
}

#[test]
fn missing_or_refused_tokens_stop_the_role_with_a_clear_error() {
    let topic = common::unique_topic("openmetadata-auth");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(create_compacted_topic(&topic));
    for (token, expected) in [
        (
            None,
            "no token configured: set [producers.openmetadata] jwt_token",
        ),
        (
            Some("not-the-token"),
            "the configured [producers.openmetadata] jwt_token was refused",
        ),
    ] {
        let mut producer = Producer::start(&topic, &["whatever".to_owned()], token);
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = producer.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the role kept running without a valid token"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let stderr = std::io::read_to_string(producer.child.stderr.take().unwrap()).unwrap();
        assert!(!status.success());
        assert!(
            stderr.contains("401 Unauthorized") && stderr.contains(expected),
            "{stderr}"
        );
    }
}
