//! The dead-letter topic: a record the backend rejected for good (a 4xx other than 408/429,
//! or a value that is not JSON) is written to `lineage.deadletter` as a `DeadLetter` with the
//! HTTP status, the response body (truncated), the original key and value and its
//! topic/partition/offset. Only once Kafka acknowledged the dead letter does the record's
//! offset count as done, so nothing is lost between the two.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lineage_bus_core::KafkaConfig;
use lineage_schemas::records::{DeadLetter, DeadLetterKind};
use lineage_schemas::{RecordCodec, RegistryClient};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::delivery::SinkRecord;
use crate::error::{SinkError, kafka};

/// Why a record is dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The kind of failure.
    pub kind: DeadLetterKind,
    /// The backend's status, when it answered.
    pub status: Option<u16>,
    /// The backend's answer, when it answered.
    pub body: Option<String>,
    /// What happened.
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
}

/// Builds the dead letter of `record` (no IO).
pub fn dead_letter(
    component: &str,
    record: &SinkRecord,
    rejection: &Rejection,
    max_body: usize,
    now: SystemTime,
) -> DeadLetter {
    DeadLetter {
        component: component.to_owned(),
        tenant: record.tenant.clone(),
        error_kind: rejection.kind,
        reason: format!("{}: {}", record.position(), rejection.reason),
        http_status: rejection.status.map(i32::from),
        response_body: rejection.body.as_deref().map(|b| truncate(b, max_body)),
        source_topic: Some(record.topic.clone()),
        source_partition: Some(record.partition),
        source_offset: Some(record.offset),
        source_position: None,
        original_key: record.key.clone(),
        original_value: Some(record.value.clone()),
        attempts: i32::try_from(rejection.attempts).unwrap_or(i32::MAX),
        timestamp_ms: now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
    }
}

/// The first `max` bytes of `text`, cut on a character boundary, marked when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[truncated, {} bytes]", &text[..end], text.len())
}

/// Writes dead letters to Kafka.
pub struct DeadLetterWriter {
    producer: FutureProducer,
    codec: RecordCodec<DeadLetter>,
    topic: String,
    component: String,
    max_body: usize,
}

impl std::fmt::Debug for DeadLetterWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterWriter")
            .field("topic", &self.topic)
            .field("component", &self.component)
            .finish_non_exhaustive()
    }
}

impl DeadLetterWriter {
    /// A writer to `topic` for `component` (e.g. `sink.openlineage`); registers the
    /// `DeadLetter` schema under `<topic>-value`.
    pub async fn connect(
        kafka_config: &KafkaConfig,
        registry: RegistryClient,
        topic: &str,
        component: &str,
        max_body: usize,
    ) -> Result<Self, SinkError> {
        let codec = RecordCodec::for_topic(registry, topic)
            .await
            .map_err(|source| SinkError::DeadLetterCodec {
                topic: topic.to_owned(),
                source,
            })?;
        let producer = kafka_config
            .idempotent_producer_config(component)
            .create()
            .map_err(kafka("creating the dead-letter producer"))?;
        Ok(Self {
            producer,
            codec,
            topic: topic.to_owned(),
            component: component.to_owned(),
            max_body,
        })
    }

    /// Writes the dead letter of `record` and waits until Kafka acknowledged it.
    pub async fn write(&self, record: &SinkRecord, rejection: &Rejection) -> Result<(), SinkError> {
        let letter = dead_letter(
            &self.component,
            record,
            rejection,
            self.max_body,
            SystemTime::now(),
        );
        let payload = self
            .codec
            .encode(&letter)
            .map_err(|source| SinkError::DeadLetterCodec {
                topic: self.topic.clone(),
                source,
            })?;
        let mut out = FutureRecord::<[u8], [u8]>::to(&self.topic).payload(&payload);
        if let Some(key) = &record.key {
            out = out.key(key.as_slice());
        }
        self.producer
            .send(out, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(e, _)| kafka(format!("writing the dead letter of {}", record.position()))(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_keeps_the_original_record_and_the_backend_answer() {
        let record = SinkRecord {
            topic: "lineage.openlineage".into(),
            partition: 3,
            offset: 42,
            key: Some(b"run:ns/job".to_vec()),
            value: br#"{"eventType":"START"}"#.to_vec(),
            tenant: Some("acme".into()),
        };
        let rejection = Rejection {
            kind: DeadLetterKind::RejectedByBackend,
            status: Some(400),
            body: Some("x".repeat(100)),
            reason: "the backend answered 400".into(),
            attempts: 1,
        };
        let letter = dead_letter(
            "sink.openlineage",
            &record,
            &rejection,
            10,
            UNIX_EPOCH + Duration::from_millis(1234),
        );
        assert_eq!(letter.http_status, Some(400));
        assert_eq!(
            letter.response_body.as_deref(),
            Some("xxxxxxxxxx…[truncated, 100 bytes]")
        );
        assert_eq!(letter.source_topic.as_deref(), Some("lineage.openlineage"));
        assert_eq!(letter.source_partition, Some(3));
        assert_eq!(letter.source_offset, Some(42));
        assert_eq!(letter.original_key, record.key);
        assert_eq!(letter.original_value, Some(record.value.clone()));
        assert_eq!(letter.tenant.as_deref(), Some("acme"));
        assert_eq!(letter.timestamp_ms, 1234);
        assert_eq!(
            letter.reason,
            "lineage.openlineage/3@42: the backend answered 400"
        );
    }

    #[test]
    fn truncation_respects_character_boundaries() {
        assert_eq!(truncate("héllo", 100), "héllo");
        // 'é' is two bytes: cutting at 2 would split it.
        assert_eq!(truncate("héllo", 2), "h…[truncated, 6 bytes]");
    }
}
