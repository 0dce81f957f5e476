//! `yjs`: a collaborative Yjs document per room, speaking the y-websocket protocol the
//! unmodified Yjs providers use (sync step 1 / step 2 / update, awareness). The document
//! is a [`YDoc`] in the room's storage (every update durable before it is passed on); the
//! room hibernates, and the document leaves memory with the instance and is read back on
//! wake. Awareness (who is here, cursors) lives in each connection's state, so it survives
//! sleep too.
//!
//! On connect the room sends its sync step 1 and everyone's awareness; a client's step 1
//! is answered with step 2 (what it lacks); a client's step 2 or update is stored,
//! applied, and sent to everyone else (updates that queued while the room was writing
//! come as one batch, [`Party::MESSAGE_BATCH_MAX`], and are merged into one write and one
//! message: a busy document pays per batch, not per keystroke); an awareness update is
//! kept in the sender's state
//! and sent to everyone (y-websocket does the same); a connection that leaves is
//! announced gone. Connections tagged `readonly` receive everything and change nothing
//! (the built-in party tags connections that ask with `?readonly=1`; a party embedding
//! [`YDoc`] decides in its own gate). `GET` answers the document as one binary update,
//! or with `?text=<name>` the text of that root `Y.Text`.
//!
//! Bad input: a text frame closes the connection with 1003 (y-partyserver's custom
//! messages, `__YPS:` text, are ignored), a malformed message (checked
//! whole before `yrs` reads it, [`wire::check`]) with 1007; the document is unchanged.

mod doc;

/// The y-websocket wire checker, from the protocol crate (where it is fuzzed).
pub use partyline_protocol::yjs as wire;

pub use doc::{LOG_BYTES_MAX, LOG_UPDATES_MAX, YDoc};

use crate::{
    CloseCode, ConnectContext, Connection, Message, Party, Request, Response, Result, Room,
};
use std::collections::BTreeMap;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::{AwarenessUpdate, Message as YMessage, MessageReader, SyncMessage};
use yrs::updates::decoder::DecoderV1;
use yrs::updates::encoder::Encode;

/// Bytes of updates merged into one durable write: a batch past it is stored in parts,
/// each as it fills (so a batch never holds much more than this decoded).
pub const BATCH_BYTES_MAX: usize = 1024 * 1024;

/// The close reason of a connection whose update could not be stored: its client
/// reconnects and syncs, sending the room what it lacks.
const UNSTORED: &str = "the document could not be stored; reconnect";

/// Document updates taken from a batch of messages and not yet stored: groups of at most
/// [`BATCH_BYTES_MAX`] (or one larger update), each to be one write.
#[derive(Default)]
struct Pending {
    groups: Vec<Group>,
}

#[derive(Default)]
struct Group {
    /// Each update as it came, decoded, and the connection it came from.
    updates: Vec<(Vec<u8>, yrs::Update, Connection)>,
    bytes: usize,
}

impl Pending {
    fn bytes(&self) -> usize {
        self.groups.iter().map(|g| g.bytes).sum()
    }

    fn push(&mut self, update: Vec<u8>, decoded: yrs::Update, sender: &Connection) {
        let full = self
            .groups
            .last()
            .is_none_or(|g| !g.updates.is_empty() && g.bytes + update.len() > BATCH_BYTES_MAX);
        if full {
            self.groups.push(Group::default());
        }
        let group = self.groups.last_mut().expect("a group");
        group.bytes += update.len();
        group.updates.push((update, decoded, sender.clone()));
    }
}

impl Group {
    fn senders(&self) -> impl Iterator<Item = &Connection> {
        self.updates.iter().map(|(_, _, c)| c)
    }
}

/// Closes `conns` (each once is enough; closing twice changes nothing).
fn close_all<'c>(conns: impl IntoIterator<Item = &'c Connection>, code: CloseCode, reason: &str) {
    for conn in conns {
        conn.close(code, reason);
    }
}

/// A connection's awareness entries: client id to (clock, state as JSON text). Kept as the
/// connection's state.
type Awareness = BTreeMap<u64, (u32, String)>;

/// The tag of connections that may not change the document.
pub const READONLY_TAG: &str = "readonly";

/// The `yjs` party: a [`YRoom`] per room, connections tagged `readonly` by `?readonly=1`.
#[derive(Debug)]
pub struct Yjs {
    inner: YRoom,
}

impl Party for Yjs {
    const HIBERNATE: bool = true;

    async fn on_start(room: Room) -> Result<Self> {
        Ok(Yjs { inner: YRoom::load(&room).await? })
    }

    fn connection_tags(&mut self, _conn: &Connection, ctx: &ConnectContext) -> Result<Vec<String>> {
        let query = ctx.request.target.split_once('?').map_or("", |(_, q)| q);
        let readonly = query.split('&').any(|kv| kv == "readonly=1" || kv == "readonly=true");
        Ok(if readonly { vec![READONLY_TAG.to_owned()] } else { Vec::new() })
    }

    async fn on_connect(&mut self, conn: &Connection, _ctx: &ConnectContext) -> Result<()> {
        self.inner.on_connect(conn).await
    }

    /// Keystrokes that queue while the room waits for a write go together (see
    /// [`YRoom::on_messages`]).
    const MESSAGE_BATCH_MAX: usize = 64;

    async fn on_message(&mut self, message: Message, sender: &Connection) -> Result<()> {
        let read_only = is_read_only(sender);
        self.inner.on_message(message, sender, read_only).await
    }

    async fn on_messages(&mut self, batch: Vec<(Message, Connection)>) -> Result<()> {
        let batch = batch.into_iter().map(|(m, c)| {
            let read_only = is_read_only(&c);
            (m, c, read_only)
        });
        self.inner.on_messages(batch).await
    }

    async fn on_close(&mut self, conn: &Connection, _code: CloseCode, _reason: &str) -> Result<()> {
        self.inner.on_close(conn)
    }

    async fn on_request(&mut self, request: Request) -> Result<Response> {
        self.inner.on_request(&request).await
    }

    fn memory_bytes(&self) -> usize {
        self.inner.doc().memory_bytes()
    }
}

fn is_read_only(conn: &Connection) -> bool {
    conn.tags().iter().any(|t| t == READONLY_TAG)
}

/// A Yjs document served over the y-websocket protocol, to embed in any party: call its
/// hooks from the party's (`read_only` is the party's decision, from a gate or tags).
#[derive(Debug)]
pub struct YRoom {
    room: Room,
    doc: YDoc,
}

impl YRoom {
    /// Loads the room's document from its storage.
    pub async fn load(room: &Room) -> Result<YRoom> {
        Ok(YRoom { room: room.clone(), doc: YDoc::load(room).await? })
    }

    /// The document.
    pub fn doc(&self) -> &YDoc {
        &self.doc
    }

    /// A new connection: the room's sync step 1, and everyone's awareness.
    pub async fn on_connect(&mut self, conn: &Connection) -> Result<()> {
        self.doc.refresh().await?;
        conn.send(YMessage::Sync(SyncMessage::SyncStep1(self.doc.state_vector())).encode_v1())?;
        if let Some(everyone) = self.awareness_of_all(Some(conn.id()))? {
            conn.send(everyone)?;
        }
        Ok(())
    }

    /// A message from `sender`: sync and awareness; `read_only` connections change nothing.
    pub async fn on_message(
        &mut self,
        message: Message,
        sender: &Connection,
        read_only: bool,
    ) -> Result<()> {
        self.on_messages([(message, sender.clone(), read_only)]).await
    }

    /// Messages that queued together, each with its sender and whether it is read-only:
    /// handled in order, except that their document updates are merged, applied, stored
    /// with one durable write and sent on as one update (a write per
    /// [`BATCH_BYTES_MAX`]), so a busy document pays a write and a round of socket writes
    /// per batch rather than per keystroke. Awareness and sync answers go out as each
    /// message is read, document updates once stored: a peer may see a cursor a moment
    /// before the edit it points into, as over any network. Nothing is sent on before it
    /// is durable. A
    /// message's own failure (a send refused) does not stop the others; the first is
    /// returned at the end. If storage fails, every sender whose updates were not stored
    /// (and every sender the batch had not reached) is closed with 1011.
    pub async fn on_messages(
        &mut self,
        batch: impl IntoIterator<Item = (Message, Connection, bool)>,
    ) -> Result<()> {
        let mut batch = batch.into_iter();
        if let Err(e) = self.doc.refresh().await {
            for (_, sender, _) in batch {
                sender.close(CloseCode::INTERNAL_ERROR, UNSTORED);
            }
            return Err(e);
        }
        let mut pending = Pending::default();
        let mut failed = None;
        while let Some((message, sender, read_only)) = batch.next() {
            if let Err(e) = self.take(message, &sender, read_only, &mut pending) {
                failed.get_or_insert(e);
            }
            // Stored as it fills, so a batch holds at most about this much decoded.
            if pending.bytes() >= BATCH_BYTES_MAX
                && let Err(e) = self.flush(std::mem::take(&mut pending)).await
            {
                for (_, sender, _) in batch {
                    sender.close(CloseCode::INTERNAL_ERROR, UNSTORED);
                }
                return Err(e);
            }
        }
        self.flush(pending).await?;
        failed.map_or(Ok(()), Err)
    }

    /// Handles one message; its document updates join `pending`, to be stored by
    /// [`YRoom::flush`].
    fn take(
        &mut self,
        message: Message,
        sender: &Connection,
        read_only: bool,
        pending: &mut Pending,
    ) -> Result<()> {
        let bytes = match message {
            Message::Binary(bytes) => bytes,
            // y-partyserver's custom messages (`__YPS:...`): this party has none to answer.
            Message::Text(text) if text.starts_with("__YPS:") => return Ok(()),
            Message::Text(_) => {
                sender.close(CloseCode::UNSUPPORTED_DATA, "y-websocket messages are binary");
                return Ok(());
            }
        };
        if let Err(e) = wire::check(&bytes) {
            sender.close(CloseCode::INVALID_PAYLOAD, &e.to_string());
            return Ok(());
        }
        let mut decoder = DecoderV1::from(&bytes[..]);
        for message in MessageReader::new(&mut decoder) {
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    sender.close(CloseCode::INVALID_PAYLOAD, &e.to_string());
                    return Ok(());
                }
            };
            match message {
                YMessage::Sync(SyncMessage::SyncStep1(sv)) => {
                    // From the durable document: updates still pending reach this client
                    // as an update once stored.
                    let update = self.doc.diff_from(&sv);
                    sender.send(YMessage::Sync(SyncMessage::SyncStep2(update)).encode_v1())?;
                }
                YMessage::Sync(SyncMessage::SyncStep2(update) | SyncMessage::Update(update)) => {
                    if read_only {
                        continue;
                    }
                    let decoded = match YDoc::check(&update) {
                        Ok(Some(decoded)) => decoded,
                        Ok(None) => continue,
                        Err(e) => {
                            sender.close(CloseCode::INVALID_PAYLOAD, &e.to_string());
                            return Ok(());
                        }
                    };
                    pending.push(update, decoded, sender);
                }
                YMessage::Awareness(update) => {
                    let mut mine: Awareness = sender.state_json()?.unwrap_or_default();
                    for (client, entry) in &update.clients {
                        let newer = mine.get(client).is_none_or(|(clock, _)| entry.clock >= *clock);
                        if newer {
                            if &*entry.json == "null" {
                                mine.remove(client);
                            } else {
                                mine.insert(*client, (entry.clock, entry.json.to_string()));
                            }
                        }
                    }
                    // Kept for the connection's life (and across sleep); a state too large
                    // to keep is still passed on.
                    let _ = sender.set_state_json(&mine);
                    self.room.broadcast(YMessage::Awareness(update).encode_v1(), &[])?;
                }
                YMessage::AwarenessQuery => {
                    if let Some(everyone) = self.awareness_of_all(None)? {
                        sender.send(everyone)?;
                    }
                }
                YMessage::Auth(_) | YMessage::Custom(..) => {}
            }
        }
        Ok(())
    }

    /// Applies and stores each group of pending updates as one, then sends it to every
    /// connection (but its sender, when one connection sent the whole group: the others'
    /// changes are news to it, and applying an update twice changes nothing). A write that
    /// fails closes the senders of every group not stored with 1011; y-websocket clients
    /// reconnect and sync, sending the room what it lacks, so nothing they typed is lost.
    async fn flush(&mut self, pending: Pending) -> Result<()> {
        let mut groups = pending.groups.into_iter();
        while let Some(group) = groups.next() {
            if let Err(e) = self.store_group(group).await {
                for later in groups {
                    close_all(later.senders(), CloseCode::INTERNAL_ERROR, UNSTORED);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// One group: merged into one update if the merge checks and applies; otherwise (a
    /// merge `yrs` got wrong, or an update that does not apply) one update at a time, so
    /// only the sender of an update that does not apply is closed (1007). An `Err` is a
    /// failed write or read; every sender of the group not stored has been closed (1011).
    async fn store_group(&mut self, group: Group) -> Result<()> {
        let mut updates = group.updates;
        if updates.len() > 1 {
            let (raw, decoded): (Vec<(Vec<u8>, Connection)>, Vec<yrs::Update>) =
                updates.into_iter().map(|(b, u, c)| ((b, c), u)).unzip();
            let merged = yrs::Update::merge_updates(decoded);
            let bytes = merged.encode_v1();
            let senders: Vec<&Connection> = raw.iter().map(|(_, c)| c).collect();
            if wire::update_v1(&bytes).is_ok() {
                if self.commit_and_send(bytes, merged, &senders).await? {
                    return Ok(());
                }
                self.refresh_or_close(senders.iter().copied()).await?;
            }
            updates = Vec::with_capacity(raw.len());
            for (bytes, sender) in raw {
                if let Ok(Some(update)) = YDoc::check(&bytes) {
                    updates.push((bytes, update, sender));
                }
            }
        }
        let mut updates = updates.into_iter();
        while let Some((bytes, update, sender)) = updates.next() {
            match self.commit_and_send(bytes, update, &[&sender]).await {
                Ok(true) => {}
                Ok(false) => {
                    sender.close(CloseCode::INVALID_PAYLOAD, "the update does not apply");
                    self.refresh_or_close(updates.as_slice().iter().map(|u| &u.2)).await?;
                }
                Err(e) => {
                    close_all(
                        updates.as_slice().iter().map(|u| &u.2),
                        CloseCode::INTERNAL_ERROR,
                        UNSTORED,
                    );
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Commits one update and sends it on: `Ok(false)` if `yrs` cannot apply it (the
    /// document is then stale), an `Err` (with `senders` closed, 1011) if it was not
    /// stored. A send that fails after the write is logged: the update is stored, and a
    /// client that missed it gets it when it syncs.
    async fn commit_and_send(
        &mut self,
        bytes: Vec<u8>,
        update: yrs::Update,
        senders: &[&Connection],
    ) -> Result<bool> {
        match self.doc.commit(&bytes, update).await {
            Ok(()) => {}
            Err(e) if e.status() == 400 => return Ok(false),
            Err(e) => {
                close_all(senders.iter().copied(), CloseCode::INTERNAL_ERROR, UNSTORED);
                return Err(e);
            }
        }
        let out = YMessage::Sync(SyncMessage::Update(bytes)).encode_v1();
        let first = senders.first().map(|c| c.id());
        let one = first.filter(|id| senders.iter().all(|c| c.id() == *id));
        let sent = match one {
            Some(id) => self.room.broadcast(out, &[id]),
            None => self.room.broadcast(out, &[]),
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "yjs: a stored update could not be sent on");
        }
        Ok(true)
    }

    /// Reads a stale document back; if that fails, `then_close` are closed (1011).
    async fn refresh_or_close<'c>(
        &mut self,
        then_close: impl IntoIterator<Item = &'c Connection>,
    ) -> Result<()> {
        if let Err(e) = self.doc.refresh().await {
            close_all(then_close, CloseCode::INTERNAL_ERROR, UNSTORED);
            return Err(e);
        }
        Ok(())
    }

    /// A connection left: its awareness clients are announced gone.
    pub fn on_close(&mut self, conn: &Connection) -> Result<()> {
        let mine: Awareness = conn.state_json().ok().flatten().unwrap_or_default();
        if mine.is_empty() {
            return Ok(());
        }
        // Its clients are gone: their states become null, one clock later.
        let gone: Awareness =
            mine.into_iter().map(|(c, (clock, _))| (c, (clock + 1, "null".to_owned()))).collect();
        self.room.broadcast(encode_awareness(&gone), &[conn.id()])
    }

    /// `GET`: the document as one binary update, or with `?text=<name>` that `Y.Text`.
    pub async fn on_request(&mut self, request: &Request) -> Result<Response> {
        if request.method != "GET" && request.method != "HEAD" {
            let refused = Response::text(405, "GET the document\n");
            return Ok(refused.with_header("allow", "GET, HEAD"));
        }
        self.doc.refresh().await?;
        let query = request.target.split_once('?').map_or("", |(_, q)| q);
        let text = query.split('&').find_map(|kv| kv.strip_prefix("text="));
        Ok(match text {
            Some(name) => {
                let name = partyline_protocol::route::percent_decode(name);
                Response::text(200, self.doc.text(&name))
            }
            None => Response::new(200)
                .with_header("content-type", "application/octet-stream")
                .with_body(self.doc.encode()),
        })
    }

    /// Every connection's awareness (but `except`'s) as one message, if any.
    fn awareness_of_all(&self, except: Option<&str>) -> Result<Option<Vec<u8>>> {
        let mut all = Awareness::new();
        for other in self.room.connections(None) {
            if Some(other.id()) == except {
                continue;
            }
            let theirs: Option<Awareness> = other.state_json().ok().flatten();
            all.extend(theirs.unwrap_or_default());
        }
        Ok((!all.is_empty()).then(|| encode_awareness(&all)))
    }
}

/// An awareness message (y-protocols): entries of (client, clock, JSON state).
fn encode_awareness(entries: &Awareness) -> Vec<u8> {
    let clients = entries
        .iter()
        .map(|(client, (clock, json))| {
            (*client, AwarenessUpdateEntry { clock: *clock, json: json.as_str().into() })
        })
        .collect();
    YMessage::Awareness(AwarenessUpdate { clients }).encode_v1()
}
