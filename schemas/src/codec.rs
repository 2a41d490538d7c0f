//! Encoding and decoding records in the Confluent wire format, with schema ids resolved
//! through a Schema Registry (`schema_registry_converter` as the HTTP client).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use apache_avro::Schema;
use schema_registry_converter::async_impl::schema_registry::{
    SrSettings, get_schema_by_id, post_schema,
};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};

use crate::AvroRecord;
use crate::catalog::value_subject;
use crate::wire;

/// Everything that can go wrong encoding or decoding a record.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not a Confluent-framed value.
    #[error("not a Confluent wire-format value: {0}")]
    Frame(String),
    /// Avro (de)serialization failed.
    #[error("avro encoding of {record} failed: {source}")]
    Avro {
        /// Full name of the record.
        record: &'static str,
        /// The Avro error.
        source: Box<apache_avro::Error>,
    },
    /// The Schema Registry refused or could not be reached.
    #[error("schema registry at {url}: {what}: {source}")]
    Registry {
        /// Registry URL.
        url: String,
        /// What was asked.
        what: String,
        /// The client error.
        source: Box<SRCError>,
    },
    /// A schema the registry returned does not parse.
    #[error("schema id {id} from the registry is not valid Avro: {source}")]
    BadRegisteredSchema {
        /// Schema id.
        id: u32,
        /// The parse error.
        source: Box<apache_avro::Error>,
    },
}

impl CodecError {
    /// True when retrying may succeed (the registry was unreachable or answered 5xx).
    pub fn is_retryable(&self) -> bool {
        matches!(self, CodecError::Registry { source, .. } if source.retriable)
    }
}

/// A Schema Registry client (Confluent API): registers schemas and fetches them by id.
#[derive(Clone)]
pub struct RegistryClient {
    url: String,
    settings: SrSettings,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("url", &self.url)
            .finish()
    }
}

impl RegistryClient {
    /// A client for the registry at `url`; `basic_auth` is `(user, password)`.
    pub fn new(
        url: &str,
        timeout: Duration,
        basic_auth: Option<(&str, &str)>,
    ) -> Result<Self, CodecError> {
        let mut builder = SrSettings::new_builder(url.to_owned());
        builder.set_timeout(timeout);
        if let Some((user, password)) = basic_auth {
            builder.set_basic_authorization(user, Some(password));
        }
        let settings = builder.build().map_err(|source| CodecError::Registry {
            url: url.to_owned(),
            what: "building the client".into(),
            source: Box::new(source),
        })?;
        Ok(Self {
            url: url.to_owned(),
            settings,
        })
    }

    /// Registers `schema` under `subject` (or finds it registered) and returns its id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, CodecError> {
        let supplied = SuppliedSchema::new(None, SchemaType::Avro, schema.to_owned());
        post_schema(&self.settings, subject.to_owned(), supplied)
            .await
            .map(|registered| registered.id)
            .map_err(|source| self.error(format!("registering subject {subject}"), source))
    }

    /// Fetches and parses the schema with `id`.
    pub async fn schema_by_id(&self, id: u32) -> Result<Schema, CodecError> {
        let registered = get_schema_by_id(id, &self.settings)
            .await
            .map_err(|source| self.error(format!("fetching schema id {id}"), source))?;
        Schema::parse_str(&registered.schema).map_err(|source| CodecError::BadRegisteredSchema {
            id,
            source: Box::new(source),
        })
    }

    fn error(&self, what: String, source: SRCError) -> CodecError {
        CodecError::Registry {
            url: self.url.clone(),
            what,
            source: Box::new(source),
        }
    }
}

/// Encodes and decodes one record type on one topic. The type's schema is registered under
/// the topic's value subject once; writer schemas of other ids are fetched once and cached.
pub struct RecordCodec<T> {
    client: RegistryClient,
    schema_id: u32,
    own: wire::OwnDatum<T>,
    writer_schemas: RwLock<HashMap<u32, Arc<Schema>>>,
}

impl<T: AvroRecord> RecordCodec<T> {
    /// Registers `T`'s schema under `<topic>-value` and returns a codec for the topic.
    pub async fn for_topic(client: RegistryClient, topic: &str) -> Result<Self, CodecError> {
        let schema_id = client.register(&value_subject(topic), T::FILE.text).await?;
        Self::with_schema_id(client, schema_id)
    }

    /// A codec for `T`'s schema already registered as `schema_id`, without asking the
    /// registry (benchmarks; decoding other ids still fetches them from `client`).
    pub fn with_schema_id(client: RegistryClient, schema_id: u32) -> Result<Self, CodecError> {
        Ok(Self {
            client,
            schema_id,
            own: wire::OwnDatum::new()?,
            writer_schemas: RwLock::new(HashMap::new()),
        })
    }

    /// The registry id of `T`'s schema.
    pub fn schema_id(&self) -> u32 {
        self.schema_id
    }

    /// Encodes `value` in the wire format (no IO).
    pub fn encode(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        self.own.encode(self.schema_id, value)
    }

    /// Decodes a wire-format value, fetching its writer schema from the registry the first
    /// time an id other than our own is seen.
    pub async fn decode(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let (id, payload) = wire::split(bytes)?;
        if id == self.schema_id {
            return self.own.decode(payload);
        }
        let writer = self.writer_schema(id).await?;
        wire::decode_evolved(&writer, payload)
    }

    async fn writer_schema(&self, id: u32) -> Result<Arc<Schema>, CodecError> {
        if let Some(schema) = self.cached(id) {
            return Ok(schema);
        }
        let schema = Arc::new(self.client.schema_by_id(id).await?);
        self.writer_schemas
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id, schema.clone());
        Ok(schema)
    }

    fn cached(&self, id: u32) -> Option<Arc<Schema>> {
        self.writer_schemas
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&id)
            .cloned()
    }
}
