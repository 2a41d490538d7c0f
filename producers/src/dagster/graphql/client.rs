//! A client of Dagster's GraphQL endpoint: one POST per query, the `Dagster-Cloud-Api-Token`
//! header when a token is set, a timeout per request, and retries with exponential backoff
//! and jitter on transport errors, 5xx and 429 (honouring `Retry-After`).

use std::time::{Duration, Instant};

use backon::Retryable;
use reqwest::header::{HeaderMap, HeaderName};
use reqwest::{StatusCode, Url};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::config::GraphqlConfig;
use super::metrics::METRICS;
use crate::http_client;

/// The header Dagster+ reads the API token from.
const TOKEN_HEADER: &str = "dagster-cloud-api-token";

/// A failed GraphQL request.
#[derive(Debug, thiserror::Error)]
pub enum GraphqlError {
    /// The URL or token cannot be used.
    #[error("invalid [producers.dagster.graphql] setting: {0}")]
    Config(String),
    /// No answer (connection refused, timeout, ...).
    #[error("dagster graphql at {url} cannot be reached: {source}")]
    Transport {
        /// Endpoint.
        url: String,
        /// The client error.
        source: reqwest::Error,
    },
    /// An HTTP error status.
    #[error("dagster graphql at {url} answered {status} to {operation}: {body}")]
    Status {
        /// Endpoint.
        url: String,
        /// The query's operation name.
        operation: &'static str,
        /// Status.
        status: StatusCode,
        /// The start of the body.
        body: String,
        /// `Retry-After` of a 429/503.
        retry_after: Option<Duration>,
    },
    /// The query was refused (`errors` in the answer, e.g. a field this Dagster lacks).
    #[error("dagster graphql refused {operation}: {message}")]
    Query {
        /// The query's operation name.
        operation: &'static str,
        /// The messages, joined.
        message: String,
    },
    /// Dagster answered with its `PythonError` (or another error type) instead of data.
    #[error("dagster graphql {operation} failed in Dagster: {message}")]
    Dagster {
        /// The query's operation name.
        operation: &'static str,
        /// Dagster's message.
        message: String,
    },
    /// The answer is not the expected JSON.
    #[error("dagster graphql answered {operation} with unexpected JSON: {source}")]
    Decode {
        /// The query's operation name.
        operation: &'static str,
        /// The parse error.
        source: serde_json::Error,
    },
}

impl GraphqlError {
    /// True when the same request may succeed later (Dagster restarting, overloaded or
    /// unreachable): the producer keeps trying with readiness false.
    pub fn is_transient(&self) -> bool {
        match self {
            GraphqlError::Transport { .. } | GraphqlError::Dagster { .. } => true,
            GraphqlError::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            GraphqlError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The metric label of the error.
    fn class(&self) -> &'static str {
        match self {
            GraphqlError::Transport { .. } => "transport",
            GraphqlError::Status { status, .. } if status.is_server_error() => "5xx",
            GraphqlError::Status { status, .. } if *status == StatusCode::TOO_MANY_REQUESTS => {
                "429"
            }
            GraphqlError::Status { .. } => "4xx",
            GraphqlError::Query { .. } => "query",
            GraphqlError::Dagster { .. } => "dagster",
            GraphqlError::Decode { .. } | GraphqlError::Config(_) => "decode",
        }
    }
}

/// A GraphQL answer.
#[derive(Deserialize)]
struct Answer<T> {
    data: Option<T>,
    #[serde(default)]
    errors: Vec<AnswerError>,
}

#[derive(Deserialize)]
struct AnswerError {
    message: String,
}

/// A client of one Dagster GraphQL endpoint.
#[derive(Debug, Clone)]
pub struct GraphqlClient {
    http: reqwest::Client,
    url: Url,
    max_retries: usize,
}

impl GraphqlClient {
    /// A client of `config.url` (required).
    pub fn new(config: &GraphqlConfig) -> Result<Self, GraphqlError> {
        let url = config
            .url
            .as_deref()
            .ok_or_else(|| GraphqlError::Config("url is not set".into()))?;
        let url = Url::parse(url).map_err(|e| GraphqlError::Config(format!("url {url:?}: {e}")))?;
        let mut headers = HeaderMap::new();
        if let Some(token) = &config.api_token {
            let value = http_client::secret_header(token.expose_secret()).map_err(|_| {
                GraphqlError::Config("api_token holds characters not allowed in a header".into())
            })?;
            headers.insert(HeaderName::from_static(TOKEN_HEADER), value);
        }
        let http = http_client::build(headers, config.request_timeout)
            .map_err(|e| GraphqlError::Config(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            http,
            url,
            max_retries: config.max_retries,
        })
    }

    /// The endpoint.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Runs `query` (named `operation`, a bounded metric label) with `variables` and decodes
    /// its `data`, retrying transient failures.
    pub async fn query<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        query: &str,
        variables: serde_json::Value,
    ) -> Result<T, GraphqlError> {
        let body = serde_json::json!({
            "operationName": operation,
            "query": query,
            "variables": variables,
        });
        let backoff = http_client::backoff(
            Duration::from_millis(200),
            Duration::from_secs(10),
            self.max_retries,
        );
        let bytes = (|| self.post_once(operation, &body))
            .retry(backoff)
            .when(|e: &GraphqlError| {
                matches!(
                    e,
                    GraphqlError::Transport { .. } | GraphqlError::Status { .. }
                ) && e.is_transient()
            })
            // `None` = retries exhausted: a server that keeps sending Retry-After cannot extend them.
            .adjust(|e: &GraphqlError, delay| delay.map(|d| e.retry_after().unwrap_or(d)))
            .notify(|e: &GraphqlError, delay| {
                tracing::warn!(error = %e, ?delay, "dagster graphql request failed; retrying");
            })
            .await?;
        let answer: Answer<T> = serde_json::from_slice(&bytes)
            .map_err(|source| GraphqlError::Decode { operation, source })?;
        match (answer.data, answer.errors.is_empty()) {
            (Some(data), true) => Ok(data),
            (_, _) => {
                let error = GraphqlError::Query {
                    operation,
                    message: answer
                        .errors
                        .into_iter()
                        .map(|e| e.message)
                        .collect::<Vec<_>>()
                        .join("; "),
                };
                METRICS.errors.with_label_values(&[error.class()]).inc();
                Err(error)
            }
        }
    }

    async fn post_once(
        &self,
        operation: &'static str,
        body: &serde_json::Value,
    ) -> Result<Vec<u8>, GraphqlError> {
        let started = Instant::now();
        let result = self.post(operation, body).await;
        METRICS
            .request_duration
            .with_label_values(&[operation])
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            METRICS.errors.with_label_values(&[e.class()]).inc();
        }
        result
    }

    async fn post(
        &self,
        operation: &'static str,
        body: &serde_json::Value,
    ) -> Result<Vec<u8>, GraphqlError> {
        let transport = |source| GraphqlError::Transport {
            url: self.url.to_string(),
            source,
        };
        let response = self
            .http
            .post(self.url.clone())
            .json(body)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response.bytes().await.map_err(transport)?.to_vec());
        }
        let retry_after = http_client::retry_after(response.headers());
        let mut text = response.text().await.unwrap_or_default();
        text.truncate(text.floor_char_boundary(500));
        Err(GraphqlError::Status {
            url: self.url.to_string(),
            operation,
            status,
            body: text,
            retry_after,
        })
    }
}

/// The `__typename` and `message` of a `*OrError` union member that is not the expected
/// type.
#[derive(Debug, Deserialize)]
pub(crate) struct Typed {
    #[serde(rename = "__typename")]
    pub typename: String,
    #[serde(default)]
    pub message: Option<String>,
}

impl Typed {
    /// The error this member stands for.
    pub(crate) fn error(&self, operation: &'static str) -> GraphqlError {
        GraphqlError::Dagster {
            operation,
            message: format!(
                "{}: {}",
                self.typename,
                self.message.as_deref().unwrap_or("(no message)")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn transient_and_permanent_errors() {
        let status = |s: u16| GraphqlError::Status {
            url: "u".into(),
            operation: "op",
            status: StatusCode::from_u16(s).unwrap(),
            body: String::new(),
            retry_after: None,
        };
        assert!(status(502).is_transient() && status(429).is_transient());
        assert!(!status(401).is_transient() && !status(400).is_transient());
        let query = GraphqlError::Query {
            operation: "op",
            message: "Cannot query field".into(),
        };
        assert!(!query.is_transient());
    }

    #[test]
    fn settings_are_checked() {
        let config = GraphqlConfig {
            url: Some("http://127.0.0.1:1/graphql".into()),
            api_token: Some("org:secret".to_owned().into()),
            ..GraphqlConfig::default()
        };
        assert!(GraphqlClient::new(&config).is_ok());
        let bad = GraphqlConfig {
            api_token: Some("line\nbreak".to_owned().into()),
            ..config
        };
        assert!(matches!(
            GraphqlClient::new(&bad),
            Err(GraphqlError::Config(_))
        ));
        assert!(GraphqlClient::new(&GraphqlConfig::default()).is_err());
    }
}
