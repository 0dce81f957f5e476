//! `yjs`: a collaborative Yjs document per room, speaking the y-websocket protocol the
//! unmodified Yjs providers use (sync step 1 / step 2 / update, awareness). The document
//! is a [`YDoc`] in the room's storage (every update durable before it is passed on); the
//! room hibernates, and the document leaves memory with the instance and is read back on
//! wake. Awareness (who is here, cursors) lives in each connection's state, so it survives
//! sleep too.
//!
//! On connect the room sends its sync step 1 and everyone's awareness; a client's step 1
//! is answered with step 2 (what it lacks); a client's step 2 or update is stored,
//! applied, and sent to everyone else; an awareness update is kept in the sender's state
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
pub mod wire;

pub use doc::{LOG_BYTES_MAX, LOG_UPDATES_MAX, YDoc};

use crate::{
    CloseCode, ConnectContext, Connection, Message, Party, Request, Response, Result, Room,
};
use std::collections::BTreeMap;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::{AwarenessUpdate, Message as YMessage, MessageReader, SyncMessage};
use yrs::updates::decoder::DecoderV1;
use yrs::updates::encoder::Encode;

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
        self.inner.on_connect(conn)
    }

    async fn on_message(&mut self, message: Message, sender: &Connection) -> Result<()> {
        let read_only = sender.tags().iter().any(|t| t == READONLY_TAG);
        self.inner.on_message(message, sender, read_only).await
    }

    async fn on_close(&mut self, conn: &Connection, _code: CloseCode, _reason: &str) -> Result<()> {
        self.inner.on_close(conn)
    }

    async fn on_request(&mut self, request: Request) -> Result<Response> {
        Ok(self.inner.on_request(&request))
    }

    fn memory_bytes(&self) -> usize {
        self.inner.doc().memory_bytes()
    }
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
    pub fn on_connect(&mut self, conn: &Connection) -> Result<()> {
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
                    let update = self.doc.diff_from(&sv);
                    sender.send(YMessage::Sync(SyncMessage::SyncStep2(update)).encode_v1())?;
                }
                YMessage::Sync(SyncMessage::SyncStep2(update) | SyncMessage::Update(update)) => {
                    if read_only {
                        continue;
                    }
                    if let Err(e) = self.doc.apply(&update).await {
                        if e.status() == 400 {
                            sender.close(CloseCode::INVALID_PAYLOAD, &e.to_string());
                            return Ok(());
                        }
                        return Err(e);
                    }
                    let out = YMessage::Sync(SyncMessage::Update(update)).encode_v1();
                    self.room.broadcast(out, &[sender.id()])?;
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
    pub fn on_request(&self, request: &Request) -> Response {
        if request.method != "GET" && request.method != "HEAD" {
            return Response::text(405, "GET the document\n").with_header("allow", "GET, HEAD");
        }
        let query = request.target.split_once('?').map_or("", |(_, q)| q);
        let text = query.split('&').find_map(|kv| kv.strip_prefix("text="));
        match text {
            Some(name) => {
                let name = partyline_protocol::route::percent_decode(name);
                Response::text(200, self.doc.text(&name))
            }
            None => Response::new(200)
                .with_header("content-type", "application/octet-stream")
                .with_body(self.doc.encode()),
        }
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
