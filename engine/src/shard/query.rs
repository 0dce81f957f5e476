//! Questions other threads (the admin listener) ask a shard about what it holds, and
//! their answers. A shard answers at its next sweep (at most 200 ms later), at most
//! [`QUERIES_PER_SWEEP_MAX`] a sweep, from a bounded queue ([`QUERIES_MAX`]): a burst of
//! admin requests can never hold a shard up, and a full queue is answered 503 by the
//! asker.

pub(crate) use crate::home::{Connections, LoadedRoom};
use crate::route::{ConnId, RoomKey};
use crossbeam_channel::Sender;

/// Questions waiting for one shard, past which the asker is refused at once.
pub(crate) const QUERIES_MAX: usize = 16;

/// Questions a shard answers per sweep.
pub(crate) const QUERIES_PER_SWEEP_MAX: usize = 4;

/// A question for a shard.
#[derive(Debug)]
pub(crate) enum Query {
    /// The rooms of `party` loaded on this shard (only `room`, if given).
    Rooms { party: String, room: Option<String>, reply: Sender<Vec<LoadedRoom>> },
    /// A page of one room's connections (after socket `after`, at most `limit`).
    Connections { key: RoomKey, after: Option<ConnId>, limit: usize, reply: Sender<Connections> },
}
