//! [`Router`]: how a shard reaches a room's home and a socket's edge. It decides where a
//! message goes ([`Placement`]), hands local traffic straight to this shard's home or edge
//! (a direct call, no channel), sends the rest over the mesh, keeps deliveries to each
//! peer in order behind a bounded outbox when its channel is full, and matches replies to
//! the requests waiting for them. Rooms homed on other nodes and sockets on other nodes
//! are reached through the node-link thread: one channel each way per class, with the
//! same bounded outbox behind the edge class; a broadcast to several shards of another
//! node crosses once ([`Router::to_edges`]).
//!
//! It never names the edge or the home: they register as a [`HomeSink`] and an
//! [`EdgeSink`], which keeps the dependencies pointing one way (edge and home depend on
//! route, never the reverse).
//!
//! Waits: `to_home` waits only for room in a full channel to another shard, which that
//! shard's receive loop drains without ever waiting itself; `drained` waits for an outbox
//! whose drainer sends into a channel the peer drains the same way; `request` waits for a
//! reply until the deadline its caller passes.

use super::ids::{NodeId, RoomKey, ShardAddr};
use super::mesh::{Connected, ConnectedLink};
use super::message::{HttpRequest, Shards, ToEdge, ToHome, ToNode};
use super::nodes::NodeLinks;
use super::placement::Placement;
use super::replies::Replies;
use crate::limits::{
    LINK_BUFFER_HIGH, LINK_BUFFER_LOW, MESH_OUTBOX_HIGH, MESH_OUTBOX_LOW, MESH_OUTBOX_MAX,
};
use crate::payload::Request;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender};
use partyline_protocol::http::Response;
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Instant;

/// Receives the traffic for rooms homed on this shard. Never waits.
pub(crate) trait HomeSink {
    fn deliver(&self, msg: ToHome);
}

/// Receives the traffic for sockets on this shard (responses excepted: the router matches
/// those to their waiters itself). Never waits.
pub(crate) trait EdgeSink {
    fn deliver(&self, msg: ToEdge);
}

/// A future waiting for room in a full channel.
pub(crate) type Wait = Pin<Box<dyn Future<Output = ()>>>;

/// A delivery was refused: the outbox to that edge is full of frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overloaded {
    pub edge: ShardAddr,
}

/// The receiving ends of a shard's mesh channels, by peer shard, and from the node link.
pub(crate) struct Receivers {
    home_rx: Vec<(usize, ConnectedReceiver<ToHome>)>,
    edge_rx: Vec<(usize, ConnectedReceiver<ToEdge>)>,
    link: Option<(ConnectedReceiver<ToHome>, ConnectedReceiver<ToEdge>)>,
}

/// The sending ends to the node-link thread, and the outbox behind the edge class.
struct Link {
    home_tx: ConnectedSender<ToHome>,
    edge_tx: ConnectedSender<ToNode>,
    outbox: RefCell<Outbox<ToNode>>,
}

/// What an outbox holds: deliveries, some of which are data (frames and broadcasts).
trait Delivery: Send + 'static {
    fn is_data(&self) -> bool;
}

impl Delivery for ToEdge {
    fn is_data(&self) -> bool {
        ToEdge::is_data(self)
    }
}

impl Delivery for ToNode {
    fn is_data(&self) -> bool {
        ToNode::is_data(self)
    }
}

/// One shard's router.
pub(crate) struct Router {
    here: ShardAddr,
    placement: Placement,
    /// Indexed by shard; `None` for this shard.
    home_tx: Vec<Option<ConnectedSender<ToHome>>>,
    edge_tx: Vec<Option<ConnectedSender<ToEdge>>>,
    /// Deliveries waiting behind a full edge channel, per peer shard.
    outboxes: Vec<RefCell<Outbox<ToEdge>>>,
    /// The node-link thread, in a cluster, and what it says of each link.
    link: Option<Link>,
    nodes: Option<Arc<NodeLinks>>,
    replies: Replies,
    home: OnceCell<Weak<dyn HomeSink>>,
    edge: OnceCell<Weak<dyn EdgeSink>>,
    /// Messages handed to each peer home's channel, and received from all peers: at
    /// shutdown a home waits until it has received what every drained edge sent it
    /// (`shard::DrainBarrier`), so no close is lost before its room saves.
    sent_home: Vec<Cell<u64>>,
    received_home: Cell<u64>,
}

/// Deliveries to one peer that found its channel full, drained in order by a task.
struct Outbox<T> {
    queue: VecDeque<T>,
    /// Frames and broadcasts among `queue` (what [`MESH_OUTBOX_MAX`] bounds).
    data: usize,
    /// The drainer holds a popped delivery it is still sending.
    busy: bool,
    wake: Option<LocalSender<()>>,
    /// Rooms waiting for the backlog to fall below [`MESH_OUTBOX_LOW`].
    waiters: Vec<Waker>,
}

impl<T> Default for Outbox<T> {
    fn default() -> Self {
        Outbox { queue: VecDeque::new(), data: 0, busy: false, wake: None, waiters: Vec::new() }
    }
}

impl Router {
    /// A router over the connected mesh ends (spawning the outbox drainers on the current
    /// executor), and the receiving ends for [`Router::listen`].
    pub fn new(
        here: ShardAddr,
        placement: Placement,
        mesh: Connected,
        nodes: Option<Arc<NodeLinks>>,
    ) -> (Rc<Router>, Receivers) {
        let peers = placement.shards();
        let (link, link_rx) = match mesh.link {
            Some(ConnectedLink { home_tx, edge_tx, home_rx, edge_rx }) => (
                Some(Link { home_tx, edge_tx, outbox: RefCell::default() }),
                Some((home_rx, edge_rx)),
            ),
            None => (None, None),
        };
        let router = Rc::new(Router {
            here,
            placement,
            home_tx: mesh.home_tx,
            edge_tx: mesh.edge_tx,
            outboxes: (0..peers).map(|_| RefCell::default()).collect(),
            link,
            nodes,
            replies: Replies::default(),
            home: OnceCell::new(),
            edge: OnceCell::new(),
            sent_home: (0..peers).map(|_| Cell::new(0)).collect(),
            received_home: Cell::new(0),
        });
        for peer in (0..peers).filter(|&p| p != here.index()) {
            let (tx, rx) = local_channel::new_bounded(1);
            router.outboxes[peer].borrow_mut().wake = Some(tx);
            glommio::spawn_local(drain_outbox(Rc::downgrade(&router), peer, rx, peer_ends))
                .detach();
        }
        if let Some(link) = &router.link {
            let (tx, rx) = local_channel::new_bounded(1);
            link.outbox.borrow_mut().wake = Some(tx);
            glommio::spawn_local(drain_outbox(Rc::downgrade(&router), 0, rx, link_ends)).detach();
        }
        (router, Receivers { home_rx: mesh.home_rx, edge_rx: mesh.edge_rx, link: link_rx })
    }

    /// Registers this shard's home and edge, then starts receiving from the other shards
    /// (so nothing arrives before there is someone to hand it to).
    pub fn listen(
        self: &Rc<Self>,
        home: Weak<dyn HomeSink>,
        edge: Weak<dyn EdgeSink>,
        rx: Receivers,
    ) {
        assert!(self.home.set(home).is_ok() && self.edge.set(edge).is_ok(), "attached twice");
        for (_, rx) in rx.home_rx {
            glommio::spawn_local(home_loop(Rc::downgrade(self), rx, true)).detach();
        }
        for (_, rx) in rx.edge_rx {
            glommio::spawn_local(edge_loop(Rc::downgrade(self), rx)).detach();
        }
        if let Some((home_rx, edge_rx)) = rx.link {
            // Not counted for the drain barrier, which is between this node's shards.
            glommio::spawn_local(home_loop(Rc::downgrade(self), home_rx, false)).detach();
            glommio::spawn_local(edge_loop(Rc::downgrade(self), edge_rx)).detach();
        }
    }

    pub fn here(&self) -> ShardAddr {
        self.here
    }

    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    pub fn replies(&self) -> &Replies {
        &self.replies
    }

    // ---- To a room's home ----------------------------------------------------------

    /// Sends `msg` to its room's home: handed over at once (a direct call when the home is
    /// this shard), or a future that waits for room in the full channel to the home's
    /// shard. Callers whose own future must stay small (a socket's read loop) hold only
    /// the returned box, and only when a channel is full.
    pub fn to_home(self: &Rc<Self>, msg: ToHome) -> Option<Wait> {
        let home = self.placement.home(msg.room());
        if home == self.here {
            if let Some(sink) = self.home.get().and_then(Weak::upgrade) {
                sink.deliver(msg);
            }
            return None;
        }
        if home.node != self.here.node {
            // Another node's room: the node-link thread sends it (or answers for a node
            // that is down).
            let tx = &self.link.as_ref()?.home_tx;
            return match tx.try_send(msg) {
                Ok(()) => None,
                Err(glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(msg))) => {
                    let router = self.clone();
                    Some(Box::pin(async move {
                        if let Some(link) = &router.link
                            && link.home_tx.send(msg).await.is_err()
                        {
                            tracing::debug!("node link channel closed (shutting down)");
                        }
                    }))
                }
                Err(_) => None, // closed: shutting down
            };
        }
        let tx = self.home_tx[home.index()].as_ref()?;
        match tx.try_send(msg) {
            Ok(()) => {
                self.count_sent_home(home.index());
                None
            }
            Err(glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(msg))) => {
                let router = self.clone();
                Some(Box::pin(async move {
                    if let Some(tx) = &router.home_tx[home.index()] {
                        match tx.send(msg).await {
                            Ok(()) => router.count_sent_home(home.index()),
                            Err(_) => {
                                tracing::debug!(home = %home, "mesh channel closed (shutting down)");
                            }
                        }
                    }
                }))
            }
            Err(_) => None, // closed: shutting down
        }
    }

    fn count_sent_home(&self, peer: usize) {
        let sent = &self.sent_home[peer];
        sent.set(sent.get() + 1);
    }

    /// Messages handed to shard `peer`'s home so far.
    pub fn sent_home(&self, peer: usize) -> u64 {
        self.sent_home[peer].get()
    }

    /// Messages received from other shards' edges and homes so far.
    pub fn received_home(&self) -> u64 {
        self.received_home.get()
    }

    /// [`Router::to_home`], waiting if need be.
    pub async fn send_home(self: &Rc<Self>, msg: ToHome) {
        if let Some(wait) = self.to_home(msg) {
            wait.await;
        }
    }

    /// Sends `request` to room `room`'s `on_request` and waits for the response until
    /// `deadline`; `None` if it did not come by then.
    pub async fn request(
        self: &Rc<Self>,
        room: RoomKey,
        request: Request,
        deadline: Instant,
    ) -> Option<Response> {
        let slot = self.replies.open(self.here);
        let reply = slot.reply_to();
        let sent = crate::rt::within(
            deadline,
            self.send_home(ToHome::Request(Box::new(HttpRequest { room, request, reply }))),
        );
        sent.await?;
        crate::rt::within(deadline, slot.wait()).await
    }

    // ---- To a socket's edge --------------------------------------------------------

    /// Sends a delivery to an edge shard. Never waits: a direct call when the edge is this
    /// shard; else the mesh channel, or the outbox behind it when the channel is full.
    /// Frames and broadcasts are refused once [`MESH_OUTBOX_MAX`] of them wait there.
    pub fn to_edge(&self, edge: ShardAddr, msg: ToEdge) -> Result<(), Overloaded> {
        if edge == self.here {
            self.deliver_here(msg);
            return Ok(());
        }
        if edge.node != self.here.node {
            let Some(link) = &self.link else { return Ok(()) };
            let msg = ToNode { node: edge.node, shards: Shards::One(edge.shard), msg };
            return send_or_queue(&link.edge_tx, &link.outbox, msg)
                .map_err(|()| Overloaded { edge });
        }
        let Some(tx) = self.edge_tx.get(edge.index()).and_then(Option::as_ref) else {
            return Ok(()); // no such shard
        };
        send_or_queue(tx, &self.outboxes[edge.index()], msg).map_err(|()| Overloaded { edge })
    }

    /// Sends one delivery to each of `edges` (`make` builds each copy): those of this node
    /// one each, those of another node one per node, fanned out by that node. Returns how
    /// many of `edges` refused it (see [`Router::to_edge`]).
    pub fn to_edges(
        &self,
        edges: impl Iterator<Item = ShardAddr>,
        mut make: impl FnMut() -> ToEdge,
    ) -> usize {
        let mut refused = 0;
        let mut remote: Vec<(NodeId, Vec<u16>)> = Vec::new();
        for edge in edges {
            if edge.node == self.here.node {
                refused += usize::from(self.to_edge(edge, make()).is_err());
            } else {
                match remote.iter_mut().find(|(n, _)| *n == edge.node) {
                    Some((_, shards)) => shards.push(edge.shard),
                    None => remote.push((edge.node, vec![edge.shard])),
                }
            }
        }
        let Some(link) = &self.link else { return refused };
        for (node, shards) in remote {
            let count = shards.len();
            let shards = match shards[..] {
                [one] => Shards::One(one),
                _ => Shards::Many(shards.into()),
            };
            let msg = ToNode { node, shards, msg: make() };
            if send_or_queue(&link.edge_tx, &link.outbox, msg).is_err() {
                refused += count;
            }
        }
        refused
    }

    /// Deliveries waiting for `edge` behind its full channel (for another node's edge,
    /// behind the channel to the node-link thread).
    pub fn backlog(&self, edge: ShardAddr) -> usize {
        if edge.node != self.here.node {
            return self.link.as_ref().map_or(0, |l| l.outbox.borrow().queue.len());
        }
        self.outboxes.get(edge.index()).map_or(0, |o| o.borrow().queue.len())
    }

    /// Whether `edge`'s backlog is high enough that rooms writing to it should wait.
    /// For another node's edge, also whether its link has [`LINK_BUFFER_HIGH`] bytes
    /// waiting to be written.
    pub fn congested(&self, edge: ShardAddr) -> bool {
        let link_full = || {
            edge.node != self.here.node
                && self.nodes.as_ref().is_some_and(|n| n.pending(edge.node) >= LINK_BUFFER_HIGH)
        };
        edge != self.here && (self.backlog(edge) >= MESH_OUTBOX_HIGH || link_full())
    }

    /// Waits until `edge`'s backlog is below [`MESH_OUTBOX_LOW`]. Bounded by the peer's
    /// progress: it drains its channel without ever waiting.
    pub async fn drained(&self, edge: ShardAddr) {
        if edge.node != self.here.node {
            if let Some(link) = &self.link {
                wait_below_low(&link.outbox).await;
            }
            // The link's own buffer: polled (the link thread is another thread). Bounded:
            // it drains as the peer reads, or empties when the link is lost (a peer silent
            // for LINK_DEAD_MS, or past LINK_BUFFER_MAX).
            if let Some(nodes) = &self.nodes {
                while nodes.pending(edge.node) > LINK_BUFFER_LOW {
                    crate::rt::sleep(std::time::Duration::from_millis(2)).await;
                }
            }
            return;
        }
        let Some(outbox) = self.outboxes.get(edge.index()) else {
            return;
        };
        wait_below_low(outbox).await;
    }

    /// A delivery for this shard: responses to their waiters, the rest to the edge.
    fn deliver_here(&self, msg: ToEdge) {
        match msg {
            ToEdge::Response { token, response } => self.replies.complete(token, response),
            msg => {
                if let Some(sink) = self.edge.get().and_then(Weak::upgrade) {
                    sink.deliver(msg);
                }
            }
        }
    }
}

impl<T: Delivery> Outbox<T> {
    fn push(&mut self, msg: T) {
        self.data += usize::from(msg.is_data());
        self.queue.push_back(msg);
    }
}

/// Hands `msg` to `tx`, or queues it behind the channel when it is full (or when others
/// wait there already, to keep the order). `Err` when it is data and the outbox is full.
fn send_or_queue<T: Delivery>(
    tx: &ConnectedSender<T>,
    outbox: &RefCell<Outbox<T>>,
    msg: T,
) -> Result<(), ()> {
    let mut outbox = outbox.borrow_mut();
    // Straight into the channel only when nothing waits or is in flight before it, so
    // deliveries to one edge stay in order.
    if outbox.queue.is_empty() && !outbox.busy {
        match tx.try_send(msg) {
            Ok(()) => return Ok(()),
            Err(glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(msg))) => {
                outbox.push(msg);
            }
            Err(_) => return Ok(()), // closed: shutting down
        }
    } else if msg.is_data() && outbox.data >= MESH_OUTBOX_MAX {
        return Err(());
    } else {
        outbox.push(msg);
    }
    if let Some(w) = &outbox.wake {
        let _ = w.try_send(());
    }
    Ok(())
}

/// Waits until the outbox holds fewer than [`MESH_OUTBOX_LOW`] deliveries.
async fn wait_below_low<T>(outbox: &RefCell<Outbox<T>>) {
    poll_fn(|cx| {
        let mut outbox = outbox.borrow_mut();
        if outbox.queue.len() < MESH_OUTBOX_LOW {
            Poll::Ready(())
        } else {
            outbox.waiters.push(cx.waker().clone());
            Poll::Pending
        }
    })
    .await;
}

/// An outbox and the channel behind it, as [`drain_outbox`] finds them.
type OutboxEnds<'a, T> = (&'a RefCell<Outbox<T>>, Option<&'a ConnectedSender<T>>);

/// Where [`drain_outbox`] finds its outbox.
type Ends<T> = for<'a> fn(&'a Router, usize) -> OutboxEnds<'a, T>;

fn peer_ends(router: &Router, peer: usize) -> OutboxEnds<'_, ToEdge> {
    (&router.outboxes[peer], router.edge_tx[peer].as_ref())
}

fn link_ends(router: &Router, _: usize) -> OutboxEnds<'_, ToNode> {
    let link = router.link.as_ref().expect("a link outbox has a link");
    (&link.outbox, Some(&link.edge_tx))
}

async fn home_loop(router: Weak<Router>, rx: ConnectedReceiver<ToHome>, count: bool) {
    while let Some(msg) = rx.recv().await {
        let Some(router) = router.upgrade() else { return };
        if count {
            router.received_home.set(router.received_home.get() + 1);
        }
        if let Some(sink) = router.home.get().and_then(Weak::upgrade) {
            sink.deliver(msg);
        }
    }
}

async fn edge_loop(router: Weak<Router>, rx: ConnectedReceiver<ToEdge>) {
    while let Some(msg) = rx.recv().await {
        let Some(router) = router.upgrade() else { return };
        router.deliver_here(msg);
    }
}

async fn drain_outbox<T: Delivery>(
    router: Weak<Router>,
    peer: usize,
    wake: LocalReceiver<()>,
    ends: Ends<T>,
) {
    while wake.recv().await.is_some() {
        loop {
            let Some(router) = router.upgrade() else { return };
            let next = {
                let mut outbox = ends(&router, peer).0.borrow_mut();
                let next = outbox.queue.pop_front();
                if let Some(msg) = &next {
                    outbox.data -= usize::from(msg.is_data());
                }
                // Busy from the first pop until the queue is empty again.
                outbox.busy = next.is_some();
                if outbox.queue.len() < MESH_OUTBOX_LOW {
                    for w in outbox.waiters.drain(..) {
                        w.wake();
                    }
                }
                next
            };
            let Some(msg) = next else { break };
            let Some(tx) = ends(&router, peer).1 else { break };
            if tx.send(msg).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::ids::{ConnId, NodeId};
    use crate::route::mesh;
    use bytes::Bytes;
    use partyline_protocol::ws::CloseCode;

    /// Shard 0's router with shard 1 connected but never receiving: what piles up for it
    /// stays in the channel and then the outbox.
    #[test]
    fn a_full_outbox_refuses_frames_but_never_control_deliveries() {
        let mut ends = mesh::build(2, crate::limits::MESH_CHANNEL_MAX, false).0.into_iter();
        let (ours, theirs) = (ends.next().unwrap(), ends.next().unwrap());
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let peer = std::thread::spawn(move || {
            let ex = glommio::LocalExecutorBuilder::default()
                .io_memory(crate::limits::SHARD_IO_MEMORY)
                .make()
                .expect("executor");
            ex.run(async move {
                let _connected = theirs.connect().await;
                // Hold the ends, receive nothing, until the test is over.
                while done_rx.try_recv().is_err() {
                    glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
                }
            });
        });
        let ex = glommio::LocalExecutorBuilder::default()
            .io_memory(crate::limits::SHARD_IO_MEMORY)
            .make()
            .expect("executor");
        ex.run(async move {
            let here = ShardAddr::local(NodeId(0), 0);
            let (router, _receivers) =
                Router::new(here, Placement::new(NodeId(0), 2), ours.connect().await, None);
            let peer = ShardAddr::local(NodeId(0), 1);
            let conn = ConnId { edge: peer, seq: 1 };
            let frame = || ToEdge::Frame { conn, frame: Bytes::from_static(b"x") };
            let room = crate::limits::MESH_CHANNEL_MAX + MESH_OUTBOX_MAX;
            for i in 0..room {
                assert_eq!(router.to_edge(peer, frame()), Ok(()), "delivery {i}");
            }
            assert_eq!(router.to_edge(peer, frame()), Err(Overloaded { edge: peer }));
            let close = ToEdge::Close { conn, code: CloseCode::NORMAL, reason: String::new() };
            assert_eq!(router.to_edge(peer, close), Ok(()), "control deliveries always queue");
            assert!(router.congested(peer));
        });
        done_tx.send(()).unwrap();
        peer.join().unwrap();
    }
}
