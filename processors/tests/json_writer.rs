//! The OpenLineage records are written with sonic-rs (SIMD string escaping) for speed; this
//! checks that every event of the realistic workload comes out byte-for-byte as serde_json
//! writes it, so the choice of writer changes no record.

use lineage_processors::output::openlineage::events_for;
use lineage_processors::processor::{LineageState, ProcessConfig, StateUpdate, output_settings};
use lineage_processors::state::AssetRef;
use lineage_processors::workload::workload;

#[test]
fn openlineage_json_is_what_serde_json_writes() {
    let work = workload(40, 2_000);
    let config = ProcessConfig::default();
    let settings = output_settings(&config).expect("default settings");
    let mut state = LineageState::new(config.resolver.clone());
    for table in &work.tables {
        state.apply(StateUpdate::Table {
            fqn: table.fqn.clone(),
            snapshot: Some(table.clone()),
        });
    }
    for asset in &work.assets {
        state.apply(StateUpdate::Asset {
            asset: AssetRef {
                tenant: asset.tenant.clone(),
                key: asset.asset_key.clone(),
            },
            definition: Some(asset.clone()),
        });
    }
    // and every character class JSON escapes: quotes, backslashes, control characters,
    // non-ASCII, astral-plane characters
    let mut tricky = work
        .events
        .iter()
        .find(|e| e.error.is_some())
        .expect("the workload has failures")
        .clone();
    if let Some(error) = &mut tricky.error {
        error.cause = None; // the facet shows the innermost (user) error
        error.message =
            "\"quoted\" back\\slash\n\t\r\u{1}\u{1f}\u{7f} é ü 你好 😀 </script>".into();
    }
    let mut compared = 0;
    let mut tricky_written = false;
    for event in work.events.iter().chain([&tricky]) {
        for built in events_for(event, &state, &settings) {
            let expected = serde_json::to_vec(&built).expect("serde_json writes the model");
            assert_eq!(
                String::from_utf8_lossy(&built.to_json()),
                String::from_utf8_lossy(&expected),
                "the record of a {:?} event differs",
                event.event_type
            );
            tricky_written |= String::from_utf8_lossy(&expected).contains("你好 😀");
            compared += 1;
        }
    }
    assert!(tricky_written, "the failure message is in no record");
    assert!(compared > 1_000, "only {compared} events compared");
}
