//! Request heads: incremental parsing with httparse, and the facts the server needs from a
//! head (target, headers, keep-alive, how the body is framed).

use super::{HttpError, list_contains_token};
use crate::limits;
use bytes::Bytes;
use std::fmt;

/// Size limits applied while parsing one request. Defaults come from [`crate::limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Largest head, request line to blank line inclusive.
    pub head_size_max: usize,
    /// Most header lines; at most [`limits::HTTP_HEADER_COUNT_MAX`].
    pub header_count_max: usize,
    /// Largest body, after chunked decoding.
    pub body_size_max: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            head_size_max: limits::HTTP_HEAD_SIZE_MAX,
            header_count_max: limits::HTTP_HEADER_COUNT_MAX,
            body_size_max: limits::HTTP_BODY_SIZE_MAX,
        }
    }
}

/// The HTTP version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// How the body that follows a head is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body (no Content-Length, no Transfer-Encoding, or Content-Length: 0).
    Empty,
    /// Exactly this many bytes follow.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
}

/// Byte range of a piece of the head, relative to the head's first byte.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn of(outer: &[u8], inner: &[u8]) -> Span {
        let start = inner.as_ptr() as usize - outer.as_ptr() as usize;
        debug_assert!(start + inner.len() <= outer.len());
        // HeadParser::new caps heads at HTTP_HEAD_SIZE_MAX_CEILING, which fits in u32.
        let offset = |n: usize| u32::try_from(n).expect("head offsets fit in u32");
        Span { start: offset(start), end: offset(start + inner.len()) }
    }

    fn get(self, bytes: &[u8]) -> &[u8] {
        &bytes[self.start as usize..self.end as usize]
    }
}

/// A parsed request head. It owns one copy of the head's bytes and indexes into them, so
/// parsing costs one allocation for the bytes and one for the header index.
#[derive(Clone)]
pub struct RequestHead {
    bytes: Bytes,
    method: Span,
    target: Span,
    version: Version,
    headers: Vec<(Span, Span)>,
    body: BodyKind,
}

impl RequestHead {
    /// Length of the head in the buffer it was parsed from; the body (or the next
    /// pipelined request) starts here.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a head has at least a request line.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The raw bytes of the head.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The method, as sent (methods are case-sensitive).
    pub fn method(&self) -> &str {
        self.str_at(self.method)
    }

    /// The request target exactly as sent, percent-encoding untouched.
    pub fn target(&self) -> &str {
        self.str_at(self.target)
    }

    /// The target in origin-form: for an absolute-form target (`http://host/p?q`) the part
    /// from the path on (`/p?q`); otherwise the target itself.
    pub fn origin_target(&self) -> &str {
        origin_form(self.target())
    }

    /// The path of [`RequestHead::origin_target`], without the query.
    pub fn path(&self) -> &str {
        let t = self.origin_target();
        t.split_once('?').map_or(t, |(path, _)| path)
    }

    /// The query string (after `?`, without it), if the target has one.
    pub fn query(&self) -> Option<&str> {
        self.origin_target().split_once('?').map(|(_, q)| q)
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// How the body is framed.
    pub fn body(&self) -> BodyKind {
        self.body
    }

    /// All header lines in order, names as sent.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.headers.iter().map(|&(name, value)| (self.str_at(name), value.get(&self.bytes)))
    }

    /// The first value of header `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.header_all(name).next()
    }

    /// The first value of header `name` as text, if it is valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of header `name`, in order.
    pub fn header_all<'s, 'n>(
        &'s self,
        name: &'n str,
    ) -> impl Iterator<Item = &'s [u8]> + use<'s, 'n> {
        self.headers
            .iter()
            .filter(move |&&(n, _)| self.str_at(n).eq_ignore_ascii_case(name))
            .map(|&(_, value)| value.get(&self.bytes))
    }

    /// Whether any `name` header, read as a comma list, contains `token`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.header_all(name).any(|v| list_contains_token(v, token))
    }

    /// Whether the connection stays open after this request: HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        match self.version {
            Version::Http11 => !self.has_token("connection", "close"),
            Version::Http10 => self.has_token("connection", "keep-alive"),
        }
    }

    /// Whether the client asks to upgrade to WebSocket (`Upgrade: websocket`). Whether the
    /// upgrade is valid is for [`crate::ws::handshake`] to decide.
    pub fn is_websocket_upgrade(&self) -> bool {
        self.has_token("upgrade", "websocket")
    }

    /// Whether the client waits for `100 Continue` before sending its body.
    pub fn expects_continue(&self) -> bool {
        self.version == Version::Http11
            && self.header("expect").is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"))
    }

    fn str_at(&self, span: Span) -> &str {
        // Method, target and header names were handed out by httparse as &str, so these
        // ranges are valid UTF-8 (ASCII, in fact).
        std::str::from_utf8(span.get(&self.bytes)).unwrap_or("")
    }
}

impl fmt::Debug for RequestHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestHead")
            .field("method", &self.method())
            .field("target", &self.target())
            .field("version", &self.version)
            .field(
                "headers",
                &self.headers().map(|(n, v)| (n, String::from_utf8_lossy(v))).collect::<Vec<_>>(),
            )
            .field("body", &self.body)
            .finish()
    }
}

/// The part of an absolute-form target from its path on; other targets unchanged.
fn origin_form(target: &str) -> &str {
    let rest = if let Some(r) = strip_prefix_ignore_case(target, "http://") {
        r
    } else if let Some(r) = strip_prefix_ignore_case(target, "https://") {
        r
    } else {
        return target;
    };
    match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => &rest[i..],
        // `http://host?q` has an empty path, which means "/"; keep the query.
        Some(i) => &rest[i..],
        None => "/",
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// Incremental request-head parser.
///
/// Feed it the whole buffer read so far (starting at the request's first byte) each time
/// more bytes arrive. It remembers how far it already searched for the end of the head,
/// so feeding a head one byte at a time costs linear, not quadratic, time; httparse only
/// runs once the blank line is there. After a complete head it resets itself for the next
/// (pipelined) request.
#[derive(Debug, Clone, Default)]
pub struct HeadParser {
    limits: HttpLimits,
    /// Bytes at the start of the buffer already known not to end the head.
    scanned: usize,
}

impl HeadParser {
    pub fn new(limits: HttpLimits) -> Self {
        assert!(limits.header_count_max <= limits::HTTP_HEADER_COUNT_MAX);
        assert!(limits.head_size_max <= limits::HTTP_HEAD_SIZE_MAX_CEILING);
        HeadParser { limits, scanned: 0 }
    }

    pub fn limits(&self) -> &HttpLimits {
        &self.limits
    }

    /// Parses `buf`: `Ok(Some(head))` when a whole head is there (`head.len()` bytes of
    /// `buf`), `Ok(None)` to wait for more bytes, `Err` when the request is invalid.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Option<RequestHead>, HttpError> {
        loop {
            let Some(end) = find_head_end(buf, self.scanned) else {
                if buf.len() > self.limits.head_size_max {
                    return Err(HttpError::HeadTooLarge { limit: self.limits.head_size_max });
                }
                // The last 3 bytes may begin a terminator completed by the next read.
                self.scanned = buf.len().saturating_sub(3);
                return Ok(None);
            };
            if end > self.limits.head_size_max {
                return Err(HttpError::HeadTooLarge { limit: self.limits.head_size_max });
            }
            match parse_head(&buf[..end], &self.limits)? {
                Some(head) => {
                    self.scanned = 0;
                    return Ok(Some(head));
                }
                // A blank line httparse skips (empty lines before the request line).
                None => self.scanned = end,
            }
        }
    }
}

/// Position just past the first blank line (`\r\n\r\n` or bare `\n\n`) at or after `from`.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(off) = buf.get(i..)?.iter().position(|&b| b == b'\n') {
        let nl = i + off;
        match buf.get(nl + 1..) {
            Some([b'\n', ..]) => return Some(nl + 2),
            Some([b'\r', b'\n', ..]) => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
    None
}

fn parse_head(buf: &[u8], limits: &HttpLimits) -> Result<Option<RequestHead>, HttpError> {
    let mut slots = [httparse::EMPTY_HEADER; limits::HTTP_HEADER_COUNT_MAX];
    let slots = &mut slots[..limits.header_count_max];
    let mut req = httparse::Request::new(slots);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::TooManyHeaders { limit: limits.header_count_max });
        }
        Err(httparse::Error::Version) => return Err(version_error(buf)),
        Err(e) => {
            return Err(HttpError::Malformed { what: malformed_what(e) });
        }
    };
    let version = match req.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(HttpError::UnsupportedVersion),
    };
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Ok(None);
    };
    if !target_is_valid(method, target) {
        return Err(HttpError::BadTarget);
    }
    let head = &buf[..len];
    let method = Span::of(head, method.as_bytes());
    let target = Span::of(head, target.as_bytes());
    let headers: Vec<(Span, Span)> = req
        .headers
        .iter()
        .map(|h| (Span::of(head, h.name.as_bytes()), Span::of(head, h.value)))
        .collect();
    let mut parsed = RequestHead {
        bytes: Bytes::copy_from_slice(head),
        method,
        target,
        version,
        headers,
        body: BodyKind::Empty,
    };
    if version == Version::Http11 {
        let hosts = parsed.header_all("host").count();
        if hosts != 1 {
            return Err(HttpError::BadHost { count: hosts });
        }
    }
    parsed.body = body_kind(&parsed, limits)?;
    Ok(Some(parsed))
}

/// httparse reports a request line it cannot split into three as a bad version: only a
/// line of exactly `METHOD SP target SP HTTP/x.y` with another version is a 505; more
/// parts (a raw space in the target, say) is a malformed request, 400.
fn version_error(buf: &[u8]) -> HttpError {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    match parts[..] {
        [_, _, version] if version.starts_with(b"HTTP/") => HttpError::UnsupportedVersion,
        _ => HttpError::Malformed { what: "request line (a space in the target must be %20)" },
    }
}

fn malformed_what(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid method or request target",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "invalid HTTP version",
    }
}

fn target_is_valid(method: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return true;
    }
    if target == "*" {
        return method == "OPTIONS";
    }
    let authority_and_rest = strip_prefix_ignore_case(target, "http://")
        .or_else(|| strip_prefix_ignore_case(target, "https://"));
    authority_and_rest.is_some_and(|r| !r.is_empty() && !r.starts_with(['/', '?']))
}

/// RFC 9112 §6.3: how the request body is framed.
fn body_kind(head: &RequestHead, limits: &HttpLimits) -> Result<BodyKind, HttpError> {
    let mut encodings = head.header_all("transfer-encoding").peekable();
    let has_te = encodings.peek().is_some();
    let mut chunked_last = false;
    for value in encodings {
        for coding in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            if coding.is_empty() {
                continue;
            }
            // `chunked` must be the final coding and appear once.
            if chunked_last {
                return Err(HttpError::UnsupportedTransferEncoding);
            }
            if coding.eq_ignore_ascii_case(b"chunked") {
                chunked_last = true;
            } else {
                return Err(HttpError::UnsupportedTransferEncoding);
            }
        }
    }
    let mut length: Option<u64> = None;
    for value in head.header_all("content-length") {
        // A list of identical values ("5, 5") is allowed (RFC 9110 §8.6).
        for item in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            let n = parse_decimal(item).ok_or(HttpError::BadContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(HttpError::BadContentLength);
            }
            length = Some(n);
        }
    }
    match (has_te, length) {
        (true, Some(_)) => Err(HttpError::LengthAndTransferEncoding),
        (true, None) if chunked_last => Ok(BodyKind::Chunked),
        (true, None) => Err(HttpError::UnsupportedTransferEncoding),
        (false, Some(n)) if n > limits.body_size_max as u64 => {
            Err(HttpError::BodyTooLarge { limit: limits.body_size_max })
        }
        (false, Some(0)) | (false, None) => Ok(BodyKind::Empty),
        (false, Some(n)) => Ok(BodyKind::Length(n)),
    }
}

/// A non-empty run of ASCII digits that fits in u64.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0')))
}
