//! The OpenMetadata client against a local HTTP server (wiremock) that fails on purpose: 5xx
//! and 429 are retried with exponential backoff (`Retry-After` honoured in place of the
//! backoff, within the retry budget), 401 and 403 fail at once with an error naming what is
//! missing. Attempts are counted and the delays between them measured.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lineage_producers::openmetadata::client::RETRY_MIN_DELAY;
use lineage_producers::openmetadata::{ClientError, OpenMetadataClient, OpenMetadataConfig};
use secrecy::SecretString;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const EVENTS: &str = r#"{"data": [{"eventType": "entityCreated", "entityType": "table",
  "entityId": "5d1c8e2a-0000-4000-8000-000000000001", "entityFullyQualifiedName": "pg.d.s.t",
  "currentVersion": 0.1, "timestamp": 1700000000000}], "paging": {"total": 1}}"#;

/// Answers with `script` in order (the last one repeats) and records when each request came.
#[derive(Clone)]
struct Script {
    script: Vec<ResponseTemplate>,
    at: Arc<Mutex<Vec<Instant>>>,
}

impl Script {
    fn new(script: Vec<ResponseTemplate>) -> Self {
        Self {
            script,
            at: Arc::default(),
        }
    }

    /// The delays between consecutive attempts.
    fn delays(&self) -> Vec<Duration> {
        let at = self.at.lock().unwrap();
        at.windows(2).map(|w| w[1] - w[0]).collect()
    }

    fn attempts(&self) -> usize {
        self.at.lock().unwrap().len()
    }
}

impl Respond for Script {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut at = self.at.lock().unwrap();
        at.push(Instant::now());
        let i = (at.len() - 1).min(self.script.len() - 1);
        self.script[i].clone()
    }
}

async fn serve(script: &Script) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/events"))
        .and(query_param("entityDeleted", "table"))
        .respond_with(script.clone())
        .mount(&server)
        .await;
    server
}

fn client(server: &MockServer, token: Option<&str>, max_retries: usize) -> OpenMetadataClient {
    let config = OpenMetadataConfig {
        url: server.uri(),
        jwt_token: token.map(|t| SecretString::from(t.to_owned())),
        max_retries,
        request_timeout: Duration::from_secs(5),
        ..OpenMetadataConfig::default()
    };
    OpenMetadataClient::new(&config).unwrap()
}

fn status(code: u16) -> ResponseTemplate {
    ResponseTemplate::new(code).set_body_raw(
        format!(r#"{{"code":{code},"message":"m{code}"}}"#),
        "application/json",
    )
}

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(EVENTS, "application/json")
}

/// The bounds of the n-th backoff delay (from 0): min·2ⁿ plus a jitter of up to as much again
/// (plus scheduling slack).
fn backoff(n: u32) -> (Duration, Duration) {
    let base = RETRY_MIN_DELAY * 2u32.pow(n);
    (base, base * 2 + Duration::from_millis(300))
}

#[tokio::test]
async fn server_errors_are_retried_with_exponential_backoff() {
    let script = Script::new(vec![status(503), status(500), status(502), ok()]);
    let server = serve(&script).await;
    let events = client(&server, Some("t"), 8).events(0).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(script.attempts(), 4);
    for (n, delay) in script.delays().into_iter().enumerate() {
        let (low, high) = backoff(n as u32);
        assert!(
            low <= delay && delay <= high,
            "delay {n}: {delay:?} not in {low:?}..{high:?}"
        );
    }
}

#[tokio::test]
async fn too_many_requests_waits_as_long_as_retry_after_says() {
    let script = Script::new(vec![
        status(429).insert_header("Retry-After", "1"),
        status(503).insert_header("Retry-After", "2"),
        ok(),
    ]);
    let server = serve(&script).await;
    client(&server, Some("t"), 8).events(0).await.unwrap();
    assert_eq!(script.attempts(), 3);
    let delays = script.delays();
    // Retry-After replaces the backoff (200 ms, 400 ms)
    for (delay, want) in delays.iter().zip([1, 2]) {
        let want = Duration::from_secs(want);
        assert!(
            want <= *delay && *delay <= want + Duration::from_millis(500),
            "{delays:?}"
        );
    }
}

#[tokio::test]
async fn retries_stop_after_max_retries_even_with_retry_after() {
    for (first, max_retries) in [
        (status(503), 2),
        (status(429).insert_header("Retry-After", "0"), 3),
    ] {
        let script = Script::new(vec![first]);
        let server = serve(&script).await;
        let error = client(&server, Some("t"), max_retries)
            .events(0)
            .await
            .unwrap_err();
        assert!(
            matches!(error, ClientError::Status { .. }) && error.is_retryable(),
            "{error}"
        );
        assert_eq!(script.attempts(), max_retries + 1, "{error}");
    }
}

#[tokio::test]
async fn unauthorized_and_forbidden_fail_at_once_naming_what_is_missing() {
    let cases = [
        (
            None,
            401,
            "no token configured: set [producers.openmetadata] jwt_token",
        ),
        (
            Some("expired"),
            401,
            "the configured [producers.openmetadata] jwt_token was refused",
        ),
        (
            Some("viewer"),
            403,
            "lacks the permission to read change events",
        ),
    ];
    for (token, code, expected) in cases {
        let script = Script::new(vec![status(code)]);
        let server = serve(&script).await;
        let error = client(&server, token, 8).events(0).await.unwrap_err();
        let text = error.to_string();
        assert!(error.is_fatal() && !error.is_retryable(), "{text}");
        assert!(
            text.contains(expected) && text.contains(&format!("m{code}")),
            "{text}"
        );
        assert_eq!(script.attempts(), 1, "{text}");
    }
}

#[tokio::test]
async fn an_unreachable_server_is_retried_then_reported() {
    // a port nothing listens on (wiremock keeps its servers listening in a pool)
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = OpenMetadataConfig {
        url: format!("http://127.0.0.1:{port}"),
        max_retries: 2,
        ..OpenMetadataConfig::default()
    };
    let client = OpenMetadataClient::new(&config).unwrap();
    let started = Instant::now();
    let error = client.events(0).await.unwrap_err();
    assert!(matches!(error, ClientError::Transport { .. }), "{error}");
    assert!(error.to_string().contains("cannot be reached"), "{error}");
    // two retries: at least 200 ms + 400 ms of backoff
    assert!(started.elapsed() >= backoff(0).0 + backoff(1).0);
}
