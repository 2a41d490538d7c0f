//! `lineage-bus produce openmetadata` as a process against the testbed's OpenMetadata
//! (OPENMETADATA_URL; the contract server here, see testbed/openmetadata_contract/README.md),
//! Kafka and the Schema Registry: 10k tables across 3 services land as exactly one live
//! snapshot each; additions, changes, restores and deletions (tombstones) show up within one
//! poll interval through OpenMetadata's change events; an unchanged catalog publishes nothing
//! over several polls; kill -9 and restart leaves nothing missing or stale; a deletion whose
//! event was lost is repaired by the periodic full listing; readiness is false while
//! OpenMetadata cannot be reached.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lineage_schemas::records::{SourceCursor, TableSnapshot};
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

    /// A table by FQN through the public API (`include` = all, deleted, non-deleted).
    fn get_table(&self, fqn: &str, include: &str) -> Value {
        let mut url = reqwest::Url::parse(&self.url).unwrap();
        url.path_segments_mut()
            .unwrap()
            .extend(["api", "v1", "tables", "name", fqn]);
        url.query_pairs_mut().append_pair("include", include);
        let response = self.http.get(url).bearer_auth(&self.token).send().unwrap();
        assert!(
            response.status().is_success(),
            "{fqn}: {}",
            response.status()
        );
        response.json().unwrap()
    }

    /// Restores a soft-deleted table through the public API.
    fn restore(&self, id: &str) {
        let response = self
            .http
            .put(format!("{}/api/v1/tables/restore", self.url))
            .bearer_auth(&self.token)
            .json(&json!({"id": id}))
            .send()
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
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

/// How a producer process is started.
#[derive(Clone)]
struct Settings {
    topic: String,
    cursor_topic: String,
    services: Vec<String>,
    token: Option<String>,
    url: String,
    poll_interval: Duration,
    full_relist_interval: Duration,
}

impl Settings {
    fn new(topic: &str, cursor_topic: &str, services: &[String], token: Option<&str>) -> Self {
        Self {
            topic: topic.to_owned(),
            cursor_topic: cursor_topic.to_owned(),
            services: services.to_vec(),
            token: token.map(str::to_owned),
            url: common::service_env("OPENMETADATA_URL"),
            poll_interval: POLL_INTERVAL,
            full_relist_interval: Duration::from_secs(3600),
        }
    }
}

/// The producer process.
struct Producer {
    child: Child,
    admin: u16,
}

impl Producer {
    fn start(settings: &Settings) -> Self {
        let (topic, services, token) = (
            settings.topic.as_str(),
            &settings.services,
            settings.token.as_deref(),
        );
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
            .env("LINEAGE_BUS__PRODUCERS__OPENMETADATA__URL", &settings.url)
            .env("LINEAGE_BUS__PRODUCERS__OPENMETADATA__SERVICES", services)
            .env("LINEAGE_BUS__PRODUCERS__OPENMETADATA__PAGE_SIZE", "1000")
            .env(
                "LINEAGE_BUS__PRODUCERS__OPENMETADATA__POLL_INTERVAL",
                format!("{}ms", settings.poll_interval.as_millis()),
            )
            .env(
                "LINEAGE_BUS__PRODUCERS__OPENMETADATA__FULL_RELIST_INTERVAL",
                format!("{}ms", settings.full_relist_interval.as_millis()),
            )
            .env(
                "LINEAGE_BUS__PRODUCERS__OPENMETADATA__CURSOR_TOPIC",
                &settings.cursor_topic,
            )
            .env("LINEAGE_BUS__PRODUCERS__OPENMETADATA__MAX_RETRIES", "2")
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

    /// `/health/ready`: (HTTP status, body).
    fn ready(&self) -> (u16, String) {
        match reqwest::blocking::get(format!("http://127.0.0.1:{}/health/ready", self.admin)) {
            Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    }

    /// Waits until `check` holds, failing with `what` after `timeout`.
    fn wait_for(&mut self, what: &str, timeout: Duration, check: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + timeout;
        while !check(self) {
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "the producer exited: {}",
                self.stderr()
            );
            assert!(Instant::now() < deadline, "not within {timeout:?}: {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
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

async fn create_compacted_topic(topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = common::kafka()
        .client_config("test-admin")
        .create()
        .unwrap();
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact");
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

/// A record seen by a [`Follower`]: when, key, value (`None` = tombstone).
type Seen = (Instant, String, Option<Vec<u8>>);

/// Every record committed to a topic after the follower started, with when it was seen.
struct Follower {
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: tokio_util::sync::CancellationToken,
}

impl Follower {
    /// Reads `topic` to its end, then records every further update.
    fn start(rt: &tokio::runtime::Runtime, topic: &str) -> Self {
        let _runtime = rt.enter();
        let reader = lineage_bus_core::compacted::CompactedReader::new(
            &common::kafka(),
            "test-follower",
            topic,
            Duration::from_secs(10),
        )
        .unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        rt.block_on(reader.fold_to_end(&stop, |_, _| {})).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (out, token) = (Arc::clone(&seen), stop.clone());
        rt.spawn(async move {
            while let Ok(Some(update)) = reader.next_update(&token).await {
                let key = String::from_utf8(update.key).unwrap();
                out.lock()
                    .unwrap()
                    .push((Instant::now(), key, update.value));
            }
        });
        Self { seen, stop }
    }

    /// Waits until every key of `want` was seen with a value (true) or as a tombstone (false)
    /// as its latest record; returns when the last of them arrived.
    fn wait(&self, want: &BTreeMap<String, bool>, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.seen.lock().unwrap();
            let mut latest: HashMap<&str, (Instant, bool)> = HashMap::new();
            for (at, key, value) in seen.iter() {
                latest.insert(key, (*at, value.is_some()));
            }
            let done: Option<Vec<Instant>> = want
                .iter()
                .map(|(k, live)| {
                    latest
                        .get(k.as_str())
                        .filter(|(_, l)| l == live)
                        .map(|(at, _)| *at)
                })
                .collect();
            if let Some(times) = done {
                return times.into_iter().max().unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "not seen within {timeout:?}: {want:?}; seen {:?}",
                latest.keys().take(20).collect::<Vec<_>>()
            );
            drop(seen);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn metric_tables(producer: &Producer, outcome: &str) -> f64 {
    producer.metric(&format!(
        "lineage_bus_producer_openmetadata_tables_total{{outcome=\"{outcome}\"}}"
    ))
}

fn services_of_run(run: &str) -> Vec<String> {
    ["pg", "snow", "bq"]
        .iter()
        .map(|s| format!("om{run}{s}"))
        .collect()
}

#[test]
fn ten_thousand_tables_changes_deletes_unchanged_and_kill_9() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let om = OpenMetadata::new();
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let services = services_of_run(&run);
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
    let cursor_topic = common::unique_topic("openmetadata-cursors");
    rt.block_on(create_compacted_topic(&topic, 3));
    rt.block_on(create_compacted_topic(&cursor_topic, 1));
    let codec = rt.block_on(codec(&topic));
    let settings = Settings::new(&topic, &cursor_topic, &services, Some(&om.token));

    // 1. the first poll (a full listing: no cursor yet) publishes one live snapshot per table
    let mut producer = Producer::start(&settings);
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
    assert_eq!(
        producer.metric("lineage_bus_producer_openmetadata_listings_total{reason=\"start\"}"),
        1.0
    );
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
    // the listing committed both cursors with its last transaction
    let cursors = cursor_positions(&rt, &cursor_topic);
    assert_eq!(cursors.len(), 2, "{cursors:?}");
    eprintln!(
        "first poll of {} tables: {first_poll:?}",
        3 * TABLES_PER_SERVICE
    );

    // 2. an unchanged catalog publishes nothing, over several polls, and reads no table again
    let follower = Follower::start(&rt, &topic);
    let cursor_follower = Follower::start(&rt, &cursor_topic);
    let published = metric_tables(&producer, "published");
    let applied =
        producer.metric("lineage_bus_producer_openmetadata_events_total{outcome=\"applied\"}");
    let polls = producer.ok_polls();
    producer.wait_polls(polls, 4.0, POLL_INTERVAL * 4 + Duration::from_secs(30));
    let (_, again) = rt.block_on(read_topic(&topic));
    assert_eq!(again, records, "an unchanged catalog published something");
    assert_eq!(
        follower.count(),
        0,
        "an unchanged catalog published something"
    );
    // (the event cursor may move: events of other services, e.g. other tests, are skipped)
    assert_eq!(metric_tables(&producer, "published"), published);
    assert_eq!(
        producer.metric("lineage_bus_producer_openmetadata_events_total{outcome=\"applied\"}"),
        applied,
        "unchanged tables were read again"
    );
    assert_eq!(
        producer.metric("lineage_bus_producer_openmetadata_listings_total{reason=\"start\"}"),
        1.0,
        "polls after the first must follow the change events, not list the catalog"
    );

    // 3. add, change, soft-delete, hard-delete: visible within one poll interval
    let (a, b, c) = (&services[0], &services[1], &services[2]);
    let soft = [format!("{b}.db0.s2.t00004"), format!("{b}.db1.s2.t00005")];
    let hard = [format!("{c}.db0.s3.t00006"), format!("{c}.db1.s3.t00007")];
    let mut want: BTreeMap<String, bool> = BTreeMap::new();
    for (service, name) in [(a, "new1"), (b, "\"new.2\""), (c, "new3")] {
        want.insert(format!("{service}.db0.extra.{name}"), true);
    }
    for changed in ["db0.s0.\"t.00000\"", "db1.s0.t00001", "db0.s1.t00002"] {
        want.insert(format!("{a}.{changed}"), true);
    }
    for fqn in soft.iter().chain(&hard) {
        want.insert(fqn.clone(), false);
    }
    let changed_at = Instant::now();
    om.admin(
        "tables",
        json!({"tables": [spec(a, "new1", "n"), spec(b, "new.2", "n"), spec(c, "new3", "n")]}),
    );
    om.admin(
        "tables/bulk",
        json!({"services": [a], "tables": 3, "databases": 2, "schemas": 4, "columns": 4,
                                   "dottedEvery": 97, "description": "changed"}),
    );
    om.admin("tables/delete", json!({"fqns": soft, "hardDelete": false}));
    om.admin("tables/delete", json!({"fqns": hard, "hardDelete": true}));
    let made = changed_at.elapsed();
    let visible = follower.wait(&want, POLL_INTERVAL * 3) - changed_at;
    eprintln!(
        "changes made within {made:?}, published within {visible:?} (poll interval {POLL_INTERVAL:?})"
    );
    // at worst: the changes land just after a poll read the events, then one interval and one
    // (short) event poll
    assert!(
        visible <= made + POLL_INTERVAL + Duration::from_millis(1500),
        "changes took {visible:?} to show (poll interval {POLL_INTERVAL:?})"
    );
    // let a further poll run: nothing else may follow
    let polls = producer.ok_polls();
    producer.wait_polls(polls, 2.0, POLL_INTERVAL * 2 + Duration::from_secs(30));
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
    assert_eq!(follower.count(), 10);
    assert!(
        cursor_follower.count() >= 1,
        "the event cursor did not move"
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

    // 3b. a restored table is live again within one poll interval
    let restored = om.get_table(&soft[0], "deleted");
    let restored_at = Instant::now();
    om.restore(restored["id"].as_str().unwrap());
    let visible = follower.wait(
        &BTreeMap::from([(soft[0].clone(), true)]),
        POLL_INTERVAL * 3,
    ) - restored_at;
    assert!(
        visible <= POLL_INTERVAL + Duration::from_millis(1500),
        "{visible:?}"
    );

    // 4. kill -9 in the middle of publishing a change of every table (too many changed tables
    //    for one request each: a full listing), change more while it is down, restart:
    //    nothing missing, nothing stale
    om.admin("tables/bulk", json!({"services": services, "tables": TABLES_PER_SERVICE, "databases": 2,
                                   "schemas": 4, "columns": 4, "dottedEvery": 97, "description": "v3"}));
    let before_kill = follower.count();
    let deadline = Instant::now() + Duration::from_secs(30);
    // kill once the producer has started writing the big change
    while follower.count() == before_kill && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    producer.kill9();
    std::thread::sleep(Duration::from_millis(500));
    let at_kill = follower.count();
    eprintln!(
        "killed after {} of {} changed records were committed",
        at_kill - before_kill,
        3 * TABLES_PER_SERVICE
    );
    assert!(
        at_kill - before_kill < 3 * TABLES_PER_SERVICE,
        "the kill came after the whole change was committed: nothing tested"
    );
    om.admin(
        "tables/delete",
        json!({"fqns": [format!("{a}.db1.s1.t00011")], "hardDelete": true}),
    );
    om.admin("tables", json!({"tables": [spec(c, "after_kill", "k")]}));
    let mut producer = Producer::start(&settings);
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

/// The committed cursors: key → position.
fn cursor_positions(rt: &tokio::runtime::Runtime, topic: &str) -> BTreeMap<String, i64> {
    let registry = common::registry();
    let codec: RecordCodec<SourceCursor> = rt
        .block_on(RecordCodec::for_topic(registry, topic))
        .unwrap();
    let (last, _) = rt.block_on(read_topic(topic));
    last.into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .map(|(k, v)| (k, rt.block_on(codec.decode(&v)).unwrap().position))
        .collect()
}

#[test]
fn a_deletion_whose_event_was_lost_is_tombstoned_by_the_periodic_full_listing() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let om = OpenMetadata::new();
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let services = vec![format!("om{run}relist")];
    om.admin(
        "tables/bulk",
        json!({"services": services, "tables": 50, "databases": 1, "schemas": 1, "columns": 2}),
    );
    let topic = common::unique_topic("openmetadata-relist");
    let cursor_topic = common::unique_topic("openmetadata-relist-cursors");
    rt.block_on(create_compacted_topic(&topic, 3));
    rt.block_on(create_compacted_topic(&cursor_topic, 1));
    let mut settings = Settings::new(&topic, &cursor_topic, &services, Some(&om.token));
    settings.poll_interval = Duration::from_millis(500);
    settings.full_relist_interval = Duration::from_secs(8);
    let mut producer = Producer::start(&settings);
    producer.wait_polls(0.0, 1.0, Duration::from_secs(60));
    producer.kill9();
    // while it is down: a hard delete whose change event is lost (OpenMetadata purges events)
    let lost = format!("{}.db0.s0.t00007", services[0]);
    om.admin(
        "tables/delete",
        json!({"fqns": [&lost], "hardDelete": true}),
    );
    // its two events: created, deleted
    assert_eq!(
        om.admin("events/purge", json!({"fqns": [&lost]}))["purged"],
        2
    );
    let follower = Follower::start(&rt, &topic);
    let mut producer = Producer::start(&settings);
    let restarted = Instant::now();
    // the restart resumes from the cursors: no listing at start, the events do not have it
    producer.wait_polls(0.0, 3.0, Duration::from_secs(30));
    assert_eq!(
        follower.count(),
        0,
        "the lost deletion showed before the re-list"
    );
    assert_eq!(
        producer.metric("lineage_bus_producer_openmetadata_listings_total{reason=\"start\"}"),
        0.0
    );
    let at = follower.wait(
        &BTreeMap::from([(lost.clone(), false)]),
        settings.full_relist_interval + Duration::from_secs(10),
    );
    eprintln!(
        "lost deletion tombstoned {:?} after the restart",
        at - restarted
    );
    assert_eq!(
        producer.metric("lineage_bus_producer_openmetadata_listings_total{reason=\"interval\"}"),
        1.0
    );
    assert_eq!(
        follower.count(),
        1,
        "the re-list published more than the tombstone"
    );
    wait_converged(
        &rt,
        &om,
        &services,
        &topic,
        &rt.block_on(codec(&topic)),
        Duration::ZERO,
    );
    let _ = producer.stderr();
}

/// A stand-in OpenMetadata that answers every request with 503 while `down` is set, and an
/// empty catalog (no tables, no events) otherwise.
fn flaky_openmetadata(down: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 8192];
            let _ = stream.read(&mut buf);
            let (status, body) = if down.load(Ordering::SeqCst) {
                (
                    "503 Service Unavailable",
                    r#"{"code":503,"message":"down"}"#,
                )
            } else {
                ("200 OK", r#"{"data":[],"paging":{"total":0}}"#)
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn not_ready_while_openmetadata_cannot_be_reached() {
    let topic = common::unique_topic("openmetadata-ready");
    let cursor_topic = common::unique_topic("openmetadata-ready-cursors");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(create_compacted_topic(&topic, 1));
    rt.block_on(create_compacted_topic(&cursor_topic, 1));
    let down = Arc::new(AtomicBool::new(false));
    let port = flaky_openmetadata(Arc::clone(&down));
    let mut settings = Settings::new(&topic, &cursor_topic, &[], Some("token"));
    settings.url = format!("http://127.0.0.1:{port}");
    settings.poll_interval = Duration::from_millis(500);
    let mut producer = Producer::start(&settings);
    // readiness and the reachable gauge are set by different steps of the first poll
    producer.wait_for("ready and reachable", Duration::from_secs(60), |p| {
        p.ready().0 == 200 && p.metric("lineage_bus_producer_openmetadata_reachable") == 1.0
    });
    // OpenMetadata answers 503: not ready at the first failed request, not after the retries
    down.store(true, Ordering::SeqCst);
    let failed = Instant::now();
    producer.wait_for("not ready", Duration::from_secs(10), |p| p.ready().0 == 503);
    let noticed = failed.elapsed();
    assert!(
        noticed <= settings.poll_interval + Duration::from_secs(1),
        "readiness noticed the outage after {noticed:?}"
    );
    let (_, body) = producer.ready();
    assert!(body.contains("produce-openmetadata"), "{body}");
    producer.wait_for("unreachable", Duration::from_secs(10), |p| {
        p.metric("lineage_bus_producer_openmetadata_reachable") == 0.0
    });
    producer.wait_for("5xx counted", Duration::from_secs(10), |p| {
        p.metric("lineage_bus_producer_openmetadata_api_errors_total{class=\"5xx\"}") >= 1.0
    });
    // failed polls are counted, and the role keeps trying (max_retries = 2)
    producer.wait_for("a failed poll", Duration::from_secs(30), |p| {
        p.metric("lineage_bus_producer_openmetadata_polls_total{result=\"error\"}") >= 1.0
    });
    assert_eq!(producer.ready().0, 503);
    // back: ready again at the next successful poll
    down.store(false, Ordering::SeqCst);
    producer.wait_for("ready again", Duration::from_secs(30), |p| {
        p.ready().0 == 200
    });
    assert_eq!(
        producer.metric("lineage_bus_producer_openmetadata_reachable"),
        1.0
    );
    let _ = producer.stderr();
}

#[test]
fn missing_or_refused_tokens_stop_the_role_with_a_clear_error() {
    let topic = common::unique_topic("openmetadata-auth");
    let cursor_topic = common::unique_topic("openmetadata-auth-cursors");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(create_compacted_topic(&topic, 1));
    rt.block_on(create_compacted_topic(&cursor_topic, 1));
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
        let settings = Settings::new(&topic, &cursor_topic, &["whatever".to_owned()], token);
        let mut producer = Producer::start(&settings);
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
