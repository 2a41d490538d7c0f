//! A hand-written reader of `DagsterEvent` datums written with the working schema
//! (`dagster_event.avsc`). The processor decodes every Dagster event, and apache-avro's
//! schema-walking serde reader cost more than the rest of an event's processing but its
//! JSON; this reader walks the bytes in field order instead.
//!
//! It never decides an error: any surprise (a union branch or enum index out of range, a
//! truncated datum, invalid UTF-8, trailing bytes) gives `None`, and the caller decodes with
//! apache-avro, which names the problem. Enum symbols are mapped through serde, as apache-avro
//! maps them. The reader is pinned to the schema by [`PINNED_FINGERPRINT`]: a test fails when
//! `dagster_event.avsc` changes until this file follows it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use apache_avro::Schema;
use serde::de::value::{Error as ValueError, StrDeserializer};
use serde::de::{DeserializeOwned, IntoDeserializer};

use crate::AvroRecord;
use crate::records::{
    AssetCheck, CheckSeverity, ColumnDeps, ColumnLineage, ColumnRef, DagsterEvent,
    DagsterEventType, ErrorInfo, MetadataEntry, MetadataKind, SourceKind, SourcePosition,
    TableColumn, TableSchema,
};

/// Rabin fingerprint (the Avro spec's CRC-64-AVRO) of the parsing canonical form of the
/// `DagsterEvent` schema this reader follows.
pub const PINNED_FINGERPRINT: &str = "176ca6e0a3af4513";

/// Longest error cause chain read here.
const MAX_CAUSES: usize = 64;

/// Decodes `datum` (the Avro binary body, without the Confluent header); `None` when it is
/// not a well-formed datum of the working schema.
pub fn dagster_event(datum: &[u8]) -> Option<DagsterEvent> {
    let symbols = Symbols::get()?;
    let mut reader = Reader { bytes: datum };
    let event = reader.event(symbols)?;
    reader.bytes.is_empty().then_some(event)
}

/// The enums' symbols in schema order, as Rust values.
struct Symbols {
    source_kinds: Vec<SourceKind>,
    event_types: Vec<DagsterEventType>,
    metadata_kinds: Vec<MetadataKind>,
    severities: Vec<CheckSeverity>,
}

impl Symbols {
    fn get() -> Option<&'static Symbols> {
        static SYMBOLS: OnceLock<Option<Symbols>> = OnceLock::new();
        SYMBOLS
            .get_or_init(|| {
                let schema = DagsterEvent::schema();
                Some(Symbols {
                    source_kinds: enum_values(schema, "SourceKind")?,
                    event_types: enum_values(schema, "DagsterEventType")?,
                    metadata_kinds: enum_values(schema, "MetadataKind")?,
                    severities: enum_values(schema, "CheckSeverity")?,
                })
            })
            .as_ref()
    }
}

/// The symbols of the enum named `name` in `schema`, each deserialized as `E`.
fn enum_values<E: DeserializeOwned>(schema: &Schema, name: &str) -> Option<Vec<E>> {
    let symbols = find_enum(schema, name)?;
    symbols
        .iter()
        .map(|symbol| {
            let de: StrDeserializer<'_, ValueError> = symbol.as_str().into_deserializer();
            E::deserialize(de).ok()
        })
        .collect()
}

fn find_enum<'s>(schema: &'s Schema, name: &str) -> Option<&'s Vec<String>> {
    match schema {
        Schema::Enum(e) if e.name.name() == name => Some(&e.symbols),
        Schema::Record(r) => r.fields.iter().find_map(|f| find_enum(&f.schema, name)),
        Schema::Union(u) => u.variants().iter().find_map(|v| find_enum(v, name)),
        Schema::Array(a) => find_enum(&a.items, name),
        Schema::Map(m) => find_enum(&m.types, name),
        _ => None,
    }
}

/// A cursor over Avro binary data.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&byte, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(byte)
    }

    /// A zig-zag varint `long` (also `int`).
    fn long(&mut self) -> Option<i64> {
        let mut raw: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            if shift == 63 && byte > 1 {
                return None; // more than 64 bits
            }
            raw |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        None
    }

    fn length(&mut self) -> Option<usize> {
        usize::try_from(self.long()?).ok()
    }

    fn string(&mut self) -> Option<String> {
        let length = self.length()?;
        if length > self.bytes.len() {
            return None;
        }
        let (text, rest) = self.bytes.split_at(length);
        self.bytes = rest;
        std::str::from_utf8(text).ok().map(str::to_owned)
    }

    fn boolean(&mut self) -> Option<bool> {
        match self.byte()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    fn double(&mut self) -> Option<f64> {
        let (bytes, rest) = self.bytes.split_first_chunk::<8>()?;
        self.bytes = rest;
        Some(f64::from_le_bytes(*bytes))
    }

    fn symbol<E: Copy>(&mut self, values: &[E]) -> Option<E> {
        values.get(self.length()?).copied()
    }

    /// A `["null", T]` union.
    fn optional<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        match self.long()? {
            0 => Some(None),
            1 => read(self).map(Some),
            _ => None,
        }
    }

    /// The items of an array or map: blocks of `count` items (a negative count is followed by
    /// the block's size in bytes) up to an empty block.
    fn blocks(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        loop {
            let count = self.long()?;
            if count == 0 {
                return Some(());
            }
            if count < 0 {
                self.long()?;
            }
            for _ in 0..count.unsigned_abs() {
                item(self)?;
            }
        }
    }

    fn array<T>(&mut self, mut read: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let mut items = Vec::new();
        self.blocks(|reader| {
            items.push(read(reader)?);
            Some(())
        })?;
        Some(items)
    }

    fn strings(&mut self) -> Option<Vec<String>> {
        self.array(Self::string)
    }

    fn string_map(&mut self) -> Option<BTreeMap<String, String>> {
        let mut map = BTreeMap::new();
        self.blocks(|reader| {
            let key = reader.string()?;
            map.insert(key, reader.string()?);
            Some(())
        })?;
        Some(map)
    }

    fn event(&mut self, symbols: &Symbols) -> Option<DagsterEvent> {
        Some(DagsterEvent {
            tenant: self.string()?,
            source: SourcePosition {
                kind: self.symbol(&symbols.source_kinds)?,
                storage_id: self.optional(Self::long)?,
                shard: self.optional(Self::string)?,
                cursor: self.optional(Self::string)?,
            },
            event_type: self.symbol(&symbols.event_types)?,
            raw_event_type: self.string()?,
            run_id: self.optional(Self::string)?,
            job_name: self.optional(Self::string)?,
            step_key: self.optional(Self::string)?,
            asset_key: self.optional(Self::strings)?,
            partition: self.optional(Self::string)?,
            timestamp_ms: self.long()?,
            message: self.optional(Self::string)?,
            description: self.optional(Self::string)?,
            metadata: self.array(|r| r.metadata_entry(symbols))?,
            tags: self.string_map()?,
            check: self.optional(|r| {
                Some(AssetCheck {
                    name: r.string()?,
                    passed: r.optional(Self::boolean)?,
                    severity: r.symbol(&symbols.severities)?,
                    target_storage_id: r.optional(Self::long)?,
                })
            })?,
            error: self.optional(|r| r.error(0))?,
            raw_json: self.optional(Self::string)?,
        })
    }

    fn metadata_entry(&mut self, symbols: &Symbols) -> Option<MetadataEntry> {
        Some(MetadataEntry {
            label: self.string()?,
            kind: self.symbol(&symbols.metadata_kinds)?,
            text: self.optional(Self::string)?,
            int: self.optional(Self::long)?,
            float: self.optional(Self::double)?,
            bool: self.optional(Self::boolean)?,
            asset_key: self.optional(Self::strings)?,
            table_schema: self.optional(|r| {
                Some(TableSchema {
                    columns: r.array(Self::table_column)?,
                })
            })?,
            column_lineage: self.optional(|r| {
                Some(ColumnLineage {
                    columns: r.array(Self::column_deps)?,
                })
            })?,
        })
    }

    fn table_column(&mut self) -> Option<TableColumn> {
        Some(TableColumn {
            name: self.string()?,
            data_type: self.string()?,
            description: self.optional(Self::string)?,
            nullable: self.optional(Self::boolean)?,
            unique: self.optional(Self::boolean)?,
            tags: self.string_map()?,
        })
    }

    fn column_deps(&mut self) -> Option<ColumnDeps> {
        Some(ColumnDeps {
            column: self.string()?,
            deps: self.array(|r| {
                Some(ColumnRef {
                    asset_key: r.strings()?,
                    column: r.string()?,
                })
            })?,
        })
    }

    /// An error and its chain of causes (deeper than [`MAX_CAUSES`]: left to apache-avro).
    fn error(&mut self, depth: usize) -> Option<ErrorInfo> {
        if depth > MAX_CAUSES {
            return None;
        }
        Some(ErrorInfo {
            message: self.string()?,
            class_name: self.optional(Self::string)?,
            stack: self.strings()?,
            cause: self.optional(|r| r.error(depth + 1).map(Box::new))?,
        })
    }
}
