//! Records/s per core of the whole processor on a realistic event mix
//! ([`lineage_processors::workload`]: runs of asset jobs with steps, materializations with
//! schema / column lineage / row count metadata, checks, failures, runless observations, and
//! the lifecycle noise of a real event log), resolved against a 100k-table index: batches of
//! Avro-encoded `dagster.events` records go through `LineageProcessor::process` exactly as in
//! a transaction ([`lineage_processors::offline`]).
//! One thread, so elements/s = records/s per core; after criterion's wall-clock figure, the
//! bench prints records per second of the thread's CPU time (the per-core figure on a busy
//! machine), the median and the best of 15 passes.
//! `cargo bench -p lineage-processors --bench processor`.

#![allow(missing_docs)] // criterion_group! generates an undocumented public function
#![allow(clippy::print_stdout)] // the per-core report

use criterion::{Criterion, Throughput, criterion_group};
use lineage_processors::offline::OfflineRun;
use lineage_processors::workload::workload;

// The allocator of the lineage-bus binary (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RUNS: usize = 300;
const TABLES: usize = 100_000;
const PASSES: usize = 15;

fn bench(c: &mut Criterion) {
    let mut run = OfflineRun::new(&workload(RUNS, TABLES));
    let mut group = c.benchmark_group("processor");
    group.throughput(Throughput::Elements(run.records() as u64));
    group.sample_size(20);
    group.bench_function("records", |b| b.iter(|| run.pass()));
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    let mut run = OfflineRun::new(&workload(RUNS, TABLES));
    let rate = run.per_core(PASSES);
    println!(
        "processor per core: {PASSES} passes of {} records ({} output records each): \
         median {:.0}, best {:.0} records/s per core",
        run.records(),
        rate.outputs,
        rate.median,
        rate.best
    );
    Criterion::default().configure_from_args().final_summary();
}
