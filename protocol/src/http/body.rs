//! Request bodies: Content-Length and chunked transfer coding, decoded incrementally into a
//! buffer the caller owns, with the body size limit enforced as bytes arrive.

use super::{BodyKind, HttpError, hex_digit};
use crate::limits;

/// What one call to [`BodyDecoder::decode`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyProgress {
    /// Input bytes used; the caller drops them from its buffer.
    pub consumed: usize,
    /// Whether the body is complete. Bytes after `consumed` belong to the next request.
    pub done: bool,
}

/// Decodes one request body. Feed it input as it arrives; decoded bytes are appended to
/// the `body` vector passed in.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    state: State,
    /// Decoded bytes so far, checked against `body_size_max`.
    decoded: usize,
    body_size_max: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Content-Length body with this many bytes still to come.
    Length {
        remaining: u64,
    },
    /// Reading a chunk-size line; `seen` bytes of it so far, `size` parsed so far,
    /// `digits` how many hex digits, `in_ext` whether past the digits.
    ChunkSize {
        seen: usize,
        size: u64,
        digits: u8,
        in_ext: bool,
        cr: bool,
    },
    /// Inside chunk data, this many bytes to go.
    ChunkData {
        remaining: u64,
    },
    /// After chunk data: expecting CR (`cr == false`) then LF.
    ChunkDataEnd {
        cr: bool,
    },
    /// After the last chunk: trailer lines until an empty one. `line` bytes of the
    /// current line, `total` bytes of all trailers, `cr` whether a CR was just seen.
    Trailer {
        line: usize,
        total: usize,
        cr: bool,
    },
    Done,
}

impl BodyDecoder {
    /// A decoder for a body of kind `kind`, refusing more than `body_size_max` bytes.
    pub fn new(kind: BodyKind, body_size_max: usize) -> Self {
        let state = match kind {
            BodyKind::Empty => State::Done,
            BodyKind::Length(n) => State::Length { remaining: n },
            BodyKind::Chunked => State::chunk_size(),
        };
        BodyDecoder { state, decoded: 0, body_size_max }
    }

    /// Whether the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes as much of `input` as possible, appending the body bytes to `body`.
    pub fn decode(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<BodyProgress, HttpError> {
        let mut pos = 0;
        while pos < input.len() && self.state != State::Done {
            pos += self.step(&input[pos..], body)?;
        }
        Ok(BodyProgress { consumed: pos, done: self.state == State::Done })
    }

    /// Makes progress on a non-empty `input`; returns the bytes used (at least one, or the
    /// state reaches Done).
    fn step(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<usize, HttpError> {
        match &mut self.state {
            State::Length { remaining } | State::ChunkData { remaining } => {
                let take = input.len().min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                self.decoded += take;
                if self.decoded > self.body_size_max {
                    return Err(HttpError::BodyTooLarge { limit: self.body_size_max });
                }
                body.extend_from_slice(&input[..take]);
                *remaining -= take as u64;
                if *remaining == 0 {
                    self.state = match self.state {
                        State::Length { .. } => State::Done,
                        _ => State::ChunkDataEnd { cr: false },
                    };
                }
                Ok(take)
            }
            State::ChunkSize { seen, size, digits, in_ext, cr } => {
                let b = input[0];
                *seen += 1;
                if *seen > limits::HTTP_CHUNK_LINE_SIZE_MAX {
                    return Err(HttpError::BadChunk { what: "chunk-size line too long" });
                }
                if *cr {
                    if b != b'\n' {
                        return Err(HttpError::BadChunk { what: "CR not followed by LF" });
                    }
                    if *digits == 0 {
                        return Err(HttpError::BadChunk { what: "missing chunk size" });
                    }
                    let size = *size;
                    if size > (self.body_size_max - self.decoded) as u64 {
                        return Err(HttpError::BodyTooLarge { limit: self.body_size_max });
                    }
                    self.state = if size == 0 {
                        State::Trailer { line: 0, total: 0, cr: false }
                    } else {
                        State::ChunkData { remaining: size }
                    };
                    return Ok(1);
                }
                match b {
                    b'\r' => *cr = true,
                    _ if *in_ext => {
                        if b == b'\n' || b == 0 {
                            return Err(HttpError::BadChunk { what: "bare LF in chunk extension" });
                        }
                    }
                    _ if hex_digit(b).is_some() => {
                        // 15 hex digits is already 2^60 bytes: far beyond any limit.
                        if *digits >= 15 {
                            return Err(HttpError::BadChunk { what: "chunk size too long" });
                        }
                        *digits += 1;
                        *size = *size * 16 + u64::from(hex_digit(b).unwrap_or(0));
                    }
                    b';' | b' ' | b'\t' if *digits > 0 => *in_ext = true,
                    _ => {
                        return Err(HttpError::BadChunk { what: "invalid chunk size" });
                    }
                }
                Ok(1)
            }
            State::ChunkDataEnd { cr } => {
                match (input[0], *cr) {
                    (b'\r', false) => *cr = true,
                    (b'\n', true) => self.state = State::chunk_size(),
                    _ => {
                        return Err(HttpError::BadChunk {
                            what: "chunk data not followed by CRLF",
                        });
                    }
                }
                Ok(1)
            }
            State::Trailer { line, total, cr } => {
                let b = input[0];
                *total += 1;
                if *total > limits::HTTP_TRAILER_SIZE_MAX {
                    return Err(HttpError::BadChunk { what: "trailer section too large" });
                }
                if *cr {
                    if b != b'\n' {
                        return Err(HttpError::BadChunk { what: "CR not followed by LF" });
                    }
                    if *line == 0 {
                        self.state = State::Done;
                    } else {
                        *line = 0;
                        *cr = false;
                    }
                } else if b == b'\r' {
                    *cr = true;
                } else if b == b'\n' {
                    return Err(HttpError::BadChunk { what: "bare LF in trailer" });
                } else {
                    *line += 1;
                }
                Ok(1)
            }
            State::Done => Ok(0),
        }
    }
}

impl State {
    fn chunk_size() -> State {
        State::ChunkSize { seen: 0, size: 0, digits: 0, in_ext: false, cr: false }
    }
}
