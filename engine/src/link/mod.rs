//! Node links: how the nodes of a cluster reach each other's rooms and sockets. One thread
//! per process (a glommio executor of its own, like the storage thread) holds a TCP link
//! to every other node, listens for theirs on this node's `peer` address, and is one more
//! party to the shards' mesh: a shard hands it what is for another node (a room homed
//! there, a socket there), it writes that in the compact framing of [`crate::route::wire`],
//! and hands what arrives to the shard it is for (a room's home shard, by this node's own
//! placement; a socket's edge shard, as the frame says; a broadcast to each listed shard).
//!
//! Of each pair of nodes, the one earlier in the member list dials and the other accepts,
//! so there is one link per pair. On connecting they compare a hash of their member lists
//! and refuse to link (loudly, both sides) if it differs: two nodes must never disagree
//! about where a room lives. A lost link (closed, failed, silent for [`LINK_DEAD_MS`], or
//! its buffer past [`LINK_BUFFER_MAX`]) marks the node lost ([`NodeLinks`]): the shards
//! close what lived across it at their next sweep, and while it is down a connect or
//! request for a room homed there is answered 503 here, at once. The dialer tries again
//! with backoff (`LINK_BACKOFF_MIN_MS` doubling to `LINK_BACKOFF_MAX_MS`).
//!
//! Waits: the thread's receive loops never wait on a link (they append to its buffer);
//! they wait only to hand a message to a shard's channel, which the shard drains without
//! waiting; the link's reads wait on the peer, bounded by the heartbeat deadline.

mod session;

use crate::limits::{LINK_BUFFER_MAX, LINK_DEAD_MS, LINK_PING_MS, SHARD_IO_MEMORY};
use crate::route::mesh::LinkEnds;
use crate::route::{
    ANY_SHARD, ConnId, ConnectOutcome, Members, NodeId, Placement, ReplyTo, RoomKey, RoomUid,
    ShardAddr, ToEdge, ToHome, wire,
};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::channels::shared_channel::ConnectedSender;
use partyline_protocol::http::Response;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use crate::route::LinkStats;
use crate::route::NodeLinks;

/// The running node-link thread.
pub(crate) struct LinkThread {
    handle: glommio::ExecutorJoinHandle<()>,
    stop: Arc<AtomicBool>,
    pub links: Arc<NodeLinks>,
}

impl LinkThread {
    /// Binds this node's peer address (so a port in use fails the start, naming it) and
    /// starts the thread.
    pub fn start(members: Members, shards: usize, ends: LinkEnds) -> io::Result<LinkThread> {
        let here = members.here();
        let addr = members.peer(here).expect("a node of a cluster has a peer address");
        let (mut sockets, _) = crate::rt::bind_listeners(addr, 1, 1024, false).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot listen for node links on {addr}: {e}"))
        })?;
        let listener = sockets.pop().expect("one socket");
        let links = Arc::new(NodeLinks::new(members.clone(), shards));
        let stop = Arc::new(AtomicBool::new(false));
        let placement = Placement::cluster(&members, shards);
        let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .name("links")
            .io_memory(SHARD_IO_MEMORY)
            .spawn({
                let (links, stop) = (links.clone(), stop.clone());
                move || run(links, placement, listener, ends, stop)
            })
            .map_err(|e| io::Error::other(format!("cannot start the node-link thread: {e}")))?;
        Ok(LinkThread { handle, stop, links })
    }

    /// Stops the thread (after the shards: they may still send closes while they drain).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Err(e) = self.handle.join() {
            tracing::error!(error = %e, "the node-link thread failed");
        }
    }
}

impl std::fmt::Debug for LinkThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkThread").field("links", &self.links).finish()
    }
}

/// The thread's state, on its executor.
struct Core {
    links: Arc<NodeLinks>,
    placement: Placement,
    here: NodeId,
    to_home: Vec<ConnectedSender<ToHome>>,
    to_edge: Vec<ConnectedSender<ToEdge>>,
    /// By node number (this node's entry unused).
    peers: Vec<Peer>,
    stop: Arc<AtomicBool>,
    /// What a lost link left unanswered, for the task that answers it.
    orphans: LocalSender<(NodeId, Vec<Unanswered>)>,
}

/// A connect or request sent on a link and not answered yet: if the link is lost first,
/// it is answered 503 here (its room's node may never answer).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Unanswered {
    Connect { conn: ConnId, room: RoomKey },
    Request(ReplyTo),
}

/// Connects and requests waiting for an answer over one link (bounded by the sockets and
/// requests waiting on this node; each is answered by its room within the hook deadline,
/// or here when the link is lost).
#[derive(Debug, Default)]
struct Waiting {
    connects: HashMap<ConnId, RoomKey>,
    requests: HashSet<ReplyTo>,
}

/// One other node's link, if it has one now.
#[derive(Default)]
struct Peer {
    /// The current session's number (0: no link), so a task of an ended session can tell.
    session: Cell<u64>,
    sessions: Cell<u64>,
    /// Encoded frames waiting for the writer.
    out: RefCell<Vec<u8>>,
    /// Bytes the writer took from `out` and has not written yet.
    writing: Cell<usize>,
    wake: RefCell<Option<LocalSender<()>>>,
    fd: Cell<Option<RawFd>>,
    heard: Cell<Option<Instant>>,
    waiting: RefCell<Waiting>,
}

async fn run(
    links: Arc<NodeLinks>,
    placement: Placement,
    listener: socket2::Socket,
    ends: LinkEnds,
    stop: Arc<AtomicBool>,
) {
    let LinkEnds { from_home, from_edge, to_home, to_edge } = ends;
    // Connect every end at once (each waits for its shard's end).
    let from_home: Vec<_> =
        from_home.into_iter().map(|r| glommio::spawn_local(r.connect()).detach()).collect();
    let from_edge: Vec<_> =
        from_edge.into_iter().map(|r| glommio::spawn_local(r.connect()).detach()).collect();
    let to_home: Vec<_> =
        to_home.into_iter().map(|s| glommio::spawn_local(s.connect()).detach()).collect();
    let to_edge: Vec<_> =
        to_edge.into_iter().map(|s| glommio::spawn_local(s.connect()).detach()).collect();
    let mut connected = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for h in from_home {
        connected.0.extend(h.await);
    }
    for h in from_edge {
        connected.1.extend(h.await);
    }
    for h in to_home {
        connected.2.extend(h.await);
    }
    for h in to_edge {
        connected.3.extend(h.await);
    }
    let (from_home, from_edge, to_home, to_edge) = connected;
    let members = links.members().clone();
    let (orphans, orphans_rx) = local_channel::new_unbounded();
    let core = Rc::new(Core {
        orphans,
        here: members.here(),
        peers: (0..members.len()).map(|_| Peer::default()).collect(),
        links,
        placement,
        to_home,
        to_edge,
        stop: stop.clone(),
    });
    let listener = crate::rt::adopt_listener(listener);
    // Held, not detached: dropping them at the end cancels them (and closes the listener).
    let mut tasks = vec![glommio::spawn_local(session::accept_loop(core.clone(), listener))];
    for node in members.others().filter(|n| *n > core.here) {
        tasks.push(glommio::spawn_local(session::dial_loop(core.clone(), node)));
    }
    for rx in from_home {
        let core = core.clone();
        glommio::spawn_local(async move {
            while let Some(msg) = rx.recv().await {
                let node = core.placement.node_of(msg.room());
                if core.send(node, |out| wire::encode_home(out, &msg)) {
                    core.sent(node, &msg);
                } else {
                    core.refuse(node, msg).await;
                }
            }
        })
        .detach();
    }
    for rx in from_edge {
        let core = core.clone();
        glommio::spawn_local(async move {
            while let Some(d) = rx.recv().await {
                // A socket on a node that is down is gone (or soon closed there): dropped.
                core.send(d.node, |out| wire::encode_edge(out, &d));
            }
        })
        .detach();
    }
    tasks.push(glommio::spawn_local(heartbeat(core.clone())));
    // Connects and requests a lost link left unanswered get their 503 here.
    let answering = core.clone();
    tasks.push(glommio::spawn_local(async move {
        while let Some((node, unanswered)) = orphans_rx.recv().await {
            for what in unanswered {
                answering.answer_unreachable(node, what).await;
            }
        }
    }));
    while !stop.load(Ordering::Relaxed) {
        crate::rt::sleep(Duration::from_millis(50)).await;
    }
    drop(tasks);
    for node in members.others() {
        core.end(node, core.peers[usize::from(node.0)].session.get(), "this node is stopping");
    }
    // The sessions' tasks see their ends and finish, closing their streams.
    crate::rt::sleep(Duration::from_millis(20)).await;
}

impl Core {
    fn peer(&self, node: NodeId) -> &Peer {
        &self.peers[usize::from(node.0)]
    }

    fn name(&self, node: NodeId) -> &str {
        self.links.members().name(node)
    }

    /// Appends a frame for `node` to its link; `false` if it has none now.
    fn send(&self, node: NodeId, encode: impl FnOnce(&mut Vec<u8>)) -> bool {
        let peer = self.peer(node);
        let session = peer.session.get();
        if session == 0 || node == self.here {
            return false;
        }
        let len = {
            let mut out = peer.out.borrow_mut();
            let before = out.len();
            encode(&mut out);
            let state = self.links.node(node);
            state.messages_out.fetch_add(1, Ordering::Relaxed);
            state.bytes_out.fetch_add((out.len() - before) as u64, Ordering::Relaxed);
            out.len()
        };
        if len > LINK_BUFFER_MAX {
            self.end(node, session, "the node is not reading fast enough");
            return false;
        }
        self.links.set_pending(node, len + peer.writing.get());
        if let Some(w) = peer.wake.borrow().as_ref() {
            let _ = w.try_send(());
        }
        true
    }

    /// Answers, for a node that cannot be reached, what waits for an answer: a connect
    /// or a request gets 503 with `Retry-After`. Messages and closes are dropped (their
    /// sockets are closed with 1013 at the shards' next sweep).
    async fn refuse(&self, node: NodeId, msg: ToHome) {
        let what = match msg {
            ToHome::Connect(c) => Unanswered::Connect { conn: c.conn, room: c.room },
            ToHome::Request(r) => Unanswered::Request(r.reply),
            ToHome::Message { .. } | ToHome::Close { .. } | ToHome::Alarm { .. } => return,
        };
        self.answer_unreachable(node, what).await;
    }

    /// Answers a connect or request for a room on `node`, which cannot be reached: 503
    /// with `Retry-After`.
    async fn answer_unreachable(&self, node: NodeId, what: Unanswered) {
        let response = Response::text(
            503,
            format!("the room's node {:?} is unreachable; try again\n", self.name(node)),
        )
        .with_header("retry-after", "2");
        let (shard, answer) = match what {
            Unanswered::Connect { conn, room } => (
                conn.edge.index(),
                ToEdge::Connected {
                    conn,
                    room,
                    uid: RoomUid { home: ShardAddr { node, shard: ANY_SHARD }, seq: 0 },
                    outcome: ConnectOutcome::Refused(Box::new(response)),
                    auto_response: None,
                },
            ),
            Unanswered::Request(reply) => {
                (reply.to.index(), ToEdge::Response { token: reply.token, response })
            }
        };
        if let Some(tx) = self.to_edge.get(shard) {
            let _ = tx.send(answer).await;
        }
    }

    /// `msg` went out on `node`'s link: a connect or request now waits for its answer.
    fn sent(&self, node: NodeId, msg: &ToHome) {
        let mut waiting = self.peer(node).waiting.borrow_mut();
        match msg {
            ToHome::Connect(c) => {
                waiting.connects.insert(c.conn, c.room.clone());
            }
            ToHome::Request(r) => {
                waiting.requests.insert(r.reply);
            }
            ToHome::Message { .. } | ToHome::Close { .. } | ToHome::Alarm { .. } => {}
        }
    }

    /// `msg` came from `node` for shard `shard`: the connect or request it answers no
    /// longer waits.
    fn answered(&self, node: NodeId, shard: u16, msg: &ToEdge) {
        let mut waiting = self.peer(node).waiting.borrow_mut();
        match msg {
            ToEdge::Connected { conn, .. } => {
                waiting.connects.remove(conn);
            }
            ToEdge::Response { token, .. } => {
                let to = ShardAddr { node: self.here, shard };
                waiting.requests.remove(&ReplyTo { to, token: *token });
            }
            _ => {}
        }
    }

    /// Starts session `fd` with `node`: it is up, and frames for it go to `wake`'s writer.
    fn begin(&self, node: NodeId, fd: RawFd, wake: LocalSender<()>) -> u64 {
        let peer = self.peer(node);
        let session = peer.sessions.get() + 1;
        peer.sessions.set(session);
        peer.session.set(session);
        peer.out.borrow_mut().clear();
        *peer.wake.borrow_mut() = Some(wake);
        peer.fd.set(Some(fd));
        peer.heard.set(Some(Instant::now()));
        self.links.set_up(node);
        session
    }

    /// Ends `session` with `node`, if it is the current one: the node is lost until a new
    /// link comes up.
    fn end(&self, node: NodeId, session: u64, why: &str) {
        let peer = self.peer(node);
        if session == 0 || peer.session.get() != session {
            return;
        }
        peer.session.set(0);
        *peer.out.borrow_mut() = Vec::new();
        peer.writing.set(0);
        self.links.set_pending(node, 0);
        let waiting = std::mem::take(&mut *peer.waiting.borrow_mut());
        let unanswered: Vec<Unanswered> = waiting
            .connects
            .into_iter()
            .map(|(conn, room)| Unanswered::Connect { conn, room })
            .chain(waiting.requests.into_iter().map(Unanswered::Request))
            .collect();
        if !unanswered.is_empty() {
            let _ = self.orphans.try_send((node, unanswered));
        }
        peer.wake.borrow_mut().take();
        if let Some(fd) = peer.fd.take() {
            // Ends the reader's pending read; the descriptor closes with the stream.
            // SAFETY: `fd` is the session's open stream, owned by its tasks.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        self.links.set_lost(node);
        if self.stop.load(Ordering::Relaxed) {
            tracing::info!(node = self.name(node), "node link closed: {why}");
        } else {
            tracing::warn!(node = self.name(node), "node link lost: {why}");
        }
    }
}

/// Sends a heartbeat on every link, and drops links silent for [`LINK_DEAD_MS`].
async fn heartbeat(core: Rc<Core>) {
    let dead = Duration::from_millis(LINK_DEAD_MS);
    loop {
        crate::rt::sleep(Duration::from_millis(LINK_PING_MS)).await;
        for node in core.links.members().others() {
            let peer = core.peer(node);
            let session = peer.session.get();
            if session == 0 {
                continue;
            }
            if peer.heard.get().is_some_and(|t| t.elapsed() > dead) {
                core.end(node, session, "silent for too long");
            } else {
                core.send(node, wire::encode_ping);
            }
        }
    }
}

/// A copy of a delivery that goes to several shards of this node (those that
/// [`crate::route::Router::to_edges`] sends); `None` for the others.
fn fanout_copy(msg: &ToEdge) -> Option<ToEdge> {
    Some(match msg {
        ToEdge::Broadcast { room, frame, without } => {
            ToEdge::Broadcast { room: *room, frame: frame.clone(), without: without.clone() }
        }
        ToEdge::AutoResponse { room, pair } => {
            ToEdge::AutoResponse { room: *room, pair: pair.clone() }
        }
        _ => return None,
    })
}
