//! The node links' binary framing: the same [`ToHome`] and [`ToEdge`] messages that cross
//! shards, written compactly for a TCP link between nodes. Sans-I/O: [`encode_home`],
//! [`encode_edge`] and [`encode_ping`] append one frame to a buffer; [`frame_len`] says
//! whether a buffer starts with a whole frame; [`decode`] reads one.
//!
//! A frame is `len: u32 LE` (the bytes after it), `kind: u8`, then the kind's fields.
//! Integers are little-endian; strings and byte strings are `u32 LE` length-prefixed;
//! a frame is at most [`LINK_FRAME_MAX`] bytes, so a peer cannot make this node buffer
//! more. Decoding checks every length against the frame and every string for UTF-8: a
//! malformed frame is a [`WireError`] (the link is then closed), never a panic.

use super::ids::{ConnId, NodeId, RoomKey, RoomUid, ShardAddr};
use super::message::{
    AutoResponse, ConnectOutcome, ConnectRequest, HttpRequest, ReplyTo, Shards, ToEdge, ToHome,
    ToNode,
};
use crate::payload::{Message, Request};
use bytes::Bytes;
use partyline_protocol::http::Response;
use partyline_protocol::ws::CloseCode;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// The largest frame a link sends or accepts: above the largest message, request body or
/// response a room can produce (engine limits), with room for the fields around it.
pub(crate) const LINK_FRAME_MAX: usize = 64 * 1024 * 1024;

const KIND_HOME: u8 = 1;
const KIND_EDGE: u8 = 2;
const KIND_PING: u8 = 3;

/// A frame read from a link.
#[derive(Debug)]
pub(crate) enum Frame {
    Home(ToHome),
    Edge { shards: Shards, msg: ToEdge },
    Ping,
}

/// A frame that is not what this version writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireError(pub &'static str);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed link frame: {}", self.0)
    }
}

type R<T> = Result<T, WireError>;

// ---- Encoding ---------------------------------------------------------------------------

/// Appends a frame carrying `msg` for a room homed on the peer.
pub(crate) fn encode_home(out: &mut Vec<u8>, msg: &ToHome) {
    frame(out, KIND_HOME, |w| home(w, msg));
}

/// Appends a frame carrying `d.msg` for the listed shards of the peer.
pub(crate) fn encode_edge(out: &mut Vec<u8>, d: &ToNode) {
    frame(out, KIND_EDGE, |w| {
        let shards = d.shards.as_slice();
        w.u16(u16::try_from(shards.len()).expect("a node has at most 65,535 shards"));
        for s in shards {
            w.u16(*s);
        }
        edge(w, &d.msg);
    });
}

/// Appends a heartbeat.
pub(crate) fn encode_ping(out: &mut Vec<u8>) {
    frame(out, KIND_PING, |_| {});
}

fn frame(out: &mut Vec<u8>, kind: u8, body: impl FnOnce(&mut W<'_>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    body(&mut W(out));
    let len = u32::try_from(out.len() - start - 4).expect("frames are below 4 GiB");
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

struct W<'a>(&'a mut Vec<u8>);

impl W<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).expect("fields are below 4 GiB"));
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn shard(&mut self, a: ShardAddr) {
        self.u16(a.node.0);
        self.u16(a.shard);
    }
    fn conn(&mut self, c: ConnId) {
        self.shard(c.edge);
        self.u64(c.seq);
    }
    fn uid(&mut self, u: RoomUid) {
        self.shard(u.home);
        self.u64(u.seq);
    }
    fn room(&mut self, k: &RoomKey) {
        self.str(&k.party);
        self.str(&k.room);
    }
    fn message(&mut self, m: &Message) {
        match m {
            Message::Text(t) => {
                self.u8(0);
                self.str(t);
            }
            Message::Binary(b) => {
                self.u8(1);
                self.bytes(b);
            }
        }
    }
    fn headers(&mut self, headers: &[(String, String)]) {
        self.len(headers.len());
        for (n, v) in headers {
            self.str(n);
            self.str(v);
        }
    }
    fn request(&mut self, r: &Request) {
        self.str(&r.method);
        self.str(&r.target);
        self.headers(&r.headers);
        self.bytes(&r.body);
        match r.client {
            None => self.u8(0),
            Some(SocketAddr::V4(a)) => {
                self.u8(4);
                self.0.extend_from_slice(&a.ip().octets());
                self.u16(a.port());
            }
            Some(SocketAddr::V6(a)) => {
                self.u8(6);
                self.0.extend_from_slice(&a.ip().octets());
                self.u16(a.port());
            }
        }
    }
    fn response(&mut self, r: &Response) {
        self.u16(r.status());
        self.headers(r.headers());
        self.bytes(r.body());
    }
    fn auto(&mut self, a: &Option<Arc<AutoResponse>>) {
        match a {
            None => self.u8(0),
            Some(a) => {
                self.u8(1);
                self.bytes(&a.request);
                self.bytes(&a.response);
            }
        }
    }
}

fn home(w: &mut W<'_>, msg: &ToHome) {
    match msg {
        ToHome::Connect(c) => {
            w.u8(0);
            w.room(&c.room);
            w.conn(c.conn);
            w.str(&c.id);
            w.request(&c.request);
        }
        ToHome::Message { room, conn, message } => {
            w.u8(1);
            w.room(room);
            w.conn(*conn);
            w.message(message);
        }
        ToHome::Close { room, conn, code, reason } => {
            w.u8(2);
            w.room(room);
            w.conn(*conn);
            w.u16(code.0);
            w.str(reason);
        }
        ToHome::Request(r) => {
            w.u8(3);
            w.room(&r.room);
            w.request(&r.request);
            w.shard(r.reply.to);
            w.u64(r.reply.token);
        }
        ToHome::Alarm { room, time } => {
            w.u8(4);
            w.room(room);
            w.u64(*time);
        }
    }
}

fn edge(w: &mut W<'_>, msg: &ToEdge) {
    match msg {
        ToEdge::Connected { conn, room, uid, outcome, auto_response } => {
            w.u8(0);
            w.conn(*conn);
            w.room(room);
            w.uid(*uid);
            match outcome {
                ConnectOutcome::Accepted => w.u8(0),
                ConnectOutcome::Failed { code, reason } => {
                    w.u8(1);
                    w.u16(code.0);
                    w.str(reason);
                }
                ConnectOutcome::Refused(r) => {
                    w.u8(2);
                    w.response(r);
                }
            }
            w.auto(auto_response);
        }
        ToEdge::Frame { conn, frame } => {
            w.u8(1);
            w.conn(*conn);
            w.bytes(frame);
        }
        ToEdge::Broadcast { room, frame, without } => {
            w.u8(2);
            w.uid(*room);
            w.bytes(frame);
            w.len(without.len());
            for c in without.iter() {
                w.conn(*c);
            }
        }
        ToEdge::Close { conn, code, reason } => {
            w.u8(3);
            w.conn(*conn);
            w.u16(code.0);
            w.str(reason);
        }
        ToEdge::CloseRoom { room, code, reason } => {
            w.u8(4);
            w.uid(*room);
            w.u16(code.0);
            w.str(reason);
        }
        ToEdge::AutoResponse { room, pair } => {
            w.u8(5);
            w.uid(*room);
            w.auto(pair);
        }
        ToEdge::Credit { room, events, bytes } => {
            w.u8(6);
            w.uid(*room);
            w.u32(*events);
            w.u64(*bytes as u64);
        }
        ToEdge::Response { token, response } => {
            w.u8(7);
            w.u64(*token);
            w.response(response);
        }
    }
}

// ---- Decoding ---------------------------------------------------------------------------

/// The length of the frame at the start of `buf` (length prefix included) when all of it
/// is there; `Ok(None)` when more bytes are needed.
pub(crate) fn frame_len(buf: &[u8]) -> R<Option<usize>> {
    let Some(prefix) = buf.get(..4) else { return Ok(None) };
    let len = u32::from_le_bytes(prefix.try_into().expect("4 bytes")) as usize;
    if len == 0 || len > LINK_FRAME_MAX {
        return Err(WireError("frame length out of bounds"));
    }
    Ok((buf.len() >= 4 + len).then_some(4 + len))
}

/// Reads one whole frame (as [`frame_len`] measured it, prefix included). Byte fields are
/// slices of `frame`: one allocation per frame, however many sockets its payload reaches.
pub(crate) fn decode(frame: Bytes) -> R<Frame> {
    let mut r = Rd { buf: frame, pos: 4 };
    let out = match r.u8()? {
        KIND_HOME => Frame::Home(r.home()?),
        KIND_EDGE => {
            let n = usize::from(r.u16()?);
            let shards = match n {
                0 => return Err(WireError("a delivery for no shard")),
                1 => Shards::One(r.u16()?),
                _ => Shards::Many((0..n).map(|_| r.u16()).collect::<R<Vec<u16>>>()?.into()),
            };
            Frame::Edge { shards, msg: r.edge()? }
        }
        KIND_PING => Frame::Ping,
        _ => return Err(WireError("unknown frame kind")),
    };
    if r.pos != r.buf.len() {
        return Err(WireError("bytes after the frame's fields"));
    }
    Ok(out)
}

struct Rd {
    buf: Bytes,
    pos: usize,
}

impl Rd {
    fn take(&mut self, n: usize) -> R<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or(WireError("a field runs past the frame"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> R<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self) -> R<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> R<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn bytes(&mut self) -> R<Bytes> {
        let n = self.u32()? as usize;
        let start = self.pos;
        self.take(n)?;
        Ok(self.buf.slice(start..start + n))
    }
    fn string(&mut self) -> R<String> {
        let n = self.u32()? as usize;
        let s =
            std::str::from_utf8(self.take(n)?).map_err(|_| WireError("a string is not UTF-8"))?;
        Ok(s.to_owned())
    }
    fn arc_str(&mut self) -> R<Arc<str>> {
        let n = self.u32()? as usize;
        let s =
            std::str::from_utf8(self.take(n)?).map_err(|_| WireError("a string is not UTF-8"))?;
        Ok(s.into())
    }
    /// A count of items each at least `min` bytes long, checked against what is left (a
    /// forged count cannot make the decoder reserve more than the frame holds).
    fn count(&mut self, min: usize) -> R<usize> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min) > self.buf.len() - self.pos {
            return Err(WireError("a count runs past the frame"));
        }
        Ok(n)
    }
    fn shard(&mut self) -> R<ShardAddr> {
        Ok(ShardAddr { node: NodeId(self.u16()?), shard: self.u16()? })
    }
    fn conn(&mut self) -> R<ConnId> {
        Ok(ConnId { edge: self.shard()?, seq: self.u64()? })
    }
    fn uid(&mut self) -> R<RoomUid> {
        Ok(RoomUid { home: self.shard()?, seq: self.u64()? })
    }
    fn room(&mut self) -> R<RoomKey> {
        Ok(RoomKey { party: self.arc_str()?, room: self.arc_str()? })
    }
    fn code(&mut self) -> R<CloseCode> {
        Ok(CloseCode(self.u16()?))
    }
    fn message(&mut self) -> R<Message> {
        match self.u8()? {
            0 => Ok(Message::Text(self.arc_str()?)),
            1 => Ok(Message::Binary(self.bytes()?)),
            _ => Err(WireError("unknown message type")),
        }
    }
    fn headers(&mut self) -> R<Vec<(String, String)>> {
        let n = self.count(8)?;
        (0..n).map(|_| Ok((self.string()?, self.string()?))).collect()
    }
    fn request(&mut self) -> R<Request> {
        let method = self.string()?;
        let target = self.string()?;
        let headers = self.headers()?;
        let body = self.bytes()?;
        let client = match self.u8()? {
            0 => None,
            4 => {
                let ip: [u8; 4] = self.take(4)?.try_into().expect("4 bytes");
                Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), self.u16()?))
            }
            6 => {
                let ip: [u8; 16] = self.take(16)?.try_into().expect("16 bytes");
                Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), self.u16()?))
            }
            _ => return Err(WireError("unknown address family")),
        };
        Ok(Request { method, target, headers, body, client })
    }
    fn response(&mut self) -> R<Response> {
        let mut r = Response::new(self.u16()?);
        for (n, v) in self.headers()? {
            r = r.with_header(n, v);
        }
        Ok(r.with_body(self.bytes()?))
    }
    fn auto(&mut self) -> R<Option<Arc<AutoResponse>>> {
        match self.u8()? {
            0 => Ok(None),
            1 => {
                let request = self.bytes()?;
                let response = self.bytes()?;
                let text = std::str::from_utf8(&response)
                    .map_err(|_| WireError("an auto-response is not UTF-8"))?;
                let frame = partyline_protocol::ws::encode::text(text);
                Ok(Some(Arc::new(AutoResponse { request, response, frame })))
            }
            _ => Err(WireError("unknown option tag")),
        }
    }

    fn home(&mut self) -> R<ToHome> {
        Ok(match self.u8()? {
            0 => ToHome::Connect(Box::new(ConnectRequest {
                room: self.room()?,
                conn: self.conn()?,
                id: self.string()?,
                request: self.request()?,
            })),
            1 => {
                ToHome::Message { room: self.room()?, conn: self.conn()?, message: self.message()? }
            }
            2 => ToHome::Close {
                room: self.room()?,
                conn: self.conn()?,
                code: self.code()?,
                reason: self.string()?,
            },
            3 => {
                let room = self.room()?;
                let request = self.request()?;
                let reply = ReplyTo { to: self.shard()?, token: self.u64()? };
                ToHome::Request(Box::new(HttpRequest { room, request, reply }))
            }
            4 => ToHome::Alarm { room: self.room()?, time: self.u64()? },
            _ => return Err(WireError("unknown message to a home")),
        })
    }

    fn edge(&mut self) -> R<ToEdge> {
        Ok(match self.u8()? {
            0 => {
                let conn = self.conn()?;
                let room = self.room()?;
                let uid = self.uid()?;
                let outcome = match self.u8()? {
                    0 => ConnectOutcome::Accepted,
                    1 => ConnectOutcome::Failed { code: self.code()?, reason: self.string()? },
                    2 => ConnectOutcome::Refused(Box::new(self.response()?)),
                    _ => return Err(WireError("unknown connect outcome")),
                };
                ToEdge::Connected { conn, room, uid, outcome, auto_response: self.auto()? }
            }
            1 => ToEdge::Frame { conn: self.conn()?, frame: self.bytes()? },
            2 => {
                let room = self.uid()?;
                let frame = self.bytes()?;
                let n = self.count(12)?;
                let without = (0..n).map(|_| self.conn()).collect::<R<Vec<_>>>()?.into();
                ToEdge::Broadcast { room, frame, without }
            }
            3 => ToEdge::Close { conn: self.conn()?, code: self.code()?, reason: self.string()? },
            4 => {
                ToEdge::CloseRoom { room: self.uid()?, code: self.code()?, reason: self.string()? }
            }
            5 => ToEdge::AutoResponse { room: self.uid()?, pair: self.auto()? },
            6 => ToEdge::Credit {
                room: self.uid()?,
                events: self.u32()?,
                bytes: usize::try_from(self.u64()?).map_err(|_| WireError("credit too large"))?,
            },
            7 => ToEdge::Response { token: self.u64()?, response: self.response()? },
            _ => return Err(WireError("unknown message to an edge")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(n: u64) -> ConnId {
        ConnId { edge: ShardAddr { node: NodeId(2), shard: 1 }, seq: n }
    }

    fn uid() -> RoomUid {
        RoomUid { home: ShardAddr { node: NodeId(0), shard: 3 }, seq: 99 }
    }

    fn request() -> Request {
        let mut r = Request::new("POST", "/parties/main/r1?x=1")
            .with_header("content-type", "text/plain")
            .with_body(&b"hello \xff"[..]);
        r.client = Some("[2001:db8::1]:443".parse().unwrap());
        r
    }

    fn homes() -> Vec<ToHome> {
        let room = RoomKey::new("main", "caf\u{e9}");
        vec![
            ToHome::Connect(Box::new(ConnectRequest {
                room: room.clone(),
                conn: conn(1),
                id: "id-1".into(),
                request: Request { client: Some("10.1.2.3:5000".parse().unwrap()), ..request() },
            })),
            ToHome::Message { room: room.clone(), conn: conn(2), message: "h\u{e9}llo".into() },
            ToHome::Message {
                room: room.clone(),
                conn: conn(2),
                message: Message::Binary(Bytes::from_static(b"\0\x01")),
            },
            ToHome::Close {
                room: room.clone(),
                conn: conn(3),
                code: CloseCode::ABNORMAL,
                reason: "gone".into(),
            },
            ToHome::Request(Box::new(HttpRequest {
                room: room.clone(),
                request: Request::new("GET", "/"),
                reply: ReplyTo { to: ShardAddr { node: NodeId(1), shard: 0 }, token: 7 },
            })),
            ToHome::Alarm { room, time: 1_700_000_000_000 },
        ]
    }

    fn edges() -> Vec<ToEdge> {
        let auto = Some(Arc::new(AutoResponse {
            request: Bytes::from_static(b"ping"),
            response: Bytes::from_static(b"pong"),
            frame: partyline_protocol::ws::encode::text("pong"),
        }));
        let response = Response::text(503, "busy").with_header("retry-after", "1");
        vec![
            ToEdge::Connected {
                conn: conn(1),
                room: RoomKey::new("main", "r"),
                uid: uid(),
                outcome: ConnectOutcome::Accepted,
                auto_response: auto.clone(),
            },
            ToEdge::Connected {
                conn: conn(1),
                room: RoomKey::new("main", "r"),
                uid: uid(),
                outcome: ConnectOutcome::Failed { code: CloseCode(4000), reason: "no".into() },
                auto_response: None,
            },
            ToEdge::Connected {
                conn: conn(1),
                room: RoomKey::new("main", "r"),
                uid: uid(),
                outcome: ConnectOutcome::Refused(Box::new(response.clone())),
                auto_response: None,
            },
            ToEdge::Frame { conn: conn(4), frame: partyline_protocol::ws::encode::text("x") },
            ToEdge::Broadcast {
                room: uid(),
                frame: partyline_protocol::ws::encode::text("all"),
                without: vec![conn(1), conn(2)].into(),
            },
            ToEdge::Close { conn: conn(5), code: CloseCode::NORMAL, reason: String::new() },
            ToEdge::CloseRoom { room: uid(), code: CloseCode::INTERNAL_ERROR, reason: "r".into() },
            ToEdge::AutoResponse { room: uid(), pair: auto },
            ToEdge::AutoResponse { room: uid(), pair: None },
            ToEdge::Credit { room: uid(), events: 64, bytes: 1 << 20 },
            ToEdge::Response { token: 12, response },
        ]
    }

    #[test]
    fn every_message_reads_back_as_it_was_written() {
        let mut buf = Vec::new();
        for m in homes() {
            encode_home(&mut buf, &m);
        }
        for (i, m) in edges().into_iter().enumerate() {
            let shards =
                if i % 2 == 0 { Shards::One(1) } else { Shards::Many(vec![0, 1, 5].into()) };
            encode_edge(&mut buf, &ToNode { node: NodeId(1), shards, msg: m });
        }
        encode_ping(&mut buf);
        let mut at = 0;
        let mut read = Vec::new();
        while let Some(n) = frame_len(&buf[at..]).unwrap() {
            read.push(decode(Bytes::copy_from_slice(&buf[at..at + n])).unwrap());
            at += n;
        }
        assert_eq!(at, buf.len());
        let mut expected: Vec<String> = homes().iter().map(|m| format!("{m:?}")).collect();
        expected.extend(edges().iter().map(|m| format!("{m:?}")));
        let got: Vec<String> = read
            .iter()
            .filter_map(|f| match f {
                Frame::Home(m) => Some(format!("{m:?}")),
                Frame::Edge { msg, .. } => Some(format!("{msg:?}")),
                Frame::Ping => None,
            })
            .collect();
        assert_eq!(got, expected);
        assert!(matches!(read.last(), Some(Frame::Ping)));
        assert!(
            matches!(&read[homes().len() + 1], Frame::Edge { shards: Shards::Many(s), .. } if s[..] == [0, 1, 5])
        );
    }

    #[test]
    fn truncated_and_forged_frames_are_errors_never_panics() {
        let mut buf = Vec::new();
        for m in homes() {
            encode_home(&mut buf, &m);
        }
        let n = frame_len(&buf).unwrap().unwrap();
        let one = &buf[..n];
        // Every prefix asks for more.
        for cut in 0..n {
            assert_eq!(frame_len(&one[..cut]), Ok(None), "prefix {cut}");
        }
        // A frame cut short but with its length patched to match is refused by decode.
        for cut in 5..n {
            let mut f = one[..cut].to_vec();
            f[..4].copy_from_slice(&u32::try_from(cut - 4).unwrap().to_le_bytes());
            assert!(decode(Bytes::from(f)).is_err(), "cut at {cut}");
        }
        // Flipping any byte never panics (it may still decode: a flipped payload byte).
        for i in 4..n {
            let mut f = one.to_vec();
            f[i] ^= 0xFF;
            let _ = decode(Bytes::from(f));
        }
        assert!(frame_len(&[0, 0, 0, 0]).is_err());
        assert!(frame_len(&(u32::try_from(LINK_FRAME_MAX).unwrap() + 1).to_le_bytes()).is_err());
        // A forged header count cannot reserve memory the frame does not hold.
        let mut f = vec![0, 0, 0, 0, KIND_EDGE, 1, 0, 0, 0, 7];
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&u32::MAX.to_le_bytes());
        let len = u32::try_from(f.len() - 4).unwrap();
        f[..4].copy_from_slice(&len.to_le_bytes());
        assert!(decode(Bytes::from(f)).is_err());
    }
}
