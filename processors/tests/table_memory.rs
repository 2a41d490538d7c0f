//! The table index holds a million tables in ≤ 300 MB (issue 6). Its own binary, so the
//! resident-size delta measured through `/proc/self/statm` is the index's alone.

use lineage_processors::state::{CaseMode, TableIndex, TableQuery};
use lineage_schemas::records::{Column, TableSnapshot};

const TABLES: usize = 1_000_000;
const COLUMNS_PER_TABLE: usize = 10;
const LIMIT_BYTES: usize = 300 * 1024 * 1024;

/// Resident set size, from `/proc/self/statm` (pages × 4 KiB).
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("procfs is mounted");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("statm's second field is the resident page count");
    pages * 4096
}

/// A realistic catalog: 4 services, 40 databases, 400 schemas, unique table names, columns
/// drawn from a pool of 200 names, unique UUIDs. One snapshot is rewritten in place so the
/// generator allocates nothing that outlives an iteration.
fn fill(index: &mut TableIndex) {
    let mut snapshot = TableSnapshot {
        tenant: "openmetadata".to_owned(),
        fqn: String::new(),
        id: String::new(),
        service: String::new(),
        database: String::new(),
        schema: String::new(),
        table: String::new(),
        service_type: Some("Snowflake".to_owned()),
        table_type: Some("Regular".to_owned()),
        description: None,
        columns: (0..COLUMNS_PER_TABLE)
            .map(|_| Column {
                name: String::new(),
                data_type: "VARCHAR".to_owned(),
                data_type_display: None,
                fqn: String::new(),
                description: None,
                children: Vec::new(),
            })
            .collect(),
        tags: Vec::new(),
        owners: Vec::new(),
        deleted: false,
        version: 0.1,
        updated_at_ms: 0,
    };
    for i in 0..TABLES {
        snapshot.service = format!("warehouse_{}", i % 4);
        snapshot.database = format!("analytics_{}", i % 40);
        snapshot.schema = format!("schema_{}", i % 400);
        snapshot.table = format!("fact_table_{i:07}");
        snapshot.fqn = format!(
            "{}.{}.{}.{}",
            snapshot.service, snapshot.database, snapshot.schema, snapshot.table
        );
        snapshot.id = format!("{:08x}-0000-4000-8000-{:012x}", i, i * 7919);
        for (c, column) in snapshot.columns.iter_mut().enumerate() {
            column.name = format!("column_{}", (i + c * 17) % 200);
            column.fqn = format!("{}.{}", snapshot.fqn, column.name);
        }
        index.upsert(&snapshot);
    }
}

#[test]
fn a_million_tables_fit_in_300_mb() {
    let before = resident_bytes();
    let mut index = TableIndex::new();
    fill(&mut index);
    let after = resident_bytes();
    let resident = after.saturating_sub(before);
    let heap = index.heap_bytes();
    eprintln!(
        "table index: {TABLES} tables x {COLUMNS_PER_TABLE} columns: resident delta {:.1} MiB, \
         heap (capacity) {:.1} MiB, {:.0} bytes/table",
        resident as f64 / 1048576.0,
        heap as f64 / 1048576.0,
        heap as f64 / TABLES as f64
    );
    assert_eq!(index.len(), TABLES);
    assert!(
        resident <= LIMIT_BYTES,
        "resident delta {resident} > {LIMIT_BYTES}"
    );
    assert!(heap <= LIMIT_BYTES, "heap {heap} > {LIMIT_BYTES}");

    // The index still answers correctly at that size.
    let query = TableQuery {
        service: None,
        database: Some("analytics_7"),
        schema: None,
        table: "FACT_TABLE_0123447",
    };
    let found = index.lookup(&query, CaseMode::Insensitive);
    assert_eq!(found.len(), 1);
    let table = index.get(found[0].id).expect("live");
    assert_eq!(
        table.fqn(),
        "warehouse_3.analytics_7.schema_247.fact_table_0123447"
    );
    assert_eq!(
        table.entity_id(),
        format!("0001e237-0000-4000-8000-{:012x}", 123447 * 7919)
    );
    assert_eq!(table.column_fqns().len(), COLUMNS_PER_TABLE);
}
