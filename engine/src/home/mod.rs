//! The home side of a shard: the rooms that hash to it. [`Home`] is the directory of
//! loaded rooms: it loads a room for the first connect, request or alarm that needs it,
//! queues events into its mailbox without ever waiting ([`host`]), charges its memory
//! against the shard's share of `rooms_memory_max`, and unloads rooms that have had no
//! connections and nothing to do for `room_unload_after_ms`, or sooner, least recently
//! used first, when the budget or `rooms_per_shard_max` needs the space. [`runner`] runs
//! party hooks; [`alarm`] schedules and fires alarms.
//!
//! Depends on api and route; the edge never calls in here except through the router.

pub(crate) mod alarm;
mod counts;
pub(crate) mod host;
pub(crate) mod runner;

use crate::api::RoomCore;
pub(crate) use crate::api::archive::REGISTRY as REGISTRY_ARCHIVE;
use crate::api::runtime::Runtime;
use crate::limits::{ROOM_BASE_BYTES, ROOM_CONNECTION_BYTES};
use crate::log::warn_client;
use crate::route::{
    ConnId, ConnectOutcome, HomeSink, NodeId, RoomKey, RoomUid, ShardAddr, ToEdge, ToHome,
};
pub use counts::{PartyCounts, WAKE_BUCKETS_US, WakeHistogram};
use host::{Refused, RoomEvent, RoomHost};
use partyline_protocol::http::Response;
pub(crate) use runner::{SpawnRoom, spawn_room, spawn_room_with_snapshots};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

/// What a shard's home has done, for its gauges.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct HomeStats {
    pub rooms: usize,
    pub charged_bytes: usize,
    pub unloaded: u64,
    /// Connects, requests and alarms refused a room: no room slot or memory left.
    pub refused_rooms: u64,
    /// Connects, requests and alarms refused by a room past its mailbox's cap.
    pub refused_events: u64,
    pub sleeps: u64,
    pub wakes: u64,
    pub asleep: usize,
}

/// One shard's rooms.
pub(crate) struct Home {
    /// Itself, for the room tasks it spawns.
    me: Weak<Home>,
    pub runtime: Rc<Runtime>,
    here: ShardAddr,
    /// Party name to the function that starts a room's task.
    spawners: Arc<HashMap<String, SpawnRoom>>,
    rooms: RefCell<HashMap<RoomKey, Rc<RoomHost>>>,
    /// Loaded rooms with no connections and nothing to do, least recently idle first,
    /// with the time they became idle (ms on the server clock).
    idle: RefCell<lru::LruCache<RoomKey, u64>>,
    /// Awake rooms of hibernating parties that have connections, least recently active
    /// first, with the time of their last event: candidates for sleep.
    quiet: RefCell<lru::LruCache<RoomKey, u64>>,
    next_uid: Cell<u64>,
    /// Memory charged to this shard's rooms, and this shard's share of the budget.
    charged: Cell<usize>,
    memory_max: usize,
    pub alarms: alarm::Alarms,
    stopping: Cell<bool>,
    unloaded: Cell<u64>,
    refused_rooms: Cell<u64>,
    refused_events: Cell<u64>,
    /// Per party (by [`SpawnRoom::party`]): rooms awake and asleep, connections, sleeps
    /// and wakes (the shard's totals are their sums).
    parties: RefCell<Vec<PartyCounts>>,
    /// Room tasks still running (an unloaded room's task may still be saving its
    /// snapshot).
    tasks: Rc<Cell<usize>>,
}

/// A room loaded on a shard, as the rooms API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoadedRoom {
    pub id: String,
    pub asleep: bool,
    pub connections: usize,
}

/// A shard's answer about a room's connections.
#[derive(Debug)]
pub(crate) enum Connections {
    /// The room is not loaded here: it has no connections.
    NotLoaded,
    /// The room sleeps: its connections are in its archive in storage.
    Asleep,
    /// A page of the awake room's connections, and how many it has.
    Page { total: usize, conns: Vec<crate::api::archive::ConnRecord> },
    /// A connection could not be read (a damaged archive).
    Failed(String),
}

/// Counts a room task while it runs ([`Home::task_started`]).
pub(crate) struct TaskGuard(Rc<Cell<usize>>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

impl Home {
    pub fn new(runtime: Rc<Runtime>, spawners: Arc<HashMap<String, SpawnRoom>>) -> Rc<Home> {
        let shards = runtime.router.placement().shards();
        let memory_max = runtime.limits().rooms_memory_max / shards;
        Rc::new_cyclic(|me| Home {
            me: me.clone(),
            here: runtime.router.here(),
            runtime,
            rooms: RefCell::new(HashMap::new()),
            idle: RefCell::new(lru::LruCache::unbounded()),
            quiet: RefCell::new(lru::LruCache::unbounded()),
            next_uid: Cell::new(1),
            charged: Cell::new(0),
            memory_max,
            alarms: alarm::Alarms::default(),
            stopping: Cell::new(false),
            unloaded: Cell::new(0),
            refused_rooms: Cell::new(0),
            refused_events: Cell::new(0),
            parties: RefCell::new(vec![PartyCounts::default(); spawners.len()]),
            tasks: Rc::new(Cell::new(0)),
            spawners,
        })
    }

    /// Starts the home's tasks (the alarm timer, and on shard 0 the alarm poller).
    pub fn start(self: &Rc<Self>) {
        alarm::start(self);
    }

    pub fn here(&self) -> ShardAddr {
        self.here
    }

    pub fn has_party(&self, name: &str) -> bool {
        self.spawners.contains_key(name)
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.get()
    }

    pub fn stats(&self) -> HomeStats {
        let rooms = self.rooms.borrow();
        let parties = self.parties.borrow();
        HomeStats {
            rooms: rooms.len(),
            charged_bytes: self.charged.get(),
            unloaded: self.unloaded.get(),
            refused_rooms: self.refused_rooms.get(),
            refused_events: self.refused_events.get(),
            sleeps: parties.iter().map(|c| c.sleeps).sum(),
            wakes: parties.iter().map(|c| c.wakes).sum(),
            asleep: parties.iter().map(|c| c.rooms_asleep).sum(),
        }
    }

    /// A room task started; it counts until the guard drops.
    pub fn task_started(&self) -> TaskGuard {
        self.tasks.set(self.tasks.get() + 1);
        TaskGuard(self.tasks.clone())
    }

    /// Whether every loaded room has nothing queued or running (at shutdown, once the
    /// sockets are closed: their closes have reached `on_close`).
    pub fn is_quiet(&self) -> bool {
        self.rooms.borrow().values().all(|host| host.is_quiet())
    }

    /// Room tasks still running (after [`Home::stop`]: those still saving snapshots).
    pub fn tasks(&self) -> usize {
        self.tasks.get()
    }

    /// What each party's rooms here hold and have done, by [`SpawnRoom::party`].
    pub fn party_counts(&self) -> std::cell::Ref<'_, [PartyCounts]> {
        std::cell::Ref::map(self.parties.borrow(), Vec::as_slice)
    }

    /// Finds the room, loading it if `load`; `Err` with the answer when it cannot be.
    fn room(&self, key: &RoomKey, load: bool) -> Option<Result<Rc<RoomHost>, Response>> {
        if let Some(host) = self.rooms.borrow().get(key) {
            return Some(Ok(host.clone()));
        }
        load.then(|| self.load(key))
    }

    fn load(&self, key: &RoomKey) -> Result<Rc<RoomHost>, Response> {
        if self.stopping.get() {
            return Err(Response::text(503, "server shutting down\n"));
        }
        let Some(spawn) = self.spawners.get(&*key.party).copied() else {
            return Err(Response::text(404, format!("unknown party: {}\n", key.party)));
        };
        let limits = self.runtime.limits();
        while self.rooms.borrow().len() >= limits.rooms_per_shard_max
            || self.charged.get() + ROOM_BASE_BYTES > self.memory_max
        {
            if !self.unload_least_recent() {
                self.refused_rooms.set(self.refused_rooms.get() + 1);
                return Err(Response::text(503, "too many rooms loaded; try again later\n")
                    .with_header("retry-after", "1"));
            }
        }
        let uid = RoomUid { home: self.here, seq: self.next_uid.get() };
        self.next_uid.set(uid.seq + 1);
        let core = Rc::new(RoomCore::new(key.clone(), uid, self.runtime.clone()));
        let host = Rc::new(RoomHost::new(core, spawn.party, spawn.hibernate));
        self.parties.borrow_mut()[spawn.party].rooms_awake += 1;
        host.charged.set(ROOM_BASE_BYTES);
        self.charged.set(self.charged.get() + ROOM_BASE_BYTES);
        self.rooms.borrow_mut().insert(key.clone(), host.clone());
        (spawn.start)(self.me.upgrade().expect("a home outlives its calls"), host.clone());
        Ok(host)
    }

    /// Unloads the least recently idle room; whether there was one.
    fn unload_least_recent(&self) -> bool {
        loop {
            let Some((key, _)) = self.idle.borrow_mut().pop_lru() else { return false };
            let host = self.rooms.borrow().get(&key).cloned();
            if let Some(host) = host {
                host.listed_idle.set(false);
                if host.is_idle() {
                    self.unload(&key, &host);
                    return true;
                }
            }
        }
    }

    fn unload(&self, key: &RoomKey, host: &RoomHost) {
        self.rooms.borrow_mut().remove(key);
        self.charged.set(self.charged.get() - host.charged.get());
        let mut parties = self.parties.borrow_mut();
        let counts = &mut parties[host.party];
        if host.asleep.replace(false) {
            counts.rooms_asleep -= 1;
        } else {
            counts.rooms_awake -= 1;
        }
        counts.connections -= host.connections.replace(0);
        drop(parties);
        host.close();
        self.unloaded.set(self.unloaded.get() + 1);
        tracing::debug!(party = %key.party, room = %key.room, "room unloaded");
    }

    /// After an event: recharges the room's memory, lists it idle if it has nothing left
    /// to do, and unloads idle rooms while the shard is over its memory budget.
    pub fn settle(&self, host: &RoomHost, party_bytes: usize) {
        if host.is_closed() {
            return; // Unloaded (or stopped) while its last event ran: no longer charged.
        }
        let (connections, counted) = {
            let registry = host.core.registry.borrow();
            (registry.len(), registry.count())
        };
        {
            let counts = &mut self.parties.borrow_mut()[host.party];
            counts.connections = counts.connections - host.connections.replace(counted) + counted;
        }
        let charge = ROOM_BASE_BYTES + connections * ROOM_CONNECTION_BYTES + party_bytes;
        self.charged.set(self.charged.get() - host.charged.replace(charge) + charge);
        if host.is_idle() && !host.listed_idle.replace(true) {
            let now = self.runtime.clock.now_ms();
            self.idle.borrow_mut().put(host.core.key.clone(), now);
        }
        if host.hibernates {
            // Awake with connections: it may sleep once quiet for `hibernate_after_ms`.
            let mut quiet = self.quiet.borrow_mut();
            if !host.asleep.get() && host.core.registry.borrow().has_connections() {
                quiet.put(host.core.key.clone(), self.runtime.clock.now_ms());
            } else {
                quiet.pop(&host.core.key);
            }
        }
        while self.charged.get() > self.memory_max && self.unload_least_recent() {}
    }

    /// A room went to sleep, or woke (in `took`).
    pub fn slept_or_woke(&self, host: &RoomHost, woke_in: Option<Duration>) {
        if host.is_closed() {
            return; // Unloaded (or stopped) while it slept or woke: no longer counted.
        }
        let counts = &mut self.parties.borrow_mut()[host.party];
        match woke_in {
            None => {
                counts.sleeps += 1;
                counts.rooms_awake -= 1;
                counts.rooms_asleep += 1;
            }
            Some(took) => {
                counts.wakes += 1;
                counts.rooms_asleep -= 1;
                counts.rooms_awake += 1;
                counts.wake_time.record(took);
            }
        }
    }

    /// Puts hibernating rooms quiet for `hibernate_after_ms` to sleep, and unloads rooms
    /// idle for `room_unload_after_ms` (the shard's sweeper, five times a second).
    pub fn sweep(&self) {
        let now = self.runtime.clock.now_ms();
        for key in Self::older_than(&self.quiet, now, self.runtime.config.hibernate_after_ms) {
            let host = self.rooms.borrow().get(&key).cloned();
            if let Some(host) = host.filter(|h| h.is_quiet() && !h.asleep.get()) {
                // An event like any other: whatever comes after it wakes the room again.
                let _ = host.push(RoomEvent::Sleep);
            }
        }
        for key in Self::older_than(&self.idle, now, self.runtime.limits().room_unload_after_ms) {
            let host = self.rooms.borrow().get(&key).cloned();
            if let Some(host) = host {
                host.listed_idle.set(false);
                if host.is_idle() {
                    self.unload(&key, &host);
                }
            }
        }
    }

    /// The rooms of `party` loaded here (only `room`, if given), for the rooms API.
    pub fn loaded(&self, party: &str, room: Option<&str>) -> Vec<LoadedRoom> {
        self.rooms
            .borrow()
            .iter()
            .filter(|(key, _)| &*key.party == party && room.is_none_or(|r| &*key.room == r))
            .map(|(key, host)| LoadedRoom {
                id: key.room.to_string(),
                asleep: host.asleep.get(),
                connections: host.core.registry.borrow().count(),
            })
            .collect()
    }

    /// A page of a loaded room's connections, for the rooms API.
    pub fn connections(&self, key: &RoomKey, after: Option<ConnId>, limit: usize) -> Connections {
        let Some(host) = self.rooms.borrow().get(key).cloned() else {
            return Connections::NotLoaded;
        };
        if host.asleep.get() {
            return Connections::Asleep;
        }
        let registry = host.core.registry.borrow();
        match registry.page(after, limit) {
            Ok(conns) => Connections::Page { total: registry.len(), conns },
            Err(e) => Connections::Failed(e),
        }
    }

    /// The link to `node` was lost: every room with connections on that node's edges
    /// closes them (their sockets are gone, or will be closed there with 1013), asleep or
    /// not. Returns how many rooms were told.
    pub fn node_lost(&self, node: NodeId) -> usize {
        let hosts: Vec<Rc<RoomHost>> = self
            .rooms
            .borrow()
            .values()
            .filter(|h| h.core.registry.borrow().edges().any(|e| e.node == node))
            .cloned()
            .collect();
        for host in &hosts {
            self.activate(host);
            let _ = host.push(RoomEvent::NodeLost { node });
        }
        hosts.len()
    }

    /// Takes off `list` the rooms listed at least `after_ms` before `now`, oldest first.
    fn older_than(
        list: &RefCell<lru::LruCache<RoomKey, u64>>,
        now: u64,
        after_ms: u64,
    ) -> Vec<RoomKey> {
        let mut list = list.borrow_mut();
        let mut old = Vec::new();
        while list.peek_lru().is_some_and(|(_, since)| now.saturating_sub(*since) >= after_ms) {
            old.extend(list.pop_lru().map(|(key, _)| key));
        }
        old
    }

    /// Runs a due alarm: queues it to its room, loading the room if need be.
    pub fn fire_alarm(&self, key: RoomKey, time: u64) {
        let host = match self.room(&key, true) {
            Some(Ok(host)) => host,
            Some(Err(refusal)) => {
                // Unknown party (nothing to run) or no room slot: try again later.
                tracing::warn!(party = %key.party, room = %key.room, status = refusal.status(), "cannot load the room for its alarm");
                if refusal.status() == 503 {
                    let retry = self.runtime.clock.now_ms() + alarm::POLL_FULL_MS;
                    self.alarms.schedule(self.runtime.clock.now_ms(), key, retry);
                }
                return;
            }
            None => return,
        };
        self.activate(&host);
        if host.push(RoomEvent::Alarm { time }).is_err() {
            // A flooded room must not hold up the other alarms of this shard.
            let now = self.runtime.clock.now_ms();
            self.alarms.schedule(now, key, now + alarm::MAILBOX_FULL_RETRY_MS);
        }
    }

    /// The room has something to do: it leaves the idle list.
    fn activate(&self, host: &RoomHost) {
        if host.listed_idle.replace(false) {
            self.idle.borrow_mut().pop(&host.core.key);
        }
    }

    /// Answers an event refused by a full mailbox, or for a room that cannot be loaded.
    fn refuse(&self, event: RoomEvent, response: Response) {
        let router = &self.runtime.router;
        match event {
            RoomEvent::Connect(c) => {
                let uid = RoomUid { home: self.here, seq: 0 };
                let outcome = ConnectOutcome::Refused(Box::new(response));
                let _ = router.to_edge(
                    c.conn.edge,
                    ToEdge::Connected {
                        conn: c.conn,
                        room: c.room,
                        uid,
                        outcome,
                        auto_response: None,
                    },
                );
            }
            RoomEvent::Request(r) => {
                let answer = ToEdge::Response { token: r.reply.token, response };
                let _ = router.to_edge(r.reply.to, answer);
            }
            // Never refused: messages are bounded by the edges' windows, closes by the
            // connections; an alarm that finds the mailbox full is tried again later.
            RoomEvent::Message { .. }
            | RoomEvent::Messages(_)
            | RoomEvent::Close { .. }
            | RoomEvent::NodeLost { .. }
            | RoomEvent::Alarm { .. }
            | RoomEvent::Sleep => {}
        }
    }

    /// Stops the home: every room is unloaded, so their tasks end and the references
    /// between rooms, the runtime and the store go.
    pub fn stop(&self) {
        self.stopping.set(true);
        let rooms: Vec<_> = self.rooms.borrow_mut().drain().map(|(_, host)| host).collect();
        for host in rooms {
            host.close();
        }
        self.idle.borrow_mut().clear();
        self.quiet.borrow_mut().clear();
        self.charged.set(0);
        for counts in self.parties.borrow_mut().iter_mut() {
            (counts.rooms_awake, counts.rooms_asleep, counts.connections) = (0, 0, 0);
        }
    }
}

impl HomeSink for Home {
    fn deliver(&self, msg: ToHome) {
        if let ToHome::Alarm { room, time } = msg {
            self.alarms.schedule(self.runtime.clock.now_ms(), room, time);
            return;
        }
        let load = matches!(msg, ToHome::Connect(_) | ToHome::Request(_));
        let found = self.room(msg.room(), load);
        let Some(event) = RoomEvent::from_message(msg) else { return };
        let host = match found {
            Some(Ok(host)) => host,
            Some(Err(response)) => return self.refuse(event, response),
            // The room is gone, and its connections with it: nothing to do.
            None => return,
        };
        self.activate(&host);
        if let Err(Refused(event)) = host.push(event) {
            self.refused_events.set(self.refused_events.get() + 1);
            let key = &host.core.key;
            warn_client!(party = %key.party, room = %key.room, queued = host.queued(), "room mailbox full; event refused");
            let response = Response::text(503, "room overloaded; try again later\n")
                .with_header("retry-after", "1");
            self.refuse(event, response);
        }
    }
}
