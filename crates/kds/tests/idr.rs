//! IDR / IDA tests: tools/testing/radix-tree/idr-test.c and lib/test_ida.c ported (in our own
//! words, with their expected outcomes), the old `idr_get_new` / `ida_get_new` EAGAIN loops,
//! allocation-failure injection, the radix-tree names, and proptests against a set model.
#![warn(clippy::too_many_lines)] // issue 11: at most 150 lines (crates/kds/clippy.toml)

extern crate std;

mod trees_support;

use std::collections::BTreeSet;
use std::vec::Vec;

use kds::alloc::Gfp;
use kds::idr::*;
use kds::radix_tree::*;
use kds::xarray::{xa_mk_value, XArray, XaEntry};
use kds::Error;
use proptest::prelude::*;
use trees_support::{Rng, TestAlloc};

const GFP: Gfp = Gfp::GFP_KERNEL;

/// `item_create(index)`: a value entry carrying its id.
fn item(i: u64) -> Option<XaEntry> {
    Some(xa_mk_value(i as usize))
}
/// `DUMMY_PTR`.
fn dummy() -> Option<XaEntry> {
    Some(xa_mk_value(0x12))
}

#[test]
fn idr_alloc_test() {
    let a = TestAlloc::new();
    let idr = Idr::new_in(&a);
    assert_eq!(idr.idr_alloc_cyclic(dummy(), 0, 0x4000, GFP), Ok(0));
    assert_eq!(
        idr.idr_alloc_cyclic(dummy(), 0x3ffd, 0x4000, GFP),
        Ok(0x3ffd)
    );
    idr.idr_remove(0x3ffd);
    idr.idr_remove(0);
    for i in 0x3ffeu64..0x4003 {
        let want = if i < 0x4000 { i } else { i - 0x3fff };
        assert_eq!(
            idr.idr_alloc_cyclic(item(want), 1, 0x4000, GFP),
            Ok(want as i32)
        );
    }
    let mut n = 0;
    idr.idr_for_each(|id, e| {
        assert_eq!(e.to_value(), Some(id as usize));
        n += 1;
        0
    });
    assert_eq!(n, 5);
    idr.idr_destroy();
    assert!(idr.idr_is_empty());
}

#[test]
fn idr_replace_test() {
    let a = TestAlloc::new();
    let idr = Idr::new_in(&a);
    assert_eq!(idr.idr_alloc(item(99), 10, 11, GFP), Ok(10));
    assert_eq!(idr.idr_replace(dummy(), 10), Ok(item(99)));
    assert_eq!(idr.idr_find(10), dummy());
    assert_eq!(idr.idr_replace(dummy(), 11), Err(Error::ENOENT));
    idr.idr_destroy();
}

#[test]
fn idr_null_test() {
    let a = TestAlloc::new();
    let idr = Idr::new_in(&a);
    assert!(idr.idr_is_empty());
    assert_eq!(idr.idr_alloc(None, 0, 0, GFP), Ok(0));
    assert!(!idr.idr_is_empty());
    idr.idr_remove(0);
    assert!(idr.idr_is_empty());
    assert_eq!(idr.idr_alloc(None, 0, 0, GFP), Ok(0));
    assert!(!idr.idr_is_empty());
    idr.idr_destroy();
    assert!(idr.idr_is_empty());
    for i in 0..10 {
        assert_eq!(idr.idr_alloc(None, 0, 0, GFP), Ok(i));
    }
    assert_eq!(idr.idr_replace(dummy(), 3), Ok(None));
    assert_eq!(idr.idr_replace(dummy(), 4), Ok(None));
    assert_eq!(idr.idr_replace(None, 4), Ok(dummy()));
    assert_eq!(idr.idr_replace(dummy(), 11), Err(Error::ENOENT));
    idr.idr_remove(5);
    assert_eq!(idr.idr_alloc(None, 0, 0, GFP), Ok(5));
    idr.idr_remove(5);
    for i in 0..9 {
        idr.idr_remove(i);
        assert!(!idr.idr_is_empty());
    }
    idr.idr_remove(8);
    assert!(!idr.idr_is_empty());
    idr.idr_remove(9);
    assert!(idr.idr_is_empty());
    assert_eq!(idr.idr_alloc(None, 0, 0, GFP), Ok(0));
    assert_eq!(idr.idr_replace(dummy(), 3), Err(Error::ENOENT));
    assert_eq!(idr.idr_replace(dummy(), 0), Ok(None));
    assert_eq!(idr.idr_replace(None, 0), Ok(dummy()));
    idr.idr_destroy();
    assert!(idr.idr_is_empty());
    for i in 1..10 {
        assert_eq!(idr.idr_alloc(None, 1, 0, GFP), Ok(i));
    }
    idr.idr_destroy();
    assert!(idr.idr_is_empty());
}

#[test]
fn idr_nowait_test() {
    let a = TestAlloc::new();
    let idr = Idr::new_in(&a);
    idr.idr_preload(GFP).unwrap();
    // After the preload, GFP_NOWAIT allocations succeed even with the allocator failing.
    a.fail_all();
    for i in 0..3 {
        assert_eq!(
            idr.idr_alloc(item(i as u64), i, i + 1, Gfp::GFP_NOWAIT),
            Ok(i)
        );
    }
    idr.idr_preload_end();
    a.heal();
    idr.idr_destroy();
}

fn idr_get_next_test(base: u32) {
    let a = TestAlloc::new();
    let idr = Idr::with_base(&a, base);
    let indices = [4, 7, 9, 15, 65, 128, 1000, 99999, 0];
    for w in indices.windows(2) {
        if w[0] == 0 {
            break;
        }
        assert_eq!(idr.idr_alloc(item(w[0] as u64), w[0], w[1], GFP), Ok(w[0]));
    }
    let mut nextid = 0;
    for &want in indices.iter().take_while(|&&i| i != 0) {
        let e = idr.idr_get_next(&mut nextid).unwrap();
        assert_eq!(nextid, want);
        assert_eq!(e.to_value(), Some(want as usize));
        nextid += 1;
    }
    assert_eq!(idr.idr_get_next(&mut nextid), None);
    idr.idr_destroy();
}

#[test]
fn idr_get_next() {
    idr_get_next_test(0);
    idr_get_next_test(1);
    idr_get_next_test(4);
}

fn idr_u32_test1(idr: &Idr<&TestAlloc>, handle: u32) {
    let mut id = handle;
    assert_eq!(idr.idr_alloc_u32(dummy(), &mut id, handle, GFP), Ok(()));
    assert_eq!(id, handle);
    assert_eq!(
        idr.idr_alloc_u32(dummy(), &mut id, handle, GFP),
        Err(Error::ENOSPC)
    );
    assert_eq!(id, handle);
    let mut sid = 0;
    let e = idr.idr_get_next(&mut sid);
    if id > INT_MAX {
        assert_eq!(e, None);
        assert_eq!(sid, 0);
    } else {
        assert_eq!(e, dummy());
        assert_eq!(sid as u32, id);
    }
    idr.idr_for_each(|i, e| {
        assert!(i >= 0);
        assert_eq!(Some(e), dummy());
        0
    });
    assert_eq!(idr.idr_remove(id), dummy());
    assert!(idr.idr_is_empty());
}

#[test]
fn idr_u32() {
    for base in [4, 1, 0] {
        let a = TestAlloc::new();
        let idr = Idr::with_base(&a, base);
        for h in [
            10,
            0x7fff_ffff,
            0x8000_0000,
            0x8000_0001,
            0xffe0_0000,
            0xffff_ffff,
        ] {
            idr_u32_test1(&idr, h);
        }
    }
}

#[test]
fn idr_checks() {
    let a = TestAlloc::new();
    let idr = Idr::new_in(&a);
    for i in 0..10000 {
        assert_eq!(idr.idr_alloc(item(i), 0, 20000, GFP), Ok(i as i32));
    }
    assert!(idr.idr_alloc(dummy(), 5, 30, GFP).is_err());
    for i in 0..5000u32 {
        assert_eq!(idr.idr_find(i), item(i as u64));
        idr.idr_remove(i);
    }
    idr.idr_remove(3);
    idr.idr_destroy();
    assert!(idr.idr_is_empty());
    idr.idr_remove(3);
    idr.idr_remove(0);
    assert_eq!(idr.idr_alloc(dummy(), 0, 0, GFP), Ok(0));
    idr.idr_remove(1);
    for i in 1..64 {
        assert_eq!(idr.idr_alloc(dummy(), 0, 0, GFP), Ok(i));
    }
    idr.idr_remove(1 << 30);
    idr.idr_destroy();
    // At the top of the int range.
    let top = INT_MAX as i64;
    for i in top - 3..top + 1 {
        assert_eq!(
            idr.idr_alloc(item(i as u64), i as i32, (i + 10).min(top) as i32, GFP)
                .or_else(|_| idr.idr_alloc(item(i as u64), i as i32, 0, GFP)),
            Ok(i as i32)
        );
    }
    assert_eq!(
        idr.idr_alloc(dummy(), (top - 1) as i32, 0, GFP),
        Err(Error::ENOSPC)
    );
    idr.idr_destroy();
    idr.idr_destroy();
    assert!(idr.idr_is_empty());
    // Cyclic allocation wraps from INT_MAX to 0.
    idr.idr_set_cursor(INT_MAX - 3);
    for i in (INT_MAX - 3) as u64..INT_MAX as u64 + 3 {
        let want = if i <= INT_MAX as u64 {
            i
        } else {
            i - INT_MAX as u64 - 1
        };
        assert_eq!(idr.idr_alloc_cyclic(item(want), 0, 0, GFP), Ok(want as i32));
    }
    idr.idr_destroy();
    assert!(idr.idr_is_empty());
    for i in 1..10000 {
        assert_eq!(idr.idr_alloc(item(i), 1, 20000, GFP), Ok(i as i32));
    }
    idr.idr_destroy();
    assert_eq!(idr.idr_alloc(dummy(), -1, 0, GFP), Err(Error::EINVAL));
    drop(idr);
    assert_eq!(a.live(), 0);
}

#[test]
fn idr_enomem_injected() {
    let a = TestAlloc::new();
    let idr = Idr::new_in(&a);
    assert_eq!(idr.idr_alloc(dummy(), 0, 0, GFP), Ok(0));
    a.fail_all();
    // id 1 fits the head's leaf? No: the head holds id 0 alone, id 1 needs a node.
    assert_eq!(
        idr.idr_alloc(dummy(), 0, 0, Gfp::GFP_NOWAIT),
        Err(Error::ENOMEM)
    );
    assert_eq!(idr.idr_find(0), dummy());
    a.heal();
    assert_eq!(idr.idr_alloc(dummy(), 0, 0, GFP), Ok(1));
    assert!(idr.xarray().check().is_ok());
}

#[test]
fn idr_old_api_eagain_loop() {
    let a = TestAlloc::new();
    let idr = Idr::new_in(&a);
    let mut id = 0;
    // Without a preload the first allocation needing a node reports EAGAIN.
    assert_eq!(idr.idr_get_new(item(0), &mut id), Ok(()));
    assert_eq!(id, 0);
    assert_eq!(idr.idr_get_new(item(1), &mut id), Err(Error::EAGAIN));
    let mut eagain = 0;
    for want in 1..5000u64 {
        loop {
            match idr.idr_get_new(item(want), &mut id) {
                Ok(()) => break,
                Err(Error::EAGAIN) => {
                    eagain += 1;
                    assert!(idr.idr_pre_get(GFP));
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(id as u64, want);
    }
    assert!(eagain >= 1);
    assert_eq!(idr.idr_get_new_above(item(7), 100_000, &mut id), Ok(()));
    assert_eq!(id, 100_000);
    // A failing pre_get reports false.
    let b = TestAlloc::new();
    let idr2 = Idr::new_in(&b);
    b.fail_all();
    assert!(!idr2.idr_pre_get(GFP));
}

// ------------------------------------------------------------------------------------------
// IDA

fn ida_check_leaf(ida: &Ida<&TestAlloc>, base: u32) {
    for i in 0..IDA_BITMAP_BITS {
        assert_eq!(ida.ida_alloc_min(base, GFP), Ok(base + i));
    }
    ida.ida_destroy();
    assert!(ida.ida_is_empty());
    assert_eq!(ida.ida_alloc(GFP), Ok(0));
    assert!(!ida.ida_is_empty());
    ida.ida_free(0);
    assert!(ida.ida_is_empty());
}

#[test]
fn ida_checks() {
    let a = TestAlloc::new();
    let ida = Ida::new_in(&a);
    assert!(ida.ida_is_empty());
    ida_check_leaf(&ida, 0);
    ida_check_leaf(&ida, 1024);
    ida_check_leaf(&ida, 1024 * 64);
    drop(ida);
    assert_eq!(a.live(), 0);
}

#[test]
fn ida_check_alloc_free_and_bad_free() {
    let a = TestAlloc::new();
    let ida = Ida::new_in(&a);
    for i in 0..10000 {
        assert_eq!(ida.ida_alloc(GFP), Ok(i));
    }
    ida.ida_free(20);
    ida.ida_free(21);
    assert_eq!(ida.ida_alloc(GFP), Ok(20));
    assert_eq!(ida.ida_alloc(GFP), Ok(21));
    assert_eq!(ida.ida_alloc(GFP), Ok(10000));
    for i in 0..5000 {
        ida.ida_free(i);
    }
    assert_eq!(ida.ida_alloc_min(5000, GFP), Ok(10001));
    assert!(!ida.ida_exists(4999));
    assert!(ida.ida_exists(5000));
    // Freeing an unallocated id warns and changes nothing.
    ida.ida_free(4000);
    ida.ida_free(2_000_000);
    assert_eq!(ida.warnings(), 2);
    assert!(ida.ida_exists(5000));
    assert_eq!(ida.ida_alloc(GFP), Ok(0));
    ida.ida_destroy();
    assert!(ida.ida_is_empty());
    assert_eq!(ida.ida_alloc_min(1, GFP), Ok(1));
    ida.ida_free(1);
    assert!(ida.ida_is_empty());
    assert_eq!(ida.ida_alloc_min(1, GFP), Ok(1));
    assert_eq!(ida.ida_alloc_min(1025, GFP), Ok(1025));
    assert_eq!(ida.ida_alloc_min(10000, GFP), Ok(10000));
    ida.ida_free(1025);
    ida.check().unwrap();
    drop(ida);
    assert_eq!(a.live(), 0);
}

#[test]
fn ida_check_max() {
    let a = TestAlloc::new();
    let ida = Ida::new_in(&a);
    let mut j = 1u32;
    while j < 65537 {
        let base = (1u32 << 31) - j;
        for i in 0..j {
            assert_eq!(ida.ida_alloc_min(base, GFP), Ok(base + i));
        }
        assert_eq!(ida.ida_alloc_min(base, GFP), Err(Error::ENOSPC));
        ida.ida_destroy();
        assert!(ida.ida_is_empty());
        j *= 2;
    }
    assert_eq!(ida.ida_alloc_min(INT_MAX + 1, GFP), Err(Error::ENOSPC));
    assert_eq!(ida.ida_alloc_range(10, 5, GFP), Err(Error::ENOSPC));
    assert_eq!(ida.ida_alloc_max(0, GFP), Ok(0));
    assert_eq!(ida.ida_alloc_max(0, GFP), Err(Error::ENOSPC));
    drop(ida);
    assert_eq!(a.live(), 0);
}

#[test]
fn ida_check_conv_and_old_api() {
    let a = TestAlloc::new();
    let ida = Ida::new_in(&a);
    let mut id = 0;
    let mut i = 0;
    while i < IDA_BITMAP_BITS * 2 {
        assert!(ida.ida_pre_get(GFP));
        assert_eq!(ida.ida_get_new_above(i + 1, &mut id), Ok(()));
        assert_eq!(id, i + 1);
        assert_eq!(ida.ida_get_new_above(i + usize::BITS, &mut id), Ok(()));
        assert_eq!(id, i + usize::BITS);
        ida.ida_remove(i + 1);
        ida.ida_remove(i + usize::BITS);
        assert!(ida.ida_is_empty());
        i += IDA_BITMAP_BITS;
    }
    for i in 0..IDA_BITMAP_BITS * 2 {
        assert!(ida.ida_pre_get(GFP));
        assert_eq!(ida.ida_get_new(&mut id), Ok(()));
        assert_eq!(id, i);
    }
    for i in (0..IDA_BITMAP_BITS * 2).rev() {
        ida.ida_remove(i);
    }
    assert!(ida.ida_is_empty());
    drop(ida);
    // EAGAIN exactly when a value entry must become a bitmap (bit BITS_PER_XA_VALUE of each
    // chunk), once the preload is used up (a fresh IDA: nothing preloaded, as after Linux's
    // radix_tree_cpu_dead()).
    let ida = Ida::new_in(&a);
    for i in 0..20_000u32 {
        let r = ida.ida_get_new(&mut id);
        if r == Err(Error::EAGAIN) {
            assert_eq!(i % IDA_BITMAP_BITS, BITS_PER_XA_VALUE, "i {i}");
            assert!(ida.ida_pre_get(GFP));
            assert_eq!(ida.ida_get_new(&mut id), Ok(()));
        } else {
            assert_ne!(i % IDA_BITMAP_BITS, BITS_PER_XA_VALUE, "i {i}");
            assert_eq!(r, Ok(()));
        }
        assert_eq!(id, i);
    }
    ida.ida_destroy();
    drop(ida);
    assert_eq!(a.live(), 0);
}

/// lib/test_ida.c's `ida_check_conv` through the current API: the conversions between value
/// entries and bitmaps, both ways, in its three parts.
#[test]
fn ida_check_conv() {
    let a = TestAlloc::new();
    let ida = Ida::new_in(&a);
    let long = usize::BITS;
    let mut i = 0;
    while i < IDA_BITMAP_BITS * 2 {
        assert_eq!(ida.ida_alloc_min(i + 1, GFP), Ok(i + 1));
        assert_eq!(ida.ida_alloc_min(i + long, GFP), Ok(i + long));
        ida.ida_free(i + 1);
        ida.ida_free(i + long);
        assert!(ida.ida_is_empty());
        i += IDA_BITMAP_BITS;
    }
    for n in [IDA_BITMAP_BITS * 2, IDA_BITMAP_BITS + long - 4] {
        for i in 0..n {
            assert_eq!(ida.ida_alloc(GFP), Ok(i));
        }
        for i in (0..n).rev() {
            ida.ida_free(i);
        }
        assert!(ida.ida_is_empty(), "{n} ids freed in reverse");
    }
    assert_eq!(ida.warnings(), 0);
    ida.check().unwrap();
    drop(ida);
    assert_eq!(a.live(), 0);
}

#[test]
fn ida_check_nomem() {
    let a = TestAlloc::new();
    let ida = Ida::new_in(&a);
    a.fail_all();
    assert_eq!(ida.ida_alloc_min(256, Gfp::GFP_NOWAIT), Err(Error::ENOMEM));
    assert_eq!(
        ida.ida_alloc_min(1 << 30, Gfp::GFP_NOWAIT),
        Err(Error::ENOMEM)
    );
    assert!(ida.ida_is_empty());
    a.heal();
    assert_eq!(ida.ida_alloc_min(256, GFP), Ok(256));
}

#[test]
fn ida_check_random() {
    ida_check_random_with(7, 20_000);
}

/// idr-test.c's `ida_check_random`: random bits of a 2048-bit map set (allocating exactly that
/// id through the old EAGAIN API) or cleared (freeing it), on an IDA of this thread's own.
fn ida_check_random_with(seed: u64, rounds: usize) {
    let a = TestAlloc::new();
    let ida = Ida::new_in(&a);
    let mut rng = Rng(seed);
    let mut bitmap = [false; 2048];
    for _ in 0..rounds {
        let bit = rng.below(2048) as u32;
        if bitmap[bit as usize] {
            bitmap[bit as usize] = false;
            ida.ida_free(bit);
        } else {
            bitmap[bit as usize] = true;
            let mut id = 0;
            loop {
                ida.ida_pre_get(GFP);
                match ida.ida_get_new_above(bit, &mut id) {
                    Err(Error::EAGAIN) => continue,
                    r => {
                        assert_eq!(r, Ok(()));
                        break;
                    }
                }
            }
            assert_eq!(id, bit);
        }
    }
    assert_eq!(ida.warnings(), 0);
    ida.check().unwrap();
    ida.ida_destroy();
    assert!(ida.ida_is_empty());
}

/// idr-test.c's `ida_thread_tests`: 20 threads run `ida_check_random` at once, each on its own
/// IDA but sharing the node allocator (upstream: the radix-tree preload per-CPU pools; here the
/// shared test allocator), upstream for 10 s each, here for a fixed number of rounds.
#[test]
fn ida_thread_tests() {
    let threads: Vec<_> = (0..20u64)
        .map(|t| std::thread::spawn(move || ida_check_random_with(t + 1, 3_000)))
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// lib/test_ida.c's `ida_check_bad_free`: freeing 0 and every `1 << i` that is not allocated,
/// on an empty IDA, one holding a value entry, one holding a bitmap and one holding a tree,
/// warns each time and changes nothing.
#[test]
fn ida_check_bad_free() {
    let a = TestAlloc::new();
    let ida = Ida::new_in(&a);
    let free_all = |ida: &Ida<&TestAlloc>| {
        ida.ida_free(0);
        for i in 0..31 {
            ida.ida_free(1 << i);
        }
    };
    free_all(&ida);
    assert_eq!(ida.warnings(), 32, "empty IDA: 32 warnings");
    assert_eq!(ida.ida_alloc_min(3, GFP), Ok(3));
    free_all(&ida);
    assert_eq!(ida.ida_alloc_min(1023, GFP), Ok(1023));
    free_all(&ida);
    assert_eq!(ida.ida_alloc_min((1 << 20) - 1, GFP), Ok((1 << 20) - 1));
    free_all(&ida);
    assert_eq!(
        ida.warnings(),
        4 * 32,
        "no id of the form 0 or 1 << i was ever allocated"
    );
    for id in [3, 1023, (1 << 20) - 1] {
        assert!(ida.ida_exists(id));
        ida.ida_free(id);
    }
    assert!(ida.ida_is_empty());
    ida.check().unwrap();
}

/// lib/test_ida.c's `ida_check_find_first` (Linux 6.16), with the cross-chunk search case
/// added by its later fix.
#[test]
fn ida_check_find_first() {
    let a = TestAlloc::new();
    let ida = Ida::new_in(&a);
    let probes = [0u32, 3, 63, 1023, (1 << 20) - 1];
    let exists = |ida: &Ida<&TestAlloc>| probes.map(|p| ida.ida_exists(p));
    assert_eq!(exists(&ida), [false; 5]);
    assert_eq!(ida.ida_alloc_min(3, GFP), Ok(3));
    assert_eq!(exists(&ida), [false, true, false, false, false]);
    assert_eq!(ida.ida_alloc_min(63, GFP), Ok(63));
    assert_eq!(exists(&ida), [false, true, true, false, false]);
    assert_eq!(ida.ida_alloc_min(1023, GFP), Ok(1023));
    assert_eq!(exists(&ida), [false, true, true, true, false]);
    assert_eq!(ida.ida_alloc_min((1 << 20) - 1, GFP), Ok((1 << 20) - 1));
    assert_eq!(exists(&ida), [false, true, true, true, true]);

    assert_eq!(ida.ida_find_first(), Ok(3));
    assert_eq!(ida.ida_find_first_range(u32::MAX, 2), Err(Error::EINVAL));
    let cases: [(u32, u32, Result<u32, Error>); 13] = [
        (0, 2, Err(Error::ENOENT)),
        (0, 3, Ok(3)),
        (1, 3, Ok(3)),
        (3, 3, Ok(3)),
        (2, 4, Ok(3)),
        (4, 3, Err(Error::ENOENT)),
        (4, 60, Err(Error::ENOENT)),
        (4, 64, Ok(63)),
        (63, 63, Ok(63)),
        (64, 1026, Ok(1023)),
        (1023, 1023, Ok(1023)),
        (1023, (1 << 20) - 1, Ok(1023)),
        (1024, (1 << 20) - 1, Ok((1 << 20) - 1)),
    ];
    for (min, max, want) in cases {
        assert_eq!(ida.ida_find_first_range(min, max), want, "{min}..={max}");
    }
    assert_eq!(
        ida.ida_find_first_range(1 << 20, i32::MAX as u32),
        Err(Error::ENOENT)
    );
    for id in [3, 63, 1023, (1 << 20) - 1] {
        ida.ida_free(id);
    }
    assert!(ida.ida_is_empty());
    assert_eq!(ida.ida_find_first(), Err(Error::ENOENT));
    // Cross-chunk: nothing at or above 1 in chunk 0, so the search goes on to chunk 1.
    assert_eq!(ida.ida_alloc_min(0, GFP), Ok(0));
    assert_eq!(ida.ida_alloc_min(1024, GFP), Ok(1024));
    assert_eq!(ida.ida_find_first_range(1, i32::MAX as u32), Ok(1024));
    ida.ida_free(0);
    ida.ida_free(1024);
    assert!(ida.ida_is_empty());
    assert_eq!(ida.warnings(), 0);
}

/// idr-test.c's `ida_alloc_free_test` (through the current API): 10000 ids from
/// `ida_alloc_max(20000)`, then a range that is full fails, and freeing them all empties it.
#[test]
fn ida_alloc_free_test() {
    let a = TestAlloc::new();
    let ida = Ida::new_in(&a);
    for i in 0..10000 {
        assert_eq!(ida.ida_alloc_max(20000, GFP), Ok(i));
    }
    assert_eq!(ida.ida_alloc_range(5, 30, GFP), Err(Error::ENOSPC));
    for i in 0..10000 {
        ida.ida_free(i);
    }
    assert!(ida.ida_is_empty());
    ida.ida_destroy();
    drop(ida);
    assert_eq!(a.live(), 0);
}

/// The second half of idr-test.c's `ida_thread_tests`: 20 threads race to take and give back
/// the single id of `ida_alloc_range(128, 128)` on one shared IDA; nothing may leak.
#[test]
fn ida_thread_tests_leak() {
    static A: TestAlloc = TestAlloc::new();
    let ida = Ida::new_in(&A);
    std::thread::scope(|s| {
        for _ in 0..20 {
            s.spawn(|| {
                for _ in 0..2000 {
                    if ida.ida_alloc_range(128, 128, GFP).is_ok() {
                        ida.ida_free(128);
                    }
                }
            });
        }
    });
    assert!(ida.ida_is_empty());
    assert_eq!(ida.warnings(), 0);
    ida.check().unwrap();
}

/// idr-test.c's `idr_alloc2_test` (the Nov 2025 fix): with base 1, a range below the base is
/// `-ENOSPC` instead of an id outside the range.
#[test]
fn idr_alloc2_test() {
    let a = TestAlloc::new();
    let idr = Idr::with_base(&a, 1);
    assert_eq!(idr.idr_alloc(dummy(), 0, 1, GFP), Err(Error::ENOSPC));
    assert_eq!(idr.idr_alloc(dummy(), 1, 2, GFP), Ok(1));
    assert_eq!(idr.idr_alloc(dummy(), 0, 1, GFP), Err(Error::ENOSPC));
    assert_eq!(idr.idr_alloc(dummy(), 0, 2, GFP), Err(Error::ENOSPC));
    idr.idr_destroy();
}

/// lib/test_ida.c's `ida_check_destroy_1`: an IDA holding only `base` is destroyed to empty.
fn ida_check_destroy_1(ida: &Ida<&TestAlloc>, base: u32) {
    assert_eq!(ida.ida_alloc_min(base, GFP), Ok(base));
    assert!(!ida.ida_is_empty());
    ida.ida_destroy();
    assert!(ida.ida_is_empty());
}

/// lib/test_ida.c's `ida_check_destroy`: destroying an empty IDA, then one-entry IDAs at the
/// edges of a bitmap (1023, 1024) and far out (12345678).
#[test]
fn ida_check_destroy() {
    let a = TestAlloc::new();
    let ida = Ida::new_in(&a);
    assert!(ida.ida_is_empty());
    ida.ida_destroy();
    assert!(ida.ida_is_empty());
    for base in [0, 1, 1023, 1024, 12_345_678] {
        ida_check_destroy_1(&ida, base);
    }
    ida.check().unwrap();
    drop(ida);
    assert_eq!(a.live(), 0, "ida_destroy freed every node and bitmap");
}

/// idr-test.c's `idr_find_test_1`: one thread keeps allocating and removing `throbber` while
/// this one holds `anchor` and keeps asking `idr_get_next` from 0; every answer must be a real
/// entry whose value is its id (upstream runs 10 s; here a fixed number of rounds).
fn idr_find_test_1(anchor: u32, throbber: u32) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static A: TestAlloc = TestAlloc::new();
    let idr = Idr::new_in(&A);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (idr, stop) = (&idr, &stop);
        s.spawn(move || {
            let t = throbber as i32;
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(idr.idr_alloc(item(throbber as u64), t, t + 1, GFP), Ok(t));
                idr.idr_remove(throbber);
            }
        });
        let a = anchor as i32;
        let r = idr.idr_alloc(item(anchor as u64), a, a + 1, GFP);
        for _ in 0..20_000 {
            let mut id = 0;
            let e = idr.idr_get_next(&mut id);
            if e != item(id as u64) {
                stop.store(true, Ordering::Relaxed);
                panic!("idr_get_next returned {e:?} for id {id}");
            }
        }
        stop.store(true, Ordering::Relaxed);
        assert_eq!(r, Ok(a));
    });
    idr.idr_remove(anchor);
    assert!(idr.idr_is_empty());
}

#[test]
fn idr_find_test() {
    idr_find_test_1(100_000, 0);
    idr_find_test_1(0, 100_000);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn ida_matches_set_model(ops in proptest::collection::vec((any::<bool>(), 0u32..5000, 0u32..3000), 1..300)) {
        let a = TestAlloc::new();
        let ida = Ida::new_in(&a);
        let mut used = BTreeSet::new();
        for (alloc, x, span) in ops {
            if alloc {
                let want = (x..=x + span).find(|i| !used.contains(i));
                let got = ida.ida_alloc_range(x, x + span, GFP);
                match want {
                    Some(w) => { prop_assert_eq!(got, Ok(w)); used.insert(w); }
                    None => prop_assert_eq!(got, Err(Error::ENOSPC)),
                }
            } else {
                let was = used.remove(&x);
                let w0 = ida.warnings();
                ida.ida_free(x);
                prop_assert_eq!(ida.warnings() == w0, was);
            }
            if let Err(e) = ida.check() { return Err(TestCaseError::fail(e)); }
        }
        for i in 0..8000 {
            prop_assert_eq!(ida.ida_exists(i), used.contains(&i));
        }
        prop_assert_eq!(ida.ida_is_empty(), used.is_empty());
        drop(ida);
        prop_assert_eq!(a.live(), 0);
    }

    #[test]
    fn idr_matches_map_model(ops in proptest::collection::vec((0u8..4, 0u32..2000, 0u32..500), 1..300)) {
        let a = TestAlloc::new();
        let idr = Idr::new_in(&a);
        let mut m = std::collections::BTreeMap::new();
        for (op, x, span) in ops {
            match op {
                0 | 1 => {
                    let want = (x..x + span + 1).find(|i| !m.contains_key(i));
                    let got = idr.idr_alloc(item(x as u64), x as i32, (x + span + 1) as i32, GFP);
                    match want {
                        Some(w) => { prop_assert_eq!(got, Ok(w as i32)); m.insert(w, x); }
                        None => prop_assert_eq!(got, Err(Error::ENOSPC)),
                    }
                }
                2 => prop_assert_eq!(idr.idr_remove(x).and_then(|e| e.to_value()), m.remove(&x).map(|v| v as usize)),
                _ => {
                    let r = idr.idr_replace(item(span as u64), x);
                    match m.get_mut(&x) {
                        Some(v) => { prop_assert_eq!(r, Ok(item(*v as u64))); *v = span; }
                        None => prop_assert_eq!(r, Err(Error::ENOENT)),
                    }
                }
            }
        }
        let mut got = Vec::new();
        idr.idr_for_each(|id, e| { got.push((id as u32, e.to_value().unwrap() as u32)); 0 });
        let want: Vec<_> = m.iter().map(|(k, v)| (*k, *v)).collect();
        prop_assert_eq!(got, want);
    }
}

// ------------------------------------------------------------------------------------------
// Radix-tree names.

#[test]
fn radix_tree_api() {
    let a = TestAlloc::new();
    let root: RadixTreeRoot<_> = XArray::new_in(&a);
    assert!(radix_tree_empty(&root));
    for i in [0usize, 1, 5, 64, 1000, 1 << 30] {
        radix_tree_insert(&root, i, xa_mk_value(i), GFP).unwrap();
    }
    assert_eq!(
        radix_tree_insert(&root, 5, xa_mk_value(0), GFP),
        Err(Error::EEXIST)
    );
    assert_eq!(radix_tree_lookup(&root, 64), Some(xa_mk_value(64)));
    assert_eq!(radix_tree_lookup(&root, 63), None);
    assert_eq!(radix_tree_tag_set(&root, 1000, 1), Some(xa_mk_value(1000)));
    assert_eq!(radix_tree_tag_set(&root, 999, 1), None);
    assert!(radix_tree_tag_get(&root, 1000, 1));
    assert!(radix_tree_tagged(&root, 1));
    assert!(!radix_tree_tagged(&root, 2));
    let mut out = [xa_mk_value(0); 4];
    assert_eq!(radix_tree_gang_lookup(&root, &mut out, 2), 4);
    assert_eq!(
        out,
        [
            xa_mk_value(5),
            xa_mk_value(64),
            xa_mk_value(1000),
            xa_mk_value(1 << 30)
        ]
    );
    assert_eq!(radix_tree_gang_lookup(&root, &mut out[..2], 1001), 1);
    assert_eq!(radix_tree_gang_lookup_tag(&root, &mut out, 0, 1), 1);
    assert_eq!(
        radix_tree_tag_clear(&root, 1000, 1),
        Some(xa_mk_value(1000))
    );
    assert!(!radix_tree_tagged(&root, 1));
    assert_eq!(radix_tree_delete(&root, 64), Some(xa_mk_value(64)));
    assert_eq!(radix_tree_delete(&root, 64), None);
    radix_tree_preload(&root, GFP).unwrap();
    a.fail_all();
    radix_tree_insert(&root, 77_777, xa_mk_value(1), Gfp::GFP_NOWAIT).unwrap();
    radix_tree_preload_end(&root);
    a.heal();
    root.check().unwrap();
}

#[test]
fn idr_concurrent_writers_and_readers() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    // Several threads allocate and free ids while readers look them up: every id is handed to
    // one owner at a time, and a lookup of an owned id sees its owner's entry.
    static A: TestAlloc = TestAlloc::new();
    let a: &'static TestAlloc = &A;
    let idr = Arc::new(Idr::new_in(a));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for t in 0..3usize {
        let idr = Arc::clone(&idr);
        writers.push(std::thread::spawn(move || {
            let mut mine = Vec::new();
            for round in 0..3000usize {
                let tag = t << 20 | round;
                let id = idr.idr_alloc(Some(xa_mk_value(tag)), 0, 0, GFP).unwrap();
                assert_eq!(idr.idr_find(id as u32), Some(xa_mk_value(tag)));
                mine.push((id as u32, tag));
                if round % 3 == 0 {
                    let (id, tag) = mine.swap_remove(round % mine.len());
                    assert_eq!(idr.idr_remove(id), Some(xa_mk_value(tag)));
                }
            }
            mine
        }));
    }
    let reader = {
        let idr = Arc::clone(&idr);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut id = 0;
                while let Some(e) = idr.idr_get_next(&mut id) {
                    assert!(e.is_value());
                    id += 1;
                    n += 1;
                }
            }
            n
        })
    };
    let mut all = BTreeSet::new();
    let mut owned = Vec::new();
    for w in writers {
        for (id, tag) in w.join().unwrap() {
            assert!(all.insert(id), "id {id} handed out twice");
            owned.push((id, tag));
        }
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    for (id, tag) in owned {
        assert_eq!(idr.idr_find(id), Some(xa_mk_value(tag)));
    }
    idr.xarray().check().unwrap();
    let mut count = 0;
    idr.idr_for_each(|_, _| {
        count += 1;
        0
    });
    assert_eq!(count, all.len());
}

/// idr-test.c's `idr_align_test`: pointers of every alignment (into a `char` array) are stored,
/// iterated, replaced, found and removed. Pointers whose low bits look like value (x1) or
/// internal (10) entries must still come back exactly as stored.
#[test]
fn idr_align_test() {
    let a = TestAlloc::new();
    let idr = Idr::new_in(&a);
    let name = *b"Motorola 68000\0";
    let at = |i: usize| XaEntry::from_raw(name[i..].as_ptr() as usize);
    let walk = |idr: &Idr<&TestAlloc>| {
        idr.idr_for_each(|id, e| {
            assert_eq!(idr.idr_find(id as u32), Some(e));
            0
        });
    };
    for first in 0..4usize {
        for i in first..first + 9 {
            assert_eq!(idr.idr_alloc(at(i), 0, 0, GFP), Ok((i - first) as i32));
            walk(&idr);
        }
        for i in first..first + 9 {
            assert_eq!(idr.idr_find((i - first) as u32), at(i));
        }
        idr.idr_destroy();
    }
    for i in 0..8 {
        assert_eq!(idr.idr_alloc(at(i), 0, 0, GFP), Ok(0));
        assert_eq!(idr.idr_alloc(at(i + 1), 0, 0, GFP), Ok(1));
        walk(&idr);
        assert_eq!(idr.idr_remove(1), at(i + 1));
        walk(&idr);
        assert_eq!(idr.idr_remove(0), at(i));
        assert!(idr.idr_is_empty());
    }
    for i in 0..8 {
        assert_eq!(idr.idr_alloc(None, 0, 0, GFP), Ok(0));
        walk(&idr);
        assert_eq!(idr.idr_replace(at(i), 0), Ok(None));
        walk(&idr);
        assert_eq!(idr.idr_find(0), at(i));
        idr.idr_remove(0);
    }
    for i in 0..8 {
        assert_eq!(idr.idr_alloc(at(i), 0, 0, GFP), Ok(0));
        assert_eq!(idr.idr_alloc(None, 0, 0, GFP), Ok(1));
        idr.idr_remove(1);
        walk(&idr);
        assert_eq!(idr.idr_replace(at(i + 1), 0), Ok(at(i)));
        walk(&idr);
        assert_eq!(idr.idr_remove(0), at(i + 1));
    }
    assert!(idr.idr_is_empty());
    idr.xarray().check().unwrap();
    drop(idr);
    assert_eq!(a.live(), 0);
}
