//! Close codes (RFC 6455 §7.4 and the IANA registry) and close frame payloads.

use super::{Utf8Validator, WsError};
use std::fmt;

/// A WebSocket close status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    pub const NORMAL: CloseCode = CloseCode(1000);
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// Reserved: "no status code was present". Never on the wire.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// Reserved: "closed without a close frame". Never on the wire.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// Reserved: "TLS handshake failed". Never on the wire.
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// Whether this code may appear in a close frame: the defined codes 1000-1003 and
    /// 1007-1014, and the ranges for libraries (3000-3999) and applications (4000-4999).
    pub fn is_allowed_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The payload of a close frame that had one: a status code and a UTF-8 reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    pub code: CloseCode,
    pub reason: &'a str,
}

impl<'a> CloseFrame<'a> {
    /// Parses a close payload: `Ok(None)` for an empty one (the code is then
    /// [`CloseCode::NO_STATUS`] for the application), an error for a 1-byte payload, a
    /// code not allowed on the wire, or a reason that is not UTF-8.
    pub fn parse(payload: &'a [u8]) -> Result<Option<CloseFrame<'a>>, WsError> {
        match payload {
            [] => Ok(None),
            [_] => Err(WsError::CloseTooShort),
            [hi, lo, reason @ ..] => {
                let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
                if !code.is_allowed_on_wire() {
                    return Err(WsError::InvalidCloseCode { code: code.0 });
                }
                let reason = Utf8Validator::validate(reason)?;
                Ok(Some(CloseFrame { code, reason }))
            }
        }
    }
}
