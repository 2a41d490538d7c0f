//! `openlineage.ingest`: OpenLineage events from other producers (Airflow, dbt, Spark…), JSON.
//!
//! Each record is checked against the OpenLineage 2-0-2 core schema (`spec/OpenLineage.json`,
//! a verbatim copy of `../shared/openlineage-spec/OpenLineage.json`, compiled once): the event
//! kind comes from its shape (`run` → `RunEvent`, else `dataset` → `DatasetEvent`, else `job` →
//! `JobEvent`), formats (`date-time`, `uri`, `uuid`) are checked, and every facet must carry the
//! base facet fields (`_producer`, `_schemaURL`); facet contents beyond that are the producer's.
//! A valid event is forwarded unchanged with the official Kafka transport's key
//! ([`transport_key`]); an invalid one is rejected with the reason (the processor dead-letters
//! it).

use jsonschema::{Draft, Resource, Validator};
use serde_json::Value;

const CORE_ID: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json";
/// The core schema, embedded (`processors/spec/OpenLineage.json`).
pub const CORE_SCHEMA: &str = include_str!("../spec/OpenLineage.json");
/// Most schema errors quoted in a rejection.
const MAX_ERRORS: usize = 5;

/// Why an ingested record was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The value is not a JSON object.
    #[error("not a JSON object: {0}")]
    NotJson(String),
    /// Neither `run`, `dataset` nor `job`.
    #[error("not an OpenLineage event: no run, dataset or job")]
    UnknownKind,
    /// The event breaks the schema.
    #[error("invalid OpenLineage {kind}: {errors}")]
    Invalid {
        /// RunEvent, DatasetEvent or JobEvent.
        kind: &'static str,
        /// The first errors, `; `-separated, each with its JSON path.
        errors: String,
    },
}

/// The compiled core schema, one validator per event kind.
pub struct IngestValidator {
    run: Validator,
    dataset: Validator,
    job: Validator,
}

impl Default for IngestValidator {
    fn default() -> Self {
        Self::new()
    }
}

impl IngestValidator {
    /// Compiles the embedded core schema.
    pub fn new() -> Self {
        let core: Value = serde_json::from_str(CORE_SCHEMA)
            .expect("invariant: the embedded OpenLineage.json is valid JSON (checked by tests)");
        let compile = |kind: &str| {
            let resource = Resource::from_contents(core.clone())
                .expect("invariant: the embedded OpenLineage.json is a JSON Schema");
            jsonschema::options()
                .with_draft(Draft::Draft202012)
                .should_validate_formats(true)
                .with_resource(CORE_ID, resource)
                .build(&serde_json::json!({ "$ref": format!("{CORE_ID}#/$defs/{kind}") }))
                .expect("invariant: the embedded OpenLineage.json compiles (checked by tests)")
        };
        Self {
            run: compile("RunEvent"),
            dataset: compile("DatasetEvent"),
            job: compile("JobEvent"),
        }
    }

    /// Checks one record's value; returns its Kafka key when it is a valid event.
    pub fn check(&self, payload: &[u8]) -> Result<String, IngestError> {
        let event: Value =
            serde_json::from_slice(payload).map_err(|e| IngestError::NotJson(e.to_string()))?;
        if !event.is_object() {
            return Err(IngestError::NotJson("the value is not an object".into()));
        }
        let (kind, validator) = if event.get("run").is_some() {
            ("RunEvent", &self.run)
        } else if event.get("dataset").is_some() {
            ("DatasetEvent", &self.dataset)
        } else if event.get("job").is_some() {
            ("JobEvent", &self.job)
        } else {
            return Err(IngestError::UnknownKind);
        };
        let errors: Vec<String> = validator
            .iter_errors(&event)
            .take(MAX_ERRORS)
            .map(|e| format!("{}: {e}", e.instance_path))
            .collect();
        if !errors.is_empty() {
            return Err(IngestError::Invalid {
                kind,
                errors: errors.join("; "),
            });
        }
        Ok(transport_key(&event))
    }
}

/// The key the official OpenLineage Kafka transport gives an event: `run:{namespace}/{name}`
/// of the root parent job (else the parent job, else the job) for run events,
/// `dataset:{namespace}/{name}` and `job:{namespace}/{name}` for static events.
pub fn transport_key(event: &Value) -> String {
    let pair = |v: &Value| {
        format!(
            "{}/{}",
            v["namespace"].as_str().unwrap_or_default(),
            v["name"].as_str().unwrap_or_default()
        )
    };
    if event.get("run").is_some() {
        let parent = &event["run"]["facets"]["parent"];
        let job = if parent["root"]["job"].is_object() {
            &parent["root"]["job"]
        } else if parent["job"].is_object() {
            &parent["job"]
        } else {
            &event["job"]
        };
        format!("run:{}", pair(job))
    } else if event.get("dataset").is_some() {
        format!("dataset:{}", pair(&event["dataset"]))
    } else {
        format!("job:{}", pair(&event["job"]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_event() -> Value {
        serde_json::json!({
            "eventType": "START",
            "eventTime": "2026-11-21T09:00:00.000Z",
            "producer": "https://github.com/apache/airflow",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
            "run": {
                "runId": "01936f6e-6f00-7000-8000-000000000001",
                "facets": {
                    "parent": {
                        "_producer": "https://github.com/apache/airflow",
                        "_schemaURL": "https://openlineage.io/spec/facets/1-1-0/ParentRunFacet.json#/$defs/ParentRunFacet",
                        "run": {"runId": "01936f6e-6f00-7000-8000-000000000002"},
                        "job": {"namespace": "airflow", "name": "dag.task_group"},
                        "root": {
                            "run": {"runId": "01936f6e-6f00-7000-8000-000000000003"},
                            "job": {"namespace": "airflow", "name": "dag"}
                        }
                    }
                }
            },
            "job": {"namespace": "airflow", "name": "dag.task"},
            "inputs": [],
            "outputs": []
        })
    }

    fn bytes(value: &Value) -> Vec<u8> {
        serde_json::to_vec(value).expect("json")
    }

    #[test]
    fn a_valid_run_event_is_keyed_by_its_root_job() {
        let validator = IngestValidator::new();
        assert_eq!(
            validator.check(&bytes(&run_event())),
            Ok("run:airflow/dag".to_owned())
        );
        let mut no_root = run_event();
        no_root["run"]["facets"]["parent"]
            .as_object_mut()
            .expect("object")
            .remove("root");
        assert_eq!(transport_key(&no_root), "run:airflow/dag.task_group");
        let mut no_parent = run_event();
        no_parent["run"]["facets"] = serde_json::json!({});
        assert_eq!(
            validator.check(&bytes(&no_parent)),
            Ok("run:airflow/dag.task".to_owned())
        );
    }

    #[test]
    fn static_events_are_keyed_by_job_or_dataset() {
        let validator = IngestValidator::new();
        let dataset = serde_json::json!({
            "eventTime": "2026-11-21T09:00:00Z",
            "producer": "https://github.com/dbt-labs/dbt-core",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/DatasetEvent",
            "dataset": {"namespace": "postgres://db:5432", "name": "public.orders"}
        });
        assert_eq!(
            validator.check(&bytes(&dataset)),
            Ok("dataset:postgres://db:5432/public.orders".to_owned())
        );
        let job = serde_json::json!({
            "eventTime": "2026-11-21T09:00:00Z",
            "producer": "https://github.com/dbt-labs/dbt-core",
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent",
            "job": {"namespace": "dbt", "name": "model.orders"}
        });
        assert_eq!(
            validator.check(&bytes(&job)),
            Ok("job:dbt/model.orders".to_owned())
        );
    }

    #[test]
    fn invalid_events_are_rejected_with_the_reason() {
        let validator = IngestValidator::new();
        assert!(matches!(
            validator.check(b"{not json"),
            Err(IngestError::NotJson(_))
        ));
        assert!(matches!(
            validator.check(b"[1, 2]"),
            Err(IngestError::NotJson(_))
        ));
        assert_eq!(
            validator.check(b"{\"hello\": 1}"),
            Err(IngestError::UnknownKind)
        );
        let mut bad_id = run_event();
        bad_id["run"]["runId"] = Value::from("not-a-uuid");
        let err = validator.check(&bytes(&bad_id)).expect_err("invalid runId");
        assert!(err.to_string().contains("/run/runId"), "{err}");
        let mut no_time = run_event();
        no_time.as_object_mut().expect("object").remove("eventTime");
        let err = validator.check(&bytes(&no_time)).expect_err("no eventTime");
        assert!(err.to_string().contains("eventTime"), "{err}");
        let mut bare_facet = run_event();
        bare_facet["run"]["facets"]["custom"] = serde_json::json!({"x": 1});
        let err = validator
            .check(&bytes(&bare_facet))
            .expect_err("facet without _producer");
        assert!(err.to_string().contains("_producer"), "{err}");
        let mut bad_type = run_event();
        bad_type["eventType"] = Value::from("STARTED");
        assert!(validator.check(&bytes(&bad_type)).is_err());
    }
}
