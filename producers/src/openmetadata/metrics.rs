//! Prometheus metrics of the OpenMetadata producer, on the default registry.
//!
//! | name | labels | meaning |
//! |---|---|---|
//! | `lineage_bus_producer_openmetadata_tables_total` | `outcome` = `published`, `tombstoned`, `unchanged` | tables per poll outcome |
//! | `lineage_bus_producer_openmetadata_tables_live` | | live snapshots the topic holds for this producer's scope |
//! | `lineage_bus_producer_openmetadata_poll_duration_seconds` | | duration of one full listing and publication |
//! | `lineage_bus_producer_openmetadata_polls_total` | `result` = `ok`, `error` | polls |
//! | `lineage_bus_producer_openmetadata_api_errors_total` | `class` = `4xx`, `5xx`, `429`, `transport`, `decode` | failed OpenMetadata requests (each retry counts) |

use std::sync::LazyLock;

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts};

/// The producer's metrics; registered on first use.
pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::register);

/// Handles to the producer's metrics.
pub(crate) struct Metrics {
    /// Tables by outcome.
    pub(crate) tables: IntCounterVec,
    /// Live snapshots in scope.
    pub(crate) live: IntGauge,
    /// Poll duration.
    pub(crate) poll_duration: Histogram,
    /// Polls by result.
    pub(crate) polls: IntCounterVec,
    /// API errors by class.
    pub(crate) api_errors: IntCounterVec,
}

impl Metrics {
    // The definitions are constants: `expect` below either always or never fails.
    fn register() -> Self {
        let metrics = Self {
            tables: IntCounterVec::new(
                Opts::new(
                    "lineage_bus_producer_openmetadata_tables_total",
                    "OpenMetadata tables seen by the producer, by outcome (published, tombstoned, unchanged)",
                ),
                &["outcome"],
            )
            .expect("valid metric definition"),
            live: IntGauge::new(
                "lineage_bus_producer_openmetadata_tables_live",
                "Live table snapshots the topic holds for this producer's services",
            )
            .expect("valid metric definition"),
            poll_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "lineage_bus_producer_openmetadata_poll_duration_seconds",
                    "Duration of one listing of the catalog and the publication of its changes",
                )
                .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]),
            )
            .expect("valid metric definition"),
            polls: IntCounterVec::new(
                Opts::new(
                    "lineage_bus_producer_openmetadata_polls_total",
                    "Polls of the OpenMetadata catalog, by result",
                ),
                &["result"],
            )
            .expect("valid metric definition"),
            api_errors: IntCounterVec::new(
                Opts::new(
                    "lineage_bus_producer_openmetadata_api_errors_total",
                    "Failed OpenMetadata requests (every attempt), by class",
                ),
                &["class"],
            )
            .expect("valid metric definition"),
        };
        let registry = prometheus::default_registry();
        let collectors: [Box<dyn prometheus::core::Collector>; 5] = [
            Box::new(metrics.tables.clone()),
            Box::new(metrics.live.clone()),
            Box::new(metrics.poll_duration.clone()),
            Box::new(metrics.polls.clone()),
            Box::new(metrics.api_errors.clone()),
        ];
        for collector in collectors {
            if let Err(error) = registry.register(collector) {
                tracing::warn!(%error, "cannot register an openmetadata producer metric");
            }
        }
        metrics
    }
}
