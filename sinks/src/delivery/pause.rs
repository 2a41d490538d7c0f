//! Backpressure by partition. When a partition has too many records received but not yet
//! acknowledged (its backend, or its tenant's route, is slow or down), only that partition is
//! paused (`consumer.pause`); it resumes once half of them are done. The poll loop keeps
//! running meanwhile, so the consumer stays in its group: no session timeout, no rebalance
//! storm, and the other partitions keep flowing.

use std::collections::BTreeSet;

use crate::delivery::offsets::Partition;

/// What to do with a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowChange {
    /// Stop fetching it.
    Pause,
    /// Fetch it again.
    Resume,
}

/// Which partitions are paused, with high/low watermarks of buffered records.
#[derive(Debug)]
pub struct FlowControl {
    high: usize,
    low: usize,
    paused: BTreeSet<Partition>,
}

impl FlowControl {
    /// Pauses at `max_buffered` records (at least 1), resumes at half of it.
    pub fn new(max_buffered: usize) -> Self {
        let high = max_buffered.max(1);
        Self {
            high,
            low: high / 2,
            paused: BTreeSet::new(),
        }
    }

    /// The change `partition` needs now that it has `buffered` records in hand, if any.
    pub fn check(&mut self, partition: &Partition, buffered: usize) -> Option<FlowChange> {
        let paused = self.paused.contains(partition);
        if !paused && buffered >= self.high {
            self.paused.insert(partition.clone());
            return Some(FlowChange::Pause);
        }
        if paused && buffered <= self.low {
            self.paused.remove(partition);
            return Some(FlowChange::Resume);
        }
        None
    }

    /// Forgets `partition` (revoked: a new assignment starts unpaused).
    pub fn forget(&mut self, partition: &Partition) {
        self.paused.remove(partition);
    }

    /// How many partitions are paused.
    pub fn paused(&self) -> usize {
        self.paused.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: i32) -> Partition {
        ("t".to_owned(), n)
    }

    #[test]
    fn pauses_at_the_high_watermark_and_resumes_at_half() {
        let mut flow = FlowControl::new(10);
        assert_eq!(flow.check(&p(0), 9), None);
        assert_eq!(flow.check(&p(0), 10), Some(FlowChange::Pause));
        assert_eq!(flow.check(&p(0), 12), None, "already paused");
        assert_eq!(flow.check(&p(0), 6), None, "hysteresis");
        assert_eq!(flow.check(&p(0), 5), Some(FlowChange::Resume));
        assert_eq!(flow.check(&p(0), 5), None);
    }

    #[test]
    fn only_the_slow_partition_is_paused() {
        let mut flow = FlowControl::new(4);
        assert_eq!(flow.check(&p(0), 4), Some(FlowChange::Pause));
        assert_eq!(flow.check(&p(1), 1), None);
        assert_eq!(flow.paused(), 1);
        flow.forget(&p(0));
        assert_eq!(flow.paused(), 0);
        assert_eq!(
            flow.check(&p(0), 4),
            Some(FlowChange::Pause),
            "fresh after forget"
        );
    }
}
