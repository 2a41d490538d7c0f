//! One poll, of one of two kinds:
//!
//! - **change events** (every `poll_interval`): read the table events since the cursor (minus
//!   `event_overlap`), read the tables they name again by id (at most `event_fetch_limit`,
//!   else a full listing), publish what differs from the topic, tombstone deleted tables, and
//!   move the cursor in the same transaction;
//! - **full listing** (at start without a cursor, then every `full_relist_interval`): list the
//!   catalog page by page, publish each page's changes, then tombstone what the topic holds
//!   but the catalog no longer lists, and set both cursors in that last transaction.
//!
//! Both compare a fingerprint (table id, version, updatedAt) with what the topic holds: an
//! unchanged table is neither converted nor encoded, and an unchanged catalog publishes
//! nothing.

use std::collections::HashSet;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use lineage_bus_core::clock::now_ms;
use lineage_schemas::RecordCodec;
use lineage_schemas::records::TableSnapshot;
use tokio_util::sync::CancellationToken;

use super::OpenMetadataError;
use super::client::OpenMetadataClient;
use super::cursor::{Cursors, Kind, Positions};
use super::events;
use super::metrics::METRICS;
use super::publisher::{CursorRecord, Publisher, Record};
use super::snapshot::{ApiTable, service_of};
use super::state::{Fingerprint, Index, Known};

/// Tables read by id at the same time.
const FETCH_CONCURRENCY: usize = 8;

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
    /// Change events read.
    pub events: usize,
    /// True when the poll was a full listing.
    pub listing: bool,
}

/// Converted tables: (FQN, encoded snapshot, what the topic will hold), count of invalid ones.
type Converted = (Vec<(String, Vec<u8>, Known)>, usize);

/// The producer's state between polls.
pub(crate) struct Poller {
    pub(crate) client: OpenMetadataClient,
    pub(crate) codec: Arc<RecordCodec<TableSnapshot>>,
    pub(crate) publisher: Publisher,
    pub(crate) cursors: Cursors,
    pub(crate) tenant: String,
    pub(crate) services: Vec<String>,
    pub(crate) page_size: u32,
    pub(crate) event_fetch_limit: usize,
    pub(crate) event_overlap_ms: i64,
    /// What the topic holds.
    pub(crate) index: Index,
    /// The committed cursors.
    pub(crate) positions: Positions,
}

impl Poller {
    /// True when `fqn` belongs to the configured services (all when none are configured).
    fn in_scope(&self, fqn: &str) -> bool {
        in_scope(&self.services, fqn)
    }

    /// Live snapshots in scope.
    pub(crate) fn live(&self) -> usize {
        self.index.fqns().filter(|k| self.in_scope(k)).count()
    }

    /// Polls the change events since the cursor (a full listing when there is no cursor yet
    /// or too many tables changed); `None` when shutdown interrupted it.
    pub(crate) async fn events(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Result<Option<PollStats>, OpenMetadataError> {
        let Some(cursor) = self.positions.events else {
            return self.listing("start", shutdown).await;
        };
        let events = self
            .client
            .events(cursor.saturating_sub(self.event_overlap_ms))
            .await?;
        let plan = events::plan(&events, &self.index, |fqn| self.in_scope(fqn));
        METRICS
            .events
            .with_label_values(&["skipped"])
            .inc_by(plan.skipped as u64);
        METRICS
            .events
            .with_label_values(&["applied"])
            .inc_by((events.len() - plan.skipped) as u64);
        if plan.fetch.len() > self.event_fetch_limit {
            tracing::info!(
                changed = plan.fetch.len(),
                limit = self.event_fetch_limit,
                "many tables changed; listing the catalog instead of reading each"
            );
            return self.listing("events", shutdown).await;
        }
        let client = &self.client;
        let fetched: Vec<(String, Option<ApiTable>)> = futures::stream::iter(plan.fetch)
            .map(|id| async move {
                let table = client.table_by_id(&id).await?;
                Ok::<_, OpenMetadataError>((id, table))
            })
            .buffered(FETCH_CONCURRENCY)
            .try_collect()
            .await?;
        if shutdown.is_cancelled() {
            return Ok(None);
        }
        let mut tombstones = plan.tombstone;
        let mut tables = Vec::with_capacity(fetched.len());
        for (id, table) in fetched {
            match table {
                Some(table) => tables.push(table),
                // hard-deleted since the event
                None => tombstones.extend(self.index.fqn_of(&id).map(str::to_owned)),
            }
        }
        let moved = plan.latest.map_or(cursor, |latest| latest.max(cursor));
        let cursors = if moved > cursor {
            vec![self.cursors.record(Kind::Events, moved)?]
        } else {
            Vec::new()
        };
        let mut stats = PollStats {
            events: events.len(),
            ..PollStats::default()
        };
        self.apply(tables, None, tombstones, cursors, &mut stats)
            .await?;
        self.positions.events = Some(moved);
        Ok(Some(stats))
    }

    /// Lists the whole catalog and reconciles the topic with it; `None` when shutdown
    /// interrupted it (what was committed stays, the cursors do not move).
    pub(crate) async fn listing(
        &mut self,
        reason: &'static str,
        shutdown: &CancellationToken,
    ) -> Result<Option<PollStats>, OpenMetadataError> {
        METRICS.listings.with_label_values(&[reason]).inc();
        // Changes made while the listing runs come as events after this.
        let started = now_ms();
        let mut stats = PollStats {
            listing: true,
            ..PollStats::default()
        };
        let mut seen = HashSet::with_capacity(self.index.len());
        let databases: Vec<Option<String>> = if self.services.is_empty() {
            vec![None]
        } else {
            match self.databases(shutdown).await? {
                Some(databases) => databases.into_iter().map(Some).collect(),
                None => return Ok(None),
            }
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
                self.apply(
                    page.data,
                    Some(&mut seen),
                    Vec::new(),
                    Vec::new(),
                    &mut stats,
                )
                .await?;
                match page.paging.after {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        let gone: Vec<String> = self
            .index
            .fqns()
            .filter(|k| self.in_scope(k) && !seen.contains(*k))
            .cloned()
            .collect();
        let events = self.positions.events.map_or(started, |e| e.max(started));
        let cursors = vec![
            self.cursors.record(Kind::Events, events)?,
            self.cursors.record(Kind::Listing, started)?,
        ];
        self.apply(Vec::new(), None, gone, cursors, &mut stats)
            .await?;
        self.positions = Positions {
            events: Some(events),
            listing: Some(started),
        };
        Ok(Some(stats))
    }

    /// FQNs of the databases of the configured services; `None` on shutdown.
    async fn databases(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<Option<Vec<String>>, OpenMetadataError> {
        let mut out = Vec::new();
        for service in &self.services {
            let mut after: Option<String> = None;
            loop {
                if shutdown.is_cancelled() {
                    return Ok(None);
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
        Ok(Some(out))
    }

    /// Publishes, in one batch with `cursors`: snapshots of the `tables` that differ from the
    /// topic, tombstones of the deleted ones the topic holds (and of the old FQN of a renamed
    /// table), and tombstones of `gone`. Live tables in scope go into `seen`.
    async fn apply(
        &mut self,
        tables: Vec<ApiTable>,
        mut seen: Option<&mut HashSet<String>>,
        gone: Vec<String>,
        cursors: Vec<CursorRecord>,
        stats: &mut PollStats,
    ) -> Result<(), OpenMetadataError> {
        let mut tombstones: Vec<String> = Vec::new();
        let mut changed = Vec::new();
        for table in tables {
            let fqn = &table.fully_qualified_name;
            if table.deleted {
                if self.index.get(fqn).is_some_and(|k| k.id == table.id) {
                    tombstones.push(fqn.clone());
                }
                continue;
            }
            if !self.in_scope(fqn) {
                continue;
            }
            if let Some(seen) = seen.as_deref_mut() {
                seen.insert(fqn.clone());
            }
            let fingerprint = Fingerprint::new(
                table.version.unwrap_or_default(),
                table.updated_at.unwrap_or_default(),
            );
            if self
                .index
                .get(fqn)
                .is_some_and(|k| k.is(&table.id, fingerprint))
            {
                stats.unchanged += 1;
                continue;
            }
            if let Some(old) = self.index.fqn_of(&table.id).filter(|old| *old != fqn) {
                tombstones.push(old.to_owned()); // renamed
            }
            changed.push(table);
        }
        for fqn in gone {
            if self.index.get(&fqn).is_some() {
                tombstones.push(fqn);
            }
        }
        let mut unique = HashSet::new();
        tombstones.retain(|fqn| unique.insert(fqn.clone()));
        let (converted, invalid) = if changed.is_empty() {
            (Vec::new(), 0)
        } else {
            let codec = Arc::clone(&self.codec);
            let tenant = self.tenant.clone();
            // Conversion and Avro encoding is CPU work: off the reactor.
            tokio::task::spawn_blocking(move || convert(changed, &tenant, &codec))
                .await
                .map_err(OpenMetadataError::Task)??
        };
        stats.invalid += invalid;
        tombstones.retain(|fqn| !converted.iter().any(|(new, _, _)| new == fqn));
        let mut records: Vec<Record> = tombstones.iter().map(|k| (k.clone(), None)).collect();
        records.extend(
            converted
                .iter()
                .map(|(fqn, bytes, _)| (fqn.clone(), Some(bytes.clone()))),
        );
        self.publisher.publish(records, cursors).await?;
        stats.tombstoned += tombstones.len();
        stats.published += converted.len();
        for fqn in &tombstones {
            self.index.remove(fqn);
        }
        for (fqn, _, known) in converted {
            self.index.insert(fqn, known);
        }
        Ok(())
    }
}

/// True when `fqn` belongs to `services` (all when empty).
fn in_scope(services: &[String], fqn: &str) -> bool {
    services.is_empty() || service_of(fqn).is_some_and(|s| services.contains(&s))
}

/// Converts and encodes live tables.
fn convert(
    tables: Vec<ApiTable>,
    tenant: &str,
    codec: &RecordCodec<TableSnapshot>,
) -> Result<Converted, OpenMetadataError> {
    let mut out = Vec::with_capacity(tables.len());
    let mut invalid = 0;
    for table in tables {
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
        let known = Known {
            fingerprint: Some(Fingerprint::new(snapshot.version, snapshot.updated_at_ms)),
            id: snapshot.id,
        };
        out.push((snapshot.fqn, bytes, known));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_is_by_the_fqns_service() {
        let services = vec!["pg".to_owned(), "my.svc".to_owned()];
        assert!(in_scope(&services, "pg.d.s.t"));
        assert!(in_scope(&services, r#""my.svc".d.s.t"#));
        assert!(!in_scope(&services, "snow.d.s.t"));
        assert!(in_scope(&[], "snow.d.s.t"));
    }
}
