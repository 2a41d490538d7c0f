//! The records of the schemas topic, in Confluent's JSON layout.
//!
//! | key | value |
//! |---|---|
//! | `{"keytype":"SCHEMA","subject":s,"version":v,"magic":1}` | `{"subject","version","id","schema","deleted"}`, null after a permanent delete |
//! | `{"keytype":"CONFIG","subject":s or null,"magic":0}` | `{"compatibilityLevel":"..."}`, null when the level is removed |
//! | `{"keytype":"NOOP","magic":0}` | `{"barrier":"<uuid>"}`, written before each write to catch up |
//! | `{"keytype":"MAX_ID","magic":0}` | `{"maxId":n}`, the highest id ever given, kept across permanent deletes |
//!
//! The state depends only on the latest value of each key, so compaction never changes it.

use serde::{Deserialize, Serialize};

use crate::config::Compatibility;

/// One change to the registry state, as written to and read from the topic.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// A subject version registered, or soft-deleted (`deleted: true`).
    PutSchema(SchemaValue),
    /// A subject version permanently deleted.
    RemoveSchema {
        /// The subject.
        subject: String,
        /// The version.
        version: u32,
    },
    /// A compatibility level set, globally (`None`) or for a subject.
    PutConfig {
        /// The subject, `None` for the global level.
        subject: Option<String>,
        /// The level.
        level: Compatibility,
    },
    /// A compatibility level removed.
    RemoveConfig {
        /// The subject, `None` for the global level.
        subject: Option<String>,
    },
    /// A catch-up barrier: carries no state.
    Barrier(String),
    /// The highest schema id ever given.
    MaxId(u32),
}

/// The value of a SCHEMA record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SchemaValue {
    pub(crate) subject: String,
    pub(crate) version: u32,
    pub(crate) id: u32,
    pub(crate) schema: String,
    #[serde(default)]
    pub(crate) deleted: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "keytype", rename_all = "SCREAMING_SNAKE_CASE")]
enum Key {
    Schema {
        subject: String,
        version: u32,
        #[serde(default)]
        magic: u8,
    },
    Config {
        subject: Option<String>,
        #[serde(default)]
        magic: u8,
    },
    Noop {
        #[serde(default)]
        magic: u8,
    },
    MaxId {
        #[serde(default)]
        magic: u8,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct ConfigValue {
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: Compatibility,
}

#[derive(Debug, Serialize, Deserialize)]
struct NoopValue {
    barrier: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct MaxIdValue {
    #[serde(rename = "maxId")]
    max_id: u32,
}

/// A record that could not be understood.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    /// The key is not JSON of a known key type.
    #[error("unreadable key {key}: {source}")]
    Key {
        /// The key as text (lossy).
        key: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The value does not match its key type.
    #[error("unreadable value for key {key}: {source}")]
    Value {
        /// The key as text (lossy).
        key: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A SCHEMA value names another subject or version than its key.
    #[error("schema value for key {key} names subject '{subject}' version {version}")]
    Mismatch {
        /// The key as text (lossy).
        key: String,
        /// The subject in the value.
        subject: String,
        /// The version in the value.
        version: u32,
    },
}

/// A record ready to produce: key bytes and value bytes (`None` for a tombstone).
pub(crate) type Encoded = (Vec<u8>, Option<Vec<u8>>);

/// Encodes a change as a topic record.
pub(crate) fn encode(change: &Change) -> Result<Encoded, serde_json::Error> {
    let (key, value) = match change {
        Change::PutSchema(v) => (
            Key::Schema {
                subject: v.subject.clone(),
                version: v.version,
                magic: 1,
            },
            Some(serde_json::to_vec(v)?),
        ),
        Change::RemoveSchema { subject, version } => (
            Key::Schema {
                subject: subject.clone(),
                version: *version,
                magic: 1,
            },
            None,
        ),
        Change::PutConfig { subject, level } => (
            Key::Config {
                subject: subject.clone(),
                magic: 0,
            },
            Some(serde_json::to_vec(&ConfigValue {
                compatibility_level: *level,
            })?),
        ),
        Change::RemoveConfig { subject } => (
            Key::Config {
                subject: subject.clone(),
                magic: 0,
            },
            None,
        ),
        Change::Barrier(barrier) => (
            Key::Noop { magic: 0 },
            Some(serde_json::to_vec(&NoopValue {
                barrier: barrier.clone(),
            })?),
        ),
        Change::MaxId(max_id) => (
            Key::MaxId { magic: 0 },
            Some(serde_json::to_vec(&MaxIdValue { max_id: *max_id })?),
        ),
    };
    Ok((serde_json::to_vec(&key)?, value))
}

/// Decodes a topic record into the change it carries.
pub(crate) fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Change, DecodeError> {
    let key_text = || String::from_utf8_lossy(key).into_owned();
    let parsed: Key = serde_json::from_slice(key).map_err(|source| DecodeError::Key {
        key: key_text(),
        source,
    })?;
    let value_error = |source| DecodeError::Value {
        key: key_text(),
        source,
    };
    Ok(match (parsed, value) {
        (
            Key::Schema {
                subject, version, ..
            },
            None,
        ) => Change::RemoveSchema { subject, version },
        (
            Key::Schema {
                subject, version, ..
            },
            Some(value),
        ) => {
            let value: SchemaValue = serde_json::from_slice(value).map_err(value_error)?;
            if value.subject != subject || value.version != version {
                return Err(DecodeError::Mismatch {
                    key: key_text(),
                    subject: value.subject,
                    version: value.version,
                });
            }
            Change::PutSchema(value)
        }
        (Key::Config { subject, .. }, None) => Change::RemoveConfig { subject },
        (Key::Config { subject, .. }, Some(value)) => {
            let value: ConfigValue = serde_json::from_slice(value).map_err(value_error)?;
            Change::PutConfig {
                subject,
                level: value.compatibility_level,
            }
        }
        (Key::Noop { .. }, value) => {
            let barrier = match value {
                Some(value) => {
                    serde_json::from_slice::<NoopValue>(value)
                        .map_err(value_error)?
                        .barrier
                }
                None => String::new(),
            };
            Change::Barrier(barrier)
        }
        (Key::MaxId { .. }, None) => Change::MaxId(0),
        (Key::MaxId { .. }, Some(value)) => Change::MaxId(
            serde_json::from_slice::<MaxIdValue>(value)
                .map_err(value_error)?
                .max_id,
        ),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn round_trip(change: Change) {
        let (key, value) = encode(&change).unwrap();
        assert_eq!(decode(&key, value.as_deref()).unwrap(), change);
    }

    #[test]
    fn every_change_round_trips() {
        round_trip(Change::PutSchema(SchemaValue {
            subject: "s".into(),
            version: 2,
            id: 7,
            schema: r#""string""#.into(),
            deleted: true,
        }));
        round_trip(Change::RemoveSchema {
            subject: "s".into(),
            version: 2,
        });
        round_trip(Change::PutConfig {
            subject: None,
            level: Compatibility::Full,
        });
        round_trip(Change::RemoveConfig {
            subject: Some("s".into()),
        });
        round_trip(Change::Barrier("b".into()));
        round_trip(Change::MaxId(9));
    }

    #[test]
    fn keys_use_confluent_layout() {
        let (key, value) = encode(&Change::PutConfig {
            subject: None,
            level: Compatibility::BackwardTransitive,
        })
        .unwrap();
        assert_eq!(
            String::from_utf8(key).unwrap(),
            r#"{"keytype":"CONFIG","subject":null,"magic":0}"#
        );
        assert_eq!(
            String::from_utf8(value.unwrap()).unwrap(),
            r#"{"compatibilityLevel":"BACKWARD_TRANSITIVE"}"#
        );
        let confluent_key = br#"{"keytype":"SCHEMA","subject":"t-value","version":1,"magic":1}"#;
        let confluent_value =
            br#"{"subject":"t-value","version":1,"id":1,"schema":"\"string\"","deleted":false}"#;
        assert!(matches!(
            decode(confluent_key, Some(confluent_value)).unwrap(),
            Change::PutSchema(SchemaValue { id: 1, .. })
        ));
    }

    #[test]
    fn unknown_and_mismatched_records_are_errors() {
        assert!(decode(br#"{"keytype":"MODE","magic":0}"#, None).is_err());
        let key = br#"{"keytype":"SCHEMA","subject":"a","version":1,"magic":1}"#;
        let value = br#"{"subject":"b","version":1,"id":1,"schema":"\"int\""}"#;
        assert!(matches!(
            decode(key, Some(value)),
            Err(DecodeError::Mismatch { .. })
        ));
    }
}
