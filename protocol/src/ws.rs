//! WebSocket (RFC 6455) for partyline: the opening handshake, frame decoding and encoding,
//! message assembly and close codes, all without I/O.
//!
//! The read path is: bytes read from a socket -> [`FrameDecoder::decode`] (header checks,
//! length limit, in-place unmasking) -> [`MessageAssembler::push`] (fragmentation, streaming
//! UTF-8 validation, close payload checks) -> a [`Message`] borrowed from the read buffer
//! when the message was a single frame. Every failure is a [`WsError`] that names the close
//! code to send. The write path is [`encode`]: a whole frame (header and payload) written
//! once into shared [`bytes::Bytes`], so one encoded broadcast can go to many sockets.

mod close;
pub mod encode;
mod error;
mod frame;
pub mod handshake;
mod mask;
mod message;
mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use error::WsError;
pub use frame::{Decoded, Frame, FrameDecoder, FrameHeader, FrameLimits, Opcode, Role};
pub use mask::{apply_mask, apply_mask_bytewise};
pub use message::{Message, MessageAssembler};
pub use utf8::Utf8Validator;
