//! SLAB: the queued slab allocator of Linux ≤ 6.7 (mm/slab.c, include/linux/slab_def.h).
//!
//! A cache hands out objects of one size from *slabs* (blocks of `1 << gfporder` pages, the
//! head `struct page` doubling as `struct slab`). Unlike SLUB, objects are queued: each CPU
//! keeps a LIFO stack of free object pointers (`array_cache`), refilled from and flushed to
//! the node in batches of `batchcount`; a per-node *shared* array passes objects between
//! CPUs; the node keeps its slabs on three lists (`slabs_full`, `slabs_partial`,
//! `slabs_free`) with `free_objects` counting the free objects on them and `free_limit`
//! bounding how many may stay free before whole slabs go back to the page allocator.
//!
//! ```text
//! struct page as struct slab (64 bytes)
//!   lru        slab_list: one of the node's three lists
//!   mapping    slab_cache: the owning KmemCache
//!   index      freelist: the slab's freelist_idx_t array (on-slab, off-slab, or inside a
//!              free object with OBJFREELIST_SLAB; 0 when an OBJFREELIST slab is full)
//!   private    active (bits 0..16, objects in use) | colour offset of s_mem (bits 16..)
//!   page_type  PGTY_slab
//! ```
//!
//! # Slab management (`alloc_slabmgmt`, `__kmem_cache_create`)
//! A slab's free objects are the entries `active..num` of its `freelist_idx_t` array: object
//! indexes, taken from the front (`slab_get_obj`) and put back at `active - 1`
//! (`slab_put_obj`). `freelist_idx_t` is one byte when `PAGE_SIZE >> 8 <= SLAB_OBJ_MIN_SIZE`
//! (`FREELIST_BYTE_INDEX`, true with 4 KiB pages: objects are at least 16 bytes), so a slab
//! holds at most `SLAB_OBJ_MAX_NUM` = 255 objects. The array lives, in the order
//! `__kmem_cache_create` tries them:
//! 1. **OBJFREELIST_SLAB**: inside a free object (no constructor, not RCU, the array fits in
//!    the object): no space is lost; a full slab has no array, and the first object freed
//!    into it becomes the array's home;
//! 2. **off-slab** (`CFLGS_OFF_SLAB`): in a kmalloc object, when the leftover of the slab
//!    could not hold the array and the kmalloc object is at most half an object;
//! 3. **on-slab**: at the end of the slab.
//!
//! ```text
//!  on-slab slab of order 0, colour 1:
//!  | colour_off | obj 0 | obj 1 | ... | obj num-1 | leftover | freelist[num] |
//!  ^ page       ^ s_mem
//! ```
//!
//! **Colouring**: the leftover of a slab is spent on shifting `s_mem` by `colour_next *
//! colour_off` bytes (`colour_off` = the cache line, or the alignment if larger), cycling
//! `colour_next` through `0..colour`, so objects of successive slabs land on different cache
//! lines.
//!
//! # Tunables (`enable_cpucache`, `do_tune_cpucache`, `/proc/slabinfo` writes)
//! `limit` (per-CPU array size) 1 / 8 / 24 / 54 / 120 for objects larger than 128 KiB /
//! PAGE_SIZE / 1 KiB / 256 bytes / otherwise; `batchcount` = `(limit + 1) / 2`; `shared` = 8
//! on SMP for objects up to PAGE_SIZE (the shared array holds `shared * batchcount`
//! entries), 0 on one CPU. Debug caches cap `limit` at 32 (Linux's `DEBUG` build does).
//! `echo "name limit batchcount shared" > /proc/slabinfo` retunes a cache
//! (`slabinfo_write`: as in Linux, out-of-range numbers are accepted and ignored; bad text
//! and unknown names are `EINVAL`, arrays that cannot be allocated `ENOMEM`).
//!
//! # Lock order
//! 1. `slab_mutex` (the cache list, creation, destruction, tuning, `cache_reap`);
//! 2. a CPU section ([`CpuGuard`](crate::platform::CpuGuard)): the current CPU's
//!    `array_cache` of every cache (Linux's `local_irq_save`);
//! 3. the node's `list_lock`: the three lists, the counters, the shared array and
//!    `colour_next`; and every slab's `active` and freelist array;
//! 4. the page allocator's locks: new slabs are allocated with no list lock held, and slabs
//!    are destroyed after it is dropped (`slabs_destroy`); the log lock.
//!
//! Retuning cannot interrupt other CPUs (Linux's `kick_all_cpus_sync`), so the new per-CPU
//! array is *offered* to each CPU (`pending`): the CPU installs it at its next operation on
//! the cache, giving its old array's objects back with `free_block` and freeing the old
//! array after leaving its CPU section.
//!
//! # Reaping
//! `cache_reap` runs per CPU every `REAPTIMEOUT_AC` (2 s): it drains a fifth of the CPU's
//! array (unless touched since the last reap), and every `REAPTIMEOUT_NODE` (4 s) a fifth of
//! the shared array, and frees free slabs (`drain_freelist`) unless the node's free list was
//! touched. kmem has no timer interrupt that runs on another thread's CPU and no workqueue,
//! so the per-CPU delayed work becomes a per-CPU clock: `reap_ticks[cpu]` (from boot, first
//! due a second in, as `start_cpu_timer`) is checked on the slow path of every allocation
//! that may sleep, and when `REAPTIMEOUT_AC` has passed that CPU runs the work function over
//! every cache (`periodic_reap`: `mutex_trylock(&slab_mutex)` as Linux, skipping a period
//! when it is busy). A cache's own slow paths also reap it when its `next_reap` (per-CPU
//! slot) is due, and [`crate::slab::SlabLayer::slab_tick`] runs the work function (all
//! caches, now) for the calling CPU.
//!
//! Per-CPU arrays are made for the machine's CPUs when a cache is enabled (Linux's possible
//! CPUs); a CPU slot beyond them (a hosted thread) gets its array at its first use of the
//! cache (`request_array`), and keeps it after the CPU dies (drained), as Linux keeps an
//! offline CPU's per-CPU memory.
//!
//! # Debugging (`slab_debug=`/`slub_debug=` Z, P, U; CONFIG_DEBUG_SLAB's layout)
//! ```text
//! | redzone1 (8) | object (object_size, rounded) | redzone2 (8) | last user (16) |
//!   RED_ACTIVE/RED_INACTIVE words; free objects poisoned 0x6b…0xa5, new ones 0x5a
//! ```
//! Reports follow mm/slab.c: `slab error in verify_redzone_free(): cache `…': double free
//! detected`, `Slab corruption (…): … start=…, len=…` with `Redzone:`/`Last user:` lines and
//! hex dumps of the damaged lines, `slab: double free detected in cache '…'`. kmem reports
//! and refuses the free instead of `BUG()`. The last-user word is followed by a check word
//! (kmem deviation: 16 bytes instead of 8, so a clobbered word is never followed).
//! Without debugging, a double free is caught when the object is the top of the CPU's array
//! (the common case of freeing twice in a row); pointers that are not the start of an
//! object, and objects of another cache, are always caught.
//!
//! # Nodes
//! One `kmem_cache_node` per node (`node0`, `numa`), a CPU's array and a node's shared array hold
//! only objects of that node, remote frees go through alien caches, and `kmalloc_node` /
//! `kmem_cache_alloc_node` take objects of the node asked for: see `node`.
//!
//! # Limits
//! Shrink and validate drain only the calling CPU's array (and every node's alien caches
//! and shared array); destroy drains every CPU's (its caller guarantees the cache is
//! unused).
//!
//! # Files
//! This file: the structures and the `SlabAllocator`
//! implementation; `grow`: geometry (`cache_estimate`, `calculate_slab_order`) and slabs
//! (`cache_grow`, `slab_get_obj`, `free_block`, `slab_destroy`); `debug`: red zones, poison,
//! last user and reports; `alloc`: the per-CPU arrays (`____cache_alloc`,
//! `cache_alloc_refill`, `cache_flusharray`, `__cache_free`); `cache`: creation, bootstrap,
//! tuning, reaping, shrink, destroy, CPU-dead, slabinfo; `node`: NUMA (`____cache_alloc_node`,
//! `fallback_alloc`, alien caches, `noaliencache`).

#![allow(clippy::module_inception)]

use core::cell::UnsafeCell;
use core::panic::Location;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use kds::list::{self, ListHead};

use crate::addr::PAGE_SHIFT;
use crate::gfp::GfpFlags;
use crate::mm::mm_types::{Page, PagePtr};
use crate::numa::MAX_NUMA_NODES;
use crate::platform::Platform;
use crate::slab::common::{CacheHandle, SlabError, SlabFlags, SlabInfo, SlabLayout, SlabStats};
use crate::slab::SlabLayer;

mod alloc;
mod cache;
mod debug;
mod grow;
mod node;

pub use node::SlabNodeInfo;
pub(crate) use node::{kmalloc_node, kmem_cache_alloc_node, NumaPart, SlabNumaParams};

/// `freelist_idx_t`: one byte, since `FREELIST_BYTE_INDEX` holds with 4 KiB pages.
pub(crate) type FreelistIdx = u8;
/// `SLAB_OBJ_MIN_SIZE`: `min(KMALLOC_MIN_SIZE, 16)`.
pub const SLAB_OBJ_MIN_SIZE: usize = 16;
/// `KMALLOC_MIN_SIZE` of SLAB: `1 << KMALLOC_SHIFT_LOW` with `KMALLOC_SHIFT_LOW` = 5.
pub const SLAB_KMALLOC_MIN_SIZE: usize = 32;
/// `KMALLOC_SHIFT_LOW` of SLAB.
pub const SLAB_KMALLOC_SHIFT_LOW: u32 = 5;
const _: () = assert!(
    (crate::addr::PAGE_SIZE >> 8) <= SLAB_OBJ_MIN_SIZE,
    "FREELIST_BYTE_INDEX: a one-byte freelist_idx_t needs objects of PAGE_SIZE / 256 bytes"
);
const IDX_SIZE: usize = core::mem::size_of::<FreelistIdx>();
/// `SLAB_OBJ_MAX_NUM`: most objects per slab.
pub const SLAB_OBJ_MAX_NUM: u32 = (1 << (IDX_SIZE * 8)) - 1;
/// `BATCHREFILL_LIMIT`.
const BATCHREFILL_LIMIT: u32 = 16;
/// `BYTES_PER_WORD` and `REDZONE_ALIGN` on 64-bit.
const BYTES_PER_WORD: u32 = 8;
const REDZONE_ALIGN: u32 = 8;
/// The last-user area: the caller word and its check word.
const USER_WORDS: u32 = 16;

/// `RED_INACTIVE` (include/linux/poison.h): the red zone words of a free object.
pub const RED_INACTIVE: u64 = 0x09F9_1102_9D74_E35B;
/// `RED_ACTIVE`: the red zone words of an allocated object.
pub const RED_ACTIVE: u64 = 0xD841_56C5_6356_88C0;
/// `POISON_INUSE`, `POISON_FREE`, `POISON_END`.
pub const POISON_INUSE: u8 = 0x5a;
/// `POISON_FREE`.
pub const POISON_FREE: u8 = 0x6b;
/// `POISON_END`.
pub const POISON_END: u8 = 0xa5;

/// `CFLGS_OBJFREELIST_SLAB`, `CFLGS_OFF_SLAB` (kept apart from the user flags).
const CFLGS_OBJFREELIST_SLAB: u32 = 1;
const CFLGS_OFF_SLAB: u32 = 2;

/// `REAPTIMEOUT_AC` and `REAPTIMEOUT_NODE` in seconds (× HZ).
const REAPTIMEOUT_AC_S: u64 = 2;
const REAPTIMEOUT_NODE_S: u64 = 4;

/// Longest cache name kept.
pub const CACHE_NAME_LEN: usize = 48;

// ------------------------------------------------------------------ array_cache

/// `struct array_cache`, followed in memory by `limit` entries. Made by [`alloc_arraycache`]
/// (kmalloc memory, or pages for big arrays) and used only inside a CPU section of its CPU
/// (per-CPU arrays) or under the node's `list_lock` (the shared array).
#[repr(C)]
pub(crate) struct ArrayCache {
    avail: u32,
    limit: u32,
    batchcount: u32,
    touched: u32,
}

const AC_HEADER: usize = core::mem::size_of::<ArrayCache>();

impl ArrayCache {
    /// The entry array.
    #[inline]
    fn entries(ac: *mut ArrayCache) -> *mut *mut u8 {
        ac.cast::<u8>().wrapping_add(AC_HEADER).cast()
    }
    /// Entry `i`.
    ///
    /// # Safety
    /// `ac` is a live array the caller may use and `i < limit`.
    #[inline]
    unsafe fn get(ac: *mut ArrayCache, i: u32) -> *mut u8 {
        // SAFETY: the array has `limit` entries after its header (caller's guarantee).
        unsafe { *Self::entries(ac).add(i as usize) }
    }
    /// Sets entry `i`.
    ///
    /// # Safety
    /// As for [`ArrayCache::get`].
    #[inline]
    unsafe fn set(ac: *mut ArrayCache, i: u32, p: *mut u8) {
        // SAFETY: the array has `limit` entries after its header and `i < limit`, and the
        // caller may use it (its CPU section or the list lock for a shared array), so no other
        // access races with this write.
        unsafe { *Self::entries(ac).add(i as usize) = p }
    }
}

/// One CPU's slot of a cache: its array, a replacement offered by `do_tune_cpucache`, and
/// whether the CPU asked for an array. `ac` and `next_reap` belong to the CPU: used only
/// inside a CPU section of it (or while it is dead); `pending` and `requested` are shared.
#[repr(C, align(32))]
pub(crate) struct CpuSlot {
    /// The CPU's `array_cache`, or null (no queue yet: objects go straight to the slabs).
    ac: UnsafeCell<*mut ArrayCache>,
    /// Jiffies of this CPU's next `cache_reap` of the cache.
    next_reap: UnsafeCell<u64>,
    /// A new array to install (see the module documentation), or null.
    pending: AtomicPtr<ArrayCache>,
    /// The CPU has used the cache and asked for an array (arrays are made for CPUs that use
    /// a cache, not for every possible CPU).
    requested: AtomicBool,
    /// `slab_reap_node`: the node whose alien cache this CPU's next reap drains (round
    /// robin, `next_reap_node`); owned like `next_reap`.
    reap_node: UnsafeCell<u8>,
}

impl CpuSlot {
    /// The CPU's array.
    ///
    /// # Safety
    /// The caller is in a CPU section of the slot's CPU, or the CPU is dead / the cache
    /// quiescent.
    #[inline]
    unsafe fn ac(&self) -> *mut ArrayCache {
        // SAFETY: the caller's guarantee makes this the only access to `ac`.
        unsafe { *self.ac.get() }
    }
    /// Sets the CPU's array.
    ///
    /// # Safety
    /// As for [`CpuSlot::ac`].
    #[inline]
    unsafe fn set_ac(&self, a: *mut ArrayCache) {
        // SAFETY: the caller is in the slot's CPU section (or the CPU is dead / the cache
        // quiescent), so no other reference to `ac` exists while we write it.
        unsafe { *self.ac.get() = a }
    }
    /// # Safety
    /// As for [`CpuSlot::ac`].
    #[inline]
    unsafe fn next_reap(&self) -> u64 {
        // SAFETY: `next_reap` is written only by the slot's CPU (in its section) or while the
        // CPU is dead; the caller is that CPU or the CPU is dead, so the read races with no
        // write.
        unsafe { *self.next_reap.get() }
    }
    /// Takes this CPU's `slab_reap_node` and advances it over `nr_nodes` nodes.
    ///
    /// # Safety
    /// As for [`CpuSlot::ac`].
    #[inline]
    unsafe fn next_reap_node(&self, nr_nodes: usize) -> usize {
        // SAFETY: `reap_node` is used only by the slot's CPU in its section (or while it is
        // dead), the caller's guarantee: no concurrent access.
        unsafe {
            let n = *self.reap_node.get() as usize % nr_nodes.max(1);
            *self.reap_node.get() = ((n + 1) % nr_nodes.max(1)) as u8;
            n
        }
    }
    /// # Safety
    /// As for [`CpuSlot::ac`].
    #[inline]
    unsafe fn set_next_reap(&self, t: u64) {
        // SAFETY: the caller is in the slot's CPU section (or the CPU is dead), the only
        // context that reads or writes `next_reap`: no concurrent access.
        unsafe { *self.next_reap.get() = t }
    }
}

// ------------------------------------------------------------------ kmem_cache_node

/// `struct kmem_cache_node` (one node), under its `list_lock`.
pub(crate) struct NodeLists {
    slabs_partial: ListHead,
    slabs_full: ListHead,
    slabs_free: ListHead,
    total_slabs: usize,
    free_slabs: usize,
    free_objects: usize,
    free_limit: usize,
    colour_next: u32,
    free_touched: bool,
    next_reap: u64,
    /// The shared array, or null.
    shared: *mut ArrayCache,
    /// Slabs grown and freed (the `grown` / `reaped` statistics of `STATS`).
    grown: u64,
    reaped: u64,
    /// This node's id.
    nid: u8,
    /// `n->alien`: this node's row of the cache's alien-cache table (in its [`NumaPart`]),
    /// null on a one-node machine. `alien[home]` collects objects of node `home` freed on
    /// this node's CPUs (`struct alien_cache`; null for this node itself and with
    /// `noaliencache`). See node.rs.
    alien: *mut [*mut ArrayCache; MAX_NUMA_NODES],
}

impl NodeLists {
    /// `n->alien[home]`, or null.
    #[inline]
    fn alien(&self, home: usize) -> *mut ArrayCache {
        if self.alien.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: a non-null row lives in the cache's `NumaPart`, which outlives every use of
        // the node's lists; its entries are used only under this node's list lock, which the
        // caller holds (`NodeLists` is reached only through its lock).
        unsafe { (*self.alien)[home % MAX_NUMA_NODES] }
    }
    /// Sets `n->alien[home]` (nothing on a one-node machine).
    #[inline]
    fn set_alien(&mut self, home: usize, a: *mut ArrayCache) {
        if !self.alien.is_null() {
            // SAFETY: a non-null row lives in the cache's `NumaPart`, which outlives every use
            // of the node's lists; it is written under this node's list lock (the `&mut` comes
            // from its guard), so no other access to the row runs at the same time.
            unsafe { (*self.alien)[home % MAX_NUMA_NODES] = a }
        }
    }
}

/// `struct kmem_cache` of SLAB (include/linux/slab_def.h). Lives in an object of the
/// `kmem_cache` cache and never moves.
#[repr(C)]
pub struct KmemCache<L: lock_api::RawMutex> {
    cpu_cache: *mut CpuSlot,
    cpu_order: u32,
    gen: AtomicU32,
    /// Tunables (written under `slab_mutex`, read racily by slabinfo).
    batchcount: AtomicU32,
    limit: AtomicU32,
    shared: AtomicU32,
    /// Object stride (`size`) and what the user asked for (`object_size`).
    size: u32,
    /// Raised when another cache is merged into this one (`__kmem_cache_alias`), so
    /// `ksize` covers what the alias's users asked for.
    object_size: AtomicU32,
    align: u32,
    /// Objects per slab and its order.
    num: u32,
    gfporder: u32,
    flags: SlabFlags,
    cflgs: u32,
    allocflags: GfpFlags,
    colour: u32,
    colour_off: u32,
    freelist_size: u32,
    /// Offset of the object in its stride (the first red zone word before it).
    obj_offset: u32,
    ctor: Option<fn(*mut u8)>,
    refcount: AtomicI32,
    name_len: u32,
    name: [u8; CACHE_NAME_LEN],
    /// Link in `slab_caches`, or in the list of dead cache structures.
    list: ListHead,
    /// `node[0]`: node 0's `kmem_cache_node`.
    node0: crate::locking::Lock<L, NodeLists>,
    /// The other nodes' `kmem_cache_node`s, the alien-cache table and the NUMA statistics,
    /// kmalloc'd at creation on a NUMA machine (Linux's `kmalloc_node(sizeof(struct
    /// kmem_cache_node))`); null with one node. Freed by destroy.
    numa: *mut NumaPart<L>,
    /// Objects handed out through per-CPU arrays and refills (`STATS` of Linux).
    allochit: AtomicU64,
    allocmiss: AtomicU64,
    freehit: AtomicU64,
    freemiss: AtomicU64,
    alive: AtomicBool,
}

// SAFETY: the raw pointers are to per-CPU data (used under CPU sections), to the shared
// array and slab memory (used under the list lock), as the module documentation describes.
unsafe impl<L: lock_api::RawMutex + Send + Sync> Sync for KmemCache<L> {}
// SAFETY: the structure lives in slab memory owned by the machine, not by a thread; its raw
// pointers (per-CPU slots, shared arrays, random sequence) carry no thread affinity, and
// what they point at is reached under the same CPU-section and list-lock rules from any
// thread, so moving the value to another thread is sound.
unsafe impl<L: lock_api::RawMutex + Send + Sync> Send for KmemCache<L> {}

type Cache<P> = KmemCache<<P as Platform>::RawLock>;

impl<L: lock_api::RawMutex> KmemCache<L> {
    /// The cache's name.
    pub fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..self.name_len as usize]).unwrap_or("?")
    }
    #[inline]
    fn debug(&self) -> bool {
        self.flags
            .intersects(SlabFlags::RED_ZONE | SlabFlags::POISON | SlabFlags::STORE_USER)
    }
    #[inline]
    fn off_slab(&self) -> bool {
        self.cflgs & CFLGS_OFF_SLAB != 0
    }
    #[inline]
    fn objfreelist(&self) -> bool {
        self.cflgs & CFLGS_OBJFREELIST_SLAB != 0
    }
    /// `get_node(cachep, nid)`: node `nid`'s lists (callers pass online nodes; node 0's
    /// for any other on a one-node machine).
    #[inline]
    fn node(&self, nid: usize) -> &crate::locking::Lock<L, NodeLists> {
        match self.numa_part() {
            Some(part) if nid != 0 => &part.nodes[(nid - 1) % (MAX_NUMA_NODES - 1)],
            _ => &self.node0,
        }
    }
    /// The NUMA part, on a NUMA machine.
    #[inline]
    fn numa_part(&self) -> Option<&NumaPart<L>> {
        // SAFETY: non-null only between `open_cache` (which initialised it) and destroy,
        // which frees it once the cache is dead (no handle resolves to it then).
        unsafe { self.numa.as_ref() }
    }
    /// The slot of `cpu`.
    ///
    /// # Safety
    /// `cpu` is below the platform's `possible_cpus` (a CPU section's CPU is).
    #[inline]
    unsafe fn cpu(&self, cpu: usize) -> &CpuSlot {
        // SAFETY: `cpu_cache` has `possible_cpus` zeroed slots (a valid empty slot is all
        // zeroes), live as long as the cache.
        unsafe { &*self.cpu_cache.add(cpu) }
    }
}

// ------------------------------------------------------------------ struct slab

/// `struct slab`: a view of a slab's head `struct page`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct SlabPage(PagePtr);

const ACTIVE_MASK: usize = 0xffff;
const COLOUR_SHIFT: u32 = 16;

impl SlabPage {
    /// The slab of a list link.
    ///
    /// # Safety
    /// `l` is the `slab_list` link of a slab page.
    #[inline]
    unsafe fn from_lru(l: *mut ListHead) -> SlabPage {
        // SAFETY: `l` is the `slab_list` (`lru`) link of a slab page (caller's guarantee),
        // i.e. a field of a memmap entry, which is what `PagePtr::from_lru` requires.
        SlabPage(unsafe { PagePtr::from_lru(l) })
    }
    #[inline]
    fn lru(self) -> *mut ListHead {
        self.0.lru()
    }
    #[inline]
    fn active(self) -> u32 {
        (self.0.private() & ACTIVE_MASK) as u32
    }
    #[inline]
    fn set_active(self, a: u32) {
        let v = self.0.private() & !ACTIVE_MASK;
        self.0.set_private(v | a as usize);
    }
    #[inline]
    fn colour_offset(self) -> usize {
        self.0.private() >> COLOUR_SHIFT
    }
    #[inline]
    fn freelist(self) -> *mut FreelistIdx {
        self.0.index() as *mut FreelistIdx
    }
    #[inline]
    fn set_freelist(self, f: *mut FreelistIdx) {
        self.0.set_index(f as usize)
    }
    /// `get_free_obj`.
    ///
    /// # Safety
    /// The slab's freelist is live (the slab is not a full OBJFREELIST slab), `i < num`, and
    /// the caller holds the node's list lock or owns the slab.
    #[inline]
    unsafe fn get_free_obj(self, i: u32) -> u32 {
        // SAFETY: the freelist has `num` entries (caller's guarantee).
        unsafe { *self.freelist().add(i as usize) as u32 }
    }
    /// `set_free_obj`.
    ///
    /// # Safety
    /// As for [`SlabPage::get_free_obj`].
    #[inline]
    unsafe fn set_free_obj(self, i: u32, v: u32) {
        // SAFETY: the freelist is live with `num` entries and `i < num` (caller's
        // guarantee), and the caller holds the list lock or owns the slab, so the write
        // races with nothing; `v < num <= SLAB_OBJ_MAX_NUM` fits a `FreelistIdx`.
        unsafe { *self.freelist().add(i as usize) = v as FreelistIdx }
    }
    #[inline]
    fn order(self) -> u32 {
        self.0.compound_order().as_u32()
    }
}

impl<P: Platform> SlabLayer<P> {
    /// `slab_address`: the real address of a slab's memory (slabs are always lowmem).
    #[inline]
    fn slab_addr(&self, slab: SlabPage) -> *mut u8 {
        let off = (slab.0.as_ptr() as usize - self.mem_map as usize) << (PAGE_SHIFT - 6);
        self.direct_map.wrapping_add(off)
    }
    /// `slab->s_mem`: the first object.
    #[inline]
    fn s_mem(&self, slab: SlabPage) -> *mut u8 {
        self.slab_addr(slab).wrapping_add(slab.colour_offset())
    }
    /// `index_to_obj` (the start of the stride, before any red zone).
    #[inline]
    fn index_to_obj(&self, s: &Cache<P>, slab: SlabPage, idx: u32) -> *mut u8 {
        self.s_mem(slab)
            .wrapping_add(idx as usize * s.size as usize)
    }
    /// `obj_to_index` of a stride start, or `None` if `objp` is not one.
    #[inline]
    fn obj_to_index(&self, s: &Cache<P>, slab: SlabPage, objp: *mut u8) -> Option<u32> {
        let off = (objp as usize).wrapping_sub(self.s_mem(slab) as usize);
        let idx = off / s.size as usize;
        (off.is_multiple_of(s.size as usize) && idx < s.num as usize).then_some(idx as u32)
    }
}

const _: () = assert!(core::mem::size_of::<Page>() == 64);

/// `list_last_entry_or_null` without the `container_of`.
///
/// # Safety
/// `head` is a valid, initialised list head the caller may read.
#[inline]
unsafe fn list_last(head: *const ListHead) -> Option<*mut ListHead> {
    // SAFETY: `head` is a valid, initialised list head the caller may read (its contract),
    // which is all `list_empty` and the read of `prev` need.
    unsafe { (!kds::list::list_empty(head)).then(|| (*head).prev) }
}

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
        m.warn_at(
            caller,
            format_args!(
                "kmem_cache {:#x} used after kmem_cache_destroy (stale handle)",
                m.to_model(h.ptr.as_ptr() as usize)
            ),
        );
        None
    }
}

/// Walks the cache list under `slab_mutex`.
fn walk_caches<P: Platform>(m: &SlabLayer<P>, f: &mut dyn FnMut(&Cache<P>)) {
    // Lock order: slab_mutex (rank 1), the caller's closure under it (V4); docs/LOCKING.md.
    let mut list = m.slab().mutex.lock();
    let head: *mut ListHead = &mut list.caches;
    // SAFETY: the cache list under slab_mutex; entries are `KmemCache::list` links.
    for l in unsafe { kds::list::list_for_each(head) } {
        let s = kds::container_of!(l, Cache<P>, list);
        // SAFETY: linked caches are live.
        f(unsafe { &*s });
    }
}

/// `kmalloc_index` of SLAB: sizes up to 32 bytes share `kmalloc-32`
/// (`setup_kmalloc_cache_index_table` with `KMALLOC_MIN_SIZE` = 32).
#[inline]
pub const fn slab_kmalloc_index(size: usize) -> u32 {
    if size <= SLAB_KMALLOC_MIN_SIZE {
        SLAB_KMALLOC_SHIFT_LOW
    } else {
        crate::slab::common::kmalloc_index(size)
    }
}

/// The kmalloc cache of `size` and `gfp`, if any (`kmalloc_slab`).
fn kmalloc_cache_ptr<P: Platform>(
    m: &SlabLayer<P>,
    size: usize,
    gfp: GfpFlags,
) -> Option<&Cache<P>> {
    if size == 0 || size > crate::slab::common::KMALLOC_MAX_CACHE_SIZE {
        return None;
    }
    let p = m.slab().kmalloc[crate::slab::common::kmalloc_type(gfp) as usize]
        [slab_kmalloc_index(size) as usize]
        .load(Ordering::Acquire);
    // SAFETY: kmalloc table entries are live caches, never destroyed.
    NonNull::new(p).map(|p| unsafe { &*p.as_ptr().cast::<Cache<P>>() })
}

// ------------------------------------------------------------------ metadata memory

/// Allocates `bytes` of metadata (array caches, off-slab freelists): from the kmalloc caches
/// of SLAB itself when they exist and the size fits, else whole pages.
fn alloc_meta<P: Platform>(m: &SlabLayer<P>, bytes: usize) -> Option<*mut u8> {
    if let Some(c) = kmalloc_cache_ptr(m, bytes, GfpFlags::GFP_KERNEL) {
        return alloc::cache_alloc(m, c, GfpFlags::GFP_KERNEL, Location::caller())
            .map(NonNull::as_ptr);
    }
    let order = crate::slab::common::get_order(bytes);
    let page = m.alloc_pages(
        GfpFlags::GFP_KERNEL | GfpFlags::__GFP_COMP,
        crate::addr::Order::try_new(order).ok()?,
    )?;
    m.page_address(page).map(|v| v.as_ptr::<u8>())
}

/// Frees metadata from [`alloc_meta`].
fn free_meta<P: Platform>(m: &SlabLayer<P>, p: *mut u8) {
    if p.is_null() {
        return;
    }
    match m.owner_of(p) {
        crate::slab::common::Owner::Slab(_, cache) => {
            // SAFETY: a slab page's `mapping` is its live cache (set by cache_grow).
            let s = unsafe { &*(cache as *const Cache<P>) };
            alloc::cache_free(m, s, p, Location::caller());
        }
        crate::slab::common::Owner::Other(page) | crate::slab::common::Owner::Large(page) => {
            let order = page.compound_order();
            m.__free_pages(page, order);
        }
        crate::slab::common::Owner::Unknown => {}
    }
}

/// `alloc_arraycache`: an empty array of `entries` entries.
fn alloc_arraycache<P: Platform>(
    m: &SlabLayer<P>,
    entries: u32,
    batchcount: u32,
) -> Option<*mut ArrayCache> {
    let bytes = AC_HEADER.checked_add((entries as usize).checked_mul(8)?)?;
    if bytes > crate::slab::common::KMALLOC_MAX_SIZE {
        return None;
    }
    let ac = alloc_meta(m, bytes)?.cast::<ArrayCache>();
    // SAFETY: fresh memory of at least the header's size, 8-aligned.
    unsafe {
        ptr::write(
            ac,
            ArrayCache {
                avail: 0,
                limit: entries,
                batchcount,
                touched: 0,
            },
        )
    };
    Some(ac)
}

// ------------------------------------------------------------------ the SlabAllocator impl

/// SLAB as a [`SlabAllocator`](crate::slab::common::SlabAllocator).
pub(crate) struct Slab;

impl crate::slab::common::SlabAllocator for Slab {
    const SLABINFO: crate::slab::common::SlabinfoMode =
        crate::slab::common::SlabinfoMode::ReadWrite;
    const CPUHP_DEAD: Option<&'static str> = Some("slab:dead");

    fn init<P: Platform>(m: &SlabLayer<P>) -> Result<(), SlabError> {
        cache::kmem_cache_init(m)
    }
    fn create<P: Platform>(
        m: &SlabLayer<P>,
        name: &str,
        size: usize,
        align: usize,
        flags: SlabFlags,
        ctor: Option<fn(*mut u8)>,
    ) -> Result<CacheHandle, SlabError> {
        cache::kmem_cache_create(m, name, size, align, flags, ctor)
    }
    #[inline]
    fn alloc<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        gfp: GfpFlags,
        caller: &'static Location<'static>,
        _orig: Option<usize>,
    ) -> Option<NonNull<u8>> {
        let s = resolve(m, c, caller)?;
        alloc::cache_alloc(m, s, gfp, caller)
    }
    #[inline]
    fn free<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        p: *mut u8,
        caller: &'static Location<'static>,
    ) {
        if p.is_null() {
            return;
        }
        if let Some(s) = resolve(m, c, caller) {
            alloc::kmem_cache_free(m, s, p, caller)
        }
    }
    fn alloc_bulk<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        gfp: GfpFlags,
        out: &mut [*mut u8],
        caller: &'static Location<'static>,
    ) -> usize {
        let Some(s) = resolve(m, c, caller) else {
            return 0;
        };
        for i in 0..out.len() {
            match alloc::cache_alloc(m, s, gfp, caller) {
                Some(p) => out[i] = p.as_ptr(),
                None => {
                    for q in &mut out[..i] {
                        alloc::kmem_cache_free(m, s, *q, caller);
                        *q = ptr::null_mut();
                    }
                    return 0;
                }
            }
        }
        out.len()
    }
    fn free_bulk<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        objs: &[*mut u8],
        caller: &'static Location<'static>,
    ) {
        if let Some(s) = resolve(m, c, caller) {
            for &p in objs.iter().filter(|p| !p.is_null()) {
                alloc::kmem_cache_free(m, s, p, caller);
            }
        }
    }
    fn shrink<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        caller: &'static Location<'static>,
    ) -> bool {
        resolve(m, c, caller).is_some_and(|s| cache::shrink(m, s))
    }
    fn destroy<P: Platform>(m: &SlabLayer<P>, c: CacheHandle, caller: &'static Location<'static>) {
        if let Some(s) = resolve(m, c, caller) {
            cache::destroy(m, s, caller)
        }
    }
    fn validate<P: Platform>(
        m: &SlabLayer<P>,
        c: CacheHandle,
        caller: &'static Location<'static>,
    ) -> usize {
        resolve(m, c, caller).map_or(0, |s| debug::validate(m, s))
    }
    fn name<P: Platform>(_m: &SlabLayer<P>, c: CacheHandle) -> Option<&'static str> {
        let s = cache_ref::<P>(c);
        (s.gen.load(Ordering::Relaxed) == c.gen).then(|| {
            // SAFETY: cache structures are never freed (module documentation of common).
            let s: &'static Cache<P> = unsafe { &*(s as *const Cache<P>) };
            s.name()
        })
    }
    fn info<P: Platform>(m: &SlabLayer<P>, c: CacheHandle) -> Option<SlabInfo> {
        let s = cache_ref::<P>(c);
        (s.gen.load(Ordering::Relaxed) == c.gen).then(|| cache::info_of(m, s))
    }
    fn stats<P: Platform>(_m: &SlabLayer<P>, c: CacheHandle) -> Option<SlabStats> {
        let s = cache_ref::<P>(c);
        (s.gen.load(Ordering::Relaxed) == c.gen).then(|| cache::stats_of::<P>(s))
    }
    fn layout<P: Platform>(c: CacheHandle) -> Option<SlabLayout> {
        let s = cache_ref::<P>(c);
        (s.gen.load(Ordering::Relaxed) == c.gen).then(|| cache::layout_of::<P>(s))
    }
    fn ctor<P: Platform>(c: CacheHandle) -> Option<fn(*mut u8)> {
        let s = cache_ref::<P>(c);
        (s.gen.load(Ordering::Relaxed) == c.gen)
            .then_some(s.ctor)
            .flatten()
    }
    fn for_each<P: Platform>(m: &SlabLayer<P>, f: &mut dyn FnMut(CacheHandle, &str)) {
        walk_caches(m, &mut |s| f(handle_of(s), s.name()));
    }
    fn for_each_info<P: Platform>(m: &SlabLayer<P>, f: &mut dyn FnMut(&str, &SlabInfo)) {
        walk_caches(m, &mut |s| f(s.name(), &cache::info_of(m, s)));
    }
    fn kmalloc_cache<P: Platform>(
        m: &SlabLayer<P>,
        size: usize,
        gfp: GfpFlags,
    ) -> Option<CacheHandle> {
        kmalloc_cache_ptr(m, size, gfp).map(handle_of)
    }
    #[inline]
    fn kmalloc<P: Platform>(
        m: &SlabLayer<P>,
        size: usize,
        gfp: GfpFlags,
        caller: &'static Location<'static>,
    ) -> Option<NonNull<u8>> {
        if size > crate::slab::common::KMALLOC_MAX_CACHE_SIZE {
            return m.kmalloc_large_untracked(size, gfp);
        }
        let s = kmalloc_cache_ptr(m, size, gfp)?;
        alloc::cache_alloc(m, s, gfp, caller)
    }
    #[inline]
    unsafe fn kfree<P: Platform>(
        m: &SlabLayer<P>,
        _page: PagePtr,
        cache: usize,
        p: *mut u8,
        caller: &'static Location<'static>,
    ) {
        // SAFETY: `cache` is the `mapping` of a slab page: a live cache (cache_grow sets it).
        let s = unsafe { &*(cache as *const Cache<P>) };
        alloc::kmem_cache_free(m, s, p, caller)
    }
    #[inline]
    unsafe fn kfree_sized<P: Platform>(
        m: &SlabLayer<P>,
        p: *mut u8,
        size: usize,
        gfp: GfpFlags,
        caller: &'static Location<'static>,
    ) {
        match kmalloc_cache_ptr(m, size, gfp) {
            Some(s) => alloc::kmem_cache_free(m, s, p, caller),
            None => m.kfree(p),
        }
    }
    #[inline]
    fn krealloc_in_place<P: Platform>(_m: &SlabLayer<P>, _p: *mut u8, _new_size: usize) {
        // SLAB keeps no requested size (no kmalloc red zone): nothing to update.
    }
    unsafe fn ksize<P: Platform>(
        m: &SlabLayer<P>,
        _page: PagePtr,
        cache: usize,
        p: *const u8,
    ) -> usize {
        // SAFETY: `cache` is the `mapping` of a slab page: a live cache.
        let s = unsafe { &*(cache as *const Cache<P>) };
        let objp = p.wrapping_sub(s.obj_offset as usize).cast_mut();
        if m.slab_of(s, objp).is_none() {
            m.warn(format_args!(
                "ksize: 0x{:016x} is not the start of an object of {}",
                m.to_model(p as usize),
                s.name()
            ));
            return 0;
        }
        // slab_ksize without SLUB: the object size.
        s.object_size.load(Ordering::Relaxed) as usize
    }
    fn kmalloc_size_roundup(size: usize) -> usize {
        if size == 0 || size > crate::slab::common::KMALLOC_MAX_CACHE_SIZE {
            crate::slab::common::kmalloc_size_roundup(size)
        } else {
            crate::slab::common::kmalloc_size(slab_kmalloc_index(size))
        }
    }
    unsafe fn cpu_dead<P: Platform>(m: &SlabLayer<P>, cpu: usize) {
        // SAFETY: forwarded contract: nobody uses `cpu`'s per-CPU data.
        unsafe { cache::slab_cpu_dead(m, cpu) }
    }
    fn reap<P: Platform>(m: &SlabLayer<P>, _cpu: usize) {
        cache::cache_reap(m)
    }
    fn slabinfo_write<P: Platform>(
        m: &SlabLayer<P>,
        text: &str,
    ) -> Result<(), crate::errno::Errno> {
        cache::slabinfo_write(m, text)
    }
}

/// The periodic `cache_reap` of the calling CPU, when its `REAPTIMEOUT_AC` has passed: every
/// cache's per-CPU part (drain a fifth of an untouched array) and, when due for the node,
/// the shared array and free slabs. As Linux's work function it only `mutex_trylock`s
/// `slab_mutex` and tries again next period if the mutex is busy, so it never waits. The
/// caller is on a slow path of an allocation that may sleep, in no CPU section.
pub(super) fn periodic_reap<P: Platform>(m: &SlabLayer<P>) {
    let ticks = m.slab().reap_ticks.load(Ordering::Acquire);
    let cpu = m.platform().raw_cpu_id();
    if ticks.is_null() || cpu >= m.platform().possible_cpus() {
        return;
    }
    // SAFETY: `init_reap_ticks` made `possible_cpus` clocks, never freed.
    let tick = unsafe { &*ticks.add(cpu) };
    let now = m.platform().jiffies();
    let due = tick.load(Ordering::Relaxed);
    if now < due {
        return;
    }
    let next = now + REAPTIMEOUT_AC_S * m.platform().hz();
    if tick
        .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
        .is_err()
    {
        return; // another thread on this CPU slot took this period
    }
    // Lock order: slab_mutex (rank 1), trylock; the reap takes cpu_section and the list
    // locks under it as `cache_reap` does (V4); docs/LOCKING.md.
    let Some(mut list) = m.slab().mutex.try_lock() else {
        return;
    };
    let head: *mut ListHead = &mut list.caches;
    // SAFETY: the cache list under slab_mutex; entries are `KmemCache::list` links.
    for l in unsafe { list::list_for_each(head) } {
        // SAFETY: linked caches are live.
        let s = unsafe { &*kds::container_of!(l, Cache<P>, list) };
        cache::with_cpu_slot(m, s, |slot, nid| m.reap_cpu(s, slot, nid, false));
    }
}
