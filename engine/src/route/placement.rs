//! Placement: which shard is a room's home. One function, [`Placement::home`], decides it
//! for every caller (edges, alarms, room-to-room fetch), so there is exactly one place to
//! change when rooms spread over several nodes (issue 12: rendezvous hashing over the
//! member list).

use super::ids::{NodeId, RoomKey, ShardAddr};

/// How rooms map to shards: today, the shards of one node.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placement {
    node: NodeId,
    shards: u16,
}

impl Placement {
    pub fn new(node: NodeId, shards: usize) -> Placement {
        assert!(shards > 0, "a node has at least one shard");
        Placement { node, shards: u16::try_from(shards).expect("at most 65,536 shards") }
    }

    /// The room's home: a stable hash (FNV-1a, 64 bit) of party and room, so the same room
    /// lands on the same shard in every process with the same shard count.
    pub fn home(&self, key: &RoomKey) -> ShardAddr {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let bytes = key.party.bytes().chain(std::iter::once(0xFF)).chain(key.room.bytes());
        for b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let shard = u16::try_from(h % u64::from(self.shards)).expect("below the shard count");
        ShardAddr { node: self.node, shard }
    }

    /// The shards of this node.
    pub fn shards(&self) -> usize {
        usize::from(self.shards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
