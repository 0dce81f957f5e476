//! HTTP/1.1 for partyline: parse request heads incrementally, frame request bodies, and
//! encode responses.
//!
//! Requests arrive in pieces; [`HeadParser`] is fed the bytes read so far and answers with
//! a complete [`RequestHead`] (which knows its length in the buffer, so pipelined requests
//! follow it), `None` for "need more", or an [`HttpError`] that carries the status to answer
//! with. The head says how its body is framed ([`BodyKind`]); [`BodyDecoder`] then turns
//! Content-Length or chunked bytes into the body. [`Response`] encodes status, headers and a
//! body with Content-Length. Percent-encoding in the request target is left untouched.

mod body;
mod error;
mod request;
mod response;

pub use body::{BodyDecoder, BodyProgress};
pub use error::HttpError;
pub use request::{BodyKind, HeadParser, HttpLimits, RequestHead, Version};
pub use response::{EncodeOptions, Response, reason_phrase};

/// The value of an ASCII hex digit.
pub(crate) fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether a header value, read as a comma-separated list (RFC 9110 §5.6.1), contains
/// `token`, compared ASCII case-insensitively. Empty list elements and surrounding
/// whitespace are ignored.
pub fn list_contains_token(value: &[u8], token: &str) -> bool {
    value.split(|&b| b == b',').any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}
