//! The WebSocket phases of a socket: *negotiate* (handshake, the `on_before_connect` gate,
//! the room's answer within `room_answer_timeout_ms`, then the 101 and whatever
//! `on_connect` sent), the *read loop* (decode frames from the shard's scratch buffer,
//! answer pings, hand messages to the room, write what is queued; wait while the room has a
//! full window of this shard's messages; park when idle), and *close* (tell the room, flush the close frame, end the
//! connection gracefully within [`CLOSE_LINGER_MS`]).
//!
//! Memory held by an open WebSocket: the task, its record ([`EdgeConn`]) and glommio's
//! stream; no read buffer (only a partial frame is kept, and counted against the input
//! budget) and no write buffer (the queue is freed whenever it drains).

use super::Edge;
use super::conn::{EdgeConn, RoomLink};
use super::gate::{self, Gates};
use super::http::{close_gracefully, refuse, request_of};
use super::socket::PhaseFuture;
use super::stream::{Parked, Stream};
use crate::api::Lobby;
use crate::limits::{CLOSE_LINGER_MS, READS_PER_TURN_MAX};
use crate::log::warn_client;
use crate::payload::Message;
use crate::route::{ConnectOutcome, ConnectRequest, RoomKey, ToHome, Wait};
use crate::rt::within;
use bytes::Bytes;
use partyline_protocol::http::{EncodeOptions, RequestHead, Response};
use partyline_protocol::ws::{
    CloseCode, Decoded, FrameDecoder, FrameLimits, Message as WsMessage, MessageAssembler, Role,
    WsError, encode, handshake,
};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// What the HTTP phase hands to the WebSocket phase.
pub(super) struct Upgrade {
    pub head: RequestHead,
    pub gates: Gates,
    pub key: RoomKey,
    pub connection_id: Option<String>,
    /// The client's address ([`crate::Request::client`]).
    pub client: Option<std::net::SocketAddr>,
    /// Bytes after the head: the first frames, if the client did not wait for the 101.
    pub leftover: Vec<u8>,
}

/// Negotiates, then runs the open socket. `Some(fd)` when the socket parks.
pub(super) async fn websocket(
    edge: &Rc<Edge>,
    conn: &Rc<EdgeConn>,
    stream: &mut Stream,
    // Boxed: an async fn keeps its arguments for its whole life, moved or not.
    upgrade: Box<Upgrade>,
) -> Option<Parked> {
    let negotiate: PhaseFuture<'_, Option<Vec<u8>>> =
        Box::pin(negotiate(edge, conn, stream, upgrade));
    let leftover = negotiate.await?;
    open(edge, conn, stream, leftover).await
}

/// Handshake, gate, and the room's answer. `Some(leftover)` when the socket is open.
async fn negotiate(
    edge: &Rc<Edge>,
    conn: &Rc<EdgeConn>,
    stream: &mut Stream,
    upgrade: Box<Upgrade>,
) -> Option<Vec<u8>> {
    let Upgrade { head, gates, key, connection_id, client, leftover } = *upgrade;
    let accept = match handshake::accept(&head, &handshake::HandshakeConfig::default()) {
        Ok(a) => a,
        Err(e) => {
            warn_client!(error = %e, "bad WebSocket handshake");
            refuse(edge, stream, &e.response()).await;
            return None;
        }
    };
    let lobby = Lobby::new(edge.runtime.clone(), &key.party, &key.room);
    let timeout = Duration::from_millis(edge.limits().hook_timeout_ms);
    let request = request_of(&head, Bytes::new(), client);
    let request = match gate::run(gates.before_connect, request, &lobby, timeout).await {
        Ok(r) => r,
        Err(response) => {
            refuse(edge, stream, &response).await;
            return None;
        }
    };
    drop((head, lobby));
    let id = connection_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    conn.begin_connecting();
    let deadline = edge.runtime.answer_deadline();
    let connect =
        ToHome::Connect(Box::new(ConnectRequest { room: key, conn: conn.id(), id, request }));
    let outcome = within(deadline, async {
        if let Some(wait) = edge.router().to_home(connect) {
            wait.await;
        }
        poll_fn(|cx| match conn.take_outcome() {
            Some(o) => Poll::Ready(o),
            None => {
                conn.register(cx.waker());
                Poll::Pending
            }
        })
        .await
    })
    .await;
    let upgrade = || {
        accept
            .response()
            .with_header("x-partyline-shard", edge.here().shard.to_string())
            .encode(EncodeOptions::default())
            .unwrap_or_default()
    };
    match outcome {
        Some(ConnectOutcome::Accepted) => {
            // The edge opened it and joined it to its room when the answer arrived.
            edge.traffic.upgrade();
            edge.push_front(conn, upgrade());
            Some(leftover)
        }
        Some(ConnectOutcome::Failed { code, reason }) => {
            edge.traffic.upgrade();
            edge.traffic.close(code.0);
            edge.push_front(conn, upgrade());
            edge.push_last(conn, encode::close(code, &reason));
            conn.begin_closing();
            linger(edge, conn, stream).await;
            None
        }
        Some(ConnectOutcome::Refused(response)) => {
            conn.begin_closing();
            edge.drop_output(conn);
            refuse(edge, stream, &response).await;
            None
        }
        None => {
            // The room did not answer in time; if it accepts later, the edge tells it to
            // forget the connection (its record is no longer connecting).
            conn.begin_closing();
            edge.drop_output(conn);
            let ms = edge.limits().room_answer_timeout_ms;
            let response = Response::text(504, format!("the room did not answer within {ms} ms\n"))
                .with_header("retry-after", "1");
            refuse(edge, stream, &response).await;
            None
        }
    }
}

/// An open WebSocket: the read loop, then the close (a boxed future of its own). `Some(fd)`
/// when the loop parked instead: `fd` duplicates the stream's descriptor.
pub(super) async fn open(
    edge: &Rc<Edge>,
    conn: &Rc<EdgeConn>,
    stream: &mut Stream,
    leftover: Vec<u8>,
) -> Option<Parked> {
    let link = conn.room()?;
    let (code, reason) = match ws_loop(edge, conn, stream, &link, leftover).await {
        End::Park(parked) => return Some(parked),
        End::Close(code, reason) => (code, reason),
    };
    let close: PhaseFuture<'_, ()> = Box::pin(async move {
        conn.begin_closing();
        edge.leave(conn);
        let closed = ToHome::Close { room: link.key.clone(), conn: conn.id(), code, reason };
        edge.router().send_home(closed).await;
        linger(edge, conn, stream).await;
    });
    close.await;
    None
}

/// What the socket's reads produced, handled after the scratch buffer is released.
enum Inbound {
    Message(Message),
    /// The peer closed with this code (1005 if it sent none).
    PeerClose(CloseCode, String),
    Error(WsError),
}

enum Step {
    Read,
    Eof,
    ServerClose(CloseCode, String),
    Park,
}

/// How a read loop ended.
enum End {
    /// Closed, with the code and reason the room's `on_close` gets.
    Close(CloseCode, String),
    /// Idle and asked to park: the duplicate descriptor that keeps the socket.
    Park(Parked),
}

/// The per-socket read state: the frame decoder, a message being assembled from
/// fragments, the tail of a partial frame, and decoded events not yet handled.
struct Reader {
    decoder: FrameDecoder,
    assembler: MessageAssembler,
    leftover: Vec<u8>,
    inbound: VecDeque<Inbound>,
    /// Payload bytes of the messages in `inbound`.
    inbound_bytes: usize,
    /// Reads in a row without waiting (see [`READS_PER_TURN_MAX`]).
    streak: u32,
}

impl Reader {
    /// Bytes held for messages not yet handed to the room: a partial frame, a message
    /// being assembled, decoded messages waiting for the room's window (counted against
    /// the shard's input budget).
    fn held(&self) -> usize {
        self.leftover.capacity() + self.assembler.buffered() + self.inbound_bytes
    }

    /// The next decoded event to hand on; `None` when there is none, or when it is a
    /// message and the room's window here is full (events stay in order).
    fn next_event(&mut self, link: &RoomLink) -> Option<Inbound> {
        if matches!(self.inbound.front(), Some(Inbound::Message(_))) && link.window_full() {
            return None;
        }
        let event = self.inbound.pop_front()?;
        if let Inbound::Message(m) = &event {
            self.inbound_bytes -= m.len();
        }
        Some(event)
    }

    /// Decodes `fresh` bytes (after any leftover), keeping only a partial frame's tail.
    fn take(&mut self, edge: &Edge, conn: &EdgeConn, fresh: &mut [u8]) {
        if self.leftover.is_empty() {
            let used = self.decode(edge, conn, Some(fresh));
            self.leftover.extend_from_slice(&fresh[used..]);
        } else {
            self.leftover.extend_from_slice(fresh);
            self.decode_leftover(edge, conn);
        }
        if self.leftover.is_empty() {
            // No buffer is held by an idle connection.
            self.leftover = Vec::new();
        }
    }

    fn decode_leftover(&mut self, edge: &Edge, conn: &EdgeConn) {
        let used = self.decode(edge, conn, None);
        self.leftover.drain(..used);
    }

    /// Decodes `fresh` (or the leftover, when `None`) into `inbound`; the bytes used.
    fn decode(&mut self, edge: &Edge, conn: &EdgeConn, fresh: Option<&mut [u8]>) -> usize {
        let queued = self.inbound.len();
        let buf = match fresh {
            Some(fresh) => fresh,
            None => &mut self.leftover[..],
        };
        let used = decode(edge, conn, &self.decoder, &mut self.assembler, buf, &mut self.inbound);
        for event in self.inbound.range(queued..) {
            if let Inbound::Message(m) = event {
                self.inbound_bytes += m.len();
            }
        }
        used
    }

    /// Whether the socket is between messages with nothing partial: it may park.
    fn at_rest(&self) -> bool {
        self.leftover.is_empty() && !self.assembler.in_message()
    }
}

/// The open WebSocket: read, decode, forward; write what is queued.
async fn ws_loop(
    edge: &Rc<Edge>,
    conn: &Rc<EdgeConn>,
    stream: &mut Stream,
    link: &RoomLink,
    leftover: Vec<u8>,
) -> End {
    let limit = edge.limits().message_size_max;
    let mut reader = Reader {
        decoder: FrameDecoder::new(Role::Server, FrameLimits { message_size_max: limit }),
        assembler: MessageAssembler::new(limit),
        leftover,
        inbound: VecDeque::new(),
        inbound_bytes: 0,
        streak: 0,
    };
    // Frames that arrived together with the upgrade request.
    reader.decode_leftover(edge, conn);
    // The HTTP phase's read buffer must not live on in a connection that stays silent.
    if reader.leftover.is_empty() {
        reader.leftover = Vec::new();
    } else {
        reader.leftover.shrink_to_fit();
    }
    edge.track_inbound(conn, reader.held());
    loop {
        let waiting = reader.inbound_bytes;
        while let Some(event) = reader.next_event(link) {
            match forward(edge, conn, link, event) {
                Forwarded::Sent => {}
                Forwarded::Wait(wait) => wait.await,
                Forwarded::End(end) => return end,
            }
        }
        if reader.inbound_bytes != waiting {
            // Handed on: no longer this socket's to hold.
            edge.track_inbound(conn, reader.held());
        }
        if reader.streak >= READS_PER_TURN_MAX {
            reader.streak = 0;
            futures_lite::future::yield_now().await;
        }
        let step = poll_fn(|cx| read_step(edge, conn, link, stream, cx, &mut reader)).await;
        match step {
            Ok(Step::Read) => reader.streak += 1,
            Ok(Step::Park) => match stream.park() {
                Ok(parked) => return End::Park(parked),
                // Out of descriptors: stay active, try again at a later sweep.
                Err(e) => tracing::debug!(error = %e, "cannot park a socket"),
            },
            Ok(Step::Eof) | Err(_) => return End::Close(CloseCode::ABNORMAL, String::new()),
            Ok(Step::ServerClose(code, reason)) => {
                edge.traffic.close(code.0);
                edge.push_last(conn, encode::close(code, &reason));
                return End::Close(code, reason);
            }
        }
    }
}

/// One poll of the socket: a close request first, then writes, then (unless the room's
/// window here is full) a read, decoded at once from the scratch buffer.
fn read_step(
    edge: &Edge,
    conn: &EdgeConn,
    link: &RoomLink,
    stream: &mut Stream,
    cx: &mut Context<'_>,
    reader: &mut Reader,
) -> Poll<io::Result<Step>> {
    conn.register(cx.waker());
    if let Some((code, reason)) = conn.take_close_request() {
        return Poll::Ready(Ok(Step::ServerClose(code, reason)));
    }
    if let Err(e) = edge.flush(conn, stream, cx) {
        return Poll::Ready(Err(e));
    }
    if link.window_full() {
        // The room has not taken this shard's last window of messages: the client's bytes
        // wait in the kernel, and TCP pushes back on the client. Credit wakes this task.
        link.wait(cx.waker());
        edge.read_held();
        reader.streak = 0;
        return Poll::Pending;
    }
    if !reader.inbound.is_empty() {
        // The window opened for messages decoded earlier: hand them on before reading more.
        return Poll::Ready(Ok(Step::Read));
    }
    let mut scratch = edge.scratch.borrow_mut();
    match stream.poll_read(cx, &mut scratch[..]) {
        Poll::Pending => {
            // Park only between messages with nothing to write: the resumed loop starts
            // from a clean frame boundary and an empty queue.
            if conn.take_park_wanted() && reader.at_rest() && stream.at_rest() && !conn.has_output()
            {
                return Poll::Ready(Ok(Step::Park));
            }
            reader.streak = 0;
            Poll::Pending
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        Poll::Ready(Ok(0)) => Poll::Ready(Ok(Step::Eof)),
        Poll::Ready(Ok(n)) => {
            conn.heard_from(edge.now_s());
            reader.take(edge, conn, &mut scratch[..n]);
            drop(scratch);
            edge.track_inbound(conn, reader.held());
            Poll::Ready(Ok(Step::Read))
        }
    }
}

/// What handing an event on produced.
enum Forwarded {
    Sent,
    /// The channel to the room's home is full: wait for room (boxed, so the read loop's
    /// own state stays small).
    Wait(Wait),
    End(End),
}

/// Hands a decoded event on: a message to the room, a close or an error to the close
/// phase.
fn forward(edge: &Rc<Edge>, conn: &EdgeConn, link: &RoomLink, event: Inbound) -> Forwarded {
    match event {
        Inbound::Message(message) => {
            if let Some(frame) = link.auto_answer(&message) {
                // Answered here: the room never sees it, and a sleeping room sleeps on.
                edge.enqueue(conn, frame);
                return Forwarded::Sent;
            }
            link.charge(message.len());
            edge.traffic.message_in(message.len());
            let msg = ToHome::Message { room: link.key.clone(), conn: conn.id(), message };
            match edge.router().to_home(msg) {
                Some(wait) => Forwarded::Wait(wait),
                None => Forwarded::Sent,
            }
        }
        Inbound::PeerClose(code, reason) => {
            // Answer with the same code (none if the peer sent none).
            edge.push_last(conn, encode::close(code, ""));
            Forwarded::End(End::Close(code, reason))
        }
        Inbound::Error(e) => {
            warn_client!(seq = conn.id().seq, error = %e, "WebSocket protocol error");
            let code = e.close_code();
            edge.traffic.close(code.0);
            edge.push_last(conn, encode::close(code, &e.to_string()));
            Forwarded::End(End::Close(code, e.to_string()))
        }
    }
}

/// Decodes whole frames from `buf`, answering pings and queueing what the room must see.
/// Returns the bytes used; stops after a close frame or an error.
fn decode(
    edge: &Edge,
    conn: &EdgeConn,
    decoder: &FrameDecoder,
    assembler: &mut MessageAssembler,
    buf: &mut [u8],
    inbound: &mut VecDeque<Inbound>,
) -> usize {
    let mut used = 0;
    while used < buf.len() {
        match decoder.decode(&mut buf[used..]) {
            Err(e) => {
                inbound.push_back(Inbound::Error(e));
                return buf.len();
            }
            Ok(Decoded::NeedMore { .. }) => return used,
            Ok(Decoded::Frame { frame, len }) => {
                used += len;
                match assembler.push(frame) {
                    Err(e) => {
                        inbound.push_back(Inbound::Error(e));
                        return buf.len();
                    }
                    Ok(None) | Ok(Some(WsMessage::Pong(_))) => {}
                    Ok(Some(WsMessage::Ping(payload))) => edge.enqueue(conn, encode::pong(payload)),
                    Ok(Some(WsMessage::Text(s))) => {
                        inbound.push_back(Inbound::Message(Message::Text(s.into())))
                    }
                    Ok(Some(WsMessage::Binary(b))) => inbound
                        .push_back(Inbound::Message(Message::Binary(Bytes::copy_from_slice(b)))),
                    Ok(Some(WsMessage::Close(close))) => {
                        let (code, reason) = close
                            .map_or((CloseCode::NO_STATUS, String::new()), |c| {
                                (c.code, c.reason.to_owned())
                            });
                        inbound.push_back(Inbound::PeerClose(code, reason));
                        return buf.len();
                    }
                }
            }
        }
    }
    used
}

/// After a close: flush what is queued (the close frame last) while dropping whatever the
/// peer sends, then end the connection gracefully; all within [`CLOSE_LINGER_MS`].
async fn linger(edge: &Edge, conn: &EdgeConn, stream: &mut Stream) {
    let deadline = Instant::now() + Duration::from_millis(CLOSE_LINGER_MS);
    let flushed = within(
        deadline,
        poll_fn(|cx| {
            conn.register(cx.waker());
            match edge.flush(conn, stream, cx) {
                Err(_) => return Poll::Ready(false),
                Ok(()) if !conn.has_output() => return Poll::Ready(true),
                Ok(()) => {}
            }
            // Unread bytes at close would reset the connection: keep reading meanwhile.
            let mut scratch = edge.scratch.borrow_mut();
            match stream.poll_read(cx, &mut scratch[..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Poll::Ready(false),
                Poll::Ready(Ok(_)) => {
                    // Let other tasks run between reads of a peer that keeps sending.
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Poll::Pending => Poll::Pending,
            }
        }),
    )
    .await;
    edge.drop_output(conn);
    // Flushed, or out of time with the peer not reading: either way stop writing and
    // drain, so the socket does not close with unread bytes. A failed write or a peer
    // that closed needs neither.
    if flushed != Some(false) {
        close_gracefully(edge, stream, deadline).await;
    }
}
