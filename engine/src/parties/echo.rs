//! `echo`: every message goes back to its sender unchanged, text as text and binary as
//! binary. The party the Autobahn suite and the echo latency benchmark use.

use crate::{Connection, Message, Party, Result, Room};

/// The echo party.
#[derive(Debug)]
pub struct Echo;

impl Party for Echo {
    async fn on_start(_room: Room) -> Result<Self> {
        Ok(Echo)
    }

    async fn on_message(&mut self, message: Message, sender: &Connection) -> Result<()> {
        sender.send(message)
    }
}
