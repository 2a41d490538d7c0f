//! Producers: Dagster events and the asset graph (`produce dagster`), OpenMetadata table
//! snapshots (`produce openmetadata`) and the ingest HTTP endpoints (`ingest`), each writing
//! its source into Kafka. Not built yet: the binary reports these roles as unavailable.
