//! Per-tenant routing of `sink openmetadata`: an operation goes to the OpenMetadata server of
//! its tenant (the operation's `tenant`, else the `lineage-bus-tenant` header) when
//! `[sinks.openmetadata.tenants.<tenant>]` lists one, else to the sink's own server. Each route
//! has its own client, JWT and entity-id cache (ids differ between servers); each tenant has
//! its own rate limiter ([`TenantLimits`]), so one tenant cannot use up another's rate.

use std::collections::BTreeMap;
use std::sync::Arc;

use lineage_schemas::RecordCodec;
use lineage_schemas::records::OpenMetadataOperation;

use crate::config::OpenMetadataSinkConfig;
use crate::delivery::retry::AttemptError;
use crate::delivery::tenants::TenantLimits;
use crate::delivery::{Destination, SinkRecord};
use crate::error::SinkError;
use crate::openmetadata::destination::OpenMetadataDestination;

/// Writes each operation to its tenant's OpenMetadata server, within its tenant's rate.
#[derive(Debug)]
pub struct RoutedDestination {
    default: OpenMetadataDestination,
    tenants: BTreeMap<String, OpenMetadataDestination>,
    limits: TenantLimits,
}

impl RoutedDestination {
    /// The routes of `config`, decoding with `codec`.
    pub fn new(
        config: &OpenMetadataSinkConfig,
        codec: RecordCodec<OpenMetadataOperation>,
    ) -> Result<Self, SinkError> {
        let codec = Arc::new(codec);
        let mut tenants = BTreeMap::new();
        let mut rates = BTreeMap::new();
        for (tenant, route) in &config.tenants {
            let own = OpenMetadataSinkConfig {
                url: route.url.clone().unwrap_or_else(|| config.url.clone()),
                jwt_token: route.jwt_token.clone().or_else(|| config.jwt_token.clone()),
                tenants: BTreeMap::new(),
                ..config.clone()
            };
            tenants.insert(
                tenant.clone(),
                OpenMetadataDestination::new(&own, codec.clone())?,
            );
            if let Some(rate) = route.rate_limit {
                rates.insert(tenant.clone(), rate);
            }
        }
        Ok(Self {
            default: OpenMetadataDestination::new(config, codec)?,
            tenants,
            limits: TenantLimits::new(config.rate_limit_per_tenant, rates),
        })
    }

    /// The destination of `tenant`: its own route, else the sink's.
    fn route(&self, tenant: &str) -> &OpenMetadataDestination {
        self.tenants.get(tenant).unwrap_or(&self.default)
    }
}

/// The tenant of an operation: its `tenant` field, else the record's header, else empty.
fn tenant_of<'a>(operation: &'a OpenMetadataOperation, record: &'a SinkRecord) -> &'a str {
    if operation.tenant.is_empty() {
        record.tenant.as_deref().unwrap_or_default()
    } else {
        &operation.tenant
    }
}

impl Destination for RoutedDestination {
    async fn deliver(&self, record: &SinkRecord) -> Result<(), AttemptError> {
        let operation = self.default.decode(record).await?;
        let tenant = tenant_of(&operation, record).to_owned();
        self.limits.until_ready(&tenant).await;
        self.route(&tenant).write(operation).await
    }

    async fn probe(&self) -> bool {
        // The sink's own server; a tenant's server down holds back only that tenant's keys.
        self.default.probe().await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use lineage_schemas::RegistryClient;
    use lineage_schemas::records::{Operation, Origin, UpsertTag};

    use super::*;
    use crate::config::OpenMetadataTenantRoute;

    fn operation(tenant: &str) -> OpenMetadataOperation {
        OpenMetadataOperation {
            tenant: tenant.into(),
            origin: Origin {
                topic: "dagster.events".into(),
                partition: 0,
                offset: 0,
            },
            operation: Operation::UpsertTag(UpsertTag {
                classification: "c".into(),
                name: "t".into(),
                description: String::new(),
            }),
        }
    }

    fn record(tenant: Option<&str>) -> SinkRecord {
        SinkRecord {
            topic: "lineage.openmetadata".into(),
            partition: 0,
            offset: 0,
            key: None,
            value: Vec::new(),
            tenant: tenant.map(str::to_owned),
        }
    }

    #[test]
    fn the_operation_tenant_wins_over_the_header() {
        assert_eq!(
            tenant_of(&operation("acme"), &record(Some("other"))),
            "acme"
        );
        assert_eq!(tenant_of(&operation(""), &record(Some("other"))), "other");
        assert_eq!(tenant_of(&operation(""), &record(None)), "");
    }

    #[tokio::test]
    async fn tenants_get_their_own_server_and_the_rest_the_sinks() {
        let mut config = OpenMetadataSinkConfig {
            url: "http://om-default:8585".into(),
            ..OpenMetadataSinkConfig::default()
        };
        config.tenants.insert(
            "acme".into(),
            OpenMetadataTenantRoute {
                url: Some("http://om-acme:8585/".into()),
                jwt_token: Some("acme-token".to_owned().into()),
                rate_limit: Some(5),
            },
        );
        // No request is made: building routes needs neither the registry nor the servers.
        let registry = RegistryClient::new("http://127.0.0.1:1", Duration::from_secs(1), None);
        let codec = RecordCodec::with_schema_id(registry.unwrap(), 1).unwrap();
        let routed = RoutedDestination::new(&config, codec).unwrap();
        let base = |tenant: &str| format!("{:?}", routed.route(tenant));
        assert!(base("acme").contains("base: \"http://om-acme:8585\""));
        assert!(base("other").contains("base: \"http://om-default:8585\""));
        assert!(base("").contains("base: \"http://om-default:8585\""));
        // Each route has its own entity cache: the same FQN resolves per server.
        assert!(!std::ptr::eq(routed.route("acme"), routed.route("other")));
    }
}
