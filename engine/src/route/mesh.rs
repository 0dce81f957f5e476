//! The channels between the shards of one process: two bounded classes, one channel per
//! ordered pair of shards each, built in the main thread and connected inside each
//! executor. [`ToHome`] carries edge-to-home traffic, [`ToEdge`] home-to-edge traffic; both
//! receivers handle every message without waiting (homes queue into room mailboxes with
//! their own limits, edges into socket queues), so neither class can deadlock the other.
//!
//! In a cluster the node-link thread is one more party to the mesh: every shard has a
//! channel to it for each class (rooms homed on other nodes, sockets on other nodes) and
//! one from it for each class (what other nodes send here), built by [`build`] as well.

use super::message::{ToEdge, ToHome, ToNode};
use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};

/// One shard's ends of the mesh, before they are connected on its executor.
pub(crate) struct MeshEnds {
    pub home_tx: Vec<Option<SharedSender<ToHome>>>,
    pub home_rx: Vec<Option<SharedReceiver<ToHome>>>,
    pub edge_tx: Vec<Option<SharedSender<ToEdge>>>,
    pub edge_rx: Vec<Option<SharedReceiver<ToEdge>>>,
    /// The shard's channels to and from the node-link thread, in a cluster.
    pub link: Option<ShardLinkEnds>,
}

/// A shard's unconnected channels with the node-link thread.
pub(crate) type ShardLinkEnds = LinkSide<
    SharedSender<ToHome>,
    SharedSender<ToNode>,
    SharedReceiver<ToHome>,
    SharedReceiver<ToEdge>,
>;

/// A shard's four channels with the node-link thread.
pub(crate) struct LinkSide<HT, ET, HR, ER> {
    /// To rooms homed on other nodes.
    pub home_tx: HT,
    /// To sockets on other nodes.
    pub edge_tx: ET,
    /// From other nodes' edges (and rooms) to rooms homed here.
    pub home_rx: HR,
    /// From other nodes' rooms to sockets here.
    pub edge_rx: ER,
}

/// The node-link thread's ends, by shard.
pub(crate) struct LinkEnds {
    pub from_home: Vec<SharedReceiver<ToHome>>,
    pub from_edge: Vec<SharedReceiver<ToNode>>,
    pub to_home: Vec<SharedSender<ToHome>>,
    pub to_edge: Vec<SharedSender<ToEdge>>,
}

/// Builds both channel classes for `n` shards; entry `i` goes to shard `i`. A shard has no
/// channel to itself: local traffic is a direct call. With `link`, also the channels
/// between every shard and the node-link thread, whose ends come back separately.
pub(crate) fn build(n: usize, capacity: usize, link: bool) -> (Vec<MeshEnds>, Option<LinkEnds>) {
    let mut link_ends = LinkEnds {
        from_home: Vec::new(),
        from_edge: Vec::new(),
        to_home: Vec::new(),
        to_edge: Vec::new(),
    };
    let mut ends: Vec<MeshEnds> = (0..n)
        .map(|_| MeshEnds {
            home_tx: (0..n).map(|_| None).collect(),
            home_rx: (0..n).map(|_| None).collect(),
            edge_tx: (0..n).map(|_| None).collect(),
            edge_rx: (0..n).map(|_| None).collect(),
            link: link.then(|| {
                let (home_tx, from_home) = shared_channel::new_bounded(capacity);
                let (edge_tx, from_edge) = shared_channel::new_bounded(capacity);
                let (to_home, home_rx) = shared_channel::new_bounded(capacity);
                let (to_edge, edge_rx) = shared_channel::new_bounded(capacity);
                link_ends.from_home.push(from_home);
                link_ends.from_edge.push(from_edge);
                link_ends.to_home.push(to_home);
                link_ends.to_edge.push(to_edge);
                LinkSide { home_tx, edge_tx, home_rx, edge_rx }
            }),
        })
        .collect();
    for from in 0..n {
        for to in 0..n {
            if from == to {
                continue;
            }
            let (tx, rx) = shared_channel::new_bounded(capacity);
            ends[from].home_tx[to] = Some(tx);
            ends[to].home_rx[from] = Some(rx);
            let (tx, rx) = shared_channel::new_bounded(capacity);
            ends[from].edge_tx[to] = Some(tx);
            ends[to].edge_rx[from] = Some(rx);
        }
    }
    (ends, link.then_some(link_ends))
}

/// A shard's connected ends.
pub(crate) struct Connected {
    pub home_tx: Vec<Option<ConnectedSender<ToHome>>>,
    pub home_rx: Vec<(usize, ConnectedReceiver<ToHome>)>,
    pub edge_tx: Vec<Option<ConnectedSender<ToEdge>>>,
    pub edge_rx: Vec<(usize, ConnectedReceiver<ToEdge>)>,
    pub link: Option<ConnectedLink>,
}

/// A shard's connected channels with the node-link thread.
pub(crate) type ConnectedLink = LinkSide<
    ConnectedSender<ToHome>,
    ConnectedSender<ToNode>,
    ConnectedReceiver<ToHome>,
    ConnectedReceiver<ToEdge>,
>;

impl MeshEnds {
    /// Connects every end on the current executor. All ends connect at once: connecting
    /// waits for the peer's end, and peers connect in their own order.
    pub async fn connect(self) -> Connected {
        fn spawn<T: 'static>(
            f: impl std::future::Future<Output = T> + 'static,
        ) -> glommio::task::JoinHandle<T> {
            glommio::spawn_local(f).detach()
        }
        let home_tx: Vec<_> =
            self.home_tx.into_iter().map(|e| e.map(|s| spawn(s.connect()))).collect();
        let edge_tx: Vec<_> =
            self.edge_tx.into_iter().map(|e| e.map(|s| spawn(s.connect()))).collect();
        let home_rx: Vec<_> = self
            .home_rx
            .into_iter()
            .enumerate()
            .filter_map(|(i, e)| e.map(|r| (i, spawn(r.connect()))))
            .collect();
        let edge_rx: Vec<_> = self
            .edge_rx
            .into_iter()
            .enumerate()
            .filter_map(|(i, e)| e.map(|r| (i, spawn(r.connect()))))
            .collect();
        let link = self.link.map(|l| {
            (
                spawn(l.home_tx.connect()),
                spawn(l.edge_tx.connect()),
                spawn(l.home_rx.connect()),
                spawn(l.edge_rx.connect()),
            )
        });
        let mut out = Connected {
            home_tx: Vec::new(),
            home_rx: Vec::new(),
            edge_tx: Vec::new(),
            edge_rx: Vec::new(),
            link: None,
        };
        if let Some((home_tx, edge_tx, home_rx, edge_rx)) = link {
            let ends = (home_tx.await, edge_tx.await, home_rx.await, edge_rx.await);
            if let (Some(home_tx), Some(edge_tx), Some(home_rx), Some(edge_rx)) = ends {
                out.link = Some(LinkSide { home_tx, edge_tx, home_rx, edge_rx });
            }
        }
        for h in home_tx {
            out.home_tx.push(match h {
                Some(h) => h.await,
                None => None,
            });
        }
        for h in edge_tx {
            out.edge_tx.push(match h {
                Some(h) => h.await,
                None => None,
            });
        }
        for (i, h) in home_rx {
            if let Some(r) = h.await {
                out.home_rx.push((i, r));
            }
        }
        for (i, h) in edge_rx {
            if let Some(r) = h.await {
                out.edge_rx.push((i, r));
            }
        }
        out
    }
}
