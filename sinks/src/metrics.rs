//! Prometheus metrics of the sinks, on the default registry. Labels are bounded: `sink`
//! (`openlineage`, `openmetadata`), `destination` (the configured name), `outcome` / `reason` / `result`
//! (fixed sets below), `topic` and `partition` (the consumed topic's partitions).
//!
//! | name | labels | meaning |
//! |---|---|---|
//! | `lineage_bus_sink_records_total` | `sink`, `destination`, `outcome` = `delivered` \| `dead_lettered` \| `skipped` | records finished (skipped: tombstones) |
//! | `lineage_bus_sink_retries_total` | `sink`, `destination`, `reason` = `server_error` \| `too_many_requests` \| `timeout` \| `connect` \| `io` \| `missing_reference` \| `unauthorized` | failed attempts that will be retried |
//! | `lineage_bus_sink_request_duration_seconds` | `sink`, `destination`, `result` = `success` \| `retryable` \| `permanent` | latency of one request (histogram) |
//! | `lineage_bus_sink_requests_in_flight` | `sink`, `destination` | records being delivered now |
//! | `lineage_bus_sink_consumer_lag_records` | `sink`, `destination`, `topic`, `partition` | log end offset minus the committed offset |
//! | `lineage_bus_sink_paused_partitions` | `sink`, `destination` | partitions paused by backpressure |

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};
use tracing::warn;

use crate::delivery::retry::RetryReason;

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::register);

struct Metrics {
    records: IntCounterVec,
    retries: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGaugeVec,
    lag: IntGaugeVec,
    paused: IntGaugeVec,
}

impl Metrics {
    // The definitions are constants: `expect` below either always or never fails.
    fn register() -> Self {
        let labels = ["sink", "destination"];
        let metrics = Self {
            records: IntCounterVec::new(
                Opts::new(
                    "lineage_bus_sink_records_total",
                    "Records a sink finished, by outcome",
                ),
                &["sink", "destination", "outcome"],
            )
            .expect("valid metric definition"),
            retries: IntCounterVec::new(
                Opts::new(
                    "lineage_bus_sink_retries_total",
                    "Failed delivery attempts that will be retried, by reason",
                ),
                &["sink", "destination", "reason"],
            )
            .expect("valid metric definition"),
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "lineage_bus_sink_request_duration_seconds",
                    "Latency of one delivery attempt, by result",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
                &["sink", "destination", "result"],
            )
            .expect("valid metric definition"),
            in_flight: IntGaugeVec::new(
                Opts::new(
                    "lineage_bus_sink_requests_in_flight",
                    "Records being delivered now",
                ),
                &labels,
            )
            .expect("valid metric definition"),
            lag: IntGaugeVec::new(
                Opts::new(
                    "lineage_bus_sink_consumer_lag_records",
                    "Log end offset minus the sink's committed offset, per partition",
                ),
                &["sink", "destination", "topic", "partition"],
            )
            .expect("valid metric definition"),
            paused: IntGaugeVec::new(
                Opts::new(
                    "lineage_bus_sink_paused_partitions",
                    "Partitions paused because their records are not acknowledged fast enough",
                ),
                &labels,
            )
            .expect("valid metric definition"),
        };
        let registry = prometheus::default_registry();
        let collectors: [Box<dyn prometheus::core::Collector>; 6] = [
            Box::new(metrics.records.clone()),
            Box::new(metrics.retries.clone()),
            Box::new(metrics.duration.clone()),
            Box::new(metrics.in_flight.clone()),
            Box::new(metrics.lag.clone()),
            Box::new(metrics.paused.clone()),
        ];
        for collector in collectors {
            if let Err(error) = registry.register(collector) {
                warn!(%error, "cannot register a sink metric");
            }
        }
        metrics
    }
}

/// How a record finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The backend acknowledged it.
    Delivered,
    /// It went to the dead-letter topic.
    DeadLettered,
    /// Nothing to deliver (a tombstone).
    Skipped,
}

impl Outcome {
    fn as_label(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::Skipped => "skipped",
        }
    }
}

/// How one attempt ended, for the latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// Accepted.
    Success,
    /// Failed, will be retried.
    Retryable,
    /// Rejected for good.
    Permanent,
}

/// The metrics of one sink destination.
#[derive(Debug, Clone)]
pub struct SinkMetrics {
    sink: &'static str,
    destination: String,
}

impl SinkMetrics {
    /// Metrics labelled `sink` / `destination`.
    pub fn new(sink: &'static str, destination: &str) -> Self {
        Self {
            sink,
            destination: destination.to_owned(),
        }
    }

    /// A record finished with `outcome`.
    pub fn record_finished(&self, outcome: Outcome) {
        METRICS
            .records
            .with_label_values(&[self.sink, &self.destination, outcome.as_label()])
            .inc();
    }

    /// An attempt failed and will be retried.
    pub fn retried(&self, reason: RetryReason) {
        METRICS
            .retries
            .with_label_values(&[self.sink, &self.destination, reason.as_label()])
            .inc();
    }

    /// An attempt took `elapsed`.
    pub fn attempt(&self, result: AttemptResult, elapsed: Duration) {
        let result = match result {
            AttemptResult::Success => "success",
            AttemptResult::Retryable => "retryable",
            AttemptResult::Permanent => "permanent",
        };
        METRICS
            .duration
            .with_label_values(&[self.sink, &self.destination, result])
            .observe(elapsed.as_secs_f64());
    }

    /// `n` records are being delivered.
    pub fn set_in_flight(&self, n: usize) {
        METRICS
            .in_flight
            .with_label_values(&[self.sink, &self.destination])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// `n` partitions are paused.
    pub fn set_paused(&self, n: usize) {
        METRICS
            .paused
            .with_label_values(&[self.sink, &self.destination])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The lag of `topic`/`partition` is `lag` records.
    pub fn set_lag(&self, topic: &str, partition: i32, lag: i64) {
        METRICS
            .lag
            .with_label_values(&[self.sink, &self.destination, topic, &partition.to_string()])
            .set(lag);
    }

    /// Records finished with `outcome` so far (for progress reports and tests).
    pub fn finished(&self, outcome: Outcome) -> u64 {
        METRICS
            .records
            .with_label_values(&[self.sink, &self.destination, outcome.as_label()])
            .get()
    }
}
