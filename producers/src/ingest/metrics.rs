//! Prometheus metrics of `ingest`, on the default registry.
//!
//! | name | labels | meaning |
//! |---|---|---|
//! | `lineage_bus_ingest_requests_total` | `endpoint` (`report_asset_materialization`, `report_asset_check`, `report_asset_observation`, `other`), `status` (HTTP status code) | requests answered |
//! | `lineage_bus_ingest_request_duration_seconds` | `endpoint` | time from the request to the answer, Kafka's acknowledgement included |
//! | `lineage_bus_ingest_publish_failures_total` | | accepted reports Kafka did not acknowledge (answered 503) |

use std::sync::LazyLock;

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts};

/// The role's metrics; registered on first use.
pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::register);

/// Handles to the role's metrics.
pub(crate) struct Metrics {
    /// Requests by endpoint and status.
    pub(crate) requests: IntCounterVec,
    /// Latency by endpoint.
    pub(crate) duration: HistogramVec,
    /// Reports Kafka refused or did not acknowledge in time.
    pub(crate) publish_failures: IntCounter,
}

impl Metrics {
    // The definitions are constants: `expect` below either always or never fails.
    fn register() -> Self {
        let metrics = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "lineage_bus_ingest_requests_total",
                    "Requests to the external-asset REST API, by endpoint and HTTP status",
                ),
                &["endpoint", "status"],
            )
            .expect("valid metric definition"),
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "lineage_bus_ingest_request_duration_seconds",
                    "Time from a request to its answer, Kafka's acknowledgement included",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
                ]),
                &["endpoint"],
            )
            .expect("valid metric definition"),
            publish_failures: IntCounter::new(
                "lineage_bus_ingest_publish_failures_total",
                "Accepted reports that Kafka did not acknowledge (answered 503)",
            )
            .expect("valid metric definition"),
        };
        let registry = prometheus::default_registry();
        let collectors: [Box<dyn prometheus::core::Collector>; 3] = [
            Box::new(metrics.requests.clone()),
            Box::new(metrics.duration.clone()),
            Box::new(metrics.publish_failures.clone()),
        ];
        for collector in collectors {
            registry
                .register(collector)
                .expect("ingest metrics are registered once");
        }
        metrics
    }
}
