//! Vmap areas (mm/vmalloc.c): the `struct vmap_area` objects, the free tree (augmented with
//! `subtree_max_size`: `find_vmap_lowest_match`, `merge_or_add_vmap_area`), the busy tree,
//! `alloc_vmap_area` / `free_vmap_area`, and lazy freeing with its purge
//! (`lazy_max_pages`, `__purge_vmap_area_lazy`).

use core::ptr;
use core::sync::atomic::Ordering;

use kds::rbtree::augmented::{rb_erase_augmented, rb_insert_augmented, RbAugmentCallbacks};
use kds::rbtree::{
    rb_add, rb_erase, rb_find, rb_link_node, rb_next, rb_parent, rb_prev, RbNode, RbRoot,
};

use crate::addr::{PAGE_SHIFT, PAGE_SIZE};
use crate::gfp::GfpFlags;
use crate::platform::{LogLevel, Platform};

use super::{
    va_size, FreeAugment, VmLayer, VmapArea, VmapAreas, LAZY_PAGES_PER_LOG, VM_UNINITIALIZED,
};

impl<P: Platform> VmLayer<P> {
    /// A `struct vmap_area`: from the stash of recently freed objects, else from the
    /// `vmap_area` kmem_cache (`vmap_area_cachep`), else (no cache) from a page of our own.
    pub(super) fn obj_alloc(&self, a: &mut VmapAreas) -> Option<*mut VmapArea> {
        if a.obj_free.is_null() {
            if let Some(c) = a.cache {
                let o = self
                    .kmem_cache_alloc(c, GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN)?
                    .as_ptr()
                    .cast::<VmapArea>();
                // SAFETY: a fresh object of the cache, sized and aligned for a VmapArea.
                unsafe { ptr::addr_of_mut!((*o).next).write(ptr::null_mut()) };
                // kmemleak: Linux scans a vmap_area from its rb_node on only
                // (alloc_vmap_area's kmemleak_scan_area), so that its addresses are not taken
                // for references to the block; kmem's vmap_area holds no pointer to a tracked
                // object at all (links to other vmap_areas, the page array, the caller), so
                // it is ignored: never scanned, never reported.
                self.kmemleak_ignore_tracked(o.cast());
                a.obj_free = o;
                a.obj_stash += 1;
            } else {
                let addr = self.__get_free_page(GfpFlags::GFP_KERNEL | GfpFlags::__GFP_NOWARN)?;
                let sz = core::mem::size_of::<VmapArea>();
                let n = PAGE_SIZE / sz;
                let base = addr.as_ptr::<VmapArea>();
                for i in 0..n {
                    // SAFETY: `i < n` objects fit in the fresh page, which is ours and aligned.
                    unsafe { stash_push(a, base.add(i)) };
                }
                a.obj_pages += 1;
            }
        }
        let o = a.obj_free;
        // SAFETY: `o` is on our stash, so it is a valid object slot.
        unsafe {
            a.obj_free = (*o).next;
            a.obj_stash -= 1;
            o.write(VmapArea {
                rb: RbNode::new(),
                va_start: 0,
                va_end: 0,
                subtree_max_size: 0,
                flags: 0,
                nr_pages: 0,
                pages: ptr::null_mut(),
                pages_order: 0,
                requested_size: 0,
                caller: None,
                phys_addr: 0,
                next: ptr::null_mut(),
            });
        }
        Some(o)
    }

    /// Gives stashed objects beyond [`OBJ_STASH_MAX`] back to the kmem_cache.
    fn obj_trim(&self, a: &mut VmapAreas) {
        let Some(c) = a.cache else { return };
        while a.obj_stash > OBJ_STASH_MAX {
            let o = a.obj_free;
            // SAFETY: `o` is on the stash (count > 0), an object of the cache.
            unsafe { a.obj_free = (*o).next };
            a.obj_stash -= 1;
            self.kmem_cache_free(c, o.cast());
        }
    }

    /// Finds and carves `size` bytes aligned to `align` out of the free tree within
    /// `[vstart, vend)`; returns the new busy area.
    fn alloc_vmap_area_locked(
        &self,
        a: &mut VmapAreas,
        size: u64,
        align: u64,
        vstart: u64,
        vend: u64,
    ) -> Option<*mut VmapArea> {
        if size == 0 || vend <= vstart || align > vend - vstart || size > vend - vstart {
            return None;
        }
        let adjust = !(align <= PAGE_SIZE as u64 || vend - vstart == size);
        let length = if adjust {
            size.checked_add(align - 1)?
        } else {
            size
        };
        // SAFETY: the free tree holds valid objects of our slab (areas lock held).
        let fva = unsafe { find_lowest_match(&a.free_root, size, align, vstart, length) }?;
        // SAFETY: `fva` is a free-tree node.
        let start = unsafe { align_up((*fva).va_start.max(vstart), align) };
        if start.checked_add(size)? > vend {
            return None;
        }
        let nva = self.obj_alloc(a)?;
        let Some(va) = self.obj_alloc(a) else {
            // SAFETY: `nva` is a fresh object, unused.
            unsafe { stash_push(a, nva) };
            return None;
        };
        // SAFETY: `fva` is in the free tree and contains [start, start+size); `nva` is a
        // fresh object used for an NE_FIT split or returned to the slab; `va` is fresh.
        unsafe {
            clip_free_area(a, fva, start, size, nva);
            (*va).va_start = start;
            (*va).va_end = start + size;
            // Hidden from /proc and find_vm_area until its owner publishes its flags
            // (under this lock); until then only the owner touches the other fields.
            (*va).flags = VM_UNINITIALIZED;
            insert_busy(a, va);
            Some(va)
        }
    }

    /// `alloc_vmap_area`: reserves address space, purging lazily freed areas and retrying
    /// once if none fits.
    pub(super) fn alloc_vmap_area(
        &self,
        size: u64,
        align: u64,
        vstart: u64,
        vend: u64,
        gfp: GfpFlags,
    ) -> Option<*mut VmapArea> {
        if !self.vm().ready.load(Ordering::Acquire) || !align.is_power_of_two() {
            return None;
        }
        let mut purged = false;
        loop {
            let r = {
                // Lock order: vmap_area_lock (rank 2), SLUB under it (obj_alloc, obj_trim);
                // docs/LOCKING.md.
                let mut a = self.vm().areas.lock();
                let r = self.alloc_vmap_area_locked(&mut a, size, align, vstart, vend);
                self.obj_trim(&mut a);
                r
            };
            if r.is_some() {
                return r;
            }
            if !purged {
                purged = true;
                if self.purge_vmap_area_lazy() {
                    continue;
                }
            }
            if !gfp.contains(GfpFlags::__GFP_NOWARN) {
                self.printk(
                    LogLevel::Warning,
                    format_args!(
                        "vmalloc_node_range for size {size} failed: Address range restricted to {vstart:#x} - {vend:#x}"
                    ),
                );
            }
            return None;
        }
    }

    /// Returns a busy area's address space to the free tree now (no lazy wait): used when
    /// nothing was ever mapped there.
    pub(super) fn free_vmap_area_now(&self, va: *mut VmapArea) {
        // Lock order: vmap_area_lock (rank 2), SLUB under it (obj_trim); docs/LOCKING.md.
        let mut a = self.vm().areas.lock();
        // SAFETY: `va` is a busy-tree node of ours.
        unsafe {
            unlink_busy(&mut a, va);
            merge_or_add_free(&mut a, va);
        }
        self.obj_trim(&mut a);
    }

    /// `free_vmap_area_noflush`: puts an unmapped area on the purge list; purges if
    /// `lazy_max_pages` is exceeded.
    pub(super) fn free_vmap_area_lazy(&self, va: *mut VmapArea) {
        // SAFETY: `va` was unlinked from the busy tree by the caller and is ours.
        let pages = unsafe { (va_size(&*va) >> PAGE_SHIFT) as usize };
        {
            // Lock order: vmap_area_lock (rank 2); docs/LOCKING.md.
            let mut a = self.vm().areas.lock();
            // SAFETY: `va` was unlinked by the caller and is ours; the purge list it joins is
            // protected by the areas lock we hold.
            unsafe { (*va).next = a.purge_head };
            a.purge_head = va;
            a.nr_lazy_areas += 1;
        }
        let nr = self.vm().lazy_nr.fetch_add(pages, Ordering::Relaxed) + pages;
        if nr > self.lazy_max_pages() {
            self.purge_vmap_area_lazy();
        }
    }

    /// `lazy_max_pages`: `fls(num_online_cpus()) * 32 MiB / PAGE_SIZE`, unless overridden.
    pub fn lazy_max_pages(&self) -> usize {
        let o = self.vm().lazy_max.load(Ordering::Relaxed);
        if o != usize::MAX {
            return o;
        }
        let fls = usize::BITS - self.nr_cpus().leading_zeros();
        fls as usize * LAZY_PAGES_PER_LOG
    }

    /// Overrides `lazy_max_pages` (`Some(0)`: every free purges at once, i.e. no lazy
    /// freeing); `None` restores Linux's value.
    pub fn set_lazy_max_pages(&self, pages: Option<usize>) {
        self.vm()
            .lazy_max
            .store(pages.unwrap_or(usize::MAX), Ordering::Relaxed);
    }

    /// `__purge_vmap_area_lazy`: one TLB flush over the union of the lazily freed areas,
    /// then their address space goes back to the free tree. Returns whether anything was
    /// purged.
    pub fn purge_vmap_area_lazy(&self) -> bool {
        if !self.vm().ready.load(Ordering::Acquire) {
            return false;
        }
        // Lock order: vmap_purge_lock (rank 1), vmap_area_lock and the page-table lock under it;
        // docs/LOCKING.md.
        let _p = self.vm().purge.lock();
        let (mut head, n) = {
            // Lock order: vmap_area_lock (rank 2), under vmap_purge_lock; taken again below;
            // docs/LOCKING.md.
            let mut a = self.vm().areas.lock();
            let h = a.purge_head;
            a.purge_head = ptr::null_mut();
            let n = a.nr_lazy_areas;
            a.nr_lazy_areas = 0;
            (h, n)
        };
        if head.is_null() {
            return false;
        }
        let (mut start, mut end, mut pages) = (u64::MAX, 0u64, 0usize);
        let mut p = head;
        while !p.is_null() {
            // SAFETY: purge-list nodes are ours, detached from the list above.
            unsafe {
                start = start.min((*p).va_start);
                end = end.max((*p).va_end);
                pages += (va_size(&*p) >> PAGE_SHIFT) as usize;
                p = (*p).next;
            }
        }
        {
            // Lock order: init_mm.page_table_lock (rank 5), under vmap_purge_lock; docs/LOCKING.md.
            let mut g = self.vm().pgt.lock();
            let (s, e) = crate::pgtable::TlbFlush::range(start, end).flush(&mut g.tlb);
            drop(g);
            self.platform().flush_tlb_kernel_range(s, e);
        }
        self.vm().lazy_nr.fetch_sub(pages, Ordering::Relaxed);
        // Lock order: vmap_area_lock (rank 2), again, under vmap_purge_lock; docs/LOCKING.md.
        let mut a = self.vm().areas.lock();
        while !head.is_null() {
            // SAFETY: every node on the detached purge list is an area unlinked from the busy tree
            // and owned by this purge; each is merged into the free tree (under the areas lock)
            // exactly once.
            unsafe {
                let next = (*head).next;
                merge_or_add_free(&mut a, head);
                head = next;
            }
        }
        self.obj_trim(&mut a);
        drop(a);
        let _ = n;
        self.vm().purges.fetch_add(1, Ordering::Relaxed);
        true
    }
}

// ---------------------------------------------------------------- tree helpers

/// Freed `vmap_area` objects kept for reuse before going back to the kmem_cache (Linux keeps
/// one preloaded object per CPU, `ne_fit_preload_node`).
const OBJ_STASH_MAX: usize = 16;

/// Puts an unused object on the stash.
///
/// # Safety
/// `o` is a valid object in no tree and no list; the areas lock is held.
unsafe fn stash_push(a: &mut VmapAreas, o: *mut VmapArea) {
    // SAFETY: the caller's guarantee.
    unsafe { ptr::addr_of_mut!((*o).next).write(a.obj_free) };
    a.obj_free = o;
    a.obj_stash += 1;
}

const fn align_up(v: u64, align: u64) -> u64 {
    (v + align - 1) & !(align - 1)
}

/// The free-tree value of `n` (`get_subtree_max_size`), 0 for an empty child.
///
/// # Safety
/// `n` is null or a free-tree node.
unsafe fn subtree_max(n: *mut RbNode) -> u64 {
    if n.is_null() {
        0
    } else {
        // SAFETY: by the caller's guarantee.
        unsafe { (*kds::container_of!(n, VmapArea, rb)).subtree_max_size }
    }
}

/// Whether `[align_up(max(va_start, vstart)), + size)` fits in `va` (`is_within_this_va`).
///
/// # Safety
/// `va` is valid.
unsafe fn fits(va: *const VmapArea, size: u64, align: u64, vstart: u64) -> bool {
    // SAFETY: by the caller's guarantee.
    let (s, e) = unsafe { ((*va).va_start, (*va).va_end) };
    let start = s.max(vstart);
    let Some(a) = start.checked_add(align - 1) else {
        return false;
    };
    let a = a & !(align - 1);
    match a.checked_add(size) {
        Some(end) => end <= e,
        None => false,
    }
}

/// `find_vmap_lowest_match`: the lowest free area in which an aligned `size` fits at or
/// above `vstart`, skipping subtrees whose largest area is below `length`.
///
/// # Safety
/// `root` is the free tree, with valid nodes.
unsafe fn find_lowest_match(
    root: &RbRoot,
    size: u64,
    align: u64,
    mut vstart: u64,
    length: u64,
) -> Option<*mut VmapArea> {
    let mut node = root.rb_node;
    // SAFETY: every node reached is a free-tree node (caller's guarantee).
    unsafe {
        while !node.is_null() {
            let va = kds::container_of!(node, VmapArea, rb);
            if subtree_max((*node).rb_left) >= length && vstart < (*va).va_start {
                node = (*node).rb_left;
                continue;
            }
            if fits(va, size, align, vstart) {
                return Some(va);
            }
            if subtree_max((*node).rb_right) >= length && vstart <= (*va).va_end {
                node = (*node).rb_right;
                continue;
            }
            // Climb until a node whose right subtree can still hold the request.
            loop {
                node = rb_parent(node);
                if node.is_null() {
                    return None;
                }
                let va = kds::container_of!(node, VmapArea, rb);
                if fits(va, size, align, vstart) {
                    return Some(va);
                }
                if subtree_max((*node).rb_right) >= length && vstart <= (*va).va_start {
                    // Everything left of here is done; search the right subtree from its
                    // own addresses on.
                    vstart = (*va).va_start + 1;
                    node = (*node).rb_right;
                    break;
                }
            }
        }
    }
    None
}

/// Inserts `va` into the free tree by address, keeping the augmented values.
///
/// # Safety
/// `va` is a valid object not in any tree; the areas lock is held (`a`).
pub(super) unsafe fn insert_free(a: &mut VmapAreas, va: *mut VmapArea) {
    // SAFETY: the caller's guarantees; nodes reached are free-tree nodes.
    unsafe {
        let mut link: *mut *mut RbNode = &mut a.free_root.rb_node;
        let mut parent = ptr::null_mut();
        while !(*link).is_null() {
            parent = *link;
            let p = kds::container_of!(parent, VmapArea, rb);
            link = if (*va).va_start < (*p).va_start {
                &mut (*parent).rb_left
            } else {
                &mut (*parent).rb_right
            };
        }
        (*va).subtree_max_size = 0;
        rb_link_node(&mut (*va).rb, parent, link);
        rb_insert_augmented::<FreeAugment>(&mut (*va).rb, &mut a.free_root);
        FreeAugment::propagate(&mut (*va).rb, ptr::null_mut());
        a.nr_free += 1;
    }
}

/// Removes `va` from the free tree.
///
/// # Safety
/// `va` is a free-tree node; the areas lock is held.
unsafe fn erase_free(a: &mut VmapAreas, va: *mut VmapArea) {
    // SAFETY: the caller's guarantees.
    unsafe {
        rb_erase_augmented::<FreeAugment>(&mut (*va).rb, &mut a.free_root);
        stash_push(a, va);
    }
    a.nr_free -= 1;
}

/// Carves `[start, start + size)` out of free area `fva` (`va_clip`): full fit removes it,
/// an edge fit shrinks it, a fit in the middle splits it using `nva`; `nva` goes back to the
/// slab if unused.
///
/// # Safety
/// `fva` is a free-tree node containing the range; `nva` a fresh object; lock held.
unsafe fn clip_free_area(
    a: &mut VmapAreas,
    fva: *mut VmapArea,
    start: u64,
    size: u64,
    nva: *mut VmapArea,
) {
    // SAFETY: the caller's guarantees.
    unsafe {
        let (s, e) = ((*fva).va_start, (*fva).va_end);
        let end = start + size;
        let mut nva_used = false;
        if s == start && e == end {
            erase_free(a, fva); // FL_FIT_TYPE
        } else if s == start {
            (*fva).va_start = end; // LE_FIT_TYPE
            FreeAugment::propagate(&mut (*fva).rb, ptr::null_mut());
        } else if e == end {
            (*fva).va_end = start; // RE_FIT_TYPE
            FreeAugment::propagate(&mut (*fva).rb, ptr::null_mut());
        } else {
            // NE_FIT_TYPE: the left part stays in `fva`, the right part becomes `nva`.
            (*fva).va_end = start;
            FreeAugment::propagate(&mut (*fva).rb, ptr::null_mut());
            (*nva).va_start = end;
            (*nva).va_end = e;
            insert_free(a, nva);
            nva_used = true;
        }
        if !nva_used {
            stash_push(a, nva);
        }
    }
}

/// `merge_or_add_vmap_area_augment`: returns `va`'s range to the free tree, merging with
/// the free neighbours it touches.
///
/// # Safety
/// `va` is a valid object in no tree; lock held.
unsafe fn merge_or_add_free(a: &mut VmapAreas, va: *mut VmapArea) {
    // SAFETY: the caller's guarantees; nodes reached are free-tree nodes.
    unsafe {
        // Find the neighbours: the last free area below and the first above.
        let mut node = a.free_root.rb_node;
        let mut below: *mut RbNode = ptr::null_mut();
        let mut above: *mut RbNode = ptr::null_mut();
        while !node.is_null() {
            let n = kds::container_of!(node, VmapArea, rb);
            if (*va).va_start < (*n).va_start {
                above = node;
                node = (*node).rb_left;
            } else {
                below = node;
                node = (*node).rb_right;
            }
        }
        debug_assert!(below.is_null() || rb_next(below) == above);
        debug_assert!(above.is_null() || rb_prev(above) == below);
        let mut merged: *mut VmapArea = ptr::null_mut();
        if !above.is_null() {
            let n = kds::container_of!(above, VmapArea, rb);
            if (*n).va_start == (*va).va_end {
                (*n).va_start = (*va).va_start;
                stash_push(a, va);
                merged = n;
            }
        }
        if !below.is_null() {
            let p = kds::container_of!(below, VmapArea, rb);
            let start = if merged.is_null() {
                (*va).va_start
            } else {
                (*merged).va_start
            };
            if (*p).va_end == start {
                if merged.is_null() {
                    (*p).va_end = (*va).va_end;
                    stash_push(a, va);
                } else {
                    (*p).va_end = (*merged).va_end;
                    erase_free(a, merged);
                }
                merged = p;
            }
        }
        if merged.is_null() {
            insert_free(a, va);
        } else {
            FreeAugment::propagate(&mut (*merged).rb, ptr::null_mut());
        }
    }
}

/// Inserts a busy area by address.
///
/// # Safety
/// `va` is a valid object in no tree; lock held.
unsafe fn insert_busy(a: &mut VmapAreas, va: *mut VmapArea) {
    // SAFETY: the caller's guarantees: `va` is unlinked and the busy tree's nodes are areas,
    // so `less` gets `rb` fields of valid areas.
    unsafe {
        rb_add(&mut (*va).rb, &mut a.busy_root, |x, y| {
            let (x, y) = (
                kds::container_of!(x.cast_mut(), VmapArea, rb),
                kds::container_of!(y.cast_mut(), VmapArea, rb),
            );
            (*x).va_start < (*y).va_start
        })
    };
    a.nr_busy += 1;
}

/// Removes a busy area.
///
/// # Safety
/// `va` is a busy-tree node; lock held.
pub(super) unsafe fn unlink_busy(a: &mut VmapAreas, va: *mut VmapArea) {
    // SAFETY: the caller's guarantees.
    unsafe { rb_erase(&mut (*va).rb, &mut a.busy_root) };
    a.nr_busy -= 1;
}

/// `__find_vmap_area`: the area of the tree containing `addr`.
///
/// # Safety
/// `root`'s nodes are valid areas.
pub(super) unsafe fn find_containing(root: &RbRoot, addr: u64) -> Option<*mut VmapArea> {
    // SAFETY: the caller's guarantee: every node is the `rb` field of a valid area.
    let n = unsafe {
        rb_find(root, |n| {
            let va = kds::container_of!(n.cast_mut(), VmapArea, rb);
            if addr < (*va).va_start {
                core::cmp::Ordering::Less
            } else if addr >= (*va).va_end {
                core::cmp::Ordering::Greater
            } else {
                core::cmp::Ordering::Equal
            }
        })
    };
    (!n.is_null()).then(|| kds::container_of!(n, VmapArea, rb))
}

/// Recomputes and checks `subtree_max_size` below `n`; returns the subtree's maximum.
///
/// # Safety
/// `n` is a free-tree node.
pub(super) unsafe fn check_max(n: *mut RbNode) -> Result<u64, &'static str> {
    // SAFETY: the caller's guarantee.
    unsafe {
        let va = kds::container_of!(n, VmapArea, rb);
        let mut m = va_size(&*va);
        for c in [(*n).rb_left, (*n).rb_right] {
            if !c.is_null() {
                m = m.max(check_max(c)?);
            }
        }
        if m != (*va).subtree_max_size {
            return Err("wrong subtree_max_size in the free tree");
        }
        Ok(m)
    }
}
