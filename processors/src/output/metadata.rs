//! Reading the well-known Dagster metadata entries and an asset's upstream keys.

use std::borrow::Cow;
use std::collections::BTreeMap;

use lineage_schemas::records::{
    AssetDefinition, ColumnLineage, DagsterEvent, MetadataEntry, MetadataKind, TableSchema,
};

fn find<'a>(entries: &'a [MetadataEntry], labels: &[&str]) -> Option<&'a MetadataEntry> {
    labels
        .iter()
        .find_map(|label| entries.iter().find(|entry| entry.label == *label))
}

/// `dagster/column_schema` (or `column_schema`).
pub(crate) fn column_schema(entries: &[MetadataEntry]) -> Option<&TableSchema> {
    find(entries, &["dagster/column_schema", "column_schema"])?
        .table_schema
        .as_ref()
}

const COLUMN_LINEAGE: [&str; 2] = ["dagster/column_lineage", "column_lineage"];
const INPUT_TAG_PREFIX: &str = "dagster/input_data_version/";

/// `dagster/column_lineage` (or `column_lineage`).
pub(crate) fn column_lineage(entries: &[MetadataEntry]) -> Option<&ColumnLineage> {
    find(entries, &COLUMN_LINEAGE)?.column_lineage.as_ref()
}

/// `dagster/row_count` (or `row_count`) as an integer.
pub(crate) fn row_count(entries: &[MetadataEntry]) -> Option<i64> {
    let entry = find(entries, &["dagster/row_count", "row_count"])?;
    entry.int.or_else(|| match entry.kind {
        MetadataKind::Text => entry.text.as_deref()?.trim().parse().ok(),
        _ => None,
    })
}

/// A text-like value of one of `labels`.
pub(crate) fn text<'a>(entries: &'a [MetadataEntry], labels: &[&str]) -> Option<&'a str> {
    find(entries, labels)?.text.as_deref()
}

/// The data source URI: `dagster/uri`, `uri` or `path` (a path becomes `file://`); `None` for a
/// value that is not an absolute URI.
pub(crate) fn data_source_uri(entries: &[MetadataEntry]) -> Option<String> {
    let value = text(entries, &["dagster/uri", "uri", "path"])?.trim();
    if value.starts_with('/') {
        return Some(format!("file://{value}"));
    }
    let scheme_end = value.find(':')?;
    let scheme = &value[..scheme_end];
    let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    is_scheme.then(|| value.to_owned())
}

/// The upstream assets of a materialization: the definition's deps; without a definition, the
/// inputs Dagster recorded in the event's tags (`dagster/input_data_version/<a/b/c>`); plus the
/// assets its column lineage names. Deduplicated, in first-seen order; borrowed where the
/// event or the definition holds the key.
pub(crate) fn upstream_keys<'a>(
    event: &'a DagsterEvent,
    asset: Option<&'a AssetDefinition>,
) -> Vec<Cow<'a, [String]>> {
    let mut keys: Vec<Cow<'a, [String]>> = Vec::new();
    let mut push = |key: Cow<'a, [String]>| {
        if !keys.contains(&key) {
            keys.push(key);
        }
    };
    match asset {
        Some(asset) => asset.deps.iter().for_each(|key| push(Cow::Borrowed(key))),
        None => input_tags(&event.tags).for_each(|key| push(Cow::Owned(key))),
    }
    if let Some(lineage) = column_lineage(&event.metadata) {
        for column in &lineage.columns {
            for dep in &column.deps {
                push(Cow::Borrowed(&dep.asset_key));
            }
        }
    }
    keys
}

/// The part of a materialization its table lineage reads ([`upstream_keys`],
/// [`column_lineage`]): identity, run and job, the recorded inputs and the column lineage;
/// the rest (schema, statistics, raw JSON...) is left out.
pub(crate) fn lineage_part(event: &DagsterEvent) -> DagsterEvent {
    DagsterEvent {
        tenant: event.tenant.clone(),
        source: event.source.clone(),
        event_type: event.event_type,
        raw_event_type: String::new(),
        run_id: event.run_id.clone(),
        job_name: event.job_name.clone(),
        step_key: None,
        asset_key: event.asset_key.clone(),
        partition: None,
        timestamp_ms: event.timestamp_ms,
        message: None,
        description: None,
        metadata: event
            .metadata
            .iter()
            .filter(|entry| COLUMN_LINEAGE.contains(&entry.label.as_str()))
            .cloned()
            .collect(),
        tags: event
            .tags
            .range(INPUT_TAG_PREFIX.to_owned()..)
            .take_while(|(key, _)| key.starts_with(INPUT_TAG_PREFIX))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
        check: None,
        error: None,
        raw_json: None,
    }
}

fn input_tags(tags: &BTreeMap<String, String>) -> impl Iterator<Item = Vec<String>> + '_ {
    tags.range(INPUT_TAG_PREFIX.to_owned()..)
        .take_while(|(key, _)| key.starts_with(INPUT_TAG_PREFIX))
        .map(|(key, _)| {
            key[INPUT_TAG_PREFIX.len()..]
                .split('/')
                .map(str::to_owned)
                .collect()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_source_uri_needs_a_scheme() {
        let uri = |v: &str| data_source_uri(&[MetadataEntry::text("uri", MetadataKind::Url, v)]);
        assert_eq!(uri("s3://bucket/key").as_deref(), Some("s3://bucket/key"));
        assert_eq!(uri("/data/x.csv").as_deref(), Some("file:///data/x.csv"));
        assert_eq!(uri("relative/x.csv"), None);
        assert_eq!(uri("1x:bad"), None);
    }

    #[test]
    fn row_count_from_int_or_text() {
        assert_eq!(
            row_count(&[MetadataEntry::int("dagster/row_count", 7)]),
            Some(7)
        );
        assert_eq!(
            row_count(&[MetadataEntry::text("row_count", MetadataKind::Text, " 12 ")]),
            Some(12)
        );
        assert_eq!(row_count(&[]), None);
    }
}
