//! KFENCE, the Kernel Electric-Fence (mm/kfence/core.c and kfence.h of Linux 6.18): a
//! low-overhead sampling detector of out-of-bounds accesses, use-after-frees, invalid frees
//! and memory corruption, meant to stay on in production.
//!
//! # The pool
//! At boot (`kfence_alloc_pool_and_metadata`, before `memblock_free_all`) KFENCE takes
//! [`KFENCE_POOL_SIZE`] bytes from memblock: `(KFENCE_NUM_OBJECTS + 1) * 2` pages, laid out as
//!
//! ```text
//!  page:  0     1     2      3     4      5    ...   2i+2     2i+3
//!        [guard guard][obj 0 guard][obj 1 guard] ... [obj i   guard]
//! ```
//!
//! Object `i`'s data page is page `2i + 2`; every odd page, and page 0, is a guard page,
//! protected for good. A data page is protected too while its object is free. The object sits
//! at the start of its page (against the left guard page) or, chosen at random per
//! allocation, at the end (against the right guard page, aligned down to the cache's
//! alignment). The rest of the data page holds canary bytes ([`canary_pattern`], Linux's
//! `KFENCE_CANARY_PATTERN_U8`), checked when the object is freed.
//!
//! Protection is the platform's ([`Platform::protect_direct_page`]): on the hosted platform
//! a protected page is a real `PROT_NONE` page of the memfd direct map, and the platform's
//! `SIGSEGV` handler asks [`kfence_fault_hook`] (Linux: the page-fault handler calling
//! `kfence_handle_page_fault`) whether the fault is KFENCE's; if so the report is printed,
//! the page unprotected, and the access retried and completed, as in Linux. On the bare-metal
//! kernel it is a PTE without its present bit and the `#PF` handler asks the same hook. kmem
//! also keeps its own record of which pool pages are protected
//! ([`SlabLayer::kfence_protected`]), for accesses that do not go through the MMU (the shell's
//! `peek`/`poke`) and for platforms that cannot protect pages.
//!
//! Not implemented from Linux: `kfence.fault=` (reports only, as its default `report`),
//! `kfence.check_on_panic`, `kfence.deferrable`, changing `sample_interval` at run time
//! (`/sys/module/kfence/parameters/`), and `CONFIG_KFENCE_STRESS_TEST_FAULTS`.
//!
//! # Sampling
//! Linux opens an allocation gate every `kfence.sample_interval` ms from a timer (a static
//! key), and the first slab allocation through the open gate is served by KFENCE; the timer
//! re-arms after that allocation. kmem has no timers, so the allocation path does the
//! timer's work: `next_sample` holds the jiffy at which the gate opens; an allocation at or
//! after it claims the gate with a compare-and-swap (one winner) and moves it to
//! `now + msecs_to_jiffies(interval)`. An allocation pays one load of the state pointer (null
//! when KFENCE is off, the default). When KFENCE is on, reading the clock on every allocation
//! would cost more than KFENCE's budget (a `clock_gettime` is ~20 ns on the hosted platform,
//! as much as a kmalloc; Python's allocation-heavy benchmark ran 18% slower), so each CPU
//! reads it only every [`KFENCE_CLOCK_EVERY`] allocations while the gate is found closed (a
//! per-CPU countdown, its own cache line): the gate is noticed at most that many
//! allocations late on each CPU, as Linux's timer-driven gate is noticed late by up to a tick.
//! `kfence.sample_interval=0` (kmem's default, as a kernel built with
//! `CONFIG_KFENCE_SAMPLE_INTERVAL=0`) disables KFENCE: no pool, no files.
//!
//! Allocation coverage (`kfence.skip_covered_thresh`, default 75): once more than that
//! percentage of the pool is allocated, a sampled allocation whose allocation site is
//! already in the pool (a counting Bloom filter of site hashes, two hashes into
//! `2^(ilog2(255) + 2)` counters, as Linux's `alloc_covered`) is skipped. The hash is of
//! the allocation's stack trace (the platform's walk), or, on a platform that cannot walk
//! stacks, of the caller's source location (`#[track_caller]`).
//!
//! # Locking
//! One lock, `kfence_freelist_lock` (the class of Linux's freelist lock; it also plays the
//! per-object `meta->lock`), protects the freelist and every object's metadata. It is taken
//! under whatever the allocating caller holds (`slab_mutex`, `vmap_area_lock`), never in a
//! CPU section of kmem's own, and only the log lock is taken under it (reports are printed
//! with it held, as Linux prints them under `meta->lock`).

mod report;

use core::cell::UnsafeCell;
use core::panic::Location;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use crate::addr::{PhysAddr, PAGE_SIZE};
use crate::locking::Lock;
use crate::mm::rcu::RcuHead;
use crate::platform::{LogLevel, PageFaultHook, Platform};
use crate::slab::common::CacheHandle;
use crate::slab::SlabLayer;

pub use report::Site;

/// `CONFIG_KFENCE_NUM_OBJECTS` (mm/Kconfig's default).
pub const KFENCE_NUM_OBJECTS: usize = 255;
/// `KFENCE_POOL_SIZE`: the objects' pages, their guard pages and the two leading guard pages.
pub const KFENCE_POOL_SIZE: usize = (KFENCE_NUM_OBJECTS + 1) * 2 * PAGE_SIZE;
/// kmem's `CONFIG_KFENCE_SAMPLE_INTERVAL`: 0, KFENCE off unless `kfence.sample_interval=`
/// turns it on (Linux's Kconfig default is 100 ms; kmem keeps the machine deterministic by
/// default).
pub const KFENCE_SAMPLE_INTERVAL: u64 = 0;
/// The default of `kfence.skip_covered_thresh` (percent of the pool).
pub const KFENCE_SKIP_COVERED_THRESH: u64 = 75;

/// While the allocation gate is closed, a CPU reads the clock once every this many allocations
/// (see the module documentation).
pub const KFENCE_CLOCK_EVERY: u32 = 64;

/// Per-CPU countdowns (a CPU id modulo their number picks one).
const COUNTDOWNS: usize = 64;

/// A countdown on its own cache line.
#[repr(align(64))]
struct Countdown(AtomicU32);

/// `ALLOC_COVERED_HNUM`.
const ALLOC_COVERED_HNUM: usize = 2;
/// `ALLOC_COVERED_ORDER`: `ilog2(CONFIG_KFENCE_NUM_OBJECTS) + 2`.
const ALLOC_COVERED_ORDER: u32 = KFENCE_NUM_OBJECTS.ilog2() + 2;
/// `ALLOC_COVERED_SIZE`.
const ALLOC_COVERED_SIZE: usize = 1 << ALLOC_COVERED_ORDER;
/// Pages of the pool.
const POOL_PAGES: usize = KFENCE_POOL_SIZE / PAGE_SIZE;

/// `KFENCE_CANARY_PATTERN_U8`: the canary byte at `addr`, varied by the address's low 3 bits
/// so that a corruption by a similar constant is still seen.
#[inline]
pub const fn canary_pattern(addr: usize) -> u8 {
    0xaa ^ (addr & 7) as u8
}

/// `enum kfence_object_state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KfenceObjectState {
    /// Never allocated.
    Unused,
    /// Currently allocated.
    Allocated,
    /// Freed into a `SLAB_TYPESAFE_BY_RCU` cache, waiting for a grace period.
    RcuFreeing,
    /// Allocated, then freed.
    Freed,
}

/// `enum kfence_error_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KfenceError {
    /// Out-of-bounds access (a guard page).
    Oob,
    /// Use-after-free (a freed object's page).
    Uaf,
    /// Canary bytes changed, found on free.
    Corruption,
    /// An access to the pool that belongs to no object.
    Invalid,
    /// A free of something that is not an allocated object's start.
    InvalidFree,
}

/// `struct kfence_track`: who allocated or freed an object, where and when.
#[derive(Clone, Copy, Default)]
pub(crate) struct Track {
    pub(crate) pid: u32,
    pub(crate) cpu: u32,
    pub(crate) ts_nsec: u64,
    /// The allocation or free site (the Rust caller, shown when there is no stack trace);
    /// `None`: no stack.
    pub(crate) site: Option<&'static Location<'static>>,
    /// The stack trace (`stack_entries`, kept in the stack depot).
    pub(crate) stack: crate::mm::stackdepot::DepotHandle,
}

/// `struct kfence_metadata`, without the lock (the state's lock covers all objects).
#[derive(Clone, Copy)]
pub(crate) struct Meta {
    pub(crate) state: KfenceObjectState,
    /// The object's address (real); `ALIGN_DOWN(addr, PAGE_SIZE)` never changes.
    pub(crate) addr: usize,
    pub(crate) size: usize,
    /// The cache of the last allocation; `None` once the cache is destroyed.
    pub(crate) cache: Option<CacheHandle>,
    /// The guard page unprotected by an out-of-bounds access, protected again on free.
    pub(crate) unprotected_page: usize,
    pub(crate) alloc: Track,
    pub(crate) free: Track,
    pub(crate) alloc_stack_hash: u32,
}

/// The freelist and the objects' metadata, under `kfence_freelist_lock`.
struct Objects {
    meta: [Meta; KFENCE_NUM_OBJECTS],
    /// Free object indices, a FIFO (freed objects go to the tail, as in Linux).
    free: [u16; KFENCE_NUM_OBJECTS],
    head: usize,
    len: usize,
}

impl Objects {
    fn pop(&mut self) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let i = self.free[self.head] as usize;
        self.head = (self.head + 1) % KFENCE_NUM_OBJECTS;
        self.len -= 1;
        Some(i)
    }
    fn push(&mut self, i: usize) {
        debug_assert!(self.len < KFENCE_NUM_OBJECTS);
        self.free[(self.head + self.len) % KFENCE_NUM_OBJECTS] = i as u16;
        self.len += 1;
    }
}

/// The statistics counters of `/sys/kernel/debug/kfence/stats` (`enum kfence_counter_id`).
#[derive(Clone, Copy)]
enum Counter {
    Allocated,
    Allocs,
    Frees,
    Zombies,
    Bugs,
    SkipIncompat,
    SkipCapacity,
    SkipCovered,
}

/// `counter_names`, in order.
const COUNTER_NAMES: [&str; 8] = [
    "currently allocated",
    "total allocations",
    "total frees",
    "zombie allocations",
    "total bugs",
    "skipped allocations (incompatible)",
    "skipped allocations (capacity)",
    "skipped allocations (covered)",
];

/// An object's `rcu_head` for `SLAB_TYPESAFE_BY_RCU` frees, with what the callback needs to
/// find its way back. The head comes first, so a head pointer is a slot pointer.
#[repr(C)]
struct RcuSlot<P: Platform> {
    head: UnsafeCell<RcuHead>,
    kfence: *const Kfence<P>,
    index: usize,
}

/// A machine's KFENCE state, in memblock memory (`kfence_metadata` and the globals of
/// core.c), made at boot when `kfence.sample_interval` is not 0 and never freed.
pub(crate) struct Kfence<P: Platform> {
    /// `__kfence_pool` (real address).
    pool: usize,
    /// The slab layer this state belongs to (for RCU callbacks and the fault hook).
    layer: *const SlabLayer<P>,
    /// `kfence_enabled`.
    enabled: AtomicBool,
    /// `kfence_sample_interval` (ms).
    interval_ms: AtomicU64,
    /// `kfence_skip_covered_thresh` (percent).
    skip_covered_thresh: AtomicU64,
    /// The jiffy at which the allocation gate opens (see the module documentation).
    next_sample: AtomicU64,
    /// `no_hash_pointers`: the corruption dump shows the bytes instead of `!`.
    no_hash_pointers: bool,
    /// `stack_hash_seed`.
    hash_seed: u32,
    counters: [AtomicI64; 8],
    /// `alloc_covered`.
    covered: [AtomicU32; ALLOC_COVERED_SIZE],
    /// Allocations each CPU lets pass before it reads the clock again.
    countdown: [Countdown; COUNTDOWNS],
    /// Which pool pages are protected (bit per page), kmem's own record.
    protected: [AtomicU64; POOL_PAGES / 64],
    rcu: [RcuSlot<P>; KFENCE_NUM_OBJECTS],
    objs: Lock<P::RawLock, Objects>,
}

// SAFETY: the raw pointers name the machine's own slab layer and this state, both Sync and
// alive as long as the machine; the RCU heads are handed to RCU only under the lock.
unsafe impl<P: Platform> Sync for Kfence<P> {}
// SAFETY: moving a `Kfence` to another thread moves raw pointers to the machine's slab layer and to
// this state, both Sync and alive as long as the machine; the RCU heads are handed to RCU only
// under the lock, on whatever thread.
unsafe impl<P: Platform> Send for Kfence<P> {}

/// The kfence boot parameters of a command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KfenceParams {
    pub(crate) sample_interval: u64,
    pub(crate) skip_covered_thresh: u64,
    pub(crate) no_hash_pointers: bool,
}

/// `kstrtoul(val, 0, …)`: decimal, `0x` hex or leading-`0` octal.
fn kstrtoul(v: &str) -> Option<u64> {
    if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if v.len() > 1 && v.starts_with('0') {
        u64::from_str_radix(&v[1..], 8).ok()
    } else {
        v.parse().ok()
    }
}

impl KfenceParams {
    /// `kfence.sample_interval=`, `kfence.skip_covered_thresh=` and `no_hash_pointers`; bad
    /// values are ignored (the parameter keeps its default), the last good one wins.
    pub(crate) fn from_cmdline(cmdline: &str) -> Self {
        let mut p = KfenceParams {
            sample_interval: KFENCE_SAMPLE_INTERVAL,
            skip_covered_thresh: KFENCE_SKIP_COVERED_THRESH,
            no_hash_pointers: false,
        };
        for w in cmdline.split_whitespace() {
            if let Some(v) = w.strip_prefix("kfence.sample_interval=") {
                p.sample_interval = kstrtoul(v).unwrap_or(p.sample_interval);
            } else if let Some(v) = w.strip_prefix("kfence.skip_covered_thresh=") {
                p.skip_covered_thresh = kstrtoul(v).unwrap_or(p.skip_covered_thresh);
            } else if w == "no_hash_pointers" {
                p.no_hash_pointers = true;
            }
        }
        p
    }
}

/// `hash_32`: multiplicative hashing to `bits` bits (include/linux/hash.h).
#[inline]
fn hash_32(v: u32, bits: u32) -> u32 {
    v.wrapping_mul(0x61c8_8647) >> (32 - bits)
}

impl<P: Platform> Kfence<P> {
    #[inline]
    fn count(&self, c: Counter, d: i64) {
        self.counters[c as usize].fetch_add(d, Ordering::Relaxed);
    }

    /// The page address of object `i`'s data page.
    #[inline]
    fn page_of(&self, i: usize) -> usize {
        self.pool + (i + 1) * 2 * PAGE_SIZE
    }

    /// `is_kfence_address`.
    #[inline]
    fn contains(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.pool) < KFENCE_POOL_SIZE
    }

    /// `addr_to_metadata`: the object whose data page or right guard page holds `addr`.
    fn index_of(&self, addr: usize) -> Option<usize> {
        if !self.contains(addr) {
            return None;
        }
        let i = ((addr - self.pool) / (2 * PAGE_SIZE)).checked_sub(1)?;
        (i < KFENCE_NUM_OBJECTS).then_some(i)
    }

    fn is_protected(&self, addr: usize) -> bool {
        let page = (addr - self.pool) / PAGE_SIZE;
        self.protected[page / 64].load(Ordering::Relaxed) & (1 << (page % 64)) != 0
    }

    /// `kfence_protect_page`: records the page's state and asks the platform to enforce it.
    fn set_protected(&self, plat: &P, addr: usize, protect: bool) {
        let page_addr = addr & !(PAGE_SIZE - 1);
        let page = (page_addr - self.pool) / PAGE_SIZE;
        let bit = 1u64 << (page % 64);
        if protect {
            self.protected[page / 64].fetch_or(bit, Ordering::Relaxed);
        } else {
            self.protected[page / 64].fetch_and(!bit, Ordering::Relaxed);
        }
        plat.protect_direct_page(page_addr as *mut u8, protect);
    }

    /// `get_alloc_stack_hash` of kmem's one-frame stack (the Rust call site), seeded.
    fn site_hash(&self, site: &'static Location<'static>) -> u32 {
        self.seeded_hash(site as *const Location<'static> as u64)
    }

    /// `get_alloc_stack_hash`'s seeding and mixing of a stack's key (a stack hash or a
    /// call site's address).
    fn seeded_hash(&self, key: u64) -> u32 {
        let mut z = key ^ u64::from(self.hash_seed);
        // splitmix64's finaliser: every bit of the address reaches the low 32.
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as u32
    }

    /// `alloc_covered_add`.
    fn covered_add(&self, mut h: u32, val: i32) {
        for _ in 0..ALLOC_COVERED_HNUM {
            let c = &self.covered[h as usize & (ALLOC_COVERED_SIZE - 1)];
            c.fetch_add(val as u32, Ordering::Relaxed);
            h = hash_32(h, ALLOC_COVERED_ORDER);
        }
    }

    /// `alloc_covered_contains`.
    fn covered_contains(&self, mut h: u32) -> bool {
        for _ in 0..ALLOC_COVERED_HNUM {
            if self.covered[h as usize & (ALLOC_COVERED_SIZE - 1)].load(Ordering::Relaxed) == 0 {
                return false;
            }
            h = hash_32(h, ALLOC_COVERED_ORDER);
        }
        true
    }

    /// `should_skip_covered`.
    fn should_skip_covered(&self) -> bool {
        let thresh =
            KFENCE_NUM_OBJECTS as u64 * self.skip_covered_thresh.load(Ordering::Relaxed) / 100;
        self.counters[Counter::Allocated as usize].load(Ordering::Relaxed) > thresh as i64
    }
}

/// The canary bytes of an object's page outside the object: `[page, addr)` and
/// `[addr + size, page + PAGE_SIZE)`.
fn canary_ranges(m: &Meta) -> [core::ops::Range<usize>; 2] {
    let page = m.addr & !(PAGE_SIZE - 1);
    [page..m.addr, m.addr + m.size..page + PAGE_SIZE]
}

/// Reads a byte of the pool.
///
/// # Safety
/// `addr` is inside the pool and its page is not protected by the platform.
#[inline]
unsafe fn pool_read(addr: usize) -> u8 {
    // SAFETY: the caller's guarantee; pool memory is raw machine memory no Rust reference
    // covers.
    unsafe { core::ptr::read_volatile(addr as *const u8) }
}

/// Writes a byte of the pool.
///
/// # Safety
/// As [`pool_read`], and the byte belongs to KFENCE (canary or a page being reset).
#[inline]
unsafe fn pool_write(addr: usize, v: u8) {
    // SAFETY: the caller's guarantee.
    unsafe { core::ptr::write_volatile(addr as *mut u8, v) }
}

mod core_impl;

/// The platform's page-fault hook: `kfence_handle_page_fault` for a real fault.
///
/// # Safety
/// `ctx` is the `SlabLayer<P>` whose KFENCE registered the hook, alive (the hook contract).
pub(crate) unsafe fn kfence_fault_hook<P: Platform>(
    ctx: *const (),
    addr: usize,
    is_write: bool,
    ip: usize,
) -> bool {
    // SAFETY: the hook contract: the machine that registered it is alive.
    let m = unsafe { &*ctx.cast::<SlabLayer<P>>() };
    // The stack of the faulting access, taken here, on the handler's own stack (a walk from
    // the stack below would not get back through the switch).
    let site = Site::Fault(ip, m.stack_trace_save());
    // The report symbolises stacks: on a stack with room for it (a signal handler's
    // alternate stack may be a few KiB).
    let mut handled = false;
    m.platform().run_on_report_stack(&mut || {
        handled = m.kfence_handle_fault_at(addr, is_write, site);
    });
    handled
}

/// The RCU callback of a `SLAB_TYPESAFE_BY_RCU` free (`rcu_guarded_free`).
///
/// # Safety
/// `head` is the head of an [`RcuSlot`] queued by `kfence_free`, after its grace period.
unsafe fn rcu_guarded_free<P: Platform>(head: NonNull<RcuHead>) {
    // SAFETY: the head is the first field of a live RcuSlot (repr(C)), inside a Kfence state
    // that is never freed.
    let slot = unsafe { &*head.as_ptr().cast::<RcuSlot<P>>() };
    // SAFETY: the state is never freed; its layer is the machine's, alive while RCU runs
    // its callbacks.
    let kf = unsafe { &*slot.kfence };
    // SAFETY: `kf.layer` is the machine's slab layer, set when the state was made; the machine
    // outlives the state and RCU runs this callback only while the machine is alive.
    let m = unsafe { &*kf.layer };
    let mut objs = kf.objs.lock();
    m.kfence_guarded_free(kf, &mut objs, slot.index, false, None);
}

/// Where a KFENCE state pointer is kept in the slab layer.
pub(crate) struct KfenceSlot(AtomicPtr<u8>);

impl KfenceSlot {
    /// No KFENCE.
    pub(crate) const fn new() -> Self {
        KfenceSlot(AtomicPtr::new(core::ptr::null_mut()))
    }
}

impl<P: Platform> SlabLayer<P> {
    /// The KFENCE state, if KFENCE was set up at boot.
    #[inline]
    pub(crate) fn kfence(&self) -> Option<&Kfence<P>> {
        let p = self.kfence.0.load(Ordering::Acquire);
        // SAFETY: a non-null pointer was published (Release) by `kfence_alloc_pool` after the
        // state was written; the state lives in memblock memory that is never freed.
        (!p.is_null()).then(|| unsafe { &*p.cast::<Kfence<P>>() })
    }

    /// `kfence_alloc_pool_and_metadata`: with `kfence.sample_interval` not 0, takes the pool
    /// and the state from memblock. Called by `Machine::boot` before `memblock_free_all`.
    pub(crate) fn kfence_alloc_pool(&self, cmdline: &str) {
        let params = KfenceParams::from_cmdline(cmdline);
        // KFENCE needs SLAB or SLUB (mm/kfence/Kconfig: `depends on … (SLAB || SLUB)`).
        if params.sample_interval == 0
            || self.slab().kind == crate::slab::common::SlabAllocatorKind::Slob
        {
            return;
        }
        let lowmem = self.lowmem_end();
        let alloc = |size: usize| {
            self.with_memblock(|mb| {
                mb.phys_alloc_range(size as u64, PAGE_SIZE as u64, PhysAddr::new(0), lowmem)
            })
        };
        let Ok(pool) = alloc(KFENCE_POOL_SIZE) else {
            self.printk(
                LogLevel::Err,
                format_args!("kfence: failed to allocate pool"),
            );
            return;
        };
        let Ok(meta) = alloc(core::mem::size_of::<Kfence<P>>()) else {
            self.printk(
                LogLevel::Err,
                format_args!("kfence: failed to allocate metadata"),
            );
            return;
        };
        let (Some(pool), Some(meta)) = (self.phys_to_virt(pool), self.phys_to_virt(meta)) else {
            return;
        };
        let st = meta.as_ptr::<Kfence<P>>();
        let seed = self.platform().random_u64() as u32;
        // SAFETY: `st` is a fresh memblock allocation of the state's size, page aligned, in
        // the direct map, used by nothing else; it is written whole before it is published.
        unsafe { core_impl::init_state(st, pool.as_usize(), self, &params, seed) };
        self.kfence.0.store(st.cast(), Ordering::Release);
        self.slab().hooked.store(true, Ordering::Relaxed);
    }

    /// `kfence_init`: protects the guard pages, fills the freelist, registers the fault hook
    /// and opens the allocation gate. Called by `Machine::boot` once the slab allocator runs.
    pub(crate) fn kfence_init(&self) {
        let Some(kf) = self.kfence() else { return };
        if let Some(ld) = self.lockdep() {
            // SAFETY: at boot, before the lock is first taken; the validator outlives the
            // state.
            unsafe { kf.objs.attach(ld) };
        }
        let plat = self.platform();
        plat.set_page_fault_hook(PageFaultHook {
            ctx: (self as *const Self).cast(),
            func: kfence_fault_hook::<P>,
        });
        // The first two pages, then every object's right guard page.
        kf.set_protected(plat, kf.pool, true);
        kf.set_protected(plat, kf.pool + PAGE_SIZE, true);
        for i in 0..KFENCE_NUM_OBJECTS {
            kf.set_protected(plat, kf.page_of(i) + PAGE_SIZE, true);
        }
        kf.next_sample.store(plat.jiffies(), Ordering::Relaxed);
        kf.enabled.store(true, Ordering::Release);
        let w = self.arch().ptr_hex_digits();
        self.printk(
            LogLevel::Info,
            format_args!(
                "kfence: initialized - using {KFENCE_POOL_SIZE} bytes for {KFENCE_NUM_OBJECTS} objects at 0x{:0w$x}-0x{:0w$x}",
                self.to_model(kf.pool),
                self.to_model(kf.pool) + KFENCE_POOL_SIZE as u64
            ),
        );
    }

    /// `is_kfence_address`: whether `p` is inside the KFENCE pool.
    #[inline]
    pub fn is_kfence_address(&self, p: *const u8) -> bool {
        self.kfence().is_some_and(|kf| kf.contains(p as usize))
    }

    /// Whether KFENCE holds the page of `p` protected (a guard page, or a freed object's
    /// page): an access there is a KFENCE fault.
    pub fn kfence_protected(&self, p: *const u8) -> bool {
        self.kfence()
            .is_some_and(|kf| kf.contains(p as usize) && kf.is_protected(p as usize))
    }

    /// The object state of the KFENCE object holding `p`, if `p` is in one's data page.
    pub fn kfence_object_state(&self, p: *const u8) -> Option<KfenceObjectState> {
        let kf = self.kfence()?;
        let i = kf.index_of(p as usize)?;
        if p as usize >= kf.page_of(i) + PAGE_SIZE {
            return None;
        }
        // Lock order: kfence_freelist_lock (under the caller's locks; module docs).
        Some(kf.objs.lock().meta[i].state)
    }

    /// The pool's real address range, if KFENCE runs.
    pub fn kfence_pool(&self) -> Option<core::ops::Range<usize>> {
        self.kfence().map(|kf| kf.pool..kf.pool + KFENCE_POOL_SIZE)
    }

    /// `kfence_handle_page_fault` for an access that did not go through the MMU (the shell's
    /// `peek`/`poke` see [`SlabLayer::kfence_protected`] first): reports the access to `addr`
    /// as a fault of the caller, and unprotects the page so that the access can proceed.
    /// Returns `false` (nothing done) when `addr` is not in the KFENCE pool.
    #[track_caller]
    pub fn kfence_handle_page_fault(&self, addr: *const u8, is_write: bool) -> bool {
        self.kfence_handle_fault_at(addr as usize, is_write, Site::Caller(Location::caller()))
    }

    /// The KFENCE statistics, by `/sys/kernel/debug/kfence/stats` name, and whether it is
    /// enabled; `None` when KFENCE is not set up.
    pub fn kfence_stats(&self) -> Option<(bool, [(&'static str, i64); 8])> {
        let kf = self.kfence()?;
        let mut out = [("", 0i64); 8];
        for (i, o) in out.iter_mut().enumerate() {
            *o = (COUNTER_NAMES[i], kf.counters[i].load(Ordering::Relaxed));
        }
        Some((kf.enabled.load(Ordering::Relaxed), out))
    }
}
