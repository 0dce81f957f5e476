//! [`NodeLinks`]: what the node-link thread and the shards share about each other node,
//! all atomics: whether its link is up, how many times it was lost (an epoch the shards
//! acknowledge once they have closed what lived across it), the bytes waiting to be
//! written to it (which the routers read to hold back rooms that write faster than the
//! link drains), and the link's traffic.

use super::ids::NodeId;
use super::members::Members;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// One other node, as seen from here.
#[derive(Debug, Default)]
pub(crate) struct NodeState {
    up: AtomicBool,
    /// Times the link was lost.
    lost: AtomicU64,
    /// Times a link came up.
    linked: AtomicU64,
    /// Bytes appended to the link and not yet written.
    pending: AtomicUsize,
    pub messages_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub messages_in: AtomicU64,
    pub bytes_in: AtomicU64,
}

/// Every node's state, and each shard's acknowledgement of each node's losses.
#[derive(Debug)]
pub(crate) struct NodeLinks {
    members: Members,
    nodes: Vec<NodeState>,
    shards: usize,
    /// `acked[shard * nodes + node]`: the loss count of `node` that `shard` has handled.
    acked: Vec<AtomicU64>,
}

/// A node's link figures, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// The node's name.
    pub node: String,
    pub up: bool,
    pub linked: u64,
    pub lost: u64,
    pub messages_out: u64,
    pub bytes_out: u64,
    pub messages_in: u64,
    pub bytes_in: u64,
}

impl NodeLinks {
    pub fn new(members: Members, shards: usize) -> NodeLinks {
        let n = members.len();
        NodeLinks {
            members,
            nodes: (0..n).map(|_| NodeState::default()).collect(),
            shards,
            acked: (0..n * shards).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn members(&self) -> &Members {
        &self.members
    }

    pub fn node(&self, node: NodeId) -> &NodeState {
        &self.nodes[usize::from(node.0)]
    }

    /// The link to `node` came up.
    pub fn set_up(&self, node: NodeId) {
        let n = self.node(node);
        n.linked.fetch_add(1, Ordering::Relaxed);
        n.up.store(true, Ordering::Release);
    }

    /// The link to `node` was lost: the shards will close what lived across it.
    pub fn set_lost(&self, node: NodeId) {
        let n = self.node(node);
        n.up.store(false, Ordering::Release);
        n.lost.fetch_add(1, Ordering::AcqRel);
    }

    /// Bytes waiting to be written to `node` (0 while its link is down).
    pub fn pending(&self, node: NodeId) -> usize {
        self.node(node).pending.load(Ordering::Relaxed)
    }

    /// Sets the bytes waiting to be written to `node`.
    pub fn set_pending(&self, node: NodeId, bytes: usize) {
        self.node(node).pending.store(bytes, Ordering::Relaxed);
    }

    /// How many times the link to `node` was lost.
    pub fn losses(&self, node: NodeId) -> u64 {
        self.node(node).lost.load(Ordering::Acquire)
    }

    /// Shard `shard` has closed what lived across the first `losses` losses of `node`.
    pub fn ack(&self, shard: usize, node: NodeId, losses: u64) {
        self.acked[shard * self.nodes.len() + usize::from(node.0)].store(losses, Ordering::Release);
    }

    /// Whether every shard has handled every loss of `node` so far: only then may a new
    /// link to it carry traffic (its new sockets must not be closed as the old ones).
    pub fn all_acked(&self, node: NodeId) -> bool {
        let losses = self.losses(node);
        (0..self.shards).all(|s| {
            self.acked[s * self.nodes.len() + usize::from(node.0)].load(Ordering::Acquire) >= losses
        })
    }

    /// Every other node's figures, in list order.
    pub fn stats(&self) -> Vec<LinkStats> {
        self.members
            .others()
            .map(|id| {
                let n = self.node(id);
                let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
                LinkStats {
                    node: self.members.name(id).to_owned(),
                    up: n.up.load(Ordering::Relaxed),
                    linked: get(&n.linked),
                    lost: get(&n.lost),
                    messages_out: get(&n.messages_out),
                    bytes_out: get(&n.bytes_out),
                    messages_in: get(&n.messages_in),
                    bytes_in: get(&n.bytes_in),
                }
            })
            .collect()
    }
}
