//! Per-room transactional key-value storage and alarms, durable on local disk, with the
//! semantics PartyKit's `room.storage` (a Durable Object's storage) gives: one fjall
//! database per process, each room's keys in its own namespace, every acknowledged write
//! fsynced (group commit on one storage thread), and reactor threads never touching fjall.
//!
//! ```no_run
//! # async fn demo() -> partyline_storage::Result<()> {
//! use partyline_storage::{ListOptions, Store, StoreConfig};
//! let store = Store::open(std::path::Path::new(".partyline/storage"), StoreConfig::default())?;
//! let room = store.room("main", "lobby")?;
//! room.put("greeting", "hello").await?;
//! assert_eq!(room.get("greeting").await?.as_deref(), Some(&b"hello"[..]));
//! let mut txn = room.transaction().await;
//! let n = txn.get("count").await?.map_or(0, |v| v[0]);
//! txn.put("count", vec![n + 1])?;
//! txn.commit().await?;
//! let all = room.list(ListOptions::default()).await?;
//! # let _ = all; Ok(()) }
//! ```

mod error;
pub mod key;
pub mod limits;
mod room;
mod thread;

pub use error::{Error, Result};
pub use limits::Profile;
pub use room::{ListOptions, RoomStorage, Transaction};

use std::path::Path;
use std::sync::Arc;
use thread::{Op, Reply, Request};

/// How to open a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Which size limits apply to keys and values.
    pub profile: Profile,
    /// fjall's block cache, in bytes.
    pub cache_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { profile: Profile::Partykit, cache_bytes: 64 * 1024 * 1024 }
    }
}

/// A store: cheap to clone and to send to any thread; every clone talks to the same
/// storage thread. The thread ends (after a last fsync) when the last clone is dropped.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    tx: crossbeam_channel::Sender<Request>,
    profile: Profile,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("profile", &self.inner.profile).finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The channel closes when `tx` drops right after this; wait for the final fsync.
        let (dead_tx, _) = crossbeam_channel::bounded(1);
        drop(std::mem::replace(&mut self.tx, dead_tx));
        if let Some(handle) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = handle.join();
        }
    }
}

impl Store {
    /// Opens (creating or recovering) the database in `path` and starts its thread.
    pub fn open(path: &Path, config: StoreConfig) -> Result<Store> {
        std::fs::create_dir_all(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        let keyspaces = thread::Keyspaces::open(path, config.cache_bytes)?;
        let (tx, rx) = crossbeam_channel::bounded(limits::QUEUE_MAX);
        let handle = std::thread::Builder::new()
            .name("storage".into())
            .spawn(move || thread::run(keyspaces, rx))
            .map_err(|e| Error::Io(format!("cannot start the storage thread: {e}")))?;
        Ok(Store {
            inner: Arc::new(Inner {
                tx,
                profile: config.profile,
                thread: std::sync::Mutex::new(Some(handle)),
            }),
        })
    }

    pub fn profile(&self) -> Profile {
        self.inner.profile
    }

    /// The storage of one room.
    pub fn room(&self, party: &str, room: &str) -> Result<RoomStorage> {
        let ns = key::Namespace::new(party, room).ok_or(Error::NameTooLong)?;
        Ok(RoomStorage::new(self.clone(), ns))
    }

    /// Alarms due at or before `until_ms` (milliseconds since the Unix epoch), earliest
    /// first: (party, room, time). At start, the engine asks for all of them.
    pub async fn due_alarms(&self, until_ms: u64) -> Result<Vec<(String, String, u64)>> {
        match self.call(Op::DueAlarms(until_ms)).await? {
            Reply::Alarms(a) => Ok(a),
            _ => unreachable!("DueAlarms answers Alarms"),
        }
    }

    /// Waits until everything written before it is durable.
    pub async fn sync(&self) -> Result<()> {
        self.call(Op::Sync).await.map(|_| ())
    }

    /// Sends `op` to the storage thread and waits for its answer. Never blocks the calling
    /// thread (it may be a reactor): with [`limits::QUEUE_MAX`] requests already waiting,
    /// the call fails at once with [`Error::Busy`] and writes nothing.
    pub(crate) async fn call(&self, op: Op) -> Result<Reply> {
        let (reply, answer) = futures_channel::oneshot::channel();
        match self.inner.tx.try_send(Request { op, reply }) {
            Ok(()) => {}
            Err(crossbeam_channel::TrySendError::Full(_)) => return Err(Error::Busy),
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => return Err(Error::Closed),
        }
        answer.await.map_err(|_| Error::Closed)?
    }
}
