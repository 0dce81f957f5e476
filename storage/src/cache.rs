//! A room's read cache: the values of keys it recently wrote or read (a missing key is
//! cached as missing), least recently used first out, bounded in bytes. All of a room's
//! writes go through its [`crate::RoomStorage`], so the cache sees every change; a
//! generation counter keeps a read that raced a write from caching what the write replaced.

use bytes::Bytes;
use lru::LruCache;

/// Bytes an entry is charged beyond its key and value (map node, LRU links, `Bytes`).
pub const ENTRY_OVERHEAD: usize = 96;

/// The cache of one room.
#[derive(Debug)]
pub(crate) struct Cache {
    map: LruCache<Box<[u8]>, Option<Bytes>>,
    bytes: usize,
    max_bytes: usize,
    /// Bumped when a write starts and when it ends: a read that began in another
    /// generation does not fill the cache.
    generation: u64,
}

fn cost(key: &[u8], value: Option<&Bytes>) -> usize {
    key.len() + value.map_or(0, Bytes::len) + ENTRY_OVERHEAD
}

impl Cache {
    pub fn new(max_bytes: usize) -> Cache {
        Cache { map: LruCache::unbounded(), bytes: 0, max_bytes, generation: 0 }
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
        self.bytes = 0;
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some(old) = self.map.pop(key) {
            self.bytes -= cost(key, old.as_ref());
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
            match self.map.pop_lru() {
                Some((k, v)) => self.bytes -= cost(&k, v.as_ref()),
                None => break,
            }
        }
        self.bytes += size;
        self.map.put(key.into(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_entries_leave_first_and_bytes_stay_bounded() {
        let mut c = Cache::new(4 * (ENTRY_OVERHEAD + 2));
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
        let mut c = Cache::new(1 << 20);
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
        let mut c = Cache::new(1000);
        c.fill(c.generation(), b"big", Some(Bytes::from(vec![0; 500])));
        assert_eq!(c.lookup(b"big"), None);
        c.fill(c.generation(), b"small", Some(Bytes::from_static(b"x")));
        c.clear();
        assert_eq!((c.lookup(b"small"), c.bytes()), (None, 0));
    }
}
