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
//! 0. `kmalloc_nolock`/`kfree_nolock` (any context, possibly interrupting the same CPU at
//!    any step below) take nothing that waits: the CPU section is try-entered, `list_lock`
//!    and the zone lock are try-locked, and what needs more is deferred (see "Any context");
//! 1. `slab_mutex` (the cache list, cache creation and destruction; [`crate::slab::common`]);
//! 2. a CPU section ([`CpuGuard`](crate::platform::CpuGuard)): the current CPU's
//!    `KmemCacheCpu` of every cache;
//! 3. `node->list_lock` of one node of one cache: its partial and full lists, `nr_partial`,
//!    and list membership (`ON_PARTIAL`/`ON_FULL`) of its slabs; one node's at a time (a
//!    cache has one `kmem_cache_node` per node, `nodes`);
//! 4. the page allocator's locks (new slabs, discarded slabs), taken with no list lock held;
//!    the log lock.
//!
//! Reports are printed with the list lock held only by the debug paths (as Linux does); they
//! name the CPU with `Platform::raw_cpu_id`, never entering a CPU section under the lock.
//!
//! # Slab states
//! - **frozen**: the active slab of a CPU (`c.slab`) or on a CPU's partial list. On no node
//!   list. Only the freezing CPU allocates from it or changes its list state; anybody may
//!   push freed objects onto its freelist with a compare-and-swap.
//! - **partial** (unfrozen, some objects free): on the partial list of its own node
//!   (`slab_nid`; `ON_PARTIAL`).
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
//! # Any context (`kmalloc_nolock`, `kfree_nolock`; Linux 6.18)
//! The `*_nolock` entry points may interrupt the same CPU anywhere in SLUB (Linux: an NMI or
//! a kprobe; kmem: a hook at a reentry point, [`NmiPoint`]). Their rules:
//! - a CPU's `KmemCacheCpu` of a cache is never used by a nested call while the interrupted
//!   code holds it (the reentry point records the cache; Linux's `local_trylock_t`): the
//!   allocation retries once in the next kmalloc bucket, a free is deferred;
//! - `list_lock` and the zone lock are only try-locked (`get_partial` and `slab_alloc_debug`
//!   with `allow_spin == false`, `new_slab_bulk` → `alloc_pages_nolock`);
//! - frees other than into the CPU's active slab, and a debug cache's new slab that could
//!   not be listed, go to the deferred lists, drained at the next safe point (the next
//!   ordinary slow-path allocation or free, shrink, validate, destroy, `slab_tick`).
//!
//! The slow-path functions that take `allow_spin` are `slab_alloc_slow`, `get_partial`,
//! `slab_alloc_debug` and `new_slab_bulk`; nothing else changes for ordinary callers except
//! the drain at the top of `alloc_slow_path`/`free_slow_path`.
//! # Sheaves (Linux 6.18)
//! A cache with a sheaf capacity (every kmalloc cache; others that ask with
//! `kmem_cache_args.sheaf_capacity`) puts an array of object pointers in front of the above:
//! allocation pops the CPU's *main* sheaf and freeing pushes onto it, touching neither the
//! object nor its slab's counters (free still checks that the pointer starts an object). An
//! empty or full main sheaf is swapped with the CPU's *spare* or traded with the node's
//! *barn* of full and empty sheaves; sheaves are refilled from and flushed to the CPU slab
//! path above in bulk. See `sheaf` and `barn`. Debug caches have no sheaves.
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
//! `FIX` line counts as one slab error ([`Machine::slab_errors`]), as slub_kunit counts them,
//! and so does `kmem_cache_destroy`'s `Slab cache still has objects` warning.
//!
//! # Limits
//! `kmem_cache_shrink` and `validate` flush only the calling CPU's slabs (Linux flushes every
//! CPU by IPI); `kmem_cache_destroy` flushes every CPU's slabs because its caller guarantees
//! that nobody uses the cache any more. Without `SLAB_CONSISTENCY_CHECKS` a double free is
//! caught only when the object is the head of the CPU freelist (as with Linux's
//! `CONFIG_SLAB_FREELIST_HARDENED`); pointers that are not the start of an object and objects
//! freed into the wrong cache are always caught.
//!
//! # Files
//! This file holds the structures (`struct kmem_cache`, `kmem_cache_cpu`, `kmem_cache_node`,
//! `struct slab` and its freelist+counters word), cache handles, `is_object_start` and the
//! `SlabAllocator` implementation. The rest, each file using only those listed before it:
//! - `nodes`: `s->node[nid]` and the barns of nodes 1.. on a NUMA machine (`get_node`,
//!   `get_barn`), `remote_node_defrag_ratio` and `get_any_partial`'s choice of node, and the
//!   per-node counts of the `/sys/kernel/slab/<cache>/` files;
//! - `debug`: slub_debug reports, owner tracks and checks, `validate_slab`;
//! - `slab`: `new_slab`, `discard_slab` and the node lists;
//! - `cpu`: CPU slabs and CPU partial lists (`deactivate_slab`, `__unfreeze_partials`,
//!   `slub_cpu_dead`);
//! - `free`: the free fast path, `__slab_free`, the debug free path, bulk free;
//! - `alloc`: the allocation fast path, `___slab_alloc`, the debug allocation path, bulk
//!   allocation and the kmalloc hooks;
//! - `nolock`: `kmalloc_nolock`/`kfree_nolock`, their deferred frees and the reentry points
//!   (see "Any context" below);
//! - `barn`: `struct slab_sheaf` and the barn's lists (core only; the loom model compiles it);
//! - `sheaf`: the per-CPU sheaves (the slow halves of `alloc_from_pcs`/`free_to_pcs`, refill,
//!   flush, the prefilled-sheaf API, shrink/destroy/CPU-dead flushing);
//! - `info`: slabinfo numbers, layout and statistics of a cache;
//! - `cache`: `kmem_cache_create` (merging, sizes), `kmem_cache_init`, shrink, validate and
//!   destroy.

use core::panic::Location;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use kds::list::{self, ListHead};

use crate::addr::PAGE_SHIFT;
use crate::gfp::GfpFlags;
use crate::mm::mm_types::{Page, PagePtr};
use crate::platform::Platform;
use crate::slab::common::{
    kmalloc_index, CacheHandle, SlabError, SlabFlags, SlabInfo, KMALLOC_MAX_CACHE_SIZE,
    KMALLOC_MAX_SIZE, KMALLOC_SHIFT_HIGH,
};
use crate::slab::SlabLayer;

mod alloc;
mod barn;
mod cache;
mod cpu;
mod debug;
mod free;
mod info;
mod node;
mod nodes;
mod nolock;
mod rcu_sheaf;
mod sheaf;
mod slab;

pub(crate) use crate::slab::common::Owner;
pub use crate::slab::common::{SlabLayout, SlabStats};
pub(crate) use alloc::{
    alloc_bulk, kmalloc_small, krealloc_in_place, krealloc_orig_size, slab_alloc, slab_alloc_sized,
    slab_ksize,
};
use barn::{BarnLists, SlabSheaf};
pub(crate) use cache::{destroy, kmem_cache_create, kmem_cache_init, shrink, validate};
pub(crate) use cpu::slub_cpu_dead;
use debug::TRACK_SIZE;
pub(crate) use free::{free_bulk, kfree_sized, kfree_slab, kmem_cache_free};
pub(crate) use info::{
    cache_info, cache_layout, cache_name, cache_stats, for_each_cache, for_each_cache_info,
};
pub(crate) use node::{kmalloc_small_node, slab_alloc_node_handle};
pub use nodes::SlabNodeAttr;
pub(crate) use nolock::{kfree_nolock, kmalloc_nolock};
pub use nolock::{NmiPoint, NolockState};
pub(crate) use sheaf::{
    kmem_cache_alloc_from_sheaf, kmem_cache_prefill_sheaf, kmem_cache_refill_sheaf,
    kmem_cache_return_sheaf, sheaf_census,
};
pub use sheaf::{Sheaf, SheafCensus};

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
    // Sheaves and barns (Linux 6.18 `enum stat_item`; the per-CPU `ALLOC_PCS`/`FREE_PCS`
    // live in `KmemCacheCpu`).
    AllocSlowpath,
    FreeSlowpath,
    FreeRcuSheaf,
    FreeRcuSheafFail,
    SheafFlush,
    SheafRefill,
    SheafAlloc,
    SheafFree,
    BarnGet,
    BarnGetFail,
    BarnPut,
    BarnPutFail,
    SheafPrefillFast,
    SheafPrefillSlow,
    SheafPrefillOversize,
    SheafReturnFast,
    SheafReturnSlow,
}
const NR_STATS: usize = 35;

// ------------------------------------------------------------------ per-CPU and per-node data

/// `struct kmem_cache_cpu` and `struct slub_percpu_sheaves`: one CPU's active slab, partial
/// slabs and sheaves. Used only inside a CPU section of its CPU. One cache line, which holds
/// everything either fast path touches (the CPU freelist for caches without sheaves, the
/// main sheaf for caches with them). The per-CPU counters are `u32` as Linux's per-CPU
/// `stat[]` (they wrap; readers sum them as such); the slow paths count in the cache's
/// shared statistics.
#[repr(C, align(64))]
pub(crate) struct KmemCacheCpu {
    /// Next free object of `slab` owned by this CPU.
    freelist: *mut u8,
    /// The active (frozen) slab, or null.
    slab: *mut Page,
    /// `pcs->main`: the sheaf allocations pop from and frees push to; null for a cache
    /// without sheaves and until the CPU first uses the cache.
    main: *mut SlabSheaf,
    /// The CPU partial list (frozen slabs linked through `lru.next`).
    partial: *mut Page,
    /// `pcs->spare`: a second sheaf (empty, full or in between), or null.
    spare: *mut SlabSheaf,
    partial_slabs: u32,
    /// `ALLOC_FASTPATH`, `FREE_FASTPATH`, `ALLOC_PCS`, `FREE_PCS`.
    alloc_fast: u32,
    free_fast: u32,
    alloc_pcs: u32,
    free_pcs: u32,
    /// The cache's `flush_gen` this CPU last flushed its sheaves and slab for (sheaf.rs,
    /// `sheaves_flush_requested`).
    flush_seen: u32,
}

const _: () = assert!(core::mem::size_of::<KmemCacheCpu>() == 64);

/// The lists of `struct kmem_cache_node`, under its `list_lock`.
pub(crate) struct NodeLists {
    partial: ListHead,
    nr_partial: usize,
    /// Full slabs of debug caches (Linux keeps them with SLAB_STORE_USER).
    full: ListHead,
}

/// `struct kmem_cache_node` (one node; `s->node[nid]`, see `nodes`).
pub(crate) struct KmemCacheNode<L: lock_api::RawMutex> {
    list_lock: crate::locking::Lock<L, NodeLists>,
    /// Racy copy of `nr_partial` for lockless peeks.
    nr_partial_hint: AtomicUsize,
    nr_slabs: AtomicUsize,
    total_objects: AtomicUsize,
}

impl<L: lock_api::RawMutex> KmemCacheNode<L> {
    /// An empty node; its list heads must be initialised in place (`init_lists`).
    fn new() -> Self {
        Self {
            list_lock: crate::locking::Lock::new(
                &crate::locking::LIST_LOCK,
                NodeLists {
                    partial: ListHead::new(),
                    nr_partial: 0,
                    full: ListHead::new(),
                },
            ),
            nr_partial_hint: AtomicUsize::new(0),
            nr_slabs: AtomicUsize::new(0),
            total_objects: AtomicUsize::new(0),
        }
    }
    /// Points the list heads at themselves, once the node sits where it stays.
    fn init_lists(&self) {
        // Lock order: &n->list_lock (rank 4), cache creation; docs/LOCKING.md.
        let mut n = self.list_lock.lock();
        // SAFETY: the heads live in the node, which no longer moves; nobody else sees it yet.
        unsafe {
            ListHead::init(&mut n.partial);
            ListHead::init(&mut n.full);
        }
    }
    /// Publishes `nr_partial` for lockless peeks (the caller holds this node's lock: `n`).
    #[inline]
    fn hint(&self, n: &NodeLists) {
        self.nr_partial_hint.store(n.nr_partial, Ordering::Relaxed);
    }
}

/// `struct kmem_cache`. Lives in an object of the `kmem_cache` cache and never moves.
#[repr(C)]
pub struct KmemCache<L: lock_api::RawMutex> {
    // The first cache line holds what the fast paths read (the structure is cache-line
    // aligned: `kmem_cache` objects are SLAB_HWCACHE_ALIGN).
    cpu_slab: *mut KmemCacheCpu,
    gen: AtomicU32,
    flags: SlabFlags,
    /// Object stride.
    size: u32,
    /// What the user asked for.
    object_size: u32,
    /// Free pointer offset.
    offset: u32,
    red_left_pad: u32,
    /// `size = odd << div_shift`; `div_inv * odd == 1 (mod 2^64)`: `(off * div_inv)` rotated
    /// right by `div_shift` is `off / size` when `size` divides `off`, and above
    /// `u64::MAX / size` otherwise (Granlund–Montgomery's exact-division test; Linux's
    /// `obj_to_index` divides by `reciprocal_divide` and checks nothing).
    div_shift: u32,
    div_inv: u64,
    random: usize,
    // ---- the rest
    /// Offset of the metadata (end of object and right red zone).
    inuse: u32,
    align: u32,
    /// `oo`: order and objects of a normal slab.
    order: u32,
    objects: u32,
    /// `min`: the fallback order.
    min_order: u32,
    min_partial: u32,
    /// Most slabs kept on a CPU partial list (0 for debug caches).
    cpu_partial_slabs: u32,
    /// `s->sheaf_capacity`: objects a per-CPU sheaf holds; 0 for a cache without sheaves.
    sheaf_capacity: u32,
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
    /// `s->node[0]`; nodes 1.. of a NUMA machine follow the per-CPU array (`nodes`).
    node: KmemCacheNode<L>,
    /// `struct node_barn` of node 0 (`barn->lock` and its lists); other nodes' barns sit
    /// beside their `kmem_cache_node`.
    barn: crate::locking::Lock<L, BarnLists>,
    stats: [AtomicU64; NR_STATS],
    alive: AtomicBool,
    /// Bumped by `kmem_cache_shrink`: every CPU whose `flush_seen` differs flushes its
    /// sheaves and CPU slab at its next safe point (Linux's `flush_all` work on each CPU).
    /// Placed after `alive`, in what was its padding (the structure stays within 640 bytes,
    /// the `kmem_cache` objects' size).
    flush_gen: AtomicU32,
    /// The `SlabLayer` the cache belongs to (its address), for the RCU callbacks of its
    /// `kfree_rcu` sheaves (rcu_sheaf.rs), which receive only the sheaf.
    layer: usize,
}

// SAFETY: the raw pointers are to per-CPU data (used under CPU sections) and to slab memory
// (used under the list lock or by compare-and-swap), as the module documentation describes.
unsafe impl<L: lock_api::RawMutex + Send + Sync> Sync for KmemCache<L> {}
// SAFETY: moving a cache to another thread moves only its raw pointers; they reach per-CPU data
// used under that CPU's section and slab memory used under the list lock or by compare-and-swap, so
// no access depends on the thread that holds the `KmemCache`.
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
    #[inline]
    fn stat_add(&self, s: Stat, n: u64) {
        self.stats[s as usize].fetch_add(n, Ordering::Relaxed);
    }
    /// `cache_has_sheaves`.
    #[inline]
    fn has_sheaves(&self) -> bool {
        self.sheaf_capacity != 0
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
        // SAFETY: `slot` is inside the object's stride (offset < size) and 8-aligned (objects and
        // offset are multiples of 8), and the caller may read the object (this function's
        // contract).
        let raw = unsafe { ptr::read(slot.cast::<usize>()) };
        (raw ^ self.random ^ (slot as usize).swap_bytes()) as *mut u8
    }
    /// `set_freepointer`.
    ///
    /// # Safety
    /// `obj` is a free object of a slab of this cache that the caller owns.
    #[inline]
    unsafe fn set_fp(&self, obj: *mut u8, fp: *mut u8) {
        // SAFETY: `obj` is an object of a slab of this cache (this function's contract) and
        // `offset` < the object's stride, so `slot` stays inside the same slab allocation.
        let slot = unsafe { obj.add(self.offset as usize) };
        let v = self.encode(fp, slot as usize);
        // SAFETY: `slot` is inside the caller's free object and 8-aligned (objects and `offset` are
        // multiples of 8); the caller owns the object, so no one else reads or writes the word.
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
        // SAFETY: `self` is a live memmap entry (a slab page) and `lru()` a raw projection of its
        // link field; only the CPU holding the slab (frozen, or under the list lock) chains it
        // through `lru.next`, so the write races with no one.
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

// ------------------------------------------------------------------ object lookup

impl<P: Platform> SlabLayer<P> {
    /// Whether `p` is the start of an object of `slab` (`(p - base) % size == 0` and below
    /// `objects * size`): [`obj_index`] below the slab's object count.
    #[inline(always)]
    fn is_object_start(&self, s: &Cache<P>, slab: Slab, p: *mut u8) -> bool {
        let base = self.slab_base(slab) as usize + s.red_left_pad as usize;
        obj_index(s, (p as usize).wrapping_sub(base) as u64) < u64::from(slab.objects())
    }
}

/// `off / size` when `size` divides `off`, else a value above `u64::MAX / size` (so above
/// any object count): one multiply and one rotate. With `size = odd << k` and `off = j *
/// size`, `off * inv(odd) = j << k` (mod 2^64), which rotates back to `j`; conversely a
/// result `j < 2^(64 - k)` rotates left to `j << k` without wrapping, and multiplying by
/// `odd` gives `off = j * size`, so only multiples of `size` yield small results.
#[inline(always)]
fn obj_index<L: lock_api::RawMutex>(s: &KmemCache<L>, off: u64) -> u64 {
    off.wrapping_mul(s.div_inv).rotate_right(s.div_shift)
}

impl<P: Platform> SlabLayer<P> {}

/// Walks the cache list under `slab_mutex`.
fn walk_caches<P: Platform>(m: &SlabLayer<P>, f: &mut dyn FnMut(&Cache<P>)) {
    // Lock order: slab_mutex (rank 1), the caller's closure under it (V4); docs/LOCKING.md.
    let mut list = m.slab().mutex.lock();
    let head: *mut ListHead = &mut list.caches;
    // SAFETY: the cache list under slab_mutex; entries are `KmemCache::list` links.
    for l in unsafe { list::list_for_each(head) } {
        let s = kds::container_of!(l, Cache<P>, list);
        // SAFETY: linked caches are live.
        f(unsafe { &*s });
    }
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

/// Largest request a slab cache can serve.
pub const SLAB_MAX_OBJECT: usize = KMALLOC_MAX_SIZE;
const _: () = assert!(KMALLOC_SHIFT_HIGH as usize + 1 == crate::slab::common::NR_KMALLOC_INDEX);
const _: () =
    assert!(crate::slab::common::NR_KMALLOC_INDEX <= crate::slab::common::NR_KMALLOC_SLOTS);

// ------------------------------------------------------------------ the SlabAllocator impl

/// SLUB as a [`SlabAllocator`](crate::slab::common::SlabAllocator).
pub(crate) struct Slub;

impl crate::slab::common::SlabAllocator for Slub {
    const SLABINFO: crate::slab::common::SlabinfoMode = crate::slab::common::SlabinfoMode::ReadOnly;
    const CPUHP_DEAD: Option<&'static str> = Some("slub:dead");
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
        kmem_cache_create(m, name, size, align, flags, ctor, 0, 0)
    }
    fn create_args<P: Platform>(
        m: &SlabLayer<P>,
        name: &str,
        size: usize,
        args: &crate::slab::common::KmemCacheArgs,
        flags: SlabFlags,
    ) -> Result<CacheHandle, SlabError> {
        kmem_cache_create(
            m,
            name,
            size,
            args.align,
            flags,
            args.ctor,
            args.sheaf_capacity,
            args.min_order,
        )
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
    fn ctor<P: Platform>(c: CacheHandle) -> Option<fn(*mut u8)> {
        let s = cache_ref::<P>(c);
        (s.gen.load(Ordering::Relaxed) == c.gen)
            .then_some(s.ctor)
            .flatten()
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
    #[inline(always)]
    fn kmalloc<P: Platform>(
        m: &SlabLayer<P>,
        size: usize,
        gfp: GfpFlags,
        caller: &'static Location<'static>,
    ) -> Option<NonNull<u8>> {
        if size > KMALLOC_MAX_CACHE_SIZE {
            return m.kmalloc_large_untracked(size, gfp);
        }
        kmalloc_small(m, size, gfp, caller)
    }
    #[inline(always)]
    unsafe fn kfree<P: Platform>(
        m: &SlabLayer<P>,
        page: PagePtr,
        cache: usize,
        p: *mut u8,
        caller: &'static Location<'static>,
    ) {
        // SAFETY: forwarded caller guarantee (`page` holds `p`, `cache` is its `mapping`).
        unsafe { kfree_slab(m, page, cache, p, caller) }
    }
    #[inline(always)]
    unsafe fn kfree_sized<P: Platform>(
        m: &SlabLayer<P>,
        p: *mut u8,
        size: usize,
        gfp: GfpFlags,
        caller: &'static Location<'static>,
    ) {
        // SAFETY: forwarded caller guarantee (the trait method's contract is kfree_sized's).
        unsafe { kfree_sized(m, p, size, gfp, caller) }
    }
    fn kmalloc_nolock<P: Platform>(
        m: &SlabLayer<P>,
        size: usize,
        gfp: GfpFlags,
        caller: &'static Location<'static>,
    ) -> Option<NonNull<u8>> {
        kmalloc_nolock(m, size, gfp, caller)
    }
    fn kfree_nolock<P: Platform>(m: &SlabLayer<P>, p: *mut u8, caller: &'static Location<'static>) {
        kfree_nolock(m, p, caller)
    }
    fn drain_deferred<P: Platform>(m: &SlabLayer<P>) {
        m.slub_drain_deferred()
    }
    /// `slab_tick` on this CPU: the flushes `kmem_cache_shrink` asked of every CPU
    /// (sheaf.rs `sheaves_flush_requested`; Linux runs them as work on each CPU).
    fn reap<P: Platform>(m: &SlabLayer<P>, _cpu: usize) {
        walk_caches(m, &mut |s| {
            if s.has_sheaves() && s.flush_gen.load(Ordering::Relaxed) != 0 {
                m.sheaves_flush_requested(s);
            }
        });
    }
    #[inline]
    fn krealloc_in_place<P: Platform>(m: &SlabLayer<P>, p: *mut u8, new_size: usize) {
        krealloc_in_place(m, p, new_size)
    }
    #[inline]
    fn krealloc_orig_size<P: Platform>(m: &SlabLayer<P>, p: *mut u8) -> usize {
        krealloc_orig_size(m, p)
    }
    #[inline]
    unsafe fn skip_orig_size_check<P: Platform>(
        m: &SlabLayer<P>,
        page: PagePtr,
        cache: usize,
        p: *const u8,
    ) {
        // SAFETY: `cache` is the `mapping` of the slab page `page` (the caller's contract),
        // its cache, which is not destroyed while it has slabs.
        let s = unsafe { &*(cache as *const Cache<P>) };
        // Only at an object start is the orig-size slot the object's own (ksize() does not
        // check `p`, mm/slub.c's `__ksize` neither).
        if s.orig_size_enabled() && m.is_object_start(s, Slab(page), p.cast_mut()) {
            m.set_orig_size(s, p.cast_mut(), s.object_size);
        }
    }
    #[inline]
    unsafe fn ksize<P: Platform>(
        _m: &SlabLayer<P>,
        _page: PagePtr,
        cache: usize,
        _p: *const u8,
    ) -> usize {
        // SAFETY: forwarded caller guarantee (`cache` is a slab page's `mapping`).
        unsafe { slab_ksize::<P>(cache) }
    }
    fn kmalloc_size_roundup(size: usize) -> usize {
        crate::slab::common::kmalloc_size_roundup(size)
    }
    unsafe fn cpu_dead<P: Platform>(m: &SlabLayer<P>, cpu: usize) {
        // SAFETY: `m` is a live SlabLayer<P> (the context slub_cpu_dead expects); no thread
        // uses `cpu`'s per-CPU data (this method's contract).
        unsafe { slub_cpu_dead::<P>((m as *const SlabLayer<P>).cast(), cpu) }
    }
}

/// `kmalloc_caches[kmalloc_type(gfp)][crate::slab::common::kmalloc_index(size)]`: the kmalloc fast paths'
/// size-to-cache lookup, one table load. Null above `KMALLOC_MAX_CACHE_SIZE` and before the
/// cache exists (early boot). The size test is the only check: the callers make it first
/// (kmalloc's large branch, `kfree_sized`'s), and once inlined the compiler drops this copy.
#[inline(always)]
pub(crate) fn kmalloc_slot<P: Platform>(m: &SlabLayer<P>, size: usize, gfp: GfpFlags) -> *mut u8 {
    if size > crate::slab::common::KMALLOC_MAX_CACHE_SIZE {
        return core::ptr::null_mut();
    }
    let idx = crate::slab::common::kmalloc_index_fast(size) as usize;
    let ty = crate::slab::common::kmalloc_type(gfp) as usize;
    const _: () = assert!(
        (crate::slab::common::KMALLOC_SHIFT_HIGH as usize) < crate::slab::common::NR_KMALLOC_SLOTS
    );
    // SAFETY: `ty` is a `KmallocType` discriminant, below NR_KMALLOC_TYPES; for a size of at
    // most KMALLOC_MAX_CACHE_SIZE (`1 << KMALLOC_SHIFT_HIGH`, tested above) `kmalloc_index`
    // (which `kmalloc_index_fast` returns) is at most KMALLOC_SHIFT_HIGH, below NR_KMALLOC_SLOTS (asserted above).
    let slot = unsafe { m.slab().kmalloc.get_unchecked(ty).get_unchecked(idx) };
    slot.load(core::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod obj_index_tests {
    /// [`super::obj_index`]'s arithmetic against `%` and `/` for kmem's odd and even sizes.
    #[test]
    fn rotate_multiply_finds_exactly_the_multiples() {
        for size in [
            8u64, 24, 56, 96, 192, 264, 448, 704, 1000, 4096, 4104, 12288,
        ] {
            let k = size.trailing_zeros();
            let inv = super::cache::mod_inverse(size >> k);
            for off in (0..64 * size + 70).chain([u64::MAX - 5, u64::MAX, 1 << 63]) {
                let q = off.wrapping_mul(inv).rotate_right(k);
                if off % size == 0 {
                    assert_eq!(q, off / size, "size {size} off {off}");
                } else {
                    assert!(q > u64::MAX / size, "size {size} off {off} gave {q}");
                }
            }
        }
    }
}
