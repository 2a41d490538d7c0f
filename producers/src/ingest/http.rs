//! The HTTP side: routing as Dagster's webserver routes (Starlette: the path is
//! percent-decoded before matching, `/report_asset_*/{asset_key:path}` accepts only POST),
//! the optional token, the body limit, and the answers: 200 `{}` only once Kafka
//! acknowledged the record, 400 `{"error": ...}` and 500 `Internal Server Error` as Dagster
//! gives them, 503 `{"error": ...}` when Kafka did not take the record.
//!
//! Where Dagster's webserver also serves its UI (GET and HEAD of any path answer the UI's
//! HTML page, 200), `ingest` has no UI: GET and HEAD of a report route answer 405, of any
//! other path 404.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lineage_bus_core::clock::now_ms;
use lineage_schemas::RecordCodec;
use lineage_schemas::records::DagsterEvent;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use secrecy::{ExposeSecret, SecretString};

use super::metrics::METRICS;
use super::report::{self, Endpoint, Refusal, ReportRequest};

/// What every request handler shares.
pub(crate) struct App {
    /// Tenant on every record.
    pub tenant: String,
    /// Required token, if any.
    pub api_token: Option<SecretString>,
    /// Prefix before the routes (no trailing slash), possibly empty.
    pub path_prefix: String,
    /// Largest body.
    pub max_body_size: usize,
    /// Events topic.
    pub topic: String,
    /// The idempotent producer.
    pub producer: FutureProducer,
    /// Avro codec of the events topic.
    pub codec: RecordCodec<DagsterEvent>,
    /// How long to wait for librdkafka's queue when it is full.
    pub queue_timeout: std::time::Duration,
}

/// Every request lands here (axum's fallback): the routing is Dagster's, done by hand.
pub(crate) async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    let started = Instant::now();
    let path = unquote(request.uri().path());
    let endpoint = path
        .strip_prefix(app.path_prefix.as_str())
        .and_then(|path| {
            Endpoint::ALL
                .into_iter()
                .find_map(|e| path.strip_prefix(e.prefix()).map(|key| (e, key.to_owned())))
        });
    let label = endpoint.as_ref().map_or("other", |(e, _)| e.label());
    let response = match endpoint {
        None => not_routed(request.method()),
        Some(_) if request.method() != Method::POST => method_not_allowed("POST"),
        Some((endpoint, path_key)) => report(&app, endpoint, &path_key, request).await,
    };
    METRICS
        .requests
        .with_label_values(&[label, response.status().as_str()])
        .inc();
    METRICS
        .duration
        .with_label_values(&[label])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Paths that are no report route.
fn not_routed(method: &Method) -> Response {
    if method == Method::GET || method == Method::HEAD {
        return plain(StatusCode::NOT_FOUND, "Not Found");
    }
    // Dagster's catch-all UI route takes only GET and HEAD.
    method_not_allowed("HEAD, GET")
}

async fn report(app: &App, endpoint: Endpoint, path_key: &str, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if !authorized(app.api_token.as_ref(), &parts.headers) {
        return json_error(
            StatusCode::UNAUTHORIZED,
            "Not authorized to report runless asset events.",
        );
    }
    let body = match axum::body::to_bytes(body, app.max_body_size).await {
        Ok(body) => body,
        Err(_) => {
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("Request body larger than {} bytes.", app.max_body_size),
            );
        }
    };
    let request = ReportRequest {
        path_key,
        query: parts.uri.query().map(parse_query).unwrap_or_default(),
        // Starlette decodes header values as latin-1.
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes().iter().map(|&b| char::from(b)).collect()),
        body: &body,
    };
    let report = match report::read(endpoint, &request) {
        Ok(report) => report,
        Err(Refusal::BadRequest(message)) => {
            return json_error(StatusCode::BAD_REQUEST, &message);
        }
        Err(Refusal::Internal) => {
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
    };
    let event = report.into_event(&app.tenant, now_ms());
    match publish(app, &event).await {
        Ok(()) => json_response(StatusCode::OK, "{}".to_owned()),
        Err(error) => {
            METRICS.publish_failures.inc();
            tracing::warn!(%error, key = event.kafka_key(), "report not published");
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("The event was not stored: {error}"),
            )
        }
    }
}

/// Encodes and sends `event`, returning once Kafka acknowledged it (acks=all).
async fn publish(app: &App, event: &DagsterEvent) -> Result<(), String> {
    let value = app.codec.encode(event).map_err(|e| e.to_string())?;
    let key = event.kafka_key();
    app.producer
        .send(
            FutureRecord::to(&app.topic).key(&key).payload(&value),
            Timeout::After(app.queue_timeout),
        )
        .await
        .map(|_| ())
        .map_err(|(error, _)| format!("kafka: {error}"))
}

/// With a token configured, the request must carry it (`Dagster-Cloud-Api-Token`, as
/// Dagster+ expects, or `Authorization: Bearer`).
fn authorized(token: Option<&SecretString>, headers: &HeaderMap) -> bool {
    let Some(token) = token else {
        return true;
    };
    let expected = token.expose_secret().as_bytes();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    let given = headers
        .get("dagster-cloud-api-token")
        .map(HeaderValue::as_bytes)
        .or(bearer);
    given.is_some_and(|given| constant_time_eq(given, expected))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn json_error(status: StatusCode, message: &str) -> Response {
    // Starlette's JSONResponse: compact, non-ASCII kept.
    let body = serde_json::json!({ "error": message }).to_string();
    json_response(status, body)
}

fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        Body::from(text),
    )
        .into_response()
}

fn method_not_allowed(allow: &'static str) -> Response {
    let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// Python's `urllib.parse.unquote`: `%XX` escapes decoded as UTF-8 (invalid sequences
/// replaced), malformed escapes kept as they are.
fn unquote(text: &str) -> String {
    if !text.contains('%') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let hex = |at: usize| bytes.get(at).and_then(|&b| char::from(b).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2))
        {
            // Two hex digits make a byte: 0..=255.
            out.push(u8::try_from(high * 16 + low).unwrap_or(u8::MAX));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Starlette's query parameters: `parse_qsl(query, keep_blank_values=True)`.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                unquote(&name.replace('+', " ")),
                unquote(&value.replace('+', " ")),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_queries_decode_as_starlette_does() {
        assert_eq!(unquote("/a%2Fb/%C3%A9/%zz/%4"), "/a/b/é/%zz/%4");
        assert_eq!(unquote("/%ff"), "/\u{fffd}");
        assert_eq!(
            parse_query("a=1&&b&c=x+y%2B&a=2"),
            [
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), String::new()),
                ("c".to_owned(), "x y+".to_owned()),
                ("a".to_owned(), "2".to_owned()),
            ]
        );
    }

    #[test]
    fn tokens_are_checked_when_configured() {
        let token = SecretString::from("s3cret");
        let mut headers = HeaderMap::new();
        assert!(authorized(None, &headers));
        assert!(!authorized(Some(&token), &headers));
        headers.insert(
            "Dagster-Cloud-Api-Token",
            HeaderValue::from_static("s3cret"),
        );
        assert!(authorized(Some(&token), &headers));
        let mut bearer = HeaderMap::new();
        bearer.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(authorized(Some(&token), &bearer));
        bearer.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cre"),
        );
        assert!(!authorized(Some(&token), &bearer));
    }
}
