//! A processor driven event by event, without a broker: codecs from the testbed's Schema
//! Registry, which must be running (the tests fail loudly otherwise); and the input fixtures
//! the tests share.
#![allow(dead_code)] // each test binary uses a subset

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lineage_processors::output::OutputSettings;
use lineage_processors::processor::{
    Codecs, LineageProcessor, LineageState, ProcessTopics, StateUpdate,
};
use lineage_processors::state::AssetRef;
use lineage_schemas::catalog::{DAGSTER_EVENTS, DEAD_LETTER, LINEAGE_OPENMETADATA};
use lineage_schemas::records::{AssetDefinition, SourceKind, SourcePosition, TableSnapshot};
use lineage_schemas::{RecordCodec, RegistryClient};

/// The tenant of the fixtures' asset definitions: the workload's.
pub use lineage_processors::workload::TENANT;

/// The testbed's Schema Registry (`SCHEMA_REGISTRY_URL`).
pub fn registry() -> RegistryClient {
    let url = std::env::var("SCHEMA_REGISTRY_URL").unwrap_or_else(|_| {
        panic!(
            "SCHEMA_REGISTRY_URL is not set: this test needs the testbed's Schema Registry \
             (`testbed/up.sh all`, then `eval \"$(testbed/env.sh)\"`)"
        )
    });
    RegistryClient::new(&url, Duration::from_secs(10), None).expect("registry client")
}

/// A processor with an empty state, the default topics and `settings`.
pub async fn processor(settings: OutputSettings) -> LineageProcessor {
    let registry = registry();
    let codecs = Arc::new(Codecs {
        events: RecordCodec::for_topic(registry.clone(), DAGSTER_EVENTS)
            .await
            .expect("events codec"),
        operations: RecordCodec::for_topic(registry.clone(), LINEAGE_OPENMETADATA)
            .await
            .expect("operations codec"),
        dead_letters: RecordCodec::for_topic(registry, DEAD_LETTER)
            .await
            .expect("dead-letter codec"),
    });
    let (_sender, receiver) = tokio::sync::mpsc::channel(1);
    LineageProcessor::new(
        LineageState::new(Default::default()),
        settings,
        ProcessTopics::default(),
        codecs,
        receiver,
    )
}

/// A materializable asset definition of [`TENANT`] in `job` with `deps`, nothing else set.
pub fn definition(asset_key: Vec<String>, deps: Vec<Vec<String>>, job: &str) -> AssetDefinition {
    AssetDefinition {
        tenant: TENANT.into(),
        source: SourcePosition {
            kind: SourceKind::Graphql,
            storage_id: None,
            shard: None,
            cursor: None,
        },
        asset_key,
        code_location: None,
        repository: None,
        group: None,
        description: None,
        job_names: vec![job.into()],
        deps,
        owners: vec![],
        tags: BTreeMap::new(),
        kinds: vec![],
        metadata: vec![],
        is_materializable: true,
        partitions: None,
        checks: vec![],
        updated_ms: 0,
    }
}

/// A live Postgres table without columns, `{service}.{database}.{schema}.{name}`, with the id
/// `id-{service}-{name}`.
pub fn table(service: &str, database: &str, schema: &str, name: &str) -> TableSnapshot {
    TableSnapshot {
        tenant: "om".into(),
        fqn: format!("{service}.{database}.{schema}.{name}"),
        id: format!("id-{service}-{name}"),
        service: service.into(),
        database: database.into(),
        schema: schema.into(),
        table: name.into(),
        service_type: Some("Postgres".into()),
        table_type: None,
        description: None,
        columns: vec![],
        tags: vec![],
        owners: vec![],
        deleted: false,
        version: 0.1,
        updated_at_ms: 0,
    }
}

/// The state update publishing `definition` under its tenant and key.
pub fn asset_update(definition: AssetDefinition) -> StateUpdate {
    StateUpdate::Asset {
        asset: AssetRef::new(&definition.tenant, definition.asset_key.clone()),
        definition: Some(definition),
    }
}

/// The state update publishing `snapshot` under its FQN.
pub fn table_update(snapshot: TableSnapshot) -> StateUpdate {
    StateUpdate::Table {
        fqn: snapshot.fqn.clone(),
        snapshot: Some(snapshot),
    }
}
