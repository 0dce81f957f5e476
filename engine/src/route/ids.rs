//! Identities that name things across shards, and (later) across processes: a shard is
//! named by its node and its index there, a connection by its edge shard and a sequence
//! number, a loaded room by its home shard and a sequence number. All are plain values
//! (`Copy` or `Arc` strings), so they can be hashed, compared and sent anywhere.

use std::sync::Arc;

/// A process of the cluster. One node today (`NodeId(0)`); issue 12 adds more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub(crate) struct NodeId(pub u16);

/// One shard of one node: where a socket's edge or a room's home is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ShardAddr {
    pub node: NodeId,
    pub shard: u16,
}

impl ShardAddr {
    /// Shard `shard` of this node.
    pub fn local(node: NodeId, shard: usize) -> ShardAddr {
        ShardAddr { node, shard: u16::try_from(shard).expect("at most 65,536 shards") }
    }

    /// The shard's index on its node.
    pub fn index(self) -> usize {
        usize::from(self.shard)
    }
}

impl std::fmt::Display for ShardAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.node.0, self.shard)
    }
}

/// A connection: the edge shard that owns its socket and a sequence number unique on that
/// shard (never reused, so a stale reference finds nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ConnId {
    pub edge: ShardAddr,
    pub seq: u64,
}

/// A room's address: party name and room id, exactly as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RoomKey {
    pub party: Arc<str>,
    pub room: Arc<str>,
}

impl RoomKey {
    /// The room `room` of party `party`, with the hex digits of percent-escapes
    /// upper-cased (`%c3%a9` and `%C3%A9` are one room, RFC 3986 §6.2.2.1); everything
    /// else exactly as given.
    pub fn new(party: &str, room: &str) -> RoomKey {
        use partyline_protocol::route::normalize_percent_case as normalize;
        RoomKey { party: normalize(party).into(), room: normalize(room).into() }
    }
}

/// One loading of a room: its home shard and a sequence number unique there. A room
/// unloaded and loaded again gets a new uid, so edges never confuse the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct RoomUid {
    pub home: ShardAddr,
    pub seq: u64,
}
