//! Frame decoding, message assembly and encoding: the RFC 6455 §5.7 examples, every rule
//! that closes a connection (with its close code), byte-at-a-time feeding, and UTF-8 split
//! inside a code point across fragments.

use partyline_protocol::ws::{
    CloseCode, CloseFrame, Decoded, FrameDecoder, FrameLimits, Message, MessageAssembler, Opcode,
    Role, WsError, apply_mask, apply_mask_bytewise, encode,
};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// What a connection would see: each message as an owned value, or the error that closed.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
}

/// Feeds `input` in pieces of `step` bytes through decoder and assembler, as the engine
/// does: keep the unparsed tail, decode whole frames from it.
fn run(input: &[u8], step: usize, role: Role, limit: usize) -> (Vec<Seen>, Option<WsError>) {
    let decoder = FrameDecoder::new(role, FrameLimits { message_size_max: limit });
    let mut assembler = MessageAssembler::new(limit);
    let mut buf: Vec<u8> = Vec::new();
    let mut seen = Vec::new();
    for piece in input.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            let used = match decoder.decode(&mut buf) {
                Err(e) => return (seen, Some(e)),
                Ok(Decoded::NeedMore { frame_len }) => {
                    if let Some(n) = frame_len {
                        assert!(n > buf.len());
                    }
                    break;
                }
                Ok(Decoded::Frame { frame, len }) => {
                    match assembler.push(frame) {
                        Err(e) => return (seen, Some(e)),
                        Ok(None) => {}
                        Ok(Some(m)) => seen.push(match m {
                            Message::Text(s) => Seen::Text(s.to_owned()),
                            Message::Binary(b) => Seen::Binary(b.to_vec()),
                            Message::Ping(b) => Seen::Ping(b.to_vec()),
                            Message::Pong(b) => Seen::Pong(b.to_vec()),
                            Message::Close(c) => {
                                Seen::Close(c.map(|c| (c.code.0, c.reason.to_owned())))
                            }
                        }),
                    }
                    len
                }
            };
            buf.drain(..used);
        }
    }
    (seen, None)
}

/// Runs `input` whole and byte at a time; both must agree.
fn server(input: &[u8]) -> (Vec<Seen>, Option<WsError>) {
    let whole = run(input, input.len(), Role::Server, 1 << 20);
    let bytewise = run(input, 1, Role::Server, 1 << 20);
    assert_eq!(whole, bytewise, "feeding in pieces changed the result");
    whole
}

fn masked(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    encode::client_frame(fin, opcode, payload, MASK).to_vec()
}

fn raw_masked(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = masked(true, Opcode::Binary, payload);
    f[0] = b0;
    f
}

#[test]
fn rfc_examples_unmasked_for_a_client() {
    let hello = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    assert_eq!(run(&hello, 7, Role::Client, 100), (vec![Seen::Text("Hello".into())], None));
    let fragmented = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
    assert_eq!(run(&fragmented, 1, Role::Client, 100), (vec![Seen::Text("Hello".into())], None));
    let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    assert_eq!(run(&ping, 7, Role::Client, 100), (vec![Seen::Ping(b"Hello".to_vec())], None));
    // Server frames are what our encoder writes.
    assert_eq!(encode::text("Hello")[..], hello);
    assert_eq!(encode::ping(b"Hello")[..], ping);
}

#[test]
fn rfc_examples_masked() {
    let hello = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    assert_eq!(server(&hello), (vec![Seen::Text("Hello".into())], None));
    assert_eq!(masked(true, Opcode::Text, b"Hello"), hello);
    let pong = [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    assert_eq!(server(&pong), (vec![Seen::Pong(b"Hello".to_vec())], None));
}

#[test]
fn rfc_examples_lengths() {
    let data: Vec<u8> = (0..=255u8).collect();
    let frame = encode::binary(&data);
    assert_eq!(frame[..4], [0x82, 0x7e, 0x01, 0x00]);
    assert_eq!(frame.len(), 4 + 256);
    let big = vec![7u8; 65536];
    let frame = encode::binary(&big);
    assert_eq!(frame[..10], [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);
    for payload in [&data[..], &big[..], &big[..125], &big[..126], &big[..65535]] {
        assert_eq!(
            server(&masked(true, Opcode::Binary, payload)),
            (vec![Seen::Binary(payload.to_vec())], None)
        );
    }
}

#[test]
fn control_frames_between_fragments() {
    let mut input = masked(false, Opcode::Text, b"Hel");
    input.extend(masked(true, Opcode::Ping, b"p"));
    input.extend(masked(false, Opcode::Continuation, b"l"));
    input.extend(masked(true, Opcode::Pong, b""));
    input.extend(masked(true, Opcode::Continuation, b"o"));
    input.extend(masked(true, Opcode::Binary, b"\x00\xff"));
    assert_eq!(
        server(&input),
        (
            vec![
                Seen::Ping(b"p".to_vec()),
                Seen::Pong(vec![]),
                Seen::Text("Hello".into()),
                Seen::Binary(vec![0, 255])
            ],
            None
        )
    );
}

#[test]
fn empty_messages_and_fragments() {
    let mut input = masked(true, Opcode::Text, b"");
    input.extend(masked(false, Opcode::Binary, b""));
    input.extend(masked(false, Opcode::Continuation, b""));
    input.extend(masked(true, Opcode::Continuation, b""));
    assert_eq!(server(&input), (vec![Seen::Text(String::new()), Seen::Binary(vec![])], None));
}

/// Every rule that closes the connection, with the close code it maps to.
#[test]
fn protocol_errors_and_close_codes() {
    let mut too_long_control = masked(true, Opcode::Ping, &[0; 125]);
    too_long_control[1] = 0x80 | 126;
    too_long_control.splice(2..2, [0, 126]);
    let cases: Vec<(&str, Vec<u8>, WsError, u16)> = vec![
        (
            "unmasked",
            encode::text("x").to_vec(),
            WsError::BadMasking { expected_masked: true },
            1002,
        ),
        ("rsv1", raw_masked(0x80 | 0x40 | 0x1, b"x"), WsError::ReservedBits { rsv: 4 }, 1002),
        ("rsv2", raw_masked(0x80 | 0x20 | 0x1, b"x"), WsError::ReservedBits { rsv: 2 }, 1002),
        ("rsv3", raw_masked(0x80 | 0x10 | 0x1, b"x"), WsError::ReservedBits { rsv: 1 }, 1002),
        ("opcode 3", raw_masked(0x83, b""), WsError::ReservedOpcode { opcode: 3 }, 1002),
        ("opcode 7", raw_masked(0x87, b""), WsError::ReservedOpcode { opcode: 7 }, 1002),
        ("opcode 0xB", raw_masked(0x8B, b""), WsError::ReservedOpcode { opcode: 0xB }, 1002),
        ("opcode 0xF", raw_masked(0x8F, b""), WsError::ReservedOpcode { opcode: 0xF }, 1002),
        ("ping 126", too_long_control, WsError::ControlFrameTooLong { len: 126 }, 1002),
        (
            "fragmented ping",
            masked(false, Opcode::Ping, b""),
            WsError::FragmentedControlFrame,
            1002,
        ),
        (
            "fragmented close",
            masked(false, Opcode::Close, b""),
            WsError::FragmentedControlFrame,
            1002,
        ),
        (
            "lone continuation",
            masked(true, Opcode::Continuation, b"x"),
            WsError::UnexpectedContinuation,
            1002,
        ),
        (
            "text inside fragments",
            [masked(false, Opcode::Text, b"a"), masked(true, Opcode::Text, b"b")].concat(),
            WsError::ExpectedContinuation,
            1002,
        ),
        ("bad utf-8", masked(true, Opcode::Text, b"\xff"), WsError::InvalidUtf8, 1007),
        ("surrogate", masked(true, Opcode::Text, b"\xed\xa0\x80"), WsError::InvalidUtf8, 1007),
        ("close of 1 byte", masked(true, Opcode::Close, b"\x03"), WsError::CloseTooShort, 1002),
        (
            "close reason not utf-8",
            masked(true, Opcode::Close, b"\x03\xe8\xff"),
            WsError::InvalidUtf8,
            1007,
        ),
        (
            "length top bit",
            {
                let mut f = vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0];
                f.extend(MASK);
                f
            },
            WsError::LengthOverflow,
            1002,
        ),
    ];
    for (name, input, error, code) in cases {
        let (_, got) = server(&input);
        assert_eq!(got.as_ref(), Some(&error), "{name}");
        assert_eq!(error.close_code(), CloseCode(code), "{name}");
    }
}

#[test]
fn client_role_refuses_masked_frames() {
    let (_, err) = run(&masked(true, Opcode::Text, b"x"), 100, Role::Client, 100);
    assert_eq!(err, Some(WsError::BadMasking { expected_masked: false }));
}

#[test]
fn close_codes_on_the_wire() {
    let valid = [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000,
        4999,
    ];
    let invalid = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535];
    for code in valid {
        let (seen, err) =
            server(&masked(true, Opcode::Close, &[&u16::to_be_bytes(code)[..], b"bye"].concat()));
        assert_eq!((seen, err), (vec![Seen::Close(Some((code, "bye".into())))], None), "{code}");
    }
    for code in invalid {
        let (_, err) = server(&masked(true, Opcode::Close, &u16::to_be_bytes(code)));
        assert_eq!(err, Some(WsError::InvalidCloseCode { code }), "{code}");
        assert_eq!(err.unwrap().close_code(), CloseCode::PROTOCOL_ERROR);
    }
    assert_eq!(server(&masked(true, Opcode::Close, b"")), (vec![Seen::Close(None)], None));
    assert_eq!(CloseFrame::parse(b"\x03\xe8").unwrap().unwrap().reason, "");
}

#[test]
fn message_limit_single_frame_at_and_past() {
    let limit = 1000;
    let at = masked(true, Opcode::Binary, &vec![1; limit]);
    assert_eq!(run(&at, 64, Role::Server, limit).1, None);
    let past = masked(true, Opcode::Binary, &vec![1; limit + 1]);
    // Refused from the header alone: the 4 header bytes are enough.
    let (_, err) = run(&past[..4], 4, Role::Server, limit);
    assert_eq!(err, Some(WsError::MessageTooLarge { limit }));
    assert_eq!(err.unwrap().close_code(), CloseCode::MESSAGE_TOO_BIG);
}

#[test]
fn message_limit_across_fragments_at_and_past() {
    let limit = 1000;
    let frames = |last: usize| {
        [
            masked(false, Opcode::Binary, &vec![0; 600]),
            masked(true, Opcode::Continuation, &vec![0; last]),
        ]
        .concat()
    };
    assert_eq!(run(&frames(400), 100, Role::Server, limit).1, None);
    let (_, err) = run(&frames(401), 100, Role::Server, limit);
    assert_eq!(err, Some(WsError::MessageTooLarge { limit }));
}

#[test]
fn control_frame_payload_at_limit() {
    let at = masked(true, Opcode::Ping, &[b'x'; 125]);
    assert_eq!(server(&at), (vec![Seen::Ping(vec![b'x'; 125])], None));
}

/// "€" is E2 82 AC; split it at every position across two and three fragments.
#[test]
fn utf8_split_inside_a_code_point() {
    let text = "a€b𝄞c".as_bytes();
    for i in 0..=text.len() {
        for j in i..=text.len() {
            let input = [
                masked(false, Opcode::Text, &text[..i]),
                masked(false, Opcode::Continuation, &text[i..j]),
                masked(true, Opcode::Continuation, &text[j..]),
            ]
            .concat();
            assert_eq!(server(&input), (vec![Seen::Text("a€b𝄞c".into())], None), "split {i} {j}");
        }
    }
}

/// Invalid text must fail on the fragment where it becomes invalid, not at the end.
#[test]
fn utf8_fails_fast() {
    // CE BA E1 BD B9 CF 83 CE BC CE B5 ("κόσμε"), then ED A0 80 (a surrogate), then more.
    let first = masked(false, Opcode::Text, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed");
    let second = masked(false, Opcode::Continuation, b"\xa0\x80");
    let (_, err) = run(&[first.clone(), second].concat(), 1000, Role::Server, 1000);
    assert_eq!(err, Some(WsError::InvalidUtf8));
    // Out of range (F4 90 ...) is invalid at its second byte.
    let (_, err) = run(&masked(false, Opcode::Text, b"\xf4\x90"), 1000, Role::Server, 1000);
    assert_eq!(err, Some(WsError::InvalidUtf8));
    // A code point cut at the end of the message is invalid.
    let (_, err) =
        run(&[first, masked(true, Opcode::Continuation, b"")].concat(), 1000, Role::Server, 1000);
    assert_eq!(err, Some(WsError::InvalidUtf8));
}

#[test]
fn assembler_holds_no_memory_between_messages() {
    let decoder = FrameDecoder::server();
    let mut assembler = MessageAssembler::new(1 << 20);
    let mut first = masked(false, Opcode::Binary, &[1; 100]);
    let mut last = masked(true, Opcode::Continuation, &[2; 100]);
    let Decoded::Frame { frame, .. } = decoder.decode(&mut first).unwrap() else { panic!() };
    assert_eq!(assembler.push(frame).unwrap(), None);
    assert!(assembler.in_message());
    assert_eq!(assembler.buffered(), 100);
    let Decoded::Frame { frame, .. } = decoder.decode(&mut last).unwrap() else { panic!() };
    let Some(Message::Binary(b)) = assembler.push(frame).unwrap() else { panic!() };
    assert_eq!(b.len(), 200);
    assert!(!assembler.in_message());
    assert_eq!(assembler.buffered(), 0);
}

#[test]
fn need_more_reports_the_frame_length() {
    let frame = masked(true, Opcode::Binary, &[0; 300]);
    let decoder = FrameDecoder::server();
    for cut in [0, 1, 2, 3] {
        let mut part = frame[..cut].to_vec();
        assert_eq!(decoder.decode(&mut part).unwrap(), Decoded::NeedMore { frame_len: None });
    }
    for cut in [8, 9, 200, 307] {
        let mut part = frame[..cut].to_vec();
        assert_eq!(decoder.decode(&mut part).unwrap(), Decoded::NeedMore { frame_len: Some(308) });
    }
}

#[test]
fn close_encoding() {
    assert_eq!(encode::close(CloseCode::NORMAL, "")[..], [0x88, 0x02, 0x03, 0xe8]);
    assert_eq!(encode::close(CloseCode::NO_STATUS, "ignored")[..], [0x88, 0x00]);
    // A long reason is cut to 123 bytes at a character boundary.
    let long = "é".repeat(100);
    let frame = encode::close(CloseCode::INTERNAL_ERROR, &long);
    assert_eq!(frame[1] as usize, 2 + 122);
    let parsed = CloseFrame::parse(&frame[2..]).unwrap().unwrap();
    assert_eq!(parsed.code, CloseCode::INTERNAL_ERROR);
    assert_eq!(parsed.reason, "é".repeat(61));
}

#[test]
fn encoded_frames_are_shared_bytes() {
    let frame = encode::text("broadcast");
    let copies: Vec<_> = (0..1000).map(|_| frame.clone()).collect();
    assert!(copies.iter().all(|c| c.as_ptr() == frame.as_ptr()));
}

#[test]
fn word_mask_equals_byte_mask() {
    for len in 0..100u8 {
        let data: Vec<u8> = (0..len).map(|i: u8| i.wrapping_mul(7).wrapping_add(3)).collect();
        let (mut a, mut b) = (data.clone(), data.clone());
        apply_mask(&mut a, MASK);
        apply_mask_bytewise(&mut b, MASK);
        assert_eq!(a, b, "len {len}");
        apply_mask(&mut a, MASK);
        assert_eq!(a, data);
    }
}
