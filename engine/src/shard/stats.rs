//! A shard's gauges: what its edge and home hold, published by its sweeper a few times a
//! second into relaxed atomics that `RunningServer::stats` reads from any thread (a
//! snapshot for operators and tests, not a synchronization point).

use crate::edge::{CLOSE_SLOTS, EdgeStats, STATUSES, TrafficStats};
use crate::home::{HomeStats, PartyCounts, WAKE_BUCKETS_US};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// What one shard holds, as of its last sweep (at most about 200 ms old).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShardStats {
    /// Sockets accepted on this shard (as their edge) and not yet closed.
    pub sockets: usize,
    /// Of those, open WebSockets.
    pub websockets: usize,
    /// Of those, parked: idle, with no task ([`crate::Limits::ws_park_after_ms`]).
    pub parked: usize,
    /// Of the open WebSockets, those in rooms homed on another node of the cluster.
    pub remote_websockets: usize,
    /// Bytes queued to write on this shard's sockets (`outbound_total_bytes_max`).
    pub outbound_bytes: usize,
    /// Bytes held for partly received messages (`inbound_total_bytes_max`).
    pub inbound_bytes: usize,
    /// Sockets closed (1008) because the output budget was exceeded, since start.
    pub closed_for_output: u64,
    /// Sockets closed (1009) because the input budget was exceeded, since start.
    pub closed_for_input: u64,
    /// Rooms loaded on this shard (as their home).
    pub rooms: usize,
    /// Memory charged to those rooms (`rooms_memory_max`).
    pub rooms_charged_bytes: usize,
    /// Rooms unloaded since start (idle for `room_unload_after_ms`, or for space).
    pub rooms_unloaded: u64,
    /// Connects, requests and alarms that could not load their room (503), since start.
    pub rooms_refused: u64,
    /// Connects and requests refused by a room's full mailbox (503), since start.
    pub events_refused: u64,
    /// Rooms asleep now (hibernating: no instance, connections in the store).
    pub rooms_asleep: usize,
    /// Times a room went to sleep, and woke, since start.
    pub room_sleeps: u64,
    pub room_wakes: u64,
    /// Times a socket's read waited because its room had a full window of unhandled
    /// messages from this shard (backpressure from a busy room), since start.
    pub reads_held: u64,
    /// What the shard's sockets carried since start.
    pub traffic: TrafficStats,
    /// CPU time the shard's thread has used since start, in ns.
    pub cpu_ns: u64,
}

/// One shard's published gauges.
#[derive(Debug)]
pub(crate) struct Gauges {
    /// Per party, by index among the server's parties sorted by name.
    parties: Box<[PartyGauges]>,
    sockets: AtomicUsize,
    websockets: AtomicUsize,
    parked: AtomicUsize,
    remote_websockets: AtomicUsize,
    outbound_bytes: AtomicUsize,
    inbound_bytes: AtomicUsize,
    closed_for_output: AtomicU64,
    closed_for_input: AtomicU64,
    rooms: AtomicUsize,
    rooms_charged_bytes: AtomicUsize,
    rooms_unloaded: AtomicU64,
    rooms_refused: AtomicU64,
    events_refused: AtomicU64,
    reads_held: AtomicU64,
    rooms_asleep: AtomicUsize,
    room_sleeps: AtomicU64,
    room_wakes: AtomicU64,
    traffic: TrafficGauges,
    cpu_ns: AtomicU64,
}

/// [`TrafficStats`] in atomics.
#[derive(Debug, Default)]
struct TrafficGauges {
    messages_in: AtomicU64,
    bytes_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_out: AtomicU64,
    upgrades: AtomicU64,
    parks: AtomicU64,
    resumes: AtomicU64,
    tls_handshakes: AtomicU64,
    tls_failures: AtomicU64,
    refusals: [AtomicU64; STATUSES.len() + 1],
    closes: [AtomicU64; CLOSE_SLOTS],
}

impl TrafficGauges {
    fn store(&self, t: &TrafficStats) {
        let r = Ordering::Relaxed;
        self.messages_in.store(t.messages_in, r);
        self.bytes_in.store(t.bytes_in, r);
        self.frames_out.store(t.frames_out, r);
        self.bytes_out.store(t.bytes_out, r);
        self.upgrades.store(t.upgrades, r);
        self.parks.store(t.parks, r);
        self.resumes.store(t.resumes, r);
        self.tls_handshakes.store(t.tls_handshakes, r);
        self.tls_failures.store(t.tls_failures, r);
        for (a, v) in self.refusals.iter().zip(t.refusals) {
            a.store(v, r);
        }
        for (a, v) in self.closes.iter().zip(t.closes) {
            a.store(v, r);
        }
    }

    fn load(&self) -> TrafficStats {
        let r = Ordering::Relaxed;
        TrafficStats {
            messages_in: self.messages_in.load(r),
            bytes_in: self.bytes_in.load(r),
            frames_out: self.frames_out.load(r),
            bytes_out: self.bytes_out.load(r),
            upgrades: self.upgrades.load(r),
            parks: self.parks.load(r),
            resumes: self.resumes.load(r),
            tls_handshakes: self.tls_handshakes.load(r),
            tls_failures: self.tls_failures.load(r),
            refusals: std::array::from_fn(|i| self.refusals[i].load(r)),
            closes: std::array::from_fn(|i| self.closes[i].load(r)),
        }
    }
}

/// One party's counts on one shard ([`PartyCounts`], in atomics).
#[derive(Debug, Default)]
struct PartyGauges {
    rooms_awake: AtomicUsize,
    rooms_asleep: AtomicUsize,
    connections: AtomicUsize,
    sleeps: AtomicU64,
    wakes: AtomicU64,
    wake_buckets: [AtomicU64; WAKE_BUCKETS_US.len() + 1],
    wake_sum_ns: AtomicU64,
}

impl Gauges {
    /// Gauges for a shard serving `parties` parties.
    pub fn new(parties: usize) -> Gauges {
        let r = || AtomicUsize::new(0);
        let c = || AtomicU64::new(0);
        Gauges {
            parties: (0..parties).map(|_| PartyGauges::default()).collect(),
            sockets: r(),
            websockets: r(),
            parked: r(),
            remote_websockets: r(),
            outbound_bytes: r(),
            inbound_bytes: r(),
            closed_for_output: c(),
            closed_for_input: c(),
            rooms: r(),
            rooms_charged_bytes: r(),
            rooms_unloaded: c(),
            rooms_refused: c(),
            events_refused: c(),
            reads_held: c(),
            rooms_asleep: r(),
            room_sleeps: c(),
            room_wakes: c(),
            traffic: TrafficGauges::default(),
            cpu_ns: c(),
        }
    }

    /// Publishes each party's counts (by index, as [`Gauges::new`] was told).
    pub fn publish_parties(&self, counts: &[PartyCounts]) {
        let r = Ordering::Relaxed;
        for (gauges, counts) in self.parties.iter().zip(counts) {
            gauges.rooms_awake.store(counts.rooms_awake, r);
            gauges.rooms_asleep.store(counts.rooms_asleep, r);
            gauges.connections.store(counts.connections, r);
            gauges.sleeps.store(counts.sleeps, r);
            gauges.wakes.store(counts.wakes, r);
            for (bucket, n) in gauges.wake_buckets.iter().zip(counts.wake_time.buckets) {
                bucket.store(n, r);
            }
            gauges.wake_sum_ns.store(counts.wake_time.sum_ns, r);
        }
    }

    /// Each party's counts summed over `shards`, by index.
    pub fn sum_parties(shards: &[Gauges]) -> Vec<PartyCounts> {
        let mut sums = vec![PartyCounts::default(); shards.first().map_or(0, |g| g.parties.len())];
        for shard in shards {
            for (sum, counts) in sums.iter_mut().zip(shard.read_parties()) {
                sum.merge(&counts);
            }
        }
        sums
    }

    /// Each party's counts on this shard, by index.
    pub fn read_parties(&self) -> Vec<PartyCounts> {
        let r = Ordering::Relaxed;
        self.parties
            .iter()
            .map(|g| {
                let mut counts = PartyCounts {
                    rooms_awake: g.rooms_awake.load(r),
                    rooms_asleep: g.rooms_asleep.load(r),
                    connections: g.connections.load(r),
                    sleeps: g.sleeps.load(r),
                    wakes: g.wakes.load(r),
                    ..PartyCounts::default()
                };
                for (n, bucket) in counts.wake_time.buckets.iter_mut().zip(&g.wake_buckets) {
                    *n = bucket.load(r);
                }
                counts.wake_time.sum_ns = g.wake_sum_ns.load(r);
                counts
            })
            .collect()
    }

    pub fn publish(&self, edge: &EdgeStats, home: &HomeStats) {
        let r = Ordering::Relaxed;
        self.sockets.store(edge.sockets, r);
        self.websockets.store(edge.websockets, r);
        self.parked.store(edge.parked, r);
        self.remote_websockets.store(edge.remote_websockets, r);
        self.outbound_bytes.store(edge.outbound_bytes, r);
        self.inbound_bytes.store(edge.inbound_bytes, r);
        self.closed_for_output.store(edge.closed_for_output, r);
        self.closed_for_input.store(edge.closed_for_input, r);
        self.rooms.store(home.rooms, r);
        self.rooms_charged_bytes.store(home.charged_bytes, r);
        self.rooms_unloaded.store(home.unloaded, r);
        self.rooms_refused.store(home.refused_rooms, r);
        self.events_refused.store(home.refused_events, r);
        self.reads_held.store(edge.reads_held, r);
        self.rooms_asleep.store(home.asleep, r);
        self.room_sleeps.store(home.sleeps, r);
        self.room_wakes.store(home.wakes, r);
        self.traffic.store(&edge.traffic);
    }

    /// Publishes the shard thread's CPU time.
    pub fn publish_cpu(&self, ns: u64) {
        self.cpu_ns.store(ns, Ordering::Relaxed);
    }

    pub fn read(&self) -> ShardStats {
        let r = Ordering::Relaxed;
        ShardStats {
            sockets: self.sockets.load(r),
            websockets: self.websockets.load(r),
            parked: self.parked.load(r),
            remote_websockets: self.remote_websockets.load(r),
            outbound_bytes: self.outbound_bytes.load(r),
            inbound_bytes: self.inbound_bytes.load(r),
            closed_for_output: self.closed_for_output.load(r),
            closed_for_input: self.closed_for_input.load(r),
            rooms: self.rooms.load(r),
            rooms_charged_bytes: self.rooms_charged_bytes.load(r),
            rooms_unloaded: self.rooms_unloaded.load(r),
            rooms_refused: self.rooms_refused.load(r),
            events_refused: self.events_refused.load(r),
            reads_held: self.reads_held.load(r),
            rooms_asleep: self.rooms_asleep.load(r),
            room_sleeps: self.room_sleeps.load(r),
            room_wakes: self.room_wakes.load(r),
            traffic: self.traffic.load(),
            cpu_ns: self.cpu_ns.load(r),
        }
    }
}
