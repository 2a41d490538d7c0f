//! Resolver tests: every rule of OpenMetadata's connector documentation, the extensions,
//! late arrival, explain, and (proptest) independence from arrival order.

use lineage_schemas::records::{MetadataEntry, MetadataKind, TableSnapshot};

use super::*;
use crate::state::assets::AssetRef;
use crate::state::assets::tests::definition;
use crate::state::tables::TableIndex;
use crate::state::tables::tests::snapshot;

fn index(tables: &[(&str, &str, &str, &str)]) -> TableIndex {
    let mut index = TableIndex::new();
    for (service, database, schema, table) in tables {
        index.upsert(&snapshot(service, database, schema, table));
    }
    index
}

fn key(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

fn text(label: &str, value: &str) -> MetadataEntry {
    MetadataEntry::text(label, MetadataKind::Text, value)
}

/// The FQN chosen, or the reason none was.
fn chosen(resolution: &Resolution) -> Result<&str, Unresolved> {
    match &resolution.outcome {
        Outcome::Resolved { table } => Ok(&table.fqn),
        Outcome::Unresolved { reason } => Err(*reason),
    }
}

fn run(
    config: &ResolverConfig,
    index: &TableIndex,
    parts: &[&str],
    hints: &TableHints,
) -> Resolution {
    resolve(config, index, &key(parts), hints)
}

// --- the connector documentation's examples ---------------------------------------------

#[test]
fn three_part_key_is_database_schema_table() {
    let index = index(&[
        ("pg", "my_database", "my_schema", "customers"),
        ("pg", "other_db", "my_schema", "customers"),
    ]);
    let config = ResolverConfig::default();
    let r = run(
        &config,
        &index,
        &["my_database", "my_schema", "customers"],
        &TableHints::default(),
    );
    assert_eq!(chosen(&r), Ok("pg.my_database.my_schema.customers"));
    assert_eq!(r.rule, Some(Rule::AssetKey));
    assert!(!r.ambiguous);
    let lookup = &r.lookups[0];
    assert_eq!(lookup.database.as_deref(), Some("my_database"));
    assert_eq!(lookup.schema.as_deref(), Some("my_schema"));
}

#[test]
fn two_and_one_part_keys_leave_the_rest_open() {
    let index = index(&[("pg", "db", "raw", "users"), ("pg", "db", "raw", "events")]);
    let config = ResolverConfig::default();
    let r = run(&config, &index, &["raw", "users"], &TableHints::default());
    assert_eq!(chosen(&r), Ok("pg.db.raw.users"));
    assert_eq!(r.lookups[0].database, None);
    assert_eq!(r.lookups[0].schema.as_deref(), Some("raw"));
    let r = run(&config, &index, &["events"], &TableHints::default());
    assert_eq!(chosen(&r), Ok("pg.db.raw.events"));
    assert_eq!(r.lookups[0].schema, None);
}

#[test]
fn strip_prefix_example_1_removes_the_environment() {
    let index = index(&[("pg", "analytics_db", "public", "customers")]);
    let config = ResolverConfig {
        strip_asset_key_prefix_length: 1,
        ..ResolverConfig::default()
    };
    let r = run(
        &config,
        &index,
        &["prod", "analytics_db", "public", "customers"],
        &TableHints::default(),
    );
    assert_eq!(
        r.key_after_strip,
        key(&["analytics_db", "public", "customers"])
    );
    assert_eq!(chosen(&r), Ok("pg.analytics_db.public.customers"));
    assert_eq!(r.rule, Some(Rule::AssetKey));
}

#[test]
fn strip_prefix_example_2_removes_project_and_environment() {
    let index = index(&[("sf", "warehouse", "raw", "users")]);
    let config = ResolverConfig {
        strip_asset_key_prefix_length: 2,
        ..ResolverConfig::default()
    };
    let r = run(
        &config,
        &index,
        &["my_project", "staging", "warehouse", "raw", "users"],
        &TableHints::default(),
    );
    assert_eq!(chosen(&r), Ok("sf.warehouse.raw.users"));
    // The doc's other example: 2 on ["project", "env", "schema", "table"] gives schema.table.
    let index2 = super::tests::index(&[("pg", "db", "schema", "table")]);
    let r = run(
        &config,
        &index2,
        &["project", "env", "schema", "table"],
        &TableHints::default(),
    );
    assert_eq!(r.key_after_strip, key(&["schema", "table"]));
    assert_eq!(chosen(&r), Ok("pg.db.schema.table"));
}

#[test]
fn strip_at_or_beyond_the_key_length_keeps_the_key_whole() {
    let index = index(&[("pg", "db", "s", "orders")]);
    let config = ResolverConfig {
        strip_asset_key_prefix_length: 2,
        ..ResolverConfig::default()
    };
    let r = run(&config, &index, &["s", "orders"], &TableHints::default());
    assert_eq!(r.key_after_strip, key(&["s", "orders"]));
    assert_eq!(chosen(&r), Ok("pg.db.s.orders"));
    assert_eq!(r.ignored.len(), 1, "{:?}", r.ignored);
}

#[test]
fn without_strip_a_prefixed_key_does_not_match_as_database_schema_table() {
    let index = index(&[("pg", "analytics_db", "public", "customers")]);
    let config = ResolverConfig {
        long_keys: LongKeys::Unresolved,
        ..ResolverConfig::default()
    };
    let r = run(
        &config,
        &index,
        &["prod", "analytics_db", "public", "customers"],
        &TableHints::default(),
    );
    assert_eq!(chosen(&r), Err(Unresolved::NoName));
}

#[test]
fn labels_fill_the_missing_database_and_schema() {
    let index = index(&[
        ("pg", "analytics_db", "raw", "customers"),
        ("pg", "analytics_db", "staging", "customers"),
    ]);
    let hints =
        TableHints::from_metadata(&[text("db", "analytics_db"), text("schema_name", "raw")]);
    let r = run(&ResolverConfig::default(), &index, &["customers"], &hints);
    assert_eq!(chosen(&r), Ok("pg.analytics_db.raw.customers"));
    assert!(!r.ambiguous);
    assert_eq!(r.lookups[0].filled_from_labels, vec!["database", "schema"]);
    // A part present in the key is not replaced by a label.
    let r = run(
        &ResolverConfig::default(),
        &index,
        &["staging", "customers"],
        &hints,
    );
    assert_eq!(chosen(&r), Ok("pg.analytics_db.staging.customers"));
    assert_eq!(r.lookups[0].filled_from_labels, vec!["database"]);
}

#[test]
fn labels_naming_a_table_resolve_a_custom_key() {
    // The documentation's raw_customers example.
    let index = index(&[("pg", "analytics_db", "raw", "customers")]);
    let hints = TableHints::from_metadata(&[
        text("database", "analytics_db"),
        text("schema", "raw"),
        text("table", "customers"),
    ]);
    let r = run(
        &ResolverConfig::default(),
        &index,
        &["raw_customers"],
        &hints,
    );
    assert_eq!(chosen(&r), Ok("pg.analytics_db.raw.customers"));
    assert_eq!(r.rule, Some(Rule::MetadataLabels));
    let off = ResolverConfig {
        use_metadata_labels: false,
        ..ResolverConfig::default()
    };
    let r = run(&off, &index, &["raw_customers"], &hints);
    assert_eq!(chosen(&r), Err(Unresolved::NotFound));
}

#[test]
fn db_service_names_are_tried_in_order_first_match_wins() {
    let index = index(&[
        ("my_snowflake", "db", "s", "orders"),
        ("my_postgres", "db", "s", "orders"),
        ("my_snowflake", "db", "s", "only_in_sf"),
    ]);
    let config = ResolverConfig {
        db_service_names: vec!["my_postgres".into(), "my_snowflake".into()],
        ..ResolverConfig::default()
    };
    let r = run(
        &config,
        &index,
        &["db", "s", "orders"],
        &TableHints::default(),
    );
    assert_eq!(chosen(&r), Ok("my_postgres.db.s.orders"));
    assert!(
        !r.ambiguous,
        "one match in the first service is not ambiguous"
    );
    assert_eq!(r.lookups.len(), 1);
    let r = run(
        &config,
        &index,
        &["db", "s", "only_in_sf"],
        &TableHints::default(),
    );
    assert_eq!(chosen(&r), Ok("my_snowflake.db.s.only_in_sf"));
    let services: Vec<_> = r.lookups.iter().map(|l| l.service.as_deref()).collect();
    assert_eq!(services, vec![Some("my_postgres"), Some("my_snowflake")]);
    // A service outside the list is never searched.
    let config = ResolverConfig {
        db_service_names: vec!["my_postgres".into()],
        ..ResolverConfig::default()
    };
    let r = run(
        &config,
        &index,
        &["db", "s", "only_in_sf"],
        &TableHints::default(),
    );
    assert_eq!(chosen(&r), Err(Unresolved::NotFound));
}

#[test]
fn a_key_that_does_not_match_the_table_name_is_not_found() {
    // "Won't match if table in database is user_data".
    let index = index(&[("pg", "db", "s", "user_data")]);
    let r = run(
        &ResolverConfig::default(),
        &index,
        &["users"],
        &TableHints::default(),
    );
    assert_eq!(chosen(&r), Err(Unresolved::NotFound));
    assert_eq!(r.watched_names().collect::<Vec<_>>(), vec!["users"]);
}

// --- extensions -----------------------------------------------------------------------------

#[test]
fn dagster_table_name_comes_first_and_relation_identifier_next() {
    let index = index(&[
        ("pg", "my.db", "Sales", "orders"),
        ("pg", "db", "s", "orders_key"),
        ("pg", "db", "s", "rel"),
    ]);
    let config = ResolverConfig::default();
    let hints = TableHints::from_metadata(&[
        text(DAGSTER_TABLE_NAME, r#""my.db"."Sales".orders"#),
        text(DAGSTER_RELATION_IDENTIFIER, "db.s.rel"),
    ]);
    let r = run(&config, &index, &["db", "s", "orders_key"], &hints);
    assert_eq!(chosen(&r), Ok("pg.\"my.db\".Sales.orders"));
    assert_eq!(r.rule, Some(Rule::DagsterTableName));
    // When the table name matches nothing, relation_identifier is next.
    let hints = TableHints {
        table_name: Some("nowhere.t".into()),
        ..hints
    };
    let r = run(&config, &index, &["db", "s", "orders_key"], &hints);
    assert_eq!(chosen(&r), Ok("pg.db.s.rel"));
    assert_eq!(r.rule, Some(Rule::DagsterRelationIdentifier));
    assert_eq!(r.lookups.len(), 2);
    // A four-part name carries the service.
    let hints = TableHints {
        table_name: Some("pg.db.s.rel".into()),
        ..TableHints::default()
    };
    let r = run(&config, &index, &["x"], &hints);
    assert_eq!(r.lookups[0].service.as_deref(), Some("pg"));
    assert_eq!(chosen(&r), Ok("pg.db.s.rel"));
    // Unparsable names are reported and skipped.
    let hints = TableHints {
        table_name: Some("a..b".into()),
        relation_identifier: Some("a.b.c.d.e".into()),
        ..TableHints::default()
    };
    let r = run(&config, &index, &["orders_key"], &hints);
    assert_eq!(chosen(&r), Ok("pg.db.s.orders_key"));
    assert_eq!(r.ignored.len(), 2, "{:?}", r.ignored);
    let off = ResolverConfig {
        use_dagster_table_name: false,
        ..config
    };
    let hints = TableHints {
        table_name: Some("db.s.rel".into()),
        ..TableHints::default()
    };
    let r = run(&off, &index, &["orders_key"], &hints);
    assert_eq!(chosen(&r), Ok("pg.db.s.orders_key"));
}

#[test]
fn ambiguity_is_deterministic_and_reported() {
    let tables = [
        ("pg", "db2", "sales", "orders"),
        ("pg", "db1", "public", "orders"),
        ("sf", "dwh", "public", "orders"),
    ];
    let config = ResolverConfig::default();
    let forward = run(
        &config,
        &index(&tables),
        &["orders"],
        &TableHints::default(),
    );
    let mut reversed_tables = tables;
    reversed_tables.reverse();
    let backward = run(
        &config,
        &index(&reversed_tables),
        &["orders"],
        &TableHints::default(),
    );
    assert_eq!(forward.candidates, backward.candidates);
    assert_eq!(chosen(&forward), Ok("pg.db1.public.orders"));
    assert_eq!(chosen(&backward), Ok("pg.db1.public.orders"));
    assert!(forward.ambiguous);
    let fqns: Vec<_> = forward.candidates.iter().map(|c| c.fqn.as_str()).collect();
    assert_eq!(
        fqns,
        vec![
            "pg.db1.public.orders",
            "pg.db2.sales.orders",
            "sf.dwh.public.orders"
        ]
    );
    let skip = ResolverConfig {
        on_ambiguity: OnAmbiguity::Skip,
        ..config
    };
    let r = run(&skip, &index(&tables), &["orders"], &TableHints::default());
    assert_eq!(chosen(&r), Err(Unresolved::Ambiguous));
    assert_eq!(r.candidates.len(), 3);
}

#[test]
fn long_keys_resolve_by_suffix_only_when_unique() {
    let index = index(&[
        ("pg", "warehouse", "raw", "users"),
        ("pg", "warehouse", "raw", "events"),
        ("sf", "warehouse", "raw", "events"),
    ]);
    let config = ResolverConfig::default();
    let r = run(
        &config,
        &index,
        &["proj", "env", "warehouse", "raw", "users"],
        &TableHints::default(),
    );
    assert_eq!(chosen(&r), Ok("pg.warehouse.raw.users"));
    assert_eq!(r.rule, Some(Rule::KeySuffix));
    let r = run(
        &config,
        &index,
        &["proj", "warehouse", "raw", "events"],
        &TableHints::default(),
    );
    assert_eq!(chosen(&r), Err(Unresolved::Ambiguous));
    assert!(r.ambiguous);
    assert_eq!(r.candidates.len(), 2);
    // dbServiceNames narrow the suffix match to one table.
    let narrowed = ResolverConfig {
        db_service_names: vec!["sf".into()],
        ..ResolverConfig::default()
    };
    let r = run(
        &narrowed,
        &index,
        &["proj", "warehouse", "raw", "events"],
        &TableHints::default(),
    );
    assert_eq!(chosen(&r), Ok("sf.warehouse.raw.events"));
    let off = ResolverConfig {
        long_keys: LongKeys::Unresolved,
        ..ResolverConfig::default()
    };
    let r = run(
        &off,
        &index,
        &["proj", "env", "warehouse", "raw", "users"],
        &TableHints::default(),
    );
    assert_eq!(chosen(&r), Err(Unresolved::NoName));
}

#[test]
fn case_handling_is_explicit() {
    let index = index(&[
        ("sf", "DWH", "PUBLIC", "ORDERS"),
        ("sf", "DWH", "PUBLIC", "orders"),
    ]);
    let insensitive = ResolverConfig::default();
    let r = run(
        &insensitive,
        &index,
        &["dwh", "public", "Orders"],
        &TableHints::default(),
    );
    assert!(r.ambiguous);
    // Neither matches in case: the smaller FQN wins.
    assert_eq!(chosen(&r), Ok("sf.DWH.PUBLIC.ORDERS"));
    let r = run(
        &insensitive,
        &index,
        &["DWH", "PUBLIC", "orders"],
        &TableHints::default(),
    );
    assert_eq!(
        chosen(&r),
        Ok("sf.DWH.PUBLIC.orders"),
        "the exact-case match comes first"
    );
    assert!(r.candidates[0].exact_case && !r.candidates[1].exact_case);
    let exact = ResolverConfig {
        case: CaseMode::Exact,
        ..ResolverConfig::default()
    };
    let r = run(
        &exact,
        &index,
        &["dwh", "public", "orders"],
        &TableHints::default(),
    );
    assert_eq!(chosen(&r), Err(Unresolved::NotFound));
    let r = run(
        &exact,
        &index,
        &["DWH", "PUBLIC", "ORDERS"],
        &TableHints::default(),
    );
    assert_eq!(chosen(&r), Ok("sf.DWH.PUBLIC.ORDERS"));
    assert!(!r.ambiguous);
}

#[test]
fn an_empty_key_without_hints_has_no_name() {
    let r = run(
        &ResolverConfig::default(),
        &TableIndex::new(),
        &[],
        &TableHints::default(),
    );
    assert_eq!(chosen(&r), Err(Unresolved::NoName));
    assert!(r.lookups.is_empty());
}

// --- the join: late arrival, materializations, explain ------------------------------------

fn asset(parts: &[&str]) -> AssetRef {
    AssetRef::new("t", parts.iter().copied())
}

#[test]
fn a_table_arriving_late_resolves_the_waiting_assets() {
    let mut join = JoinState::new(ResolverConfig::default());
    let changed = join.on_asset_upsert(definition(
        &["db", "s", "orders"],
        &[&["db", "s", "raw_orders"]],
    ));
    // The dep became known (it is watched from now on).
    let upstream = asset(&["db", "s", "raw_orders"]);
    assert_eq!(
        changed,
        vec![asset(&["db", "s", "orders"]), upstream.clone()]
    );
    assert!(join.resolution(&upstream).table().is_none());
    assert_eq!(join.watched_names(&upstream), ["raw_orders"]);
    let edges = join.edges(&asset(&["db", "s", "orders"]));
    assert_eq!(edges.len(), 1);
    assert!(!edges[0].is_ready());

    // An unrelated table wakes nobody.
    assert!(
        join.on_table_upsert(&snapshot("pg", "db", "s", "customers"))
            .is_empty()
    );
    // The downstream table arrives: one side resolves, the edge still waits.
    let changed = join.on_table_upsert(&snapshot("pg", "db", "s", "orders"));
    assert_eq!(changed, vec![asset(&["db", "s", "orders"])]);
    assert!(!join.edges(&upstream)[0].is_ready());
    // The upstream table arrives: the edge is ready now.
    let changed = join.on_table_upsert(&snapshot("pg", "db", "s", "raw_orders"));
    assert_eq!(changed, vec![upstream.clone()]);
    let edge = &join.edges(&upstream)[0];
    assert!(edge.is_ready());
    assert_eq!(edge.upstream_table.as_deref(), Some("pg.db.s.raw_orders"));
    assert_eq!(edge.downstream_table.as_deref(), Some("pg.db.s.orders"));
    let table = join.table_of(&upstream).expect("resolved");
    assert_eq!(table.column_fqns()[0], "pg.db.s.raw_orders.id");

    // Deleting it puts the edge back to waiting.
    let changed = join.on_table_delete("pg.db.s.raw_orders");
    assert_eq!(changed, vec![upstream.clone()]);
    assert!(!join.edges(&upstream)[0].is_ready());
}

#[test]
fn a_better_table_arriving_later_changes_the_choice() {
    let config = ResolverConfig {
        db_service_names: vec!["first".into(), "second".into()],
        ..ResolverConfig::default()
    };
    let mut join = JoinState::new(config);
    join.on_asset_upsert(definition(&["db", "s", "orders"], &[]));
    join.on_table_upsert(&snapshot("second", "db", "s", "orders"));
    let a = asset(&["db", "s", "orders"]);
    assert_eq!(
        join.resolution(&a).table().map(|t| t.fqn.as_str()),
        Some("second.db.s.orders")
    );
    let changed = join.on_table_upsert(&snapshot("first", "db", "s", "orders"));
    assert_eq!(changed, vec![a.clone()]);
    assert_eq!(
        join.resolution(&a).table().map(|t| t.fqn.as_str()),
        Some("first.db.s.orders")
    );
}

#[test]
fn materialization_metadata_overrides_definition_metadata() {
    let mut join = JoinState::new(ResolverConfig::default());
    let mut def = definition(&["my_asset"], &[]);
    def.metadata = vec![text(DAGSTER_TABLE_NAME, "db.s.old_table")];
    join.on_asset_upsert(def);
    join.on_table_upsert(&snapshot("pg", "db", "s", "old_table"));
    join.on_table_upsert(&snapshot("pg", "db", "s", "new_table"));
    let a = asset(&["my_asset"]);
    assert_eq!(
        join.resolution(&a).table().map(|t| t.fqn.as_str()),
        Some("pg.db.s.old_table")
    );
    let changed = join.on_materialization(&a, &[text(DAGSTER_TABLE_NAME, "db.s.new_table")], &[]);
    assert_eq!(changed, vec![a.clone()]);
    assert_eq!(
        join.resolution(&a).table().map(|t| t.fqn.as_str()),
        Some("pg.db.s.new_table")
    );
    // A materialization without hints changes nothing.
    assert!(
        join.on_materialization(&a, &[MetadataEntry::int("dagster/row_count", 3)], &[])
            .is_empty()
    );
    assert!(
        join.on_materialization(&a, &[text(DAGSTER_TABLE_NAME, "db.s.new_table")], &[])
            .is_empty()
    );
}

#[test]
fn removing_an_asset_forgets_deps_nobody_references() {
    let mut join = JoinState::new(ResolverConfig::default());
    join.on_asset_upsert(definition(&["b"], &[&["a"]]));
    let a = asset(&["a"]);
    assert_eq!(join.watched_names(&a), ["a"]);
    let changed = join.on_asset_delete(&asset(&["b"]));
    assert_eq!(changed, vec![a.clone(), asset(&["b"])]);
    assert!(join.watched_names(&a).is_empty());
    assert!(
        join.on_table_upsert(&snapshot("pg", "d", "s", "a"))
            .is_empty()
    );
    assert!(join.on_asset_delete(&asset(&["b"])).is_empty());
}

#[test]
fn explain_answers_the_troubleshooting_questions() {
    let mut join = JoinState::new(ResolverConfig::default());
    let mut lonely = definition(&["lonely"], &[]);
    lonely.job_names.clear();
    join.on_asset_upsert(lonely);
    let e = join.explain(&asset(&["lonely"]));
    assert!(e.defined);
    assert!(e.findings.contains(&Finding::NotInAnyJob));
    assert!(e.findings.contains(&Finding::NoDeps));
    assert!(e.findings.contains(&Finding::TableNotFound {
        waiting_for: vec!["lonely".into()]
    }));

    join.on_asset_upsert(definition(&["db", "s", "orders"], &[&["db", "s", "raw"]]));
    join.on_table_upsert(&snapshot("pg", "db", "s", "orders"));
    join.on_table_upsert(&snapshot("sf", "db", "s", "orders"));
    let e = join.explain(&asset(&["db", "s", "orders"]));
    assert_eq!(e.resolution.rule, Some(Rule::AssetKey));
    assert_eq!(e.job_names, vec!["job"]);
    assert!(
        matches!(
            &e.findings[..],
            [Finding::Ambiguous { chosen: Some(fqn), candidates }, Finding::EdgesWaiting { count: 1 }]
                if fqn == "pg.db.s.orders" && candidates.len() == 2
        ),
        "{:?}",
        e.findings
    );
    assert!(!e.edges[0].ready);
    let json = serde_json::to_value(&e).expect("serializable");
    assert_eq!(json["resolution"]["outcome"]["status"], "resolved");
    assert_eq!(
        json["resolution"]["outcome"]["table"]["fqn"],
        "pg.db.s.orders"
    );
    assert_eq!(json["resolution"]["lookups"][0]["rule"], "asset_key");
    assert_eq!(json["edges"][0]["upstream"]["key"][2], "raw");
    assert_eq!(json["findings"][0]["finding"], "ambiguous");

    let e = join.explain(&asset(&["unknown"]));
    assert!(!e.defined);
    assert_eq!(e.findings[0], Finding::NotDefined);
}

// --- order independence ---------------------------------------------------------------------

mod order {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    const NAMES: [&str; 4] = ["orders", "Orders", "users", "events"];
    const SERVICES: [&str; 3] = ["pg", "sf", "bq"];
    const DBS: [&str; 2] = ["db", "DB"];

    /// An input record of the join.
    #[derive(Debug, Clone)]
    enum Input {
        Table(TableSnapshot),
        DeleteTable(String),
        Asset(lineage_schemas::records::AssetDefinition),
    }

    fn table() -> impl Strategy<Value = TableSnapshot> {
        (0..SERVICES.len(), 0..DBS.len(), 0..2usize, 0..NAMES.len()).prop_map(|(s, d, sc, n)| {
            snapshot(SERVICES[s], DBS[d], ["public", "raw"][sc], NAMES[n])
        })
    }

    fn asset_key() -> impl Strategy<Value = Vec<String>> {
        prop_oneof![
            (0..NAMES.len()).prop_map(|n| vec![NAMES[n].to_lowercase()]),
            (0..2usize, 0..NAMES.len())
                .prop_map(|(sc, n)| vec![["public", "raw"][sc].into(), NAMES[n].into()]),
            (0..DBS.len(), 0..NAMES.len()).prop_map(|(d, n)| vec![
                "env".into(),
                "x".into(),
                DBS[d].into(),
                "public".into(),
                NAMES[n].into()
            ]),
        ]
    }

    fn assets() -> impl Strategy<Value = Vec<lineage_schemas::records::AssetDefinition>> {
        proptest::collection::btree_map(
            asset_key(),
            (proptest::collection::vec(asset_key(), 0..3), any::<bool>()),
            1..6,
        )
        .prop_map(|defs| {
            defs.into_iter()
                .map(|(key, (deps, table_name))| {
                    let key_refs: Vec<&str> = key.iter().map(String::as_str).collect();
                    let dep_refs: Vec<Vec<&str>> = deps
                        .iter()
                        .map(|d| d.iter().map(String::as_str).collect())
                        .collect();
                    let dep_slices: Vec<&[&str]> = dep_refs.iter().map(Vec::as_slice).collect();
                    let mut def = definition(&key_refs, &dep_slices);
                    if table_name {
                        def.metadata = vec![text(DAGSTER_TABLE_NAME, "db.raw.users")];
                    }
                    def
                })
                .collect()
        })
    }

    fn config() -> impl Strategy<Value = ResolverConfig> {
        (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(exact, services, skip)| {
            ResolverConfig {
                case: if exact {
                    CaseMode::Exact
                } else {
                    CaseMode::Insensitive
                },
                db_service_names: if services {
                    vec!["sf".into(), "pg".into()]
                } else {
                    Vec::new()
                },
                on_ambiguity: if skip {
                    OnAmbiguity::Skip
                } else {
                    OnAmbiguity::Choose
                },
                ..ResolverConfig::default()
            }
        })
    }

    /// The inputs: distinct tables (some deleted at the end) and assets.
    fn inputs() -> impl Strategy<Value = Vec<Input>> {
        (
            proptest::collection::vec((table(), any::<bool>()), 0..12),
            assets(),
        )
            .prop_map(|(tables, assets)| {
                let tables: BTreeMap<String, (TableSnapshot, bool)> = tables
                    .into_iter()
                    .map(|(t, deleted)| (t.fqn.clone(), (t, deleted)))
                    .collect();
                let mut inputs = Vec::new();
                for (fqn, (snapshot, deleted)) in tables {
                    inputs.push(Input::Table(snapshot));
                    if deleted {
                        inputs.push(Input::DeleteTable(fqn));
                    }
                }
                inputs.extend(assets.into_iter().map(Input::Asset));
                inputs
            })
    }

    /// A permutation that keeps each table's deletion after its upsert (a compacted topic
    /// keeps per-key order, and records of different keys interleave freely).
    fn shuffled(inputs: &[Input], seed: &[u32]) -> Vec<Input> {
        let mut order: Vec<(u32, usize)> = seed.iter().copied().zip(0..inputs.len()).collect();
        order.sort();
        let mut out: Vec<Input> = order.into_iter().map(|(_, i)| inputs[i].clone()).collect();
        // Restore per-key order: a deletion before its upsert is swapped behind it.
        let mut i = 0;
        while i < out.len() {
            if let Input::DeleteTable(fqn) = &out[i]
                && let Some(j) = out[i + 1..]
                    .iter()
                    .position(|x| matches!(x, Input::Table(t) if &t.fqn == fqn))
            {
                out.swap(i, i + 1 + j);
                continue;
            }
            i += 1;
        }
        out
    }

    /// Every known asset's (rule, candidates, chosen FQN or reason) and every edge.
    fn outcome(join: &JoinState, assets: &[AssetRef]) -> Vec<String> {
        let mut out = Vec::new();
        for asset in assets {
            let r = join.resolution(asset);
            out.push(format!(
                "{asset}: {:?} {:?} {:?} {:?}",
                r.rule,
                r.candidates,
                chosen(&r),
                r.lookups
            ));
            for edge in join.edges(asset) {
                out.push(format!("{edge:?}"));
            }
        }
        out
    }

    fn apply(join: &mut JoinState, inputs: &[Input]) {
        for input in inputs {
            match input {
                Input::Table(t) => {
                    join.on_table_upsert(t);
                }
                Input::DeleteTable(fqn) => {
                    join.on_table_delete(fqn);
                }
                Input::Asset(def) => {
                    join.on_asset_upsert(def.clone());
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn the_join_does_not_depend_on_arrival_order(
            config in config(),
            inputs in inputs(),
            seed in proptest::collection::vec(any::<u32>(), 40),
        ) {
            let seed = &seed[..inputs.len().min(seed.len())];
            let inputs = &inputs[..seed.len()];
            let mut everything: Vec<AssetRef> = inputs.iter().filter_map(|i| match i {
                Input::Asset(d) => Some(AssetRef::of(d)),
                _ => None,
            }).collect();
            for i in inputs {
                if let Input::Asset(d) = i {
                    everything.extend(d.deps.iter().map(|k| AssetRef::new("t", k.iter().cloned())));
                }
            }
            everything.sort();
            everything.dedup();

            let mut in_order = JoinState::new(config.clone());
            apply(&mut in_order, inputs);
            let mut shuffled_join = JoinState::new(config.clone());
            apply(&mut shuffled_join, &shuffled(inputs, seed));
            prop_assert_eq!(outcome(&in_order, &everything), outcome(&shuffled_join, &everything));

            // The incremental caches equal a resolution from scratch on the final state.
            for asset in &everything {
                let fresh = resolve(&config, shuffled_join.tables(), &asset.key, &shuffled_join.hints(asset));
                let cached = shuffled_join.resolution(asset);
                prop_assert_eq!(chosen(&fresh), chosen(&cached));
                prop_assert_eq!(&fresh.candidates, &cached.candidates);
                prop_assert_eq!(&fresh.lookups, &cached.lookups);
            }
        }
    }
}
