//! `relay`: every message goes to every other connection of the room; no state. The party
//! the fan-out load test drives. It hibernates: a room quiet for `hibernate_after_ms`
//! keeps only its sockets (docs/benchmarks.md, hibernation).

use crate::{Connection, Message, Party, Result, Room};

/// The relay party.
#[derive(Debug)]
pub struct Relay {
    room: Room,
}

impl Party for Relay {
    const HIBERNATE: bool = true;

    async fn on_start(room: Room) -> Result<Self> {
        Ok(Relay { room })
    }

    async fn on_message(&mut self, message: Message, sender: &Connection) -> Result<()> {
        self.room.broadcast(message, &[sender.id()])
    }
}
