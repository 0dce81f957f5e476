//! The programming model: a party is a type implementing [`Party`], one hook per phase of
//! a room's life, each with a default. The phase order:
//!
//! ```text
//!  edge shard                         home shard (one room = one instance)
//!  ──────────                         ────────────────────────────────────
//!  on_before_connect(req) ──ok──►     on_start(room)        (once, before any event)
//!        │ Response / Err(401)        connection_tags(conn, ctx)
//!        ▼                            on_connect(conn, ctx)  ── then the 101 is written
//!    answered at the edge             on_message(msg, conn)  (per message, in order)
//!                                     on_close(conn, code, reason)
//!  on_before_request(req) ──ok──►     on_request(req) -> Response
//!                                     on_alarm()             (with storage, issue 5)
//! ```
//!
//! A room handles one event at a time: every hook takes `&mut self` and the next event
//! waits until it returns. That is the simplest rule that is always safe, and it is what
//! PartyKit's single-threaded rooms give. Party code runs on the room's home shard only and
//! need not be `Send`.

#![allow(async_fn_in_trait)] // Hooks are deliberately !Send: a room never leaves its shard.

use crate::{Connection, Room};
use bytes::Bytes;
use partyline_protocol::http::Response;
use std::sync::Arc;

/// The error party hooks return. Any error type converts with `?`, and so do `&str` and
/// `String`.
pub type Error = Box<dyn std::error::Error>;

/// The result party hooks return.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A WebSocket message from or to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(Arc<str>),
    Binary(Bytes),
}

impl Message {
    /// The text of a text message; an error for a binary one.
    pub fn text(&self) -> Result<&str> {
        match self {
            Message::Text(s) => Ok(s),
            Message::Binary(_) => Err("expected a text message, got binary".into()),
        }
    }

    /// The payload bytes, text or binary.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }
}

impl From<&Message> for Message {
    fn from(m: &Message) -> Self {
        m.clone()
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Message::Text(s.into())
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::Text(s.into())
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Self {
        Message::Binary(b)
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Self {
        Message::Binary(b.into())
    }
}

/// An HTTP request as party code sees it: the upgrade request of a connection, or a
/// request for `on_request`. The target is the full original one (sub path and query
/// included), percent-encoding untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Adds a header, e.g. from `on_before_connect` to tell the room who the user is.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The path part of the target.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The first value of query parameter `name`, percent-decoded (`+` is a space).
    pub fn query_param(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        let query = self.target.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (partyline_protocol::route::percent_decode(k) == name)
                .then(|| partyline_protocol::route::percent_decode(v))
        })
    }

    /// The body as text, if it is UTF-8.
    pub fn text(&self) -> Result<&str> {
        Ok(std::str::from_utf8(&self.body)?)
    }
}

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
/// 1011 and the message, a failed `on_request` answers 500, a failed `on_message` is
/// logged and reported to `on_error`. A panic in a hook closes the affected connection
/// with 1011 (or answers 500), drops the instance, and the next event builds a new one
/// with `on_start`; the shard and every other room go on.
pub trait Party: Sized + 'static {
    /// Builds the room's instance; runs once before any other event reaches the room.
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

    /// A connection closed (by the client, the server, or an error); `code` is 1005 when
    /// the client sent none and 1006 when the socket dropped without a close frame.
    async fn on_close(&mut self, conn: &Connection, code: u16, reason: &str) -> Result<()> {
        let _ = (conn, code, reason);
        Ok(())
    }

    /// A connection had a protocol error, or a hook failed while handling it.
    async fn on_error(&mut self, conn: &Connection, error: &str) -> Result<()> {
        let _ = (conn, error);
        Ok(())
    }

    /// An HTTP request to the room. Without a handler: 500, as PartyKit answers.
    async fn on_request(&mut self, request: Request) -> Result<Response> {
        let _ = request;
        Ok(Response::text(500, "this party does not handle HTTP requests\n"))
    }

    /// The room's alarm fired (issue 5 adds storage and `set_alarm`).
    async fn on_alarm(&mut self) -> Result<()> {
        Ok(())
    }

    /// Tags for a new connection, fixed for its life; the id is always added first. At
    /// most 10 in all, each 1 to 256 characters, or the connection is closed with 1011.
    fn connection_tags(&mut self, conn: &Connection, ctx: &ConnectContext) -> Result<Vec<String>> {
        let _ = (conn, ctx);
        Ok(Vec::new())
    }

    /// Runs on the edge shard before a WebSocket reaches the room, without access to room
    /// state: rewrite the request, or answer instead. An `Err` becomes 401.
    async fn on_before_connect(request: Request) -> Result<Gate> {
        Ok(Gate::Continue(request))
    }

    /// Runs on the edge shard before an HTTP request reaches the room. An `Err` becomes
    /// 401.
    async fn on_before_request(request: Request) -> Result<Gate> {
        Ok(Gate::Continue(request))
    }
}
