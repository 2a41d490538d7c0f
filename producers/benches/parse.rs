//! Parsing speed of Dagster's serialized events: every real fixture row (dumped from the
//! testbed's `event_logs`), parsed in a loop; and the Avro encoding of the parsed events.
//! `cargo bench -p lineage-producers --bench parse` prints rows/s (`thrpt`).
#![allow(missing_docs)] // criterion_group! generates an undocumented public function

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lineage_producers::dagster::parse::parse_event;
use lineage_schemas::wire;

const REAL: &str = include_str!("../tests/fixtures/event_logs.tsv");

fn rows() -> Vec<(i64, &'static str)> {
    REAL.lines()
        .filter_map(|line| line.split_once('\t'))
        .filter_map(|(id, event)| Some((id.parse().ok()?, event)))
        .collect()
}

fn parse(c: &mut Criterion) {
    let rows = rows();
    let mut group = c.benchmark_group("dagster_event");
    group.throughput(Throughput::Elements(rows.len() as u64));
    group.bench_function("parse_fixture_rows", |b| {
        b.iter(|| {
            for (id, event) in &rows {
                let _ = black_box(parse_event("bench", *id, black_box(event)));
            }
        })
    });
    let events: Vec<_> = rows
        .iter()
        .filter_map(|(id, event)| parse_event("bench", *id, event).ok())
        .collect();
    group.bench_function("avro_encode_parsed_events", |b| {
        b.iter(|| {
            for event in &events {
                let _ = black_box(wire::encode(1, black_box(event)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
