//! `presence`: who is here and what they last said about themselves, kept in connection
//! state so it survives hibernation. Each connection's state is the last JSON value it
//! sent (at most [`STATE_SIZE_MAX`] bytes; larger or invalid JSON gets `{"error": ...}`
//! back and changes nothing); each value is broadcast to the others as
//! `{"id": <sender id>, "state": <value>}`; a new connection first receives one JSON object
//! mapping every other open connection's id to its state (`null` if none yet); a
//! connection that leaves is announced as `{"id": <id>, "left": true}`.
//!
//! The instance holds nothing: everything is in the connections, which a sleeping room
//! keeps in its archive.

use crate::{CloseCode, ConnectContext, Connection, Error, Message, Party, Result, Room};
use serde_json::{Map, Value, json};

/// Largest state a connection may set, in bytes of JSON.
pub const STATE_SIZE_MAX: usize = 1024;

/// The presence party.
#[derive(Debug)]
pub struct Presence {
    room: Room,
}

impl Party for Presence {
    const HIBERNATE: bool = true;

    async fn on_start(room: Room) -> Result<Self> {
        Ok(Presence { room })
    }

    async fn on_connect(&mut self, conn: &Connection, _ctx: &ConnectContext) -> Result<()> {
        let mut others = Map::new();
        for other in self.room.connections(None) {
            if other.id() != conn.id() {
                let state: Option<Value> = other.state_json()?;
                others.insert(other.id().to_owned(), state.unwrap_or(Value::Null));
            }
        }
        conn.send_json(&Value::Object(others))
    }

    async fn on_message(&mut self, message: Message, sender: &Connection) -> Result<()> {
        let text = message.text()?;
        if text.len() > STATE_SIZE_MAX {
            return Err(Error::client(
                413,
                format!("a state is at most {STATE_SIZE_MAX} bytes; got {}", text.len()),
            ));
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Error::client(400, format!("a state must be JSON: {e}")))?;
        sender.set_state(text.to_owned())?;
        self.room
            .broadcast(json!({ "id": sender.id(), "state": value }).to_string(), &[sender.id()])
    }

    async fn on_error(&mut self, conn: &Connection, error: &Error) -> Result<()> {
        if conn.is_open() {
            conn.send_json(&json!({ "error": error.to_string() }))?;
        }
        Ok(())
    }

    async fn on_close(&mut self, conn: &Connection, _code: CloseCode, _reason: &str) -> Result<()> {
        self.room.broadcast(json!({ "id": conn.id(), "left": true }).to_string(), &[])
    }
}
