//! Placement: which node and shard is a room's home. One function, [`Placement::home`],
//! decides it for every caller (edges, alarms, room-to-room fetch, node links), so every
//! node, given the same member list, agrees on every room's home.
//!
//! The node is chosen by rendezvous hashing (highest random weight): each node scores the
//! room with a hash of the room's address and the node's name, and the highest score
//! wins. Adding a node moves only the rooms it now wins; removing one moves only its own.
//! Within the node, the shard is the address's hash modulo the node's shard count, known
//! only on that node: other nodes send to the node and let it pick ([`ANY_SHARD`]).

use super::ids::{NodeId, RoomKey, ShardAddr};
use super::members::{Members, fnv1a};
use std::sync::Arc;

/// The shard of a home on another node: that node picks it from its own shard count.
pub(crate) const ANY_SHARD: u16 = u16::MAX;

/// How rooms map to nodes and, on this node, to shards.
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    node: NodeId,
    shards: u16,
    /// Each node's rendezvous seed, by node number; `None`: every room is on `node`.
    seeds: Option<Arc<[u64]>>,
}

impl Placement {
    /// Every room on `node`, spread over its `shards`.
    pub fn new(node: NodeId, shards: usize) -> Placement {
        assert!(shards > 0, "a node has at least one shard");
        Placement {
            node,
            shards: u16::try_from(shards).expect("at most 65,535 shards"),
            seeds: None,
        }
    }

    /// Rooms spread over the cluster's nodes; this node has `shards`.
    pub fn cluster(members: &Members, shards: usize) -> Placement {
        let seeds = (members.len() > 1).then(|| members.seeds().into());
        Placement { seeds, ..Placement::new(members.here(), shards) }
    }

    /// The room's home. On this node, the shard is a stable hash (FNV-1a, 64 bit) of party
    /// and room modulo the shard count; on another node it is [`ANY_SHARD`].
    pub fn home(&self, key: &RoomKey) -> ShardAddr {
        let h = key_hash(key);
        let node = self.node_of_hash(h);
        let shard = if node == self.node {
            u16::try_from(h % u64::from(self.shards)).expect("below the shard count")
        } else {
            ANY_SHARD
        };
        ShardAddr { node, shard }
    }

    /// The node the room lives on.
    pub fn node_of(&self, key: &RoomKey) -> NodeId {
        self.node_of_hash(key_hash(key))
    }

    fn node_of_hash(&self, h: u64) -> NodeId {
        let Some(seeds) = &self.seeds else { return self.node };
        let mut best = (0u64, 0usize);
        for (i, seed) in seeds.iter().enumerate() {
            let score = mix(h ^ seed);
            if i == 0 || score > best.0 {
                best = (score, i);
            }
        }
        NodeId(u16::try_from(best.1).expect("at most NODES_MAX nodes"))
    }

    /// This node.
    pub fn here(&self) -> NodeId {
        self.node
    }

    /// The shards of this node.
    pub fn shards(&self) -> usize {
        usize::from(self.shards)
    }
}

fn key_hash(key: &RoomKey) -> u64 {
    fnv1a(key.party.bytes().chain(std::iter::once(0xFF)).chain(key.room.bytes()))
}

/// splitmix64's finalizer: every bit of the input moves every bit of the score.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cluster, NodeSpec};

    #[test]
    fn homes_are_stable_and_spread() {
        let p = Placement::new(NodeId(0), 4);
        let key = RoomKey::new("main", "lobby");
        assert_eq!(p.home(&key), p.home(&key.clone()));
        let mut seen = [0usize; 4];
        for i in 0..400 {
            seen[p.home(&RoomKey::new("main", &format!("r{i}"))).index()] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
        // "ab"/"c" and "a"/"bc" are different rooms; the separator keeps their hashes apart.
        let one = Placement::new(NodeId(0), 1 << 15);
        assert_ne!(one.home(&RoomKey::new("ab", "c")), one.home(&RoomKey::new("a", "bc")));
    }

    fn members(ids: &[&str], here: &str) -> Members {
        let nodes = ids
            .iter()
            .enumerate()
            .map(|(i, id)| NodeSpec {
                id: (*id).into(),
                peer: format!("127.0.0.1:{}", 7000 + i).parse().unwrap(),
            })
            .collect();
        Members::from_config(&Cluster { nodes }, Some(here)).unwrap()
    }

    #[test]
    fn every_node_agrees_and_a_new_node_takes_only_its_share() {
        let keys: Vec<RoomKey> =
            (0..3000).map(|i| RoomKey::new("main", &format!("room-{i}"))).collect();
        let three: Vec<Placement> = ["a", "b", "c"]
            .iter()
            .map(|n| Placement::cluster(&members(&["a", "b", "c"], n), 2))
            .collect();
        let mut per_node = [0usize; 3];
        for key in &keys {
            let node = three[0].node_of(key);
            assert!(three.iter().all(|p| p.node_of(key) == node), "all nodes agree");
            per_node[usize::from(node.0)] += 1;
            // The home node names a real shard; the others leave it to the home node.
            for p in &three {
                let home = p.home(key);
                assert_eq!(home.shard == ANY_SHARD, p.here() != node);
            }
        }
        assert!(per_node.iter().all(|&n| n > 800), "{per_node:?}");
        // A fourth node takes about a quarter, and only from the others: no room moves
        // between the three old nodes.
        let four = Placement::cluster(&members(&["a", "b", "c", "d"], "a"), 2);
        let mut moved = 0;
        for key in &keys {
            let (before, after) = (three[0].node_of(key), four.node_of(key));
            if before != after {
                assert_eq!(after, NodeId(3), "a room moved between old nodes");
                moved += 1;
            }
        }
        assert!((500..1000).contains(&moved), "{moved} of 3000 moved");
        // The seed is the name, not the place: the same nodes listed in another order
        // place every room on the same named node.
        let reordered = Placement::cluster(&members(&["c", "a", "b"], "a"), 2);
        let m = members(&["c", "a", "b"], "a");
        for key in keys.iter().take(300) {
            let name = ["a", "b", "c"][usize::from(three[0].node_of(key).0)];
            assert_eq!(m.name(reordered.node_of(key)), name);
        }
    }
}
