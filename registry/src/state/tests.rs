#![allow(clippy::unwrap_used)]

use super::*;
use crate::record::{decode, encode};

const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;
/// V1 plus a field with a default: backward compatible with V1.
const V2: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string","default":"x"}]}"#;
/// V2 without the default: backward compatible with V2 (b is written), not with V1.
const V3: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#;
/// V1 without `a`: readers of V1 need `a`, so not forward compatible.
const EMPTY: &str = r#"{"type":"record","name":"R","fields":[]}"#;

fn parse(raw: &str) -> ParsedSchema {
    ParsedSchema::parse(raw).unwrap()
}

fn commit<T>(state: &mut State, plan: Plan<T>) -> T {
    for change in &plan.changes {
        state.apply(change);
    }
    plan.answer
}

/// Plans against the state and commits the plan's changes.
fn run<T>(
    state: &mut State,
    plan: impl FnOnce(&State) -> Result<Plan<T>, ApiError>,
) -> Result<T, ApiError> {
    let plan = plan(state)?;
    Ok(commit(state, plan))
}

fn register(state: &mut State, subject: &str, raw: &str) -> Result<u32, ApiError> {
    let plan = state.plan_register(subject, &parse(raw))?;
    Ok(commit(state, plan))
}

fn set_level(state: &mut State, subject: Option<&str>, level: Compatibility) {
    commit(state, State::plan_set_level(subject, level));
}

#[test]
fn registering_assigns_ids_and_versions() {
    let mut state = State::new(Compatibility::Backward);
    assert_eq!(register(&mut state, "a", V1), Ok(1));
    assert_eq!(register(&mut state, "a", V2), Ok(2));
    assert_eq!(state.versions("a", false), Ok(vec![1, 2]));
    let latest = state.version("a", VersionSelector::Latest, false).unwrap();
    assert_eq!((latest.version, latest.id), (2, 2));
    assert_eq!(latest.schema, V2);
    assert_eq!(state.subjects(false), vec!["a".to_owned()]);
    assert_eq!(state.schema_by_id(1), Ok(V1));
}

#[test]
fn the_same_schema_keeps_its_id_within_and_across_subjects() {
    let mut state = State::new(Compatibility::Backward);
    assert_eq!(register(&mut state, "a", V1), Ok(1));
    let again = state.plan_register("a", &parse(V1)).unwrap();
    assert_eq!(again.answer, 1);
    assert!(again.changes.is_empty(), "re-registering writes nothing");
    let spaced = V1.replace(',', " ,\n ");
    assert_eq!(register(&mut state, "a", &spaced), Ok(1));
    assert_eq!(register(&mut state, "b", V1), Ok(1));
    assert_eq!(register(&mut state, "b", V2), Ok(2));
    assert_eq!(
        state.versions_of_id(1, false),
        Ok(vec![("a".to_owned(), 1), ("b".to_owned(), 1)])
    );
    assert_eq!(state.lookup("b", &parse(V2), false).unwrap().version, 2);
    assert_eq!(
        state
            .lookup("a", &parse(V2), false)
            .unwrap_err()
            .error_code(),
        40403
    );
    assert_eq!(
        state
            .lookup("c", &parse(V1), false)
            .unwrap_err()
            .error_code(),
        40401
    );
}

#[test]
fn missing_subjects_and_versions() {
    let mut state = State::new(Compatibility::Backward);
    assert_eq!(state.versions("a", false).unwrap_err().error_code(), 40401);
    register(&mut state, "a", V1).unwrap();
    let err = state
        .version("a", VersionSelector::Number(9), false)
        .unwrap_err();
    assert_eq!(err.error_code(), 40402);
    assert_eq!(state.schema_by_id(9).unwrap_err().error_code(), 40403);
    assert_eq!(
        state.versions_of_id(9, false).unwrap_err().error_code(),
        40403
    );
}

#[test]
fn version_selectors() {
    assert_eq!("latest".parse(), Ok(VersionSelector::Latest));
    assert_eq!("-1".parse(), Ok(VersionSelector::Latest));
    assert_eq!("3".parse(), Ok(VersionSelector::Number(3)));
    for bad in ["0", "-2", "abc", "2147483648", ""] {
        let err = bad.parse::<VersionSelector>().unwrap_err();
        assert_eq!(err.error_code(), 42202, "{bad}");
    }
}

#[test]
fn backward_rejects_a_field_without_default() {
    let mut state = State::new(Compatibility::Backward);
    register(&mut state, "a", V1).unwrap();
    let err = register(&mut state, "a", V3).unwrap_err();
    assert_eq!(err.error_code(), 409);
    let message = err.to_string();
    assert!(
        message.contains("'b'") && message.contains("default"),
        "{message}"
    );
    assert!(message.contains("BACKWARD"), "{message}");
    assert_eq!(register(&mut state, "a", V2), Ok(2));
}

#[test]
fn transitive_levels_check_every_live_version() {
    let mut state = State::new(Compatibility::Backward);
    register(&mut state, "a", V1).unwrap();
    register(&mut state, "a", V2).unwrap();
    let mut transitive = state.clone();
    // Against the latest (V2) only, V3 is fine.
    assert_eq!(register(&mut state, "a", V3), Ok(3));
    set_level(
        &mut transitive,
        Some("a"),
        Compatibility::BackwardTransitive,
    );
    let err = register(&mut transitive, "a", V3).unwrap_err();
    assert!(err.to_string().contains("version 1"), "{err}");
    // Soft-deleting version 1 takes it out of the check.
    run(&mut transitive, |s| {
        s.plan_delete_version("a", VersionSelector::Number(1), false)
    })
    .unwrap();
    assert_eq!(register(&mut transitive, "a", V3), Ok(3));
    assert_eq!(transitive.versions("a", false), Ok(vec![2, 3]));
}

#[test]
fn forward_full_and_none() {
    let mut state = State::new(Compatibility::Forward);
    register(&mut state, "a", V1).unwrap();
    // V1 readers cannot read EMPTY data (no `a`, no default).
    assert_eq!(
        register(&mut state, "a", EMPTY).unwrap_err().error_code(),
        409
    );
    // V3 data can be read by V1 readers (extra field ignored).
    assert_eq!(register(&mut state, "a", V3), Ok(2));

    let mut full = State::new(Compatibility::Backward);
    set_level(&mut full, None, Compatibility::Full);
    register(&mut full, "a", V1).unwrap();
    let err = register(&mut full, "a", V3).unwrap_err();
    assert!(err.to_string().contains("FULL"), "{err}");
    assert_eq!(register(&mut full, "a", V2), Ok(2));

    let mut none = State::new(Compatibility::None);
    register(&mut none, "a", V1).unwrap();
    assert_eq!(register(&mut none, "a", r#""string""#), Ok(2));
}

#[test]
fn test_compatibility_against_a_version_or_the_level() {
    let mut state = State::new(Compatibility::Backward);
    assert_eq!(state.test_compatibility("a", &parse(V3), None), Ok(vec![]));
    register(&mut state, "a", V1).unwrap();
    register(&mut state, "a", V2).unwrap();
    assert_eq!(
        state.test_compatibility("a", &parse(V3), Some(VersionSelector::Latest)),
        Ok(vec![])
    );
    let against_v1 = state
        .test_compatibility("a", &parse(V3), Some(VersionSelector::Number(1)))
        .unwrap();
    assert_eq!(against_v1.len(), 1);
    let err = state
        .test_compatibility("a", &parse(V3), Some(VersionSelector::Number(7)))
        .unwrap_err();
    assert_eq!(err.error_code(), 40402);
}

#[test]
fn soft_and_permanent_subject_deletes() {
    let mut state = State::new(Compatibility::Backward);
    register(&mut state, "a", V1).unwrap();
    register(&mut state, "a", V2).unwrap();
    set_level(&mut state, Some("a"), Compatibility::Full);
    let err = state.plan_delete_subject("a", true).unwrap_err();
    assert_eq!(err.error_code(), 40405);
    let deleted = run(&mut state, |s| s.plan_delete_subject("a", false)).unwrap();
    assert_eq!(deleted, vec![1, 2]);
    assert_eq!(
        state
            .plan_delete_subject("a", false)
            .unwrap_err()
            .error_code(),
        40404
    );
    assert!(state.subjects(false).is_empty());
    assert_eq!(state.subjects(true), vec!["a".to_owned()]);
    assert_eq!(state.versions("a", false).unwrap_err().error_code(), 40401);
    assert_eq!(state.versions("a", true), Ok(vec![1, 2]));
    // Soft-deleted schemas stay readable by id, for consumers of old records.
    assert_eq!(state.schema_by_id(2), Ok(V2));
    assert_eq!(state.versions_of_id(2, false), Ok(vec![]));
    assert_eq!(state.versions_of_id(2, true), Ok(vec![("a".to_owned(), 2)]));

    let removed = run(&mut state, |s| s.plan_delete_subject("a", true)).unwrap();
    assert_eq!(removed, vec![1, 2]);
    assert!(state.subjects(true).is_empty());
    assert_eq!(state.schema_by_id(2).unwrap_err().error_code(), 40403);
    assert_eq!(
        state.subject_level("a"),
        None,
        "permanent delete drops the subject level"
    );
    assert_eq!(
        state
            .plan_delete_subject("a", true)
            .unwrap_err()
            .error_code(),
        40401
    );
    // Ids are never given twice, even after the highest one was removed.
    assert_eq!(register(&mut state, "b", EMPTY), Ok(3));
    // Versions restart once a subject is gone for good.
    assert_eq!(state.versions("b", false), Ok(vec![1]));
}

#[test]
fn version_deletes() {
    let mut state = State::new(Compatibility::None);
    register(&mut state, "a", V1).unwrap();
    register(&mut state, "a", V2).unwrap();
    let latest = VersionSelector::Latest;
    let err = state.plan_delete_version("a", latest, true).unwrap_err();
    assert_eq!(err.error_code(), 40407);
    assert_eq!(
        run(&mut state, |s| s.plan_delete_version("a", latest, false)).unwrap(),
        2
    );
    let err = state
        .plan_delete_version("a", VersionSelector::Number(2), false)
        .unwrap_err();
    assert_eq!(err.error_code(), 40406);
    assert_eq!(
        state
            .version("a", VersionSelector::Latest, false)
            .unwrap()
            .version,
        1
    );
    assert_eq!(
        state
            .version("a", VersionSelector::Number(2), false)
            .unwrap_err()
            .error_code(),
        40402
    );
    assert_eq!(
        state
            .version("a", VersionSelector::Number(2), true)
            .unwrap()
            .id,
        2
    );
    // A new version after a soft delete does not reuse the deleted number.
    assert_eq!(register(&mut state, "a", EMPTY), Ok(3));
    assert_eq!(state.versions("a", true), Ok(vec![1, 2, 3]));
    // Re-registering a soft-deleted schema makes a new version with the same id.
    assert_eq!(register(&mut state, "a", V2), Ok(2));
    assert_eq!(state.versions("a", false), Ok(vec![1, 3, 4]));
    let removed = state
        .plan_delete_version("a", VersionSelector::Number(2), true)
        .unwrap();
    assert_eq!(commit(&mut state, removed), 2);
    assert_eq!(state.versions("a", true), Ok(vec![1, 3, 4]));
    assert_eq!(state.schema_by_id(2), Ok(V2), "version 4 still uses id 2");
    let err = state
        .plan_delete_version("a", VersionSelector::Number(9), false)
        .unwrap_err();
    assert_eq!(err.error_code(), 40402);
}

#[test]
fn compatibility_levels() {
    let mut state = State::new(Compatibility::Backward);
    assert_eq!(state.global_level(), Compatibility::Backward);
    set_level(&mut state, None, Compatibility::Forward);
    assert_eq!(state.global_level(), Compatibility::Forward);
    assert_eq!(state.subject_level("a"), None);
    assert_eq!(
        state
            .plan_delete_subject_level("a")
            .unwrap_err()
            .error_code(),
        40408
    );
    set_level(&mut state, Some("a"), Compatibility::None);
    assert_eq!(state.subject_level("a"), Some(Compatibility::None));
    let old = run(&mut state, |s| s.plan_delete_subject_level("a")).unwrap();
    assert_eq!(old, Compatibility::None);
    assert_eq!(state.subject_level("a"), None);
}

#[test]
fn compaction_does_not_change_the_state() {
    let mut state = State::new(Compatibility::Backward);
    let mut log: Vec<Change> = Vec::new();
    let mut run = |state: &mut State, changes: Vec<Change>| {
        for change in changes {
            state.apply(&change);
            log.push(change);
        }
    };
    for (subject, raw) in [("a", V1), ("a", V2), ("b", V1), ("b", EMPTY), ("c", V3)] {
        let plan = state.plan_register(subject, &parse(raw)).unwrap();
        run(&mut state, plan.changes);
    }
    run(&mut state, vec![Change::Barrier("x".into())]);
    run(
        &mut state,
        State::plan_set_level(Some("a"), Compatibility::Full).changes,
    );
    let plan = state.plan_delete_subject("c", false).unwrap();
    run(&mut state, plan.changes);
    let plan = state.plan_delete_subject("c", true).unwrap();
    run(&mut state, plan.changes);
    let plan = state
        .plan_delete_version("b", VersionSelector::Number(1), false)
        .unwrap();
    run(&mut state, plan.changes);

    // Keep only the last record of each key, in log order, as compaction does.
    let encoded: Vec<_> = log.iter().map(|c| encode(c).unwrap()).collect();
    let mut compacted = State::new(Compatibility::Backward);
    for (i, (key, value)) in encoded.iter().enumerate() {
        if encoded[i + 1..].iter().all(|(later, _)| later != key) {
            compacted.apply(&decode(key, value.as_deref()).unwrap());
        }
    }
    assert_eq!(compacted, state);
    assert!(encoded.len() > compacted.subjects(true).len());
}
