//! The public party API: what party authors implement ([`Party`]) and the handles their
//! hooks get ([`Room`], [`Connection`], [`Storage`], and [`Lobby`] in edge gates). The
//! handles reach the engine only through a [`Runtime`](runtime::Runtime) (router, config,
//! clock, store), so the same party code runs on a shard or in the test harness.
//!
//! Depends on route and the base modules; home and edge depend on it, never the reverse.

pub(crate) mod archive;
mod connection;
mod lobby;
mod party;
mod registry;
mod room;
pub(crate) mod runtime;
pub(crate) mod snapshot;
mod storage;

pub use connection::Connection;
pub use lobby::Lobby;
pub use party::{ConnectContext, Gate, Party};
pub use room::Room;
pub(crate) use room::RoomCore;
pub use snapshot::{Snapshot, SnapshotFields};
pub use storage::Storage;
