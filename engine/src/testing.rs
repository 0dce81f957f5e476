//! [`TestRoom`]: a harness to test a party without sockets or a server. It runs the party
//! in the engine's own room runner (the code that runs it on a shard: `on_start` first,
//! tags, hook deadlines, panics contained, the alarm protocol) with a real store in a
//! temporary folder and a manual clock, and plays the edge itself: the test feeds
//! connects, messages, closes, requests and clock ticks, and reads what each connection
//! received, what was broadcast, which connections were closed and how, what was stored
//! and which alarm is set.
//!
//! ```
//! use partyline::{Message, Party, Result, Room, Connection, TestRoom};
//!
//! struct Echo;
//! impl Party for Echo {
//!     async fn on_start(_room: Room) -> Result<Self> { Ok(Echo) }
//!     async fn on_message(&mut self, m: Message, sender: &Connection) -> Result<()> {
//!         sender.send(m)
//!     }
//! }
//!
//! let mut room = TestRoom::<Echo>::new("echo", "r1");
//! let alice = room.connect("alice");
//! room.send(&alice, "hi");
//! assert_eq!(room.received_text(&alice), ["hi"]);
//! ```

use crate::api::runtime::Runtime;
use crate::api::{Party, Room, RoomCore};
use crate::clock::Clock;
use crate::config::Config;
use crate::home::host::RoomEvent;
use crate::home::runner::Runner;
use crate::payload::{Message, Request};
use crate::route::mesh::Connected;
use crate::route::{
    ConnId, ConnectOutcome, ConnectRequest, EdgeSink, HomeSink, HttpRequest, NodeId, Placement,
    RoomKey, RoomUid, Router, ShardAddr, ToEdge, ToHome,
};
use bytes::Bytes;
use partyline_protocol::http::Response;
use partyline_protocol::ws::{CloseCode, Decoded, FrameDecoder, FrameLimits, Opcode, Role};
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::rc::{Rc, Weak};

/// The manual clock's start in every `TestRoom`: 2026-01-01T00:00:00Z, in ms.
pub const TEST_EPOCH_MS: u64 = 1_767_225_600_000;

/// Most alarm runs one [`TestRoom::advance`] performs (a handler that keeps setting its
/// alarm in the past would otherwise run forever).
const ALARM_RUNS_PER_ADVANCE_MAX: usize = 1_000;

/// A connection of a [`TestRoom`], as the test holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestConn {
    id: String,
    cid: ConnId,
}

impl TestConn {
    /// The connection id the room sees.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// One room of party `P`, driven by the test. See the module docs.
pub struct TestRoom<P: Party> {
    runner: Runner<P>,
    core: Rc<RoomCore>,
    router: Rc<Router>,
    peer: Rc<Peer>,
    clock: Clock,
    store: partyline_storage::Store,
    next_seq: u64,
    dir: PathBuf,
    // Dropped last: what runs on it is dropped before it.
    executor: glommio::LocalExecutor,
}

impl<P: Party> std::fmt::Debug for TestRoom<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRoom").field("room", &self.core.key).finish_non_exhaustive()
    }
}

/// What a socket of the test received, and how it ended.
#[derive(Default)]
struct Socket {
    inbox: Vec<Message>,
    connecting: bool,
    closed: Option<(CloseCode, String)>,
    refused: Option<Response>,
}

/// The test's side of the room: its edge (sockets) and the rest of the server (alarms
/// scheduled, other rooms' `on_request` for fetches).
struct Peer {
    sockets: RefCell<HashMap<ConnId, Socket>>,
    broadcasts: RefCell<Vec<Message>>,
    /// Closes the room asked for, to be reported back as closes (so `on_close` runs).
    closing: RefCell<Vec<(ConnId, CloseCode, String)>>,
    alarms: RefCell<BTreeSet<u64>>,
    fetch: RefCell<Option<FetchFn>>,
    router: RefCell<Weak<Router>>,
    /// The room's auto-response, as an edge holds it.
    auto_response: RefCell<Option<std::sync::Arc<crate::route::AutoResponse>>>,
}

type FetchFn = Box<dyn Fn(&str, &str, Request) -> Response>;

impl<P: Party> TestRoom<P> {
    /// Room `room` of party `party`, with the default configuration.
    pub fn new(party: &str, room: &str) -> TestRoom<P> {
        TestRoom::with_config(party, room, Config::default())
    }

    /// Room `room` of party `party`, with `config` (its `env` and `limits` apply; its
    /// `storage` settings are used for the temporary store).
    pub fn with_config(party: &str, room: &str, config: Config) -> TestRoom<P> {
        let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(crate::limits::SHARD_IO_MEMORY)
            .make()
            .expect("TestRoom needs io_uring, as the server does");
        let dir = temp_dir();
        let store = partyline_storage::Store::open(&dir, config.storage)
            .unwrap_or_else(|e| panic!("TestRoom's store in {}: {e}", dir.display()));
        let clock = Clock::manual(TEST_EPOCH_MS);
        let here = ShardAddr::local(NodeId::default(), 0);
        let mesh = Connected {
            home_tx: vec![None],
            home_rx: Vec::new(),
            edge_tx: vec![None],
            edge_rx: Vec::new(),
            link: None,
        };
        let (router, receivers) = Router::new(here, Placement::new(here.node, 1), mesh, None);
        let peer = Rc::new(Peer {
            sockets: RefCell::default(),
            broadcasts: RefCell::default(),
            closing: RefCell::default(),
            alarms: RefCell::default(),
            fetch: RefCell::new(None),
            router: RefCell::new(Rc::downgrade(&router)),
            auto_response: RefCell::new(None),
        });
        let (home, edge): (Weak<dyn HomeSink>, Weak<dyn EdgeSink>) =
            (Rc::<Peer>::downgrade(&peer), Rc::<Peer>::downgrade(&peer));
        router.listen(home, edge, receivers);
        let runtime = Rc::new(Runtime {
            router: router.clone(),
            config: std::sync::Arc::new(config),
            clock: clock.clone(),
            store: store.clone(),
        });
        let key = RoomKey::new(party, room);
        let core = Rc::new(RoomCore::new(key, RoomUid { home: here, seq: 1 }, runtime));
        TestRoom {
            runner: Runner::new(core.clone()),
            core,
            router,
            peer,
            clock,
            store,
            next_seq: 1,
            dir,
            executor,
        }
    }

    /// A handle to the room, as the party's own.
    pub fn room(&self) -> Room {
        Room(self.core.clone())
    }

    /// Runs `future` (a storage call, say) to completion on the room's executor.
    pub fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        self.executor.run(future)
    }

    /// Connects a client with connection id `id` (the upgrade request
    /// `GET /parties/<party>/<room>?_pk=<id>`). See [`TestRoom::connect_with`].
    pub fn connect(&mut self, id: &str) -> TestConn {
        let target = format!("/parties/{}/{}?_pk={id}", self.core.key.party, self.core.key.room);
        self.connect_with(id, Request::new("GET", target).with_header("host", "test"))
    }

    /// Connects a client with `request` as its upgrade request (as `on_before_connect`
    /// would have left it): `connection_tags` and `on_connect` run, `on_start` first if
    /// the room has no instance. Whether it was accepted shows in [`TestRoom::is_open`] and
    /// [`TestRoom::closed`] (a failed `on_connect` closes it with 1011) or
    /// [`TestRoom::refused`].
    pub fn connect_with(&mut self, id: &str, request: Request) -> TestConn {
        let cid = ConnId { edge: self.router.here(), seq: self.next_seq };
        self.next_seq += 1;
        self.peer
            .sockets
            .borrow_mut()
            .insert(cid, Socket { connecting: true, ..Socket::default() });
        let connect =
            ConnectRequest { room: self.core.key.clone(), conn: cid, id: id.to_owned(), request };
        self.feed(RoomEvent::Connect(Box::new(connect)));
        TestConn { id: id.to_owned(), cid }
    }

    /// The client sends `message` (`on_message` runs).
    /// A text equal to the room's auto-response request is answered as a server's edge
    /// answers it: the room never sees it (and a sleeping room stays asleep).
    pub fn send(&mut self, conn: &TestConn, message: impl Into<Message>) {
        assert!(self.is_open(conn), "{} is not open", conn.id);
        let message = message.into();
        let answer = match (&message, &*self.peer.auto_response.borrow()) {
            (Message::Text(text), Some(pair)) if text.as_bytes() == &pair.request[..] => {
                Some(message_of(&pair.frame))
            }
            _ => None,
        };
        if let Some(answer) = answer {
            if let Some(socket) = self.peer.sockets.borrow_mut().get_mut(&conn.cid) {
                socket.inbox.push(answer);
            }
            return;
        }
        self.feed(RoomEvent::Message { conn: conn.cid, message });
    }

    /// Messages that arrive together, as if they queued while the room was busy: one
    /// `on_messages` call for a party whose `MESSAGE_BATCH_MAX` is above 1 (more than
    /// that are split into several calls), `on_message` for each otherwise. Auto-response
    /// requests are not recognised here; use [`TestRoom::send`] for those.
    pub fn send_batch(&mut self, batch: Vec<(&TestConn, Message)>) {
        let max = P::MESSAGE_BATCH_MAX.clamp(1, crate::limits::ROOM_MESSAGE_BATCH_MAX);
        let mut batch: Vec<(ConnId, Message)> = batch
            .into_iter()
            .map(|(conn, message)| {
                assert!(self.is_open(conn), "{} is not open", conn.id);
                (conn.cid, message)
            })
            .collect();
        while !batch.is_empty() {
            let rest = batch.split_off(batch.len().min(max));
            let event = if batch.len() == 1 {
                let (conn, message) = batch.pop().expect("one");
                RoomEvent::Message { conn, message }
            } else {
                RoomEvent::Messages(std::mem::take(&mut batch))
            };
            self.feed(event);
            batch = rest;
        }
    }

    /// The client closes with `code` and `reason` (`on_close` runs).
    pub fn close(&mut self, conn: &TestConn, code: CloseCode, reason: &str) {
        if let Some(socket) = self.peer.sockets.borrow_mut().get_mut(&conn.cid) {
            socket.closed.get_or_insert_with(|| (code, reason.to_owned()));
        }
        self.feed(RoomEvent::Close { conn: conn.cid, code, reason: reason.to_owned() });
    }

    /// An HTTP request to the room (`on_request` runs); its response.
    pub fn request(&mut self, request: Request) -> Response {
        let router = self.router.clone();
        let slot = router.replies().open(router.here());
        let http = HttpRequest { room: self.core.key.clone(), request, reply: slot.reply_to() };
        self.feed(RoomEvent::Request(Box::new(http)));
        let answered = crate::rt::within(
            std::time::Instant::now() + std::time::Duration::from_secs(1),
            slot.wait(),
        );
        self.executor.run(answered).expect("the room answered the request")
    }

    /// Whether the connection is open (accepted and not closed).
    pub fn is_open(&self, conn: &TestConn) -> bool {
        self.peer
            .sockets
            .borrow()
            .get(&conn.cid)
            .is_some_and(|s| !s.connecting && s.closed.is_none())
    }

    /// How the connection was closed (by the room, by the client, or because
    /// `on_connect` failed), if it was.
    pub fn closed(&self, conn: &TestConn) -> Option<(CloseCode, String)> {
        self.peer.sockets.borrow().get(&conn.cid).and_then(|s| s.closed.clone())
    }

    /// The answer a refused connect got instead of the upgrade (a full room: 503).
    pub fn refused(&self, conn: &TestConn) -> Option<Response> {
        self.peer.sockets.borrow().get(&conn.cid).and_then(|s| s.refused.clone())
    }

    /// What the connection received since the last call (sends and broadcasts, in order).
    pub fn received(&mut self, conn: &TestConn) -> Vec<Message> {
        let mut sockets = self.peer.sockets.borrow_mut();
        sockets.get_mut(&conn.cid).map(|s| std::mem::take(&mut s.inbox)).unwrap_or_default()
    }

    /// [`TestRoom::received`], as text (a binary message is a test failure).
    pub fn received_text(&mut self, conn: &TestConn) -> Vec<String> {
        self.received(conn)
            .into_iter()
            .map(|m| match m {
                Message::Text(t) => t.to_string(),
                Message::Binary(b) => panic!("{} received binary {b:?}, not text", conn.id),
            })
            .collect()
    }

    /// Every broadcast since the last call, whoever received it.
    pub fn broadcasts(&mut self) -> Vec<Message> {
        std::mem::take(&mut *self.peer.broadcasts.borrow_mut())
    }

    /// The value stored under `key`.
    pub fn stored(&self, key: &str) -> Option<Bytes> {
        let room = self.room();
        self.block_on(room.storage().get(key)).expect("storage read")
    }

    /// The room's stored alarm (ms since the Unix epoch), if one is set.
    pub fn alarm(&self) -> Option<u64> {
        let room = self.room();
        self.block_on(room.storage().get_alarm()).expect("alarm read")
    }

    /// Milliseconds since the Unix epoch on the room's (manual) clock.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Moves the clock forward by `ms` and runs every alarm that came due (the room is
    /// given an instance first if it has none, as on a server).
    pub fn advance(&mut self, ms: u64) {
        self.clock.advance(ms);
        for _ in 0..ALARM_RUNS_PER_ADVANCE_MAX {
            let now = self.clock.now_ms();
            let due = {
                let mut alarms = self.peer.alarms.borrow_mut();
                let due = alarms.first().copied().filter(|t| *t <= now);
                if let Some(t) = due {
                    alarms.remove(&t);
                }
                due
            };
            match due {
                Some(time) => self.feed(RoomEvent::Alarm { time }),
                None => return,
            }
        }
        panic!(
            "on_alarm ran {ALARM_RUNS_PER_ADVANCE_MAX} times in one advance; does it keep setting its alarm in the past?"
        );
    }

    /// Puts the room to sleep now, as `hibernate_after_ms` of quiet would (a party without
    /// `Party::HIBERNATE` stays awake): its instance goes, its connections go to the
    /// store, and the next event wakes it with `on_start`.
    pub fn hibernate(&mut self) {
        self.feed(RoomEvent::Sleep);
    }

    /// Keeps the party's [`crate::Snapshot`] fields across sleep, unload and restart, as
    /// [`crate::Server::party_with_snapshots`] does.
    pub fn with_snapshots(mut self) -> TestRoom<P>
    where
        P: crate::Snapshot,
    {
        self.runner = Runner::new(self.core.clone()).with_snapshots();
        self
    }

    /// Stops the room as a server shutdown (or an unload) does: every open connection
    /// closes with 1001 (`on_close` runs), the party saves its snapshot if it keeps one,
    /// and the instance goes. The next event starts a new one with `on_start`.
    pub fn restart(&mut self) {
        let open: Vec<ConnId> = self
            .peer
            .sockets
            .borrow()
            .iter()
            .filter(|(_, s)| s.closed.is_none() && s.refused.is_none() && !s.connecting)
            .map(|(cid, _)| *cid)
            .collect();
        for cid in open {
            let reason = "server shutting down";
            if let Some(socket) = self.peer.sockets.borrow_mut().get_mut(&cid) {
                socket.closed = Some((CloseCode::GOING_AWAY, reason.to_owned()));
            }
            self.feed(RoomEvent::Close {
                conn: cid,
                code: CloseCode::GOING_AWAY,
                reason: reason.into(),
            });
        }
        let runner = &mut self.runner;
        self.executor.run(runner.retire());
    }

    /// Whether the room is asleep.
    pub fn is_asleep(&self) -> bool {
        self.runner.is_asleep()
    }

    /// The room's store (a real one, in a temporary folder).
    pub fn store(&self) -> &partyline_storage::Store {
        &self.store
    }

    /// Answers `fetch` calls from the room to other rooms with `handler(party, room,
    /// request)`; without one they get 404.
    pub fn on_fetch(&mut self, handler: impl Fn(&str, &str, Request) -> Response + 'static) {
        *self.peer.fetch.borrow_mut() = Some(Box::new(handler));
    }

    /// Runs one event, then reports the closes it asked for back to the room (so its
    /// `on_close` runs for them, as on a server).
    fn feed(&mut self, event: RoomEvent) {
        let mut next = Some(event);
        while let Some(event) = next.take() {
            let runner = &mut self.runner;
            self.executor.run(runner.handle(event));
            let mut closing = self.peer.closing.borrow_mut();
            if !closing.is_empty() {
                let (conn, code, reason) = closing.remove(0);
                next = Some(RoomEvent::Close { conn, code, reason });
            }
        }
    }
}

impl<P: Party> Drop for TestRoom<P> {
    fn drop(&mut self) {
        self.store.close();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("partyline-testroom-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Decodes a server frame (as the room encoded it) back into the message.
fn message_of(frame: &[u8]) -> Message {
    let mut bytes = frame.to_vec();
    let limits =
        FrameLimits { message_size_max: partyline_protocol::limits::WS_MESSAGE_SIZE_MAX_CEILING };
    let decoder = FrameDecoder::new(Role::Client, limits);
    match decoder.decode(&mut bytes) {
        Ok(Decoded::Frame { frame, .. }) => match frame.opcode {
            Opcode::Text => Message::Text(String::from_utf8_lossy(frame.payload).into()),
            _ => Message::Binary(Bytes::copy_from_slice(frame.payload)),
        },
        other => panic!("the room sent a frame that does not decode: {other:?}"),
    }
}

impl EdgeSink for Peer {
    fn deliver(&self, msg: ToEdge) {
        let mut sockets = self.sockets.borrow_mut();
        match msg {
            ToEdge::Connected { conn, outcome, auto_response, .. } => {
                let Some(socket) = sockets.get_mut(&conn) else { return };
                socket.connecting = false;
                match outcome {
                    ConnectOutcome::Accepted => *self.auto_response.borrow_mut() = auto_response,
                    ConnectOutcome::Failed { code, reason } => socket.closed = Some((code, reason)),
                    ConnectOutcome::Refused(response) => {
                        socket.closed = Some((CloseCode::ABNORMAL, "refused".into()));
                        socket.refused = Some(*response);
                    }
                }
            }
            ToEdge::Frame { conn, frame } => {
                if let Some(socket) = sockets.get_mut(&conn).filter(|s| s.closed.is_none()) {
                    socket.inbox.push(message_of(&frame));
                }
            }
            ToEdge::Broadcast { frame, without, .. } => {
                let message = message_of(&frame);
                for (cid, socket) in sockets.iter_mut() {
                    if socket.closed.is_none() && !socket.connecting && !without.contains(cid) {
                        socket.inbox.push(message.clone());
                    }
                }
                self.broadcasts.borrow_mut().push(message);
            }
            ToEdge::Close { conn, code, reason } => {
                if let Some(socket) = sockets.get_mut(&conn).filter(|s| s.closed.is_none()) {
                    socket.closed = Some((code, reason.clone()));
                    self.closing.borrow_mut().push((conn, code, reason));
                }
            }
            ToEdge::CloseRoom { code, reason, .. } => {
                for (cid, socket) in sockets.iter_mut().filter(|(_, s)| s.closed.is_none()) {
                    socket.closed = Some((code, reason.clone()));
                    self.closing.borrow_mut().push((*cid, code, reason.clone()));
                }
            }
            ToEdge::AutoResponse { pair, .. } => *self.auto_response.borrow_mut() = pair,
            ToEdge::Credit { .. } | ToEdge::Response { .. } => {}
        }
    }
}

impl HomeSink for Peer {
    fn deliver(&self, msg: ToHome) {
        match msg {
            ToHome::Alarm { time, .. } => {
                self.alarms.borrow_mut().insert(time);
            }
            ToHome::Request(r) => {
                let response = match &*self.fetch.borrow() {
                    Some(handler) => handler(&r.room.party, &r.room.room, r.request),
                    None => {
                        Response::text(404, "TestRoom: no other rooms (see TestRoom::on_fetch)\n")
                    }
                };
                if let Some(router) = self.router.borrow().upgrade() {
                    let _ = router
                        .to_edge(r.reply.to, ToEdge::Response { token: r.reply.token, response });
                }
            }
            // Only the room under test exists; its own traffic never comes this way.
            ToHome::Connect(_) | ToHome::Message { .. } | ToHome::Close { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Connection, Party, Result, Room};

    /// Answers `who:<tag>` with the ids of the connections that have the tag, `one:<id>`
    /// with whether that connection exists.
    struct Lookup {
        room: Room,
    }

    impl Party for Lookup {
        const HIBERNATE: bool = true;

        async fn on_start(room: Room) -> Result<Self> {
            Ok(Lookup { room })
        }

        fn connection_tags(
            &mut self,
            conn: &Connection,
            _ctx: &crate::ConnectContext,
        ) -> Result<Vec<String>> {
            Ok(if conn.id().starts_with('r') { vec!["red".into()] } else { Vec::new() })
        }

        async fn on_message(&mut self, message: Message, sender: &Connection) -> Result<()> {
            let text = message.text()?.to_owned();
            let reply = match text.split_once(':') {
                Some(("who", tag)) => {
                    let mut ids: Vec<String> =
                        self.room.connections(Some(tag)).iter().map(|c| c.id().into()).collect();
                    ids.sort();
                    ids.join(",")
                }
                Some(("one", id)) => self.room.connection(id)?.is_some().to_string(),
                Some(("uri", id)) => {
                    self.room.connection(id)?.map(|c| c.uri().to_owned()).unwrap_or_default()
                }
                _ => {
                    return self.room.broadcast(text, &[sender.id()]);
                }
            };
            sender.send(reply)
        }
    }

    #[test]
    fn a_woken_room_rebuilds_only_the_connections_it_needs() {
        let mut room = TestRoom::<Lookup>::new("lookup", "l");
        let conns: Vec<TestConn> =
            ["r1", "r2", "b1", "b2", "b3", "b4"].iter().map(|id| room.connect(id)).collect();
        room.hibernate();
        let rebuilt = |room: &TestRoom<Lookup>| room.core.registry.borrow().rebuilt();
        let total = |room: &TestRoom<Lookup>| room.core.registry.borrow().len();
        assert_eq!((rebuilt(&room), total(&room)), (0, 0));
        // A message from one connection rebuilds that one; a broadcast that leaves it out
        // needs no other.
        room.send(&conns[2], "hello");
        assert_eq!((rebuilt(&room), total(&room)), (1, 6));
        assert_eq!(room.received_text(&conns[0]), ["hello"]);
        assert!(room.received_text(&conns[2]).is_empty());
        // A tag lookup rebuilds the tagged ones only; an id lookup that one only.
        room.send(&conns[2], "who:red");
        assert_eq!(room.received_text(&conns[2]), ["r1,r2"]);
        assert_eq!(rebuilt(&room), 3);
        room.send(&conns[2], "one:b4");
        assert_eq!(room.received_text(&conns[2]), ["true"]);
        assert_eq!(rebuilt(&room), 4);
        // A close of an archived connection reaches on_close and leaves the room.
        room.close(&conns[4], CloseCode::NORMAL, "bye");
        assert_eq!((rebuilt(&room), total(&room)), (4, 5));
        room.send(&conns[2], "one:b3");
        assert_eq!(room.received_text(&conns[2]), ["false"]);
        // Sleeping again keeps rebuilt and archived connections alike.
        room.hibernate();
        room.send(&conns[0], "who:b1");
        assert_eq!(room.received_text(&conns[0]), ["b1"]);
        assert_eq!((rebuilt(&room), total(&room)), (2, 5));
        // Uris come back whole (the archive shares the part before the id).
        room.hibernate();
        room.send(&conns[0], "uri:b2");
        assert_eq!(room.received_text(&conns[0]), ["ws://test/parties/lookup/l?_pk=b2"]);
    }
}
