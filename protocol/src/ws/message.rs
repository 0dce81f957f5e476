//! Message assembly (RFC 6455 §5.4): joins fragments, validates text as it arrives, checks
//! close payloads, and lets control frames through between fragments.

use super::{CloseFrame, Frame, Opcode, Utf8Validator, WsError};

/// A complete message. Borrowed from the read buffer when it was one frame, from the
/// assembler when it was fragmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    /// A close frame; `None` when it had no payload (status 1005 for the application).
    Close(Option<CloseFrame<'a>>),
}

/// Joins frames into messages. Holds no memory between messages: the buffer for a
/// fragmented message is allocated when one starts and released when it is handed out, so
/// an idle connection costs nothing here.
#[derive(Debug, Default)]
pub struct MessageAssembler {
    message_size_max: usize,
    partial: Option<Partial>,
    /// The last message was fragmented and was handed out from `partial`; drop it first.
    handed_out: bool,
}

#[derive(Debug)]
struct Partial {
    text: bool,
    data: Vec<u8>,
    utf8: Utf8Validator,
}

impl MessageAssembler {
    pub fn new(message_size_max: usize) -> Self {
        MessageAssembler { message_size_max, partial: None, handed_out: false }
    }

    /// Whether a fragmented message is in progress.
    pub fn in_message(&self) -> bool {
        self.partial.is_some() && !self.handed_out
    }

    /// Bytes held for a fragmented message in progress.
    pub fn buffered(&self) -> usize {
        if self.handed_out { 0 } else { self.partial.as_ref().map_or(0, |p| p.data.len()) }
    }

    /// Takes the next frame: a message when one is complete, `None` while fragments are
    /// being joined, or the protocol error to close with.
    pub fn push<'a>(&'a mut self, frame: Frame<'a>) -> Result<Option<Message<'a>>, WsError> {
        if self.handed_out {
            self.partial = None;
            self.handed_out = false;
        }
        let payload = frame.payload;
        match frame.opcode {
            Opcode::Ping => Ok(Some(Message::Ping(payload))),
            Opcode::Pong => Ok(Some(Message::Pong(payload))),
            Opcode::Close => Ok(Some(Message::Close(CloseFrame::parse(payload)?))),
            Opcode::Text | Opcode::Binary if self.partial.is_some() => {
                Err(WsError::ExpectedContinuation)
            }
            Opcode::Text | Opcode::Binary => {
                let text = frame.opcode == Opcode::Text;
                if frame.fin {
                    return if text {
                        let s = Utf8Validator::validate(payload)?;
                        Ok(Some(Message::Text(s)))
                    } else {
                        Ok(Some(Message::Binary(payload)))
                    };
                }
                let mut partial =
                    Partial { text, data: Vec::new(), utf8: Utf8Validator::default() };
                partial.append(payload, self.message_size_max)?;
                self.partial = Some(partial);
                Ok(None)
            }
            Opcode::Continuation => {
                let Some(partial) = self.partial.as_mut() else {
                    return Err(WsError::UnexpectedContinuation);
                };
                partial.append(payload, self.message_size_max)?;
                if !frame.fin {
                    return Ok(None);
                }
                self.handed_out = true;
                let partial = self.partial.as_mut().expect("checked above");
                if partial.text {
                    partial.utf8.finish()?;
                    // Validated piece by piece, and the last code point is complete.
                    let s = std::str::from_utf8(&partial.data).map_err(|_| WsError::InvalidUtf8)?;
                    Ok(Some(Message::Text(s)))
                } else {
                    Ok(Some(Message::Binary(&partial.data)))
                }
            }
        }
    }
}

impl Partial {
    fn append(&mut self, payload: &[u8], message_size_max: usize) -> Result<(), WsError> {
        if self.data.len() + payload.len() > message_size_max {
            return Err(WsError::MessageTooLarge { limit: message_size_max });
        }
        if self.text {
            self.utf8.feed(payload)?;
        }
        self.data.extend_from_slice(payload);
        Ok(())
    }
}
