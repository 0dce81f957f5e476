//! Everything that crosses shards: the two closed message enums and the channels that carry
//! them. Every trigger that can reach a room, and every effect a room has on a socket, is a
//! variant here.
//!
//! Two classes of channel, one per ordered pair of shards each, keep the mesh free of
//! deadlock: [`ToHome`] (edge to home: connects, messages, closes, requests) may wait when a
//! room's mailbox is full, which pushes back on the sockets that feed it; [`ToEdge`] (home
//! to edge: frames, broadcasts, replies) is handled without ever waiting, so a home shard
//! blocked on a full channel always gets unblocked by an edge that keeps draining.

use crate::party::{Message, Request};
use bytes::Bytes;
use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use partyline_protocol::http::Response;
use std::sync::Arc;

/// A connection's identity across shards: the edge shard that owns its socket and a
/// sequence number unique on that shard (never reused, so a stale reference finds nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ConnRef {
    pub edge: usize,
    pub seq: u64,
}

/// A room's address: party name and room id, exactly as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RoomKey {
    pub party: Arc<str>,
    pub room: Arc<str>,
}

impl RoomKey {
    /// The room's home shard: a stable hash (FNV-1a, 64 bit) of party and room, so the same
    /// room lands on the same shard in every process with the same shard count.
    pub fn home(&self, shards: usize) -> usize {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let bytes = self.party.bytes().chain(std::iter::once(0xFF)).chain(self.room.bytes());
        for b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        usize::try_from(h % shards as u64).expect("a remainder below a usize fits in usize")
    }
}

/// Where a reply goes: the shard waiting for it and its token there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplyTo {
    pub shard: usize,
    pub token: u64,
}

/// Edge (or another room) to home.
#[derive(Debug)]
pub(crate) enum ToHome {
    Connect(Box<ConnectRequest>),
    Message {
        room: RoomKey,
        conn: ConnRef,
        message: Message,
    },
    Close {
        room: RoomKey,
        conn: ConnRef,
        code: u16,
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
    pub conn: ConnRef,
    pub id: String,
    pub request: Request,
}

#[derive(Debug)]
pub(crate) struct HttpRequest {
    pub room: RoomKey,
    pub request: Request,
    pub reply: ReplyTo,
}

/// How a connect attempt ended.
#[derive(Debug)]
pub(crate) enum ConnectOutcome {
    /// Write the 101; the connection is open in the room.
    Accepted,
    /// Write the 101, then close with 1011 and this reason (`on_connect` or tags failed).
    Failed { reason: String },
    /// Answer this instead of upgrading (room full: 503).
    Refused(Box<Response>),
}

/// Home to edge.
#[derive(Debug)]
pub(crate) enum ToEdge {
    Connected { conn: ConnRef, room_uid: u64, outcome: ConnectOutcome },
    Frame { conn: ConnRef, frame: Bytes },
    Broadcast { room_uid: u64, frame: Bytes, without: Arc<[ConnRef]> },
    Close { conn: ConnRef, code: u16, reason: String },
    Response { token: u64, response: Response },
}

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
