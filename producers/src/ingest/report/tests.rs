//! Expectations are Dagster 1.13's answers to the same requests (probed on the testbed).

use super::*;

/// Query parameters of a case.
type Query<'a> = &'a [(&'a str, &'a str)];

fn request<'a>(
    path_key: &'a str,
    query: &[(&str, &str)],
    body: Option<&'a str>,
) -> ReportRequest<'a> {
    ReportRequest {
        path_key,
        query: query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        content_type: body.map(|_| "application/json".to_owned()),
        body: body.map_or(&[], str::as_bytes),
    }
}

fn refusal(
    endpoint: Endpoint,
    path_key: &str,
    query: &[(&str, &str)],
    body: Option<&str>,
) -> String {
    match read(endpoint, &request(path_key, query, body)) {
        Err(Refusal::BadRequest(message)) => message,
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[test]
fn bad_requests_get_dagsters_messages() {
    use Endpoint::{Check, Materialization, Observation};
    let cases: [(Endpoint, &str, Query<'_>, Option<&str>, &str); 12] = [
        (
            Materialization,
            "",
            &[],
            None,
            "Empty asset key, must provide asset key as url path after /report_asset_materialization/ or query param asset_key.",
        ),
        (
            Check,
            "",
            &[("passed", "true")],
            None,
            "Empty asset key, must provide asset key as url path after /report_asset_check_evaluation/ or query param asset_key.",
        ),
        (
            Observation,
            "",
            &[("asset_key", "")],
            None,
            "Empty asset key, must provide asset key as url path after /report_asset_materialization/ or query param asset_key.",
        ),
        (
            Materialization,
            "a",
            &[],
            Some(r#"{"metadata": [1,2]}"#),
            "Error constructing AssetMaterialization: Param \"metadata\" is not one of ['Mapping']. Got [1, 2] which is type <class 'list'>.",
        ),
        (
            Materialization,
            "a",
            &[],
            Some(r#"{"description": 1.5, "partition": 2}"#),
            "Error constructing AssetMaterialization: Param \"partition\" is not a str. Got 2 which is type <class 'int'>.",
        ),
        (
            Observation,
            "a",
            &[],
            Some(r#"{"description": 1.5, "partition": 2}"#),
            "Error constructing AssetMaterialization: Param \"description\" is not a str. Got 1.5 which is type <class 'float'>.",
        ),
        (
            Materialization,
            "a",
            &[("metadata", "{bad")],
            None,
            "Error parsing metadata json: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        (
            Check,
            "a",
            &[],
            None,
            "Missing required parameter 'passed'.",
        ),
        (
            Check,
            "a",
            &[("passed", "yes")],
            None,
            "Error parsing 'passed': Expecting value: line 1 column 1 (char 0)",
        ),
        (
            Check,
            "a",
            &[
                ("passed", "true"),
                ("check_name", "c1"),
                ("severity", "BAD"),
            ],
            None,
            "Error constructing AssetCheckEvaluation: 'BAD' is not a valid AssetCheckSeverity",
        ),
        (
            Check,
            "a",
            &[],
            Some(r#"{"passed": 5, "check_name": null, "metadata": 3}"#),
            "Error constructing AssetCheckEvaluation: Param \"metadata\" is not one of ['Mapping']. Got 3 which is type <class 'int'>.",
        ),
        (
            Check,
            "a",
            &[],
            Some(r#"{"passed": true}"#),
            "Error constructing AssetCheckEvaluation: Param \"check_name\" is not a str. Got None which is type <class 'NoneType'>.",
        ),
    ];
    for (endpoint, path_key, query, body, expected) in cases {
        assert_eq!(
            refusal(endpoint, path_key, query, body),
            expected,
            "{endpoint:?} {path_key} {query:?} {body:?}"
        );
    }
}

#[test]
fn exceptions_outside_dagsters_try_are_internal_errors() {
    let cases: [(&str, Query<'_>, Option<&str>); 6] = [
        ("a", &[], Some("{bad")),
        ("a", &[], Some("5")),
        ("a", &[], Some("null")),
        ("", &[], Some(r#"{"asset_key": 5}"#)),
        ("", &[], Some(r#"{"asset_key": ["a", 5]}"#)),
        ("", &[("asset_key", "[1]")], None),
    ];
    for (path_key, query, body) in cases {
        assert_eq!(
            read(Endpoint::Materialization, &request(path_key, query, body)),
            Err(Refusal::Internal),
            "{path_key} {query:?} {body:?}"
        );
    }
    // A string body is searched for substrings: "metadata" is found, then indexed.
    assert_eq!(
        read(
            Endpoint::Materialization,
            &request("a", &[], Some(r#""my metadata""#))
        ),
        Err(Refusal::Internal)
    );
}

#[test]
fn content_type_must_be_exactly_json() {
    let mut req = request("a", &[], Some("{}"));
    req.content_type = Some("application/json; charset=utf-8".to_owned());
    assert_eq!(
        read(Endpoint::Observation, &req),
        Err(Refusal::BadRequest(
            "Unhandled content type application/json; charset=utf-8, expect no body or application/json".to_owned()
        ))
    );
    // Without a content type the body is ignored.
    req.content_type = None;
    req.body = b"{bad";
    assert!(read(Endpoint::Observation, &req).is_ok());
}

#[test]
fn asset_keys_come_from_path_body_or_query() {
    let key = |path_key: &str, query: &[(&str, &str)], body: Option<&str>| {
        read(Endpoint::Materialization, &request(path_key, query, body))
            .unwrap()
            .asset_key
    };
    assert_eq!(key("lb/x//a/", &[], None), ["lb", "x", "", "a", ""]);
    assert_eq!(key("", &[], Some(r#"{"asset_key": "a/b"}"#)), ["a/b"]);
    assert_eq!(
        key("", &[], Some(r#"{"asset_key": ["a", "b"]}"#)),
        ["a", "b"]
    );
    assert_eq!(
        key("", &[("asset_key", "lb.probe-c")], None),
        ["lb", "probe", "c"]
    );
    assert_eq!(key("", &[("asset_key", r#"["a","b"]"#)], None), ["a", "b"]);
    assert_eq!(key("", &[("asset_key", "[bad")], None), ["bad"]);
    // The path wins over the body, the body over the query.
    assert_eq!(
        key("p", &[("asset_key", "q")], Some(r#"{"asset_key": "b"}"#)),
        ["p"]
    );
    assert_eq!(
        key("", &[("asset_key", "q")], Some(r#"{"asset_key": "b"}"#)),
        ["b"]
    );
}

#[test]
fn materialization_fields_are_typed_as_dagster_stores_them() {
    let report = read(
        Endpoint::Materialization,
        &request(
            "a/b",
            &[("partition", "query-loses"), ("description", "from query")],
            Some(r#"{"partition": "2024-01-01", "data_version": 5, "metadata": {"z": 1, "a": "x", "z": 2, "f": 3.0, "b": false, "n": null, "j": {"y": [1], "x": 1e20}, "big": 123456789012345678901234567890}}"#),
        ),
    )
    .unwrap();
    assert_eq!(report.partition.as_deref(), Some("2024-01-01"));
    assert_eq!(report.description.as_deref(), Some("from query"));
    assert_eq!(
        report.tags.get(DATA_VERSION_TAG).map(String::as_str),
        Some("5")
    );
    assert_eq!(
        report
            .tags
            .get(DATA_VERSION_IS_USER_PROVIDED_TAG)
            .map(String::as_str),
        Some("true")
    );
    let labels: Vec<&str> = report.metadata.iter().map(|m| m.label.as_str()).collect();
    assert_eq!(labels, ["z", "a", "f", "b", "n", "j", "big"]);
    assert_eq!(report.metadata[0], MetadataEntry::int("z", 2));
    assert_eq!(
        report.metadata[1],
        MetadataEntry::text("a", MetadataKind::Text, "x")
    );
    assert_eq!(report.metadata[2].float, Some(3.0));
    assert_eq!(report.metadata[3].bool, Some(false));
    assert_eq!(report.metadata[4].kind, MetadataKind::Null);
    assert_eq!(
        report.metadata[5],
        MetadataEntry::text("j", MetadataKind::Json, r#"{"x": 1e+20, "y": [1]}"#)
    );
    assert_eq!(
        report.metadata[6],
        MetadataEntry::text("big", MetadataKind::Int, "123456789012345678901234567890")
    );
    let event = report.into_event("t1", 7);
    assert_eq!(event.event_type, DagsterEventType::AssetMaterialization);
    assert_eq!(event.kafka_key(), "a/b");
    assert_eq!(event.source.kind, SourceKind::IngestApi);
}

#[test]
fn checks_sort_their_metadata_and_default_to_error() {
    let report = read(
        Endpoint::Check,
        &request(
            "a",
            &[("passed", "false"), ("check_name", "c")],
            Some(r#"{"metadata": {"z": 1, "a": "x"}, "severity": null}"#),
        ),
    )
    .unwrap();
    let check = report.check.unwrap();
    assert_eq!(
        (check.name.as_str(), check.passed, check.severity),
        ("c", Some(false), CheckSeverity::Error)
    );
    let labels: Vec<&str> = report.metadata.iter().map(|m| m.label.as_str()).collect();
    assert_eq!(labels, ["a", "z"]);
    let warn = read(
        Endpoint::Check,
        &request(
            "a",
            &[
                ("passed", "true"),
                ("check_name", "c"),
                ("severity", "WARN"),
            ],
            None,
        ),
    )
    .unwrap();
    assert_eq!(warn.check.unwrap().severity, CheckSeverity::Warn);
}

#[test]
fn an_object_data_version_fails_after_the_checks_as_in_dagsters_storage() {
    let report = |body: &str| read(Endpoint::Materialization, &request("a", &[], Some(body)));
    assert_eq!(
        report(r#"{"data_version": {"v": 1}}"#),
        Err(Refusal::Internal)
    );
    assert!(matches!(
        report(r#"{"data_version": {"v": 1}, "partition": 5}"#),
        Err(Refusal::BadRequest(_))
    ));
    let listed = report(r#"{"data_version": [1, 2.5]}"#).unwrap();
    assert_eq!(
        listed.tags.get(DATA_VERSION_TAG).map(String::as_str),
        Some("[1, 2.5]")
    );
}
