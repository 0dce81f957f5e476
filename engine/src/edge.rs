//! The edge: one task per accepted socket, on the shard that accepted it, for the socket's
//! whole life. It parses HTTP, runs the edge gates (`on_before_connect`,
//! `on_before_request`, the server-wide `on_fetch`), performs the upgrade, decodes frames,
//! answers pings, and writes everything queued for the socket in coalesced `sendmsg` calls.
//! Room events go to the room's home shard; the socket never moves.
//!
//! Memory held by an open WebSocket: the task, an [`EdgeConn`], glommio's stream; no read
//! buffer (reads go into the shard's scratch buffer and only a partial frame is kept) and
//! no write buffer (the queue is freed whenever it drains). A socket idle for
//! `ws_park_after_ms` is *parked* ([`crate::park`]): its task and stream end and only the
//! [`EdgeConn`] and the descriptor remain until something concerns it again.

use crate::mesh::{ConnRef, ConnectOutcome, ConnectRequest, HttpRequest, RoomKey, ToHome};
use crate::park::{self, Parking};
use crate::party::{Gate, Message, Request};
use crate::rt::{self, Flush, OutQueue, TcpListener, TcpStream};
use crate::server::PartyEntry;
use crate::shard::Shard;
use bytes::Bytes;
use futures_lite::{AsyncWriteExt, FutureExt};
use partyline_protocol::http::{
    BodyDecoder, BodyKind, EncodeOptions, HeadParser, HttpError, HttpLimits, RequestHead, Response,
};
use partyline_protocol::route::{self, Route};
use partyline_protocol::ws::{
    CloseCode, Decoded, FrameDecoder, FrameLimits, Message as WsMessage, MessageAssembler, Role,
    WsError, encode, handshake,
};
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// How long a closing socket may take to flush its last frames and see the peer's close.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Http,
    Connecting,
    Open,
    Closing,
}

/// The part of a socket that other tasks touch: its write queue, its wake-up, and requests
/// to close it. Owned by the shard's connection map and by the socket's task.
pub(crate) struct EdgeConn {
    pub cref: ConnRef,
    out: RefCell<OutQueue>,
    waker: RefCell<Option<Waker>>,
    phase: Cell<Phase>,
    /// Boxed, as is `outcome`: both are rare, and every idle socket would carry their size.
    close_request: RefCell<Option<Box<(CloseCode, String)>>>,
    outcome: RefCell<Option<Box<ConnectOutcome>>>,
    pub room_uid: Cell<u64>,
    /// The room, set once the socket is open (shared with the other members on this shard).
    pub room: OnceCell<RoomKey>,
    /// The descriptor of a parked socket (no task holds it), or -1.
    parked_fd: Cell<RawFd>,
    /// The sweeper asks the task to park at its next idle moment.
    park_wanted: Cell<bool>,
    /// A frame was queued since the sweeper last looked (it then stamps `last_tx_s`).
    pub sent: Cell<bool>,
    pub last_tx_s: Cell<u32>,
    parking: Rc<Parking>,
    /// Index in the shard's member list of its room (for O(1) removal).
    pub member_pos: Cell<usize>,
    /// When a byte last arrived, in shard seconds; the sweeper pings and times out.
    pub last_rx_s: Cell<u32>,
    pub pinged: Cell<bool>,
}

impl EdgeConn {
    fn new(cref: ConnRef, now_s: u32, parking: Rc<Parking>) -> Self {
        EdgeConn {
            cref,
            out: RefCell::new(OutQueue::default()),
            waker: RefCell::new(None),
            phase: Cell::new(Phase::Http),
            close_request: RefCell::new(None),
            outcome: RefCell::new(None),
            room_uid: Cell::new(0),
            room: OnceCell::new(),
            parked_fd: Cell::new(-1),
            park_wanted: Cell::new(false),
            sent: Cell::new(false),
            last_tx_s: Cell::new(now_s),
            parking,
            member_pos: Cell::new(usize::MAX),
            last_rx_s: Cell::new(now_s),
            pinged: Cell::new(false),
        }
    }

    pub fn is_open(&self) -> bool {
        self.phase.get() == Phase::Open
    }

    /// Queues a frame. A consumer with more than `limit` bytes waiting is closed with 1008
    /// and its queue freed at once; frames after a close are dropped.
    pub fn enqueue(&self, frame: Bytes, limit: usize) {
        if self.phase.get() == Phase::Closing || self.close_request.borrow().is_some() {
            return;
        }
        let mut out = self.out.borrow_mut();
        if out.queued() + frame.len() > limit {
            out.clear();
            drop(out);
            tracing::info!(seq = self.cref.seq, limit, "slow consumer closed");
            self.request_close(CloseCode::POLICY_VIOLATION, "slow consumer: outbound queue full");
            return;
        }
        let was_empty = out.is_empty();
        out.push(frame);
        drop(out);
        self.sent.set(true);
        if was_empty {
            self.wake();
        }
    }

    /// Asks the socket's task to close with `code` (first request wins).
    pub fn request_close(&self, code: CloseCode, reason: &str) {
        if self.phase.get() == Phase::Closing {
            return;
        }
        let mut req = self.close_request.borrow_mut();
        if req.is_none() {
            *req = Some(Box::new((code, reason.to_owned())));
            drop(req);
            self.wake();
        }
    }

    pub fn set_connected(&self, outcome: ConnectOutcome) {
        *self.outcome.borrow_mut() = Some(Box::new(outcome));
        self.wake();
    }

    fn wake(&self) {
        if self.parked_fd.get() >= 0 {
            self.parking.request_resume(self.cref.seq);
        } else if let Some(w) = self.waker.borrow().as_ref() {
            w.wake_by_ref();
        }
    }

    pub fn is_parked(&self) -> bool {
        self.parked_fd.get() >= 0
    }

    /// Asks the socket's task to park when it is next idle (the sweeper's call).
    pub fn want_park(&self) {
        if !self.is_parked() && !self.park_wanted.replace(true) {
            self.wake();
        }
    }

    /// Takes the descriptor of a parked socket, leaving it unparked; `None` if it is not
    /// parked (already resumed).
    pub fn take_parked(&self) -> Option<RawFd> {
        let fd = self.parked_fd.replace(-1);
        (fd >= 0).then_some(fd)
    }

    fn register(&self, waker: &Waker) {
        let mut slot = self.waker.borrow_mut();
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }
}

/// Accepts sockets until dropped, refusing with 503 beyond the shard's connection limit.
pub(crate) async fn accept_loop(shard: Rc<Shard>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                if shard.conns.borrow().len() >= shard.limits().connections_per_shard_max {
                    let response =
                        Response::text(503, "server at its connection limit; try again later\n");
                    glommio::spawn_local(async move {
                        let mut stream = stream;
                        let _ = write_response(&mut stream, &response, false, false).await;
                    })
                    .detach();
                    continue;
                }
                glommio::spawn_local(serve(shard.clone(), stream)).detach();
            }
            Err(e) => {
                // Out of descriptors or a transient error: back off instead of spinning.
                tracing::warn!(shard = shard.id, error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve(shard: Rc<Shard>, mut stream: TcpStream) {
    let conn = Rc::new(EdgeConn::new(
        ConnRef { edge: shard.id, seq: shard.next_conn_seq() },
        shard.now_s(),
        shard.parking.clone(),
    ));
    shard.conns.borrow_mut().insert(conn.cref.seq, conn.clone());
    // Each phase is its own boxed future, freed when the phase ends: an open WebSocket
    // carries only the state of its read loop, not that of HTTP parsing.
    let http: PhaseFuture<'_, Option<Box<Upgrade>>> = Box::pin(serve_http(&shard, &mut stream));
    let parked = match http.await {
        Some(upgrade) => websocket(&shard, &conn, &mut stream, upgrade).await,
        None => None,
    };
    end_task(&shard, &conn, stream, parked);
}

/// The task of a socket resumed from parking: the read loop again, from a clean frame
/// boundary (a socket only parks between messages).
pub(crate) async fn resume(shard: Rc<Shard>, conn: Rc<EdgeConn>, fd: RawFd) {
    // SAFETY: `fd` was the parked socket's descriptor, taken out of its record by the
    // caller, so this stream is its only owner.
    let mut stream = unsafe { TcpStream::from_raw_fd(fd) };
    let parked = match conn.room.get().cloned() {
        Some(room) => open(&shard, &conn, &mut stream, room, Vec::new()).await,
        None => None,
    };
    end_task(&shard, &conn, stream, parked);
}

/// The end of a socket's task: the socket parks (`parked` holds its duplicate descriptor)
/// or is gone, and leaves the shard's maps.
fn end_task(shard: &Shard, conn: &EdgeConn, stream: TcpStream, parked: Option<RawFd>) {
    drop(stream);
    match parked {
        Some(fd) => park(shard, conn, fd),
        None => {
            shard.leave_members(conn);
            shard.conns.borrow_mut().remove(&conn.cref.seq);
        }
    }
}

/// Leaves the socket (now only `fd`, a duplicate of the dropped stream's descriptor) in the
/// shard's epoll set until it is readable or something is queued for it.
fn park(shard: &Shard, conn: &EdgeConn, fd: RawFd) {
    // The finished task's waker would keep its memory alive.
    *conn.waker.borrow_mut() = None;
    conn.parked_fd.set(fd);
    if let Err(e) = shard.parking.watch(fd, conn.cref.seq) {
        // Out of epoll watches (fs.epoll.max_user_watches): resume at once instead.
        tracing::warn!(error = %e, "cannot park a socket; keeping it active");
        shard.parking.request_resume(conn.cref.seq);
    }
}

/// A phase of a socket's life, boxed so its state is freed when it ends.
type PhaseFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// What the HTTP phase hands to the WebSocket phase.
struct Upgrade {
    head: RequestHead,
    entry: PartyEntry,
    room: RoomKey,
    connection_id: Option<String>,
    /// Bytes after the head: the first frames, if the client did not wait for the 101.
    leftover: Vec<u8>,
}

/// Runs `fut` until `deadline`; `None` if the deadline came first.
async fn with_deadline<T>(deadline: Instant, fut: impl Future<Output = T>) -> Option<T> {
    let timer = async {
        glommio::timer::sleep(deadline.saturating_duration_since(Instant::now())).await;
        None
    };
    async { Some(fut.await) }.or(timer).await
}

/// Reads once into the shard's scratch buffer and appends what came to `buf`.
async fn read_more(shard: &Shard, stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    poll_fn(|cx| {
        let mut scratch = shard.scratch.borrow_mut();
        match rt::poll_read(stream, cx, &mut scratch[..]) {
            Poll::Ready(Ok(n)) => {
                buf.extend_from_slice(&scratch[..n]);
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    })
    .await
}

enum HeadError {
    Closed,
    Http(HttpError),
}

async fn read_head(
    shard: &Shard,
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    parser: &mut HeadParser,
) -> Result<RequestHead, HeadError> {
    loop {
        if !buf.is_empty() {
            match parser.parse(buf) {
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
                Err(e) => return Err(HeadError::Http(e)),
            }
        }
        match read_more(shard, stream, buf).await {
            Ok(0) | Err(_) => return Err(HeadError::Closed),
            Ok(_) => {}
        }
    }
}

async fn read_body(
    shard: &Shard,
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    kind: BodyKind,
    limit: usize,
) -> Result<Bytes, Option<HttpError>> {
    let mut decoder = BodyDecoder::new(kind, limit);
    let mut body = Vec::new();
    loop {
        let progress = decoder.decode(buf, &mut body).map_err(Some)?;
        buf.drain(..progress.consumed);
        if progress.done {
            return Ok(body.into());
        }
        match read_more(shard, stream, buf).await {
            Ok(0) | Err(_) => return Err(None),
            Ok(_) => {}
        }
    }
}

async fn write_response(
    stream: &mut TcpStream,
    response: &Response,
    keep_alive: bool,
    head_request: bool,
) -> io::Result<()> {
    let bytes = match response.encode(EncodeOptions { keep_alive, head_request }) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "party built an invalid response");
            Response::text(500, format!("{e}\n"))
                .encode(EncodeOptions { keep_alive, head_request })
                .unwrap_or_default()
        }
    };
    stream.write_all(&bytes).await
}

/// The HTTP phase: requests in a keep-alive loop, until one upgrades or the socket ends.
async fn serve_http(shard: &Rc<Shard>, stream: &mut TcpStream) -> Option<Box<Upgrade>> {
    let limits = *shard.limits();
    let http_limits = HttpLimits {
        head_size_max: limits.http_head_size_max,
        body_size_max: limits.http_body_size_max,
        ..HttpLimits::default()
    };
    let mut parser = HeadParser::new(http_limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut first = true;
    loop {
        // The first head must arrive within the handshake timeout (slowloris); later ones
        // within the keep-alive idle timeout.
        let wait = if first { limits.handshake_timeout_ms } else { limits.http_idle_timeout_ms };
        let deadline = Instant::now() + Duration::from_millis(wait);
        let head =
            match with_deadline(deadline, read_head(shard, stream, &mut buf, &mut parser)).await {
                Some(Ok(head)) => head,
                Some(Err(HeadError::Closed)) => return None,
                Some(Err(HeadError::Http(e))) => {
                    tracing::debug!(shard = shard.id, error = %e, "bad request");
                    let _ = write_response(stream, &Response::from_error(&e), false, false).await;
                    return None;
                }
                None => {
                    if !buf.is_empty() {
                        let _ = write_response(
                            stream,
                            &Response::text(408, "request head too slow\n"),
                            false,
                            false,
                        )
                        .await;
                    }
                    return None;
                }
            };
        first = false;
        buf.drain(..head.len());
        let keep_alive = head.keep_alive();
        let is_head = head.method() == "HEAD";

        let routed = route::parse(head.origin_target(), &shard.route);
        let party = match &routed {
            Ok(Some(r)) => shard.server.parties.get(r.party).map(|e| (e, r)),
            _ => None,
        };
        if head.is_websocket_upgrade() {
            match (&routed, party) {
                (Ok(Some(route)), Some((entry, _))) => {
                    let room = RoomKey { party: route.party.into(), room: route.room.into() };
                    let connection_id = route.connection_id().map(|id| id.into_owned());
                    let entry = *entry;
                    return Some(Box::new(Upgrade {
                        head,
                        entry,
                        room,
                        connection_id,
                        leftover: buf,
                    }));
                }
                _ => {
                    let response = refusal(&routed, &head);
                    let _ = write_response(stream, &response, false, false).await;
                    return None;
                }
            }
        }

        // A plain request: read its body within the handshake timeout.
        if head.expects_continue()
            && head.body() != BodyKind::Empty
            && stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err()
        {
            return None;
        }
        let deadline = Instant::now() + Duration::from_millis(limits.handshake_timeout_ms);
        let body = match with_deadline(
            deadline,
            read_body(shard, stream, &mut buf, head.body(), limits.http_body_size_max),
        )
        .await
        {
            Some(Ok(body)) => body,
            Some(Err(Some(e))) => {
                let _ = write_response(stream, &Response::from_error(&e), false, false).await;
                return None;
            }
            Some(Err(None)) => return None,
            None => {
                let _ = write_response(
                    stream,
                    &Response::text(408, "request body too slow\n"),
                    false,
                    false,
                )
                .await;
                return None;
            }
        };
        let response = match party {
            Some((entry, route)) => {
                room_request(shard, entry, route, request_of(&head, body)).await
            }
            None if head.path() == "/health" => Response::text(200, "ok\n"),
            None => match &routed {
                Ok(None) => fetch(shard, request_of(&head, body)).await,
                _ => refusal(&routed, &head),
            },
        };
        if write_response(stream, &response, keep_alive, is_head).await.is_err() || !keep_alive {
            return None;
        }
    }
}

/// The answer for a request no room takes: bad party path, unknown party, or a WebSocket
/// to a path that is not a party path.
fn refusal(routed: &Result<Option<Route<'_>>, route::RouteError>, head: &RequestHead) -> Response {
    match routed {
        Err(e) => Response::text(e.status(), format!("{e}\n")),
        Ok(Some(r)) => Response::text(404, format!("unknown party: {}\n", r.party)),
        Ok(None) if head.is_websocket_upgrade() => {
            Response::text(404, "Not found: WebSockets connect to /parties/<party>/<room>\n")
        }
        Ok(None) => Response::text(404, "Not found\n"),
    }
}

fn request_of(head: &RequestHead, body: Bytes) -> Request {
    Request {
        method: head.method().to_owned(),
        target: head.origin_target().to_owned(),
        headers: head
            .headers()
            .map(|(n, v)| (n.to_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect(),
        body,
    }
}

/// Runs an edge gate, turning an error into 401 and a panic into 500.
async fn gate(
    f: fn(Request) -> crate::server::GateFuture,
    request: Request,
) -> Result<Request, Response> {
    match AssertUnwindSafe(f(request)).catch_unwind().await {
        Ok(Ok(Gate::Continue(r))) => Ok(r),
        Ok(Ok(Gate::Respond(r))) => Err(r),
        Ok(Err(e)) => Err(Response::text(401, format!("{e}\n"))),
        Err(_) => {
            tracing::error!("edge gate panicked");
            Err(Response::text(500, "internal error\n"))
        }
    }
}

async fn room_request(
    shard: &Rc<Shard>,
    entry: &PartyEntry,
    route: &Route<'_>,
    request: Request,
) -> Response {
    let request = match gate(entry.before_request, request).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let room = RoomKey { party: route.party.into(), room: route.room.into() };
    let (reply, rx) = shard.await_reply();
    shard.to_home(ToHome::Request(Box::new(HttpRequest { room, request, reply }))).await;
    let response = rx.recv().await;
    shard.forget_reply(reply.token);
    response.unwrap_or_else(|| Response::text(500, "the room did not answer\n"))
}

async fn fetch(shard: &Shard, request: Request) -> Response {
    let Some(on_fetch) = shard.server.on_fetch else {
        return Response::text(404, "Not found\n");
    };
    match AssertUnwindSafe(on_fetch(request)).catch_unwind().await {
        Ok(Some(response)) => response,
        Ok(None) => Response::text(404, "Not found\n"),
        Err(_) => Response::text(500, "internal error\n"),
    }
}

/// The WebSocket phase: negotiate (gate, connect to the room, whose `on_connect` runs
/// before the 101 is written), then [`open`]. Negotiation runs as a boxed future of its
/// own, so the long-lived state is the read loop's alone. `Some(fd)` when the socket
/// parks.
async fn websocket(
    shard: &Rc<Shard>,
    conn: &Rc<EdgeConn>,
    stream: &mut TcpStream,
    // Boxed: an async fn keeps its arguments for its whole life, moved or not.
    upgrade: Box<Upgrade>,
) -> Option<RawFd> {
    let negotiate: PhaseFuture<'_, Option<(RoomKey, Vec<u8>)>> =
        Box::pin(negotiate(shard, conn, stream, upgrade));
    let (room, leftover) = negotiate.await?;
    open(shard, conn, stream, room, leftover).await
}

/// An open WebSocket: the read loop, then the close (a boxed future of its own). `Some(fd)`
/// when the loop parked instead: `fd` duplicates the stream's descriptor.
async fn open(
    shard: &Rc<Shard>,
    conn: &Rc<EdgeConn>,
    stream: &mut TcpStream,
    room: RoomKey,
    leftover: Vec<u8>,
) -> Option<RawFd> {
    let (code, reason) = match ws_loop(shard, conn, stream, &room, leftover).await {
        End::Park(fd) => return Some(fd),
        End::Close(code, reason) => (code, reason),
    };
    let close: PhaseFuture<'_, ()> = Box::pin(async move {
        conn.phase.set(Phase::Closing);
        shard.leave_members(conn);
        shard.to_home(ToHome::Close { room, conn: conn.cref, code, reason }).await;
        linger(shard, conn, stream).await;
    });
    close.await;
    None
}

/// Handshake, gate and connect. `Some` when the socket is open in its room.
async fn negotiate(
    shard: &Rc<Shard>,
    conn: &Rc<EdgeConn>,
    stream: &mut TcpStream,
    upgrade: Box<Upgrade>,
) -> Option<(RoomKey, Vec<u8>)> {
    let Upgrade { head, entry, room, connection_id, leftover } = *upgrade;
    let accept = match handshake::accept(&head, &handshake::HandshakeConfig::default()) {
        Ok(a) => a,
        Err(e) => {
            let _ = write_response(stream, &e.response(), false, false).await;
            return None;
        }
    };
    let request = match gate(entry.before_connect, request_of(&head, Bytes::new())).await {
        Ok(r) => r,
        Err(response) => {
            let _ = write_response(stream, &response, false, false).await;
            return None;
        }
    };
    drop(head);
    let id = connection_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    conn.phase.set(Phase::Connecting);
    shard
        .to_home(ToHome::Connect(Box::new(ConnectRequest {
            room: room.clone(),
            conn: conn.cref,
            id,
            request,
        })))
        .await;
    let outcome = poll_fn(|cx| match conn.outcome.borrow_mut().take() {
        Some(o) => Poll::Ready(*o),
        None => {
            conn.register(cx.waker());
            Poll::Pending
        }
    })
    .await;
    let upgrade = accept
        .response()
        .with_header("x-partyline-shard", shard.id.to_string())
        .encode(EncodeOptions::default())
        .unwrap_or_default();
    match outcome {
        ConnectOutcome::Refused(response) => {
            conn.out.borrow_mut().clear();
            let _ = write_response(stream, &response, false, false).await;
            None
        }
        ConnectOutcome::Failed { reason } => {
            {
                let mut out = conn.out.borrow_mut();
                out.push_front(upgrade);
                out.push(encode::close(CloseCode::INTERNAL_ERROR, &reason));
            }
            conn.phase.set(Phase::Closing);
            linger(shard, conn, stream).await;
            None
        }
        ConnectOutcome::Accepted => {
            conn.out.borrow_mut().push_front(upgrade);
            // Unless joining the members already gave it the room's shared key.
            let _ = conn.room.set(room.clone());
            conn.phase.set(Phase::Open);
            conn.last_rx_s.set(shard.now_s());
            Some((room, leftover))
        }
    }
}

/// What the socket's reads produced, handled after the scratch buffer is released.
enum Inbound {
    Message(Message),
    /// The peer closed with this code (1005 if it sent none).
    PeerClose(u16, String),
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
    Close(u16, String),
    /// Idle and asked to park: the duplicate descriptor that keeps the socket.
    Park(RawFd),
}

/// The open WebSocket: read, decode, forward; write what is queued.
async fn ws_loop(
    shard: &Rc<Shard>,
    conn: &Rc<EdgeConn>,
    stream: &mut TcpStream,
    room: &RoomKey,
    mut leftover: Vec<u8>,
) -> End {
    let limit = shard.limits().message_size_max;
    let decoder = FrameDecoder::new(Role::Server, FrameLimits { message_size_max: limit });
    let mut assembler = MessageAssembler::new(limit);
    let mut inbound: VecDeque<Inbound> = VecDeque::new();
    let fd = rt::fd_of(stream);
    // Frames that arrived together with the upgrade request.
    let used = decode(shard, conn, &decoder, &mut assembler, &mut leftover, &mut inbound);
    leftover.drain(..used);
    // The HTTP phase's read buffer must not live on in a connection that stays silent.
    if leftover.is_empty() {
        leftover = Vec::new();
    } else {
        leftover.shrink_to_fit();
    }
    loop {
        if inbound.is_empty() {
            let step = poll_fn(|cx| {
                conn.register(cx.waker());
                if let Some(request) = conn.close_request.borrow_mut().take() {
                    let (code, reason) = *request;
                    return Poll::Ready(Ok(Step::ServerClose(code, reason)));
                }
                if let Err(e) = poll_flush(conn, stream, fd, cx) {
                    return Poll::Ready(Err(e));
                }
                let mut scratch = shard.scratch.borrow_mut();
                match rt::poll_read(stream, cx, &mut scratch[..]) {
                    Poll::Pending => {
                        // Park only between messages with nothing to write: the resumed
                        // loop starts from a clean frame boundary and an empty queue.
                        if conn.park_wanted.replace(false)
                            && leftover.is_empty()
                            && !assembler.in_message()
                            && conn.out.borrow().is_empty()
                        {
                            return Poll::Ready(Ok(Step::Park));
                        }
                        Poll::Pending
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Ready(Ok(0)) => Poll::Ready(Ok(Step::Eof)),
                    Poll::Ready(Ok(n)) => {
                        conn.last_rx_s.set(shard.now_s());
                        conn.pinged.set(false);
                        if leftover.is_empty() {
                            let used = decode(
                                shard,
                                conn,
                                &decoder,
                                &mut assembler,
                                &mut scratch[..n],
                                &mut inbound,
                            );
                            leftover.extend_from_slice(&scratch[used..n]);
                        } else {
                            leftover.extend_from_slice(&scratch[..n]);
                            let used = decode(
                                shard,
                                conn,
                                &decoder,
                                &mut assembler,
                                &mut leftover,
                                &mut inbound,
                            );
                            leftover.drain(..used);
                        }
                        if leftover.is_empty() {
                            // No buffer is held by an idle connection.
                            leftover = Vec::new();
                        }
                        Poll::Ready(Ok(Step::Read))
                    }
                }
            })
            .await;
            match step {
                Ok(Step::Read) => {}
                Ok(Step::Park) => match park::dup(fd) {
                    Ok(parked) => return End::Park(parked),
                    // Out of descriptors: stay active, try again at a later sweep.
                    Err(e) => tracing::debug!(error = %e, "cannot park a socket"),
                },
                Ok(Step::Eof) | Err(_) => return End::Close(CloseCode::ABNORMAL.0, String::new()),
                Ok(Step::ServerClose(code, reason)) => {
                    conn.out.borrow_mut().push(encode::close(code, &reason));
                    return End::Close(code.0, reason);
                }
            }
        }
        while let Some(event) = inbound.pop_front() {
            match event {
                Inbound::Message(message) => {
                    if let Some(wait) = shard.send_home(ToHome::Message {
                        room: room.clone(),
                        conn: conn.cref,
                        message,
                    }) {
                        wait.await;
                    }
                }
                Inbound::PeerClose(code, reason) => {
                    // Answer with the same code (none if the peer sent none).
                    conn.out.borrow_mut().push(encode::close(CloseCode(code), ""));
                    return End::Close(code, reason);
                }
                Inbound::Error(e) => {
                    tracing::debug!(seq = conn.cref.seq, error = %e, "protocol error");
                    let code = e.close_code();
                    conn.out.borrow_mut().push(encode::close(code, &e.to_string()));
                    return End::Close(code.0, e.to_string());
                }
            }
        }
    }
}

/// Decodes whole frames from `buf`, answering pings and queueing what the room must see.
/// Returns the bytes used; stops after a close frame or an error.
fn decode(
    shard: &Shard,
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
                    Ok(Some(WsMessage::Ping(payload))) => {
                        conn.enqueue(encode::pong(payload), shard.limits().outbound_bytes_max);
                    }
                    Ok(Some(WsMessage::Text(s))) => {
                        inbound.push_back(Inbound::Message(Message::Text(s.into())))
                    }
                    Ok(Some(WsMessage::Binary(b))) => inbound
                        .push_back(Inbound::Message(Message::Binary(Bytes::copy_from_slice(b)))),
                    Ok(Some(WsMessage::Close(close))) => {
                        let (code, reason) = close
                            .map_or((CloseCode::NO_STATUS.0, String::new()), |c| {
                                (c.code.0, c.reason.to_owned())
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

/// Writes what is queued without blocking; when the socket is full, arms a writability
/// wake-up through glommio.
fn poll_flush(
    conn: &EdgeConn,
    stream: &mut TcpStream,
    fd: std::os::fd::RawFd,
    cx: &mut std::task::Context<'_>,
) -> io::Result<()> {
    let mut out = conn.out.borrow_mut();
    loop {
        if out.is_empty() {
            return Ok(());
        }
        match out.flush(fd)? {
            Flush::Done => return Ok(()),
            Flush::Blocked => {
                let written = match out.head() {
                    Some(head) => rt::poll_write(stream, cx, head),
                    None => return Ok(()),
                };
                match written {
                    Poll::Ready(Ok(n)) => out.advance(n),
                    Poll::Ready(Err(e)) => return Err(e),
                    Poll::Pending => return Ok(()),
                }
            }
        }
    }
}

/// After a close: flush what is queued (the close frame last), then wait briefly for the
/// peer to close its side, then let the socket drop.
async fn linger(shard: &Shard, conn: &EdgeConn, stream: &mut TcpStream) {
    let fd = rt::fd_of(stream);
    let deadline = Instant::now() + CLOSE_LINGER;
    let flushed = with_deadline(
        deadline,
        poll_fn(|cx| {
            conn.register(cx.waker());
            match poll_flush(conn, stream, fd, cx) {
                Err(_) => Poll::Ready(()),
                Ok(()) if conn.out.borrow().is_empty() => Poll::Ready(()),
                Ok(()) => Poll::Pending,
            }
        }),
    )
    .await;
    conn.out.borrow_mut().clear();
    if flushed.is_none() {
        return;
    }
    let _ = stream.shutdown(std::net::Shutdown::Write).await;
    let _ = with_deadline(
        deadline,
        poll_fn(|cx| {
            let mut scratch = shard.scratch.borrow_mut();
            match rt::poll_read(stream, cx, &mut scratch[..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Poll::Ready(()),
                Poll::Ready(Ok(_)) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Poll::Pending => Poll::Pending,
            }
        }),
    )
    .await;
}
