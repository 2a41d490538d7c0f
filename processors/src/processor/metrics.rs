//! Metrics of the processor.
//!
//! | metric | labels | meaning |
//! |---|---|---|
//! | `lineage_bus_processor_records_total` | `outcome` = processed, forwarded (`openlineage.ingest`), dead_lettered | input records |
//! | `lineage_bus_processor_outputs_total` | `kind` = openlineage, openmetadata, resolution | output records |
//! | `lineage_bus_processor_open_runs` | | runs seen and not finished |
//! | `lineage_bus_processor_global_records` | `input` = tables, assets | records of the compacted inputs read at start |
//! | `lineage_bus_processor_resolution_ambiguous_total` | `rule` = the deciding rule, `outcome` = chosen, skipped | ambiguous resolutions reported on `lineage.resolution` |

use std::sync::LazyLock;

use prometheus::{
    IntCounterVec, IntGauge, IntGaugeVec, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec,
};

/// Input events by outcome.
pub static RECORDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "lineage_bus_processor_records_total",
        "Input events by outcome",
        &["outcome"]
    )
    .expect("metric is valid")
});

/// Output records by kind.
pub static OUTPUTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "lineage_bus_processor_outputs_total",
        "Output records by kind",
        &["kind"]
    )
    .expect("metric is valid")
});

/// Runs open.
pub static OPEN_RUNS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "lineage_bus_processor_open_runs",
        "Runs seen and not finished"
    )
    .expect("metric is valid")
});

/// Records of the compacted inputs read at start.
pub static GLOBAL_RECORDS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "lineage_bus_processor_global_records",
        "Records of the compacted inputs read at start",
        &["input"]
    )
    .expect("metric is valid")
});

/// Ambiguous resolutions reported, by deciding rule and outcome.
pub static RESOLUTION_AMBIGUOUS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "lineage_bus_processor_resolution_ambiguous_total",
        "Ambiguous asset resolutions reported, by deciding rule and outcome",
        &["rule", "outcome"]
    )
    .expect("metric is valid")
});
