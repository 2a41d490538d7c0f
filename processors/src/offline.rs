//! The processor alone, without Kafka: a [`Workload`] replayed in process, for the criterion
//! benchmark (`processors/benches/processor.rs`) and the `processor_throughput` load test.
//! Each pass hands the Avro-encoded events to [`LineageProcessor::process`] in batches, exactly
//! as a transaction does (Avro decode, run state, resolution, OpenLineage JSON, OpenMetadata
//! Avro); only consuming, producing and committing are left out.

use std::sync::Arc;
use std::time::Duration;

use lineage_bus_core::exactly_once::BatchProcessor;
use lineage_schemas::{RecordCodec, RegistryClient};
use rdkafka::message::{OwnedMessage, Timestamp};

use crate::processor::{
    Codecs, LineageProcessor, LineageState, ProcessConfig, StateUpdate, output_settings,
};
use crate::state::AssetRef;
use crate::workload::Workload;

/// Records per batch, as in a transaction of a busy processor.
pub const BATCH: usize = 500;

/// A processor whose state holds a workload's tables and assets, and the workload's events as
/// `dagster.events` records.
pub struct OfflineRun {
    processor: LineageProcessor,
    messages: Vec<OwnedMessage>,
}

/// Records per CPU-second of one thread over several passes.
#[derive(Debug, Clone, Copy)]
pub struct PerCore {
    /// The median pass.
    pub median: f64,
    /// The best pass (a shared machine's noise only ever slows a pass down).
    pub best: f64,
    /// Output records of one pass.
    pub outputs: usize,
}

impl OfflineRun {
    /// The processor with `work`'s tables and assets applied and its events encoded. The
    /// codecs use fixed schema ids and never contact a registry.
    pub fn new(work: &Workload) -> Self {
        let mut processor = processor();
        let mut discarded = Vec::new();
        let tables = work.tables.iter().map(|table| StateUpdate::Table {
            fqn: table.fqn.clone(),
            snapshot: Some(table.clone()),
        });
        let assets = work.assets.iter().map(|asset| StateUpdate::Asset {
            asset: AssetRef {
                tenant: asset.tenant.clone(),
                key: asset.asset_key.clone(),
            },
            definition: Some(asset.clone()),
        });
        for update in tables.chain(assets) {
            processor
                .apply_update(update, &mut discarded)
                .expect("invariant: the workload's tables and assets apply");
        }
        let messages = work
            .events
            .iter()
            .enumerate()
            .map(|(offset, event)| {
                let payload = processor
                    .codecs()
                    .events
                    .encode(event)
                    .expect("invariant: the workload's events encode");
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
        Self {
            processor,
            messages,
        }
    }

    /// Input records of one pass.
    pub fn records(&self) -> usize {
        self.messages.len()
    }

    /// Processes every event once, in batches of [`BATCH`]; returns the output records.
    pub fn pass(&mut self) -> usize {
        self.messages
            .chunks(BATCH)
            .map(|batch| {
                futures::executor::block_on(self.processor.process(batch))
                    .expect("invariant: the workload's events process")
                    .len()
            })
            .sum()
    }

    /// Records per CPU-second of the calling thread, over `passes` passes.
    pub fn per_core(&mut self, passes: usize) -> PerCore {
        let mut rates = Vec::with_capacity(passes);
        let mut outputs = 0;
        for _ in 0..passes.max(1) {
            let started = thread_cpu();
            outputs = self.pass();
            let cpu = (thread_cpu() - started).as_secs_f64();
            rates.push(self.records() as f64 / cpu.max(f64::EPSILON));
        }
        rates.sort_by(f64::total_cmp);
        PerCore {
            median: rates[rates.len() / 2],
            best: rates[rates.len() - 1],
            outputs,
        }
    }
}

fn processor() -> LineageProcessor {
    let registry = RegistryClient::new("http://127.0.0.1:9", Duration::from_secs(1), None)
        .expect("invariant: a registry client without IO builds");
    let built_in = "invariant: the built-in schemas parse";
    let codecs = Codecs {
        events: RecordCodec::with_schema_id(registry.clone(), 1).expect(built_in),
        operations: RecordCodec::with_schema_id(registry.clone(), 2).expect(built_in),
        dead_letters: RecordCodec::with_schema_id(registry, 3).expect(built_in),
    };
    let config = ProcessConfig::default();
    let (_sender, receiver) = tokio::sync::mpsc::channel(1);
    LineageProcessor::new(
        LineageState::new(config.resolver.clone()),
        output_settings(&config).expect("invariant: the default settings are valid"),
        config.topics.clone(),
        Arc::new(codecs),
        receiver,
    )
}

/// CPU time of the calling thread (`/proc/thread-self/schedstat`: ns on a CPU), so a per-core
/// figure does not depend on what else the machine runs.
pub fn thread_cpu() -> Duration {
    let ns = std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|stat| stat.split_whitespace().next()?.parse().ok())
        .expect("/proc/thread-self/schedstat starts with the thread's ns on a CPU (Linux)");
    Duration::from_nanos(ns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::workload;

    #[test]
    fn every_pass_gives_the_same_outputs_after_the_first() {
        let mut run = OfflineRun::new(&workload(3, 200));
        assert!(run.records() > 200);
        run.pass();
        let second = run.pass();
        assert!(second > 0);
        assert_eq!(run.pass(), second);
        let rate = run.per_core(3);
        assert_eq!(rate.outputs, second);
        assert!(rate.best >= rate.median && rate.median > 0.0);
    }
}
