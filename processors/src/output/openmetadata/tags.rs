//! Dagster tags as OpenMetadata tags in one classification.

use lineage_schemas::records::{
    OpenMetadataOperation, Operation, Origin, UpsertClassification, UpsertTag, fqn_of,
};

use crate::output::OutputSettings;

/// The OpenMetadata tag name of a Dagster tag: `key:value`, or `key` for an empty value;
/// `.` (the FQN separator) becomes `_` and `::` (forbidden in names) becomes `:`.
pub fn tag_name(key: &str, value: &str) -> String {
    let raw = if value.is_empty() {
        key.to_owned()
    } else {
        format!("{key}:{value}")
    };
    let mut name = raw.replace('.', "_");
    while name.contains("::") {
        name = name.replace("::", ":");
    }
    name
}

/// The FQN of a Dagster tag in the configured classification.
pub fn tag_fqn(settings: &OutputSettings, key: &str, value: &str) -> String {
    fqn_of(&[&settings.tag_classification, &tag_name(key, value)])
}

/// The classification upsert, then one tag upsert per distinct tag of `tags`.
pub(super) fn tag_operations<'a>(
    tenant: &str,
    origin: &Origin,
    settings: &OutputSettings,
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<OpenMetadataOperation> {
    let mut names: Vec<(String, &str, &str)> = tags
        .into_iter()
        .map(|(key, value)| (tag_name(key, value), key, value))
        .collect();
    names.sort();
    names.dedup_by(|a, b| a.0 == b.0);
    if names.is_empty() {
        return Vec::new();
    }
    let op = |operation| OpenMetadataOperation {
        tenant: tenant.to_owned(),
        origin: origin.clone(),
        operation,
    };
    let mut ops = vec![op(Operation::UpsertClassification(UpsertClassification {
        name: settings.tag_classification.clone(),
        description: "Tags of Dagster jobs and assets, written by lineage-bus.".to_owned(),
    }))];
    ops.extend(names.into_iter().map(|(name, key, value)| {
        op(Operation::UpsertTag(UpsertTag {
            classification: settings.tag_classification.clone(),
            name,
            description: if value.is_empty() {
                format!("Dagster tag `{key}`.")
            } else {
                format!("Dagster tag `{key}` = `{value}`.")
            },
        }))
    }));
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names_avoid_fqn_separators() {
        assert_eq!(tag_name("team", "analytics"), "team:analytics");
        assert_eq!(
            tag_name("dagster/kind/snowflake", ""),
            "dagster/kind/snowflake"
        );
        assert_eq!(tag_name("a.b", "c::d"), "a_b:c:d");
        let settings = OutputSettings::default();
        assert_eq!(tag_fqn(&settings, "team", "x"), "DagsterTags.team:x");
    }

    #[test]
    fn one_classification_then_distinct_tags() {
        let origin = Origin {
            topic: "dagster.events".into(),
            partition: 0,
            offset: 1,
        };
        let ops = tag_operations(
            "prod",
            &origin,
            &OutputSettings::default(),
            [("team", "a"), ("team", "a"), ("pii", "")],
        );
        assert_eq!(ops.len(), 3);
        assert!(matches!(
            ops[0].operation,
            Operation::UpsertClassification(_)
        ));
        let names: Vec<_> = ops[1..]
            .iter()
            .map(|op| match &op.operation {
                Operation::UpsertTag(t) => t.name.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(names, ["pii", "team:a"]);
    }
}
