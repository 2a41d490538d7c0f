//! Prometheus metrics of `produce dagster`, on the default registry.
//!
//! | name | labels | meaning |
//! |---|---|---|
//! | `lineage_bus_producer_dagster_records_published_total` | `event_type` (normalised type, e.g. `RUN_START`, `OTHER`) | events committed to the events topic |
//! | `lineage_bus_producer_dagster_dead_letters_total` | | unparseable rows committed to the dead-letter topic |
//! | `lineage_bus_producer_dagster_transactions_total` | | Kafka transactions committed (one per batch) |
//! | `lineage_bus_producer_dagster_cursor_position` | | committed storage id (every id up to it is published); run-sharded SQLite: rows published (each shard has its own id) |
//! | `lineage_bus_producer_dagster_lag_rows` | | largest storage id in the table minus the position read (at most two batches ahead of the committed one); run-sharded SQLite: the sum over shards |
//! | `lineage_bus_producer_dagster_poll_duration_seconds` | | time of one poll's queries (PostgreSQL, or SQLite with the directory listing) |

use std::sync::LazyLock;

use lineage_schemas::records::DagsterEventType;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};

use super::publish::Published;

/// The producer's metrics; registered on first use.
pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::register);

/// Handles to the producer's metrics.
pub(crate) struct Metrics {
    published: IntCounterVec,
    dead_letters: IntCounter,
    transactions: IntCounter,
    /// Committed position.
    pub(crate) position: IntGauge,
    /// Rows behind the table's largest id.
    pub(crate) lag: IntGauge,
    /// Poll latency.
    pub(crate) poll_duration: Histogram,
}

impl Metrics {
    // The definitions are constants: `expect` below either always or never fails.
    fn register() -> Self {
        let metrics = Self {
            published: IntCounterVec::new(
                Opts::new(
                    "lineage_bus_producer_dagster_records_published_total",
                    "Dagster events committed to the events topic, by normalised event type",
                ),
                &["event_type"],
            )
            .expect("valid metric definition"),
            dead_letters: IntCounter::new(
                "lineage_bus_producer_dagster_dead_letters_total",
                "Unparseable event-log rows committed to the dead-letter topic",
            )
            .expect("valid metric definition"),
            transactions: IntCounter::new(
                "lineage_bus_producer_dagster_transactions_total",
                "Kafka transactions committed by the Dagster producer (one per batch)",
            )
            .expect("valid metric definition"),
            position: IntGauge::new(
                "lineage_bus_producer_dagster_cursor_position",
                "Committed event-log storage id: every id up to it is published (run-sharded SQLite: rows published)",
            )
            .expect("valid metric definition"),
            lag: IntGauge::new(
                "lineage_bus_producer_dagster_lag_rows",
                "Rows of the event log above the position read",
            )
            .expect("valid metric definition"),
            poll_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "lineage_bus_producer_dagster_poll_duration_seconds",
                    "Time of one poll of the event log",
                )
                .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            )
            .expect("valid metric definition"),
        };
        let registry = prometheus::default_registry();
        let collectors: [Box<dyn prometheus::core::Collector>; 6] = [
            Box::new(metrics.published.clone()),
            Box::new(metrics.dead_letters.clone()),
            Box::new(metrics.transactions.clone()),
            Box::new(metrics.position.clone()),
            Box::new(metrics.lag.clone()),
            Box::new(metrics.poll_duration.clone()),
        ];
        for collector in collectors {
            if let Err(error) = registry.register(collector) {
                tracing::warn!(%error, "cannot register a dagster producer metric");
            }
        }
        metrics
    }

    /// Counts one committed batch.
    pub(crate) fn committed(&self, published: &Published, position: i64) {
        for (event_type, count) in &published.by_type {
            self.published
                .with_label_values(&[type_label(*event_type)])
                .inc_by(*count);
        }
        self.dead_letters.inc_by(published.dead_letters);
        self.transactions.inc();
        self.position.set(position);
    }
}

/// The label of an event type: its Avro symbol.
fn type_label(event_type: DagsterEventType) -> &'static str {
    use DagsterEventType as T;
    match event_type {
        T::RunEnqueued => "RUN_ENQUEUED",
        T::RunDequeued => "RUN_DEQUEUED",
        T::RunStarting => "RUN_STARTING",
        T::RunStart => "RUN_START",
        T::RunSuccess => "RUN_SUCCESS",
        T::RunFailure => "RUN_FAILURE",
        T::RunCanceling => "RUN_CANCELING",
        T::RunCanceled => "RUN_CANCELED",
        T::StepStart => "STEP_START",
        T::StepSuccess => "STEP_SUCCESS",
        T::StepFailure => "STEP_FAILURE",
        T::StepSkipped => "STEP_SKIPPED",
        T::StepUpForRetry => "STEP_UP_FOR_RETRY",
        T::StepRestarted => "STEP_RESTARTED",
        T::StepInput => "STEP_INPUT",
        T::StepOutput => "STEP_OUTPUT",
        T::AssetMaterializationPlanned => "ASSET_MATERIALIZATION_PLANNED",
        T::AssetMaterialization => "ASSET_MATERIALIZATION",
        T::AssetFailedToMaterialize => "ASSET_FAILED_TO_MATERIALIZE",
        T::AssetObservation => "ASSET_OBSERVATION",
        T::AssetCheckEvaluationPlanned => "ASSET_CHECK_EVALUATION_PLANNED",
        T::AssetCheckEvaluation => "ASSET_CHECK_EVALUATION",
        T::LogMessage => "LOG_MESSAGE",
        T::Other => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_avro_symbols() {
        for event_type in [
            DagsterEventType::RunStart,
            DagsterEventType::AssetCheckEvaluationPlanned,
        ] {
            let symbol = serde_json::to_string(&event_type).unwrap_or_default();
            assert_eq!(symbol, format!("\"{}\"", type_label(event_type)));
        }
    }
}
