//! The registry state: a pure fold of the schemas topic, with the queries and the write plans the
//! HTTP API needs. No IO here; [`crate::store`] feeds records in and writes plans out.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use apache_avro::Schema;
use serde::Serialize;

use crate::avro::{ParsedSchema, read_failure};
use crate::config::Compatibility;
use crate::error::ApiError;
use crate::record::{Change, SchemaValue};

/// Everything the topic says, indexed for the API.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct State {
    default_level: Compatibility,
    global_level: Option<Compatibility>,
    subject_levels: BTreeMap<String, Compatibility>,
    subjects: BTreeMap<String, BTreeMap<u32, Entry>>,
    /// Schema text by id, for every id some version (live or soft-deleted) uses.
    schemas: BTreeMap<u32, String>,
    /// Id by schema text: the inverse of `schemas`.
    ids: HashMap<String, u32>,
    /// The highest id ever given, as last written in a MAX_ID record.
    max_id_floor: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    id: u32,
    deleted: bool,
}

/// A subject version as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct SubjectVersion {
    pub(crate) subject: String,
    pub(crate) version: u32,
    pub(crate) id: u32,
    pub(crate) schema: String,
}

/// A version in a URL: a number or `latest` (also spelled `-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VersionSelector {
    /// The highest version.
    Latest,
    /// One version.
    Number(u32),
}

impl FromStr for VersionSelector {
    type Err = ApiError;

    fn from_str(s: &str) -> Result<Self, ApiError> {
        let trimmed = s.trim();
        if trimmed.eq_ignore_ascii_case("latest") || trimmed == "-1" {
            return Ok(Self::Latest);
        }
        match trimmed.parse::<i32>() {
            Ok(n) if n >= 1 => Ok(Self::Number(n.unsigned_abs())),
            _ => Err(ApiError::InvalidVersion(s.to_owned())),
        }
    }
}

impl fmt::Display for VersionSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Latest => f.write_str("latest"),
            Self::Number(n) => write!(f, "{n}"),
        }
    }
}

/// The outcome of a write: records to produce, and the answer to give once they are applied.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan<T> {
    pub(crate) answer: T,
    pub(crate) changes: Vec<Change>,
}

impl State {
    /// An empty registry whose global level is `default_level` until one is set.
    pub(crate) fn new(default_level: Compatibility) -> Self {
        Self {
            default_level,
            global_level: None,
            subject_levels: BTreeMap::new(),
            subjects: BTreeMap::new(),
            schemas: BTreeMap::new(),
            ids: HashMap::new(),
            max_id_floor: 0,
        }
    }

    /// Folds one record into the state.
    pub(crate) fn apply(&mut self, change: &Change) {
        match change {
            Change::PutSchema(value) => {
                let entry = Entry {
                    id: value.id,
                    deleted: value.deleted,
                };
                let previous = self
                    .subjects
                    .entry(value.subject.clone())
                    .or_default()
                    .insert(value.version, entry);
                self.schemas
                    .entry(value.id)
                    .or_insert_with(|| value.schema.clone());
                self.ids.entry(value.schema.clone()).or_insert(value.id);
                if let Some(previous) = previous.filter(|p| p.id != value.id) {
                    self.forget_if_unused(previous.id);
                }
            }
            Change::RemoveSchema { subject, version } => {
                let Some(versions) = self.subjects.get_mut(subject) else {
                    return;
                };
                let removed = versions.remove(version);
                if versions.is_empty() {
                    self.subjects.remove(subject);
                }
                if let Some(removed) = removed {
                    self.forget_if_unused(removed.id);
                }
            }
            Change::PutConfig {
                subject: None,
                level,
            } => self.global_level = Some(*level),
            Change::PutConfig {
                subject: Some(subject),
                level,
            } => {
                self.subject_levels.insert(subject.clone(), *level);
            }
            Change::RemoveConfig { subject: None } => self.global_level = None,
            Change::RemoveConfig {
                subject: Some(subject),
            } => {
                self.subject_levels.remove(subject);
            }
            Change::Barrier(_) => {}
            Change::MaxId(max_id) => self.max_id_floor = *max_id,
        }
    }

    fn forget_if_unused(&mut self, id: u32) {
        let used = self
            .subjects
            .values()
            .flat_map(BTreeMap::values)
            .any(|entry| entry.id == id);
        if !used && let Some(text) = self.schemas.remove(&id) {
            self.ids.remove(&text);
        }
    }

    fn max_id(&self) -> u32 {
        let highest_live = self.schemas.keys().next_back().copied().unwrap_or(0);
        highest_live.max(self.max_id_floor)
    }

    // ---- queries ----

    /// Subjects with a live version, or with any version when `deleted`.
    pub(crate) fn subjects(&self, deleted: bool) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(_, versions)| deleted || has_live(versions))
            .map(|(subject, _)| subject.clone())
            .collect()
    }

    /// The versions of a subject that a reader may see; 40401 when there are none.
    fn visible(&self, subject: &str, deleted: bool) -> Result<&BTreeMap<u32, Entry>, ApiError> {
        self.subjects
            .get(subject)
            .filter(|versions| deleted || has_live(versions))
            .ok_or_else(|| ApiError::SubjectNotFound(subject.to_owned()))
    }

    /// Version numbers of a subject, live ones only unless `deleted`.
    pub(crate) fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<u32>, ApiError> {
        Ok(self
            .visible(subject, deleted)?
            .iter()
            .filter(|(_, entry)| deleted || !entry.deleted)
            .map(|(version, _)| *version)
            .collect())
    }

    /// One version of a subject; soft-deleted versions only when `deleted`.
    pub(crate) fn version(
        &self,
        subject: &str,
        selector: VersionSelector,
        deleted: bool,
    ) -> Result<SubjectVersion, ApiError> {
        let versions = self.visible(subject, deleted)?;
        let mut candidates = versions
            .iter()
            .filter(|(_, entry)| deleted || !entry.deleted);
        let found = match selector {
            VersionSelector::Latest => candidates.next_back(),
            VersionSelector::Number(n) => candidates.find(|(version, _)| **version == n),
        };
        let (version, entry) =
            found.ok_or_else(|| ApiError::VersionNotFound(selector.to_string()))?;
        Ok(self.subject_version(subject, *version, *entry))
    }

    fn subject_version(&self, subject: &str, version: u32, entry: Entry) -> SubjectVersion {
        SubjectVersion {
            subject: subject.to_owned(),
            version,
            id: entry.id,
            schema: self.schemas.get(&entry.id).cloned().unwrap_or_default(),
        }
    }

    /// The version of `subject` holding `schema` (the latest, if several); 40401 or 40403.
    pub(crate) fn lookup(
        &self,
        subject: &str,
        schema: &ParsedSchema,
        deleted: bool,
    ) -> Result<SubjectVersion, ApiError> {
        let versions = self.visible(subject, deleted)?;
        let not_found = || ApiError::SchemaNotFound(format!("under subject '{subject}'"));
        let id = *self.ids.get(&schema.text).ok_or_else(not_found)?;
        versions
            .iter()
            .rev()
            .find(|(_, entry)| entry.id == id && (deleted || !entry.deleted))
            .map(|(version, entry)| self.subject_version(subject, *version, *entry))
            .ok_or_else(not_found)
    }

    /// The schema with a global id, even when its versions are soft-deleted; 40403.
    pub(crate) fn schema_by_id(&self, id: u32) -> Result<&str, ApiError> {
        self.schemas
            .get(&id)
            .map(String::as_str)
            .ok_or_else(|| ApiError::SchemaNotFound(id.to_string()))
    }

    /// Subject versions using a global id, live ones only unless `deleted`; 40403.
    pub(crate) fn versions_of_id(
        &self,
        id: u32,
        deleted: bool,
    ) -> Result<Vec<(String, u32)>, ApiError> {
        self.schema_by_id(id)?;
        Ok(self
            .subjects
            .iter()
            .flat_map(|(subject, versions)| {
                versions
                    .iter()
                    .filter(move |(_, entry)| entry.id == id && (deleted || !entry.deleted))
                    .map(move |(version, _)| (subject.clone(), *version))
            })
            .collect())
    }

    /// The level in force when no subject overrides it.
    pub(crate) fn global_level(&self) -> Compatibility {
        self.global_level.unwrap_or(self.default_level)
    }

    /// The level set on a subject itself, if any.
    pub(crate) fn subject_level(&self, subject: &str) -> Option<Compatibility> {
        self.subject_levels.get(subject).copied()
    }

    fn effective_level(&self, subject: &str) -> Compatibility {
        self.subject_level(subject)
            .unwrap_or_else(|| self.global_level())
    }

    /// The live versions a new schema is checked against under `level`.
    fn check_targets(&self, subject: &str, level: Compatibility) -> Vec<(u32, Entry)> {
        let mut live = self
            .subjects
            .get(subject)
            .into_iter()
            .flatten()
            .filter(|(_, entry)| !entry.deleted)
            .map(|(version, entry)| (*version, *entry));
        if level.is_transitive() {
            live.collect()
        } else {
            live.next_back().into_iter().collect()
        }
    }

    /// One message per rule `schema` breaks against `targets` under `level`.
    fn incompatibilities(
        &self,
        level: Compatibility,
        schema: &ParsedSchema,
        targets: &[(u32, Entry)],
    ) -> Vec<String> {
        let mut details = Vec::new();
        for (version, entry) in targets {
            let text = self.schemas.get(&entry.id).map_or("", String::as_str);
            let old = match Schema::parse_str(text) {
                Ok(old) => old,
                Err(e) => {
                    details.push(format!(
                        "version {version} holds a schema that does not parse: {e}"
                    ));
                    continue;
                }
            };
            if level.checks_backward()
                && let Some(why) = read_failure(&old, &schema.schema)
            {
                details.push(format!(
                    "the new schema cannot read data written with version {version}: {why}"
                ));
            }
            if level.checks_forward()
                && let Some(why) = read_failure(&schema.schema, &old)
            {
                details.push(format!(
                    "version {version} cannot read data written with the new schema: {why}"
                ));
            }
        }
        details
    }

    /// Why `schema` is incompatible with `subject` (empty when it is compatible): against one
    /// version when `selector` names one, else against what the subject's level checks.
    pub(crate) fn test_compatibility(
        &self,
        subject: &str,
        schema: &ParsedSchema,
        selector: Option<VersionSelector>,
    ) -> Result<Vec<String>, ApiError> {
        let level = self.effective_level(subject);
        let targets = match selector {
            Some(VersionSelector::Number(n)) => {
                let found = self.version(subject, VersionSelector::Number(n), false)?;
                vec![(
                    n,
                    Entry {
                        id: found.id,
                        deleted: false,
                    },
                )]
            }
            Some(VersionSelector::Latest) | None => self.check_targets(subject, level),
        };
        Ok(self.incompatibilities(level, schema, &targets))
    }

    // ---- write plans ----

    /// Registers `schema` under `subject`: the existing id when a live version already holds
    /// it, else a new version (reusing the schema's global id if it has one); 409 when the
    /// subject's level forbids it.
    pub(crate) fn plan_register(
        &self,
        subject: &str,
        schema: &ParsedSchema,
    ) -> Result<Plan<u32>, ApiError> {
        let versions = self.subjects.get(subject);
        let known_id = self.ids.get(&schema.text).copied();
        if let (Some(versions), Some(id)) = (versions, known_id)
            && versions.values().any(|e| e.id == id && !e.deleted)
        {
            return Ok(Plan {
                answer: id,
                changes: Vec::new(),
            });
        }
        let level = self.effective_level(subject);
        let details = self.incompatibilities(level, schema, &self.check_targets(subject, level));
        if !details.is_empty() {
            return Err(ApiError::Incompatible {
                subject: subject.to_owned(),
                level: level.as_str(),
                details,
            });
        }
        let id = known_id.unwrap_or_else(|| self.max_id() + 1);
        let version = versions
            .and_then(|v| v.keys().next_back())
            .map_or(1, |latest| latest + 1);
        Ok(Plan {
            answer: id,
            changes: vec![Change::PutSchema(SchemaValue {
                subject: subject.to_owned(),
                version,
                id,
                schema: schema.text.clone(),
                deleted: false,
            })],
        })
    }

    /// Deletes a subject: soft-deletes its live versions, or (`permanent`) removes versions
    /// already soft-deleted. Answers the versions deleted.
    pub(crate) fn plan_delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Plan<Vec<u32>>, ApiError> {
        let versions = self
            .subjects
            .get(subject)
            .ok_or_else(|| ApiError::SubjectNotFound(subject.to_owned()))?;
        let live: Vec<(u32, Entry)> = versions
            .iter()
            .filter(|(_, entry)| !entry.deleted)
            .map(|(version, entry)| (*version, *entry))
            .collect();
        if !permanent {
            if live.is_empty() {
                return Err(ApiError::SubjectSoftDeleted(subject.to_owned()));
            }
            return Ok(Plan {
                answer: live.iter().map(|(version, _)| *version).collect(),
                changes: live
                    .iter()
                    .map(|(version, entry)| self.soft_delete(subject, *version, *entry))
                    .collect(),
            });
        }
        if !live.is_empty() {
            return Err(ApiError::SubjectNotSoftDeleted(subject.to_owned()));
        }
        let all: Vec<u32> = versions.keys().copied().collect();
        let mut changes: Vec<Change> = all
            .iter()
            .map(|version| Change::RemoveSchema {
                subject: subject.to_owned(),
                version: *version,
            })
            .collect();
        changes.push(Change::MaxId(self.max_id()));
        if self.subject_levels.contains_key(subject) {
            changes.push(Change::RemoveConfig {
                subject: Some(subject.to_owned()),
            });
        }
        Ok(Plan {
            answer: all,
            changes,
        })
    }

    /// Deletes one version: soft, or (`permanent`) one already soft-deleted.
    pub(crate) fn plan_delete_version(
        &self,
        subject: &str,
        selector: VersionSelector,
        permanent: bool,
    ) -> Result<Plan<u32>, ApiError> {
        let versions = self
            .subjects
            .get(subject)
            .ok_or_else(|| ApiError::SubjectNotFound(subject.to_owned()))?;
        let found = match selector {
            VersionSelector::Latest => versions
                .iter()
                .rev()
                .find(|(_, entry)| permanent || !entry.deleted),
            VersionSelector::Number(n) => versions.get_key_value(&n),
        };
        let (version, entry) =
            found.ok_or_else(|| ApiError::VersionNotFound(selector.to_string()))?;
        let version = *version;
        let changes = match (permanent, entry.deleted) {
            (false, true) => {
                return Err(ApiError::VersionSoftDeleted(subject.to_owned(), version));
            }
            (true, false) => {
                return Err(ApiError::VersionNotSoftDeleted(subject.to_owned(), version));
            }
            (false, false) => vec![self.soft_delete(subject, version, *entry)],
            (true, true) => vec![
                Change::RemoveSchema {
                    subject: subject.to_owned(),
                    version,
                },
                Change::MaxId(self.max_id()),
            ],
        };
        Ok(Plan {
            answer: version,
            changes,
        })
    }

    fn soft_delete(&self, subject: &str, version: u32, entry: Entry) -> Change {
        Change::PutSchema(SchemaValue {
            deleted: true,
            ..self.subject_version(subject, version, entry).into()
        })
    }

    /// Sets the global level (`subject` None) or a subject's level.
    pub(crate) fn plan_set_level(
        subject: Option<&str>,
        level: Compatibility,
    ) -> Plan<Compatibility> {
        Plan {
            answer: level,
            changes: vec![Change::PutConfig {
                subject: subject.map(str::to_owned),
                level,
            }],
        }
    }

    /// Removes a subject's own level, answering the level it had; 40408 when it had none.
    pub(crate) fn plan_delete_subject_level(
        &self,
        subject: &str,
    ) -> Result<Plan<Compatibility>, ApiError> {
        let level = self
            .subject_level(subject)
            .ok_or_else(|| ApiError::SubjectLevelNotConfigured(subject.to_owned()))?;
        Ok(Plan {
            answer: level,
            changes: vec![Change::RemoveConfig {
                subject: Some(subject.to_owned()),
            }],
        })
    }
}

impl From<SubjectVersion> for SchemaValue {
    fn from(v: SubjectVersion) -> Self {
        Self {
            subject: v.subject,
            version: v.version,
            id: v.id,
            schema: v.schema,
            deleted: false,
        }
    }
}

fn has_live(versions: &BTreeMap<u32, Entry>) -> bool {
    versions.values().any(|entry| !entry.deleted)
}

#[cfg(test)]
mod tests;
