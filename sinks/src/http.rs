//! What every HTTP destination shares: the client (timeout, TLS), reading a bounded response
//! body, `Retry-After`, and classifying transport errors.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Certificate, Client, RequestBuilder, Response};
use secrecy::{ExposeSecret, SecretString};

use crate::config::TlsConfig;
use crate::delivery::retry::{AttemptError, RetryReason, parse_retry_after};
use crate::error::SinkError;

/// An HTTP client with `timeout` (per request and for connecting) and the `tls` settings;
/// `url` names the backend in errors and logs.
pub fn client(timeout: Duration, tls: &TlsConfig, url: &str) -> Result<Client, SinkError> {
    let mut builder = Client::builder().timeout(timeout).connect_timeout(timeout);
    if let Some(path) = &tls.ca_file {
        let pem = std::fs::read(path).map_err(|source| SinkError::File {
            what: "reading the CA file",
            path: path.display().to_string(),
            source,
        })?;
        let ca = Certificate::from_pem(&pem).map_err(|e| SinkError::HttpClient {
            url: url.to_owned(),
            reason: format!("CA file {}: {e}", path.display()),
        })?;
        builder = builder.add_root_certificate(ca);
    }
    if tls.insecure_skip_verify {
        tracing::warn!(url, "TLS certificate verification is off");
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| SinkError::HttpClient {
        url: url.to_owned(),
        reason: e.to_string(),
    })
}

/// How long a readiness probe waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// True when `request` gets any HTTP answer within 5 s (whatever its status): the backend is
/// reachable.
pub async fn answers(request: RequestBuilder) -> bool {
    request.timeout(PROBE_TIMEOUT).send().await.is_ok()
}

/// `Bearer <token>` as a sensitive header value (hidden in `Debug` output); `what` names the
/// token and `url` the backend in the error when it is not a valid header value.
pub fn bearer(token: &SecretString, what: &str, url: &str) -> Result<HeaderValue, SinkError> {
    let mut value =
        HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).map_err(|_| {
            SinkError::HttpClient {
                url: url.to_owned(),
                reason: format!("{what} is not a valid header value"),
            }
        })?;
    value.set_sensitive(true);
    Ok(value)
}

/// The `Retry-After` of an answer, when it has a valid one.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// Reads at most about `max` bytes of the answer (lossy UTF-8).
pub async fn read_body(mut response: Response, max: usize) -> String {
    let mut body = Vec::new();
    while body.len() <= max {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// Completes an error of [`crate::delivery::retry::classify_status`] with the answer to
/// `request` (`POST http://...`): a permanent one keeps `body` and its detail becomes
/// `rejected(detail)`; a retryable one's detail ends with `summary` (of the body).
pub fn with_answer(
    error: AttemptError,
    request: &str,
    body: String,
    summary: &str,
    rejected: impl FnOnce(String) -> String,
) -> AttemptError {
    match error {
        AttemptError::Permanent {
            kind,
            status,
            detail,
            ..
        } => AttemptError::Permanent {
            kind,
            status,
            body: Some(body),
            detail: format!("{request}: {}", rejected(detail)),
        },
        AttemptError::Retryable {
            reason,
            retry_after,
            detail,
        } => AttemptError::Retryable {
            reason,
            retry_after,
            detail: format!("{request}: {detail}: {summary}"),
        },
    }
}

/// Classifies a transport error of `request` (`POST http://...`): a timeout or a connection
/// failure, both retryable.
pub fn transport_error(request: &str, error: &reqwest::Error) -> AttemptError {
    let reason = if error.is_timeout() {
        RetryReason::Timeout
    } else {
        RetryReason::Connect
    };
    AttemptError::Retryable {
        reason,
        retry_after: None,
        detail: format!("{request}: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values_are_sensitive_and_checked() {
        let token = SecretString::from("s3cret".to_owned());
        let value = bearer(&token, "the JWT", "http://om").unwrap();
        assert_eq!(value, "Bearer s3cret");
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("s3cret"));
        let bad = SecretString::from("line\nbreak".to_owned());
        let error = bearer(&bad, "the API key", "http://m").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("the API key is not a valid header value"),
            "{error}"
        );
    }
}
