//! `main`: a chat room with a durable history. A new connection first receives the
//! history (a JSON array of strings); each text message is stored, then goes to everyone
//! else. `GET` returns the history as JSON; `POST` appends its body as a message and
//! broadcasts it. A message that cannot be stored (over the storage value limit) is
//! refused: the sender gets `{"error": ...}` and nobody else sees it.
//!
//! Each message is one storage key, `h:<sequence, 16 hex digits>`, so the history is a
//! prefix scan in order and trimming the oldest is a delete; a message and the trimming it
//! causes commit as one transaction. The history survives restarts and room eviction; the
//! room keeps a copy in memory for new connections and `GET`.

use crate::{
    ConnectContext, Connection, Error, ListOptions, Message, Party, Request, Response, Result,
    Room, StorageError,
};
use std::collections::VecDeque;

/// Most history kept per room, in bytes of message text; the oldest messages go first.
pub const HISTORY_BYTES_MAX: usize = 1024 * 1024;

/// Most messages kept per room (one storage `list` reads them all at start).
pub const HISTORY_MESSAGES_MAX: usize = partyline_storage::limits::LIST_LIMIT_DEFAULT;

const PREFIX: &str = "h:";

fn key_of(seq: u64) -> String {
    format!("{PREFIX}{seq:016x}")
}

/// The chat party.
#[derive(Debug)]
pub struct Chat {
    room: Room,
    /// (sequence, text), oldest first.
    history: VecDeque<(u64, String)>,
    history_bytes: usize,
    next_seq: u64,
}

impl Chat {
    /// Stores `text` as the newest message, trimming the oldest beyond the bounds, in one
    /// transaction; the in-memory copy changes only once the write is durable.
    async fn append(&mut self, text: &str) -> Result<()> {
        let seq = self.next_seq;
        let (mut drop_count, mut bytes) = (0, self.history_bytes + text.len());
        while drop_count < self.history.len()
            && (bytes > HISTORY_BYTES_MAX
                || self.history.len() - drop_count + 1 > HISTORY_MESSAGES_MAX)
        {
            bytes -= self.history[drop_count].1.len();
            drop_count += 1;
        }
        let storage = self.room.storage();
        let mut txn = storage.transaction().await?;
        txn.put(key_of(seq), text.to_owned())?;
        for (old, _) in self.history.iter().take(drop_count) {
            txn.delete(key_of(*old)).await?;
        }
        txn.commit().await?;
        self.history.drain(..drop_count);
        self.history.push_back((seq, text.to_owned()));
        self.history_bytes = bytes;
        self.next_seq = seq + 1;
        Ok(())
    }

    fn history_json(&self) -> Result<String> {
        let texts: Vec<&str> = self.history.iter().map(|(_, t)| t.as_str()).collect();
        Ok(serde_json::to_string(&texts)?)
    }
}

impl Party for Chat {
    /// Asleep, the room drops its copy of the history; waking reads it again.
    const HIBERNATE: bool = true;

    async fn on_start(room: Room) -> Result<Self> {
        let options = ListOptions {
            prefix: Some(PREFIX.into()),
            reverse: true,
            limit: Some(HISTORY_MESSAGES_MAX),
            ..ListOptions::default()
        };
        let mut newest_first = room.storage().list(options).await?;
        newest_first.reverse();
        let mut chat = Chat { room, history: VecDeque::new(), history_bytes: 0, next_seq: 0 };
        for (key, text) in newest_first {
            let seq = std::str::from_utf8(&key[PREFIX.len()..])
                .ok()
                .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                .ok_or("corrupt chat history key")?;
            let text = String::from_utf8(text.to_vec())?;
            chat.history_bytes += text.len();
            chat.history.push_back((seq, text));
            chat.next_seq = seq + 1;
        }
        Ok(chat)
    }

    async fn on_connect(&mut self, conn: &Connection, _ctx: &ConnectContext) -> Result<()> {
        conn.send(self.history_json()?)
    }

    async fn on_message(&mut self, message: Message, sender: &Connection) -> Result<()> {
        if let Message::Text(text) = &message {
            self.append(text).await?;
        }
        self.room.broadcast(message, &[sender.id()])
    }

    async fn on_error(&mut self, conn: &Connection, error: &Error) -> Result<()> {
        if conn.is_open() {
            conn.send_json(&serde_json::json!({ "error": error.to_string() }))?;
        }
        Ok(())
    }

    fn memory_bytes(&self) -> usize {
        // The texts, plus each entry's sequence number and string header.
        self.history_bytes + self.history.len() * std::mem::size_of::<(u64, String)>()
    }

    async fn on_request(&mut self, request: Request) -> Result<Response> {
        match request.method.as_str() {
            "GET" | "HEAD" => Ok(Response::json(200, self.history_json()?)),
            "POST" => {
                let text = request.text()?.to_owned();
                match self.append(&text).await {
                    Ok(()) => {}
                    Err(e) => {
                        if let Some(StorageError::ValueTooLarge { .. }) = e.storage_error() {
                            return Ok(Response::text(413, format!("{e}\n")));
                        }
                        return Err(e);
                    }
                }
                self.room.broadcast(text.as_str(), &[])?;
                Ok(Response::json(201, "{\"ok\":true}"))
            }
            _ => {
                Ok(Response::text(405, "use GET or POST\n").with_header("allow", "GET, HEAD, POST"))
            }
        }
    }
}
