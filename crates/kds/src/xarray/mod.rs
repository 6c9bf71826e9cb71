//! The XArray (lib/xarray.c, include/linux/xarray.h): a sparse array of word-sized entries
//! indexed by `usize`, a radix tree of 64-slot nodes.
//!
//! # Structure
//! `head` is empty, a single entry for index 0, or a node pointer. A node ([`XA_CHUNK_SIZE`] =
//! 64 slots) at `shift` `s` maps bits `s..s+6` of the index; leaves have shift 0, each level up
//! adds 6, the top node covers `0..=(64 << shift) - 1`. A multi-index entry of order `o` lives
//! in the node of shift `o - o % 6`: its first ("canonical") slot holds the entry and the next
//! `2^(o % 6) - 1` slots hold sibling entries pointing back at it. Every node keeps three mark
//! bitmaps; a mark bit at a slot in a non-leaf node means "some entry below is marked", so
//! marked searches skip unmarked subtrees. In allocating arrays ([`XaFlags::ALLOC`]) mark 0 is
//! `XA_FREE_MARK`, inverted: set on free slots, so `xa_alloc` finds the lowest free index by a
//! marked search.
//!
//! # Invariants (checked by [`XArray::check`])
//! 1. A node's `count` is its number of non-empty slots (siblings included); only the top node
//!    may momentarily be empty inside an operation, never between operations.
//! 2. A child's `parent`/`offset` point back at its slot; its shift is its parent's minus 6.
//! 3. A parent's mark bit for a child slot is set iff the child has that mark on some slot.
//! 4. Marks are only set on canonical slots of present entries (except `XA_FREE_MARK`, set
//!    exactly on empty slots and on children with a free slot).
//! 5. The tree is as short as possible: the top node does not hold a single entry at slot 0
//!    that could live in `head` (Linux's `xas_shrink`).
//!
//! # Concurrency: one writer, lock-free readers
//! Writers serialise on the array's spinlock ([`XArray::lock`]; every mutating method takes it
//! for its duration). Readers ([`XArray::load`], [`XArray::find`], iteration, marks) take no
//! lock: slots and the head are atomics, a writer fully initialises a node before publishing
//! it with a `Release` store, readers load with `Acquire`. Nodes removed from the tree are not
//! freed at once: they are put on a *retired* list and freed when no reader is inside the array.
//! Readers announce themselves on an atomic reader count ([`XArray::read`] returns a guard;
//! single calls take one internally); at the end of each write operation the writer frees the
//! retired list if an `AcqRel` read-modify-write of the count finds zero — any reader that
//! enters afterwards synchronises with that RMW and so cannot reach a node unlinked before it,
//! and any reader that left before it released its reads with its decrement. With `&mut self`
//! (no readers possible) [`XArray::reclaim`] frees the list unconditionally. As in Linux, a
//! reader that walks into a node being freed finds `XA_RETRY_ENTRY` and restarts. This is a
//! simple quiescent-state scheme standing in for RCU: it costs two atomic RMWs per read
//! section and can delay reclamation under a steady stream of readers; real RCU (per-CPU
//! grace periods) is future work.
//!
//! # Memory
//! Nodes come from the [`NodeAlloc`] passed at creation, with the caller's GFP flags; a failed
//! allocation returns [`Error::ENOMEM`] and leaves the array as it was (partially built paths
//! are removed again). [`XArray::preload`] fills a per-array reserve of nodes beforehand
//! (`idr_preload` / `radix_tree_preload`), enough for any single store.

mod entry;

pub use entry::{xa_is_value, xa_mk_value, xa_to_value, XaEntry, XA_ZERO_ENTRY};

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering::*};

use crate::alloc::{Gfp, NodeAlloc};
use crate::error::{Error, Result};
use entry::*;

/// `XA_CHUNK_SHIFT`: index bits per level (CONFIG_BASE_SMALL=0).
pub const XA_CHUNK_SHIFT: u32 = 6;
/// `XA_CHUNK_SIZE`: slots per node.
pub const XA_CHUNK_SIZE: usize = 1 << XA_CHUNK_SHIFT;
const XA_CHUNK_MASK: usize = XA_CHUNK_SIZE - 1;
/// `XA_MAX_MARKS`.
pub const XA_MAX_MARKS: usize = 3;
/// Height of the tallest tree: levels needed for a `usize` index.
pub const XA_MAX_PATH: usize = (usize::BITS as usize).div_ceil(XA_CHUNK_SHIFT as usize);
/// Nodes [`XArray::preload`] keeps ready: a full path for a store, plus a full path of top
/// expansion (`RADIX_TREE_PRELOAD_SIZE` = `RADIX_TREE_MAX_PATH * 2 - 1`).
pub const XA_PRELOAD_NODES: usize = XA_MAX_PATH * 2 - 1;

/// A mark (`xa_mark_t`): 0, 1 or 2.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct XaMark(u8);

/// `XA_MARK_0`.
pub const XA_MARK_0: XaMark = XaMark(0);
/// `XA_MARK_1`.
pub const XA_MARK_1: XaMark = XaMark(1);
/// `XA_MARK_2`.
pub const XA_MARK_2: XaMark = XaMark(2);
/// `XA_FREE_MARK` (= mark 0): free slots of an allocating array. Not for users of such arrays.
pub const XA_FREE_MARK: XaMark = XA_MARK_0;

impl XaMark {
    /// Returns mark `n`.
    ///
    /// # Panics
    /// If `n >= XA_MAX_MARKS`.
    pub const fn new(n: u8) -> XaMark {
        assert!((n as usize) < XA_MAX_MARKS);
        XaMark(n)
    }
}

/// What a search looks for (`XA_PRESENT` or a mark).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum XaFilter {
    /// `XA_PRESENT`: any present entry.
    Present,
    /// Entries with this mark.
    Marked(XaMark),
}

/// `XA_PRESENT`.
pub const XA_PRESENT: XaFilter = XaFilter::Present;

/// `struct xa_limit`: an inclusive range of ids for [`XArray::alloc`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct XaLimit {
    /// Lowest id.
    pub min: u32,
    /// Highest id.
    pub max: u32,
}

impl XaLimit {
    /// `XA_LIMIT(min, max)`.
    pub const fn new(min: u32, max: u32) -> XaLimit {
        XaLimit { min, max }
    }
}

/// `xa_limit_32b`: any u32.
pub const XA_LIMIT_32B: XaLimit = XaLimit::new(0, u32::MAX);
/// `xa_limit_31b`: non-negative `int`s.
pub const XA_LIMIT_31B: XaLimit = XaLimit::new(0, i32::MAX as u32);
/// `xa_limit_16b`.
pub const XA_LIMIT_16B: XaLimit = XaLimit::new(0, u16::MAX as u32);

/// Array flags (`xa_flags`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct XaFlags(u8);

impl XaFlags {
    /// A plain array.
    pub const NONE: XaFlags = XaFlags(0);
    /// `XA_FLAGS_ALLOC`: track free slots (mark 0 is `XA_FREE_MARK`) for `xa_alloc`; storing
    /// `NULL` reserves the slot instead of erasing it.
    pub const ALLOC: XaFlags = XaFlags(1);
    /// `XA_FLAGS_ALLOC1`: as `ALLOC`, but index 0 is never allocated.
    pub const ALLOC1: XaFlags = XaFlags(3);

    const fn track_free(self) -> bool {
        self.0 & 1 != 0
    }
    const fn zero_busy(self) -> bool {
        self.0 & 2 != 0
    }
}

/// An XArray node (`struct xa_node`).
#[repr(C)]
struct XaNode {
    /// Bits of the index below this level (0 for leaves). Written before the node is
    /// published, never changed afterwards: readers may read it freely.
    shift: u8,
    /// Slot in the parent (writer only).
    offset: AtomicU8,
    /// Non-empty slots (writer only).
    count: AtomicU8,
    /// Parent node, null for the top (writer only).
    parent: AtomicPtr<XaNode>,
    /// Link on the retired or reserve list (writer only).
    next_free: AtomicPtr<XaNode>,
    /// Mark bitmaps, one bit per slot.
    marks: [AtomicU64; XA_MAX_MARKS],
    /// The slots.
    slots: [AtomicUsize; XA_CHUNK_SIZE],
}

const NODE_LAYOUT: Layout = Layout::new::<XaNode>();

impl XaNode {
    #[inline(always)]
    fn slot(&self, off: usize) -> usize {
        self.slots[off].load(Acquire)
    }
    #[inline(always)]
    fn count(&self) -> usize {
        self.count.load(Relaxed) as usize
    }
    #[inline(always)]
    fn add_count(&self, d: isize) {
        let c = self.count() as isize + d;
        debug_assert!((0..=XA_CHUNK_SIZE as isize).contains(&c));
        self.count.store(c as u8, Relaxed);
    }
    #[inline(always)]
    fn mark_bits(&self, m: XaMark) -> u64 {
        self.marks[m.0 as usize].load(Relaxed)
    }
    #[inline(always)]
    fn get_mark(&self, off: usize, m: XaMark) -> bool {
        self.mark_bits(m) & (1 << off) != 0
    }
    /// Highest valid slot + 1 (the top node at shift 60 uses 16 slots on 64-bit).
    #[inline(always)]
    fn nr_slots(&self) -> usize {
        nr_slots(self.shift as u32)
    }
}

#[inline(always)]
const fn nr_slots(shift: u32) -> usize {
    if shift + XA_CHUNK_SHIFT > usize::BITS {
        (usize::MAX >> shift) + 1
    } else {
        XA_CHUNK_SIZE
    }
}

/// Largest index a top node of `shift` covers.
#[inline(always)]
const fn top_max(shift: u32) -> usize {
    if shift + XA_CHUNK_SHIFT >= usize::BITS {
        usize::MAX
    } else {
        (XA_CHUNK_SIZE << shift) - 1
    }
}

#[inline(always)]
fn to_node(e: usize) -> *mut XaNode {
    (e - 2) as *mut XaNode
}

#[inline(always)]
fn mk_node(n: *mut XaNode) -> usize {
    n as usize | 2
}

/// Writer-only state, behind the array's spinlock.
struct WriterState {
    retired: *mut XaNode,
    reserve: *mut XaNode,
    nr_reserve: usize,
    /// `XA_FLAGS_ALLOC_WRAPPED`.
    wrapped: bool,
    /// Allocate only from the reserve (the `idr_get_new` compatibility path).
    reserve_only: bool,
}

/// The XArray: see the [module documentation](self).
pub struct XArray<A: NodeAlloc> {
    lock: AtomicBool,
    head: AtomicUsize,
    /// `xa_flags` marks: mark `m` of the head entry / of anything in the tree.
    head_marks: AtomicU8,
    readers: AtomicUsize,
    flags: XaFlags,
    w: UnsafeCell<WriterState>,
    alloc: A,
}

// SAFETY: entries are plain words owned by the user; all writer state is behind the lock and
// readers only use atomics on nodes that stay allocated while they are inside (see the module
// docs). `A` is used from any thread holding the lock or dropping the array.
unsafe impl<A: NodeAlloc + Send> Send for XArray<A> {}
// SAFETY: as above; `&XArray` allows concurrent readers and lock-serialised writers.
unsafe impl<A: NodeAlloc + Send + Sync> Sync for XArray<A> {}

/// Where a store goes: a slot run in a node, or the head.
#[derive(Clone, Copy)]
struct Pos {
    node: *mut XaNode,
    off: usize,
    sibs: usize,
}

/// A search result.
#[derive(Clone, Copy, Debug)]
struct Found {
    /// `max(start, first)`.
    index: usize,
    entry: usize,
    /// First and last index of the (possibly multi-index) entry.
    first: usize,
    last: usize,
}

enum Search {
    Found(Found),
    NotFound,
    Retry,
}

impl<A: NodeAlloc> XArray<A> {
    /// `xa_init`: returns an empty array allocating nodes from `alloc`.
    pub const fn new_in(alloc: A) -> Self {
        Self::with_flags(alloc, XaFlags::NONE)
    }

    /// `xa_init_flags`: returns an empty array with `flags` (e.g. `DEFINE_XARRAY_ALLOC`).
    pub const fn with_flags(alloc: A, flags: XaFlags) -> Self {
        XArray {
            lock: AtomicBool::new(false),
            head: AtomicUsize::new(0),
            head_marks: AtomicU8::new(0),
            readers: AtomicUsize::new(0),
            flags,
            w: UnsafeCell::new(WriterState {
                retired: ptr::null_mut(),
                reserve: ptr::null_mut(),
                nr_reserve: 0,
                wrapped: false,
                reserve_only: false,
            }),
            alloc,
        }
    }

    /// Returns the array's flags.
    pub fn flags(&self) -> XaFlags {
        self.flags
    }

    /// Returns the node allocator.
    pub fn allocator(&self) -> &A {
        &self.alloc
    }

    /// `xa_lock`: takes the writer lock; the guard offers the `__xa_*` operations, so several
    /// can be done atomically with respect to other writers.
    pub fn lock(&self) -> XaLockGuard<'_, A> {
        while self
            .lock
            .compare_exchange_weak(false, true, Acquire, Relaxed)
            .is_err()
        {
            while self.lock.load(Relaxed) {
                core::hint::spin_loop();
            }
        }
        XaLockGuard { xa: self }
    }

    /// Enters a read-side section (the `rcu_read_lock` of this array): nodes seen through the
    /// guard are not freed until it is dropped.
    pub fn read(&self) -> XaReadGuard<'_, A> {
        self.readers.fetch_add(1, Acquire);
        XaReadGuard { xa: self }
    }

    /// `xa_empty`: returns true if no entry (not even a reserved one) is present.
    pub fn is_empty(&self) -> bool {
        self.head.load(Acquire) == 0
    }

    /// `xa_load`: returns the entry at `index` (`None` if empty or reserved).
    #[inline]
    pub fn load(&self, index: usize) -> Option<XaEntry> {
        self.read().load(index)
    }

    /// `xa_get_mark`: returns true if the entry at `index` has mark `mark`.
    pub fn get_mark(&self, index: usize, mark: XaMark) -> bool {
        self.read().get_mark(index, mark)
    }

    /// `xa_get_order`: returns the order of the entry at `index` (0 if empty).
    pub fn get_order(&self, index: usize) -> u32 {
        self.read().get_order(index)
    }

    /// `xa_find`: returns the first entry matching `filter` at an index in `*index..=max`,
    /// updating `*index` to its index. Reserved entries are skipped.
    pub fn find(&self, index: &mut usize, max: usize, filter: XaFilter) -> Option<XaEntry> {
        self.read().find(index, max, filter)
    }

    /// `xa_find_after`: as [`XArray::find`], for the first entry *after* `*index` (after the
    /// whole multi-index entry containing `*index`); never wraps past `usize::MAX`.
    pub fn find_after(&self, index: &mut usize, max: usize, filter: XaFilter) -> Option<XaEntry> {
        self.read().find_after(index, max, filter)
    }

    /// `xa_for_each`: iterates over present entries in index order, yielding `(index, entry)`.
    /// A multi-index entry is yielded once, at its first index. The iteration takes a read
    /// section per step, so concurrent stores may or may not be seen.
    pub fn iter(&self) -> XaIter<'_, A> {
        self.iter_range(0, usize::MAX)
    }

    /// `xa_for_each_start`.
    pub fn iter_start(&self, start: usize) -> XaIter<'_, A> {
        self.iter_range(start, usize::MAX)
    }

    /// `xa_for_each_range`: entries at indices `start..=last`.
    pub fn iter_range(&self, start: usize, last: usize) -> XaIter<'_, A> {
        XaIter {
            xa: self,
            index: start,
            max: last,
            filter: XaFilter::Present,
            started: false,
            done: false,
        }
    }

    /// `xa_for_each_marked`.
    pub fn iter_marked(&self, mark: XaMark) -> XaIter<'_, A> {
        XaIter {
            xa: self,
            index: 0,
            max: usize::MAX,
            filter: XaFilter::Marked(mark),
            started: false,
            done: false,
        }
    }

    /// `xa_store`: stores `entry` at `index` (`None` erases; in an allocating array `None`
    /// reserves). Returns the previous entry. Marks are kept unless the entry is erased.
    /// Storing into part of a multi-index entry replaces it for all its indices.
    ///
    /// # Errors
    /// [`Error::ENOMEM`] (no node), [`Error::EINVAL`] (`entry` is [`XA_ZERO_ENTRY`]).
    pub fn store(&self, index: usize, entry: Option<XaEntry>, gfp: Gfp) -> Result<Option<XaEntry>> {
        self.lock().store(index, entry, gfp)
    }

    /// `xa_erase`: removes the entry at `index` (all of a multi-index entry); returns it.
    pub fn erase(&self, index: usize) -> Option<XaEntry> {
        self.lock().erase(index)
    }

    /// `xa_insert`: stores `entry` only if `index` is empty (`None` reserves the slot).
    ///
    /// # Errors
    /// [`Error::EBUSY`] if occupied or reserved, [`Error::ENOMEM`], [`Error::EINVAL`].
    pub fn insert(&self, index: usize, entry: Option<XaEntry>, gfp: Gfp) -> Result<()> {
        self.lock().insert(index, entry, gfp)
    }

    /// `xa_cmpxchg`: stores `new` if the entry at `index` is `old` (compared raw: a reserved
    /// slot matches [`XA_ZERO_ENTRY`], not `None`); returns the entry that was there.
    ///
    /// # Errors
    /// [`Error::ENOMEM`], [`Error::EINVAL`] (`new` is internal).
    pub fn cmpxchg(
        &self,
        index: usize,
        old: Option<XaEntry>,
        new: Option<XaEntry>,
        gfp: Gfp,
    ) -> Result<Option<XaEntry>> {
        self.lock().cmpxchg(index, old, new, gfp)
    }

    /// `xa_reserve`: reserves `index` if empty: it reads as empty but `xa_insert` sees it busy.
    ///
    /// # Errors
    /// [`Error::ENOMEM`].
    pub fn reserve(&self, index: usize, gfp: Gfp) -> Result<()> {
        self.lock().reserve(index, gfp)
    }

    /// `xa_release`: drops the reservation of `index` if it is still reserved.
    pub fn release(&self, index: usize) {
        self.lock().release(index)
    }

    /// `xa_store_range`: stores `entry` at every index of `first..=last` using multi-index
    /// entries (`None` erases the range).
    ///
    /// # Errors
    /// [`Error::EINVAL`] if `last < first` or `entry` is internal; [`Error::ENOMEM`] (the
    /// part of the range stored before the failure stays stored).
    pub fn store_range(
        &self,
        first: usize,
        last: usize,
        entry: Option<XaEntry>,
        gfp: Gfp,
    ) -> Result<()> {
        self.lock().store_range(first, last, entry, gfp)
    }

    /// Stores a multi-index entry of `order` (covering `2^order` aligned indices around
    /// `index`), like `xas_store` with `XA_STATE_ORDER`; returns the previous entry at the
    /// canonical slot.
    ///
    /// # Errors
    /// [`Error::ENOMEM`], [`Error::EINVAL`].
    ///
    /// # Panics
    /// If `order >= usize::BITS`.
    pub fn store_order(
        &self,
        index: usize,
        order: u32,
        entry: Option<XaEntry>,
        gfp: Gfp,
    ) -> Result<Option<XaEntry>> {
        self.lock().store_order(index, order, entry, gfp)
    }

    /// `xa_set_mark`: sets `mark` on the entry at `index` (nothing if empty).
    pub fn set_mark(&self, index: usize, mark: XaMark) {
        self.lock().set_mark(index, mark)
    }

    /// `xa_clear_mark`.
    pub fn clear_mark(&self, index: usize, mark: XaMark) {
        self.lock().clear_mark(index, mark)
    }

    /// `xa_alloc`: stores `entry` at the lowest free index in `limit`; returns the index.
    ///
    /// # Errors
    /// [`Error::EBUSY`] if `limit` has no free index, [`Error::ENOMEM`], [`Error::EINVAL`]
    /// (not an allocating array, or `entry` internal).
    pub fn alloc(&self, entry: Option<XaEntry>, limit: XaLimit, gfp: Gfp) -> Result<u32> {
        self.lock().alloc(entry, limit, gfp)
    }

    /// `xa_alloc_cyclic`: allocates the lowest free id at or after `*next` in `limit`, wrapping
    /// to `limit.min` if needed; updates `*next`. Returns `(id, wrapped)` where `wrapped` is
    /// Linux's return value 1.
    ///
    /// # Errors
    /// As [`XArray::alloc`].
    pub fn alloc_cyclic(
        &self,
        entry: Option<XaEntry>,
        limit: XaLimit,
        next: &mut u32,
        gfp: Gfp,
    ) -> Result<(u32, bool)> {
        self.lock().alloc_cyclic(entry, limit, next, gfp)
    }

    /// `xa_destroy`: removes every entry and frees (or retires) every node.
    pub fn destroy(&self) {
        self.lock().destroy()
    }

    /// Fills the node reserve (`idr_preload` / `radix_tree_preload`) so that the next stores do
    /// not need the allocator.
    ///
    /// # Errors
    /// [`Error::ENOMEM`] if the reserve could not be filled (what was obtained is kept).
    pub fn preload(&self, gfp: Gfp) -> Result<()> {
        self.lock().preload(gfp)
    }

    /// Frees retired nodes now; `&mut self` proves no reader is inside.
    pub fn reclaim(&mut self) {
        let w = self.w.get_mut();
        let mut n = core::mem::replace(&mut w.retired, ptr::null_mut());
        while !n.is_null() {
            // SAFETY: retired nodes are allocated blocks owned by the retired list; no reader
            // can hold them (we have `&mut self`).
            unsafe {
                let next = (*n).next_free.load(Relaxed);
                self.alloc
                    .free(NonNull::new_unchecked(n.cast()), NODE_LAYOUT);
                n = next;
            }
        }
    }

    /// Checks the structural invariants (see the module docs); returns the number of nodes.
    ///
    /// # Errors
    /// A description of the first violation.
    pub fn check(&self) -> core::result::Result<usize, &'static str> {
        let g = self.lock();
        g.check(false)
    }

    /// [`XArray::check`] for IDA arrays, where `XA_FREE_MARK` may also mark present entries
    /// (bitmaps with room).
    pub(crate) fn check_free_on_present(&self) -> core::result::Result<usize, &'static str> {
        let g = self.lock();
        g.check(true)
    }
}

impl<A: NodeAlloc> Drop for XArray<A> {
    fn drop(&mut self) {
        let head = *self.head.get_mut();
        if is_node(head) {
            // SAFETY: `&mut self`: the tree is ours alone; each node is freed once, children
            // before parents.
            unsafe { free_tree(&self.alloc, to_node(head)) };
        }
        self.reclaim();
        let w = self.w.get_mut();
        let mut n = core::mem::replace(&mut w.reserve, ptr::null_mut());
        while !n.is_null() {
            // SAFETY: reserve nodes are allocated blocks owned by the list.
            unsafe {
                let next = (*n).next_free.load(Relaxed);
                self.alloc
                    .free(NonNull::new_unchecked(n.cast()), NODE_LAYOUT);
                n = next;
            }
        }
    }
}

/// Frees a subtree immediately (only with exclusive access).
///
/// # Safety
/// `top` and its descendants are valid nodes nobody else can reach.
unsafe fn free_tree<A: NodeAlloc>(alloc: &A, top: *mut XaNode) {
    // SAFETY: the caller guarantees exclusive ownership of the subtree.
    unsafe {
        let mut node = top;
        let mut off = 0;
        loop {
            if off < (*node).nr_slots() {
                let e = (*node).slots[off].load(Relaxed);
                if is_node(e) && (*node).shift > 0 {
                    // Detach so that we do not descend again after freeing.
                    (*node).slots[off].store(0, Relaxed);
                    node = to_node(e);
                    off = 0;
                    continue;
                }
                off += 1;
                continue;
            }
            let parent = (*node).parent.load(Relaxed);
            let poff = (*node).offset.load(Relaxed) as usize;
            alloc.free(NonNull::new_unchecked(node.cast()), NODE_LAYOUT);
            if node == top {
                return;
            }
            node = parent;
            off = poff + 1;
        }
    }
}

/// A read-side section; see [`XArray::read`].
pub struct XaReadGuard<'a, A: NodeAlloc> {
    xa: &'a XArray<A>,
}

impl<A: NodeAlloc> Drop for XaReadGuard<'_, A> {
    fn drop(&mut self) {
        self.xa.readers.fetch_sub(1, Release);
    }
}

impl<A: NodeAlloc> XaReadGuard<'_, A> {
    /// Walks to `index`; returns the raw entry (may be `ZERO`).
    #[inline]
    fn load_raw(&self, index: usize) -> usize {
        'restart: loop {
            let head = self.xa.head.load(Acquire);
            if !is_node(head) {
                return if index == 0 { head } else { 0 };
            }
            // SAFETY: nodes reachable from the head stay allocated while we are a reader.
            let mut node = unsafe { &*to_node(head) };
            if index > top_max(node.shift as u32) {
                return 0;
            }
            loop {
                let off = (index >> node.shift) & XA_CHUNK_MASK;
                let mut e = node.slot(off);
                if is_sibling(e) {
                    e = node.slot(to_sibling(e));
                    if is_node(e) {
                        continue 'restart;
                    }
                }
                if is_node(e) && node.shift > 0 {
                    // SAFETY: as above.
                    node = unsafe { &*to_node(e) };
                    continue;
                }
                if e == RETRY {
                    continue 'restart;
                }
                return e;
            }
        }
    }

    /// `xa_load` inside this read section.
    #[inline]
    pub fn load(&self, index: usize) -> Option<XaEntry> {
        to_opt(self.load_raw(index))
    }

    /// `xa_get_mark` inside this read section.
    pub fn get_mark(&self, index: usize, mark: XaMark) -> bool {
        let head = self.xa.head.load(Acquire);
        if !is_node(head) {
            return index == 0
                && head != 0
                && self.xa.head_marks.load(Acquire) & (1 << mark.0) != 0;
        }
        // SAFETY: reachable nodes stay allocated while we are a reader.
        let mut node = unsafe { &*to_node(head) };
        if index > top_max(node.shift as u32) {
            return false;
        }
        loop {
            let mut off = (index >> node.shift) & XA_CHUNK_MASK;
            let mut e = node.slot(off);
            if is_sibling(e) {
                off = to_sibling(e);
                e = node.slot(off);
            }
            if !node.get_mark(off, mark) {
                return false;
            }
            if is_node(e) && node.shift > 0 {
                // SAFETY: as above.
                node = unsafe { &*to_node(e) };
                continue;
            }
            return e != 0;
        }
    }

    /// `xa_get_order` inside this read section.
    pub fn get_order(&self, index: usize) -> u32 {
        let head = self.xa.head.load(Acquire);
        if !is_node(head) {
            return 0;
        }
        // SAFETY: reachable nodes stay allocated while we are a reader.
        let mut node = unsafe { &*to_node(head) };
        if index > top_max(node.shift as u32) {
            return 0;
        }
        loop {
            let mut off = (index >> node.shift) & XA_CHUNK_MASK;
            let mut e = node.slot(off);
            if is_sibling(e) {
                off = to_sibling(e);
                e = node.slot(off);
            }
            if is_node(e) && node.shift > 0 {
                // SAFETY: as above.
                node = unsafe { &*to_node(e) };
                continue;
            }
            if e == 0 {
                return 0;
            }
            let mut sibs = 0;
            while off + 1 + sibs < node.nr_slots() && node.slot(off + 1 + sibs) == mk_sibling(off) {
                sibs += 1;
            }
            return node.shift as u32 + (sibs + 1).ilog2();
        }
    }

    fn search(&self, start: usize, max: usize, filter: XaFilter) -> Option<Found> {
        loop {
            match search_from(
                &self.xa.head,
                &self.xa.head_marks,
                start,
                max,
                filter,
                false,
            ) {
                Search::Found(f) => return Some(f),
                Search::NotFound => return None,
                Search::Retry => continue,
            }
        }
    }

    /// `xa_find` inside this read section.
    pub fn find(&self, index: &mut usize, max: usize, filter: XaFilter) -> Option<XaEntry> {
        if *index > max {
            return None;
        }
        let f = self.search(*index, max, filter)?;
        *index = f.index;
        to_opt(f.entry)
    }

    /// `xa_find_after` inside this read section.
    pub fn find_after(&self, index: &mut usize, max: usize, filter: XaFilter) -> Option<XaEntry> {
        let mut from = *index;
        loop {
            if from == usize::MAX || from >= max {
                return None;
            }
            let f = self.search(from + 1, max, filter)?;
            if f.first <= *index {
                // The multi-index entry containing `*index`: skip past its end.
                from = f.last;
                continue;
            }
            *index = f.index;
            return to_opt(f.entry);
        }
    }
}

/// Searches the tree for the first match at an index in `start..=max`.
fn search_from(
    head: &AtomicUsize,
    head_marks: &AtomicU8,
    start: usize,
    max: usize,
    filter: XaFilter,
    match_null: bool,
) -> Search {
    let h = head.load(Acquire);
    if h == 0 {
        return Search::NotFound;
    }
    if !is_node(h) {
        if start != 0 {
            return Search::NotFound;
        }
        let ok = match filter {
            XaFilter::Present => h != ZERO,
            XaFilter::Marked(m) => {
                head_marks.load(Acquire) & (1 << m.0) != 0 && (h != ZERO || match_null)
            }
        };
        return if ok {
            Search::Found(Found {
                index: 0,
                entry: h,
                first: 0,
                last: 0,
            })
        } else {
            Search::NotFound
        };
    }
    // SAFETY: the caller is a reader or the writer; reachable nodes stay allocated.
    let node = unsafe { &*to_node(h) };
    if start > top_max(node.shift as u32) {
        return Search::NotFound;
    }
    search_node(node, 0, start, max, filter, match_null)
}

fn search_node(
    node: &XaNode,
    base: usize,
    start: usize,
    max: usize,
    filter: XaFilter,
    match_null: bool,
) -> Search {
    let shift = node.shift as u32;
    let nr = node.nr_slots();
    let mut off = if start > base {
        (start - base) >> shift
    } else {
        0
    };
    let mut first_slot = start > base;
    while off < nr {
        let slot_base = base + (off << shift);
        if slot_base > max {
            return Search::NotFound;
        }
        let mut canon = off;
        let mut e = node.slot(off);
        if is_sibling(e) {
            if !first_slot {
                off += 1;
                continue;
            }
            canon = to_sibling(e);
            e = node.slot(canon);
            if is_node(e) {
                return Search::Retry;
            }
        }
        if let XaFilter::Marked(m) = filter {
            if !node.get_mark(canon, m) {
                // Jump to the next marked slot.
                let bits = node.mark_bits(m) & (!0u64).checked_shl(off as u32 + 1).unwrap_or(0);
                if bits == 0 {
                    return Search::NotFound;
                }
                off = bits.trailing_zeros() as usize;
                first_slot = false;
                continue;
            }
        }
        first_slot = false;
        if e == RETRY {
            return Search::Retry;
        }
        if is_node(e) && shift > 0 {
            // SAFETY: reachable nodes stay allocated for readers and the writer.
            let child = unsafe { &*to_node(e) };
            match search_node(
                child,
                slot_base,
                start.max(slot_base),
                max,
                filter,
                match_null,
            ) {
                Search::NotFound => {
                    off += 1;
                    continue;
                }
                r => return r,
            }
        }
        if (e == 0 || e == ZERO) && !match_null {
            off += 1;
            continue;
        }
        let mut sibs = 0;
        while canon + 1 + sibs < nr && node.slot(canon + 1 + sibs) == mk_sibling(canon) {
            sibs += 1;
        }
        let first = base + (canon << shift);
        let span = ((sibs as u128 + 1) << shift) - 1;
        let last = (first as u128 + span).min(usize::MAX as u128) as usize;
        return Search::Found(Found {
            index: start.max(first),
            entry: e,
            first,
            last,
        });
    }
    Search::NotFound
}

/// An iterator over an [`XArray`] (`xa_for_each*`).
pub struct XaIter<'a, A: NodeAlloc> {
    xa: &'a XArray<A>,
    index: usize,
    max: usize,
    filter: XaFilter,
    started: bool,
    done: bool,
}

impl<A: NodeAlloc> Iterator for XaIter<'_, A> {
    type Item = (usize, XaEntry);
    fn next(&mut self) -> Option<(usize, XaEntry)> {
        if self.done {
            return None;
        }
        let r = if self.started {
            self.xa.find_after(&mut self.index, self.max, self.filter)
        } else {
            self.started = true;
            self.xa.find(&mut self.index, self.max, self.filter)
        };
        match r {
            Some(e) => Some((self.index, e)),
            None => {
                self.done = true;
                None
            }
        }
    }
}

/// The writer lock of an [`XArray`], with the locked (`__xa_*`) operations.
pub struct XaLockGuard<'a, A: NodeAlloc> {
    xa: &'a XArray<A>,
}

impl<A: NodeAlloc> Drop for XaLockGuard<'_, A> {
    fn drop(&mut self) {
        self.reclaim_if_quiescent();
        self.xa.lock.store(false, Release);
    }
}

impl<'a, A: NodeAlloc> XaLockGuard<'a, A> {
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    fn w(&self) -> &mut WriterState {
        // SAFETY: the writer state is only accessed with the lock held, which this guard
        // proves, and never across a call that could re-enter (no callbacks under the lock).
        unsafe { &mut *self.xa.w.get() }
    }

    #[inline(always)]
    fn head(&self) -> usize {
        self.xa.head.load(Relaxed)
    }

    #[inline(always)]
    fn track_free(&self) -> bool {
        self.xa.flags.track_free()
    }

    fn reclaim_if_quiescent(&self) {
        let w = self.w();
        if w.retired.is_null() {
            return;
        }
        // An RMW on the reader count: readers entering later synchronise with it and cannot
        // see the retired nodes; readers that left released their reads to it.
        if self
            .xa
            .readers
            .compare_exchange(0, 0, AcqRel, Acquire)
            .is_err()
        {
            return;
        }
        let mut n = core::mem::replace(&mut w.retired, ptr::null_mut());
        while !n.is_null() {
            // SAFETY: retired nodes are unreachable and no reader is inside (checked above).
            unsafe {
                let next = (*n).next_free.load(Relaxed);
                self.xa
                    .alloc
                    .free(NonNull::new_unchecked(n.cast()), NODE_LAYOUT);
                n = next;
            }
        }
    }

    /// Returns the number of nodes waiting for readers to leave.
    pub fn retired_nodes(&self) -> usize {
        let mut n = self.w().retired;
        let mut c = 0;
        while !n.is_null() {
            c += 1;
            // SAFETY: retired nodes stay allocated until reclaimed under this lock.
            n = unsafe { (*n).next_free.load(Relaxed) };
        }
        c
    }

    // -- nodes -----------------------------------------------------------------------------

    fn alloc_node(
        &self,
        shift: u32,
        parent: *mut XaNode,
        offset: usize,
        gfp: Gfp,
    ) -> Result<*mut XaNode> {
        let w = self.w();
        let p = if !w.reserve.is_null() {
            let p = w.reserve;
            // SAFETY: reserve nodes are allocated blocks linked through `next_free`.
            w.reserve = unsafe { (*p).next_free.load(Relaxed) };
            w.nr_reserve -= 1;
            p
        } else if w.reserve_only {
            return Err(Error::EAGAIN);
        } else {
            self.xa
                .alloc
                .alloc(NODE_LAYOUT, gfp)
                .ok_or(Error::ENOMEM)?
                .cast::<XaNode>()
                .as_ptr()
        };
        let free = if self.track_free() { u64::MAX } else { 0 };
        // SAFETY: `p` is an allocated block of the node layout, exclusively ours.
        unsafe {
            p.write(XaNode {
                shift: shift as u8,
                offset: AtomicU8::new(offset as u8),
                count: AtomicU8::new(0),
                parent: AtomicPtr::new(parent),
                next_free: AtomicPtr::new(ptr::null_mut()),
                marks: [AtomicU64::new(free), AtomicU64::new(0), AtomicU64::new(0)],
                slots: [const { AtomicUsize::new(0) }; XA_CHUNK_SIZE],
            });
        }
        Ok(p)
    }

    fn preload(&self, gfp: Gfp) -> Result<()> {
        let w = self.w();
        while w.nr_reserve < XA_PRELOAD_NODES {
            let p = self
                .xa
                .alloc
                .alloc(NODE_LAYOUT, gfp)
                .ok_or(Error::ENOMEM)?
                .cast::<XaNode>()
                .as_ptr();
            // SAFETY: a fresh block; only its link field is initialised until it is used.
            unsafe { ptr::addr_of_mut!((*p).next_free).write(AtomicPtr::new(w.reserve)) };
            w.reserve = p;
            w.nr_reserve += 1;
        }
        Ok(())
    }

    /// Returns the number of preloaded nodes.
    pub fn preloaded(&self) -> usize {
        self.w().nr_reserve
    }

    /// Makes node allocation fail with `EAGAIN` instead of calling the allocator (the
    /// `idr_get_new` compatibility path); returns the previous setting.
    pub(crate) fn set_reserve_only(&self, on: bool) -> bool {
        core::mem::replace(&mut self.w().reserve_only, on)
    }

    fn retire(&self, node: *mut XaNode) {
        let w = self.w();
        // SAFETY: `node` was just unlinked and is ours to queue.
        unsafe { (*node).next_free.store(w.retired, Relaxed) };
        w.retired = node;
    }

    /// `xas_free_nodes`: retires a detached subtree, replacing its entries with retry entries
    /// so that readers inside it restart.
    fn free_nodes(&self, top: *mut XaNode) {
        let mut node = top;
        let mut off = 0;
        // SAFETY: the subtree was detached under the lock; nodes stay allocated (retired).
        unsafe {
            loop {
                let n = &*node;
                if off < n.nr_slots() {
                    let e = n.slots[off].load(Relaxed);
                    if is_node(e) && n.shift > 0 {
                        node = to_node(e);
                        off = 0;
                        continue;
                    }
                    if e != 0 {
                        n.slots[off].store(RETRY, Release);
                    }
                    off += 1;
                    continue;
                }
                let parent = n.parent.load(Relaxed);
                let poff = n.offset.load(Relaxed) as usize;
                n.count.store(0, Relaxed);
                self.retire(node);
                if node == top {
                    return;
                }
                node = parent;
                off = poff + 1;
            }
        }
    }

    // -- marks -----------------------------------------------------------------------------

    fn set_head_mark(&self, m: XaMark, on: bool) {
        if on {
            self.xa.head_marks.fetch_or(1 << m.0, Release);
        } else {
            self.xa.head_marks.fetch_and(!(1 << m.0), Release);
        }
    }

    /// `xas_set_mark` at `(node, off)`, propagating up.
    fn set_mark_at(&self, mut node: *mut XaNode, mut off: usize, m: XaMark) {
        while !node.is_null() {
            // SAFETY: `node` is a live node of the tree (writer).
            let n = unsafe { &*node };
            let bit = 1u64 << off;
            if n.marks[m.0 as usize].fetch_or(bit, Release) & bit != 0 {
                return;
            }
            off = n.offset.load(Relaxed) as usize;
            node = n.parent.load(Relaxed);
        }
        self.set_head_mark(m, true);
    }

    /// `xas_clear_mark` at `(node, off)`, propagating up while a node becomes unmarked.
    fn clear_mark_at(&self, mut node: *mut XaNode, mut off: usize, m: XaMark) {
        while !node.is_null() {
            // SAFETY: `node` is a live node of the tree (writer).
            let n = unsafe { &*node };
            let bit = 1u64 << off;
            let old = n.marks[m.0 as usize].fetch_and(!bit, Release);
            if old & bit == 0 || old & !bit != 0 {
                return;
            }
            off = n.offset.load(Relaxed) as usize;
            node = n.parent.load(Relaxed);
        }
        self.set_head_mark(m, false);
    }

    /// `xas_init_marks`: clears every mark of the slot (sets `XA_FREE_MARK` if tracking).
    fn init_marks(&self, node: *mut XaNode, off: usize) {
        for m in 0..XA_MAX_MARKS as u8 {
            if node.is_null() {
                self.set_head_mark(XaMark(m), false);
            } else if m == 0 && self.track_free() {
                self.set_mark_at(node, off, XaMark(m));
            } else {
                self.clear_mark_at(node, off, XaMark(m));
            }
        }
    }

    /// `xas_squash_marks`: moves the marks of the slots `off+1..=off+sibs` onto `off`.
    fn squash_marks(&self, node: *mut XaNode, off: usize, sibs: usize) {
        // SAFETY: a live node of the tree.
        let n = unsafe { &*node };
        let range = (((1u128 << (sibs + 1)) - 1) as u64) << off;
        for m in 0..XA_MAX_MARKS {
            let old = n.marks[m].load(Relaxed);
            if old & range & !(1 << off) != 0 {
                n.marks[m].store((old & !range) | (1 << off), Release);
            }
        }
    }

    // -- tree shape ------------------------------------------------------------------------

    /// `xas_shrink`: moves a lone entry at slot 0 of the top node up into the head.
    fn shrink(&self) {
        loop {
            let head = self.head();
            if !is_node(head) {
                return;
            }
            let node = to_node(head);
            // SAFETY: the top node is live.
            let n = unsafe { &*node };
            if n.count() != 1 {
                return;
            }
            let e = n.slots[0].load(Relaxed);
            if e == 0 || (!is_node(e) && n.shift != 0) {
                return;
            }
            if is_node(e) {
                // SAFETY: a live child node.
                unsafe { (*to_node(e)).parent.store(ptr::null_mut(), Relaxed) };
            }
            let mut hm = 0u8;
            for m in 0..XA_MAX_MARKS {
                if n.marks[m].load(Relaxed) & 1 != 0 {
                    hm |= 1 << m;
                }
            }
            self.xa.head_marks.store(hm, Release);
            self.xa.head.store(e, Release);
            n.count.store(0, Relaxed);
            if !is_node(e) {
                n.slots[0].store(RETRY, Release);
            }
            self.retire(node);
        }
    }

    /// `xas_delete_node`: removes empty nodes from `node` upwards, then shrinks.
    fn delete_node(&self, mut node: *mut XaNode) {
        loop {
            // SAFETY: `node` is live (tree node).
            let n = unsafe { &*node };
            if n.count() != 0 {
                break;
            }
            let parent = n.parent.load(Relaxed);
            let off = n.offset.load(Relaxed) as usize;
            self.retire(node);
            if parent.is_null() {
                self.xa.head.store(0, Release);
                self.xa.head_marks.store(0, Release);
                return;
            }
            // SAFETY: `parent` is live.
            let p = unsafe { &*parent };
            p.slots[off].store(0, Release);
            p.add_count(-1);
            for m in 1..XA_MAX_MARKS as u8 {
                self.clear_mark_at(parent, off, XaMark(m));
            }
            if self.track_free() {
                self.set_mark_at(parent, off, XA_FREE_MARK);
            } else {
                self.clear_mark_at(parent, off, XaMark(0));
            }
            node = parent;
        }
        // SAFETY: `node` is live.
        if unsafe { (*node).parent.load(Relaxed) }.is_null() {
            self.shrink();
        }
    }

    /// Undoes a partial `create` after an allocation failure.
    fn rollback(&self, deepest: *mut XaNode) {
        if !deepest.is_null() {
            self.delete_node(deepest);
        }
        self.shrink();
    }

    /// `xas_expand`: adds levels on top until a top node of shift `>= shift` exists.
    fn expand(&self, shift: u32, gfp: Gfp) -> Result<()> {
        let mut head = self.head();
        if head == 0 {
            return Ok(());
        }
        let mut cur = if is_node(head) {
            // SAFETY: the top node is live.
            unsafe { (*to_node(head)).shift as u32 }
        } else {
            // A single entry at index 0 goes into slot 0 of a new leaf.
            let node = self.alloc_node(0, ptr::null_mut(), 0, gfp)?;
            self.adopt_head(node, head);
            head = self.head();
            0
        };
        while cur < shift {
            let node = match self.alloc_node(cur + XA_CHUNK_SHIFT, ptr::null_mut(), 0, gfp) {
                Ok(n) => n,
                Err(e) => {
                    self.shrink();
                    return Err(e);
                }
            };
            self.adopt_head(node, head);
            head = self.head();
            cur += XA_CHUNK_SHIFT;
        }
        Ok(())
    }

    /// Makes `node` the new top with the old head in slot 0.
    fn adopt_head(&self, node: *mut XaNode, head: usize) {
        // SAFETY: `node` is a fresh, unpublished node; `head` the current head.
        unsafe {
            let n = &*node;
            n.slots[0].store(head, Relaxed);
            n.count.store(1, Relaxed);
            let hm = self.xa.head_marks.load(Relaxed);
            for m in 1..XA_MAX_MARKS {
                if hm & (1 << m) != 0 {
                    n.marks[m].fetch_or(1, Relaxed);
                }
            }
            if self.track_free() {
                // Slot 0 is free only if the old top still has a free slot below it (or the
                // old head entry carried XA_FREE_MARK: an IDA bitmap with room).
                let old_has_free = if is_node(head) {
                    (*to_node(head)).marks[0].load(Relaxed) != 0
                } else {
                    hm & 1 != 0
                };
                if !old_has_free {
                    n.marks[0].fetch_and(!1, Relaxed);
                }
            } else if hm & 1 != 0 {
                n.marks[0].fetch_or(1, Relaxed);
            }
            if is_node(head) {
                let old = &*to_node(head);
                old.offset.store(0, Relaxed);
                old.parent.store(node, Relaxed);
            }
        }
        self.xa.head.store(mk_node(node), Release);
    }

    /// `xas_create`: makes sure a slot run for `(index, shift, sibs)` exists; returns it.
    fn create(&self, index: usize, shift: u32, sibs: usize, gfp: Gfp) -> Result<Pos> {
        let head = self.head();
        if shift == 0 && sibs == 0 && index == 0 && !is_node(head) {
            return Ok(Pos {
                node: ptr::null_mut(),
                off: 0,
                sibs: 0,
            });
        }
        // The top must have shift >= `shift` and cover `index`.
        let mut need = shift;
        while need + XA_CHUNK_SHIFT < usize::BITS && (index >> need) >= XA_CHUNK_SIZE {
            need += XA_CHUNK_SHIFT;
        }
        let mut node;
        let mut created: *mut XaNode = ptr::null_mut();
        if head == 0 {
            node = self.alloc_node(need, ptr::null_mut(), 0, gfp)?;
            created = node;
            self.xa.head.store(mk_node(node), Release);
        } else {
            self.expand(need, gfp)?;
            node = to_node(self.head());
        }
        loop {
            // SAFETY: `node` is live (tree node).
            let n = unsafe { &*node };
            let s = n.shift as u32;
            let off = (index >> s) & XA_CHUNK_MASK;
            if s == shift {
                return Ok(Pos { node, off, sibs });
            }
            let e = n.slots[off].load(Relaxed);
            if e == 0 {
                let child = match self.alloc_node(s - XA_CHUNK_SHIFT, node, off, gfp) {
                    Ok(c) => c,
                    Err(err) => {
                        self.rollback(created);
                        return Err(err);
                    }
                };
                n.add_count(1);
                n.slots[off].store(mk_node(child), Release);
                created = child;
                node = child;
                continue;
            }
            if is_sibling(e) {
                return Ok(Pos {
                    node,
                    off: to_sibling(e),
                    sibs: 0,
                });
            }
            if is_node(e) {
                node = to_node(e);
                continue;
            }
            // An entry above the target level (a larger multi-index entry): replace it.
            return Ok(Pos { node, off, sibs: 0 });
        }
    }

    /// `xas_load` for a store of NULL: the slot run for `(index, shift, sibs)` if it exists.
    fn locate(&self, index: usize, shift: u32, sibs: usize) -> Option<Pos> {
        let head = self.head();
        if !is_node(head) {
            return (index == 0 && head != 0).then_some(Pos {
                node: ptr::null_mut(),
                off: 0,
                sibs: 0,
            });
        }
        let mut node = to_node(head);
        // SAFETY: the top node is live.
        let top_shift = unsafe { (*node).shift } as u32;
        if index > top_max(top_shift) {
            return None;
        }
        if shift > top_shift {
            return Some(Pos {
                node: ptr::null_mut(),
                off: 0,
                sibs: 0,
            });
        }
        loop {
            // SAFETY: live tree node.
            let n = unsafe { &*node };
            let s = n.shift as u32;
            let mut off = (index >> s) & XA_CHUNK_MASK;
            if s == shift {
                return Some(Pos { node, off, sibs });
            }
            let mut e = n.slots[off].load(Relaxed);
            if is_sibling(e) {
                off = to_sibling(e);
                e = n.slots[off].load(Relaxed);
            }
            if is_node(e) {
                node = to_node(e);
                continue;
            }
            return Some(Pos { node, off, sibs: 0 });
        }
    }

    /// Walks to the entry at `index` under the lock: `(node, canonical offset, raw entry)`.
    fn walk(&self, index: usize) -> (*mut XaNode, usize, usize) {
        let head = self.head();
        if !is_node(head) {
            return (ptr::null_mut(), 0, if index == 0 { head } else { 0 });
        }
        let mut node = to_node(head);
        // SAFETY: live tree nodes.
        unsafe {
            if index > top_max((*node).shift as u32) {
                return (ptr::null_mut(), 0, 0);
            }
            loop {
                let n = &*node;
                let mut off = (index >> n.shift) & XA_CHUNK_MASK;
                let mut e = n.slots[off].load(Relaxed);
                if is_sibling(e) {
                    off = to_sibling(e);
                    e = n.slots[off].load(Relaxed);
                }
                if is_node(e) && n.shift > 0 {
                    node = to_node(e);
                    continue;
                }
                return (node, off, e);
            }
        }
    }

    /// The store loop of `xas_store` at `pos`; returns the old entry.
    fn store_at(&self, pos: Pos, mut entry: usize) -> usize {
        if pos.node.is_null() {
            let old = self.xa.head.swap(entry, AcqRel);
            if is_node(old) {
                self.free_nodes(to_node(old));
            }
            if entry == 0 {
                self.xa.head_marks.store(0, Release);
            }
            return old;
        }
        let node = pos.node;
        // SAFETY: live tree node (writer).
        let n = unsafe { &*node };
        let mut off = pos.off;
        let mut first = n.slots[off].load(Relaxed);
        if is_sibling(first) {
            off = to_sibling(first);
            first = n.slots[off].load(Relaxed);
        }
        let sibs = pos.sibs;
        if first == entry && sibs == 0 {
            return first;
        }
        let canon = off;
        let max = off + sibs;
        if sibs > 0 {
            self.squash_marks(node, off, sibs);
        }
        if entry == 0 {
            self.init_marks(node, off);
        }
        let mut next = first;
        let mut delta: isize = 0;
        let last = n.nr_slots() - 1;
        loop {
            n.slots[off].store(entry, Release);
            if is_node(next) && n.shift > 0 {
                self.free_nodes(to_node(next));
            }
            delta += (next == 0) as isize - (entry == 0) as isize;
            if entry == 0 && self.track_free() {
                self.set_mark_at(node, off, XA_FREE_MARK);
            }
            if entry != 0 {
                if off == max {
                    break;
                }
                if !is_sibling(entry) {
                    entry = mk_sibling(canon);
                }
            } else if off == last {
                break;
            }
            off += 1;
            next = n.slots[off].load(Relaxed);
            if !is_sibling(next) {
                if entry == 0 && off > max {
                    break;
                }
                first = next;
            }
        }
        n.add_count(delta);
        if delta < 0 {
            self.delete_node(node);
        }
        first
    }

    /// The generic store: `(index, shift, sibs)` as set by `xas_set_order` / `xas_set_range`.
    fn store_raw(
        &self,
        index: usize,
        shift: u32,
        sibs: usize,
        entry: usize,
        gfp: Gfp,
    ) -> Result<usize> {
        let pos = if entry != 0 {
            self.create(index, shift, sibs, gfp)?
        } else {
            match self.locate(index, shift, sibs) {
                Some(p) => p,
                None => return Ok(0),
            }
        };
        // The canonical slot the store lands in (`store_at` redirects from a sibling).
        let canon = if pos.node.is_null() {
            0
        } else {
            // SAFETY: a live tree node (writer).
            let e = unsafe { (*pos.node).slots[pos.off].load(Relaxed) };
            if is_sibling(e) {
                to_sibling(e)
            } else {
                pos.off
            }
        };
        let old = self.store_at(pos, entry);
        if entry != 0 && self.track_free() {
            // The stored slot is no longer free (a non-NULL store never deletes nodes, so
            // `pos.node` is still live).
            if pos.node.is_null() {
                self.set_head_mark(XA_FREE_MARK, false);
            } else {
                self.clear_mark_at(pos.node, canon, XA_FREE_MARK);
            }
        }
        Ok(old)
    }

    fn check_entry(entry: Option<XaEntry>) -> Result<()> {
        match entry {
            Some(e) if e.is_internal() => Err(Error::EINVAL),
            _ => Ok(()),
        }
    }

    fn entry_for_store(&self, entry: Option<XaEntry>) -> usize {
        match entry {
            None if self.track_free() => ZERO,
            e => raw_of(e),
        }
    }

    // -- the locked operations --------------------------------------------------------------

    /// `xa_load` under the lock.
    pub fn load(&self, index: usize) -> Option<XaEntry> {
        to_opt(self.walk(index).2)
    }

    /// `__xa_store`; see [`XArray::store`].
    ///
    /// # Errors
    /// As [`XArray::store`].
    pub fn store(&self, index: usize, entry: Option<XaEntry>, gfp: Gfp) -> Result<Option<XaEntry>> {
        Self::check_entry(entry)?;
        let e = self.entry_for_store(entry);
        Ok(to_opt(self.store_raw(index, 0, 0, e, gfp)?))
    }

    /// `__xa_erase`; see [`XArray::erase`].
    pub fn erase(&self, index: usize) -> Option<XaEntry> {
        match self.store_raw(index, 0, 0, 0, Gfp::GFP_NOWAIT) {
            Ok(old) => to_opt(old),
            Err(_) => unreachable!("erasing never allocates"),
        }
    }

    /// `__xa_insert`; see [`XArray::insert`].
    ///
    /// # Errors
    /// As [`XArray::insert`].
    pub fn insert(&self, index: usize, entry: Option<XaEntry>, gfp: Gfp) -> Result<()> {
        Self::check_entry(entry)?;
        let e = if entry.is_none() { ZERO } else { raw_of(entry) };
        if self.walk(index).2 != 0 {
            return Err(Error::EBUSY);
        }
        self.store_raw(index, 0, 0, e, gfp)?;
        Ok(())
    }

    /// `__xa_cmpxchg`; see [`XArray::cmpxchg`].
    ///
    /// # Errors
    /// As [`XArray::cmpxchg`].
    pub fn cmpxchg(
        &self,
        index: usize,
        old: Option<XaEntry>,
        new: Option<XaEntry>,
        gfp: Gfp,
    ) -> Result<Option<XaEntry>> {
        Self::check_entry(new)?;
        let e = self.entry_for_store(new);
        let curr = self.walk(index).2;
        if curr == raw_of(old) {
            self.store_raw(index, 0, 0, e, gfp)?;
        }
        Ok(to_opt(curr))
    }

    /// `__xa_reserve`; see [`XArray::reserve`].
    ///
    /// # Errors
    /// As [`XArray::reserve`].
    pub fn reserve(&self, index: usize, gfp: Gfp) -> Result<()> {
        if self.walk(index).2 == 0 {
            self.store_raw(index, 0, 0, ZERO, gfp)?;
        }
        Ok(())
    }

    /// `__xa_release`-like: see [`XArray::release`].
    pub fn release(&self, index: usize) {
        if self.walk(index).2 == ZERO {
            let _ = self.store_raw(index, 0, 0, 0, Gfp::GFP_NOWAIT);
        }
    }

    /// See [`XArray::store_order`].
    ///
    /// # Errors
    /// As [`XArray::store_order`].
    ///
    /// # Panics
    /// If `order >= usize::BITS`.
    pub fn store_order(
        &self,
        index: usize,
        order: u32,
        entry: Option<XaEntry>,
        gfp: Gfp,
    ) -> Result<Option<XaEntry>> {
        assert!(order < usize::BITS, "order too large");
        Self::check_entry(entry)?;
        let index = (index >> order) << order;
        let shift = order - order % XA_CHUNK_SHIFT;
        let sibs = (1usize << (order % XA_CHUNK_SHIFT)) - 1;
        Ok(to_opt(self.store_raw(
            index,
            shift,
            sibs,
            raw_of(entry),
            gfp,
        )?))
    }

    /// See [`XArray::store_range`].
    ///
    /// # Errors
    /// As [`XArray::store_range`].
    pub fn store_range(
        &self,
        mut first: usize,
        last: usize,
        entry: Option<XaEntry>,
        gfp: Gfp,
    ) -> Result<()> {
        Self::check_entry(entry)?;
        if last < first {
            return Err(Error::EINVAL);
        }
        let e = raw_of(entry);
        loop {
            let (shift, sibs) = set_range(first, last);
            self.store_raw(first, shift, sibs, e, gfp)?;
            let next = first as u128 + ((sibs as u128 + 1) << shift);
            if next > last as u128 {
                return Ok(());
            }
            first = next as usize;
        }
    }

    /// `__xa_set_mark`; see [`XArray::set_mark`].
    pub fn set_mark(&self, index: usize, mark: XaMark) {
        let (node, off, e) = self.walk(index);
        if e == 0 {
            return;
        }
        if node.is_null() {
            self.set_head_mark(mark, true);
        } else {
            self.set_mark_at(node, off, mark);
        }
    }

    /// `__xa_clear_mark`; see [`XArray::clear_mark`].
    pub fn clear_mark(&self, index: usize, mark: XaMark) {
        let (node, off, e) = self.walk(index);
        if e == 0 {
            return;
        }
        if node.is_null() {
            self.set_head_mark(mark, false);
        } else {
            self.clear_mark_at(node, off, mark);
        }
    }

    /// The lowest free index in `min..=max` of an allocating array.
    fn find_free(&self, min: usize, max: usize) -> Option<usize> {
        let head = self.head();
        let cand = if head == 0 {
            min
        } else if !is_node(head) {
            if self.xa.head_marks.load(Relaxed) & 1 != 0 {
                min
            } else {
                min.max(1)
            }
        } else {
            // SAFETY: the top node is live.
            let top = unsafe { &*to_node(head) };
            let tmax = top_max(top.shift as u32);
            if min > tmax {
                min
            } else {
                match search_node(top, 0, min, max, XaFilter::Marked(XA_FREE_MARK), true) {
                    Search::Found(f) => f.index,
                    _ if tmax == usize::MAX => return None,
                    _ => min.max(tmax + 1),
                }
            }
        };
        (cand <= max).then_some(cand)
    }

    /// `__xa_alloc`; see [`XArray::alloc`].
    ///
    /// # Errors
    /// As [`XArray::alloc`].
    pub fn alloc(&self, entry: Option<XaEntry>, limit: XaLimit, gfp: Gfp) -> Result<u32> {
        Self::check_entry(entry)?;
        if !self.track_free() {
            return Err(Error::EINVAL);
        }
        let mut min = limit.min as usize;
        if self.xa.flags.zero_busy() {
            min = min.max(1);
        }
        let max = limit.max as usize;
        if min > max {
            return Err(Error::EBUSY);
        }
        let id = self.find_free(min, max).ok_or(Error::EBUSY)?;
        let e = if entry.is_none() { ZERO } else { raw_of(entry) };
        self.store_raw(id, 0, 0, e, gfp)?;
        Ok(id as u32)
    }

    /// `__xa_alloc_cyclic`; see [`XArray::alloc_cyclic`].
    ///
    /// # Errors
    /// As [`XArray::alloc`].
    pub fn alloc_cyclic(
        &self,
        entry: Option<XaEntry>,
        limit: XaLimit,
        next: &mut u32,
        gfp: Gfp,
    ) -> Result<(u32, bool)> {
        let min = limit.min;
        let lo = min.max(*next);
        let mut wrapped = false;
        let mut r = self.alloc(entry, XaLimit::new(lo, limit.max), gfp);
        if r.is_ok() && self.w().wrapped {
            self.w().wrapped = false;
            wrapped = true;
        }
        if r.is_err() && lo > min {
            r = self.alloc(entry, XaLimit::new(min, limit.max), gfp);
            wrapped = r.is_ok();
        }
        let id = r?;
        *next = id.wrapping_add(1);
        if *next == 0 {
            self.w().wrapped = true;
        }
        Ok((id, wrapped))
    }

    /// `xa_destroy` under the lock.
    pub fn destroy(&self) {
        let old = self.xa.head.swap(0, AcqRel);
        self.xa.head_marks.store(0, Release);
        if is_node(old) {
            self.free_nodes(to_node(old));
        }
    }

    /// `xas_find_marked(XA_FREE_MARK)`-style helper for the IDA: first index in `min..=max` whose
    /// slot is free or carries `XA_FREE_MARK`, with its entry.
    pub(crate) fn find_free_or_marked(
        &self,
        min: usize,
        max: usize,
    ) -> Option<(usize, Option<XaEntry>)> {
        let idx = self.find_free(min, max)?;
        Some((idx, XaEntry::from_raw(self.walk(idx).2)))
    }

    /// Returns true if `index` holds an entry, a reserved slot included (IDR: "allocated").
    pub fn is_occupied(&self, index: usize) -> bool {
        self.walk(index).2 != 0
    }

    /// The first present (non-reserved) entry at an index `>= start`, with its index.
    pub fn find_present(&self, start: usize) -> Option<(usize, XaEntry)> {
        match search_from(
            &self.xa.head,
            &self.xa.head_marks,
            start,
            usize::MAX,
            XA_PRESENT,
            false,
        ) {
            Search::Found(f) => Some((f.index, XaEntry::from_raw(f.entry)?)),
            _ => None,
        }
    }

    /// Returns whether `XA_FREE_MARK` is set on the entry at `index`.
    pub(crate) fn free_mark(&self, index: usize) -> bool {
        let (node, off, e) = self.walk(index);
        if e == 0 {
            return false;
        }
        if node.is_null() {
            return self.xa.head_marks.load(Relaxed) & 1 != 0;
        }
        // SAFETY: a live node under the lock.
        unsafe { (*node).get_mark(off, XA_FREE_MARK) }
    }

    /// Sets or clears `XA_FREE_MARK` on the present entry at `index` (IDA bitmaps).
    pub(crate) fn set_free_mark(&self, index: usize, free: bool) {
        let (node, off, e) = self.walk(index);
        if e == 0 {
            return;
        }
        if node.is_null() {
            self.set_head_mark(XA_FREE_MARK, free);
        } else if free {
            self.set_mark_at(node, off, XA_FREE_MARK);
        } else {
            self.clear_mark_at(node, off, XA_FREE_MARK);
        }
    }

    /// Checks the invariants; returns the number of nodes.
    fn check(&self, free_on_present: bool) -> core::result::Result<usize, &'static str> {
        let head = self.head();
        if !is_node(head) {
            return Ok(0);
        }
        let top = to_node(head);
        // SAFETY: live tree nodes under the lock.
        unsafe {
            if !(*top).parent.load(Relaxed).is_null() {
                return Err("top node has a parent");
            }
            let n = &*top;
            if n.count() == 0 {
                return Err("empty top node");
            }
            let e0 = n.slots[0].load(Relaxed);
            if n.count() == 1 && e0 != 0 && (is_node(e0) || n.shift == 0) {
                return Err("tree not shrunk");
            }
            let hm = self.xa.head_marks.load(Relaxed);
            for m in 1..XA_MAX_MARKS {
                if (n.marks[m].load(Relaxed) != 0) != (hm & (1 << m) != 0) {
                    return Err("head mark differs from top node marks");
                }
            }
            self.check_node(top, free_on_present)
        }
    }

    /// # Safety
    /// `node` is a live tree node; the lock is held.
    unsafe fn check_node(
        &self,
        node: *mut XaNode,
        free_on_present: bool,
    ) -> core::result::Result<usize, &'static str> {
        // SAFETY: the caller guarantees a live node.
        let n = unsafe { &*node };
        let mut nodes = 1;
        let mut count = 0;
        let nr = n.nr_slots();
        for off in 0..XA_CHUNK_SIZE {
            let e = n.slots[off].load(Relaxed);
            if off >= nr {
                if e != 0 {
                    return Err("entry beyond the index space");
                }
                continue;
            }
            if e != 0 {
                count += 1;
            }
            if e == RETRY {
                return Err("retry entry in a live node");
            }
            if is_sibling(e) {
                let c = to_sibling(e);
                if c >= off {
                    return Err("sibling points forward");
                }
                for between in c + 1..off {
                    if n.slots[between].load(Relaxed) != e {
                        return Err("sibling run broken");
                    }
                }
                let ce = n.slots[c].load(Relaxed);
                if ce == 0 || is_sibling(ce) || is_node(ce) {
                    return Err("sibling of a non-entry");
                }
                for m in 0..XA_MAX_MARKS {
                    if n.get_mark(off, XaMark(m as u8)) {
                        return Err("mark on a sibling slot");
                    }
                }
                continue;
            }
            if is_node(e) {
                if n.shift == 0 {
                    return Err("node below a leaf");
                }
                let c = to_node(e);
                // SAFETY: a live child.
                let cn = unsafe { &*c };
                if cn.parent.load(Relaxed) != node || cn.offset.load(Relaxed) as usize != off {
                    return Err("bad parent/offset");
                }
                if cn.shift + XA_CHUNK_SHIFT as u8 != n.shift {
                    return Err("bad child shift");
                }
                if cn.count() == 0 {
                    return Err("empty child node");
                }
                for m in 0..XA_MAX_MARKS {
                    let any = cn.marks[m].load(Relaxed) & mask(cn.nr_slots()) != 0;
                    if any != n.get_mark(off, XaMark(m as u8)) {
                        return Err("parent mark differs from child marks");
                    }
                }
                // SAFETY: a live child.
                nodes += unsafe { self.check_node(c, free_on_present)? };
                continue;
            }
            // An entry slot (or empty).
            for m in 0..XA_MAX_MARKS {
                let set = n.get_mark(off, XaMark(m as u8));
                if m == 0 && self.track_free() {
                    if set != (e == 0) && !(free_on_present && set) {
                        return Err("XA_FREE_MARK differs from emptiness");
                    }
                } else if set && e == 0 {
                    return Err("mark on an empty slot");
                }
            }
        }
        if count != n.count() {
            return Err("count differs from occupied slots");
        }
        Ok(nodes)
    }
}

const fn mask(nr: usize) -> u64 {
    if nr >= 64 {
        u64::MAX
    } else {
        (1u64 << nr) - 1
    }
}

/// `xas_set_range`: the `(shift, sibs)` of the largest entry starting at `first` that fits in
/// `first..=last`.
fn set_range(first: usize, last: usize) -> (u32, usize) {
    let mut shift = 0u32;
    let mut sibs = last - first;
    let mut offset = XA_CHUNK_MASK;
    let mut f = first;
    while f & XA_CHUNK_MASK == 0 {
        if sibs < XA_CHUNK_MASK {
            break;
        }
        if sibs == XA_CHUNK_MASK && offset < XA_CHUNK_MASK {
            break;
        }
        shift += XA_CHUNK_SHIFT;
        if offset == XA_CHUNK_MASK {
            offset = sibs & XA_CHUNK_MASK;
        }
        sibs >>= XA_CHUNK_SHIFT;
        f >>= XA_CHUNK_SHIFT;
        if shift + XA_CHUNK_SHIFT > usize::BITS {
            break;
        }
    }
    let offset = f & XA_CHUNK_MASK;
    let nr = nr_slots(shift);
    if offset + sibs > nr - 1 {
        sibs = nr - 1 - offset;
    }
    // if (((first + sibs + 1) << shift) - 1) > last: sibs -= 1
    let end = ((f as u128 + sibs as u128 + 1) << shift) - 1;
    if end > last as u128 {
        sibs -= 1;
    }
    (shift, sibs)
}

#[cfg(test)]
mod tests {
    use super::entry::*;
    use super::*;

    #[test]
    fn entry_encoding_matches_linux() {
        // include/linux/xarray.h: value entries have bit 0 set, internal entries end in 10.
        assert_eq!(xa_mk_value(5).raw(), 11);
        assert_eq!(xa_to_value(xa_mk_value(5)), Some(5));
        assert!(is_internal(ZERO) && !is_node(ZERO) && !is_sibling(ZERO));
        assert_eq!(ZERO, 257 * 4 + 2);
        assert_eq!(RETRY, 256 * 4 + 2);
        assert!(is_sibling(mk_sibling(0)) && is_sibling(mk_sibling(62)));
        assert!(!is_sibling(mk_sibling(63)));
        assert!(is_node(0x1000 | 2 | 0x10000));
        assert!(XaEntry::from_ptr(NonNull::new(6 as *mut u8).unwrap()).is_none());
        assert_eq!(
            XaEntry::from_ptr(NonNull::new(8 as *mut u8).unwrap()).map(XaEntry::raw),
            Some(8)
        );
        assert!(XA_ZERO_ENTRY.is_internal());
    }

    #[test]
    fn set_range_matches_linux_examples() {
        // 1..=5 fits one leaf: 5 slots from offset 1.
        assert_eq!(set_range(1, 5), (0, 4));
        // 0..=127: two slots of a shift-6 node.
        assert_eq!(set_range(0, 127), (6, 1));
        // 0..=126: one shift-6 slot first (0..=63), then the rest.
        assert_eq!(set_range(0, 126), (6, 0));
        assert_eq!(set_range(64, 126), (0, 62));
        // The whole index space: 16 slots of the shift-60 top (64-bit).
        if usize::BITS == 64 {
            assert_eq!(set_range(0, usize::MAX), (60, 15));
        }
    }

    #[test]
    fn geometry() {
        assert_eq!(XA_CHUNK_SIZE, 64);
        assert_eq!(top_max(0), 63);
        assert_eq!(top_max(6), 4095);
        if usize::BITS == 64 {
            assert_eq!(XA_MAX_PATH, 11);
            assert_eq!(nr_slots(60), 16);
            assert_eq!(top_max(60), usize::MAX);
        }
    }
}
