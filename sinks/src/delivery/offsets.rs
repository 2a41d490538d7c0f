//! Per-partition, in-order offset tracking: a record's offset is acknowledged when the backend
//! accepted it (or it went to the dead-letter topic); the offset committed for a partition is
//! the first one not yet acknowledged, so only the contiguous prefix of acknowledged records is
//! ever committed, whatever order acknowledgements arrive in.
//!
//! Each assignment of a partition gets a new epoch: acknowledgements of records received under
//! an earlier assignment (before a rebalance took the partition away) are ignored.

use std::collections::{BTreeMap, BTreeSet};

/// A topic partition.
pub type Partition = (String, i32);

/// Offsets of one assigned partition.
#[derive(Debug, Clone)]
struct PartitionOffsets {
    epoch: u64,
    /// Received, not yet acknowledged.
    pending: BTreeSet<i64>,
    /// One past the highest offset received; `None` before the first record.
    next: Option<i64>,
    /// The last position committed (or handed out to commit).
    committed: Option<i64>,
}

impl PartitionOffsets {
    /// The offset to commit: the oldest unacknowledged record, else one past the last received.
    fn position(&self) -> Option<i64> {
        self.pending.first().copied().or(self.next)
    }
}

/// Offsets of every assigned partition.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: BTreeMap<Partition, PartitionOffsets>,
    next_epoch: u64,
}

impl OffsetTracker {
    /// Starts tracking `partition` (assigned now); returns its epoch.
    pub fn assign(&mut self, partition: Partition) -> u64 {
        self.next_epoch += 1;
        let epoch = self.next_epoch;
        self.partitions.insert(
            partition,
            PartitionOffsets {
                epoch,
                pending: BTreeSet::new(),
                next: None,
                committed: None,
            },
        );
        epoch
    }

    /// Stops tracking `partition` (revoked); returns its position to commit, if any.
    pub fn revoke(&mut self, partition: &Partition) -> Option<i64> {
        let offsets = self.partitions.remove(partition)?;
        offsets
            .position()
            .filter(|position| Some(*position) != offsets.committed)
    }

    /// The epoch of `partition`, `None` when it is not assigned.
    pub fn epoch(&self, partition: &Partition) -> Option<u64> {
        self.partitions.get(partition).map(|p| p.epoch)
    }

    /// Records that `offset` of `partition` was received; returns the epoch it belongs to, or
    /// `None` when the partition is not assigned (the record must be dropped).
    pub fn received(&mut self, partition: &Partition, offset: i64) -> Option<u64> {
        let offsets = self.partitions.get_mut(partition)?;
        debug_assert!(
            offsets.next.is_none_or(|next| offset >= next),
            "offsets of a partition arrive in order"
        );
        offsets.pending.insert(offset);
        offsets.next = Some(offsets.next.map_or(offset + 1, |next| next.max(offset + 1)));
        Some(offsets.epoch)
    }

    /// Acknowledges `offset` of `partition` received under `epoch`; `false` when it belongs to
    /// an earlier assignment (ignored).
    pub fn acknowledge(&mut self, partition: &Partition, epoch: u64, offset: i64) -> bool {
        match self.partitions.get_mut(partition) {
            Some(offsets) if offsets.epoch == epoch => offsets.pending.remove(&offset),
            _ => false,
        }
    }

    /// Moves an idle `partition` (nothing pending) to the consumer's `position`, which can be
    /// past records never handed out (transaction markers, aborted records).
    pub fn advance_idle(&mut self, partition: &Partition, position: i64) {
        if let Some(offsets) = self.partitions.get_mut(partition)
            && offsets.pending.is_empty()
            && offsets.next.is_none_or(|next| position > next)
        {
            offsets.next = Some(position);
        }
    }

    /// Records received but not acknowledged in `partition`.
    pub fn pending(&self, partition: &Partition) -> usize {
        self.partitions
            .get(partition)
            .map_or(0, |offsets| offsets.pending.len())
    }

    /// Records received but not acknowledged, over all partitions.
    pub fn pending_total(&self) -> usize {
        self.partitions.values().map(|p| p.pending.len()).sum()
    }

    /// Positions that moved since the last call, to commit now (marked as committed).
    pub fn take_commits(&mut self) -> Vec<(Partition, i64)> {
        let mut commits = Vec::new();
        for (partition, offsets) in &mut self.partitions {
            if let Some(position) = offsets.position()
                && Some(position) != offsets.committed
            {
                offsets.committed = Some(position);
                commits.push((partition.clone(), position));
            }
        }
        commits
    }

    /// Every position (committed or not), e.g. for progress.
    pub fn positions(&self) -> Vec<(Partition, Option<i64>)> {
        self.partitions
            .iter()
            .map(|(partition, offsets)| (partition.clone(), offsets.position()))
            .collect()
    }

    /// The assigned partitions.
    pub fn assigned(&self) -> impl Iterator<Item = &Partition> {
        self.partitions.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: i32) -> Partition {
        ("t".to_owned(), n)
    }

    #[test]
    fn out_of_order_acks_commit_only_the_contiguous_prefix() {
        let mut tracker = OffsetTracker::default();
        let epoch = tracker.assign(p(0));
        for offset in 10..15 {
            assert_eq!(tracker.received(&p(0), offset), Some(epoch));
        }
        assert_eq!(tracker.take_commits(), vec![(p(0), 10)]);
        // 12 and 14 acknowledged first: nothing past 10 may be committed.
        assert!(tracker.acknowledge(&p(0), epoch, 12));
        assert!(tracker.acknowledge(&p(0), epoch, 14));
        assert_eq!(tracker.take_commits(), vec![]);
        // 10 done: the prefix is 10, the first unacknowledged is 11.
        assert!(tracker.acknowledge(&p(0), epoch, 10));
        assert_eq!(tracker.take_commits(), vec![(p(0), 11)]);
        assert!(tracker.acknowledge(&p(0), epoch, 11));
        // 11 and 12 done, 13 still pending.
        assert_eq!(tracker.take_commits(), vec![(p(0), 13)]);
        assert!(tracker.acknowledge(&p(0), epoch, 13));
        // Everything done: commit one past the last received.
        assert_eq!(tracker.take_commits(), vec![(p(0), 15)]);
        assert_eq!(tracker.take_commits(), vec![]);
        assert_eq!(tracker.pending(&p(0)), 0);
    }

    #[test]
    fn gaps_in_offsets_such_as_transaction_markers_do_not_block_commits() {
        let mut tracker = OffsetTracker::default();
        let epoch = tracker.assign(p(1));
        tracker.received(&p(1), 3);
        tracker.received(&p(1), 5); // 4 was a transaction marker
        tracker.acknowledge(&p(1), epoch, 3);
        assert_eq!(tracker.take_commits(), vec![(p(1), 5)]);
        tracker.acknowledge(&p(1), epoch, 5);
        assert_eq!(tracker.take_commits(), vec![(p(1), 6)]);
    }

    #[test]
    fn partitions_are_independent() {
        let mut tracker = OffsetTracker::default();
        let e0 = tracker.assign(p(0));
        let e1 = tracker.assign(p(1));
        tracker.received(&p(0), 0);
        tracker.received(&p(1), 0);
        tracker.received(&p(1), 1);
        tracker.acknowledge(&p(1), e1, 0);
        tracker.acknowledge(&p(1), e1, 1);
        let mut commits = tracker.take_commits();
        commits.sort();
        assert_eq!(commits, vec![(p(0), 0), (p(1), 2)]);
        tracker.acknowledge(&p(0), e0, 0);
        assert_eq!(tracker.take_commits(), vec![(p(0), 1)]);
        assert_eq!(tracker.pending_total(), 0);
    }

    #[test]
    fn acks_from_an_earlier_assignment_are_ignored() {
        let mut tracker = OffsetTracker::default();
        let old = tracker.assign(p(0));
        tracker.received(&p(0), 7);
        tracker.received(&p(0), 8);
        tracker.acknowledge(&p(0), old, 7);
        // Revoked with 8 in flight: the position to commit is 8.
        assert_eq!(tracker.revoke(&p(0)), Some(8));
        assert_eq!(tracker.received(&p(0), 9), None, "not assigned: dropped");
        let new = tracker.assign(p(0));
        assert_ne!(old, new);
        tracker.received(&p(0), 8);
        assert!(!tracker.acknowledge(&p(0), old, 8), "stale ack");
        assert_eq!(tracker.pending(&p(0)), 1);
        assert!(tracker.acknowledge(&p(0), new, 8));
        assert_eq!(tracker.take_commits(), vec![(p(0), 9)]);
    }

    #[test]
    fn idle_partitions_advance_past_transaction_markers_but_busy_ones_do_not() {
        let mut tracker = OffsetTracker::default();
        let epoch = tracker.assign(p(0));
        tracker.received(&p(0), 5);
        tracker.advance_idle(&p(0), 7);
        assert_eq!(tracker.take_commits(), vec![(p(0), 5)], "5 is pending");
        tracker.acknowledge(&p(0), epoch, 5);
        tracker.advance_idle(&p(0), 7);
        assert_eq!(tracker.take_commits(), vec![(p(0), 7)]);
        tracker.advance_idle(&p(0), 3);
        assert_eq!(tracker.take_commits(), vec![], "never backwards");
        // A partition with nothing received yet starts at the consumer's position.
        tracker.assign(p(1));
        tracker.advance_idle(&p(1), 40);
        assert_eq!(tracker.take_commits(), vec![(p(1), 40)]);
    }

    #[test]
    fn revoke_skips_a_position_already_committed() {
        let mut tracker = OffsetTracker::default();
        let epoch = tracker.assign(p(0));
        tracker.received(&p(0), 0);
        tracker.acknowledge(&p(0), epoch, 0);
        assert_eq!(tracker.take_commits(), vec![(p(0), 1)]);
        assert_eq!(tracker.revoke(&p(0)), None);
    }
}
