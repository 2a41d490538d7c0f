//! `lineage-bus sink openmetadata`: delivers the operations of `lineage.openmetadata` (Avro
//! `OpenMetadataOperation`) to the OpenMetadata REST API with a bot's JWT (`Authorization:
//! Bearer`), one request per operation, with the delivery rules of every sink
//! ([`crate::delivery`]): ordered per key (the FQN of the entity touched), concurrent across
//! keys, retried with backoff, dead-lettered when rejected for good, offsets committed after
//! OpenMetadata acknowledged.
//!
//! | operation | request |
//! |---|---|
//! | pipeline service | `PUT /api/v1/services/pipelineServices` |
//! | pipeline with tasks | `PUT /api/v1/pipelines` |
//! | run-level status | `PUT /api/v1/pipelines/{fqn}/status` |
//! | table → table lineage | `PUT /api/v1/lineage` (pipeline reference, `columnsLineage`) |
//! | classification, tag | `PUT /api/v1/classifications`, `PUT /api/v1/tags` |
//!
//! Every write is a `PUT`, OpenMetadata's create-or-update: a redelivered operation (after a
//! crash before the commit, or a replay) writes the same entity again and changes nothing (a
//! status is keyed by its timestamp, a lineage edge by its two ends). Lineage uses `PUT
//! /api/v1/lineage` rather than `PATCH /api/v1/lineage/{from}/{fromId}/{to}/{toId}`: the PUT
//! creates the edge or replaces its details in one idempotent call, while a JSON Patch needs
//! the edge to exist already and would have to be computed against its current details. Lineage edges and owners
//! refer to entities by id: [`resolve`] looks them up by FQN (`GET .../name/{fqn}`) and keeps
//! them in a bounded cache; a write answered 404 drops the ids it used, so a table deleted and
//! re-created is looked up again. A lineage edge whose `columnsLineage` names a column the
//! table lacks would be rejected whole (400): those column pairs are left out (logged) and the
//! table-level edge is written.
//!
//! **A reference that does not exist yet.** Operations on different keys may be on different
//! partitions, so a pipeline can arrive before its service, a tag before its classification,
//! a status or an edge before its pipeline. OpenMetadata answers such a write `404
//! {"code":404,"message":"pipelineService instance for X not found"}` (an `EntityNotFound`),
//! and a lookup of a missing table or pipeline answers 404 too. The sink treats both as
//! retryable (`missing_reference`): the operation waits, with backoff, in its key's order,
//! until the other record has been written — it is never dropped. It gives up only after
//! `missing_reference_timeout` (default 10 minutes: a table deleted from OpenMetadata, or a
//! sink pointed at another OpenMetadata than the processor's tables came from) and then writes
//! the operation to the dead-letter topic as `UNRESOLVABLE` with the last answer, from where
//! it can be replayed. Owners that do not exist are left out of the pipeline, as OpenMetadata's
//! connector does.
//!
//! **Credentials.** 401 and 403 mean the token is wrong, expired or lacks a role: every
//! operation would fail alike, so they are retried (`unauthorized`, logged) instead of
//! dead-lettering the whole stream; the sink resumes once the token is fixed. Other 4xx
//! (a body OpenMetadata's schemas reject: 400) are permanent: the operation goes to the
//! dead-letter topic with the status and OpenMetadata's message. 5xx, 429 (with
//! `Retry-After`), 408 and transport errors are retried.
//!
//! **Tenants.** [`routes`]: an operation whose `tenant` is listed under
//! `[sinks.openmetadata.tenants.<tenant>]` goes to that tenant's OpenMetadata server with its JWT
//! (and its own entity-id cache); every tenant has its own rate limiter
//! ([`crate::delivery::tenants`]), so one tenant cannot use up another's rate.
//!
//! Config keys: `[sinks.openmetadata]` (see [`crate::config::OpenMetadataSinkConfig`] and
//! `config/lineage-bus.toml`). Metrics: [`crate::metrics`] with `sink="openmetadata"`.

pub mod classify;
pub mod destination;
pub mod resolve;
pub mod routes;
pub mod sink;

pub use sink::run;
