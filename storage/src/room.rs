//! One room's storage: PartyKit's Storage API (`get`, `put`, `delete`, their `_many`
//! forms, `delete_all`, `list`, `transaction`, alarms) over the shared store, confined to
//! the room's namespace. Limits are checked here, before anything reaches the storage
//! thread.

use crate::Store;
use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::key::{Namespace, successor_of_prefix};
use crate::limits::{self, TRANSACTION_WRITES_MAX};
use crate::thread::{Op, Reply, Scan};
use bytes::Bytes;
use futures_util::lock::{Mutex, MutexGuard};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

/// A room's storage. Clones share the room's write lock (which transactions hold) and its
/// read cache, if it has one ([`Store::room_with_cache`]).
#[derive(Debug, Clone)]
pub struct RoomStorage {
    store: Store,
    ns: Arc<Namespace>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Held by an open transaction; every other write of the room waits for it.
    write_lock: Mutex<()>,
    /// Recently written and read values (uncontended: one room lives on one thread).
    cache: std::sync::Mutex<Cache>,
}

/// Which keys `list` returns: PartyKit's options. Bounds are on the room's own keys, in
/// byte order; `end` is exclusive; `start` and `start_after` are exclusive of each other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    pub prefix: Option<Vec<u8>>,
    pub start: Option<Vec<u8>>,
    pub start_after: Option<Vec<u8>>,
    pub end: Option<Vec<u8>>,
    /// At most this many (default [`limits::LIST_LIMIT_DEFAULT`]).
    pub limit: Option<usize>,
    /// Descending key order (the limit then takes the last keys).
    pub reverse: bool,
}

impl RoomStorage {
    pub(crate) fn new(store: Store, ns: Namespace, cache_bytes: usize) -> Self {
        let cache = Cache::new(cache_bytes, store.cache_budget());
        RoomStorage {
            store,
            ns: Arc::new(ns),
            shared: Arc::new(Shared {
                write_lock: Mutex::new(()),
                cache: std::sync::Mutex::new(cache),
            }),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic while holding it cannot leave the cache inconsistent with the disk in a
        // way that matters more than the panic: clear it and go on.
        self.shared.cache.lock().unwrap_or_else(|poisoned| {
            self.shared.cache.clear_poison();
            let mut cache = poisoned.into_inner();
            cache.clear();
            cache
        })
    }

    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        let key = key.as_ref();
        self.store.profile().check_key(key)?;
        let mut values = self.read(&[key]).await?;
        Ok(values.pop().flatten())
    }

    /// Values of up to 128 keys, in the order asked (`None` for a missing key).
    pub async fn get_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Option<Bytes>>> {
        let profile = self.store.profile();
        profile.check_batch(keys.len())?;
        for k in keys {
            profile.check_key(k.as_ref())?;
        }
        self.read(keys).await
    }

    /// Reads `keys` (checked), from the cache where it has them.
    async fn read<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Option<Bytes>>> {
        let mut values = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        let generation = {
            let mut cache = self.cache();
            for (i, k) in keys.iter().enumerate() {
                match cache.lookup(k.as_ref()) {
                    Some(v) => values.push(v),
                    None => {
                        values.push(None);
                        missing.push(i);
                    }
                }
            }
            cache.generation()
        };
        if missing.is_empty() {
            return Ok(values);
        }
        let stored = missing.iter().map(|&i| self.ns.key(keys[i].as_ref())).collect();
        let found = match self.store.call(Op::Get(stored)).await? {
            Reply::Values(v) => v,
            _ => unreachable!("Get answers Values"),
        };
        let mut cache = self.cache();
        for (i, v) in missing.into_iter().zip(found) {
            cache.fill(generation, keys[i].as_ref(), v.clone());
            values[i] = v;
        }
        Ok(values)
    }

    /// Stores `value` under `key`; returns once it is durable.
    pub async fn put(&self, key: impl AsRef<[u8]>, value: impl Into<Bytes>) -> Result<()> {
        let value = value.into();
        self.store.profile().check_entry(key.as_ref(), &value)?;
        let puts = vec![(self.ns.key(key.as_ref()), value)];
        let _lock = self.shared.write_lock.lock().await;
        self.write(puts, Vec::new(), false).await.map(|_| ())
    }

    /// Stores up to 128 entries atomically; returns once they are durable.
    pub async fn put_many<K: AsRef<[u8]>, V: Into<Bytes>>(
        &self,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Result<()> {
        let profile = self.store.profile();
        let mut puts = Vec::new();
        for (k, v) in entries {
            let v = v.into();
            profile.check_entry(k.as_ref(), &v)?;
            puts.push((self.ns.key(k.as_ref()), v));
            profile.check_batch(puts.len())?;
        }
        let _lock = self.shared.write_lock.lock().await;
        self.write(puts, Vec::new(), false).await.map(|_| ())
    }

    /// Deletes `key`; whether it existed.
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        self.store.profile().check_key(key.as_ref())?;
        let deletes = vec![self.ns.key(key.as_ref())];
        let _lock = self.shared.write_lock.lock().await;
        self.write(Vec::new(), deletes, true).await.map(|n| n > 0)
    }

    /// Deletes up to 128 keys atomically; how many existed.
    pub async fn delete_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<usize> {
        let profile = self.store.profile();
        profile.check_batch(keys.len())?;
        let mut deletes = Vec::with_capacity(keys.len());
        for k in keys {
            profile.check_key(k.as_ref())?;
            deletes.push(self.ns.key(k.as_ref()));
        }
        let _lock = self.shared.write_lock.lock().await;
        self.write(Vec::new(), deletes, true).await
    }

    /// Deletes every key of the room (not its alarm); how many there were.
    pub async fn delete_all(&self) -> Result<usize> {
        let _lock = self.shared.write_lock.lock().await;
        self.cache().clear();
        let result = self.store.call(Op::DeleteAll((*self.ns).clone())).await;
        self.cache().clear();
        match result? {
            Reply::Count(n) => Ok(n),
            _ => unreachable!("DeleteAll answers Count"),
        }
    }

    /// Writes stored keys as one atomic batch, keeping the cache in step. The caller holds
    /// the write lock.
    async fn write(
        &self,
        puts: Vec<(Vec<u8>, Bytes)>,
        deletes: Vec<Vec<u8>>,
        count_deleted: bool,
    ) -> Result<usize> {
        let strip = self.ns.as_bytes().len();
        let written: Vec<(Vec<u8>, Option<Bytes>)> = puts
            .iter()
            .map(|(k, v)| (k[strip..].to_vec(), Some(v.clone())))
            .chain(deletes.iter().map(|k| (k[strip..].to_vec(), None)))
            .collect();
        self.cache().begin_write(written.iter().map(|(k, _)| k.as_slice()));
        let result = self.store.call(Op::Write { puts, deletes, count_deleted }).await;
        let mut cache = self.cache();
        match result {
            Ok(Reply::Count(n)) => {
                cache.end_write(written.iter().map(|(k, v)| (k.as_slice(), v.as_ref())));
                Ok(n)
            }
            Ok(_) => unreachable!("Write answers Count"),
            Err(e) => {
                cache.end_write(std::iter::empty());
                Err(e)
            }
        }
    }

    /// Entries in key order (or reverse), as `options` select.
    pub async fn list(&self, options: ListOptions) -> Result<Vec<(Bytes, Bytes)>> {
        let limit = options.limit.unwrap_or(limits::LIST_LIMIT_DEFAULT);
        self.scan(&options, limit).await
    }

    async fn scan(&self, o: &ListOptions, limit: usize) -> Result<Vec<(Bytes, Bytes)>> {
        let profile = self.store.profile();
        for k in [&o.prefix, &o.start, &o.start_after, &o.end].into_iter().flatten() {
            profile.check_key(k)?;
        }
        let ns = &self.ns;
        // The room's own range, narrowed by the prefix, then by start/end.
        let (mut lo, mut hi) = (Bound::Included(ns.key(b"")), Bound::Excluded(ns.end()));
        if let Some(p) = &o.prefix {
            lo = Bound::Included(ns.key(p));
            hi = match successor_of_prefix(p) {
                Some(s) => Bound::Excluded(ns.key(&s)),
                None => hi,
            };
        }
        if let Some(s) = &o.start {
            lo = max_lower(lo, Bound::Included(ns.key(s)));
        }
        if let Some(s) = &o.start_after {
            lo = max_lower(lo, Bound::Excluded(ns.key(s)));
        }
        if let Some(e) = &o.end {
            hi = min_upper(hi, Bound::Excluded(ns.key(e)));
        }
        let scan =
            Scan { start: lo, end: hi, reverse: o.reverse, limit, strip: ns.as_bytes().len() };
        if scan_is_empty(&scan) {
            return Ok(Vec::new());
        }
        match self.store.call(Op::Scan(scan)).await? {
            Reply::Entries(e) => Ok(e),
            _ => unreachable!("Scan answers Entries"),
        }
    }

    /// Starts a transaction: reads see its own writes, its writes commit as one atomic,
    /// durable batch, and the room's other writes wait until it ends (isolation).
    /// Dropping it without [`Transaction::commit`] rolls it back.
    pub async fn transaction(&self) -> Transaction<'_> {
        Transaction {
            room: self,
            _lock: self.shared.write_lock.lock().await,
            writes: BTreeMap::new(),
        }
    }

    /// The room's alarm time (milliseconds since the Unix epoch), if one is set.
    pub async fn get_alarm(&self) -> Result<Option<u64>> {
        match self.store.call(Op::GetAlarm((*self.ns).clone())).await? {
            Reply::Alarm(t) => Ok(t),
            _ => unreachable!("GetAlarm answers Alarm"),
        }
    }

    /// Sets the room's one alarm (replacing any other); durable when this returns.
    pub async fn set_alarm(&self, time_ms: u64) -> Result<()> {
        self.store.call(Op::SetAlarm((*self.ns).clone(), Some(time_ms))).await.map(|_| ())
    }

    pub async fn delete_alarm(&self) -> Result<()> {
        self.store.call(Op::SetAlarm((*self.ns).clone(), None)).await.map(|_| ())
    }

    /// Waits until every write made so far is durable.
    pub async fn sync(&self) -> Result<()> {
        self.store.sync().await
    }

    /// Empties the room's read cache, giving its memory back (the room sleeps).
    pub fn clear_cache(&self) {
        self.cache().clear();
    }

    /// One of the room's archives: what the engine keeps of the room while it sleeps
    /// (hibernation), by `kind`. Not visible to `get`, `list` or `delete_all`.
    pub async fn get_archive(&self, kind: u8) -> Result<Option<Bytes>> {
        match self.store.call(Op::GetArchive(self.ns.key(&[kind]))).await? {
            Reply::Values(mut v) => Ok(v.pop().flatten()),
            _ => unreachable!("GetArchive answers Values"),
        }
    }

    /// Stores an archive (at most [`limits::ARCHIVE_SIZE_MAX`] bytes); durable when this
    /// returns.
    pub async fn put_archive(&self, kind: u8, bytes: Bytes) -> Result<()> {
        if bytes.len() > limits::ARCHIVE_SIZE_MAX {
            return Err(Error::ValueTooLarge { size: bytes.len(), max: limits::ARCHIVE_SIZE_MAX });
        }
        let op = Op::SetArchive(self.ns.key(&[kind]), Some(bytes));
        self.store.call(op).await.map(|_| ())
    }

    /// Deletes an archive; durable when this returns.
    pub async fn delete_archive(&self, kind: u8) -> Result<()> {
        self.store.call(Op::SetArchive(self.ns.key(&[kind]), None)).await.map(|_| ())
    }
}

/// The tighter of two lower bounds (the scan's bounds are never `Unbounded`).
fn max_lower(a: Bound<Vec<u8>>, b: Bound<Vec<u8>>) -> Bound<Vec<u8>> {
    let rank = |x: &Bound<Vec<u8>>| match x {
        Bound::Included(k) => Some((k.clone(), 0)),
        Bound::Excluded(k) => Some((k.clone(), 1)),
        Bound::Unbounded => None,
    };
    if rank(&b) > rank(&a) { b } else { a }
}

/// The tighter of two upper bounds (the scan's bounds are never `Unbounded`).
fn min_upper(a: Bound<Vec<u8>>, b: Bound<Vec<u8>>) -> Bound<Vec<u8>> {
    let rank = |x: &Bound<Vec<u8>>| match x {
        Bound::Excluded(k) => (0, k.clone(), 0),
        Bound::Included(k) => (0, k.clone(), 1),
        Bound::Unbounded => (1, Vec::new(), 0),
    };
    if rank(&b) < rank(&a) { b } else { a }
}

/// Whether no key can lie between the bounds (fjall panics on an inverted range).
fn scan_is_empty(scan: &Scan) -> bool {
    match (&scan.start, &scan.end) {
        (Bound::Included(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
        (Bound::Included(a), Bound::Included(b)) => a > b,
        _ => false,
    }
}

/// An open transaction (see [`RoomStorage::transaction`]).
#[derive(Debug)]
pub struct Transaction<'a> {
    room: &'a RoomStorage,
    _lock: MutexGuard<'a, ()>,
    /// Buffered writes by the room's key: `Some` = put, `None` = delete.
    writes: BTreeMap<Vec<u8>, Option<Bytes>>,
}

impl Transaction<'_> {
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        match self.writes.get(key.as_ref()) {
            Some(buffered) => Ok(buffered.clone()),
            None => {
                let key = key.as_ref();
                self.room.store.profile().check_key(key)?;
                Ok(self.room.read(&[key]).await?.pop().flatten())
            }
        }
    }

    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl Into<Bytes>) -> Result<()> {
        let value = value.into();
        self.room.store.profile().check_entry(key.as_ref(), &value)?;
        self.buffer(key.as_ref().to_vec(), Some(value))
    }

    /// Deletes `key`; whether it existed (as this transaction sees it).
    pub async fn delete(&mut self, key: impl AsRef<[u8]>) -> Result<bool> {
        let existed = self.get(key.as_ref()).await?.is_some();
        self.buffer(key.as_ref().to_vec(), None)?;
        Ok(existed)
    }

    fn buffer(&mut self, key: Vec<u8>, value: Option<Bytes>) -> Result<()> {
        if self.writes.len() >= TRANSACTION_WRITES_MAX && !self.writes.contains_key(&key) {
            return Err(Error::TransactionTooLarge { max: TRANSACTION_WRITES_MAX });
        }
        self.writes.insert(key, value);
        Ok(())
    }

    /// `list` as this transaction sees it: stored entries with its own writes applied.
    pub async fn list(&self, options: ListOptions) -> Result<Vec<(Bytes, Bytes)>> {
        let limit = options.limit.unwrap_or(limits::LIST_LIMIT_DEFAULT);
        let in_range = |k: &[u8]| {
            options.prefix.as_deref().is_none_or(|p| k.starts_with(p))
                && options.start.as_deref().is_none_or(|s| k >= s)
                && options.start_after.as_deref().is_none_or(|s| k > s)
                && options.end.as_deref().is_none_or(|e| k < e)
        };
        let deleted = self.writes.iter().filter(|(k, v)| v.is_none() && in_range(k)).count();
        // Buffered deletes can hide up to `deleted` stored entries: fetch that many more.
        let stored = self.room.scan(&options, limit.saturating_add(deleted)).await?;
        let mut merged: BTreeMap<Bytes, Bytes> =
            stored.into_iter().filter(|(k, _)| !self.writes.contains_key(&k[..])).collect();
        for (k, v) in &self.writes {
            if let Some(v) = v
                && in_range(k)
            {
                merged.insert(Bytes::copy_from_slice(k), v.clone());
            }
        }
        let mut out: Vec<_> = merged.into_iter().collect();
        if options.reverse {
            out.reverse();
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Drops every buffered write (the transaction stays open).
    pub fn rollback(&mut self) {
        self.writes.clear();
    }

    /// Commits the buffered writes as one atomic batch; returns once it is durable.
    pub async fn commit(self) -> Result<()> {
        if self.writes.is_empty() {
            return Ok(());
        }
        let (mut puts, mut deletes) = (Vec::new(), Vec::new());
        for (k, v) in self.writes {
            match v {
                Some(v) => puts.push((self.room.ns.key(&k), v)),
                None => deletes.push(self.room.ns.key(&k)),
            }
        }
        self.room.write(puts, deletes, false).await.map(|_| ())
    }
}
