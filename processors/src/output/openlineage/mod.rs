//! OpenLineage output: the event model ([`model`]), its facets ([`facets`]) and the builders
//! that turn Dagster events into OpenLineage events ([`events_for`],
//! [`unmaterialized_asset`]).
//!
//! | Dagster event | OpenLineage |
//! |---|---|
//! | `RUN_START` / `RUN_SUCCESS` / `RUN_FAILURE` / `RUN_CANCELED` | job `{job}`: `START` / `COMPLETE` / `FAIL` (+`errorMessage`) / `ABORT` |
//! | `STEP_START` / `STEP_SUCCESS` / `STEP_FAILURE` / `STEP_UP_FOR_RETRY` | child job `{job}.{step}` (`parent` = the run): `START` / `COMPLETE` / `FAIL` / `OTHER`, the last two with `errorMessage` |
//! | `ASSET_MATERIALIZATION_PLANNED` / `ASSET_MATERIALIZATION` / `ASSET_FAILED_TO_MATERIALIZE` | job `a/b/c` (`parent` = the step, `root` = the run): `START` / `COMPLETE` with `inputs` = the deps and the output's facets / `FAIL` |
//! | `ASSET_OBSERVATION` | `DatasetEvent` |
//! | `ASSET_CHECK_EVALUATION_PLANNED` / `ASSET_CHECK_EVALUATION` | job `a/b/c__checks`, one run per check: `START` / `COMPLETE` with `dataQualityAssertions` on the input |
//! | an asset definition ([`definition_events`]) | `JobEvent` of the asset's job and `DatasetEvent` of its dataset |
//! | planned, never materialized ([`unmaterialized_asset`]) | the asset job's `FAIL` |
//! | a step left open when its run ends ([`unfinished_step`]) | the step job's `ABORT` (+`errorMessage`) |
//!
//! Run ids are derived from (tenant, Dagster run id, what ran) and the run's anchor time
//! ([`crate::output::ids`]); every event's Kafka key is [`Event::kafka_key`].

mod build;
pub mod facets;
pub mod model;

pub use build::{
    StepClosure, definition_events, events_for, unfinished_step, unmaterialized_asset,
};
pub use model::Event;
