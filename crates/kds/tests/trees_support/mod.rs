//! Test support for the tree/map tests: a std-backed `NodeAlloc` that counts live blocks and
//! fails on demand (the kernel suites' allocation-failure injection), and a small PRNG.
#![allow(dead_code)]

extern crate std;

use core::alloc::Layout;
use core::ptr::NonNull;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use kds::alloc::{Gfp, NodeAlloc};

/// A counting allocator that can be told to fail.
#[derive(Default)]
pub struct TestAlloc {
    live: AtomicIsize,
    allocs: AtomicUsize,
    /// Number of further allocations that succeed before every one fails (usize::MAX: never fail).
    budget: AtomicUsize,
    failures: AtomicUsize,
}

impl TestAlloc {
    pub const fn new() -> Self {
        TestAlloc {
            live: AtomicIsize::new(0),
            allocs: AtomicUsize::new(0),
            budget: AtomicUsize::new(usize::MAX),
            failures: AtomicUsize::new(0),
        }
    }
    /// Lets `n` more allocations succeed, then fails all.
    pub fn fail_after(&self, n: usize) {
        self.budget.store(n, Ordering::SeqCst);
    }
    /// Fails every allocation from now on.
    pub fn fail_all(&self) {
        self.fail_after(0);
    }
    /// Stops failing.
    pub fn heal(&self) {
        self.budget.store(usize::MAX, Ordering::SeqCst);
    }
    /// Blocks currently allocated.
    pub fn live(&self) -> isize {
        self.live.load(Ordering::SeqCst)
    }
    /// Allocations that succeeded so far.
    pub fn allocs(&self) -> usize {
        self.allocs.load(Ordering::SeqCst)
    }
    /// Allocations refused so far.
    pub fn failures(&self) -> usize {
        self.failures.load(Ordering::SeqCst)
    }
}

// SAFETY: forwards to std's global allocator, which returns fitting blocks or null.
unsafe impl NodeAlloc for TestAlloc {
    fn alloc(&self, layout: Layout, _gfp: Gfp) -> Option<NonNull<u8>> {
        let b = self.budget.load(Ordering::SeqCst);
        if b != usize::MAX {
            if b == 0 {
                self.failures.fetch_add(1, Ordering::SeqCst);
                return None;
            }
            self.budget.store(b - 1, Ordering::SeqCst);
        }
        // SAFETY: node layouts are never zero-sized.
        let p = NonNull::new(unsafe { std::alloc::alloc(layout) })?;
        self.live.fetch_add(1, Ordering::SeqCst);
        self.allocs.fetch_add(1, Ordering::SeqCst);
        Some(p)
    }
    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) {
        self.live.fetch_sub(1, Ordering::SeqCst);
        // SAFETY: the caller passes a block from `alloc` with the same layout.
        unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) }
    }
}

/// xorshift64*: deterministic randomness for the ported randomised kernel tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
