//! Errors of the sink roles.

use rdkafka::error::KafkaError;

/// Why a sink could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The configuration cannot work.
    #[error("invalid sink configuration: {0}")]
    Config(String),
    /// A Kafka operation failed.
    #[error("{action}: {source}")]
    Kafka {
        /// What was being done.
        action: String,
        /// The Kafka error.
        source: KafkaError,
    },
    /// The dead-letter codec could not be set up (Schema Registry).
    #[error("setting up the dead-letter topic {topic}: {source}")]
    DeadLetterCodec {
        /// The dead-letter topic.
        topic: String,
        /// The codec error.
        source: lineage_schemas::CodecError,
    },
    /// The codec of the consumed topic could not be set up (Schema Registry).
    #[error("setting up the Avro codec of {topic}: {source}")]
    Codec {
        /// The consumed topic.
        topic: String,
        /// The codec error.
        source: lineage_schemas::CodecError,
    },
    /// The HTTP client could not be built.
    #[error("building the HTTP client for {url}: {reason}")]
    HttpClient {
        /// The backend URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// A local file could not be used.
    #[error("{what} {path}: {source}")]
    File {
        /// What the file is for.
        what: &'static str,
        /// Its path.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// A background task of the sink failed.
    #[error("{0}")]
    Task(String),
    /// A `--from` start position cannot be applied.
    #[error("replay start position: {0}")]
    Start(String),
}

/// A closure turning a Kafka error into [`SinkError::Kafka`] for `action`.
pub(crate) fn kafka(action: impl Into<String>) -> impl FnOnce(KafkaError) -> SinkError {
    let action = action.into();
    move |source| SinkError::Kafka { action, source }
}
