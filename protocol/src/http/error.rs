//! The one error type of the HTTP layer: what was wrong with a request (or with a response
//! a party built), and the status code the server answers with.

use std::fmt;

/// Why a request could not be parsed or a response could not be encoded.
///
/// Request errors are the client's fault and are answered with [`HttpError::status`], then
/// the connection is closed (after a framing error nothing that follows can be trusted).
/// [`HttpError::InvalidResponseHeader`] is the party's fault and becomes a 500.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The head did not end within the configured head size.
    HeadTooLarge { limit: usize },
    /// More header lines than the configured count.
    TooManyHeaders { limit: usize },
    /// The request line or a header line is not valid HTTP/1.x.
    Malformed { what: &'static str },
    /// A version other than HTTP/1.0 or HTTP/1.1 (HTTP/2 prior knowledge included).
    UnsupportedVersion,
    /// The request target is not origin-form, absolute-form, or `*` with OPTIONS.
    BadTarget,
    /// HTTP/1.1 requires exactly one Host header (RFC 9112 §3.2).
    BadHost { count: usize },
    /// A Content-Length that is not a decimal number, or several that disagree.
    BadContentLength,
    /// Both Transfer-Encoding and Content-Length: refused, as a request-smuggling guard.
    LengthAndTransferEncoding,
    /// A transfer coding other than `chunked` as the final coding.
    UnsupportedTransferEncoding,
    /// The body is larger than the configured body size.
    BodyTooLarge { limit: usize },
    /// The chunked body framing is invalid.
    BadChunk { what: &'static str },
    /// A response header a party set has an invalid name or a value with CR, LF or NUL.
    InvalidResponseHeader { name: String },
}

impl HttpError {
    /// The status code to answer with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::HeadTooLarge { .. } | HttpError::TooManyHeaders { .. } => 431,
            HttpError::BodyTooLarge { .. } => 413,
            HttpError::UnsupportedVersion => 505,
            HttpError::UnsupportedTransferEncoding => 501,
            HttpError::InvalidResponseHeader { .. } => 500,
            HttpError::Malformed { .. }
            | HttpError::BadTarget
            | HttpError::BadHost { .. }
            | HttpError::BadContentLength
            | HttpError::LengthAndTransferEncoding
            | HttpError::BadChunk { .. } => 400,
        }
    }

    /// Whether the fault lies with the client (as opposed to party code).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, HttpError::InvalidResponseHeader { .. })
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::HeadTooLarge { limit } => {
                write!(f, "request head exceeds {limit} bytes")
            }
            HttpError::TooManyHeaders { limit } => {
                write!(f, "request has more than {limit} header lines")
            }
            HttpError::Malformed { what } => write!(f, "malformed request: {what}"),
            HttpError::UnsupportedVersion => f.write_str("only HTTP/1.0 and HTTP/1.1 are supported"),
            HttpError::BadTarget => f.write_str(
                "request target must be an absolute path (\"/...\"), an absolute URL, or \"*\" with OPTIONS",
            ),
            HttpError::BadHost { count } => {
                write!(f, "HTTP/1.1 requests need exactly one Host header, got {count}")
            }
            HttpError::BadContentLength => f.write_str("invalid or conflicting Content-Length"),
            HttpError::LengthAndTransferEncoding => {
                f.write_str("request has both Content-Length and Transfer-Encoding")
            }
            HttpError::UnsupportedTransferEncoding => {
                f.write_str("only the chunked transfer coding is supported")
            }
            HttpError::BodyTooLarge { limit } => write!(f, "request body exceeds {limit} bytes"),
            HttpError::BadChunk { what } => write!(f, "invalid chunked body: {what}"),
            HttpError::InvalidResponseHeader { name } => {
                write!(f, "response header {name:?} has an invalid name or value")
            }
        }
    }
}

impl std::error::Error for HttpError {}
