//! Integration tests of the room semantics PartyKit defines, against a real server on an
//! ephemeral loopback port with real WebSocket clients: routing, ids, tags, hook order,
//! gates, broadcast across shards, errors contained to one room.

mod common;

use common::*;
use partyline::{
    CloseCode, ConnectContext, Connection, Error, Gate, Lobby, Message, Party, Request, Response,
    Result, Room, Server,
};
use std::time::Duration;

/// A party that reports what it sees, driven by text commands.
struct Probe {
    room: Room,
}

impl Party for Probe {
    async fn on_start(room: Room) -> Result<Self> {
        if room.id() == "boom" {
            panic!("on_start panics in room boom");
        }
        Ok(Probe { room })
    }

    fn connection_tags(&mut self, conn: &Connection, ctx: &ConnectContext) -> Result<Vec<String>> {
        let _ = conn;
        let query = ctx.request.target.split_once("tags=").map(|(_, t)| t);
        Ok(match query {
            Some("empty") => vec![String::new()],
            Some(list) => {
                list.split(',').map(|t| t.split('&').next().unwrap_or("").to_owned()).collect()
            }
            None => Vec::new(),
        })
    }

    async fn on_connect(&mut self, conn: &Connection, ctx: &ConnectContext) -> Result<()> {
        if ctx.request.target.contains("fail") {
            return Err("on_connect said no".into());
        }
        let user = ctx.request.header("x-user").unwrap_or("-");
        conn.send(format!("hello {} {} {} {}", conn.id(), conn.uri(), conn.tags().join(","), user))
    }

    async fn on_message(&mut self, message: Message, sender: &Connection) -> Result<()> {
        let text = message.text()?.to_owned();
        let reply = match text.split_once(':').unwrap_or((&text, "")) {
            ("count", _) => self.room.connections(None).len().to_string(),
            ("tag", tag) => self.room.connections(Some(tag)).len().to_string(),
            ("lookup", id) => match self.room.connection(id) {
                Ok(Some(c)) => format!("found {}", c.id()),
                Ok(None) => "none".into(),
                Err(e) => format!("error {e}"),
            },
            ("panic", _) => panic!("on_message panics on request"),
            ("fail", _) => return Err("on_message failed on request".into()),
            ("close", _) => {
                sender.close(CloseCode(4000), "bye");
                return Ok(());
            }
            ("state", value) if !value.is_empty() => {
                sender.set_state(value.as_bytes().to_vec())?;
                "ok".into()
            }
            ("state", _) => {
                String::from_utf8_lossy(&sender.state().unwrap_or_default()).into_owned()
            }
            ("room", _) => format!("{} {}", self.room.name(), self.room.id()),
            _ => format!("echo {text}"),
        };
        sender.send(reply)
    }

    async fn on_request(&mut self, request: Request) -> Result<Response> {
        if request.path().ends_with("/panic") {
            panic!("on_request panics on request");
        }
        if request.path().ends_with("/fail") {
            return Err("on_request failed".into());
        }
        Ok(Response::text(
            200,
            format!("{} {} {}", request.method, request.target, request.text()?),
        ))
    }

    /// Gated paths need a token; the gate asks another room (through the lobby) who the
    /// token belongs to, and adds the realm from the server's env.
    async fn on_before_connect(request: Request, lobby: &Lobby) -> Result<Gate> {
        if !request.target.contains("/gated/") {
            return Ok(Gate::Continue(request));
        }
        let token = match request.header("x-token") {
            None => return Err("missing token".into()),
            Some("teapot") => return Ok(Gate::Respond(Response::text(418, "short and stout"))),
            Some("forbidden") => return Err(Error::client(403, "no entry")),
            Some(token) => token.to_owned(),
        };
        assert_eq!((lobby.name(), lobby.id()), ("probe", "gated"));
        let lookup = Request::new("POST", "/parties/probe/directory").with_body(token);
        let answer = lobby.fetch("probe", "directory", lookup).await?;
        let user =
            String::from_utf8_lossy(answer.body()).rsplit(' ').next().unwrap_or("").to_owned();
        let realm = lobby.env("REALM").unwrap_or("none");
        Ok(Gate::Continue(request.with_header("x-user", format!("{user}@{realm}"))))
    }
}

/// Takes messages in batches of at most 4, writes each batch durably, then answers every
/// sender with the batch (`<size>:<texts>`).
struct Batcher {
    room: Room,
}

impl Party for Batcher {
    const MESSAGE_BATCH_MAX: usize = 4;

    async fn on_start(room: Room) -> Result<Self> {
        Ok(Batcher { room })
    }

    async fn on_message(&mut self, message: Message, sender: &Connection) -> Result<()> {
        self.on_messages(vec![(message, sender.clone())]).await
    }

    async fn on_messages(&mut self, batch: Vec<(Message, Connection)>) -> Result<()> {
        let texts = batch.iter().map(|(m, _)| m.text()).collect::<Result<Vec<_>>>()?.join(",");
        self.room.storage().put("last", texts.clone()).await?;
        let mut answered: Vec<&str> = Vec::new();
        for (_, sender) in &batch {
            if !answered.contains(&sender.id()) {
                answered.push(sender.id());
                sender.send(format!("{}:{texts}", batch.len()))?;
            }
        }
        Ok(())
    }
}

fn server(shards: usize) -> Server {
    let mut cfg = config(shards);
    cfg.env.insert("REALM".into(), "test-realm".into());
    Server::new(cfg).with_builtin_parties().party::<Probe>("probe").party::<Batcher>("batcher")
}

/// Messages that queue while a room waits (here for a durable write) reach a party that
/// batches in one `on_messages` call each, in order, never more than its
/// `MESSAGE_BATCH_MAX`; no message is lost or repeated.
#[test]
fn queued_messages_reach_a_batching_party_together_in_order() {
    let (srv, addr) = start(server(2));
    let (mut ws, _) = ws(addr, "/parties/batcher/b");
    for i in 0..40 {
        ws.write(tungstenite::Message::Text(i.to_string().into())).unwrap();
    }
    ws.flush().unwrap();
    let (mut seen, mut sizes) = (Vec::new(), Vec::new());
    while seen.len() < 40 {
        let answer = read_text(&mut ws);
        let (size, texts) = answer.split_once(':').expect("size:texts");
        let texts: Vec<u32> = texts.split(',').map(|t| t.parse().unwrap()).collect();
        assert_eq!(size.parse::<usize>().unwrap(), texts.len(), "{answer}");
        sizes.push(texts.len());
        seen.extend(texts);
    }
    assert_eq!(seen, (0..40).collect::<Vec<u32>>(), "every message once, in order");
    assert!(sizes.iter().all(|&n| (1..=4).contains(&n)), "{sizes:?}");
    assert!(sizes.iter().any(|&n| n > 1), "messages queued behind a write go together: {sizes:?}");
    srv.shutdown().unwrap();
}

#[test]
fn echo_text_and_binary() {
    let (srv, addr) = start(server(1));
    let (mut ws, _) = ws(addr, "/parties/echo/r1");
    send_text(&mut ws, "héllo");
    assert_eq!(read_text(&mut ws), "héllo");
    ws.send(tungstenite::Message::Binary(vec![0u8, 159, 255].into())).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::Binary(vec![0u8, 159, 255].into()));
    srv.shutdown().unwrap();
}

#[test]
fn ids_uri_and_tags() {
    let (srv, addr) = start(server(1));
    let (mut ws, _) = ws(addr, "/parties/probe/r?_pk=abc&tags=red,blue");
    assert_eq!(
        read_text(&mut ws),
        format!("hello abc ws://{addr}/parties/probe/r?_pk=abc&tags=red,blue abc,red,blue -")
    );
    send_text(&mut ws, "tag:red");
    assert_eq!(read_text(&mut ws), "1");
    send_text(&mut ws, "tag:green");
    assert_eq!(read_text(&mut ws), "0");
    // Without _pk the server generates a UUID.
    let (mut ws2, _) = common::ws(addr, "/parties/probe/r");
    let hello = read_text(&mut ws2);
    let id = hello.split(' ').nth(1).unwrap();
    assert_eq!(id.len(), 36, "{hello}");
    srv.shutdown().unwrap();
}

#[test]
fn tag_rules_close_with_1011() {
    let (srv, addr) = start(server(1));
    let nine: Vec<String> = (1..=9).map(|i| format!("t{i}")).collect();
    let (mut ok, _) = ws(addr, &format!("/parties/probe/r?tags={}", nine.join(",")));
    assert!(read_text(&mut ok).starts_with("hello"));
    let ten: Vec<String> = (1..=10).map(|i| format!("t{i}")).collect();
    let (mut too_many, _) = ws(addr, &format!("/parties/probe/r?tags={}", ten.join(",")));
    let (code, reason) = read_close(&mut too_many);
    assert_eq!(code, 1011);
    assert!(reason.contains("at most 10 tags"), "{reason}");
    let (mut empty, _) = ws(addr, "/parties/probe/r?tags=empty");
    let (code, reason) = read_close(&mut empty);
    assert_eq!(code, 1011);
    assert!(reason.contains("1 to 256"), "{reason}");
    let long = "x".repeat(257);
    let (mut too_long, _) = ws(addr, &format!("/parties/probe/r?tags={long}"));
    assert_eq!(read_close(&mut too_long).0, 1011);
    srv.shutdown().unwrap();
}

#[test]
fn duplicate_ids_are_an_error_on_lookup() {
    let (srv, addr) = start(server(1));
    let (mut a, _) = ws(addr, "/parties/probe/dup?_pk=same");
    read_text(&mut a);
    send_text(&mut a, "lookup:same");
    assert_eq!(read_text(&mut a), "found same");
    let (mut b, _) = ws(addr, "/parties/probe/dup?_pk=same");
    read_text(&mut b);
    send_text(&mut a, "lookup:same");
    assert_eq!(read_text(&mut a), "error 2 open connections have the id \"same\"");
    send_text(&mut a, "lookup:other");
    assert_eq!(read_text(&mut a), "none");
    send_text(&mut a, "count");
    assert_eq!(read_text(&mut a), "2");
    srv.shutdown().unwrap();
}

#[test]
fn failing_on_connect_upgrades_then_closes_1011() {
    let (srv, addr) = start(server(1));
    let (mut ws, _) = ws(addr, "/parties/probe/r/fail");
    assert_eq!(read_close(&mut ws), (1011, "on_connect said no".into()));
    srv.shutdown().unwrap();
}

#[test]
fn before_connect_gate() {
    let (srv, addr) = start(server(1));
    let err = try_ws(addr, "/parties/probe/gated/x").unwrap_err();
    match err {
        tungstenite::Error::Http(r) => {
            assert_eq!(r.status(), 401);
            assert_eq!(
                String::from_utf8_lossy(r.body().as_deref().unwrap_or_default()),
                "missing token\n"
            );
        }
        e => panic!("expected 401, got {e}"),
    }
    let request = |token: &str| {
        let mut r = tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{addr}/parties/probe/gated/x"
        ))
        .unwrap();
        r.headers_mut().insert("x-token", token.parse().unwrap());
        r
    };
    let stream = std::net::TcpStream::connect(addr).unwrap();
    match tungstenite::client::client(request("teapot"), stream) {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            assert_eq!(r.status(), 418)
        }
        other => panic!("expected 418, got {:?}", other.map(|_| ())),
    }
    let stream = std::net::TcpStream::connect(addr).unwrap();
    match tungstenite::client::client(request("forbidden"), stream) {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            assert_eq!(r.status(), 403, "a client error from a gate keeps its status")
        }
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    let stream = std::net::TcpStream::connect(addr).unwrap();
    let (mut ws, _) = tungstenite::client::client(request("good"), stream).unwrap();
    let hello = read_text(&mut ws);
    assert!(hello.ends_with(" good@test-realm"), "{hello}");
    srv.shutdown().unwrap();
}

#[test]
fn unknown_party_and_bad_paths_are_404() {
    let (srv, addr) = start(server(1));
    for path in ["/parties/nope/r", "/parties/probe", "/parties", "/elsewhere"] {
        match try_ws(addr, path) {
            Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 404, "{path}"),
            other => panic!("{path}: expected 404, got {:?}", other.map(|_| ())),
        }
        assert_eq!(http(addr, "GET", path, "").0, 404, "{path}");
    }
    assert_eq!(http(addr, "GET", "/health", ""), (200, "ok\n".into()));
    srv.shutdown().unwrap();
}

#[test]
fn room_ids_keep_their_percent_encoding() {
    let (srv, addr) = start(server(1));
    let (mut ws, _) = ws(addr, "/parties/probe/a%20b%20%C3%BC");
    read_text(&mut ws);
    send_text(&mut ws, "room");
    assert_eq!(read_text(&mut ws), "probe a%20b%20%C3%BC");
    srv.shutdown().unwrap();
}

#[test]
fn http_requests_reach_on_request_with_the_full_target() {
    let (srv, addr) = start(server(2));
    assert_eq!(
        http(addr, "POST", "/parties/probe/r/sub/path?x=1", "body!"),
        (200, "POST /parties/probe/r/sub/path?x=1 body!".into())
    );
    // Relay has no on_request: 500, as PartyKit answers.
    assert_eq!(http(addr, "GET", "/parties/relay/r", "").0, 500);
    assert_eq!(http(addr, "GET", "/parties/probe/r/fail", ""), (500, "on_request failed\n".into()));
    srv.shutdown().unwrap();
}

#[test]
fn panics_are_contained_to_their_room() {
    let (srv, addr) = start(server(1));
    let (mut victim, _) = ws(addr, "/parties/probe/room1?_pk=victim");
    read_text(&mut victim);
    let (mut neighbour, _) = ws(addr, "/parties/probe/room1?_pk=neighbour");
    read_text(&mut neighbour);
    let (mut elsewhere, _) = ws(addr, "/parties/probe/room2");
    read_text(&mut elsewhere);
    send_text(&mut victim, "panic");
    assert_eq!(read_close(&mut victim), (1011, "internal error".into()));
    // The same room goes on with a fresh instance; other rooms never noticed.
    send_text(&mut neighbour, "ping");
    assert_eq!(read_text(&mut neighbour), "echo ping");
    send_text(&mut elsewhere, "ping");
    assert_eq!(read_text(&mut elsewhere), "echo ping");
    // A failing (not panicking) hook keeps the connection.
    send_text(&mut neighbour, "fail");
    send_text(&mut neighbour, "still");
    assert_eq!(read_text(&mut neighbour), "echo still");
    // Panics in on_request and on_start answer 500 / 1011.
    assert_eq!(http(addr, "GET", "/parties/probe/room1/panic", "").0, 500);
    assert_eq!(http(addr, "GET", "/parties/probe/room1/ok", "").0, 200);
    assert_eq!(http(addr, "GET", "/parties/probe/boom", "").0, 500);
    let (mut boom, _) = ws(addr, "/parties/probe/boom");
    assert_eq!(read_close(&mut boom).0, 1011);
    srv.shutdown().unwrap();
}

#[test]
fn server_initiated_close_and_state() {
    let (srv, addr) = start(server(1));
    let (mut ws, _) = ws(addr, "/parties/probe/r");
    read_text(&mut ws);
    send_text(&mut ws, "state:blue");
    assert_eq!(read_text(&mut ws), "ok");
    send_text(&mut ws, "state");
    assert_eq!(read_text(&mut ws), "blue");
    let big = "x".repeat(16 * 1024 + 1);
    send_text(&mut ws, &format!("state:{big}"));
    send_text(&mut ws, "state");
    assert_eq!(read_text(&mut ws), "blue", "an oversized state is refused");
    send_text(&mut ws, "close");
    assert_eq!(read_close(&mut ws), (4000, "bye".into()));
    srv.shutdown().unwrap();
}

#[test]
fn relay_broadcasts_across_shards_without_echo() {
    let (srv, addr) = start(server(2));
    // SO_REUSEPORT spreads sockets over both shards; connect until both hold some.
    let mut clients = Vec::new();
    let mut seen = [false; 2];
    for _ in 0..64 {
        let (c, shard) = ws(addr, "/parties/relay/big");
        seen[shard] = true;
        clients.push(c);
        if seen == [true, true] && clients.len() >= 4 {
            break;
        }
    }
    assert_eq!(seen, [true, true], "64 sockets all landed on one shard");
    // Every client sends once; every other client receives it, the sender nothing.
    // Connection sequence numbers repeat across shards, so this also checks that
    // "without" names connections by shard and number.
    for i in 0..clients.len() {
        let text = format!("from {i}");
        send_text(&mut clients[i], &text);
        for (j, c) in clients.iter_mut().enumerate() {
            if j != i {
                assert_eq!(read_text(c), text, "receiver {j}");
            }
        }
        let sender = &mut clients[i];
        sender.get_mut().set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        assert!(sender.read().is_err(), "sender {i} received its own broadcast");
        sender.get_mut().set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    srv.shutdown().unwrap();
}

#[test]
fn room_connection_limit_answers_503() {
    let mut cfg = config(1);
    cfg.limits.connections_per_room_max = 2;
    let (srv, addr) = start(Server::new(cfg).party::<Probe>("probe"));
    let (mut a, _) = ws(addr, "/parties/probe/full");
    read_text(&mut a);
    let (mut b, _) = ws(addr, "/parties/probe/full");
    read_text(&mut b);
    match try_ws(addr, "/parties/probe/full") {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!("expected 503, got {:?}", other.map(|_| ())),
    }
    // Another room is not affected.
    let (mut c, _) = ws(addr, "/parties/probe/other");
    assert!(read_text(&mut c).starts_with("hello"));
    srv.shutdown().unwrap();
}

#[test]
fn shutdown_closes_sockets_with_1012() {
    let (srv, addr) = start(server(2));
    let (mut a, _) = ws(addr, "/parties/echo/r");
    let (mut b, _) = ws(addr, "/parties/echo/r");
    srv.begin_shutdown();
    assert_eq!(read_close(&mut a).0, 1012);
    assert_eq!(read_close(&mut b).0, 1012);
    srv.wait().unwrap();
}

/// Room ids whose percent-escapes differ only in the case of their hex digits are one room
/// (RFC 3986 §6.2.2.1), and party code sees the upper-case spelling; a raw space in the
/// request line is a malformed request (400), not an unsupported version (505).
#[test]
fn percent_escape_case_does_not_split_a_room_and_a_raw_space_is_400() {
    let (srv, addr) = start(Server::new(config(2)).with_builtin_parties());
    let (mut lower, _) = ws(addr, "/parties/main/caf%c3%a9");
    assert_eq!(read_text(&mut lower), "[]");
    let (mut upper, _) = ws(addr, "/parties/main/caf%C3%A9");
    assert_eq!(read_text(&mut upper), "[]");
    send_text(&mut lower, "one room");
    assert_eq!(read_text(&mut upper), "one room");
    let (status, body) = http(addr, "GET", "/parties/echo/caf%c3%a9", "");
    assert_eq!(status, 200);
    assert!(body.contains(r#""room":"caf%C3%A9""#), "{body}");
    let answer =
        raw_http(addr, b"GET /parties/main/a b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    srv.shutdown().unwrap();
}
