//! The retry policy: which failures are worth retrying, how long to wait before the next
//! attempt (exponential backoff with jitter from `backon`, at least what `Retry-After` asks),
//! and when to give up (never, by default).
//!
//! Retryable: HTTP 5xx, 429 and 408, timeouts and connection errors. Every other 4xx (and any
//! unexpected status) is permanent: the record goes to the dead-letter topic. A destination may
//! classify more as retryable (the OpenMetadata sink: a reference that does not exist yet, a
//! refused token); [`RetryPolicy::with_limit`] bounds how long one reason is retried.

use std::collections::BTreeMap;

use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};
use lineage_schemas::records::DeadLetterKind;

use crate::config::RetryConfig;

/// Why an attempt is worth retrying; a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RetryReason {
    /// HTTP 5xx.
    ServerError,
    /// HTTP 429.
    TooManyRequests,
    /// HTTP 408 or a client-side timeout.
    Timeout,
    /// The connection could not be made or broke.
    Connect,
    /// A local failure that may pass (e.g. a full disk, a Kafka hiccup).
    Io,
    /// The record refers to an entity the backend does not have yet (written by another
    /// record, maybe on another partition).
    MissingReference,
    /// The backend refused the credentials (401/403): a configuration problem, not the
    /// record's, so the record waits instead of being dead-lettered.
    Unauthorized,
}

impl RetryReason {
    /// The metric label.
    pub fn as_label(self) -> &'static str {
        match self {
            RetryReason::ServerError => "server_error",
            RetryReason::TooManyRequests => "too_many_requests",
            RetryReason::Timeout => "timeout",
            RetryReason::Connect => "connect",
            RetryReason::Io => "io",
            RetryReason::MissingReference => "missing_reference",
            RetryReason::Unauthorized => "unauthorized",
        }
    }

    /// The dead letter's kind when retrying for this reason gives up.
    pub fn give_up_kind(self) -> DeadLetterKind {
        match self {
            RetryReason::MissingReference => DeadLetterKind::Unresolvable,
            _ => DeadLetterKind::Other,
        }
    }
}

/// How one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptError {
    /// Try again later.
    Retryable {
        /// Why.
        reason: RetryReason,
        /// The backend's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
        /// What happened, for logs.
        detail: String,
    },
    /// Retrying cannot help: dead-letter the record.
    Permanent {
        /// The dead letter's kind (rejected by the backend, malformed input, ...).
        kind: DeadLetterKind,
        /// The backend's status, when it answered.
        status: Option<u16>,
        /// The backend's answer (truncated), when it answered.
        body: Option<String>,
        /// What happened, naming the input.
        detail: String,
    },
}

/// Classifies an HTTP status: `None` for success, else the failure (without a body yet).
pub fn classify_status(status: u16, retry_after: Option<Duration>) -> Option<AttemptError> {
    let reason = match status {
        200..=299 => return None,
        408 => RetryReason::Timeout,
        429 => RetryReason::TooManyRequests,
        500..=599 => RetryReason::ServerError,
        _ => {
            return Some(AttemptError::Permanent {
                kind: DeadLetterKind::RejectedByBackend,
                status: Some(status),
                body: None,
                detail: format!("the backend answered {status}"),
            });
        }
    };
    Some(AttemptError::Retryable {
        reason,
        retry_after,
        detail: format!("the backend answered {status}"),
    })
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date (relative to `now`; a date in
/// the past means "now"). `None` when it is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The retry policy of one sink.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    config: RetryConfig,
    limits: BTreeMap<RetryReason, Duration>,
}

impl RetryPolicy {
    /// A policy from `[…retry]`.
    pub fn new(config: RetryConfig) -> Self {
        Self {
            config,
            limits: BTreeMap::new(),
        }
    }

    /// Gives up on a record once failures for `reason` alone waited more than `limit` (besides
    /// `max_elapsed`, which counts every wait).
    #[must_use]
    pub fn with_limit(mut self, reason: RetryReason, limit: Duration) -> Self {
        self.limits.insert(reason, limit);
        self
    }

    /// The schedule of one record's retries.
    pub fn schedule(&self) -> RetrySchedule {
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.config.initial_backoff)
            .with_max_delay(self.config.max_backoff)
            .without_max_times()
            .build();
        RetrySchedule {
            backoff: Box::new(backoff),
            max_elapsed: self.config.max_elapsed,
            max_retry_after: self.config.max_retry_after,
            limits: self
                .limits
                .iter()
                .map(|(&reason, &limit)| (reason, (limit, Duration::ZERO)))
                .collect(),
            waited: Duration::ZERO,
        }
    }
}

/// The delays between one record's attempts.
pub struct RetrySchedule {
    backoff: Box<dyn Iterator<Item = Duration> + Send>,
    max_elapsed: Option<Duration>,
    max_retry_after: Duration,
    /// Per reason: the limit and how long failures for it waited so far.
    limits: BTreeMap<RetryReason, (Duration, Duration)>,
    waited: Duration,
}

impl std::fmt::Debug for RetrySchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetrySchedule")
            .field("waited", &self.waited)
            .field("max_elapsed", &self.max_elapsed)
            .finish_non_exhaustive()
    }
}

impl RetrySchedule {
    /// The wait before the next attempt after a failure for `reason` that asked for
    /// `retry_after`; `None` when the policy gives up.
    pub fn next_delay(
        &mut self,
        reason: RetryReason,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let backoff = self.backoff.next()?;
        let delay = match retry_after {
            Some(asked) => asked.min(self.max_retry_after),
            None => backoff,
        };
        if let Some(max) = self.max_elapsed
            && self.waited + delay > max
        {
            return None;
        }
        if let Some((limit, waited)) = self.limits.get_mut(&reason) {
            if *waited + delay > *limit {
                return None;
            }
            *waited += delay;
        }
        self.waited += delay;
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_elapsed: Option<Duration>) -> RetryPolicy {
        RetryPolicy::new(RetryConfig {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            max_elapsed,
            max_retry_after: Duration::from_secs(60),
        })
    }

    #[test]
    fn statuses_are_classified_like_the_issue_says() {
        assert_eq!(classify_status(201, None), None);
        assert_eq!(classify_status(200, None), None);
        for (status, reason) in [
            (500, RetryReason::ServerError),
            (503, RetryReason::ServerError),
            (429, RetryReason::TooManyRequests),
            (408, RetryReason::Timeout),
        ] {
            match classify_status(status, None) {
                Some(AttemptError::Retryable { reason: r, .. }) => assert_eq!(r, reason),
                other => panic!("{status}: {other:?}"),
            }
        }
        for status in [400, 401, 403, 404, 409, 413, 415, 422, 302] {
            assert!(
                matches!(
                    classify_status(status, None),
                    Some(AttemptError::Permanent { status: Some(s), .. }) if s == status
                ),
                "{status} must be permanent"
            );
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        // A date already past: retry now.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn backoff_grows_with_jitter_within_bounds_and_never_gives_up_by_default() {
        let mut schedule = policy(None).schedule();
        let delays: Vec<Duration> = (0..200)
            .map(|_| schedule.next_delay(RetryReason::ServerError, None).unwrap())
            .collect();
        assert!(delays[0] >= Duration::from_millis(100) && delays[0] < Duration::from_millis(200));
        // Capped at max_backoff; backon's jitter adds up to 100% of the current delay.
        assert!(
            delays.iter().all(|d| *d < Duration::from_secs(4)),
            "{delays:?}"
        );
        assert!(
            delays.windows(2).any(|w| w[0] != w[1]),
            "jitter varies the delays"
        );
        assert!(delays[199] >= Duration::from_secs(2));
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let mut schedule = policy(None).schedule();
        assert_eq!(
            schedule.next_delay(RetryReason::TooManyRequests, Some(Duration::from_secs(7))),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            schedule.next_delay(
                RetryReason::TooManyRequests,
                Some(Duration::from_secs(3600))
            ),
            Some(Duration::from_secs(60))
        );
        // Retry-After 0 means at once.
        assert_eq!(
            schedule.next_delay(RetryReason::TooManyRequests, Some(Duration::ZERO)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn max_elapsed_gives_up() {
        let mut schedule = policy(Some(Duration::from_secs(3))).schedule();
        let mut total = Duration::ZERO;
        while let Some(delay) = schedule.next_delay(RetryReason::ServerError, None) {
            total += delay;
        }
        assert!(total <= Duration::from_secs(3), "{total:?}");
        assert!(total >= Duration::from_secs(1), "{total:?}");
    }

    #[test]
    fn a_reason_limit_gives_up_on_that_reason_only() {
        let mut schedule = policy(None)
            .with_limit(RetryReason::MissingReference, Duration::from_secs(1))
            .schedule();
        // Other reasons wait past the limit without giving up.
        for _ in 0..5 {
            assert!(schedule.next_delay(RetryReason::Connect, None).is_some());
        }
        let mut missing = Duration::ZERO;
        while let Some(delay) = schedule.next_delay(RetryReason::MissingReference, None) {
            missing += delay;
        }
        assert!(missing <= Duration::from_secs(1), "{missing:?}");
        assert_eq!(
            RetryReason::MissingReference.give_up_kind(),
            DeadLetterKind::Unresolvable
        );
        assert_eq!(RetryReason::Connect.give_up_kind(), DeadLetterKind::Other);
    }
}
