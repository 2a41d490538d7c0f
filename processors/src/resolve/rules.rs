//! The resolution rules: asset key and metadata hints → one table of the index, with a
//! record of everything tried.

use serde::{Deserialize, Serialize};

use super::config::{LongKeys, OnAmbiguity, ResolverConfig};
use super::hints::{TableHints, parse_relation};
use crate::state::interner::fold;
use crate::state::tables::{TableId, TableIndex, TableQuery};

/// The rule a lookup came from, in the order they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// `dagster/table_name` metadata.
    DagsterTableName,
    /// `dagster/relation_identifier` metadata.
    DagsterRelationIdentifier,
    /// The connector's labels, with a `table` (or `table_name`) label.
    MetadataLabels,
    /// The asset key (after stripping): 3 parts `database.schema.table`, 2 `schema.table`,
    /// 1 `table`; database and schema labels fill the missing parts.
    AssetKey,
    /// The last three parts of a key longer than three parts; the match must be unique.
    KeySuffix,
}

impl Rule {
    /// The rule's name, as in JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::DagsterTableName => "dagster_table_name",
            Rule::DagsterRelationIdentifier => "dagster_relation_identifier",
            Rule::MetadataLabels => "metadata_labels",
            Rule::AssetKey => "asset_key",
            Rule::KeySuffix => "key_suffix",
        }
    }
}

/// One lookup in the table index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lookup {
    /// The rule the name came from.
    pub rule: Rule,
    /// Database service searched; `None` searches every service.
    pub service: Option<String>,
    /// Database name, when known.
    pub database: Option<String>,
    /// Schema name, when known.
    pub schema: Option<String>,
    /// Table name.
    pub table: String,
    /// Parts filled from the connector's labels (`database`, `schema`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filled_from_labels: Vec<String>,
    /// How many tables matched.
    pub matches: usize,
}

/// A table that matched the deciding lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// Table FQN.
    pub fqn: String,
    /// Whether its names matched in case too.
    pub exact_case: bool,
}

/// The table an asset resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedTable {
    /// Table FQN.
    pub fqn: String,
    /// OpenMetadata entity id.
    pub entity_id: String,
    /// Slot in the table index (valid while the table exists).
    #[serde(skip)]
    pub slot: Option<TableId>,
}

/// Why an asset has no table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unresolved {
    /// No lookup found a table (not ingested yet, or the names do not match).
    NotFound,
    /// The deciding lookup found several tables and the rule or the config needs one.
    Ambiguous,
    /// No name to look up: empty key, a long key with `long_keys = unresolved`, or only
    /// unparsable metadata names.
    NoName,
}

/// The outcome of resolving one asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// A table was chosen.
    Resolved {
        /// The table.
        table: ResolvedTable,
    },
    /// No table was chosen.
    Unresolved {
        /// Why.
        reason: Unresolved,
    },
}

/// The result of resolving an asset: what was tried, what matched, what was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// The asset key after `strip_asset_key_prefix_length`.
    pub key_after_strip: Vec<String>,
    /// The rule of the deciding lookup (the first that matched a table).
    pub rule: Option<Rule>,
    /// Every lookup tried, in order; the deciding one is last.
    pub lookups: Vec<Lookup>,
    /// The tables the deciding lookup matched, best first.
    pub candidates: Vec<Candidate>,
    /// Whether the deciding lookup matched more than one table.
    pub ambiguous: bool,
    /// Names the resolver could not use (unparsable metadata), with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
    /// The table chosen, or why none was.
    pub outcome: Outcome,
}

impl Resolution {
    /// The chosen table.
    pub fn table(&self) -> Option<&ResolvedTable> {
        match &self.outcome {
            Outcome::Resolved { table } => Some(table),
            Outcome::Unresolved { .. } => None,
        }
    }

    /// The case-folded table names this resolution looked up: a table with one of these
    /// names appearing or going away may change it.
    pub fn watched_names(&self) -> impl Iterator<Item = String> + '_ {
        self.lookups.iter().map(|l| fold(&l.table).into_owned())
    }
}

/// A name to look up, before services are applied.
struct Reference {
    rule: Rule,
    service: Option<String>,
    database: Option<String>,
    schema: Option<String>,
    table: String,
    filled_from_labels: Vec<String>,
}

impl Reference {
    /// From 1 to 4 parts: `[service.]database.schema.table`, right-aligned.
    fn from_parts(rule: Rule, parts: &[String]) -> Option<Self> {
        let (table, rest) = parts.split_last()?;
        let mut rest = rest.iter().rev().cloned();
        let schema = rest.next();
        let database = rest.next();
        let service = rest.next();
        rest.next().is_none().then(|| Self {
            rule,
            service,
            database,
            schema,
            table: table.clone(),
            filled_from_labels: Vec::new(),
        })
    }
}

/// Resolves an asset key with its hints (definition metadata overlaid with the latest
/// materialization's) against the index. Pure: the same index content, key, hints and
/// config give the same resolution.
pub fn resolve(
    config: &ResolverConfig,
    index: &TableIndex,
    key: &[String],
    hints: &TableHints,
) -> Resolution {
    let strip = config.strip_asset_key_prefix_length;
    let key_after_strip = if strip > 0 && strip < key.len() {
        key[strip..].to_vec()
    } else {
        key.to_vec()
    };
    let mut ignored = Vec::new();
    if strip > 0 && strip >= key.len() {
        ignored.push(format!(
            "strip_asset_key_prefix_length {strip} is not below the key length {}: key used whole",
            key.len()
        ));
    }
    let references = references(config, &key_after_strip, hints, &mut ignored);

    let mut lookups = Vec::new();
    for reference in references {
        let services: Vec<Option<&str>> = match (&reference.service, &config.db_service_names) {
            (Some(service), _) => vec![Some(service.as_str())],
            (None, names) if names.is_empty() => vec![None],
            (None, names) => names.iter().map(|n| Some(n.as_str())).collect(),
        };
        for service in services {
            let query = TableQuery {
                service,
                database: reference.database.as_deref(),
                schema: reference.schema.as_deref(),
                table: &reference.table,
            };
            let mut candidates: Vec<(Candidate, TableId)> = index
                .lookup(&query, config.case)
                .into_iter()
                .filter_map(|m| {
                    let table = index.get(m.id)?;
                    Some((
                        Candidate {
                            fqn: table.fqn(),
                            exact_case: m.exact_case,
                        },
                        m.id,
                    ))
                })
                .collect();
            candidates.sort_by(|(a, _), (b, _)| {
                b.exact_case
                    .cmp(&a.exact_case)
                    .then_with(|| a.fqn.cmp(&b.fqn))
            });
            lookups.push(Lookup {
                rule: reference.rule,
                service: service.map(str::to_owned),
                database: reference.database.clone(),
                schema: reference.schema.clone(),
                table: reference.table.clone(),
                filled_from_labels: reference.filled_from_labels.clone(),
                matches: candidates.len(),
            });
            if candidates.is_empty() {
                continue;
            }
            let ambiguous = candidates.len() > 1;
            let must_be_unique =
                reference.rule == Rule::KeySuffix || config.on_ambiguity == OnAmbiguity::Skip;
            let outcome = if ambiguous && must_be_unique {
                Outcome::Unresolved {
                    reason: Unresolved::Ambiguous,
                }
            } else {
                let (best, slot) = &candidates[0];
                Outcome::Resolved {
                    table: ResolvedTable {
                        fqn: best.fqn.clone(),
                        entity_id: index.get(*slot).map(|t| t.entity_id()).unwrap_or_default(),
                        slot: Some(*slot),
                    },
                }
            };
            return Resolution {
                key_after_strip,
                rule: Some(reference.rule),
                lookups,
                candidates: candidates.into_iter().map(|(c, _)| c).collect(),
                ambiguous,
                ignored,
                outcome,
            };
        }
    }
    let reason = if lookups.is_empty() {
        Unresolved::NoName
    } else {
        Unresolved::NotFound
    };
    Resolution {
        key_after_strip,
        rule: None,
        lookups,
        candidates: Vec::new(),
        ambiguous: false,
        ignored,
        outcome: Outcome::Unresolved { reason },
    }
}

/// The names to look up, in rule order.
fn references(
    config: &ResolverConfig,
    key: &[String],
    hints: &TableHints,
    ignored: &mut Vec<String>,
) -> Vec<Reference> {
    let mut references = Vec::new();
    if config.use_dagster_table_name {
        for (rule, name) in [
            (Rule::DagsterTableName, &hints.table_name),
            (Rule::DagsterRelationIdentifier, &hints.relation_identifier),
        ] {
            let Some(name) = name else { continue };
            match parse_relation(name) {
                Ok(parts) => match Reference::from_parts(rule, &parts) {
                    Some(reference) => references.push(reference),
                    None => ignored.push(format!(
                        "{}: {name:?} has {} parts, at most 4 (service.database.schema.table)",
                        rule.as_str(),
                        parts.len()
                    )),
                },
                Err(err) => ignored.push(format!("{}: {err}", rule.as_str())),
            }
        }
    }
    let labels = config.use_metadata_labels;
    if labels && let Some(table) = &hints.table {
        references.push(Reference {
            rule: Rule::MetadataLabels,
            service: None,
            database: hints.database.clone(),
            schema: hints.schema.clone(),
            table: table.clone(),
            filled_from_labels: Vec::new(),
        });
    }
    match key.len() {
        0 => {}
        1..=3 => {
            let mut reference = Reference::from_parts(Rule::AssetKey, key)
                .expect("a 1 to 3 part key is a reference");
            if labels {
                if reference.database.is_none()
                    && let Some(database) = &hints.database
                {
                    reference.database = Some(database.clone());
                    reference.filled_from_labels.push("database".to_owned());
                }
                if reference.schema.is_none()
                    && let Some(schema) = &hints.schema
                {
                    reference.schema = Some(schema.clone());
                    reference.filled_from_labels.push("schema".to_owned());
                }
            }
            references.push(reference);
        }
        _ if config.long_keys == LongKeys::Suffix => {
            let suffix = &key[key.len() - 3..];
            references.extend(Reference::from_parts(Rule::KeySuffix, suffix));
        }
        _ => {}
    }
    references
}
