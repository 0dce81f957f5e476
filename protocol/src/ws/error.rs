//! The one error type of the WebSocket frame layer, each variant mapped to the close code
//! RFC 6455 §7.4.1 prescribes.

use super::CloseCode;
use std::fmt;

/// A violation of the WebSocket protocol by the peer. The connection must be closed with
/// [`WsError::close_code`]; nothing after the offending frame can be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsError {
    /// A client frame without a mask, or a server frame with one (§5.1).
    BadMasking { expected_masked: bool },
    /// RSV1-3 set while no extension was negotiated (§5.2).
    ReservedBits { rsv: u8 },
    /// Opcode 3-7 or 11-15 (§5.2).
    ReservedOpcode { opcode: u8 },
    /// A control frame with more than 125 bytes of payload (§5.5).
    ControlFrameTooLong { len: u64 },
    /// A control frame without FIN (§5.5).
    FragmentedControlFrame,
    /// A 64-bit payload length with the most significant bit set (§5.2).
    LengthOverflow,
    /// A message (one frame, or fragments together) above the configured maximum.
    MessageTooLarge { limit: usize },
    /// A continuation frame with no fragmented message in progress (§5.4).
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is in progress (§5.4).
    ExpectedContinuation,
    /// A text message or close reason that is not valid UTF-8 (§8.1).
    InvalidUtf8,
    /// A close frame with a 1-byte payload (§5.5.1).
    CloseTooShort,
    /// A close frame with a status code that must not be sent (§7.4).
    InvalidCloseCode { code: u16 },
}

impl WsError {
    /// The close code to send to the peer.
    pub fn close_code(&self) -> CloseCode {
        match self {
            WsError::MessageTooLarge { .. } => CloseCode::MESSAGE_TOO_BIG,
            WsError::InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::BadMasking { expected_masked: true } => f.write_str("client frame not masked"),
            WsError::BadMasking { expected_masked: false } => f.write_str("server frame masked"),
            WsError::ReservedBits { rsv } => write!(f, "reserved bits set ({rsv:#05b})"),
            WsError::ReservedOpcode { opcode } => write!(f, "reserved opcode {opcode:#x}"),
            WsError::ControlFrameTooLong { len } => {
                write!(f, "control frame payload of {len} bytes (max 125)")
            }
            WsError::FragmentedControlFrame => f.write_str("fragmented control frame"),
            WsError::LengthOverflow => f.write_str("payload length has its top bit set"),
            WsError::MessageTooLarge { limit } => write!(f, "message exceeds {limit} bytes"),
            WsError::UnexpectedContinuation => f.write_str("continuation frame without a message"),
            WsError::ExpectedContinuation => {
                f.write_str("new data frame inside a fragmented message")
            }
            WsError::InvalidUtf8 => f.write_str("invalid UTF-8 in text"),
            WsError::CloseTooShort => f.write_str("close frame payload of 1 byte"),
            WsError::InvalidCloseCode { code } => write!(f, "invalid close code {code}"),
        }
    }
}

impl std::error::Error for WsError {}
