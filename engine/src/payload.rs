//! [`Message`] and [`Request`]: what clients and rooms exchange, as plain data. They hold
//! no handles and no shard-bound state, so they cross shards as they are (and could cross
//! processes: each is bytes plus a few strings).

use crate::error::{Error, Result};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::Arc;

/// A WebSocket message from or to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(Arc<str>),
    Binary(Bytes),
}

impl Message {
    /// The text of a text message; a client error (400) for a binary one.
    pub fn text(&self) -> Result<&str> {
        match self {
            Message::Text(s) => Ok(s),
            Message::Binary(_) => Err(Error::client(400, "expected a text message, got binary")),
        }
    }

    /// The payload bytes, text or binary.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<&Message> for Message {
    fn from(m: &Message) -> Self {
        m.clone()
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Self {
        Message::Text(s.into())
    }
}

impl From<String> for Message {
    fn from(s: String) -> Self {
        Message::Text(s.into())
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Self {
        Message::Binary(b)
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Self {
        Message::Binary(b.into())
    }
}

/// An HTTP request as party code sees it: the upgrade request of a connection, or a
/// request for `on_request`. The target is the full original one (sub path and query
/// included), percent-encoding untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// The client's address: the socket's peer or, on a listener with `proxy_protocol`,
    /// the address the load balancer's PROXY header gives. `None` for requests made in
    /// code ([`Request::new`], a room's request to another room).
    pub client: Option<SocketAddr>,
}

impl Request {
    /// A request with no headers and no body (`Request::new("GET", "/parties/main/lobby")`).
    pub fn new(method: impl Into<String>, target: impl Into<String>) -> Request {
        Request {
            method: method.into(),
            target: target.into(),
            headers: Vec::new(),
            body: Bytes::new(),
            client: None,
        }
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Adds a header, e.g. from `on_before_connect` to tell the room who the user is.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The path part of the target.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The first value of query parameter `name`, percent-decoded (`+` is a space).
    pub fn query_param(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        let query = self.target.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (partyline_protocol::route::percent_decode(k) == name)
                .then(|| partyline_protocol::route::percent_decode(v))
        })
    }

    /// The body as text; a client error (400) if it is not UTF-8.
    pub fn text(&self) -> Result<&str> {
        std::str::from_utf8(&self.body)
            .map_err(|e| Error::client(400, format!("the request body is not UTF-8: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_client_input_is_the_clients_fault() {
        let request = Request::new("POST", "/p?a=1&b=x%20y").with_body(vec![0xff, 0xfe]);
        assert_eq!(request.text().unwrap_err().status(), 400);
        assert_eq!(request.query_param("b").as_deref(), Some("x y"));
        assert_eq!(request.path(), "/p");
        assert_eq!(Message::Binary(Bytes::new()).text().unwrap_err().status(), 400);
    }
}
