//! Delivery shared by every sink: consume a topic, deliver each record to a [`Destination`]
//! ordered per key and concurrent across keys, retry transient failures, dead-letter permanent
//! ones, and commit offsets only after the destination acknowledged.

pub mod dead_letter;
pub mod engine;
pub mod offsets;
pub mod ordering;
pub mod pause;
pub mod progress;
pub mod retry;
pub mod start;
pub mod tenants;

use std::future::Future;

pub use engine::{EngineConfig, RunSummary, run};
pub use retry::{AttemptError, RetryPolicy, RetryReason};
pub use start::StartFrom;

/// Record header carrying the tenant the record belongs to (set by the processor).
pub const TENANT_HEADER: &str = "lineage-bus-tenant";

/// One consumed record, as a destination sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkRecord {
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value (never a tombstone: those are skipped before delivery).
    pub value: Vec<u8>,
    /// The `lineage-bus-tenant` header, when present.
    pub tenant: Option<String>,
}

impl SinkRecord {
    /// `topic/partition@offset`, for logs and errors.
    pub fn position(&self) -> String {
        format!("{}/{}@{}", self.topic, self.partition, self.offset)
    }
}

/// A backend a sink delivers to. One call is one attempt; the engine retries.
pub trait Destination: Send + Sync + 'static {
    /// Delivers `record` once.
    fn deliver(&self, record: &SinkRecord)
    -> impl Future<Output = Result<(), AttemptError>> + Send;

    /// Whether the backend answers at all (readiness); any answer counts.
    fn probe(&self) -> impl Future<Output = bool> + Send;
}
