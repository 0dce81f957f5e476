//! Every size the protocol layer accepts, in one place, with what breaks if it is raised.
//!
//! The defaults are the PartyKit profile (what the hosted runtime enforces); the engine may
//! configure larger values through [`crate::http::HttpLimits`] and
//! [`crate::ws::FrameLimits`], but never beyond the `*_MAX_CEILING` constants, which protect
//! the parsers' own arithmetic and memory.

/// Largest request head (request line + headers + blank line) accepted by default.
/// Raising it raises the memory a slow or hostile client can pin per connection before
/// the request is routed.
pub const HTTP_HEAD_SIZE_MAX: usize = 16 * 1024;

/// Hard ceiling on any configured head size. Head offsets are stored as `u32`.
pub const HTTP_HEAD_SIZE_MAX_CEILING: usize = 1024 * 1024;

/// Most header lines in one request head. httparse parses into a fixed array of this
/// many slots on the stack; raising it grows every parse's stack frame.
pub const HTTP_HEADER_COUNT_MAX: usize = 64;

/// Largest request body accepted by default (Content-Length or decoded chunked size).
/// Bodies are buffered whole before a room's `on_request` sees them.
pub const HTTP_BODY_SIZE_MAX: usize = 1024 * 1024;

/// Longest chunk-size line (hex size plus chunk extensions) in a chunked body. Chunk
/// extensions are ignored; this only stops a client from streaming an endless line.
pub const HTTP_CHUNK_LINE_SIZE_MAX: usize = 1024;

/// Largest total size of trailer fields after the last chunk. Trailers are discarded.
pub const HTTP_TRAILER_SIZE_MAX: usize = 8 * 1024;

/// Largest WebSocket message by default: PartyKit closes with 1009 above 1 MiB.
pub const WS_MESSAGE_SIZE_MAX: usize = 1024 * 1024;

/// Largest message the large ("new runtime") profile allows: 32 MiB.
pub const WS_MESSAGE_SIZE_MAX_LARGE: usize = 32 * 1024 * 1024;

/// Hard ceiling on any configured message size. Keeps buffered partial messages below
/// what a shard can afford for a handful of connections at once.
pub const WS_MESSAGE_SIZE_MAX_CEILING: usize = 256 * 1024 * 1024;

/// Largest payload of a control frame (close, ping, pong), fixed by RFC 6455 §5.5.
pub const WS_CONTROL_PAYLOAD_MAX: usize = 125;

/// Largest close reason: a control payload minus the 2-byte status code.
pub const WS_CLOSE_REASON_MAX: usize = WS_CONTROL_PAYLOAD_MAX - 2;

/// Largest WebSocket frame header: 2 bytes + 8 bytes of extended length + 4 bytes of mask.
pub const WS_FRAME_HEADER_MAX: usize = 14;

const _: () = {
    assert!(HTTP_BODY_SIZE_MAX <= WS_MESSAGE_SIZE_MAX_CEILING);
    assert!(HTTP_HEAD_SIZE_MAX <= HTTP_HEAD_SIZE_MAX_CEILING);
    assert!(HTTP_HEAD_SIZE_MAX_CEILING <= u32::MAX as usize);
    assert!(WS_MESSAGE_SIZE_MAX <= WS_MESSAGE_SIZE_MAX_LARGE);
    assert!(WS_MESSAGE_SIZE_MAX_LARGE <= WS_MESSAGE_SIZE_MAX_CEILING);
    assert!(HTTP_CHUNK_LINE_SIZE_MAX < HTTP_HEAD_SIZE_MAX);
};

/// The longest PROXY protocol version 1 line, CRLF included (the spec's bound).
pub const PROXY_V1_LINE_MAX: usize = 107;

/// The longest PROXY protocol version 2 header accepted, extensions included: 16 fixed
/// bytes, 216 for the largest (UNIX) address block, and room for the extensions HAProxy
/// sends (ALPN, authority, unique id, SSL details). Longer headers are refused, not
/// buffered.
pub const PROXY_V2_HEADER_MAX: usize = 1024;
