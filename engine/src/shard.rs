//! A shard: one executor on one core, owning the sockets it accepted (as their *edge*) and
//! the rooms that hash to it (as their *home*). Shard state is `!Send` by construction
//! (`Rc`, `RefCell`); only [`crate::mesh`] messages cross to other shards.

use crate::alarm::Alarms;
use crate::edge::EdgeConn;
use crate::limits::{self, Limits};
use crate::mesh::{self, ConnectOutcome, ReplyTo, RoomKey, ToEdge, ToHome};
use crate::park::Parking;
use crate::room::{RoomEvent, RoomHost};
use crate::server::ServerShared;
use glommio::channels::local_channel::{self, LocalSender};
use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender};
use partyline_protocol::http::Response;
use partyline_protocol::route::RouteConfig;
use partyline_protocol::ws::CloseCode;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// One shard's state.
pub(crate) struct Shard {
    pub id: usize,
    pub count: usize,
    pub server: Arc<ServerShared>,
    pub route: RouteConfig,
    pub started: Instant,
    /// The read buffer every socket of this shard reads into, borrowed only inside a poll.
    pub scratch: RefCell<Box<[u8]>>,
    // Edge side.
    pub conns: RefCell<HashMap<u64, Rc<EdgeConn>>>,
    /// Idle sockets without a task, and the queue of those to resume.
    pub parking: Rc<Parking>,
    next_seq: Cell<u64>,
    /// Open connections on this edge, per room (by the room's uid), for broadcasts.
    members: RefCell<HashMap<u64, Vec<Rc<EdgeConn>>>>,
    /// Replies awaited on this shard (HTTP responses, room-to-room fetches), by token.
    pending: RefCell<HashMap<u64, LocalSender<Response>>>,
    next_token: Cell<u64>,
    // Home side.
    rooms: RefCell<HashMap<RoomKey, Rc<RoomHost>>>,
    next_room_uid: Cell<u64>,
    /// Alarms of this shard's rooms due soon.
    pub alarms: Alarms,
    // Mesh.
    home_tx: Vec<Option<ConnectedSender<ToHome>>>,
    edge_tx: Vec<Option<ConnectedSender<ToEdge>>>,
    /// Deliveries waiting behind a full edge channel, per peer; drained by a task.
    outbox: RefCell<Vec<Outbox>>,
    pub shutting_down: Cell<bool>,
}

impl Shard {
    pub fn limits(&self) -> &Limits {
        &self.server.config.limits
    }

    /// Seconds since the shard started: the clock of idle checks (4 bytes per connection).
    pub fn now_s(&self) -> u32 {
        u32::try_from(self.started.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    pub fn next_conn_seq(&self) -> u64 {
        let s = self.next_seq.get();
        self.next_seq.set(s + 1);
        s
    }

    pub fn next_token(&self) -> u64 {
        let t = self.next_token.get();
        self.next_token.set(t + 1);
        t
    }

    /// Registers a reply slot; the returned receiver gets the response.
    pub fn await_reply(&self) -> (ReplyTo, local_channel::LocalReceiver<Response>) {
        let token = self.next_token();
        let (tx, rx) = local_channel::new_bounded(1);
        self.pending.borrow_mut().insert(token, tx);
        (ReplyTo { shard: self.id, token }, rx)
    }

    pub fn forget_reply(&self, token: u64) {
        self.pending.borrow_mut().remove(&token);
    }

    // ---- Edge to home --------------------------------------------------------------

    /// Sends an event to its room's home shard: a direct hand-off when that is this shard,
    /// else over the mesh. Waits when the room's mailbox or the channel is full.
    ///
    /// Handing over without waiting is the common case and is done in place; only when a
    /// mailbox or channel is full does a (boxed) future wait for room. That keeps the
    /// future of every socket's task small: it is what an idle connection costs.
    pub async fn to_home(self: &Rc<Self>, msg: ToHome) {
        if let Err(pending) = self.try_to_home(msg) {
            let wait: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> =
                Box::pin(self.clone().to_home_waiting(pending));
            wait.await;
        }
    }

    /// [`Shard::to_home`] without a future to hold the message: hands `msg` over now, or
    /// returns a boxed future that waits for room. Callers whose own future must stay small
    /// (a socket's read loop) use this.
    pub fn send_home(
        self: &Rc<Self>,
        msg: ToHome,
    ) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>> {
        self.try_to_home(msg).err().map(|pending| {
            Box::pin(self.clone().to_home_waiting(pending))
                as std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>
        })
    }

    /// Hands `msg` over if that needs no waiting; gives it back otherwise.
    fn try_to_home(self: &Rc<Self>, msg: ToHome) -> Result<(), Pending> {
        let home = msg.room().home(self.count);
        if home == self.id {
            return self
                .try_deliver_to_home(msg)
                .map_err(|(host, event)| Pending::Mailbox(host, event));
        }
        let Some(tx) = &self.home_tx[home] else {
            return Ok(());
        };
        match tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(msg))) => {
                Err(Pending::Channel(home, msg))
            }
            Err(_) => Ok(()), // closed: shutting down
        }
    }

    async fn to_home_waiting(self: Rc<Self>, pending: Pending) {
        match pending {
            Pending::Mailbox(host, event) => host.enqueue(event).await,
            Pending::Channel(home, msg) => {
                if let Some(tx) = &self.home_tx[home]
                    && tx.send(msg).await.is_err()
                {
                    tracing::debug!(shard = self.id, home, "mesh channel closed (shutting down)");
                }
            }
        }
    }

    /// Handles an event on its home shard (from the mesh): finds or creates the room and
    /// queues the event, waiting while the room's mailbox is full.
    pub async fn deliver_to_home(self: &Rc<Self>, msg: ToHome) {
        if let Err((host, event)) = self.try_deliver_to_home(msg) {
            host.enqueue(event).await;
        }
    }

    /// Finds or creates the room and queues the event if its mailbox has space; otherwise
    /// gives back the room and the event for the caller to wait with.
    fn try_deliver_to_home(self: &Rc<Self>, msg: ToHome) -> Result<(), (Rc<RoomHost>, RoomEvent)> {
        if let ToHome::Alarm { room, time } = msg {
            self.alarms.schedule(self, room, time);
            return Ok(());
        }
        let existing = self.rooms.borrow().get(msg.room()).cloned();
        let host = match existing {
            Some(host) => host,
            None => match msg {
                ToHome::Connect(_) | ToHome::Request(_) => match self.create_room(msg.room()) {
                    Ok(host) => host,
                    Err(refusal) => {
                        self.refuse(msg, refusal);
                        return Ok(());
                    }
                },
                // The room is gone: the connection closed with it. Nothing to do.
                ToHome::Message { .. } | ToHome::Close { .. } | ToHome::Alarm { .. } => {
                    return Ok(());
                }
            },
        };
        let event = match msg {
            ToHome::Connect(c) => RoomEvent::Connect(c),
            ToHome::Message { conn, message, .. } => RoomEvent::Message { conn, message },
            ToHome::Close { conn, code, reason, .. } => RoomEvent::Close { conn, code, reason },
            ToHome::Request(r) => RoomEvent::Request(r),
            ToHome::Alarm { .. } => unreachable!("scheduled above"),
        };
        host.try_enqueue(event).map_err(|event| (host, event))
    }

    /// Runs a due alarm: queues it to its room, loading the room if need be.
    pub fn fire_alarm(self: &Rc<Self>, key: RoomKey, time: u64) {
        let existing = self.rooms.borrow().get(&key).cloned();
        let host = match existing {
            Some(host) => host,
            None => match self.create_room(&key) {
                Ok(host) => host,
                Err(refusal) => {
                    // Unknown party (nothing to run) or no room slot: try again later.
                    tracing::warn!(party = %key.party, room = %key.room, status = refusal.status(), "cannot load the room for its alarm");
                    if refusal.status() == 503 {
                        let retry = self.server.clock.now_ms() + crate::alarm::POLL_FULL_MS;
                        self.alarms.schedule(self, key, retry);
                    }
                    return;
                }
            },
        };
        if host.try_enqueue(RoomEvent::Alarm { time }).is_err() {
            // A flooded room must not hold up the other alarms of this shard.
            let retry = self.server.clock.now_ms() + crate::alarm::MAILBOX_FULL_RETRY_MS;
            self.alarms.schedule(self, key, retry);
        }
    }

    fn refuse(&self, msg: ToHome, response: Response) {
        match msg {
            ToHome::Connect(c) => self.to_edge(
                c.conn.edge,
                ToEdge::Connected {
                    conn: c.conn,
                    room_uid: 0,
                    outcome: ConnectOutcome::Refused(Box::new(response)),
                },
            ),
            ToHome::Request(r) => {
                self.to_edge(r.reply.shard, ToEdge::Response { token: r.reply.token, response })
            }
            _ => {}
        }
    }

    fn create_room(self: &Rc<Self>, key: &RoomKey) -> Result<Rc<RoomHost>, Response> {
        let Some(entry) = self.server.parties.get(&*key.party) else {
            return Err(Response::text(404, format!("unknown party: {}\n", key.party)));
        };
        if self.rooms.borrow().len() >= self.limits().rooms_per_shard_max && !self.evict_one_room()
        {
            return Err(Response::text(503, "too many rooms on this shard; try again later\n"));
        }
        let uid = (self.id as u64) << 48 | self.next_room_uid.get();
        self.next_room_uid.set(self.next_room_uid.get() + 1);
        let host = RoomHost::start(self.clone(), key.clone(), uid, entry.spawn_room);
        self.rooms.borrow_mut().insert(key.clone(), host.clone());
        Ok(host)
    }

    /// Drops one loaded room that has no connections and nothing queued.
    fn evict_one_room(&self) -> bool {
        let victim = self.rooms.borrow().iter().find(|(_, h)| h.is_idle()).map(|(k, _)| k.clone());
        match victim {
            Some(key) => {
                if let Some(host) = self.rooms.borrow_mut().remove(&key) {
                    host.close_mailbox();
                }
                true
            }
            None => false,
        }
    }

    // ---- Home to edge --------------------------------------------------------------

    /// Sends a delivery to an edge shard. Never waits: a direct call when the edge is this
    /// shard; else the mesh channel, or the outbox when the channel is full.
    pub fn to_edge(&self, edge: usize, msg: ToEdge) {
        if edge == self.id {
            return self.deliver_to_edge(msg);
        }
        let Some(tx) = &self.edge_tx[edge] else {
            return;
        };
        let mut outboxes = self.outbox.borrow_mut();
        let outbox = &mut outboxes[edge];
        // Straight into the channel only when nothing is waiting or in flight before it,
        // so deliveries to one edge stay in order.
        if outbox.queue.is_empty() && !outbox.busy {
            match tx.try_send(msg) {
                Ok(()) => return,
                Err(glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(msg))) => {
                    outbox.queue.push_back(msg);
                }
                Err(_) => return, // closed: shutting down
            }
        } else if outbox.queue.len() >= limits::MESH_OUTBOX_MAX {
            tracing::error!(shard = self.id, edge, "mesh outbox full; dropping a delivery");
            return;
        } else {
            outbox.queue.push_back(msg);
        }
        if let Some(w) = &outbox.wake {
            let _ = w.try_send(());
        }
    }

    /// Handles a delivery on the edge shard. Never waits.
    pub fn deliver_to_edge(&self, msg: ToEdge) {
        match msg {
            ToEdge::Connected { conn, room_uid, outcome } => {
                let edge_conn = self.conns.borrow().get(&conn.seq).cloned();
                match edge_conn {
                    Some(c) => {
                        if matches!(outcome, ConnectOutcome::Accepted) {
                            c.room_uid.set(room_uid);
                            self.join_members(&c);
                        }
                        c.set_connected(outcome);
                    }
                    // Only at shutdown: a connecting socket waits for its outcome.
                    None => tracing::debug!(seq = conn.seq, "connection gone before its outcome"),
                }
            }
            ToEdge::Frame { conn, frame } => {
                if let Some(c) = self.conns.borrow().get(&conn.seq) {
                    c.enqueue(frame, self.limits().outbound_bytes_max);
                }
            }
            ToEdge::Broadcast { room_uid, frame, without } => {
                let members = self.members.borrow();
                let limit = self.limits().outbound_bytes_max;
                for c in members.get(&room_uid).into_iter().flatten() {
                    if !without.contains(&c.cref) {
                        c.enqueue(frame.clone(), limit);
                    }
                }
            }
            ToEdge::Close { conn, code, reason } => {
                if let Some(c) = self.conns.borrow().get(&conn.seq) {
                    c.request_close(CloseCode(code), &reason);
                }
            }
            ToEdge::Response { token, response } => {
                if let Some(tx) = self.pending.borrow_mut().remove(&token) {
                    let _ = tx.try_send(response);
                }
            }
        }
    }

    fn join_members(&self, conn: &Rc<EdgeConn>) {
        let mut members = self.members.borrow_mut();
        let list = members.entry(conn.room_uid.get()).or_default();
        // Share the room's key with the members already here instead of holding a copy.
        if let Some(shared) = list.first().and_then(|first| first.room.get()) {
            let _ = conn.room.set(shared.clone());
        }
        conn.member_pos.set(list.len());
        list.push(conn.clone());
    }

    /// Removes a connection from its room's member list (O(1): swap with the last).
    pub fn leave_members(&self, conn: &EdgeConn) {
        let mut members = self.members.borrow_mut();
        let uid = conn.room_uid.get();
        let Some(list) = members.get_mut(&uid) else {
            return;
        };
        let pos = conn.member_pos.get();
        if pos < list.len() && list[pos].cref.seq == conn.cref.seq {
            list.swap_remove(pos);
            if let Some(moved) = list.get(pos) {
                moved.member_pos.set(pos);
            }
            if list.is_empty() {
                members.remove(&uid);
            }
        }
    }
}

/// An event that could not be handed to its home without waiting.
enum Pending {
    /// A room on this shard with a full mailbox.
    Mailbox(Rc<RoomHost>, RoomEvent),
    /// A full channel to home shard `.0`.
    Channel(usize, ToHome),
}

/// Deliveries to one peer that found its channel full.
#[derive(Default)]
struct Outbox {
    queue: VecDeque<ToEdge>,
    /// The drainer holds a popped delivery it is still sending.
    busy: bool,
    wake: Option<LocalSender<()>>,
}

/// Builds a shard and runs it until shutdown: receive loops, outbox drainers, the idle
/// sweeper and the accept loop.
pub(crate) async fn run(
    id: usize,
    server: Arc<ServerShared>,
    listener: socket2::Socket,
    mesh_ends: mesh::MeshEnds,
) {
    let count = server.shard_count;
    let connected = mesh_ends.connect().await;
    let route = RouteConfig::with_prefix(&server.config.prefix).unwrap_or_default();
    let parking = match Parking::new() {
        Ok(p) => Rc::new(p),
        Err(e) => {
            tracing::error!(shard = id, error = %e, "cannot create the shard's epoll set");
            return;
        }
    };
    let shard = Rc::new(Shard {
        id,
        count,
        route,
        started: Instant::now(),
        scratch: RefCell::new(vec![0u8; limits::SCRATCH_BYTES].into_boxed_slice()),
        conns: RefCell::new(HashMap::new()),
        parking,
        next_seq: Cell::new(1),
        members: RefCell::new(HashMap::new()),
        pending: RefCell::new(HashMap::new()),
        next_token: Cell::new(1),
        rooms: RefCell::new(HashMap::new()),
        next_room_uid: Cell::new(1),
        alarms: Alarms::default(),
        home_tx: connected.home_tx,
        edge_tx: connected.edge_tx,
        outbox: RefCell::new((0..count).map(|_| Outbox::default()).collect()),
        shutting_down: Cell::new(false),
        server,
    });
    for (peer, rx) in connected.home_rx {
        glommio::spawn_local(home_loop(shard.clone(), peer, rx)).detach();
    }
    for (_peer, rx) in connected.edge_rx {
        glommio::spawn_local(edge_loop(shard.clone(), rx)).detach();
    }
    for peer in (0..count).filter(|&p| p != id) {
        let (tx, rx) = local_channel::new_bounded(1);
        shard.outbox.borrow_mut()[peer].wake = Some(tx);
        glommio::spawn_local(outbox_drainer(shard.clone(), peer, rx)).detach();
    }
    let waiter = {
        let parking = shard.parking.clone();
        glommio::spawn_local(async move { parking.run_waiter().await })
    };
    glommio::spawn_local(unparker(shard.clone())).detach();
    crate::alarm::start(&shard);
    let listener = crate::rt::adopt_listener(listener);
    let acceptor = glommio::spawn_local(crate::edge::accept_loop(shard.clone(), listener));
    tracing::debug!(shard = id, "shard running");

    // The sweeper: idle pings and timeouts, and the shutdown check.
    let idle_s = u32::try_from(shard.limits().ws_idle_timeout_ms / 1000).unwrap_or(u32::MAX).max(1);
    let park_after_s = match shard.limits().ws_park_after_ms {
        0 => None,
        ms => Some(u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX)),
    };
    // Parked sockets free their tasks and streams; hand that memory back to the OS, at
    // most once a second (a forced collection takes ~0.3-3 ms at 15,000 sockets).
    let (mut parked_before, mut collect_due, mut collected_at) = (0, false, Instant::now());
    while !shard.server.shutdown.load(Ordering::Relaxed) {
        glommio::timer::sleep(Duration::from_millis(200)).await;
        let parked = sweep_idle(&shard, idle_s, park_after_s);
        collect_due |= parked > parked_before;
        parked_before = parked;
        if collect_due && collected_at.elapsed() >= Duration::from_secs(1) {
            crate::rt::release_freed_memory();
            (collect_due, collected_at) = (false, Instant::now());
        }
    }

    // Shutdown: stop accepting, close every socket with 1001, wait for them to drain.
    shard.shutting_down.set(true);
    drop(acceptor);
    let conns: Vec<_> = shard.conns.borrow().values().cloned().collect();
    for c in conns {
        c.request_close(CloseCode::GOING_AWAY, "server shutting down");
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while !shard.conns.borrow().is_empty() && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
    shard.parking.stop();
    waiter.await;
    // Unload every room: their tasks end, and the references between rooms and the shard
    // go, so the store (and its folder) can be released.
    let rooms: Vec<_> = shard.rooms.borrow_mut().drain().map(|(_, host)| host).collect();
    for host in rooms {
        host.close_mailbox();
    }
    tracing::debug!(shard = id, left = shard.conns.borrow().len(), "shard stopped");
}

/// Resumes parked sockets that became readable or have something to do.
async fn unparker(shard: Rc<Shard>) {
    loop {
        for seq in shard.parking.next_batch().await {
            let conn = shard.conns.borrow().get(&seq).cloned();
            if let Some(conn) = conn
                && let Some(fd) = conn.take_parked()
            {
                shard.parking.unwatch(fd);
                glommio::spawn_local(crate::edge::resume(shard.clone(), conn, fd)).detach();
            }
        }
    }
}

/// Pings WebSockets that have been silent for `idle_s`, closes those silent for twice as
/// long, and parks those with no traffic either way for `park_after_s`. Runs a few times a
/// second over all connections: a few bytes per connection instead of a timer each.
fn sweep_idle(shard: &Shard, idle_s: u32, park_after_s: Option<u32>) -> usize {
    let now = shard.now_s();
    let conns = shard.conns.borrow();
    let (mut websockets, mut parked) = (0, 0);
    for c in conns.values() {
        if !c.is_open() {
            continue;
        }
        websockets += 1;
        parked += usize::from(c.is_parked());
        if c.sent.replace(false) {
            c.last_tx_s.set(now);
        }
        let silent = now.saturating_sub(c.last_rx_s.get());
        if let Some(after) = park_after_s
            && !c.is_parked()
            && silent >= after
            && now.saturating_sub(c.last_tx_s.get()) >= after
        {
            c.want_park();
        }
        if silent >= 2 * idle_s {
            c.request_close(CloseCode::GOING_AWAY, "idle timeout");
        } else if silent >= idle_s && !c.pinged.get() {
            c.pinged.set(true);
            c.enqueue(
                partyline_protocol::ws::encode::ping(b"partyline"),
                shard.limits().outbound_bytes_max,
            );
        }
    }
    let gauges = &shard.server.gauges[shard.id];
    gauges.sockets.store(conns.len(), Ordering::Relaxed);
    gauges.websockets.store(websockets, Ordering::Relaxed);
    gauges.parked.store(parked, Ordering::Relaxed);
    gauges.rooms.store(shard.rooms.borrow().len(), Ordering::Relaxed);
    parked
}

async fn home_loop(shard: Rc<Shard>, peer: usize, rx: ConnectedReceiver<ToHome>) {
    while let Some(msg) = rx.recv().await {
        shard.deliver_to_home(msg).await;
    }
    tracing::trace!(shard = shard.id, peer, "home channel closed");
}

async fn edge_loop(shard: Rc<Shard>, rx: ConnectedReceiver<ToEdge>) {
    while let Some(msg) = rx.recv().await {
        shard.deliver_to_edge(msg);
    }
}

async fn outbox_drainer(shard: Rc<Shard>, peer: usize, wake: local_channel::LocalReceiver<()>) {
    while wake.recv().await.is_some() {
        loop {
            let next = {
                let mut outboxes = shard.outbox.borrow_mut();
                let outbox = &mut outboxes[peer];
                let next = outbox.queue.pop_front();
                // Busy from the first pop until the queue is empty again.
                outbox.busy = next.is_some();
                next
            };
            let Some(msg) = next else { break };
            let Some(tx) = &shard.edge_tx[peer] else {
                break;
            };
            if tx.send(msg).await.is_err() {
                return;
            }
        }
    }
}
