//! Record of `lineage-bus.cursors`.

use serde::{Deserialize, Serialize};

/// How far a producer has published its source (topic `lineage-bus.cursors`, compacted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCursor {
    /// The producer, e.g. `producer.dagster`.
    pub producer: String,
    /// The deployment the producer speaks for.
    pub tenant: String,
    /// What the position counts in, e.g. `postgres:public.event_logs`.
    pub source: String,
    /// Every storage id up to and including it is published or proven never to appear.
    pub position: i64,
    /// When the cursor was written, ms since the Unix epoch.
    pub updated_ms: i64,
}

impl SourceCursor {
    /// The Kafka key: producer and tenant, joined by `/`.
    pub fn kafka_key(&self) -> String {
        format!("{}/{}", self.producer, self.tenant)
    }
}
