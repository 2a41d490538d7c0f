//! Prometheus metrics of the GraphQL side of `produce dagster`, on the default registry.
//!
//! | name | labels | meaning |
//! |---|---|---|
//! | `lineage_bus_producer_dagster_graphql_request_duration_seconds` | `operation` (the query's name) | latency of one GraphQL request (each attempt) |
//! | `lineage_bus_producer_dagster_graphql_errors_total` | `class` (`transport`, `5xx`, `429`, `4xx`, `query`, `dagster`, `decode`) | failed GraphQL requests |
//! | `lineage_bus_producer_dagster_assets_total` | `change` (`published`, `tombstoned`, `unchanged`) | asset definitions compared with the topic, by outcome |
//! | `lineage_bus_producer_dagster_assets_live` | | assets of this tenant the topic holds |
//! | `lineage_bus_producer_dagster_asset_poll_duration_seconds` | | time of one reading of the asset graph (all pages and the publication) |
//! | `lineage_bus_producer_dagster_graphql_runs_followed` | | runs whose log the GraphQL event poller follows (not finished, or finished within the retention) |
//! | `lineage_bus_producer_dagster_graphql_cursor_lag_seconds` | | now minus the runs update cursor: the age of the newest run update handled (grows while no run changes; a lag only while runs are updated) |
//!
//! The GraphQL event poller also feeds the event-log metrics of [`crate::dagster`]
//! (`records_published_total` by type, `transactions_total`, `cursor_position` = the runs
//! update cursor in ms, `poll_duration_seconds`).

use std::sync::LazyLock;

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts};

/// The metrics; registered on first use.
pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::register);

/// Handles to the metrics.
pub(crate) struct Metrics {
    /// Request latency by operation.
    pub(crate) request_duration: HistogramVec,
    /// Failed requests by class.
    pub(crate) errors: IntCounterVec,
    /// Asset definitions by outcome.
    pub(crate) assets: IntCounterVec,
    /// Live assets of this tenant.
    pub(crate) assets_live: IntGauge,
    /// Asset poll latency.
    pub(crate) asset_poll_duration: Histogram,
    /// Runs followed by the event poller.
    pub(crate) runs_followed: IntGauge,
    /// Lag of the runs update cursor.
    pub(crate) cursor_lag: IntGauge,
}

impl Metrics {
    // The definitions are constants: `expect` below either always or never fails.
    fn register() -> Self {
        let buckets = vec![0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
        let metrics = Self {
            request_duration: HistogramVec::new(
                HistogramOpts::new(
                    "lineage_bus_producer_dagster_graphql_request_duration_seconds",
                    "Latency of one Dagster GraphQL request, by operation",
                )
                .buckets(buckets.clone()),
                &["operation"],
            )
            .expect("valid metric definition"),
            errors: IntCounterVec::new(
                Opts::new(
                    "lineage_bus_producer_dagster_graphql_errors_total",
                    "Failed Dagster GraphQL requests, by class",
                ),
                &["class"],
            )
            .expect("valid metric definition"),
            assets: IntCounterVec::new(
                Opts::new(
                    "lineage_bus_producer_dagster_assets_total",
                    "Asset definitions compared with the assets topic, by outcome",
                ),
                &["change"],
            )
            .expect("valid metric definition"),
            assets_live: IntGauge::new(
                "lineage_bus_producer_dagster_assets_live",
                "Assets of this tenant held by the assets topic",
            )
            .expect("valid metric definition"),
            asset_poll_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "lineage_bus_producer_dagster_asset_poll_duration_seconds",
                    "Time of one reading and publication of the asset graph",
                )
                .buckets(buckets),
            )
            .expect("valid metric definition"),
            runs_followed: IntGauge::new(
                "lineage_bus_producer_dagster_graphql_runs_followed",
                "Runs whose event log the GraphQL poller follows",
            )
            .expect("valid metric definition"),
            cursor_lag: IntGauge::new(
                "lineage_bus_producer_dagster_graphql_cursor_lag_seconds",
                "Now minus the GraphQL runs update cursor",
            )
            .expect("valid metric definition"),
        };
        let registry = prometheus::default_registry();
        let collectors: [Box<dyn prometheus::core::Collector>; 7] = [
            Box::new(metrics.request_duration.clone()),
            Box::new(metrics.errors.clone()),
            Box::new(metrics.assets.clone()),
            Box::new(metrics.assets_live.clone()),
            Box::new(metrics.asset_poll_duration.clone()),
            Box::new(metrics.runs_followed.clone()),
            Box::new(metrics.cursor_lag.clone()),
        ];
        for collector in collectors {
            if let Err(error) = registry.register(collector) {
                tracing::warn!(%error, "cannot register a dagster graphql metric");
            }
        }
        metrics
    }
}
