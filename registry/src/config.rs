//! Settings of the registry role.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `listen` | `127.0.0.1:8081` | HTTP address of the Confluent-compatible API |
//! | `topic` | `_schemas` | compacted topic holding the registry's state |
//! | `default_compatibility` | `BACKWARD` | level used until `PUT /config` sets a global one |
//! | `writer_transactional_id` | `lineage-bus-registry-writer` | shared by all instances: it is the write lock |
//! | `write_timeout` | `10s` | how long a write may take before it answers 50002 (humantime: `10s`, `2500ms`) |

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of the registry role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Address the HTTP API listens on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Compacted topic holding schemas and compatibility settings (created if missing).
    pub topic: String,
    /// Compatibility level in force while no global level was set through `PUT /config`.
    pub default_compatibility: Compatibility,
    /// Transactional id shared by every registry instance writing to `topic`; a write fences
    /// all other instances' writes in flight, which is what keeps ids and versions unique.
    pub writer_transactional_id: String,
    /// How long one write (register, delete, config change) may take (e.g. `10s`, `2500ms`);
    /// past it the request answers 50002.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8081)),
            topic: "_schemas".to_owned(),
            default_compatibility: Compatibility::Backward,
            writer_transactional_id: "lineage-bus-registry-writer".to_owned(),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// A schema compatibility level, spelled as Confluent spells it (`"BACKWARD"`, `"FULL_TRANSITIVE"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    /// No check.
    None,
    /// The new schema can read data written with the latest version.
    Backward,
    /// The new schema can read data written with every live version.
    BackwardTransitive,
    /// The latest version can read data written with the new schema.
    Forward,
    /// Every live version can read data written with the new schema.
    ForwardTransitive,
    /// Backward and forward against the latest version.
    Full,
    /// Backward and forward against every live version.
    FullTransitive,
}

impl Compatibility {
    const ALL: [Self; 7] = [
        Self::None,
        Self::Backward,
        Self::BackwardTransitive,
        Self::Forward,
        Self::ForwardTransitive,
        Self::Full,
        Self::FullTransitive,
    ];

    /// Confluent's name of the level.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Whether the new schema must read data written with older ones.
    pub(crate) fn checks_backward(self) -> bool {
        matches!(
            self,
            Self::Backward | Self::BackwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    /// Whether older schemas must read data written with the new one.
    pub(crate) fn checks_forward(self) -> bool {
        matches!(
            self,
            Self::Forward | Self::ForwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    /// Whether the check covers every live version rather than the latest only.
    pub(crate) fn is_transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no compatibility level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compatibility level '{0}'")]
pub struct UnknownCompatibility(pub String);

impl FromStr for Compatibility {
    type Err = UnknownCompatibility;

    /// Parses a level case-insensitively, as Confluent does.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        Self::ALL
            .into_iter()
            .find(|level| level.as_str() == upper)
            .ok_or_else(|| UnknownCompatibility(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_and_overrides_from_json() {
        let config: RegistryConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, RegistryConfig::default());
        let config: RegistryConfig = serde_json::from_str(
            r#"{"default_compatibility": "FULL_TRANSITIVE", "write_timeout": "2500ms"}"#,
        )
        .unwrap();
        assert_eq!(config.default_compatibility, Compatibility::FullTransitive);
        assert_eq!(config.write_timeout, Duration::from_millis(2500));
        assert!(serde_json::from_str::<RegistryConfig>(r#"{"nope": 1}"#).is_err());
    }

    #[test]
    fn levels_parse_case_insensitively() {
        assert_eq!(
            "backward_transitive".parse(),
            Ok(Compatibility::BackwardTransitive)
        );
        assert_eq!("NONE".parse(), Ok(Compatibility::None));
        assert!("sideways".parse::<Compatibility>().is_err());
        for level in Compatibility::ALL {
            assert_eq!(level.as_str().parse(), Ok(level));
        }
    }
}
