//! The records lineage-bus moves through Kafka: Avro schemas (the `.avsc` files in
//! `schemas/avro/` are the source of truth), their Rust types, the topic catalog, and the
//! Confluent wire-format codec that resolves schema ids through a Schema Registry.

mod avro;
pub mod catalog;
mod codec;
pub mod fast_decode;
pub mod openmetadata_rest;
pub mod records;
pub mod wire;

pub use avro::{AvroRecord, SchemaFile, check_backward_compatible, schema_files};
pub use codec::{CodecError, RecordCodec, RegistryClient};
