//! A shard's gauges: what its edge and home hold, published by its sweeper a few times a
//! second into relaxed atomics that `RunningServer::stats` reads from any thread (a
//! snapshot for operators and tests, not a synchronization point).

use crate::edge::EdgeStats;
use crate::home::HomeStats;
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
}

/// One shard's published gauges.
#[derive(Debug, Default)]
pub(crate) struct Gauges {
    sockets: AtomicUsize,
    websockets: AtomicUsize,
    parked: AtomicUsize,
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
}

impl Gauges {
    pub fn publish(&self, edge: &EdgeStats, home: &HomeStats) {
        let r = Ordering::Relaxed;
        self.sockets.store(edge.sockets, r);
        self.websockets.store(edge.websockets, r);
        self.parked.store(edge.parked, r);
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
    }

    pub fn read(&self) -> ShardStats {
        let r = Ordering::Relaxed;
        ShardStats {
            sockets: self.sockets.load(r),
            websockets: self.websockets.load(r),
            parked: self.parked.load(r),
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
        }
    }
}
