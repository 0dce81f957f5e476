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

mod cache;
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
use std::sync::atomic::{AtomicU64, Ordering};
use thread::{Op, Reply, Request};

/// What hands memory freed on the storage thread back to the OS, if set.
static MEMORY_RELEASE_HOOK: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Sets how memory freed on the storage thread goes back to the OS (the engine passes its
/// allocator's collect call; allocators that purge on their own need none). The storage
/// thread calls it after it released a large archive's memory. The first call wins.
pub fn set_memory_release_hook(hook: fn()) {
    let _ = MEMORY_RELEASE_HOOK.set(hook);
}

fn release_freed_memory() {
    if let Some(hook) = MEMORY_RELEASE_HOOK.get() {
        hook();
    }
}

fn namespace(party: &str, room: &str) -> Result<key::Namespace> {
    key::Namespace::new(party, room)
        .map_err(|size| Error::NameTooLong { size, max: limits::NAMESPACE_SIZE_MAX })
}

/// How to open a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Which size limits apply to keys and values.
    pub profile: Profile,
    /// fjall's block cache, in bytes, shared by all rooms.
    pub cache_bytes: u64,
    /// Each room's cache of recently written and read values, in bytes (0: none). It
    /// lives while the room's [`RoomStorage`] does.
    pub room_cache_bytes: usize,
    /// All room caches together, in bytes: a room over it makes room from its own oldest
    /// entries, or does not cache.
    pub room_cache_total_bytes: usize,
    /// Most requests one group commit (one fsync) covers, 1 to [`limits::GROUP_MAX`]. 1
    /// makes every write pay its own fsync: only for measuring what grouping saves.
    pub group_commit_max: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            profile: Profile::Partykit,
            cache_bytes: 64 * 1024 * 1024,
            room_cache_bytes: limits::ROOM_CACHE_BYTES_DEFAULT,
            room_cache_total_bytes: limits::ROOM_CACHE_TOTAL_BYTES_DEFAULT,
            group_commit_max: limits::GROUP_MAX,
        }
    }
}

/// A store: cheap to clone and to send to any thread; every clone talks to the same
/// storage thread. The thread ends (after a last fsync) when the last clone is dropped.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// An alarm [`Store::due_alarms`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueAlarm {
    pub party: String,
    pub room: String,
    /// Milliseconds since the Unix epoch.
    pub time: u64,
    /// Its key in the time-ordered queue: where the next page starts.
    key: Box<[u8]>,
}

/// What a store has done since it opened (relaxed counters: a snapshot for operators,
/// benchmarks and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Requests that reached the storage thread (reads the room caches answered did not).
    pub requests: u64,
    /// Of those, writes (including alarm changes and syncs).
    pub writes: u64,
    /// fsyncs: with group commit, many writes share one.
    pub fsyncs: u64,
    /// How long they took: counts per bucket of [`FSYNC_BUCKETS_US`] (cumulative is the
    /// reader's business), the last one beyond the largest bound.
    pub fsync_buckets: [u64; FSYNC_BUCKETS_US.len() + 1],
    /// The fsyncs' total time, in ns.
    pub fsync_sum_ns: u64,
    /// Requests waiting for the storage thread now (at most `QUEUE_MAX`).
    pub queued: usize,
}

/// The order [`Store::rooms`] lists rooms in: by length, then bytes (ids are
/// length-prefixed in keys).
pub fn room_order(a: &str, b: &str) -> std::cmp::Ordering {
    (a.len(), a.as_bytes()).cmp(&(b.len(), b.as_bytes()))
}

/// What one room stores ([`Store::usage`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomUsage {
    /// Keys stored.
    pub keys: u64,
    /// Their bytes: keys (without the room's namespace) and values.
    pub bytes: u64,
    /// Whether every key was counted (a room with more than `USAGE_SCAN_MAX` keys is
    /// counted that far).
    pub complete: bool,
}

/// Upper bounds of the fsync-latency buckets, in microseconds.
pub const FSYNC_BUCKETS_US: [u64; 12] =
    [50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 1_000_000];

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub writes: AtomicU64,
    pub fsyncs: AtomicU64,
    pub fsync_buckets: [AtomicU64; FSYNC_BUCKETS_US.len() + 1],
    pub fsync_sum_ns: AtomicU64,
    /// A write or fsync failed: no later write will be acknowledged.
    pub poisoned: std::sync::atomic::AtomicBool,
}

impl Counters {
    /// Records one fsync's duration.
    pub fn fsync_took(&self, took: std::time::Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let slot = FSYNC_BUCKETS_US.iter().position(|b| us <= *b).unwrap_or(FSYNC_BUCKETS_US.len());
        self.fsync_buckets[slot].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.fsync_sum_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

struct Inner {
    tx: crossbeam_channel::Sender<Request>,
    counters: Arc<Counters>,
    cache_budget: Arc<cache::Budget>,
    config: StoreConfig,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("config", &self.inner.config).finish_non_exhaustive()
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
        if !(1..=limits::GROUP_MAX).contains(&config.group_commit_max) {
            return Err(Error::Io(format!(
                "group_commit_max must be 1 to {}, not {}",
                limits::GROUP_MAX,
                config.group_commit_max
            )));
        }
        std::fs::create_dir_all(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        let keyspaces = thread::Keyspaces::open(path, config.cache_bytes).map_err(|e| match e {
            Error::Locked => Error::Io(format!(
                "{} is in use by another store (one server per data folder)",
                path.display()
            )),
            other => other,
        })?;
        let (tx, rx) = crossbeam_channel::bounded(limits::QUEUE_MAX);
        let group_max = config.group_commit_max;
        let counters = Arc::new(Counters::default());
        let thread_counters = counters.clone();
        let handle = std::thread::Builder::new()
            .name("storage".into())
            .spawn(move || thread::run(keyspaces, rx, group_max, &thread_counters))
            .map_err(|e| Error::Io(format!("cannot start the storage thread: {e}")))?;
        Ok(Store {
            inner: Arc::new(Inner {
                tx,
                counters,
                cache_budget: cache::Budget::new(config.room_cache_total_bytes),
                config,
                thread: std::sync::Mutex::new(Some(handle)),
            }),
        })
    }

    pub fn profile(&self) -> Profile {
        self.inner.config.profile
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    pub(crate) fn cache_budget(&self) -> Arc<cache::Budget> {
        self.inner.cache_budget.clone()
    }

    pub fn stats(&self) -> StoreStats {
        let c = &self.inner.counters;
        StoreStats {
            requests: c.requests.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            fsyncs: c.fsyncs.load(Ordering::Relaxed),
            fsync_buckets: std::array::from_fn(|i| c.fsync_buckets[i].load(Ordering::Relaxed)),
            fsync_sum_ns: c.fsync_sum_ns.load(Ordering::Relaxed),
            queued: self.inner.tx.len(),
        }
    }

    /// Whether the store can take writes: `Poisoned` after a failed write or fsync,
    /// `Closed` after [`Store::close`], `Io` if the storage thread has stopped.
    pub fn health(&self) -> Result<()> {
        if self.inner.counters.poisoned.load(Ordering::Relaxed) {
            return Err(Error::Poisoned);
        }
        match self.inner.thread.lock().as_deref() {
            Ok(Some(thread)) if thread.is_finished() => {
                Err(Error::Io("the storage thread has stopped".into()))
            }
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(Error::Closed),
            Err(_) => Err(Error::Io("the storage thread's handle is poisoned".into())),
        }
    }

    /// The storage of one room.
    pub fn room(&self, party: &str, room: &str) -> Result<RoomStorage> {
        let ns = namespace(party, room)?;
        Ok(RoomStorage::new(self.clone(), ns, 0))
    }

    /// The storage of one room, with a read cache of [`StoreConfig::room_cache_bytes`].
    /// The cache sees only the writes made through this handle and its clones: use it
    /// only for the handle that does all of the room's writes (the engine's room). Any
    /// number of handles from [`Store::room`] may read and write beside it, but may then
    /// read stale values through it.
    pub fn room_with_cache(&self, party: &str, room: &str) -> Result<RoomStorage> {
        let ns = namespace(party, room)?;
        Ok(RoomStorage::new(self.clone(), ns, self.inner.config.room_cache_bytes))
    }

    /// Up to `limit` alarms due at or before `until_ms` (milliseconds since the Unix
    /// epoch), earliest first, starting after `after` (the last alarm of the previous
    /// page). The engine pages through this for the alarms of the next few seconds, so no
    /// process holds every alarm in memory.
    pub async fn due_alarms(
        &self,
        until_ms: u64,
        after: Option<&DueAlarm>,
        limit: usize,
    ) -> Result<Vec<DueAlarm>> {
        let after = after.map(|a| a.key.clone());
        match self.call(Op::DueAlarms { until: until_ms, after, limit }).await? {
            Reply::Alarms(a) => Ok(a),
            _ => unreachable!("DueAlarms answers Alarms"),
        }
    }

    /// Up to `limit` rooms of `party` that have stored keys, in storage order (shorter ids
    /// first, then byte order: [`room_order`]), starting after room `after`. A skip scan
    /// on the storage thread: one seek per room returned.
    pub async fn rooms(
        &self,
        party: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        let op = Op::Rooms { party: party.to_owned(), after: after.map(str::to_owned), limit };
        match self.call(op).await? {
            Reply::Rooms(r) => Ok(r),
            _ => unreachable!("Rooms answers Rooms"),
        }
    }

    /// How many keys room `room` of `party` stores, and their bytes.
    pub async fn usage(&self, party: &str, room: &str) -> Result<RoomUsage> {
        let ns = key::Namespace::new(party, room)
            .map_err(|size| Error::KeyTooLarge { size, max: limits::NAMESPACE_SIZE_MAX })?;
        match self.call(Op::Usage(ns)).await? {
            Reply::Usage(u) => Ok(u),
            _ => unreachable!("Usage answers Usage"),
        }
    }

    /// Makes everything durable, closes the database (releasing its folder for another
    /// store) and waits for the storage thread to end. Calls on any clone then fail with
    /// [`Error::Closed`]. Blocks the calling thread: not for reactor threads.
    pub fn close(&self) {
        let (reply, _answer) = futures_channel::oneshot::channel();
        // A full queue drains as the thread works; closing waits its turn.
        let _ = self.inner.tx.send(Request { op: Op::Close, reply });
        if let Some(handle) = self.inner.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = handle.join();
        }
    }

    /// Deletes every room's archive of `kind` (at start, archives that only meant
    /// something to the process that wrote them); how many there were.
    pub async fn clear_archives(&self, kind: u8) -> Result<usize> {
        match self.call(Op::ClearArchives(kind)).await? {
            Reply::Count(n) => Ok(n),
            _ => unreachable!("ClearArchives answers Count"),
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
