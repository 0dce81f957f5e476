//! [`Connection`]: a WebSocket as party code sees it, on the room's home shard, whichever
//! shard holds the socket. Sends become frames queued on the socket's edge shard.

use super::runtime::Runtime;
use crate::error::{Error, Result};
use crate::limits;
use crate::payload::Message;
use crate::route::{ConnId, ToEdge};
use bytes::Bytes;
use partyline_protocol::ws::{CloseCode, encode};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// A connection to a room. Cheap to clone.
#[derive(Clone)]
pub struct Connection(Rc<Inner>);

struct Inner {
    runtime: Rc<Runtime>,
    cid: ConnId,
    /// Shared with the room's id index.
    id: Rc<str>,
    uri: Box<str>,
    /// Tags beyond the id (most connections have none: no allocation).
    extra_tags: RefCell<Box<[String]>>,
    /// Boxed: most connections never set one, and every connection would carry its size.
    state: RefCell<Option<Box<Bytes>>>,
    open: Cell<bool>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.0.id)
            .field("open", &self.0.open.get())
            .finish()
    }
}

/// Encodes a message as one server frame (shared bytes, for any number of sockets).
pub(crate) fn frame_of(message: Message) -> Bytes {
    match message {
        Message::Text(s) => encode::text(&s),
        Message::Binary(b) => encode::binary(&b),
    }
}

impl Connection {
    pub(crate) fn new(runtime: Rc<Runtime>, cid: ConnId, id: String, uri: String) -> Self {
        Connection(Rc::new(Inner {
            runtime,
            cid,
            extra_tags: RefCell::new(Box::default()),
            id: id.into(),
            uri: uri.into_boxed_str(),
            state: RefCell::new(None),
            open: Cell::new(true),
        }))
    }

    pub(crate) fn cid(&self) -> ConnId {
        self.0.cid
    }

    /// The socket is gone: sends to it are refused from now on, and its state is let go
    /// (party code may hold clones of the handle). `on_close` still reads the state:
    /// [`Connection::mark_closing`] first, this after the hook.
    pub(crate) fn mark_closed(&self) {
        self.0.open.set(false);
        self.0.state.borrow_mut().take();
    }

    /// The socket is gone but `on_close` has yet to run: sends are refused, the state
    /// stays readable (as in PartyKit, where `onClose` reads the connection's state).
    pub(crate) fn mark_closing(&self) {
        self.0.open.set(false);
    }

    /// Sets the tags (the id is put first), enforcing PartyKit's rules.
    pub(crate) fn set_tags(&self, extra: Vec<String>) -> std::result::Result<(), String> {
        let count = extra.len() + 1;
        if count > limits::CONNECTION_TAG_COUNT_MAX {
            return Err(format!(
                "a connection can have at most {} tags, its id included; got {count}",
                limits::CONNECTION_TAG_COUNT_MAX
            ));
        }
        for tag in std::iter::once(&*self.0.id).chain(extra.iter().map(String::as_str)) {
            let chars = tag.chars().count();
            if chars == 0 || chars > limits::CONNECTION_TAG_CHARS_MAX {
                return Err(format!(
                    "a tag must be 1 to {} characters; got {chars}",
                    limits::CONNECTION_TAG_CHARS_MAX
                ));
            }
        }
        *self.0.extra_tags.borrow_mut() = extra.into_boxed_slice();
        Ok(())
    }

    /// The connection id: the client's `_pk`, or a generated UUID.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The id as the room's index holds it.
    pub(crate) fn shared_id(&self) -> Rc<str> {
        self.0.id.clone()
    }

    /// The full URL the client connected with.
    pub fn uri(&self) -> &str {
        &self.0.uri
    }

    /// Tags fixed at accept time; the id is the first.
    pub fn tags(&self) -> Vec<String> {
        std::iter::once(self.0.id.to_string())
            .chain(self.0.extra_tags.borrow().iter().cloned())
            .collect()
    }

    /// Whether `tag` is one of the connection's tags (its id included).
    pub fn has_tag(&self, tag: &str) -> bool {
        &*self.0.id == tag || self.0.extra_tags.borrow().iter().any(|t| t == tag)
    }

    /// Whether the connection is still open.
    pub fn is_open(&self) -> bool {
        self.0.open.get()
    }

    /// Sends a text or binary message. Fails if the connection is closed, or with an
    /// overload error (1013 to close with) if the socket's shard cannot keep up.
    pub fn send(&self, message: impl Into<Message>) -> Result<()> {
        if !self.is_open() {
            return Err(format!("connection {} is closed", self.0.id).into());
        }
        let frame = frame_of(message.into());
        self.0
            .runtime
            .router
            .to_edge(self.0.cid.edge, ToEdge::Frame { conn: self.0.cid, frame })
            .map_err(|o| {
                Error::overloaded(format!(
                    "connection {}: shard {} has too many deliveries waiting",
                    self.0.id, o.edge
                ))
            })
    }

    /// Sends a value as a JSON text message.
    pub fn send_json<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.send(serde_json::to_string(value)?)
    }

    /// Closes the connection with `code` (1000 if it may not be sent on the wire) and
    /// `reason`; the room's `on_close` runs once the socket has closed.
    pub fn close(&self, code: CloseCode, reason: &str) {
        let code = if code.is_allowed_on_wire() { code } else { CloseCode::NORMAL };
        let close = ToEdge::Close { conn: self.0.cid, code, reason: reason.to_owned() };
        // Control deliveries are never refused.
        let _ = self.0.runtime.router.to_edge(self.0.cid.edge, close);
    }

    /// The tags beyond the id.
    pub(crate) fn extra_tags(&self) -> Vec<String> {
        self.0.extra_tags.borrow().to_vec()
    }

    /// Puts back a state saved before the room slept (it passed the size check then).
    pub(crate) fn restore_state(&self, state: Option<Bytes>) {
        *self.0.state.borrow_mut() = state.map(Box::new);
    }

    /// The connection's state, as last set.
    pub fn state(&self) -> Option<Bytes> {
        self.0.state.borrow().as_deref().cloned()
    }

    /// Sets the connection's state: at most the configured size (16 KiB by default).
    pub fn set_state(&self, state: impl Into<Bytes>) -> Result<()> {
        let state = state.into();
        let max = self.0.runtime.limits().connection_state_size_max;
        if state.len() > max {
            return Err(format!("connection state of {} bytes exceeds {max}", state.len()).into());
        }
        *self.0.state.borrow_mut() = Some(Box::new(state));
        Ok(())
    }

    /// The state as JSON, if it was set.
    pub fn state_json<T: serde::de::DeserializeOwned>(&self) -> Result<Option<T>> {
        match self.state() {
            Some(b) => Ok(Some(serde_json::from_slice(&b)?)),
            None => Ok(None),
        }
    }

    /// Sets the state to a value serialized as JSON.
    pub fn set_state_json<T: serde::Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        self.set_state(serde_json::to_vec(value)?)
    }
}
