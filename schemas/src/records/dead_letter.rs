//! Record of `lineage.deadletter`.

use serde::{Deserialize, Serialize};

/// Why a record was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeadLetterKind {
    /// The input could not be parsed.
    MalformedInput,
    /// The input did not match the expected schema.
    SchemaMismatch,
    /// A backend answered with a permanent error (4xx).
    RejectedByBackend,
    /// The record referenced something that cannot be resolved.
    Unresolvable,
    /// Anything else.
    Other,
}

/// A record a component gave up on, with the reason and the original bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The role that gave up, e.g. `sink.openlineage`.
    pub component: String,
    /// Tenant, when known.
    pub tenant: Option<String>,
    /// Why.
    pub error_kind: DeadLetterKind,
    /// Human-readable reason naming the input.
    pub reason: String,
    /// Backend status code.
    pub http_status: Option<i32>,
    /// Backend answer, truncated.
    pub response_body: Option<String>,
    /// Topic of the original record.
    pub source_topic: Option<String>,
    /// Partition of the original record.
    pub source_partition: Option<i32>,
    /// Offset of the original record.
    pub source_offset: Option<i64>,
    /// Position in a non-Kafka source.
    pub source_position: Option<String>,
    /// Original key bytes.
    #[serde(with = "serde_bytes")]
    pub original_key: Option<Vec<u8>>,
    /// Original value bytes.
    #[serde(with = "serde_bytes")]
    pub original_value: Option<Vec<u8>>,
    /// Delivery attempts made.
    pub attempts: i32,
    /// When it was dead-lettered, ms since the Unix epoch.
    pub timestamp_ms: i64,
}
