//! SLUB: the slab allocator that limits cache line use instead of queuing objects in per-CPU
//! and per-node lists (mm/slub.c).
//!
//! A cache hands out objects of one size. Objects live in *slabs*: blocks of `1 << order`
//! pages from the buddy allocator (compound pages when `order > 0`), whose `struct page`
//! head doubles as `struct slab` (overlay below). A free object holds the pointer to the next
//! free object of its slab at `s.offset` (the middle of the object unless debugging or a
//! constructor needs the object intact), hardened as `ptr ^ s.random ^ swab(&slot)`
//! (`CONFIG_SLAB_FREELIST_HARDENED`); new slabs chain their objects in a random order from a
//! per-cache random sequence (`CONFIG_SLAB_FREELIST_RANDOM`). There is no per-object header:
//! without debugging an object's stride is its size rounded to the alignment.
//!
//! ```text
//! struct page as struct slab (64 bytes)
//!   flags          PG_head for order > 0
//!   lru            slab_list: node partial/full list link; lru.next links cpu partial slabs
//!   compound_head  0 (head)
//!   mapping        slab_cache: the owning KmemCache
//!   index          freelist + counters, one 64-bit word updated by compare-and-swap:
//!                  bits 0..32 freelist offset + 1 (0 = empty), 32..48 inuse, 48 frozen
//!   private        objects (bits 0..16), ON_PARTIAL (16), ON_FULL (17)
//!   page_type      PGTY_slab
//! ```
//!
//! # Lock order
//! 1. `slab_mutex` (the cache list, cache creation and destruction; [`crate::slab::common`]);
//! 2. a CPU section ([`CpuGuard`]): the current CPU's `KmemCacheCpu` of every cache;
//! 3. `node->list_lock` of one cache: its partial and full lists, `nr_partial`, and list
//!    membership (`ON_PARTIAL`/`ON_FULL`) of its slabs;
//! 4. the page allocator's locks (new slabs, discarded slabs), the log lock.
//!
//! Reports are printed with the list lock held only by the debug paths (as Linux does).
//!
//! # Slab states
//! - **frozen**: the active slab of a CPU (`c.slab`) or on a CPU's partial list. On no node
//!   list. Only the freezing CPU allocates from it or changes its list state; anybody may
//!   push freed objects onto its freelist with a compare-and-swap.
//! - **partial** (unfrozen, some objects free): on the node partial list (`ON_PARTIAL`).
//!   Invariant, checked under `list_lock`: an unfrozen slab with a non-empty freelist is on
//!   the node partial list.
//! - **full** (unfrozen, no free object): on no list (debug caches: on the full list).
//! - **empty**: freed to the page allocator once the node already keeps `min_partial`
//!   partial slabs; otherwise kept on the partial list.
//!
//! Transitions: a new slab is frozen to the allocating CPU; when its freelist and the
//! CPU-local freelist are both exhausted it becomes full (unfrozen, no list: "bypass"). A free
//! into a full unfrozen slab freezes it onto the freeing CPU's partial list (no lock). When a
//! CPU partial list exceeds `cpu_partial_slabs`, its slabs are unfrozen onto the node list.
//! A CPU out of objects takes its next CPU partial slab, else one from the node list (plus up
//! to half of `cpu_partial_slabs` more for its partial list), else a new slab.
//!
//! # Fast path and slow path
//! The per-CPU structure (`KmemCacheCpu`) is used only inside a CPU section, which gives
//! exclusive use of it (`get_cpu()`), so the fast paths need no lock and no atomic
//! read-modify-write: allocation pops `c.freelist`; freeing an object of the CPU's active
//! slab pushes onto `c.freelist`. This replaces Linux's transaction id + `this_cpu_cmpxchg`
//! (which exists because Linux's fast path runs preemptible). Everything else is the slow
//! path: freeing into another slab pushes onto that slab's freelist with a compare-and-swap of
//! the freelist+counters word (`__slab_free`), taking `list_lock` first only when the slab
//! must change lists.
//!
//! # Debugging
//! Caches with any of `SLAB_DEBUG_FLAGS` (`slub_debug=FZPUT` or cache flags) never use CPU
//! slabs: every allocation and free runs under `list_lock` with the checks of
//! `alloc_debug_processing`/`free_debug_processing`, as in Linux 6.x. Object layout with
//! debugging (mm/slub.c `calculate_sizes`):
//!
//! ```text
//! | left red zone | object (object_size) | pad / right red zone | free ptr | tracks | pad |
//!   red_left_pad    0x6b.. 0xa5 when free   0xbb free, 0xcc used   if moved   2×32B   0x5a
//! ```
//!
//! Reports follow mm/slub.c: `BUG <cache> (<taint>): <what>`, `INFO:` lines, hex dumps and
//! `FIX <cache>: …`; kmem repairs what it reports and continues. Every `BUG` header and every
//! `FIX` line counts as one slab error ([`Machine::slab_errors`]), as slub_kunit counts them.
//!
//! # Limits
//! `kmem_cache_shrink` and `validate` flush only the calling CPU's slabs (Linux flushes every
//! CPU by IPI); `kmem_cache_destroy` flushes every CPU's slabs because its caller guarantees
//! that nobody uses the cache any more. Without `SLAB_CONSISTENCY_CHECKS` a double free is
//! caught only when the object is the head of the CPU freelist (as with Linux's
//! `CONFIG_SLAB_FREELIST_HARDENED`); pointers that are not the start of an object and objects
//! freed into the wrong cache are always caught.

use core::fmt::Write as _;
use core::panic::Location;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use kds::list::{self, ListHead};

use crate::addr::{Order, VirtAddr, PAGE_SHIFT, PAGE_SIZE};
use crate::gfp::GfpFlags;
use crate::mm::mm_types::{Page, PagePtr, PageType};
use crate::mm::printk::LineBuf;
use crate::mm::NodeStat;
use crate::platform::{CpuGuard, LogLevel, Platform};
use crate::slab::common::{
    calculate_alignment, calculate_order, get_order, kmalloc_cache_name, kmalloc_index,
    kmalloc_size, order_objects, CacheHandle, KmallocType, SlabBootState, SlabError, SlabFlags,
    SlabInfo, KMALLOC_MAX_CACHE_SIZE, KMALLOC_MAX_SIZE, KMALLOC_SHIFT_HIGH, KMALLOC_SHIFT_LOW,
    MAX_OBJS_PER_PAGE,
};
use crate::slab::SlabLayer;

const _: () = assert!(
    core::mem::size_of::<usize>() == 8,
    "SLUB keeps freelist and counters in one 64-bit page word"
);

/// Longest cache name kept (longer names are refused).
pub const CACHE_NAME_LEN: usize = 48;

/// `POISON_INUSE`: padding and uninitialised slab memory.
pub const POISON_INUSE: u8 = 0x5a;
/// `POISON_FREE`: a free object's bytes.
pub const POISON_FREE: u8 = 0x6b;
/// `POISON_END`: the last byte of a free object.
pub const POISON_END: u8 = 0xa5;
/// `SLUB_RED_INACTIVE`: red zone of a free object.
pub const SLUB_RED_INACTIVE: u8 = 0xbb;
/// `SLUB_RED_ACTIVE`: red zone of an allocated object.
pub const SLUB_RED_ACTIVE: u8 = 0xcc;

/// `MIN_PARTIAL`, `MAX_PARTIAL` (mm/slub.c).
const MIN_PARTIAL: u32 = 5;
const MAX_PARTIAL: u32 = 10;

const PTR: u32 = core::mem::size_of::<usize>() as u32;

/// `GFP_RECLAIM_MASK | GFP_CONSTRAINT_MASK` (mm/internal.h): what of the caller's flags a
/// new slab's page allocation keeps.
const GFP_RECLAIM_MASK: GfpFlags = GfpFlags::from_bits(
    GfpFlags::__GFP_RECLAIM.bits()
        | GfpFlags::__GFP_HIGH.bits()
        | GfpFlags::__GFP_IO.bits()
        | GfpFlags::__GFP_FS.bits()
        | GfpFlags::__GFP_NOWARN.bits()
        | GfpFlags::__GFP_RETRY_MAYFAIL.bits()
        | GfpFlags::__GFP_NOFAIL.bits()
        | GfpFlags::__GFP_NORETRY.bits()
        | GfpFlags::__GFP_MEMALLOC.bits()
        | GfpFlags::__GFP_NOMEMALLOC.bits()
        | GfpFlags::__GFP_HARDWALL.bits()
        | GfpFlags::__GFP_THISNODE.bits(),
);

// ------------------------------------------------------------------ statistics

/// Slow-path statistics kept per cache (`enum stat_item`, CONFIG_SLUB_STATS).
#[derive(Clone, Copy)]
#[repr(usize)]
enum Stat {
    FreeFrozen,
    FreeAddPartial,
    FreeRemovePartial,
    AllocFromPartial,
    AllocSlab,
    AllocRefill,
    FreeSlab,
    CpuslabFlush,
    DeactivateFull,
    DeactivateEmpty,
    DeactivateToTail,
    DeactivateBypass,
    OrderFallback,
    CmpxchgDoubleFail,
    CpuPartialAlloc,
    CpuPartialFree,
    CpuPartialNode,
    CpuPartialDrain,
}
const NR_STATS: usize = 18;

/// A cache's SLUB statistics (the `CONFIG_SLUB_STATS` files of `/sys/kernel/slab/<cache>/`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlabStats {
    /// Allocations from the CPU freelist.
    pub alloc_fastpath: u64,
    /// Allocations that needed the slow path.
    pub alloc_slowpath: u64,
    /// Frees to the CPU's active slab.
    pub free_fastpath: u64,
    /// Frees to another slab.
    pub free_slowpath: u64,
    /// Slow-path frees to a frozen slab.
    pub free_frozen: u64,
    /// Frees that put a slab on the node partial list.
    pub free_add_partial: u64,
    /// Frees that took an empty slab off the partial list.
    pub free_remove_partial: u64,
    /// Slabs taken from the node partial list for a CPU.
    pub alloc_from_partial: u64,
    /// New slabs from the page allocator.
    pub alloc_slab: u64,
    /// CPU freelist refilled from the active slab's remote frees.
    pub alloc_refill: u64,
    /// Slabs given back to the page allocator.
    pub free_slab: u64,
    /// CPU slabs flushed.
    pub cpuslab_flush: u64,
    /// Deactivated slabs that were full.
    pub deactivate_full: u64,
    /// Deactivated slabs that were empty.
    pub deactivate_empty: u64,
    /// Deactivated slabs put on the partial list.
    pub deactivate_to_tail: u64,
    /// Exhausted CPU slabs dropped without list work.
    pub deactivate_bypass: u64,
    /// New slabs that fell back to the minimum order.
    pub order_fallback: u64,
    /// Compare-and-swap retries.
    pub cmpxchg_double_fail: u64,
    /// CPU partial slabs made active.
    pub cpu_partial_alloc: u64,
    /// Frees that put a slab on a CPU partial list.
    pub cpu_partial_free: u64,
    /// Slabs moved from the node list to a CPU partial list.
    pub cpu_partial_node: u64,
    /// CPU partial lists drained to the node list.
    pub cpu_partial_drain: u64,
}

// ------------------------------------------------------------------ per-CPU and per-node data

/// `struct kmem_cache_cpu`: one CPU's active slab and partial slabs. Used only inside a CPU
/// section of its CPU. One cache line.
#[repr(C, align(64))]
pub(crate) struct KmemCacheCpu {
    /// Next free object of `slab` owned by this CPU.
    freelist: *mut u8,
    /// The active (frozen) slab, or null.
    slab: *mut Page,
    /// The CPU partial list (frozen slabs linked through `lru.next`).
    partial: *mut Page,
    partial_slabs: u32,
    _pad: u32,
    alloc_fast: u64,
    free_fast: u64,
    alloc_slow: u64,
    free_slow: u64,
}

const _: () = assert!(core::mem::size_of::<KmemCacheCpu>() == 64);

/// The lists of `struct kmem_cache_node`, under its `list_lock`.
pub(crate) struct NodeLists {
    partial: ListHead,
    nr_partial: usize,
    /// Full slabs of debug caches (Linux keeps them with SLAB_STORE_USER).
    full: ListHead,
}

/// `struct kmem_cache_node` (one node).
pub(crate) struct KmemCacheNode<L: lock_api::RawMutex> {
    list_lock: lock_api::Mutex<L, NodeLists>,
    /// Racy copy of `nr_partial` for lockless peeks.
    nr_partial_hint: AtomicUsize,
    nr_slabs: AtomicUsize,
    total_objects: AtomicUsize,
}

/// `struct kmem_cache`. Lives in an object of the `kmem_cache` cache and never moves.
#[repr(C)]
pub struct KmemCache<L: lock_api::RawMutex> {
    cpu_slab: *mut KmemCacheCpu,
    gen: AtomicU32,
    flags: SlabFlags,
    /// Object stride.
    size: u32,
    /// What the user asked for.
    object_size: u32,
    /// Free pointer offset.
    offset: u32,
    /// Offset of the metadata (end of object and right red zone).
    inuse: u32,
    align: u32,
    red_left_pad: u32,
    /// `oo`: order and objects of a normal slab.
    order: u32,
    objects: u32,
    /// `min`: the fallback order.
    min_order: u32,
    min_partial: u32,
    /// Most slabs kept on a CPU partial list (0 for debug caches).
    cpu_partial_slabs: u32,
    /// `size = odd << div_shift`; `div_inv * odd == 1 (mod 2^64)`: an offset is a multiple of
    /// `size` iff its low `div_shift` bits are clear and `(off >> div_shift) * div_inv` is at
    /// most `div_limit` (exact division test without a divide).
    div_shift: u32,
    div_inv: u64,
    div_limit: u64,
    random: usize,
    allocflags: GfpFlags,
    ctor: Option<fn(*mut u8)>,
    /// `objects` object indexes in a random order, or null (`random_seq`).
    random_seq: *mut u16,
    refcount: AtomicI32,
    cpu_slab_order: u32,
    name_len: u32,
    name: [u8; CACHE_NAME_LEN],
    /// Link in `slab_caches`, or in the free list of dead cache structures.
    list: ListHead,
    node: KmemCacheNode<L>,
    stats: [AtomicU64; NR_STATS],
    alive: AtomicBool,
}

// SAFETY: the raw pointers are to per-CPU data (used under CPU sections) and to slab memory
// (used under the list lock or by compare-and-swap), as the module documentation describes.
unsafe impl<L: lock_api::RawMutex + Send + Sync> Sync for KmemCache<L> {}
// SAFETY: as above.
unsafe impl<L: lock_api::RawMutex + Send + Sync> Send for KmemCache<L> {}

type Cache<P> = KmemCache<<P as Platform>::RawLock>;

impl<L: lock_api::RawMutex> KmemCache<L> {
    /// The cache's name.
    pub fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..self.name_len as usize]).unwrap_or("?")
    }
    #[inline]
    fn debug(&self) -> bool {
        self.flags.intersects(SlabFlags::DEBUG_FLAGS)
    }
    #[inline]
    fn stat(&self, s: Stat) {
        self.stats[s as usize].fetch_add(1, Ordering::Relaxed);
    }
    /// The current CPU's `kmem_cache_cpu`.
    ///
    /// # Safety
    /// The caller holds a CPU section of `cpu` and keeps no other reference to it.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    unsafe fn cpu(&self, cpu: usize) -> &mut KmemCacheCpu {
        // SAFETY: `cpu_slab` has `possible_cpus` entries, `cpu` is one of them (CpuGuard
        // invariant) and exclusivity is the caller's guarantee.
        unsafe { &mut *self.cpu_slab.add(cpu) }
    }
    /// `freeptr_outside_object`.
    #[inline]
    fn freeptr_outside(&self) -> bool {
        self.offset >= self.inuse
    }
    /// `get_info_end`.
    #[inline]
    fn info_end(&self) -> u32 {
        if self.freeptr_outside() {
            self.inuse + PTR
        } else {
            self.inuse
        }
    }
    /// `size_from_object`.
    #[inline]
    fn size_from_object(&self) -> u32 {
        if self.flags.contains(SlabFlags::RED_ZONE) {
            self.size - self.red_left_pad
        } else {
            self.size
        }
    }
    /// `slub_debug_orig_size`: kmalloc caches with owner tracking remember the size asked.
    #[inline]
    fn orig_size_enabled(&self) -> bool {
        self.flags.contains(SlabFlags::STORE_USER) && self.flags.contains(SlabFlags::KMALLOC)
    }
    /// Offset of the end of the metadata (`info_end` + tracks + orig_size).
    fn meta_end(&self) -> u32 {
        let mut off = self.info_end();
        if self.flags.contains(SlabFlags::STORE_USER) {
            off += 2 * TRACK_SIZE;
        }
        if self.orig_size_enabled() {
            off += 4;
        }
        off
    }
    /// `slab_ksize`: how many bytes of an object its user may use.
    pub(crate) fn ksize(&self) -> usize {
        if self
            .flags
            .intersects(SlabFlags::RED_ZONE | SlabFlags::POISON)
        {
            self.object_size as usize
        } else if self
            .flags
            .intersects(SlabFlags::TYPESAFE_BY_RCU | SlabFlags::STORE_USER)
        {
            self.inuse as usize
        } else {
            self.size as usize
        }
    }

    // ---- free pointers ----

    /// `freelist_ptr_encode`.
    #[inline]
    fn encode(&self, ptr: *mut u8, slot: usize) -> usize {
        (ptr as usize) ^ self.random ^ slot.swap_bytes()
    }
    /// `get_freepointer`.
    ///
    /// # Safety
    /// `obj` is an object of a slab of this cache that the caller may read.
    #[inline]
    unsafe fn get_fp(&self, obj: *mut u8) -> *mut u8 {
        // SAFETY: the free pointer slot lies inside the object's stride (offset < size) and is
        // word aligned (objects and offset are multiples of 8).
        let slot = unsafe { obj.add(self.offset as usize) };
        // SAFETY: as above.
        let raw = unsafe { ptr::read(slot.cast::<usize>()) };
        (raw ^ self.random ^ (slot as usize).swap_bytes()) as *mut u8
    }
    /// `set_freepointer`.
    ///
    /// # Safety
    /// `obj` is a free object of a slab of this cache that the caller owns.
    #[inline]
    unsafe fn set_fp(&self, obj: *mut u8, fp: *mut u8) {
        // SAFETY: as in `get_fp`.
        let slot = unsafe { obj.add(self.offset as usize) };
        let v = self.encode(fp, slot as usize);
        // SAFETY: as in `get_fp`; the caller owns the object.
        unsafe { ptr::write(slot.cast::<usize>(), v) };
    }
}

// ------------------------------------------------------------------ struct slab

/// Bits of the slab's `private` word.
const OBJECTS_MASK: usize = 0xffff;
const ON_PARTIAL: usize = 1 << 16;
const ON_FULL: usize = 1 << 17;

/// The freelist+counters word of a slab.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Counters(u64);

impl Counters {
    #[inline]
    fn new(freelist: *mut u8, base: *mut u8, inuse: u32, frozen: bool) -> Self {
        let fl = if freelist.is_null() {
            0
        } else {
            (freelist as u64 - base as u64) + 1
        };
        debug_assert!(fl < 1 << 32);
        Counters(fl | (inuse as u64) << 32 | (frozen as u64) << 48)
    }
    #[inline]
    fn freelist(self, base: *mut u8) -> *mut u8 {
        let fl = self.0 & 0xffff_ffff;
        if fl == 0 {
            ptr::null_mut()
        } else {
            base.wrapping_add(fl as usize - 1)
        }
    }
    #[inline]
    fn inuse(self) -> u32 {
        ((self.0 >> 32) & 0xffff) as u32
    }
    #[inline]
    fn frozen(self) -> bool {
        self.0 >> 48 & 1 != 0
    }
}

/// `struct slab`: a view of a slab's head `struct page`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Slab(PagePtr);

impl Slab {
    #[inline]
    fn from_page(p: *mut Page) -> Option<Slab> {
        // SAFETY: slab pointers kept in per-CPU data and lists are memmap entries.
        NonNull::new(p).map(|p| Slab(unsafe { PagePtr::from_raw(p) }))
    }
    #[inline]
    fn raw(self) -> *mut Page {
        self.0.as_ptr()
    }
    #[inline]
    fn counters_word(self) -> &'static AtomicU64 {
        // SAFETY: `index` is an 8-byte, 8-aligned word of a live memmap entry (64-bit only,
        // checked above); while the page is a slab every access to it goes through this atomic.
        unsafe { &*ptr::addr_of!((*self.raw()).index).cast::<AtomicU64>() }
    }
    #[inline]
    fn counters(self) -> Counters {
        Counters(self.counters_word().load(Ordering::Acquire))
    }
    #[inline]
    fn set_counters(self, c: Counters) {
        self.counters_word().store(c.0, Ordering::Release)
    }
    #[inline]
    fn cas(self, old: Counters, new: Counters) -> bool {
        self.counters_word()
            .compare_exchange(old.0, new.0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
    #[inline]
    fn objects(self) -> u32 {
        (self.0.private() & OBJECTS_MASK) as u32
    }
    #[inline]
    fn test(self, bit: usize) -> bool {
        self.0.private() & bit != 0
    }
    #[inline]
    fn set(self, bit: usize, on: bool) {
        let v = self.0.private();
        self.0.set_private(if on { v | bit } else { v & !bit });
    }
    #[inline]
    fn next_partial(self) -> *mut Page {
        // SAFETY: field read of a live memmap entry owned by the CPU holding the slab.
        unsafe { (*self.0.lru()).next.cast::<Page>() }
    }
    #[inline]
    fn set_next_partial(self, n: *mut Page) {
        // SAFETY: as in `next_partial`.
        unsafe { (*self.0.lru()).next = n.cast::<ListHead>() }
    }
    #[inline]
    fn order(self) -> u32 {
        self.0.compound_order().as_u32()
    }
}

impl<P: Platform> SlabLayer<P> {
    /// The real address of a slab's memory (`slab_address`); slabs are always lowmem.
    #[inline]
    fn slab_base(&self, slab: Slab) -> *mut u8 {
        let off = (slab.raw() as usize - self.mem_map as usize) << (PAGE_SHIFT - 6);
        self.direct_map.wrapping_add(off)
    }
}

const _: () = assert!(core::mem::size_of::<Page>() == 64);

#[inline]
fn cache_ref<'a, P: Platform>(h: CacheHandle) -> &'a Cache<P> {
    // SAFETY: handles are made from pointers to cache structures, which are never freed (see
    // slab_common's module documentation).
    unsafe { &*h.ptr.as_ptr().cast::<Cache<P>>() }
}

#[inline]
fn handle_of<L: lock_api::RawMutex>(s: &KmemCache<L>) -> CacheHandle {
    CacheHandle {
        ptr: NonNull::from(s).cast(),
        gen: s.gen.load(Ordering::Relaxed),
    }
}

/// Resolves a handle, reporting a stale one.
#[inline]
fn resolve<'a, P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    caller: &'static Location<'static>,
) -> Option<&'a Cache<P>> {
    let s = cache_ref::<P>(h);
    if s.gen.load(Ordering::Relaxed) == h.gen {
        Some(s)
    } else {
        stale_handle(m, h, caller);
        None
    }
}

#[cold]
fn stale_handle<P: Platform>(m: &SlabLayer<P>, h: CacheHandle, caller: &'static Location<'static>) {
    m.warn_at(
        caller,
        format_args!(
            "kmem_cache {:#x} used after kmem_cache_destroy (stale handle)",
            m.to_model(h.ptr.as_ptr() as usize)
        ),
    );
}

// ------------------------------------------------------------------ reports

/// Formats one `print_hex_dump` row: 16 bytes `xx` separated by spaces, ASCII from column 49.
fn hex_row(out: &mut LineBuf, bytes: &[u8]) {
    let mut col = 0;
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            let _ = out.write_str(" ");
            col += 1;
        }
        let _ = write!(out, "{b:02x}");
        col += 2;
    }
    while col < 49 {
        let _ = out.write_str(" ");
        col += 1;
    }
    for b in bytes {
        let c = if (0x20..0x7f).contains(b) {
            *b as char
        } else {
            '.'
        };
        let _ = out.write_char(c);
    }
}

/// `struct track` (without the stack trace): who last allocated or freed an object.
#[repr(C)]
#[derive(Clone, Copy)]
struct Track {
    /// The caller's `&'static Location`.
    addr: usize,
    /// `addr ^ TRACK_MAGIC`, so a clobbered track is never dereferenced.
    check: usize,
    cpu: u32,
    pid: u32,
    when: u64,
}
const TRACK_SIZE: u32 = core::mem::size_of::<Track>() as u32;
const TRACK_MAGIC: usize = 0x6b6d_656d_7472_6163;

#[derive(Clone, Copy)]
enum TrackItem {
    Alloc = 0,
    Free = 1,
}

impl<P: Platform> SlabLayer<P> {
    /// A `WARN()` naming an explicit caller.
    pub(crate) fn warn_at(
        &self,
        caller: &'static Location<'static>,
        args: core::fmt::Arguments<'_>,
    ) {
        self.taint.warnings.fetch_add(1, Ordering::Relaxed);
        self.printk(
            LogLevel::Warning,
            format_args!("------------[ cut here ]------------"),
        );
        self.printk(
            LogLevel::Warning,
            format_args!(
                "WARNING: CPU: {} PID: {} at {}:{} {}",
                CpuGuard::new(self.platform()).cpu(),
                self.platform().current_pid(),
                caller.file(),
                caller.line(),
                args
            ),
        );
        self.printk(LogLevel::Warning, format_args!("Modules linked in:"));
        self.add_taint(crate::debug::TAINT_WARN);
        self.dump_stack(LogLevel::Warning, caller);
        self.printk(
            LogLevel::Warning,
            format_args!("---[ end trace 0000000000000000 ]---"),
        );
    }

    /// Starts a slab `BUG` report: counts it as a bug and a slab error (`slab_bug`).
    pub(crate) fn slab_bug(&self, name: &str, args: core::fmt::Arguments<'_>) {
        self.taint.bugs.fetch_add(1, Ordering::Relaxed);
        self.slab().errors.fetch_add(1, Ordering::Relaxed);
        self.printk(
            LogLevel::Err,
            format_args!(
                "============================================================================="
            ),
        );
        self.printk(
            LogLevel::Err,
            format_args!("BUG {} ({}): {}", name, self.taint_string(), args),
        );
        self.printk(
            LogLevel::Err,
            format_args!(
                "-----------------------------------------------------------------------------"
            ),
        );
        self.printk(LogLevel::Err, format_args!(""));
    }

    /// `slab_fix`: one `FIX` line, counted as a slab error.
    pub(crate) fn slab_fix(&self, name: &str, args: core::fmt::Arguments<'_>) {
        self.slab().errors.fetch_add(1, Ordering::Relaxed);
        self.printk(LogLevel::Err, format_args!("FIX {}: {}", name, args));
    }

    fn taint_string(&self) -> &'static str {
        let t = self.taint_flags.load(Ordering::Relaxed);
        match (
            t & crate::debug::TAINT_BAD_PAGE != 0,
            t & crate::debug::TAINT_WARN != 0,
        ) {
            (false, false) => "Not tainted",
            (true, false) => "Tainted: G    B",
            (false, true) => "Tainted: G        W",
            (true, true) => "Tainted: G    B   W",
        }
    }

    #[inline]
    fn model(&self, p: *const u8) -> u64 {
        self.to_model(p as usize)
    }

    /// `print_section`: a hex dump with addresses.
    fn print_section(&self, level: LogLevel, text: &str, addr: *const u8, len: usize) {
        let mut off = 0;
        while off < len {
            let n = (len - off).min(16);
            let mut row = [0u8; 16];
            // SAFETY: the dumped ranges lie inside a slab the caller holds (list lock or
            // ownership); plain byte reads.
            unsafe { ptr::copy_nonoverlapping(addr.add(off), row.as_mut_ptr(), n) };
            let mut line = LineBuf::new();
            let _ = write!(
                line,
                "{}{:016x}: ",
                text,
                self.model(addr.wrapping_add(off))
            );
            hex_row(&mut line, &row[..n]);
            self.printk(level, format_args!("{}", line.as_str()));
            off += n;
        }
    }

    fn print_slab_info(&self, slab: Slab) {
        let c = slab.counters();
        let base = self.slab_base(slab);
        let fl = c.freelist(base);
        self.printk(
            LogLevel::Err,
            format_args!(
                "INFO: Slab 0x{:016x} objects={} used={} fp=0x{:016x} flags=0x{:04x}",
                self.model(slab.raw().cast()),
                slab.objects(),
                c.inuse(),
                if fl.is_null() { 0 } else { self.model(fl) },
                slab.0.flags() & 0xffff_ffff
            ),
        );
    }

    fn get_track<L: lock_api::RawMutex>(
        &self,
        s: &KmemCache<L>,
        obj: *mut u8,
        t: TrackItem,
    ) -> *mut Track {
        obj.wrapping_add((s.info_end() + t as u32 * TRACK_SIZE) as usize)
            .cast()
    }

    fn set_track<L: lock_api::RawMutex>(
        &self,
        s: &KmemCache<L>,
        obj: *mut u8,
        t: TrackItem,
        caller: Option<&'static Location<'static>>,
    ) {
        let p = self.get_track(s, obj, t);
        let tr = match caller {
            Some(c) => {
                let addr = c as *const Location<'static> as usize;
                Track {
                    addr,
                    check: addr ^ TRACK_MAGIC,
                    cpu: CpuGuard::new(self.platform()).cpu() as u32,
                    pid: self.platform().current_pid(),
                    when: self.platform().jiffies(),
                }
            }
            None => Track {
                addr: 0,
                check: 0,
                cpu: 0,
                pid: 0,
                when: 0,
            },
        };
        // SAFETY: the track area lies inside the object's stride (calculate_sizes reserved
        // it); objects are 8-aligned, the caller owns the object.
        unsafe { ptr::write_unaligned(p, tr) };
    }

    fn print_track(&self, what: &str, t: *const Track) {
        // SAFETY: inside the object's stride, as in `set_track`.
        let t = unsafe { ptr::read_unaligned(t) };
        if t.addr == 0 {
            return;
        }
        let age = self.platform().jiffies().wrapping_sub(t.when);
        if t.check == t.addr ^ TRACK_MAGIC {
            // SAFETY: `addr` was stored from a `&'static Location` and the check word proves
            // it was not clobbered.
            let loc = unsafe { &*(t.addr as *const Location<'static>) };
            self.printk(
                LogLevel::Err,
                format_args!(
                    "INFO: {} in {}:{}:{} age={} cpu={} pid={}",
                    what,
                    loc.file(),
                    loc.line(),
                    loc.column(),
                    age,
                    t.cpu,
                    t.pid
                ),
            );
        } else {
            self.printk(
                LogLevel::Err,
                format_args!(
                    "INFO: {} in 0x{:x} (track corrupt) age={} cpu={} pid={}",
                    what, t.addr, age, t.cpu, t.pid
                ),
            );
        }
    }

    fn print_tracking<L: lock_api::RawMutex>(&self, s: &KmemCache<L>, obj: *mut u8) {
        if !s.flags.contains(SlabFlags::STORE_USER) {
            return;
        }
        self.print_track("Allocated", self.get_track(s, obj, TrackItem::Alloc));
        self.print_track("Freed", self.get_track(s, obj, TrackItem::Free));
    }

    /// `print_trailer`.
    fn print_trailer<L: lock_api::RawMutex>(&self, s: &KmemCache<L>, slab: Slab, p: *mut u8) {
        let base = self.slab_base(slab);
        self.print_tracking(s, p);
        self.print_slab_info(slab);
        // SAFETY: `p` is an object of the slab.
        let fp = unsafe { s.get_fp(p) };
        self.printk(
            LogLevel::Err,
            format_args!(
                "INFO: Object 0x{:016x} @offset={} fp=0x{:016x}",
                self.model(p),
                p as usize - base as usize,
                if fp.is_null() { 0 } else { self.model(fp) }
            ),
        );
        self.printk(LogLevel::Err, format_args!(""));
        if s.flags.contains(SlabFlags::RED_ZONE) {
            self.print_section(
                LogLevel::Err,
                "Redzone  ",
                p.wrapping_sub(s.red_left_pad as usize),
                s.red_left_pad as usize,
            );
        } else if p as usize > base as usize + 16 {
            self.print_section(LogLevel::Err, "Bytes b4 ", p.wrapping_sub(16), 16);
        }
        self.print_section(
            LogLevel::Err,
            "Object   ",
            p,
            (s.object_size as usize).min(PAGE_SIZE),
        );
        if s.flags.contains(SlabFlags::RED_ZONE) {
            self.print_section(
                LogLevel::Err,
                "Redzone  ",
                p.wrapping_add(s.object_size as usize),
                (s.inuse - s.object_size) as usize,
            );
        }
        let off = s.meta_end();
        if off != s.size_from_object() {
            self.print_section(
                LogLevel::Err,
                "Padding  ",
                p.wrapping_add(off as usize),
                (s.size_from_object() - off) as usize,
            );
        }
        self.dump_stack(LogLevel::Err, Location::caller());
    }

    /// `object_err`.
    fn object_err<L: lock_api::RawMutex>(
        &self,
        s: &KmemCache<L>,
        slab: Slab,
        p: *mut u8,
        reason: &str,
    ) {
        self.slab_bug(s.name(), format_args!("{reason}"));
        self.print_trailer(s, slab, p);
        self.add_taint(crate::debug::TAINT_BAD_PAGE);
    }

    /// `slab_err`.
    fn slab_err<L: lock_api::RawMutex>(
        &self,
        s: &KmemCache<L>,
        slab: Option<Slab>,
        args: core::fmt::Arguments<'_>,
    ) {
        self.slab_bug(s.name(), args);
        if let Some(slab) = slab {
            self.print_slab_info(slab);
        }
        self.dump_stack(LogLevel::Err, Location::caller());
        self.add_taint(crate::debug::TAINT_BAD_PAGE);
    }

    /// `check_bytes_and_report`: checks that `[start, start + bytes)` holds `value`; reports and
    /// restores it otherwise.
    #[allow(clippy::too_many_arguments)]
    fn check_bytes_and_report<L: lock_api::RawMutex>(
        &self,
        s: &KmemCache<L>,
        slab: Slab,
        object: *mut u8,
        what: &str,
        start: *mut u8,
        value: u8,
        bytes: usize,
    ) -> bool {
        // SAFETY: the range lies in the object's stride inside a slab the caller holds.
        let area = unsafe { core::slice::from_raw_parts(start, bytes) };
        let Some(first) = area.iter().position(|b| *b != value) else {
            return true;
        };
        let mut end = bytes;
        while end > first && area[end - 1] == value {
            end -= 1;
        }
        let base = self.slab_base(slab);
        let fault = start.wrapping_add(first);
        self.slab_bug(s.name(), format_args!("{what} overwritten"));
        self.printk(
            LogLevel::Err,
            format_args!(
                "INFO: 0x{:016x}-0x{:016x} @offset={}. First byte 0x{:x} instead of 0x{:x}",
                self.model(fault),
                self.model(start.wrapping_add(end - 1)),
                fault as usize - base as usize,
                area[first],
                value
            ),
        );
        self.print_trailer(s, slab, object);
        self.add_taint(crate::debug::TAINT_BAD_PAGE);
        self.slab_fix(
            s.name(),
            format_args!(
                "Restoring {} 0x{:016x}-0x{:016x}=0x{:x}",
                what,
                self.model(fault),
                self.model(start.wrapping_add(end - 1)),
                value
            ),
        );
        // SAFETY: as above; we repair the bytes we reported.
        unsafe { ptr::write_bytes(fault, value, end - first) };
        false
    }

    /// `init_object`: red zones to `val`, poison when free.
    fn init_object<L: lock_api::RawMutex>(&self, s: &KmemCache<L>, p: *mut u8, val: u8) {
        let mut poison_size = s.object_size as usize;
        if s.flags.contains(SlabFlags::RED_ZONE) && s.orig_size_enabled() && val == SLUB_RED_ACTIVE
        {
            // Red-zone what kmalloc gave beyond the request ("kmalloc Redzone").
            poison_size = self.get_orig_size(s, p) as usize;
        }
        // SAFETY: the object's stride belongs to the caller (allocation, free or new slab).
        unsafe {
            if s.flags.contains(SlabFlags::RED_ZONE) {
                ptr::write_bytes(p.sub(s.red_left_pad as usize), val, s.red_left_pad as usize);
            }
            if s.flags.contains(SlabFlags::OBJECT_POISON) && poison_size > 0 {
                ptr::write_bytes(p, POISON_FREE, poison_size - 1);
                *p.add(poison_size - 1) = POISON_END;
            }
            if s.flags.contains(SlabFlags::RED_ZONE) {
                ptr::write_bytes(p.add(poison_size), val, s.inuse as usize - poison_size);
            }
        }
    }

    fn orig_size_slot<L: lock_api::RawMutex>(&self, s: &KmemCache<L>, p: *mut u8) -> *mut u32 {
        p.wrapping_add((s.info_end() + 2 * TRACK_SIZE) as usize)
            .cast()
    }

    /// `get_orig_size`: the size asked of kmalloc (the object size when not tracked).
    fn get_orig_size<L: lock_api::RawMutex>(&self, s: &KmemCache<L>, p: *mut u8) -> u32 {
        if !s.orig_size_enabled() {
            return s.object_size;
        }
        // SAFETY: the slot lies in the object's metadata, reserved by calculate_sizes.
        let v = unsafe { ptr::read_unaligned(self.orig_size_slot(s, p)) };
        v.min(s.object_size)
    }

    fn set_orig_size<L: lock_api::RawMutex>(&self, s: &KmemCache<L>, p: *mut u8, v: u32) {
        // SAFETY: as in `get_orig_size`; the caller owns the object.
        unsafe { ptr::write_unaligned(self.orig_size_slot(s, p), v) };
    }

    /// `check_valid_pointer`.
    fn check_valid_pointer<L: lock_api::RawMutex>(
        &self,
        s: &KmemCache<L>,
        slab: Slab,
        obj: *mut u8,
    ) -> bool {
        if obj.is_null() {
            return true;
        }
        let base = self.slab_base(slab) as usize;
        let o = (obj as usize).wrapping_sub(s.red_left_pad as usize);
        o >= base
            && o < base + slab.objects() as usize * s.size as usize
            && (o - base) / s.size as usize * s.size as usize == o - base
    }

    /// `check_pad_bytes`.
    fn check_pad_bytes<L: lock_api::RawMutex>(
        &self,
        s: &KmemCache<L>,
        slab: Slab,
        p: *mut u8,
    ) -> bool {
        let off = s.meta_end();
        if s.size_from_object() == off {
            return true;
        }
        self.check_bytes_and_report(
            s,
            slab,
            p,
            "Object padding",
            p.wrapping_add(off as usize),
            POISON_INUSE,
            (s.size_from_object() - off) as usize,
        )
    }

    /// `slab_pad_check`: the leftover at the end of a poisoned slab.
    fn slab_pad_check<L: lock_api::RawMutex>(&self, s: &KmemCache<L>, slab: Slab) -> bool {
        if !s.flags.contains(SlabFlags::POISON) {
            return true;
        }
        let start = self.slab_base(slab);
        let length = PAGE_SIZE << slab.order();
        let remainder = length % s.size as usize;
        if remainder == 0 {
            return true;
        }
        let pad = start.wrapping_add(length - remainder);
        // SAFETY: the tail of a slab held by the caller.
        let area = unsafe { core::slice::from_raw_parts(pad, remainder) };
        let Some(first) = area.iter().position(|b| *b != POISON_INUSE) else {
            return true;
        };
        let mut end = remainder;
        while end > first && area[end - 1] == POISON_INUSE {
            end -= 1;
        }
        let fault = pad.wrapping_add(first);
        self.slab_err(
            s,
            Some(slab),
            format_args!(
                "Padding overwritten. 0x{:016x}-0x{:016x} @offset={}",
                self.model(fault),
                self.model(pad.wrapping_add(end - 1)),
                fault as usize - start as usize
            ),
        );
        self.print_section(LogLevel::Err, "Padding ", pad, remainder);
        self.slab_fix(
            s.name(),
            format_args!(
                "Restoring slab padding 0x{:016x}-0x{:016x}=0x{:x}",
                self.model(fault),
                self.model(pad.wrapping_add(end - 1)),
                POISON_INUSE
            ),
        );
        // SAFETY: as above.
        unsafe { ptr::write_bytes(fault, POISON_INUSE, end - first) };
        false
    }

    /// `check_object`.
    fn check_object<L: lock_api::RawMutex>(
        &self,
        s: &KmemCache<L>,
        slab: Slab,
        p: *mut u8,
        val: u8,
    ) -> bool {
        let endobject = p.wrapping_add(s.object_size as usize);
        let mut ok = true;
        if s.flags.contains(SlabFlags::RED_ZONE) {
            if !self.check_bytes_and_report(
                s,
                slab,
                p,
                "Left Redzone",
                p.wrapping_sub(s.red_left_pad as usize),
                val,
                s.red_left_pad as usize,
            ) {
                ok = false;
            }
            if s.orig_size_enabled() && val == SLUB_RED_ACTIVE {
                let orig = self.get_orig_size(s, p);
                if s.object_size > orig
                    && !self.check_bytes_and_report(
                        s,
                        slab,
                        p,
                        "kmalloc Redzone",
                        p.wrapping_add(orig as usize),
                        val,
                        (s.object_size - orig) as usize,
                    )
                {
                    ok = false;
                }
            }
            if !self.check_bytes_and_report(
                s,
                slab,
                p,
                "Right Redzone",
                endobject,
                val,
                (s.inuse - s.object_size) as usize,
            ) {
                ok = false;
            }
        } else if s.flags.contains(SlabFlags::POISON) && s.object_size < s.inuse {
            self.check_bytes_and_report(
                s,
                slab,
                p,
                "Alignment padding",
                endobject,
                POISON_INUSE,
                (s.inuse - s.object_size) as usize,
            );
        }
        if s.flags.contains(SlabFlags::POISON) {
            if val != SLUB_RED_ACTIVE && s.flags.contains(SlabFlags::OBJECT_POISON) {
                if !self.check_bytes_and_report(
                    s,
                    slab,
                    p,
                    "Poison",
                    p,
                    POISON_FREE,
                    s.object_size as usize - 1,
                ) {
                    ok = false;
                }
                if !self.check_bytes_and_report(
                    s,
                    slab,
                    p,
                    "End Poison",
                    p.wrapping_add(s.object_size as usize - 1),
                    POISON_END,
                    1,
                ) {
                    ok = false;
                }
            }
            self.check_pad_bytes(s, slab, p);
        }
        if !s.freeptr_outside() && val == SLUB_RED_ACTIVE {
            // The free pointer overlaps the object and cannot be checked while in use.
            return ok;
        }
        // SAFETY: `p` is an object of the slab, held by the caller.
        let fp = unsafe { s.get_fp(p) };
        if !self.check_valid_pointer(s, slab, fp) {
            self.object_err(s, slab, p, "Freepointer corrupt");
            // SAFETY: as above; the chain after it is lost, as in Linux.
            unsafe { s.set_fp(p, ptr::null_mut()) };
            return false;
        }
        ok
    }

    /// `check_slab`.
    fn check_slab<L: lock_api::RawMutex>(&self, s: &KmemCache<L>, slab: Slab) -> bool {
        if slab.0.page_type() != Some(PageType::Slab) {
            self.slab_err(s, Some(slab), format_args!("Not a valid slab page"));
            return false;
        }
        let maxobj = order_objects(slab.order(), s.size).min(MAX_OBJS_PER_PAGE);
        if slab.objects() > maxobj {
            self.slab_err(
                s,
                Some(slab),
                format_args!("objects {} > max {}", slab.objects(), maxobj),
            );
            return false;
        }
        let c = slab.counters();
        if c.inuse() > slab.objects() {
            self.slab_err(
                s,
                Some(slab),
                format_args!("inuse {} > max {}", c.inuse(), slab.objects()),
            );
            return false;
        }
        self.slab_pad_check(s, slab);
        true
    }

    /// `on_freelist`: whether `search` is on the slab's freelist; repairs the freelist and the
    /// in-use count when they are wrong. Called with the list lock held on an unfrozen slab.
    fn on_freelist<L: lock_api::RawMutex>(
        &self,
        s: &KmemCache<L>,
        slab: Slab,
        search: *mut u8,
    ) -> bool {
        let base = self.slab_base(slab);
        let mut nr = 0u32;
        let c = slab.counters();
        let mut fp = c.freelist(base);
        let mut object: *mut u8 = ptr::null_mut();
        while !fp.is_null() && nr <= slab.objects() {
            if fp == search {
                return true;
            }
            if !self.check_valid_pointer(s, slab, fp) {
                if !object.is_null() {
                    self.object_err(s, slab, object, "Freechain corrupt");
                    // SAFETY: `object` is a free object of the slab (on its freelist).
                    unsafe { s.set_fp(object, ptr::null_mut()) };
                } else {
                    self.slab_err(s, Some(slab), format_args!("Freepointer corrupt"));
                    self.set_counters_locked(
                        slab,
                        Counters::new(ptr::null_mut(), base, slab.objects(), c.frozen()),
                    );
                    self.slab_fix(s.name(), format_args!("Freelist cleared"));
                    return false;
                }
                break;
            }
            object = fp;
            // SAFETY: `fp` was checked to be an object of the slab.
            fp = unsafe { s.get_fp(object) };
            nr += 1;
        }
        let max_objects = order_objects(slab.order(), s.size).min(MAX_OBJS_PER_PAGE);
        if slab.objects() != max_objects && slab.order() == s.order {
            self.slab_err(
                s,
                Some(slab),
                format_args!(
                    "Wrong number of objects. Found {} but should be {}",
                    slab.objects(),
                    max_objects
                ),
            );
            slab.0
                .set_private((slab.0.private() & !OBJECTS_MASK) | max_objects as usize);
            self.slab_fix(s.name(), format_args!("Number of objects adjusted."));
        }
        let c = slab.counters();
        let counted = slab.objects().saturating_sub(nr);
        if c.inuse() != counted {
            self.slab_err(
                s,
                Some(slab),
                format_args!(
                    "Wrong object count. Counter is {} but counted were {}",
                    c.inuse(),
                    counted
                ),
            );
            self.set_counters_locked(
                slab,
                Counters::new(c.freelist(base), base, counted, c.frozen()),
            );
            self.slab_fix(s.name(), format_args!("Object count adjusted."));
        }
        search.is_null()
    }

    /// Replaces a slab's counters word, retrying against concurrent pushes (list lock held).
    fn set_counters_locked(&self, slab: Slab, new: Counters) {
        slab.set_counters(new);
    }
}

// ------------------------------------------------------------------ slab creation

impl<P: Platform> SlabLayer<P> {
    /// `setup_object`: debug initialisation and the constructor.
    fn setup_object(&self, s: &Cache<P>, obj: *mut u8) {
        if s.flags
            .intersects(SlabFlags::STORE_USER | SlabFlags::RED_ZONE | SlabFlags::OBJECT_POISON)
        {
            self.init_object(s, obj, SLUB_RED_INACTIVE);
            if s.flags.contains(SlabFlags::STORE_USER) {
                self.set_track(s, obj, TrackItem::Free, None);
                self.set_track(s, obj, TrackItem::Alloc, None);
            }
        }
        if let Some(ctor) = s.ctor {
            ctor(obj);
        }
    }

    /// `allocate_slab` + `shuffle_freelist`: a new slab with all objects chained. Returns the
    /// slab (counters: freelist empty, all in use, frozen) and the freelist head.
    fn new_slab(&self, s: &Cache<P>, gfp: GfpFlags) -> Option<(Slab, *mut u8)> {
        let base_gfp = (gfp & GFP_RECLAIM_MASK) | s.allocflags;
        let mut order = s.order;
        let mut page = None;
        if s.order > s.min_order {
            // Higher order first, without reclaim or warnings (allocate_slab).
            let g = (base_gfp | GfpFlags::__GFP_NOWARN | GfpFlags::__GFP_NOMEMALLOC)
                .without(GfpFlags::__GFP_DIRECT_RECLAIM);
            page = self.alloc_pages(g | GfpFlags::__GFP_COMP, Order::new(order));
            if page.is_none() {
                order = s.min_order;
                s.stat(Stat::OrderFallback);
            }
        }
        if page.is_none() {
            let comp = if order > 0 {
                GfpFlags::__GFP_COMP
            } else {
                GfpFlags::empty
            };
            page = self.alloc_pages(base_gfp | comp, Order::new(order));
        }
        let page = page?;
        let objects = if order == s.order {
            s.objects
        } else {
            order_objects(order, s.size).min(MAX_OBJS_PER_PAGE)
        };
        page.set_page_type(PageType::Slab);
        page.set_mapping(s as *const Cache<P> as usize);
        page.set_private(objects as usize);
        let slab = Slab(page);
        let pages = 1isize << order;
        let stat = if s.flags.contains(SlabFlags::RECLAIM_ACCOUNT) {
            NodeStat::SlabReclaimable
        } else {
            NodeStat::SlabUnreclaimable
        };
        self.mod_node_stat(stat, pages);
        s.node.nr_slabs.fetch_add(1, Ordering::Relaxed);
        s.node
            .total_objects
            .fetch_add(objects as usize, Ordering::Relaxed);

        let base = self.slab_base(slab);
        if s.flags.contains(SlabFlags::POISON) {
            // SAFETY: the whole slab is ours (just allocated).
            unsafe { ptr::write_bytes(base, POISON_INUSE, PAGE_SIZE << order) };
        }
        let start = base.wrapping_add(s.red_left_pad as usize);
        let size = s.size as usize;
        let head;
        if !s.random_seq.is_null() && objects == s.objects && objects > 1 {
            // shuffle_freelist: follow the cache's random sequence from a random start.
            let n = objects as usize;
            let mut pos = (self.platform().random_u64() % n as u64) as usize;
            let mut next = || {
                // SAFETY: `random_seq` has `s.objects` entries.
                let idx = unsafe { *s.random_seq.add(pos) } as usize;
                pos += 1;
                if pos == n {
                    pos = 0;
                }
                start.wrapping_add(idx * size)
            };
            let mut cur = next();
            self.setup_object(s, cur);
            head = cur;
            for _ in 1..n {
                let nx = next();
                self.setup_object(s, nx);
                // SAFETY: both are objects of the new slab, which we own.
                unsafe { s.set_fp(cur, nx) };
                cur = nx;
            }
            // SAFETY: as above.
            unsafe { s.set_fp(cur, ptr::null_mut()) };
        } else {
            let mut cur = start;
            self.setup_object(s, cur);
            head = cur;
            for i in 1..objects as usize {
                let nx = start.wrapping_add(i * size);
                self.setup_object(s, nx);
                // SAFETY: both are objects of the new slab, which we own.
                unsafe { s.set_fp(cur, nx) };
                cur = nx;
            }
            // SAFETY: as above.
            unsafe { s.set_fp(cur, ptr::null_mut()) };
        }
        slab.set_counters(Counters::new(ptr::null_mut(), base, objects, true));
        s.stat(Stat::AllocSlab);
        Some((slab, head))
    }

    /// `discard_slab`: gives an empty slab back to the page allocator.
    fn discard_slab(&self, s: &Cache<P>, slab: Slab) {
        if s.flags.contains(SlabFlags::CONSISTENCY_CHECKS) {
            self.slab_pad_check(s, slab);
            let start = self.slab_base(slab).wrapping_add(s.red_left_pad as usize);
            for i in 0..slab.objects() as usize {
                self.check_object(
                    s,
                    slab,
                    start.wrapping_add(i * s.size as usize),
                    SLUB_RED_INACTIVE,
                );
            }
        }
        let order = slab.order();
        let objects = slab.objects();
        s.node.nr_slabs.fetch_sub(1, Ordering::Relaxed);
        s.node
            .total_objects
            .fetch_sub(objects as usize, Ordering::Relaxed);
        let stat = if s.flags.contains(SlabFlags::RECLAIM_ACCOUNT) {
            NodeStat::SlabReclaimable
        } else {
            NodeStat::SlabUnreclaimable
        };
        self.mod_node_stat(stat, -(1isize << order));
        let page = slab.0;
        page.clear_page_type();
        page.set_mapping(0);
        page.set_index(0);
        page.set_private(0);
        // SAFETY: the slab is off every list; reset its link to a harmless value.
        unsafe { ListHead::init(page.lru()) };
        s.stat(Stat::FreeSlab);
        self.__free_pages(page, Order::new(order));
    }
}

// ------------------------------------------------------------------ node lists

fn add_partial(n: &mut NodeLists, slab: Slab, tail: bool) {
    slab.set(ON_PARTIAL, true);
    n.nr_partial += 1;
    let head: *mut ListHead = &mut n.partial;
    // SAFETY: the list head lives in the (pinned) cache; the slab is on no list (ON_PARTIAL
    // and ON_FULL were clear) and we hold the list lock.
    unsafe {
        if tail {
            list::list_add_tail(slab.0.lru(), head)
        } else {
            list::list_add(slab.0.lru(), head)
        }
    }
}

fn remove_partial(n: &mut NodeLists, slab: Slab) {
    debug_assert!(slab.test(ON_PARTIAL));
    // SAFETY: the slab is on this node's partial list (ON_PARTIAL), under the list lock.
    unsafe { list::list_del(slab.0.lru()) };
    slab.set(ON_PARTIAL, false);
    n.nr_partial -= 1;
}

fn add_full(n: &mut NodeLists, slab: Slab) {
    slab.set(ON_FULL, true);
    // SAFETY: as in `add_partial`.
    unsafe { list::list_add(slab.0.lru(), &mut n.full) };
}

fn remove_full(slab: Slab) {
    if slab.test(ON_FULL) {
        // SAFETY: on this node's full list (ON_FULL), under the list lock.
        unsafe { list::list_del(slab.0.lru()) };
        slab.set(ON_FULL, false);
    }
}

/// Collects slabs of a list into a fixed array batch (to discard after unlocking).
struct Discard {
    slabs: [*mut Page; 32],
    n: usize,
}

impl Discard {
    const fn new() -> Self {
        Self {
            slabs: [ptr::null_mut(); 32],
            n: 0,
        }
    }
    fn push(&mut self, s: Slab) -> bool {
        if self.n == self.slabs.len() {
            return false;
        }
        self.slabs[self.n] = s.raw();
        self.n += 1;
        true
    }
}

// ------------------------------------------------------------------ non-debug slow paths

impl<P: Platform> SlabLayer<P> {
    fn update_nr_partial_hint(s: &Cache<P>, n: &NodeLists) {
        s.node
            .nr_partial_hint
            .store(n.nr_partial, Ordering::Relaxed);
    }

    /// `get_freelist`: takes the remote frees of the CPU's frozen slab; unfreezes it if none.
    fn get_freelist(&self, s: &Cache<P>, slab: Slab) -> *mut u8 {
        let base = self.slab_base(slab);
        loop {
            let old = slab.counters();
            let fl = old.freelist(base);
            let new = Counters::new(ptr::null_mut(), base, slab.objects(), !fl.is_null());
            if slab.cas(old, new) {
                return fl;
            }
            s.stat(Stat::CmpxchgDoubleFail);
        }
    }

    /// `get_partial`: takes slabs from the node partial list: the first becomes the CPU slab
    /// (its whole freelist is returned), more go to the CPU partial list.
    fn get_partial(&self, s: &Cache<P>, c: &mut KmemCacheCpu) -> Option<(Slab, *mut u8)> {
        if s.node.nr_partial_hint.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut n = s.node.list_lock.lock();
        let mut got: Option<(Slab, *mut u8)> = None;
        let mut extra = 0;
        let head: *mut ListHead = &mut n.partial;
        // SAFETY: iterating this node's partial list under its lock, removing as we go (safe
        // iterator).
        for l in unsafe { list::list_for_each_safe(head) } {
            // SAFETY: partial-list entries are `slab->slab_list` links of memmap pages.
            let slab = Slab(unsafe { PagePtr::from_lru(l) });
            let base = self.slab_base(slab);
            if got.is_none() {
                let fl = loop {
                    let old = slab.counters();
                    let fl = old.freelist(base);
                    let new = Counters::new(ptr::null_mut(), base, slab.objects(), true);
                    if slab.cas(old, new) {
                        break fl;
                    }
                    s.stat(Stat::CmpxchgDoubleFail);
                };
                remove_partial(&mut n, slab);
                s.stat(Stat::AllocFromPartial);
                got = Some((slab, fl));
                if s.cpu_partial_slabs == 0 {
                    break;
                }
            } else {
                loop {
                    let old = slab.counters();
                    let new = Counters(old.0 | 1 << 48);
                    if slab.cas(old, new) {
                        break;
                    }
                    s.stat(Stat::CmpxchgDoubleFail);
                }
                remove_partial(&mut n, slab);
                slab.set_next_partial(c.partial);
                c.partial = slab.raw();
                c.partial_slabs += 1;
                s.stat(Stat::CpuPartialNode);
                extra += 1;
                if extra > s.cpu_partial_slabs / 2 {
                    break;
                }
            }
        }
        Self::update_nr_partial_hint(s, &n);
        got
    }

    /// `___slab_alloc`: refills the CPU freelist and returns one object.
    #[cold]
    fn slab_alloc_slow(
        &self,
        s: &Cache<P>,
        c: &mut KmemCacheCpu,
        gfp: GfpFlags,
    ) -> Option<*mut u8> {
        c.alloc_slow += 1;
        loop {
            if let Some(slab) = Slab::from_page(c.slab) {
                let fl = self.get_freelist(s, slab);
                if !fl.is_null() {
                    s.stat(Stat::AllocRefill);
                    // SAFETY: `fl` heads the freelist of our frozen slab, now ours.
                    c.freelist = unsafe { s.get_fp(fl) };
                    return Some(fl);
                }
                // Full: unfrozen by get_freelist, on no list.
                c.slab = ptr::null_mut();
                s.stat(Stat::DeactivateBypass);
            }
            if let Some(slab) = Slab::from_page(c.partial) {
                c.partial = slab.next_partial();
                c.partial_slabs -= 1;
                slab.set_next_partial(ptr::null_mut());
                c.slab = slab.raw();
                s.stat(Stat::CpuPartialAlloc);
                continue;
            }
            if let Some((slab, fl)) = self.get_partial(s, c) {
                c.slab = slab.raw();
                // SAFETY: `fl` heads the freelist we just took from the slab.
                c.freelist = unsafe { s.get_fp(fl) };
                return Some(fl);
            }
            let (slab, fl) = self.new_slab(s, gfp)?;
            c.slab = slab.raw();
            // SAFETY: the new slab's chain is ours.
            c.freelist = unsafe { s.get_fp(fl) };
            return Some(fl);
        }
    }

    /// `__unfreeze_partials`: moves a CPU partial list to the node list.
    fn unfreeze_partials(&self, s: &Cache<P>, mut first: *mut Page) {
        if first.is_null() {
            return;
        }
        let mut discard = Discard::new();
        let mut n = s.node.list_lock.lock();
        while let Some(slab) = Slab::from_page(first) {
            first = slab.next_partial();
            slab.set_next_partial(ptr::null_mut());
            let new = loop {
                let old = slab.counters();
                let new = Counters(old.0 & !(1 << 48));
                if slab.cas(old, new) {
                    break new;
                }
                s.stat(Stat::CmpxchgDoubleFail);
            };
            if new.inuse() == 0 && n.nr_partial >= s.min_partial as usize && discard.push(slab) {
                continue;
            }
            add_partial(&mut n, slab, true);
            s.stat(Stat::FreeAddPartial);
        }
        Self::update_nr_partial_hint(s, &n);
        drop(n);
        for p in &discard.slabs[..discard.n] {
            self.discard_slab(s, Slab::from_page(*p).expect("non-null"));
        }
    }

    /// `put_cpu_partial`: puts a just-frozen slab on the current CPU's partial list.
    fn put_cpu_partial(&self, s: &Cache<P>, c: &mut KmemCacheCpu, slab: Slab) {
        if c.partial_slabs >= s.cpu_partial_slabs {
            let list = c.partial;
            c.partial = ptr::null_mut();
            c.partial_slabs = 0;
            s.stat(Stat::CpuPartialDrain);
            self.unfreeze_partials(s, list);
        }
        slab.set_next_partial(c.partial);
        c.partial = slab.raw();
        c.partial_slabs += 1;
    }

    /// `deactivate_slab`: returns a CPU slab and the CPU's freelist for it to the lists.
    fn deactivate_slab(&self, s: &Cache<P>, slab: Slab, freelist: *mut u8) {
        let base = self.slab_base(slab);
        let mut tail = ptr::null_mut();
        let mut cnt = 0u32;
        let mut p = freelist;
        while !p.is_null() {
            tail = p;
            cnt += 1;
            // SAFETY: CPU-owned free objects of this slab.
            p = unsafe { s.get_fp(p) };
        }
        let mut n = s.node.list_lock.lock();
        let new = loop {
            let old = slab.counters();
            let ofl = old.freelist(base);
            let nfl = if freelist.is_null() {
                ofl
            } else {
                // SAFETY: `tail` ends the CPU-owned chain.
                unsafe { s.set_fp(tail, ofl) };
                freelist
            };
            let new = Counters::new(nfl, base, old.inuse() - cnt, false);
            if slab.cas(old, new) {
                break new;
            }
            s.stat(Stat::CmpxchgDoubleFail);
        };
        let mut free = false;
        if new.inuse() == 0 && n.nr_partial >= s.min_partial as usize {
            free = true;
            s.stat(Stat::DeactivateEmpty);
        } else if !new.freelist(base).is_null() {
            add_partial(&mut n, slab, true);
            s.stat(Stat::DeactivateToTail);
        } else {
            s.stat(Stat::DeactivateFull);
        }
        Self::update_nr_partial_hint(s, &n);
        drop(n);
        if free {
            self.discard_slab(s, slab);
        }
    }

    /// `flush_slab` + `put_partials` of one CPU's data.
    fn flush_cpu(&self, s: &Cache<P>, c: &mut KmemCacheCpu) {
        if let Some(slab) = Slab::from_page(c.slab) {
            let fl = c.freelist;
            c.slab = ptr::null_mut();
            c.freelist = ptr::null_mut();
            s.stat(Stat::CpuslabFlush);
            self.deactivate_slab(s, slab, fl);
        }
        let list = c.partial;
        c.partial = ptr::null_mut();
        c.partial_slabs = 0;
        self.unfreeze_partials(s, list);
    }

    /// `__slab_free`: frees a chain `head..tail` of `cnt` objects into a slab that is not the
    /// current CPU's active slab.
    fn slab_free_slow(
        &self,
        s: &Cache<P>,
        c: &mut KmemCacheCpu,
        slab: Slab,
        head: *mut u8,
        tail: *mut u8,
        cnt: u32,
    ) {
        c.free_slow += 1;
        let base = self.slab_base(slab);
        let mut lock = None;
        let (old, new) = loop {
            let old = slab.counters();
            let prior = old.freelist(base);
            let was_frozen = old.frozen();
            // SAFETY: the chain's tail is ours until the CAS publishes it.
            unsafe { s.set_fp(tail, prior) };
            let mut frozen = was_frozen;
            let inuse = old.inuse().wrapping_sub(cnt);
            if !was_frozen {
                if prior.is_null() && s.cpu_partial_slabs > 0 {
                    // Full slab gets free objects: freeze it to our CPU partial list.
                    frozen = true;
                } else if (prior.is_null() || inuse == 0) && lock.is_none() {
                    lock = Some(s.node.list_lock.lock());
                    continue;
                }
            }
            let new = Counters::new(head, base, inuse, frozen);
            if slab.cas(old, new) {
                break (old, new);
            }
            s.stat(Stat::CmpxchgDoubleFail);
        };
        let was_frozen = old.frozen();
        let prior = old.freelist(base);
        let Some(mut n) = lock else {
            if was_frozen {
                s.stat(Stat::FreeFrozen);
            } else if new.frozen() {
                s.stat(Stat::CpuPartialFree);
                self.put_cpu_partial(s, c, slab);
            }
            return;
        };
        if was_frozen {
            s.stat(Stat::FreeFrozen);
            return;
        }
        if new.frozen() {
            drop(n);
            s.stat(Stat::CpuPartialFree);
            self.put_cpu_partial(s, c, slab);
            return;
        }
        if new.inuse() == 0 && n.nr_partial >= s.min_partial as usize {
            if slab.test(ON_PARTIAL) {
                remove_partial(&mut n, slab);
                s.stat(Stat::FreeRemovePartial);
            } else {
                remove_full(slab);
            }
            Self::update_nr_partial_hint(s, &n);
            drop(n);
            self.discard_slab(s, slab);
            return;
        }
        if prior.is_null() {
            remove_full(slab);
            add_partial(&mut n, slab, true);
            s.stat(Stat::FreeAddPartial);
        }
        Self::update_nr_partial_hint(s, &n);
    }
}

// ------------------------------------------------------------------ debug paths

impl<P: Platform> SlabLayer<P> {
    /// `alloc_debug_processing` checks on one object about to be handed out.
    fn alloc_debug_checks(&self, s: &Cache<P>, slab: Slab, obj: *mut u8) -> bool {
        if s.flags.contains(SlabFlags::CONSISTENCY_CHECKS) {
            if !self.check_slab(s, slab) {
                return false;
            }
            if !self.check_valid_pointer(s, slab, obj) {
                self.object_err(s, slab, obj, "Freelist Pointer check fails");
                return false;
            }
            if !self.check_object(s, slab, obj, SLUB_RED_INACTIVE) {
                return false;
            }
        }
        true
    }

    /// Debug caches: one object at a time under the list lock (`alloc_single_from_partial`,
    /// `alloc_single_from_new_slab`).
    fn slab_alloc_debug(
        &self,
        s: &Cache<P>,
        gfp: GfpFlags,
        caller: &'static Location<'static>,
        orig: usize,
    ) -> Option<*mut u8> {
        let mut new_slab: Option<Slab> = None;
        loop {
            let mut n = s.node.list_lock.lock();
            if let Some(slab) = new_slab.take() {
                add_partial(&mut n, slab, false);
            }
            // SAFETY: this node's partial list, under its lock.
            let first = unsafe { list::list_first(&n.partial) };
            if let Some(l) = first {
                // SAFETY: partial-list entries are slab_list links of memmap pages.
                let slab = Slab(unsafe { PagePtr::from_lru(l) });
                let base = self.slab_base(slab);
                let c = slab.counters();
                let obj = c.freelist(base);
                if obj.is_null() || !self.alloc_debug_checks(s, slab, obj) {
                    self.slab_fix(s.name(), format_args!("Marking all objects used"));
                    slab.set_counters(Counters::new(ptr::null_mut(), base, slab.objects(), false));
                    remove_partial(&mut n, slab);
                    add_full(&mut n, slab);
                    Self::update_nr_partial_hint(s, &n);
                    continue;
                }
                // SAFETY: `obj` passed the checks (or checks are off): a free object of the slab.
                let next = unsafe { s.get_fp(obj) };
                let next = if s.flags.contains(SlabFlags::CONSISTENCY_CHECKS)
                    && !self.check_valid_pointer(s, slab, next)
                {
                    self.object_err(s, slab, obj, "Freechain corrupt");
                    self.slab_fix(s.name(), format_args!("Isolate corrupted freechain"));
                    ptr::null_mut()
                } else {
                    next
                };
                let inuse = if next.is_null() {
                    slab.objects()
                } else {
                    c.inuse() + 1
                };
                slab.set_counters(Counters::new(next, base, inuse, false));
                if next.is_null() {
                    remove_partial(&mut n, slab);
                    add_full(&mut n, slab);
                }
                Self::update_nr_partial_hint(s, &n);
                if s.flags.contains(SlabFlags::STORE_USER) {
                    self.set_track(s, obj, TrackItem::Alloc, Some(caller));
                }
                self.trace(s, slab, obj, true);
                if s.orig_size_enabled() {
                    self.set_orig_size(s, obj, orig.min(s.object_size as usize) as u32);
                }
                self.init_object(s, obj, SLUB_RED_ACTIVE);
                return Some(obj);
            }
            drop(n);
            let (slab, fl) = self.new_slab(s, gfp)?;
            let base = self.slab_base(slab);
            slab.set_counters(Counters::new(fl, base, 0, false));
            new_slab = Some(slab);
        }
    }

    fn trace(&self, s: &Cache<P>, slab: Slab, obj: *mut u8, alloc: bool) {
        if !s.flags.contains(SlabFlags::TRACE) {
            return;
        }
        let c = slab.counters();
        let fl = c.freelist(self.slab_base(slab));
        self.printk(
            LogLevel::Info,
            format_args!(
                "TRACE {} {} 0x{:016x} inuse={} fp=0x{:016x}",
                s.name(),
                if alloc { "alloc" } else { "free" },
                self.model(obj),
                c.inuse(),
                if fl.is_null() { 0 } else { self.model(fl) }
            ),
        );
        if !alloc {
            self.print_section(LogLevel::Info, "Object ", obj, s.object_size as usize);
        }
    }

    /// `free_to_partial_list` with `free_debug_processing`.
    fn slab_free_debug(
        &self,
        s: &Cache<P>,
        slab: Slab,
        obj: *mut u8,
        caller: &'static Location<'static>,
    ) {
        let mut n = s.node.list_lock.lock();
        let base = self.slab_base(slab);
        if s.flags.contains(SlabFlags::CONSISTENCY_CHECKS) {
            let ok = self.check_slab(s, slab) && {
                if !self.check_valid_pointer(s, slab, obj) {
                    self.slab_err(
                        s,
                        Some(slab),
                        format_args!("Invalid object pointer 0x{:016x}", self.model(obj)),
                    );
                    false
                } else if self.on_freelist(s, slab, obj) {
                    self.object_err(s, slab, obj, "Object already free");
                    false
                } else {
                    self.check_object(s, slab, obj, SLUB_RED_ACTIVE)
                }
            };
            if !ok {
                drop(n);
                self.slab_fix(
                    s.name(),
                    format_args!("Object at 0x{:016x} not freed", self.model(obj)),
                );
                return;
            }
        }
        if s.flags.contains(SlabFlags::STORE_USER) {
            self.set_track(s, obj, TrackItem::Free, Some(caller));
        }
        self.trace(s, slab, obj, false);
        self.init_object(s, obj, SLUB_RED_INACTIVE);
        let old = slab.counters();
        let prior = old.freelist(base);
        // SAFETY: the object is being freed by its owner, under the list lock.
        unsafe { s.set_fp(obj, prior) };
        let inuse = old.inuse().saturating_sub(1);
        slab.set_counters(Counters::new(obj, base, inuse, false));
        let free_it = inuse == 0 && n.nr_partial >= s.min_partial as usize;
        if prior.is_null() {
            remove_full(slab);
            if !free_it {
                add_partial(&mut n, slab, true);
                s.stat(Stat::FreeAddPartial);
            }
        } else if free_it {
            remove_partial(&mut n, slab);
            s.stat(Stat::FreeRemovePartial);
        }
        Self::update_nr_partial_hint(s, &n);
        drop(n);
        if free_it {
            self.discard_slab(s, slab);
        }
    }
}

// ------------------------------------------------------------------ object lookup

/// Where a pointer lands.
pub(crate) enum Owner {
    /// An object slot of a slab: the slab head page and its cache.
    Slab(PagePtr, usize),
    /// A large kmalloc (compound pages from the page allocator).
    Large(PagePtr),
    /// Memory kmem manages but did not hand out through kmalloc.
    Other(PagePtr),
    /// No struct page.
    Unknown,
}

impl<P: Platform> SlabLayer<P> {
    /// `virt_to_slab` / `virt_to_head_page`.
    #[inline]
    pub(crate) fn owner_of(&self, p: *const u8) -> Owner {
        let Some(page) = self.virt_to_page(VirtAddr::new(p as usize)) else {
            return Owner::Unknown;
        };
        let head = page.compound_head();
        match head.page_type() {
            Some(PageType::Slab) => Owner::Slab(head, head.mapping()),
            Some(PageType::LargeKmalloc) => Owner::Large(head),
            _ => Owner::Other(head),
        }
    }

    /// Whether `p` is the start of an object of `slab` (`(p - base) % size == 0`).
    #[inline(always)]
    fn is_object_start(&self, s: &Cache<P>, slab: Slab, p: *mut u8) -> bool {
        let base = self.slab_base(slab) as usize + s.red_left_pad as usize;
        let off = (p as usize).wrapping_sub(base);
        let low = off & ((1usize << s.div_shift) - 1);
        let q = ((off >> s.div_shift) as u64).wrapping_mul(s.div_inv);
        off < (slab.objects() as usize) * s.size as usize && low == 0 && q <= s.div_limit
    }
}

// ------------------------------------------------------------------ alloc and free entry points

/// `slab_alloc_node`: the lockless fast path inline, everything else out of line.
#[inline(always)]
fn alloc_inner<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    gfp: GfpFlags,
    caller: &'static Location<'static>,
    orig: usize,
) -> Option<NonNull<u8>> {
    if !s.debug() {
        let g = CpuGuard::new(m.platform());
        // SAFETY: we hold this CPU's section and no other reference to its data.
        let c = unsafe { s.cpu(g.cpu()) };
        let obj = c.freelist;
        if !obj.is_null() {
            // SAFETY: `obj` is a CPU-owned free object.
            c.freelist = unsafe { s.get_fp(obj) };
            c.alloc_fast += 1;
            drop(g);
            if gfp.contains(GfpFlags::__GFP_ZERO) {
                // SAFETY: a freshly allocated object of `object_size` bytes.
                unsafe { ptr::write_bytes(obj, 0, s.object_size as usize) };
            }
            // SAFETY: objects are never null.
            return Some(unsafe { NonNull::new_unchecked(obj) });
        }
    }
    alloc_slow_path(m, s, gfp, caller, orig)
}

/// Everything but a CPU freelist hit: debug caches, refills, new slabs, failure reports.
#[cold]
#[inline(never)]
fn alloc_slow_path<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    gfp: GfpFlags,
    caller: &'static Location<'static>,
    orig: usize,
) -> Option<NonNull<u8>> {
    let obj = if s.debug() {
        m.slab_alloc_debug(s, gfp, caller, orig)
    } else {
        let g = CpuGuard::new(m.platform());
        // SAFETY: we hold this CPU's section and no other reference to its data.
        let c = unsafe { s.cpu(g.cpu()) };
        let obj = c.freelist;
        if !obj.is_null() {
            // SAFETY: `obj` is a CPU-owned free object.
            c.freelist = unsafe { s.get_fp(obj) };
            c.alloc_fast += 1;
            Some(obj)
        } else {
            m.slab_alloc_slow(s, c, gfp)
        }
    };
    match obj {
        Some(o) => {
            if gfp.contains(GfpFlags::__GFP_ZERO) {
                // With the kmalloc red zone on, only the size asked for is zeroed: the slack
                // up to `object_size` is red zone (`slab_post_alloc_hook`'s `zero_size =
                // orig_size` in mm/slub.c). Zeroing it would be reported as an overwrite.
                let zero = if s.orig_size_enabled() {
                    orig.min(s.object_size as usize)
                } else {
                    s.object_size as usize
                };
                // SAFETY: a freshly allocated object of at least `zero` bytes.
                unsafe { ptr::write_bytes(o, 0, zero) };
            }
            // SAFETY: objects are never null.
            Some(unsafe { NonNull::new_unchecked(o) })
        }
        None => {
            slab_out_of_memory(m, s, gfp);
            None
        }
    }
}

#[cold]
fn slab_out_of_memory<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>, gfp: GfpFlags) {
    if gfp.contains(GfpFlags::__GFP_NOWARN) {
        return;
    }
    m.printk(
        LogLevel::Warning,
        format_args!(
            "SLUB: Unable to allocate memory on node -1, gfp={:#x}({})",
            gfp.bits(),
            gfp
        ),
    );
    m.printk(
        LogLevel::Warning,
        format_args!(
            "  cache: {}, object size: {}, buffer size: {}, default order: {}, min order: {}",
            s.name(),
            s.object_size,
            s.size,
            s.order,
            s.min_order
        ),
    );
    let nr_slabs = s.node.nr_slabs.load(Ordering::Relaxed);
    let nr_objs = s.node.total_objects.load(Ordering::Relaxed);
    let free = count_partial_free(m, s);
    m.printk(
        LogLevel::Warning,
        format_args!("  node 0: slabs: {nr_slabs}, objs: {nr_objs}, free: {free}"),
    );
}

/// `slab_alloc_node` through a handle.
#[inline]
pub(crate) fn slab_alloc<P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    gfp: GfpFlags,
    caller: &'static Location<'static>,
) -> Option<NonNull<u8>> {
    let s = resolve(m, h, caller)?;
    alloc_inner(m, s, gfp, caller, s.object_size as usize)
}

/// `kmalloc_trace`: allocation through a handle for a request of `size` bytes.
pub(crate) fn slab_alloc_sized<P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    gfp: GfpFlags,
    caller: &'static Location<'static>,
    size: usize,
) -> Option<NonNull<u8>> {
    let s = resolve(m, h, caller)?;
    alloc_inner(m, s, gfp, caller, size)
}

/// Frees `p` known to be in slab `page` of cache `s` (`slab_free`): the fast path inline.
#[inline(always)]
fn free_inner<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    page: PagePtr,
    p: *mut u8,
    caller: &'static Location<'static>,
) {
    let slab = Slab(page);
    if !s.debug() && m.is_object_start(s, slab, p) {
        let g = CpuGuard::new(m.platform());
        // SAFETY: we hold this CPU's section and no other reference to its data.
        let c = unsafe { s.cpu(g.cpu()) };
        if c.slab == slab.raw() && p != c.freelist {
            // SAFETY: the object was allocated and is now given back to its CPU slab.
            unsafe { s.set_fp(p, c.freelist) };
            c.freelist = p;
            c.free_fast += 1;
            return;
        }
    }
    free_slow_path(m, s, slab, p, caller)
}

/// Everything but a free into the CPU's active slab.
#[cold]
#[inline(never)]
fn free_slow_path<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    slab: Slab,
    p: *mut u8,
    caller: &'static Location<'static>,
) {
    if s.debug() {
        m.slab_free_debug(s, slab, p, caller);
        return;
    }
    if !m.is_object_start(s, slab, p) {
        bad_object_pointer(m, s, slab, p, caller);
        return;
    }
    let g = CpuGuard::new(m.platform());
    // SAFETY: we hold this CPU's section and no other reference to its data.
    let c = unsafe { s.cpu(g.cpu()) };
    if c.slab == slab.raw() {
        if p == c.freelist {
            drop(g);
            double_free(m, s, slab, p, caller);
            return;
        }
        // SAFETY: the object was allocated and is now given back to its CPU slab.
        unsafe { s.set_fp(p, c.freelist) };
        c.freelist = p;
        c.free_fast += 1;
        return;
    }
    m.slab_free_slow(s, c, slab, p, p, 1);
}

#[cold]
fn bad_object_pointer<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    slab: Slab,
    p: *mut u8,
    caller: &'static Location<'static>,
) {
    m.slab_bug(
        s.name(),
        format_args!("Invalid object pointer 0x{:016x}", m.model(p)),
    );
    m.print_slab_info(slab);
    m.dump_stack(LogLevel::Err, caller);
    m.add_taint(crate::debug::TAINT_BAD_PAGE);
    m.slab_fix(
        s.name(),
        format_args!("Object at 0x{:016x} not freed", m.model(p)),
    );
}

#[cold]
fn double_free<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    slab: Slab,
    p: *mut u8,
    caller: &'static Location<'static>,
) {
    m.slab_bug(s.name(), format_args!("Object already free"));
    m.printk(
        LogLevel::Err,
        format_args!(
            "INFO: double free of object 0x{:016x} (naive detection: it heads the CPU freelist)",
            m.model(p)
        ),
    );
    m.print_slab_info(slab);
    m.dump_stack(LogLevel::Err, caller);
    m.add_taint(crate::debug::TAINT_BAD_PAGE);
    m.slab_fix(
        s.name(),
        format_args!("Object at 0x{:016x} not freed", m.model(p)),
    );
}

/// `kmem_cache_free`.
#[inline]
pub(crate) fn kmem_cache_free<P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    p: *mut u8,
    caller: &'static Location<'static>,
) {
    if p.is_null() {
        return;
    }
    let Some(s) = resolve(m, h, caller) else {
        return;
    };
    match m.owner_of(p) {
        Owner::Slab(page, cache) if cache == s as *const Cache<P> as usize => {
            free_inner(m, s, page, p, caller)
        }
        Owner::Slab(page, cache) => {
            // cache_from_obj: warn and free into the cache the object belongs to.
            // SAFETY: `mapping` of a slab page is its cache, which never goes away.
            let real = unsafe { &*(cache as *const Cache<P>) };
            m.warn_at(
                caller,
                format_args!(
                    "kmem_cache_free: Wrong slab cache. {} but object is from {}",
                    s.name(),
                    real.name()
                ),
            );
            m.print_tracking(real, p);
            free_inner(m, real, page, p, caller)
        }
        _ => {
            m.warn_at(
                caller,
                format_args!(
                    "kmem_cache_free: object 0x{:016x} is not from a slab ({})",
                    m.model(p),
                    s.name()
                ),
            );
        }
    }
}

/// `kfree` of a pointer known to be a slab object.
#[inline]
pub(crate) fn kfree_slab<P: Platform>(
    m: &SlabLayer<P>,
    page: PagePtr,
    cache: usize,
    p: *mut u8,
    caller: &'static Location<'static>,
) {
    // SAFETY: `mapping` of a slab page is its cache, which never goes away.
    let s = unsafe { &*(cache as *const Cache<P>) };
    free_inner(m, s, page, p, caller)
}

/// `kfree` of an object known to come from `kmalloc(size, gfp)` with `size` at most
/// [`KMALLOC_MAX_CACHE_SIZE`]: the cache comes from the size, the slab from the address, and
/// the struct page's type and cache are not consulted.
///
/// # Safety
/// `p` was returned by `kmalloc(size', gfp)` of this machine with `kmalloc_index(size') ==
/// kmalloc_index(size)`, `size` in `1..=KMALLOC_MAX_CACHE_SIZE`, and is freed once.
#[inline(always)]
pub(crate) unsafe fn kfree_sized<P: Platform>(
    m: &SlabLayer<P>,
    p: *mut u8,
    size: usize,
    gfp: GfpFlags,
    caller: &'static Location<'static>,
) {
    let idx = kmalloc_index(size) as usize;
    let ty = crate::slab::common::kmalloc_type(gfp) as usize;
    let cp = m.slab().kmalloc[ty][idx].load(Ordering::Relaxed);
    // SAFETY: kmalloc table entries are caches created at boot, never destroyed; the caller
    // guarantees the object came from this one.
    let s = unsafe { &*cp.cast::<Cache<P>>() };
    let off = p as usize - m.direct_map as usize;
    // SAFETY: `p` is in the direct map (a slab object), so its PFN is below max_pfn.
    let page =
        unsafe { m.pfn_to_page_unchecked(crate::addr::Pfn::new((off >> PAGE_SHIFT) as u64)) };
    free_inner(m, s, page.compound_head(), p, caller)
}

/// `krealloc` keeping the block: records the new requested size and red-zones the slack
/// (`__do_krealloc` with `slub_debug_orig_size`).
pub(crate) fn krealloc_in_place<P: Platform>(m: &SlabLayer<P>, p: *mut u8, new_size: usize) {
    let Owner::Slab(_, cache) = m.owner_of(p) else {
        return;
    };
    // SAFETY: `mapping` of a slab page is its cache, which never goes away.
    let s = unsafe { &*(cache as *const Cache<P>) };
    if !s.orig_size_enabled() || new_size > s.object_size as usize {
        return;
    }
    m.set_orig_size(s, p, new_size as u32);
    if s.flags.contains(SlabFlags::RED_ZONE) {
        // SAFETY: the caller owns the object; the slack lies inside it.
        unsafe {
            ptr::write_bytes(
                p.add(new_size),
                SLUB_RED_ACTIVE,
                s.object_size as usize - new_size,
            )
        };
    }
}

/// `ksize` of a slab object's cache.
pub(crate) fn slab_ksize<P: Platform>(cache: usize) -> usize {
    // SAFETY: as in `kfree_slab`.
    let s = unsafe { &*(cache as *const Cache<P>) };
    s.ksize()
}

/// `kmalloc_slab` + allocation: the hot path of `kmalloc` for sizes up to 8 KiB.
#[inline]
pub(crate) fn kmalloc_small<P: Platform>(
    m: &SlabLayer<P>,
    size: usize,
    gfp: GfpFlags,
    caller: &'static Location<'static>,
) -> Option<NonNull<u8>> {
    let idx = kmalloc_index(size) as usize;
    let ty = crate::slab::common::kmalloc_type(gfp) as usize;
    let p = m.slab().kmalloc[ty][idx].load(Ordering::Relaxed);
    if p.is_null() {
        return None;
    }
    // SAFETY: kmalloc table entries are caches created at boot, never destroyed.
    let s = unsafe { &*p.cast::<Cache<P>>() };
    alloc_inner(m, s, gfp, caller, size)
}

/// `kmem_cache_alloc_bulk`.
pub(crate) fn alloc_bulk<P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    gfp: GfpFlags,
    out: &mut [*mut u8],
    caller: &'static Location<'static>,
) -> usize {
    let Some(s) = resolve(m, h, caller) else {
        return 0;
    };
    let mut i = 0;
    if !s.debug() {
        let g = CpuGuard::new(m.platform());
        // SAFETY: we hold this CPU's section and no other reference to its data.
        let c = unsafe { s.cpu(g.cpu()) };
        while i < out.len() {
            let obj = c.freelist;
            if !obj.is_null() {
                // SAFETY: a CPU-owned free object.
                c.freelist = unsafe { s.get_fp(obj) };
                c.alloc_fast += 1;
                out[i] = obj;
            } else {
                match m.slab_alloc_slow(s, c, gfp) {
                    Some(o) => out[i] = o,
                    None => break,
                }
            }
            i += 1;
        }
        drop(g);
        if gfp.contains(GfpFlags::__GFP_ZERO) {
            for o in &out[..i] {
                // SAFETY: freshly allocated objects.
                unsafe { ptr::write_bytes(*o, 0, s.object_size as usize) };
            }
        }
    } else {
        while i < out.len() {
            match alloc_inner(m, s, gfp, caller, s.object_size as usize) {
                Some(o) => out[i] = o.as_ptr(),
                None => break,
            }
            i += 1;
        }
    }
    if i < out.len() {
        slab_out_of_memory(m, s, gfp);
        for o in &out[..i] {
            kmem_cache_free(m, h, *o, caller);
        }
        for o in out.iter_mut() {
            *o = ptr::null_mut();
        }
        return 0;
    }
    i
}

/// `kmem_cache_free_bulk`.
pub(crate) fn free_bulk<P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    objs: &[*mut u8],
    caller: &'static Location<'static>,
) {
    let Some(s) = resolve(m, h, caller) else {
        return;
    };
    if s.debug() {
        for o in objs {
            kmem_cache_free(m, h, *o, caller);
        }
        return;
    }
    // build_detached_freelist: chain the objects of one slab and free them with one
    // compare-and-swap (or one splice into the CPU freelist). Batches of 64 objects; `done`
    // marks the ones already chained.
    for chunk in objs.chunks(64) {
        let mut done = 0u64;
        for i in (0..chunk.len()).rev() {
            if done & (1 << i) != 0 {
                continue;
            }
            done |= 1 << i;
            let p = chunk[i];
            if p.is_null() {
                continue;
            }
            let page = match m.owner_of(p) {
                Owner::Slab(page, cache) if cache == s as *const Cache<P> as usize => page,
                _ => {
                    // Wrong cache or not a slab object: the single-object path reports it.
                    kmem_cache_free(m, h, p, caller);
                    continue;
                }
            };
            let slab = Slab(page);
            if !m.is_object_start(s, slab, p) {
                bad_object_pointer(m, s, slab, p, caller);
                continue;
            }
            let (mut head, tail, mut cnt) = (p, p, 1u32);
            for j in (0..i).rev() {
                let q = chunk[j];
                if done & (1 << j) != 0 || q.is_null() {
                    continue;
                }
                if m.virt_to_page(VirtAddr::new(q as usize))
                    .map(|pg| pg.compound_head())
                    == Some(page)
                    && m.is_object_start(s, slab, q)
                {
                    // SAFETY: `q` is an allocated object of this slab being freed; it joins
                    // the detached chain.
                    unsafe { s.set_fp(q, head) };
                    head = q;
                    cnt += 1;
                    done |= 1 << j;
                }
            }
            let g = CpuGuard::new(m.platform());
            // SAFETY: we hold this CPU's section and no other reference to its data.
            let c = unsafe { s.cpu(g.cpu()) };
            if c.slab == slab.raw() {
                // SAFETY: the chain's objects are ours; splice it onto the CPU freelist.
                unsafe { s.set_fp(tail, c.freelist) };
                c.freelist = head;
                c.free_fast += cnt as u64;
            } else {
                m.slab_free_slow(s, c, slab, head, tail, cnt);
            }
        }
    }
}

// ------------------------------------------------------------------ cache management

/// `count_partial(n, count_free)`.
fn count_partial_free<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>) -> usize {
    let mut n = s.node.list_lock.lock();
    let head: *mut ListHead = &mut n.partial;
    let mut free = 0;
    // SAFETY: this node's partial list under its lock.
    for l in unsafe { list::list_for_each(head) } {
        // SAFETY: partial-list entries are slab_list links.
        let slab = Slab(unsafe { PagePtr::from_lru(l) });
        free += (slab.objects() - slab.counters().inuse().min(slab.objects())) as usize;
    }
    let _ = m;
    free
}

fn info_of<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>) -> SlabInfo {
    let nr_slabs = s.node.nr_slabs.load(Ordering::Relaxed);
    let nr_objs = s.node.total_objects.load(Ordering::Relaxed);
    let free = count_partial_free(m, s);
    SlabInfo {
        active_objs: nr_objs.saturating_sub(free),
        num_objs: nr_objs,
        objsize: s.size as usize,
        object_size: s.object_size as usize,
        objperslab: s.objects,
        pagesperslab: 1 << s.order,
        num_slabs: nr_slabs,
        partial_slabs: s.node.nr_partial_hint.load(Ordering::Relaxed),
        refcount: s.refcount.load(Ordering::Relaxed),
    }
}

pub(crate) fn cache_info<P: Platform>(m: &SlabLayer<P>, h: CacheHandle) -> Option<SlabInfo> {
    let s = cache_ref::<P>(h);
    (s.gen.load(Ordering::Relaxed) == h.gen).then(|| info_of(m, s))
}

pub(crate) fn cache_name<P: Platform>(_m: &SlabLayer<P>, h: CacheHandle) -> Option<&'static str> {
    let s = cache_ref::<P>(h);
    (s.gen.load(Ordering::Relaxed) == h.gen).then(|| s.name())
}

/// The object layout of a cache (`/sys/kernel/slab/<cache>/` files).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlabLayout {
    /// `object_size`: what the user asked for.
    pub object_size: usize,
    /// `size`: the object stride.
    pub size: usize,
    /// `offset`: where a free object keeps its free pointer.
    pub offset: usize,
    /// `inuse`: where the metadata starts.
    pub inuse: usize,
    /// `red_left_pad`.
    pub red_left_pad: usize,
    /// `align`.
    pub align: usize,
    /// Slab order.
    pub order: u32,
    /// Objects per slab.
    pub objects: u32,
    /// The cache's flags (debug flags included).
    pub flags: SlabFlags,
    /// `min_partial`.
    pub min_partial: u32,
    /// Most slabs on a CPU partial list.
    pub cpu_partial_slabs: u32,
}

pub(crate) fn cache_layout<P: Platform>(h: CacheHandle) -> Option<SlabLayout> {
    let s = cache_ref::<P>(h);
    (s.gen.load(Ordering::Relaxed) == h.gen).then_some(SlabLayout {
        object_size: s.object_size as usize,
        size: s.size as usize,
        offset: s.offset as usize,
        inuse: s.inuse as usize,
        red_left_pad: s.red_left_pad as usize,
        align: s.align as usize,
        order: s.order,
        objects: s.objects,
        flags: s.flags,
        min_partial: s.min_partial,
        cpu_partial_slabs: s.cpu_partial_slabs,
    })
}

pub(crate) fn cache_stats<P: Platform>(m: &SlabLayer<P>, h: CacheHandle) -> Option<SlabStats> {
    let s = cache_ref::<P>(h);
    if s.gen.load(Ordering::Relaxed) != h.gen {
        return None;
    }
    let mut st = SlabStats::default();
    for cpu in 0..m.platform().possible_cpus() {
        // SAFETY: racy reads of another CPU's counters, for statistics only; raw reads, no
        // reference is created.
        unsafe {
            let c = s.cpu_slab.add(cpu);
            st.alloc_fastpath += ptr::read_volatile(ptr::addr_of!((*c).alloc_fast));
            st.free_fastpath += ptr::read_volatile(ptr::addr_of!((*c).free_fast));
            st.alloc_slowpath += ptr::read_volatile(ptr::addr_of!((*c).alloc_slow));
            st.free_slowpath += ptr::read_volatile(ptr::addr_of!((*c).free_slow));
        }
    }
    let g = |x: Stat| s.stats[x as usize].load(Ordering::Relaxed);
    st.free_frozen = g(Stat::FreeFrozen);
    st.free_add_partial = g(Stat::FreeAddPartial);
    st.free_remove_partial = g(Stat::FreeRemovePartial);
    st.alloc_from_partial = g(Stat::AllocFromPartial);
    st.alloc_slab = g(Stat::AllocSlab);
    st.alloc_refill = g(Stat::AllocRefill);
    st.free_slab = g(Stat::FreeSlab);
    st.cpuslab_flush = g(Stat::CpuslabFlush);
    st.deactivate_full = g(Stat::DeactivateFull);
    st.deactivate_empty = g(Stat::DeactivateEmpty);
    st.deactivate_to_tail = g(Stat::DeactivateToTail);
    st.deactivate_bypass = g(Stat::DeactivateBypass);
    st.order_fallback = g(Stat::OrderFallback);
    st.cmpxchg_double_fail = g(Stat::CmpxchgDoubleFail);
    st.cpu_partial_alloc = g(Stat::CpuPartialAlloc);
    st.cpu_partial_free = g(Stat::CpuPartialFree);
    st.cpu_partial_node = g(Stat::CpuPartialNode);
    st.cpu_partial_drain = g(Stat::CpuPartialDrain);
    Some(st)
}

/// Walks the cache list under `slab_mutex`.
fn walk_caches<P: Platform>(m: &SlabLayer<P>, f: &mut dyn FnMut(&Cache<P>)) {
    let mut list = m.slab().mutex.lock();
    let head: *mut ListHead = &mut list.caches;
    // SAFETY: the cache list under slab_mutex; entries are `KmemCache::list` links.
    for l in unsafe { list::list_for_each(head) } {
        let s = kds::container_of!(l, Cache<P>, list);
        // SAFETY: linked caches are live.
        f(unsafe { &*s });
    }
}

/// `slub_cpu_dead`: a CPU went offline; give its active and partial slabs of every cache
/// back to the node lists.
///
/// # Safety
/// No thread may use `cpu`'s per-CPU data during the call (the CPU-dead hook's contract).
pub(crate) unsafe fn slub_cpu_dead<P: Platform>(ctx: *const (), cpu: usize) {
    // SAFETY: registered by `SlabLayer::slab_register_cpuhp` with `ctx` = that layer, alive as
    // long as the machine (cpuhp invariant).
    let m = unsafe { &*ctx.cast::<SlabLayer<P>>() };
    walk_caches(m, &mut |s| {
        if !s.debug() {
            // SAFETY: `cpu` is offline and unused (caller's contract), so its per-CPU data of
            // this cache is ours.
            let c = unsafe { s.cpu(cpu) };
            m.flush_cpu(s, c);
        }
    });
}

pub(crate) fn for_each_cache<P: Platform>(m: &SlabLayer<P>, f: &mut dyn FnMut(CacheHandle, &str)) {
    walk_caches(m, &mut |s| f(handle_of(s), s.name()));
}

pub(crate) fn for_each_cache_info<P: Platform>(
    m: &SlabLayer<P>,
    f: &mut dyn FnMut(&str, &SlabInfo),
) {
    walk_caches(m, &mut |s| f(s.name(), &info_of(m, s)));
}

pub(crate) fn kmalloc_cache_handle<P: Platform>(
    m: &SlabLayer<P>,
    size: usize,
    gfp: GfpFlags,
) -> Option<CacheHandle> {
    if size == 0 || size > KMALLOC_MAX_CACHE_SIZE {
        return None;
    }
    let p = m.slab().kmalloc[crate::slab::common::kmalloc_type(gfp) as usize]
        [kmalloc_index(size) as usize]
        .load(Ordering::Relaxed);
    // SAFETY: kmalloc table entries are live caches.
    NonNull::new(p).map(|p| handle_of(unsafe { &*p.as_ptr().cast::<Cache<P>>() }))
}

/// `kmem_cache_shrink`.
pub(crate) fn shrink<P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    caller: &'static Location<'static>,
) -> bool {
    let Some(s) = resolve(m, h, caller) else {
        return false;
    };
    if !s.debug() {
        let g = CpuGuard::new(m.platform());
        // SAFETY: we hold this CPU's section.
        let c = unsafe { s.cpu(g.cpu()) };
        m.flush_cpu(s, c);
    }
    discard_empty_partials(m, s);
    s.node.nr_slabs.load(Ordering::Relaxed) != 0
}

/// Takes every empty slab off the node's partial list and gives it back to the page
/// allocator, a bounded batch per list-lock hold (`free_partial`/`__kmem_cache_do_shrink`).
fn discard_empty_partials<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>) {
    let mut discard = Discard::new();
    loop {
        let mut n = s.node.list_lock.lock();
        discard.n = 0;
        let head: *mut ListHead = &mut n.partial;
        // SAFETY: this node's partial list under its lock; removal during the safe walk.
        for l in unsafe { list::list_for_each_safe(head) } {
            // SAFETY: partial-list entries are slab_list links.
            let slab = Slab(unsafe { PagePtr::from_lru(l) });
            if slab.counters().inuse() == 0 && discard.push(slab) {
                remove_partial(&mut n, slab);
            }
        }
        SlabLayer::<P>::update_nr_partial_hint(s, &n);
        drop(n);
        let more = discard.n == discard.slabs.len();
        for p in &discard.slabs[..discard.n] {
            m.discard_slab(s, Slab::from_page(*p).expect("non-null"));
        }
        if !more {
            break;
        }
    }
}

/// `validate_slab_cache`: returns the number of slab errors reported.
pub(crate) fn validate<P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    caller: &'static Location<'static>,
) -> usize {
    let Some(s) = resolve(m, h, caller) else {
        return 0;
    };
    let before = m.slab_errors();
    if !s.debug() {
        let g = CpuGuard::new(m.platform());
        // SAFETY: we hold this CPU's section.
        let c = unsafe { s.cpu(g.cpu()) };
        m.flush_cpu(s, c);
    }
    let mut n = s.node.list_lock.lock();
    let mut count = 0usize;
    for which in 0..2 {
        let head: *mut ListHead = if which == 0 {
            &mut n.partial
        } else {
            &mut n.full
        };
        // SAFETY: this node's lists under its lock (validation does not move slabs).
        for l in unsafe { list::list_for_each(head) } {
            // SAFETY: list entries are slab_list links.
            let slab = Slab(unsafe { PagePtr::from_lru(l) });
            validate_slab(m, s, slab);
            count += 1;
        }
    }
    let nr = s.node.nr_slabs.load(Ordering::Relaxed);
    if s.debug() && count != nr {
        m.slab_err(
            s,
            None,
            format_args!("{count} slabs counted but counter={nr}"),
        );
    }
    drop(n);
    m.slab_errors() - before
}

fn validate_slab<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>, slab: Slab) {
    if !m.check_slab(s, slab) || !m.on_freelist(s, slab, ptr::null_mut()) {
        return;
    }
    let base = m.slab_base(slab);
    let objects = slab.objects() as usize;
    // Map of free objects (MAX_OBJS_PER_PAGE bits would be 4 KiB; walk in chunks).
    let mut map = [0u64; 64];
    let chunk = map.len() * 64;
    let mut lo = 0;
    while lo < objects {
        map.iter_mut().for_each(|w| *w = 0);
        let mut fp = slab.counters().freelist(base);
        let mut guard = 0;
        while !fp.is_null() && guard <= objects {
            let idx = (fp as usize - base as usize - s.red_left_pad as usize) / s.size as usize;
            if idx >= lo && idx < lo + chunk {
                map[(idx - lo) / 64] |= 1 << ((idx - lo) % 64);
            }
            // SAFETY: on_freelist verified the chain.
            fp = unsafe { s.get_fp(fp) };
            guard += 1;
        }
        for i in lo..objects.min(lo + chunk) {
            let p = base.wrapping_add(s.red_left_pad as usize + i * s.size as usize);
            let free = map[(i - lo) / 64] & (1 << ((i - lo) % 64)) != 0;
            let val = if free {
                SLUB_RED_INACTIVE
            } else {
                SLUB_RED_ACTIVE
            };
            if !m.check_object(s, slab, p, val) {
                return;
            }
        }
        lo += chunk;
    }
}

/// `list_slab_objects`.
fn list_slab_objects<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>, slab: Slab) {
    m.slab_err(
        s,
        Some(slab),
        format_args!(
            "Objects remaining in {} on __kmem_cache_shutdown()",
            s.name()
        ),
    );
    let base = m.slab_base(slab);
    let objects = slab.objects() as usize;
    let mut free = [false; 512];
    let mut fp = slab.counters().freelist(base);
    let mut guard = 0;
    while !fp.is_null() && guard <= objects {
        let idx = (fp as usize - base as usize - s.red_left_pad as usize) / s.size as usize;
        if idx < free.len() {
            free[idx] = true;
        }
        // SAFETY: a free object of the slab.
        fp = unsafe { s.get_fp(fp) };
        guard += 1;
    }
    for (i, f) in free.iter().enumerate().take(objects) {
        if !f {
            let p = base.wrapping_add(s.red_left_pad as usize + i * s.size as usize);
            m.printk(
                LogLevel::Err,
                format_args!(
                    "INFO: Object 0x{:016x} @offset={}",
                    m.model(p),
                    p as usize - base as usize
                ),
            );
            m.print_tracking(s, p);
        }
    }
}

/// `kmem_cache_destroy`.
pub(crate) fn destroy<P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    caller: &'static Location<'static>,
) {
    let Some(s) = resolve(m, h, caller) else {
        return;
    };
    let mut list = m.slab().mutex.lock();
    if s.refcount.fetch_sub(1, Ordering::Relaxed) != 1 {
        return;
    }
    // __kmem_cache_shutdown: flush every CPU (the caller guarantees nobody uses the cache).
    if !s.debug() {
        for cpu in 0..m.platform().possible_cpus() {
            // SAFETY: the cache is quiescent by the caller's guarantee, so no CPU section uses
            // this cache's per-CPU data.
            let c = unsafe { s.cpu(cpu) };
            m.flush_cpu(s, c);
        }
    }
    // free_partial: give the empty slabs back, then report the objects of the others.
    discard_empty_partials(m, s);
    {
        let mut n = s.node.list_lock.lock();
        for which in 0..2 {
            let head: *mut ListHead = if which == 0 {
                &mut n.partial
            } else {
                &mut n.full
            };
            // SAFETY: this node's lists under its lock; reporting does not move slabs.
            for l in unsafe { list::list_for_each(head) } {
                // SAFETY: list entries are slab_list links.
                list_slab_objects(m, s, Slab(unsafe { PagePtr::from_lru(l) }));
            }
        }
    }
    if s.node.nr_slabs.load(Ordering::Relaxed) != 0 {
        // The cache is kept, usable, with its reference back.
        s.refcount.store(1, Ordering::Relaxed);
        drop(list);
        m.warn_at(
            caller,
            format_args!(
                "kmem_cache_destroy {}: Slab cache still has objects when called from {}:{}",
                s.name(),
                caller.file(),
                caller.line()
            ),
        );
        return;
    }
    // Release: unlink, bump the generation, recycle the structure.
    // SAFETY: linked on slab_caches; we hold slab_mutex.
    unsafe { list::list_del(ptr::addr_of!(s.list).cast_mut()) };
    list.count -= 1;
    s.gen.fetch_add(1, Ordering::Relaxed);
    s.alive.store(false, Ordering::Relaxed);
    let cpu_slab = s.cpu_slab;
    let cpu_order = s.cpu_slab_order;
    let seq = s.random_seq;
    drop(list);
    if !seq.is_null() {
        crate::slab::kmalloc::kfree_internal(m, seq.cast());
    }
    if let Some(pg) = m.virt_to_page(VirtAddr::new(cpu_slab as usize)) {
        m.__free_pages(pg, Order::new(cpu_order));
    }
    // Keep the structure for reuse by a later kmem_cache_create: stale handles keep pointing
    // at a KmemCache whose generation tells them apart.
    let mut list = m.slab().mutex.lock();
    // SAFETY: unlinked above; the dead list is under slab_mutex.
    unsafe { list::list_add(ptr::addr_of!(s.list).cast_mut(), &mut list.dead) };
}

// ------------------------------------------------------------------ creation

fn slab_unmergeable<L: lock_api::RawMutex>(s: &KmemCache<L>, nomerge: bool) -> bool {
    nomerge
        || s.flags.intersects(SlabFlags::NEVER_MERGE)
        || s.ctor.is_some()
        || s.refcount.load(Ordering::Relaxed) < 0
        || !s.alive.load(Ordering::Relaxed)
}

/// `find_mergeable` (mm/slab_common.c).
fn find_mergeable<P: Platform>(
    m: &SlabLayer<P>,
    size: usize,
    align: usize,
    flags: SlabFlags,
    name: &str,
    ctor: Option<fn(*mut u8)>,
    list: &mut crate::slab::common::SlabList,
) -> Option<*const Cache<P>> {
    if m.slab().nomerge || ctor.is_some() {
        return None;
    }
    let flags = m.slab().debug.cache_flags(flags, name);
    if flags.intersects(SlabFlags::NEVER_MERGE) {
        return None;
    }
    let size = (size + 7) & !7;
    let align = calculate_alignment(flags, align, size);
    let size = (size + align - 1) & !(align - 1);
    let head: *mut ListHead = &mut list.caches;
    let mut found = None;
    // SAFETY: the cache list under slab_mutex (the caller holds it).
    for l in unsafe { list::list_for_each_prev(head) } {
        let s = kds::container_of!(l, Cache<P>, list);
        // SAFETY: linked caches are live.
        let s = unsafe { &*s };
        if slab_unmergeable(s, false) {
            continue;
        }
        if size > s.size as usize {
            continue;
        }
        if flags.0 & SlabFlags::MERGE_SAME.0 != s.flags.0 & SlabFlags::MERGE_SAME.0 {
            continue;
        }
        if s.size as usize & (align - 1) != 0 {
            continue;
        }
        if s.size as usize - size >= core::mem::size_of::<usize>() {
            continue;
        }
        found = Some(s as *const Cache<P>);
        break;
    }
    found
}

fn set_name(buf: &mut [u8; CACHE_NAME_LEN], name: &str) -> u32 {
    let n = name.len().min(CACHE_NAME_LEN);
    buf[..n].copy_from_slice(&name.as_bytes()[..n]);
    n as u32
}

/// Fills in a cache structure at `p` and links it (`kmem_cache_open` + `calculate_sizes`).
#[allow(clippy::too_many_arguments)]
fn open_cache<P: Platform>(
    m: &SlabLayer<P>,
    p: *mut Cache<P>,
    name: &str,
    size: usize,
    align: usize,
    flags: SlabFlags,
    ctor: Option<fn(*mut u8)>,
    gen: u32,
) -> Result<(), SlabError> {
    let st = m.slab();
    let mut flags = st.debug.cache_flags(flags, name);
    let object_size = size as u32;
    let align = calculate_alignment(flags, align, size) as u32;

    let layout = |flags: &mut SlabFlags| -> Option<(u32, u32, u32, u32)> {
        // calculate_sizes
        let mut sz = (object_size + PTR - 1) & !(PTR - 1);
        if flags.contains(SlabFlags::POISON)
            && !flags.contains(SlabFlags::TYPESAFE_BY_RCU)
            && ctor.is_none()
        {
            *flags = *flags | SlabFlags::OBJECT_POISON;
        } else {
            *flags = flags.without(SlabFlags::OBJECT_POISON);
        }
        if flags.contains(SlabFlags::RED_ZONE) && sz == object_size {
            sz += PTR;
        }
        let inuse = sz;
        let offset;
        if flags.intersects(SlabFlags::TYPESAFE_BY_RCU | SlabFlags::POISON)
            || (flags.contains(SlabFlags::RED_ZONE) && object_size < PTR)
            || ctor.is_some()
        {
            offset = sz;
            sz += PTR;
        } else {
            offset = (object_size / 2) & !(PTR - 1);
        }
        if flags.contains(SlabFlags::STORE_USER) {
            sz += 2 * TRACK_SIZE;
            if flags.contains(SlabFlags::KMALLOC) {
                // orig_size: what kmalloc was asked for (slub_debug_orig_size).
                sz += 4;
            }
        }
        let mut red_left = 0;
        if flags.contains(SlabFlags::RED_ZONE) {
            sz += PTR;
            red_left = (PTR + align - 1) & !(align - 1);
            sz += red_left;
        }
        sz = (sz + align - 1) & !(align - 1);
        Some((sz, inuse, offset, red_left))
    };
    let (mut sz, mut inuse, mut offset, mut red_left) =
        layout(&mut flags).ok_or(SlabError::BadSize)?;
    if st.debug.disable_higher_order_debug
        && get_order(sz as usize) > get_order(object_size as usize)
    {
        flags = flags.without(SlabFlags::DEBUG_METADATA);
        (sz, inuse, offset, red_left) = layout(&mut flags).ok_or(SlabError::BadSize)?;
    }
    let order = calculate_order(sz, &st.order).ok_or(SlabError::BadSize)?;
    let objects = order_objects(order, sz).min(MAX_OBJS_PER_PAGE);
    if objects == 0 {
        return Err(SlabError::BadSize);
    }
    let mut allocflags = GfpFlags::empty;
    if flags.contains(SlabFlags::CACHE_DMA) {
        allocflags |= GfpFlags::__GFP_DMA;
    }
    if flags.contains(SlabFlags::CACHE_DMA32) {
        allocflags |= GfpFlags::__GFP_DMA32;
    }
    if flags.contains(SlabFlags::RECLAIM_ACCOUNT) {
        allocflags |= GfpFlags::__GFP_RECLAIMABLE;
    }
    let debug = flags.intersects(SlabFlags::DEBUG_FLAGS);
    let cpu_partial_slabs = if debug {
        0
    } else {
        // set_cpu_partial: objects, converted to slabs as Linux 6.x does
        // (slub_set_cpu_partial: nr_slabs = DIV_ROUND_UP(nr_objects * 2, oo_objects)).
        let nr_objects = if sz as usize >= PAGE_SIZE {
            6
        } else if sz >= 1024 {
            24
        } else if sz >= 256 {
            52
        } else {
            120
        };
        ((nr_objects * 2) as u32).div_ceil(objects).max(1)
    };
    let min_partial = (31 - sz.leading_zeros()) / 2;
    let min_partial = min_partial.clamp(MIN_PARTIAL, MAX_PARTIAL);

    // Per-CPU data.
    let cpus = m.platform().possible_cpus();
    let bytes = cpus * core::mem::size_of::<KmemCacheCpu>();
    let cpu_order = get_order(bytes);
    let page = m
        .alloc_pages(
            GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO,
            Order::new(cpu_order),
        )
        .ok_or(SlabError::NoMemory)?;
    let cpu_slab = m
        .page_address(page)
        .ok_or(SlabError::NoMemory)?
        .as_ptr::<KmemCacheCpu>();

    let mut name_buf = [0u8; CACHE_NAME_LEN];
    let name_len = set_name(&mut name_buf, name);
    let cache = KmemCache {
        cpu_slab,
        gen: AtomicU32::new(gen),
        flags,
        size: sz,
        object_size,
        offset,
        inuse,
        align,
        red_left_pad: red_left,
        order,
        objects,
        min_order: get_order(sz as usize),
        min_partial,
        cpu_partial_slabs,
        div_shift: sz.trailing_zeros(),
        div_inv: mod_inverse((sz >> sz.trailing_zeros()) as u64),
        div_limit: u64::MAX / (sz >> sz.trailing_zeros()) as u64,
        random: m.platform().random_u64() as usize,
        allocflags,
        ctor,
        random_seq: ptr::null_mut(),
        refcount: AtomicI32::new(1),
        cpu_slab_order: cpu_order,
        name_len,
        name: name_buf,
        list: ListHead::new(),
        node: KmemCacheNode {
            list_lock: lock_api::Mutex::new(NodeLists {
                partial: ListHead::new(),
                nr_partial: 0,
                full: ListHead::new(),
            }),
            nr_partial_hint: AtomicUsize::new(0),
            nr_slabs: AtomicUsize::new(0),
            total_objects: AtomicUsize::new(0),
        },
        stats: core::array::from_fn(|_| AtomicU64::new(0)),
        alive: AtomicBool::new(true),
    };
    // SAFETY: `p` is a fresh object of the kmem_cache cache (or boot memory) of the right
    // size and alignment, owned by us.
    unsafe {
        ptr::write(p, cache);
        let mut n = (*p).node.list_lock.lock();
        ListHead::init(&mut n.partial);
        ListHead::init(&mut n.full);
        drop(n);
        ListHead::init(ptr::addr_of_mut!((*p).list));
    }
    if st.state.load(Ordering::Relaxed) >= SlabBootState::Up as u8 {
        // SAFETY: just initialised; not yet visible to anyone else.
        init_random_seq(m, unsafe { &mut *p });
    }
    Ok(())
}

/// The inverse of odd `a` modulo 2^64 (Newton's iteration).
const fn mod_inverse(a: u64) -> u64 {
    let mut x = a; // correct to 3 bits
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        i += 1;
    }
    x
}

/// `init_cache_random_seq`: a random permutation of the object indexes.
fn init_random_seq<P: Platform>(m: &SlabLayer<P>, s: &mut Cache<P>) {
    let n = s.objects as usize;
    if n < 2 || !s.random_seq.is_null() || !m.slab().freelist_random {
        return;
    }
    let Some(p) = crate::slab::kmalloc::kmalloc_internal(m, n * 2, GfpFlags::GFP_KERNEL) else {
        return;
    };
    let seq = p.cast::<u16>();
    for i in 0..n {
        // SAFETY: `seq` has `n` u16 slots (kmalloc'd above).
        unsafe { *seq.add(i) = i as u16 };
    }
    for i in (1..n).rev() {
        let j = (m.platform().random_u64() % (i as u64 + 1)) as usize;
        // SAFETY: `i` and `j` are below `n`.
        unsafe { ptr::swap(seq.add(i), seq.add(j)) };
    }
    s.random_seq = seq;
}

/// Allocates a `struct kmem_cache` (from the `kmem_cache` cache or the dead list).
fn alloc_cache_struct<P: Platform>(
    m: &SlabLayer<P>,
    list: &mut crate::slab::common::SlabList,
) -> Option<(*mut Cache<P>, u32)> {
    // SAFETY: the dead list under slab_mutex (held by the caller); entries are
    // `KmemCache::list` links.
    if let Some(l) = unsafe { list::list_first(&list.dead) } {
        // SAFETY: as above.
        unsafe { list::list_del(l) };
        let p = kds::container_of!(l, Cache<P>, list);
        // SAFETY: a dead structure keeps its generation word valid.
        let gen = unsafe { (*p).gen.load(Ordering::Relaxed) };
        return Some((p, gen));
    }
    let kc = m.slab().kmem_cache.load(Ordering::Relaxed);
    // SAFETY: created at boot, never destroyed.
    let kc = unsafe { &*kc.cast::<Cache<P>>() };
    let o = alloc_inner(m, kc, GfpFlags::GFP_KERNEL, Location::caller(), 0)?;
    Some((o.as_ptr().cast(), 1))
}

/// `kmem_cache_create`.
pub(crate) fn kmem_cache_create<P: Platform>(
    m: &SlabLayer<P>,
    name: &str,
    size: usize,
    align: usize,
    flags: SlabFlags,
    ctor: Option<fn(*mut u8)>,
) -> Result<CacheHandle, SlabError> {
    if name.is_empty() || name.len() > CACHE_NAME_LEN || name.contains(char::is_whitespace) {
        return Err(SlabError::BadName);
    }
    if size == 0
        || size > KMALLOC_MAX_SIZE
        || (align != 0 && !align.is_power_of_two())
        || align > PAGE_SIZE
    {
        return Err(SlabError::BadSize);
    }
    if m.slab().state.load(Ordering::Relaxed) < SlabBootState::Up as u8 {
        return Err(SlabError::NotReady);
    }
    let flags = flags.without(SlabFlags::OBJECT_POISON);
    let mut list = m.slab().mutex.lock();
    if let Some(s) = find_mergeable(m, size, align, flags, name, ctor, &mut list) {
        // SAFETY: a live linked cache.
        let s = unsafe { &*s };
        s.refcount.fetch_add(1, Ordering::Relaxed);
        return Ok(handle_of(s));
    }
    let (p, gen) = alloc_cache_struct(m, &mut list).ok_or(SlabError::NoMemory)?;
    if let Err(e) = open_cache(m, p, name, size, align, flags, ctor, gen) {
        // SAFETY: `p` is a cache structure we own; keep it for reuse.
        unsafe {
            ListHead::init(ptr::addr_of_mut!((*p).list));
            list::list_add(ptr::addr_of_mut!((*p).list), &mut list.dead);
        }
        return Err(e);
    }
    // SAFETY: initialised by open_cache; link it (newest first, as Linux's list_add).
    unsafe { list::list_add(ptr::addr_of_mut!((*p).list), &mut list.caches) };
    list.count += 1;
    // SAFETY: as above.
    Ok(handle_of(unsafe { &*p }))
}

/// `create_kmalloc_cache` / `create_boot_cache` for the kmalloc caches.
fn create_kmalloc_cache<P: Platform>(
    m: &SlabLayer<P>,
    ty: KmallocType,
    idx: u32,
) -> Result<(), SlabError> {
    let mut name = LineBuf::new();
    let _ = kmalloc_cache_name(ty, idx, &mut name);
    let size = kmalloc_size(idx);
    // kmalloc caches are naturally aligned to the largest power of two dividing their size.
    let align = 1usize << size.trailing_zeros();
    let flags = SlabFlags::KMALLOC | ty.cache_flags();
    let mut list = m.slab().mutex.lock();
    let (p, gen) = alloc_cache_struct(m, &mut list).ok_or(SlabError::NoMemory)?;
    open_cache(m, p, name.as_str(), size, align, flags, None, gen)?;
    // SAFETY: initialised above.
    unsafe { list::list_add(ptr::addr_of_mut!((*p).list), &mut list.caches) };
    list.count += 1;
    m.slab().kmalloc[ty as usize][idx as usize].store(p.cast(), Ordering::Release);
    Ok(())
}

/// `kmem_cache_init` for SLUB: bootstraps `kmem_cache`, then the kmalloc caches.
pub(crate) fn kmem_cache_init<P: Platform>(m: &SlabLayer<P>) -> Result<(), SlabError> {
    let st = m.slab();
    // SAFETY: boot runs alone; the list head is in the pinned machine state.
    unsafe {
        let mut l = st.mutex.lock();
        ListHead::init(&mut l.caches);
        ListHead::init(&mut l.dead);
    }

    // 1. A temporary kmem_cache in a page of its own (Linux's static boot_kmem_cache).
    let cache_size = core::mem::size_of::<Cache<P>>();
    let tmp_order = get_order(cache_size);
    let tmp_page = m
        .alloc_pages(
            GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO,
            Order::new(tmp_order),
        )
        .ok_or(SlabError::NoMemory)?;
    let tmp = m
        .page_address(tmp_page)
        .ok_or(SlabError::NoMemory)?
        .as_ptr::<Cache<P>>();
    open_cache(
        m,
        tmp,
        "kmem_cache",
        cache_size,
        0,
        SlabFlags::HWCACHE_ALIGN | SlabFlags::PANIC,
        None,
        1,
    )?;
    // SAFETY: initialised just above.
    let tmp_ref = unsafe { &*tmp };
    // 2. bootstrap(): allocate the real structure from itself and move into it.
    let real = alloc_inner(
        m,
        tmp_ref,
        GfpFlags::GFP_KERNEL,
        Location::caller(),
        cache_size,
    )
    .ok_or(SlabError::NoMemory)?
    .as_ptr()
    .cast::<Cache<P>>();
    // SAFETY: `real` is an object of the right size. The temporary is ours; the only links
    // into it are its own list heads, so the copy gets fresh heads and the slabs on the
    // temporary's lists (debug caches keep their slabs there) move over. Slab pages point at
    // their cache by `mapping`: fix it.
    unsafe {
        ptr::copy_nonoverlapping(tmp.cast::<u8>(), real.cast::<u8>(), cache_size);
        let mut n = (*real).node.list_lock.lock();
        ListHead::init(&mut n.partial);
        ListHead::init(&mut n.full);
        let mut old = (*tmp).node.list_lock.lock();
        for (from, to) in [
            (
                &mut old.partial as *mut ListHead,
                &mut n.partial as *mut ListHead,
            ),
            (&mut old.full, &mut n.full),
        ] {
            while let Some(l) = list::list_first(from) {
                list::list_del(l);
                PagePtr::from_lru(l).set_mapping(real as usize);
                list::list_add_tail(l, to);
            }
        }
        drop(old);
        drop(n);
        ListHead::init(ptr::addr_of_mut!((*real).list));
    }
    {
        let g = CpuGuard::new(m.platform());
        // SAFETY: we hold this CPU's section.
        let c = unsafe { (*real).cpu(g.cpu()) };
        if let Some(slab) = Slab::from_page(c.slab) {
            slab.0.set_mapping(real as usize);
        }
    }
    m.__free_pages(tmp_page, Order::new(tmp_order));
    {
        let mut list = st.mutex.lock();
        // SAFETY: initialised above; link it.
        unsafe { list::list_add(ptr::addr_of_mut!((*real).list), &mut list.caches) };
        list.count += 1;
    }
    // Boot caches are exempt from merging (create_boot_cache sets refcount -1).
    // SAFETY: initialised above.
    unsafe { (*real).refcount.store(-1, Ordering::Relaxed) };
    st.kmem_cache.store(real.cast(), Ordering::Release);
    st.state
        .store(SlabBootState::Partial as u8, Ordering::Release);

    // 3. create_kmalloc_caches: per type, 96 and 192 first, then the powers of two.
    for ty in KmallocType::ALL {
        for idx in [1u32, 2]
            .into_iter()
            .chain(KMALLOC_SHIFT_LOW..=KMALLOC_SHIFT_HIGH)
        {
            create_kmalloc_cache(m, ty, idx)?;
        }
    }
    st.state.store(SlabBootState::Up as u8, Ordering::Release);
    // init_freelist_randomization for the caches made before kmalloc worked.
    walk_caches_mut(m);
    st.state.store(SlabBootState::Full as u8, Ordering::Release);
    // Leave the boot CPU's page lists as the page allocator's boot left them.
    m.drain_local_pages();
    m.printk(
        LogLevel::Info,
        format_args!(
            "SLUB: HWalign={}, Order={}-{}, MinObjects={}, CPUs={}, Nodes=1",
            crate::slab::common::L1_CACHE_BYTES,
            st.order.min_order,
            st.order.max_order,
            st.order.min_objects,
            m.nr_cpus()
        ),
    );
    if st.debug.enabled() {
        m.printk(
            LogLevel::Info,
            format_args!("SLUB: slub_debug enabled, flags {}", st.debug.global),
        );
    }
    Ok(())
}

fn walk_caches_mut<P: Platform>(m: &SlabLayer<P>) {
    let mut ptrs = [ptr::null_mut::<Cache<P>>(); 64];
    let mut n = 0;
    walk_caches(m, &mut |s| {
        if n < ptrs.len() {
            ptrs[n] = s as *const Cache<P> as *mut Cache<P>;
            n += 1;
        }
    });
    for p in &ptrs[..n] {
        // SAFETY: boot runs alone; the caches are live and nobody else reads random_seq yet.
        init_random_seq(m, unsafe { &mut **p });
    }
}

/// Largest request a slab cache can serve.
pub const SLAB_MAX_OBJECT: usize = KMALLOC_MAX_SIZE;
const _: () = assert!(KMALLOC_SHIFT_HIGH as usize + 1 == crate::slab::common::NR_KMALLOC_INDEX);

// ------------------------------------------------------------------ the SlabAllocator impl

/// SLUB as a [`SlabAllocator`](crate::slab::common::SlabAllocator).
pub(crate) struct Slub;

impl crate::slab::common::SlabAllocator for Slub {
    fn init<P: Platform>(m: &SlabLayer<P>) -> Result<(), SlabError> {
        kmem_cache_init(m)
    }
    fn create<P: Platform>(
        m: &SlabLayer<P>,
        name: &str,
        size: usize,
        align: usize,
        flags: SlabFlags,
        ctor: Option<fn(*mut u8)>,
    ) -> Result<CacheHandle, SlabError> {
        kmem_cache_create(m, name, size, align, flags, ctor)
    }
    #[inline(always)]
    fn alloc<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        gfp: GfpFlags,
        caller: &'static Location<'static>,
        orig: Option<usize>,
    ) -> Option<NonNull<u8>> {
        match orig {
            None => slab_alloc(m, c, gfp, caller),
            Some(n) => slab_alloc_sized(m, c, gfp, caller, n),
        }
    }
    #[inline(always)]
    fn free<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        p: *mut u8,
        caller: &'static Location<'static>,
    ) {
        kmem_cache_free(m, c, p, caller)
    }
    fn alloc_bulk<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        gfp: GfpFlags,
        out: &mut [*mut u8],
        caller: &'static Location<'static>,
    ) -> usize {
        alloc_bulk(m, c, gfp, out, caller)
    }
    fn free_bulk<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        objs: &[*mut u8],
        caller: &'static Location<'static>,
    ) {
        free_bulk(m, c, objs, caller)
    }
    fn shrink<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        caller: &'static Location<'static>,
    ) -> bool {
        shrink(m, c, caller)
    }
    fn destroy<P: Platform>(m: &SlabLayer<P>, c: CacheHandle, caller: &'static Location<'static>) {
        destroy(m, c, caller)
    }
    fn validate<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        caller: &'static Location<'static>,
    ) -> usize {
        validate(m, c, caller)
    }
    fn name<P: Platform>(m: &SlabLayer<P>, c: CacheHandle) -> Option<&'static str> {
        cache_name(m, c)
    }
    fn info<P: Platform>(m: &SlabLayer<P>, c: CacheHandle) -> Option<SlabInfo> {
        cache_info(m, c)
    }
    fn stats<P: Platform>(m: &SlabLayer<P>, c: CacheHandle) -> Option<SlabStats> {
        cache_stats(m, c)
    }
    fn layout<P: Platform>(c: CacheHandle) -> Option<SlabLayout> {
        cache_layout::<P>(c)
    }
    fn for_each<P: Platform>(m: &SlabLayer<P>, f: &mut dyn FnMut(CacheHandle, &str)) {
        for_each_cache(m, f)
    }
    fn for_each_info<P: Platform>(m: &SlabLayer<P>, f: &mut dyn FnMut(&str, &SlabInfo)) {
        for_each_cache_info(m, f)
    }
    fn kmalloc_cache<P: Platform>(
        m: &SlabLayer<P>,
        size: usize,
        gfp: GfpFlags,
    ) -> Option<CacheHandle> {
        kmalloc_cache_handle(m, size, gfp)
    }
}
