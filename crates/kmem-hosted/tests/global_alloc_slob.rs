//! `KmemAlloc` booted with `slab=slob`: a Rust workload (collections, strings, threads,
//! over-aligned blocks, reallocs) on SLOB's kmalloc.

use std::collections::{BTreeMap, HashMap};

use kmem::slab::common::SlabAllocatorKind;
use kmem_hosted::KmemAlloc;

#[global_allocator]
static A: KmemAlloc = KmemAlloc::with_params(256 << 20, SlabAllocatorKind::Slob);

#[test]
fn rust_workload_on_slob() {
    let m = A.machine().expect("machine booted");
    assert_eq!(m.slab_allocator(), SlabAllocatorKind::Slob);
    let b = Box::new([7u8; 100]);
    // SLOB: the size rounded to 2-byte units.
    assert_eq!(m.ksize((&*b as *const [u8; 100]).cast()), 100);
    let mut map = HashMap::new();
    for i in 0..30_000u32 {
        map.insert(i, i.to_string());
    }
    for i in (0..30_000u32).step_by(3) {
        map.remove(&i);
    }
    assert_eq!(map.len(), 20_000);
    let mut t = BTreeMap::new();
    for i in 0..20_000u64 {
        t.insert(i * 7919 % 20_011, vec![i as u8; (i % 300) as usize]);
    }
    assert_eq!(t.len(), 20_000);
    let mut s = String::new();
    for i in 0..5000 {
        s.push_str(&i.to_string());
    }
    assert!(s.len() > 10_000);
    #[repr(align(64))]
    struct Line([u8; 48]);
    #[repr(align(4096))]
    struct Page([u8; 100]);
    for _ in 0..100 {
        let l = Box::new(Line([1; 48]));
        assert_eq!(&*l as *const Line as usize % 64, 0);
        assert_eq!(l.0[47], 1);
        let p = Box::new(Page([2; 100]));
        assert_eq!(&*p as *const Page as usize % 4096, 0);
        assert_eq!(p.0[99], 2);
        let v: Vec<u128> = (0..37).collect();
        assert_eq!(v.as_ptr() as usize % 16, 0);
    }
    let hs: Vec<_> = (0..4)
        .map(|k| {
            std::thread::spawn(move || {
                let mut v: Vec<Vec<u32>> = Vec::new();
                for i in 0..5000u32 {
                    v.push((0..(i % 97)).map(|x| x ^ k).collect());
                    if i % 2 == 0 {
                        v.swap_remove((i as usize * 31) % v.len());
                    }
                }
                v.iter().map(|x| x.len()).sum::<usize>()
            })
        })
        .collect();
    for h in hs {
        assert!(h.join().unwrap() > 0);
    }
    assert_eq!(m.bug_count() + m.warn_count(), 0);
}
