//! Unit tests of kmemleak's pieces that need no machine: the object tree and list, the pool,
//! CRC32. The scan and the debugfs file are tested on a booted machine in
//! `tests/kmemleak.rs`.
extern crate std;
use std::vec::Vec;

use super::object::{LeakState, NewObj, PoolBlock, KMEMLEAK_GREY};
use super::scan::crc32_le;

fn new_obj(pointer: usize, size: usize) -> NewObj<'static> {
    NewObj {
        pointer,
        size,
        min_count: 1,
        flags: 0,
        jiffies: 0,
        pid: 1,
        comm: "swapper/0",
        trace: None,
        stack: crate::mm::stackdepot::DepotHandle::NONE,
    }
}

/// A pool of `n` objects in host memory (the test's stand-in for pool pages). The memory is
/// returned beside the state and must outlive it (tests keep both to their end).
fn state_with_pool(n: usize) -> (LeakState, Vec<u64>) {
    let mut st = LeakState::new();
    let sz = core::mem::size_of::<super::object::Obj>();
    let mut mem = std::vec![0u64; n * sz / 8];
    let base = core::ptr::NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
    // SAFETY: aligned to 8, used by nothing else, and the Vec (whose buffer does not move when
    // the Vec does) is kept alive by the caller for as long as the state.
    unsafe { st.pool_add(PoolBlock { base, len: n * sz }) };
    (st, mem)
}

#[test]
fn lookup_by_start_and_alias() {
    let (mut st, _pool) = state_with_pool(8);
    st.create(&new_obj(0x1000, 0x100)).unwrap();
    st.create(&new_obj(0x3000, 0x10)).unwrap();
    let a = st.lookup(0x1000, false, false).unwrap().unwrap();
    assert_eq!(st.get(a).pointer, 0x1000);
    // Inside: found with alias, an "alias" error without.
    assert_eq!(st.lookup(0x1080, true, false), Ok(Some(a)));
    assert_eq!(st.lookup(0x1080, false, false), Err(a));
    // Past the end, between objects, before everything.
    assert_eq!(st.lookup(0x1100, true, false), Ok(None));
    assert_eq!(st.lookup(0x0fff, true, false), Ok(None));
    // The physical tree is separate.
    assert_eq!(st.lookup(0x1000, false, true), Ok(None));
    assert_eq!((st.min_addr, st.max_addr), (0x1000, 0x3010));
}

#[test]
fn overlap_is_refused_and_costs_nothing() {
    let (mut st, _pool) = state_with_pool(2);
    let a = st.create(&new_obj(0x1000, 0x100)).unwrap();
    assert_eq!(st.create(&new_obj(0x10f8, 0x10)).unwrap_err(), Some(a));
    assert_eq!(st.create(&new_obj(0x0ff8, 0x10)).unwrap_err(), Some(a));
    assert_eq!(st.pool_free, 1);
    st.create(&new_obj(0x1100, 0x10)).unwrap();
    // Pool empty: Err(None).
    assert_eq!(st.create(&new_obj(0x2000, 0x10)).unwrap_err(), None);
}

#[test]
fn list_keeps_allocation_order_and_pool_recycles() {
    let (mut st, _pool) = state_with_pool(64);
    let addrs = [0x5000usize, 0x1000, 0x9000, 0x3000, 0x7000];
    for &p in &addrs {
        st.create(&new_obj(p, 0x40)).unwrap();
    }
    let order = |st: &LeakState| {
        let mut v = Vec::new();
        let mut it = st.first();
        while let Some(id) = it {
            v.push(st.get(id).pointer);
            it = st.next(id);
        }
        v
    };
    assert_eq!(order(&st), addrs);
    let id = st.lookup(0x9000, false, false).unwrap().unwrap();
    st.remove(id);
    let id = st.lookup(0x5000, false, false).unwrap().unwrap();
    st.remove(id);
    assert_eq!(order(&st), [0x1000, 0x3000, 0x7000]);
    assert_eq!(st.nr_objects, 3);
    assert_eq!(st.pool_free, 61);
    // Many inserts and removes through the tree stay consistent with a model.
    let mut model: Vec<usize> = order(&st);
    for i in 0..40usize {
        let p = 0x10_0000 + (i * 7919 % 41) * 0x100;
        if let Ok(Some(id)) = st.lookup(p, false, false) {
            st.remove(id);
            model.retain(|&x| x != p);
        } else {
            let mut o = new_obj(p, 0x80);
            o.min_count = KMEMLEAK_GREY;
            st.create(&o).unwrap();
            model.push(p);
        }
        assert_eq!(order(&st), model);
        for &m in &model {
            assert!(matches!(st.lookup(m + 0x3f, true, false), Ok(Some(_))));
        }
    }
}

#[test]
fn gray_queue_is_fifo() {
    let (mut st, _pool) = state_with_pool(4);
    let a = st.create(&new_obj(0x1000, 8)).unwrap();
    let b = st.create(&new_obj(0x2000, 8)).unwrap();
    st.gray_push(b);
    st.gray_push(a);
    assert_eq!(st.gray_pop(), Some(b));
    st.gray_push(b);
    assert_eq!(st.gray_pop(), Some(a));
    assert_eq!(st.gray_pop(), Some(b));
    assert_eq!(st.gray_pop(), None);
}

#[test]
fn crc32_matches_lib_crc32() {
    // crc32_le(~0, "123456789") ^ ~0 is the standard CRC-32 check value 0xcbf43926; Linux's
    // crc32(0, …) (what kmemleak uses) has no inversions.
    let s = b"123456789";
    assert_eq!(crc32_le(!0, s.iter().copied()) ^ !0, 0xcbf4_3926);
    assert_eq!(crc32_le(0, [0u8; 4].iter().copied()), 0);
    assert_ne!(crc32_le(0, s.iter().copied()), 0);
}
