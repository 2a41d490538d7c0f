//! The resolution report (`lineage.resolution`, compacted, key = `tenant/asset key`): one
//! record per known asset saying which rule applied, the candidates, the table chosen or why
//! none was; a tombstone when the asset is no longer known.
//!
//! Reports are written when a resolution changes, in the transaction of the batch that changed
//! it. At start the topic is read whole ([`ReportWriter::open`]): only what differs from it is
//! written (a restart writes nothing new for unchanged assets), and reports of assets that are
//! gone are tombstoned. Each report also lists the upstream tables whose edges into the
//! asset's table were written, which a restarted processor compares its replay with. An
//! ambiguous resolution, when reported, is also counted
//! (`lineage_bus_processor_resolution_ambiguous_total`) and logged at warn level with its
//! candidates.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use lineage_bus_core::KafkaConfig;
use lineage_bus_core::compacted::{CompactedError, CompactedReader};
use lineage_bus_core::exactly_once::Output;
use lineage_schemas::records::{ResolutionCandidate, ResolutionLookup, ResolutionReport};
use lineage_schemas::{CodecError, RecordCodec};
use tokio_util::sync::CancellationToken;

use super::metrics;
use super::state::LineageState;
use crate::resolve::{Outcome, Resolution};
use crate::state::AssetRef;

/// Writes the resolution reports: remembers what the topic holds (a hash per key) and which
/// assets may have changed since the last flush.
pub struct ReportWriter {
    topic: String,
    codec: RecordCodec<ResolutionReport>,
    published: HashMap<u64, u64>,
    /// The table each published report chose (what the last committed transaction knew).
    tables: HashMap<AssetRef, String>,
    /// The upstream tables each published report lists as written, sorted.
    written_upstream: HashMap<AssetRef, Vec<String>>,
    dirty: BTreeSet<AssetRef>,
}

impl ReportWriter {
    /// Reads `topic` to its end; every key found there is checked at the first flush.
    pub async fn open(
        kafka: &KafkaConfig,
        topic: &str,
        codec: RecordCodec<ResolutionReport>,
        timeout: Duration,
        shutdown: &CancellationToken,
    ) -> Result<Self, CompactedError> {
        let reader = CompactedReader::new(kafka, "processor-reports", topic, timeout)?;
        let mut live: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        reader
            .fold_to_end(shutdown, |key, value| match value {
                Some(value) => {
                    live.insert(key.to_vec(), value.to_vec());
                }
                None => {
                    live.remove(key);
                }
            })
            .await?;
        let mut writer = Self::new(topic, codec);
        for (key, value) in live {
            if let Ok(asset) = AssetRef::from_kafka_key(&String::from_utf8_lossy(&key)) {
                writer.published.insert(hash(&key), hash(&value));
                // a report that does not decode counts as naming no table
                if let Ok(report) = writer.codec.decode(&value).await {
                    writer.remember(&asset, &report);
                }
                writer.dirty.insert(asset);
            }
        }
        tracing::info!(
            topic,
            reports = writer.published.len(),
            "resolution reports read"
        );
        Ok(writer)
    }

    /// A writer that assumes an empty topic.
    pub fn new(topic: &str, codec: RecordCodec<ResolutionReport>) -> Self {
        Self {
            topic: topic.to_owned(),
            codec,
            published: HashMap::new(),
            tables: HashMap::new(),
            written_upstream: HashMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    /// The table the published report of `asset` chose: what the last committed transaction
    /// knew, until the next flush.
    pub fn published_table(&self, asset: &AssetRef) -> Option<&str> {
        self.tables.get(asset).map(String::as_str)
    }

    /// Whether the published report of `asset` lists the edge from table `source_fqn` as
    /// written.
    pub fn published_upstream(&self, asset: &AssetRef, source_fqn: &str) -> bool {
        self.written_upstream.get(asset).is_some_and(|written| {
            written
                .binary_search_by(|fqn| fqn.as_str().cmp(source_fqn))
                .is_ok()
        })
    }

    /// Keeps what `report`, published for `asset`, says of its lineage.
    fn remember(&mut self, asset: &AssetRef, report: &ResolutionReport) {
        match &report.chosen_table_fqn {
            Some(fqn) => self.tables.insert(asset.clone(), fqn.clone()),
            None => self.tables.remove(asset),
        };
        self.written_upstream
            .insert(asset.clone(), report.written_upstream.clone());
    }

    /// Marks assets whose resolution may have changed.
    pub fn note(&mut self, assets: &[AssetRef]) {
        self.dirty.extend(assets.iter().cloned());
    }

    /// The records for every marked asset whose report differs from the topic's, by asset.
    pub fn flush(&mut self, state: &LineageState, out: &mut Vec<Output>) -> Result<(), CodecError> {
        for asset in std::mem::take(&mut self.dirty) {
            let key = asset.to_string();
            let key_hash = hash(key.as_bytes());
            let Some(resolution) = state.join().cached(&asset) else {
                self.tables.remove(&asset);
                self.written_upstream.remove(&asset);
                if self.published.remove(&key_hash).is_some() {
                    out.push(Output {
                        topic: self.topic.clone(),
                        key: Some(key.into_bytes()),
                        payload: None,
                    });
                }
                continue;
            };
            let report = ResolutionReport {
                written_upstream: state.written_upstream(&asset),
                ..report_of(&asset, resolution)
            };
            self.remember(&asset, &report);
            let payload = self.codec.encode(&report)?;
            let value_hash = hash(&payload);
            if self.published.insert(key_hash, value_hash) == Some(value_hash) {
                continue;
            }
            if report.ambiguous {
                metrics::RESOLUTION_AMBIGUOUS
                    .with_label_values(&[
                        report.rule.as_deref().unwrap_or("none"),
                        if report.chosen_table_fqn.is_some() {
                            "chosen"
                        } else {
                            "skipped"
                        },
                    ])
                    .inc();
                let candidates: Vec<&str> =
                    report.candidates.iter().map(|c| c.fqn.as_str()).collect();
                tracing::warn!(
                    asset = %asset,
                    rule = report.rule.as_deref(),
                    ?candidates,
                    chosen = report.chosen_table_fqn.as_deref(),
                    "ambiguous asset resolution"
                );
            }
            out.push(Output {
                topic: self.topic.clone(),
                key: Some(key.into_bytes()),
                payload: Some(payload),
            });
        }
        Ok(())
    }
}

/// The report of `asset`'s resolution (`written_upstream` empty: the processor state knows it).
pub fn report_of(asset: &AssetRef, resolution: &Resolution) -> ResolutionReport {
    let (chosen_table_fqn, reason) = match &resolution.outcome {
        Outcome::Resolved { table } => (Some(table.fqn.clone()), None),
        Outcome::Unresolved { reason } => (None, Some(reason_name(*reason).to_owned())),
    };
    ResolutionReport {
        tenant: asset.tenant.clone(),
        asset_key: asset.key.clone(),
        key_after_strip: resolution.key_after_strip.clone(),
        rule: resolution.rule.map(|rule| rule.as_str().to_owned()),
        lookups: resolution
            .lookups
            .iter()
            .map(|lookup| ResolutionLookup {
                rule: lookup.rule.as_str().to_owned(),
                service: lookup.service.clone(),
                name: [&lookup.database, &lookup.schema]
                    .into_iter()
                    .flatten()
                    .map(String::as_str)
                    .chain(std::iter::once(lookup.table.as_str()))
                    .collect::<Vec<_>>()
                    .join("."),
                matches: i32::try_from(lookup.matches).unwrap_or(i32::MAX),
            })
            .collect(),
        candidates: resolution
            .candidates
            .iter()
            .map(|candidate| ResolutionCandidate {
                fqn: candidate.fqn.clone(),
                exact_case: candidate.exact_case,
            })
            .collect(),
        ambiguous: resolution.ambiguous,
        chosen_table_fqn,
        reason,
        ignored: resolution.ignored.clone(),
        written_upstream: Vec::new(),
    }
}

fn reason_name(reason: crate::resolve::Unresolved) -> &'static str {
    use crate::resolve::Unresolved as U;
    match reason {
        U::NotFound => "not_found",
        U::Ambiguous => "ambiguous",
        U::NoName => "no_name",
    }
}

fn hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}
