//! Routing between edges and homes: the ids that name shards, connections and rooms
//! ([`ids`]), the cluster's nodes ([`members`]), the one function that places a room on its home ([`placement`]), the plain
//! data that crosses shards ([`message`]), the channels that carry it ([`mesh`]), replies
//! awaited on a shard ([`replies`]), and the [`Router`] that ties them together.
//!
//! Depends only on the base modules (payload, limits, rt); edge and home depend on it and
//! register with the router as sinks, never the other way round.

pub(crate) mod ids;
pub(crate) mod members;
pub(crate) mod mesh;
pub(crate) mod message;
pub(crate) mod nodes;
pub(crate) mod placement;
pub(crate) mod replies;
pub(crate) mod router;
pub(crate) mod wire;

pub(crate) use ids::{ConnId, NodeId, RoomKey, RoomUid, ShardAddr};
pub(crate) use members::Members;
pub(crate) use message::{
    AutoResponse, ConnectOutcome, ConnectRequest, HttpRequest, ReplyTo, ToEdge, ToHome,
};
pub use nodes::LinkStats;
pub(crate) use nodes::NodeLinks;
pub(crate) use placement::{ANY_SHARD, Placement};
pub(crate) use router::{EdgeSink, HomeSink, Router, Wait};
