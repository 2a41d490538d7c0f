//! The OpenLineage core schema the processor embeds to check `openlineage.ingest` is the one
//! in `../shared/openlineage-spec`, byte for byte.

use lineage_processors::ingest::CORE_SCHEMA;

#[test]
fn the_embedded_core_schema_is_the_shared_spec() {
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/openlineage-spec/OpenLineage.json");
    let text = std::fs::read_to_string(&shared).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}); shared/ must sit beside the repository",
            shared.display()
        )
    });
    assert!(
        text == CORE_SCHEMA,
        "processors/spec/OpenLineage.json differs from {}: copy it again",
        shared.display()
    );
}
