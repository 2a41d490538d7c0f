//! The OpenMetadata destination: decodes an operation, resolves the ids it needs, sends its
//! `PUT` and classifies the answer ([`super::classify`]).

use std::sync::Arc;
use std::time::Duration;

use lineage_schemas::RecordCodec;
use lineage_schemas::openmetadata_rest::{self, EntityRef, EntityType, RestRequest};
use lineage_schemas::records::{AddLineage, DeadLetterKind, OpenMetadataOperation, Operation};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Client, Method};
use secrecy::SecretString;

use crate::config::OpenMetadataSinkConfig;
use crate::delivery::retry::{AttemptError, RetryReason};
use crate::delivery::{Destination, SinkRecord};
use crate::error::SinkError;
use crate::http;
use crate::openmetadata::classify::classify;
use crate::openmetadata::resolve::{self, EntityCache, Resolved};

/// Writes operations to OpenMetadata.
pub struct OpenMetadataDestination {
    client: Client,
    base: String,
    headers: HeaderMap,
    codec: Arc<RecordCodec<OpenMetadataOperation>>,
    cache: EntityCache,
    max_body: usize,
}

impl std::fmt::Debug for OpenMetadataDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenMetadataDestination")
            .field("base", &self.base)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// The references of an operation that exist: each with what is known and whether it came
/// from the cache.
type Found = Vec<(EntityRef, Resolved, bool)>;

/// An answer read whole (bounded).
struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    body: String,
}

impl OpenMetadataDestination {
    /// The destination of `config`, decoding with `codec` (shared by the tenants' routes).
    pub fn new(
        config: &OpenMetadataSinkConfig,
        codec: Arc<RecordCodec<OpenMetadataOperation>>,
    ) -> Result<Self, SinkError> {
        let client = http::client(config.timeout, &config.tls, &config.url)?;
        Ok(Self {
            client,
            base: config.url.trim_end_matches('/').to_owned(),
            headers: headers(config.jwt_token.as_ref(), &config.url)?,
            codec,
            cache: EntityCache::new(config.entity_cache_size),
            max_body: config.max_response_body,
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, AttemptError> {
        let url = format!("{}{path}", self.base);
        let described = format!("{method} {url}");
        let mut request = self
            .client
            .request(method, &url)
            .headers(self.headers.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| http::transport_error(&described, &e))?;
        let status = response.status().as_u16();
        let retry_after = http::retry_after(response.headers());
        let body = http::read_body(response, self.max_body).await;
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }

    /// `entity`, cached (`true`) or looked up; `None` when OpenMetadata has no such entity.
    async fn lookup(&self, entity: &EntityRef) -> Result<Option<(Resolved, bool)>, AttemptError> {
        if let Some(resolved) = self.cache.get(entity) {
            return Ok(Some((resolved, true)));
        }
        let path = resolve::lookup_path(entity);
        let answer = self.send(Method::GET, &path, None).await?;
        if answer.status == 404 {
            return Ok(None);
        }
        if let Some(error) = classify(
            &format!("GET {path}"),
            answer.status,
            answer.retry_after,
            &answer.body,
        ) {
            return Err(error);
        }
        let resolved =
            resolve::resolved_in(&answer.body).ok_or_else(|| AttemptError::Retryable {
                reason: RetryReason::ServerError,
                retry_after: None,
                detail: format!("GET {path}: the answer has no entity id"),
            })?;
        self.cache.insert(entity.clone(), resolved.clone());
        Ok(Some((resolved, false)))
    }

    /// Every reference of an operation that exists; waits (retryably) for a missing required
    /// one.
    async fn resolve(&self, references: &[EntityRef]) -> Result<Found, AttemptError> {
        let mut found = Vec::with_capacity(references.len());
        for entity in references {
            match self.lookup(entity).await? {
                Some((resolved, cached)) => found.push((entity.clone(), resolved, cached)),
                None if resolve::required(entity) => {
                    return Err(AttemptError::Retryable {
                        reason: RetryReason::MissingReference,
                        retry_after: None,
                        detail: format!(
                            "{} {} does not exist in OpenMetadata yet",
                            entity.entity_type.as_str(),
                            entity.name
                        ),
                    });
                }
                None => {
                    tracing::debug!(entity = %entity.name, kind = entity.entity_type.as_str(), "unknown owner left out");
                }
            }
        }
        Ok(found)
    }

    /// Leaves out the column pairs of `edge` naming columns its tables lack, looking the
    /// tables up again first when their columns came from the cache (they may have changed).
    async fn prune_columns(
        &self,
        edge: &mut AddLineage,
        references: &[EntityRef],
        found: &mut Found,
    ) -> Result<(), AttemptError> {
        if edge.columns.is_empty() {
            return Ok(());
        }
        let columns = |found: &Found, fqn: &str| {
            found
                .iter()
                .find(|(e, _, _)| e.entity_type == EntityType::Table && e.name == fqn)
                .map(|(_, resolved, _)| resolved.columns.clone())
                .unwrap_or_default()
        };
        let mut pruned = edge.clone();
        let from = columns(found, &edge.from_table_fqn);
        let to = columns(found, &edge.to_table_fqn);
        let mut dropped = resolve::prune_columns(&mut pruned, &from, &to);
        if !dropped.is_empty() && found.iter().any(|(_, _, cached)| *cached) {
            self.cache.invalidate(references);
            *found = self.resolve(references).await?;
            pruned = edge.clone();
            let from = columns(found, &edge.from_table_fqn);
            let to = columns(found, &edge.to_table_fqn);
            dropped = resolve::prune_columns(&mut pruned, &from, &to);
        }
        if !dropped.is_empty() {
            tracing::warn!(
                from = %edge.from_table_fqn,
                to = %edge.to_table_fqn,
                ?dropped,
                "column lineage names columns OpenMetadata's tables lack; those pairs are left out"
            );
        }
        *edge = pruned;
        Ok(())
    }

    /// Decodes `record`'s operation; an undecodable value is permanent (`MALFORMED_INPUT`).
    pub async fn decode(&self, record: &SinkRecord) -> Result<OpenMetadataOperation, AttemptError> {
        self.codec.decode(&record.value).await.map_err(|error| {
            if error.is_retryable() {
                AttemptError::Retryable {
                    reason: RetryReason::Io,
                    retry_after: None,
                    detail: format!("decoding {}: {error}", record.position()),
                }
            } else {
                AttemptError::Permanent {
                    kind: DeadLetterKind::MalformedInput,
                    status: None,
                    body: None,
                    detail: format!(
                        "{} is not an OpenMetadataOperation: {error}",
                        record.position()
                    ),
                }
            }
        })
    }
}

fn headers(jwt: Option<&SecretString>, url: &str) -> Result<HeaderMap, SinkError> {
    let mut map = HeaderMap::new();
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(token) = jwt {
        map.insert(AUTHORIZATION, http::bearer(token, "the JWT", url)?);
    }
    Ok(map)
}

fn method(request: &RestRequest) -> Method {
    match request.method {
        "PATCH" => Method::PATCH,
        "POST" => Method::POST,
        _ => Method::PUT,
    }
}

impl OpenMetadataDestination {
    /// Writes one decoded operation to this destination's server (one attempt).
    pub async fn write(&self, mut operation: OpenMetadataOperation) -> Result<(), AttemptError> {
        let references = openmetadata_rest::references(&operation.operation);
        let mut found = self.resolve(&references).await?;
        if let Operation::AddLineage(edge) = &mut operation.operation {
            self.prune_columns(edge, &references, &mut found).await?;
        }
        let request = openmetadata_rest::request(&operation.operation, |entity| {
            found
                .iter()
                .find(|(known, _, _)| known == entity)
                .map(|(_, resolved, _)| resolved.id.clone())
        })
        .map_err(|error| AttemptError::Retryable {
            reason: RetryReason::MissingReference,
            retry_after: None,
            detail: error.to_string(),
        })?;
        let answer = self
            .send(method(&request), &request.path, Some(&request.body))
            .await?;
        let described = format!("{} {}{}", request.method, self.base, request.path);
        if let Some(error) = classify(&described, answer.status, answer.retry_after, &answer.body) {
            if answer.status == 404 {
                // A cached id may belong to an entity deleted since: look it up again.
                self.cache.invalidate(&references);
            }
            return Err(error);
        }
        if let Operation::UpsertPipeline(_) = &operation.operation
            && let Some((fqn, id)) = resolve::fqn_and_id_in(&answer.body)
        {
            // The lineage edges of the pipeline's runs need its id next.
            self.cache.insert(
                EntityRef {
                    entity_type: EntityType::Pipeline,
                    name: fqn,
                },
                Resolved {
                    id,
                    columns: Default::default(),
                },
            );
        }
        Ok(())
    }
}

impl Destination for OpenMetadataDestination {
    async fn deliver(&self, record: &SinkRecord) -> Result<(), AttemptError> {
        let operation = self.decode(record).await?;
        self.write(operation).await
    }

    async fn probe(&self) -> bool {
        // Any answer shows the server is reachable (the version endpoint needs no token).
        http::answers(
            self.client
                .get(format!("{}/api/v1/system/version", self.base)),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jwt_is_a_sensitive_bearer_header() {
        let token = SecretString::from("s3cret".to_owned());
        let map = headers(Some(&token), "http://om").unwrap();
        assert_eq!(map[AUTHORIZATION], "Bearer s3cret");
        assert!(map[AUTHORIZATION].is_sensitive());
        assert_eq!(map[CONTENT_TYPE], "application/json");
        assert!(
            headers(None, "http://om")
                .unwrap()
                .get(AUTHORIZATION)
                .is_none()
        );
    }
}
