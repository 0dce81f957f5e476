//! Fuzz target: the WebSocket read path. The first input byte picks the role and how the
//! stream is cut into reads; the rest goes through the frame decoder and the message
//! assembler as the engine would feed them. Checks that nothing panics, that limits hold,
//! and that text messages are valid UTF-8.

#![no_main]

use libfuzzer_sys::fuzz_target;
use partyline_protocol::ws::{Decoded, FrameDecoder, FrameLimits, Message, MessageAssembler, Role};

const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else { return };
    let role = if control & 1 == 0 { Role::Server } else { Role::Client };
    let step = usize::from(control >> 1).max(1);
    let decoder = FrameDecoder::new(role, FrameLimits { message_size_max: LIMIT });
    let mut assembler = MessageAssembler::new(LIMIT);
    let mut buf = Vec::new();
    for piece in input.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            let used = match decoder.decode(&mut buf) {
                Err(_) => return,
                Ok(Decoded::NeedMore { frame_len }) => {
                    assert!(frame_len.is_none_or(|n| n > buf.len() && n <= LIMIT + 14));
                    break;
                }
                Ok(Decoded::Frame { frame, len }) => {
                    match assembler.push(frame) {
                        Err(_) => return,
                        Ok(Some(Message::Text(s))) => assert!(s.len() <= LIMIT),
                        Ok(Some(Message::Binary(b))) => assert!(b.len() <= LIMIT),
                        Ok(Some(Message::Close(Some(c)))) => assert!(c.code.is_allowed_on_wire()),
                        Ok(_) => {}
                    }
                    len
                }
            };
            buf.drain(..used);
        }
    }
});
