//! OpenMetadata's `Table` JSON (the fields lineage-bus keeps) and its conversion into the
//! [`TableSnapshot`] record; FQN splitting with OpenMetadata's quoting rules.

use lineage_schemas::records::{Column, TableSnapshot, quote_fqn_part};
use serde::Deserialize;

/// One page of `GET /api/v1/tables` or `GET /api/v1/databases`.
#[derive(Debug, Deserialize)]
pub(crate) struct Page<T> {
    /// The entities of the page.
    pub(crate) data: Vec<T>,
    /// Cursors.
    #[serde(default)]
    pub(crate) paging: Paging,
}

/// OpenMetadata's `paging` object.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Paging {
    /// Cursor of the next page; absent on the last page.
    pub(crate) after: Option<String>,
}

/// An entity reference (`service`, `database`, `databaseSchema`, owners).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntityRef {
    pub(crate) name: Option<String>,
    pub(crate) fully_qualified_name: Option<String>,
}

/// A database (only its FQN is used, to list its tables).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Database {
    pub(crate) fully_qualified_name: String,
}

/// A tag label.
#[derive(Debug, Deserialize)]
pub(crate) struct TagLabel {
    #[serde(rename = "tagFQN")]
    pub(crate) tag_fqn: String,
}

/// A table column.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApiColumn {
    pub(crate) name: String,
    pub(crate) data_type: String,
    pub(crate) data_type_display: Option<String>,
    pub(crate) fully_qualified_name: Option<String>,
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) children: Option<Vec<ApiColumn>>,
}

/// A table as `GET /api/v1/tables?fields=columns,tags,owners` returns it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApiTable {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) fully_qualified_name: String,
    pub(crate) description: Option<String>,
    pub(crate) table_type: Option<String>,
    #[serde(default)]
    pub(crate) columns: Vec<ApiColumn>,
    #[serde(default)]
    pub(crate) tags: Vec<TagLabel>,
    #[serde(default)]
    pub(crate) owners: Vec<EntityRef>,
    pub(crate) service: Option<EntityRef>,
    pub(crate) database: Option<EntityRef>,
    pub(crate) database_schema: Option<EntityRef>,
    pub(crate) service_type: Option<String>,
    #[serde(default)]
    pub(crate) deleted: bool,
    pub(crate) version: Option<f64>,
    pub(crate) updated_at: Option<i64>,
}

/// A table FQN that is not `service.database.schema.table`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("table FQN {fqn:?} is not service.database.schema.table (OpenMetadata quoting)")]
pub struct BadFqn {
    /// The FQN.
    pub fqn: String,
}

/// Splits an FQN into its unquoted parts: parts are separated by `.`, a part holding a `.` is
/// wrapped in double quotes (OpenMetadata's `FullyQualifiedName`).
pub fn split_fqn(fqn: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    for c in fqn.chars() {
        match c {
            '"' if quoted => quoted = false,
            '"' if current.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            '"' => return None,
            '.' if !quoted => {
                if current.is_empty() {
                    return None;
                }
                parts.push(std::mem::take(&mut current));
                was_quoted = false;
            }
            _ if was_quoted && !quoted => return None, // text after a closing quote
            _ => current.push(c),
        }
    }
    if quoted || current.is_empty() {
        return None;
    }
    parts.push(current);
    Some(parts)
}

/// The first part of an FQN (the service), unquoted.
pub fn service_of(fqn: &str) -> Option<String> {
    split_fqn(fqn).and_then(|parts| parts.into_iter().next())
}

impl ApiTable {
    /// The snapshot record of this table, for `tenant`.
    pub(crate) fn into_snapshot(self, tenant: &str) -> Result<TableSnapshot, BadFqn> {
        let parts = split_fqn(&self.fully_qualified_name)
            .filter(|p| p.len() == 4)
            .ok_or_else(|| BadFqn {
                fqn: self.fully_qualified_name.clone(),
            })?;
        let [service, database, schema, _] =
            <[String; 4]>::try_from(parts).map_err(|_| BadFqn {
                fqn: self.fully_qualified_name.clone(),
            })?;
        let name_of =
            |r: Option<EntityRef>, fallback: String| r.and_then(|r| r.name).unwrap_or(fallback);
        let columns = convert_columns(&self.fully_qualified_name, self.columns);
        Ok(TableSnapshot {
            tenant: tenant.to_owned(),
            id: self.id,
            service: name_of(self.service, service),
            database: name_of(self.database, database),
            schema: name_of(self.database_schema, schema),
            table: self.name,
            service_type: self.service_type,
            table_type: self.table_type,
            description: self.description,
            columns,
            tags: self.tags.into_iter().map(|t| t.tag_fqn).collect(),
            owners: self
                .owners
                .into_iter()
                .filter_map(|o| o.name.or(o.fully_qualified_name))
                .collect(),
            // Deleted tables are tombstoned, never published: a published snapshot is live.
            deleted: false,
            version: self.version.unwrap_or_default(),
            updated_at_ms: self.updated_at.unwrap_or_default(),
            fqn: self.fully_qualified_name,
        })
    }
}

fn convert_columns(parent_fqn: &str, columns: Vec<ApiColumn>) -> Vec<Column> {
    columns
        .into_iter()
        .map(|c| {
            let fqn = c
                .fully_qualified_name
                .unwrap_or_else(|| format!("{parent_fqn}.{}", quote_fqn_part(&c.name)));
            Column {
                children: convert_columns(&fqn, c.children.unwrap_or_default()),
                name: c.name,
                data_type: c.data_type,
                data_type_display: c.data_type_display,
                description: c.description,
                fqn,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fqns_split_with_quoting() {
        assert_eq!(split_fqn("a.b.c.d").unwrap(), ["a", "b", "c", "d"]);
        assert_eq!(
            split_fqn(r#"svc.db."my.schema"."t.1""#).unwrap(),
            ["svc", "db", "my.schema", "t.1"]
        );
        for bad in ["", "a..b", "a.", r#"a."b"#, r#"a.b"c"#, r#"a."b"c.d"#] {
            assert_eq!(split_fqn(bad), None, "{bad}");
        }
        assert_eq!(service_of(r#""my.svc".db.s.t"#).as_deref(), Some("my.svc"));
    }

    #[test]
    fn api_table_becomes_a_snapshot() {
        let json = r#"{
          "id": "5d1c", "name": "t.1", "fullyQualifiedName": "pg.shop.public.\"t.1\"",
          "tableType": "Regular", "version": 0.2, "updatedAt": 1700000000000, "deleted": false,
          "serviceType": "Postgres",
          "service": {"id": "x", "type": "databaseService", "name": "pg"},
          "database": {"id": "y", "type": "database", "name": "shop"},
          "databaseSchema": {"id": "z", "type": "databaseSchema", "name": "public"},
          "columns": [{"name": "payload", "dataType": "STRUCT",
                       "children": [{"name": "a", "dataType": "INT",
                                     "fullyQualifiedName": "pg.shop.public.\"t.1\".payload.a"}]}],
          "tags": [{"tagFQN": "PII.Sensitive", "source": "Classification"}],
          "owners": [{"id": "u", "type": "user", "name": "alice"}],
          "extra": {"ignored": true}
        }"#;
        let table: ApiTable = serde_json::from_str(json).unwrap();
        let s = table.into_snapshot("om-prod").unwrap();
        assert_eq!(
            (
                s.service.as_str(),
                s.database.as_str(),
                s.schema.as_str(),
                s.table.as_str()
            ),
            ("pg", "shop", "public", "t.1")
        );
        assert_eq!(s.columns[0].fqn, "pg.shop.public.\"t.1\".payload");
        assert_eq!(
            s.columns[0].children[0].fqn,
            "pg.shop.public.\"t.1\".payload.a"
        );
        assert_eq!(s.tags, ["PII.Sensitive"]);
        assert_eq!(s.owners, ["alice"]);
        assert_eq!(
            (s.version, s.updated_at_ms, s.deleted),
            (0.2, 1_700_000_000_000, false)
        );
        assert_eq!(s.tenant, "om-prod");
    }

    #[test]
    fn a_three_part_fqn_is_refused() {
        let json = r#"{"id": "1", "name": "t", "fullyQualifiedName": "db.s.t"}"#;
        let table: ApiTable = serde_json::from_str(json).unwrap();
        assert!(table.into_snapshot("x").is_err());
    }
}
