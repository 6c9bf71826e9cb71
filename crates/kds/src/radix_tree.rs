//! The classic radix-tree API (`<linux/radix-tree.h>`) as a thin layer over the [`XArray`],
//! as Linux itself implements it since 4.20: tags are XArray marks, the root is the array.
//!
//! Differences from the XArray calls: [`radix_tree_insert`] fails with [`Error::EEXIST`]
//! (not `EBUSY`) on an occupied index, and the gang lookups fill a caller's slice.

use crate::alloc::{Gfp, NodeAlloc};
use crate::error::{Error, Result};
use crate::xarray::{XArray, XaEntry, XaFilter, XaMark, XA_MAX_MARKS, XA_PRESENT};

/// `struct radix_tree_root`.
pub type RadixTreeRoot<A> = XArray<A>;

/// `RADIX_TREE_MAX_TAGS`.
pub const RADIX_TREE_MAX_TAGS: u32 = XA_MAX_MARKS as u32;

fn tag(t: u32) -> XaMark {
    XaMark::new(t as u8)
}

/// `radix_tree_insert`: inserts `item` at `index`.
///
/// # Errors
/// [`Error::EEXIST`] if occupied; [`Error::ENOMEM`]; [`Error::EINVAL`].
pub fn radix_tree_insert<A: NodeAlloc>(
    root: &RadixTreeRoot<A>,
    index: usize,
    item: XaEntry,
    gfp: Gfp,
) -> Result<()> {
    root.insert(index, Some(item), gfp)
        .map_err(|e| if e == Error::EBUSY { Error::EEXIST } else { e })
}

/// `radix_tree_lookup`.
pub fn radix_tree_lookup<A: NodeAlloc>(root: &RadixTreeRoot<A>, index: usize) -> Option<XaEntry> {
    root.load(index)
}

/// `radix_tree_delete`: removes and returns the item at `index`.
pub fn radix_tree_delete<A: NodeAlloc>(root: &RadixTreeRoot<A>, index: usize) -> Option<XaEntry> {
    root.erase(index)
}

/// `radix_tree_tag_set`: tags the item at `index`; returns it (`None` if absent: nothing set).
///
/// # Panics
/// If `tag >= RADIX_TREE_MAX_TAGS`.
pub fn radix_tree_tag_set<A: NodeAlloc>(
    root: &RadixTreeRoot<A>,
    index: usize,
    t: u32,
) -> Option<XaEntry> {
    // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
    let g = root.lock();
    let e = g.load(index)?;
    g.set_mark(index, tag(t));
    Some(e)
}

/// `radix_tree_tag_clear`: clears the tag; returns the item.
///
/// # Panics
/// If `tag >= RADIX_TREE_MAX_TAGS`.
pub fn radix_tree_tag_clear<A: NodeAlloc>(
    root: &RadixTreeRoot<A>,
    index: usize,
    t: u32,
) -> Option<XaEntry> {
    // Lock order: &xa->xa_lock (kds, above NodeAlloc); docs/LOCKING.md.
    let g = root.lock();
    let e = g.load(index)?;
    g.clear_mark(index, tag(t));
    Some(e)
}

/// `radix_tree_tag_get`.
pub fn radix_tree_tag_get<A: NodeAlloc>(root: &RadixTreeRoot<A>, index: usize, t: u32) -> bool {
    root.get_mark(index, tag(t))
}

/// `radix_tree_tagged`: returns true if any item carries `tag`.
pub fn radix_tree_tagged<A: NodeAlloc>(root: &RadixTreeRoot<A>, t: u32) -> bool {
    let mut i = 0;
    root.find(&mut i, usize::MAX, XaFilter::Marked(tag(t)))
        .is_some()
}

/// `radix_tree_gang_lookup`: fills `results` with up to `results.len()` items at indices
/// `>= first_index`, in index order; returns how many.
pub fn radix_tree_gang_lookup<A: NodeAlloc>(
    root: &RadixTreeRoot<A>,
    results: &mut [XaEntry],
    first_index: usize,
) -> usize {
    gang(root, results, first_index, XA_PRESENT)
}

/// `radix_tree_gang_lookup_tag`: as [`radix_tree_gang_lookup`] for tagged items.
pub fn radix_tree_gang_lookup_tag<A: NodeAlloc>(
    root: &RadixTreeRoot<A>,
    results: &mut [XaEntry],
    first_index: usize,
    t: u32,
) -> usize {
    gang(root, results, first_index, XaFilter::Marked(tag(t)))
}

fn gang<A: NodeAlloc>(
    root: &RadixTreeRoot<A>,
    results: &mut [XaEntry],
    first_index: usize,
    filter: XaFilter,
) -> usize {
    let mut n = 0;
    let mut index = first_index;
    let mut started = false;
    while n < results.len() {
        let e = if started {
            root.find_after(&mut index, usize::MAX, filter)
        } else {
            root.find(&mut index, usize::MAX, filter)
        };
        started = true;
        match e {
            Some(e) => {
                results[n] = e;
                n += 1;
            }
            None => break,
        }
    }
    n
}

/// `radix_tree_preload`: preloads nodes for a following insertion.
///
/// # Errors
/// [`Error::ENOMEM`].
pub fn radix_tree_preload<A: NodeAlloc>(root: &RadixTreeRoot<A>, gfp: Gfp) -> Result<()> {
    root.preload(gfp)
}

/// `radix_tree_preload_end`: nothing to undo (see [`XArray::preload`]).
pub fn radix_tree_preload_end<A: NodeAlloc>(_root: &RadixTreeRoot<A>) {}

/// `radix_tree_empty`.
pub fn radix_tree_empty<A: NodeAlloc>(root: &RadixTreeRoot<A>) -> bool {
    root.is_empty()
}
