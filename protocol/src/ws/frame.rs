//! Frame decoding (RFC 6455 §5.2): header checks and length limits before any payload is
//! buffered, then in-place unmasking of the complete frame.

use super::{WsError, apply_mask};
use crate::limits;

/// Which end of the connection decodes: servers receive masked frames, clients unmasked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

/// Limits applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest message (and so largest data frame); beyond it: close 1009.
    pub message_size_max: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits { message_size_max: limits::WS_MESSAGE_SIZE_MAX }
    }
}

/// A frame opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    pub fn from_u8(op: u8) -> Result<Opcode, WsError> {
        Ok(match op {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            opcode => return Err(WsError::ReservedOpcode { opcode }),
        })
    }

    pub fn as_u8(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, ping and pong.
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// A parsed and checked frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    pub opcode: Opcode,
    pub mask: Option<[u8; 4]>,
    /// At most the message limit (or 125 for control frames).
    pub payload_len: usize,
    /// Bytes the header takes (2 to 14).
    pub header_len: usize,
}

impl FrameHeader {
    /// Parses and checks a header at the start of `buf`: `Ok(None)` if `buf` is too short to
    /// hold it. Checks everything that can be checked without the payload: RSV bits,
    /// opcode, masking for `role`, control frame rules and the message size limit.
    pub fn parse(
        buf: &[u8],
        role: Role,
        limits: &FrameLimits,
    ) -> Result<Option<FrameHeader>, WsError> {
        let [b0, b1, ..] = *buf else { return Ok(None) };
        let fin = b0 & 0x80 != 0;
        let rsv = (b0 >> 4) & 0x7;
        if rsv != 0 {
            return Err(WsError::ReservedBits { rsv });
        }
        let opcode = Opcode::from_u8(b0 & 0x0F)?;
        let masked = b1 & 0x80 != 0;
        if masked != (role == Role::Server) {
            return Err(WsError::BadMasking { expected_masked: role == Role::Server });
        }
        let (payload_len, len_bytes) = match b1 & 0x7F {
            126 => match buf.get(2..4) {
                Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 2),
                None => return Ok(None),
            },
            127 => match buf.get(2..10) {
                Some(b) => {
                    let mut n = [0u8; 8];
                    n.copy_from_slice(b);
                    (u64::from_be_bytes(n), 8)
                }
                None => return Ok(None),
            },
            n => (u64::from(n), 0),
        };
        if payload_len >> 63 != 0 {
            return Err(WsError::LengthOverflow);
        }
        if opcode.is_control() {
            if payload_len > limits::WS_CONTROL_PAYLOAD_MAX as u64 {
                return Err(WsError::ControlFrameTooLong { len: payload_len });
            }
            if !fin {
                return Err(WsError::FragmentedControlFrame);
            }
        } else if payload_len > limits.message_size_max as u64 {
            return Err(WsError::MessageTooLarge { limit: limits.message_size_max });
        }
        // Checked against a usize limit above, so it fits.
        let payload_len = usize::try_from(payload_len).map_err(|_| WsError::LengthOverflow)?;
        let mut header_len = 2 + len_bytes;
        let mask = if masked {
            let Some(m) = buf.get(header_len..header_len + 4) else {
                return Ok(None);
            };
            header_len += 4;
            Some([m[0], m[1], m[2], m[3]])
        } else {
            None
        };
        Ok(Some(FrameHeader { fin, opcode, mask, payload_len, header_len }))
    }

    /// Header plus payload.
    pub fn frame_len(&self) -> usize {
        self.header_len + self.payload_len
    }
}

/// A complete, unmasked frame borrowed from the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub fin: bool,
    pub opcode: Opcode,
    pub payload: &'a [u8],
}

/// What [`FrameDecoder::decode`] found at the start of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole frame, `len` bytes of the buffer (header included).
    Frame { frame: Frame<'a>, len: usize },
    /// Not a whole frame yet. `frame_len` is the full frame's size once the header is
    /// known, so the caller can keep (and reserve) exactly what the frame needs.
    NeedMore { frame_len: Option<usize> },
}

/// Decodes frames from a byte buffer. It keeps no state between frames: a partial frame
/// stays in the caller's buffer until it is whole, and the header is re-read then (a few
/// nanoseconds, far cheaper than holding per-connection decoder state).
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    role: Role,
    limits: FrameLimits,
}

impl FrameDecoder {
    pub fn new(role: Role, limits: FrameLimits) -> Self {
        assert!(limits.message_size_max <= limits::WS_MESSAGE_SIZE_MAX_CEILING);
        FrameDecoder { role, limits }
    }

    /// A server-side decoder with the default limits.
    pub fn server() -> Self {
        FrameDecoder::new(Role::Server, FrameLimits::default())
    }

    pub fn limits(&self) -> &FrameLimits {
        &self.limits
    }

    /// Decodes the frame at the start of `buf`, unmasking its payload in place.
    pub fn decode<'a>(&self, buf: &'a mut [u8]) -> Result<Decoded<'a>, WsError> {
        let Some(header) = FrameHeader::parse(buf, self.role, &self.limits)? else {
            return Ok(Decoded::NeedMore { frame_len: None });
        };
        let len = header.frame_len();
        if buf.len() < len {
            return Ok(Decoded::NeedMore { frame_len: Some(len) });
        }
        let payload = &mut buf[header.header_len..len];
        if let Some(mask) = header.mask {
            apply_mask(payload, mask);
        }
        Ok(Decoded::Frame { frame: Frame { fin: header.fin, opcode: header.opcode, payload }, len })
    }
}
