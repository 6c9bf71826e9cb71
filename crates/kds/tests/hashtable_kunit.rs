//! The cases of Linux's lib/hashtable_test.c (KUnit "hashtable" suite), against the raw
//! hashtable layer, plus the same scenarios through the safe `HashTable`.
#![warn(clippy::too_many_lines)] // issue 11: at most 150 lines (crates/kds/clippy.toml)

use kds::hashtable::*;
use kds::hlist::HlistNode;

#[repr(C)]
struct Entry {
    key: i32,
    data: i32,
    node: HlistNode,
    visited: i32,
}

fn entry(key: i32, data: i32) -> Entry {
    Entry {
        key,
        data,
        node: HlistNode::new(),
        visited: 0,
    }
}

#[test]
fn hashtable_test_hash_init() {
    let hash1 = define_hashtable::<{ 1 << 2 }>();
    let mut hash2 = define_hashtable::<{ 1 << 3 }>();
    hash_init(&mut hash2);
    assert!(hash_empty(&hash1));
    assert!(hash_empty(&hash2));
}

#[test]
fn hashtable_test_hash_empty() {
    let mut a = entry(1, 13);
    let mut hash = define_hashtable::<{ 1 << 1 }>();
    assert!(hash_empty(&hash));
    // SAFETY: the table and its nodes are locals of this test, initialised before use, not moved while hashed, and touched by this thread only.
    unsafe { hash_add(&mut hash, &mut a.node, a.key) };
    assert!(!hash_empty(&hash));
}

#[test]
fn hashtable_test_hash_hashed() {
    let (mut a, mut b) = (entry(1, 13), entry(1, 2));
    let mut hash = define_hashtable::<{ 1 << 4 }>();
    // SAFETY: the table and its nodes are locals of this test, initialised before use, not moved while hashed, and touched by this thread only.
    unsafe {
        hash_add(&mut hash, &mut a.node, a.key);
        hash_add(&mut hash, &mut b.node, b.key);
        assert!(hash_hashed(&a.node));
        assert!(hash_hashed(&b.node));
    }
}

#[test]
fn hashtable_test_hash_add() {
    let (mut a, mut b) = (entry(1, 13), entry(2, 10));
    let mut hash = define_hashtable::<{ 1 << 3 }>();
    // SAFETY: the table and its nodes are locals of this test, initialised before use, not moved while hashed, and touched by this thread only.
    unsafe {
        hash_add(&mut hash, &mut a.node, a.key);
        hash_add(&mut hash, &mut b.node, b.key);
        for (_bkt, x) in kds::hash_for_each_entry!(&hash, Entry, node) {
            (*x).visited += 1;
            match (*x).key {
                1 => assert_eq!((*x).data, 13),
                2 => assert_eq!((*x).data, 10),
                k => panic!("unexpected key {k} in hashtable"),
            }
        }
    }
    assert_eq!(a.visited, 1);
    assert_eq!(b.visited, 1);
}

#[test]
fn hashtable_test_hash_del() {
    let (mut a, mut b) = (entry(1, 13), entry(2, 10));
    let mut hash = define_hashtable::<{ 1 << 6 }>();
    // SAFETY: the table and its nodes are locals of this test, initialised before use, not moved while hashed, and touched by this thread only.
    unsafe {
        hash_add(&mut hash, &mut a.node, a.key);
        hash_add(&mut hash, &mut b.node, b.key);
        hash_del(&mut b.node);
        for x in kds::hash_for_each_possible_entry!(&hash, Entry, node, b.key) {
            (*x).visited += 1;
            assert_ne!((*x).key, b.key);
        }
        assert_eq!(b.visited, 0, "the deleted entry was not visited");
        hash_del(&mut a.node);
    }
    assert!(hash_empty(&hash));
}

#[test]
fn hashtable_test_hash_for_each() {
    let mut entries: [Entry; 3] = core::array::from_fn(|i| entry(i as i32, i as i32 + 10));
    let mut hash = define_hashtable::<{ 1 << 3 }>();
    let mut count = 0;
    // SAFETY: the table and its nodes are locals of this test, initialised before use, not moved while hashed, and touched by this thread only.
    unsafe {
        for e in entries.iter_mut() {
            hash_add(&mut hash, &mut e.node, e.key);
        }
        for (_bkt, x) in kds::hash_for_each_entry!(&hash, Entry, node) {
            (*x).visited += 1;
            assert!((0..3).contains(&(*x).key), "unexpected key in hashtable");
            count += 1;
        }
    }
    assert_eq!(count, 3);
    assert!(entries.iter().all(|e| e.visited == 1));
}

#[test]
fn hashtable_test_hash_for_each_safe() {
    let mut entries: [Entry; 3] = core::array::from_fn(|i| entry(i as i32, i as i32 + 10));
    let mut hash = define_hashtable::<{ 1 << 3 }>();
    let mut count = 0;
    // SAFETY: the table and its nodes are locals of this test, initialised before use, not moved while hashed, and touched by this thread only.
    unsafe {
        for e in entries.iter_mut() {
            hash_add(&mut hash, &mut e.node, e.key);
        }
        for (_bkt, n) in hash_for_each_safe(&hash) {
            let x = kds::container_of!(n, Entry, node);
            (*x).visited += 1;
            assert!((0..3).contains(&(*x).key));
            count += 1;
            hash_del(n);
        }
    }
    assert_eq!(count, 3);
    assert!(entries.iter().all(|e| e.visited == 1));
    assert!(hash_empty(&hash));
}

/// Shared body of the two `for_each_possible` cases: three entries with key 0 and one with
/// key 1 in a 32-bucket table; walking key 0's bucket visits all key-0 entries, and the key-1
/// entry exactly when it shares their bucket.
fn for_each_possible(delete: bool) {
    let mut entries: [Entry; 4] =
        core::array::from_fn(|i| entry(if i < 3 { 0 } else { 1 }, i as i32));
    let mut hash = define_hashtable::<{ 1 << 5 }>();
    let mut count = 0;
    let mut buckets = [0usize; 2];
    // SAFETY: the table and its nodes are locals of this test, initialised before use, not moved while hashed, and touched by this thread only.
    unsafe {
        for e in entries.iter_mut() {
            hash_add(&mut hash, &mut e.node, e.key);
        }
        for n in hash_for_each_possible_safe(&hash, 0i32) {
            let x = kds::container_of!(n, Entry, node);
            (*x).visited += 1;
            assert!((0..4).contains(&(*x).data), "unexpected data in hashtable");
            count += 1;
            if delete {
                hash_del(n);
            }
        }
        assert!(entries[..3].iter().all(|e| e.visited == 1));
        // Re-add for the bucket survey if we deleted.
        if delete {
            for e in entries.iter_mut() {
                if !hash_hashed(&e.node) {
                    hash_add(&mut hash, &mut e.node, e.key);
                }
            }
        }
        for (bkt, y) in kds::hash_for_each_entry!(&hash, Entry, node) {
            assert!((0..=1).contains(&(*y).key), "unexpected key in hashtable");
            buckets[(*y).key as usize] = bkt;
        }
    }
    if buckets[0] == buckets[1] {
        assert_eq!(count, 4);
        assert_eq!(entries[3].visited, 1);
    } else {
        assert_eq!(count, 3);
        assert_eq!(entries[3].visited, 0);
    }
}

#[test]
fn hashtable_test_hash_for_each_possible() {
    for_each_possible(false);
}

#[test]
fn hashtable_test_hash_for_each_possible_safe() {
    for_each_possible(true);
}

#[test]
fn run_time_sized_table_and_bucket_choice() {
    // A run-time sized table is any power-of-two slice; keys go to hash_min(key, bits).
    let bits = 7;
    let mut table: Vec<kds::hlist::HlistHead> =
        (0..1usize << bits).map(|_| Default::default()).collect();
    let mut es: Vec<Box<Entry>> = (0..100).map(|k| Box::new(entry(k, k))).collect();
    // SAFETY: the table and its nodes are locals of this test, initialised before use, not moved while hashed, and touched by this thread only.
    unsafe {
        for e in es.iter_mut() {
            hash_add(&mut table, &mut e.node, e.key);
        }
        for (bkt, x) in kds::hash_for_each_entry!(&table, Entry, node) {
            assert_eq!(bkt as u32, kds::hash::hash_32((*x).key as u32, bits));
        }
        assert_eq!(hash_for_each(&table).count(), 100);
        for e in es.iter_mut() {
            hash_del(&mut e.node);
        }
    }
    assert!(hash_empty(&table));
}

mod safe {
    use core::pin::pin;
    use kds::hashtable::{HLink, HashTable};

    struct Proc {
        pid: u32,
        rss: u64,
        node: HLink,
    }
    kds::define_hash_adapter!(ByPid = Proc { node } key u32 => |p| p.pid);

    #[test]
    fn add_find_remove_and_misuse() {
        let procs: Vec<Proc> = (0..50)
            .map(|i| Proc {
                pid: i * 7,
                rss: i as u64,
                node: HLink::new(),
            })
            .collect();
        let mut t = pin!(HashTable::<ByPid, 8>::new());
        for p in &procs {
            assert!(t.as_mut().add(p).is_ok());
        }
        assert!(
            t.as_mut().add(&procs[3]).is_err(),
            "an already hashed item is rejected"
        );
        assert_eq!(t.find(21).map(|p| p.rss), Some(3));
        assert!(t.find(22).is_none());
        assert_eq!(t.iter().count(), 50);
        // An item of another table is not removed from this one.
        let stranger = Proc {
            pid: 21,
            rss: 0,
            node: HLink::new(),
        };
        assert!(!t.as_mut().remove(&stranger));
        assert!(t.as_mut().remove(&procs[3]));
        assert!(!procs[3].node.is_hashed());
        let mut gone = 0;
        t.as_mut().remove_key(14, |_| gone += 1);
        assert_eq!(gone, 1);
        assert_eq!(t.iter().count(), 48);
        t.as_mut().clear();
        assert!(t.is_empty());
        assert!(procs.iter().all(|p| !p.node.is_hashed()));
    }

    #[test]
    fn run_time_sized_safe_table() {
        use core::pin::Pin;
        use kds::hashtable::HashTableSlice;
        let procs: Vec<Proc> = (0..300)
            .map(|i| Proc {
                pid: i,
                rss: 0,
                node: HLink::new(),
            })
            .collect();
        for bits in [0u32, 1, 5, 9] {
            let mut buckets: Vec<kds::hlist::HlistHead> =
                (0..1usize << bits).map(|_| Default::default()).collect();
            let mut t = HashTableSlice::<ByPid>::with_buckets(&mut buckets);
            for p in &procs {
                assert!(Pin::new(&mut t).add(p).is_ok());
            }
            assert!(procs
                .iter()
                .all(|p| t.find(p.pid).map(|x| x.pid) == Some(p.pid)));
            assert!(Pin::new(&mut t).remove(&procs[7]));
            assert!(t.find(7).is_none());
            assert_eq!(t.iter().count(), 299);
            drop(t);
            assert!(procs.iter().all(|p| !p.node.is_hashed()));
        }
    }

    #[test]
    fn drop_unhashes_items() {
        let p = Proc {
            pid: 1,
            rss: 0,
            node: HLink::new(),
        };
        {
            let mut t = pin!(HashTable::<ByPid, 4>::new());
            assert!(t.as_mut().add(&p).is_ok());
            assert!(p.node.is_hashed());
        }
        assert!(!p.node.is_hashed());
    }
}
