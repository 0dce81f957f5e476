//! Bad and slow clients against a real server: malformed HTTP, protocol violations with
//! their close codes, oversized messages, a slowloris head, a slow consumer, pings, HTTP
//! keep-alive and pipelining, bodies on upgrades, overlong ids, refusals while the client
//! is still sending, a second server on the same port, and PROXY protocol headers (good,
//! missing, broken). Each must get the right answer,
//! delivered whole (never cut off by a reset), and harm nobody else.

mod common;

use common::*;
use partyline::Server;
use partyline_protocol::ws::{CloseCode, Opcode, encode};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn server() -> Server {
    Server::new(config(1)).with_builtin_parties()
}

#[test]
fn protocol_violations_close_with_the_right_code() {
    let (srv, addr) = start(server());
    let unmasked = encode::text("x").to_vec();
    let mut rsv = encode::client_frame(true, Opcode::Text, b"x", MASK).to_vec();
    rsv[0] |= 0x40;
    let mut bad_opcode = encode::client_frame(true, Opcode::Text, b"x", MASK).to_vec();
    bad_opcode[0] = 0x83;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked", unmasked, 1002),
        ("rsv1", rsv, 1002),
        ("opcode 3", bad_opcode, 1002),
        ("bad utf-8", encode::client_frame(true, Opcode::Text, b"\xff\xfe", MASK).to_vec(), 1007),
        (
            "lone continuation",
            encode::client_frame(true, Opcode::Continuation, b"x", MASK).to_vec(),
            1002,
        ),
        (
            "close code 1005",
            encode::client_frame(true, Opcode::Close, &1005u16.to_be_bytes(), MASK).to_vec(),
            1002,
        ),
    ];
    for (name, bytes, code) in cases {
        let mut raw = Raw::connect(addr, "/parties/echo/r");
        raw.send(&bytes);
        assert_eq!(raw.close_code(), code, "{name}");
    }
    // The server is fine afterwards.
    let (mut ws, _) = ws(addr, "/parties/echo/r");
    send_text(&mut ws, "still here");
    assert_eq!(read_text(&mut ws), "still here");
    srv.shutdown().unwrap();
}

#[test]
fn oversized_message_closes_1009_before_the_payload_arrives() {
    let mut cfg = config(1);
    cfg.limits.message_size_max = 1024;
    let (srv, addr) = start(Server::new(cfg).with_builtin_parties());
    let mut raw = Raw::connect(addr, "/parties/echo/r");
    // Exactly at the limit is fine.
    raw.send(&encode::client_frame(true, Opcode::Binary, &[7; 1024], MASK));
    assert_eq!(raw.frame().unwrap(), (Opcode::Binary, vec![7; 1024]));
    // One byte over: refused from the header alone (no payload sent at all).
    let header = &encode::client_frame(true, Opcode::Binary, &[7; 1025], MASK)[..8];
    raw.send(header);
    assert_eq!(raw.close_code(), CloseCode::MESSAGE_TOO_BIG.0);
    srv.shutdown().unwrap();
}

#[test]
fn fragmented_messages_and_pings() {
    let (srv, addr) = start(server());
    let mut raw = Raw::connect(addr, "/parties/echo/r");
    raw.send(&encode::client_frame(
        false,
        Opcode::Text,
        "caf\u{e9}".as_bytes()[..4].as_ref(),
        MASK,
    ));
    raw.send(&encode::client_frame(true, Opcode::Ping, b"are you there", MASK));
    raw.send(&encode::client_frame(true, Opcode::Continuation, &"caf\u{e9}".as_bytes()[4..], MASK));
    assert_eq!(raw.frame().unwrap(), (Opcode::Pong, b"are you there".to_vec()));
    assert_eq!(raw.frame().unwrap(), (Opcode::Text, "café".as_bytes().to_vec()));
    // A clean close is answered with the same code.
    raw.send(&encode::client_frame(true, Opcode::Close, &[0x03, 0xe8, b'o', b'k'], MASK));
    assert_eq!(raw.close_code(), 1000);
    srv.shutdown().unwrap();
}

#[test]
fn malformed_http_gets_4xx_and_the_server_goes_on() {
    let (srv, addr) = start(server());
    let cases: &[(&[u8], &str)] = &[
        (b"GARBAGE\r\n\r\n", "HTTP/1.1 400"),
        (b"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400"), // no Host
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", "HTTP/1.1 505"),
        (b"POST /parties/main/r HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", "HTTP/1.1 413"),
        (b"POST /parties/main/r HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "HTTP/1.1 501"),
        (
            b"GET /parties/echo/r HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            "HTTP/1.1 426",
        ),
        (
            b"GET /parties/echo/r HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n",
            "HTTP/1.1 400",
        ),
    ];
    for (request, status) in cases {
        let answer = raw_http(addr, request);
        assert!(answer.starts_with(status), "{:?} -> {answer:?}", String::from_utf8_lossy(request));
    }
    let mut huge = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
    huge.resize(20_000, b'a');
    assert!(raw_http(addr, &huge).starts_with("HTTP/1.1 431"));
    assert_eq!(http(addr, "GET", "/health", "").0, 200);
    srv.shutdown().unwrap();
}

#[test]
fn keep_alive_and_pipelining() {
    let (srv, addr) = start(server());
    let two = b"POST /parties/main/p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /parties/main/p HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let answer = raw_http(addr, two);
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 2, "{answer}");
    assert!(answer.contains("HTTP/1.1 201"), "{answer}");
    assert!(answer.ends_with("[\"hello\"]"), "{answer}");
    // Chunked bodies and HEAD.
    let chunked = b"POST /parties/main/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nHEAD /parties/main/c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let answer = raw_http(addr, chunked);
    assert!(answer.ends_with("content-length: 7\r\nconnection: close\r\n\r\n"), "{answer}");
    srv.shutdown().unwrap();
}

#[test]
fn slowloris_is_cut_off_and_harms_nobody() {
    let (srv, addr) = start(server());
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    slow.write_all(b"GET /parties/echo/r HTTP/1.1\r\nHost: x\r\n").unwrap();
    // Meanwhile others are served normally.
    let (mut ws, _) = ws(addr, "/parties/echo/r");
    send_text(&mut ws, "fine");
    assert_eq!(read_text(&mut ws), "fine");
    let _ = slow.write_all(b"X-Slow: 1\r\n");
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    // handshake_timeout_ms is 800 in tests.
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    srv.shutdown().unwrap();
}

#[test]
fn slow_consumer_is_closed_and_others_keep_receiving() {
    let mut cfg = config(1);
    cfg.limits.message_size_max = 16 * 1024;
    cfg.limits.outbound_bytes_max = 64 * 1024;
    let (srv, addr) = start(Server::new(cfg).with_builtin_parties());
    // The slow client joins the relay room and never reads.
    let mut slow = Raw::connect(addr, "/parties/relay/r");
    let (mut reader, _) = ws(addr, "/parties/relay/r");
    let (mut sender, _) = ws(addr, "/parties/relay/r");
    let payload = "x".repeat(16 * 1024);
    // 64 MiB through the room: far more than loopback socket buffers hold.
    for i in 0..4096 {
        send_text(&mut sender, &payload);
        assert_eq!(read_text(&mut reader).len(), payload.len(), "message {i}");
    }
    // The slow client's socket was closed: reading it to the end finishes, having got
    // far less than was sent.
    slow.stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut total = slow.buf.len();
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        match slow.stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    assert!(total < 32 << 20, "slow client received {total} bytes");
    srv.shutdown().unwrap();
}

#[test]
fn upgrades_with_a_body_or_an_overlong_id_and_bad_text_are_400() {
    let (srv, addr) = start(server());
    let upgrade = |extra: &str, path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
        )
    };
    // A body on an upgrade would otherwise be read as frames.
    let with_body = upgrade("Content-Length: 5\r\n", "/parties/echo/r") + "hello";
    let answer = raw_http(addr, with_body.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("cannot have a body"), "{answer}");
    // A _pk longer than a tag may be is refused before the upgrade, not after it.
    let long_id = format!("/parties/echo/r?_pk={}", "x".repeat(257));
    let answer = raw_http(addr, upgrade("", &long_id).as_bytes());
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let ok_id = format!("/parties/echo/r?_pk={}", "x".repeat(256));
    let (mut ws, _) = ws(addr, &ok_id);
    send_text(&mut ws, "ok");
    assert_eq!(read_text(&mut ws), "ok");
    // Bytes that are not UTF-8 posted to `main` are the client's error.
    let mut post = b"POST /parties/main/utf HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n".to_vec();
    post.extend_from_slice(&[0xff, 0xfe]);
    let answer = raw_http(addr, &post);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    srv.shutdown().unwrap();
}

#[test]
fn a_refused_request_arrives_whole_while_the_client_is_still_sending() {
    let mut cfg = config(1);
    cfg.limits.http_body_size_max = 64 * 1024;
    let (srv, addr) = start(Server::new(cfg).with_builtin_parties());
    for _ in 0..5 {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream
            .write_all(
                b"POST /parties/main/r HTTP/1.1\r\nHost: x\r\nContent-Length: 8388608\r\n\r\n",
            )
            .unwrap();
        // Keep sending the body: the server answers 413 early and must not reset the
        // connection while these bytes arrive.
        let mut writer = stream.try_clone().unwrap();
        let sending = std::thread::spawn(move || {
            let chunk = vec![b'b'; 64 * 1024];
            for _ in 0..128 {
                if writer.write_all(&chunk).is_err() {
                    return;
                }
            }
        });
        let mut answer = Vec::new();
        let result = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(result.is_ok(), "read failed ({result:?}) after {answer:?}");
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.ends_with('\n'), "the answer was cut: {answer:?}");
        sending.join().unwrap();
    }
    srv.shutdown().unwrap();
}

#[test]
fn a_slow_consumer_reads_its_close_frame_when_it_reads_again() {
    let mut cfg = config(1);
    cfg.limits.message_size_max = 16 * 1024;
    cfg.limits.outbound_bytes_max = 64 * 1024;
    let (srv, addr) = start(Server::new(cfg).with_builtin_parties());
    let mut slow = Raw::connect_with(addr, "/parties/relay/slow", Some(4096));
    let (mut reader, _) = ws(addr, "/parties/relay/slow");
    let (mut sender, _) = ws(addr, "/parties/relay/slow");
    let payload = "s".repeat(16 * 1024);
    // About 6.5 MB: more than the slow socket's kernel buffer and its 64 KiB queue.
    for _ in 0..400 {
        send_text(&mut sender, &payload);
        assert_eq!(read_text(&mut reader).len(), payload.len());
    }
    // Whole frames (the one cut short by the close is finished first), then 1008.
    let mut last = None;
    while let Some(frame) = slow.frame() {
        last = Some(frame);
    }
    let (op, payload) = last.expect("frames");
    assert_eq!(op, Opcode::Close);
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1008);
    srv.shutdown().unwrap();
}

#[test]
fn a_second_server_on_a_port_in_use_is_refused_unless_it_opts_in() {
    let (first, addr) = start(server());
    let mut cfg = config(1);
    cfg.listen = addr;
    let err = Server::new(cfg.clone()).with_builtin_parties().start().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    // Processes meant to share a port say so.
    cfg.reuse_port = true;
    cfg.data = data_dir();
    let second =
        Server::new(cfg).with_builtin_parties().start().expect("an opted-in server starts");
    second.shutdown().unwrap();
    // The first still serves.
    assert_eq!(http(addr, "GET", "/health", ""), (200, "ok\n".into()));
    first.shutdown().unwrap();
}

/// Tells each client the address the server sees for it: `on_request` answers it, and
/// `on_connect` sends it as the socket's first message.
struct Whois;

impl partyline::Party for Whois {
    async fn on_start(_room: partyline::Room) -> partyline::Result<Self> {
        Ok(Whois)
    }

    async fn on_connect(
        &mut self,
        conn: &partyline::Connection,
        ctx: &partyline::ConnectContext,
    ) -> partyline::Result<()> {
        conn.send(format!("{:?}", ctx.request.client))
    }

    async fn on_request(
        &mut self,
        request: partyline::Request,
    ) -> partyline::Result<partyline::Response> {
        Ok(partyline::Response::text(200, format!("{:?}", request.client)))
    }
}

fn whois_server(proxy_protocol: bool) -> (partyline::RunningServer, std::net::SocketAddr) {
    let mut cfg = config(1);
    cfg.proxy_protocol = proxy_protocol;
    start(Server::new(cfg).party::<Whois>("whois"))
}

fn proxy_v2(command: u8, family: u8, block: &[u8]) -> Vec<u8> {
    let mut out = partyline_protocol::proxy::V2_SIGNATURE.to_vec();
    out.extend_from_slice(&[0x20 | command, family]);
    out.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
    out.extend_from_slice(block);
    out
}

#[test]
fn the_proxy_protocol_header_gives_rooms_the_clients_address() {
    const GET: &[u8] = b"GET /parties/whois/w HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let body = |text: String| text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
    // Without the setting: the socket's peer, loopback here.
    let (srv, addr) = whois_server(false);
    let (status, seen) = http(addr, "GET", "/parties/whois/w", "");
    assert_eq!((status, seen.starts_with("Some(127.0.0.1:")), (200, true), "{seen}");
    srv.shutdown().unwrap();

    let (srv, addr) = whois_server(true);
    // Version 1, as HAProxy's send-proxy writes it.
    let v1 = [&b"PROXY TCP4 203.0.113.9 127.0.0.1 4711 1999\r\n"[..], GET].concat();
    assert_eq!(body(raw_http(addr, &v1)).as_deref(), Some("Some(203.0.113.9:4711)"));
    // Version 2, IPv6, with an extension after the addresses.
    let mut block = "2001:db8::7".parse::<std::net::Ipv6Addr>().unwrap().octets().to_vec();
    block.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    block.extend_from_slice(&[0x01, 0xBB, 0x07, 0xCF, 0x04, 0x00, 0x01, b'x']);
    let v2 = [proxy_v2(1, 0x21, &block), GET.to_vec()].concat();
    assert_eq!(body(raw_http(addr, &v2)).as_deref(), Some("Some([2001:db8::7]:443)"));
    // LOCAL (the balancer's own health check): the socket's own peer.
    let local = [proxy_v2(0, 0x00, &[]), GET.to_vec()].concat();
    let seen = body(raw_http(addr, &local)).unwrap_or_default();
    assert!(seen.starts_with("Some(127.0.0.1:"), "{seen}");
    // No header, or a broken one: closed without an answer, the server unharmed.
    assert_eq!(raw_http(addr, GET), "");
    assert_eq!(raw_http(addr, &[&b"PROXY TCP4 1.2.3.4\r\n"[..], GET].concat()), "");
    // The upgrade request carries it too (ConnectContext::request).
    let mut ws = TcpStream::connect(addr).unwrap();
    ws.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    ws.write_all(b"PROXY TCP4 198.51.100.2 127.0.0.1 5000 1999\r\n").unwrap();
    ws.write_all(
        b"GET /parties/whois/w HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut got = Vec::new();
    let expected = b"Some(198.51.100.2:5000)";
    let mut chunk = [0u8; 1024];
    while !got.windows(expected.len()).any(|w| w == expected) {
        let n = ws.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before the first message: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&chunk[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&got));
    srv.shutdown().unwrap();
}
