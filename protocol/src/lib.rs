//! Sans-I/O protocol layer of partyline: HTTP/1.1 requests and responses, the WebSocket
//! opening handshake and frames (RFC 6455), and PartyKit's URL routes.
//!
//! This crate takes bytes and gives values. It never touches a socket, never blocks, never
//! spawns and never depends on an async runtime, so every rule here is testable with plain
//! byte slices and can be fuzzed. The engine owns all I/O; it feeds what it read into these
//! parsers and writes what the encoders give back.
//!
//! Every parser answers one of three things: *complete* (with how many bytes it used),
//! *need more* (nothing consumed, call again with more bytes), or *invalid* (a typed error
//! that names what was wrong and maps to the HTTP status or WebSocket close code the server
//! must answer with). Every size the parsers accept is bounded by a named limit in
//! [`limits`].
//!
//! Map of the crate:
//! - [`http`]: request head parsing ([`http::RequestHead`]), body framing (Content-Length
//!   and chunked, [`http::BodyDecoder`]) and response encoding ([`http::Response`]).
//! - [`ws`]: the upgrade handshake ([`ws::handshake`]), the frame decoder
//!   ([`ws::FrameDecoder`]), the message assembler with streaming UTF-8 validation
//!   ([`ws::MessageAssembler`]), close codes ([`ws::CloseCode`]) and the frame encoder that
//!   produces shared, refcounted frames ([`ws::encode`]).
//! - [`route`]: `/parties/:party/:room[/rest]` and the legacy `/party/:room[/rest]`.
//! - [`proxy`]: the PROXY protocol header (versions 1 and 2) a TCP load balancer sends first.
//! - [`yjs`]: the y-websocket wire protocol (y-protocols sync and awareness messages),
//!   checked whole before a Yjs decoder that trusts its counts reads it.

pub mod http;
pub mod limits;
pub mod proxy;
pub mod route;
pub mod ws;
pub mod yjs;

pub use bytes::Bytes;
