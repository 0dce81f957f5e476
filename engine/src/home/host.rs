//! [`RoomHost`]: one loaded room on its home shard: its core (what party code sees), its
//! mailbox, and the flow control that keeps a busy room from hurting others. The mailbox
//! is a plain queue the shard pushes into without ever waiting; when it passes
//! [`ROOM_MAILBOX_PAUSE`] events (or bytes), the edges holding the room's sockets are told
//! to stop reading them, and to read again once the room has caught up. Past the hard cap
//! an event is refused with a defined answer instead of queued (see [`Refused`]).

use crate::api::RoomCore;
use crate::limits::{
    ROOM_MAILBOX_BYTES_MAX, ROOM_MAILBOX_MAX, ROOM_MAILBOX_PAUSE, ROOM_MAILBOX_PAUSE_BYTES,
    ROOM_MAILBOX_RESUME,
};
use crate::payload::Message;
use crate::route::{ConnId, ConnectRequest, HttpRequest, ShardAddr, ToEdge, ToHome};
use partyline_protocol::ws::CloseCode;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// Every trigger that can reach a room.
#[derive(Debug)]
pub(crate) enum RoomEvent {
    Connect(Box<ConnectRequest>),
    Message {
        conn: ConnId,
        message: Message,
    },
    Close {
        conn: ConnId,
        code: CloseCode,
        reason: String,
    },
    Request(Box<HttpRequest>),
    /// The room's alarm was scheduled for `time` (ms since the Unix epoch).
    Alarm {
        time: u64,
    },
}

impl RoomEvent {
    /// The event for a message to a room (`Alarm` messages schedule; they are no event).
    pub fn from_message(msg: ToHome) -> Option<RoomEvent> {
        Some(match msg {
            ToHome::Connect(c) => RoomEvent::Connect(c),
            ToHome::Message { conn, message, .. } => RoomEvent::Message { conn, message },
            ToHome::Close { conn, code, reason, .. } => RoomEvent::Close { conn, code, reason },
            ToHome::Request(r) => RoomEvent::Request(r),
            ToHome::Alarm { .. } => return None,
        })
    }

    /// Payload bytes the event holds while queued.
    fn bytes(&self) -> usize {
        match self {
            RoomEvent::Message { message, .. } => message.len(),
            RoomEvent::Request(r) => r.request.body.len(),
            _ => 0,
        }
    }
}

/// An event the mailbox could not take (the room is past its hard cap), to be answered:
/// a message's sender is closed with 1013, a connect or request gets 503.
#[derive(Debug)]
pub(crate) struct Refused(pub RoomEvent);

/// A loaded room.
pub(crate) struct RoomHost {
    pub core: Rc<RoomCore>,
    mailbox: RefCell<VecDeque<RoomEvent>>,
    mailbox_bytes: Cell<usize>,
    /// The room's task is handling an event.
    running: Cell<bool>,
    /// The edges in `paused_edges` were told to stop reading the room's sockets.
    paused: Cell<bool>,
    paused_edges: RefCell<Vec<ShardAddr>>,
    /// Unloaded: the task ends at its next look.
    closed: Cell<bool>,
    waker: RefCell<Option<Waker>>,
    /// Memory charged to the room against `rooms_memory_max`.
    pub charged: Cell<usize>,
    /// The room sits in its home's idle list.
    pub listed_idle: Cell<bool>,
}

impl RoomHost {
    pub fn new(core: Rc<RoomCore>) -> RoomHost {
        RoomHost {
            core,
            mailbox: RefCell::new(VecDeque::new()),
            mailbox_bytes: Cell::new(0),
            running: Cell::new(false),
            paused: Cell::new(false),
            paused_edges: RefCell::new(Vec::new()),
            closed: Cell::new(false),
            waker: RefCell::new(None),
            charged: Cell::new(0),
            listed_idle: Cell::new(false),
        }
    }

    /// Queues an event without waiting. A close is always taken (each connection sends
    /// one); other events are refused past the hard cap.
    pub fn push(&self, event: RoomEvent) -> Result<(), Refused> {
        let bytes = event.bytes();
        let len = self.mailbox.borrow().len();
        let over =
            len >= ROOM_MAILBOX_MAX || self.mailbox_bytes.get() + bytes > ROOM_MAILBOX_BYTES_MAX;
        if over && !matches!(event, RoomEvent::Close { .. }) {
            return Err(Refused(event));
        }
        self.mailbox.borrow_mut().push_back(event);
        self.mailbox_bytes.set(self.mailbox_bytes.get() + bytes);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
        Ok(())
    }

    /// The next event, waiting for one; `None` once the room is unloaded. Bounded: an
    /// unloaded room is woken, and a loaded one waits only for its own events.
    pub async fn next_event(&self) -> Option<RoomEvent> {
        poll_fn(|cx| {
            if self.closed.get() {
                return Poll::Ready(None);
            }
            match self.mailbox.borrow_mut().pop_front() {
                Some(event) => {
                    self.mailbox_bytes.set(self.mailbox_bytes.get() - event.bytes());
                    Poll::Ready(Some(event))
                }
                None => {
                    *self.waker.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    pub fn set_running(&self, running: bool) {
        self.running.set(running);
    }

    /// No connections and nothing queued or running: safe to unload.
    pub fn is_idle(&self) -> bool {
        !self.running.get()
            && self.mailbox.borrow().is_empty()
            && self.core.registry.borrow().is_empty()
    }

    /// Unloads the room: its task ends at its next look; queued events are dropped.
    pub fn close(&self) {
        self.closed.set(true);
        self.mailbox.borrow_mut().clear();
        self.mailbox_bytes.set(0);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Queued events.
    pub fn queued(&self) -> usize {
        self.mailbox.borrow().len()
    }

    /// Tells edges to stop or start reading the room's sockets, as the mailbox requires:
    /// pause past [`ROOM_MAILBOX_PAUSE`] (events or bytes), resume at or below
    /// [`ROOM_MAILBOX_RESUME`], and pause edges that gained connections while paused.
    /// Cheap when nothing changes: two comparisons.
    pub fn regulate(&self) {
        let (len, bytes) = (self.mailbox.borrow().len(), self.mailbox_bytes.get());
        if !self.paused.get() {
            if len >= ROOM_MAILBOX_PAUSE || bytes >= ROOM_MAILBOX_PAUSE_BYTES {
                self.paused.set(true);
                self.pause_new_edges();
            }
            return;
        }
        if len <= ROOM_MAILBOX_RESUME && bytes <= ROOM_MAILBOX_PAUSE_BYTES / 4 {
            self.paused.set(false);
            let uid = self.core.uid;
            for edge in self.paused_edges.borrow_mut().drain(..) {
                // Control deliveries are never refused.
                let _ = self.core.runtime.router.to_edge(edge, ToEdge::Resume { room: uid });
            }
        } else {
            self.pause_new_edges();
        }
    }

    fn pause_new_edges(&self) {
        let registry = self.core.registry.borrow();
        let mut paused = self.paused_edges.borrow_mut();
        for edge in registry.edges() {
            if !paused.contains(&edge) {
                paused.push(edge);
                let _ =
                    self.core.runtime.router.to_edge(edge, ToEdge::Pause { room: self.core.uid });
            }
        }
    }

    /// Whether edges are told to hold the room's sockets.
    pub fn is_paused(&self) -> bool {
        self.paused.get()
    }

    /// Waits while an edge holding the room's connections has a backlog of deliveries:
    /// a room sending faster than its sockets' shards write stops taking events, so its
    /// mailbox fills and its own sockets are paused. Bounded by those shards' progress.
    pub async fn wait_for_edges(&self) {
        loop {
            let congested = {
                let registry = self.core.registry.borrow();
                let router = &self.core.runtime.router;
                registry.edges().find(|edge| router.congested(*edge))
            };
            match congested {
                Some(edge) => self.core.runtime.router.drained(edge).await,
                None => return,
            }
        }
    }
}
