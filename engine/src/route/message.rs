//! Everything that crosses shards: the two closed message enums. Every trigger that can
//! reach a room is a [`ToHome`] variant; every effect a room has on a socket is a
//! [`ToEdge`] variant. Both are plain data (ids, strings, bytes, [`Message`], [`Request`],
//! [`Response`]): no handles, no channels, nothing bound to a shard, so a node link can
//! encode them as they are.

use super::ids::{ConnId, NodeId, RoomKey, RoomUid, ShardAddr};
use crate::payload::{Message, Request};
use bytes::Bytes;
use partyline_protocol::http::Response;
use partyline_protocol::ws::CloseCode;
use std::sync::Arc;

/// Edge (or another room, or the alarm poller) to a room's home.
#[derive(Debug)]
pub(crate) enum ToHome {
    /// A socket asks to join the room (`on_connect` runs before its 101).
    Connect(Box<ConnectRequest>),
    Message {
        room: RoomKey,
        conn: ConnId,
        message: Message,
    },
    /// The socket closed: `code` is 1005 when the client sent none, 1006 when it dropped.
    Close {
        room: RoomKey,
        conn: ConnId,
        code: CloseCode,
        reason: String,
    },
    Request(Box<HttpRequest>),
    /// The room's alarm is due at `time` (ms since the Unix epoch): the home schedules it.
    Alarm {
        room: RoomKey,
        time: u64,
    },
}

impl ToHome {
    pub fn room(&self) -> &RoomKey {
        match self {
            ToHome::Connect(c) => &c.room,
            ToHome::Message { room, .. }
            | ToHome::Close { room, .. }
            | ToHome::Alarm { room, .. } => room,
            ToHome::Request(r) => &r.room,
        }
    }
}

#[derive(Debug)]
pub(crate) struct ConnectRequest {
    pub room: RoomKey,
    pub conn: ConnId,
    /// The connection id: the client's `_pk`, or a generated UUID.
    pub id: String,
    /// The upgrade request as the edge gate left it.
    pub request: Request,
}

#[derive(Debug)]
pub(crate) struct HttpRequest {
    pub room: RoomKey,
    pub request: Request,
    pub reply: ReplyTo,
}

/// Where a reply goes: the shard waiting for it and its token there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ReplyTo {
    pub to: ShardAddr,
    pub token: u64,
}

/// How a connect attempt ended.
#[derive(Debug)]
pub(crate) enum ConnectOutcome {
    /// Write the 101; the connection is open in the room.
    Accepted,
    /// Write the 101, then close with this code and reason (`on_connect` or the tags
    /// failed, or the room could not start).
    Failed { code: CloseCode, reason: String },
    /// Answer this instead of upgrading (room full, room busy, too many rooms: 503).
    Refused(Box<Response>),
}

/// A room's auto-response (Durable Objects' `setWebSocketAutoResponse`): a text message
/// equal to `request` is answered with `response` by the socket's edge, without reaching
/// (or waking) the room.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AutoResponse {
    pub request: Bytes,
    pub response: Bytes,
    /// `response` as an encoded text frame, written as it is to every socket that asks.
    pub frame: Bytes,
}

/// A room's home to an edge.
#[derive(Debug)]
pub(crate) enum ToEdge {
    /// The outcome of a `Connect`; `room` names the room again so an edge whose socket
    /// is gone can tell the room to forget it.
    Connected {
        conn: ConnId,
        room: RoomKey,
        uid: RoomUid,
        outcome: ConnectOutcome,
        /// The room's auto-response as of this answer (an edge answers it for the room).
        auto_response: Option<Arc<AutoResponse>>,
    },
    /// An encoded frame for one socket.
    Frame {
        conn: ConnId,
        frame: Bytes,
    },
    /// One encoded frame for every socket of the room on the edge, but those in `without`.
    Broadcast {
        room: RoomUid,
        frame: Bytes,
        without: Arc<[ConnId]>,
    },
    Close {
        conn: ConnId,
        code: CloseCode,
        reason: String,
    },
    /// Close every socket of the room on the edge (the room lost its sleeping state).
    CloseRoom {
        room: RoomUid,
        code: CloseCode,
        reason: String,
    },
    /// The room's auto-response changed: every socket of the room on the edge uses this.
    AutoResponse {
        room: RoomUid,
        pair: Option<Arc<AutoResponse>>,
    },
    /// The room took `events` messages (`bytes` of payload) from this edge: its window
    /// here has that much more room.
    Credit {
        room: RoomUid,
        events: u32,
        bytes: usize,
    },
    /// The answer to a request or fetch waiting on the edge (or on a room) under `token`.
    Response {
        token: u64,
        response: Response,
    },
}

impl ToEdge {
    /// Frames and broadcasts: what party code sends, the only deliveries an overloaded
    /// outbox refuses. The rest is bounded by the sockets and requests waiting for it.
    pub fn is_data(&self) -> bool {
        matches!(self, ToEdge::Frame { .. } | ToEdge::Broadcast { .. })
    }
}

/// A delivery for the edges of another node: one message for one or several of its shards
/// (a broadcast crosses to each node once and is fanned out there).
#[derive(Debug)]
pub(crate) struct ToNode {
    pub node: NodeId,
    pub shards: Shards,
    pub msg: ToEdge,
}

/// The shards of one node a [`ToNode`] is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shards {
    One(u16),
    Many(Box<[u16]>),
}

impl Shards {
    pub fn as_slice(&self) -> &[u16] {
        match self {
            Shards::One(s) => std::slice::from_ref(s),
            Shards::Many(s) => s,
        }
    }
}

impl ToNode {
    pub fn is_data(&self) -> bool {
        self.msg.is_data()
    }
}
