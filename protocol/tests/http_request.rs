//! Table-driven tests of request-head parsing and body framing, including byte-at-a-time
//! feeding, pipelining and every limit exactly at and one past its value.

use partyline_protocol::http::{
    BodyDecoder, BodyKind, HeadParser, HttpError, HttpLimits, RequestHead, Version,
};

fn parse_all(input: &[u8]) -> Result<Option<RequestHead>, HttpError> {
    HeadParser::new(HttpLimits::default()).parse(input)
}

fn parse_ok(input: &str) -> RequestHead {
    parse_all(input.as_bytes()).expect("valid").expect("complete")
}

fn status_of(input: &str) -> u16 {
    parse_all(input.as_bytes()).expect_err("should be refused").status()
}

#[test]
fn simple_get() {
    let input = "GET /parties/main/lobby?_pk=abc HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n";
    let head = parse_ok(input);
    assert_eq!(head.method(), "GET");
    assert_eq!(head.target(), "/parties/main/lobby?_pk=abc");
    assert_eq!(head.path(), "/parties/main/lobby");
    assert_eq!(head.query(), Some("_pk=abc"));
    assert_eq!(head.version(), Version::Http11);
    assert_eq!(head.header("x-a"), Some(&b"1"[..]));
    assert_eq!(head.header_str("HOST"), Some("x"));
    assert_eq!(head.body(), BodyKind::Empty);
    assert!(head.keep_alive());
    assert_eq!(head.len(), input.len());
}

#[test]
fn percent_encoding_is_left_untouched() {
    let head = parse_ok("GET /parties/main/a%20b%20%C3%BC HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(head.path(), "/parties/main/a%20b%20%C3%BC");
}

#[test]
fn need_more_until_blank_line() {
    let full = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut parser = HeadParser::new(HttpLimits::default());
    for end in 0..full.len() {
        assert!(parser.parse(&full[..end]).unwrap().is_none(), "complete too early at {end}");
    }
    assert_eq!(parser.parse(full).unwrap().unwrap().len(), full.len());
}

#[test]
fn byte_at_a_time_equals_all_at_once() {
    let full = b"POST /p?q=1 HTTP/1.1\r\nHost: example\r\nContent-Length: 3\r\n\r\nabc";
    let mut parser = HeadParser::new(HttpLimits::default());
    let mut buf = Vec::new();
    let mut head = None;
    for &b in full.iter() {
        buf.push(b);
        if let Some(h) = parser.parse(&buf).unwrap() {
            head = Some(h);
            break;
        }
    }
    let head = head.expect("complete");
    assert_eq!(head.len(), full.len() - 3);
    assert_eq!(head.body(), BodyKind::Length(3));
    assert_eq!(format!("{head:?}"), format!("{:?}", parse_ok(std::str::from_utf8(full).unwrap())));
}

#[test]
fn bare_lf_line_endings_are_accepted() {
    let head = parse_ok("GET /x HTTP/1.1\nHost: y\n\n");
    assert_eq!(head.path(), "/x");
    assert_eq!(head.len(), 25);
}

#[test]
fn leading_empty_lines_are_skipped() {
    let head = parse_ok("\r\n\r\nGET /x HTTP/1.1\r\nHost: y\r\n\r\n");
    assert_eq!(head.path(), "/x");
}

#[test]
fn pipelined_requests_parse_in_turn() {
    let two = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let mut parser = HeadParser::new(HttpLimits::default());
    let first = parser.parse(two).unwrap().unwrap();
    assert_eq!(first.path(), "/a");
    assert!(first.keep_alive());
    let second = parser.parse(&two[first.len()..]).unwrap().unwrap();
    assert_eq!(second.path(), "/b");
    assert!(!second.keep_alive());
    assert_eq!(first.len() + second.len(), two.len());
}

#[test]
fn keep_alive_rules() {
    let cases = [
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", true),
        ("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false),
        ("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, CLOSE\r\n\r\n", false),
        ("GET / HTTP/1.0\r\n\r\n", false),
        ("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
    ];
    for (input, keep) in cases {
        assert_eq!(parse_ok(input).keep_alive(), keep, "{input:?}");
    }
}

#[test]
fn absolute_form_targets() {
    let cases = [
        ("GET http://h:1999/parties/a/b?x=1 HTTP/1.1", "/parties/a/b?x=1", "/parties/a/b"),
        ("GET HTTPS://h HTTP/1.1", "/", "/"),
        ("GET http://h?q HTTP/1.1", "?q", ""),
    ];
    for (line, origin, path) in cases {
        let head = parse_ok(&format!("{line}\r\nHost: h\r\n\r\n"));
        assert_eq!(head.origin_target(), origin, "{line}");
        assert_eq!(head.path(), path, "{line}");
    }
}

#[test]
fn refusals_and_their_statuses() {
    let cases: &[(&str, u16)] = &[
        ("GET / HTTP/1.1\r\n\r\n", 400),                       // no Host
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400), // two Hosts
        ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
        ("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400), // a raw space in the target
        ("GET /parties/main/a b c HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("GET / FOO/1.1\r\nHost: a\r\n\r\n", 400), // not a version at all
        ("GET foo HTTP/1.1\r\nHost: a\r\n\r\n", 400), // relative target
        ("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400), // * without OPTIONS
        ("GET http:// HTTP/1.1\r\nHost: a\r\n\r\n", 400), // no authority
        ("GET / HTTP/1.1\r\nBad Name: a\r\nHost: a\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
            400,
        ),
        ("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        ("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 501),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            501,
        ),
        ("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n", 413),
    ];
    for (input, status) in cases {
        assert_eq!(status_of(input), *status, "{input:?}");
    }
}

#[test]
fn options_star_is_accepted() {
    assert_eq!(parse_ok("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").target(), "*");
}

#[test]
fn content_length_forms() {
    let cases = [
        ("Content-Length: 0", BodyKind::Empty),
        ("Content-Length: 5", BodyKind::Length(5)),
        ("Content-Length: 5, 5", BodyKind::Length(5)),
        ("Content-Length: 1048576", BodyKind::Length(1048576)),
        ("Transfer-Encoding: Chunked", BodyKind::Chunked),
    ];
    for (header, kind) in cases {
        let head = parse_ok(&format!("POST / HTTP/1.1\r\nHost: a\r\n{header}\r\n\r\n"));
        assert_eq!(head.body(), kind, "{header}");
    }
}

fn head_of_size(size: usize) -> Vec<u8> {
    let start = b"GET / HTTP/1.1\r\nHost: a\r\nX: ";
    let mut v = start.to_vec();
    v.resize(size - 4, b'a');
    v.extend_from_slice(b"\r\n\r\n");
    v
}

#[test]
fn head_size_limit_at_and_past() {
    let limits = HttpLimits { head_size_max: 1000, ..HttpLimits::default() };
    let at = head_of_size(1000);
    assert_eq!(HeadParser::new(limits).parse(&at).unwrap().unwrap().len(), 1000);
    let past = head_of_size(1001);
    let err = HeadParser::new(limits).parse(&past).unwrap_err();
    assert_eq!(err, HttpError::HeadTooLarge { limit: 1000 });
    assert_eq!(err.status(), 431);
    // Without a terminator, refused as soon as more than the limit is buffered.
    let endless = vec![b'a'; 1001];
    assert!(HeadParser::new(limits).parse(&endless[..1000]).unwrap().is_none());
    assert_eq!(HeadParser::new(limits).parse(&endless).unwrap_err().status(), 431);
}

#[test]
fn header_count_limit_at_and_past() {
    let limits = HttpLimits { header_count_max: 4, ..HttpLimits::default() };
    let with = |n: usize| {
        let mut s = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 1..n {
            s.push_str(&format!("X-{i}: v\r\n"));
        }
        s + "\r\n"
    };
    assert!(HeadParser::new(limits).parse(with(4).as_bytes()).unwrap().is_some());
    let err = HeadParser::new(limits).parse(with(5).as_bytes()).unwrap_err();
    assert_eq!(err, HttpError::TooManyHeaders { limit: 4 });
    assert_eq!(err.status(), 431);
}

#[test]
fn header_lookup_and_tokens() {
    let head = parse_ok(
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nupgrade: WebSocket\r\nX-Multi: 1\r\nx-multi: 2\r\nExpect: 100-continue\r\n\r\n",
    );
    assert!(head.has_token("connection", "upgrade"));
    assert!(head.is_websocket_upgrade());
    assert!(!head.has_token("connection", "close"));
    assert_eq!(head.header_all("X-MULTI").collect::<Vec<_>>(), vec![&b"1"[..], &b"2"[..]]);
    assert!(head.expects_continue());
    assert_eq!(head.headers().count(), 6);
}

fn decode_body(
    kind: BodyKind,
    limit: usize,
    input: &[u8],
) -> Result<(Vec<u8>, usize, bool), HttpError> {
    let mut decoder = BodyDecoder::new(kind, limit);
    let mut body = Vec::new();
    let progress = decoder.decode(input, &mut body)?;
    Ok((body, progress.consumed, progress.done))
}

fn decode_body_bytewise(
    kind: BodyKind,
    limit: usize,
    input: &[u8],
) -> Result<(Vec<u8>, usize, bool), HttpError> {
    let mut decoder = BodyDecoder::new(kind, limit);
    let mut body = Vec::new();
    let mut consumed = 0;
    for b in input.chunks(1) {
        if decoder.is_done() {
            break;
        }
        consumed += decoder.decode(b, &mut body)?.consumed;
    }
    Ok((body, consumed, decoder.is_done()))
}

#[test]
fn content_length_body_stops_at_its_length() {
    let (body, used, done) = decode_body(BodyKind::Length(3), 10, b"abcGET").unwrap();
    assert_eq!((body.as_slice(), used, done), (&b"abc"[..], 3, true));
    let (body, used, done) = decode_body(BodyKind::Length(3), 10, b"ab").unwrap();
    assert_eq!((body.as_slice(), used, done), (&b"ab"[..], 2, false));
    let (_, used, done) = decode_body(BodyKind::Empty, 10, b"next").unwrap();
    assert_eq!((used, done), (0, true));
}

#[test]
fn chunked_bodies() {
    let cases: &[(&[u8], &[u8], usize)] = &[
        (b"5\r\nhello\r\n0\r\n\r\n", b"hello", 15),
        (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT", b"hello world", 26),
        (b"A;ext=1\r\n0123456789\r\n0\r\n\r\n", b"0123456789", 26),
        (b"a\r\n0123456789\r\n0\r\nTrailer: x\r\nOther: y\r\n\r\n", b"0123456789", 42),
        (b"0\r\n\r\n", b"", 5),
        (b"000003\r\nabc\r\n0\r\n\r\n", b"abc", 18),
    ];
    for (input, expect, used) in cases {
        for decode in [decode_body, decode_body_bytewise] {
            let (body, consumed, done) = decode(BodyKind::Chunked, 100, input).unwrap();
            assert_eq!(body, *expect, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(consumed, *used, "{:?}", String::from_utf8_lossy(input));
            assert!(done);
        }
    }
}

#[test]
fn chunked_errors() {
    let cases: &[&[u8]] = &[
        b"\r\n",                  // missing size
        b"x\r\n",                 // not hex
        b"5\rhello",              // CR without LF
        b"5\nhello",              // bare LF
        b"2\r\nabc\r\n",          // data longer than size
        b"1\r\na\n",              // data end without CR
        b"0\r\nTrailer\n",        // bare LF in trailer
        b"1234567890abcdef0\r\n", // size too long
        b";ext\r\n",              // extension without size
    ];
    for input in cases {
        let err = decode_body(BodyKind::Chunked, 1 << 20, input).unwrap_err();
        assert_eq!(err.status(), 400, "{:?}: {err}", String::from_utf8_lossy(input));
    }
}

#[test]
fn body_size_limit_at_and_past() {
    // Content-Length: checked by the decoder too when it is used on its own.
    assert!(decode_body(BodyKind::Length(10), 10, &[b'a'; 10]).unwrap().2);
    assert_eq!(decode_body(BodyKind::Length(11), 10, &[b'a'; 11]).unwrap_err().status(), 413);
    // Chunked: refused at the chunk header, before the data arrives.
    assert!(decode_body(BodyKind::Chunked, 10, b"a\r\n0123456789\r\n0\r\n\r\n").unwrap().2);
    assert_eq!(decode_body(BodyKind::Chunked, 10, b"b\r\n").unwrap_err().status(), 413);
    assert_eq!(
        decode_body(BodyKind::Chunked, 10, b"5\r\n01234\r\n6\r\n").unwrap_err().status(),
        413
    );
}

#[test]
fn chunk_line_and_trailer_limits() {
    let mut long_ext = b"1;".to_vec();
    long_ext.resize(1024, b'x');
    long_ext.extend_from_slice(b"\r\n");
    assert_eq!(decode_body(BodyKind::Chunked, 100, &long_ext).unwrap_err().status(), 400);
    let mut long_trailer = b"0\r\nX: ".to_vec();
    long_trailer.resize(9000, b'x');
    assert_eq!(decode_body(BodyKind::Chunked, 100, &long_trailer).unwrap_err().status(), 400);
}
