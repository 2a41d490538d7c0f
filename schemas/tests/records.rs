//! Every record round-trips through its `.avsc`, shared named types agree across files, and
//! the working schemas stay BACKWARD compatible with the released ones.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::Name;
use lineage_schemas::records::*;
use lineage_schemas::{AvroRecord, check_backward_compatible, schema_files, wire};

fn position() -> SourcePosition {
    SourcePosition {
        kind: SourceKind::PostgresEventLog,
        storage_id: Some(4_242),
        shard: None,
        cursor: None,
    }
}

fn rich_metadata() -> Vec<MetadataEntry> {
    vec![
        MetadataEntry::text(
            "dagster/table_name",
            MetadataKind::Text,
            "warehouse.raw.orders",
        ),
        MetadataEntry::int("dagster/row_count", 1_234),
        MetadataEntry {
            float: Some(f64::INFINITY),
            ..MetadataEntry::empty("infinite", MetadataKind::Float)
        },
        MetadataEntry {
            table_schema: Some(TableSchema {
                columns: vec![TableColumn {
                    name: "id".into(),
                    data_type: "int".into(),
                    description: Some("primary key".into()),
                    nullable: Some(false),
                    unique: Some(true),
                    tags: BTreeMap::from([("pii".into(), "false".into())]),
                }],
            }),
            ..MetadataEntry::empty("dagster/column_schema", MetadataKind::TableSchema)
        },
        MetadataEntry {
            column_lineage: Some(ColumnLineage {
                columns: vec![ColumnDeps {
                    column: "revenue".into(),
                    deps: vec![ColumnRef {
                        asset_key: vec!["raw".into(), "orders".into()],
                        column: "amount".into(),
                    }],
                }],
            }),
            ..MetadataEntry::empty("dagster/column_lineage", MetadataKind::ColumnLineage)
        },
        MetadataEntry {
            asset_key: Some(vec!["a".into(), "b".into()]),
            ..MetadataEntry::empty("upstream", MetadataKind::Asset)
        },
    ]
}

fn dagster_event() -> DagsterEvent {
    DagsterEvent {
        tenant: "prod".into(),
        source: position(),
        event_type: DagsterEventType::StepFailure,
        raw_event_type: "STEP_FAILURE".into(),
        run_id: Some("0b7a6f34-1111-4c4e-9a5e-3f1f9f0f2c11".into()),
        job_name: Some("daily_job".into()),
        step_key: Some("orders".into()),
        asset_key: Some(vec!["warehouse".into(), "raw".into(), "orders".into()]),
        partition: Some("2026-11-20".into()),
        timestamp_ms: 1_763_600_000_123,
        message: Some("step failed".into()),
        description: None,
        metadata: rich_metadata(),
        tags: BTreeMap::from([("team".into(), "data".into())]),
        check: Some(AssetCheck {
            name: "not_null".into(),
            passed: Some(false),
            severity: CheckSeverity::Warn,
            target_storage_id: Some(77),
        }),
        error: Some(ErrorInfo {
            message: "boom".into(),
            class_name: Some("DagsterExecutionStepExecutionError".into()),
            stack: vec!["line 1".into()],
            cause: Some(Box::new(ErrorInfo {
                message: "ValueError: bad".into(),
                class_name: Some("ValueError".into()),
                stack: vec![],
                cause: None,
            })),
        }),
        raw_json: Some("{\"__class__\": \"EventLogEntry\"}".into()),
    }
}

fn asset_definition() -> AssetDefinition {
    AssetDefinition {
        tenant: "prod".into(),
        source: SourcePosition {
            kind: SourceKind::Graphql,
            storage_id: None,
            shard: None,
            cursor: Some("abc".into()),
        },
        asset_key: vec![
            "warehouse".into(),
            "analytics".into(),
            "daily_revenue".into(),
        ],
        code_location: Some("sample".into()),
        repository: Some("__repository__".into()),
        group: Some("analytics".into()),
        description: Some("revenue per day".into()),
        job_names: vec!["analytics_job".into()],
        deps: vec![vec!["warehouse".into(), "raw".into(), "orders".into()]],
        owners: vec!["ana@example.com".into(), "team:data".into()],
        tags: BTreeMap::from([("tier".into(), "gold".into())]),
        kinds: vec!["postgres".into()],
        metadata: rich_metadata(),
        is_materializable: true,
        partitions: Some("daily".into()),
        checks: vec!["revenue_positive".into()],
        updated_ms: 1_763_600_000_000,
    }
}

fn table_snapshot() -> TableSnapshot {
    let child = Column {
        name: "street".into(),
        data_type: "VARCHAR".into(),
        data_type_display: Some("varchar(64)".into()),
        fqn: "pg.warehouse.raw.customers.address.street".into(),
        description: None,
        children: vec![],
    };
    TableSnapshot {
        tenant: "om-prod".into(),
        fqn: "pg.warehouse.raw.customers".into(),
        id: "2d1c5e0e-0000-4000-8000-000000000001".into(),
        service: "pg".into(),
        database: "warehouse".into(),
        schema: "raw".into(),
        table: "customers".into(),
        service_type: Some("Postgres".into()),
        table_type: Some("Regular".into()),
        description: None,
        columns: vec![Column {
            name: "address".into(),
            data_type: "STRUCT".into(),
            data_type_display: None,
            fqn: "pg.warehouse.raw.customers.address".into(),
            description: Some("nested".into()),
            children: vec![child],
        }],
        tags: vec!["PII.Sensitive".into()],
        owners: vec!["data-team".into()],
        deleted: false,
        version: 0.3,
        updated_at_ms: 1_763_600_000_000,
    }
}

fn operations() -> Vec<OpenMetadataOperation> {
    let origin = Origin {
        topic: "dagster.events".into(),
        partition: 3,
        offset: 99,
    };
    let ops = vec![
        Operation::UpsertPipelineService(UpsertPipelineService {
            name: "dagster_prod".into(),
            service_type: "Dagster".into(),
            description: None,
            host_port: Some("http://dagster:3000".into()),
        }),
        Operation::UpsertPipeline(UpsertPipeline {
            service: "dagster_prod".into(),
            name: "daily_job".into(),
            display_name: None,
            description: None,
            source_url: None,
            location: Some("sample".into()),
            tasks: vec![PipelineTask {
                name: "orders".into(),
                display_name: None,
                description: None,
                task_type: Some("asset".into()),
                downstream_tasks: vec!["revenue".into()],
                tags: vec![],
            }],
            tags: vec!["Dagster.team".into()],
            owners: vec![],
        }),
        Operation::AddPipelineStatus(AddPipelineStatus {
            pipeline_fqn: "dagster_prod.daily_job".into(),
            execution_id: "run-1".into(),
            status: ExecutionStatus::Failed,
            timestamp_ms: 1,
            end_time_ms: Some(2),
            tasks: vec![TaskStatus {
                name: "orders".into(),
                status: ExecutionStatus::Skipped,
                start_time_ms: None,
                end_time_ms: None,
                log_link: None,
            }],
        }),
        Operation::AddLineage(AddLineage {
            from_table_fqn: "pg.warehouse.raw.orders".into(),
            to_table_fqn: "pg.warehouse.analytics.daily_revenue".into(),
            pipeline_fqn: Some("dagster_prod.daily_job".into()),
            description: None,
            columns: vec![ColumnLineageEdge {
                from_columns: vec!["pg.warehouse.raw.orders.amount".into()],
                to_column: "pg.warehouse.analytics.daily_revenue.revenue".into(),
            }],
        }),
        Operation::UpsertClassification(UpsertClassification {
            name: "Dagster".into(),
            description: "Dagster tags".into(),
        }),
        Operation::UpsertTag(UpsertTag {
            classification: "Dagster".into(),
            name: "team".into(),
            description: String::new(),
        }),
    ];
    ops.into_iter()
        .map(|operation| OpenMetadataOperation {
            tenant: "prod".into(),
            origin: origin.clone(),
            operation,
        })
        .collect()
}

fn dead_letter() -> DeadLetter {
    DeadLetter {
        component: "sink.openlineage".into(),
        tenant: Some("prod".into()),
        error_kind: DeadLetterKind::RejectedByBackend,
        reason: "marquez answered 400".into(),
        http_status: Some(400),
        response_body: Some("{\"error\":\"bad\"}".into()),
        source_topic: Some("lineage.openlineage".into()),
        source_partition: Some(1),
        source_offset: Some(10),
        source_position: None,
        original_key: Some(b"run:ns/job".to_vec()),
        original_value: Some(vec![0, 1, 2, 255]),
        attempts: 1,
        timestamp_ms: 5,
    }
}

/// Encodes with the wire format, checks the bytes against the schema with the generic
/// reader, and decodes back by both the direct and the resolving path.
fn round_trip<T: AvroRecord + PartialEq + std::fmt::Debug>(value: &T) -> T {
    let bytes = wire::encode(7, value).unwrap();
    let (id, payload) = wire::split(&bytes).unwrap();
    assert_eq!(id, 7);
    let generic = GenericDatumReader::builder(T::schema())
        .build()
        .unwrap()
        .read_value(&mut &payload[..])
        .unwrap();
    assert!(
        generic.validate(T::schema()),
        "bytes do not validate against {}",
        T::FILE.file_name
    );
    let evolved: T = wire::decode_evolved(T::schema(), payload).unwrap();
    assert_eq!(&evolved, value, "resolving decode of {}", T::FILE.file_name);
    wire::decode_own(payload).unwrap()
}

#[test]
fn every_record_round_trips() {
    assert_eq!(round_trip(&dagster_event()), dagster_event());
    assert_eq!(round_trip(&asset_definition()), asset_definition());
    assert_eq!(round_trip(&table_snapshot()), table_snapshot());
    for op in operations() {
        assert_eq!(round_trip(&op), op);
    }
    assert_eq!(round_trip(&dead_letter()), dead_letter());
    assert_eq!(round_trip(&source_cursor()), source_cursor());
    assert_eq!(source_cursor().kafka_key(), "producer.dagster/prod");
    assert_eq!(round_trip(&resolution_report()), resolution_report());
    assert_eq!(
        resolution_report().kafka_key(),
        "prod/warehouse/analytics/daily_revenue"
    );
}

fn resolution_report() -> ResolutionReport {
    ResolutionReport {
        tenant: "prod".into(),
        asset_key: vec![
            "warehouse".into(),
            "analytics".into(),
            "daily_revenue".into(),
        ],
        key_after_strip: vec!["analytics".into(), "daily_revenue".into()],
        rule: Some("asset_key".into()),
        lookups: vec![ResolutionLookup {
            rule: "asset_key".into(),
            service: None,
            name: "analytics.daily_revenue".into(),
            matches: 2,
        }],
        candidates: vec![
            ResolutionCandidate {
                fqn: "pg.warehouse.analytics.daily_revenue".into(),
                exact_case: true,
            },
            ResolutionCandidate {
                fqn: "snow.WAREHOUSE.ANALYTICS.DAILY_REVENUE".into(),
                exact_case: false,
            },
        ],
        ambiguous: true,
        chosen_table_fqn: Some("pg.warehouse.analytics.daily_revenue".into()),
        reason: None,
        ignored: vec![],
        written_upstream: vec!["svc.db.raw.orders".into()],
    }
}

fn source_cursor() -> SourceCursor {
    SourceCursor {
        producer: "producer.dagster".into(),
        tenant: "prod".into(),
        source: "postgres:public.event_logs".into(),
        position: 7_657,
        updated_ms: 5,
    }
}

/// Dagster writes bare NaN floats; they must survive the trip.
#[test]
fn nan_metadata_survives() {
    let mut event = dagster_event();
    event.metadata = vec![MetadataEntry {
        float: Some(f64::NAN),
        ..MetadataEntry::empty("nan", MetadataKind::Float)
    }];
    let bytes = wire::encode(1, &event).unwrap();
    let back: DagsterEvent = wire::decode_own(wire::split(&bytes).unwrap().1).unwrap();
    assert!(back.metadata[0].float.unwrap().is_nan());
}

#[test]
fn kafka_keys_follow_the_catalog() {
    let mut event = dagster_event();
    assert_eq!(event.kafka_key(), "0b7a6f34-1111-4c4e-9a5e-3f1f9f0f2c11");
    event.run_id = Some(String::new());
    assert_eq!(
        event.kafka_key(),
        "warehouse/raw/orders",
        "runless events key by asset"
    );
    assert_eq!(
        asset_definition().kafka_key(),
        "prod/warehouse/analytics/daily_revenue"
    );
    let keys: Vec<String> = operations().iter().map(|o| o.kafka_key()).collect();
    assert_eq!(keys[1], "dagster_prod.daily_job");
    assert_eq!(
        keys[2], "dagster_prod.daily_job",
        "status keyed like its pipeline"
    );
    assert_eq!(keys[3], "pg.warehouse.analytics.daily_revenue");

    // names holding the FQN separator: the upsert is keyed by the quoted FQN its statuses use
    let mut dotted = operations();
    if let Operation::UpsertPipeline(pipeline) = &mut dotted[1].operation {
        pipeline.service = "dagster.prod".into();
        pipeline.name = "daily_job@analytics.jobs".into();
    }
    assert_eq!(
        dotted[1].kafka_key(),
        r#""dagster.prod"."daily_job@analytics.jobs""#
    );
}

#[test]
fn wire_split_rejects_bad_frames() {
    assert!(
        wire::split(&[0, 0, 0])
            .unwrap_err()
            .to_string()
            .contains("shorter")
    );
    assert!(
        wire::split(&[1, 0, 0, 0, 1, 2])
            .unwrap_err()
            .to_string()
            .contains("magic")
    );
    let bytes = wire::encode(1, &dead_letter()).unwrap();
    let truncated = &bytes[..bytes.len() - 3];
    let (_, payload) = wire::split(truncated).unwrap();
    assert!(wire::decode_own::<DeadLetter>(payload).is_err());
}

fn avro_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("avro")
}

#[test]
fn embedded_files_are_the_files_on_disk() {
    for file in schema_files() {
        let on_disk = fs::read_to_string(avro_dir().join(file.file_name)).unwrap();
        assert_eq!(
            on_disk, file.text,
            "{} differs from the embedded copy",
            file.file_name
        );
        let schema = Schema::parse_str(file.text).unwrap();
        assert_eq!(schema.name().unwrap().fullname(None), file.full_name);
    }
}

/// Named types defined in several files (MetadataEntry, SourcePosition, ...) must be the same
/// everywhere, or the same Rust type would mean different things on different topics.
#[test]
fn shared_named_types_agree_across_files() {
    let mut seen: BTreeMap<String, (String, &str)> = BTreeMap::new();
    for file in schema_files() {
        let schema = Schema::parse_str(file.text).unwrap();
        let resolved = apache_avro::schema::ResolvedSchema::try_from(&schema).unwrap();
        for (name, named) in resolved.get_names() {
            let name: &Name = name;
            let canonical = named.canonical_form();
            if let Some((other, other_file)) = seen.get(&name.fullname(None)) {
                assert_eq!(
                    other, &canonical,
                    "{name} differs between {other_file} and {}",
                    file.file_name
                );
            } else {
                seen.insert(name.fullname(None), (canonical, file.file_name));
            }
        }
    }
    assert!(seen.contains_key("io.lineagebus.dagster.MetadataEntry"));
}

fn released_versions(stem: &str) -> Vec<(u32, Schema)> {
    let dir = avro_dir().join("released").join(stem);
    let mut versions: Vec<(u32, Schema)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("no released versions in {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            let version: u32 = name.trim_start_matches('v').parse().unwrap();
            (
                version,
                Schema::parse_str(&fs::read_to_string(&path).unwrap()).unwrap(),
            )
        })
        .collect();
    versions.sort_by_key(|(v, _)| *v);
    versions
}

#[test]
fn working_schemas_are_backward_compatible_with_the_latest_release() {
    for file in schema_files() {
        let stem = file.file_name.trim_end_matches(".avsc");
        let versions = released_versions(stem);
        let (version, latest) = versions.last().unwrap();
        let current = Schema::parse_str(file.text).unwrap();
        check_backward_compatible(latest, &current).unwrap_or_else(|why| {
            panic!(
                "{} is not BACKWARD compatible with released v{version}: {why}",
                file.file_name
            )
        });
    }
}

#[test]
fn the_compatibility_check_catches_breaking_changes() {
    let released = Schema::parse_str(dagster_event_text()).unwrap();
    // Adding a field without a default breaks BACKWARD compatibility.
    let breaking = dagster_event_text().replacen(
        "{\"name\": \"tenant\", \"type\": \"string\"",
        "{\"name\": \"region\", \"type\": \"string\"}, {\"name\": \"tenant\", \"type\": \"string\"",
        1,
    );
    assert_ne!(breaking, dagster_event_text());
    let breaking = Schema::parse_str(&breaking).unwrap();
    assert!(check_backward_compatible(&released, &breaking).is_err());
    // The same field with a default is fine.
    let compatible = dagster_event_text().replacen(
        "{\"name\": \"tenant\", \"type\": \"string\"",
        "{\"name\": \"region\", \"type\": \"string\", \"default\": \"eu\"}, {\"name\": \"tenant\", \"type\": \"string\"",
        1,
    );
    let compatible = Schema::parse_str(&compatible).unwrap();
    check_backward_compatible(&released, &compatible).unwrap();
    // Data written with the old schema reads with the new one, the default filled in.
    let bytes = wire::encode(1, &dagster_event()).unwrap();
    let (_, payload) = wire::split(&bytes).unwrap();
    let value = GenericDatumReader::builder(&released)
        .reader_schema(&compatible)
        .build()
        .unwrap()
        .read_value(&mut &payload[..])
        .unwrap();
    let apache_avro::types::Value::Record(fields) = value else {
        panic!("not a record")
    };
    assert_eq!(
        fields[0],
        (
            "region".into(),
            apache_avro::types::Value::String("eu".into())
        )
    );
}

fn dagster_event_text() -> &'static str {
    DagsterEvent::FILE.text
}

/// The hand-written `DagsterEvent` reader is pinned to the working schema: change
/// `dagster_event.avsc` and this fails until `schemas/src/fast_decode.rs` follows it (then
/// update `PINNED_FINGERPRINT`).
#[test]
fn fast_dagster_event_reader_follows_the_schema() {
    let fingerprint = DagsterEvent::schema()
        .fingerprint::<apache_avro::rabin::Rabin>()
        .to_string();
    assert_eq!(
        fingerprint,
        lineage_schemas::fast_decode::PINNED_FINGERPRINT,
        "dagster_event.avsc changed: update schemas/src/fast_decode.rs to it"
    );
}

/// The hand-written reader gives exactly what apache-avro gives, on every field shape (all
/// optional fields set, none set, extreme numbers, non-ASCII text, long cause chains), and
/// refuses (`None`, for apache-avro to report) every truncated or padded datum.
#[test]
fn fast_dagster_event_reader_reads_what_apache_avro_reads() {
    let full = dagster_event();
    let bare = DagsterEvent {
        tenant: String::new(),
        source: SourcePosition {
            kind: SourceKind::Other,
            storage_id: None,
            shard: None,
            cursor: None,
        },
        event_type: DagsterEventType::Other,
        raw_event_type: "ENGINE_EVENT".into(),
        run_id: None,
        job_name: None,
        step_key: None,
        asset_key: None,
        partition: None,
        timestamp_ms: 0,
        message: None,
        description: None,
        metadata: vec![],
        tags: BTreeMap::new(),
        check: None,
        error: None,
        raw_json: None,
    };
    let mut extreme = dagster_event();
    extreme.tenant = "ünïcødé 你好 😀 \"quoted\"\n".into();
    extreme.event_type = DagsterEventType::RunEnqueued;
    extreme.source.kind = SourceKind::PostgresEventLog;
    extreme.source.storage_id = Some(i64::MAX);
    extreme.timestamp_ms = i64::MIN;
    extreme.asset_key = Some(vec![]);
    extreme.metadata.push(MetadataEntry::int("negative", -1));
    extreme.metadata.push(MetadataEntry {
        float: Some(f64::NEG_INFINITY),
        ..MetadataEntry::empty("float", MetadataKind::Float)
    });
    extreme.metadata.push(MetadataEntry {
        float: Some(f64::NAN),
        bool: Some(true),
        ..MetadataEntry::empty("nan", MetadataKind::Other)
    });
    extreme.tags = (0..300).map(|i| (format!("k{i}"), "v".repeat(i))).collect();
    let mut error = extreme.error.take().unwrap();
    for depth in 0..20 {
        error = ErrorInfo {
            message: format!("level {depth}"),
            class_name: None,
            stack: vec![],
            cause: Some(Box::new(error)),
        };
    }
    extreme.error = Some(error);
    if let Some(check) = &mut extreme.check {
        check.severity = CheckSeverity::Error;
        check.passed = None;
    }
    for event in [full, bare, extreme] {
        let framed = wire::encode(1, &event).unwrap();
        let datum = wire::split(&framed).unwrap().1;
        let fast = lineage_schemas::fast_decode::dagster_event(datum)
            .expect("the fast reader reads a datum of the working schema");
        let generic: DagsterEvent = wire::decode_own(datum).unwrap();
        assert_eq!(format!("{fast:?}"), format!("{generic:?}"));
        for cut in 0..datum.len() {
            assert!(
                lineage_schemas::fast_decode::dagster_event(&datum[..cut]).is_none(),
                "a datum cut at {cut} of {} bytes was read",
                datum.len()
            );
        }
        let mut padded = datum.to_vec();
        padded.push(0);
        assert!(lineage_schemas::fast_decode::dagster_event(&padded).is_none());
    }
    // an out-of-range union branch is refused
    let framed = wire::encode(1, &dagster_event()).unwrap();
    let mut datum = wire::split(&framed).unwrap().1.to_vec();
    let tenant_len = "prod".len() + 1; // zig-zag length byte + text
    let source_kind = tenant_len; // then SourceKind's index, then storage_id's branch
    datum[source_kind + 1] = 4; // branch 2 (zig-zag)
    assert!(lineage_schemas::fast_decode::dagster_event(&datum).is_none());
}
