//! Producers: Dagster events and the asset graph (`produce dagster`), OpenMetadata table
//! snapshots (`produce openmetadata`) and the ingest HTTP endpoints (`ingest`), each writing
//! its source into Kafka.

pub mod dagster;
mod http_client;
pub mod ingest;
pub mod openmetadata;
