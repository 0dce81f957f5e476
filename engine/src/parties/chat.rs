//! `main`: a chat room. A new connection first receives the history (a JSON array of
//! strings); each message goes to everyone else and joins the history. `GET` returns the
//! history as JSON; `POST` appends its body as a message and broadcasts it.
//!
//! The history lives in memory, bounded by [`HISTORY_BYTES_MAX`]; it moves to the room's
//! storage when storage lands (issue 5), so it survives restarts and eviction.

use crate::{Connection, Message, Party, Request, Response, Result, Room};
use std::collections::VecDeque;

/// Most history kept per room, in bytes of message text; the oldest messages go first.
pub const HISTORY_BYTES_MAX: usize = 1024 * 1024;

/// The chat party.
#[derive(Debug)]
pub struct Chat {
    room: Room,
    history: VecDeque<String>,
    history_bytes: usize,
}

impl Chat {
    fn append(&mut self, text: &str) {
        self.history.push_back(text.to_owned());
        self.history_bytes += text.len();
        while self.history_bytes > HISTORY_BYTES_MAX {
            let Some(old) = self.history.pop_front() else {
                break;
            };
            self.history_bytes -= old.len();
        }
    }

    fn history_json(&self) -> Result<String> {
        Ok(serde_json::to_string(&self.history)?)
    }
}

impl Party for Chat {
    async fn on_start(room: Room) -> Result<Self> {
        Ok(Chat { room, history: VecDeque::new(), history_bytes: 0 })
    }

    async fn on_connect(&mut self, conn: &Connection, _ctx: &crate::ConnectContext) -> Result<()> {
        conn.send(self.history_json()?)
    }

    async fn on_message(&mut self, message: Message, sender: &Connection) -> Result<()> {
        self.room.broadcast(&message, &[sender.id()]);
        if let Message::Text(text) = &message {
            self.append(text);
        }
        Ok(())
    }

    async fn on_request(&mut self, request: Request) -> Result<Response> {
        match request.method.as_str() {
            "GET" | "HEAD" => Ok(Response::json(200, self.history_json()?)),
            "POST" => {
                let text = request.text()?.to_owned();
                self.room.broadcast(text.as_str(), &[]);
                self.append(&text);
                Ok(Response::json(201, "{\"ok\":true}"))
            }
            _ => {
                Ok(Response::text(405, "use GET or POST\n").with_header("allow", "GET, HEAD, POST"))
            }
        }
    }
}
