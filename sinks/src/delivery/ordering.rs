//! Per-key ordering with bounded concurrency across keys.
//!
//! At most one record per key is in flight, and a key's records start in the order they were
//! pushed; records of different keys run concurrently, at most `max_in_flight` at once. Keys
//! waiting for a free slot are served first come, first served, and a key that just finished
//! goes to the back of that line, so a busy key cannot starve the others.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;

/// The scheduler; `K` is the ordering key, `T` the work item.
#[derive(Debug)]
pub struct KeyedScheduler<K, T> {
    max_in_flight: usize,
    active: HashSet<K>,
    waiting: HashMap<K, VecDeque<T>>,
    /// Keys with waiting items and no item in flight, in the order they will be served.
    ready: VecDeque<K>,
}

impl<K: Hash + Eq + Clone, T> KeyedScheduler<K, T> {
    /// A scheduler running at most `max_in_flight` items at once (at least 1).
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            max_in_flight: max_in_flight.max(1),
            active: HashSet::new(),
            waiting: HashMap::new(),
            ready: VecDeque::new(),
        }
    }

    /// Adds `item` under `key`; returns it back when it may start now.
    #[must_use = "a returned item must be started"]
    pub fn push(&mut self, key: K, item: T) -> Option<T> {
        if self.active.contains(&key) {
            self.waiting.entry(key).or_default().push_back(item);
            return None;
        }
        if let Some(queue) = self.waiting.get_mut(&key) {
            // Waiting for a slot already: keep the order.
            queue.push_back(item);
            return None;
        }
        if self.active.len() < self.max_in_flight {
            self.active.insert(key);
            return Some(item);
        }
        self.waiting.entry(key.clone()).or_default().push_back(item);
        self.ready.push_back(key);
        None
    }

    /// Marks the in-flight item of `key` finished; returns the items that may start now
    /// (each with its key, at most one per key).
    #[must_use = "returned items must be started"]
    pub fn finish(&mut self, key: &K) -> Vec<(K, T)> {
        let was_active = self.active.remove(key);
        debug_assert!(was_active, "finish is called once per started item");
        if self.waiting.contains_key(key) {
            self.ready.push_back(key.clone());
        }
        let mut start = Vec::new();
        while self.active.len() < self.max_in_flight {
            let Some(next) = self.ready.pop_front() else {
                break;
            };
            let Some(queue) = self.waiting.get_mut(&next) else {
                continue;
            };
            let Some(item) = queue.pop_front() else {
                self.waiting.remove(&next);
                continue;
            };
            if queue.is_empty() {
                self.waiting.remove(&next);
            }
            self.active.insert(next.clone());
            start.push((next, item));
        }
        start
    }

    /// Items in flight.
    pub fn in_flight(&self) -> usize {
        self.active.len()
    }

    /// Items waiting (not started).
    pub fn waiting(&self) -> usize {
        self.waiting.values().map(VecDeque::len).sum()
    }

    /// Drops the waiting items `stale` says no longer matter (e.g. of a revoked partition).
    pub fn discard_waiting(&mut self, mut stale: impl FnMut(&T) -> bool) -> usize {
        let mut dropped = 0;
        self.waiting.retain(|_, queue| {
            let before = queue.len();
            queue.retain(|item| !stale(item));
            dropped += before - queue.len();
            !queue.is_empty()
        });
        let waiting = &self.waiting;
        self.ready.retain(|key| waiting.contains_key(key));
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_item_per_key_in_flight_in_push_order() {
        let mut s = KeyedScheduler::new(8);
        assert_eq!(s.push("a", 1), Some(1));
        assert_eq!(s.push("a", 2), None);
        assert_eq!(s.push("a", 3), None);
        assert_eq!(s.push("b", 10), Some(10), "another key runs concurrently");
        assert_eq!(s.in_flight(), 2);
        assert_eq!(s.finish(&"a"), vec![("a", 2)]);
        assert_eq!(s.finish(&"b"), vec![]);
        assert_eq!(s.finish(&"a"), vec![("a", 3)]);
        assert_eq!(s.finish(&"a"), vec![]);
        assert_eq!(s.in_flight(), 0);
        assert_eq!(s.waiting(), 0);
    }

    #[test]
    fn in_flight_is_bounded_and_waiting_keys_are_served_in_turn() {
        let mut s = KeyedScheduler::new(2);
        assert_eq!(s.push("a", 1), Some(1));
        assert_eq!(s.push("b", 1), Some(1));
        assert_eq!(s.push("c", 1), None, "no free slot");
        assert_eq!(s.push("d", 1), None);
        assert_eq!(s.push("a", 2), None);
        assert_eq!(s.in_flight(), 2);
        // a finishes: c (waiting longest) goes before a's next item.
        assert_eq!(s.finish(&"a"), vec![("c", 1)]);
        assert_eq!(s.finish(&"b"), vec![("d", 1)]);
        assert_eq!(s.finish(&"c"), vec![("a", 2)]);
        assert_eq!(s.finish(&"d"), vec![]);
        assert_eq!(s.finish(&"a"), vec![]);
    }

    #[test]
    fn a_stuck_key_does_not_block_other_keys() {
        let mut s = KeyedScheduler::new(2);
        assert_eq!(s.push("stuck", 1), Some(1));
        for i in 2..10 {
            assert_eq!(s.push("stuck", i), None);
        }
        // "stuck" never finishes; "ok" still flows through the other slot, in order.
        let mut delivered = Vec::new();
        assert_eq!(s.push("ok", 1), Some(1));
        assert_eq!(s.push("ok", 2), None);
        assert_eq!(s.push("ok", 3), None);
        delivered.push(1);
        loop {
            let next = s.finish(&"ok");
            match next.as_slice() {
                [("ok", i)] => delivered.push(*i),
                [] => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(delivered, vec![1, 2, 3]);
        assert_eq!(s.waiting(), 8);
    }

    #[test]
    fn random_interleavings_keep_every_key_in_order() {
        // A small deterministic pseudo-random schedule over 5 keys and 3 slots.
        let mut s = KeyedScheduler::new(3);
        let mut running: Vec<(u8, u32)> = Vec::new();
        let mut seen: HashMap<u8, Vec<u32>> = HashMap::new();
        let mut seed: u32 = 12345;
        let mut rand = || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            seed >> 16
        };
        let mut sequence = [0u32; 5];
        for _ in 0..2000 {
            if rand() % 2 == 0 || running.is_empty() {
                let key = (rand() % 5) as u8;
                sequence[key as usize] += 1;
                if let Some(item) = s.push(key, sequence[key as usize]) {
                    running.push((key, item));
                }
            } else {
                let (key, item) = running.swap_remove(rand() as usize % running.len());
                seen.entry(key).or_default().push(item);
                running.extend(s.finish(&key));
            }
            assert!(running.len() <= 3);
            let mut keys: Vec<u8> = running.iter().map(|(k, _)| *k).collect();
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(keys.len(), running.len(), "one item per key in flight");
        }
        for (key, items) in seen {
            assert!(
                items.windows(2).all(|w| w[0] + 1 == w[1]),
                "key {key}: {items:?}"
            );
        }
    }

    #[test]
    fn discarding_stale_items_frees_their_keys() {
        let mut s = KeyedScheduler::new(1);
        assert_eq!(s.push("a", 1), Some(1));
        assert_eq!(s.push("b", 100), None);
        assert_eq!(s.push("c", 2), None);
        assert_eq!(s.discard_waiting(|item| *item >= 100), 1);
        assert_eq!(s.finish(&"a"), vec![("c", 2)]);
    }
}
