//! The edge side of a shard: every socket its listener accepted, for the socket's whole
//! life. One task per active socket ([`socket`]) parses HTTP ([`http`]), runs the edge
//! gates ([`gate`]), performs the upgrade and reads and writes frames ([`websocket`]);
//! idle sockets park ([`park`]). [`Edge`] is the shard's registry of them: the sockets by
//! sequence number, each room's members here (for broadcasts and flow control), and the
//! shard's share of the output and input budgets, past which the largest holders are
//! closed (1008 for output, 1009 for input).
//!
//! Depends on api (gates, lobby, runtime) and route; the home never calls in here except
//! through the router, which hands this shard's deliveries to [`Edge`] as an `EdgeSink`.

mod accept;
mod conn;
mod gate;
mod http;
mod out_queue;
mod park;
mod socket;
mod stream;
mod traffic;
mod websocket;

use crate::api::runtime::Runtime;
use crate::limits::{self, Limits};
use crate::log::warn_client;
use crate::route::{
    AutoResponse, EdgeSink, NodeId, RoomKey, RoomUid, Router, ShardAddr, ToEdge, ToHome,
};
use bytes::Bytes;
use conn::{EdgeConn, RoomLink, Sweep};
pub(crate) use gate::Gates;
pub use http::FetchHandler;
use park::Parking;
use partyline_protocol::route::RouteConfig;
use partyline_protocol::ws::CloseCode;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Context;
use std::time::Instant;
use traffic::Traffic;
pub use traffic::{CLOSE_SLOTS, STATUSES, TrafficStats, close_label};

/// A room's sockets on this edge, and its window here (in the shared link).
struct EdgeRoom {
    link: Rc<RoomLink>,
    members: Vec<Rc<EdgeConn>>,
}

/// What a shard's edge holds, for its gauges.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct EdgeStats {
    pub sockets: usize,
    pub websockets: usize,
    pub parked: usize,
    pub remote_websockets: usize,
    pub outbound_bytes: usize,
    pub inbound_bytes: usize,
    pub closed_for_output: u64,
    pub closed_for_input: u64,
    pub reads_held: u64,
    pub traffic: TrafficStats,
}

/// One shard's sockets.
pub(crate) struct Edge {
    pub runtime: Rc<Runtime>,
    here: ShardAddr,
    route: RouteConfig,
    gates: Arc<HashMap<String, Gates>>,
    on_fetch: Option<FetchHandler>,
    /// The `serve` folder's files, answered after `on_fetch`.
    assets: Option<Arc<crate::assets::StaticFiles>>,
    /// TLS on the client listener, if configured.
    tls: Option<Arc<crate::tls::Tls>>,
    started: Instant,
    /// The read buffer every socket of this shard reads into, borrowed only inside a poll.
    scratch: RefCell<Box<[u8]>>,
    conns: RefCell<HashMap<u64, Rc<EdgeConn>>>,
    rooms: RefCell<HashMap<RoomUid, EdgeRoom>>,
    parking: Rc<Parking>,
    next_seq: Cell<u64>,
    /// `outbound_bytes_max`, read on every frame queued.
    out_per_socket_max: usize,
    /// Bytes queued to write on all sockets, and this shard's share of the budget.
    out_total: Cell<usize>,
    out_max: usize,
    /// The total past which the next shedding pass runs: `out_max`, or above what was
    /// left after a pass that could not get under its target (what closing sockets still
    /// hold is theirs to flush), so a broadcast does not rescan every socket per frame.
    shed_above: Cell<usize>,
    /// Bytes held for partial messages by all sockets, and this shard's share.
    in_total: Cell<usize>,
    in_max: usize,
    closed_for_output: Cell<u64>,
    closed_for_input: Cell<u64>,
    /// Reads held back by a full room window (see [`RoomLink`]).
    reads_held: Cell<u64>,
    shutting_down: Cell<bool>,
    pub(crate) traffic: Traffic,
}

impl Edge {
    pub fn new(
        runtime: Rc<Runtime>,
        gates: Arc<HashMap<String, Gates>>,
        on_fetch: Option<FetchHandler>,
        assets: Option<Arc<crate::assets::StaticFiles>>,
        tls: Option<Arc<crate::tls::Tls>>,
    ) -> std::io::Result<Rc<Edge>> {
        let parking = Rc::new(Parking::new()?);
        let shards = runtime.router.placement().shards();
        let limits = *runtime.limits();
        let route = RouteConfig::with_prefix(&runtime.config.prefix).unwrap_or_default();
        Ok(Rc::new(Edge {
            here: runtime.router.here(),
            runtime,
            route,
            gates,
            on_fetch,
            assets,
            tls,
            started: Instant::now(),
            scratch: RefCell::new(vec![0u8; limits::SCRATCH_BYTES].into_boxed_slice()),
            conns: RefCell::new(HashMap::new()),
            rooms: RefCell::new(HashMap::new()),
            parking,
            // Numbers start from the time the edge started (ms since the epoch, times
            // 65,536): a node that restarts never reuses a connection's number that rooms
            // on other nodes may still hold.
            next_seq: Cell::new(seq_base()),
            out_per_socket_max: limits.outbound_bytes_max,
            out_total: Cell::new(0),
            out_max: (limits.outbound_total_bytes_max / shards).max(limits.outbound_bytes_max),
            shed_above: Cell::new(
                (limits.outbound_total_bytes_max / shards).max(limits.outbound_bytes_max),
            ),
            in_total: Cell::new(0),
            in_max: (limits.inbound_total_bytes_max / shards).max(limits.message_size_max),
            closed_for_output: Cell::new(0),
            closed_for_input: Cell::new(0),
            reads_held: Cell::new(0),
            shutting_down: Cell::new(false),
            traffic: Traffic::default(),
        }))
    }

    /// Starts the edge's tasks: the accept loop on `listener`, the parking waiter and the
    /// unparker. Returns the accept loop (dropping it stops accepting) and the waiter
    /// (which ends after [`Edge::stop_parking`]).
    pub fn start(
        self: &Rc<Self>,
        listener: socket2::Socket,
    ) -> (glommio::Task<()>, glommio::Task<()>) {
        let listener = crate::rt::adopt_listener(listener);
        let acceptor = glommio::spawn_local(accept::accept_loop(self.clone(), listener));
        let parking = self.parking.clone();
        let waiter = glommio::spawn_local(async move { parking.run_waiter().await });
        glommio::spawn_local(socket::unparker(self.clone())).detach();
        (acceptor, waiter)
    }

    pub fn limits(&self) -> &Limits {
        self.runtime.limits()
    }

    pub fn router(&self) -> &Rc<Router> {
        &self.runtime.router
    }

    pub fn here(&self) -> ShardAddr {
        self.here
    }

    /// Seconds since the shard started: the clock of idle checks (4 bytes per connection).
    pub fn now_s(&self) -> u32 {
        u32::try_from(self.started.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    // ---- Sockets ---------------------------------------------------------------------

    fn add_conn(&self) -> Rc<EdgeConn> {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        let id = crate::route::ConnId { edge: self.here, seq };
        let conn = Rc::new(EdgeConn::new(id, self.now_s(), self.parking.clone()));
        self.conns.borrow_mut().insert(seq, conn.clone());
        conn
    }

    /// The socket is gone: it leaves its room's list and the shard's map, and its
    /// buffers leave the budgets.
    fn remove_conn(&self, conn: &EdgeConn) {
        self.leave(conn);
        self.drop_output(conn);
        self.track_inbound(conn, 0);
        self.conns.borrow_mut().remove(&conn.id().seq);
    }

    fn conn(&self, seq: u64) -> Option<Rc<EdgeConn>> {
        self.conns.borrow().get(&seq).cloned()
    }

    /// Whether the shard is at its socket limit.
    fn full(&self) -> bool {
        self.conns.borrow().len() >= self.limits().connections_per_shard_max
    }

    // ---- Output, within the budget --------------------------------------------------

    /// Queues a frame for a socket (see [`EdgeConn::enqueue`]), within the shard's output
    /// budget: past it, the sockets with the most queued are closed (1008).
    fn enqueue(&self, conn: &EdgeConn, frame: Bytes) {
        self.traffic.frame_out();
        let (before, after) = conn.enqueue(frame, self.out_per_socket_max);
        self.account_output(before, after);
        if self.out_total.get() > self.shed_above.get() {
            self.shed_output();
        }
    }

    /// Queues a frame before everything else (the 101).
    fn push_front(&self, conn: &EdgeConn, frame: Bytes) {
        let before = conn.queued();
        conn.push_front(frame);
        self.account_output(before, conn.queued());
    }

    /// Queues a frame even while closing (the close frame).
    fn push_last(&self, conn: &EdgeConn, frame: Bytes) {
        let before = conn.queued();
        conn.push_last(frame);
        self.account_output(before, conn.queued());
    }

    fn drop_output(&self, conn: &EdgeConn) {
        let before = conn.queued();
        conn.drop_output();
        self.account_output(before, 0);
    }

    /// Writes what the socket has queued (see [`EdgeConn::poll_flush`]).
    fn flush(
        &self,
        conn: &EdgeConn,
        stream: &mut stream::Stream,
        cx: &mut Context<'_>,
    ) -> std::io::Result<()> {
        let (result, before, after) = stream.poll_flush(conn, cx);
        if before != after {
            self.traffic.written(before.saturating_sub(after));
            self.account_output(before, after);
        }
        result
    }

    fn account_output(&self, before: usize, after: usize) {
        self.out_total.set(self.out_total.get() - before + after);
        if after < before && self.out_total.get() <= self.out_max {
            self.shed_above.set(self.out_max);
        }
    }

    /// Closes the sockets with the most output queued until the shard is under 90% of its
    /// share of `outbound_total_bytes_max`.
    fn shed_output(&self) {
        let target = self.out_max / 10 * 9;
        // Sockets already closing are flushing their last bytes: shedding them frees
        // nothing more.
        let open = |c: &EdgeConn| !c.close_requested() && c.phase() != conn::Phase::Closing;
        for (queued, conn) in self.largest(|c| if open(c) { c.queued() } else { 0 }) {
            if self.out_total.get() <= target {
                break;
            }
            let before = conn.queued();
            conn.drop_unsent();
            self.account_output(before, conn.queued());
            conn.request_close(CloseCode::POLICY_VIOLATION, "server output budget exceeded");
            self.closed_for_output.set(self.closed_for_output.get() + 1);
            warn_client!(
                seq = conn.id().seq,
                queued,
                budget = self.out_max,
                "output budget exceeded; closing the socket with the most queued"
            );
        }
        // What is left belongs to sockets flushing their last bytes: the next pass waits
        // until the total grows by a sixteenth of the budget (or falls under it).
        self.shed_above.set(self.out_max.max(self.out_total.get() + self.out_max / 16));
    }

    /// The sockets for which `size` is not zero, largest first.
    fn largest(&self, size: impl Fn(&EdgeConn) -> usize) -> Vec<(usize, Rc<EdgeConn>)> {
        let conns = self.conns.borrow();
        let mut holders: Vec<_> = conns
            .values()
            .map(|c| (size(c), c))
            .filter(|(n, _)| *n > 0)
            .map(|(n, c)| (n, c.clone()))
            .collect();
        holders.sort_unstable_by_key(|h| std::cmp::Reverse(h.0));
        holders
    }

    // ---- Input, within the budget ---------------------------------------------------

    /// Records the bytes `conn` holds for partial messages; past the shard's share of
    /// `inbound_total_bytes_max`, the largest holders are closed (1009).
    fn track_inbound(&self, conn: &EdgeConn, bytes: usize) {
        let change = conn.set_inbound(bytes);
        self.in_total.set(self.in_total.get().saturating_add_signed(change));
        if self.in_total.get() > self.in_max {
            self.shed_input();
        }
    }

    fn shed_input(&self) {
        let target = self.in_max / 10 * 9;
        for (held, conn) in self.largest(EdgeConn::inbound) {
            if self.in_total.get() <= target {
                break;
            }
            // Its task frees the buffers when it sees the close; they leave the count now.
            let change = conn.set_inbound(0);
            self.in_total.set(self.in_total.get().saturating_add_signed(change));
            conn.request_close(CloseCode::MESSAGE_TOO_BIG, "server input budget exceeded");
            self.closed_for_input.set(self.closed_for_input.get() + 1);
            warn_client!(
                seq = conn.id().seq,
                held,
                budget = self.in_max,
                "input budget exceeded; closing the socket holding the most"
            );
        }
    }

    // ---- Rooms' members on this edge ------------------------------------------------

    /// `conn` was accepted into room `key` (loaded as `uid`): it joins the room's list
    /// here (sharing the room's link and window) and opens.
    fn join(
        &self,
        conn: &Rc<EdgeConn>,
        key: RoomKey,
        uid: RoomUid,
        auto_response: Option<Arc<AutoResponse>>,
    ) {
        let mut rooms = self.rooms.borrow_mut();
        let room = rooms.entry(uid).or_insert_with(|| EdgeRoom {
            link: Rc::new(RoomLink::new(key, uid)),
            members: Vec::new(),
        });
        room.link.set_auto_response(auto_response);
        conn.set_member_pos(room.members.len());
        room.members.push(conn.clone());
        conn.open(room.link.clone(), self.now_s());
    }

    /// Removes a socket from its room's list (O(1): swap with the last).
    fn leave(&self, conn: &EdgeConn) {
        let Some(uid) = conn.room_uid() else { return };
        let mut rooms = self.rooms.borrow_mut();
        let Some(room) = rooms.get_mut(&uid) else { return };
        let pos = conn.member_pos();
        if pos < room.members.len() && room.members[pos].id() == conn.id() {
            room.members.swap_remove(pos);
            if let Some(moved) = room.members.get(pos) {
                moved.set_member_pos(pos);
            }
            if room.members.is_empty() {
                rooms.remove(&uid);
            }
        }
    }

    /// A socket's read waits for its room's window to open.
    fn read_held(&self) {
        self.reads_held.set(self.reads_held.get() + 1);
    }

    // ---- Housekeeping --------------------------------------------------------------

    /// Pings WebSockets silent for `ws_idle_timeout_ms`, closes those silent for twice as
    /// long, and asks those idle both ways for `ws_park_after_ms` to park. Runs a few
    /// times a second over all sockets: a few bytes per socket instead of a timer each.
    pub fn sweep(&self) -> EdgeStats {
        let limits = self.limits();
        let idle_s = u32::try_from(limits.ws_idle_timeout_ms / 1000).unwrap_or(u32::MAX).max(1);
        let park_after_s = match limits.ws_park_after_ms {
            0 => None,
            ms => Some(u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX)),
        };
        let now = self.now_s();
        let mut stats = self.stats();
        // Pinging (enqueue, and any shedding it causes) only reads the map, so it stays
        // borrowed for the whole pass.
        let conns = self.conns.borrow();
        let mut parks_left = limits::PARKS_PER_SWEEP_MAX;
        for c in conns.values().filter(|c| c.is_open()) {
            stats.websockets += 1;
            stats.parked += usize::from(c.is_parked());
            let (sweep, asked) = c.sweep(now, idle_s, park_after_s.filter(|_| parks_left > 0));
            parks_left -= usize::from(asked);
            match sweep {
                Sweep::Nothing => {}
                Sweep::Ping => self.enqueue(c, partyline_protocol::ws::encode::ping(b"partyline")),
                Sweep::Close => c.request_close(CloseCode::GOING_AWAY, "idle timeout"),
            }
        }
        stats
    }

    /// The edge's counts now (without the sweep's websocket and parked counts).
    pub fn stats(&self) -> EdgeStats {
        EdgeStats {
            sockets: self.conns.borrow().len(),
            websockets: 0,
            parked: 0,
            remote_websockets: self
                .rooms
                .borrow()
                .iter()
                .filter(|(uid, _)| uid.home.node != self.here.node)
                .map(|(_, r)| r.members.len())
                .sum(),
            outbound_bytes: self.out_total.get(),
            inbound_bytes: self.in_total.get(),
            closed_for_output: self.closed_for_output.get(),
            closed_for_input: self.closed_for_input.get(),
            reads_held: self.reads_held.get(),
            traffic: self.traffic.stats(),
        }
    }

    /// The link to `node` was lost: every socket here in a room homed there is closed
    /// with 1013 (try again later), so its client reconnects and finds the room again
    /// once its node is back. Returns how many were asked to close.
    pub fn node_lost(&self, node: NodeId) -> usize {
        let rooms = self.rooms.borrow();
        let mut closed = 0;
        for room in rooms.values().filter(|r| r.link.uid.home.node == node) {
            for c in &room.members {
                c.request_close(
                    CloseCode::TRY_AGAIN_LATER,
                    "the room's node is unreachable; reconnect",
                );
                closed += 1;
            }
        }
        closed
    }

    /// Shutdown: no new sockets, and every socket is asked to close with 1012 (service
    /// restart: the client reconnects, through the balancer to another node).
    pub fn close_all(&self) {
        self.shutting_down.set(true);
        let conns: Vec<_> = self.conns.borrow().values().cloned().collect();
        for c in conns {
            c.request_close(CloseCode::SERVICE_RESTART, "server shutting down");
        }
    }

    pub fn is_empty(&self) -> bool {
        self.conns.borrow().is_empty()
    }

    /// Ends the parking waiter (at shutdown).
    pub fn stop_parking(&self) {
        self.parking.stop();
    }
}

/// The first connection number of an edge started now.
fn seq_base() -> u64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
    (ms << 16).max(1)
}

impl EdgeSink for Edge {
    fn deliver(&self, msg: ToEdge) {
        match msg {
            ToEdge::Connected { conn: cid, room, uid, outcome, auto_response } => {
                let conn = self.conn(cid.seq).filter(|c| c.phase() == conn::Phase::Connecting);
                match conn {
                    Some(conn) => {
                        if matches!(outcome, crate::route::ConnectOutcome::Accepted) {
                            self.join(&conn, room, uid, auto_response);
                        }
                        conn.set_connected(outcome);
                    }
                    None if matches!(outcome, crate::route::ConnectOutcome::Accepted) => {
                        // The socket gave up waiting (or dropped) before the room answered:
                        // the room must forget the connection it just accepted.
                        let forget = ToHome::Close {
                            room,
                            conn: cid,
                            code: CloseCode::ABNORMAL,
                            reason: "the socket was gone before the room answered".into(),
                        };
                        if let Some(wait) = self.router().to_home(forget) {
                            glommio::spawn_local(wait).detach();
                        }
                    }
                    None => {}
                }
            }
            ToEdge::Frame { conn, frame } => {
                if let Some(c) = self.conn(conn.seq) {
                    self.enqueue(&c, frame);
                }
            }
            ToEdge::Broadcast { room, frame, without } => {
                // Enqueueing never touches the member lists (a slow consumer's close only
                // flags it), so the list stays borrowed for the whole broadcast.
                let rooms = self.rooms.borrow();
                for c in rooms.get(&room).map_or(&[][..], |r| &r.members[..]) {
                    if !without.contains(&c.id()) {
                        self.enqueue(c, frame.clone());
                    }
                }
            }
            ToEdge::Close { conn, code, reason } => {
                if let Some(c) = self.conn(conn.seq) {
                    c.request_close(code, &reason);
                }
            }
            ToEdge::CloseRoom { room, code, reason } => {
                let rooms = self.rooms.borrow();
                for c in rooms.get(&room).map_or(&[][..], |r| &r.members[..]) {
                    c.request_close(code, &reason);
                }
            }
            ToEdge::AutoResponse { room, pair } => {
                if let Some(r) = self.rooms.borrow().get(&room) {
                    r.link.set_auto_response(pair);
                }
            }
            ToEdge::Credit { room, events, bytes } => {
                if let Some(r) = self.rooms.borrow().get(&room) {
                    r.link.credit(events, bytes);
                }
            }
            // The router hands responses to their waiters itself.
            ToEdge::Response { .. } => {}
        }
    }
}
