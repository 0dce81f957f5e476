//! Frame encoding. A server frame is written once, header and payload together, into shared
//! refcounted [`Bytes`]: a broadcast encodes its frame one time and every socket's write
//! queue holds a cheap clone of the same bytes.
//!
//! Clients mask their frames ([`client_frame`]); the load tester and the tests use that.

use super::{CloseCode, Opcode, apply_mask};
use crate::limits;
use bytes::{BufMut, Bytes, BytesMut};

/// Writes a frame header into `out` and returns its length (2 to 14 bytes).
pub fn header(
    fin: bool,
    opcode: Opcode,
    payload_len: usize,
    mask: Option<[u8; 4]>,
    out: &mut [u8; limits::WS_FRAME_HEADER_MAX],
) -> usize {
    out[0] = (u8::from(fin) << 7) | opcode.as_u8();
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut len = if let Ok(short @ 0..126) = u8::try_from(payload_len) {
        out[1] = mask_bit | short;
        2
    } else if let Ok(short) = u16::try_from(payload_len) {
        out[1] = mask_bit | 126;
        out[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        out[1] = mask_bit | 127;
        out[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
        10
    };
    if let Some(mask) = mask {
        out[len..len + 4].copy_from_slice(&mask);
        len += 4;
    }
    len
}

/// Appends a whole unmasked (server) frame to `out`.
pub fn frame_into(fin: bool, opcode: Opcode, payload: &[u8], out: &mut BytesMut) {
    let mut head = [0u8; limits::WS_FRAME_HEADER_MAX];
    let n = header(fin, opcode, payload.len(), None, &mut head);
    out.reserve(n + payload.len());
    out.put_slice(&head[..n]);
    out.put_slice(payload);
}

/// One unmasked, final frame in a single allocation.
pub fn frame(opcode: Opcode, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(limits::WS_FRAME_HEADER_MAX + payload.len());
    frame_into(true, opcode, payload, &mut out);
    out.freeze()
}

/// A text frame.
pub fn text(text: &str) -> Bytes {
    frame(Opcode::Text, text.as_bytes())
}

/// A binary frame.
pub fn binary(data: &[u8]) -> Bytes {
    frame(Opcode::Binary, data)
}

/// A ping frame; the payload is cut to 125 bytes.
pub fn ping(payload: &[u8]) -> Bytes {
    frame(Opcode::Ping, &payload[..payload.len().min(limits::WS_CONTROL_PAYLOAD_MAX)])
}

/// A pong frame; the payload is cut to 125 bytes.
pub fn pong(payload: &[u8]) -> Bytes {
    frame(Opcode::Pong, &payload[..payload.len().min(limits::WS_CONTROL_PAYLOAD_MAX)])
}

/// A close frame with `code` and `reason` (cut at a character boundary to 123 bytes).
/// [`CloseCode::NO_STATUS`] gives an empty close frame, as RFC 6455 §7.1.5 means it.
pub fn close(code: CloseCode, reason: &str) -> Bytes {
    if code == CloseCode::NO_STATUS {
        return frame(Opcode::Close, &[]);
    }
    let reason = truncate_utf8(reason, limits::WS_CLOSE_REASON_MAX);
    let mut payload = [0u8; limits::WS_CONTROL_PAYLOAD_MAX];
    payload[..2].copy_from_slice(&code.0.to_be_bytes());
    payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
    frame(Opcode::Close, &payload[..2 + reason.len()])
}

/// A masked (client) frame.
pub fn client_frame(fin: bool, opcode: Opcode, payload: &[u8], mask: [u8; 4]) -> BytesMut {
    let mut out = BytesMut::with_capacity(limits::WS_FRAME_HEADER_MAX + payload.len());
    client_frame_into(fin, opcode, payload, mask, &mut out);
    out
}

/// Appends a masked (client) frame to `out`.
pub fn client_frame_into(
    fin: bool,
    opcode: Opcode,
    payload: &[u8],
    mask: [u8; 4],
    out: &mut BytesMut,
) {
    let mut head = [0u8; limits::WS_FRAME_HEADER_MAX];
    let n = header(fin, opcode, payload.len(), Some(mask), &mut head);
    out.reserve(n + payload.len());
    out.put_slice(&head[..n]);
    let start = out.len();
    out.put_slice(payload);
    apply_mask(&mut out[start..], mask);
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
