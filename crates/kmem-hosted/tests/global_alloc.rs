//! A real Rust workload (collections, strings, threads, big and over-aligned blocks) with kmem
//! as the global allocator of this test binary.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{mpsc, Arc, Mutex};

use kmem::GfpFlags;
use kmem_hosted::KmemAlloc;

#[global_allocator]
static A: KmemAlloc = KmemAlloc::new();

/// Whether `p` is memory of the kmem machine (not the host heap).
fn from_kmem<T: ?Sized>(p: *const T) -> bool {
    let m = A.machine().expect("machine booted");
    m.virt_to_phys(kmem::VirtAddr::new(p as *const u8 as usize))
        .is_some()
}

#[test]
fn collections_and_strings_live_in_kmem() {
    let v: Vec<u64> = (0..10_000).collect();
    assert!(from_kmem(v.as_ptr()));
    assert_eq!(v.iter().sum::<u64>(), 49_995_000);
    let s = format!("hello {} {}", "kmem", 42);
    assert!(from_kmem(s.as_ptr()));
    assert_eq!(s, "hello kmem 42");
    let b = Box::new([7u8; 100]);
    assert!(from_kmem(&*b));
    let m = A.machine().unwrap();
    assert_eq!(m.ksize((&*b as *const [u8; 100]).cast()), 128);

    let mut map = HashMap::new();
    for i in 0..50_000u32 {
        map.insert(i, i.to_string());
    }
    for i in (0..50_000u32).step_by(3) {
        map.remove(&i);
    }
    assert_eq!(map.len(), 33_333);
    assert_eq!(map[&1], "1");

    let mut bt = BTreeMap::new();
    for i in 0..20_000u64 {
        bt.insert(
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            vec![i as u8; (i % 300) as usize],
        );
    }
    assert_eq!(bt.len(), 20_000);
    let total: usize = bt.values().map(Vec::len).sum();
    assert!(total > 0);

    let mut q = VecDeque::new();
    for i in 0..100_000 {
        q.push_back(i);
        if i % 3 == 0 {
            q.pop_front();
        }
    }
    assert_eq!(q.len(), 66_666);

    // Growing a vector through every size class and into large kmalloc and beyond 4 MiB.
    let mut g: Vec<u8> = Vec::new();
    for i in 0..(6 << 20) {
        g.push(i as u8);
    }
    assert_eq!(g[5 << 20], ((5 << 20) & 0xff) as u8);
    g.truncate(100);
    g.shrink_to_fit();
    assert!(from_kmem(g.as_ptr()));
    assert_eq!(m.bug_count(), 0);
}

#[test]
fn over_aligned_blocks() {
    #[repr(align(64))]
    struct Line([u8; 64]);
    #[repr(align(4096))]
    struct Page4k([u8; 100]);
    #[repr(align(65536))]
    struct Big([u8; 10]);
    let a = Box::new(Line([1; 64]));
    assert_eq!(&*a as *const Line as usize % 64, 0);
    let b = Box::new(Page4k([2; 100]));
    assert_eq!(&*b as *const Page4k as usize % 4096, 0);
    assert_eq!(b.0[99], 2);
    let c = Box::new(Big([3; 10]));
    assert_eq!(&*c as *const Big as usize % 65536, 0);
    assert_eq!(c.0[9], 3);
    assert!(from_kmem(&*c));
    let v: Vec<Line> = (0..1000).map(|i| Line([i as u8; 64])).collect();
    assert_eq!(v.as_ptr() as usize % 64, 0);
    assert_eq!(v[999].0[0], (999 % 256) as u8);
    for size in [1usize, 7, 8, 24, 96, 100, 192, 3000, 9000, 70_000] {
        for align in [1usize, 8, 16, 32, 64, 128, 256, 4096] {
            let l = std::alloc::Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero size layout; freed below with the same layout.
            let p = unsafe { std::alloc::alloc(l) };
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0, "size {size} align {align}");
            // SAFETY: `p` has `size` bytes.
            unsafe { std::ptr::write_bytes(p, 0xee, size) };
            // SAFETY: realloc to a larger size with the same alignment.
            let q = unsafe { std::alloc::realloc(p, l, size * 2 + 1) };
            assert!(!q.is_null());
            assert_eq!(q as usize % align, 0, "realloc size {size} align {align}");
            // SAFETY: the first `size` bytes were copied.
            assert!((0..size).all(|i| unsafe { *q.add(i) } == 0xee));
            let l2 = std::alloc::Layout::from_size_align(size * 2 + 1, align).unwrap();
            // SAFETY: allocated above with `l2`.
            unsafe { std::alloc::dealloc(q, l2) };
        }
    }
    let z = vec![0u64; 5000];
    assert!(z.iter().all(|x| *x == 0));
}

#[test]
fn threads_share_and_free_across_cpus() {
    let (tx, rx) = mpsc::sync_channel::<Vec<String>>(16);
    let producers: Vec<_> = (0..3)
        .map(|t| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for round in 0..300 {
                    let batch: Vec<String> = (0..100)
                        .map(|i| format!("t{t}-r{round}-{}", "x".repeat(i % 40)))
                        .collect();
                    tx.send(batch).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let shared = Arc::new(Mutex::new(Vec::new()));
    let consumer = {
        let shared = shared.clone();
        std::thread::spawn(move || {
            let mut n = 0usize;
            for batch in rx {
                n += batch.len();
                for s in &batch {
                    assert!(s.starts_with('t'));
                }
                shared.lock().unwrap().push(batch.len());
            }
            n
        })
    };
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(consumer.join().unwrap(), 90_000);
    assert_eq!(shared.lock().unwrap().len(), 900);
    // Many short-lived threads: CPU ids are reused with their per-CPU slabs.
    let expect: usize = (0..1000).map(|j| j % 64).sum();
    for _ in 0..20 {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                std::thread::spawn(move || {
                    let mut n = 0;
                    for j in 0..1000 {
                        let v = vec![i as u8; j % 64];
                        n += v.len();
                    }
                    n
                })
            })
            .collect();
        for h in hs {
            assert_eq!(h.join().unwrap(), expect);
        }
    }
    let m = A.machine().unwrap();
    assert_eq!(m.bug_count(), 0);
    m.check_invariants().unwrap();
}

#[test]
fn the_machine_is_usable_directly_too() {
    let m = A.machine().unwrap();
    let p = m.kmalloc(100, GfpFlags::GFP_KERNEL).unwrap();
    assert_eq!(m.ksize(p.as_ptr()), 128);
    m.kfree(p.as_ptr());
    let mut s = String::new();
    m.proc_read("/proc/slabinfo", &mut s).unwrap();
    assert!(s.starts_with("slabinfo - version: 2.1"));
}
