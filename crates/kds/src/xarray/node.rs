//! The node (`struct xa_node`) and the encoding of node pointers in entries.

use core::alloc::Layout;
use core::ptr::NonNull;

use crate::alloc::NodeAlloc;
use crate::sync::{AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, FreeCheck, Ordering::*};

use super::*;

/// An opaque name of a node (its address), as passed to the update callback and compared
/// by tests. It is only an identity: nothing can be read through it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct XaNodeId(pub(super) usize);

/// What an update callback (`xas_set_update`, Linux's `xa_update_node_t`) learns about a
/// node whose contents changed: its counters after the change. A node being freed is
/// reported with `count == 0`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct XaNodeUpdate {
    /// The node.
    pub node: XaNodeId,
    /// Its level (`node->shift`).
    pub shift: u32,
    /// Non-empty slots (`node->count`).
    pub count: usize,
    /// Slots holding value entries or their siblings (`node->nr_values`).
    pub nr_values: usize,
}

/// An update callback (`xa_update_node_t`).
pub type XaUpdateFn<'a> = &'a dyn Fn(&XaNodeUpdate);

/// An XArray node (`struct xa_node`).
#[repr(C)]
pub(super) struct XaNode {
    /// Bits of the index below this level (0 for leaves). Written before the node is
    /// published, never changed afterwards: readers may read it freely.
    pub(super) shift: u8,
    /// Slot in the parent (writer only).
    pub(super) offset: AtomicU8,
    /// Non-empty slots. Written by the writer; readers only ask whether it is 0, which it
    /// is exactly for a node being freed (set before its retry entries are written).
    pub(super) count: AtomicU8,
    /// Slots holding a value entry or a sibling of one (`nr_values`, writer only): the page
    /// cache's shadow-node tracking (`workingset_update_node`) asks `count == nr_values`.
    pub(super) nr_values: AtomicU8,
    /// Parent node, null for the top. Stored with `Release` once the parent is initialised;
    /// the advanced API's readers (`xas_next`, `xas_find`) climb it with `Acquire`.
    pub(super) parent: AtomicPtr<XaNode>,
    /// Link on the retired or reserve list (writer only).
    pub(super) next_free: AtomicPtr<XaNode>,
    /// Mark bitmaps, one bit per slot.
    pub(super) marks: [AtomicU64; XA_MAX_MARKS],
    /// The slots.
    pub(super) slots: [AtomicUsize; XA_CHUNK_SIZE],
    /// Readers observe it on entering the node, [`free_node`] marks the free (zero-sized
    /// outside loom; under loom it makes a read after or racing with the free an error).
    pub(super) free_check: FreeCheck,
}

pub(super) const NODE_LAYOUT: Layout = Layout::new::<XaNode>();

impl XaNode {
    #[inline(always)]
    pub(super) fn slot(&self, off: usize) -> usize {
        self.slots[off].load(Acquire)
    }
    #[inline(always)]
    pub(super) fn count(&self) -> usize {
        self.count.load(Relaxed) as usize
    }
    #[inline(always)]
    pub(super) fn add_count(&self, d: isize) {
        let c = self.count() as isize + d;
        debug_assert!((0..=XA_CHUNK_SIZE as isize).contains(&c));
        self.count.store(c as u8, Relaxed);
    }
    #[inline(always)]
    pub(super) fn nr_values(&self) -> usize {
        self.nr_values.load(Relaxed) as usize
    }
    #[inline(always)]
    pub(super) fn add_values(&self, d: isize) {
        let c = self.nr_values() as isize + d;
        debug_assert!((0..=XA_CHUNK_SIZE as isize).contains(&c));
        self.nr_values.store(c as u8, Relaxed);
    }
    #[inline(always)]
    pub(super) fn mark_bits(&self, m: XaMark) -> u64 {
        self.marks[m.0 as usize].load(Relaxed)
    }
    #[inline(always)]
    pub(super) fn get_mark(&self, off: usize, m: XaMark) -> bool {
        self.mark_bits(m) & (1 << off) != 0
    }
    /// Highest valid slot + 1 (the top node at shift 60 uses 16 slots on 64-bit).
    #[inline(always)]
    pub(super) fn nr_slots(&self) -> usize {
        nr_slots(self.shift as u32)
    }
}

#[inline(always)]
pub(super) const fn nr_slots(shift: u32) -> usize {
    if shift + XA_CHUNK_SHIFT > usize::BITS {
        (usize::MAX >> shift) + 1
    } else {
        XA_CHUNK_SIZE
    }
}

/// Largest index a top node of `shift` covers.
#[inline(always)]
pub(super) const fn top_max(shift: u32) -> usize {
    if shift + XA_CHUNK_SHIFT >= usize::BITS {
        usize::MAX
    } else {
        (XA_CHUNK_SIZE << shift) - 1
    }
}

/// A reader's view of the node an entry points at: dereferences it and tells the
/// use-after-free detector (see [`FreeCheck`]) that a reader reached it.
///
/// # Safety
/// `e` is a node entry loaded inside a read section (or under the lock), so its node stays
/// allocated for `'r`.
#[inline(always)]
pub(super) unsafe fn node_ref<'r>(e: usize) -> &'r XaNode {
    // SAFETY: the caller's guarantee: the node is allocated and initialised for `'r`.
    let n = unsafe { &*to_node(e) };
    n.free_check.observe();
    n
}

/// Frees a tree node (`xa_node_free` once the grace period is over).
///
/// # Safety
/// `n` was initialised by `alloc_node` with a block from `alloc`, no reader can reach it any
/// more (it is unlinked and every reader that could have seen it has left), and it is not
/// used afterwards.
pub(super) unsafe fn free_node<A: NodeAlloc>(alloc: &A, n: *mut XaNode) {
    // SAFETY: the caller's guarantee: `n` is a live, initialised node nobody else uses, and
    // its block came from `alloc` with the node layout.
    unsafe {
        (*n).free_check.before_free();
        alloc.free(NonNull::new_unchecked(n.cast()), NODE_LAYOUT);
    }
}

/// Frees a list of retired nodes linked through `next_free`.
///
/// # Safety
/// As [`free_node`] for every node on the list, which nobody else holds.
pub(super) unsafe fn free_retired<A: NodeAlloc>(alloc: &A, mut n: *mut XaNode) {
    while !n.is_null() {
        // SAFETY: the caller's guarantee; `next` is read before the node is freed.
        unsafe {
            let next = (*n).next_free.load(Relaxed);
            free_node(alloc, n);
            n = next;
        }
    }
}

#[inline(always)]
pub(super) fn to_node(e: usize) -> *mut XaNode {
    (e - 2) as *mut XaNode
}

#[inline(always)]
pub(super) fn mk_node(n: *mut XaNode) -> usize {
    n as usize | 2
}
