//! What an OpenMetadata answer means for the operation (no IO): done, retry later (and why),
//! or rejected for good.

use std::time::Duration;

use crate::delivery::dead_letter::truncate;
use crate::delivery::retry::{AttemptError, RetryReason, classify_status};
use crate::http;

/// OpenMetadata's `ErrorMessage.message` of an error body, else the body itself (truncated).
pub fn message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| truncate(body, 200))
}

/// Classifies OpenMetadata's answer `status` with `body` to `request` (`PUT http://...`):
/// `None` for success. 404 is a missing reference and 401/403 refused credentials, both
/// retryable (see the module documentation of [`crate::openmetadata`]).
pub fn classify(
    request: &str,
    status: u16,
    retry_after: Option<Duration>,
    body: &str,
) -> Option<AttemptError> {
    let reason = match status {
        404 => Some(RetryReason::MissingReference),
        401 | 403 => Some(RetryReason::Unauthorized),
        _ => None,
    };
    if let Some(reason) = reason {
        return Some(AttemptError::Retryable {
            reason,
            retry_after,
            detail: format!(
                "{request}: OpenMetadata answered {status}: {}",
                message(body)
            ),
        });
    }
    let error = classify_status(status, retry_after)?;
    let summary = message(body);
    Some(http::with_answer(
        error,
        request,
        body.to_owned(),
        &summary,
        |_| format!("OpenMetadata rejected the operation: {summary}"),
    ))
}

#[cfg(test)]
mod tests {
    use lineage_schemas::records::DeadLetterKind;

    use super::*;

    fn reason(error: Option<AttemptError>) -> RetryReason {
        match error {
            Some(AttemptError::Retryable { reason, .. }) => reason,
            other => panic!("not retryable: {other:?}"),
        }
    }

    #[test]
    fn success_is_none() {
        assert_eq!(classify("PUT x", 200, None, ""), None);
        assert_eq!(classify("PUT x", 201, None, "{}"), None);
    }

    #[test]
    fn a_missing_reference_is_retried_with_openmetadatas_message() {
        let body = r#"{"code":404,"message":"pipelineService instance for demo not found"}"#;
        let error = classify("PUT /api/v1/pipelines", 404, None, body);
        let Some(AttemptError::Retryable { detail, .. }) = &error else {
            panic!("{error:?}")
        };
        assert!(
            detail.ends_with("answered 404: pipelineService instance for demo not found"),
            "{detail}"
        );
        assert_eq!(reason(error), RetryReason::MissingReference);
    }

    #[test]
    fn refused_credentials_wait_instead_of_dead_lettering() {
        let body = r#"{"code":401,"message":"Not Authorized! Invalid token"}"#;
        assert_eq!(
            reason(classify("PUT x", 401, None, body)),
            RetryReason::Unauthorized
        );
        assert_eq!(
            reason(classify("PUT x", 403, None, "denied")),
            RetryReason::Unauthorized
        );
    }

    #[test]
    fn server_errors_and_throttling_are_retried_honouring_retry_after() {
        assert_eq!(
            reason(classify("PUT x", 503, None, "")),
            RetryReason::ServerError
        );
        match classify("PUT x", 429, Some(Duration::from_secs(3)), "slow down") {
            Some(AttemptError::Retryable {
                reason: RetryReason::TooManyRequests,
                retry_after: Some(after),
                ..
            }) => assert_eq!(after, Duration::from_secs(3)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_rejected_body_is_permanent_with_status_and_body() {
        let body = r#"{"code":400,"message":"serviceType: must be one of [...]"}"#;
        match classify("PUT /api/v1/services/pipelineServices", 400, None, body) {
            Some(AttemptError::Permanent {
                kind: DeadLetterKind::RejectedByBackend,
                status: Some(400),
                body: Some(kept),
                detail,
            }) => {
                assert_eq!(kept, body);
                assert!(detail.contains("serviceType: must be one of"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn messages_fall_back_to_the_body() {
        assert_eq!(message(r#"{"code":400,"message":"bad"}"#), "bad");
        assert_eq!(message("plain text"), "plain text");
    }
}
