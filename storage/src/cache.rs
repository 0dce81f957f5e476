//! A room's read cache: the values of keys it recently wrote or read (a missing key is
//! cached as missing), least recently used first out, bounded in bytes per room and, across
//! all rooms of a store, by a shared [`Budget`] (a cache that would exceed it gives up its
//! own oldest entries, or does not cache). All of a room's
//! writes go through its [`crate::RoomStorage`], so the cache sees every change; a
//! generation counter keeps a read that raced a write from caching what the write replaced.

use bytes::Bytes;
use lru::LruCache;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The bytes all room caches of one store may hold together.
#[derive(Debug)]
pub(crate) struct Budget {
    used: AtomicUsize,
    max: usize,
}

impl Budget {
    pub fn new(max: usize) -> Arc<Budget> {
        Arc::new(Budget { used: AtomicUsize::new(0), max })
    }

    /// Takes `bytes` if they fit.
    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + bytes <= self.max).then_some(used + bytes)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// Bytes an entry is charged beyond its key and value (map node, LRU links, `Bytes`).
pub const ENTRY_OVERHEAD: usize = 96;

/// The cache of one room.
#[derive(Debug)]
pub(crate) struct Cache {
    map: LruCache<Box<[u8]>, Option<Bytes>>,
    bytes: usize,
    max_bytes: usize,
    budget: Arc<Budget>,
    /// Bumped when a write starts and when it ends: a read that began in another
    /// generation does not fill the cache.
    generation: u64,
}

fn cost(key: &[u8], value: Option<&Bytes>) -> usize {
    key.len() + value.map_or(0, Bytes::len) + ENTRY_OVERHEAD
}

impl Cache {
    pub fn new(max_bytes: usize, budget: Arc<Budget>) -> Cache {
        Cache { map: LruCache::unbounded(), bytes: 0, max_bytes, budget, generation: 0 }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The cached answer for `key`: `Some(None)` means "known missing".
    pub fn lookup(&mut self, key: &[u8]) -> Option<Option<Bytes>> {
        self.map.get(key).cloned()
    }

    /// Caches what a read found, unless a write began or ended since the read started.
    pub fn fill(&mut self, generation: u64, key: &[u8], value: Option<Bytes>) {
        if generation == self.generation {
            self.insert(key, value);
        }
    }

    /// A write of `keys` is starting: forget them (their values are about to change).
    pub fn begin_write<'a>(&mut self, keys: impl IntoIterator<Item = &'a [u8]>) {
        self.generation += 1;
        for k in keys {
            self.remove(k);
        }
    }

    /// A write ended; when it succeeded, its values are now the stored ones.
    pub fn end_write<'a>(
        &mut self,
        written: impl IntoIterator<Item = (&'a [u8], Option<&'a Bytes>)>,
    ) {
        self.generation += 1;
        for (k, v) in written {
            self.insert(k, v.cloned());
        }
    }

    /// Forgets everything (after `delete_all`, or a write whose outcome is unknown).
    pub fn clear(&mut self) {
        self.generation += 1;
        self.map.clear();
        self.budget.give_back(self.bytes);
        self.bytes = 0;
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some(old) = self.map.pop(key) {
            self.forget(cost(key, old.as_ref()));
        }
    }

    fn forget(&mut self, size: usize) {
        self.bytes -= size;
        self.budget.give_back(size);
    }

    fn evict_oldest(&mut self) -> bool {
        match self.map.pop_lru() {
            Some((k, v)) => {
                self.forget(cost(&k, v.as_ref()));
                true
            }
            None => false,
        }
    }

    fn insert(&mut self, key: &[u8], value: Option<Bytes>) {
        self.remove(key);
        let size = cost(key, value.as_ref());
        // An entry bigger than a quarter of the cache would flush most of it for one key.
        if size > self.max_bytes / 4 {
            return;
        }
        while self.bytes + size > self.max_bytes {
            if !self.evict_oldest() {
                break;
            }
        }
        // Over the store-wide budget: make room from this cache's own oldest entries, or
        // do without.
        while !self.budget.take(size) {
            if !self.evict_oldest() {
                return;
            }
        }
        self.bytes += size;
        self.map.put(key.into(), value);
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_entries_leave_first_and_bytes_stay_bounded() {
        let mut c = Cache::new(4 * (ENTRY_OVERHEAD + 2), Budget::new(usize::MAX));
        for k in [b"a1", b"b1", b"c1", b"d1"] {
            c.fill(c.generation(), k, Some(Bytes::new()));
        }
        assert_eq!(c.bytes(), 4 * (ENTRY_OVERHEAD + 2));
        assert!(c.lookup(b"a1").is_some()); // a1 is now the most recent
        c.fill(c.generation(), b"e1", None);
        assert!(c.lookup(b"b1").is_none(), "b1 was least recently used");
        assert_eq!(c.lookup(b"a1"), Some(Some(Bytes::new())));
        assert_eq!(c.lookup(b"e1"), Some(None));
        assert!(c.bytes() <= 4 * (ENTRY_OVERHEAD + 2));
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_cached() {
        let mut c = Cache::new(1 << 20, Budget::new(usize::MAX));
        let before = c.generation();
        c.begin_write([&b"k"[..]]);
        c.end_write([(&b"k"[..], Some(&Bytes::from_static(b"new")))]);
        // The read started before the write and may have seen the old value.
        c.fill(before, b"k", Some(Bytes::from_static(b"old")));
        assert_eq!(c.lookup(b"k"), Some(Some(Bytes::from_static(b"new"))));
        // A read started during the write is refused too.
        c.begin_write([&b"k"[..]]);
        let during = c.generation();
        c.end_write([]);
        c.fill(during, b"k", Some(Bytes::from_static(b"stale")));
        assert_eq!(c.lookup(b"k"), None);
    }

    #[test]
    fn oversized_entries_are_not_cached_and_clear_empties() {
        let mut c = Cache::new(1000, Budget::new(usize::MAX));
        c.fill(c.generation(), b"big", Some(Bytes::from(vec![0; 500])));
        assert_eq!(c.lookup(b"big"), None);
        c.fill(c.generation(), b"small", Some(Bytes::from_static(b"x")));
        c.clear();
        assert_eq!((c.lookup(b"small"), c.bytes()), (None, 0));
    }

    #[test]
    fn caches_share_one_budget_and_give_it_back() {
        let entry = ENTRY_OVERHEAD + 2;
        let budget = Budget::new(3 * entry);
        let mut a = Cache::new(1 << 20, budget.clone());
        let mut b = Cache::new(1 << 20, budget.clone());
        a.fill(a.generation(), b"a1", None);
        a.fill(a.generation(), b"a2", None);
        b.fill(b.generation(), b"b1", None);
        assert_eq!(budget.used(), 3 * entry);
        // b is over budget: it gives up its own oldest entry for the new one.
        b.fill(b.generation(), b"b2", None);
        assert_eq!((b.lookup(b"b1"), b.lookup(b"b2")), (None, Some(None)));
        assert_eq!(a.lookup(b"a1"), Some(None), "a keeps what it has");
        // A cache with nothing of its own to give up does without.
        let mut c = Cache::new(1 << 20, budget.clone());
        c.fill(c.generation(), b"c1", None);
        assert_eq!((c.lookup(b"c1"), budget.used()), (None, 3 * entry));
        drop(a);
        assert_eq!(budget.used(), entry);
        b.clear();
        assert_eq!(budget.used(), 0);
    }
}
