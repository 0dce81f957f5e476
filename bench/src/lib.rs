//! Shared inputs for partyline's benchmarks, so every benchmark measures the same frames.
//!
//! The criterion benchmarks live in `benches/`; results and the commands that produced them
//! are recorded in docs/benchmarks.md.

use partyline_protocol::ws::{Opcode, encode};

/// The mask every benchmark frame uses.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Payload sizes the frame benchmarks sweep: a chat line, a control-frame maximum, a small
/// JSON document, a Yjs update, a large message, and the default message limit.
pub const PAYLOAD_SIZES: [usize; 6] = [16, 125, 1024, 16 * 1024, 64 * 1024, 1024 * 1024];

/// A payload of `len` printable ASCII bytes (valid as text and as binary).
pub fn payload(len: usize) -> Vec<u8> {
    b"abcdefghijklmnopqrstuvwxyz".iter().copied().cycle().take(len).collect()
}

/// A masked client frame carrying `payload(len)`.
pub fn client_frame(opcode: Opcode, len: usize) -> Vec<u8> {
    encode::client_frame(true, opcode, &payload(len), MASK).to_vec()
}
