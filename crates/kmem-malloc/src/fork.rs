//! Fork safety (see the crate documentation).
//!
//! # Invariants
//! - A thread inside an allocator operation is counted in its own slot of `SLOTS` (plain
//!   stores, ordered against the fork by `membarrier`) or, without a slot, in `ACTIVE`; the
//!   top bit of `ACTIVE` is set from a fork's prepare handler until its parent handler (or, in
//!   the child, its child handler) ran. A thread entering while the bit is set backs out and
//!   waits; the prepare handler waits for `ACTIVE` and every slot to be 0.
//! - A thread's `DEPTH` word (its per-thread block) equals its slot's counter whenever the
//!   thread is outside `enter`/`exit`: both are written only by the thread, together.
//! - `FORK_LOCK` serialises forks that use these handlers (held from prepare to parent/child).
//! - Every node's direct map is a private mapping ([`make_private`]), so the child gets a
//!   copy-on-write snapshot of the heap taken while no thread was inside the allocator.
//! - So is every node's memmap: its `struct page`s live in the platform's vmemmap window, not
//!   in the direct map, and [`make_private`] has the platform map private anonymous memory
//!   there (`HostedPlatform::use_private_vmemmap`). Mapped as the memfd's shared pages they
//!   would be one copy for parent and child — the buddy allocator's free lists, which run
//!   through `struct page`, corrupted by whichever allocated second — and not even the pages
//!   the private direct map holds. A node's memmap sections mapped later (memory hot-add)
//!   are private the same way, in whichever process adds them.

use core::cell::Cell;
use core::sync::atomic::{compiler_fence, AtomicBool, AtomicU32, AtomicUsize, Ordering};

use kmem::platform::Platform;

const FORK_BIT: usize = 1 << (usize::BITS - 1);
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static FORK_LOCK: AtomicU32 = AtomicU32::new(0);

/// Per-thread "inside an operation" counters, one cache line each, for the first
/// [`NR_SLOTS`] threads that use the allocator once `membarrier` works (`FAST`). A thread
/// writes only its own counter with plain (relaxed) stores: no locked instruction and no
/// shared cache line on its path, where `ACTIVE`'s `lock inc`/`lock dec` cost every
/// `malloc`/`free` two store-buffer drains (8 % of python3's profile under `LD_PRELOAD`,
/// docs/BENCHMARKS.md "Issue 14, session 6"). The fork's prepare handler raises `FORK_BIT`,
/// runs `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` — every thread of the process passes a
/// full barrier, standing in for the store→load fence the threads skip — and waits for every
/// counter to be 0. A thread stores its counter, then reads `FORK_BIT`: either the forker sees
/// the counter, or the thread sees the bit and backs out (the barrier orders one of the two).
/// Slots are never given back (a thread that has exited holds 0, which a fork ignores);
/// threads beyond [`NR_SLOTS`], and all threads when `membarrier` is missing (Valgrind),
/// count in `ACTIVE` as before.
const NR_SLOTS: usize = 256;

/// A thread's slot: its "inside an operation" counter, written only by the thread, read by
/// the forker. One cache line each, so no two threads write the same line.
#[repr(align(64))]
struct Slot(AtomicUsize);

static SLOTS: [Slot; NR_SLOTS] = [const { Slot(AtomicUsize::new(0)) }; NR_SLOTS];
/// Slots handed out so far (may exceed [`NR_SLOTS`]: the rest got none).
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
/// `membarrier` works: threads may take slots.
static FAST: AtomicBool = AtomicBool::new(false);

/// The thread's words in kmem-hosted's per-thread block (`kmem_hosted::cpu::with_thread_words`:
/// an initial-exec TLS access on x86-64 Linux, where a `thread_local!` of this shared library
/// would be a `__tls_get_addr` call). All start at 0.
/// - [`MY_SLOT`]: the thread's slot index + 1; 0 = none yet; [`NO_SLOT`] = none to be had.
/// - [`DEPTH`]: a copy of the thread's slot counter (its open operations), kept beside the
///   slot index so that entering reads only this thread's block and writes its slot: the
///   slot's line is never loaded on the way in.
/// - [`FREES`]: the thread's frees so far ([`Hold::count_free`]).
const MY_SLOT: usize = 0;
const DEPTH: usize = 1;
const FREES: usize = 2;
const NO_SLOT: usize = usize::MAX;

/// Runs `f` on this thread's words ([`MY_SLOT`], [`DEPTH`], [`FREES`]).
#[inline(always)]
fn with_words<R>(f: impl FnOnce(&[Cell<usize>; kmem_hosted::cpu::THREAD_WORDS]) -> R) -> R {
    kmem_hosted::cpu::with_thread_words(f)
}

/// How a thread entered an operation (given back to [`exit`]): its slot and the count to
/// restore, or `None` for `ACTIVE`. Carrying the slot spares `exit` looking it up again.
#[derive(Clone, Copy)]
pub struct Hold(Option<(&'static Slot, usize)>);

impl Hold {
    /// Counts a free by this thread; returns how many it made so far (for the periodic work
    /// of the free path: free page reporting, `KMEM_MALLOC_TOP`'s publication).
    #[inline(always)]
    pub fn count_free(&self) -> u64 {
        with_words(|w| {
            let n = w[FREES].get().wrapping_add(1);
            w[FREES].set(n);
            n as u64
        })
    }
}

/// Enters an allocator operation.
#[inline(always)]
pub fn enter() -> Hold {
    // This thread's slot and open operations, from its own block (no shared line read).
    let (s, v) = with_words(|w| (w[MY_SLOT].get(), w[DEPTH].get()));
    if s != 0 && s != NO_SLOT {
        let me = &SLOTS[s - 1];
        me.0.store(v + 1, Ordering::Relaxed);
        with_words(|w| w[DEPTH].set(v + 1));
        // The forker's membarrier orders the store before the load below (module docs).
        compiler_fence(Ordering::SeqCst);
        // Nested (already counted): the forker is waiting for this thread anyway.
        if v == 0 && ACTIVE.load(Ordering::Relaxed) & FORK_BIT != 0 {
            return enter_slot_forking(me);
        }
        return Hold(Some((me, v)));
    }
    enter_slow(s)
}

/// [`enter`] with a slot while a fork is being prepared: back out, wait, count again.
#[cold]
#[inline(never)]
fn enter_slot_forking(me: &'static Slot) -> Hold {
    loop {
        me.0.store(0, Ordering::Release);
        with_words(|w| w[DEPTH].set(0));
        while ACTIVE.load(Ordering::Relaxed) & FORK_BIT != 0 {
            std::thread::yield_now();
        }
        me.0.store(1, Ordering::Relaxed);
        with_words(|w| w[DEPTH].set(1));
        compiler_fence(Ordering::SeqCst);
        if ACTIVE.load(Ordering::Relaxed) & FORK_BIT == 0 {
            return Hold(Some((me, 0)));
        }
    }
}

/// [`enter`] for a thread without a slot yet (`s` = 0: claim one if `membarrier` works) or
/// without one to be had (`NO_SLOT`: count in `ACTIVE`).
#[cold]
#[inline(never)]
fn enter_slow(s: usize) -> Hold {
    if s == 0 && FAST.load(Ordering::Relaxed) {
        let i = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
        let s = if i < NR_SLOTS { i + 1 } else { NO_SLOT };
        with_words(|w| w[MY_SLOT].set(s));
        if s != NO_SLOT {
            // DEPTH is 0: a thread without a slot keeps none.
            return enter();
        }
    }
    loop {
        let v = ACTIVE.fetch_add(1, Ordering::Acquire);
        if v & FORK_BIT == 0 {
            return Hold(None);
        }
        ACTIVE.fetch_sub(1, Ordering::Relaxed);
        while ACTIVE.load(Ordering::Relaxed) & FORK_BIT != 0 {
            std::thread::yield_now();
        }
    }
}

/// Leaves an allocator operation.
#[inline(always)]
pub fn exit(h: Hold) {
    match h.0 {
        Some((slot, v)) => {
            with_words(|w| w[DEPTH].set(v));
            // Release: the operation's memory effects happen before a fork that sees 0.
            slot.0.store(v, Ordering::Release);
        }
        None => {
            ACTIVE.fetch_sub(1, Ordering::Release);
        }
    }
}

/// `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`; false if the host has none (it must be
/// registered first: [`register`]).
fn membarrier_private() -> bool {
    const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    // SAFETY: membarrier takes no pointers; it only orders memory.
    unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0 }
}

/// Registers the handlers (once, after the first node booted), and the process for
/// `membarrier` (which turns the per-thread slots on).
pub fn register() {
    const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;
    // SAFETY: membarrier takes no pointers; registering changes no memory of ours.
    let reg = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
            0,
            0,
        )
    };
    if reg == 0 && membarrier_private() {
        FAST.store(true, Ordering::Release);
    }
    // SAFETY: the handlers are `extern "C"` functions without arguments, valid for the life of
    // the process (this library is never unloaded: it is preloaded).
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}

extern "C" fn prepare() {
    while FORK_LOCK
        .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::thread::yield_now();
    }
    ACTIVE.fetch_or(FORK_BIT, Ordering::SeqCst);
    if FAST.load(Ordering::Acquire) && !membarrier_private() {
        // Cannot happen once registered; if it did, the slots could not be trusted.
        std::process::abort();
    }
    while ACTIVE.load(Ordering::Acquire) & !FORK_BIT != 0 {
        std::thread::yield_now();
    }
    let n = NEXT_SLOT.load(Ordering::Acquire).min(NR_SLOTS);
    for s in &SLOTS[..n] {
        while s.0.load(Ordering::Acquire) != 0 {
            std::thread::yield_now();
        }
    }
}

extern "C" fn parent() {
    ACTIVE.fetch_and(!FORK_BIT, Ordering::Release);
    FORK_LOCK.store(0, Ordering::Release);
}

extern "C" fn child() {
    // Only this thread exists in the child.
    crate::reporter_after_fork();
    ACTIVE.store(0, Ordering::Release);
    FORK_LOCK.store(0, Ordering::Release);
}

/// Makes a new node's direct map a private mapping of its memfd, so that `fork` copies it on
/// write like the rest of the process (see the crate documentation). Called before the node
/// boots, when the file is still empty; should it hold data, every such page is copied into
/// the private mapping first, then the file's pages are released: from then on the memfd is
/// all holes and the node's memory is anonymous memory.
///
/// Returns false if the host refused; the node must not be used then.
pub fn make_private(plat: &kmem_hosted::HostedPlatform) -> bool {
    let fd = plat.memfd();
    let len = plat.phys_end().as_u64() as usize;
    let base = plat.direct_map_base();
    // With KMEM_MALLOC_THP=1 the direct map is plain anonymous memory advised for transparent
    // huge pages (a private file mapping's copied pages cannot be huge); the file is empty
    // before boot, so the contents are the same (zero).
    let thp = crate::env(c"KMEM_MALLOC_THP") == Some("1");
    // SAFETY: replaces the node's direct map, which nobody uses yet (the machine is not
    // booted), by a private mapping of the same file range, or by anonymous memory when the
    // file is empty: the contents read the same.
    let r = unsafe {
        if thp {
            libc::mmap(
                base.cast(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_FIXED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        } else {
            libc::mmap(
                base.cast(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_FIXED,
                fd,
                0,
            )
        }
    };
    if r == libc::MAP_FAILED {
        return false;
    }
    // The memmap, mapped at boot in the vmemmap window, is private too (module invariants).
    plat.use_private_vmemmap();
    if thp {
        // SAFETY: advice on our own mapping; it does not change its contents.
        unsafe { libc::madvise(base.cast(), len, libc::MADV_HUGEPAGE) };
        return true;
    }
    // Copy on write every page the file holds, so that releasing the file loses nothing.
    let page = kmem::PAGE_SIZE;
    let mut off: libc::off_t = 0;
    while (off as usize) < len {
        // SAFETY: lseek on the platform's descriptor.
        let data = unsafe { libc::lseek(fd, off, libc::SEEK_DATA) };
        if data < 0 {
            break;
        }
        // SAFETY: `fd` is the platform's own memfd, open for the whole call; `lseek` only moves its
        // offset and reads no memory of ours.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let end = if hole < 0 {
            len
        } else {
            (hole as usize).min(len)
        };
        let mut pos = data as usize & !(page - 1);
        while pos < end {
            // SAFETY: `base + pos` is inside the direct map (pos < len); a volatile read and a
            // write of the same byte change nothing but make the page private.
            unsafe {
                let p = base.add(pos);
                p.write_volatile(p.read_volatile());
            }
            pos += page;
        }
        off = end as libc::off_t;
    }
    // SAFETY: every page with data now lives in the private mapping; the file's copies are
    // not referenced by anything any more.
    unsafe { plat.punch_hole(kmem::PhysAddr::new(0), len as u64) }.is_ok()
}
