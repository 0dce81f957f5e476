//! [`PartyCounts`]: what one shard's home holds and has done per party (rooms awake and
//! asleep, connections, sleeps, wakes and how long wakes took), kept in plain integers by
//! the home and published by the shard's sweeper for the admin listener's `/metrics`.

use std::time::Duration;

/// Upper bounds of the wake-duration histogram's buckets, in microseconds (the last
/// bucket, past them, is `+Inf`). Sub-millisecond resolution: the goal is p99 under 1 ms.
pub const WAKE_BUCKETS_US: [u64; 12] =
    [50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 1_000_000];

/// A fixed-bucket histogram of wake durations.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WakeHistogram {
    /// Wakes per bucket (not cumulative); the last entry counts those past every bound.
    pub buckets: [u64; WAKE_BUCKETS_US.len() + 1],
    /// Sum of all durations, in nanoseconds.
    pub sum_ns: u64,
}

impl WakeHistogram {
    pub fn record(&mut self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let at = WAKE_BUCKETS_US.iter().position(|bound| us <= *bound);
        self.buckets[at.unwrap_or(WAKE_BUCKETS_US.len())] += 1;
        self.sum_ns =
            self.sum_ns.saturating_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Adds another shard's wakes.
    pub fn merge(&mut self, other: &WakeHistogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
    }
}

/// One party's rooms on one shard.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PartyCounts {
    /// Rooms loaded with an instance (or about to build one).
    pub rooms_awake: usize,
    /// Rooms asleep: no instance, their connections archived.
    pub rooms_asleep: usize,
    /// Open connections of this party's rooms homed here, awake or asleep.
    pub connections: usize,
    /// Times a room went to sleep, and woke, since start.
    pub sleeps: u64,
    pub wakes: u64,
    /// How long wakes took: reading the archive, rebuilding, `on_start`.
    pub wake_time: WakeHistogram,
}

impl PartyCounts {
    /// Adds another shard's counts of the same party.
    pub fn merge(&mut self, other: &PartyCounts) {
        self.rooms_awake += other.rooms_awake;
        self.rooms_asleep += other.rooms_asleep;
        self.connections += other.connections;
        self.sleeps += other.sleeps;
        self.wakes += other.wakes;
        self.wake_time.merge(&other.wake_time);
    }
}
