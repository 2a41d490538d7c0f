//! The processor reads `dagster.events` with the hand-written `DagsterEvent` reader
//! (`lineage_schemas::fast_decode`); on every event of the realistic workload it gives what
//! apache-avro gives.

use lineage_processors::workload::workload;
use lineage_schemas::records::DagsterEvent;
use lineage_schemas::{fast_decode, wire};

#[test]
fn the_workload_reads_the_same_with_both_readers() {
    let work = workload(40, 100);
    for event in &work.events {
        let framed = wire::encode(1, event).expect("encode");
        let datum = wire::split(&framed).expect("framed").1;
        let fast = fast_decode::dagster_event(datum).expect("read by the fast reader");
        let generic: DagsterEvent = wire::decode_own(datum).expect("read by apache-avro");
        assert_eq!(fast, generic);
        assert_eq!(&fast, event);
    }
    assert!(work.events.len() > 1_000, "{} events", work.events.len());
}
