//! [`Members`]: the nodes of the cluster as this process knows them, from the `[cluster]`
//! list every node shares. A node's number ([`NodeId`]) is its place in that list, so the
//! list's order matters as much as its contents; [`Members::hash`] covers both, and two
//! nodes whose hashes differ refuse to link (they would disagree about rooms' homes).

use super::ids::NodeId;
use crate::config::Cluster;
use std::net::SocketAddr;

/// At most this many nodes in a cluster (each is one link from every other).
pub const NODES_MAX: usize = 1024;

/// A node's name: at most this many bytes of `[A-Za-z0-9_.-]`.
pub const NODE_ID_BYTES_MAX: usize = 64;

/// The validated member list, and which member this process is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Members {
    names: Vec<String>,
    peers: Vec<Option<SocketAddr>>,
    here: NodeId,
    hash: u64,
}

impl Members {
    /// A process on its own: one node, no links.
    pub fn single() -> Members {
        Members::build(vec!["local".into()], vec![None], NodeId(0))
    }

    /// The list of `[cluster]` and this process's node (`--node`), checked: names valid
    /// and distinct, peers distinct, `node` one of them.
    pub fn from_config(cluster: &Cluster, node: Option<&str>) -> Result<Members, String> {
        if cluster.nodes.is_empty() {
            return match node {
                None => Ok(Members::single()),
                Some(n) => {
                    Err(format!("node {n:?} was given, but the config has no [cluster] nodes list"))
                }
            };
        }
        if cluster.nodes.len() > NODES_MAX {
            return Err(format!(
                "[cluster] lists {} nodes; at most {NODES_MAX}",
                cluster.nodes.len()
            ));
        }
        for (i, n) in cluster.nodes.iter().enumerate() {
            let valid = !n.id.is_empty()
                && n.id.len() <= NODE_ID_BYTES_MAX
                && n.id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if !valid {
                return Err(format!(
                    "[cluster] node id {:?}: 1 to {NODE_ID_BYTES_MAX} characters of A-Z a-z 0-9 _ . -",
                    n.id
                ));
            }
            if let Some(other) = cluster.nodes[..i].iter().find(|o| o.id == n.id) {
                return Err(format!("[cluster] lists node {:?} twice", other.id));
            }
            if let Some(other) = cluster.nodes[..i].iter().find(|o| o.peer == n.peer) {
                return Err(format!(
                    "[cluster] nodes {:?} and {:?} have the same peer address {}",
                    other.id, n.id, n.peer
                ));
            }
        }
        let Some(node) = node else {
            return Err(
                "the config lists [cluster] nodes: say which one this is (--node ID)".into()
            );
        };
        let Some(here) = cluster.nodes.iter().position(|n| n.id == node) else {
            let ids: Vec<&str> = cluster.nodes.iter().map(|n| n.id.as_str()).collect();
            return Err(format!("node {node:?} is not in [cluster] nodes {ids:?}"));
        };
        Ok(Members::build(
            cluster.nodes.iter().map(|n| n.id.clone()).collect(),
            cluster.nodes.iter().map(|n| Some(n.peer)).collect(),
            NodeId(u16::try_from(here).expect("at most NODES_MAX nodes")),
        ))
    }

    fn build(names: Vec<String>, peers: Vec<Option<SocketAddr>>, here: NodeId) -> Members {
        let mut bytes = b"partyline-members-v1".to_vec();
        for (name, peer) in names.iter().zip(&peers) {
            bytes.extend_from_slice(name.as_bytes());
            bytes.push(0xFF);
            bytes.extend_from_slice(peer.map(|p| p.to_string()).unwrap_or_default().as_bytes());
            bytes.push(0xFE);
        }
        let hash = fnv1a(bytes.iter().copied());
        Members { names, peers, here, hash }
    }

    /// This process's node.
    pub fn here(&self) -> NodeId {
        self.here
    }

    /// How many nodes the cluster has.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Every node, this one included, in list order.
    pub fn all(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.names.len()).map(|i| NodeId(u16::try_from(i).expect("at most NODES_MAX nodes")))
    }

    /// The other nodes.
    pub fn others(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.all().filter(|n| *n != self.here)
    }

    /// A node's name as the list gives it.
    pub fn name(&self, node: NodeId) -> &str {
        self.names.get(usize::from(node.0)).map_or("?", String::as_str)
    }

    /// Where a node's links listen (`None` for a process on its own).
    pub fn peer(&self, node: NodeId) -> Option<SocketAddr> {
        self.peers.get(usize::from(node.0)).copied().flatten()
    }

    /// A hash of the whole list, order included: nodes link only when theirs are equal.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Each node's rendezvous seed (a hash of its name: a node keeps its rooms when other
    /// nodes are added or removed, whatever its place in the list).
    pub fn seeds(&self) -> Vec<u64> {
        self.names.iter().map(|n| fnv1a(n.bytes())).collect()
    }
}

/// FNV-1a, 64 bit: stable across processes, versions and machines (placement and the
/// member hash depend on it).
pub(crate) fn fnv1a(bytes: impl Iterator<Item = u8>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeSpec;

    fn cluster(nodes: &[(&str, &str)]) -> Cluster {
        Cluster {
            nodes: nodes
                .iter()
                .map(|(id, peer)| NodeSpec { id: (*id).into(), peer: peer.parse().unwrap() })
                .collect(),
        }
    }

    #[test]
    fn a_member_list_is_checked_and_hashed_with_its_order() {
        let abc = cluster(&[("a", "127.0.0.1:7001"), ("b", "127.0.0.1:7002")]);
        let m = Members::from_config(&abc, Some("b")).unwrap();
        assert_eq!((m.here(), m.len(), m.name(NodeId(0))), (NodeId(1), 2, "a"));
        assert_eq!(m.others().collect::<Vec<_>>(), vec![NodeId(0)]);
        assert_eq!(m.hash(), Members::from_config(&abc, Some("a")).unwrap().hash());
        let swapped = cluster(&[("b", "127.0.0.1:7002"), ("a", "127.0.0.1:7001")]);
        assert_ne!(m.hash(), Members::from_config(&swapped, Some("a")).unwrap().hash());
        let moved = cluster(&[("a", "127.0.0.1:7001"), ("b", "127.0.0.1:7003")]);
        assert_ne!(m.hash(), Members::from_config(&moved, Some("a")).unwrap().hash());

        let err = |c: &Cluster, n: Option<&str>| Members::from_config(c, n).unwrap_err();
        assert!(err(&abc, None).contains("--node"));
        assert!(err(&abc, Some("c")).contains("not in"));
        assert!(err(&Cluster::default(), Some("a")).contains("no [cluster]"));
        assert!(
            err(&cluster(&[("a", "127.0.0.1:1"), ("a", "127.0.0.1:2")]), Some("a"))
                .contains("twice")
        );
        assert!(
            err(&cluster(&[("a", "127.0.0.1:1"), ("b", "127.0.0.1:1")]), Some("a"))
                .contains("same peer")
        );
        assert!(err(&cluster(&[("a b", "127.0.0.1:1")]), Some("a b")).contains("characters"));
        assert_eq!(Members::from_config(&Cluster::default(), None).unwrap(), Members::single());
    }
}
