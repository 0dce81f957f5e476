//! The storage thread: the only code that touches fjall. It takes requests from a bounded
//! crossbeam channel in groups (whatever is waiting, up to [`GROUP_MAX`]) and runs each as
//! it takes it, in arrival order: a read is answered at once; a write is committed as one
//! atomic batch (visible to the reads after it at once) and acknowledged only after the
//! one fsync that makes the whole group durable: group commit (a large archive is the
//! exception: it is written as its own table, fsynced by itself, see
//! `Keyspaces::ingest_archive`). A failed commit or fsync poisons the store: no
//! later write is acknowledged. A panic inside fjall is caught per request: the request
//! fails, a write poisons the store (its batch may be half applied), and the thread goes
//! on answering (reads, and `Poisoned` for writes), so a bad request can never silently
//! end storage for every room; `Store::health` reports the state.

use crate::Counters;
use crate::error::{Error, Result};
use crate::key::{Namespace, successor_of_prefix};
use crate::limits::{self, GROUP_MAX};
use bytes::Bytes;
use fjall::{Database, Keyspace, PersistMode};
use futures_channel::oneshot;
use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// One request and where its answer goes.
pub(crate) struct Request {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Reply>>,
}

/// A scan of one room's keys, in stored-key bounds (the namespace included).
#[derive(Debug)]
pub(crate) struct Scan {
    pub start: Bound<Vec<u8>>,
    pub end: Bound<Vec<u8>>,
    pub reverse: bool,
    pub limit: usize,
    /// Bytes to strip from each key returned (the namespace).
    pub strip: usize,
}

pub(crate) enum Op {
    Get(Vec<Vec<u8>>),
    Scan(Scan),
    /// Puts and deletes of stored keys, one atomic batch; answers how many of `deletes`
    /// existed when `count_deleted`.
    Write {
        puts: Vec<(Vec<u8>, Bytes)>,
        deletes: Vec<Vec<u8>>,
        count_deleted: bool,
    },
    DeleteAll(Namespace),
    SetAlarm(Namespace, Option<u64>),
    GetAlarm(Namespace),
    /// Sets (or with `None` deletes) one of the room's archives: key = namespace ++ kind.
    SetArchive(Vec<u8>, Option<Bytes>),
    GetArchive(Vec<u8>),
    /// Deletes every room's archive of one kind; answers how many there were.
    ClearArchives(u8),
    /// Up to `limit` alarms due at or before `until`: (party, room, time).
    DueAlarms {
        until: u64,
        /// Resume after this queue key (the last one a previous page returned).
        after: Option<Box<[u8]>>,
        limit: usize,
    },
    /// Up to `limit` rooms of `party` with stored keys, in storage order, after `after`.
    Rooms {
        party: String,
        after: Option<String>,
        limit: usize,
    },
    /// How many keys one room stores, and their bytes (keys and values), counting at most
    /// [`crate::limits::USAGE_SCAN_MAX`] keys.
    Usage(Namespace),
    /// Answered once everything before it is durable.
    Sync,
    /// Makes everything durable, closes the database (releasing its folder) and ends the
    /// thread; later calls fail with `Error::Closed`.
    Close,
}

pub(crate) enum Reply {
    Values(Vec<Option<Bytes>>),
    Entries(Vec<(Bytes, Bytes)>),
    Count(usize),
    Alarm(Option<u64>),
    Alarms(Vec<crate::DueAlarm>),
    Rooms(Vec<String>),
    Usage(crate::RoomUsage),
    Done,
}

pub(crate) struct Keyspaces {
    pub db: Database,
    /// Room key-values, keys namespaced per room.
    pub kv: Keyspace,
    /// Alarm time per room: namespace -> u64 BE milliseconds since the Unix epoch.
    pub alarms: Keyspace,
    /// Alarms by time: u64 BE time ++ namespace -> empty; scanned for due alarms.
    pub alarm_queue: Keyspace,
    /// What the engine keeps of a sleeping room (hibernation): namespace ++ kind -> bytes.
    pub archives: Keyspace,
    /// Until when the thread keeps handing freed memory back while idle (for a while after
    /// a large archive's write), and when it last did.
    collect_until: std::cell::Cell<Option<Instant>>,
    collected_at: std::cell::Cell<Instant>,
}

/// How long after a large archive's write the storage thread keeps handing freed memory
/// back while idle, and how often. Measured: without it, 5,000 sleeping connections kept
/// about 200 bytes each more resident (docs/benchmarks.md).
const COLLECT_AFTER_WRITE: Duration = Duration::from_secs(10);
const COLLECT_EVERY: Duration = Duration::from_millis(100);

impl Keyspaces {
    /// Hands memory freed on this thread back to the OS a few times a second for a while
    /// after a large archive's write: the thread may not allocate again for long, and the
    /// allocator purges a thread's free pages only when it does.
    fn collect_while_idle(&self) {
        let Some(until) = self.collect_until.get() else {
            return;
        };
        let now = Instant::now();
        if now >= until {
            self.collect_until.set(None);
        } else if now.duration_since(self.collected_at.get()) >= COLLECT_EVERY {
            crate::release_freed_memory();
            self.collected_at.set(now);
        }
    }

    /// Writes a large archive straight to disk as its own table (fjall's ingestion) instead
    /// of through the journal and the memtable: written and made durable (table, folder
    /// and version fsynced) on this thread, so it never sits in memory and no background
    /// flush builds it on fjall's worker thread, whose freed buffers the allocator would
    /// keep resident while that thread idles (measured: 60 to 650 KB after one sleep of
    /// 5,000 connections). The old chunks past the new ones get tombstones in the same
    /// table, so the replacement is one atomic step, like a batch. `old` are the archive's
    /// chunk keys before (sorted).
    fn ingest_archive(&self, prefix: &[u8], archive: &[u8], old: &[fjall::UserKey]) -> Result<()> {
        let mut ingestion = self.archives.start_ingestion()?;
        for (i, chunk) in archive.chunks(limits::ARCHIVE_CHUNK_BYTES).enumerate() {
            ingestion.write(chunk_key(prefix, i, archive.len())?, chunk)?;
        }
        // Keys sort by chunk index (u32, big-endian), so those past the new chunks come
        // after them, as an ingestion requires.
        for key in old.iter().skip(archive.len().div_ceil(limits::ARCHIVE_CHUNK_BYTES)) {
            ingestion.write_tombstone(key.clone())?;
        }
        ingestion.finish()?;
        Ok(())
    }
}

/// The key of chunk `index` of an archive of `size` bytes.
fn chunk_key(prefix: &[u8], index: usize, size: usize) -> Result<Vec<u8>> {
    let index = u32::try_from(index)
        .map_err(|_| Error::ValueTooLarge { size, max: limits::ARCHIVE_SIZE_MAX })?;
    let mut key = Vec::with_capacity(prefix.len() + 4);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&index.to_be_bytes());
    Ok(key)
}

impl Keyspaces {
    pub fn open(path: &std::path::Path, cache_bytes: u64) -> Result<Keyspaces> {
        // One background worker: with more, fjall's first worker hands every compaction
        // request back to the queue and takes it again until another worker is scheduled,
        // a busy loop that took 40% of a core after each flush (docs/benchmarks.md,
        // hibernation). One worker flushes and compacts in turn; our writes come from one
        // thread anyway.
        let db = Database::builder(path).cache_size(cache_bytes).worker_threads(1).open()?;
        let kv = db.keyspace("kv", fjall::KeyspaceCreateOptions::default)?;
        let alarms = db.keyspace("alarms", fjall::KeyspaceCreateOptions::default)?;
        let alarm_queue = db.keyspace("alarm_queue", fjall::KeyspaceCreateOptions::default)?;
        // Archives are what sleeping rooms keep instead of memory: a small memtable, so
        // they reach disk soon instead of sitting in memory until 64 MiB pile up.
        let archives = db.keyspace("archives", || {
            fjall::KeyspaceCreateOptions::default()
                .max_memtable_size(limits::ARCHIVES_MEMTABLE_BYTES_MAX)
        })?;
        Ok(Keyspaces {
            db,
            kv,
            alarms,
            alarm_queue,
            archives,
            collect_until: Default::default(),
            collected_at: std::cell::Cell::new(Instant::now()),
        })
    }
}

/// Runs until every sender is gone; then makes everything durable and returns.
pub(crate) fn run(
    ks: Keyspaces,
    rx: crossbeam_channel::Receiver<Request>,
    group_max: usize,
    counters: &Counters,
) {
    let group_max = group_max.clamp(1, GROUP_MAX);
    let mut poisoned = false;
    // Writes committed in this group, acknowledged after its fsync.
    let mut pending: Vec<(oneshot::Sender<Result<Reply>>, Reply)> = Vec::new();
    loop {
        let first = if ks.collect_until.get().is_some() {
            match rx.recv_timeout(COLLECT_EVERY) {
                Ok(first) => first,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    ks.collect_while_idle();
                    continue;
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(first) => first,
                Err(_) => break,
            }
        };
        // A group: this request and whatever else is already waiting, up to group_max,
        // each run as it is taken (a read is answered at once, a write is committed and
        // waits for the group's fsync).
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(Request { op, reply }) = next.take() {
            taken += 1;
            counters.requests.fetch_add(1, Ordering::Relaxed);
            if matches!(op, Op::Close) {
                finish(&ks, &mut poisoned, &mut pending, counters);
                // Close the database (releasing its folder) before answering; requests
                // still queued are dropped with the channel and see `Closed`.
                drop(ks);
                let _ = reply.send(Ok(Reply::Done));
                return;
            }
            run_one(&ks, op, reply, &mut poisoned, &mut pending, counters);
            if taken < group_max {
                next = rx.try_recv().ok();
            }
        }
        finish(&ks, &mut poisoned, &mut pending, counters);
        ks.collect_while_idle();
    }
    if !poisoned && let Err(e) = ks.db.persist(PersistMode::SyncAll) {
        tracing::error!(error = %e, "final storage fsync failed");
    }
}

/// Runs one request: a read is answered now; a write is committed (visible to later
/// reads) and queued in `pending` for the group's fsync.
fn run_one(
    ks: &Keyspaces,
    op: Op,
    reply: oneshot::Sender<Result<Reply>>,
    poisoned: &mut bool,
    pending: &mut Vec<(oneshot::Sender<Result<Reply>>, Reply)>,
    counters: &Counters,
) {
    let is_write = matches!(
        op,
        Op::Write { .. }
            | Op::DeleteAll(_)
            | Op::SetAlarm(..)
            | Op::SetArchive(..)
            | Op::ClearArchives(_)
            | Op::Sync
    );
    counters.writes.fetch_add(u64::from(is_write), Ordering::Relaxed);
    if is_write && *poisoned {
        let _ = reply.send(Err(Error::Poisoned));
        return;
    }
    let executed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| execute(ks, op)))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %what, write = is_write, "storage request panicked");
            Err(Error::Io(format!("storage request panicked: {what}")))
        });
    match executed {
        Ok(answer) if is_write => pending.push((reply, answer)),
        Ok(answer) => {
            let _ = reply.send(Ok(answer));
        }
        Err(e) => {
            if is_write {
                // A commit that failed half-way leaves fjall poisoned; so are we.
                tracing::error!(error = %e, "storage write failed; store poisoned");
                *poisoned = true;
                counters.poisoned.store(true, Ordering::Relaxed);
            }
            let _ = reply.send(Err(e));
        }
    }
}

/// Makes the group's writes durable with one fsync, then acknowledges them (or fails them
/// all, poisoning the store, if the fsync fails).
fn finish(
    ks: &Keyspaces,
    poisoned: &mut bool,
    pending: &mut Vec<(oneshot::Sender<Result<Reply>>, Reply)>,
    counters: &Counters,
) {
    if pending.is_empty() {
        return;
    }
    counters.fsyncs.fetch_add(1, Ordering::Relaxed);
    let started = std::time::Instant::now();
    let persisted = ks.db.persist(PersistMode::SyncAll);
    counters.fsync_took(started.elapsed());
    match persisted {
        Ok(()) => {
            for (reply, answer) in pending.drain(..) {
                let _ = reply.send(Ok(answer));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "storage fsync failed; store poisoned");
            *poisoned = true;
            counters.poisoned.store(true, Ordering::Relaxed);
            for (reply, _) in pending.drain(..) {
                let _ = reply.send(Err(Error::Poisoned));
            }
        }
    }
}

fn bytes_of(slice: fjall::Slice) -> Bytes {
    Bytes::copy_from_slice(&slice)
}

fn execute(ks: &Keyspaces, op: Op) -> Result<Reply> {
    match op {
        Op::Get(keys) => {
            let mut values = Vec::with_capacity(keys.len());
            for k in keys {
                values.push(ks.kv.get(&k)?.map(bytes_of));
            }
            Ok(Reply::Values(values))
        }
        Op::Scan(scan) => Ok(Reply::Entries(scan_kv(&ks.kv, &scan)?)),
        Op::Write { puts, deletes, count_deleted } => {
            let mut count = 0;
            if count_deleted {
                for k in &deletes {
                    count += usize::from(ks.kv.contains_key(k)?);
                }
            }
            let mut batch = ks.db.batch();
            for (k, v) in puts {
                batch.insert(&ks.kv, &*k, &*v);
            }
            for k in deletes {
                batch.remove(&ks.kv, &*k);
            }
            batch.commit()?;
            Ok(Reply::Count(count))
        }
        Op::DeleteAll(ns) => {
            let mut batch = ks.db.batch();
            let mut count = 0;
            for guard in ks.kv.range(ns.as_bytes().to_vec()..ns.end()) {
                batch.remove(&ks.kv, guard.key()?);
                count += 1;
            }
            batch.commit()?;
            Ok(Reply::Count(count))
        }
        Op::SetAlarm(ns, time) => {
            let mut batch = ks.db.batch();
            if let Some(old) = ks.alarms.get(ns.as_bytes())? {
                batch.remove(&ks.alarm_queue, queue_key(decode_time(&old), &ns));
            }
            match time {
                Some(t) => {
                    batch.insert(&ks.alarms, ns.as_bytes(), &t.to_be_bytes()[..]);
                    batch.insert(&ks.alarm_queue, queue_key(t, &ns), &[][..]);
                }
                None => batch.remove(&ks.alarms, ns.as_bytes()),
            }
            batch.commit()?;
            Ok(Reply::Done)
        }
        Op::GetAlarm(ns) => {
            Ok(Reply::Alarm(ks.alarms.get(ns.as_bytes())?.map(|v| decode_time(&v))))
        }
        Op::SetArchive(prefix, value) => {
            let old = ks
                .archives
                .prefix(&prefix)
                .map(|guard| guard.key())
                .collect::<std::result::Result<Vec<_>, _>>()?;
            match value {
                Some(archive) if archive.len() >= limits::ARCHIVE_INGEST_BYTES => {
                    ks.ingest_archive(&prefix, &archive, &old)?;
                    ks.collect_until.set(Some(Instant::now() + COLLECT_AFTER_WRITE));
                }
                value => {
                    // One atomic batch: the old chunks go, the new ones come.
                    let mut batch = ks.db.batch();
                    for key in old {
                        batch.remove(&ks.archives, key);
                    }
                    if let Some(archive) = value {
                        for (i, chunk) in archive.chunks(limits::ARCHIVE_CHUNK_BYTES).enumerate() {
                            batch.insert(
                                &ks.archives,
                                chunk_key(&prefix, i, archive.len())?,
                                chunk,
                            );
                        }
                    }
                    batch.commit()?;
                }
            }
            Ok(Reply::Done)
        }
        Op::GetArchive(prefix) => {
            let mut chunks = Vec::new();
            for guard in ks.archives.prefix(&prefix) {
                chunks.push(guard.value()?);
            }
            let whole = match chunks.as_slice() {
                [] => None,
                [one] => Some(bytes_of(one.clone())),
                many => Some(Bytes::from(many.concat())),
            };
            Ok(Reply::Values(vec![whole]))
        }
        Op::ClearArchives(kind) => {
            let mut batch = ks.db.batch();
            let mut count = 0;
            for guard in ks.archives.iter() {
                let key = guard.key()?;
                // Keys are a namespace, one kind byte and a chunk index (keys of stores
                // written before archives were chunked have no index).
                let Some((_, _, used)) = Namespace::decode(&key) else { continue };
                let rest = &key[used..];
                if rest.first() == Some(&kind) {
                    count += usize::from(matches!(rest.len(), 1) || rest[1..] == [0, 0, 0, 0]);
                    batch.remove(&ks.archives, key);
                }
            }
            batch.commit()?;
            Ok(Reply::Count(count))
        }
        Op::DueAlarms { until, after, limit } => {
            let end = successor_of_prefix(&until.to_be_bytes()).unwrap_or_else(|| vec![0xFF; 9]);
            let start = match after {
                Some(k) => Bound::Excluded(k.into_vec()),
                None => Bound::Unbounded,
            };
            let mut due = Vec::new();
            for guard in ks.alarm_queue.range((start, Bound::Excluded(end))).take(limit) {
                let key = guard.key()?;
                // A key that does not decode (never written by this code) is skipped, but
                // still moves the cursor on: it is returned with an empty party.
                let (party, room) = key
                    .get(8..)
                    .and_then(Namespace::decode)
                    .map_or_else(Default::default, |(p, r, _)| (p, r));
                due.push(crate::DueAlarm {
                    party,
                    room,
                    time: decode_time(&key),
                    key: (*key).into(),
                });
            }
            Ok(Reply::Alarms(due))
        }
        Op::Rooms { party, after, limit } => {
            // A skip scan: each room's first key, then a seek past the room's range.
            let Ok(len) = u16::try_from(party.len()) else { return Ok(Reply::Rooms(Vec::new())) };
            let mut prefix = len.to_be_bytes().to_vec();
            prefix.extend_from_slice(party.as_bytes());
            let mut from = match after.and_then(|a| Namespace::new(&party, &a).ok()) {
                Some(ns) => successor_of_prefix(ns.as_bytes()).unwrap_or_default(),
                None => prefix.clone(),
            };
            let mut rooms = Vec::new();
            while rooms.len() < limit && !from.is_empty() {
                let Some(guard) = ks.kv.range(from.clone()..).next() else { break };
                let key = guard.key()?;
                if !key.starts_with(&prefix) {
                    break;
                }
                let Some((_, room, used)) = Namespace::decode(&key) else { break };
                rooms.push(room);
                from = successor_of_prefix(&key[..used]).unwrap_or_default();
            }
            Ok(Reply::Rooms(rooms))
        }
        Op::Usage(ns) => {
            let mut usage = crate::RoomUsage { complete: true, ..crate::RoomUsage::default() };
            for guard in ks.kv.prefix(ns.as_bytes()) {
                if usage.keys >= crate::limits::USAGE_SCAN_MAX {
                    usage.complete = false;
                    break;
                }
                let (key, value) = guard.into_inner()?;
                usage.keys += 1;
                usage.bytes += (key.len() - ns.as_bytes().len() + value.len()) as u64;
            }
            Ok(Reply::Usage(usage))
        }
        Op::Sync => Ok(Reply::Done),
        Op::Close => unreachable!("the group loop handles Close"),
    }
}

fn scan_kv(kv: &Keyspace, scan: &Scan) -> Result<Vec<(Bytes, Bytes)>> {
    let range = kv.range::<Vec<u8>, _>((scan.start.clone(), scan.end.clone()));
    let mut out = Vec::new();
    let mut take = |guard: fjall::Guard| -> Result<bool> {
        if out.len() >= scan.limit {
            return Ok(false);
        }
        let (k, v) = guard.into_inner()?;
        out.push((Bytes::copy_from_slice(&k[scan.strip..]), bytes_of(v)));
        Ok(true)
    };
    if scan.reverse {
        for guard in range.rev() {
            if !take(guard)? {
                break;
            }
        }
    } else {
        for guard in range {
            if !take(guard)? {
                break;
            }
        }
    }
    Ok(out)
}

fn queue_key(time: u64, ns: &Namespace) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + ns.as_bytes().len());
    k.extend_from_slice(&time.to_be_bytes());
    k.extend_from_slice(ns.as_bytes());
    k
}

fn decode_time(bytes: &[u8]) -> u64 {
    bytes.get(..8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_be_bytes)
}
