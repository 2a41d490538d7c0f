//! `lineage-bus sink openlineage`: delivers the OpenLineage events of `lineage.openlineage` to
//! an OpenLineage HTTP backend (Marquez, OpenMetadata's OpenLineage endpoint, DataHub's
//! `/openapi/openlineage/api/v1/lineage`) or a JSON-lines file, one event per request,
//! ordered per key (the OpenLineage Kafka transport key: `run:{namespace}/{job}` of the root
//! parent job, so every event of a run and its child runs arrives in order).
//!
//! Config keys: `[sinks.openlineage]` (see [`crate::config::OpenLineageSinkConfig`] and
//! `config/lineage-bus.toml`). Metrics: [`crate::metrics`] with `sink="openlineage"`.
//!
//! Tenants: the processor sets the record header `lineage-bus-tenant`; a tenant listed under
//! `[sinks.openlineage.tenants.<tenant>]` gets its own URL, endpoint, API key, headers and rate
//! limit; every tenant has its own rate limiter, so one tenant cannot use up another's rate.

pub mod file;
pub mod request;
pub mod sink;

pub use sink::run;
