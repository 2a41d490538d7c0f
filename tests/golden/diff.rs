//! Normalizes two OpenLineage event streams, pairs their events and lists every difference.
//!
//! Normalized away (legitimately different, see docs/divergences.md): `producer` and every
//! `_producer`; `eventTime` (compared as milliseconds, ±1 ms: lineage-bus truncates Dagster's
//! float seconds to ms, the peer rounds them to µs); `runId` values (compared by structure: which
//! paired events share the id); the order of events (paired by kind, name, event type and time).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

/// One normalized event of one side.
#[derive(Debug, Clone)]
pub struct Norm {
    /// `run`, `dataset` or `job`.
    pub kind: &'static str,
    /// Job name (run and job events) or dataset name.
    pub name: String,
    /// `eventType` of run events, "" otherwise.
    pub event_type: String,
    /// `eventTime` in ms since the epoch.
    pub time_ms: i64,
    /// The event without producers and `eventTime`.
    pub value: Value,
}

/// Where a difference is and what each side has there (`None`: absent).
#[derive(Debug, Clone)]
pub struct Difference {
    /// The paired event's kind, job/dataset name and event type (of ours, else the peer's).
    pub kind: &'static str,
    /// Job or dataset name.
    pub name: String,
    /// Event type.
    pub event_type: String,
    /// `jobType` of ours (`JOB`, `STEP`, `ASSET`, `ASSET_CHECK`), guessed from the name for
    /// events only the peer has.
    pub job_type: String,
    /// JSON path, array indices as `[]` (`run.facets.parent.job.namespace`); `""` for an event
    /// only one side has.
    pub path: String,
    /// Ours.
    pub ours: Option<Value>,
    /// The peer's.
    pub peer: Option<Value>,
}

/// Normalizes one event.
pub fn normalize(event: &Value) -> Norm {
    let mut value = event.clone();
    strip_producers(&mut value);
    let object = value
        .as_object_mut()
        .expect("an OpenLineage event is an object");
    let time = object
        .remove("eventTime")
        .and_then(|t| t.as_str().map(str::to_owned))
        .expect("every event has an eventTime");
    let (kind, name) = if object.contains_key("run") {
        ("run", str_at(&value, &["job", "name"]))
    } else if object.contains_key("dataset") {
        ("dataset", str_at(&value, &["dataset", "name"]))
    } else {
        ("job", str_at(&value, &["job", "name"]))
    };
    Norm {
        kind,
        name,
        event_type: str_at(&value, &["eventType"]),
        time_ms: parse_time_ms(&time),
        value,
    }
}

fn str_at(value: &Value, path: &[&str]) -> String {
    let mut at = value;
    for key in path {
        at = &at[*key];
    }
    at.as_str().unwrap_or_default().to_owned()
}

/// Removes `producer` / `_producer`, and keys whose value is `{}` or `[]` (the peer writes
/// empty facet maps and empty nested field lists, lineage-bus leaves them out: same content).
fn strip_producers(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("producer");
            map.remove("_producer");
            map.values_mut().for_each(strip_producers);
            map.retain(|key, v| key == "inputs" || key == "outputs" || !is_empty(v));
        }
        Value::Array(items) => items.iter_mut().for_each(strip_producers),
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// RFC 3339 UTC (`...Z`, any fraction) → ms since the epoch, the fraction truncated to ms.
pub fn parse_time_ms(text: &str) -> i64 {
    let parsed = chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("eventTime {text:?} is not RFC 3339: {e}"));
    parsed.timestamp_millis()
}

/// Pairs our events with the peer's (same kind, name and event type, times within 1 ms),
/// and returns the differences: events one side only has, and, inside each pair, every
/// path where the two differ.
pub fn diff(ours: &[Norm], peer: &[Norm]) -> Vec<Difference> {
    let mut peer_used = vec![false; peer.len()];
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    let mut only_ours = Vec::new();
    for (i, o) in ours.iter().enumerate() {
        let found = peer.iter().enumerate().position(|(j, p)| {
            !peer_used[j]
                && p.kind == o.kind
                && p.name == o.name
                && p.event_type == o.event_type
                && (p.time_ms - o.time_ms).abs() <= 1
        });
        match found {
            Some(j) => {
                peer_used[j] = true;
                pairs.push((i, j));
            }
            None => only_ours.push(i),
        }
    }
    // runId → the pairs whose own run has that id, per side
    let ours_ids = run_id_classes(pairs.iter().map(|&(i, _)| &ours[i]));
    let peer_ids = run_id_classes(pairs.iter().map(|&(_, j)| &peer[j]));
    let mut differences = Vec::new();
    for &i in &only_ours {
        differences.push(whole(&ours[i], Some(&ours[i].value), None));
    }
    for (j, p) in peer.iter().enumerate() {
        if !peer_used[j] {
            differences.push(whole(p, None, Some(&p.value)));
        }
    }
    for &(i, j) in &pairs {
        let (o, p) = (&ours[i], &peer[j]);
        let mut found = Vec::new();
        let ctx = Context {
            ours_ids: &ours_ids,
            peer_ids: &peer_ids,
        };
        compare(&ctx, "", Some(&o.value), Some(&p.value), &mut found);
        for (path, ours_value, peer_value) in found {
            differences.push(Difference {
                kind: o.kind,
                name: o.name.clone(),
                event_type: o.event_type.clone(),
                job_type: job_type(o),
                path,
                ours: ours_value,
                peer: peer_value,
            });
        }
    }
    differences
}

fn whole(event: &Norm, ours: Option<&Value>, peer: Option<&Value>) -> Difference {
    Difference {
        kind: event.kind,
        name: event.name.clone(),
        event_type: event.event_type.clone(),
        job_type: job_type(event),
        path: String::new(),
        ours: ours.cloned(),
        peer: peer.cloned(),
    }
}

/// Ours carries `jobType`; the peer's is guessed from the name.
fn job_type(event: &Norm) -> String {
    let declared = str_at(&event.value, &["job", "facets", "jobType", "jobType"]);
    if !declared.is_empty() {
        return declared;
    }
    if event.kind == "dataset" {
        "DATASET".into()
    } else if event.name.ends_with("__checks") {
        "ASSET_CHECK".into()
    } else if event.name.contains('/') {
        "ASSET".into()
    } else if event.name.contains('.') {
        "STEP".into()
    } else {
        "JOB".into()
    }
}

fn run_id_classes<'a>(events: impl Iterator<Item = &'a Norm>) -> HashMap<String, BTreeSet<usize>> {
    let mut classes: HashMap<String, BTreeSet<usize>> = HashMap::new();
    for (pair, event) in events.enumerate() {
        let id = str_at(&event.value, &["run", "runId"]);
        if !id.is_empty() {
            classes.entry(id).or_default().insert(pair);
        }
    }
    classes
}

struct Context<'a> {
    ours_ids: &'a HashMap<String, BTreeSet<usize>>,
    peer_ids: &'a HashMap<String, BTreeSet<usize>>,
}

type Found = Vec<(String, Option<Value>, Option<Value>)>;

fn compare(
    ctx: &Context<'_>,
    path: &str,
    ours: Option<&Value>,
    peer: Option<&Value>,
    found: &mut Found,
) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match (ours, peer) {
        (Some(Value::Object(o)), Some(Value::Object(p))) => {
            let keys: BTreeSet<&String> = o.keys().chain(p.keys()).collect();
            for key in keys {
                compare(ctx, &join(key), o.get(key), p.get(key), found);
            }
        }
        (Some(Value::Array(o)), Some(Value::Array(p))) => {
            let items = format!("{path}[]");
            for k in 0..o.len().max(p.len()) {
                compare(ctx, &items, o.get(k), p.get(k), found);
            }
        }
        (Some(Value::String(o)), Some(Value::String(p))) if path.ends_with("runId") => {
            // by structure: the same paired events run under the id on both sides
            let empty = BTreeSet::new();
            let o_class = ctx.ours_ids.get(o).unwrap_or(&empty);
            let p_class = ctx.peer_ids.get(p).unwrap_or(&empty);
            if o_class != p_class {
                found.push((
                    path.to_owned(),
                    Some(json_class(o_class)),
                    Some(json_class(p_class)),
                ));
            }
        }
        // a facet map one side lacks: one difference per facet
        (Some(Value::Object(o)), None) if is_facet_map(path) => {
            for (key, value) in o {
                compare(ctx, &join(key), Some(value), None, found);
            }
        }
        (None, Some(Value::Object(p))) if is_facet_map(path) => {
            for (key, value) in p {
                compare(ctx, &join(key), None, Some(value), found);
            }
        }
        (o, p) if o == p => {}
        (o, p) => found.push((path.to_owned(), o.cloned(), p.cloned())),
    }
}

fn is_facet_map(path: &str) -> bool {
    path.ends_with("facets") || path.ends_with("Facets")
}

fn json_class(class: &BTreeSet<usize>) -> Value {
    Value::String(format!("events sharing the runId: {}", class.len()))
}

/// Counts per (divergence id) and the differences no listed divergence explains.
pub fn classify_all(
    differences: &[Difference],
    classify: impl Fn(&Difference) -> Option<&'static str>,
) -> (BTreeMap<&'static str, usize>, Vec<Difference>) {
    let mut counts = BTreeMap::new();
    let mut unlisted = Vec::new();
    for d in differences {
        match classify(d) {
            Some(id) => *counts.entry(id).or_insert(0) += 1,
            None => unlisted.push(d.clone()),
        }
    }
    (counts, unlisted)
}
