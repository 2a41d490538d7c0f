//! Prometheus metrics of the registry, on the default registry.
//!
//! | name | labels | meaning |
//! |---|---|---|
//! | `lineage_bus_registry_http_requests_total` | `route` (path template), `status` (`2xx`, `4xx`, ...) | HTTP requests answered |
//! | `lineage_bus_registry_schemas_registered_total` | | new subject versions written |
//! | `lineage_bus_registry_records_applied_total` | | schemas-topic records folded into the state |

use std::sync::LazyLock;

use prometheus::{IntCounter, IntCounterVec, Opts};
use tracing::warn;

/// The registry's metrics; registered on first use.
pub(crate) static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::register);

/// Handles to the registry's counters.
pub(crate) struct Metrics {
    /// HTTP requests by route and status class.
    pub(crate) requests: IntCounterVec,
    /// New subject versions written.
    pub(crate) schemas_registered: IntCounter,
    /// Records folded into the state.
    pub(crate) records_applied: IntCounter,
}

impl Metrics {
    // The definitions are constants: `expect` below either always or never fails.
    fn register() -> Self {
        let metrics = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "lineage_bus_registry_http_requests_total",
                    "HTTP requests answered by the schema registry, by route and status class",
                ),
                &["route", "status"],
            )
            .expect("valid metric definition"),
            schemas_registered: IntCounter::new(
                "lineage_bus_registry_schemas_registered_total",
                "New subject versions written by this registry instance",
            )
            .expect("valid metric definition"),
            records_applied: IntCounter::new(
                "lineage_bus_registry_records_applied_total",
                "Schemas-topic records folded into the registry state",
            )
            .expect("valid metric definition"),
        };
        let registry = prometheus::default_registry();
        let collectors: [Box<dyn prometheus::core::Collector>; 3] = [
            Box::new(metrics.requests.clone()),
            Box::new(metrics.schemas_registered.clone()),
            Box::new(metrics.records_applied.clone()),
        ];
        for collector in collectors {
            if let Err(error) = registry.register(collector) {
                warn!(%error, "cannot register a schema registry metric");
            }
        }
        metrics
    }
}
