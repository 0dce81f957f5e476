//! `ephemeral`: a chat whose messages expire, the example of alarms. Each message lives
//! for the room's TTL (`[env] EPHEMERAL_TTL_MS`, default one minute); the room's alarm is
//! set to the oldest message's expiry, and `on_alarm` deletes what expired, tells everyone
//! (`{"type":"expired","ids":[...]}`) and sets the alarm for the next one. The alarm runs
//! whether or not anyone is connected, after a restart too: the room is loaded for it.
//!
//! Protocol: a connection first gets `{"type":"history","messages":[...]}`; a text message
//! is stored and sent to everyone as `{"type":"message","id","text","expires"}`. `GET`
//! answers the live messages as a JSON array. Keys are `m:<expiry, 16 hex>:<id, 16 hex>`,
//! so "everything expired" is one range scan from the start.

use crate::{
    ConnectContext, Connection, ListOptions, Message, Party, Request, Response, Result, Room,
};
use serde::{Deserialize, Serialize};

/// Message lifetime when `EPHEMERAL_TTL_MS` is not configured.
pub const TTL_MS_DEFAULT: u64 = 60_000;

/// Messages delivered to a new connection (the newest).
pub const HISTORY_MAX: usize = 100;

const PREFIX: &str = "m:";

/// One stored message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Note {
    pub id: u64,
    pub text: String,
    /// Milliseconds since the Unix epoch.
    pub expires: u64,
}

fn key_of(note: &Note) -> String {
    format!("{PREFIX}{:016x}:{:016x}", note.expires, note.id)
}

/// The ephemeral party.
#[derive(Debug)]
pub struct Ephemeral {
    room: Room,
    ttl_ms: u64,
    next_id: u64,
}

impl Ephemeral {
    /// The live messages, oldest first (expired ones not yet deleted are left out).
    async fn live(&self, limit: usize, newest: bool) -> Result<Vec<Note>> {
        let options = ListOptions {
            prefix: Some(PREFIX.into()),
            reverse: newest,
            limit: Some(limit),
            ..ListOptions::default()
        };
        let now = self.room.now_ms();
        let mut notes = Vec::new();
        for (_, value) in self.room.storage().list(options).await? {
            let note: Note = serde_json::from_slice(&value)?;
            if note.expires > now {
                notes.push(note);
            }
        }
        if newest {
            notes.reverse();
        }
        Ok(notes)
    }
}

impl Party for Ephemeral {
    async fn on_start(room: Room) -> Result<Self> {
        let ttl_ms = match room.env("EPHEMERAL_TTL_MS") {
            Some(v) => v.parse().map_err(|e| format!("EPHEMERAL_TTL_MS: {e}"))?,
            None => TTL_MS_DEFAULT,
        };
        let next_id = room.storage().get_json("next_id").await?.unwrap_or(0);
        Ok(Ephemeral { room, ttl_ms, next_id })
    }

    async fn on_connect(&mut self, conn: &Connection, _ctx: &ConnectContext) -> Result<()> {
        let messages = self.live(HISTORY_MAX, true).await?;
        conn.send_json(&serde_json::json!({ "type": "history", "messages": messages }))
    }

    async fn on_message(&mut self, message: Message, _sender: &Connection) -> Result<()> {
        let note = Note {
            id: self.next_id,
            text: message.text()?.to_owned(),
            expires: self.room.now_ms() + self.ttl_ms,
        };
        let storage = self.room.storage();
        let mut txn = storage.transaction().await?;
        txn.put(key_of(&note), serde_json::to_vec(&note)?)?;
        txn.put("next_id", serde_json::to_vec(&(note.id + 1))?)?;
        txn.commit().await?;
        self.next_id = note.id + 1;
        // Messages expire in the order they were sent: an alarm already set is earlier.
        if storage.get_alarm().await?.is_none() {
            storage.set_alarm(note.expires).await?;
        }
        let mut out = serde_json::to_value(&note)?;
        out["type"] = "message".into();
        self.room.broadcast(out.to_string(), &[])
    }

    async fn on_alarm(&mut self) -> Result<()> {
        let storage = self.room.storage();
        let now = self.room.now_ms();
        // Everything up to and including `now`: keys below "m:<now + 1>".
        let end = format!("{PREFIX}{:016x}", now + 1);
        let mut expired = Vec::new();
        loop {
            let options = ListOptions {
                prefix: Some(PREFIX.into()),
                end: Some(end.clone().into()),
                limit: Some(partyline_storage::limits::BATCH_KEYS_MAX),
                ..ListOptions::default()
            };
            let batch = storage.list(options).await?;
            if batch.is_empty() {
                break;
            }
            let keys: Vec<_> = batch.iter().map(|(k, _)| k.clone()).collect();
            storage.delete_many(&keys).await?;
            for (_, value) in batch {
                expired.push(serde_json::from_slice::<Note>(&value)?.id);
            }
        }
        if !expired.is_empty() {
            self.room.broadcast(
                serde_json::json!({ "type": "expired", "ids": expired }).to_string(),
                &[],
            )?;
        }
        // The oldest message left sets the next alarm; read without filtering by the clock,
        // which moved while this ran (a time already past fires at once).
        let oldest =
            ListOptions { prefix: Some(PREFIX.into()), limit: Some(1), ..ListOptions::default() };
        match storage.list(oldest).await?.first() {
            Some((_, value)) => {
                storage.set_alarm(serde_json::from_slice::<Note>(value)?.expires).await?
            }
            None => storage.delete_alarm().await?,
        }
        Ok(())
    }

    async fn on_request(&mut self, request: Request) -> Result<Response> {
        match request.method.as_str() {
            "GET" | "HEAD" => Ok(Response::json(
                200,
                serde_json::to_string(
                    &self.live(partyline_storage::limits::LIST_LIMIT_DEFAULT, true).await?,
                )?,
            )),
            _ => Ok(Response::text(405, "use GET\n").with_header("allow", "GET, HEAD")),
        }
    }
}
