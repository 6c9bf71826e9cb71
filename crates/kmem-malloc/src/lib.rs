//! # libkmem_malloc.so: kmem as the C allocator of real programs
//!
//! ```text
//! cargo build --release -p kmem-malloc
//! LD_PRELOAD=target/release/libkmem_malloc.so PYTHONMALLOC=malloc python3 script.py
//! ```
//!
//! Exports `malloc`, `free`, `calloc`, `realloc`, `reallocarray`, `memalign`,
//! `posix_memalign`, `aligned_alloc`, `valloc`, `pvalloc` and `malloc_usable_size` with glibc's
//! semantics, and the sized frees `free_sized`, `free_aligned_sized` (C23) and `sdallocx`: 16-byte alignment; `malloc(0)` returns a unique pointer; `realloc(p, 0)` frees
//! and returns NULL; failures return NULL with `errno = ENOMEM`; `posix_memalign` returns
//! `EINVAL` for an alignment that is not a power of two multiple of `sizeof(void *)`;
//! `aligned_alloc` fails with `EINVAL` for one that is not a power of two when the running
//! glibc is 2.38 or later (and rounds it up before, like `memalign`);
//! `memalign` rounds such an alignment up; `pvalloc` rounds the size up to pages.
//!
//! Requests are served by one kmem machine (node 0), see [`heap`]: kmalloc/SLUB for small and
//! medium blocks, the buddy allocator for large ones, host mappings for the largest; the
//! machine grows by memory hotplug (128 MiB blocks added and onlined) when it runs low, gives
//! blocks that are all free back (offlined and removed), and free page reporting returns free
//! memory to the host. `malloc_trim` (glibc's, `<malloc.h>`) does all of that at once, from
//! the calling thread ([`heap::malloc_trim`]).
//!
//! # Threads, fork, exit
//! - Each thread is a CPU of every node (exclusive per-CPU slabs and page lists: the fast
//!   paths); a thread's exit takes its CPU offline, which drains its per-CPU caches (the
//!   platform's thread-exit hook, `kmem_hosted::cpu`).
//! - `fork`: each node's direct map is made a *private* mapping of its memfd before the node
//!   boots (the hosted platform maps it shared, which a child would share with its parent),
//!   so the heap is anonymous memory that `fork` copies on write; so is each node's memmap
//!   (its `struct page`s, in the vmemmap window: `HostedPlatform::use_private_vmemmap`).
//!   A `pthread_atfork` prepare handler waits
//!   until no thread is inside the allocator and holds new callers off until the fork is done,
//!   so the child's snapshot is consistent. Threads mark themselves inside with a plain store
//!   to a per-thread counter, which the handler reads after `membarrier` (no locked
//!   instruction on `malloc`/`free`; `fork.rs`).
//! - Per-thread state (the thread's CPU, its fork slot, its free count) is one block of
//!   kmem-hosted's (`kmem_hosted::cpu::with_thread_words`) in the initial-exec TLS model on
//!   x86-64 Linux: a `mov %fs:0` and an add per function, no `__tls_get_addr` call. The
//!   library is marked `DF_STATIC_TLS`: preloaded or linked it costs nothing; loaded with
//!   `dlopen` after start, glibc serves its TLS segment (under 1 KiB) from the static TLS
//!   surplus (1,664 bytes by default: `glibc.rtld.nns`, `glibc.rtld.optional_static_tls`),
//!   initialising it in every running thread, and refuses the `dlopen` ("cannot allocate
//!   memory in static TLS block") when the surplus is used up (`tests/dlopen.rs`).
//! - Exit: with `KMEM_MALLOC_STATS=FILE`, an `atexit` handler writes the allocator's counters
//!   and each node's kernel log (`slub_debug` reports land there), /proc/meminfo,
//!   /proc/buddyinfo and /proc/slabinfo to FILE.
//!
//! # Environment
//! - `KMEM_SLUB_DEBUG=FZPU` boots the nodes with `slub_debug=FZPU` (any `slub_debug=`
//!   value; empty means all checks);
//! - `KMEM_MALLOC_SLAB=slab|slub|slob`: the slab allocator of the nodes (`slab=`; default
//!   SLUB). Under SLOB every block is a kmalloc block (SLOB frees cache objects only by
//!   cache), moved up by 8 bytes when SLOB's 8-byte alignment falls short of malloc's 16;
//! - `KMEM_MALLOC_RAM_MB=N`: RAM of the machine at boot (default 16, at least 16);
//! - `KMEM_MALLOC_MAX_MB=N`: physical address space the machine may grow to by memory
//!   hotplug (default 65536, 64 GiB, at most 4096 with `KMEM_MALLOC_KMEMCHECK`; `malloc`
//!   fails with ENOMEM beyond it);
//! - `KMEM_MALLOC_STATS=FILE`: statistics at exit (above). Every `%p` in FILE becomes the
//!   process ID (`%%` a `%`), so each preloaded process of a command (a wrapper such as
//!   `timeout` or `/usr/bin/time` and the program) writes its own file, as valgrind's
//!   `--log-file=...%p`; without `%p` each exiting process replaces FILE whole (written
//!   beside it as `FILE.PID.tmp` and renamed), so it holds the last one's dump;
//! - `KMEM_MALLOC_TOP=1`: publish the statistics (those of the exit dump, plus the first
//!   node's /proc/zoneinfo) in `/dev/shm/kmem-malloc.PID` for `kmem top --pid PID`, at most
//!   every 200 ms, from the free path and after each pass of the free page reporting
//!   thread (so an idle program's file shows what the pass gave back); written to a
//!   temporary file and renamed, so readers never
//!   see half of it; removed at exit;
//! - `KMEM_MALLOC_REPORT=0`: no free page reporting;
//! - `KMEM_MALLOC_REPORT_ORDER=N`: the smallest free blocks free page reporting gives back to
//!   the host while the program runs are of order N (default 9, a pageblock, Linux's
//!   `page_reporting_order`; an idle program's pass goes down to order 0 without THP);
//! - `KMEM_MALLOC_ABORT=0`: after a kernel report (a double free, a use after free or an
//!   overflow caught by `KMEM_SLUB_DEBUG`, any BUG), go on instead of aborting; the report is
//!   on standard error either way (see "Reports" below);
//! - `KMEM_MALLOC_THP=1`: the nodes' memory is anonymous memory advised for transparent huge
//!   pages (about 8% less CPU time for Python's allocation-heavy script, 3% more peak RSS);
//! - `KMEM_MALLOC_KFENCE=INTERVAL_MS`: KFENCE on the nodes (`kfence.sample_interval=`): one
//!   allocation every INTERVAL_MS is served from a guarded page, so an overflow into its
//!   guard page faults and a use after free faults (reported at once into the node's log and
//!   shown at the next allocator call, see "Reports"), and a write into its page's slack is
//!   found when it is freed. A small block is a KFENCE object of its size class, so only
//!   writes past the class size (`malloc_usable_size`) reach the guard page;
//! - `KMEM_MALLOC_KMEMLEAK=1`: the nodes boot with `kmemleak=on`; a leak report (kmemleak's
//!   scan with the program's data, bss, stacks and registers as roots) goes to standard
//!   error at exit and after a `SIGUSR2` (see `leak.rs`);
//! - `KMEM_MALLOC_STACK=unwind|fp|off`: how the reports' stacks (kmemleak's `backtrace`,
//!   KFENCE's allocation, free and access stacks, `slub_debug`'s tracks) are walked. `unwind`
//!   (the default) is the toolchain's `.eh_frame` unwinder (`_Unwind_Backtrace`): it follows
//!   code built without frame pointers (kmem's own Rust code; most packaged C programs), and
//!   with glibc ≥ 2.35 and libgcc ≥ 12 it neither allocates nor takes a lock (its lookup is
//!   `_dl_find_object`). `fp` follows the frame-pointer chain, bounded by the thread's stack:
//!   it cannot fault or allocate, but this build of kmem has no frame pointers, so the chain
//!   breaks inside the allocator and the stacks come out empty unless the library is built
//!   with `-C force-frame-pointers=yes` (and then they stop at the first C function built
//!   without frame pointers). `off`: no stacks (reports name kmem's call site);
//! - `KMEM_MALLOC_KMEMCHECK=1`: kmemcheck on the nodes (`kmemcheck=1`; `2` reports once),
//!   with real traps: the heap's slab and large-kmalloc pages are `PROT_NONE`, every load and
//!   store to them faults, is decoded and checked against kmemcheck's shadow, and is
//!   single-stepped; a load of bytes none of which was written since `malloc` (or written
//!   before `free`) is reported once per instruction, in kmemcheck's format, on standard
//!   error at the next allocator call or at exit; the program goes on. Slow (two signals per
//!   heap access); see docs/KMEMCHECK.md for what it finds in real programs.
//!   `KMEM_MALLOC_KMEMCHECK_UNHIDE=0|1|2` (`kmemcheck.unhide=`): which pages stop trapping —
//!   never, those whose bytes are all initialised (the default), those with no uninitialised
//!   byte;
//! - `KMEM_FREELIST_RANDOM=1`: keep SLUB's randomised freelists (by default the nodes boot
//!   with `slab_freelist_random=off`: programs gain from allocation-order locality).
//!
//! # No recursion
//! Nothing on the allocation paths allocates: kmem is `no_std`, the hosted platform's hot
//! paths do not allocate, and this crate uses no `std` collections. The first call boots the
//! first node through [`kmem_hosted::once::BootOnce`] (one thread boots, the others wait).
//! Should the booting thread re-enter `malloc` (a libc call during boot that allocates), it
//! is served from a static [`kmem_hosted::once::BumpArena`] of 256 KiB whose blocks are never
//! freed (`free` ignores them; `realloc` moves them out); `realloc` and `free` of other
//! blocks re-entered during boot do nothing (`realloc` fails). If the boot fails, one line on
//! standard error says why, and every allocation fails with `ENOMEM`.
//!
//! # Reports
//! The nodes' kernel logs are not printed (their boot logs would flood the program's standard
//! error), but a BUG or slab debugging report — a C double free, a use after free caught by
//! poisoning, a heap overflow caught by red zones, a KFENCE report — is copied from the log to standard error
//! and the process aborts, as glibc's malloc does (`KMEM_MALLOC_ABORT=0` to go on).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod fork;
pub mod heap;
mod leak;
mod report;
mod stats;

use core::ffi::{c_int, c_void};
use core::ptr;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use kmem::PAGE_SIZE;
use kmem_hosted::once::{Boot, BootOnce, BumpArena};

/// The first node's boot (the nodes themselves live in [`heap`]'s tables).
static BOOT: BootOnce<()> = BootOnce::new();

/// Bytes of the boot arena.
const ARENA_LEN: usize = 256 << 10;
/// Serves the booting thread when it re-enters (see the crate documentation).
static ARENA: BumpArena<ARENA_LEN> = BumpArena::new();

/// A block of the boot arena: 16-byte aligned (or more), at least one byte.
fn arena_alloc(size: usize, align: usize) -> *mut u8 {
    ARENA.alloc(size.max(1), align.max(16))
}

fn in_arena(p: *mut u8) -> bool {
    ARENA.contains(p)
}

/// Reads an environment variable without allocating.
pub(crate) fn env(name: &core::ffi::CStr) -> Option<&'static str> {
    // SAFETY: `name` is NUL-terminated; getenv returns NULL or a NUL-terminated string that
    // lives as long as the environment is not modified (we read it once, at boot).
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated C string from the environment.
    unsafe { core::ffi::CStr::from_ptr(p) }.to_str().ok()
}

/// Free page reporting enabled (`KMEM_MALLOC_REPORT`).
pub(crate) static REPORTING_ON: AtomicU8 = AtomicU8::new(1);

/// After each pass of the free page reporting thread (`heap`): publishes the statistics
/// for `kmem top` when `KMEM_MALLOC_TOP` is set (`stats`; kept here, above both modules).
pub(crate) fn reporter_published() {
    stats::publish_tick();
}

/// The reporting thread of this process: none yet, wanted (a free asked for a pass), running,
/// or failed to start (not retried).
pub(crate) static REPORTER: AtomicUsize = AtomicUsize::new(REPORTER_NONE);
pub(crate) const REPORTER_NONE: usize = 0;
pub(crate) const REPORTER_WANTED: usize = 1;
pub(crate) const REPORTER_RUNNING: usize = 2;
pub(crate) const REPORTER_FAILED: usize = 3;
/// Whether a free asked for the reporting thread and it is not running yet (checked by the
/// C entry points after an operation, outside the fork hold).
#[inline]
pub(crate) fn reporter_wanted() -> bool {
    REPORTER.load(Ordering::Relaxed) == REPORTER_WANTED
}

/// In a forked child: the parent's reporting thread does not exist here; the next pass a
/// free asks for starts one.
pub(crate) fn reporter_after_fork() {
    if REPORTER.load(Ordering::Relaxed) == REPORTER_RUNNING {
        REPORTER.store(REPORTER_WANTED, Ordering::Relaxed);
    }
}

/// Boots the first node if needed: `Ready`, `Failed`, or `Reentered` when this thread is the
/// one booting. Once booted (READY published), the booting thread registers the fork and
/// exit handlers, which may themselves call `malloc` and find it ready.
#[inline]
fn ensure_init() -> Boot<'static, ()> {
    BOOT.get_or_boot_then(
        || boot().then_some(()),
        |()| {
            fork::register();
            stats::register();
            leak::register();
            report::register_exit();
        },
    )
}

/// `KMEM_MALLOC_KMEMCHECK=1|2`: the value for `kmemcheck=`.
pub(crate) fn kmemcheck_wanted() -> Option<&'static str> {
    env(c"KMEM_MALLOC_KMEMCHECK").filter(|v| matches!(*v, "1" | "2"))
}

fn boot() -> bool {
    let mut cmdline = [0u8; 128];
    // Allocation-order locality matters more to programs than freelist hardening (Python's
    // garbage collector walks objects in allocation order: about 2x faster without it).
    let base: &[u8] = if env(c"KMEM_FREELIST_RANDOM") == Some("1") {
        b""
    } else {
        b"slab_freelist_random=off "
    };
    cmdline[..base.len()].copy_from_slice(base);
    let mut len = base.len();
    if let Some(v) = env(c"KMEM_SLUB_DEBUG") {
        let prefix: &[u8] = if v.is_empty() {
            b"slub_debug"
        } else {
            b"slub_debug="
        };
        for &b in prefix.iter().chain(v.as_bytes()).take(cmdline.len() - len) {
            cmdline[len] = b;
            len += 1;
        }
    }
    if let Some(v) = env(c"KMEM_MALLOC_SLAB").filter(|v| matches!(*v, "slab" | "slub" | "slob")) {
        for &b in b" slab="
            .iter()
            .chain(v.as_bytes())
            .take(cmdline.len() - len)
        {
            cmdline[len] = b;
            len += 1;
        }
    }
    // KFENCE samples one allocation every INTERVAL_MS (`kfence.sample_interval=`).
    if let Some(v) = env(c"KMEM_MALLOC_KFENCE").filter(|v| v.parse::<u64>().is_ok()) {
        for &b in b" kfence.sample_interval="
            .iter()
            .chain(v.as_bytes())
            .take(cmdline.len() - len)
        {
            cmdline[len] = b;
            len += 1;
        }
    }
    // kmemcheck with real traps (`kmemcheck=1`, or 2: one report, then off).
    if let Some(v) = kmemcheck_wanted() {
        for &b in b" kmemcheck="
            .iter()
            .chain(v.as_bytes())
            .take(cmdline.len() - len)
        {
            cmdline[len] = b;
            len += 1;
        }
    }
    // Which hidden pages kmemcheck may leave present (`kmemcheck.unhide=`, default 1).
    if let Some(v) = env(c"KMEM_MALLOC_KMEMCHECK_UNHIDE").filter(|v| matches!(*v, "0" | "1" | "2"))
    {
        for &b in b" kmemcheck.unhide="
            .iter()
            .chain(v.as_bytes())
            .take(cmdline.len() - len)
        {
            cmdline[len] = b;
            len += 1;
        }
    }
    if leak::wanted() {
        for &b in b" kmemleak=on".iter().take(cmdline.len() - len) {
            cmdline[len] = b;
            len += 1;
        }
    }
    heap::set_cmdline(core::str::from_utf8(&cmdline[..len]).unwrap_or(""));
    if env(c"KMEM_MALLOC_REPORT") == Some("0") {
        REPORTING_ON.store(0, Ordering::Relaxed);
    }
    report::configure();
    let ram = env(c"KMEM_MALLOC_RAM_MB")
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(heap::FIRST_NODE_RAM, |mb| mb.clamp(16, 1 << 16) << 20);
    match heap::init_first(ram) {
        Ok(()) => true,
        Err(e) => {
            // Once: the boot is not retried (BootOnce remembers the failure).
            report::boot_failed(ram, e.what, e.errno);
            false
        }
    }
}

/// The stack walker of the reports' stacks (`KMEM_MALLOC_STACK`).
fn stack_walk() -> kmem_hosted::StackWalk {
    match env(c"KMEM_MALLOC_STACK") {
        Some("fp") => kmem_hosted::StackWalk::FramePointers,
        Some("off") => kmem_hosted::StackWalk::Off,
        _ => kmem_hosted::StackWalk::Unwind,
    }
}

fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns the calling thread's errno.
    unsafe { *libc::__errno_location() = e };
}

/// Runs an allocator operation: boots on first use, holds off `fork` while running.
#[inline]
fn op<R>(booting: impl FnOnce() -> R, f: impl FnOnce(&fork::Hold) -> R) -> Option<R> {
    match ensure_init() {
        Boot::Ready(()) => {
            let h = fork::enter();
            let r = f(&h);
            fork::exit(h);
            // Outside the fork hold: a report may abort the process.
            report::check();
            leak::check();
            Some(r)
        }
        Boot::Reentered => Some(booting()),
        Boot::Failed => None,
    }
}

fn alloc_or_enomem(p: Option<*mut u8>) -> *mut c_void {
    match p {
        Some(p) => p.cast(),
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// `malloc`.
///
/// # Safety
/// As C's `malloc`.
#[no_mangle]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    let r = op(
        || Some(arena_alloc(size, 16)).filter(|p| !p.is_null()),
        |_| heap::alloc(size, false),
    );
    alloc_or_enomem(r.flatten())
}

/// `calloc`.
///
/// # Safety
/// As C's `calloc`.
#[no_mangle]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else {
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    };
    // The arena is static memory never handed out twice: already zero.
    let r = op(
        || Some(arena_alloc(total, 16)).filter(|p| !p.is_null()),
        |_| heap::alloc(total, true),
    );
    alloc_or_enomem(r.flatten())
}

/// `free`.
///
/// # Safety
/// As C's `free`: `p` is NULL or a live block from this allocator.
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    let p = p.cast::<u8>();
    if p.is_null() || in_arena(p) {
        return;
    }
    let _ = op(
        || (),
        |h| {
            let n = h.count_free();
            heap::free(p, n);
            stats::free_tick(n);
        },
    );
    if reporter_wanted() {
        heap::start_reporter();
    }
}

/// `free_sized` (C23): frees `p`, allocated with `size` bytes. The size is used to skip the
/// size lookup a large block's free would otherwise make; which cache the block goes back
/// to still follows from its `struct page`, so a wrong size (undefined behaviour in C23) is
/// not trusted: `realloc` keeps blocks in place across size classes.
///
/// # Safety
/// As C23's `free_sized`: `p` is NULL or a live block from this allocator.
#[no_mangle]
pub unsafe extern "C" fn free_sized(p: *mut c_void, size: usize) {
    let p = p.cast::<u8>();
    if p.is_null() || in_arena(p) {
        return;
    }
    let _ = op(
        || (),
        |h| {
            let n = h.count_free();
            heap::free_sized(p, size, n);
            stats::free_tick(n);
        },
    );
    if reporter_wanted() {
        heap::start_reporter();
    }
}

/// `free_aligned_sized` (C23): frees `p` from `aligned_alloc(align, size)`.
///
/// # Safety
/// As C23's `free_aligned_sized`: `p` is NULL or a live block from this allocator.
#[no_mangle]
pub unsafe extern "C" fn free_aligned_sized(p: *mut c_void, _align: usize, size: usize) {
    // SAFETY: forwarded; the alignment changes neither the block's owner nor its size hint.
    unsafe { free_sized(p, size) }
}

/// `sdallocx` (jemalloc's sized free): `flags` may carry `MALLOCX_LG_ALIGN` (low 6 bits),
/// which does not change how the block is freed.
///
/// # Safety
/// As jemalloc's `sdallocx`: `p` is a live block from this allocator (NULL is ignored).
#[no_mangle]
pub unsafe extern "C" fn sdallocx(p: *mut c_void, size: usize, _flags: c_int) {
    // SAFETY: forwarded.
    unsafe { free_sized(p, size) }
}

/// `realloc`.
///
/// # Safety
/// As C's `realloc`.
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    let p = p.cast::<u8>();
    if p.is_null() {
        // SAFETY: forwarded.
        return unsafe { malloc(size) };
    }
    if size == 0 {
        // glibc (REALLOC_ZERO_BYTES_FREES): frees and returns NULL.
        // SAFETY: forwarded.
        unsafe { free(p.cast()) };
        return ptr::null_mut();
    }
    if in_arena(p) {
        // SAFETY: forwarded.
        let q = unsafe { malloc(size) }.cast::<u8>();
        if !q.is_null() {
            let avail = ARENA.bytes_from(p);
            // SAFETY: `q` has `size` bytes; `p` has at least `min(size, avail)` readable
            // bytes (the rest of the arena); the blocks are distinct.
            unsafe { ptr::copy_nonoverlapping(p, q, size.min(avail)) };
        }
        return q.cast();
    }
    let r = op(|| None, |h| realloc_inner(p, size, h));
    alloc_or_enomem(r.flatten())
}

fn realloc_inner(p: *mut u8, size: usize, h: &fork::Hold) -> Option<*mut u8> {
    let old = match heap::ksize_in_node(p) {
        Some(ks) => {
            // In place while the block is big enough and not much too big (glibc shrinks in
            // place; kmem classes are at most 2x apart, large blocks are released if halved).
            if size <= ks && (size * 2 > ks || ks <= 64) {
                return Some(p);
            }
            ks
        }
        None => {
            if heap::is_huge(p as usize) && size > kmem::slab::common::KMALLOC_MAX_SIZE {
                return heap::huge_realloc(p as usize, size);
            }
            let u = heap::usable_size(p);
            if u == 0 {
                // Not ours: nothing sane to copy from.
                return None;
            }
            u
        }
    };
    let q = heap::alloc(size, false)?;
    match heap::node_of(q as usize).filter(|nd| nd.m.kmemcheck_built()) {
        // SAFETY: `p` has `old` usable bytes, `q` has `size`; distinct live blocks. kmemcheck
        // copies the shadow with the bytes (the copy of a block's unwritten tail is no read
        // of uninitialised memory by the program).
        Some(nd) => unsafe { nd.m.kmemcheck_memcpy(q, p, old.min(size)) },
        // SAFETY: `p` is a live block with `old` usable bytes and `q` a fresh one with `size`, so
        // `old.min(size)` bytes are in bounds of both; `q` was just allocated, so the two do not
        // overlap.
        None => unsafe { ptr::copy_nonoverlapping(p, q, old.min(size)) },
    }
    heap::free(p, h.count_free());
    Some(q)
}

/// `reallocarray` (glibc 2.26).
///
/// # Safety
/// As C's `reallocarray`.
#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: forwarded.
        Some(total) => unsafe { realloc(p, total) },
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

fn aligned(align: usize, size: usize) -> *mut c_void {
    let r = op(
        || Some(arena_alloc(size, align)).filter(|p| !p.is_null()),
        |_| heap::alloc_aligned(size, align),
    );
    alloc_or_enomem(r.flatten())
}

/// `memalign`: a non-power-of-two alignment is rounded up to one (glibc's `_int_memalign`).
///
/// # Safety
/// As C's `memalign`.
#[no_mangle]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    if align > usize::MAX / 2 + 1 {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    let align = align.max(1).next_power_of_two();
    aligned(align, size)
}

/// Whether the running glibc is 2.38 or later (its `aligned_alloc` rejects alignments that
/// are not powers of two; earlier ones round them up like `memalign`).
fn glibc_2_38() -> bool {
    static CACHED: AtomicU8 = AtomicU8::new(0);
    match CACHED.load(Ordering::Relaxed) {
        1 => return false,
        2 => return true,
        _ => {}
    }
    // SAFETY: returns a static NUL-terminated version string.
    let v = unsafe { core::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
    let mut it = v.to_str().unwrap_or("0.0").split('.');
    let major: u32 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let minor: u32 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
    let new = (major, minor) >= (2, 38);
    CACHED.store(if new { 2 } else { 1 }, Ordering::Relaxed);
    new
}

/// `aligned_alloc`: like the running glibc, `EINVAL` for an alignment that is not a power of
/// two from glibc 2.38 on, and `memalign`'s rounding up before.
///
/// # Safety
/// As C's `aligned_alloc`.
#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        if glibc_2_38() {
            set_errno(libc::EINVAL);
            return ptr::null_mut();
        }
        // SAFETY: forwarded.
        return unsafe { memalign(align, size) };
    }
    aligned(align, size)
}

/// `posix_memalign`: `EINVAL` unless the alignment is a power of two multiple of
/// `sizeof(void *)`, `ENOMEM` when memory is exhausted; `*out` is set only on success and
/// `errno` is not changed.
///
/// # Safety
/// As C's `posix_memalign`: `out` is valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !align.is_power_of_two() || align & (core::mem::size_of::<*mut c_void>() - 1) != 0 {
        return libc::EINVAL;
    }
    // SAFETY: __errno_location returns the calling thread's errno.
    let saved = unsafe { *libc::__errno_location() };
    let p = aligned(align, size);
    set_errno(saved);
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller passes a valid `out`.
    unsafe { *out = p };
    0
}

/// `valloc`: page-aligned.
///
/// # Safety
/// As C's `valloc`.
#[no_mangle]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    aligned(PAGE_SIZE, size)
}

/// `pvalloc`: page-aligned, size rounded up to whole pages (one page for 0).
///
/// # Safety
/// As C's `pvalloc`.
#[no_mangle]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let Some(rounded) = size.max(1).checked_next_multiple_of(PAGE_SIZE) else {
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    };
    aligned(PAGE_SIZE, rounded)
}

/// `malloc_usable_size`: bytes usable in the block (0 for NULL).
///
/// # Safety
/// As C's `malloc_usable_size`: `p` is NULL or a live block from this allocator.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    let p = p.cast::<u8>();
    if p.is_null() {
        return 0;
    }
    if in_arena(p) {
        return 0;
    }
    op(|| 0, |_| heap::usable_size(p)).unwrap_or(0)
}
