//! Errors: [`RegistryError`] for the role as a whole, [`ApiError`] for one HTTP request.

use std::net::SocketAddr;

use axum::http::StatusCode;
use rdkafka::error::KafkaError;

/// Why the registry could not start or stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A Kafka client could not be created from the given configuration.
    #[error("cannot create the kafka {role} client for the registry: {source}")]
    Client {
        /// Which client: "admin", "consumer" or "producer".
        role: &'static str,
        /// The librdkafka error.
        source: KafkaError,
    },
    /// The schemas topic could not be described or created.
    #[error("cannot create the schemas topic '{topic}': {message}")]
    CreateTopic {
        /// The topic name from the configuration.
        topic: String,
        /// What the broker or client said.
        message: String,
    },
    /// The schemas topic could not be assigned to the reader.
    #[error("cannot read the schemas topic '{topic}': {source}")]
    ReadTopic {
        /// The topic name from the configuration.
        topic: String,
        /// The librdkafka error.
        source: KafkaError,
    },
    /// The HTTP listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured listen address.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// The HTTP server failed while running.
    #[error("the registry http server on {addr} failed: {source}")]
    Serve {
        /// The bound address.
        addr: SocketAddr,
        /// The server error.
        source: std::io::Error,
    },
    /// `shutdown` was cancelled before the registry was ready.
    #[error("the registry was shut down before it was ready")]
    Cancelled,
    /// A background task of the registry panicked or was aborted.
    #[error("the registry {task} task ended abnormally: {source}")]
    Task {
        /// Which task: "reader" or "http".
        task: &'static str,
        /// The join error.
        source: tokio::task::JoinError,
    },
}

/// A request failure, carrying Confluent's HTTP status and `error_code`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ApiError {
    /// 40401.
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// 40402.
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    /// 40403.
    #[error("Schema {0} not found")]
    SchemaNotFound(String),
    /// 40404.
    #[error("Subject '{0}' was soft deleted. Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    /// 40405.
    #[error("Subject '{0}' was not deleted first before being permanently deleted")]
    SubjectNotSoftDeleted(String),
    /// 40406.
    #[error("Subject '{0}' Version {1} was soft deleted. Set permanent=true to delete permanently")]
    VersionSoftDeleted(String, u32),
    /// 40407.
    #[error("Subject '{0}' Version {1} was not deleted first before being permanently deleted")]
    VersionNotSoftDeleted(String, u32),
    /// 40408.
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectLevelNotConfigured(String),
    /// 404 for paths that match no route.
    #[error("HTTP 404 Not Found")]
    NoRoute,
    /// 409: the schema breaks the subject's compatibility level.
    #[error(
        "Schema being registered is incompatible with an earlier schema for subject '{subject}' \
         (compatibility {level}): {}",
        details.join("; ")
    )]
    Incompatible {
        /// The subject registered to.
        subject: String,
        /// The level checked, e.g. "BACKWARD".
        level: &'static str,
        /// One line per broken rule.
        details: Vec<String>,
    },
    /// 400: the request body is not the JSON expected.
    #[error("Invalid request body: {0}")]
    BadRequest(String),
    /// 42201.
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    /// 42202.
    #[error(
        "The specified version '{0}' is not a valid version id. Allowed values are between \
         [1, 2^31-1] and the string \"latest\""
    )]
    InvalidVersion(String),
    /// 42203.
    #[error(
        "Invalid compatibility level '{0}'. Valid values are none, backward, forward, full, \
         backward_transitive, forward_transitive, and full_transitive"
    )]
    InvalidCompatibility(String),
    /// 50001.
    #[error("Error in the backend data store: {0}")]
    Store(String),
    /// 50002.
    #[error("Operation timed out: {0}")]
    Timeout(String),
}

impl ApiError {
    /// Confluent's `error_code` for this error.
    pub(crate) fn error_code(&self) -> u32 {
        match self {
            Self::SubjectNotFound(_) => 40401,
            Self::VersionNotFound(_) => 40402,
            Self::SchemaNotFound(_) => 40403,
            Self::SubjectSoftDeleted(_) => 40404,
            Self::SubjectNotSoftDeleted(_) => 40405,
            Self::VersionSoftDeleted(..) => 40406,
            Self::VersionNotSoftDeleted(..) => 40407,
            Self::SubjectLevelNotConfigured(_) => 40408,
            Self::NoRoute => 404,
            Self::Incompatible { .. } => 409,
            Self::BadRequest(_) => 400,
            Self::InvalidSchema(_) => 42201,
            Self::InvalidVersion(_) => 42202,
            Self::InvalidCompatibility(_) => 42203,
            Self::Store(_) => 50001,
            Self::Timeout(_) => 50002,
        }
    }

    /// The HTTP status: the first three digits of the error code.
    pub(crate) fn status(&self) -> StatusCode {
        let code = self.error_code();
        let status = if code >= 1000 { code / 100 } else { code };
        u16::try_from(status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_the_error_code_prefix() {
        assert_eq!(
            ApiError::SubjectNotFound("s".into()).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ApiError::InvalidVersion("0".into()).status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let incompatible = ApiError::Incompatible {
            subject: "s".into(),
            level: "BACKWARD",
            details: vec![],
        };
        assert_eq!(incompatible.status(), StatusCode::CONFLICT);
        assert_eq!(
            ApiError::Store("x".into()).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            ApiError::BadRequest("x".into()).status(),
            StatusCode::BAD_REQUEST
        );
    }
}
