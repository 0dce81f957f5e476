//! [`EdgeConn`]: the part of a socket that other tasks touch: its phase, its write queue,
//! its wake-up, requests to close it, flow control from its room, and the sweeper's
//! stamps. Its fields are private; the edge changes them only through these methods, and
//! the phase only through its transitions:
//!
//! ```text
//!  Http ──upgrade──► Connecting ──accepted──► Open ──close──► Closing
//!   │                     │ refused / failed / no answer        ▲
//!   └─────────────────────┴─────────────────────────────────────┘
//! ```

use super::out_queue::OutQueue;
use super::park::Parking;
use super::stream::Parked;
use crate::limits::{ROOM_WINDOW_BYTES, ROOM_WINDOW_EVENTS};
use crate::payload::Message;
use crate::route::{AutoResponse, ConnId, ConnectOutcome, RoomKey, RoomUid};
use bytes::Bytes;
use partyline_protocol::ws::CloseCode;
use std::cell::{Cell, OnceCell, RefCell};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Reading HTTP requests (keep-alive), until one upgrades or the socket ends.
    Http,
    /// Upgrading: waiting for the room's answer.
    Connecting,
    /// An open WebSocket in its room.
    Open,
    /// Writing its last bytes; nothing new is queued.
    Closing,
}

/// Where an open socket's room is: its address, the uid of the room's current loading (for
/// the edge's member lists), and the room's window on this edge: messages sent to it and
/// not yet credited back. One per room on this edge, shared by its members.
#[derive(Debug)]
pub(super) struct RoomLink {
    pub key: RoomKey,
    pub uid: RoomUid,
    /// (messages, bytes) in flight to the room from this edge.
    in_flight: Cell<(u32, usize)>,
    /// Sockets of the room waiting for its window to open.
    waiters: RefCell<Vec<Waker>>,
    /// The room's auto-response, answered here without reaching the room.
    auto_response: RefCell<Option<Arc<AutoResponse>>>,
}

impl RoomLink {
    pub fn new(key: RoomKey, uid: RoomUid) -> RoomLink {
        RoomLink {
            key,
            uid,
            in_flight: Cell::new((0, 0)),
            waiters: RefCell::new(Vec::new()),
            auto_response: RefCell::new(None),
        }
    }

    pub fn set_auto_response(&self, pair: Option<Arc<AutoResponse>>) {
        *self.auto_response.borrow_mut() = pair;
    }

    /// The frame to answer `message` with, if it is the room's auto-response request.
    pub fn auto_answer(&self, message: &Message) -> Option<Bytes> {
        let pair = self.auto_response.borrow();
        let pair = pair.as_ref()?;
        match message {
            Message::Text(text) if text.as_bytes() == &pair.request[..] => Some(pair.frame.clone()),
            _ => None,
        }
    }

    /// A message of `bytes` went to the room.
    pub fn charge(&self, bytes: usize) {
        let (events, held) = self.in_flight.get();
        self.in_flight.set((events + 1, held + bytes));
    }

    /// Whether the room has a full window of this edge's messages to take first.
    pub fn window_full(&self) -> bool {
        let (events, bytes) = self.in_flight.get();
        events >= ROOM_WINDOW_EVENTS || bytes >= ROOM_WINDOW_BYTES
    }

    /// Wakes `waker` when the window opens.
    pub fn wait(&self, waker: &Waker) {
        let mut waiters = self.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            waiters.push(waker.clone());
        }
    }

    /// The room took `events` messages (`bytes`): wakes the waiting sockets if the window
    /// opened.
    pub fn credit(&self, events: u32, bytes: usize) {
        let (held_events, held_bytes) = self.in_flight.get();
        // A link made again after all its sockets left may get credit for the old one's
        // messages: never below zero.
        self.in_flight.set((held_events.saturating_sub(events), held_bytes.saturating_sub(bytes)));
        if !self.window_full() {
            for waker in self.waiters.borrow_mut().drain(..) {
                waker.wake();
            }
        }
    }
}

/// Flags packed in one byte (an idle socket's record is what a parked connection costs).
const PARK_WANTED: u8 = 1;
const SENT: u8 = 2;
const PINGED: u8 = 4;

pub(super) struct EdgeConn {
    id: ConnId,
    phase: Cell<Phase>,
    flags: Cell<u8>,
    out: RefCell<OutQueue>,
    /// Taken and put back to wake it (a `Cell`: 8 bytes less than a `RefCell`).
    waker: Cell<Option<Waker>>,
    /// A close request and the room's answer to the connect: rare, so boxed together, and
    /// every idle socket carries one pointer for both.
    rare: RefCell<Option<Box<Rare>>>,
    /// Set once, when the socket opens in its room.
    room: OnceCell<Rc<RoomLink>>,
    /// The descriptor of a parked socket (no task holds it), or -1.
    parked_fd: Cell<RawFd>,
    parking: Rc<Parking>,
    /// Index in its room's member list on this edge (for O(1) removal).
    member_pos: Cell<u32>,
    /// Bytes held for partly received messages, as last counted against the shard's
    /// input budget.
    inbound_bytes: Cell<u32>,
    /// When a byte last arrived / a frame was last queued, in shard seconds.
    last_rx_s: Cell<u32>,
    last_tx_s: Cell<u32>,
}

// Every open socket's record, parked or not: with its `Rc` header it must stay within
// mimalloc's 160-byte size class (the next is 192).
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<EdgeConn>() + 16 <= 160);

/// What a socket rarely holds ([`EdgeConn::rare`]).
#[derive(Default)]
struct Rare {
    close_request: Option<(CloseCode, String)>,
    outcome: Option<ConnectOutcome>,
    /// A parked TLS socket's session (keys, sequence numbers, a partial record).
    parked_tls: Option<Box<rustls::ServerConnection>>,
}

/// What the sweeper decided for one socket.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Sweep {
    Nothing,
    Ping,
    Close,
}

impl EdgeConn {
    pub fn new(id: ConnId, now_s: u32, parking: Rc<Parking>) -> Self {
        EdgeConn {
            id,
            phase: Cell::new(Phase::Http),
            flags: Cell::new(0),
            out: RefCell::new(OutQueue::default()),
            waker: Cell::new(None),
            rare: RefCell::new(None),
            room: OnceCell::new(),
            parked_fd: Cell::new(-1),
            parking,
            member_pos: Cell::new(u32::MAX),
            inbound_bytes: Cell::new(0),
            last_rx_s: Cell::new(now_s),
            last_tx_s: Cell::new(now_s),
        }
    }

    pub fn id(&self) -> ConnId {
        self.id
    }

    // ---- Phase transitions ----------------------------------------------------------

    pub fn phase(&self) -> Phase {
        self.phase.get()
    }

    pub fn is_open(&self) -> bool {
        self.phase.get() == Phase::Open
    }

    /// Http → Connecting: the upgrade was sent to the room.
    pub fn begin_connecting(&self) {
        debug_assert_eq!(self.phase.get(), Phase::Http);
        self.phase.set(Phase::Connecting);
    }

    /// Connecting → Open, in room `link`.
    pub fn open(&self, link: Rc<RoomLink>, now_s: u32) {
        debug_assert_eq!(self.phase.get(), Phase::Connecting);
        let first = self.room.set(link).is_ok();
        debug_assert!(first, "a socket opens once");
        self.phase.set(Phase::Open);
        self.last_rx_s.set(now_s);
    }

    /// Any phase → Closing: nothing more is queued; the close handshake or the last
    /// response is on its way.
    pub fn begin_closing(&self) {
        self.phase.set(Phase::Closing);
    }

    /// The room of an open socket.
    pub fn room(&self) -> Option<Rc<RoomLink>> {
        self.room.get().cloned()
    }

    pub fn room_uid(&self) -> Option<RoomUid> {
        self.room.get().map(|l| l.uid)
    }

    // ---- Output --------------------------------------------------------------------

    /// Queues a frame. Frames for a closing socket are dropped. Past the socket's own
    /// limit `limit` its unsent frames are dropped and it is asked to close with 1008
    /// (slow consumer). Returns the bytes queued before and after, for the shard's budget.
    pub fn enqueue(&self, frame: Bytes, limit: usize) -> (usize, usize) {
        if self.phase.get() == Phase::Closing || self.close_requested() {
            let queued = self.queued();
            return (queued, queued);
        }
        let mut out = self.out.borrow_mut();
        let before = out.queued();
        if before + frame.len() > limit {
            out.drop_unsent();
            let after = out.queued();
            drop(out);
            tracing::info!(seq = self.id.seq, limit, "slow consumer closed");
            self.request_close(CloseCode::POLICY_VIOLATION, "slow consumer: outbound queue full");
            return (before, after);
        }
        let was_empty = out.is_empty();
        out.push(frame);
        let after = out.queued();
        drop(out);
        self.set_flag(SENT, true);
        if was_empty {
            self.wake();
        }
        (before, after)
    }

    /// Bytes queued to write.
    pub fn queued(&self) -> usize {
        self.out.borrow().queued()
    }

    pub fn has_output(&self) -> bool {
        !self.out.borrow().is_empty()
    }

    /// Drops what is queued and not yet started (see [`OutQueue::drop_unsent`]).
    pub fn drop_unsent(&self) {
        self.out.borrow_mut().drop_unsent();
    }

    /// Drops everything queued (the socket is gone).
    pub fn drop_output(&self) {
        *self.out.borrow_mut() = OutQueue::default();
    }

    /// Queues `frame` as the very next thing to write (the 101 before `on_connect`'s
    /// frames).
    pub fn push_front(&self, frame: Bytes) {
        self.out.borrow_mut().push_front(frame);
    }

    /// Queues a frame even while closing (the close frame itself).
    pub fn push_last(&self, frame: Bytes) {
        self.out.borrow_mut().push(frame);
    }

    /// Runs `flush` on the write queue (the socket's stream writes from it); returns its
    /// outcome and the bytes queued before and after, for the shard's budget.
    pub fn flush_with(
        &self,
        flush: impl FnOnce(&mut OutQueue) -> std::io::Result<()>,
    ) -> (std::io::Result<()>, usize, usize) {
        let mut out = self.out.borrow_mut();
        let before = out.queued();
        let result = flush(&mut out);
        (result, before, out.queued())
    }

    // ---- Requests from other tasks --------------------------------------------------

    /// Asks the socket's task to close with `code` (the first request wins).
    pub fn request_close(&self, code: CloseCode, reason: &str) {
        if self.phase.get() == Phase::Closing {
            return;
        }
        let first = {
            let mut rare = self.rare.borrow_mut();
            let rare = rare.get_or_insert_with(Box::default);
            rare.close_request.is_none().then(|| {
                rare.close_request = Some((code, reason.to_owned()));
            })
        };
        if first.is_some() {
            self.wake();
        }
    }

    /// Takes one of the rare fields, freeing their box once both are empty.
    fn take_rare<T>(&self, take: impl FnOnce(&mut Rare) -> Option<T>) -> Option<T> {
        let mut slot = self.rare.borrow_mut();
        let rare = slot.as_mut()?;
        let taken = take(rare);
        if rare.close_request.is_none() && rare.outcome.is_none() && rare.parked_tls.is_none() {
            *slot = None;
        }
        taken
    }

    pub fn take_close_request(&self) -> Option<(CloseCode, String)> {
        self.take_rare(|r| r.close_request.take())
    }

    pub fn close_requested(&self) -> bool {
        self.rare.borrow().as_ref().is_some_and(|r| r.close_request.is_some())
    }

    /// The room's answer to the connect.
    pub fn set_connected(&self, outcome: ConnectOutcome) {
        self.rare.borrow_mut().get_or_insert_with(Box::default).outcome = Some(outcome);
        self.wake();
    }

    pub fn take_outcome(&self) -> Option<ConnectOutcome> {
        self.take_rare(|r| r.outcome.take())
    }

    /// Wakes the socket's task, or resumes it if it is parked.
    pub fn wake(&self) {
        if self.parked_fd.get() >= 0 {
            self.parking.request_resume(self.id.seq);
        } else if let Some(w) = self.waker.take() {
            w.wake_by_ref();
            self.waker.set(Some(w));
        }
    }

    /// Registers the socket's task as the one to wake.
    pub fn register(&self, waker: &Waker) {
        let current = self.waker.take();
        match current {
            Some(w) if w.will_wake(waker) => self.waker.set(Some(w)),
            _ => self.waker.set(Some(waker.clone())),
        }
    }

    // ---- Parking ---------------------------------------------------------------------

    pub fn is_parked(&self) -> bool {
        self.parked_fd.get() >= 0
    }

    /// Asks the socket's task to park when it is next idle (the sweeper's call); whether
    /// this asked anew.
    pub fn want_park(&self) -> bool {
        if !self.is_parked() && !self.set_flag(PARK_WANTED, true) {
            self.wake();
            return true;
        }
        false
    }

    /// Whether parking was asked for; clears the request.
    pub fn take_park_wanted(&self) -> bool {
        self.set_flag(PARK_WANTED, false)
    }

    /// The task ended and left the socket as `parked`: the record holds it until it
    /// resumes.
    pub fn park(&self, parked: Parked) {
        // The finished task's waker would keep its memory alive.
        self.waker.set(None);
        self.parked_fd.set(parked.fd);
        if let Some(tls) = parked.tls {
            self.rare.borrow_mut().get_or_insert_with(Box::default).parked_tls = Some(tls);
        }
    }

    /// Takes a parked socket, leaving it unparked; `None` if it is not parked (already
    /// resumed).
    pub fn take_parked(&self) -> Option<Parked> {
        let fd = self.parked_fd.replace(-1);
        if fd < 0 {
            return None;
        }
        let tls = self.take_rare(|r| r.parked_tls.take());
        Some(Parked { fd, tls })
    }

    // ---- Membership in the room's list on this edge -----------------------------------

    pub fn member_pos(&self) -> usize {
        self.member_pos.get() as usize
    }

    pub fn set_member_pos(&self, pos: usize) {
        self.member_pos.set(u32::try_from(pos).unwrap_or(u32::MAX));
    }

    // ---- Input accounting --------------------------------------------------------------

    /// Records the bytes the socket now holds for partial messages; the change.
    pub fn set_inbound(&self, bytes: usize) -> isize {
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        let before = self.inbound_bytes.replace(bytes);
        bytes as isize - before as isize
    }

    pub fn inbound(&self) -> usize {
        self.inbound_bytes.get() as usize
    }

    // ---- Liveness --------------------------------------------------------------------

    /// Bytes arrived: the socket is alive.
    pub fn heard_from(&self, now_s: u32) {
        self.last_rx_s.set(now_s);
        self.set_flag(PINGED, false);
    }

    /// The sweeper's look at an open socket: stamps output, asks an idle socket to park
    /// (`park_after_s`; `None` when parking is off or this sweep has asked enough), and
    /// says whether to ping it or close it as dead, and whether it asked it to park.
    pub fn sweep(&self, now_s: u32, idle_s: u32, park_after_s: Option<u32>) -> (Sweep, bool) {
        if self.set_flag(SENT, false) {
            self.last_tx_s.set(now_s);
        }
        let silent = now_s.saturating_sub(self.last_rx_s.get());
        let mut asked = false;
        if let Some(after) = park_after_s
            && !self.is_parked()
            && silent >= after
            && now_s.saturating_sub(self.last_tx_s.get()) >= after
        {
            asked = self.want_park();
        }
        let sweep = if silent >= 2 * idle_s {
            Sweep::Close
        } else if silent >= idle_s && !self.set_flag(PINGED, true) {
            Sweep::Ping
        } else {
            Sweep::Nothing
        };
        (sweep, asked)
    }

    /// Sets or clears `bit`; whether it was set before.
    fn set_flag(&self, bit: u8, on: bool) -> bool {
        let flags = self.flags.get();
        self.flags.set(if on { flags | bit } else { flags & !bit });
        flags & bit != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{NodeId, ShardAddr};

    fn conn(now_s: u32) -> EdgeConn {
        let id = ConnId { edge: ShardAddr::local(NodeId::default(), 0), seq: 1 };
        EdgeConn::new(id, now_s, Rc::new(Parking::new().expect("epoll")))
    }

    #[test]
    fn the_sweep_asks_an_idle_socket_to_park_once_and_says_so() {
        let c = conn(100);
        // Silent for less than the park delay: not asked.
        assert_eq!(c.sweep(102, 30, Some(5)), (Sweep::Nothing, false));
        // Silent both ways for the delay: asked, and the sweeper counts it.
        assert_eq!(c.sweep(105, 30, Some(5)), (Sweep::Nothing, true));
        assert!(c.take_park_wanted());
        // Asked again only after the last request was taken.
        assert_eq!(c.sweep(106, 30, Some(5)), (Sweep::Nothing, true));
        assert_eq!(c.sweep(107, 30, Some(5)), (Sweep::Nothing, false));
    }

    #[test]
    fn a_sweep_out_of_park_budget_leaves_the_socket_for_the_next() {
        let c = conn(100);
        // `None`: parking off, or this sweep asked its limit already.
        assert_eq!(c.sweep(110, 30, None), (Sweep::Nothing, false));
        assert!(!c.take_park_wanted());
        assert_eq!(c.sweep(110, 30, Some(5)), (Sweep::Nothing, true));
    }

    #[test]
    fn a_silent_socket_is_pinged_then_closed() {
        let c = conn(100);
        assert_eq!(c.sweep(130, 30, None), (Sweep::Ping, false));
        assert_eq!(c.sweep(140, 30, None), (Sweep::Nothing, false));
        assert_eq!(c.sweep(160, 30, None), (Sweep::Close, false));
    }
}
