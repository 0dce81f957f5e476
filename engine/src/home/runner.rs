//! [`Runner`]: runs one room's party hooks, one event at a time. It builds the instance
//! with `on_start` before the first event (and again after a hook panicked or ran past
//! `hook_timeout_ms`), registers and unregisters connections, answers connects and
//! requests, and runs the alarm protocol ([`super::alarm`]). Every hook runs under
//! [`run_hook`]: a panic or a missed deadline is contained to the event and the instance.
//!
//! The same runner serves the shard's room task ([`run_room`]) and the test harness
//! (`TestRoom`), so a party is tested against the code that runs it.

use super::alarm::{RETRIES_MAX, RETRY_BASE_MS};
use super::host::RoomEvent;
use crate::api::archive;
use crate::api::{ConnectContext, Connection, Party, Room, RoomCore};
use crate::log::warn_client;
use crate::payload::Request;
use crate::route::{ConnId, ConnectOutcome, ConnectRequest, HttpRequest, RoomKey, ToEdge, ToHome};
use futures_lite::FutureExt;
use partyline_protocol::http::Response;
use partyline_protocol::ws::CloseCode;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// How a hook call ended.
enum Ran<T> {
    Done(T),
    Panicked,
    TimedOut,
}

/// Runs a hook, catching a panic, and cancels it at `hook_timeout_ms`. A hook that
/// finishes on its first poll (most do) costs no timer.
async fn run_hook<T>(timeout: Duration, hook: impl Future<Output = T>) -> Ran<T> {
    let deadline = Instant::now() + timeout;
    match crate::rt::within(deadline, AssertUnwindSafe(hook).catch_unwind()).await {
        Some(Ok(out)) => Ran::Done(out),
        Some(Err(_)) => Ran::Panicked,
        None => Ran::TimedOut,
    }
}

/// Whether the instance can go on after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Fine,
    /// A hook panicked or was cancelled mid-way: the instance may be inconsistent, so the
    /// next event builds a fresh one with `on_start`.
    Poisoned,
}

/// One room's party instance and the code that feeds it events.
pub(crate) struct Runner<P> {
    core: Rc<RoomCore>,
    party: Option<P>,
    /// Failed `on_alarm` runs in a row (for the retry backoff).
    alarm_retries: u8,
    hook_timeout: Duration,
    /// Hibernating: no instance, the connections in the room's archive.
    asleep: bool,
    /// How long the last wake took (archive read, rebuild, `on_start`), until taken.
    woke_in: Option<Duration>,
    /// The party's snapshot functions, if it keeps its fields ([`crate::Snapshot`]).
    snapshots: Option<SnapshotFns<P>>,
}

/// How a [`crate::Snapshot`] party's fields are saved and restored (monomorphized for
/// `P`, chosen when the party is registered).
struct SnapshotFns<P> {
    save: fn(&mut P) -> Result<rkyv::util::AlignedVec, String>,
    restore: fn(&mut P, &[u8]) -> Result<(), String>,
}

impl<P: Party> Runner<P> {
    pub fn new(core: Rc<RoomCore>) -> Runner<P> {
        let hook_timeout = Duration::from_millis(core.runtime.limits().hook_timeout_ms);
        Runner {
            core,
            party: None,
            alarm_retries: 0,
            hook_timeout,
            asleep: false,
            woke_in: None,
            snapshots: None,
        }
    }

    /// The runner of a party that keeps its fields across instances.
    pub fn with_snapshots(mut self) -> Runner<P>
    where
        P: crate::Snapshot,
    {
        self.snapshots = Some(SnapshotFns {
            save: crate::api::snapshot::save::<P>,
            restore: crate::api::snapshot::restore::<P>,
        });
        self
    }

    /// Memory the instance holds, for the room's charge: its size plus what it reports.
    pub fn memory_bytes(&self) -> usize {
        self.party.as_ref().map_or(0, |p| std::mem::size_of::<P>() + p.memory_bytes())
    }

    /// Handles one event, building the instance first if there is none.
    pub async fn handle(&mut self, event: RoomEvent) {
        if let RoomEvent::Sleep = event {
            return self.sleep().await;
        }
        let waking = self.asleep.then(Instant::now);
        if self.asleep {
            self.wake().await;
        }
        if self.party.is_none() {
            let room = Room(self.core.clone());
            let failure = match run_hook(self.hook_timeout, P::on_start(room)).await {
                Ran::Done(Ok(party)) => {
                    self.party = Some(party);
                    match self.restore_snapshot().await {
                        Ok(()) => None,
                        Err(e) => {
                            // The snapshot may be fine: build again at the next event
                            // rather than run (and later save) without it.
                            self.party = None;
                            self.log_error("cannot read the party's snapshot", &e);
                            Some(("cannot read the room's saved state; try again".to_owned(), 503))
                        }
                    }
                }
                Ran::Done(Err(e)) => {
                    self.log_error("on_start failed", &e.to_string());
                    Some((format!("on_start failed: {e}"), e.status()))
                }
                Ran::Panicked => {
                    self.log_error("on_start panicked", "");
                    Some(("internal error".to_owned(), 500))
                }
                Ran::TimedOut => {
                    self.log_error("on_start timed out", "");
                    Some((self.timed_out("on_start"), 504))
                }
            };
            self.woke_in = waking.map(|at| at.elapsed());
            if let Some((reason, status)) = failure {
                self.fail(event, &reason, status).await;
                return;
            }
        }
        let Some(party) = self.party.as_mut() else { return };
        let health = match event {
            RoomEvent::Connect(request) => {
                connect(&self.core, party, self.hook_timeout, *request).await
            }
            RoomEvent::Message { conn, message } => {
                let Some(conn) = self.core.registry.borrow_mut().get(conn) else { return };
                message_event(party, self.hook_timeout, &conn, message).await
            }
            RoomEvent::Messages(batch) => {
                let mut batch: Vec<(crate::payload::Message, Connection)> = {
                    let mut registry = self.core.registry.borrow_mut();
                    batch.into_iter().filter_map(|(c, m)| Some((m, registry.get(c)?))).collect()
                };
                // Connections gone since may leave one message, or none.
                match batch.len() {
                    0 => return,
                    1 => {
                        let (message, conn) = batch.pop().expect("one");
                        message_event(party, self.hook_timeout, &conn, message).await
                    }
                    _ => messages_event(party, self.hook_timeout, batch).await,
                }
            }
            RoomEvent::Close { conn, code, reason } => {
                close(&self.core, party, self.hook_timeout, conn, code, &reason).await
            }
            RoomEvent::Request(request) => {
                let HttpRequest { request, reply, .. } = *request;
                let (response, health) = request_event(party, self.hook_timeout, request).await;
                let answer = ToEdge::Response { token: reply.token, response };
                let _ = self.core.runtime.router.to_edge(reply.to, answer);
                health
            }
            RoomEvent::Alarm { time } => self.alarm(time).await,
            RoomEvent::Sleep => Health::Fine,
            RoomEvent::NodeLost { node } => {
                let lost = self.core.registry.borrow().on_node(node);
                let mut health = Health::Fine;
                for conn in lost {
                    let reason = "the socket's node is unreachable";
                    health = close(
                        &self.core,
                        party,
                        self.hook_timeout,
                        conn,
                        CloseCode::ABNORMAL,
                        reason,
                    )
                    .await;
                    if health == Health::Poisoned {
                        // The instance is dropped; the rest are forgotten without on_close.
                        self.fail(RoomEvent::NodeLost { node }, "", 0).await;
                        break;
                    }
                }
                health
            }
        };
        if health == Health::Poisoned {
            self.party = None;
        }
    }

    /// Whether the room sleeps.
    pub fn is_asleep(&self) -> bool {
        self.asleep
    }

    /// How long the room's last wake took, once.
    pub fn take_wake_time(&mut self) -> Option<Duration> {
        self.woke_in.take()
    }

    /// Puts a hibernating room to sleep: its connections go to the room's archive (one
    /// durable write), then the instance, the registry's records and the read cache go.
    /// If the archive cannot be written the room stays awake (and tries again when quiet).
    async fn sleep(&mut self) {
        if self.asleep || !P::HIBERNATE {
            return;
        }
        if let Err(e) = self.save_snapshot().await {
            tracing::warn!(error = %e, "cannot save the party's snapshot; the room stays awake");
            return;
        }
        let records = match self.core.registry.borrow().records() {
            Ok(records) => records,
            Err(e) => {
                tracing::error!(error = %e, "cannot read back the room's archive; it stays awake");
                return;
            }
        };
        let bytes = match archive::encode(&archive::RegistryArchive::new(records)) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode the room's archive; it stays awake");
                return;
            }
        };
        if let Err(e) = self.core.storage().put_archive(archive::REGISTRY, bytes).await {
            tracing::warn!(error = %e, "cannot store the room's archive; it stays awake");
            return;
        }
        drop(self.core.registry.borrow_mut().take_for_sleep());
        self.party = None;
        self.core.storage().clear_cache();
        self.asleep = true;
    }

    /// Wakes a sleeping room before its next event: its connections come back from the
    /// archive (the instance is built by the caller, with `on_start`). An archive that is
    /// missing or damaged is logged with the room's name; the room's sockets are then
    /// closed (1011) so their clients reconnect, and it starts fresh from its storage.
    async fn wake(&mut self) {
        self.asleep = false;
        let runtime = self.core.runtime.clone();
        let read = match self.core.storage().get_archive(archive::REGISTRY).await {
            Ok(Some(bytes)) => {
                archive::ArchivedConns::open(runtime, &bytes).map_err(|e| e.to_string())
            }
            Ok(None) => Err("the archive is missing".to_owned()),
            Err(e) => Err(e.to_string()),
        };
        match read {
            // Connections are rebuilt one by one, when something needs them.
            Ok(archived) => self.core.registry.borrow_mut().attach(archived),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the room's archive; closing its sockets, it starts fresh");
                let edges = self.core.registry.borrow_mut().forget_all();
                for edge in edges {
                    let close = ToEdge::CloseRoom {
                        room: self.core.uid,
                        code: CloseCode::INTERNAL_ERROR,
                        reason: "the room lost its state; reconnect".into(),
                    };
                    let _ = self.core.runtime.router.to_edge(edge, close);
                }
            }
        }
    }

    /// Saves the party's fields, if it keeps them and has an instance (one durable write).
    async fn save_snapshot(&mut self) -> Result<(), String> {
        let (Some(fns), Some(party)) = (&self.snapshots, self.party.as_mut()) else {
            return Ok(());
        };
        let payload = (fns.save)(party)?;
        let bytes = archive::encode_snapshot(&payload)?;
        self.core.storage().put_archive(archive::SNAPSHOT, bytes).await.map_err(|e| e.to_string())
    }

    /// Puts the party's saved fields into a new instance, if it keeps them and has saved
    /// some. A snapshot that is damaged is logged with the room's name and deleted; the
    /// instance keeps what `on_start` built. A storage error (busy, say) is returned: the
    /// snapshot may be fine, so it is neither deleted nor overwritten.
    async fn restore_snapshot(&mut self) -> Result<(), String> {
        let (Some(fns), Some(party)) = (&self.snapshots, self.party.as_mut()) else {
            return Ok(());
        };
        let storage = self.core.storage();
        let read = match storage.get_archive(archive::SNAPSHOT).await {
            Ok(None) => return Ok(()),
            Ok(Some(bytes)) => archive::decode_snapshot(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|payload| (fns.restore)(party, &payload)),
            Err(e) => return Err(e.to_string()),
        };
        if let Err(e) = read {
            tracing::error!(error = %e, "cannot read the party's snapshot; the room keeps what on_start built");
            if let Err(e) = storage.delete_archive(archive::SNAPSHOT).await {
                tracing::warn!(error = %e, "cannot delete the damaged snapshot");
            }
        }
        Ok(())
    }

    /// The room is unloaded or the server stops: a party that keeps its fields saves them
    /// (an instance dropped after a panic or timeout was never kept, so it is not saved).
    pub async fn retire(&mut self) {
        if let Err(e) = self.save_snapshot().await {
            tracing::error!(error = %e, "cannot save the party's snapshot as the room unloads");
        }
        self.party = None;
    }

    fn timed_out(&self, hook: &str) -> String {
        format!("{hook} timed out after {} ms", self.hook_timeout.as_millis())
    }

    fn log_error(&self, what: &str, error: &str) {
        tracing::error!(error, "{what}");
    }

    /// Answers an event the room cannot handle (its `on_start` failed).
    async fn fail(&mut self, event: RoomEvent, reason: &str, status: u16) {
        let core = &self.core;
        match event {
            RoomEvent::Alarm { .. } => {
                // Only a due alarm counts as failed: a stale reminder changes nothing.
                if alarm_due(core).await {
                    self.alarm_failed().await;
                }
            }
            RoomEvent::Connect(c) => reply_connect(
                core,
                c.conn,
                ConnectOutcome::Failed {
                    code: CloseCode::INTERNAL_ERROR,
                    reason: reason.to_owned(),
                },
            ),
            RoomEvent::Request(r) => {
                let response = Response::text(status, format!("{reason}\n"));
                let _ = core
                    .runtime
                    .router
                    .to_edge(r.reply.to, ToEdge::Response { token: r.reply.token, response });
            }
            RoomEvent::Message { conn, .. } => close_with(core, conn, reason),
            RoomEvent::Messages(batch) => {
                for (conn, _) in batch {
                    close_with(core, conn, reason);
                }
            }
            RoomEvent::Close { conn, .. } => {
                if let Some(c) = core.registry.borrow_mut().unregister(conn) {
                    c.mark_closed();
                }
            }
            RoomEvent::NodeLost { node } => {
                let mut registry = core.registry.borrow_mut();
                for conn in registry.on_node(node) {
                    if let Some(c) = registry.unregister(conn) {
                        c.mark_closed();
                    }
                }
            }
            RoomEvent::Sleep => {}
        }
    }

    /// Runs `on_alarm` if the room's stored alarm is due; clears it after a success,
    /// retries a failure later ([`super::alarm`]).
    async fn alarm(&mut self, scheduled: u64) -> Health {
        let core = self.core.clone();
        let storage = core.storage();
        if !alarm_due(&core).await {
            return Health::Fine;
        }
        let Some(party) = self.party.as_mut() else { return Health::Fine };
        let changes = storage.alarm_changes();
        storage.set_firing(true);
        let ran = run_hook(self.hook_timeout, party.on_alarm()).await;
        storage.set_firing(false);
        let (succeeded, health) = match ran {
            Ran::Done(Ok(())) => (true, Health::Fine),
            Ran::Done(Err(e)) => {
                tracing::warn!(scheduled, error = %e, "on_alarm failed");
                (false, Health::Fine)
            }
            Ran::Panicked => {
                tracing::error!(scheduled, "on_alarm panicked");
                (false, Health::Poisoned)
            }
            Ran::TimedOut => {
                tracing::error!(scheduled, "on_alarm timed out");
                (false, Health::Poisoned)
            }
        };
        if storage.alarm_changes() != changes {
            // The handler set or deleted the alarm itself: its choice stands.
            self.alarm_retries = 0;
        } else if succeeded {
            self.alarm_retries = 0;
            if let Err(e) = storage.delete_alarm_quietly().await {
                tracing::error!(error = %e, "cannot clear the alarm that ran");
            }
        } else {
            self.alarm_failed().await;
        }
        health
    }

    /// The alarm could not run (its handler or the room's `on_start` failed): set it again
    /// with backoff, or drop it after [`RETRIES_MAX`] retries.
    async fn alarm_failed(&mut self) {
        let storage = self.core.storage();
        self.alarm_retries += 1;
        let result = if self.alarm_retries > RETRIES_MAX {
            tracing::error!("alarm dropped after {RETRIES_MAX} failed retries");
            self.alarm_retries = 0;
            storage.delete_alarm_quietly().await
        } else {
            let delay = RETRY_BASE_MS << (self.alarm_retries - 1);
            storage.set_alarm_quietly(self.core.runtime.clock.now_ms() + delay).await
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot reschedule the alarm");
        }
    }
}

/// Closes a connection the room cannot serve (its `on_start` failed) with 1011.
fn close_with(core: &RoomCore, conn: ConnId, reason: &str) {
    let close = ToEdge::Close { conn, code: CloseCode::INTERNAL_ERROR, reason: reason.to_owned() };
    let _ = core.runtime.router.to_edge(conn.edge, close);
}

fn reply_connect(core: &RoomCore, conn: ConnId, outcome: ConnectOutcome) {
    let reply = ToEdge::Connected {
        conn,
        room: core.key.clone(),
        uid: core.uid,
        outcome,
        auto_response: core.auto_response.borrow().clone(),
    };
    // Control deliveries are never refused.
    let _ = core.runtime.router.to_edge(conn.edge, reply);
}

async fn connect<P: Party>(
    core: &RoomCore,
    party: &mut P,
    timeout: Duration,
    request: ConnectRequest,
) -> Health {
    let ConnectRequest { conn: cid, id, request, .. } = request;
    let limits = core.runtime.limits();
    if core.registry.borrow().len() >= limits.connections_per_room_max {
        let response = Response::text(503, "room is full; try again later\n");
        reply_connect(core, cid, ConnectOutcome::Refused(Box::new(response)));
        return Health::Fine;
    }
    let failed =
        |reason: String| ConnectOutcome::Failed { code: CloseCode::INTERNAL_ERROR, reason };
    let conn = Connection::new(core.runtime.clone(), cid, id, connection_uri(&request));
    let ctx = ConnectContext { request };
    let tags = std::panic::catch_unwind(AssertUnwindSafe(|| party.connection_tags(&conn, &ctx)));
    let tags = match tags {
        Ok(Ok(tags)) => tags,
        Ok(Err(e)) => {
            reply_connect(core, cid, failed(e.to_string()));
            return Health::Fine;
        }
        Err(_) => {
            reply_connect(core, cid, failed("internal error".into()));
            return Health::Poisoned;
        }
    };
    if let Err(reason) = conn.set_tags(tags) {
        reply_connect(core, cid, failed(reason));
        return Health::Fine;
    }
    core.registry.borrow_mut().register(&conn);
    let (outcome, health) = match run_hook(timeout, party.on_connect(&conn, &ctx)).await {
        Ran::Done(Ok(())) => (ConnectOutcome::Accepted, Health::Fine),
        Ran::Done(Err(e)) => {
            (ConnectOutcome::Failed { code: e.close_code(), reason: e.to_string() }, Health::Fine)
        }
        Ran::Panicked => {
            tracing::error!(conn = conn.id(), "on_connect panicked");
            (failed("internal error".into()), Health::Poisoned)
        }
        Ran::TimedOut => {
            tracing::error!(conn = conn.id(), "on_connect timed out");
            let reason = format!("on_connect timed out after {} ms", timeout.as_millis());
            (failed(reason), Health::Poisoned)
        }
    };
    if !matches!(outcome, ConnectOutcome::Accepted) {
        core.registry.borrow_mut().unregister(cid);
        conn.mark_closed();
    }
    reply_connect(core, cid, outcome);
    health
}

async fn message_event<P: Party>(
    party: &mut P,
    timeout: Duration,
    conn: &Connection,
    message: crate::payload::Message,
) -> Health {
    let kill = |reason: &str| {
        conn.close(CloseCode::INTERNAL_ERROR, reason);
        Health::Poisoned
    };
    match run_hook(timeout, party.on_message(message, conn)).await {
        Ran::Done(Ok(())) => Health::Fine,
        Ran::Done(Err(e)) => {
            warn_client!(conn = conn.id(), error = %e, "on_message failed");
            match run_hook(timeout, party.on_error(conn, &e)).await {
                Ran::Done(_) => Health::Fine,
                Ran::Panicked => kill("internal error"),
                Ran::TimedOut => {
                    kill(&format!("on_error timed out after {} ms", timeout.as_millis()))
                }
            }
        }
        Ran::Panicked => {
            tracing::error!(conn = conn.id(), "on_message panicked");
            kill("internal error")
        }
        Ran::TimedOut => {
            tracing::error!(conn = conn.id(), "on_message timed out");
            kill(&format!("on_message timed out after {} ms", timeout.as_millis()))
        }
    }
}

/// A batch of messages ([`Party::MESSAGE_BATCH_MAX`] above 1: only such a party is given
/// one): one `on_messages` call.
async fn messages_event<P: Party>(
    party: &mut P,
    timeout: Duration,
    batch: Vec<(crate::payload::Message, Connection)>,
) -> Health {
    let senders: Vec<Connection> = {
        let mut senders: Vec<Connection> = Vec::new();
        for (_, conn) in &batch {
            if !senders.iter().any(|s| s.id() == conn.id()) {
                senders.push(conn.clone());
            }
        }
        senders
    };
    let kill = |reason: &str| {
        for conn in &senders {
            conn.close(CloseCode::INTERNAL_ERROR, reason);
        }
        Health::Poisoned
    };
    match run_hook(timeout, party.on_messages(batch)).await {
        Ran::Done(Ok(())) => Health::Fine,
        Ran::Done(Err(e)) => {
            for conn in &senders {
                warn_client!(conn = conn.id(), error = %e, "on_messages failed");
                match run_hook(timeout, party.on_error(conn, &e)).await {
                    Ran::Done(_) => {}
                    Ran::Panicked => return kill("internal error"),
                    Ran::TimedOut => {
                        return kill(&format!(
                            "on_error timed out after {} ms",
                            timeout.as_millis()
                        ));
                    }
                }
            }
            Health::Fine
        }
        Ran::Panicked => {
            tracing::error!(messages = senders.len(), "on_messages panicked");
            kill("internal error")
        }
        Ran::TimedOut => {
            tracing::error!(messages = senders.len(), "on_messages timed out");
            kill(&format!("on_messages timed out after {} ms", timeout.as_millis()))
        }
    }
}

async fn close<P: Party>(
    core: &RoomCore,
    party: &mut P,
    timeout: Duration,
    cid: ConnId,
    code: CloseCode,
    reason: &str,
) -> Health {
    let Some(conn) = core.registry.borrow_mut().unregister(cid) else {
        return Health::Fine;
    };
    conn.mark_closing();
    let ran = run_hook(timeout, party.on_close(&conn, code, reason)).await;
    conn.mark_closed();
    match ran {
        Ran::Done(Ok(())) => Health::Fine,
        Ran::Done(Err(e)) => {
            tracing::warn!(conn = conn.id(), error = %e, "on_close failed");
            Health::Fine
        }
        Ran::Panicked => {
            tracing::error!(conn = conn.id(), "on_close panicked");
            Health::Poisoned
        }
        Ran::TimedOut => {
            tracing::error!(conn = conn.id(), "on_close timed out");
            Health::Poisoned
        }
    }
}

async fn request_event<P: Party>(
    party: &mut P,
    timeout: Duration,
    request: Request,
) -> (Response, Health) {
    match run_hook(timeout, party.on_request(request)).await {
        Ran::Done(Ok(response)) => (response, Health::Fine),
        Ran::Done(Err(e)) => {
            if matches!(e.fault(), crate::error::Fault::Client(_)) {
                warn_client!(error = %e, "on_request refused the request");
            } else {
                tracing::warn!(error = %e, "on_request failed");
            }
            (Response::text(e.status(), format!("{e}\n")), Health::Fine)
        }
        Ran::Panicked => {
            tracing::error!("on_request panicked");
            (Response::text(500, "internal error\n"), Health::Poisoned)
        }
        Ran::TimedOut => {
            tracing::error!("on_request timed out");
            let message = format!("on_request timed out after {} ms\n", timeout.as_millis());
            (Response::text(504, message), Health::Poisoned)
        }
    }
}

/// Whether the room's stored alarm is due now. A reminder for an alarm moved later is
/// scheduled again; one for a deleted alarm is dropped; an unreadable alarm is tried again
/// later.
async fn alarm_due(core: &RoomCore) -> bool {
    let key = &core.key;
    let now = core.runtime.clock.now_ms();
    let again = |time| {
        let waits = core.runtime.router.to_home(ToHome::Alarm { room: key.clone(), time });
        debug_assert!(waits.is_none(), "a room's alarm is scheduled on its own shard");
    };
    match core.storage().get_alarm().await {
        Ok(Some(t)) if t <= now => true,
        Ok(Some(t)) => {
            again(t);
            false
        }
        Ok(None) => false,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the alarm; retrying");
            again(now + RETRY_BASE_MS);
            false
        }
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

/// How the home starts rooms of one party: its task, monomorphized (so hooks are called
/// without boxing), and whether they hibernate.
#[derive(Clone, Copy)]
pub(crate) struct SpawnRoom {
    pub start: fn(Rc<super::Home>, Rc<super::host::RoomHost>),
    pub hibernate: bool,
    /// The party's index among the server's parties sorted by name (for its counts).
    pub party: usize,
}

/// The [`SpawnRoom`] of party `P`.
pub(crate) fn spawn_room<P: Party>() -> SpawnRoom {
    SpawnRoom { start: start_room::<P>, hibernate: P::HIBERNATE, party: 0 }
}

/// The [`SpawnRoom`] of party `P`, keeping its fields ([`crate::Snapshot`]).
pub(crate) fn spawn_room_with_snapshots<P: crate::Snapshot>() -> SpawnRoom {
    SpawnRoom { start: start_room_with_snapshots::<P>, hibernate: P::HIBERNATE, party: 0 }
}

fn start_room<P: Party>(home: Rc<super::Home>, host: Rc<super::host::RoomHost>) {
    let runner = Runner::<P>::new(host.core.clone());
    let span = room_span(&host.core.key);
    glommio::spawn_local(run_room::<P>(home, host, runner).instrument(span)).detach();
}

fn start_room_with_snapshots<P: crate::Snapshot>(
    home: Rc<super::Home>,
    host: Rc<super::host::RoomHost>,
) {
    let runner = Runner::<P>::new(host.core.clone()).with_snapshots();
    let span = room_span(&host.core.key);
    glommio::spawn_local(run_room::<P>(home, host, runner).instrument(span)).detach();
}

/// The span a room's task runs in: every log line of its hooks (the engine's and the party
/// code's own `tracing` calls) carries the party and room without naming them.
fn room_span(key: &RoomKey) -> tracing::Span {
    tracing::info_span!("room", party = %key.party, room = %key.room)
}

/// `first` and `second`, and the messages queued right behind them, as one event: at most
/// `max` (clamped to [`crate::limits::ROOM_MESSAGE_BATCH_MAX`]).
fn batch(
    host: &super::host::RoomHost,
    first: RoomEvent,
    second: (ConnId, crate::payload::Message),
    max: usize,
) -> RoomEvent {
    let RoomEvent::Message { conn, message } = first else { return first };
    let max = max.min(crate::limits::ROOM_MESSAGE_BATCH_MAX);
    let mut batch = Vec::with_capacity(max.min(16));
    batch.push((conn, message));
    batch.push(second);
    while batch.len() < max {
        let Some(next) = host.next_message_now() else { break };
        batch.push(next);
    }
    RoomEvent::Messages(batch)
}

/// A room's task: waits for edges it writes to if they are backed up, takes the next
/// event, runs it, and settles the room's accounts; ends when the room is unloaded, after
/// saving the party's snapshot if it keeps one. The home counts it while it runs.
async fn run_room<P: Party>(
    home: Rc<super::Home>,
    host: Rc<super::host::RoomHost>,
    mut runner: Runner<P>,
) {
    let _running = home.task_started();
    loop {
        host.wait_for_edges().await;
        let Some(mut event) = host.next_event().await else { break };
        if P::MESSAGE_BATCH_MAX > 1
            && let RoomEvent::Message { .. } = event
            && let Some(next) = host.next_message_now()
        {
            event = batch(&host, event, next, P::MESSAGE_BATCH_MAX);
        }
        host.set_running(true);
        runner.handle(event).await;
        host.set_running(false);
        if host.asleep.replace(runner.is_asleep()) != runner.is_asleep() {
            let woke_in =
                (!runner.is_asleep()).then(|| runner.take_wake_time().unwrap_or_default());
            home.slept_or_woke(&host, woke_in);
        }
        home.settle(&host, runner.memory_bytes());
    }
    runner.retire().await;
}
