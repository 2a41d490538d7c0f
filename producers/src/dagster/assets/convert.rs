//! The asset graph over GraphQL: the workspace's code locations and repositories, each
//! repository's asset nodes page by page (`assetNodesConnection`), and their conversion into
//! [`AssetDefinition`]s.

use std::collections::BTreeMap;

use lineage_schemas::records::{AssetDefinition, SourceKind, SourcePosition};
use serde::Deserialize;

use crate::dagster::graphql::client::{GraphqlClient, GraphqlError, Typed};
use crate::dagster::graphql::metadata::{self, EntryJson, KeyJson, TagJson};

/// Code locations and their repositories.
const WORKSPACE: &str = r"
query LineageBusWorkspace {
  workspaceOrError {
    __typename
    ... on PythonError { message }
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
          ... on RepositoryLocation { name repositories { name } }
        }
      }
    }
  }
}";

/// One page of a repository's asset nodes (metadata fragments appended).
const ASSET_NODES: &str = r"
query LineageBusAssetNodes($selector: RepositorySelector!, $cursor: String, $limit: Int!) {
  repositoryOrError(repositorySelector: $selector) {
    __typename
    ... on PythonError { message }
    ... on RepositoryNotFoundError { message }
    ... on Repository {
      assetNodesConnection(cursor: $cursor, limit: $limit) {
        cursor
        hasMore
        nodes {
          assetKey { path }
          groupName
          description
          jobNames
          kinds
          isMaterializable
          isAutoCreatedStub
          dependencyKeys { path }
          owners { __typename ... on UserAssetOwner { email } ... on TeamAssetOwner { team } }
          tags { key value }
          metadataEntries { ...Metadata }
          partitionDefinition { type description }
          assetChecksOrError { __typename ... on AssetChecks { checks { name } } }
        }
      }
    }
  }
}";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkspaceData {
    workspace_or_error: WorkspaceOrError,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkspaceOrError {
    #[serde(flatten)]
    typed: Typed,
    #[serde(default)]
    location_entries: Vec<LocationEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LocationEntry {
    name: String,
    load_status: String,
    location_or_load_error: Option<LocationOrError>,
}

#[derive(Deserialize)]
struct LocationOrError {
    #[serde(flatten)]
    typed: Typed,
    #[serde(default)]
    repositories: Vec<Named>,
}

#[derive(Debug, Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RepositoryData {
    repository_or_error: RepositoryOrError,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RepositoryOrError {
    #[serde(flatten)]
    typed: Typed,
    asset_nodes_connection: Option<Connection>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Connection {
    cursor: Option<String>,
    has_more: bool,
    nodes: Vec<AssetNode>,
}

/// One `AssetNode`, the fields the record carries.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AssetNode {
    asset_key: KeyJson,
    group_name: Option<String>,
    description: Option<String>,
    #[serde(default)]
    job_names: Vec<String>,
    #[serde(default)]
    kinds: Vec<String>,
    is_materializable: bool,
    #[serde(default)]
    is_auto_created_stub: bool,
    #[serde(default)]
    dependency_keys: Vec<KeyJson>,
    #[serde(default)]
    owners: Vec<OwnerJson>,
    #[serde(default)]
    tags: Vec<TagJson>,
    #[serde(default)]
    metadata_entries: Vec<EntryJson>,
    partition_definition: Option<PartitionsJson>,
    #[serde(rename = "assetChecksOrError")]
    checks_or_error: Option<ChecksJson>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnerJson {
    email: Option<String>,
    team: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PartitionsJson {
    #[serde(rename = "type")]
    kind: String,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChecksJson {
    #[serde(default)]
    checks: Vec<Named>,
}

/// The workspace as listed: repositories to read, and code locations that did not load
/// (their assets are left as the topic holds them).
#[derive(Debug, Default)]
pub(crate) struct Workspace {
    /// (code location, repository) pairs of loaded locations.
    pub(crate) repositories: Vec<(String, String)>,
    /// Locations loading or failing to load.
    pub(crate) unavailable: Vec<String>,
}

/// Lists the workspace's code locations.
pub(crate) async fn workspace(client: &GraphqlClient) -> Result<Workspace, GraphqlError> {
    const OPERATION: &str = "LineageBusWorkspace";
    let data: WorkspaceData = client
        .query(OPERATION, WORKSPACE, serde_json::json!({}))
        .await?;
    let workspace = data.workspace_or_error;
    if workspace.typed.typename != "Workspace" {
        return Err(workspace.typed.error(OPERATION));
    }
    let mut out = Workspace::default();
    for entry in workspace.location_entries {
        match entry.location_or_load_error {
            Some(location)
                if entry.load_status == "LOADED"
                    && location.typed.typename == "RepositoryLocation" =>
            {
                for repository in location.repositories {
                    out.repositories.push((entry.name.clone(), repository.name));
                }
            }
            other => {
                tracing::warn!(
                    location = entry.name,
                    status = entry.load_status,
                    error = other.and_then(|o| o.typed.message).unwrap_or_default(),
                    "code location not loaded; its assets are left as they are"
                );
                out.unavailable.push(entry.name);
            }
        }
    }
    Ok(out)
}

/// Every asset node of one repository, `page_size` per request.
pub(crate) async fn asset_nodes(
    client: &GraphqlClient,
    location: &str,
    repository: &str,
    page_size: u32,
) -> Result<Vec<AssetNode>, GraphqlError> {
    const OPERATION: &str = "LineageBusAssetNodes";
    let query = format!("{ASSET_NODES}\n{}", metadata::FRAGMENTS);
    let mut cursor: Option<String> = None;
    let mut nodes = Vec::new();
    loop {
        let data: RepositoryData = client
            .query(
                OPERATION,
                &query,
                serde_json::json!({
                    "selector": {"repositoryName": repository, "repositoryLocationName": location},
                    "cursor": cursor,
                    "limit": page_size.max(1),
                }),
            )
            .await?;
        let repository_or_error = data.repository_or_error;
        let Some(page) = repository_or_error.asset_nodes_connection else {
            return Err(repository_or_error.typed.error(OPERATION));
        };
        let done = !page.has_more || page.nodes.is_empty() || page.cursor.is_none();
        nodes.extend(page.nodes);
        if done {
            return Ok(nodes);
        }
        cursor = page.cursor;
    }
}

impl AssetNode {
    /// Whether this node is a placeholder Dagster made for a dep defined nowhere.
    pub(crate) fn is_stub(&self) -> bool {
        self.is_auto_created_stub
    }

    /// Whether the node can be materialized (preferred when a key is in two repositories).
    pub(crate) fn is_materializable(&self) -> bool {
        self.is_materializable
    }

    /// The asset key path.
    pub(crate) fn key(&self) -> &[String] {
        &self.asset_key.path
    }

    /// The record of this node of `tenant`, read from `location`/`repository`.
    pub(crate) fn into_definition(
        self,
        tenant: &str,
        location: &str,
        repository: &str,
        now_ms: i64,
    ) -> AssetDefinition {
        let checks = self
            .checks_or_error
            .map(|c| c.checks.into_iter().map(|c| c.name).collect())
            .unwrap_or_default();
        let tags: BTreeMap<String, String> = metadata::tag_map(self.tags);
        AssetDefinition {
            tenant: tenant.to_owned(),
            source: SourcePosition {
                kind: SourceKind::Graphql,
                storage_id: None,
                shard: None,
                cursor: None,
            },
            asset_key: self.asset_key.path,
            code_location: Some(location.to_owned()),
            repository: Some(repository.to_owned()),
            group: self.group_name,
            description: self.description,
            job_names: self.job_names,
            deps: self.dependency_keys.into_iter().map(|k| k.path).collect(),
            owners: self
                .owners
                .into_iter()
                .filter_map(|o| o.email.or(o.team.map(|team| format!("team:{team}"))))
                .collect(),
            tags,
            kinds: self.kinds,
            metadata: metadata::entries(self.metadata_entries),
            is_materializable: self.is_materializable,
            partitions: self
                .partition_definition
                .map(|p| p.description.filter(|d| !d.is_empty()).unwrap_or(p.kind)),
            checks,
            updated_ms: now_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use lineage_schemas::records::MetadataKind;

    use super::*;

    #[test]
    fn an_asset_node_becomes_a_definition() {
        let node: AssetNode = serde_json::from_str(
            r#"{"assetKey": {"path": ["warehouse_db", "raw", "orders"]}, "groupName": "raw",
                "description": "Orders", "jobNames": ["ingest_job"], "kinds": ["postgres"],
                "isMaterializable": true, "isAutoCreatedStub": false,
                "dependencyKeys": [{"path": ["vendor_api", "orders_endpoint"]}],
                "owners": [{"__typename": "UserAssetOwner", "email": "a@example.com"},
                           {"__typename": "TeamAssetOwner", "team": "analytics"}],
                "tags": [{"key": "tier", "value": "bronze"}],
                "metadataEntries": [{"__typename": "TextMetadataEntry", "label": "dagster/table_name", "text": "warehouse_db.raw.orders"}],
                "partitionDefinition": {"type": "TIME_WINDOW", "description": "Daily, starting 2024-01-01 UTC."},
                "assetChecksOrError": {"__typename": "AssetChecks", "checks": [{"name": "not_empty"}]}}"#,
        )
        .unwrap();
        assert!(!node.is_stub());
        let definition = node.into_definition("prod", "loc", "__repository__", 7);
        assert_eq!(definition.kafka_key(), "prod/warehouse_db/raw/orders");
        assert_eq!(
            definition.deps,
            vec![vec!["vendor_api".to_owned(), "orders_endpoint".to_owned()]]
        );
        assert_eq!(definition.owners, ["a@example.com", "team:analytics"]);
        assert_eq!(definition.code_location.as_deref(), Some("loc"));
        assert_eq!(definition.metadata[0].kind, MetadataKind::Text);
        assert_eq!(
            definition.partitions.as_deref(),
            Some("Daily, starting 2024-01-01 UTC.")
        );
        assert_eq!(definition.checks, ["not_empty"]);
        assert_eq!(definition.tags["tier"], "bronze");
        assert_eq!(definition.updated_ms, 7);
    }
}
