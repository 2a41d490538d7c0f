//! The Confluent wire format, without IO: magic byte `0`, the schema id as a big-endian
//! `u32`, then the Avro binary datum.

use std::marker::PhantomData;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;

use crate::AvroRecord;
use crate::codec::CodecError;

/// The magic byte that starts every framed value.
pub const MAGIC: u8 = 0;
/// Length of the header (magic byte and schema id).
pub const HEADER_LEN: usize = 5;

/// Encodes `value` with its own schema and frames it with `schema_id`.
pub fn encode<T: AvroRecord>(schema_id: u32, value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(256);
    out.push(MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
    GenericDatumWriter::builder(T::schema())
        .build()
        .and_then(|writer| writer.write_ser(&mut out, value))
        .map_err(avro_error::<T>)?;
    Ok(out)
}

/// `T`'s own-schema Avro writer and reader, built once: building one resolves every name of
/// the schema, which costs more than encoding or decoding a record.
pub struct OwnDatum<T> {
    writer: GenericDatumWriter<'static>,
    reader: GenericDatumReader<'static>,
    _record: PhantomData<fn() -> T>,
}

impl<T: AvroRecord> OwnDatum<T> {
    /// The writer and reader of `T::schema()`.
    pub fn new() -> Result<Self, CodecError> {
        Ok(Self {
            writer: GenericDatumWriter::builder(T::schema())
                .build()
                .map_err(avro_error::<T>)?,
            reader: GenericDatumReader::builder(T::schema())
                .build()
                .map_err(avro_error::<T>)?,
            _record: PhantomData,
        })
    }

    /// [`encode`] with the prebuilt writer.
    pub fn encode(&self, schema_id: u32, value: &T) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(256);
        out.push(MAGIC);
        out.extend_from_slice(&schema_id.to_be_bytes());
        self.writer
            .write_ser(&mut out, value)
            .map_err(avro_error::<T>)?;
        Ok(out)
    }

    /// [`decode_own`] with the prebuilt reader (after `T`'s hand-written one, if it has one).
    pub fn decode(&self, payload: &[u8]) -> Result<T, CodecError> {
        if let Some(value) = T::read_own_fast(payload) {
            return Ok(value);
        }
        let mut input = payload;
        self.reader.read_deser(&mut input).map_err(avro_error::<T>)
    }
}

/// Splits a framed value into its schema id and Avro payload.
pub fn split(bytes: &[u8]) -> Result<(u32, &[u8]), CodecError> {
    if bytes.len() < HEADER_LEN {
        return Err(CodecError::Frame(format!(
            "value of {} bytes is shorter than the 5-byte Confluent header",
            bytes.len()
        )));
    }
    if bytes[0] != MAGIC {
        return Err(CodecError::Frame(format!(
            "value starts with byte {:#04x}, not the Confluent magic byte 0x00",
            bytes[0]
        )));
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((id, &bytes[HEADER_LEN..]))
}

/// Decodes an Avro payload written with `T`'s own schema, straight from the bytes.
pub fn decode_own<T: AvroRecord>(payload: &[u8]) -> Result<T, CodecError> {
    let mut input = payload;
    GenericDatumReader::builder(T::schema())
        .build()
        .and_then(|reader| reader.read_deser(&mut input))
        .map_err(avro_error::<T>)
}

/// Decodes an Avro payload written with another schema, `writer`, resolving it to `T`'s own
/// schema (schema evolution). The resolved value is re-encoded with `T`'s schema and decoded
/// by the direct path, because apache-avro's `from_value` cannot tell the variants of a union
/// of records apart; evolved payloads are rare (during a schema migration), so the extra pass
/// costs little.
pub fn decode_evolved<T: AvroRecord>(writer: &Schema, payload: &[u8]) -> Result<T, CodecError> {
    let mut input = payload;
    let value = GenericDatumReader::builder(writer)
        .reader_schema(T::schema())
        .build()
        .and_then(|reader| reader.read_value(&mut input))
        .map_err(avro_error::<T>)?;
    let reencoded = GenericDatumWriter::builder(T::schema())
        .build()
        .and_then(|writer| writer.write_value_to_vec(value))
        .map_err(avro_error::<T>)?;
    decode_own(&reencoded)
}

fn avro_error<T: AvroRecord>(source: apache_avro::Error) -> CodecError {
    CodecError::Avro {
        record: T::FILE.full_name,
        source: Box::new(source),
    }
}
