//! The programming model: a party is a type implementing [`Party`], one hook per phase of
//! a room's life, each with a default. The phase order:
//!
//! ```text
//!  edge shard                              home shard (one room = one instance)
//!  ──────────                              ────────────────────────────────────
//!  on_before_connect(req, lobby) ──ok──►   on_start(room)        (before any event)
//!        │ Gate::Respond / Err (401)       connection_tags(conn, ctx)
//!        ▼                                 on_connect(conn, ctx)  ── then the 101
//!    answered at the edge                  on_message(msg, conn)  (per message, in order)
//!                                          on_error(conn, error)  (on_message failed)
//!                                          on_close(conn, code, reason)
//!  on_before_request(req, lobby) ──ok──►   on_request(req) -> Response
//!                                          on_alarm()             (the room's alarm)
//! ```
//!
//! A room handles one event at a time: every hook takes `&mut self` and the next event
//! waits until it returns. That is the simplest rule that is always safe, and it is what
//! PartyKit's single-threaded rooms give. Party code runs on the room's home shard only and
//! need not be `Send`. A hook that runs longer than `hook_timeout_ms` is cancelled.

#![allow(async_fn_in_trait)] // Hooks are deliberately !Send: a room never leaves its shard.

use super::{Connection, Lobby, Room};
use crate::error::{Error, Result};
use crate::payload::{Message, Request};
use partyline_protocol::http::Response;
use partyline_protocol::ws::CloseCode;

/// What a connection's `on_connect` and `connection_tags` learn about it.
#[derive(Debug, Clone)]
pub struct ConnectContext {
    /// The upgrade request, as `on_before_connect` left it.
    pub request: Request,
}

/// What an edge gate (`on_before_connect`, `on_before_request`) decides.
#[derive(Debug)]
pub enum Gate {
    /// Go on with this (possibly rewritten) request.
    Continue(Request),
    /// Answer with this response instead; the room never sees the request.
    Respond(Response),
}

/// A PartyKit party: the code of every room of one party name.
///
/// Every hook has a default, so a party implements only what it needs. Returning `Err`
/// from a hook is contained to the room: a failed `on_connect` closes that connection with
/// 1011 and the message, a failed `on_request` answers the error's status (500 unless it
/// is a client error such as [`Error::client`]), a failed `on_message` is logged and
/// passed to `on_error`. A panic in a hook, or a hook running past `hook_timeout_ms`,
/// closes the affected connection with 1011 (or answers 500 / 504), drops the instance,
/// and the next event builds a new one with `on_start`; the shard and every other room go
/// on.
pub trait Party: Sized + 'static {
    /// Whether the party's rooms hibernate (PartyKit's `options.hibernate`): a room whose
    /// hooks have had nothing to do for `hibernate_after_ms` drops its instance and keeps
    /// its connections (id, uri, tags, state) in the store instead of in memory; the next
    /// event builds a new instance with `on_start`, then runs. Sockets stay open and
    /// clients notice nothing; fields of the instance are gone, as on PartyKit.
    const HIBERNATE: bool = false;

    /// Builds the room's instance; runs before any other event reaches the room (again
    /// after the room woke from hibernation).
    async fn on_start(room: Room) -> Result<Self>;

    /// A connection is being accepted; what it sends here arrives before anything else.
    async fn on_connect(&mut self, conn: &Connection, ctx: &ConnectContext) -> Result<()> {
        let _ = (conn, ctx);
        Ok(())
    }

    /// A message from a connection.
    async fn on_message(&mut self, message: Message, sender: &Connection) -> Result<()> {
        let _ = (message, sender);
        Ok(())
    }

    /// Most messages one [`Party::on_messages`] call takes (at most
    /// [`crate::limits::ROOM_MESSAGE_BATCH_MAX`]). 1, the default, runs `on_message` once
    /// per message. Above 1, messages that queued while the room was busy (already waiting,
    /// in arrival order, from any connections) come in one `on_messages` call: for a party
    /// whose per-message cost is mostly fixed, such as a durable write per message, which
    /// a batch pays once. A batch never waits for messages to arrive.
    const MESSAGE_BATCH_MAX: usize = 1;

    /// Several messages in arrival order, when [`Party::MESSAGE_BATCH_MAX`] is above 1 and
    /// more than one was waiting (a lone message still comes to `on_message`). The default
    /// runs `on_message` for each and passes a failure to `on_error`, as one at a time
    /// would. An `Err` is logged and passed to `on_error` once for each sender in the batch;
    /// a panic or a timeout closes every sender's connection with 1011.
    async fn on_messages(&mut self, batch: Vec<(Message, Connection)>) -> Result<()> {
        for (message, sender) in batch {
            if let Err(e) = self.on_message(message, &sender).await {
                let _ = self.on_error(&sender, &e).await;
            }
        }
        Ok(())
    }

    /// A connection closed (by the client, the server, or an error); `code` is 1005 when
    /// the client sent none and 1006 when the socket dropped without a close frame. The
    /// connection's state and tags are still readable here (as in PartyKit); sends to it
    /// are refused.
    async fn on_close(&mut self, conn: &Connection, code: CloseCode, reason: &str) -> Result<()> {
        let _ = (conn, code, reason);
        Ok(())
    }

    /// `on_message` failed for this connection; `error` says how and whose fault it was.
    async fn on_error(&mut self, conn: &Connection, error: &Error) -> Result<()> {
        let _ = (conn, error);
        Ok(())
    }

    /// An HTTP request to the room. Without a handler: 500, as PartyKit answers.
    async fn on_request(&mut self, request: Request) -> Result<Response> {
        let _ = request;
        Ok(Response::text(500, "this party does not handle HTTP requests\n"))
    }

    /// The room's alarm fired (`room.storage().set_alarm`); the room is loaded for it
    /// (and woken, if it slept). Once it returns `Ok` the alarm is cleared, unless the
    /// handler set (or deleted) the alarm itself: its choice stands. Inside it,
    /// `get_alarm()` is `None` until the handler sets a new alarm (as in Durable Objects),
    /// so a handler that wants to run again sets one. An `Err`, a panic or a timeout is
    /// retried after 2, 4, 8, 16, 32 and 64 s, then dropped (logged).
    async fn on_alarm(&mut self) -> Result<()> {
        Ok(())
    }

    /// Tags for a new connection, fixed for its life; the id is always added first. At
    /// most 10 in all, each 1 to 256 characters, or the connection is closed with 1011.
    fn connection_tags(&mut self, conn: &Connection, ctx: &ConnectContext) -> Result<Vec<String>> {
        let _ = (conn, ctx);
        Ok(Vec::new())
    }

    /// Bytes of memory the instance holds beyond its own size (histories, caches): what
    /// the room is charged against `rooms_memory_max`, asked after every event. Rooms that
    /// keep little in memory can leave the default.
    fn memory_bytes(&self) -> usize {
        0
    }

    /// Runs on the edge shard before a WebSocket reaches the room, without access to room
    /// state (the lobby gives `env` and `fetch` to rooms): rewrite the request, or answer
    /// instead. An `Err` becomes 401, or the status of a client error.
    async fn on_before_connect(request: Request, lobby: &Lobby) -> Result<Gate> {
        let _ = lobby;
        Ok(Gate::Continue(request))
    }

    /// Runs on the edge shard before an HTTP request reaches the room. An `Err` becomes
    /// 401, or the status of a client error.
    async fn on_before_request(request: Request, lobby: &Lobby) -> Result<Gate> {
        let _ = lobby;
        Ok(Gate::Continue(request))
    }
}
