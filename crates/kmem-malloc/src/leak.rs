//! `KMEM_MALLOC_KMEMLEAK=1`: kmem's kmemleak as a leak checker for the program.
//!
//! The nodes boot with `kmemleak=on`, so every block the program gets from kmalloc and the
//! size-class caches is a kmemleak object (blocks above the buddy allocator's largest order,
//! served by host mappings, are not tracked). A report scans, in every node:
//!
//! - the roots: every private writable mapping of the process except the nodes' own memory
//!   (from `/proc/self/maps`: the program's and its libraries' data and bss, the main
//!   thread's stack and the other threads' stacks, which are anonymous mappings), and the
//!   callee-saved registers of the reporting thread;
//! - then the grey objects, as the kernel's kmemleak does; every scan is done twice
//!   (kmemleak's checksum rule) with the minimum object age set to 0 (at exit no pointer can
//!   be in flight in a register of a task that is gone; for `SIGUSR2`, a block allocated an
//!   instant ago and held only in another thread's register may be reported).
//!
//! and writes what `/sys/kernel/debug/kmemleak` would show to standard error, after one line
//! `kmemleak: N new suspected memory leaks`. Reports are made at exit (`atexit`) and, after
//! a `SIGUSR2`, at the next allocator call of any thread (the handler only sets a flag: the
//! scan takes locks an interrupted allocation may hold).
//!
//! Limits: each node is scanned on its own, with the process's roots, so with several nodes
//! (programs using more than the first node's RAM) a block referenced only from a block of
//! another node is reported. A mapping another thread unmaps during the scan may fault.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};

use kmem_hosted::roots;

use crate::heap;
use crate::stats::FdWriter;

/// `KMEM_MALLOC_KMEMLEAK=1` was set.
static ON: AtomicBool = AtomicBool::new(false);
/// A `SIGUSR2` asked for a report.
static PENDING: AtomicBool = AtomicBool::new(false);
/// One report at a time (its buffers are static).
static BUSY: AtomicBool = AtomicBool::new(false);

/// Whether the environment asks for kmemleak (read before the first node boots).
pub(crate) fn wanted() -> bool {
    crate::env(c"KMEM_MALLOC_KMEMLEAK") == Some("1")
}

/// After the first node booted: the exit report and the `SIGUSR2` handler.
pub(crate) fn register() {
    if !wanted() {
        return;
    }
    ON.store(true, Ordering::Relaxed);
    // SAFETY: `at_exit` is an `extern "C"` function valid for the life of the process;
    // `on_sigusr2` only stores to an atomic (async-signal-safe); the sigaction struct is
    // zeroed and filled as sigaction(2) asks.
    unsafe {
        libc::atexit(at_exit);
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = on_sigusr2 as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGUSR2, &sa, core::ptr::null_mut());
    }
}

extern "C" fn on_sigusr2(_sig: libc::c_int) {
    PENDING.store(true, Ordering::Relaxed);
}

extern "C" fn at_exit() {
    report();
}

/// After an allocator call: the report a `SIGUSR2` asked for. One load when none did.
#[inline]
pub(crate) fn check() {
    if PENDING.load(Ordering::Relaxed) && PENDING.swap(false, Ordering::Relaxed) {
        report();
    }
}

/// Most root mappings taken from `/proc/self/maps`.
const MAX_RANGES: usize = 1024;

/// The buffers of a report (static: the report runs on any thread's stack, and allocates
/// nothing).
struct Buffers {
    maps: [u8; 256 << 10],
    ranges: [(usize, usize); MAX_RANGES],
}

static mut BUFFERS: Buffers = Buffers {
    maps: [0; 256 << 10],
    ranges: [(0, 0); MAX_RANGES],
};

/// Scans every node and writes the suspected leaks to standard error.
#[inline(never)]
fn report() {
    if !ON.load(Ordering::Relaxed) || BUSY.swap(true, Ordering::Acquire) {
        return;
    }
    let regs = roots::callee_saved_registers();
    // SAFETY: BUSY gives this call the buffers alone.
    let b = unsafe { &mut *core::ptr::addr_of_mut!(BUFFERS) };
    let len = roots::read_self_maps(&mut b.maps);
    // The nodes' own memory is not a root.
    let node_memory = |start: usize, end: usize| {
        (0..heap::nr_nodes()).any(|i| {
            let nd = heap::node(i);
            start < nd.dm_end && end > nd.dm_start
        })
    };
    let nr = roots::root_ranges(
        &b.maps[..len],
        roots::stack_pointer(),
        &node_memory,
        &mut b.ranges,
    );
    let ranges = &b.ranges[..nr];
    let mut new = 0;
    for i in 0..heap::nr_nodes() {
        let nd = heap::node(i);
        nd.m.kmemleak_set_min_age(0);
        // SAFETY: the ranges are mappings of this process that were readable and writable a
        // moment ago (see the module documentation for threads unmapping them).
        new += unsafe {
            nd.m.kmemleak_scan_ranges(ranges, &regs) + nd.m.kmemleak_scan_ranges(ranges, &regs)
        };
    }
    let mut w = FdWriter::new(2);
    let _ = writeln!(w, "kmemleak: {new} new suspected memory leaks");
    for i in 0..heap::nr_nodes() {
        let _ = heap::node(i)
            .m
            .proc_read("/sys/kernel/debug/kmemleak", &mut w);
    }
    w.flush();
    BUSY.store(false, Ordering::Release);
}
