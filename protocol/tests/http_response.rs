//! Response encoding: status line, headers, Content-Length, HEAD and keep-alive handling,
//! and refusal of header values that would split the response.

use partyline_protocol::http::{EncodeOptions, HttpError, Response, reason_phrase};

fn encode(r: &Response, keep_alive: bool, head_request: bool) -> String {
    String::from_utf8(r.encode(EncodeOptions { keep_alive, head_request }).unwrap().to_vec())
        .unwrap()
}

#[test]
fn text_response() {
    let r = Response::text(200, "hi");
    assert_eq!(
        encode(&r, true, false),
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 2\r\n\r\nhi"
    );
}

#[test]
fn connection_close_and_head() {
    let r = Response::json(404, "{}");
    assert_eq!(
        encode(&r, false, true),
        "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n"
    );
}

#[test]
fn framing_headers_from_parties_are_replaced() {
    let r = Response::new(200)
        .with_header("Content-Length", "999")
        .with_header("Transfer-Encoding", "chunked")
        .with_header("Connection", "keep-alive")
        .with_body("abc");
    assert_eq!(encode(&r, true, false), "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc");
}

#[test]
fn bodyless_statuses() {
    for status in [101, 204, 304] {
        let out = encode(&Response::new(status).with_body("x"), true, false);
        assert!(!out.contains("content-length"), "{out}");
        assert!(out.ends_with("\r\n\r\n"), "{out}");
    }
}

#[test]
fn invalid_headers_are_refused() {
    let cases = [
        ("X-A", "a\r\nSet-Cookie: evil"),
        ("X-A", "a\nb"),
        ("X-A", "a\0"),
        ("Bad Name", "v"),
        ("", "v"),
        ("a:b", "v"),
    ];
    for (name, value) in cases {
        let err = Response::new(200)
            .with_header(name, value)
            .encode(EncodeOptions::default())
            .unwrap_err();
        assert_eq!(err, HttpError::InvalidResponseHeader { name: name.to_owned() });
        assert_eq!(err.status(), 500);
        assert!(!err.is_client_error());
    }
}

#[test]
fn error_responses_name_the_problem() {
    let err = HttpError::BodyTooLarge { limit: 10 };
    let out = encode(&Response::from_error(&err), false, false);
    assert!(out.starts_with("HTTP/1.1 413 Content Too Large\r\n"), "{out}");
    assert!(out.ends_with("request body exceeds 10 bytes\n"), "{out}");
}

#[test]
fn odd_statuses() {
    assert!(encode(&Response::new(299), true, false).starts_with("HTTP/1.1 299 Unknown\r\n"));
    assert!(encode(&Response::new(42), true, false).starts_with("HTTP/1.1 500 Internal"));
    assert_eq!(reason_phrase(426), "Upgrade Required");
}

#[test]
fn switching_protocols_keeps_connection_upgrade() {
    let r =
        Response::new(101).with_header("upgrade", "websocket").with_header("connection", "Upgrade");
    assert_eq!(
        encode(&r, false, false),
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n"
    );
}
