//! The opening handshake: the RFC 6455 §1.3 example, every refusal with its status, token
//! lists and subprotocol choice.

use partyline_protocol::http::{EncodeOptions, HeadParser, HttpLimits, RequestHead};
use partyline_protocol::ws::handshake::{HandshakeConfig, HandshakeError, accept, accept_key};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn head(lines: &str) -> RequestHead {
    let text = format!("{lines}\r\n\r\n").replace('\n', "\r\n").replace("\r\r\n", "\r\n");
    HeadParser::new(HttpLimits::default()).parse(text.as_bytes()).unwrap().unwrap()
}

fn upgrade(extra: &str) -> RequestHead {
    head(&format!(
        "GET /parties/main/r HTTP/1.1\nHost: x\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Version: 13\n{extra}"
    ))
}

#[test]
fn rfc_6455_example_key() {
    assert_eq!(accept_key(KEY.as_bytes()), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

#[test]
fn accepted_upgrade_response() {
    let ok = accept(&upgrade(&format!("Sec-WebSocket-Key: {KEY}")), &HandshakeConfig::default())
        .unwrap();
    assert_eq!(ok.protocol, None);
    let bytes = ok.response().encode(EncodeOptions::default()).unwrap();
    assert_eq!(
        std::str::from_utf8(&bytes).unwrap(),
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    );
}

#[test]
fn tokens_are_case_insensitive_lists() {
    let h = head(&format!(
        "GET / HTTP/1.1\nHost: x\nUpgrade: h2c, WebSocket\nConnection: keep-alive, UPGRADE\nSec-WebSocket-Version: 13\nSec-WebSocket-Key: {KEY}"
    ));
    assert!(accept(&h, &HandshakeConfig::default()).is_ok());
}

#[test]
fn refusals() {
    let good_key = format!("Sec-WebSocket-Key: {KEY}");
    let cases: Vec<(RequestHead, HandshakeError)> = vec![
        (
            head(&format!(
                "POST / HTTP/1.1\nHost: x\nUpgrade: websocket\nConnection: upgrade\nSec-WebSocket-Version: 13\n{good_key}"
            )),
            HandshakeError::NotGet,
        ),
        (
            head(&format!(
                "GET / HTTP/1.0\nUpgrade: websocket\nConnection: upgrade\nSec-WebSocket-Version: 13\n{good_key}"
            )),
            HandshakeError::Http10,
        ),
        (
            head(&format!(
                "GET / HTTP/1.1\nHost: x\nUpgrade: h2c\nConnection: upgrade\nSec-WebSocket-Version: 13\n{good_key}"
            )),
            HandshakeError::NoUpgradeToken,
        ),
        (
            head(&format!(
                "GET / HTTP/1.1\nHost: x\nUpgrade: websocket\nConnection: keep-alive\nSec-WebSocket-Version: 13\n{good_key}"
            )),
            HandshakeError::NoConnectionUpgrade,
        ),
        (
            head(&format!(
                "GET / HTTP/1.1\nHost: x\nUpgrade: websocket\nConnection: upgrade\n{good_key}"
            )),
            HandshakeError::UnsupportedVersion,
        ),
        (
            head(&format!(
                "GET / HTTP/1.1\nHost: x\nUpgrade: websocket\nConnection: upgrade\nSec-WebSocket-Version: 8\n{good_key}"
            )),
            HandshakeError::UnsupportedVersion,
        ),
        (
            head(&format!(
                "GET / HTTP/1.1\nHost: x\nUpgrade: websocket\nConnection: upgrade\nSec-WebSocket-Version: 13\nSec-WebSocket-Version: 13\n{good_key}"
            )),
            HandshakeError::UnsupportedVersion,
        ),
        (upgrade(""), HandshakeError::BadKey),
        (upgrade("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ"), HandshakeError::BadKey),
        (upgrade("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR=="), HandshakeError::BadKey),
        (upgrade("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j*Q=="), HandshakeError::BadKey),
        (
            upgrade("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            HandshakeError::BadKey,
        ),
        (upgrade(&format!("{good_key}\n{good_key}")), HandshakeError::BadKey),
    ];
    for (h, expected) in cases {
        let err = accept(&h, &HandshakeConfig::default()).unwrap_err();
        assert_eq!(err, expected, "{h:?}");
    }
}

#[test]
fn refusal_statuses_and_bodies() {
    let r = HandshakeError::UnsupportedVersion.response();
    assert_eq!(r.status(), 426);
    assert_eq!(r.header("sec-websocket-version"), Some("13"));
    let r = HandshakeError::BadKey.response();
    assert_eq!(r.status(), 400);
    assert!(std::str::from_utf8(r.body()).unwrap().contains("Sec-WebSocket-Key"));
}

#[test]
fn subprotocol_choice_follows_server_preference() {
    let config = HandshakeConfig { subprotocols: vec!["yjs".into(), "chat".into()] };
    let key = format!("Sec-WebSocket-Key: {KEY}");
    let cases = [
        ("Sec-WebSocket-Protocol: chat, yjs", Some("yjs")),
        ("Sec-WebSocket-Protocol: other\nSec-WebSocket-Protocol: chat", Some("chat")),
        ("Sec-WebSocket-Protocol: other", None),
        ("", None),
    ];
    for (offer, chosen) in cases {
        let ok = accept(&upgrade(&format!("{key}\n{offer}")), &config).unwrap();
        assert_eq!(ok.protocol.as_deref(), chosen, "{offer}");
        let response = ok.response();
        assert_eq!(response.header("sec-websocket-protocol"), chosen);
    }
}

#[test]
fn client_side_handshake_round_trip() {
    use partyline_protocol::ws::handshake::client;
    // RFC 6455 §1.3: the nonce "the sample nonce".
    let key = client::key_from(*b"the sample nonce");
    assert_eq!(key, KEY);
    for bytes in [[0u8; 16], [255u8; 16], *b"0123456789abcdef"] {
        let k = client::key_from(bytes);
        let request = client::request("h", "/parties/main/r", &k);
        let head = HeadParser::new(HttpLimits::default()).parse(&request).unwrap().unwrap();
        let ok = accept(&head, &HandshakeConfig::default()).expect("our server accepts our client");
        let mut answer = ok.response().encode(EncodeOptions::default()).unwrap().to_vec();
        let len = answer.len();
        answer.extend_from_slice(b"\x81\x02hi");
        assert_eq!(client::check_response(&answer, &k), Ok(Some(len)));
        assert_eq!(client::check_response(&answer[..len - 1], &k), Ok(None));
        assert_eq!(client::check_response(&answer, KEY).is_err(), k != KEY);
    }
    let refused = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";
    assert_eq!(client::check_response(refused, KEY), Err(client::ClientError::Status(503)));
}
