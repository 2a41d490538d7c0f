//! Resolution throughput (resolutions/s) against a 100k-table index, on a mix of keys:
//! 3-part, 2-part, 1-part (often ambiguous), `dagster/table_name`, labels, long keys
//! resolved by suffix, and keys that match nothing.

use criterion::{Criterion, Throughput};
use lineage_processors::resolve::{ResolverConfig, TableHints, resolve};
use lineage_processors::state::TableIndex;
use lineage_schemas::records::{Column, TableSnapshot};

const TABLES: usize = 100_000;

fn index() -> TableIndex {
    let mut index = TableIndex::new();
    for i in 0..TABLES {
        let (service, database, schema) = (
            format!("svc_{}", i % 3),
            format!("db_{}", i % 20),
            format!("schema_{}", i % 200),
        );
        // Every 10th name repeats across schemas, so 1-part keys are ambiguous.
        let table = if i % 10 == 0 {
            format!("shared_{}", i % 1000)
        } else {
            format!("t_{i}")
        };
        let fqn = format!("{service}.{database}.{schema}.{table}");
        let columns = ["id", "name", "created_at"]
            .iter()
            .map(|c| Column {
                name: (*c).to_owned(),
                data_type: "VARCHAR".to_owned(),
                data_type_display: None,
                fqn: format!("{fqn}.{c}"),
                description: None,
                children: Vec::new(),
            })
            .collect();
        index.upsert(&TableSnapshot {
            tenant: "om".to_owned(),
            fqn,
            id: format!("{i:08x}-0000-4000-8000-000000000000"),
            service,
            database,
            schema,
            table,
            service_type: None,
            table_type: None,
            description: None,
            columns,
            tags: Vec::new(),
            owners: Vec::new(),
            deleted: false,
            version: 0.1,
            updated_at_ms: 0,
        });
    }
    index
}

fn cases() -> Vec<(Vec<String>, TableHints)> {
    let key = |parts: &[String]| parts.to_vec();
    let mut cases = Vec::new();
    for i in (1..TABLES).step_by(997) {
        let (db, schema, table) = (
            format!("db_{}", i % 20),
            format!("schema_{}", i % 200),
            format!("t_{i}"),
        );
        cases.push((
            key(&[db.clone(), schema.clone(), table.clone()]),
            TableHints::default(),
        ));
        cases.push((key(&[schema.clone(), table.clone()]), TableHints::default()));
        cases.push((key(&[table.to_uppercase()]), TableHints::default()));
        cases.push((
            key(&[format!("shared_{}", i % 1000 / 10 * 10)]),
            TableHints::default(),
        ));
        cases.push((
            key(&["asset".to_owned()]),
            TableHints {
                table_name: Some(format!("{db}.{schema}.{table}")),
                ..TableHints::default()
            },
        ));
        cases.push((
            key(&["custom".to_owned()]),
            TableHints {
                database: Some(db.clone()),
                schema: Some(schema.clone()),
                table: Some(table.clone()),
                ..TableHints::default()
            },
        ));
        cases.push((
            key(&["proj".into(), "env".into(), db, schema, table]),
            TableHints::default(),
        ));
        cases.push((key(&[format!("missing_{i}")]), TableHints::default()));
    }
    cases
}

fn bench(c: &mut Criterion) {
    let index = index();
    let cases = cases();
    let config = ResolverConfig::default();
    let with_services = ResolverConfig {
        db_service_names: vec!["svc_2".into(), "svc_1".into(), "svc_0".into()],
        ..ResolverConfig::default()
    };
    let mut group = c.benchmark_group("resolve");
    group.throughput(Throughput::Elements(cases.len() as u64));
    for (name, config) in [
        ("all_services", &config),
        ("db_service_names", &with_services),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut resolved = 0usize;
                for (key, hints) in &cases {
                    resolved += usize::from(resolve(config, &index, key, hints).table().is_some());
                }
                resolved
            })
        });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}
