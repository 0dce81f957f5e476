//! Property tests: encode -> decode round-trips for frames and chunked bodies, streaming
//! UTF-8 validation equal to whole-input validation for any split, no panic on arbitrary
//! input in any parser, and y-websocket messages the checker passes safe for `yrs`.

use partyline_protocol::http::{BodyDecoder, BodyKind, HeadParser, HttpLimits};
use partyline_protocol::route::{self, RouteConfig};
use partyline_protocol::ws::{
    Decoded, FrameDecoder, FrameLimits, Message, MessageAssembler, Opcode, Role, Utf8Validator,
    encode,
};
use proptest::prelude::*;

fn data_opcode() -> impl Strategy<Value = Opcode> {
    prop_oneof![Just(Opcode::Text), Just(Opcode::Binary)]
}

/// A message as (opcode, payload, fragment sizes).
fn message() -> impl Strategy<Value = (Opcode, Vec<u8>, Vec<usize>)> {
    (
        data_opcode(),
        prop::collection::vec(any::<u8>(), 0..3000),
        prop::collection::vec(0usize..700, 0..5),
    )
        .prop_map(|(op, mut payload, cuts)| {
            if op == Opcode::Text {
                payload = String::from_utf8_lossy(&payload).into_owned().into_bytes();
            }
            (op, payload, cuts)
        })
}

/// Encodes a message as masked client frames, fragmented at `cuts`.
fn client_frames(op: Opcode, payload: &[u8], cuts: &[usize], mask: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = payload;
    let mut first = true;
    for &cut in cuts {
        let cut = cut.min(rest.len());
        let opcode = if first { op } else { Opcode::Continuation };
        out.extend_from_slice(&encode::client_frame(false, opcode, &rest[..cut], mask));
        rest = &rest[cut..];
        first = false;
    }
    let opcode = if first { op } else { Opcode::Continuation };
    out.extend_from_slice(&encode::client_frame(true, opcode, rest, mask));
    out
}

/// Decodes a stream fed in pieces of the given sizes; returns the data messages.
fn decode_stream(
    stream: &[u8],
    pieces: &[usize],
    role: Role,
) -> Result<Vec<(Opcode, Vec<u8>)>, String> {
    let decoder = FrameDecoder::new(role, FrameLimits { message_size_max: 1 << 20 });
    let mut assembler = MessageAssembler::new(1 << 20);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut sizes = pieces.iter().copied().cycle();
    while pos < stream.len() {
        let n = sizes.next().unwrap_or(1).max(1).min(stream.len() - pos);
        buf.extend_from_slice(&stream[pos..pos + n]);
        pos += n;
        loop {
            let used = match decoder.decode(&mut buf).map_err(|e| e.to_string())? {
                Decoded::NeedMore { .. } => break,
                Decoded::Frame { frame, len } => {
                    match assembler.push(frame).map_err(|e| e.to_string())? {
                        Some(Message::Text(s)) => out.push((Opcode::Text, s.as_bytes().to_vec())),
                        Some(Message::Binary(b)) => out.push((Opcode::Binary, b.to_vec())),
                        _ => {}
                    }
                    len
                }
            };
            buf.drain(..used);
        }
    }
    if !buf.is_empty() {
        return Err(format!("{} bytes left over", buf.len()));
    }
    Ok(out)
}

proptest! {
    #[test]
    fn client_frames_round_trip(
        messages in prop::collection::vec(message(), 1..6),
        mask in any::<[u8; 4]>(),
        pieces in prop::collection::vec(1usize..500, 1..8),
    ) {
        let stream: Vec<u8> = messages.iter().flat_map(|(op, p, cuts)| client_frames(*op, p, cuts, mask)).collect();
        let decoded = decode_stream(&stream, &pieces, Role::Server).map_err(TestCaseError::fail)?;
        let expected: Vec<_> = messages.into_iter().map(|(op, p, _)| (op, p)).collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn server_frames_round_trip(
        messages in prop::collection::vec((data_opcode(), prop::collection::vec(any::<u8>(), 0..70000)), 1..3),
        pieces in prop::collection::vec(1usize..9000, 1..8),
    ) {
        let messages: Vec<(Opcode, Vec<u8>)> = messages.into_iter().map(|(op, p)| {
            if op == Opcode::Text { (op, String::from_utf8_lossy(&p).into_owned().into_bytes()) } else { (op, p) }
        }).collect();
        let stream: Vec<u8> = messages.iter().flat_map(|(op, p)| encode::frame(*op, p).to_vec()).collect();
        let decoded = decode_stream(&stream, &pieces, Role::Client).map_err(TestCaseError::fail)?;
        prop_assert_eq!(decoded, messages);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512), server in any::<bool>()) {
        let role = if server { Role::Server } else { Role::Client };
        let decoder = FrameDecoder::new(role, FrameLimits { message_size_max: 256 });
        let mut assembler = MessageAssembler::new(256);
        let mut buf = bytes;
        while let Ok(Decoded::Frame { frame, len }) = decoder.decode(&mut buf) {
            let stop = assembler.push(frame).is_err();
            buf.drain(..len);
            if stop { break; }
        }
    }

    #[test]
    fn streaming_utf8_equals_whole_validation(bytes in prop::collection::vec(any::<u8>(), 0..64), cuts in prop::collection::vec(0usize..64, 0..6)) {
        let bytes = if bytes.len() % 2 == 0 {
            // Half the cases are valid text so both outcomes are covered.
            String::from_utf8_lossy(&bytes).into_owned().into_bytes()
        } else { bytes };
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
        cuts.sort_unstable();
        let mut validator = Utf8Validator::default();
        let mut ok = true;
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
            if validator.feed(&bytes[start..cut]).is_err() { ok = false; break; }
            start = cut;
        }
        if ok { ok = validator.finish().is_ok(); }
        prop_assert_eq!(ok, std::str::from_utf8(&bytes).is_ok());
    }

    #[test]
    fn chunked_round_trip(body in prop::collection::vec(any::<u8>(), 0..2000), sizes in prop::collection::vec(1usize..300, 1..10), pieces in prop::collection::vec(1usize..50, 1..5)) {
        let mut wire = Vec::new();
        let mut rest = &body[..];
        let mut size_iter = sizes.iter().copied().cycle();
        while !rest.is_empty() {
            let n = size_iter.next().unwrap_or(1).min(rest.len());
            wire.extend_from_slice(format!("{n:x}\r\n").as_bytes());
            wire.extend_from_slice(&rest[..n]);
            wire.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
        wire.extend_from_slice(b"0\r\n\r\nGET");
        let mut decoder = BodyDecoder::new(BodyKind::Chunked, 4096);
        let mut out = Vec::new();
        let mut pos = 0;
        let mut piece_iter = pieces.iter().copied().cycle();
        while !decoder.is_done() {
            let n = piece_iter.next().unwrap_or(1).min(wire.len() - pos);
            let progress = decoder.decode(&wire[pos..pos + n], &mut out).map_err(|e| TestCaseError::fail(e.to_string()))?;
            pos += progress.consumed;
        }
        prop_assert_eq!(out, body);
        prop_assert_eq!(&wire[pos..], b"GET");
    }

    #[test]
    fn head_parser_never_panics_and_is_split_invariant(bytes in prop::collection::vec(any::<u8>(), 0..400), cut in 0usize..400) {
        let whole = HeadParser::new(HttpLimits::default()).parse(&bytes).map(|h| h.map(|h| h.len()));
        let mut parser = HeadParser::new(HttpLimits::default());
        let cut = cut.min(bytes.len());
        let split = match parser.parse(&bytes[..cut]) {
            Ok(Some(h)) => Ok(Some(h.len())),
            Ok(None) => parser.parse(&bytes).map(|h| h.map(|h| h.len())),
            Err(e) => Err(e),
        };
        // A prefix may already be complete (pipelining) or already invalid; otherwise the
        // answer must not depend on how the bytes arrived.
        if let (Ok(None), Ok(None)) = (HeadParser::new(HttpLimits::default()).parse(&bytes[..cut]), &whole) {
            prop_assert_eq!(split, whole);
        }
    }

    #[test]
    fn plausible_heads_parse_the_same_whole_or_bytewise(
        path in "/[a-z0-9%/]{0,40}",
        headers in prop::collection::vec(("[A-Za-z-]{1,20}", "[ -~]{0,40}"), 0..10),
    ) {
        let mut text = format!("GET {path} HTTP/1.1\r\nHost: h\r\n");
        for (n, v) in &headers { text.push_str(&format!("{n}: {v}\r\n")); }
        text.push_str("\r\n");
        let whole = HeadParser::new(HttpLimits::default()).parse(text.as_bytes()).map(|h| h.map(|h| format!("{h:?}")));
        let mut parser = HeadParser::new(HttpLimits::default());
        let mut bytewise = Ok(None);
        for end in 1..=text.len() {
            bytewise = parser.parse(&text.as_bytes()[..end]).map(|h| h.map(|h| format!("{h:?}")));
            if !matches!(bytewise, Ok(None)) { break; }
        }
        prop_assert_eq!(bytewise, whole);
    }

    #[test]
    fn routing_never_panics(target in "[/a-z%?=&_.]{0,40}") {
        let _ = route::parse(&target, &RouteConfig::default()).map(|r| r.map(|r| r.connection_id()));
    }

    /// Real y-websocket messages with bytes changed: the checker never panics, and what it
    /// accepts `yrs` reads and applies without panicking (the fuzz target `yjs_messages`
    /// runs the same property at length).
    #[test]
    fn yjs_messages_the_checker_passes_are_safe_for_yrs(
        text in "[a-z ]{1,12}",
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut message = yjs_update_message(&text);
        for (at, byte) in edits {
            let i = at.index(message.len());
            message[i] = byte;
        }
        message.truncate(cut.index(message.len() + 1).max(1));
        if partyline_protocol::yjs::check(&message).is_ok() {
            read_with_yrs(&message);
        }
    }
}

/// A sync update message inserting `text` into a fresh document's `Y.Text` "t".
fn yjs_update_message(text: &str) -> Vec<u8> {
    use yrs::updates::encoder::Encode;
    use yrs::{Doc, ReadTxn, Text, Transact};
    let doc = Doc::new();
    doc.get_or_insert_text("t").insert(&mut doc.transact_mut(), 0, text);
    let update = doc.transact().encode_state_as_update_v1(&Default::default());
    yrs::sync::Message::Sync(yrs::sync::SyncMessage::Update(update)).encode_v1()
}

/// What the `yjs` party does with a checked message: read it, decode and apply its updates.
fn read_with_yrs(message: &[u8]) {
    use yrs::sync::{Message, MessageReader, SyncMessage};
    use yrs::updates::decoder::{Decode, DecoderV1};
    use yrs::{Doc, Transact, Update};
    let doc = Doc::new();
    let mut decoder = DecoderV1::from(message);
    for m in MessageReader::new(&mut decoder) {
        let Ok(m) = m else { break };
        if let Message::Sync(SyncMessage::SyncStep2(u) | SyncMessage::Update(u)) = m
            && let Ok(update) = Update::decode_v1(&u)
        {
            let _ = doc.transact_mut().apply_update(update);
        }
    }
}
