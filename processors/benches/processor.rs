//! Records/s per core of the whole processor on a realistic event mix
//! ([`lineage_processors::workload`]: runs of asset jobs with steps, materializations with
//! schema / column lineage / row count metadata, checks, failures, runless observations, and
//! the lifecycle noise of a real event log), resolved against a 100k-table index: each batch of
//! 500 Avro-encoded `dagster.events` records goes through `LineageProcessor::process` exactly as
//! in a transaction (Avro decode, run state, resolution, OpenLineage JSON, OpenMetadata Avro).
//! One thread, so elements/s = records/s per core; after criterion's wall-clock figure, the
//! bench prints records per second of the thread's CPU time (the per-core figure on a busy
//! machine).
//! `cargo bench -p lineage-processors --bench processor`.

#![allow(missing_docs)] // criterion_group! generates an undocumented public function
#![allow(clippy::print_stdout)] // the per-core report

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use lineage_bus_core::exactly_once::BatchProcessor;
use lineage_processors::processor::{
    Codecs, LineageProcessor, LineageState, ProcessConfig, StateUpdate, output_settings,
};
use lineage_processors::state::AssetRef;
use lineage_processors::workload::workload;
use lineage_schemas::{RecordCodec, RegistryClient};
use rdkafka::message::{OwnedMessage, Timestamp};

// The allocator of the lineage-bus binary (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RUNS: usize = 300;
const TABLES: usize = 100_000;
const BATCH: usize = 500;

fn processor() -> LineageProcessor {
    // never contacted: the codecs encode with fixed ids and decode only their own
    let registry = RegistryClient::new("http://127.0.0.1:9", Duration::from_secs(1), None)
        .expect("a registry client without IO");
    let codecs = Codecs {
        events: RecordCodec::with_schema_id(registry.clone(), 1).expect("codec"),
        operations: RecordCodec::with_schema_id(registry.clone(), 2).expect("codec"),
        dead_letters: RecordCodec::with_schema_id(registry, 3).expect("codec"),
    };
    let config = ProcessConfig::default();
    let (_sender, receiver) = tokio::sync::mpsc::channel(1);
    LineageProcessor::new(
        LineageState::new(config.resolver.clone()),
        output_settings(&config).expect("default settings"),
        config.topics.clone(),
        Arc::new(codecs),
        receiver,
    )
}

/// The processor with the workload's tables and assets applied, and its events as Avro-encoded
/// `dagster.events` records.
fn setup() -> (LineageProcessor, Vec<OwnedMessage>) {
    let work = workload(RUNS, TABLES);
    let mut processor = processor();
    let mut discarded = Vec::new();
    for table in &work.tables {
        let update = StateUpdate::Table {
            fqn: table.fqn.clone(),
            snapshot: Some(table.clone()),
        };
        processor
            .apply_update(update, &mut discarded)
            .expect("table");
    }
    for asset in &work.assets {
        let update = StateUpdate::Asset {
            asset: AssetRef {
                tenant: asset.tenant.clone(),
                key: asset.asset_key.clone(),
            },
            definition: Some(asset.clone()),
        };
        processor
            .apply_update(update, &mut discarded)
            .expect("asset");
    }
    let messages: Vec<OwnedMessage> = work
        .events
        .iter()
        .enumerate()
        .map(|(offset, event)| {
            let payload = processor.codecs().events.encode(event).expect("encode");
            OwnedMessage::new(
                Some(payload),
                event.run_id.clone().map(String::into_bytes),
                "dagster.events".into(),
                Timestamp::CreateTime(event.timestamp_ms),
                0,
                offset as i64,
                None,
            )
        })
        .collect();
    (processor, messages)
}

fn bench(c: &mut Criterion) {
    let (mut processor, messages) = setup();
    let mut group = c.benchmark_group("processor");
    group.throughput(Throughput::Elements(messages.len() as u64));
    group.sample_size(20);
    group.bench_function("records", |b| {
        b.iter(|| {
            let mut produced = 0usize;
            for batch in messages.chunks(BATCH) {
                let out = futures::executor::block_on(processor.process(batch)).expect("batch");
                produced += out.len();
            }
            produced
        });
    });
    group.finish();
}

/// CPU time of the calling thread (`/proc/thread-self/schedstat`: ns on a CPU), so the
/// per-core figure does not depend on what else the machine runs.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    let ns: u64 = stat
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("schedstat starts with the ns run");
    Duration::from_nanos(ns)
}

/// Records per CPU-second of one thread, per pass of the workload over `ROUNDS` passes: the
/// median and the best pass (a shared VM's noise only ever slows a pass down).
fn per_core() {
    const ROUNDS: usize = 15;
    let (mut processor, messages) = setup();
    let mut rates = Vec::with_capacity(ROUNDS);
    let mut produced = 0usize;
    for _ in 0..ROUNDS {
        let started = thread_cpu();
        for batch in messages.chunks(BATCH) {
            produced += futures::executor::block_on(processor.process(batch))
                .expect("batch")
                .len();
        }
        rates.push(messages.len() as f64 / (thread_cpu() - started).as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "processor per core: {ROUNDS} passes of {} records ({} output records each): \
         median {:.0}, best {:.0} records/s per core",
        messages.len(),
        produced / ROUNDS,
        rates[ROUNDS / 2],
        rates[ROUNDS - 1]
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    per_core();
    Criterion::default().configure_from_args().final_summary();
}
