//! partyline: a thread-per-core engine for PartyKit-style rooms.
//!
//! A room is a stateful, single-threaded instance of a [`Party`] addressed by
//! `(party, room id)`; every WebSocket and HTTP request with the same address reaches the
//! same instance. The server runs one glommio executor (a *shard*) per core; a socket stays
//! on the shard that accepted it (its edge) while its room runs on the room's home shard,
//! chosen by hashing the address. docs/ARCHITECTURE.md explains the design.
//!
//! A party in a few lines:
//!
//! ```no_run
//! use partyline::{Config, Connection, Message, Party, Result, Room, Server};
//!
//! /// Counts messages and tells everyone the count.
//! struct Counter { room: Room, count: u64 }
//!
//! impl Party for Counter {
//!     async fn on_start(room: Room) -> Result<Self> {
//!         Ok(Counter { room, count: 0 })
//!     }
//!     async fn on_message(&mut self, _message: Message, _sender: &Connection) -> Result<()> {
//!         self.count += 1;
//!         self.room.broadcast(self.count.to_string(), &[])
//!     }
//! }
//!
//! fn main() -> std::io::Result<()> {
//!     Server::new(Config::default()).party::<Counter>("counter").serve()
//! }
//! ```

// Base: no dependency on the layers below the line.
mod cli;
mod clock;
mod config;
mod error;
pub mod limits;
mod log;
mod payload;
pub mod rt;
// Layers, each depending only on those listed before it (docs/ARCHITECTURE.md; checked by
// the tidy test).
mod admin;
mod api;
mod assets;
mod edge;
mod home;
mod link;
pub mod parties;
mod route;
pub mod scaffold;
mod server;
mod shard;
pub mod testing;
mod tls;

pub use api::{
    ConnectContext, Connection, Gate, Lobby, Party, Room, Snapshot, SnapshotFields, Storage,
};
pub use assets::Assets;
pub use cli::ServeArgs;
pub use clock::Clock;
pub use config::{Admin, Cluster, Config, LogFormat, NodeSpec};
pub use edge::{FetchHandler, TrafficStats};
pub use error::{Error, Fault, Result};
pub use home::{PartyCounts, WakeHistogram};
pub use limits::Limits;
pub use link::LinkStats;
pub use partyline_protocol::http::Response;
pub use partyline_protocol::ws::CloseCode;
/// The storage types party code meets: list options, transactions, errors, the store's
/// configuration.
pub use partyline_storage::{
    Error as StorageError, ListOptions, Profile as StorageProfile, StoreConfig, Transaction,
};
pub use payload::{Message, Request};
pub use server::{RunningServer, Server, home_node};
pub use shard::ShardStats;
pub use testing::TestRoom;
