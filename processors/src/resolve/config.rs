//! Resolver configuration (`[process.resolver]` once the role is wired).

use serde::{Deserialize, Serialize};

pub use crate::state::tables::CaseMode;

/// How asset keys are resolved to OpenMetadata tables. Every key has a default; the defaults
/// are OpenMetadata's Dagster connector's rules plus the extensions documented in
/// [`crate::resolve`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResolverConfig {
    /// Leading asset-key segments removed before the key is read as `database.schema.table`
    /// (the connector's `stripAssetKeyPrefixLength`). A value ≥ the key length leaves the key
    /// whole, as the connector does. Default `0`.
    pub strip_asset_key_prefix_length: usize,
    /// Database services searched, in order; the first service with a match wins (the
    /// connector's `dbServiceNames`). Empty (the default) searches every service.
    pub db_service_names: Vec<String>,
    /// How names are compared. Default `insensitive` (candidates matching in case first).
    pub case: CaseMode,
    /// Read `dagster/table_name` and `dagster/relation_identifier` metadata. Default `true`.
    pub use_dagster_table_name: bool,
    /// Read the connector's metadata labels (`database|db|database_name`,
    /// `schema|schema_name`, `table|table_name`). Default `true`.
    pub use_metadata_labels: bool,
    /// What to do with keys longer than three parts after stripping. Default `suffix`.
    pub long_keys: LongKeys,
    /// What to do when a lookup finds several tables. Default `choose`.
    pub on_ambiguity: OnAmbiguity,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        Self {
            strip_asset_key_prefix_length: 0,
            db_service_names: Vec::new(),
            case: CaseMode::Insensitive,
            use_dagster_table_name: true,
            use_metadata_labels: true,
            long_keys: LongKeys::Suffix,
            on_ambiguity: OnAmbiguity::Choose,
        }
    }
}

/// Keys of four or more parts (after stripping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LongKeys {
    /// Read the last three parts as `database.schema.table`, and accept the match only when
    /// it is a single table.
    #[default]
    Suffix,
    /// Leave them unresolved, as the connector does.
    Unresolved,
}

/// Several tables matching one lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnAmbiguity {
    /// Take the first candidate (exact case first, then the smallest FQN) and report the
    /// ambiguity.
    #[default]
    Choose,
    /// Leave the asset unresolved and report the ambiguity.
    Skip,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_missing_keys_and_unknown_keys_are_refused() {
        let config: ResolverConfig =
            serde_json::from_str(r#"{"db_service_names": ["pg"], "case": "exact"}"#)
                .expect("valid config");
        assert_eq!(config.db_service_names, vec!["pg"]);
        assert_eq!(config.case, CaseMode::Exact);
        assert_eq!(config.strip_asset_key_prefix_length, 0);
        assert_eq!(config.long_keys, LongKeys::Suffix);
        let err = serde_json::from_str::<ResolverConfig>(r#"{"dbServiceNames": []}"#)
            .expect_err("unknown field");
        assert!(err.to_string().contains("dbServiceNames"), "{err}");
    }
}
