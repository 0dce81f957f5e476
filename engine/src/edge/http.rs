//! The HTTP phase of a socket: requests in a keep-alive loop until one upgrades (handed to
//! [`super::websocket`]) or the socket ends. Each request is read within its deadline
//! (`handshake_timeout_ms` for the first head and every body, `http_idle_timeout_ms`
//! between requests), routed (`/health`, a party path, or the server's `on_fetch`),
//! answered, and the answer written within `http_idle_timeout_ms`. An error answer ends the
//! connection gracefully ([`close_gracefully`]): the client reads the answer instead of a
//! reset.

use super::Edge;
use super::gate::{self, Gates};
use super::stream::Stream;
use super::websocket::Upgrade;
use crate::api::Lobby;
use crate::limits::{CLOSE_LINGER_MS, CONNECTION_TAG_CHARS_MAX};
use crate::payload::Request;
use crate::route::RoomKey;
use crate::rt::{TcpStream, within};
use bytes::Bytes;
use futures_lite::FutureExt;
use partyline_protocol::http::{
    BodyDecoder, BodyKind, EncodeOptions, HeadParser, HttpError, HttpLimits, RequestHead, Response,
};
use partyline_protocol::proxy::{self, ProxyHeader};
use partyline_protocol::route::{self, Route, RouteError};
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

/// A server-wide handler for paths that are not party paths (`None`: 404).
pub type FetchHandler = fn(Request) -> Pin<Box<dyn Future<Output = Option<Response>>>>;

/// How reading a request ended early.
enum HeadEnd {
    /// The peer closed, or the idle deadline passed with nothing read.
    Closed,
    /// Answer this, then close.
    Refuse(Response),
}

/// Where a request goes.
enum Target {
    Room { gates: Gates, key: RoomKey, connection_id: Option<String> },
    Health,
    Fetch,
    Refuse(Response),
}

/// Runs requests until one upgrades (`Some`) or the socket is done (`None`).
pub(super) async fn serve_http(edge: &Rc<Edge>, stream: &mut Stream) -> Option<Box<Upgrade>> {
    let limits = *edge.limits();
    let http_limits = HttpLimits {
        head_size_max: limits.http_head_size_max,
        body_size_max: limits.http_body_size_max,
        ..HttpLimits::default()
    };
    let mut parser = HeadParser::new(http_limits);
    let mut buf: Vec<u8> = Vec::new();
    let started = Instant::now();
    let client = client_address(edge, stream, &mut buf, limits.handshake_timeout_ms).await?;
    if let Some(tls) = &edge.tls {
        // TLS begins after the PROXY header, if any: what was read past it is the start
        // of the client's handshake. The handshake shares the first head's deadline.
        let deadline = started + Duration::from_millis(limits.handshake_timeout_ms);
        let started_tls = match tls.session() {
            Ok(session) => stream.start_tls(session, &buf),
            Err(e) => Err(io::Error::other(e)),
        };
        buf.clear();
        if let Err(e) = async {
            started_tls?;
            stream.handshake(deadline).await
        }
        .await
        {
            edge.traffic.tls_failed();
            tracing::debug!(error = %e, peer = ?client, "TLS handshake failed");
            return None;
        }
        edge.traffic.tls_done();
    }
    let mut first = true;
    loop {
        // The first head must arrive within the handshake timeout (slowloris); later ones
        // within the keep-alive idle timeout.
        let wait = if first { limits.handshake_timeout_ms } else { limits.http_idle_timeout_ms };
        let head = match next_head(edge, stream, &mut buf, &mut parser, wait).await {
            Ok(head) => head,
            Err(HeadEnd::Closed) => return None,
            Err(HeadEnd::Refuse(response)) => {
                refuse(edge, stream, &response).await;
                return None;
            }
        };
        first = false;
        buf.drain(..head.len());
        let target = target(edge, &head);
        if head.is_websocket_upgrade() {
            return match target {
                Target::Room { gates, key, connection_id } => Some(Box::new(Upgrade {
                    head,
                    gates,
                    key,
                    connection_id,
                    client,
                    leftover: buf,
                })),
                Target::Refuse(response) => {
                    refuse(edge, stream, &response).await;
                    None
                }
                _ => {
                    let response = Response::text(
                        404,
                        "Not found: WebSockets connect to /parties/<party>/<room>\n",
                    );
                    refuse(edge, stream, &response).await;
                    None
                }
            };
        }
        let body = match read_body(edge, stream, &mut buf, &head).await {
            Ok(body) => body,
            Err(None) => return None,
            Err(Some(response)) => {
                refuse(edge, stream, &response).await;
                return None;
            }
        };
        let request = request_of(&head, body, client);
        let response = match target {
            Target::Room { gates, key, .. } => room_request(edge, gates, key, request).await,
            Target::Health => health(edge),
            Target::Fetch => fetch(edge, request).await,
            Target::Refuse(response) => response,
        };
        let keep_alive = head.keep_alive();
        let options = EncodeOptions { keep_alive, head_request: head.method() == "HEAD" };
        if write_response(edge, stream, &response, options).await.is_err() {
            return None;
        }
        if !keep_alive {
            close_gracefully(edge, stream, Instant::now() + Duration::from_millis(CLOSE_LINGER_MS))
                .await;
            return None;
        }
    }
}

/// The client's address: the socket's peer, or, with `proxy_protocol`, what the PROXY
/// header at the start of the connection says (read into `buf`, within the handshake
/// timeout, and taken off it). `None` ends the connection: no valid header in time.
async fn client_address(
    edge: &Edge,
    stream: &mut Stream,
    buf: &mut Vec<u8>,
    wait_ms: u64,
) -> Option<Option<SocketAddr>> {
    let peer = stream.peer_addr();
    if !edge.runtime.config.proxy_protocol {
        return Some(peer);
    }
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    let reading = async {
        loop {
            if !buf.is_empty() {
                match proxy::parse(buf) {
                    Ok(Some((header, used))) => {
                        buf.drain(..used);
                        return Some(match header {
                            ProxyHeader::Proxied { source, .. } => Some(source),
                            ProxyHeader::Local => peer,
                        });
                    }
                    Ok(None) => {}
                    Err(e) => {
                        crate::log::warn_client!(error = %e, ?peer, "connection refused");
                        return None;
                    }
                }
            }
            match read_more(edge, stream, buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    };
    within(deadline, reading).await.flatten()
}

/// Reads the next request head within `wait_ms`.
async fn next_head(
    edge: &Edge,
    stream: &mut Stream,
    buf: &mut Vec<u8>,
    parser: &mut HeadParser,
    wait_ms: u64,
) -> Result<RequestHead, HeadEnd> {
    let deadline = Instant::now() + Duration::from_millis(wait_ms);
    let reading = async {
        loop {
            if !buf.is_empty() {
                match parser.parse(buf) {
                    Ok(Some(head)) => return Ok(head),
                    Ok(None) => {}
                    Err(e) => return Err(refusal_of(&e)),
                }
            }
            match read_more(edge, stream, buf).await {
                Ok(0) | Err(_) => return Err(HeadEnd::Closed),
                Ok(_) => {}
            }
        }
    };
    match within(deadline, reading).await {
        Some(result) => result,
        // Nothing read: an idle keep-alive connection ends quietly.
        None if buf.is_empty() => Err(HeadEnd::Closed),
        None => Err(HeadEnd::Refuse(Response::text(408, "request head too slow\n"))),
    }
}

fn refusal_of(e: &HttpError) -> HeadEnd {
    crate::log::warn_client!(error = %e, "bad request");
    HeadEnd::Refuse(Response::from_error(e))
}

/// Where the request goes; an upgrade is also checked for what only an upgrade forbids.
fn target(edge: &Edge, head: &RequestHead) -> Target {
    let routed = route::parse(head.origin_target(), &edge.route);
    let route = match routed {
        Ok(Some(route)) => route,
        Ok(None) if head.path() == "/health" && !head.is_websocket_upgrade() => {
            return Target::Health;
        }
        Ok(None) if head.is_websocket_upgrade() => {
            return Target::Refuse(Response::text(
                404,
                "Not found: WebSockets connect to /parties/<party>/<room>\n",
            ));
        }
        Ok(None) => return Target::Fetch,
        Err(e) => return Target::Refuse(route_refusal(&e)),
    };
    let Some(gates) = edge.gates.get(route.party).copied() else {
        return Target::Refuse(Response::text(404, format!("unknown party: {}\n", route.party)));
    };
    let key = RoomKey::new(route.party, route.room);
    if !head.is_websocket_upgrade() {
        return Target::Room { gates, key, connection_id: None };
    }
    if head.body() != BodyKind::Empty {
        return Target::Refuse(Response::text(400, "an upgrade request cannot have a body\n"));
    }
    match connection_id(&route) {
        Ok(connection_id) => Target::Room { gates, key, connection_id },
        Err(response) => Target::Refuse(response),
    }
}

/// The `_pk` of an upgrade: it becomes the connection's first tag, so it must fit a tag.
fn connection_id(route: &Route<'_>) -> Result<Option<String>, Response> {
    let Some(id) = route.connection_id() else { return Ok(None) };
    let chars = id.chars().count();
    if chars > CONNECTION_TAG_CHARS_MAX {
        return Err(Response::text(
            400,
            format!(
                "_pk is {chars} characters; a connection id has at most {CONNECTION_TAG_CHARS_MAX}\n"
            ),
        ));
    }
    Ok(Some(id.into_owned()))
}

fn route_refusal(e: &RouteError) -> Response {
    Response::text(e.status(), format!("{e}\n"))
}

/// Reads the body of a plain request within the handshake timeout; `Err(None)` if the
/// peer went away, `Err(Some(answer))` for a bad or slow body.
async fn read_body(
    edge: &Edge,
    stream: &mut Stream,
    buf: &mut Vec<u8>,
    head: &RequestHead,
) -> Result<Bytes, Option<Response>> {
    let limits = edge.limits();
    let deadline = Instant::now() + Duration::from_millis(limits.handshake_timeout_ms);
    if head.expects_continue() && head.body() != BodyKind::Empty {
        let sent = within(deadline, stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")).await;
        if !matches!(sent, Some(Ok(()))) {
            return Err(None);
        }
    }
    let mut decoder = BodyDecoder::new(head.body(), limits.http_body_size_max);
    let reading = async {
        let mut body = Vec::new();
        loop {
            let progress = decoder.decode(buf, &mut body).map_err(|e| {
                crate::log::warn_client!(error = %e, "bad request body");
                Some(Response::from_error(&e))
            })?;
            buf.drain(..progress.consumed);
            if progress.done {
                return Ok(body.into());
            }
            match read_more(edge, stream, buf).await {
                Ok(0) | Err(_) => return Err(None),
                Ok(_) => {}
            }
        }
    };
    within(deadline, reading)
        .await
        .unwrap_or_else(|| Err(Some(Response::text(408, "request body too slow\n"))))
}

/// Reads once into the shard's scratch buffer and appends what came to `buf`.
async fn read_more(edge: &Edge, stream: &mut Stream, buf: &mut Vec<u8>) -> io::Result<usize> {
    poll_fn(|cx| {
        let mut scratch = edge.scratch.borrow_mut();
        match stream.poll_read(cx, &mut scratch[..]) {
            Poll::Ready(Ok(n)) => {
                buf.extend_from_slice(&scratch[..n]);
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    })
    .await
}

/// `/health`: 200 while the server can serve, 503 (with the reason) when room storage is
/// down, so a load balancer stops sending clients to a server whose rooms would fail.
fn health(edge: &Edge) -> Response {
    match edge.runtime.store.health() {
        Ok(()) => Response::text(200, "ok\n"),
        Err(e) => Response::text(503, format!("storage: {e}\n")),
    }
}

async fn room_request(edge: &Edge, gates: Gates, key: RoomKey, request: Request) -> Response {
    let lobby = Lobby::new(edge.runtime.clone(), &key.party, &key.room);
    let timeout = Duration::from_millis(edge.limits().hook_timeout_ms);
    let request = match gate::run(gates.before_request, request, &lobby, timeout).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    drop(lobby);
    let deadline = edge.runtime.answer_deadline();
    match edge.router().request(key, request, deadline).await {
        Some(response) => response,
        None => Response::text(
            504,
            format!("the room did not answer within {} ms\n", edge.limits().room_answer_timeout_ms),
        ),
    }
}

/// A path that is not a party path: the server's `on_fetch` first, then the `serve`
/// folder, then 404.
async fn fetch(edge: &Edge, request: Request) -> Response {
    let static_file = |request: &Request| {
        let assets = edge.assets.as_ref()?.current();
        assets.respond(&request.method, &request.target, request.header("if-none-match"))
    };
    let Some(on_fetch) = edge.on_fetch else {
        return static_file(&request).unwrap_or_else(|| Response::text(404, "Not found\n"));
    };
    let deadline = Instant::now() + Duration::from_millis(edge.limits().hook_timeout_ms);
    let (method, target, etag) = (
        request.method.clone(),
        request.target.clone(),
        request.header("if-none-match").map(str::to_owned),
    );
    match within(deadline, AssertUnwindSafe(on_fetch(request)).catch_unwind()).await {
        Some(Ok(Some(response))) => response,
        Some(Ok(None)) => edge
            .assets
            .as_ref()
            .and_then(|a| a.current().respond(&method, &target, etag.as_deref()))
            .unwrap_or_else(|| Response::text(404, "Not found\n")),
        Some(Err(_)) => Response::text(500, "internal error\n"),
        None => Response::text(504, "on_fetch timed out\n"),
    }
}

pub(super) fn request_of(head: &RequestHead, body: Bytes, client: Option<SocketAddr>) -> Request {
    Request {
        client,
        method: head.method().to_owned(),
        target: head.origin_target().to_owned(),
        headers: head
            .headers()
            .map(|(n, v)| (n.to_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect(),
        body,
    }
}

/// Writes a response within `http_idle_timeout_ms` (a client that does not take it by
/// then is gone for our purposes).
async fn write_response(
    edge: &Edge,
    stream: &mut Stream,
    response: &Response,
    options: EncodeOptions,
) -> io::Result<()> {
    let bytes = match response.encode(options) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "party built an invalid response");
            Response::text(500, format!("{e}\n")).encode(options).unwrap_or_default()
        }
    };
    let deadline = Instant::now() + Duration::from_millis(edge.limits().http_idle_timeout_ms);
    edge.traffic.written(bytes.len());
    within(deadline, stream.write_all(&bytes))
        .await
        .unwrap_or_else(|| Err(io::ErrorKind::TimedOut.into()))
}

/// Answers with `response` and ends the connection gracefully.
pub(super) async fn refuse(edge: &Edge, stream: &mut Stream, response: &Response) {
    edge.traffic.refusal(response.status());
    let options = EncodeOptions { keep_alive: false, head_request: false };
    if write_response(edge, stream, response, options).await.is_ok() {
        let deadline = Instant::now() + Duration::from_millis(CLOSE_LINGER_MS);
        close_gracefully(edge, stream, deadline).await;
    }
}

/// Ends a connection without resetting it: stops writing (the peer sees end of stream
/// after everything sent), then reads and drops whatever the peer still sends until it
/// closes its side or `deadline` passes. Closing a socket with unread bytes would make the
/// kernel send a reset, which makes the peer's kernel drop data its program has not read
/// yet, such as the answer just written.
pub(super) async fn close_gracefully(edge: &Edge, stream: &mut Stream, deadline: Instant) {
    let _ = within(deadline, stream.shutdown_write()).await;
    let _ = within(
        deadline,
        poll_fn(|cx| {
            let mut scratch = edge.scratch.borrow_mut();
            match stream.poll_read(cx, &mut scratch[..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Poll::Ready(()),
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
}

/// Answers a socket refused at accept (over the shard's connection limit) in a task of its
/// own, gracefully.
pub(super) fn refuse_in_task(edge: Rc<Edge>, tcp: TcpStream, response: Response) {
    glommio::spawn_local(async move {
        let mut stream = Stream::plain(tcp);
        // With TLS the answer needs the handshake first (bounded like any other).
        if let Some(tls) = &edge.tls {
            let deadline =
                Instant::now() + Duration::from_millis(edge.limits().handshake_timeout_ms);
            let Ok(session) = tls.session() else { return };
            if stream.start_tls(session, &[]).is_err() || stream.handshake(deadline).await.is_err()
            {
                return;
            }
        }
        refuse(&edge, &mut stream, &response).await;
    })
    .detach();
}
