//! `produce dagster` over Dagster's GraphQL API, against the testbed's real Dagster: the asset
//! graph lands in a compacted topic exactly once (changes only, tombstones for removed
//! assets) in a form the processor accepts, and readiness follows Dagster's reachability.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lineage_producers::dagster::assets::{self, AssetPoll, AssetPublisher};
use lineage_producers::dagster::graphql::GraphqlConfig;
use lineage_producers::dagster::graphql::poller::{EventPoller, PollerSettings};
use lineage_producers::dagster::parse::parse_event;
use lineage_schemas::records::{
    AssetDefinition, DagsterEvent, DagsterEventType, MetadataEntry, MetadataKind, SourceKind,
    SourcePosition,
};
use lineage_schemas::{RecordCodec, wire};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Dagster's asset graph as its own `assetNodes` query shows it: key → deps (stubs left out).
async fn dagster_graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(common::service_env("DAGSTER_GRAPHQL_URL"))
        .json(&serde_json::json!({"query":
            "{ assetNodes { assetKey { path } dependencyKeys { path } isAutoCreatedStub } }"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let path = |v: &serde_json::Value| -> Vec<String> {
        serde_json::from_value(v["path"].clone()).unwrap()
    };
    answer["data"]["assetNodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|node| node["isAutoCreatedStub"] != serde_json::Value::Bool(true))
        .map(|node| {
            (
                path(&node["assetKey"]),
                node["dependencyKeys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(path)
                    .collect(),
            )
        })
        .collect()
}

fn graphql_config(topic: &str) -> GraphqlConfig {
    GraphqlConfig {
        url: Some(common::service_env("DAGSTER_GRAPHQL_URL")),
        assets_topic: topic.to_owned(),
        page_size: 4, // several pages for the sample project's assets
        asset_poll_interval: Duration::from_millis(200),
        ..GraphqlConfig::default()
    }
}

async fn codec(topic: &str) -> RecordCodec<AssetDefinition> {
    RecordCodec::for_topic(common::registry(), topic)
        .await
        .unwrap()
}

async fn open(topic: &str, tenant: &str) -> AssetPublisher {
    AssetPublisher::open(
        &graphql_config(topic),
        &format!("it-assets-{tenant}"),
        tenant.to_owned(),
        &common::kafka(),
        codec(topic).await,
        &CancellationToken::new(),
    )
    .await
    .unwrap()
    .expect("not shut down")
}

/// The live records of `topic` (latest per key, tombstones applied) and the record count.
async fn live_records(topic: &str) -> (BTreeMap<String, Option<AssetDefinition>>, usize) {
    let records = common::read_to_end(topic).await;
    let count = records.len();
    let mut live = BTreeMap::new();
    for (key, value) in records {
        live.insert(
            key,
            value.map(|bytes| {
                wire::decode_own::<AssetDefinition>(wire::split(&bytes).unwrap().1).unwrap()
            }),
        );
    }
    (live, count)
}

/// An asset record of `tenant` that Dagster does not define, written as another producer
/// instance would have.
async fn write_ghost(topic: &str, tenant: &str) -> String {
    let ghost = AssetDefinition {
        tenant: tenant.to_owned(),
        source: SourcePosition {
            kind: SourceKind::Graphql,
            storage_id: None,
            shard: None,
            cursor: None,
        },
        asset_key: vec!["ghost".into(), "removed_asset".into()],
        code_location: Some("lineage_sample".into()),
        repository: Some("__repository__".into()),
        group: None,
        description: None,
        job_names: vec![],
        deps: vec![],
        owners: vec![],
        tags: BTreeMap::new(),
        kinds: vec![],
        metadata: vec![],
        is_materializable: true,
        partitions: None,
        checks: vec![],
        updated_ms: 1,
    };
    let value = codec(topic).await.encode(&ghost).unwrap();
    let producer: FutureProducer = common::kafka()
        .idempotent_producer_config("test-ghost")
        .set("partitioner", "murmur2_random") // as the publisher: the same partition per key
        .create()
        .unwrap();
    let key = ghost.kafka_key();
    producer
        .send(
            FutureRecord::to(topic).key(&key).payload(&value),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_asset_graph_lands_once_changes_only_and_removed_assets_are_tombstoned() {
    let expected = dagster_graph().await;
    assert!(
        expected.len() >= 10,
        "the sample project defines its assets"
    );
    let topic = common::unique_topic("dagster.assets");
    common::create_topic(&topic, 3).await;
    let tenant = format!("it{}", uuid::Uuid::new_v4().simple());
    let ghost = write_ghost(&topic, &tenant).await;
    // Another tenant's record is none of this producer's business.
    let other = write_ghost(&topic, "someone-else").await;

    let mut publisher = open(&topic, &tenant).await;
    let first = publisher.poll().await.unwrap();
    assert_eq!(
        first,
        AssetPoll {
            published: expected.len(),
            tombstoned: 1,
            unchanged: 0
        }
    );
    let (live, count) = live_records(&topic).await;
    assert_eq!(live.get(&ghost), Some(&None), "the ghost is tombstoned");
    assert!(
        live.get(&other).unwrap().is_some(),
        "other tenants are left alone"
    );
    let published: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = live
        .iter()
        .filter(|(key, _)| key.starts_with(&format!("{tenant}/")))
        .filter_map(|(_, d)| d.as_ref())
        .map(|d| (d.asset_key.clone(), d.deps.iter().cloned().collect()))
        .collect();
    assert_eq!(
        published, expected,
        "exactly Dagster's assets, with their deps"
    );
    let definitions: Vec<&AssetDefinition> = live.values().flatten().collect();
    let orders = definitions
        .iter()
        .find(|d| d.asset_key == ["warehouse_db", "raw", "orders"])
        .unwrap();
    assert_eq!(orders.code_location.as_deref(), Some("lineage_sample"));
    assert!(orders.metadata.iter().any(|m| {
        m.label == "dagster/column_schema"
            && m.table_schema
                .as_ref()
                .is_some_and(|s| !s.columns.is_empty())
    }));
    let clean = definitions
        .iter()
        .find(|d| d.asset_key == ["acme_project", "warehouse_db", "staging", "orders_clean"])
        .unwrap();
    assert!(
        clean.owners.contains(&"team:analytics".to_owned()),
        "{:?}",
        clean.owners
    );
    assert!(clean.job_names.contains(&"transform_job".to_owned()));
    assert!(!clean.checks.is_empty() && !clean.kinds.is_empty() && clean.group.is_some());
    assert!(
        definitions.iter().any(|d| !d.is_materializable),
        "external assets"
    );
    assert!(
        definitions.iter().any(|d| d.partitions.is_some()),
        "a partitioned asset"
    );

    // A second reading, and a restarted instance, publish nothing.
    let second = publisher.poll().await.unwrap();
    assert_eq!(
        (second.published, second.tombstoned, second.unchanged),
        (0, 0, expected.len())
    );
    publisher.close().await;
    let mut restarted = open(&topic, &tenant).await;
    let third = restarted.poll().await.unwrap();
    assert_eq!((third.published, third.tombstoned), (0, 0));
    restarted.close().await;
    let (_, count_after) = live_records(&topic).await;
    assert_eq!(
        count_after, count,
        "no record written by the unchanged readings"
    );

    // The processor reads what was published: the definition, its jobs and its table hint.
    let config = lineage_processors::processor::ProcessConfig {
        topics: lineage_processors::processor::ProcessTopics {
            assets: topic.clone(),
            ..Default::default()
        },
        ..Default::default()
    };
    let asset = lineage_processors::state::AssetRef::new(tenant.as_str(), ["kpi_feed"]);
    let explanation = lineage_processors::processor::explain(
        &config,
        &common::kafka(),
        &common::registry(),
        &asset,
    )
    .await
    .unwrap();
    assert!(explanation.defined, "{explanation:?}");
    assert!(explanation.hints.table_name.is_some(), "{explanation:?}");
    let ghost_asset =
        lineage_processors::state::AssetRef::new(tenant.as_str(), ["ghost", "removed_asset"]);
    let gone = lineage_processors::processor::explain(
        &config,
        &common::kafka(),
        &common::registry(),
        &ghost_asset,
    )
    .await
    .unwrap();
    assert!(
        !gone.defined,
        "the tombstone removed the asset from the processor's graph"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_false_while_dagster_graphql_is_unreachable() {
    let topic = common::unique_topic("dagster.assets");
    common::create_topic(&topic, 1).await;
    let tenant = format!("it{}", uuid::Uuid::new_v4().simple());
    let proxy = TcpProxy::start(&common::service_env("DAGSTER_GRAPHQL_URL")).await;
    let config = GraphqlConfig {
        url: Some(proxy.url("/graphql")),
        max_retries: 0,
        request_timeout: Duration::from_secs(2),
        ..graphql_config(&topic)
    };
    let (ready_tx, mut ready) = watch::channel(false);
    let stop = CancellationToken::new();
    let task = tokio::spawn(assets::run(
        config,
        format!("it-assets-{tenant}"),
        tenant.clone(),
        common::kafka(),
        codec(&topic).await,
        ready_tx,
        stop.clone(),
    ));
    let wait = |ready: &mut watch::Receiver<bool>, want: bool| {
        let mut ready = ready.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(30), ready.wait_for(|r| *r == want))
                .await
                .unwrap_or_else(|_| panic!("readiness did not become {want}"))
                .map(|_| ())
                .unwrap();
        }
    };
    wait(&mut ready, true).await;
    proxy.pause().await;
    wait(&mut ready, false).await;
    proxy.resume().await;
    wait(&mut ready, true).await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(!*ready.borrow(), "not ready once stopped");
}

/// A TCP proxy in front of Dagster that can be cut: while paused it closes every connection
/// (open ones included), as an unreachable Dagster would.
struct TcpProxy {
    port: u16,
    paused: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl TcpProxy {
    async fn start(target_url: &str) -> Self {
        let target = reqwest::Url::parse(target_url).unwrap();
        let target = format!(
            "{}:{}",
            target.host_str().unwrap(),
            target.port_or_known_default().unwrap()
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let paused = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (accept_paused, accept_connections) = (paused.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let (mut inbound, _) = listener.accept().await.unwrap();
                if accept_paused.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                accept_connections.lock().unwrap().push(task.abort_handle());
            }
        });
        Self {
            port,
            paused,
            connections,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    async fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }
}

/// What the GraphQL source and the event-log tail must agree on for one event.
#[derive(Debug, Clone, PartialEq)]
struct Comparable {
    event_type: DagsterEventType,
    run_id: Option<String>,
    step_key: Option<String>,
    asset_key: Option<Vec<String>>,
    partition: Option<String>,
    metadata: Vec<MetadataEntry>,
    check: Option<(String, Option<bool>)>,
    timestamp_ms: i64,
}

impl Comparable {
    fn of(event: &DagsterEvent) -> Self {
        // GraphQL does not show the partition of a planned materialization, nor Dagster's
        // serialized code references (see producers/src/dagster/graphql/events.rs).
        let planned = event.event_type == DagsterEventType::AssetMaterializationPlanned;
        Self {
            event_type: event.event_type,
            run_id: event.run_id.clone(),
            step_key: event.step_key.clone(),
            asset_key: event.asset_key.clone(),
            partition: if planned {
                None
            } else {
                event.partition.clone()
            },
            metadata: event
                .metadata
                .iter()
                .filter(|m| m.kind != MetadataKind::CodeReferences)
                .cloned()
                .collect(),
            check: event.check.as_ref().map(|c| (c.name.clone(), c.passed)),
            timestamp_ms: event.timestamp_ms,
        }
    }
}

/// The event-log tail's records of the finished runs, by run, in storage-id order (parsed
/// with the tail's own parser from the rows of Dagster's PostgreSQL storage).
async fn tail_records_by_run() -> BTreeMap<String, Vec<DagsterEvent>> {
    let (client, connection) = tokio_postgres::connect(
        &common::service_env("DAGSTER_PG_URL"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT e.id, e.run_id, e.event FROM event_logs e JOIN runs r ON r.run_id = e.run_id
             WHERE r.status IN ('SUCCESS', 'FAILURE', 'CANCELED') ORDER BY e.id",
            &[],
        )
        .await
        .unwrap();
    let mut by_run: BTreeMap<String, Vec<DagsterEvent>> = BTreeMap::new();
    for row in rows {
        let event = parse_event("pg", row.get(0), row.get::<_, String>(2).as_str()).unwrap();
        by_run.entry(row.get(1)).or_default().push(event);
    }
    by_run
}

async fn graphql_poller(tenant: &str, events_topic: &str, cursor_topic: &str) -> EventPoller {
    let config = GraphqlConfig {
        url: Some(common::service_env("DAGSTER_GRAPHQL_URL")),
        page_size: 100,
        settle: Duration::from_millis(200),
        ..GraphqlConfig::default()
    };
    EventPoller::open(
        &config,
        PollerSettings {
            tenant: tenant.to_owned(),
            transactional_id: format!("it-graphql-{tenant}"),
            events_topic: events_topic.to_owned(),
            cursor_topic: cursor_topic.to_owned(),
        },
        &common::kafka(),
        RecordCodec::for_topic(common::registry(), events_topic)
            .await
            .unwrap(),
        RecordCodec::for_topic(common::registry(), cursor_topic)
            .await
            .unwrap(),
    )
    .await
    .unwrap()
}

/// Polls until a poll publishes nothing and nothing waits for confirmation; returns the
/// number of events published.
async fn drain(poller: &mut EventPoller) -> usize {
    let mut total = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the GraphQL source did not drain"
        );
        let poll = poller.poll().await.unwrap();
        total += poll.events;
        if poll.events == 0 && !poller.has_pending() {
            return total;
        }
        if poll.events == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graphql_source_publishes_the_tail_s_events_in_the_same_order_per_run() {
    let expected = tail_records_by_run().await;
    assert!(
        expected.len() >= 5,
        "run testbed/dagster/run_jobs.sh first (it finishes 7 runs)"
    );
    let events_topic = common::unique_topic("dagster.events.graphql");
    let cursor_topic = common::unique_topic("dagster.cursors.graphql");
    common::create_topic(&events_topic, 3).await;
    common::create_topic(&cursor_topic, 1).await;
    let tenant = format!("it{}", uuid::Uuid::new_v4().simple());

    let started = std::time::Instant::now();
    let mut poller = graphql_poller(&tenant, &events_topic, &cursor_topic).await;
    let published = drain(&mut poller).await;
    let elapsed = started.elapsed();
    poller.close().await;
    println!(
        "graphql source: {published} events in {:.1} s ({:.0} events/s)",
        elapsed.as_secs_f64(),
        published as f64 / elapsed.as_secs_f64()
    );

    let records = common::read_to_end(&events_topic).await;
    let mut by_run: BTreeMap<String, Vec<DagsterEvent>> = BTreeMap::new();
    for (key, value) in &records {
        let event: DagsterEvent =
            wire::decode_own(wire::split(value.as_ref().unwrap()).unwrap().1).unwrap();
        assert_eq!(key, &event.kafka_key());
        assert_eq!(event.tenant, tenant);
        assert_eq!(event.source.kind, SourceKind::Graphql);
        by_run
            .entry(event.run_id.clone().unwrap())
            .or_default()
            .push(event);
    }
    let mut compared = 0;
    for (run_id, tail_events) in &expected {
        let graphql_events = by_run.get(run_id).map(Vec::as_slice).unwrap_or_default();
        let want: Vec<Comparable> = tail_events.iter().map(Comparable::of).collect();
        let got: Vec<Comparable> = graphql_events.iter().map(Comparable::of).collect();
        if want != got {
            for (index, (w, g)) in want.iter().zip(&got).enumerate() {
                if w != g {
                    panic!("run {run_id}, event {index}: tail {w:#?}\ngraphql {g:#?}");
                }
            }
            panic!(
                "run {run_id}: the tail has {} events, GraphQL {}",
                want.len(),
                got.len()
            );
        }
        compared += want.len();
    }
    println!(
        "{compared} events of {} finished runs compared",
        expected.len()
    );
    // Run-lifecycle events carry the run's tags (from the run listing), as the tail's do,
    // except `.dagster/grpc_info`, which GraphQL hides.
    let mut run_tags = common::dagster_finished_run_tags().await;
    for tags in run_tags.values_mut() {
        tags.remove(".dagster/grpc_info");
    }
    let mut tagged = 0;
    for (run_id, tags) in &run_tags {
        let events = by_run.get(run_id).map(Vec::as_slice).unwrap_or_default();
        for event in events.iter().filter(|e| e.event_type.is_run_event()) {
            assert_eq!(&event.tags, tags, "run {run_id}: {:?}", event.event_type);
            tagged += 1;
        }
    }
    assert!(tagged >= run_tags.len() * 3, "{tagged} run events checked");

    // A restarted instance resumes from the committed cursors: nothing is published twice.
    let mut restarted = graphql_poller(&tenant, &events_topic, &cursor_topic).await;
    drain(&mut restarted).await;
    restarted.close().await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (_, value) in common::read_to_end(&events_topic).await {
        let event: DagsterEvent =
            wire::decode_own(wire::split(value.as_ref().unwrap()).unwrap().1).unwrap();
        *counts.entry(event.run_id.unwrap()).or_default() += 1;
    }
    for (run_id, tail_events) in &expected {
        assert_eq!(
            counts.get(run_id).copied().unwrap_or_default(),
            tail_events.len(),
            "run {run_id}: a restart republishes nothing"
        );
    }
}

/// `/health/ready` of the admin server at `port`: the HTTP status (0 when not answering).
async fn ready_status(port: u16) -> u16 {
    match reqwest::get(format!("http://127.0.0.1:{port}/health/ready")).await {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

async fn wait_ready_status(port: u16, want: u16, child: &mut std::process::Child) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if ready_status(port).await == want {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the role exited while waiting for /health/ready {want}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "/health/ready never answered {want}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_dagster_over_graphql_reports_readiness_and_metrics() {
    let proxy = TcpProxy::start(&common::service_env("DAGSTER_GRAPHQL_URL")).await;
    let events_topic = common::unique_topic("dagster.events.role");
    let cursor_topic = common::unique_topic("dagster.cursors.role");
    let assets_topic = common::unique_topic("dagster.assets.role");
    common::create_topic(&events_topic, 3).await;
    common::create_topic(&cursor_topic, 1).await;
    common::create_topic(&assets_topic, 3).await;
    let admin = common::free_port();
    let env = [
        (
            "LINEAGE_BUS__KAFKA__BOOTSTRAP_SERVERS",
            common::service_env("KAFKA_BOOTSTRAP"),
        ),
        (
            "LINEAGE_BUS__SCHEMA_REGISTRY__URL",
            common::service_env("SCHEMA_REGISTRY_URL"),
        ),
        (
            "LINEAGE_BUS__TENANT__ID",
            format!("it{}", uuid::Uuid::new_v4().simple()),
        ),
        ("LINEAGE_BUS__ADMIN__LISTEN", format!("127.0.0.1:{admin}")),
        (
            "LINEAGE_BUS__PRODUCERS__DAGSTER__SOURCE",
            "graphql".to_owned(),
        ),
        (
            "LINEAGE_BUS__PRODUCERS__DAGSTER__EVENTS_TOPIC",
            events_topic.clone(),
        ),
        (
            "LINEAGE_BUS__PRODUCERS__DAGSTER__CURSOR_TOPIC",
            cursor_topic.clone(),
        ),
        (
            "LINEAGE_BUS__PRODUCERS__DAGSTER__GRAPHQL__URL",
            proxy.url("/graphql"),
        ),
        (
            "LINEAGE_BUS__PRODUCERS__DAGSTER__GRAPHQL__ASSETS_TOPIC",
            assets_topic.clone(),
        ),
        (
            "LINEAGE_BUS__PRODUCERS__DAGSTER__GRAPHQL__ASSET_POLL_INTERVAL",
            "300ms".to_owned(),
        ),
        (
            "LINEAGE_BUS__PRODUCERS__DAGSTER__GRAPHQL__EVENTS_POLL_INTERVAL",
            "300ms".to_owned(),
        ),
        (
            "LINEAGE_BUS__PRODUCERS__DAGSTER__GRAPHQL__SETTLE",
            "200ms".to_owned(),
        ),
        (
            "LINEAGE_BUS__PRODUCERS__DAGSTER__GRAPHQL__MAX_RETRIES",
            "0".to_owned(),
        ),
        (
            "LINEAGE_BUS__PRODUCERS__DAGSTER__GRAPHQL__REQUEST_TIMEOUT",
            "2s".to_owned(),
        ),
        ("LINEAGE_BUS__TELEMETRY__LOG_LEVEL", "error".to_owned()),
    ];
    // Killed on drop: a failing assertion leaves no producer running.
    let mut child = common::Process(
        std::process::Command::new(env!("CARGO_BIN_EXE_lineage-bus"))
            .args(["produce", "dagster"])
            .envs(env)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    wait_ready_status(admin, 200, &mut child.0).await;
    // Both parts read Dagster through the proxy: cut it, readiness falls; restore it, it rises.
    proxy.pause().await;
    wait_ready_status(admin, 503, &mut child.0).await;
    // Readiness can fall while a request is still waiting on the cut connection: the failed
    // request is counted once it times out, so look for it before restoring the connection.
    wait_for_metric(
        admin,
        "lineage_bus_producer_dagster_graphql_errors_total{class=",
    )
    .await;
    proxy.resume().await;
    wait_ready_status(admin, 200, &mut child.0).await;

    for name in [
        "lineage_bus_producer_dagster_records_published_total{event_type=\"RUN_SUCCESS\"}",
        "lineage_bus_producer_dagster_cursor_position",
        "lineage_bus_producer_dagster_poll_duration_seconds_count",
        "lineage_bus_producer_dagster_graphql_request_duration_seconds_count{operation=\"LineageBusRunLogs\"}",
        "lineage_bus_producer_dagster_graphql_cursor_lag_seconds",
        "lineage_bus_producer_dagster_assets_total{change=\"published\"}",
        "lineage_bus_producer_dagster_assets_live",
    ] {
        // The events of the sample runs are published a settle period after being read.
        wait_for_metric(admin, name).await;
    }
    drop(child);
}

/// Waits (at most a minute) until the role's `/metrics` on `admin` shows `name`.
async fn wait_for_metric(admin: u16, name: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let metrics = reqwest::get(format!("http://127.0.0.1:{admin}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains(name) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} missing from /metrics:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// What a fake GraphQL endpoint answers to a request body: a JSON answer, or `None` for a
/// 503 with `Retry-After: 0`.
type Handler = Arc<dyn Fn(&serde_json::Value) -> Option<String> + Send + Sync>;

/// A fake GraphQL endpoint answering with `handler`; keeps each request's head (lowercase).
async fn fake_graphql(handler: Handler) -> (String, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/graphql", listener.local_addr().unwrap());
    let heads: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = heads.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let (seen, handler) = (seen.clone(), handler.clone());
            tokio::spawn(async move {
                loop {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    // Head, then the body announced by Content-Length.
                    let (head, body_start, body_len) = loop {
                        let n = socket.read(&mut buffer).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buffer[..n]);
                        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&request[..end]).to_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                            break (head, end + 4, length);
                        }
                    };
                    while request.len() < body_start + body_len {
                        let n = socket.read(&mut buffer).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buffer[..n]);
                    }
                    seen.lock().unwrap().push(head);
                    let body: serde_json::Value =
                        serde_json::from_slice(&request[body_start..body_start + body_len])
                            .unwrap();
                    let response = match handler(&body) {
                        None => "HTTP/1.1 503 Service Unavailable\r\nretry-after: 0\r\ncontent-length: 0\r\n\r\n"
                            .to_owned(),
                        Some(answer) => format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                            answer.len()
                        ),
                    };
                    if socket.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, heads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_carry_the_dagster_cloud_token_and_are_retried() {
    let first = Arc::new(AtomicBool::new(true));
    let (url, heads) = fake_graphql(Arc::new(move |_| {
        (!first.swap(false, Ordering::SeqCst)).then(|| {
            r#"{"data": {"workspaceOrError": {"__typename": "Workspace", "locationEntries": []}}}"#
                .to_owned()
        })
    }))
    .await;
    let topic = common::unique_topic("dagster.assets.token");
    common::create_topic(&topic, 1).await;
    let tenant = format!("it{}", uuid::Uuid::new_v4().simple());
    let config = GraphqlConfig {
        url: Some(url),
        api_token: Some("org:sekrit-token".to_owned().into()),
        ..graphql_config(&topic)
    };
    let mut publisher = AssetPublisher::open(
        &config,
        &format!("it-assets-{tenant}"),
        tenant,
        &common::kafka(),
        codec(&topic).await,
        &CancellationToken::new(),
    )
    .await
    .unwrap()
    .unwrap();
    let poll = publisher.poll().await.unwrap();
    publisher.close().await;
    assert_eq!(poll, AssetPoll::default(), "an empty workspace");
    let heads = heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 2, "the 503 was retried once: {heads:?}");
    for head in &heads {
        assert!(head.starts_with("post /graphql "), "{head}");
        assert!(
            head.contains("\r\ndagster-cloud-api-token: org:sekrit-token"),
            "{head}"
        );
    }
}

/// One run's log as a storage would show it: (storage id, event, visible yet).
type FakeLog = Arc<Mutex<Vec<(i64, serde_json::Value, bool)>>>;

fn fake_dagster(log: FakeLog) -> Handler {
    Arc::new(move |body| {
        let variables = &body["variables"];
        let answer = match body["operationName"].as_str().unwrap() {
            "LineageBusRuns" => {
                serde_json::json!({"runsOrError": {"__typename": "Runs", "results": [
                    {"runId": "r1", "jobName": "job", "status": "SUCCESS", "updateTime": 1_700_000_000.0}
                ]}})
            }
            "LineageBusRunLogs" => {
                let after = variables["cursor"].as_str().map_or(0, |c| {
                    lineage_producers::dagster::graphql::poller::cursor_storage_id(c).unwrap()
                });
                let limit = variables["limit"].as_u64().unwrap() as usize;
                let page: Vec<(i64, serde_json::Value)> = log
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(id, _, visible)| *visible && *id > after)
                    .take(limit)
                    .map(|(id, event, _)| (*id, event.clone()))
                    .collect();
                let end = page.last().map_or(after, |(id, _)| *id);
                serde_json::json!({"logsForRun": {"__typename": "EventConnection",
                    "cursor": lineage_producers::dagster::graphql::poller::storage_id_cursor(end),
                    "events": page.into_iter().map(|(_, e)| e).collect::<Vec<_>>()}})
            }
            other => panic!("unexpected operation {other}"),
        };
        Some(serde_json::json!({"data": answer}).to_string())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_commit_inside_a_run_log_is_neither_missed_nor_duplicated() {
    let event = |message: &str| {
        serde_json::json!({"__typename": "LogMessageEvent", "runId": "r1", "message": message,
            "timestamp": "1700000000000", "stepKey": null, "eventType": null})
    };
    // Storage ids 1 and 3 are visible; 2 was drawn first but commits later.
    let log: FakeLog = Arc::new(Mutex::new(vec![
        (1, event("one"), true),
        (2, event("two"), false),
        (3, event("three"), true),
    ]));
    let (url, _) = fake_graphql(fake_dagster(log.clone())).await;
    let events_topic = common::unique_topic("dagster.events.late");
    let cursor_topic = common::unique_topic("dagster.cursors.late");
    common::create_topic(&events_topic, 1).await;
    common::create_topic(&cursor_topic, 1).await;
    let tenant = format!("it{}", uuid::Uuid::new_v4().simple());
    let settle = Duration::from_millis(300);
    let config = GraphqlConfig {
        url: Some(url),
        settle,
        ..GraphqlConfig::default()
    };
    let mut poller = EventPoller::open(
        &config,
        PollerSettings {
            tenant: tenant.clone(),
            transactional_id: format!("it-graphql-{tenant}"),
            events_topic: events_topic.clone(),
            cursor_topic: cursor_topic.clone(),
        },
        &common::kafka(),
        RecordCodec::for_topic(common::registry(), &events_topic)
            .await
            .unwrap(),
        RecordCodec::for_topic(common::registry(), &cursor_topic)
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    // The first read sees 1 and 3: nothing is published before a second read agrees.
    assert_eq!(poller.poll().await.unwrap().events, 0);
    log.lock().unwrap()[1].2 = true; // 2 commits
    tokio::time::sleep(settle).await;
    assert_eq!(
        poller.poll().await.unwrap().events,
        0,
        "the page changed: confirm again"
    );
    let mut published = 0;
    for _ in 0..10 {
        tokio::time::sleep(settle).await;
        published += poller.poll().await.unwrap().events;
    }
    poller.close().await;
    assert_eq!(published, 3);
    let messages: Vec<String> = common::read_to_end(&events_topic)
        .await
        .into_iter()
        .map(|(_, value)| {
            let event: DagsterEvent =
                wire::decode_own(wire::split(value.as_ref().unwrap()).unwrap().1).unwrap();
            event.message.unwrap()
        })
        .collect();
    assert_eq!(
        messages,
        ["one", "two", "three"],
        "every event once, in storage-id order"
    );
}
