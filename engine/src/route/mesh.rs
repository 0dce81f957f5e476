//! The channels between the shards of one process: two bounded classes, one channel per
//! ordered pair of shards each, built in the main thread and connected inside each
//! executor. [`ToHome`] carries edge-to-home traffic, [`ToEdge`] home-to-edge traffic; both
//! receivers handle every message without waiting (homes queue into room mailboxes with
//! their own limits, edges into socket queues), so neither class can deadlock the other.

use super::message::{ToEdge, ToHome};
use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};

/// One shard's ends of the mesh, before they are connected on its executor.
pub(crate) struct MeshEnds {
    pub home_tx: Vec<Option<SharedSender<ToHome>>>,
    pub home_rx: Vec<Option<SharedReceiver<ToHome>>>,
    pub edge_tx: Vec<Option<SharedSender<ToEdge>>>,
    pub edge_rx: Vec<Option<SharedReceiver<ToEdge>>>,
}

/// Builds both channel classes for `n` shards; entry `i` goes to shard `i`. A shard has no
/// channel to itself: local traffic is a direct call.
pub(crate) fn build(n: usize, capacity: usize) -> Vec<MeshEnds> {
    let mut ends: Vec<MeshEnds> = (0..n)
        .map(|_| MeshEnds {
            home_tx: (0..n).map(|_| None).collect(),
            home_rx: (0..n).map(|_| None).collect(),
            edge_tx: (0..n).map(|_| None).collect(),
            edge_rx: (0..n).map(|_| None).collect(),
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
    ends
}

/// A shard's connected ends.
pub(crate) struct Connected {
    pub home_tx: Vec<Option<ConnectedSender<ToHome>>>,
    pub home_rx: Vec<(usize, ConnectedReceiver<ToHome>)>,
    pub edge_tx: Vec<Option<ConnectedSender<ToEdge>>>,
    pub edge_rx: Vec<(usize, ConnectedReceiver<ToEdge>)>,
}

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
        let mut out = Connected {
            home_tx: Vec::new(),
            home_rx: Vec::new(),
            edge_tx: Vec::new(),
            edge_rx: Vec::new(),
        };
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
