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
            HandshakeError::UnsupportedVersion => r
                .with_header("sec-websocket-version", "13")
                .with_header("upgrade", "websocket"),
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
            head.header_all("sec-websocket-protocol")
                .any(|v| list_contains_token(v, ours))
        })
        .cloned();
    Ok(Accept {
        accept_key: accept_key(key),
        protocol,
    })
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
