//! [`RoomHost`]: one loaded room on its home shard: its core (what party code sees), its
//! mailbox, and the flow control that keeps a busy room from hurting others. The mailbox
//! is a plain queue the shard pushes into without ever waiting. Messages are bounded by
//! each edge's window for the room ([`ROOM_WINDOW_EVENTS`]): the room hands credit back as
//! it takes them ([`ROOM_CREDIT_BATCH_EVENTS`] at a time), and an edge with no credit left
//! stops reading the room's sockets. Past the mailbox's hard cap an event is refused with
//! a defined answer instead of queued (see [`Refused`]).

use crate::api::RoomCore;
#[cfg(doc)]
use crate::limits::ROOM_WINDOW_EVENTS;
use crate::limits::{
    ROOM_CREDIT_BATCH_BYTES, ROOM_CREDIT_BATCH_EVENTS, ROOM_MAILBOX_BYTES_MAX, ROOM_MAILBOX_MAX,
};
use crate::payload::Message;
use crate::route::{ConnId, ConnectRequest, HttpRequest, NodeId, ShardAddr, ToEdge, ToHome};
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
    /// Messages taken together from the head of the mailbox, for a party that batches
    /// (`Party::MESSAGE_BATCH_MAX`); never queued itself.
    Messages(Vec<(ConnId, Message)>),
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
    /// The room's hooks had nothing to do for `hibernate_after_ms`: it goes to sleep.
    Sleep,
    /// The link to `node` was lost: the room's connections on its edges are closed (1006).
    NodeLost {
        node: NodeId,
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
            RoomEvent::Messages(batch) => batch.iter().map(|(_, m)| m.len()).sum(),
            RoomEvent::Request(r) => r.request.body.len(),
            _ => 0,
        }
    }
}

/// An event the mailbox could not take (the room is past its hard cap), to be answered:
/// a connect or request gets 503, an alarm is tried again later.
#[derive(Debug)]
pub(crate) struct Refused(pub RoomEvent);

/// A loaded room.
pub(crate) struct RoomHost {
    pub core: Rc<RoomCore>,
    mailbox: RefCell<VecDeque<RoomEvent>>,
    mailbox_bytes: Cell<usize>,
    /// The room's task is handling an event.
    running: Cell<bool>,
    /// Credit owed to each edge for messages taken from the mailbox: (edge, messages,
    /// bytes), returned in batches.
    owed: RefCell<Vec<(ShardAddr, u32, usize)>>,
    /// Unloaded: the task ends at its next look.
    closed: Cell<bool>,
    waker: RefCell<Option<Waker>>,
    /// Memory charged to the room against `rooms_memory_max`.
    pub charged: Cell<usize>,
    /// Its party, by index ([`super::SpawnRoom::party`]), and whether it hibernates
    /// (`Party::HIBERNATE`).
    pub party: usize,
    pub hibernates: bool,
    /// Its open connections as last counted in its party's counts.
    pub connections: Cell<usize>,
    /// It sleeps: no instance, its connections archived.
    pub asleep: Cell<bool>,
    /// The room sits in its home's idle list.
    pub listed_idle: Cell<bool>,
}

impl RoomHost {
    pub fn new(core: Rc<RoomCore>, party: usize, hibernates: bool) -> RoomHost {
        RoomHost {
            core,
            mailbox: RefCell::new(VecDeque::new()),
            mailbox_bytes: Cell::new(0),
            running: Cell::new(false),
            owed: RefCell::new(Vec::new()),
            closed: Cell::new(false),
            waker: RefCell::new(None),
            charged: Cell::new(0),
            party,
            hibernates,
            connections: Cell::new(0),
            asleep: Cell::new(false),
            listed_idle: Cell::new(false),
        }
    }

    /// Queues an event without waiting. Messages and closes are always taken (messages
    /// are bounded by the edges' windows, closes by the connections, lost nodes by the
    /// nodes); a connect, request or alarm is refused past the hard cap.
    pub fn push(&self, event: RoomEvent) -> Result<(), Refused> {
        let bytes = event.bytes();
        let len = self.mailbox.borrow().len();
        let over =
            len >= ROOM_MAILBOX_MAX || self.mailbox_bytes.get() + bytes > ROOM_MAILBOX_BYTES_MAX;
        let always = matches!(
            event,
            RoomEvent::Close { .. } | RoomEvent::Message { .. } | RoomEvent::NodeLost { .. }
        );
        if over && !always {
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
            let next = self.mailbox.borrow_mut().pop_front();
            match next {
                Some(event) => Poll::Ready(Some(self.taken(event))),
                None => {
                    *self.waker.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// The next event if it is a message already queued (for a batch); never waits.
    pub fn next_message_now(&self) -> Option<(ConnId, Message)> {
        if self.closed.get() {
            return None;
        }
        let mut mailbox = self.mailbox.borrow_mut();
        if !matches!(mailbox.front(), Some(RoomEvent::Message { .. })) {
            return None;
        }
        let event = mailbox.pop_front()?;
        drop(mailbox);
        match self.taken(event) {
            RoomEvent::Message { conn, message } => Some((conn, message)),
            _ => None,
        }
    }

    /// Settles the accounts of an event leaving the mailbox: its bytes, and the edge's
    /// window credit for a message.
    fn taken(&self, event: RoomEvent) -> RoomEvent {
        self.mailbox_bytes.set(self.mailbox_bytes.get() - event.bytes());
        if let RoomEvent::Message { conn, message } = &event {
            self.credit(conn.edge, message.len());
        }
        event
    }

    /// Whether the room was unloaded.
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    pub fn set_running(&self, running: bool) {
        self.running.set(running);
    }

    /// No connections and nothing queued or running: safe to unload.
    pub fn is_idle(&self) -> bool {
        self.is_quiet() && !self.core.registry.borrow().has_connections()
    }

    /// Nothing queued or running.
    pub fn is_quiet(&self) -> bool {
        !self.running.get() && self.mailbox.borrow().is_empty()
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

    /// A message from `edge` left the mailbox (taken, or refused): owe the edge its
    /// window back, and return what is owed once it is a batch.
    pub fn credit(&self, edge: ShardAddr, bytes: usize) {
        let mut owed = self.owed.borrow_mut();
        let at = match owed.iter().position(|(e, _, _)| *e == edge) {
            Some(at) => at,
            None => {
                owed.push((edge, 0, 0));
                owed.len() - 1
            }
        };
        let entry = &mut owed[at];
        entry.1 += 1;
        entry.2 += bytes;
        if entry.1 >= ROOM_CREDIT_BATCH_EVENTS || entry.2 >= ROOM_CREDIT_BATCH_BYTES {
            let credit = ToEdge::Credit { room: self.core.uid, events: entry.1, bytes: entry.2 };
            owed.swap_remove(at);
            drop(owed);
            // Control deliveries are never refused.
            let _ = self.core.runtime.router.to_edge(edge, credit);
        }
    }

    /// Waits while an edge holding the room's connections has a backlog of deliveries:
    /// a room sending faster than its sockets' shards write stops taking events, so its
    /// mailbox fills and its own sockets wait for credit. Bounded by those shards' progress.
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
