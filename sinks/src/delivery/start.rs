//! Replay start positions: `--from earliest|<RFC 3339>|<partition:offset,...>`.
//!
//! A replay runs under a new (or idle) consumer group. Before it subscribes, the group's
//! committed offsets are set to the start position, as `kafka-consumer-groups
//! --reset-offsets` does; the sink then runs as usual and keeps committing its progress, so a
//! restarted replay continues where it stopped. Setting offsets fails while the group has
//! active members. With explicit offsets, partitions not listed keep the group's committed
//! offsets (a new group: earliest).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use lineage_bus_core::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::error::{SinkError, kafka};

/// How long each metadata/offset request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a replay starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartFrom {
    /// The oldest retained record of every partition.
    Earliest,
    /// The first record at or after this time (ms since the Unix epoch), per partition.
    Timestamp(i64),
    /// These offsets (partition, offset).
    Offsets(Vec<(i32, i64)>),
}

impl FromStr for StartFrom {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("earliest") {
            return Ok(StartFrom::Earliest);
        }
        if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
            return Ok(StartFrom::Timestamp(time.timestamp_millis()));
        }
        let mut offsets = Vec::new();
        for part in text.split(',') {
            let parsed = part.split_once(':').and_then(|(partition, offset)| {
                Some((
                    partition.trim().parse::<i32>().ok()?,
                    offset.trim().parse::<i64>().ok()?,
                ))
            });
            match parsed {
                Some((partition, offset)) if partition >= 0 && offset >= 0 => {
                    offsets.push((partition, offset));
                }
                _ => {
                    return Err(format!(
                        "`{text}` is not `earliest`, an RFC 3339 time (2024-05-01T00:00:00Z) \
                         or partition:offset pairs (0:120,1:98)"
                    ));
                }
            }
        }
        offsets.sort_unstable();
        if offsets.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(format!("`{text}` names a partition twice"));
        }
        Ok(StartFrom::Offsets(offsets))
    }
}

/// Per partition: where the replay starts and the log end offset when it started.
pub type ReplayRange = BTreeMap<i32, (i64, i64)>;

/// Sets the committed offsets of `group` on `topic` to `from`; returns each partition's start
/// and end offsets (for progress).
pub async fn reset_group(
    kafka_config: &KafkaConfig,
    role: &str,
    group: &str,
    topic: &str,
    from: &StartFrom,
) -> Result<ReplayRange, SinkError> {
    let consumer: BaseConsumer = kafka_config
        .consumer_config(role, group)
        .create()
        .map_err(kafka("creating the replay offset client"))?;
    let (topic, group, from) = (topic.to_owned(), group.to_owned(), from.clone());
    tokio::task::spawn_blocking(move || reset_blocking(&consumer, &group, &topic, &from))
        .await
        .map_err(|e| SinkError::Start(format!("the offset reset task failed: {e}")))?
}

fn reset_blocking(
    consumer: &BaseConsumer,
    group: &str,
    topic: &str,
    from: &StartFrom,
) -> Result<ReplayRange, SinkError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(kafka(format!("reading the metadata of {topic}")))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(SinkError::Start(format!("topic {topic} has no partitions")));
    }
    let mut watermarks = BTreeMap::new();
    for &partition in &partitions {
        let marks = consumer
            .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)
            .map_err(kafka(format!("reading the offsets of {topic}/{partition}")))?;
        watermarks.insert(partition, marks);
    }
    let starts = start_offsets(consumer, topic, &watermarks, from)?;
    let mut commit = TopicPartitionList::new();
    for (&partition, &offset) in &starts {
        commit
            .add_partition_offset(topic, partition, Offset::Offset(offset))
            .map_err(kafka("building the start offsets"))?;
    }
    consumer
        .commit(&commit, CommitMode::Sync)
        .map_err(|source| {
            SinkError::Start(format!(
                "cannot set the offsets of group {group} (a replay needs a new or idle group; \
             stop its other members first): {source}"
            ))
        })?;
    tracing::info!(group, topic, ?starts, "replay start offsets committed");
    Ok(starts
        .into_iter()
        .map(|(partition, start)| (partition, (start, watermarks[&partition].1)))
        .collect())
}

/// The start offset of each partition to reset (within its watermarks).
fn start_offsets(
    consumer: &BaseConsumer,
    topic: &str,
    watermarks: &BTreeMap<i32, (i64, i64)>,
    from: &StartFrom,
) -> Result<BTreeMap<i32, i64>, SinkError> {
    match from {
        StartFrom::Earliest => Ok(watermarks.iter().map(|(&p, &(low, _))| (p, low)).collect()),
        StartFrom::Offsets(offsets) => offsets
            .iter()
            .map(|&(partition, offset)| {
                let &(low, high) = watermarks.get(&partition).ok_or_else(|| {
                    SinkError::Start(format!("{topic} has no partition {partition}"))
                })?;
                Ok((partition, offset.clamp(low, high)))
            })
            .collect(),
        StartFrom::Timestamp(ms) => {
            let mut query = TopicPartitionList::new();
            for &partition in watermarks.keys() {
                query
                    .add_partition_offset(topic, partition, Offset::Offset(*ms))
                    .map_err(kafka("building the timestamp query"))?;
            }
            let found = consumer
                .offsets_for_times(query, REQUEST_TIMEOUT)
                .map_err(kafka(format!("looking up offsets of {topic} by time")))?;
            watermarks
                .iter()
                .map(|(&partition, &(_, high))| {
                    let offset = match found.find_partition(topic, partition).map(|e| e.offset()) {
                        Some(Offset::Offset(offset)) => offset,
                        // No record at or after the time: start at the end.
                        _ => high,
                    };
                    Ok((partition, offset))
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_of_from() {
        assert_eq!("earliest".parse(), Ok(StartFrom::Earliest));
        assert_eq!(
            "2024-05-01T00:00:00Z".parse(),
            Ok(StartFrom::Timestamp(1_714_521_600_000))
        );
        assert_eq!(
            "2024-05-01T02:00:00+02:00".parse(),
            Ok(StartFrom::Timestamp(1_714_521_600_000))
        );
        assert_eq!(
            "1:98, 0:120".parse(),
            Ok(StartFrom::Offsets(vec![(0, 120), (1, 98)]))
        );
        assert!("latest".parse::<StartFrom>().is_err());
        assert!("0:1,0:2".parse::<StartFrom>().is_err());
        assert!("0:-1".parse::<StartFrom>().is_err());
        assert!("2024-05-01".parse::<StartFrom>().is_err());
    }
}
