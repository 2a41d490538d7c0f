//! The OpenMetadata REST client: paged listings, tables by id and change events, with bearer
//! auth, timeouts, and retries with exponential backoff and jitter on 5xx, 429 (honouring
//! `Retry-After`) and transport errors.

use std::sync::Arc;
use std::time::Duration;

use backon::Retryable;
use reqwest::header::{AUTHORIZATION, HeaderMap};
use reqwest::{StatusCode, Url};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::config::OpenMetadataConfig;
use super::events::{ChangeEvent, EventList};
use super::metrics::METRICS;
use super::snapshot::{ApiTable, Database, Page};
use crate::http_client;

/// The first retry's delay; each further one doubles (up to 30 s), and a random jitter adds up
/// to as much again.
pub const RETRY_MIN_DELAY: Duration = Duration::from_millis(200);
/// The longest delay between two retries (without `Retry-After`).
const RETRY_MAX_DELAY: Duration = Duration::from_secs(30);

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
    /// 403: the token's principal lacks a permission.
    #[error(
        "OpenMetadata at {url} answered 403 Forbidden: the bot of the configured jwt_token lacks the permission \
         to {permission} (give it e.g. the DataConsumer role or a ViewAll policy) (server said: {message})"
    )]
    Forbidden {
        /// Request URL.
        url: String,
        /// The permission missing, e.g. `view tables (ViewBasic on table)`.
        permission: &'static str,
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

/// The permission a GET of `path` needs, for the 403 message.
fn permission_of(path: &str) -> &'static str {
    if path.contains("/api/v1/events") {
        "read change events (GET /api/v1/events; ViewAll on the event resources)"
    } else if path.contains("/api/v1/databases") {
        "view databases (ViewBasic on database)"
    } else {
        "view tables with their columns, tags and owners (ViewBasic on table)"
    }
}

/// A client of one OpenMetadata server.
#[derive(Debug, Clone)]
pub struct OpenMetadataClient {
    http: reqwest::Client,
    base: Url,
    has_token: bool,
    max_retries: usize,
    /// Set to false when OpenMetadata cannot be reached or answers 5xx.
    ready: Option<Arc<watch::Sender<bool>>>,
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
            let value = http_client::secret_header(&format!("Bearer {}", token.expose_secret()))
                .map_err(|_| {
                    ClientError::Config("jwt_token holds characters not allowed in a header".into())
                })?;
            headers.insert(AUTHORIZATION, value);
        }
        let http = http_client::build(headers, config.request_timeout)
            .map_err(|e| ClientError::Config(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            has_token: config.jwt_token.is_some(),
            max_retries: config.max_retries,
            ready: None,
        })
    }

    /// Reports every failure to reach OpenMetadata (transport errors, 5xx) as not ready on
    /// `ready`, at once (not after the retries).
    pub fn with_readiness(mut self, ready: Arc<watch::Sender<bool>>) -> Self {
        self.ready = Some(ready);
        self
    }

    /// The table events since `since_ms` (inclusive, OpenMetadata's `timestamp` parameter),
    /// oldest first: creations, updates, restores, soft and hard deletions.
    pub async fn events(&self, since_ms: i64) -> Result<Vec<ChangeEvent>, ClientError> {
        let query = [
            ("entityCreated", "table".to_owned()),
            ("entityUpdated", "table".to_owned()),
            ("entityRestored", "table".to_owned()),
            ("entityDeleted", "table".to_owned()),
            ("timestamp", since_ms.max(0).to_string()),
        ];
        let mut events = self
            .get_json::<EventList>("api/v1/events", &query)
            .await?
            .data;
        // OpenMetadata sorts them; a stable sort keeps the order of equal timestamps.
        events.sort_by_key(|e| e.timestamp);
        Ok(events)
    }

    /// The table `id` with columns, tags and owners, deleted or not; `None` when it does not
    /// exist (hard-deleted).
    pub(crate) async fn table_by_id(&self, id: &str) -> Result<Option<ApiTable>, ClientError> {
        let query = [
            ("fields", "columns,tags,owners".to_owned()),
            ("include", "all".to_owned()),
        ];
        let path = format!("api/v1/tables/{id}");
        match self.get_json(&path, &query).await {
            Ok(table) => Ok(Some(table)),
            Err(ClientError::Status { status, .. }) if status == StatusCode::NOT_FOUND => Ok(None),
            Err(e) => Err(e),
        }
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
        let backoff = http_client::backoff(RETRY_MIN_DELAY, RETRY_MAX_DELAY, self.max_retries);
        let body = (|| self.get_once(url.clone()))
            .retry(backoff)
            .when(ClientError::is_retryable)
            // `Retry-After` replaces the backoff's delay, within the retry budget
            .adjust(|e: &ClientError, delay| delay.map(|d| e.retry_after().unwrap_or(d)))
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
        match &result {
            Ok(_) => METRICS.reachable.set(1),
            Err(e) => {
                METRICS.api_errors.with_label_values(&[e.class()]).inc();
                if matches!(e.class(), "transport" | "5xx") {
                    METRICS.reachable.set(0);
                    if let Some(ready) = &self.ready {
                        ready.send_replace(false);
                    }
                }
            }
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
        let retry_after = http_client::retry_after(response.headers());
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
                permission: permission_of(url.path()),
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
    use super::*;

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
        let forbidden = ClientError::Forbidden {
            url: "u".into(),
            permission: permission_of("/api/v1/events"),
            message: String::new(),
        };
        assert!(forbidden.is_fatal() && forbidden.to_string().contains("read change events"));
        assert!(permission_of("/api/v1/tables/x").contains("view tables"));
    }
}
