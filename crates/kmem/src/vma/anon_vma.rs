//! `struct anon_vma` and `struct anon_vma_chain` (mm/rmap.c, include/linux/rmap.h): which
//! VMAs may map an anonymous page.
//!
//! An anonymous page points at the anon_vma of the VMA it was first faulted into
//! (`page->mapping = anon_vma | PAGE_MAPPING_ANON`, [`crate::rmap`]). Each VMA links to its
//! own anon_vma and, after `fork`, to every ancestor's (`anon_vma_fork` clones the parent's
//! chain, then adds a new anon_vma for the child), one [`AnonVmaChain`] per link; each
//! anon_vma lists the chains that name it (Linux's interval tree `rb_root`; here a list,
//! checked against each VMA's range during a walk). So the VMAs that may map a page are the
//! ones on its anon_vma's list, which the rmap walk visits.
//!
//! An anon_vma lives while chains name it or someone pinned it (`get_anon_vma`, for a
//! swap-cache page that is no longer mapped): `refcount` counts both.
//!
//! # Locking
//! Linux's `anon_vma->root->rwsem`; in kmem the task layer's `tasklist_lock` (see
//! [`super`]).

use core::ptr::NonNull;

use super::kalloc::KAlloc;
use super::mm::VmAreaStruct;
pub use super::mm::{AnonVma, AnonVmaChain};
use crate::errno::Errno;

/// Links `vma` to `av` (`anon_vma_chain_link`).
fn link(
    ka: &KAlloc,
    vma: &mut VmAreaStruct,
    vma_ptr: NonNull<VmAreaStruct>,
    mut av: NonNull<AnonVma>,
) -> Result<(), Errno> {
    // SAFETY: `av` is live (named by a chain or just made); tasklist_lock held.
    let avr = unsafe { av.as_mut() };
    let c = ka
        .new_box(AnonVmaChain {
            vma: vma_ptr,
            anon_vma: av,
            same_vma_next: vma.avc,
            prev: None,
            next: avr.head,
        })
        .ok_or(Errno::ENOMEM)?;
    if let Some(mut h) = avr.head {
        // SAFETY: a live chain on `av`'s list.
        unsafe { h.as_mut().prev = Some(c) };
    }
    avr.head = Some(c);
    avr.refcount += 1;
    vma.avc = Some(c);
    Ok(())
}

/// `anon_vma_prepare`: gives `vma` an anon_vma of its own if it has none (first write fault
/// of a private mapping).
///
/// # Errors
/// `ENOMEM`.
pub fn anon_vma_prepare(
    ka: &KAlloc,
    vma: &mut VmAreaStruct,
    vma_ptr: NonNull<VmAreaStruct>,
) -> Result<NonNull<AnonVma>, Errno> {
    if let Some(av) = vma.anon_vma {
        return Ok(av);
    }
    let av = ka
        .new_box(AnonVma {
            refcount: 0,
            head: None,
        })
        .ok_or(Errno::ENOMEM)?;
    if let Err(e) = link(ka, vma, vma_ptr, av) {
        // SAFETY: just made, unused.
        unsafe { ka.free_box(av) };
        return Err(e);
    }
    vma.anon_vma = Some(av);
    Ok(av)
}

/// `anon_vma_clone`: links `dst` to every anon_vma `src` is linked to (split, mremap move,
/// fork); `dst.anon_vma` becomes `src`'s.
///
/// # Errors
/// `ENOMEM` (the links made are undone).
pub fn anon_vma_clone(
    ka: &KAlloc,
    dst: &mut VmAreaStruct,
    dst_ptr: NonNull<VmAreaStruct>,
    src: &VmAreaStruct,
) -> Result<(), Errno> {
    let mut c = src.avc;
    // Collect in the source order; the destination list ends up reversed, which does not
    // matter (the walk visits anon_vma lists, not VMA lists).
    while let Some(p) = c {
        // SAFETY: a live chain of `src`.
        let ch = unsafe { p.as_ref() };
        if let Err(e) = link(ka, dst, dst_ptr, ch.anon_vma) {
            unlink_anon_vmas(ka, dst);
            return Err(e);
        }
        c = ch.same_vma_next;
    }
    dst.anon_vma = src.anon_vma;
    Ok(())
}

/// `anon_vma_fork`: the child's VMA gets the parent's chain and an anon_vma of its own,
/// where pages it faults in from now on go.
///
/// # Errors
/// `ENOMEM` (the child's links are undone).
pub fn anon_vma_fork(
    ka: &KAlloc,
    child: &mut VmAreaStruct,
    child_ptr: NonNull<VmAreaStruct>,
    parent: &VmAreaStruct,
) -> Result<(), Errno> {
    child.anon_vma = None;
    child.avc = None;
    if parent.anon_vma.is_none() {
        return Ok(());
    }
    anon_vma_clone(ka, child, child_ptr, parent)?;
    child.anon_vma = None;
    if let Err(e) = anon_vma_prepare(ka, child, child_ptr) {
        unlink_anon_vmas(ka, child);
        return Err(e);
    }
    Ok(())
}

/// Drops one reference of `av`, freeing it at zero (`put_anon_vma`).
///
/// # Safety
/// `av` must be live and the caller must own the reference it drops.
pub unsafe fn put_anon_vma(ka: &KAlloc, mut av: NonNull<AnonVma>) {
    // SAFETY: live by the caller's guarantee.
    let r = unsafe { av.as_mut() };
    r.refcount -= 1;
    if r.refcount == 0 {
        debug_assert!(r.head.is_none());
        // SAFETY: no chain names it and nobody pinned it.
        unsafe { ka.free_box(av) };
    }
}

/// `get_anon_vma`: pins `av` (a swap-cache page no longer mapped keeps its anon_vma).
///
/// # Safety
/// `av` must be live.
pub unsafe fn get_anon_vma(mut av: NonNull<AnonVma>) {
    // SAFETY: live by the caller's guarantee.
    unsafe { av.as_mut().refcount += 1 };
}

/// `unlink_anon_vmas`: removes all of `vma`'s links; anon_vmas nobody names any more are
/// freed.
pub fn unlink_anon_vmas(ka: &KAlloc, vma: &mut VmAreaStruct) {
    let mut c = vma.avc.take();
    while let Some(p) = c {
        // SAFETY: a live chain of `vma`, freed exactly once below.
        let ch = unsafe { ka.take_box(p) };
        let mut av = ch.anon_vma;
        // SAFETY: the anon_vma is live while this chain names it.
        let avr = unsafe { av.as_mut() };
        match ch.prev {
            // SAFETY: neighbours on the list are live chains.
            Some(mut q) => unsafe { q.as_mut().next = ch.next },
            None => avr.head = ch.next,
        }
        if let Some(mut n) = ch.next {
            // SAFETY: `n` is the chain after `ch` on the anon_vma's list, which we may change (the
            // anon_vma is live while `ch` names it, and its list is only touched under the task
            // layer's lock); its `prev` now skips `ch`.
            unsafe { n.as_mut().prev = ch.prev };
        }
        // SAFETY: we drop the reference this chain held.
        unsafe { put_anon_vma(ka, av) };
        c = ch.same_vma_next;
    }
    vma.anon_vma = None;
}

/// Calls `f` for every VMA linked to `av` (`anon_vma_interval_tree_foreach`, without the
/// range filter: callers check the page's address against each VMA).
///
/// # Safety
/// `av` must be live, and the VMAs on its list too (the task layer's lock held).
pub unsafe fn for_each_vma(av: NonNull<AnonVma>, mut f: impl FnMut(NonNull<VmAreaStruct>)) {
    // SAFETY: by the caller's guarantee.
    let mut c = unsafe { av.as_ref().head };
    while let Some(p) = c {
        // SAFETY: a live chain on the list.
        let ch = unsafe { p.as_ref() };
        let next = ch.next;
        f(ch.vma);
        c = next;
    }
}

/// How many anon_vmas `vma` is linked to (1 for its own; more after fork).
pub fn chains_of(vma: &VmAreaStruct) -> usize {
    let mut n = 0;
    let mut c = vma.avc;
    while let Some(p) = c {
        n += 1;
        // SAFETY: a live chain of `vma`.
        c = unsafe { p.as_ref().same_vma_next };
    }
    n
}
