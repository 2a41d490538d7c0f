//! The HTTP API: Confluent Schema Registry routes over the [`Store`], errors as
//! `{"error_code": N, "message": "..."}`.
//!
//! Only AVRO schemas are stored; other `schemaType`s and schema references answer 42201.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Query, Request, State as Shared};
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::debug;

use crate::avro::ParsedSchema;
use crate::config::Compatibility;
use crate::error::ApiError;
use crate::metrics::METRICS;
use crate::state::{State, VersionSelector};
use crate::store::Store;

/// Content type of every answer.
const CONTENT_TYPE_V1: &str = "application/vnd.schemaregistry.v1+json";

type Answer = Result<Response, ApiError>;

/// The registry's routes.
pub(crate) fn router(store: Arc<Store>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/schemas/types", get(schema_types))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_of_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_of_id))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(raw_schema),
        )
        .route("/config", get(global_config).put(set_global_config))
        .route(
            "/config/{subject}",
            get(subject_config)
                .put(set_subject_config)
                .delete(delete_subject_config),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_against_level),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_against_version),
        )
        .route_layer(middleware::from_fn(observe))
        .fallback(no_route)
        .with_state(store)
}

/// Query flags Confluent accepts; unknown ones are ignored, as Confluent does.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Flags {
    deleted: bool,
    permanent: bool,
    #[serde(rename = "defaultToGlobal")]
    default_to_global: bool,
    verbose: bool,
}

/// Body of register, lookup and compatibility requests.
#[derive(Debug, Deserialize)]
struct SchemaBody {
    schema: Option<String>,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<serde_json::Value>,
}

/// Body of `PUT /config`.
#[derive(Debug, Deserialize)]
struct ConfigBody {
    #[serde(alias = "compatibilityLevel")]
    compatibility: Option<String>,
}

#[derive(Debug, Serialize)]
struct LevelAnswer {
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: Compatibility,
}

fn reply(body: impl Serialize) -> Response {
    ([(CONTENT_TYPE, CONTENT_TYPE_V1)], Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error_code": self.error_code(), "message": self.to_string()});
        (self.status(), reply(body)).into_response()
    }
}

fn parse_schema(body: &[u8]) -> Result<ParsedSchema, ApiError> {
    let body: SchemaBody =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if let Some(kind) = body.schema_type.filter(|t| !t.eq_ignore_ascii_case("AVRO")) {
        return Err(ApiError::InvalidSchema(format!(
            "schema type {kind} is not supported: this registry stores AVRO schemas only"
        )));
    }
    if !body.references.is_empty() {
        return Err(ApiError::InvalidSchema(
            "schema references are not supported by this registry".to_owned(),
        ));
    }
    let schema = body
        .schema
        .ok_or_else(|| ApiError::InvalidSchema("the request has no schema".to_owned()))?;
    ParsedSchema::parse(&schema)
}

fn parse_id(id: &str) -> Result<u32, ApiError> {
    id.parse()
        .map_err(|_| ApiError::SchemaNotFound(id.to_owned()))
}

fn parse_level(level: Option<String>) -> Result<Compatibility, ApiError> {
    let level = level.unwrap_or_default();
    level
        .parse()
        .map_err(|_| ApiError::InvalidCompatibility(level))
}

// ---- handlers ----

async fn root() -> Response {
    reply(json!({}))
}

async fn schema_types() -> Response {
    reply(["AVRO"])
}

async fn schema_by_id(Shared(store): Shared<Arc<Store>>, Path(id): Path<String>) -> Answer {
    let id = parse_id(&id)?;
    let schema = store.read(|s| s.schema_by_id(id).map(str::to_owned))?;
    Ok(reply(json!({ "schema": schema })))
}

async fn versions_of_id(
    Shared(store): Shared<Arc<Store>>,
    Path(id): Path<String>,
    Query(flags): Query<Flags>,
) -> Answer {
    let id = parse_id(&id)?;
    let versions = store.read(|s| s.versions_of_id(id, flags.deleted))?;
    let versions: Vec<_> = versions
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    Ok(reply(versions))
}

async fn subjects_of_id(
    Shared(store): Shared<Arc<Store>>,
    Path(id): Path<String>,
    Query(flags): Query<Flags>,
) -> Answer {
    let id = parse_id(&id)?;
    let mut subjects: Vec<String> = store
        .read(|s| s.versions_of_id(id, flags.deleted))?
        .into_iter()
        .map(|(subject, _)| subject)
        .collect();
    subjects.dedup();
    Ok(reply(subjects))
}

async fn subjects(Shared(store): Shared<Arc<Store>>, Query(flags): Query<Flags>) -> Response {
    reply(store.read(|s| s.subjects(flags.deleted)))
}

async fn versions(
    Shared(store): Shared<Arc<Store>>,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
) -> Answer {
    Ok(reply(store.read(|s| s.versions(&subject, flags.deleted))?))
}

async fn version(
    Shared(store): Shared<Arc<Store>>,
    Path((subject, version)): Path<(String, String)>,
    Query(flags): Query<Flags>,
) -> Answer {
    let selector: VersionSelector = version.parse()?;
    Ok(reply(
        store.read(|s| s.version(&subject, selector, flags.deleted))?,
    ))
}

async fn raw_schema(
    Shared(store): Shared<Arc<Store>>,
    Path((subject, version)): Path<(String, String)>,
    Query(flags): Query<Flags>,
) -> Answer {
    let selector: VersionSelector = version.parse()?;
    let found = store.read(|s| s.version(&subject, selector, flags.deleted))?;
    Ok(([(CONTENT_TYPE, CONTENT_TYPE_V1)], found.schema).into_response())
}

async fn register(
    Shared(store): Shared<Arc<Store>>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Answer {
    let schema = parse_schema(&body)?;
    // Registering a schema the subject already holds is the common case (every producer does it
    // at start): answer from memory without taking the write lock.
    if let Ok(plan) = store.read(|s| s.plan_register(&subject, &schema))
        && plan.changes.is_empty()
    {
        return Ok(reply(json!({ "id": plan.answer })));
    }
    let id = store.write(|s| s.plan_register(&subject, &schema)).await?;
    Ok(reply(json!({ "id": id })))
}

async fn lookup(
    Shared(store): Shared<Arc<Store>>,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
    body: Bytes,
) -> Answer {
    let schema = parse_schema(&body)?;
    Ok(reply(
        store.read(|s| s.lookup(&subject, &schema, flags.deleted))?,
    ))
}

async fn delete_subject(
    Shared(store): Shared<Arc<Store>>,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
) -> Answer {
    let deleted = store
        .write(|s| s.plan_delete_subject(&subject, flags.permanent))
        .await?;
    Ok(reply(deleted))
}

async fn delete_version(
    Shared(store): Shared<Arc<Store>>,
    Path((subject, version)): Path<(String, String)>,
    Query(flags): Query<Flags>,
) -> Answer {
    let selector: VersionSelector = version.parse()?;
    let deleted = store
        .write(|s| s.plan_delete_version(&subject, selector, flags.permanent))
        .await?;
    Ok(reply(deleted))
}

async fn global_config(Shared(store): Shared<Arc<Store>>) -> Response {
    reply(LevelAnswer {
        compatibility_level: store.read(State::global_level),
    })
}

async fn set_global_config(Shared(store): Shared<Arc<Store>>, body: Bytes) -> Answer {
    set_level(&store, None, &body).await
}

async fn subject_config(
    Shared(store): Shared<Arc<Store>>,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
) -> Answer {
    let level = store.read(|s| match s.subject_level(&subject) {
        Some(level) => Ok(level),
        None if flags.default_to_global => Ok(s.global_level()),
        None => Err(ApiError::SubjectLevelNotConfigured(subject.clone())),
    })?;
    Ok(reply(LevelAnswer {
        compatibility_level: level,
    }))
}

async fn set_subject_config(
    Shared(store): Shared<Arc<Store>>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Answer {
    set_level(&store, Some(&subject), &body).await
}

async fn set_level(store: &Store, subject: Option<&str>, body: &[u8]) -> Answer {
    let body: ConfigBody =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let level = parse_level(body.compatibility)?;
    let level = store
        .write(|_| Ok(State::plan_set_level(subject, level)))
        .await?;
    Ok(reply(json!({ "compatibility": level })))
}

async fn delete_subject_config(
    Shared(store): Shared<Arc<Store>>,
    Path(subject): Path<String>,
) -> Answer {
    let previous = store
        .write(|s| s.plan_delete_subject_level(&subject))
        .await?;
    Ok(reply(LevelAnswer {
        compatibility_level: previous,
    }))
}

async fn check_against_level(
    Shared(store): Shared<Arc<Store>>,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
    body: Bytes,
) -> Answer {
    check(&store, &subject, None, flags.verbose, &body)
}

async fn check_against_version(
    Shared(store): Shared<Arc<Store>>,
    Path((subject, version)): Path<(String, String)>,
    Query(flags): Query<Flags>,
    body: Bytes,
) -> Answer {
    let selector: VersionSelector = version.parse()?;
    check(&store, &subject, Some(selector), flags.verbose, &body)
}

fn check(
    store: &Store,
    subject: &str,
    selector: Option<VersionSelector>,
    verbose: bool,
    body: &[u8],
) -> Answer {
    let schema = parse_schema(body)?;
    let messages = store.read(|s| s.test_compatibility(subject, &schema, selector))?;
    let is_compatible = messages.is_empty();
    Ok(if verbose {
        reply(json!({"is_compatible": is_compatible, "messages": messages}))
    } else {
        reply(json!({ "is_compatible": is_compatible }))
    })
}

async fn no_route(method: Method) -> Response {
    count(&format!("{method} unmatched"), StatusCode::NOT_FOUND);
    ApiError::NoRoute.into_response()
}

/// Counts and logs every routed request.
async fn observe(path: MatchedPath, request: Request, next: Next) -> Response {
    let route = format!("{} {}", request.method(), path.as_str());
    let response = next.run(request).await;
    count(&route, response.status());
    response
}

fn count(route: &str, status: StatusCode) {
    let class = format!("{}xx", status.as_u16() / 100);
    METRICS.requests.with_label_values(&[route, &class]).inc();
    debug!(route, status = status.as_u16(), "schema registry request");
}
