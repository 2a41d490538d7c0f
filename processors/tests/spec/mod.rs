//! Validators for the official specs in `../shared/`: OpenLineage 2-0-2 (core by kind, each facet
//! by key and position, as the testbed's Marquez contract server does) and OpenMetadata's
//! request bodies.

#![allow(dead_code)] // each test binary uses part of it

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jsonschema::{Draft, Resource, Validator};
use serde_json::Value;

const CORE_ID: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json";
const POSITIONS: [&str; 5] = [
    "RunFacet",
    "JobFacet",
    "DatasetFacet",
    "InputDatasetFacet",
    "OutputDatasetFacet",
];

fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "spec file {} is missing ({e}); shared/ must sit beside the repository",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The OpenLineage spec, compiled.
pub struct OpenLineageSpec {
    core: BTreeMap<&'static str, Validator>,
    base: BTreeMap<&'static str, Validator>,
    facets: BTreeMap<(String, String), (Validator, String)>,
}

impl OpenLineageSpec {
    pub fn load() -> Self {
        let dir = shared_dir().join("openlineage-spec");
        let mut docs: BTreeMap<String, Value> = BTreeMap::new();
        let mut files = vec![dir.join("OpenLineage.json")];
        let mut facet_files: Vec<PathBuf> = std::fs::read_dir(dir.join("facets"))
            .unwrap_or_else(|e| panic!("{}/facets: {e}", dir.display()))
            .map(|entry| entry.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        facet_files.sort();
        files.extend(facet_files);
        for file in files {
            let doc = read_json(&file);
            if let Some(id) = doc.get("$id").and_then(Value::as_str) {
                docs.insert(id.to_owned(), doc);
            }
        }
        assert!(
            docs.contains_key(CORE_ID),
            "core schema {CORE_ID} not found in {}",
            dir.display()
        );
        let compile = |reference: String| -> Validator {
            let resources = docs.iter().map(|(id, doc)| {
                (
                    id.clone(),
                    Resource::from_contents(doc.clone()).expect("resource"),
                )
            });
            jsonschema::options()
                .with_draft(Draft::Draft202012)
                .should_validate_formats(true)
                .with_resources(resources)
                .build(&serde_json::json!({ "$ref": reference }))
                .unwrap_or_else(|e| panic!("compiling {reference}: {e}"))
        };
        let core = ["RunEvent", "DatasetEvent", "JobEvent"]
            .into_iter()
            .map(|kind| (kind, compile(format!("{CORE_ID}#/$defs/{kind}"))))
            .collect();
        let base = POSITIONS
            .into_iter()
            .map(|pos| (pos, compile(format!("{CORE_ID}#/$defs/{pos}"))))
            .collect();
        let mut facets = BTreeMap::new();
        for (id, doc) in &docs {
            if id == CORE_ID {
                continue;
            }
            let defs = doc
                .get("$defs")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let Some(properties) = doc.get("properties").and_then(Value::as_object) else {
                continue;
            };
            for (key, prop) in properties {
                let mut refs: Vec<&str> = prop
                    .get("$ref")
                    .and_then(Value::as_str)
                    .into_iter()
                    .collect();
                for combinator in ["anyOf", "oneOf"] {
                    for sub in prop
                        .get(combinator)
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        refs.extend(sub.get("$ref").and_then(Value::as_str));
                    }
                }
                let mut found: BTreeMap<String, String> = BTreeMap::new();
                for reference in refs {
                    if let Some(name) = reference.strip_prefix("#/$defs/") {
                        for (pos, def) in positions_of(&defs, name, &mut Vec::new()) {
                            found.entry(pos).or_insert(def);
                        }
                    }
                }
                for (pos, def) in found {
                    let file = id.rsplit('/').next().unwrap_or(id);
                    let label = format!("{file}#/$defs/{def}");
                    facets.insert(
                        (pos, key.clone()),
                        (compile(format!("{id}#/$defs/{def}")), label),
                    );
                }
            }
        }
        Self { core, base, facets }
    }

    /// The facet schema a (position, key) is checked against, `None` for custom facets.
    pub fn facet_schema(&self, position: &str, key: &str) -> Option<&str> {
        self.facets
            .get(&(position.to_owned(), key.to_owned()))
            .map(|(_, l)| l.as_str())
    }

    /// Every problem of `event`; empty when valid.
    pub fn problems(&self, event: &Value) -> Vec<String> {
        let url = event.get("schemaURL").and_then(Value::as_str).unwrap_or("");
        let Some(kind) = ["RunEvent", "DatasetEvent", "JobEvent"]
            .into_iter()
            .find(|k| url.ends_with(&format!("#/$defs/{k}")))
        else {
            return vec![format!("schemaURL {url:?} names no event kind")];
        };
        let mut problems: Vec<String> = self.core[kind]
            .iter_errors(event)
            .map(|e| format!("{} ({kind}): {e}", e.instance_path))
            .collect();
        for (path, position, facets) in facet_sites(kind, event) {
            let Some(facets) = facets.as_object() else {
                continue;
            };
            for (key, value) in facets {
                let (validator, label) = match self.facets.get(&(position.to_owned(), key.clone()))
                {
                    Some((v, l)) => (v, l.clone()),
                    None => (
                        &self.base[position],
                        format!("OpenLineage.json#/$defs/{position}"),
                    ),
                };
                problems.extend(
                    validator
                        .iter_errors(value)
                        .map(|e| format!("{path}.{key}{} ({label}): {e}", e.instance_path)),
                );
            }
        }
        problems
    }
}

fn positions_of(
    defs: &serde_json::Map<String, Value>,
    name: &str,
    seen: &mut Vec<String>,
) -> Vec<(String, String)> {
    if seen.iter().any(|s| s == name) {
        return Vec::new();
    }
    seen.push(name.to_owned());
    let Some(def) = defs.get(name) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for sub in def
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(pos) = sub
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix(&format!("{CORE_ID}#/$defs/")))
            && POSITIONS.contains(&pos)
        {
            out.push((pos.to_owned(), name.to_owned()));
        }
    }
    for combinator in ["oneOf", "anyOf"] {
        for sub in def
            .get(combinator)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(inner) = sub
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/$defs/"))
            {
                out.extend(positions_of(defs, inner, seen));
            }
        }
    }
    out
}

fn facet_sites<'a>(kind: &str, event: &'a Value) -> Vec<(String, &'static str, &'a Value)> {
    let mut sites = Vec::new();
    let mut dataset = |prefix: String, ds: &'a Value, io: Option<&str>| {
        if let Some(f) = ds.get("facets") {
            sites.push((format!("{prefix}.facets"), "DatasetFacet", f));
        }
        match io {
            Some("input") => {
                if let Some(f) = ds.get("inputFacets") {
                    sites.push((format!("{prefix}.inputFacets"), "InputDatasetFacet", f));
                }
            }
            Some(_) => {
                if let Some(f) = ds.get("outputFacets") {
                    sites.push((format!("{prefix}.outputFacets"), "OutputDatasetFacet", f));
                }
            }
            None => {}
        }
    };
    if kind == "DatasetEvent" {
        if let Some(ds) = event.get("dataset") {
            dataset("dataset".into(), ds, None);
        }
        return sites;
    }
    for (io, key) in [("input", "inputs"), ("output", "outputs")] {
        for (i, ds) in event
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            dataset(format!("{key}[{i}]"), ds, Some(io));
        }
    }
    if kind == "RunEvent"
        && let Some(f) = event.get("run").and_then(|r| r.get("facets"))
    {
        sites.push(("run.facets".into(), "RunFacet", f));
    }
    if let Some(f) = event.get("job").and_then(|j| j.get("facets")) {
        sites.push(("job.facets".into(), "JobFacet", f));
    }
    sites
}

/// OpenMetadata's request schemas, compiled by file stem (`AddLineageRequest`, ...).
pub struct OpenMetadataSpec {
    schemas: BTreeMap<String, Validator>,
}

impl OpenMetadataSpec {
    pub fn load() -> Self {
        let dir = shared_dir().join("openmetadata-spec");
        let mut schemas = BTreeMap::new();
        for stem in [
            "CreatePipelineServiceRequest",
            "CreatePipelineRequest",
            "PipelineStatus",
            "AddLineageRequest",
            "CreateClassificationRequest",
            "CreateTagRequest",
        ] {
            let doc = read_json(&dir.join(format!("{stem}.schema.json")));
            let validator = jsonschema::options()
                .with_draft(Draft::Draft202012)
                .should_validate_formats(true)
                .build(&doc)
                .unwrap_or_else(|e| panic!("compiling {stem}: {e}"));
            schemas.insert(stem.to_owned(), validator);
        }
        Self { schemas }
    }

    /// The schema a request path's body must match.
    pub fn schema_for(method: &str, path: &str) -> &'static str {
        assert_eq!(method, "PUT", "every OpenMetadata write is a PUT");
        match path {
            "/api/v1/services/pipelineServices" => "CreatePipelineServiceRequest",
            "/api/v1/pipelines" => "CreatePipelineRequest",
            "/api/v1/lineage" => "AddLineageRequest",
            "/api/v1/classifications" => "CreateClassificationRequest",
            "/api/v1/tags" => "CreateTagRequest",
            p if p.starts_with("/api/v1/pipelines/") && p.ends_with("/status") => "PipelineStatus",
            other => panic!("no OpenMetadata schema for PUT {other}"),
        }
    }

    /// Every problem of `body` against `schema`.
    pub fn problems(&self, schema: &str, body: &Value) -> Vec<String> {
        self.schemas[schema]
            .iter_errors(body)
            .map(|e| format!("{schema}{}: {e}", e.instance_path))
            .collect()
    }
}
