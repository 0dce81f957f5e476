//! Rooms on their home shard: the host that owns a room's mailbox, connection registry
//! and storage, the task that runs its party's hooks one event at a time (alarms
//! included), and [`Room`], the handle party code uses.

use crate::connection::Connection;
use crate::limits;
use crate::mesh::{ConnRef, ConnectOutcome, ConnectRequest, HttpRequest, RoomKey, ToEdge, ToHome};
use crate::party::{ConnectContext, Message, Party, Request, Result};
use crate::shard::Shard;
use crate::storage::Storage;
use futures_lite::FutureExt;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use partyline_protocol::http::Response;
use partyline_protocol::ws::{CloseCode, encode};
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// How long a room-to-room fetch waits for its answer. Rooms handle one event at a time,
/// so two rooms fetching each other wait on each other; this turns that into an error.
const ROOM_FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Every trigger that can reach a room.
#[derive(Debug)]
pub(crate) enum RoomEvent {
    Connect(Box<ConnectRequest>),
    Message {
        conn: ConnRef,
        message: Message,
    },
    Close {
        conn: ConnRef,
        code: u16,
        reason: String,
    },
    Request(Box<HttpRequest>),
    /// The room's alarm was scheduled for `time` (ms since the Unix epoch).
    Alarm {
        time: u64,
    },
}

/// The open connections of a room.
#[derive(Default)]
struct Registry {
    by_ref: HashMap<ConnRef, Connection>,
    /// Id to connection. The id string is the connection's own (`Rc<str>`), not a copy.
    by_id: HashMap<Rc<str>, ConnRef>,
    /// The other connections with an id already in `by_id` (clients choose ids, so this
    /// happens; rare, hence kept apart to keep `by_id` small).
    id_dups: HashMap<Rc<str>, Vec<ConnRef>>,
    /// Connections per edge shard: broadcasts go only to edges that have some.
    per_edge: Vec<u32>,
}

/// A loaded room on its home shard.
pub(crate) struct RoomHost {
    pub key: RoomKey,
    /// Unique per process: names the room in edge member maps.
    pub uid: u64,
    pub shard: Rc<Shard>,
    mailbox: RefCell<Option<Rc<LocalSender<RoomEvent>>>>,
    /// Events queued and not yet finished.
    pending: Cell<usize>,
    registry: RefCell<Registry>,
    /// Made on first use: rooms that never touch storage cost nothing for it.
    storage: OnceCell<Storage>,
    /// Failed `on_alarm` runs in a row (for the retry backoff).
    alarm_retries: Cell<u8>,
}

impl RoomHost {
    /// Creates the host and starts its task (`spawn` is the party's monomorphized loop).
    pub fn start(shard: Rc<Shard>, key: RoomKey, uid: u64, spawn: SpawnRoom) -> Rc<RoomHost> {
        let (tx, rx) = local_channel::new_bounded(limits::ROOM_MAILBOX_MAX);
        let count = shard.count;
        let host = Rc::new(RoomHost {
            key,
            uid,
            shard,
            mailbox: RefCell::new(Some(Rc::new(tx))),
            pending: Cell::new(0),
            registry: RefCell::new(Registry { per_edge: vec![0; count], ..Registry::default() }),
            storage: OnceCell::new(),
            alarm_retries: Cell::new(0),
        });
        spawn(host.clone(), rx);
        host
    }

    /// Queues an event, waiting while the mailbox is full.
    pub async fn enqueue(&self, event: RoomEvent) {
        let Some(tx) = self.mailbox.borrow().clone() else {
            return;
        };
        self.pending.set(self.pending.get() + 1);
        if tx.send(event).await.is_err() {
            self.pending.set(self.pending.get() - 1);
        }
    }

    /// Queues an event if the mailbox has space; gives it back if it is full.
    pub fn try_enqueue(&self, event: RoomEvent) -> Result<(), RoomEvent> {
        let Some(tx) = self.mailbox.borrow().clone() else {
            return Ok(());
        };
        match tx.try_send(event) {
            Ok(()) => {
                self.pending.set(self.pending.get() + 1);
                Ok(())
            }
            Err(glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(event))) => {
                Err(event)
            }
            Err(_) => Ok(()), // closed: the room is being unloaded
        }
    }

    /// No connections and nothing queued or running: safe to unload.
    pub fn is_idle(&self) -> bool {
        self.pending.get() == 0 && self.registry.borrow().by_ref.is_empty()
    }

    /// Unloads the room: its task ends once the mailbox is drained.
    pub fn close_mailbox(&self) {
        self.mailbox.borrow_mut().take();
    }

    fn register(&self, conn: &Connection) {
        let mut r = self.registry.borrow_mut();
        let id = conn.shared_id();
        match r.by_id.entry(id) {
            Entry::Occupied(taken) => {
                let id = taken.key().clone();
                r.id_dups.entry(id).or_default().push(conn.cref());
            }
            Entry::Vacant(free) => {
                free.insert(conn.cref());
            }
        }
        r.per_edge[conn.cref().edge] += 1;
        r.by_ref.insert(conn.cref(), conn.clone());
    }

    fn unregister(&self, cref: ConnRef) -> Option<Connection> {
        let mut r = self.registry.borrow_mut();
        let conn = r.by_ref.remove(&cref)?;
        r.per_edge[cref.edge] -= 1;
        let id = conn.id();
        let Registry { by_id, id_dups, .. } = &mut *r;
        if by_id.get(id) == Some(&cref) {
            // Hand the id to a duplicate, if there is one.
            match id_dups.get_mut(id).and_then(Vec::pop) {
                Some(next) => {
                    by_id.insert(conn.shared_id(), next);
                }
                None => {
                    by_id.remove(id);
                }
            }
        } else if let Some(list) = id_dups.get_mut(id) {
            list.retain(|c| *c != cref);
        }
        if id_dups.get(id).is_some_and(Vec::is_empty) {
            id_dups.remove(id);
        }
        Some(conn)
    }

    fn storage(&self) -> &Storage {
        self.storage.get_or_init(|| Storage::new(self.shard.clone(), self.key.clone()))
    }

    fn get(&self, cref: ConnRef) -> Option<Connection> {
        self.registry.borrow().by_ref.get(&cref).cloned()
    }

    fn reply_connect(&self, cref: ConnRef, outcome: ConnectOutcome) {
        self.shard
            .to_edge(cref.edge, ToEdge::Connected { conn: cref, room_uid: self.uid, outcome });
    }
}

/// Starts a room's task for party `P`; stored per party name so the loop is monomorphized
/// and hooks are called without boxing.
pub(crate) type SpawnRoom = fn(Rc<RoomHost>, LocalReceiver<RoomEvent>);

pub(crate) fn spawn_room<P: Party>(host: Rc<RoomHost>, mailbox: LocalReceiver<RoomEvent>) {
    glommio::spawn_local(run_room::<P>(host, mailbox)).detach();
}

async fn run_room<P: Party>(host: Rc<RoomHost>, mailbox: LocalReceiver<RoomEvent>) {
    let mut party: Option<P> = None;
    while let Some(event) = mailbox.recv().await {
        if party.is_none() {
            match AssertUnwindSafe(P::on_start(Room(host.clone()))).catch_unwind().await {
                Ok(Ok(p)) => party = Some(p),
                Ok(Err(e)) => {
                    tracing::error!(party = %host.key.party, room = %host.key.room, error = %e, "on_start failed");
                    fail_event(&host, event, &format!("on_start failed: {e}")).await;
                    host.pending.set(host.pending.get() - 1);
                    continue;
                }
                Err(_) => {
                    tracing::error!(party = %host.key.party, room = %host.key.room, "on_start panicked");
                    fail_event(&host, event, "internal error").await;
                    host.pending.set(host.pending.get() - 1);
                    continue;
                }
            }
        }
        if let Some(p) = party.as_mut()
            && handle(&host, p, event).await == Health::Poisoned
        {
            // A hook panicked mid-way: the instance may be inconsistent. The next event
            // builds a fresh one with on_start.
            party = None;
        }
        host.pending.set(host.pending.get() - 1);
    }
}

#[derive(PartialEq, Eq)]
enum Health {
    Fine,
    Poisoned,
}

/// Answers an event the room cannot handle (its `on_start` failed).
async fn fail_event(host: &RoomHost, event: RoomEvent, reason: &str) {
    match event {
        RoomEvent::Alarm { .. } => {
            // Only a due alarm counts as failed: a stale reminder changes nothing.
            if alarm_due(host).await {
                alarm_failed(host).await;
            }
        }
        RoomEvent::Connect(c) => {
            host.reply_connect(c.conn, ConnectOutcome::Failed { reason: reason.to_owned() })
        }
        RoomEvent::Request(r) => host.shard.to_edge(
            r.reply.shard,
            ToEdge::Response {
                token: r.reply.token,
                response: Response::text(500, format!("{reason}\n")),
            },
        ),
        RoomEvent::Message { conn, .. } => host.shard.to_edge(
            conn.edge,
            ToEdge::Close { conn, code: CloseCode::INTERNAL_ERROR.0, reason: reason.to_owned() },
        ),
        RoomEvent::Close { conn, .. } => {
            host.unregister(conn);
        }
    }
}

async fn handle<P: Party>(host: &Rc<RoomHost>, party: &mut P, event: RoomEvent) -> Health {
    let room = &host.key;
    match event {
        RoomEvent::Connect(req) => {
            let ConnectRequest { conn: cref, id, request, .. } = *req;
            if host.registry.borrow().by_ref.len() >= host.shard.limits().connections_per_room_max {
                let response = Response::text(503, "room is full; try again later\n");
                host.reply_connect(cref, ConnectOutcome::Refused(Box::new(response)));
                return Health::Fine;
            }
            let uri = connection_uri(&request);
            let conn = Connection::new(host.shard.clone(), cref, id, uri);
            let ctx = ConnectContext { request };
            let tags =
                std::panic::catch_unwind(AssertUnwindSafe(|| party.connection_tags(&conn, &ctx)));
            let tags = match tags {
                Ok(Ok(tags)) => tags,
                Ok(Err(e)) => {
                    host.reply_connect(cref, ConnectOutcome::Failed { reason: e.to_string() });
                    return Health::Fine;
                }
                Err(_) => {
                    host.reply_connect(
                        cref,
                        ConnectOutcome::Failed { reason: "internal error".into() },
                    );
                    return Health::Poisoned;
                }
            };
            if let Err(reason) = conn.set_tags(tags) {
                host.reply_connect(cref, ConnectOutcome::Failed { reason });
                return Health::Fine;
            }
            host.register(&conn);
            match AssertUnwindSafe(party.on_connect(&conn, &ctx)).catch_unwind().await {
                Ok(Ok(())) => {
                    host.reply_connect(cref, ConnectOutcome::Accepted);
                    Health::Fine
                }
                Ok(Err(e)) => {
                    host.unregister(cref);
                    conn.mark_closed();
                    host.reply_connect(cref, ConnectOutcome::Failed { reason: e.to_string() });
                    Health::Fine
                }
                Err(_) => {
                    tracing::error!(party = %room.party, room = %room.room, conn = conn.id(), "on_connect panicked");
                    host.unregister(cref);
                    conn.mark_closed();
                    host.reply_connect(
                        cref,
                        ConnectOutcome::Failed { reason: "internal error".into() },
                    );
                    Health::Poisoned
                }
            }
        }
        RoomEvent::Message { conn: cref, message } => {
            let Some(conn) = host.get(cref) else {
                return Health::Fine;
            };
            match AssertUnwindSafe(party.on_message(message, &conn)).catch_unwind().await {
                Ok(Ok(())) => Health::Fine,
                Ok(Err(e)) => {
                    tracing::warn!(party = %room.party, room = %room.room, conn = conn.id(), error = %e, "on_message failed");
                    let text = e.to_string();
                    match AssertUnwindSafe(party.on_error(&conn, &text)).catch_unwind().await {
                        Err(_) => Health::Poisoned,
                        Ok(_) => Health::Fine,
                    }
                }
                Err(_) => {
                    tracing::error!(party = %room.party, room = %room.room, conn = conn.id(), "on_message panicked");
                    conn.close(CloseCode::INTERNAL_ERROR.0, "internal error");
                    Health::Poisoned
                }
            }
        }
        RoomEvent::Close { conn: cref, code, reason } => {
            let Some(conn) = host.unregister(cref) else {
                return Health::Fine;
            };
            conn.mark_closed();
            match AssertUnwindSafe(party.on_close(&conn, code, &reason)).catch_unwind().await {
                Ok(Ok(())) => Health::Fine,
                Ok(Err(e)) => {
                    tracing::warn!(party = %room.party, room = %room.room, conn = conn.id(), error = %e, "on_close failed");
                    Health::Fine
                }
                Err(_) => {
                    tracing::error!(party = %room.party, room = %room.room, conn = conn.id(), "on_close panicked");
                    Health::Poisoned
                }
            }
        }
        RoomEvent::Request(req) => {
            let HttpRequest { request, reply, .. } = *req;
            let (response, health) = match AssertUnwindSafe(party.on_request(request))
                .catch_unwind()
                .await
            {
                Ok(Ok(response)) => (response, Health::Fine),
                Ok(Err(e)) => {
                    tracing::warn!(party = %room.party, room = %room.room, error = %e, "on_request failed");
                    (Response::text(500, format!("{e}\n")), Health::Fine)
                }
                Err(_) => {
                    tracing::error!(party = %room.party, room = %room.room, "on_request panicked");
                    (Response::text(500, "internal error\n"), Health::Poisoned)
                }
            };
            host.shard.to_edge(reply.shard, ToEdge::Response { token: reply.token, response });
            health
        }
        RoomEvent::Alarm { time } => run_alarm(host, party, time).await,
    }
}

/// Runs `on_alarm` if the room's stored alarm is due; clears it after a success, retries
/// a failure later (module docs of [`crate::alarm`]).
async fn run_alarm<P: Party>(host: &RoomHost, party: &mut P, scheduled: u64) -> Health {
    let key = &host.key;
    let storage = host.storage();
    if !alarm_due(host).await {
        return Health::Fine;
    }
    let changes = storage.alarm_changes();
    let (succeeded, health) = match AssertUnwindSafe(party.on_alarm()).catch_unwind().await {
        Ok(Ok(())) => (true, Health::Fine),
        Ok(Err(e)) => {
            tracing::warn!(party = %key.party, room = %key.room, scheduled, error = %e, "on_alarm failed");
            (false, Health::Fine)
        }
        Err(_) => {
            tracing::error!(party = %key.party, room = %key.room, scheduled, "on_alarm panicked");
            (false, Health::Poisoned)
        }
    };
    if storage.alarm_changes() != changes {
        // The handler set or deleted the alarm itself: its choice stands.
        host.alarm_retries.set(0);
    } else if succeeded {
        host.alarm_retries.set(0);
        if let Err(e) = storage.delete_alarm_quietly().await {
            tracing::error!(party = %key.party, room = %key.room, error = %e, "cannot clear the alarm that ran");
        }
    } else {
        alarm_failed(host).await;
    }
    health
}

/// Whether the room's stored alarm is due now. A reminder for an alarm moved later is
/// scheduled again; one for a deleted alarm is dropped; an unreadable alarm is tried again
/// later.
async fn alarm_due(host: &RoomHost) -> bool {
    let key = &host.key;
    let now = host.shard.server.clock.now_ms();
    match host.storage().get_alarm().await {
        Ok(Some(t)) if t <= now => true,
        Ok(Some(t)) => {
            host.shard.alarms.schedule(&host.shard, key.clone(), t);
            false
        }
        Ok(None) => false,
        Err(e) => {
            tracing::error!(party = %key.party, room = %key.room, error = %e, "cannot read the alarm; retrying");
            host.shard.alarms.schedule(&host.shard, key.clone(), now + crate::alarm::RETRY_BASE_MS);
            false
        }
    }
}

/// The alarm could not run (its handler or the room's `on_start` failed): set it again
/// with backoff, or drop it after [`crate::alarm::RETRIES_MAX`] retries.
async fn alarm_failed(host: &RoomHost) {
    let key = &host.key;
    let storage = host.storage();
    let retries = host.alarm_retries.get() + 1;
    let result = if retries > crate::alarm::RETRIES_MAX {
        tracing::error!(party = %key.party, room = %key.room, "alarm dropped after {} failed retries", crate::alarm::RETRIES_MAX);
        host.alarm_retries.set(0);
        storage.delete_alarm_quietly().await
    } else {
        host.alarm_retries.set(retries);
        let delay = crate::alarm::RETRY_BASE_MS << (retries - 1);
        storage.set_alarm_quietly(host.shard.server.clock.now_ms() + delay).await
    };
    if let Err(e) = result {
        tracing::error!(party = %key.party, room = %key.room, error = %e, "cannot reschedule the alarm");
    }
}

/// The full URL a client upgraded with, as PartyKit's `connection.uri`.
fn connection_uri(request: &Request) -> String {
    let host = request.header("host").unwrap_or("localhost");
    let scheme = match request.header("x-forwarded-proto") {
        Some(p) if p.eq_ignore_ascii_case("https") => "wss",
        _ => "ws",
    };
    format!("{scheme}://{host}{}", request.target)
}

/// A room as party code sees it. Cheap to clone; valid only on the room's home shard.
#[derive(Clone)]
pub struct Room(Rc<RoomHost>);

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room").field("party", &self.name()).field("id", &self.id()).finish()
    }
}

impl Room {
    /// The room id, exactly as the client sent it (percent-encoding untouched).
    pub fn id(&self) -> &str {
        &self.0.key.room
    }

    /// The party name.
    pub fn name(&self) -> &str {
        &self.0.key.party
    }

    /// What follows `/<party>/<room>` in `request`'s path: empty, or starting with `/`
    /// (`/parties/items/shop/item/42` gives `/item/42` in room `shop` of party `items`).
    pub fn sub_path<'r>(&self, request: &'r Request) -> &'r str {
        let path = request.path();
        let room_segment = format!("/{}", self.id());
        // The room segment follows the party's (or the legacy `/party/`) segment.
        [format!("/{}{room_segment}", self.name()), format!("/party{room_segment}")]
            .iter()
            .find_map(|prefix| {
                let at = path.find(prefix.as_str())?;
                let rest = &path[at + prefix.len()..];
                (rest.is_empty() || rest.starts_with('/')).then_some(rest)
            })
            .unwrap_or("")
    }

    /// The room's durable key-value storage and its alarm.
    pub fn storage(&self) -> &Storage {
        self.0.storage()
    }

    /// Milliseconds since the Unix epoch on the server's clock (the clock alarms use).
    pub fn now_ms(&self) -> u64 {
        self.0.shard.server.clock.now_ms()
    }

    /// A variable from the server configuration's `[env]` table.
    pub fn env(&self, key: &str) -> Option<&str> {
        self.0.shard.server.config.env.get(key).map(String::as_str)
    }

    /// Sends `message` to every open connection except those whose id is in `without`.
    /// The frame is encoded once; each edge shard holding connections of the room gets one
    /// message and writes the same bytes to each of its sockets.
    pub fn broadcast(&self, message: impl Into<Message>, without: &[&str]) {
        let frame = match message.into() {
            Message::Text(s) => encode::text(&s),
            Message::Binary(b) => encode::binary(&b),
        };
        let registry = self.0.registry.borrow();
        let without: Arc<[ConnRef]> = without
            .iter()
            .flat_map(|id| {
                let first = registry.by_id.get(*id).into_iter();
                first.chain(registry.id_dups.get(*id).into_iter().flatten())
            })
            .copied()
            .collect();
        for (edge, &count) in registry.per_edge.iter().enumerate() {
            if count > 0 {
                self.0.shard.to_edge(
                    edge,
                    ToEdge::Broadcast {
                        room_uid: self.0.uid,
                        frame: frame.clone(),
                        without: without.clone(),
                    },
                );
            }
        }
    }

    /// The open connection with this id; an error if several share it (clients choose
    /// their ids, so duplicates happen and a random pick would be wrong).
    pub fn connection(&self, id: &str) -> Result<Option<Connection>> {
        let registry = self.0.registry.borrow();
        if let Some(dups) = registry.id_dups.get(id) {
            return Err(format!("{} open connections have the id {id:?}", dups.len() + 1).into());
        }
        Ok(registry.by_id.get(id).and_then(|one| registry.by_ref.get(one)).cloned())
    }

    /// Open connections, all or those with `tag`.
    pub fn connections(&self, tag: Option<&str>) -> Vec<Connection> {
        self.0
            .registry
            .borrow()
            .by_ref
            .values()
            .filter(|c| c.is_open() && tag.is_none_or(|t| c.has_tag(t)))
            .cloned()
            .collect()
    }

    /// Sends an HTTP request straight to another room's `on_request` (on any shard),
    /// bypassing `on_before_request`, and waits for its response.
    pub async fn fetch(&self, party: &str, room: &str, request: Request) -> Result<Response> {
        let shard = &self.0.shard;
        if !shard.server.parties.contains_key(party) {
            return Err(format!("unknown party: {party}").into());
        }
        if party == self.name() && room == self.id() {
            return Err("a room cannot fetch itself: it handles one event at a time".into());
        }
        let key = RoomKey { party: party.into(), room: room.into() };
        let (reply, rx) = shard.await_reply();
        shard.to_home(ToHome::Request(Box::new(HttpRequest { room: key, request, reply }))).await;
        let timeout = async {
            glommio::timer::sleep(ROOM_FETCH_TIMEOUT).await;
            None
        };
        let response = rx.recv().or(timeout).await;
        shard.forget_reply(reply.token);
        response.ok_or_else(|| format!("fetch to {party}/{room} timed out").into())
    }
}
