//! The maple tree (lib/maple_tree.c, include/linux/maple_tree.h,
//! Documentation/core-api/maple_tree.rst): an RCU-safe B-tree of *ranges*, the structure
//! Linux 6.1+ keeps a process's VMAs in.
//!
//! # What it stores
//! A maple tree maps every index `0..=usize::MAX` to an entry; consecutive indices with the
//! same store form a *range*. `store_range(10, 19, X)` makes `10..=19` one range holding `X`;
//! loading any index in it returns `X`, and `erase(15)` removes the whole range. Entries are
//! XArray entries ([`XaEntry`]): pointers, value entries ([`xa_mk_value`]), or
//! [`XA_ZERO_ENTRY`] (stored, but reads as empty through the normal API). The internal
//! entries up to `XA_RETRY_ENTRY` are rejected (`-EINVAL`, `xa_is_advanced`). Empty (`NULL`) ranges exist too, and
//! the tree never has two adjacent `NULL` ranges: storing `NULL` next to a `NULL` range merges
//! them ("null coalescing"), so a gap is always one range.
//!
//! # Nodes, pivots and gaps
//! Nodes (see `node.rs`) are 256-byte B-tree nodes with `slots` and `pivots`. A node covers
//! `min..=max` (given by its parent); slot `i` covers `pivot[i-1]+1 ..= pivot[i]`, slot 0
//! starts at `min` and the last used slot (the node metadata `end`) ends at `max`:
//!
//! ```text
//!   node covering 0..=99, end = 2:   slot 0     slot 1      slot 2
//!                                   [0..=9]   [10..=19]   [20..=99]
//!   pivots:                             9         19       (max: implied)
//! ```
//!
//! Leaves (`maple_leaf_64`, 16 slots) hold entries; internal nodes hold child pointers,
//! `maple_range_64` (16 slots) in ordinary trees and `maple_arange_64` (10 slots plus 10 *gaps*)
//! in allocation trees ([`MtFlags::ALLOC_RANGE`]). `gap[i]` is the size of the largest `NULL`
//! range below slot `i`, so [`MaState::empty_area`] (the search behind `get_unmapped_area`)
//! skips subtrees without room and finds a hole of a given size in O(height) node visits.
//! The tree is balanced: every leaf is at the same depth ([`MapleTree::height`]).
//!
//! # Writing: the spanning store and rebalancing
//! A store of `first..=last` finds the leaf holding `first` and the leaf holding `last` (the
//! same leaf unless the write *spans* nodes). It builds the new leaf content from three parts —
//! the left leaf's slots before `first` (and the cut-off part of the range there), the new
//! range, the right leaf's slots after `last` — exactly like Linux's `maple_big_node`, and
//! drops every leaf in between. That content is cut into as many new nodes as needed (one
//! when it fits, two or three when it overflows: a *split*). One level up, the same happens
//! with the parents of the two leaves: their slots left of the left leaf, the new nodes, their
//! slots right of the right leaf. This *spanning store* climbs until the two paths meet in one
//! node whose content fits; a new root is added when the root splits, and a root with a single
//! child is removed (the tree shrinks). A new node that would be underfull (fewer than
//! `mt_min_slots` slots) takes in a neighbouring sibling first and is split again if needed
//! — the *rebalance*. When the rebuilt level fits in one node that replaces exactly one child,
//! the writer swaps that one child pointer in place and refreshes the gaps above it. A level
//! that overflows first tries to share its nodes with a sibling that has room (Linux's
//! `mas_push_data`) before adding a node. The cheapest store, a new entry for exactly the
//! bounds of an existing non-`NULL` range (`wr_exact_fit`), is a single atomic slot store.
//! The root can be pictured as:
//!
//! ```text
//!                 [ root: arange_64 | pivots 999, 5999 | gaps 40, 0, MAX ]
//!                 /                       |                           \
//!   [leaf 0..=999: ranges, NULLs]  [leaf 1000..=5999]   [leaf 6000..=ULONG_MAX, ends NULL]
//! ```
//!
//! Every write is copy-on-write below the swapped pointer: published nodes never change except
//! for that single pointer and the gaps, so a reader always sees either the old or the new
//! subtree, both complete. This is what Linux does in RCU mode ([`MtFlags::USE_RCU`]); kmem
//! does it always (the flag is recorded for `mt_in_rcu`).
//!
//! # Locking rules
//! - Writers serialise on the tree's spinlock (`ma_lock`, [`MapleTree::lock`]); every mutating
//!   method of [`MapleTree`] takes it for its duration. With [`MtFlags::LOCK_EXTERN`] the
//!   caller's own lock serialises writers instead: it owns the tree and writes through
//!   `&mut MapleTree` ([`MapleTree::lock_mut`], no spinning).
//! - Readers ([`MapleTree::load`], [`MapleTree::find`], iteration, a read-only [`MaState`]) take
//!   no lock; see `rcu.rs` for how nodes they may see stay allocated (a reader count today, RCU
//!   later). A read-only `MaState` re-walks from the root on every call, so it may be kept
//!   across writes (`mas_pause` semantics are implied).
//! - Node allocation happens under the lock with the caller's GFP flags; [`MaState::preallocate`]
//!   reserves enough nodes beforehand for a store that cannot fail
//!   ([`MaState::store_prealloc`]), as the VMA code does.
//!
//! # Memory
//! Nodes come from the [`NodeAlloc`] given at creation, with the caller's GFP flags. Before a
//! store changes anything the writer tops up a per-tree node reserve to the worst case of one
//! store (three nodes per level plus a new root, `3 * (height + 2) + 1`); a failed allocation
//! returns `ENOMEM` with the tree untouched. Unused reserve nodes stay for the next store (at
//! most that bound, a few KiB) and are freed by [`MaState::destroy`] (`mas_destroy`) or when
//! the tree is dropped; Linux instead computes the exact request per store type and frees the
//! rest at once.
//!
//! # Invariants (checked by [`MapleTree::validate`], `mt_validate`)
//! 1. Pivots strictly ascend inside a node and lie inside the node's range; a node's last slot
//!    ends at its maximum; `end` is below the slot count.
//! 2. All leaves are at the same depth; internal slots hold nodes, leaves hold entries.
//! 3. No two adjacent `NULL` ranges, across node boundaries too (`mt_validate_nulls`).
//! 4. In allocation trees, `gap[i]` equals the largest `NULL` range below slot `i` and the gap
//!    metadata names the largest.
//! 5. A tree holding only `NULL` has no node (`mtree_empty`).

mod check;
mod node;
mod rcu;
mod read;
mod state;
mod write;

pub use node::{MapleType, MAPLE_ARANGE64_SLOTS, MAPLE_HEIGHT_MAX, MAPLE_RANGE64_SLOTS};
pub use rcu::MtReadGuard;
pub use state::{MaState, MaStatus, MasIter};
pub use write::MtLockGuard;

pub use crate::xarray::{xa_is_value, xa_mk_value, xa_to_value, XaEntry, XA_ZERO_ENTRY};

use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::ptr;

use crate::alloc::{Gfp, NodeAlloc};
use crate::error::{Error, Result};
use crate::sync::{AtomicBool, AtomicU8, AtomicUsize, Ordering::*};

use node::*;
use rcu::ReadSide;

/// Tree flags (`mt_flags`), with Linux's values.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct MtFlags(u32);

impl MtFlags {
    /// No flags (`mt_init`).
    pub const NONE: MtFlags = MtFlags(0);
    /// `MT_FLAGS_ALLOC_RANGE` (0x01): track gaps for [`MaState::empty_area`] and
    /// [`MapleTree::alloc_range`].
    pub const ALLOC_RANGE: MtFlags = MtFlags(0x01);
    /// `MT_FLAGS_USE_RCU` (0x02): readers run under RCU (kmem writes copy-on-write always).
    pub const USE_RCU: MtFlags = MtFlags(0x02);
    /// `MT_FLAGS_LOCK_EXTERN` (0x300): an external lock protects writers.
    pub const LOCK_EXTERN: MtFlags = MtFlags(0x300);

    /// Returns the raw flag bits.
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// Returns true if every flag of `other` is set.
    pub const fn contains(self, other: MtFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for MtFlags {
    type Output = MtFlags;
    fn bitor(self, rhs: MtFlags) -> MtFlags {
        MtFlags(self.0 | rhs.0)
    }
}

/// Writer-only state, behind the tree's lock.
struct Writer {
    /// Unlinked nodes waiting for readers to leave.
    retired: *mut Node,
    /// Allocated spare nodes (`mas_preallocate`, `mas_nomem`).
    reserve: *mut Node,
    nr_reserve: usize,
}

/// A maple tree: see the [module documentation](self).
pub struct MapleTree<A: NodeAlloc> {
    lock: AtomicBool,
    /// The root node, or 0 for an empty tree.
    root: AtomicUsize,
    height: AtomicU8,
    use_rcu: AtomicBool,
    flags: MtFlags,
    rs: ReadSide,
    w: UnsafeCell<Writer>,
    alloc: A,
}

// SAFETY: entries are plain words owned by the user; writer state is behind the lock (or
// `&mut`); readers touch only atomics of nodes kept allocated by `rcu.rs`.
unsafe impl<A: NodeAlloc + Send> Send for MapleTree<A> {}
// SAFETY: shared use is the concurrent case of the argument for Send: readers touch only atomics of
// nodes `rcu.rs` keeps allocated, writers serialise on the lock, and `A: Sync` lets threads share
// the allocator.
unsafe impl<A: NodeAlloc + Send + Sync> Sync for MapleTree<A> {}

/// `XA_RETRY_ENTRY` (`xa_mk_internal(256)`).
const XA_RETRY_RAW: usize = (256 << 2) | 2;
/// `MAPLE_RESERVED_RANGE`: internal entries below it are reserved (`mt_is_reserved`).
const MAPLE_RESERVED_RANGE: usize = 4096;

/// Returns the raw word of an entry to store, rejecting the *advanced* internal entries
/// (`xa_is_advanced`: internal and at most `XA_RETRY_ENTRY`), as `mtree_store_range` does.
/// Leaves know they hold entries, so other words, [`XA_ZERO_ENTRY`] included, are stored as
/// given.
fn entry_word(e: Option<XaEntry>) -> Result<usize> {
    match e {
        None => Ok(0),
        Some(x) if x.is_internal() && x.raw() <= XA_RETRY_RAW => Err(Error::EINVAL),
        Some(x) => Ok(x.raw()),
    }
}

/// `mt_is_reserved`: internal entries below `MAPLE_RESERVED_RANGE` (`mtree_alloc_range`).
fn is_reserved(e: Option<XaEntry>) -> bool {
    e.is_some_and(|x| x.is_internal() && x.raw() < MAPLE_RESERVED_RANGE)
}

/// The entry for a raw word.
fn to_entry(raw: usize) -> Option<XaEntry> {
    XaEntry::from_raw(raw)
}

/// `xa_is_zero` filtering of the normal API: the zero entry reads as empty.
fn visible(raw: usize) -> Option<XaEntry> {
    if raw == XA_ZERO_ENTRY.raw() {
        None
    } else {
        to_entry(raw)
    }
}

impl<A: NodeAlloc> MapleTree<A> {
    crate::sync::const_fn_unless_loom! {
        /// `mt_init_flags`: returns an empty tree allocating nodes from `alloc`.
        pub fn new(flags: MtFlags, alloc: A) -> MapleTree<A> {
            MapleTree {
                lock: AtomicBool::new(false),
                root: AtomicUsize::new(0),
                height: AtomicU8::new(0),
                use_rcu: AtomicBool::new(flags.0 & MtFlags::USE_RCU.0 != 0),
                flags,
                rs: ReadSide::new(),
                w: UnsafeCell::new(Writer {
                    retired: ptr::null_mut(),
                    reserve: ptr::null_mut(),
                    nr_reserve: 0,
                }),
                alloc,
            }
        }
    }

    /// Returns the flags given at creation.
    pub fn flags(&self) -> MtFlags {
        self.flags
    }

    /// `mt_is_alloc`: true for allocation trees.
    pub fn is_alloc(&self) -> bool {
        self.flags.contains(MtFlags::ALLOC_RANGE)
    }

    /// `mt_external_lock`.
    pub fn external_lock(&self) -> bool {
        self.flags.contains(MtFlags::LOCK_EXTERN)
    }

    /// `mt_in_rcu`.
    pub fn in_rcu(&self) -> bool {
        self.use_rcu.load(Relaxed)
    }

    /// `mt_set_in_rcu`: readers may run concurrently (kmem's writers are always RCU-safe).
    pub fn set_in_rcu(&self) {
        self.use_rcu.store(true, Relaxed);
    }

    /// `mt_clear_in_rcu`.
    pub fn clear_in_rcu(&self) {
        self.use_rcu.store(false, Relaxed);
    }

    /// Returns the node allocator.
    pub fn allocator(&self) -> &A {
        &self.alloc
    }

    /// `mt_height`: the number of node levels (0 for an empty tree).
    pub fn height(&self) -> usize {
        self.height.load(Relaxed) as usize
    }

    /// `mtree_lock`: takes the writer spinlock.
    pub fn lock(&self) -> MtLockGuard<'_, A> {
        // Lock order: &mt->ma_lock (kds, above NodeAlloc); docs/LOCKING.md.
        while self
            .lock
            .compare_exchange_weak(false, true, Acquire, Relaxed)
            .is_err()
        {
            while self.lock.load(Relaxed) {
                crate::sync::spin_loop();
            }
        }
        MtLockGuard {
            mt: self,
            locked: true,
            _not_sync: PhantomData,
        }
    }

    /// Writer access through `&mut self`: the caller's exclusive borrow (its external lock,
    /// [`MtFlags::LOCK_EXTERN`]) stands in for the spinlock.
    pub fn lock_mut(&mut self) -> MtLockGuard<'_, A> {
        MtLockGuard {
            mt: self,
            locked: false,
            _not_sync: PhantomData,
        }
    }

    /// Enters a read-side section (`rcu_read_lock` for this tree).
    pub fn read(&self) -> MtReadGuard<'_> {
        self.rs.enter()
    }

    /// `MA_STATE(mas, mt, index, last)` for reading (`mas_walk`, `mas_find`, ...).
    pub fn mas(&self, index: usize, last: usize) -> MaState<'_, A> {
        MaState::new_read(self, index, last)
    }

    /// `mtree_empty`: true if every index is empty.
    pub fn is_empty(&self) -> bool {
        self.root.load(Acquire) == 0
    }

    /// `mtree_load`: the entry at `index` ([`XA_ZERO_ENTRY`] reads as `None`).
    pub fn load(&self, index: usize) -> Option<XaEntry> {
        let _g = self.read();
        visible(self.range_at(index).entry)
    }

    /// `mtree_store_range`: stores `entry` at `index..=last` (`None` erases).
    ///
    /// # Errors
    /// `EINVAL` (`index > last`, reserved entry), `ENOMEM`.
    pub fn store_range(
        &self,
        index: usize,
        last: usize,
        entry: Option<XaEntry>,
        gfp: Gfp,
    ) -> Result<()> {
        entry_word(entry)?;
        if index > last {
            return Err(Error::EINVAL);
        }
        // Lock order: &mt->ma_lock (kds, above NodeAlloc); docs/LOCKING.md.
        self.lock().store_range(index, last, entry, gfp).map(|_| ())
    }

    /// `mtree_store`.
    ///
    /// # Errors
    /// As [`MapleTree::store_range`].
    pub fn store(&self, index: usize, entry: Option<XaEntry>, gfp: Gfp) -> Result<()> {
        self.store_range(index, index, entry, gfp)
    }

    /// `mtree_insert_range`: stores `entry` at `first..=last` if all of it is empty.
    ///
    /// # Errors
    /// `EEXIST` if occupied, `EINVAL`, `ENOMEM`.
    pub fn insert_range(
        &self,
        first: usize,
        last: usize,
        entry: Option<XaEntry>,
        gfp: Gfp,
    ) -> Result<()> {
        entry_word(entry)?;
        if first > last {
            return Err(Error::EINVAL);
        }
        // Lock order: &mt->ma_lock (kds, above NodeAlloc); docs/LOCKING.md.
        self.lock().insert_range(first, last, entry, gfp)
    }

    /// `mtree_insert`.
    ///
    /// # Errors
    /// As [`MapleTree::insert_range`].
    pub fn insert(&self, index: usize, entry: Option<XaEntry>, gfp: Gfp) -> Result<()> {
        self.insert_range(index, index, entry, gfp)
    }

    /// `mtree_erase`: erases the whole range containing `index`; returns its entry (see
    /// [`MtLockGuard::erase`] for allocation failure).
    pub fn erase(&self, index: usize) -> Option<XaEntry> {
        // Lock order: &mt->ma_lock (kds, above NodeAlloc); docs/LOCKING.md.
        self.lock().erase(index)
    }

    /// [`MapleTree::erase`] reporting allocation failure.
    ///
    /// # Errors
    /// `ENOMEM` (the tree is unchanged).
    pub fn erase_gfp(&self, index: usize, gfp: Gfp) -> Result<Option<XaEntry>> {
        // Lock order: &mt->ma_lock (kds, above NodeAlloc); docs/LOCKING.md.
        self.lock().erase_gfp(index, gfp)
    }

    /// `mtree_alloc_range`: stores `entry` in the lowest empty range of `size` indices inside
    /// `min..=max`; returns its first index.
    ///
    /// # Errors
    /// `EINVAL` (not an allocation tree, reserved entry, bad window), `EBUSY` (no room),
    /// `ENOMEM`.
    pub fn alloc_range(
        &self,
        entry: Option<XaEntry>,
        size: usize,
        min: usize,
        max: usize,
        gfp: Gfp,
    ) -> Result<usize> {
        // Lock order: &mt->ma_lock (kds, above NodeAlloc); docs/LOCKING.md.
        self.lock().alloc_range(entry, size, min, max, gfp, false)
    }

    /// `mtree_alloc_rrange`: as [`MapleTree::alloc_range`], the highest such range.
    ///
    /// # Errors
    /// As [`MapleTree::alloc_range`].
    pub fn alloc_rrange(
        &self,
        entry: Option<XaEntry>,
        size: usize,
        min: usize,
        max: usize,
        gfp: Gfp,
    ) -> Result<usize> {
        // Lock order: &mt->ma_lock (kds, above NodeAlloc); docs/LOCKING.md.
        self.lock().alloc_range(entry, size, min, max, gfp, true)
    }

    /// `mtree_destroy`: removes everything; nodes are freed once no reader can see them.
    pub fn destroy(&self) {
        // Lock order: &mt->ma_lock (kds, above NodeAlloc); docs/LOCKING.md.
        self.lock().destroy()
    }

    /// `mt_find`: the first entry (not [`XA_ZERO_ENTRY`]) in `*index..=max`; on success sets
    /// `*index` to one past its range (wrapping to 0 after `usize::MAX`).
    pub fn find(&self, index: &mut usize, max: usize) -> Option<XaEntry> {
        let (_, last, e) = self.find_range(*index, max)?;
        *index = last.wrapping_add(1);
        Some(e)
    }

    /// The first visible entry meeting `start..=max`, with its range, in one read section.
    fn find_range(&self, start: usize, max: usize) -> Option<(usize, usize, XaEntry)> {
        if start > max {
            return None;
        }
        let _g = self.read();
        let mut r = self.range_at(start);
        loop {
            if let Some(e) = visible(r.entry) {
                return Some((r.first, r.last, e));
            }
            if r.last >= max {
                return None;
            }
            r = self.range_at(r.last + 1);
        }
    }

    /// `mt_find_after`: as [`MapleTree::find`], but `*index == 0` means the previous search
    /// wrapped and ends the walk.
    pub fn find_after(&self, index: &mut usize, max: usize) -> Option<XaEntry> {
        if *index == 0 {
            return None;
        }
        self.find(index, max)
    }

    /// `mt_for_each(mt, entry, index, max)`: iterates `(first index, entry)` over the entries
    /// in `start..=max` (zero entries skipped), each step a separate read section.
    pub fn iter(&self, start: usize, max: usize) -> MtIter<'_, A> {
        MtIter {
            mt: self,
            index: start,
            max,
            first: true,
        }
    }

    /// `mt_next`: the first entry after the range containing `index`, starting at most at
    /// `max`.
    pub fn next(&self, index: usize, max: usize) -> Option<XaEntry> {
        let mut mas = self.mas(index, index);
        mas.next(max)
    }

    /// `mt_prev`: the last entry before the range containing `index`, ending at least at
    /// `min`.
    pub fn prev(&self, index: usize, min: usize) -> Option<XaEntry> {
        let mut mas = self.mas(index, index);
        mas.prev(min)
    }

    /// `mt_validate`: checks the invariants of the module documentation; returns the number of
    /// nodes.
    ///
    /// # Errors
    /// A description of the first violation.
    pub fn validate(&self) -> core::result::Result<usize, &'static str> {
        // Lock order: &mt->ma_lock (kds, above NodeAlloc); docs/LOCKING.md.
        let _g = self.lock();
        self.check()
    }
}

impl<A: NodeAlloc> Drop for MapleTree<A> {
    fn drop(&mut self) {
        // A plain load: `&mut self` excludes every other access.
        let root = self.root.load(Relaxed);
        if root != 0 {
            // SAFETY: `&mut self`: no reader or writer can reach the tree any more.
            unsafe { free_subtree(&self.alloc, root as *mut Node) };
        }
        let w = self.w.get_mut();
        // SAFETY: retired and reserve nodes are owned by their lists and unreachable.
        unsafe {
            free_list(&self.alloc, w.retired);
            free_list(&self.alloc, w.reserve);
        }
    }
}

/// The iterator of [`MapleTree::iter`] (`mt_for_each`).
pub struct MtIter<'a, A: NodeAlloc> {
    mt: &'a MapleTree<A>,
    index: usize,
    max: usize,
    first: bool,
}

impl<A: NodeAlloc> Iterator for MtIter<'_, A> {
    type Item = (usize, XaEntry);
    fn next(&mut self) -> Option<(usize, XaEntry)> {
        if !self.first && self.index == 0 {
            return None;
        }
        self.first = false;
        let start = self.index;
        let (first, last, e) = self.mt.find_range(start, self.max)?;
        self.index = last.wrapping_add(1);
        Some((first.max(start), e))
    }
}

#[cfg(test)]
mod tests {
    use super::node::*;
    use super::*;

    #[test]
    fn geometry_matches_linux_64bit() {
        // include/linux/maple_tree.h (64-bit): MAPLE_RANGE64_SLOTS 16, MAPLE_ARANGE64_SLOTS 10;
        // lib/maple_tree.c mt_min_slots[].
        assert_eq!(MapleType::Leaf64.slots(), 16);
        assert_eq!(MapleType::Range64.pivots(), 15);
        assert_eq!(MapleType::Arange64.slots(), 10);
        assert_eq!(MapleType::Arange64.pivots(), 9);
        assert_eq!(MapleType::Leaf64.min_slots(), 6);
        assert_eq!(MapleType::Arange64.min_slots(), 4);
        assert_eq!(MtFlags::ALLOC_RANGE.bits(), 0x01);
        assert_eq!(MtFlags::USE_RCU.bits(), 0x02);
        assert_eq!(MtFlags::LOCK_EXTERN.bits(), 0x300);
        assert!(core::mem::size_of::<Node>() <= 384);
    }

    #[test]
    fn range_size_saturates() {
        assert_eq!(range_size(0, 0), 1);
        assert_eq!(range_size(5, 9), 5);
        assert_eq!(range_size(0, usize::MAX), usize::MAX);
    }

    #[test]
    fn advanced_entries_are_rejected() {
        assert_eq!(entry_word(None), Ok(0));
        assert_eq!(entry_word(Some(xa_mk_value(3))), Ok(7));
        // Internal entries up to XA_RETRY_ENTRY are `xa_is_advanced`.
        assert_eq!(entry_word(XaEntry::from_raw(2)), Err(Error::EINVAL));
        assert_eq!(
            entry_word(XaEntry::from_raw(XA_RETRY_RAW)),
            Err(Error::EINVAL)
        );
        // XA_ZERO_ENTRY and larger internal-looking words are stored as they are.
        assert_eq!(entry_word(Some(XA_ZERO_ENTRY)), Ok(XA_ZERO_ENTRY.raw()));
        assert!(is_reserved(Some(XA_ZERO_ENTRY)));
        assert!(!is_reserved(XaEntry::from_raw(4098)));
        assert_eq!(visible(XA_ZERO_ENTRY.raw()), None);
    }

    #[test]
    fn fill_node_sets_metadata_and_leaf_gap() {
        let items = [
            Item {
                last: 9,
                slot: 0,
                gap: 0,
            },
            Item {
                last: 19,
                slot: 0x1000,
                gap: 0,
            },
            Item {
                last: 99,
                slot: 0,
                gap: 0,
            },
        ];
        let mut block = core::mem::MaybeUninit::<Node>::uninit();
        // SAFETY: a private, properly aligned block.
        let gap = unsafe { fill_node(block.as_mut_ptr(), MapleType::Leaf64, &items, 0) };
        // SAFETY: initialised by fill_node.
        let n = unsafe { block.assume_init_ref() };
        assert_eq!(gap, 80);
        assert_eq!(n.end(), 2);
        assert_eq!(n.gap_off.load(Relaxed), 2);
        assert_eq!(n.pivot(0, 99), 9);
        assert_eq!(n.pivot(2, 99), 99);
        assert_eq!(n.slot_min(1, 0), 10);
        assert_eq!(n.offset_of(15), 1);
        assert_eq!(n.offset_of(50), 2);
        assert_eq!(n.max_gap(0, 99), 80);
    }
}
