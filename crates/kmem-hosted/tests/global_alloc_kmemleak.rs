//! `KmemAlloc` booted with `kmemleak=on` (and KFENCE): kmemleak as a leak checker for a Rust
//! program. A `Box` whose only pointer is lost is reported, with its contents and its
//! allocation stack; one kept in a static is not.

use std::sync::atomic::{AtomicUsize, Ordering};

use kmem::slab::common::SlabAllocatorKind;
use kmem_hosted::KmemAlloc;

#[global_allocator]
static A: KmemAlloc = KmemAlloc::with_cmdline(
    256 << 20,
    SlabAllocatorKind::Slub,
    "kmemleak=on kfence.sample_interval=100",
);

/// A root in `.bss`.
static KEPT: AtomicUsize = AtomicUsize::new(0);

#[inline(never)]
fn lose() {
    let p = Box::into_raw(Box::new([b'L'; 100]));
    // Only the complement is kept anywhere: the block is unreferenced.
    std::hint::black_box(!(p as usize));
}

#[inline(never)]
fn keep() {
    let p = Box::into_raw(Box::new([b'K'; 100]));
    KEPT.store(p as usize, Ordering::Relaxed);
}

/// Overwrites the dead stack below the caller's frame, where `lose`'s frame was (a
/// conservative scan of the live stack would otherwise find its stale pointer).
#[inline(never)]
fn scrub() {
    let mut buf = [0u8; 16384];
    std::hint::black_box(&mut buf);
}

#[test]
fn a_lost_box_is_reported_with_its_stack() {
    let m = A.machine().expect("machine booted");
    assert!(m.kmemleak_enabled());
    lose();
    keep();
    scrub();
    let mut out = String::new();
    let new = A.kmemleak_report(&mut out);
    assert!(new >= 1, "{out}");
    assert!(out.starts_with(&format!("kmemleak: {new} new suspected memory leaks\n")));
    let lost = out
        .split("unreferenced object ")
        .find(|o| o.contains("4c 4c 4c 4c 4c 4c 4c 4c 4c 4c 4c 4c 4c 4c 4c 4c  LLLLLLLLLLLLLLLL"))
        .unwrap_or_else(|| panic!("the lost box is not reported:\n{out}"));
    assert!(lost.contains(" (size "), "{lost}");
    assert!(lost.contains("  backtrace (crc "), "{lost}");
    assert!(lost.contains("] global_alloc_kmemleak::lose+0x"), "{lost}");
    assert!(
        !out.contains("KKKKKKKKKKKKKKKK"),
        "the kept box is reported:\n{out}"
    );
    // A second report finds nothing new; the lost box is still listed.
    let mut again = String::new();
    assert_eq!(A.kmemleak_report(&mut again), 0, "{again}");
    assert!(again.contains("LLLLLLLLLLLLLLLL"));
}
