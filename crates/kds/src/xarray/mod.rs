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
//! simple quiescent-state scheme, the fallback for arrays whose allocator has no RCU: it
//! costs two atomic RMWs per read section and can delay reclamation under a steady stream of
//! readers.
//!
//! **With RCU.** When the allocator offers an RCU domain ([`NodeAlloc::rcu`], e.g. one backed by
//! a kmem machine), the guard is a real `rcu_read_lock` section of that domain instead, and
//! the reader count is not used. At the end of each write operation the retired list is handed
//! to a grace period (`start_poll_synchronize_rcu`; one batch waits at a time, the next one
//! collects meanwhile) and freed, under the lock, by the first write operation that finds the
//! grace period over (`poll_state_synchronize_rcu`). Linux frees its nodes with `call_rcu`
//! instead; polling needs no callback context and no allocation, and never waits under the
//! lock. A read guard is then tied to its thread (it is not `Send`). The atomics come from `kds::sync`, and every node carries a
//! use-after-free detector (`FreeCheck`) that readers touch on entering it and the free path
//! before freeing it, so `tests/xarray_loom.rs` (run by `scripts/loom-test`) model-checks
//! readers against writers that erase, shrink and replace nodes.
//!
//! # The advanced API ([`XaState`])
//! Documentation/core-api/xarray.rst "Advanced API": an [`XaState`] (`struct xa_state`) is a
//! cursor holding an index, an order (`shift` + `sibs`) and the node and slot its last walk
//! ended on, or one of Linux's special states ([`XasNode`]: `XAS_RESTART`, `XAS_BOUNDS`, an
//! error). "Call with the RCU read lock or the xa_lock held" becomes a value:
//! [`XaState::rcu`] and [`XaState::lock`] return guards ([`XasRcu`], [`XasLocked`]) through
//! which the `xas_*` operations are called; the state outlives them, as `xas` outlives
//! `xas_unlock` in Linux, and a node it cached is re-checked when the next section begins
//! (Linux leaves a stale `xa_node` to the caller; here it cannot be used). Reads:
//! `xas_load`/`reload`/`find`/`find_marked`/`next`/`prev`/`next_entry`/`next_marked`/
//! `find_conflict`, the `for_each*` loops (closures returning `ControlFlow`), `pause`, `retry`,
//! `get_mark`, `get_order`. Writes under the lock: `store`, `set_mark`/`clear_mark`/
//! `init_marks`, `create_range`, `split` (with [`XaState::split_alloc`]). Stores allocate with
//! `GFP_NOWAIT` under the lock; `ENOMEM` stays in the state until [`XaState::nomem`] allocates
//! with the caller's flags (the `xas_nomem` loop). [`XaState::set_update`] installs an update
//! callback (`xas_set_update`, the page cache's shadow-node tracking) told about every node
//! whose `count`/`nr_values` change; [`XaLockGuard::xa_delete_node`] removes such a node.
//! Writes walk from the top with the same primitives the simple API uses, then leave the
//! state where Linux's would be. The simple `xa_*` API above is unchanged.
//!
//! Nodes count their value entries (`nr_values`, siblings of a value included; checked by
//! [`XArray::check`]). A retry entry stored by a user (Linux allows it, check_xas_retry does
//! it) is told apart from the retry entries of a node being freed by that node's `count`,
//! which the writer zeroes before writing them: readers restart only for the latter, so a
//! stored retry entry cannot make `xa_load` spin.
//!
//! # Memory
//! Nodes come from the [`NodeAlloc`] passed at creation, with the caller's GFP flags; a failed
//! allocation returns [`Error::ENOMEM`](crate::Error::ENOMEM) and leaves the array as it was
//! (partially built paths are removed again). [`XArray::preload`] fills a per-array reserve
//! of nodes beforehand (`idr_preload` / `radix_tree_preload`), enough for any single store.

mod check;
mod entry;
mod node;
mod read;
mod shape;
mod state;
mod state_move;
mod state_write;
mod store;
mod write;

pub use entry::{xa_is_value, xa_mk_value, xa_to_value, XaEntry, XA_ZERO_ENTRY};
pub use read::{XaIter, XaReadGuard};
pub use state::{
    XaNodeId, XaNodeUpdate, XaSection, XaState, XaUpdateFn, XasGuard, XasLocked, XasNode, XasRcu,
    XA_RETRY_ENTRY,
};
pub use state_write::XA_CREATE_RANGE_MAX_ORDER;
pub use write::XaLockGuard;

use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};

use crate::alloc::{Gfp, NodeAlloc};
use crate::error::Result;
use crate::sync::{AtomicBool, AtomicU8, AtomicUsize, Ordering::*};

use entry::*;
use node::*;
use read::{search_from, search_node};

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

    pub(super) const fn track_free(self) -> bool {
        self.0 & 1 != 0
    }
    const fn zero_busy(self) -> bool {
        self.0 & 2 != 0
    }
}

/// Writer-only state, behind the array's spinlock.
struct WriterState {
    retired: *mut XaNode,
    /// With an RCU domain: nodes handed to a grace period (`cookie`), freed once it ends;
    /// `retired` then collects the next batch meanwhile.
    waiting: *mut XaNode,
    cookie: crate::rcu::RcuCookie,
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
// SAFETY: shared use is the concurrent case of the argument for Send: readers use only atomics on
// nodes kept allocated for them, writers serialise on the lock, and `A: Sync` lets both threads
// call the allocator through `&A`.
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
    crate::sync::const_fn_unless_loom! {
        /// `xa_init`: returns an empty array allocating nodes from `alloc`.
        pub fn new_in(alloc: A) -> Self {
            Self::with_flags(alloc, XaFlags::NONE)
        }
    }

    crate::sync::const_fn_unless_loom! {
        /// `xa_init_flags`: returns an empty array with `flags` (e.g. `DEFINE_XARRAY_ALLOC`).
        pub fn with_flags(alloc: A, flags: XaFlags) -> Self {
            XArray {
                lock: AtomicBool::new(false),
                head: AtomicUsize::new(0),
                head_marks: AtomicU8::new(0),
                readers: AtomicUsize::new(0),
                flags,
                w: UnsafeCell::new(WriterState {
                    retired: ptr::null_mut(),
                    waiting: ptr::null_mut(),
                    cookie: crate::rcu::RcuCookie(0),
                    reserve: ptr::null_mut(),
                    nr_reserve: 0,
                    wrapped: false,
                    reserve_only: false,
                }),
                alloc,
            }
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
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); the lock itself; docs/LOCKING.md.
        while self
            .lock
            .compare_exchange_weak(false, true, Acquire, Relaxed)
            .is_err()
        {
            while self.lock.load(Relaxed) {
                crate::sync::spin_loop();
            }
        }
        XaLockGuard {
            xa: self,
            update: core::cell::Cell::new(None),
        }
    }

    /// Enters a read-side section (the `rcu_read_lock` of this array): nodes seen through the
    /// guard are not freed until it is dropped.
    pub fn read(&self) -> XaReadGuard<'_, A> {
        let token = match self.alloc.rcu() {
            Some(rcu) => Some(rcu.read_lock()),
            None => {
                self.readers.fetch_add(1, Acquire);
                None
            }
        };
        XaReadGuard {
            xa: self,
            token,
            _not_send: core::marker::PhantomData,
        }
    }

    /// `xa_head`, as an identity: the top node if the array has one. Only for comparing
    /// (tests of the tree's shape); nothing can be read through it.
    pub fn head_node(&self) -> Option<XaNodeId> {
        let h = self.head.load(Acquire);
        is_node(h).then(|| XaNodeId(to_node(h) as usize))
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
    /// [`Error::ENOMEM`](crate::Error::ENOMEM) (no node), [`Error::EINVAL`](crate::Error::EINVAL)
    /// (`entry` is [`XA_ZERO_ENTRY`] or another reserved internal value, up to 4096; or it
    /// looks like a node (low bits `10`, above 4096) and would replace a multi-index entry of
    /// order `>= XA_CHUNK_SHIFT`, a non-leaf slot). Node-looking entries (an unaligned
    /// `char *`) are otherwise stored, in a leaf slot, as in Linux.
    pub fn store(&self, index: usize, entry: Option<XaEntry>, gfp: Gfp) -> Result<Option<XaEntry>> {
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        self.lock().store(index, entry, gfp)
    }

    /// `xa_erase`: removes the entry at `index` (all of a multi-index entry); returns it.
    pub fn erase(&self, index: usize) -> Option<XaEntry> {
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        self.lock().erase(index)
    }

    /// `xa_insert`: stores `entry` only if `index` is empty (`None` reserves the slot).
    ///
    /// # Errors
    /// [`Error::EBUSY`](crate::Error::EBUSY) if occupied or reserved,
    /// [`Error::ENOMEM`](crate::Error::ENOMEM), [`Error::EINVAL`](crate::Error::EINVAL).
    pub fn insert(&self, index: usize, entry: Option<XaEntry>, gfp: Gfp) -> Result<()> {
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        self.lock().insert(index, entry, gfp)
    }

    /// `xa_cmpxchg`: stores `new` if the entry at `index` is `old` (compared raw: a reserved
    /// slot matches [`XA_ZERO_ENTRY`], not `None`); returns the entry that was there.
    ///
    /// # Errors
    /// [`Error::ENOMEM`](crate::Error::ENOMEM), [`Error::EINVAL`](crate::Error::EINVAL) (`new` as
    /// for [`store`](Self::store)).
    pub fn cmpxchg(
        &self,
        index: usize,
        old: Option<XaEntry>,
        new: Option<XaEntry>,
        gfp: Gfp,
    ) -> Result<Option<XaEntry>> {
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        self.lock().cmpxchg(index, old, new, gfp)
    }

    /// `xa_reserve`: reserves `index` if empty: it reads as empty but `xa_insert` sees it busy.
    ///
    /// # Errors
    /// [`Error::ENOMEM`](crate::Error::ENOMEM).
    pub fn reserve(&self, index: usize, gfp: Gfp) -> Result<()> {
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        self.lock().reserve(index, gfp)
    }

    /// `xa_release`: drops the reservation of `index` if it is still reserved.
    pub fn release(&self, index: usize) {
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        self.lock().release(index)
    }

    /// `xa_store_range`: stores `entry` at every index of `first..=last` using multi-index
    /// entries (`None` erases the range).
    ///
    /// # Errors
    /// [`Error::EINVAL`](crate::Error::EINVAL) if `last < first`, `entry` is a reserved
    /// internal value, or it looks like a node and the range needs a piece of order
    /// `>= XA_CHUNK_SHIFT` (nothing is stored then);
    /// [`Error::ENOMEM`](crate::Error::ENOMEM) (the part of the range stored before the failure
    /// stays stored).
    pub fn store_range(
        &self,
        first: usize,
        last: usize,
        entry: Option<XaEntry>,
        gfp: Gfp,
    ) -> Result<()> {
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        self.lock().store_range(first, last, entry, gfp)
    }

    /// Stores a multi-index entry of `order` (covering `2^order` aligned indices around
    /// `index`), like `xas_store` with `XA_STATE_ORDER`; returns the previous entry at the
    /// canonical slot.
    ///
    /// # Errors
    /// [`Error::ENOMEM`](crate::Error::ENOMEM), [`Error::EINVAL`](crate::Error::EINVAL) (as
    /// for [`store`](Self::store); a node-looking entry of `order >= XA_CHUNK_SHIFT`).
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
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        self.lock().store_order(index, order, entry, gfp)
    }

    /// `xa_set_mark`: sets `mark` on the entry at `index` (nothing if empty).
    pub fn set_mark(&self, index: usize, mark: XaMark) {
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        self.lock().set_mark(index, mark)
    }

    /// `xa_clear_mark`.
    pub fn clear_mark(&self, index: usize, mark: XaMark) {
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        self.lock().clear_mark(index, mark)
    }

    /// `xa_alloc`: stores `entry` at the lowest free index in `limit`; returns the index.
    ///
    /// # Errors
    /// [`Error::EBUSY`](crate::Error::EBUSY) if `limit` has no free index,
    /// [`Error::ENOMEM`](crate::Error::ENOMEM), [`Error::EINVAL`](crate::Error::EINVAL)
    /// (not an allocating array, or `entry` a reserved internal value).
    pub fn alloc(&self, entry: Option<XaEntry>, limit: XaLimit, gfp: Gfp) -> Result<u32> {
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
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
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        self.lock().alloc_cyclic(entry, limit, next, gfp)
    }

    /// `xa_destroy`: removes every entry and frees (or retires) every node.
    pub fn destroy(&self) {
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        self.lock().destroy()
    }

    /// Fills the node reserve (`idr_preload` / `radix_tree_preload`) so that the next stores do
    /// not need the allocator.
    ///
    /// # Errors
    /// [`Error::ENOMEM`](crate::Error::ENOMEM) if the reserve could not be filled (what was
    /// obtained is kept).
    pub fn preload(&self, gfp: Gfp) -> Result<()> {
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        self.lock().preload(gfp)
    }

    /// Frees retired nodes now; `&mut self` proves no reader is inside.
    pub fn reclaim(&mut self) {
        let w = self.w.get_mut();
        let retired = core::mem::replace(&mut w.retired, ptr::null_mut());
        let waiting = core::mem::replace(&mut w.waiting, ptr::null_mut());
        // SAFETY: retired and waiting nodes are unlinked tree nodes owned by their lists; no
        // reader can hold them (we have `&mut self`).
        unsafe {
            free_retired(&self.alloc, retired);
            free_retired(&self.alloc, waiting);
        }
    }

    /// Checks the structural invariants (see the module docs); returns the number of nodes.
    ///
    /// # Errors
    /// A description of the first violation.
    pub fn check(&self) -> core::result::Result<usize, &'static str> {
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        let g = self.lock();
        g.check(false)
    }

    /// [`XArray::check`] for IDA arrays, where `XA_FREE_MARK` may also mark present entries
    /// (bitmaps with room).
    pub(crate) fn check_free_on_present(&self) -> core::result::Result<usize, &'static str> {
        // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
        let g = self.lock();
        g.check(true)
    }
}

impl<A: NodeAlloc> Drop for XArray<A> {
    fn drop(&mut self) {
        // A plain load: `&mut self` excludes every other access.
        let head = self.head.load(Relaxed);
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
                if is_child(e, (*node).shift) {
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
            free_node(alloc, node);
            if node == top {
                return;
            }
            node = parent;
            off = poff + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::entry::*;
    use super::store::set_range;
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
