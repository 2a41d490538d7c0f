//! The embedded `.avsc` files and the link between each record type and its schema.

use std::sync::OnceLock;

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::records::{
    AssetDefinition, DagsterEvent, DeadLetter, OpenMetadataOperation, ResolutionReport,
    SourceCursor, TableSnapshot,
};

/// A Rust type that is the image of one `.avsc` record.
pub trait AvroRecord: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The schema file this type follows.
    const FILE: SchemaFile;

    /// The parsed schema (parsed once).
    fn schema() -> &'static Schema;

    /// A hand-written reader of datums written with this type's own schema, tried before the
    /// generic one for the records read at the highest rates; `None` = read it generically.
    fn read_own_fast(datum: &[u8]) -> Option<Self> {
        let _ = datum;
        None
    }
}

/// One `.avsc` file embedded in the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaFile {
    /// File name under `schemas/avro/`.
    pub file_name: &'static str,
    /// Full name of the record, e.g. `io.lineagebus.dagster.DagsterEvent`.
    pub full_name: &'static str,
    /// The file's text.
    pub text: &'static str,
}

macro_rules! avro_record {
    ($ty:ty, $file:literal, $full_name:literal $(, fast = $fast:path)?) => {
        impl AvroRecord for $ty {
            const FILE: SchemaFile = SchemaFile {
                file_name: $file,
                full_name: $full_name,
                text: include_str!(concat!("../avro/", $file)),
            };

            fn schema() -> &'static Schema {
                static SCHEMA: OnceLock<Schema> = OnceLock::new();
                SCHEMA.get_or_init(|| {
                    Schema::parse_str(Self::FILE.text)
                        .expect("embedded .avsc files are valid (checked by the schemas tests)")
                })
            }

            $(
                fn read_own_fast(datum: &[u8]) -> Option<Self> {
                    $fast(datum)
                }
            )?
        }
    };
}

avro_record!(
    DagsterEvent,
    "dagster_event.avsc",
    "io.lineagebus.dagster.DagsterEvent",
    fast = crate::fast_decode::dagster_event
);
avro_record!(
    AssetDefinition,
    "asset_definition.avsc",
    "io.lineagebus.dagster.AssetDefinition"
);
avro_record!(
    TableSnapshot,
    "table_snapshot.avsc",
    "io.lineagebus.openmetadata.TableSnapshot"
);
avro_record!(
    OpenMetadataOperation,
    "openmetadata_operation.avsc",
    "io.lineagebus.openmetadata.OpenMetadataOperation"
);
avro_record!(DeadLetter, "dead_letter.avsc", "io.lineagebus.DeadLetter");
avro_record!(
    SourceCursor,
    "source_cursor.avsc",
    "io.lineagebus.SourceCursor"
);
avro_record!(
    ResolutionReport,
    "resolution_report.avsc",
    "io.lineagebus.ResolutionReport"
);

/// Every embedded schema file.
pub fn schema_files() -> [SchemaFile; 7] {
    [
        DagsterEvent::FILE,
        AssetDefinition::FILE,
        TableSnapshot::FILE,
        OpenMetadataOperation::FILE,
        DeadLetter::FILE,
        SourceCursor::FILE,
        ResolutionReport::FILE,
    ]
}

/// Checks that `new` can read everything written with `previous` (Avro BACKWARD
/// compatibility, the rule our topics evolve under). The error names what breaks.
pub fn check_backward_compatible(previous: &Schema, new: &Schema) -> Result<(), String> {
    SchemaCompatibility::can_read(previous, new)
        .map(|_| ())
        .map_err(|e| e.to_string())
}
