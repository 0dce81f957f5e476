//! `echo`: every message goes back to its sender unchanged, text as text and binary as
//! binary. The party the Autobahn suite and the echo latency benchmark use. An HTTP
//! request is answered with what the room saw of it, as JSON (`room`, `method`, `target`,
//! `client`: the client's address, from the PROXY protocol header behind a balancer), to
//! check what reaches a room through a balancer or another node.

use crate::{Connection, Message, Party, Request, Response, Result, Room};

/// The echo party.
#[derive(Debug)]
pub struct Echo {
    room: Room,
}

impl Party for Echo {
    async fn on_start(room: Room) -> Result<Self> {
        Ok(Echo { room })
    }

    async fn on_request(&mut self, request: Request) -> Result<Response> {
        let seen = serde_json::json!({
            "room": self.room.id(),
            "method": request.method,
            "target": request.target,
            "client": request.client.map(|a| a.to_string()),
        });
        Ok(Response::json(200, seen.to_string()))
    }

    async fn on_message(&mut self, message: Message, sender: &Connection) -> Result<()> {
        sender.send(message)
    }
}
