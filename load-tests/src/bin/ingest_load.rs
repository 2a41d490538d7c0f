//! `ingest_load`: requests/s of Dagster's external-asset endpoint and of `lineage-bus
//! ingest` on the same machine, with the same request (a materialization with metadata,
//! JSON body) over loopback keep-alive connections at a fixed concurrency: 8 connections to
//! Dagster (one uvicorn process: more only queue), `INGEST_LOAD_CONCURRENCY` (default 256) to
//! ingest, whose answers wait for Kafka's acknowledgement (so its rate is at most
//! concurrency / latency; linger batching keeps the latency near 10 ms).
//!
//! Bounds: Dagster gets at most `INGEST_LOAD_DAGSTER_REQUESTS` (default 2000, at most 3000:
//! each is a row in the shared testbed database; 0 skips Dagster) or 10 s; ingest at most
//! `INGEST_LOAD_REQUESTS` (default 200000) or `INGEST_LOAD_SECONDS` (default 5) after a
//! 1 s warm-up. Ingest runs in this process (its own 2-thread runtime) and writes to a
//! topic made for the run (`load.ingest.<uuid>`, deleted at the end), never `dagster.events`.
//!
//! Needs the testbed: `eval "$(testbed/env.sh)"` (DAGSTER_GRAPHQL_URL, KAFKA_BOOTSTRAP,
//! SCHEMA_REGISTRY_URL), then
//! `cargo run --release -p load-tests --bin ingest_load`. Prints both rates and their ratio.
#![allow(clippy::print_stdout)] // the scenario's report

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use lineage_bus_core::KafkaConfig;
use lineage_producers::ingest::{self, IngestConfig};
use lineage_schemas::RegistryClient;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Connections to ingest sending requests back to back (each waits for Kafka's
/// acknowledgement, so the rate is at most concurrency / latency).
const CONCURRENCY: u64 = 256;
/// Connections to Dagster (one uvicorn worker: more only queue).
const DAGSTER_CONCURRENCY: usize = 8;
/// Hard cap of Dagster's request count.
const DAGSTER_MAX: u64 = 3000;

/// What one run measured.
struct Measured {
    requests: u64,
    failures: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted.get(index).copied().unwrap_or_default()
    }
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| {
        format!("{name} is not set: start the testbed and run `eval \"$(testbed/env.sh)\"`")
    })
}

fn env_number(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(text) => text.parse().with_context(|| format!("{name}={text}")),
        Err(_) => Ok(default),
    }
}

fn main() -> anyhow::Result<()> {
    let dagster = env("DAGSTER_GRAPHQL_URL")?
        .trim_end_matches('/')
        .trim_end_matches("/graphql")
        .to_owned();
    let dagster_addr = dagster
        .strip_prefix("http://")
        .context("DAGSTER_GRAPHQL_URL must be http://host:port/graphql")?
        .to_owned();
    let kafka = KafkaConfig {
        bootstrap_servers: env("KAFKA_BOOTSTRAP")?,
        ..KafkaConfig::default()
    };
    let registry =
        RegistryClient::new(&env("SCHEMA_REGISTRY_URL")?, Duration::from_secs(10), None)?;
    let dagster_requests = env_number("INGEST_LOAD_DAGSTER_REQUESTS", 2000)?.min(DAGSTER_MAX);
    let max_requests = env_number("INGEST_LOAD_REQUESTS", 200_000)?;
    let seconds = env_number("INGEST_LOAD_SECONDS", 5)?.clamp(1, 30);
    let concurrency =
        usize::try_from(env_number("INGEST_LOAD_CONCURRENCY", CONCURRENCY)?.clamp(1, 1024))?;

    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    // 0 skips Dagster (to profile ingest alone without writing to Dagster's database).
    let theirs = if dagster_requests == 0 {
        None
    } else {
        println!(
            "dagster  {dagster}: {dagster_requests} requests, concurrency {DAGSTER_CONCURRENCY}"
        );
        let theirs = client.block_on(load(
            dagster_addr,
            DAGSTER_CONCURRENCY,
            Duration::ZERO,
            Duration::from_secs(10),
            dagster_requests,
        ))?;
        report("dagster", &theirs);
        Some(theirs)
    };

    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ingest")
        .enable_all()
        .build()?;
    let topic = format!("load.ingest.{}", uuid::Uuid::new_v4().simple());
    server.block_on(create_topic(&kafka, &topic))?;
    let stop = CancellationToken::new();
    let config = IngestConfig {
        listen: "127.0.0.1:0".parse()?,
        events_topic: topic.clone(),
        ..IngestConfig::default()
    };
    let running = server.block_on(ingest::start(
        config,
        "load".to_owned(),
        &kafka,
        registry,
        stop.clone(),
    ))?;
    let address = running.local_addr().to_string();
    let waiting = server.spawn(running.wait());
    println!(
        "ingest   http://{address} -> {topic}: up to {max_requests} requests in {seconds} s, concurrency {concurrency}"
    );
    let ours = client.block_on(load(
        address,
        concurrency,
        Duration::from_secs(1),
        Duration::from_secs(seconds),
        max_requests,
    ));
    stop.cancel();
    let stopped = server.block_on(waiting);
    let deleted = server.block_on(delete_topic(&kafka, &topic));
    let ours = ours?;
    stopped??;
    deleted?;
    report("ingest", &ours);
    if let Some(theirs) = &theirs {
        println!(
            "ratio    {:.1}x (target >= 50x)",
            ours.rate() / theirs.rate()
        );
    }
    let failures = ours.failures + theirs.map_or(0, |t| t.failures);
    anyhow::ensure!(failures == 0, "{failures} requests failed");
    Ok(())
}

fn report(name: &str, measured: &Measured) {
    println!(
        "{name:<8} {:>9.0} req/s  ({} requests in {:.2} s, {} failed; latency p50 {:.2} ms, p99 {:.2} ms)",
        measured.rate(),
        measured.requests,
        measured.elapsed.as_secs_f64(),
        measured.failures,
        measured.percentile(0.5).as_secs_f64() * 1000.0,
        measured.percentile(0.99).as_secs_f64() * 1000.0,
    );
}

/// Sends materializations to `address` on `concurrency` keep-alive connections: during
/// `warmup` (not counted), then until `duration` passed or `max` requests were answered.
async fn load(
    address: String,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    max: u64,
) -> anyhow::Result<Measured> {
    let counting = Arc::new(AtomicBool::new(warmup.is_zero()));
    let done = Arc::new(AtomicBool::new(false));
    let issued = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let (address, counting, done, issued) = (
            address.clone(),
            Arc::clone(&counting),
            Arc::clone(&done),
            Arc::clone(&issued),
        );
        workers.push(tokio::spawn(async move {
            connection(worker, &address, &counting, &done, &issued, max).await
        }));
    }
    if !warmup.is_zero() {
        tokio::time::sleep(warmup).await;
        counting.store(true, Ordering::SeqCst);
    }
    let started = Instant::now();
    let deadline = started + duration;
    while Instant::now() < deadline && issued.load(Ordering::SeqCst) < max {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    done.store(true, Ordering::SeqCst);
    let mut measured = Measured {
        requests: 0,
        failures: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for worker in workers {
        let (ok, failed, latencies) = worker.await??;
        measured.requests += ok;
        measured.failures += failed;
        measured.latencies.extend(latencies);
    }
    measured.elapsed = started.elapsed();
    Ok(measured)
}

/// One connection's loop: (answered 200, failed, latencies of the counted requests).
async fn connection(
    worker: usize,
    address: &str,
    counting: &AtomicBool,
    done: &AtomicBool,
    issued: &AtomicU64,
    max: u64,
) -> anyhow::Result<(u64, u64, Vec<Duration>)> {
    let stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("connecting to {address}"))?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let (mut ok, mut failed, mut latencies) = (0, 0, Vec::new());
    let mut n: u64 = 0;
    while !done.load(Ordering::Relaxed) {
        let counted = counting.load(Ordering::Relaxed);
        if counted && issued.fetch_add(1, Ordering::SeqCst) >= max {
            break;
        }
        n += 1;
        let body = format!(
            r#"{{"metadata": {{"rows": {n}, "source": "ingest_load", "ratio": 0.5}}, "partition": "2024-01-{:02}"}}"#,
            n % 28 + 1
        );
        let request = Request::post(format!(
            "/report_asset_materialization/lb_conformance/load/asset_{}",
            worker % 16
        ))
        .header("host", address)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;
        let sent = Instant::now();
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        if counted {
            latencies.push(sent.elapsed());
            if status.is_success() {
                ok += 1;
            } else {
                failed += 1;
            }
        }
    }
    Ok((ok, failed, latencies))
}

async fn admin(kafka: &KafkaConfig) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    Ok(kafka.client_config("load-admin").create()?)
}

async fn create_topic(kafka: &KafkaConfig, topic: &str) -> anyhow::Result<()> {
    let results = admin(kafka)
        .await?
        .create_topics(
            [&NewTopic::new(topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?;
    for result in results {
        result.map_err(|(topic, code)| anyhow::anyhow!("creating {topic}: {code}"))?;
    }
    Ok(())
}

async fn delete_topic(kafka: &KafkaConfig, topic: &str) -> anyhow::Result<()> {
    let results = admin(kafka)
        .await?
        .delete_topics(
            &[topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?;
    for result in results {
        result.map_err(|(topic, code)| anyhow::anyhow!("deleting {topic}: {code}"))?;
    }
    Ok(())
}
