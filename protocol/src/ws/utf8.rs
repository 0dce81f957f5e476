//! Streaming UTF-8 validation for fragmented text messages: fails on the first byte that
//! cannot start or continue a valid sequence, even when a code point is split between
//! frames (RFC 6455 §8.1, Autobahn cases 6.x).

use super::WsError;

/// Validates UTF-8 fed in pieces. Holds at most 3 bytes: the start of a code point that the
/// next piece completes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: usize,
}

impl Utf8Validator {
    /// Validates a complete text in one piece.
    pub fn validate(bytes: &[u8]) -> Result<&str, WsError> {
        std::str::from_utf8(bytes).map_err(|_| WsError::InvalidUtf8)
    }

    /// Feeds the next piece. Fails as soon as the bytes so far cannot be the prefix of
    /// valid UTF-8; a code point cut at the end of `bytes` is kept for the next call.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), WsError> {
        if self.pending_len > 0 {
            let have = self.pending_len;
            let take = (sequence_len(self.pending[0]) - have).min(bytes.len());
            let mut joined = self.pending;
            joined[have..have + take].copy_from_slice(&bytes[..take]);
            match std::str::from_utf8(&joined[..have + take]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_some() => return Err(WsError::InvalidUtf8),
                Err(_) => {
                    // Still a valid prefix, and `bytes` is used up.
                    self.pending = joined;
                    self.pending_len = have + take;
                    return Ok(());
                }
            }
            bytes = &bytes[take..];
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(WsError::InvalidUtf8),
            Err(e) => {
                let tail = &bytes[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len();
                Ok(())
            }
        }
    }

    /// Ends the text: fails if it stopped inside a code point. Resets the validator.
    pub fn finish(&mut self) -> Result<(), WsError> {
        let complete = self.pending_len == 0;
        *self = Utf8Validator::default();
        if complete { Ok(()) } else { Err(WsError::InvalidUtf8) }
    }
}

/// Length of the sequence a (valid) lead byte starts.
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}
