//! [`Lobby`]: what an edge gate (`on_before_connect`, `on_before_request`) can reach: the
//! room it guards (by name, not its state), the server's `env`, the clock, and any room's
//! `on_request` through `fetch`, like PartyKit's `lobby`.

use super::runtime::Runtime;
use crate::error::Result;
use crate::payload::Request;
use partyline_protocol::http::Response;
use std::rc::Rc;

/// The edge's view of the server, for a gate.
#[derive(Clone)]
pub struct Lobby {
    runtime: Rc<Runtime>,
    party: Rc<str>,
    room: Rc<str>,
}

impl std::fmt::Debug for Lobby {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lobby").field("party", &self.party).field("id", &self.room).finish()
    }
}

impl Lobby {
    pub(crate) fn new(runtime: Rc<Runtime>, party: &str, room: &str) -> Lobby {
        Lobby { runtime, party: party.into(), room: room.into() }
    }

    /// The id of the room the request is for, exactly as sent.
    pub fn id(&self) -> &str {
        &self.room
    }

    /// The party name.
    pub fn name(&self) -> &str {
        &self.party
    }

    /// A variable from the server configuration's `[env]` table.
    pub fn env(&self, key: &str) -> Option<&str> {
        self.runtime.env(key)
    }

    /// Milliseconds since the Unix epoch on the server's clock.
    pub fn now_ms(&self) -> u64 {
        self.runtime.clock.now_ms()
    }

    /// Sends an HTTP request straight to a room's `on_request` (on any shard), bypassing
    /// its `on_before_request`; waits at most `room_answer_timeout_ms` for the answer.
    pub async fn fetch(&self, party: &str, room: &str, request: Request) -> Result<Response> {
        self.runtime.fetch(party, room, request).await
    }
}
