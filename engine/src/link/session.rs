//! One node link's life: dialing (the node earlier in the list) or accepting (the later
//! one), the handshake that compares member lists, then the session: a reader that hands
//! each frame to its shard, and a writer that writes what [`Core::send`] appended.
//!
//! The handshake, 18 bytes from the dialer: `PLNK`, version (u16), member hash (u64),
//! from and to node numbers (u16 each); 15 bytes back: `PLNK`, version, a status (0:
//! linked, 1: member lists differ, 2: not a link this node takes) and its member hash.

use super::{Core, fanout_copy};
use crate::limits::{
    LINK_ACK_WAIT_MS, LINK_BACKOFF_MAX_MS, LINK_BACKOFF_MIN_MS, LINK_HANDSHAKE_MS,
    LINK_HANDSHAKES_MAX,
};
use crate::route::NodeId;
use crate::route::wire::{self, Frame};
use crate::rt::{TcpListener, TcpStream, within};
use bytes::Bytes;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver};
use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const MAGIC: &[u8; 4] = b"PLNK";
const VERSION: u16 = 1;
const LINKED: u8 = 0;
const MEMBERS_DIFFER: u8 = 1;
const NOT_MINE: u8 = 2;

/// Bytes read from a link at a time.
const READ_BYTES: usize = 64 * 1024;

fn deadline() -> Instant {
    Instant::now() + Duration::from_millis(LINK_HANDSHAKE_MS)
}

/// Accepts links from the nodes listed before this one, at most [`LINK_HANDSHAKES_MAX`]
/// handshakes at a time.
pub(super) async fn accept_loop(core: Rc<Core>, listener: TcpListener) {
    let handshakes = Rc::new(std::cell::Cell::new(0usize));
    loop {
        match listener.accept().await {
            Ok(stream) if handshakes.get() >= LINK_HANDSHAKES_MAX => {
                tracing::warn!(peer = ?stream.peer_addr().ok(), "too many node-link handshakes at once; closed");
            }
            Ok(stream) => {
                handshakes.set(handshakes.get() + 1);
                let (core, handshakes) = (core.clone(), handshakes.clone());
                glommio::spawn_local(async move {
                    let linked = handshake(&core, stream).await;
                    handshakes.set(handshakes.get() - 1);
                    if let Some((from, stream)) = linked {
                        // A node that dials again while its old link looks alive here has
                        // lost that one.
                        let old = core.peer(from).session.get();
                        core.end(from, old, "the node linked again");
                        run_session(core, from, stream).await;
                    }
                })
                .detach();
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a node link");
                crate::rt::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The accepting side's handshake: the dialing node and the stream when they link.
async fn handshake(core: &Core, mut stream: TcpStream) -> Option<(NodeId, TcpStream)> {
    let mut hello = [0u8; 18];
    let Some(Ok(())) = within(deadline(), stream.read_exact(&mut hello)).await else {
        tracing::debug!("a node link's handshake did not arrive");
        return None;
    };
    let members = core.links.members();
    let hash = u64::from_le_bytes(hello[6..14].try_into().expect("8 bytes"));
    let from = NodeId(u16::from_le_bytes([hello[14], hello[15]]));
    let to = NodeId(u16::from_le_bytes([hello[16], hello[17]]));
    let status = if &hello[..4] != MAGIC || hello[4..6] != VERSION.to_le_bytes() {
        tracing::error!(
            peer = ?stream.peer_addr().ok(),
            "refusing a node link: not a partyline {VERSION} node link (another program, or another version, on the peer port)"
        );
        NOT_MINE
    } else if hash != members.hash() {
        tracing::error!(
            peer = ?stream.peer_addr().ok(),
            ours = format_args!("{:016x}", members.hash()),
            theirs = format_args!("{hash:016x}"),
            "refusing a node link: the peer's [cluster] member list differs from ours; every node must have the same list, in the same order"
        );
        MEMBERS_DIFFER
    } else if to != core.here || from >= core.here || usize::from(from.0) >= members.len() {
        tracing::error!(
            from = from.0,
            to = to.0,
            here = core.here.0,
            "refusing a node link that is not for this node"
        );
        NOT_MINE
    } else {
        LINKED
    };
    let mut reply = Vec::with_capacity(15);
    reply.extend_from_slice(MAGIC);
    reply.extend_from_slice(&VERSION.to_le_bytes());
    reply.push(status);
    reply.extend_from_slice(&members.hash().to_le_bytes());
    let sent = matches!(within(deadline(), stream.write_all(&reply)).await, Some(Ok(())));
    (sent && status == LINKED).then_some((from, stream))
}

/// Links to `node` (listed after this one), again and again, with backoff between tries.
pub(super) async fn dial_loop(core: Rc<Core>, node: NodeId) {
    let Some(addr) = core.links.members().peer(node) else { return };
    let mut backoff = LINK_BACKOFF_MIN_MS;
    let mut tries = 0u64;
    while !core.stop.load(Ordering::Relaxed) {
        match dial(&core, node, addr).await {
            Ok(stream) => {
                tries = 0;
                backoff = LINK_BACKOFF_MIN_MS;
                run_session(core.clone(), node, stream).await;
            }
            Err(e) => {
                tries += 1;
                // Said once per outage (then at debug), except a refusal: that needs an
                // operator, so it is said every time.
                if e.refused {
                    tracing::error!(node = core.name(node), %addr, "cannot link: {}", e.why);
                } else if tries == 1 {
                    tracing::warn!(node = core.name(node), %addr, "cannot link (trying again): {}", e.why);
                } else {
                    tracing::debug!(node = core.name(node), %addr, "cannot link: {}", e.why);
                }
            }
        }
        crate::rt::sleep(Duration::from_millis(backoff)).await;
        backoff = (backoff * 2).min(LINK_BACKOFF_MAX_MS);
    }
}

struct DialError {
    why: String,
    refused: bool,
}

async fn dial(
    core: &Core,
    node: NodeId,
    addr: std::net::SocketAddr,
) -> Result<TcpStream, DialError> {
    let fail = |why: String| DialError { why, refused: false };
    let mut stream = match within(deadline(), TcpStream::connect(addr)).await {
        Some(Ok(s)) => s,
        Some(Err(e)) => return Err(fail(e.to_string())),
        None => return Err(fail("connect timed out".into())),
    };
    let members = core.links.members();
    let mut hello = Vec::with_capacity(18);
    hello.extend_from_slice(MAGIC);
    hello.extend_from_slice(&VERSION.to_le_bytes());
    hello.extend_from_slice(&members.hash().to_le_bytes());
    hello.extend_from_slice(&core.here.0.to_le_bytes());
    hello.extend_from_slice(&node.0.to_le_bytes());
    if !matches!(within(deadline(), stream.write_all(&hello)).await, Some(Ok(()))) {
        return Err(fail("the handshake could not be sent".into()));
    }
    let mut reply = [0u8; 15];
    if !matches!(within(deadline(), stream.read_exact(&mut reply)).await, Some(Ok(()))) {
        return Err(fail("no handshake answer".into()));
    }
    if &reply[..4] != MAGIC {
        return Err(DialError {
            why: "the peer port does not speak the node link protocol".into(),
            refused: true,
        });
    }
    let theirs = u64::from_le_bytes(reply[7..15].try_into().expect("8 bytes"));
    match reply[6] {
        LINKED => Ok(stream),
        MEMBERS_DIFFER => Err(DialError {
            why: format!(
                "its [cluster] member list differs from ours (hash {theirs:016x}, ours {:016x}); every node must have the same list, in the same order",
                members.hash()
            ),
            refused: true,
        }),
        _ => Err(DialError {
            why: "it refused the link (wrong node at that address?)".into(),
            refused: true,
        }),
    }
}

/// Runs a linked session until it ends.
async fn run_session(core: Rc<Core>, node: NodeId, stream: TcpStream) {
    // Sockets of the last link must be closed before this one's arrive (the shards do it
    // at their next sweep): a new socket must not be taken for an old one.
    let wait_until = Instant::now() + Duration::from_millis(LINK_ACK_WAIT_MS);
    while !core.links.all_acked(node) && Instant::now() < wait_until {
        crate::rt::sleep(Duration::from_millis(10)).await;
    }
    let _ = stream.set_nodelay(true);
    let fd = crate::rt::fd_of(&stream);
    let (wake_tx, wake_rx) = local_channel::new_bounded(1);
    let session = core.begin(node, fd, wake_tx);
    tracing::info!(node = core.name(node), peer = ?stream.peer_addr().ok(), "node linked");
    let stream = Rc::new(RefCell::new(stream));
    glommio::spawn_local(write_loop(core.clone(), node, session, stream.clone(), wake_rx)).detach();
    let why = read_loop(&core, node, session, &stream).await;
    core.end(node, session, &why);
}

async fn read_loop(core: &Core, node: NodeId, session: u64, stream: &RefCell<TcpStream>) -> String {
    let peer = core.peer(node);
    let mut pending: Vec<u8> = Vec::with_capacity(READ_BYTES);
    loop {
        let len = pending.len();
        pending.resize(len + READ_BYTES, 0);
        let read =
            poll_fn(|cx| crate::rt::poll_read(&mut stream.borrow_mut(), cx, &mut pending[len..]))
                .await;
        if peer.session.get() != session {
            return "the session ended".into();
        }
        let n = match read {
            Ok(0) => return "the node closed the link".into(),
            Ok(n) => n,
            Err(e) => return format!("read failed: {e}"),
        };
        pending.truncate(len + n);
        peer.heard.set(Some(Instant::now()));
        core.links.node(node).bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        let mut at = 0;
        loop {
            let size = match wire::frame_len(&pending[at..]) {
                Ok(Some(size)) => size,
                Ok(None) => break,
                Err(e) => return e.to_string(),
            };
            let frame = Bytes::copy_from_slice(&pending[at..at + size]);
            at += size;
            let frame = match wire::decode(frame) {
                Ok(f) => f,
                Err(e) => return e.to_string(),
            };
            if let Err(why) = dispatch(core, node, frame).await {
                return why;
            }
        }
        pending.drain(..at);
        if pending.capacity() > 4 * READ_BYTES && pending.len() < READ_BYTES {
            pending.shrink_to(READ_BYTES);
        }
    }
}

/// Hands one frame from `node` to the shard it is for.
async fn dispatch(core: &Core, node: NodeId, frame: Frame) -> Result<(), String> {
    let state = core.links.node(node);
    match frame {
        Frame::Ping => {}
        Frame::Home(msg) => {
            state.messages_in.fetch_add(1, Ordering::Relaxed);
            let home = core.placement.home(msg.room());
            if home.node != core.here {
                // Same member list, same placement: only a bug gets here.
                tracing::error!(node = core.name(node), room = %msg.room().room, "a node sent a message for a room homed elsewhere; dropped");
                return Ok(());
            }
            if let Some(tx) = core.to_home.get(home.index()) {
                let _ = tx.send(msg).await;
            }
        }
        Frame::Edge { shards, msg } => {
            state.messages_in.fetch_add(1, Ordering::Relaxed);
            let shards = shards.as_slice();
            if shards.iter().any(|&s| usize::from(s) >= core.to_edge.len()) {
                return Err("a delivery for a shard this node does not have".into());
            }
            let (last, rest) = shards.split_last().expect("at least one shard");
            core.answered(node, *last, &msg);
            for &s in rest {
                let Some(copy) = fanout_copy(&msg) else {
                    return Err("a delivery for several shards that cannot be copied".into());
                };
                let _ = core.to_edge[usize::from(s)].send(copy).await;
            }
            let _ = core.to_edge[usize::from(*last)].send(msg).await;
        }
    }
    Ok(())
}

async fn write_loop(
    core: Rc<Core>,
    node: NodeId,
    session: u64,
    stream: Rc<RefCell<TcpStream>>,
    wake: LocalReceiver<()>,
) {
    let peer = core.peer(node);
    let mut buf: Vec<u8> = Vec::new();
    while wake.recv().await.is_some() {
        loop {
            if peer.session.get() != session {
                return;
            }
            std::mem::swap(&mut buf, &mut *peer.out.borrow_mut());
            if buf.is_empty() {
                break;
            }
            let mut at = 0;
            peer.writing.set(buf.len());
            while at < buf.len() {
                let wrote =
                    poll_fn(|cx| crate::rt::poll_write(&mut stream.borrow_mut(), cx, &buf[at..]))
                        .await;
                if peer.session.get() != session {
                    return;
                }
                match wrote {
                    Ok(n) if n > 0 => {
                        at += n;
                        peer.writing.set(buf.len() - at);
                        core.links.set_pending(node, peer.out.borrow().len() + buf.len() - at);
                    }
                    Ok(_) => return core.end(node, session, "the link accepts no more bytes"),
                    Err(e) => return core.end(node, session, &format!("write failed: {e}")),
                }
            }
            buf.clear();
            if buf.capacity() > 4 * READ_BYTES {
                buf = Vec::new();
            }
        }
    }
}
