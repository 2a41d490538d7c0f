//! One poll: list the catalog page by page, publish each page's new or changed snapshots,
//! then tombstone what the topic holds but the catalog no longer has (or has soft-deleted).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use lineage_schemas::RecordCodec;
use lineage_schemas::records::TableSnapshot;
use tokio_util::sync::CancellationToken;

use super::OpenMetadataError;
use super::client::OpenMetadataClient;
use super::metrics::METRICS;
use super::publisher::Publisher;
use super::snapshot::{ApiTable, service_of};
use super::state::content_hash;

/// What one poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollStats {
    /// Snapshots written (new or changed tables).
    pub published: usize,
    /// Tombstones written (deleted tables).
    pub tombstoned: usize,
    /// Tables whose snapshot the topic already holds.
    pub unchanged: usize,
    /// Tables skipped because their FQN is not `service.database.schema.table`.
    pub invalid: usize,
}

/// A converted page: (FQN, encoded snapshot, hash) of live tables, count of invalid ones.
type Converted = (Vec<(String, Vec<u8>, u64)>, usize);

/// The producer's state between polls: what the topic holds (FQN → content hash).
pub(crate) struct Poller {
    pub(crate) client: OpenMetadataClient,
    pub(crate) codec: Arc<RecordCodec<TableSnapshot>>,
    pub(crate) publisher: Publisher,
    pub(crate) tenant: String,
    pub(crate) services: Vec<String>,
    pub(crate) page_size: u32,
    pub(crate) known: HashMap<String, u64>,
}

impl Poller {
    /// True when `fqn` belongs to the configured services (all when none are configured).
    fn in_scope(&self, fqn: &str) -> bool {
        self.services.is_empty() || service_of(fqn).is_some_and(|s| self.services.contains(&s))
    }

    /// Live snapshots in scope.
    pub(crate) fn live(&self) -> usize {
        self.known.keys().filter(|k| self.in_scope(k)).count()
    }

    /// Runs one poll; `None` when shutdown interrupted it (what was committed stays).
    pub(crate) async fn poll(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Result<Option<PollStats>, OpenMetadataError> {
        let mut stats = PollStats::default();
        let mut seen = HashSet::with_capacity(self.known.len());
        let databases: Vec<Option<String>> = if self.services.is_empty() {
            vec![None]
        } else {
            self.databases(shutdown)
                .await?
                .into_iter()
                .map(Some)
                .collect()
        };
        for database in databases {
            let mut after: Option<String> = None;
            loop {
                if shutdown.is_cancelled() {
                    return Ok(None);
                }
                let page = self
                    .client
                    .tables_page(database.as_deref(), self.page_size, after.as_deref())
                    .await?;
                self.apply_page(page.data, &mut seen, &mut stats).await?;
                match page.paging.after {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        let gone: Vec<String> = self
            .known
            .keys()
            .filter(|k| self.in_scope(k) && !seen.contains(*k))
            .cloned()
            .collect();
        if !gone.is_empty() {
            self.publisher
                .publish(gone.iter().map(|k| (k.clone(), None)).collect())
                .await?;
            for key in &gone {
                self.known.remove(key);
            }
            stats.tombstoned = gone.len();
        }
        Ok(Some(stats))
    }

    async fn databases(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<Vec<String>, OpenMetadataError> {
        let mut out = Vec::new();
        for service in &self.services {
            let mut after: Option<String> = None;
            loop {
                if shutdown.is_cancelled() {
                    break;
                }
                let page = self
                    .client
                    .databases_page(service, self.page_size, after.as_deref())
                    .await?;
                out.extend(page.data.into_iter().map(|d| d.fully_qualified_name));
                match page.paging.after {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        Ok(out)
    }

    async fn apply_page(
        &mut self,
        tables: Vec<ApiTable>,
        seen: &mut HashSet<String>,
        stats: &mut PollStats,
    ) -> Result<(), OpenMetadataError> {
        let codec = Arc::clone(&self.codec);
        let tenant = self.tenant.clone();
        // Conversion and Avro encoding of a page is CPU work: off the reactor.
        let (converted, invalid): Converted =
            tokio::task::spawn_blocking(move || convert(tables, &tenant, &codec))
                .await
                .map_err(OpenMetadataError::Task)??;
        stats.invalid += invalid;
        let mut changed = Vec::new();
        let mut hashes = Vec::new();
        for (fqn, bytes, hash) in converted {
            if !self.in_scope(&fqn) {
                continue;
            }
            if self.known.get(&fqn) == Some(&hash) {
                stats.unchanged += 1;
            } else {
                hashes.push((fqn.clone(), hash));
                changed.push((fqn.clone(), Some(bytes)));
            }
            seen.insert(fqn);
        }
        if changed.is_empty() {
            return Ok(());
        }
        self.publisher.publish(changed).await?;
        stats.published += hashes.len();
        self.known.extend(hashes);
        Ok(())
    }
}

/// Converts and encodes the live tables of a page; soft-deleted tables are left out (they are
/// tombstoned when the topic holds them).
fn convert(
    tables: Vec<ApiTable>,
    tenant: &str,
    codec: &RecordCodec<TableSnapshot>,
) -> Result<Converted, OpenMetadataError> {
    let mut out = Vec::with_capacity(tables.len());
    let mut invalid = 0;
    for table in tables {
        if table.deleted {
            continue;
        }
        let snapshot = match table.into_snapshot(tenant) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "table skipped");
                invalid += 1;
                continue;
            }
        };
        let bytes = codec
            .encode(&snapshot)
            .map_err(|source| OpenMetadataError::Codec {
                what: format!("encoding {}", snapshot.fqn),
                source,
            })?;
        let hash = content_hash(&bytes);
        out.push((snapshot.fqn, bytes, hash));
    }
    Ok((out, invalid))
}

impl PollStats {
    /// Adds the poll's counts to the metrics.
    pub(crate) fn record(&self) {
        let tables = &METRICS.tables;
        tables
            .with_label_values(&["published"])
            .inc_by(self.published as u64);
        tables
            .with_label_values(&["tombstoned"])
            .inc_by(self.tombstoned as u64);
        tables
            .with_label_values(&["unchanged"])
            .inc_by(self.unchanged as u64);
    }
}
