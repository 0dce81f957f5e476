//! The WebSocket opening handshake, server side (RFC 6455 §4.2): decide whether an upgrade
//! request is valid, compute `Sec-WebSocket-Accept`, pick a subprotocol, and build the
//! `101` response, or say why not with the status to answer (400 or 426).

use crate::http::{RequestHead, Response, Version, list_contains_token};
use std::fmt;

/// Server-side handshake settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandshakeConfig {
    /// Subprotocols the server speaks, most preferred first. When a client offers some,
    /// the first of these it offered is chosen; when none match, none is chosen (the
    /// client then decides whether to go on, as RFC 6455 §4.2.2 leaves it).
    pub subprotocols: Vec<String>,
}

/// A valid upgrade: what the `101` response needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    /// The `Sec-WebSocket-Accept` value.
    pub accept_key: String,
    /// The chosen subprotocol, if any.
    pub protocol: Option<String>,
}

impl Accept {
    /// The `101 Switching Protocols` response.
    pub fn response(&self) -> Response {
        let mut r = Response::new(101)
            .with_header("upgrade", "websocket")
            .with_header("connection", "Upgrade")
            .with_header("sec-websocket-accept", self.accept_key.clone());
        if let Some(p) = &self.protocol {
            r = r.with_header("sec-websocket-protocol", p.clone());
        }
        r
    }
}

/// Why an upgrade request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The method is not GET.
    NotGet,
    /// HTTP/1.0: upgrades need HTTP/1.1.
    Http10,
    /// No `Upgrade: websocket`.
    NoUpgradeToken,
    /// No `upgrade` token in `Connection`.
    NoConnectionUpgrade,
    /// `Sec-WebSocket-Version` missing or not 13.
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` missing, repeated, or not 16 bytes in base64.
    BadKey,
}

impl HandshakeError {
    /// The status to answer with: 426 (with `Sec-WebSocket-Version: 13`) for a version we
    /// do not speak, 400 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::UnsupportedVersion => 426,
            _ => 400,
        }
    }

    /// The refusal: status, the reason as text, and for 426 the version we speak.
    pub fn response(&self) -> Response {
        let r = Response::text(self.status(), format!("{self}\n"));
        match self {
            HandshakeError::UnsupportedVersion => {
                r.with_header("sec-websocket-version", "13").with_header("upgrade", "websocket")
            }
            _ => r,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeError::NotGet => "WebSocket upgrade requires GET",
            HandshakeError::Http10 => "WebSocket upgrade requires HTTP/1.1",
            HandshakeError::NoUpgradeToken => "missing \"Upgrade: websocket\"",
            HandshakeError::NoConnectionUpgrade => "missing \"Connection: Upgrade\"",
            HandshakeError::UnsupportedVersion => "Sec-WebSocket-Version must be 13",
            HandshakeError::BadKey => "Sec-WebSocket-Key must be 16 bytes in base64, sent once",
        })
    }
}

impl std::error::Error for HandshakeError {}

/// Checks an upgrade request and prepares the answer.
pub fn accept(head: &RequestHead, config: &HandshakeConfig) -> Result<Accept, HandshakeError> {
    if head.method() != "GET" {
        return Err(HandshakeError::NotGet);
    }
    if head.version() == Version::Http10 {
        return Err(HandshakeError::Http10);
    }
    if !head.is_websocket_upgrade() {
        return Err(HandshakeError::NoUpgradeToken);
    }
    if !head.has_token("connection", "upgrade") {
        return Err(HandshakeError::NoConnectionUpgrade);
    }
    let mut versions = head.header_all("sec-websocket-version");
    match (versions.next(), versions.next()) {
        (Some(v), None) if v.trim_ascii() == b"13" => {}
        _ => return Err(HandshakeError::UnsupportedVersion),
    }
    let mut keys = head.header_all("sec-websocket-key");
    let key = match (keys.next(), keys.next()) {
        (Some(k), None) if is_valid_key(k.trim_ascii()) => k.trim_ascii(),
        _ => return Err(HandshakeError::BadKey),
    };
    let protocol = config
        .subprotocols
        .iter()
        .find(|ours| {
            head.header_all("sec-websocket-protocol").any(|v| list_contains_token(v, ours))
        })
        .cloned();
    Ok(Accept { accept_key: accept_key(key), protocol })
}

/// `Sec-WebSocket-Accept` for a key: base64(SHA-1(key + GUID)), RFC 6455 §1.3.
pub fn accept_key(key: &[u8]) -> String {
    tungstenite::handshake::derive_accept_key(key)
}

/// A base64 encoding of exactly 16 bytes: 22 symbols, the last carrying 2 bits (so one of
/// `A Q g w`), then `==`.
fn is_valid_key(key: &[u8]) -> bool {
    let is_b64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    key.len() == 24
        && key[..21].iter().all(is_b64)
        && matches!(key[21], b'A' | b'Q' | b'g' | b'w')
        && &key[22..] == b"=="
}

/// The client side of the handshake, for load generators and tests: the upgrade request,
/// and the check of the server's answer.
pub mod client {
    use super::accept_key;
    use std::fmt;

    /// A client key: 16 bytes in base64. Callers pick the bytes (the load tester derives
    /// them from a counter); servers only check the format.
    pub fn key_from(bytes: [u8; 16]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::with_capacity(24);
        for chunk in bytes.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
            let symbols = chunk.len() + 1;
            for i in 0..4 {
                if i < symbols {
                    out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// The upgrade request for `path` (with query) on `host`.
    pub fn request(host: &str, path: &str, key: &str) -> Vec<u8> {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
        )
        .into_bytes()
    }

    /// Why a server's answer is not a valid upgrade.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum ClientError {
        /// The answer is not HTTP.
        Malformed,
        /// The server answered with this status instead of 101.
        Status(u16),
        /// A 101 without the right `Sec-WebSocket-Accept`.
        BadAccept,
    }

    impl fmt::Display for ClientError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                ClientError::Malformed => f.write_str("malformed HTTP response"),
                ClientError::Status(s) => write!(f, "server answered {s} instead of 101"),
                ClientError::BadAccept => f.write_str("wrong Sec-WebSocket-Accept"),
            }
        }
    }

    impl std::error::Error for ClientError {}

    /// Checks the server's answer in `buf`: `Ok(Some(len))` for a valid 101 whose head is
    /// `len` bytes (frames may follow), `Ok(None)` to wait for more bytes.
    pub fn check_response(buf: &[u8], key: &str) -> Result<Option<usize>, ClientError> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(ClientError::Malformed),
        };
        match response.code {
            Some(101) => {}
            Some(code) => return Err(ClientError::Status(code)),
            None => return Err(ClientError::Malformed),
        }
        let expected = accept_key(key.as_bytes());
        let accepted = response.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("sec-websocket-accept") && h.value == expected.as_bytes()
        });
        if accepted { Ok(Some(len)) } else { Err(ClientError::BadAccept) }
    }
}
