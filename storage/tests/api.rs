//! Every storage call and limit, against a real store in a temporary folder: exactly at
//! and one past each limit, namespacing between rooms, list bounds, transactions (own
//! writes, rollback, atomic commit, isolation), alarms, and reopening.

use futures_lite::future::block_on;
use partyline_storage::limits::{
    BATCH_KEYS_MAX, KEY_SIZE_MAX, LARGE_ENTRY_SIZE_MAX, VALUE_SIZE_MAX,
};
use partyline_storage::{Error, ListOptions, Profile, Store, StoreConfig};

fn store(dir: &tempfile::TempDir, profile: Profile) -> Store {
    Store::open(dir.path(), StoreConfig { profile, ..StoreConfig::default() }).expect("opens")
}

fn keys(entries: &[(bytes::Bytes, bytes::Bytes)]) -> Vec<String> {
    entries.iter().map(|(k, _)| String::from_utf8_lossy(k).into_owned()).collect()
}

#[test]
fn get_put_delete_and_their_many_forms() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, Profile::Partykit);
    let r = s.room("main", "a").unwrap();
    block_on(async {
        assert_eq!(r.get("k").await.unwrap(), None);
        r.put("k", "v").await.unwrap();
        assert_eq!(r.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
        r.put("k", "w").await.unwrap();
        assert_eq!(r.get("k").await.unwrap().as_deref(), Some(&b"w"[..]));
        assert!(r.delete("k").await.unwrap());
        assert!(!r.delete("k").await.unwrap());
        assert_eq!(r.get("k").await.unwrap(), None);

        r.put_many([("a", "1"), ("b", "2"), ("c", "3")]).await.unwrap();
        let got = r.get_many(&["c", "x", "a"]).await.unwrap();
        assert_eq!(got, vec![Some("3".into()), None, Some("1".into())]);
        assert_eq!(r.delete_many(&["a", "x", "c"]).await.unwrap(), 2);
        assert_eq!(r.get_many(&["a", "b", "c"]).await.unwrap(), vec![None, Some("2".into()), None]);
        // Empty values are values.
        r.put("empty", "").await.unwrap();
        assert_eq!(r.get("empty").await.unwrap().as_deref(), Some(&b""[..]));
    });
}

#[test]
fn rooms_never_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, Profile::Partykit);
    // Names chosen so a naive "party/room/key" layout would collide.
    let r1 = s.room("p", "r").unwrap();
    let r2 = s.room("p", "r/x").unwrap();
    let r3 = s.room("p/r", "x").unwrap();
    block_on(async {
        r1.put("x/k", "1").await.unwrap();
        r2.put("k", "2").await.unwrap();
        r3.put("k", "3").await.unwrap();
        assert_eq!(keys(&r1.list(ListOptions::default()).await.unwrap()), ["x/k"]);
        assert_eq!(keys(&r2.list(ListOptions::default()).await.unwrap()), ["k"]);
        assert_eq!(r1.delete_all().await.unwrap(), 1);
        assert_eq!(r2.get("k").await.unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(r3.get("k").await.unwrap().as_deref(), Some(&b"3"[..]));
    });
}

#[test]
fn limits_hold_exactly_at_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, Profile::Partykit);
    let r = s.room("main", "limits").unwrap();
    let key_ok = vec![b'k'; KEY_SIZE_MAX];
    let key_big = vec![b'k'; KEY_SIZE_MAX + 1];
    block_on(async {
        r.put(&key_ok, "v").await.unwrap();
        assert_eq!(
            r.put(&key_big, "v").await,
            Err(Error::KeyTooLarge { size: KEY_SIZE_MAX + 1, max: KEY_SIZE_MAX })
        );
        assert!(matches!(r.get(&key_big).await, Err(Error::KeyTooLarge { .. })));
        assert!(matches!(r.delete(&key_big).await, Err(Error::KeyTooLarge { .. })));
        r.put("v", vec![0u8; VALUE_SIZE_MAX]).await.unwrap();
        assert_eq!(
            r.put("v", vec![0u8; VALUE_SIZE_MAX + 1]).await,
            Err(Error::ValueTooLarge { size: VALUE_SIZE_MAX + 1, max: VALUE_SIZE_MAX })
        );
        // The refused write changed nothing.
        assert_eq!(r.get("v").await.unwrap().map(|v| v.len()), Some(VALUE_SIZE_MAX));

        let names: Vec<String> = (0..=BATCH_KEYS_MAX).map(|i| format!("b{i:03}")).collect();
        r.put_many(names[..BATCH_KEYS_MAX].iter().map(|n| (n, "x"))).await.unwrap();
        assert_eq!(
            r.put_many(names.iter().map(|n| (n, "y"))).await,
            Err(Error::BatchTooLarge { count: BATCH_KEYS_MAX + 1, max: BATCH_KEYS_MAX })
        );
        assert_eq!(r.get(&names[0]).await.unwrap().as_deref(), Some(&b"x"[..]), "nothing written");
        assert_eq!(r.get_many(&names[..BATCH_KEYS_MAX]).await.unwrap().len(), BATCH_KEYS_MAX);
        assert!(matches!(r.get_many(&names).await, Err(Error::BatchTooLarge { .. })));
        assert!(matches!(r.delete_many(&names).await, Err(Error::BatchTooLarge { .. })));
        assert_eq!(r.delete_many(&names[..BATCH_KEYS_MAX]).await.unwrap(), BATCH_KEYS_MAX);
    });
}

#[test]
fn the_large_profile_allows_two_megabytes_per_entry() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, Profile::Large);
    let r = s.room("main", "large").unwrap();
    block_on(async {
        let at_limit = vec![7u8; LARGE_ENTRY_SIZE_MAX - 3];
        r.put("big", at_limit.clone()).await.unwrap();
        assert_eq!(r.get("big").await.unwrap().as_deref(), Some(&at_limit[..]));
        assert!(matches!(
            r.put("big", vec![7u8; LARGE_ENTRY_SIZE_MAX - 2]).await,
            Err(Error::ValueTooLarge { .. })
        ));
        assert!(matches!(
            r.put(vec![b'k'; KEY_SIZE_MAX + 1], "v").await,
            Err(Error::KeyTooLarge { .. })
        ));
    });
}

#[test]
fn list_honours_prefix_bounds_limit_and_reverse() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, Profile::Partykit);
    let r = s.room("main", "list").unwrap();
    block_on(async {
        r.put_many(["a", "b1", "b2", "b3", "c", "d"].map(|k| (k, "v"))).await.unwrap();
        let list = |o: ListOptions| {
            let r = r.clone();
            async move { keys(&r.list(o).await.unwrap()) }
        };
        assert_eq!(list(ListOptions::default()).await, ["a", "b1", "b2", "b3", "c", "d"]);
        let p = |s: &str| Some(s.as_bytes().to_vec());
        assert_eq!(
            list(ListOptions { prefix: p("b"), ..Default::default() }).await,
            ["b1", "b2", "b3"]
        );
        assert_eq!(
            list(ListOptions { start: p("b2"), ..Default::default() }).await,
            ["b2", "b3", "c", "d"]
        );
        assert_eq!(
            list(ListOptions { start_after: p("b2"), ..Default::default() }).await,
            ["b3", "c", "d"]
        );
        assert_eq!(list(ListOptions { end: p("b2"), ..Default::default() }).await, ["a", "b1"]);
        assert_eq!(list(ListOptions { limit: Some(2), ..Default::default() }).await, ["a", "b1"]);
        assert_eq!(
            list(ListOptions { reverse: true, limit: Some(2), ..Default::default() }).await,
            ["d", "c"]
        );
        assert_eq!(
            list(ListOptions {
                prefix: p("b"),
                start: p("b2"),
                reverse: true,
                ..Default::default()
            })
            .await,
            ["b3", "b2"]
        );
        // Inverted or empty ranges are empty, not errors.
        assert!(
            list(ListOptions { start: p("d"), end: p("a"), ..Default::default() }).await.is_empty()
        );
        assert!(list(ListOptions { limit: Some(0), ..Default::default() }).await.is_empty());
    });
}

#[test]
fn transactions_read_their_writes_roll_back_and_commit_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, Profile::Partykit);
    let r = s.room("main", "txn").unwrap();
    block_on(async {
        r.put_many([("a", "1"), ("b", "2"), ("c", "3")]).await.unwrap();
        let mut t = r.transaction().await;
        t.put("a", "10").unwrap();
        assert!(t.delete("b").await.unwrap());
        t.put("d", "4").unwrap();
        assert_eq!(t.get("a").await.unwrap().as_deref(), Some(&b"10"[..]));
        assert_eq!(t.get("b").await.unwrap(), None);
        let seen = t.list(ListOptions { limit: Some(2), ..Default::default() }).await.unwrap();
        assert_eq!(keys(&seen), ["a", "c"]);
        // Not visible outside before the commit.
        assert_eq!(r.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
        t.commit().await.unwrap();
        assert_eq!(keys(&r.list(ListOptions::default()).await.unwrap()), ["a", "c", "d"]);

        let mut t = r.transaction().await;
        t.put("a", "lost").unwrap();
        t.rollback();
        t.commit().await.unwrap();
        let mut t = r.transaction().await;
        t.put("a", "lost too").unwrap();
        drop(t); // dropped without commit: rolled back
        assert_eq!(r.get("a").await.unwrap().as_deref(), Some(&b"10"[..]));
    });
}

#[test]
fn other_writes_of_the_room_wait_for_an_open_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, Profile::Partykit);
    let r = s.room("main", "iso").unwrap();
    block_on(async {
        r.put("n", "0").await.unwrap();
        let mut t = r.transaction().await;
        let n = t.get("n").await.unwrap();
        // A write from elsewhere in the room cannot slip in between read and write.
        let mut other = Box::pin(r.put("n", "other"));
        assert!(futures_lite::future::poll_once(&mut other).await.is_none(), "must wait");
        t.put("n", format!("{}1", String::from_utf8_lossy(&n.unwrap()))).unwrap();
        t.commit().await.unwrap();
        other.await.unwrap();
        assert_eq!(r.get("n").await.unwrap().as_deref(), Some(&b"other"[..]));
    });
}

#[test]
fn alarms_are_per_room_persisted_and_listed_by_time() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = store(&dir, Profile::Partykit);
        let a = s.room("main", "a").unwrap();
        let b = s.room("main", "b").unwrap();
        block_on(async {
            assert_eq!(a.get_alarm().await.unwrap(), None);
            a.set_alarm(2_000).await.unwrap();
            a.set_alarm(1_500).await.unwrap(); // replaces
            b.set_alarm(1_000).await.unwrap();
            assert_eq!(a.get_alarm().await.unwrap(), Some(1_500));
            assert_eq!(
                due(&s, 1_500).await,
                vec![("main".into(), "b".into(), 1_000), ("main".into(), "a".into(), 1_500)]
            );
            assert_eq!(due(&s, 1_499).await.len(), 1);
            b.delete_alarm().await.unwrap();
            assert_eq!(b.get_alarm().await.unwrap(), None);
        });
    }
    // Reopened: still there.
    let s = store(&dir, Profile::Partykit);
    block_on(async {
        assert_eq!(s.room("main", "a").unwrap().get_alarm().await.unwrap(), Some(1_500));
        assert_eq!(due(&s, u64::MAX).await, vec![("main".into(), "a".into(), 1_500)]);
    });
}

/// Every alarm due by `until`, fetched a page of one at a time (the cursor must work).
async fn due(s: &Store, until: u64) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    let mut last = None;
    loop {
        let page = s.due_alarms(until, last.as_ref(), 1).await.unwrap();
        let Some(a) = page.into_iter().next() else { return out };
        out.push((a.party.clone(), a.room.clone(), a.time));
        last = Some(a);
    }
}

#[test]
fn data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = store(&dir, Profile::Partykit);
        block_on(s.room("main", "keep").unwrap().put("k", "v")).unwrap();
    }
    let s = store(&dir, Profile::Partykit);
    assert_eq!(
        block_on(s.room("main", "keep").unwrap().get("k")).unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

#[test]
fn the_room_cache_answers_recent_keys_and_stays_coherent() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, Profile::Partykit);
    let r = s.room_with_cache("main", "cache").unwrap();
    block_on(async {
        r.put_many([("a", "1"), ("b", "2")]).await.unwrap();
        let before = s.stats().requests;
        // Written keys, and a key read once (even a missing one), come from the cache.
        assert_eq!(r.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(
            r.get_many(&["b", "a"]).await.unwrap(),
            vec![Some("2".into()), Some("1".into())]
        );
        assert_eq!(s.stats().requests, before, "no request reached the storage thread");
        assert_eq!(r.get("missing").await.unwrap(), None);
        assert_eq!(r.get("missing").await.unwrap(), None);
        assert_eq!(s.stats().requests, before + 1);
        // Every kind of write keeps it true.
        r.put("missing", "now here").await.unwrap();
        assert_eq!(r.get("missing").await.unwrap().as_deref(), Some(&b"now here"[..]));
        assert!(r.delete("a").await.unwrap());
        assert_eq!(r.get("a").await.unwrap(), None);
        let mut t = r.transaction().await;
        t.put("b", "20").unwrap();
        t.put("c", "30").unwrap();
        t.commit().await.unwrap();
        assert_eq!(
            r.get_many(&["b", "c"]).await.unwrap(),
            vec![Some("20".into()), Some("30".into())]
        );
        assert_eq!(r.delete_many(&["b", "zz"]).await.unwrap(), 1);
        assert_eq!(r.get("b").await.unwrap(), None);
        assert_eq!(r.delete_all().await.unwrap(), 2);
        assert_eq!(r.get_many(&["c", "missing"]).await.unwrap(), vec![None, None]);
        // A refused write changes neither the disk nor the cache.
        r.put("c", "kept").await.unwrap();
        let big = vec![0u8; VALUE_SIZE_MAX + 1];
        assert!(r.put("c", big).await.is_err());
        assert_eq!(r.get("c").await.unwrap().as_deref(), Some(&b"kept"[..]));
    });
    // With the cache off, every read reaches the thread, and answers are the same.
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig { room_cache_bytes: 0, ..StoreConfig::default() };
    let s = Store::open(dir.path(), config).unwrap();
    let r = s.room_with_cache("main", "nocache").unwrap();
    block_on(async {
        r.put("a", "1").await.unwrap();
        let before = s.stats().requests;
        assert_eq!(r.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(s.stats().requests, before + 1);
    });
    // Handles from `room` have no cache: they see writes made elsewhere at once.
    let (a, b) = (s.room("main", "shared").unwrap(), s.room("main", "shared").unwrap());
    block_on(async {
        assert_eq!(a.get("k").await.unwrap(), None);
        b.put("k", "v").await.unwrap();
        assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    });
}

#[test]
fn group_commit_shares_fsyncs_and_can_be_turned_off() {
    for group in [1, 1024] {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig { group_commit_max: group, ..StoreConfig::default() };
        let s = Store::open(dir.path(), config).unwrap();
        let rooms: Vec<_> = (0..64).map(|i| s.room("main", &format!("r{i}")).unwrap()).collect();
        block_on(async {
            // 64 rooms write at once: one burst on the queue.
            let writes = rooms.iter().map(|r| r.put("k", "v"));
            for result in futures_util::future::join_all(writes).await {
                result.unwrap();
            }
        });
        let stats = s.stats();
        assert_eq!(stats.writes, 64);
        if group == 1 {
            assert_eq!(stats.fsyncs, 64, "one fsync per write");
        } else {
            assert!(stats.fsyncs < 64, "grouped: {stats:?}");
        }
    }
    assert!(
        Store::open(
            tempfile::tempdir().unwrap().path(),
            StoreConfig { group_commit_max: 0, ..StoreConfig::default() }
        )
        .is_err()
    );
}

#[test]
fn a_second_store_on_the_same_folder_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let _first = store(&dir, Profile::Partykit);
    let err = Store::open(dir.path(), StoreConfig::default()).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
}

#[test]
fn closing_releases_the_folder_while_clones_live_on() {
    let dir = tempfile::tempdir().unwrap();
    let first = store(&dir, Profile::Partykit);
    let room = first.room("main", "a").unwrap();
    block_on(room.put("k", "v")).unwrap();
    first.close();
    assert_eq!(block_on(room.get("other")), Err(Error::Closed));
    let second = store(&dir, Profile::Partykit);
    assert_eq!(
        block_on(second.room("main", "a").unwrap().get("k")).unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

#[test]
fn archives_are_apart_from_the_rooms_keys_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = store(&dir, Profile::Partykit);
        let r = s.room("main", "sleepy").unwrap();
        let other = s.room("main", "other").unwrap();
        block_on(async {
            assert_eq!(r.get_archive(0).await.unwrap(), None);
            r.put("k", "v").await.unwrap();
            r.put_archive(0, "registry".into()).await.unwrap();
            r.put_archive(1, "party".into()).await.unwrap();
            // Not keys of the room: list and delete_all do not see them.
            assert_eq!(keys(&r.list(ListOptions::default()).await.unwrap()), ["k"]);
            assert_eq!(r.delete_all().await.unwrap(), 1);
            assert_eq!(other.get_archive(0).await.unwrap(), None);
            r.delete_archive(1).await.unwrap();
        });
        s.close();
    }
    let s = store(&dir, Profile::Partykit);
    let r = s.room("main", "sleepy").unwrap();
    block_on(async {
        assert_eq!(r.get_archive(0).await.unwrap().as_deref(), Some(&b"registry"[..]));
        assert_eq!(r.get_archive(1).await.unwrap(), None);
        r.put_archive(1, "kept".into()).await.unwrap();
        assert_eq!(s.clear_archives(0).await.unwrap(), 1);
        assert_eq!(r.get_archive(0).await.unwrap(), None);
        assert_eq!(r.get_archive(1).await.unwrap().as_deref(), Some(&b"kept"[..]));
    });
}

#[test]
fn large_archives_go_to_disk_and_read_back_whole() {
    // Archives are stored in chunks; at and past ARCHIVE_INGEST_BYTES they are written as
    // their own table (with tombstones for the old chunks past the new ones), below through
    // the memtable. Reads, overwrites either way, and deletes must not change what any room
    // sees, before or after reopening.
    let dir = tempfile::tempdir().unwrap();
    let sized = |fill: u8, size: usize| bytes::Bytes::from(vec![fill; size]);
    let big = |fill: u8| sized(fill, partyline_storage::limits::ARCHIVE_INGEST_BYTES + 7);
    let bigger = |fill: u8| sized(fill, 3 * partyline_storage::limits::ARCHIVE_INGEST_BYTES + 1);
    {
        let s = store(&dir, Profile::Partykit);
        let a = s.room("relay", "a").unwrap();
        let b = s.room("relay", "b").unwrap();
        block_on(async {
            a.put_archive(0, big(1)).await.unwrap();
            b.put_archive(0, "small".into()).await.unwrap();
            // Let the storage thread collect while idle between requests.
            std::thread::sleep(std::time::Duration::from_millis(200));
            assert_eq!(a.get_archive(0).await.unwrap(), Some(big(1)));
            a.put_archive(0, big(2)).await.unwrap();
            assert_eq!(a.get_archive(0).await.unwrap(), Some(big(2)));
            std::thread::sleep(std::time::Duration::from_millis(200));
            assert_eq!(a.get_archive(0).await.unwrap(), Some(big(2)));
            assert_eq!(b.get_archive(0).await.unwrap().as_deref(), Some(&b"small"[..]));
            b.put_archive(1, big(3)).await.unwrap();
            b.delete_archive(0).await.unwrap();
            // A smaller archive replaces every chunk of a larger one.
            b.put_archive(2, big(4)).await.unwrap();
            b.put_archive(2, "tiny".into()).await.unwrap();
            assert_eq!(b.get_archive(2).await.unwrap().as_deref(), Some(&b"tiny"[..]));
            // A large archive replaced by a smaller large one: the extra chunks are gone.
            a.put_archive(1, bigger(5)).await.unwrap();
            a.put_archive(1, big(6)).await.unwrap();
            assert_eq!(a.get_archive(1).await.unwrap(), Some(big(6)));
            // A small archive in the memtable, then a large one over it, then small again.
            b.put_archive(3, "first".into()).await.unwrap();
            b.put_archive(3, bigger(7)).await.unwrap();
            assert_eq!(b.get_archive(3).await.unwrap(), Some(bigger(7)));
            b.put_archive(3, "last".into()).await.unwrap();
            assert_eq!(b.get_archive(3).await.unwrap().as_deref(), Some(&b"last"[..]));
        });
        s.close();
    }
    let s = store(&dir, Profile::Partykit);
    block_on(async {
        let a = s.room("relay", "a").unwrap();
        let b = s.room("relay", "b").unwrap();
        assert_eq!(a.get_archive(0).await.unwrap(), Some(big(2)));
        assert_eq!(b.get_archive(0).await.unwrap(), None);
        assert_eq!(b.get_archive(1).await.unwrap(), Some(big(3)));
        assert_eq!(b.get_archive(2).await.unwrap().as_deref(), Some(&b"tiny"[..]));
        assert_eq!(a.get_archive(1).await.unwrap(), Some(big(6)));
        assert_eq!(b.get_archive(3).await.unwrap().as_deref(), Some(&b"last"[..]));
        // An archive of many chunks counts once.
        assert_eq!(s.clear_archives(0).await.unwrap(), 1);
        assert_eq!(a.get_archive(0).await.unwrap(), None);
        assert_eq!(b.get_archive(1).await.unwrap(), Some(big(3)));
    });
}

/// A party's rooms with stored keys, paged in storage order (shorter ids first, then byte
/// order: ids are length-prefixed in keys), each once however many keys it has, other
/// parties' rooms never; and what one room stores.
#[test]
fn rooms_with_storage_are_listed_in_pages_and_their_usage_counted() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, Profile::Partykit);
    block_on(async {
        for room in ["b", "a", "c%20d", "z"] {
            let r = s.room("main", room).unwrap();
            r.put_many([("k1", "v"), ("k2", "vv"), ("\u{ff}", "x")]).await.unwrap();
        }
        // A party whose name extends "main", and an empty room: neither is listed.
        s.room("mainx", "q").unwrap().put("k", "v").await.unwrap();
        let emptied = s.room("main", "gone").unwrap();
        emptied.put("k", "v").await.unwrap();
        emptied.delete("k").await.unwrap();
        assert_eq!(s.rooms("main", None, 10).await.unwrap(), ["a", "b", "z", "c%20d"]);
        assert_eq!(s.rooms("main", None, 2).await.unwrap(), ["a", "b"]);
        assert_eq!(s.rooms("main", Some("b"), 2).await.unwrap(), ["z", "c%20d"]);
        assert!(s.rooms("main", Some("c%20d"), 2).await.unwrap().is_empty());
        assert_eq!(s.rooms("mainx", None, 10).await.unwrap(), ["q"]);
        assert!(s.rooms("nobody", None, 10).await.unwrap().is_empty());
        let usage = s.usage("main", "a").await.unwrap();
        // Keys k1, k2, ÿ (2 bytes) and values v, vv, x: 2+2+2 + 1+2+1.
        assert_eq!((usage.keys, usage.bytes, usage.complete), (3, 10, true));
        assert_eq!(s.usage("main", "none").await.unwrap().keys, 0);
    });
}
