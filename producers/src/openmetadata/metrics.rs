//! Prometheus metrics of the OpenMetadata producer, on the default registry.
//!
//! | name | labels | meaning |
//! |---|---|---|
//! | `lineage_bus_producer_openmetadata_tables_total` | `outcome` = `published`, `tombstoned`, `unchanged` | tables per poll outcome |
//! | `lineage_bus_producer_openmetadata_tables_live` | | live snapshots the topic holds for this producer's scope |
//! | `lineage_bus_producer_openmetadata_poll_duration_seconds` | | duration of one poll (change events or full listing) and its publication |
//! | `lineage_bus_producer_openmetadata_polls_total` | `result` = `ok`, `error` | polls |
//! | `lineage_bus_producer_openmetadata_listings_total` | `reason` = `start`, `interval`, `events` | full listings of the catalog: no cursor yet, the re-list interval, too many changed tables for one request each |
//! | `lineage_bus_producer_openmetadata_events_total` | `outcome` = `applied`, `skipped` | change events read: acted on, or already reflected by the topic / out of scope |
//! | `lineage_bus_producer_openmetadata_event_lag_seconds` | | now minus the event cursor after the last poll |
//! | `lineage_bus_producer_openmetadata_reachable` | | 1 when the last OpenMetadata request was answered (not 5xx), 0 otherwise |
//! | `lineage_bus_producer_openmetadata_api_errors_total` | `class` = `4xx`, `5xx`, `429`, `transport`, `decode` | failed OpenMetadata requests (each retry counts) |

use std::sync::LazyLock;

use prometheus::{Gauge, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts};

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
    /// Full listings by reason.
    pub(crate) listings: IntCounterVec,
    /// Change events by outcome.
    pub(crate) events: IntCounterVec,
    /// Age of the event cursor.
    pub(crate) event_lag: Gauge,
    /// Whether OpenMetadata answers.
    pub(crate) reachable: IntGauge,
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
            listings: IntCounterVec::new(
                Opts::new(
                    "lineage_bus_producer_openmetadata_listings_total",
                    "Full listings of the OpenMetadata catalog, by reason (start, interval, events)",
                ),
                &["reason"],
            )
            .expect("valid metric definition"),
            events: IntCounterVec::new(
                Opts::new(
                    "lineage_bus_producer_openmetadata_events_total",
                    "OpenMetadata change events read, by outcome (applied, skipped)",
                ),
                &["outcome"],
            )
            .expect("valid metric definition"),
            event_lag: Gauge::new(
                "lineage_bus_producer_openmetadata_event_lag_seconds",
                "Now minus the change-event cursor after the last poll",
            )
            .expect("valid metric definition"),
            reachable: IntGauge::new(
                "lineage_bus_producer_openmetadata_reachable",
                "1 when the last OpenMetadata request was answered without a 5xx, 0 otherwise",
            )
            .expect("valid metric definition"),
        };
        let registry = prometheus::default_registry();
        let collectors: [Box<dyn prometheus::core::Collector>; 9] = [
            Box::new(metrics.tables.clone()),
            Box::new(metrics.live.clone()),
            Box::new(metrics.poll_duration.clone()),
            Box::new(metrics.polls.clone()),
            Box::new(metrics.api_errors.clone()),
            Box::new(metrics.listings.clone()),
            Box::new(metrics.events.clone()),
            Box::new(metrics.event_lag.clone()),
            Box::new(metrics.reachable.clone()),
        ];
        for collector in collectors {
            if let Err(error) = registry.register(collector) {
                tracing::warn!(%error, "cannot register an openmetadata producer metric");
            }
        }
        metrics
    }
}
