//! `OpenMetadataOperation` → the OpenMetadata REST request (method, path, JSON body), matching
//! OpenMetadata 2.0's API (`../shared/openmetadata-spec`). It lives here, not in the processor,
//! because the OpenMetadata sink builds the requests and must not link the processor.
//!
//! Some bodies refer to entities by id (`EntityReference` requires `id` and `type`): lineage
//! edges (both tables and the pipeline) and owners. The sink resolves them first:
//! [`references`] lists what an operation needs (`GET /api/v1/tables/name/{fqn}`,
//! `GET /api/v1/pipelines/name/{fqn}`, `GET /api/v1/users/name/{name}` or by email,
//! `GET /api/v1/teams/name/{name}`), and [`request`] takes the ids found. A table of a lineage
//! edge that does not resolve is an error (the edge cannot be written; retry later or dead-letter);
//! an unresolved pipeline reference or owner is left out of the body.
//!
//! | operation | request |
//! |---|---|
//! | `UpsertPipelineService` | `PUT /api/v1/services/pipelineServices` (CreatePipelineServiceRequest) |
//! | `UpsertPipeline` | `PUT /api/v1/pipelines` (CreatePipelineRequest) |
//! | `AddPipelineStatus` | `PUT /api/v1/pipelines/{fqn}/status` (PipelineStatus) |
//! | `AddLineage` | `PUT /api/v1/lineage` (AddLineageRequest) |
//! | `UpsertClassification` | `PUT /api/v1/classifications` (CreateClassificationRequest) |
//! | `UpsertTag` | `PUT /api/v1/tags` (CreateTagRequest) |

use serde_json::{Map, Value, json};

use crate::records::{ExecutionStatus, Operation};

/// The kind of an entity a request refers to by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityType {
    /// A table, by FQN.
    Table,
    /// A pipeline, by FQN.
    Pipeline,
    /// A user, by name or e-mail.
    User,
    /// A team, by name.
    Team,
}

impl EntityType {
    /// OpenMetadata's `EntityReference.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityType::Table => "table",
            EntityType::Pipeline => "pipeline",
            EntityType::User => "user",
            EntityType::Team => "team",
        }
    }
}

/// An entity a request refers to, to be resolved to its id by the sink.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntityRef {
    /// Kind.
    pub entity_type: EntityType,
    /// FQN (tables, pipelines), name or e-mail (users), name (teams).
    pub name: String,
}

/// An OpenMetadata REST request.
#[derive(Debug, Clone, PartialEq)]
pub struct RestRequest {
    /// HTTP method (every write is an idempotent `PUT`).
    pub method: &'static str,
    /// Path below the server root, percent-encoded, e.g. `/api/v1/lineage`.
    pub path: String,
    /// JSON body.
    pub body: Value,
}

/// A request that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    /// A lineage table without an id.
    #[error("lineage edge {from} -> {to}: no id for {entity_type} {name:?}", entity_type = .missing.entity_type.as_str(), name = .missing.name)]
    Unresolved {
        /// Upstream table FQN.
        from: String,
        /// Downstream table FQN.
        to: String,
        /// The entity without an id.
        missing: EntityRef,
    },
}

/// The entities `operation` refers to by id.
pub fn references(operation: &Operation) -> Vec<EntityRef> {
    match operation {
        Operation::AddLineage(edge) => {
            let mut refs = vec![
                EntityRef {
                    entity_type: EntityType::Table,
                    name: edge.from_table_fqn.clone(),
                },
                EntityRef {
                    entity_type: EntityType::Table,
                    name: edge.to_table_fqn.clone(),
                },
            ];
            if let Some(pipeline) = &edge.pipeline_fqn {
                refs.push(EntityRef {
                    entity_type: EntityType::Pipeline,
                    name: pipeline.clone(),
                });
            }
            refs
        }
        Operation::UpsertPipeline(pipeline) => {
            pipeline.owners.iter().map(|o| owner_ref(o)).collect()
        }
        _ => Vec::new(),
    }
}

/// A Dagster owner (`team:NAME`, `user:EMAIL` or `EMAIL`) as an entity reference.
pub fn owner_ref(owner: &str) -> EntityRef {
    match owner.strip_prefix("team:") {
        Some(team) => EntityRef {
            entity_type: EntityType::Team,
            name: team.to_owned(),
        },
        None => EntityRef {
            entity_type: EntityType::User,
            name: owner.strip_prefix("user:").unwrap_or(owner).to_owned(),
        },
    }
}

/// The request of `operation`; `id_of` answers the ids of its [`references`].
pub fn request(
    operation: &Operation,
    id_of: impl Fn(&EntityRef) -> Option<String>,
) -> Result<RestRequest, RestError> {
    let put = |path: String, body: Value| RestRequest {
        method: "PUT",
        path,
        body,
    };
    Ok(match operation {
        Operation::UpsertPipelineService(service) => {
            let mut body = object([
                ("name", json!(service.name)),
                ("serviceType", json!(service.service_type)),
            ]);
            opt(&mut body, "description", service.description.as_ref());
            if let Some(host) = &service.host_port {
                body.insert(
                    "connection".into(),
                    json!({"config": {"type": "Dagster", "host": host}}),
                );
            }
            put(
                "/api/v1/services/pipelineServices".into(),
                Value::Object(body),
            )
        }
        Operation::UpsertPipeline(pipeline) => {
            let mut body = object([
                ("name", json!(pipeline.name)),
                ("service", json!(pipeline.service)),
            ]);
            opt(&mut body, "displayName", pipeline.display_name.as_ref());
            opt(&mut body, "description", pipeline.description.as_ref());
            opt(&mut body, "sourceUrl", pipeline.source_url.as_ref());
            opt(&mut body, "pipelineLocation", pipeline.location.as_ref());
            let tasks: Vec<Value> = pipeline
                .tasks
                .iter()
                .map(|task| {
                    let mut t = object([
                        ("name", json!(task.name)),
                        ("downstreamTasks", json!(task.downstream_tasks)),
                        ("tags", tag_labels(&task.tags)),
                    ]);
                    opt(&mut t, "displayName", task.display_name.as_ref());
                    opt(&mut t, "description", task.description.as_ref());
                    opt(&mut t, "taskType", task.task_type.as_ref());
                    Value::Object(t)
                })
                .collect();
            body.insert("tasks".into(), Value::Array(tasks));
            body.insert("tags".into(), tag_labels(&pipeline.tags));
            let owners: Vec<Value> = pipeline
                .owners
                .iter()
                .filter_map(|owner| {
                    let entity = owner_ref(owner);
                    let id = id_of(&entity)?;
                    Some(json!({"id": id, "type": entity.entity_type.as_str()}))
                })
                .collect();
            if !owners.is_empty() {
                body.insert("owners".into(), Value::Array(owners));
            }
            put("/api/v1/pipelines".into(), Value::Object(body))
        }
        Operation::AddPipelineStatus(status) => {
            let mut body = object([
                ("timestamp", json!(status.timestamp_ms)),
                ("executionStatus", json!(status_name(status.status))),
                ("executionId", json!(status.execution_id)),
            ]);
            opt(&mut body, "endTime", status.end_time_ms.as_ref());
            let tasks: Vec<Value> = status
                .tasks
                .iter()
                .map(|task| {
                    let mut t = object([
                        ("name", json!(task.name)),
                        ("executionStatus", json!(status_name(task.status))),
                    ]);
                    opt(&mut t, "startTime", task.start_time_ms.as_ref());
                    opt(&mut t, "endTime", task.end_time_ms.as_ref());
                    opt(&mut t, "logLink", task.log_link.as_ref());
                    Value::Object(t)
                })
                .collect();
            body.insert("taskStatus".into(), Value::Array(tasks));
            put(
                format!(
                    "/api/v1/pipelines/{}/status",
                    encode_path_segment(&status.pipeline_fqn)
                ),
                Value::Object(body),
            )
        }
        Operation::AddLineage(edge) => {
            let table = |fqn: &str| {
                let entity = EntityRef {
                    entity_type: EntityType::Table,
                    name: fqn.to_owned(),
                };
                match id_of(&entity) {
                    Some(id) => Ok(json!({"id": id, "type": "table"})),
                    None => Err(RestError::Unresolved {
                        from: edge.from_table_fqn.clone(),
                        to: edge.to_table_fqn.clone(),
                        missing: entity,
                    }),
                }
            };
            let mut details = object([("source", json!("PipelineLineage"))]);
            if let Some(pipeline) = &edge.pipeline_fqn {
                let entity = EntityRef {
                    entity_type: EntityType::Pipeline,
                    name: pipeline.clone(),
                };
                if let Some(id) = id_of(&entity) {
                    details.insert("pipeline".into(), json!({"id": id, "type": "pipeline"}));
                }
            }
            if !edge.columns.is_empty() {
                let columns: Vec<Value> = edge
                    .columns
                    .iter()
                    .map(|c| json!({"fromColumns": c.from_columns, "toColumn": c.to_column}))
                    .collect();
                details.insert("columnsLineage".into(), Value::Array(columns));
            }
            opt(&mut details, "description", edge.description.as_ref());
            let body = json!({"edge": {
                "fromEntity": table(&edge.from_table_fqn)?,
                "toEntity": table(&edge.to_table_fqn)?,
                "lineageDetails": Value::Object(details),
            }});
            put("/api/v1/lineage".into(), body)
        }
        Operation::UpsertClassification(classification) => put(
            "/api/v1/classifications".into(),
            json!({"name": classification.name, "description": classification.description}),
        ),
        Operation::UpsertTag(tag) => put(
            "/api/v1/tags".into(),
            json!({"classification": tag.classification, "name": tag.name, "description": tag.description}),
        ),
    })
}

fn object<const N: usize>(fields: [(&str, Value); N]) -> Map<String, Value> {
    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn opt<T: serde::Serialize>(body: &mut Map<String, Value>, key: &str, value: Option<&T>) {
    if let Some(value) = value {
        body.insert(key.to_owned(), json!(value));
    }
}

fn tag_labels(fqns: &[String]) -> Value {
    Value::Array(
        fqns.iter()
            .map(|fqn| {
                json!({"tagFQN": fqn, "source": "Classification", "labelType": "Automated", "state": "Confirmed"})
            })
            .collect(),
    )
}

fn status_name(status: ExecutionStatus) -> &'static str {
    match status {
        ExecutionStatus::Successful => "Successful",
        ExecutionStatus::Failed => "Failed",
        ExecutionStatus::Pending => "Pending",
        ExecutionStatus::Skipped => "Skipped",
    }
}

/// Percent-encodes one path segment (RFC 3986 `pchar`s other than unreserved ones are encoded,
/// so `/`, `?`, `#`, `%`, `"` and spaces in an FQN cannot break the path).
pub fn encode_path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' | b':' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{AddLineage, UpsertTag};

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(
            encode_path_segment("prod.\"a.b\"/c d"),
            "prod.%22a.b%22%2Fc%20d"
        );
        assert_eq!(encode_path_segment("prod.job@loc"), "prod.job@loc");
    }

    #[test]
    fn lineage_needs_both_table_ids() {
        let op = Operation::AddLineage(AddLineage {
            from_table_fqn: "s.d.x.a".into(),
            to_table_fqn: "s.d.x.b".into(),
            pipeline_fqn: Some("prod.job@loc".into()),
            description: None,
            columns: Vec::new(),
        });
        assert_eq!(references(&op).len(), 3);
        let err = request(&op, |e| (e.name == "s.d.x.a").then(|| "id-a".to_owned())).unwrap_err();
        assert!(err.to_string().contains("s.d.x.b"), "{err}");
        let ok = request(&op, |e| Some(format!("id-{}", e.name))).expect("resolves");
        assert_eq!(ok.body["edge"]["toEntity"]["id"], "id-s.d.x.b");
        assert_eq!(
            ok.body["edge"]["lineageDetails"]["pipeline"]["type"],
            "pipeline"
        );
    }

    #[test]
    fn tag_request() {
        let op = Operation::UpsertTag(UpsertTag {
            classification: "DagsterTags".into(),
            name: "team:a".into(),
            description: "d".into(),
        });
        let req = request(&op, |_| None).expect("no refs");
        assert_eq!((req.method, req.path.as_str()), ("PUT", "/api/v1/tags"));
        assert_eq!(req.body["classification"], "DagsterTags");
    }
}
