//! HTTP responses: a small owned value that rooms and the server build, encoded into one
//! contiguous buffer (status line, headers, Content-Length, body) for a single write.

use super::HttpError;
use bytes::{BufMut, Bytes, BytesMut};

/// An HTTP response. The body is sent with a Content-Length; the server sets
/// `Content-Length` and `Connection` itself, so those (and `Transfer-Encoding`) are ignored
/// if a party sets them (except `Connection` on a `101`, which the upgrade needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
}

/// How a response is encoded for one particular request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Whether the connection stays open; false adds `Connection: close`.
    pub keep_alive: bool,
    /// A HEAD request: headers (Content-Length included) but no body bytes.
    pub head_request: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions { keep_alive: true, head_request: false }
    }
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Self {
        Response { status, headers: Vec::new(), body: Bytes::new() }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response::new(status)
            .with_header("content-type", "text/plain; charset=utf-8")
            .with_body(body.into())
    }

    /// An `application/json` response; `json` must already be serialized.
    pub fn json(status: u16, json: impl Into<String>) -> Self {
        Response::new(status).with_header("content-type", "application/json").with_body(json.into())
    }

    /// The answer to a request error: its status and a one-line explanation.
    pub fn from_error(error: &HttpError) -> Self {
        Response::text(error.status(), format!("{error}\n"))
    }

    /// Adds a header. Names and values are checked when the response is encoded.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Encodes the response. Fails only if a header set by party code has an invalid name
    /// or a value containing CR, LF or NUL (response splitting), which the server answers
    /// with a 500 instead.
    pub fn encode(&self, options: EncodeOptions) -> Result<Bytes, HttpError> {
        let mut out = BytesMut::with_capacity(
            64 + self.headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum::<usize>()
                + self.body.len(),
        );
        self.encode_into(options, &mut out)?;
        Ok(out.freeze())
    }

    /// [`Response::encode`] appending to `out`.
    pub fn encode_into(&self, options: EncodeOptions, out: &mut BytesMut) -> Result<(), HttpError> {
        for (name, value) in &self.headers {
            if !is_token(name) || value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                return Err(HttpError::InvalidResponseHeader { name: name.clone() });
            }
        }
        let status = if (100..=999).contains(&self.status) { self.status } else { 500 };
        out.put_slice(b"HTTP/1.1 ");
        put_decimal(out, u64::from(status));
        out.put_u8(b' ');
        out.put_slice(reason_phrase(status).as_bytes());
        out.put_slice(b"\r\n");
        // A 101 switches protocols: its `Connection: Upgrade` is the point, not framing.
        let switching = status == 101;
        for (name, value) in &self.headers {
            if is_framing_header(name) && !(switching && name.eq_ignore_ascii_case("connection")) {
                continue;
            }
            out.put_slice(name.as_bytes());
            out.put_slice(b": ");
            out.put_slice(value.as_bytes());
            out.put_slice(b"\r\n");
        }
        // 1xx, 204 and 304 carry no body and no Content-Length (RFC 9110 §8.6).
        let bodyless = status < 200 || status == 204 || status == 304;
        if !bodyless {
            out.put_slice(b"content-length: ");
            put_decimal(out, self.body.len() as u64);
            out.put_slice(b"\r\n");
        }
        if !options.keep_alive && !switching {
            out.put_slice(b"connection: close\r\n");
        }
        out.put_slice(b"\r\n");
        if !bodyless && !options.head_request {
            out.put_slice(&self.body);
        }
        Ok(())
    }
}

fn is_framing_header(name: &str) -> bool {
    ["content-length", "connection", "transfer-encoding"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// RFC 9110 token characters, as allowed in header names.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn put_decimal(out: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}

/// The standard reason phrase for `status` (RFC 9110 §15), or "Unknown".
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}
