//! The OpenMetadata REST client: paged listings with bearer auth, timeouts, and retries with
//! exponential backoff and jitter on 5xx, 429 (honouring `Retry-After`) and transport errors.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;

use super::config::OpenMetadataConfig;
use super::metrics::METRICS;
use super::snapshot::{ApiTable, Database, Page};

/// The longest `Retry-After` honoured; longer ones are cut to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// A failed OpenMetadata request.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL or token cannot be used.
    #[error("invalid OpenMetadata setting: {0}")]
    Config(String),
    /// 401: no token, or the token was refused.
    #[error("OpenMetadata at {url} answered 401 Unauthorized: {hint} (server said: {message})")]
    Unauthorized {
        /// Request URL.
        url: String,
        /// What is missing.
        hint: &'static str,
        /// The server's message.
        message: String,
    },
    /// 403: the token's principal may not read tables.
    #[error(
        "OpenMetadata at {url} answered 403 Forbidden: the bot of the configured jwt_token lacks a role that may \
         view tables and databases (give it e.g. the DataConsumer role or a ViewAll policy) (server said: {message})"
    )]
    Forbidden {
        /// Request URL.
        url: String,
        /// The server's message.
        message: String,
    },
    /// Any other HTTP error status.
    #[error("OpenMetadata at {url} answered {status}: {message}")]
    Status {
        /// Request URL.
        url: String,
        /// Status.
        status: StatusCode,
        /// The server's message.
        message: String,
        /// `Retry-After` of a 429/503.
        retry_after: Option<Duration>,
    },
    /// No answer (connection refused, timeout, ...).
    #[error("OpenMetadata at {url} cannot be reached: {source}")]
    Transport {
        /// Request URL.
        url: String,
        /// The client error.
        source: reqwest::Error,
    },
    /// The answer is not the expected JSON.
    #[error("OpenMetadata at {url} answered with unexpected JSON: {source}")]
    Decode {
        /// Request URL.
        url: String,
        /// The parse error.
        source: serde_json::Error,
    },
}

impl ClientError {
    /// True when retrying the same request may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            ClientError::Transport { .. } => true,
            _ => false,
        }
    }

    /// True when the producer cannot go on without a configuration change (auth).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            ClientError::Unauthorized { .. }
                | ClientError::Forbidden { .. }
                | ClientError::Config(_)
        )
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The metric label of the error.
    fn class(&self) -> &'static str {
        match self {
            ClientError::Status { status, .. } if *status == StatusCode::TOO_MANY_REQUESTS => "429",
            ClientError::Status { status, .. } if status.is_server_error() => "5xx",
            ClientError::Status { .. }
            | ClientError::Unauthorized { .. }
            | ClientError::Forbidden { .. } => "4xx",
            ClientError::Transport { .. } => "transport",
            ClientError::Decode { .. } | ClientError::Config(_) => "decode",
        }
    }
}

/// Parses a `Retry-After` value: delay seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or_default()
            .min(MAX_RETRY_AFTER),
    )
}

/// A client of one OpenMetadata server.
#[derive(Debug, Clone)]
pub struct OpenMetadataClient {
    http: reqwest::Client,
    base: Url,
    has_token: bool,
    max_retries: usize,
}

impl OpenMetadataClient {
    /// A client for `config.url` with the configured token and timeouts.
    pub fn new(config: &OpenMetadataConfig) -> Result<Self, ClientError> {
        let mut base = Url::parse(&config.url)
            .map_err(|e| ClientError::Config(format!("url {:?}: {e}", config.url)))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let mut headers = HeaderMap::new();
        if let Some(token) = &config.jwt_token {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                .map_err(|_| {
                    ClientError::Config("jwt_token holds characters not allowed in a header".into())
                })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("lineage-bus/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Config(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            has_token: config.jwt_token.is_some(),
            max_retries: config.max_retries,
        })
    }

    /// One page of tables (`include=all`, columns, tags and owners), optionally of one
    /// database, after `cursor`.
    pub(crate) async fn tables_page(
        &self,
        database: Option<&str>,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Page<ApiTable>, ClientError> {
        let mut query = vec![
            ("fields", "columns,tags,owners".to_owned()),
            ("include", "all".to_owned()),
            ("limit", limit.to_string()),
        ];
        if let Some(database) = database {
            query.push(("database", database.to_owned()));
        }
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        self.get_json("api/v1/tables", &query).await
    }

    /// One page of the databases of `service` (`include=all`).
    pub(crate) async fn databases_page(
        &self,
        service: &str,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Page<Database>, ClientError> {
        let mut query = vec![
            ("service", service.to_owned()),
            ("include", "all".to_owned()),
            ("limit", limit.to_string()),
        ];
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        self.get_json("api/v1/databases", &query).await
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ClientError> {
        let mut url = self
            .base
            .join(path)
            .map_err(|e| ClientError::Config(format!("joining {path}: {e}")))?;
        url.query_pairs_mut()
            .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(self.max_retries)
            .with_jitter();
        let body = (|| self.get_once(url.clone()))
            .retry(backoff)
            .when(ClientError::is_retryable)
            .adjust(|e: &ClientError, delay| e.retry_after().or(delay))
            .notify(|e: &ClientError, delay| {
                tracing::warn!(error = %e, ?delay, "openmetadata request failed; retrying");
            })
            .await?;
        serde_json::from_slice(&body).map_err(|source| ClientError::Decode {
            url: url.to_string(),
            source,
        })
    }

    async fn get_once(&self, url: Url) -> Result<Vec<u8>, ClientError> {
        let result = self.request(url).await;
        if let Err(e) = &result {
            METRICS.api_errors.with_label_values(&[e.class()]).inc();
        }
        result
    }

    async fn request(&self, url: Url) -> Result<Vec<u8>, ClientError> {
        let shown = url.to_string();
        let transport = |source| ClientError::Transport {
            url: shown.clone(),
            source,
        };
        let response = self.http.get(url.clone()).send().await.map_err(transport)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response.bytes().await.map_err(transport)?.to_vec());
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or(text);
        Err(match status {
            StatusCode::UNAUTHORIZED => ClientError::Unauthorized {
                url: shown,
                hint: if self.has_token {
                    "the configured [producers.openmetadata] jwt_token was refused (expired, revoked or for another server)"
                } else {
                    "no token configured: set [producers.openmetadata] jwt_token (LINEAGE_BUS__PRODUCERS__OPENMETADATA__JWT_TOKEN) to a bot's JWT"
                },
                message,
            },
            StatusCode::FORBIDDEN => ClientError::Forbidden {
                url: shown,
                message,
            },
            _ => ClientError::Status {
                url: shown,
                status,
                message,
                retry_after,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("99999", now), Some(MAX_RETRY_AFTER));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(12));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(12))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(12));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", SystemTime::now()), None);
    }

    #[test]
    fn which_errors_retry_and_which_stop_the_producer() {
        let status = |s: u16| ClientError::Status {
            url: "u".into(),
            status: StatusCode::from_u16(s).unwrap(),
            message: String::new(),
            retry_after: None,
        };
        assert!(status(503).is_retryable() && status(429).is_retryable());
        assert!(!status(404).is_retryable() && !status(400).is_fatal());
        let unauthorized = ClientError::Unauthorized {
            url: "u".into(),
            hint: "no token configured",
            message: "Not Authorized! Token not present".into(),
        };
        assert!(unauthorized.is_fatal() && !unauthorized.is_retryable());
        assert!(unauthorized.to_string().contains("no token configured"));
    }
}
