//! Slab geometry and slabs (mm/slab.c): `cache_estimate`, `calculate_slab_order` and the
//! choice between OBJFREELIST, off-slab and on-slab management; `cache_grow_begin` /
//! `cache_grow_end` (colouring, `alloc_slabmgmt`, `cache_init_objs`), `slab_get_obj` /
//! `slab_put_obj`, `fixup_slab_list`, `free_block`, `drain_freelist` and `slab_destroy`.

use core::ptr::{self, NonNull};

use kds::list::{self, ListHead};

use crate::addr::{Order, PAGE_SIZE};
use crate::gfp::GfpFlags;
use crate::mm::mm_types::{PagePtr, PageType};
use crate::mm::rcu::RcuHead;
use crate::mm::NodeStat;
use crate::platform::{LogLevel, Platform};
use crate::slab::common::{SlabFlags, KMALLOC_MAX_CACHE_SIZE};
use crate::slab::SlabLayer;

use super::{
    alloc_meta, free_meta, list_last, Cache, FreelistIdx, NodeLists, SlabPage,
    CFLGS_OBJFREELIST_SLAB, CFLGS_OFF_SLAB, COLOUR_SHIFT, IDX_SIZE, SLAB_OBJ_MAX_NUM,
};

/// `KMALLOC_MAX_ORDER` with SLAB's limits: `KMALLOC_SHIFT_MAX - PAGE_SHIFT`.
pub(super) const KMALLOC_MAX_ORDER: u32 = crate::addr::MAX_PAGE_ORDER;

/// `cache_estimate`: objects of `buffer_size` in a slab of `order`, and the leftover bytes.
/// The freelist takes room in the slab only for on-slab management.
pub(crate) fn cache_estimate(order: u32, buffer_size: usize, cflgs: u32) -> (u32, usize) {
    let slab_size = PAGE_SIZE << order;
    if cflgs & (CFLGS_OBJFREELIST_SLAB | CFLGS_OFF_SLAB) != 0 {
        ((slab_size / buffer_size) as u32, slab_size % buffer_size)
    } else {
        let per = buffer_size + IDX_SIZE;
        ((slab_size / per) as u32, slab_size % per)
    }
}

/// What `calculate_slab_order` chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Geometry {
    /// Objects per slab (`num`), 0 if nothing fits.
    pub(crate) num: u32,
    /// `gfporder`.
    pub(crate) order: u32,
    /// Leftover bytes (for colouring).
    pub(crate) left_over: usize,
}

/// The sizes of the kmalloc caches an off-slab freelist could use, as `calculate_slab_order`
/// asks `kmalloc_slab`: `Some((object stride, is off-slab))` or `None` when that cache does
/// not exist yet (early boot).
pub(crate) type FreelistCacheOf<'a> = &'a dyn Fn(usize) -> Option<(usize, bool)>;

/// `calculate_slab_order` for objects of stride `size` in a cache of object stride
/// `cache_size` (they differ only in what the off-slab check compares).
pub(crate) fn calculate_slab_order(
    size: usize,
    flags: SlabFlags,
    cflgs: u32,
    slab_max_order: u32,
    freelist_cache: FreelistCacheOf<'_>,
) -> Geometry {
    let mut g = Geometry::default();
    for order in 0..=KMALLOC_MAX_ORDER {
        let (num, remainder) = cache_estimate(order, size, cflgs);
        if num == 0 {
            continue;
        }
        // Can't handle more objects than freelist_idx_t can index.
        if num > SLAB_OBJ_MAX_NUM {
            break;
        }
        if cflgs & CFLGS_OFF_SLAB != 0 {
            let freelist_size = num as usize * IDX_SIZE;
            let freelist_cache_size = if freelist_size > KMALLOC_MAX_CACHE_SIZE {
                PAGE_SIZE << crate::slab::common::get_order(freelist_size)
            } else {
                match freelist_cache(freelist_size) {
                    // Needed to avoid a loop in cache_grow_begin().
                    Some((_, true)) | None => continue,
                    Some((sz, false)) => sz,
                }
            };
            // Is off-slab worth it?
            if freelist_cache_size > size / 2 {
                continue;
            }
        }
        g = Geometry {
            num,
            order,
            left_over: remainder,
        };
        // A VFS-reclaimable slab is mostly allocated GFP_NOFS: no higher orders.
        if flags.contains(SlabFlags::RECLAIM_ACCOUNT) {
            break;
        }
        if order >= slab_max_order {
            break;
        }
        // Acceptable internal fragmentation?
        if remainder * 8 <= PAGE_SIZE << order {
            break;
        }
    }
    g
}

/// The management choice of `__kmem_cache_create`: geometry, the `CFLGS_*` bits and
/// `colour` (leftover / `colour_off`). `None` is `-E2BIG`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn choose_management(
    size: usize,
    object_size: usize,
    flags: SlabFlags,
    has_ctor: bool,
    colour_off: usize,
    slab_max_order: u32,
    freelist_cache: FreelistCacheOf<'_>,
) -> Option<(Geometry, u32, u32)> {
    // set_objfreelist_slab_cache
    if !has_ctor && !flags.contains(SlabFlags::TYPESAFE_BY_RCU) {
        let g = calculate_slab_order(
            size,
            flags,
            CFLGS_OBJFREELIST_SLAB,
            slab_max_order,
            freelist_cache,
        );
        if g.num != 0 && g.num as usize * IDX_SIZE <= object_size {
            return Some((g, CFLGS_OBJFREELIST_SLAB, (g.left_over / colour_off) as u32));
        }
    }
    // set_off_slab_cache: never for SLAB_NOLEAKTRACE (kmemleak recursion).
    if !flags.contains(SlabFlags::NOLEAKTRACE) {
        let g = calculate_slab_order(size, flags, CFLGS_OFF_SLAB, slab_max_order, freelist_cache);
        // With room enough for the freelist in the leftover, keep it on-slab instead.
        if g.num != 0 && g.left_over < g.num as usize * IDX_SIZE {
            return Some((g, CFLGS_OFF_SLAB, (g.left_over / colour_off) as u32));
        }
    }
    // set_on_slab_cache
    let g = calculate_slab_order(size, flags, 0, slab_max_order, freelist_cache);
    (g.num != 0).then(|| (g, 0, (g.left_over / colour_off) as u32))
}

// ------------------------------------------------------------------ slabs

impl<P: Platform> SlabLayer<P> {
    /// `cache_grow_begin`: a new slab preferably on node `nid` (only there with
    /// `__GFP_THISNODE`), its colour (from the node it landed on), management and objects;
    /// on no list yet.
    pub(super) fn cache_grow_begin(
        &self,
        s: &Cache<P>,
        gfp: GfpFlags,
        nid: usize,
    ) -> Option<SlabPage> {
        let reclaim = GfpFlags::from_bits(
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
                // GFP_CONSTRAINT_MASK
                | GfpFlags::__GFP_HARDWALL.bits()
                | GfpFlags::__GFP_THISNODE.bits(),
        );
        let g = (gfp & reclaim) | s.allocflags;
        // kmem_getpages: __alloc_pages_node(nodeid, ...).
        let page = if self.nr_online_nodes() == 1 {
            self.alloc_pages(g, Order::new(s.gfporder))?
        } else {
            self.alloc_pages_node(nid as i32, g, Order::new(s.gfporder))?
        };
        // The colour of this slab: its node's colour_next, cycled.
        let offset = {
            // Lock order: &n->list_lock (rank 4), inside a CPU section; docs/LOCKING.md.
            let mut n = s.node(page.nid()).lock();
            n.colour_next += 1;
            if n.colour_next >= s.colour {
                n.colour_next = 0;
            }
            n.colour_next as usize * s.colour_off as usize
        };
        page.set_page_type(PageType::Slab);
        page.set_mapping(s as *const Cache<P> as usize);
        page.set_private(offset << COLOUR_SHIFT);
        let slab = SlabPage(page);
        if self.kmemcheck.built() {
            let bytes = PAGE_SIZE << s.gfporder;
            // SLAB's colour, objects and on-slab freelist: no tail is assumed.
            self.kmemcheck_new_slab(
                self.slab_addr(slab),
                bytes,
                bytes,
                s.flags,
                s.ctor.is_some(),
            );
        }
        // alloc_slabmgmt
        let freelist: *mut FreelistIdx = if s.objfreelist() {
            ptr::null_mut()
        } else if s.off_slab() {
            match alloc_meta(self, s.freelist_size as usize) {
                Some(p) => p.cast(),
                None => {
                    self.release_slab_page(slab);
                    return None;
                }
            }
        } else {
            self.slab_addr(slab)
                .wrapping_add((PAGE_SIZE << s.gfporder) - s.freelist_size as usize)
                .cast()
        };
        slab.set_freelist(freelist);
        let stat = if s.flags.contains(SlabFlags::RECLAIM_ACCOUNT) {
            NodeStat::SlabReclaimable
        } else {
            NodeStat::SlabUnreclaimable
        };
        self.mod_page_node_stat(slab.0, stat, 1isize << s.gfporder);
        self.cache_init_objs(s, slab);
        Some(slab)
    }

    /// `cache_init_objs` (+ `shuffle_freelist` is not used: kmem's SLAB keeps the index
    /// order, as with `CONFIG_SLAB_FREELIST_RANDOM=n`).
    fn cache_init_objs(&self, s: &Cache<P>, slab: SlabPage) {
        self.cache_init_objs_debug(s, slab);
        if s.objfreelist() {
            let last = self.index_to_obj(s, slab, s.num - 1);
            slab.set_freelist(last.wrapping_add(s.obj_offset as usize).cast());
        }
        for i in 0..s.num {
            if !s.debug() {
                if let Some(ctor) = s.ctor {
                    ctor(self.index_to_obj(s, slab, i));
                }
            }
            // SAFETY: the new slab is ours; its freelist has `num` entries.
            unsafe { slab.set_free_obj(i, i) };
        }
    }

    /// Gives a slab page back that never got objects (failed management allocation).
    fn release_slab_page(&self, slab: SlabPage) {
        if self.kmemcheck.built() {
            self.kmemcheck_untrack_pages(self.slab_addr(slab), PAGE_SIZE << slab.order());
        }
        let page = slab.0;
        page.clear_page_type();
        page.set_mapping(0);
        page.set_index(0);
        page.set_private(0);
        self.__free_pages(page, Order::new(slab.order()));
    }

    /// `slab_get_obj`.
    pub(super) fn slab_get_obj(&self, s: &Cache<P>, slab: SlabPage) -> *mut u8 {
        let a = slab.active();
        // SAFETY: `active < num` (callers check) and the slab has a freelist then.
        let idx = unsafe { slab.get_free_obj(a) };
        slab.set_active(a + 1);
        self.index_to_obj(s, slab, idx)
    }

    /// `slab_put_obj`: `objp` (a stride start of `slab`) is free again. With debugging the
    /// freelist is searched for it first (`slab: double free detected`); returns false (and
    /// changes nothing) then.
    pub(super) fn slab_put_obj(
        &self,
        s: &Cache<P>,
        slab: SlabPage,
        objp: *mut u8,
        objnr: u32,
    ) -> bool {
        if s.debug() && !slab.freelist().is_null() {
            for i in slab.active()..s.num {
                // SAFETY: under the list lock; `i < num`, the freelist is live.
                if unsafe { slab.get_free_obj(i) } == objnr {
                    self.slab_error_line(format_args!(
                        "slab: double free detected in cache '{}', objp {:016x}",
                        s.name(),
                        self.to_model(objp as usize)
                    ));
                    return false;
                }
            }
        }
        let a = slab.active() - 1;
        slab.set_active(a);
        if slab.freelist().is_null() {
            slab.set_freelist(objp.wrapping_add(s.obj_offset as usize).cast());
        }
        // SAFETY: under the list lock; `a < num`, the freelist is live now.
        unsafe { slab.set_free_obj(a, objnr) };
        true
    }

    /// `fixup_slab_list`: moves a slab to the list its `active` count says. A full
    /// OBJFREELIST slab drops its freelist (the object holding it is handed out).
    pub(super) fn fixup_slab_list(&self, s: &Cache<P>, n: &mut NodeLists, slab: SlabPage) {
        // SAFETY: the slab is on one of this node's lists or on none (a fresh slab whose
        // link was initialised), under the list lock.
        unsafe { list::list_del_init(slab.lru()) };
        if slab.active() == s.num {
            // SAFETY: the slab's link was just unlinked and re-initialised, and `slabs_full`
            // is an initialised head of this node; both are under the list lock (`n`).
            unsafe { list::list_add(slab.lru(), &mut n.slabs_full) };
            if s.objfreelist() {
                let holder = slab.freelist().cast::<u8>();
                slab.set_freelist(ptr::null_mut());
                if s.flags.contains(SlabFlags::POISON) && !holder.is_null() {
                    // The object that held the freelist goes out poisoned like the others
                    // (fixup_objfreelist_debug).
                    self.poison_obj(
                        s,
                        holder.wrapping_sub(s.obj_offset as usize),
                        super::POISON_FREE,
                    );
                }
            }
        } else {
            // SAFETY: the slab's link was just unlinked and re-initialised, and
            // `slabs_partial` is an initialised head of this node, under the list lock (`n`).
            unsafe { list::list_add(slab.lru(), &mut n.slabs_partial) };
        }
    }

    /// `cache_grow_end`: puts a grown slab on the node's lists.
    pub(super) fn cache_grow_end(&self, s: &Cache<P>, n: &mut NodeLists, slab: SlabPage) {
        // SAFETY: a fresh slab: its link is ours.
        unsafe { ListHead::init(slab.lru()) };
        n.total_slabs += 1;
        n.grown += 1;
        if slab.active() == 0 {
            // SAFETY: under the list lock.
            unsafe { list::list_add_tail(slab.lru(), &mut n.slabs_free) };
            n.free_slabs += 1;
        } else {
            self.fixup_slab_list(s, n, slab);
        }
        n.free_objects += (s.num - slab.active()) as usize;
    }

    /// The slab of a stride start `objp` of `s`, checked (`virt_to_slab` + cache).
    pub(super) fn slab_of(&self, s: &Cache<P>, objp: *mut u8) -> Option<(SlabPage, u32)> {
        let page = self.virt_to_page(crate::addr::VirtAddr::new(objp as usize))?;
        let head = page.compound_head();
        if head.page_type() != Some(PageType::Slab) || head.mapping() != s as *const _ as usize {
            return None;
        }
        let slab = SlabPage(head);
        self.obj_to_index(s, slab, objp).map(|i| (slab, i))
    }

    /// `free_block`: gives `objs` (stride starts, checked by the caller) back to their slabs
    /// and moves slabs beyond `free_limit` from `slabs_free` to `to_destroy`.
    pub(super) fn free_block(
        &self,
        s: &Cache<P>,
        n: &mut NodeLists,
        objs: &[*mut u8],
        to_destroy: *mut ListHead,
    ) {
        for &objp in objs {
            let Some((slab, objnr)) = self.slab_of(s, objp) else {
                continue;
            };
            // The caller holds the object's home node (its slab's node): alien frees go
            // home through node.rs, never into another node's lists.
            debug_assert_eq!(
                slab.0.nid(),
                usize::from(n.nid),
                "free_block on a foreign node"
            );
            if !self.slab_put_obj(s, slab, objp, objnr) {
                continue;
            }
            n.free_objects += 1;
            // SAFETY: the slab is on one of this node's lists, under the list lock.
            unsafe { list::list_del(slab.lru()) };
            if slab.active() == 0 {
                // SAFETY: the slab was just unlinked (its link is ours to reuse) and
                // `slabs_free` is an initialised head of this node, under the list lock.
                unsafe { list::list_add(slab.lru(), &mut n.slabs_free) };
                n.free_slabs += 1;
            } else {
                // Unconditionally to the end of the partial list: the most time for its other
                // objects to be freed too.
                // SAFETY: the slab was just unlinked and `slabs_partial` is an initialised
                // head of this node, under the list lock.
                unsafe { list::list_add_tail(slab.lru(), &mut n.slabs_partial) };
            }
        }
        while n.free_objects > n.free_limit {
            // SAFETY: the node's free list under its lock.
            let Some(l) = (unsafe { list_last(&n.slabs_free) }) else {
                break;
            };
            n.free_objects -= s.num as usize;
            // SAFETY: `l` is a linked entry of the node's free list (just found there) under
            // its lock, so its neighbours are live; `to_destroy` is the caller's initialised
            // local list, which nobody else can reach.
            unsafe {
                list::list_del(l);
                list::list_add(l, to_destroy);
            }
            n.free_slabs -= 1;
            n.total_slabs -= 1;
            n.reaped += 1;
        }
    }

    /// `slabs_destroy`: destroys every slab of a local list (no lock held).
    pub(super) fn slabs_destroy(&self, s: &Cache<P>, list_head: *mut ListHead) {
        // SAFETY: the caller's local list of slabs taken off the node's lists.
        while let Some(l) = unsafe { list::list_first(list_head) } {
            // SAFETY: `l` is a linked entry of the caller's local list (no one else reaches
            // it), so unlinking touches only that list's links.
            unsafe { list::list_del(l) };
            // SAFETY: the local list holds only slabs moved there from a node's lists,
            // linked through their `slab_list`.
            self.slab_destroy(s, unsafe { SlabPage::from_lru(l) });
        }
    }

    /// `slab_destroy`: checks the free objects (debugging), frees the pages and an off-slab
    /// freelist.
    pub(super) fn slab_destroy(&self, s: &Cache<P>, slab: SlabPage) {
        self.slab_destroy_debugcheck(s, slab);
        let freelist = slab.freelist();
        let order = slab.order();
        if self.kmemcheck.built() {
            self.kmemcheck_untrack_pages(self.slab_addr(slab), PAGE_SIZE << order);
        }
        let stat = if s.flags.contains(SlabFlags::RECLAIM_ACCOUNT) {
            NodeStat::SlabReclaimable
        } else {
            NodeStat::SlabUnreclaimable
        };
        let page = slab.0;
        self.mod_page_node_stat(page, stat, -(1isize << order));
        page.clear_page_type();
        page.set_mapping(0);
        page.set_index(0);
        page.set_private(0);
        if s.flags.contains(SlabFlags::TYPESAFE_BY_RCU) {
            // Readers that found an object in this slab may still read it: the pages go back
            // after a grace period (`call_rcu(&slab->rcu_head, kmem_rcu_free)`). The slab's
            // list link becomes the `rcu_head`; the layer and the order ride in `private`
            // and `index`.
            page.set_private(self as *const Self as usize);
            page.set_index(order as usize);
            let head = page.lru().cast::<RcuHead>();
            // SAFETY: the link is two words, 8-aligned, of a page off every list, untouched
            // until `kmem_rcu_free` gets it back; `kmem_rcu_free::<P>` expects exactly this
            // layer type in `private`, and the layer outlives its callbacks (they run only
            // from this machine's RCU state).
            unsafe { self.call_rcu(NonNull::new_unchecked(head), kmem_rcu_free::<P>) };
        } else {
            // SAFETY: the slab is off every list; reset its link to a harmless value.
            unsafe { ListHead::init(page.lru()) };
            self.__free_pages(page, Order::new(order));
        }
        // As Linux: the freelist is not used from here, even if the pages wait for RCU.
        if s.off_slab() {
            free_meta(self, freelist.cast());
        }
    }

    /// `drain_freelist`: frees up to `tofree` slabs of node `nid`'s free list; returns how
    /// many.
    pub(super) fn drain_freelist(&self, s: &Cache<P>, nid: usize, tofree: usize) -> usize {
        let mut freed = 0;
        while freed < tofree {
            let slab = {
                // Lock order: &n->list_lock (rank 4); slab destroyed after; docs/LOCKING.md.
                let mut n = s.node(nid).lock();
                // SAFETY: the node's free list under its lock.
                let Some(l) = (unsafe { list_last(&n.slabs_free) }) else {
                    break;
                };
                // SAFETY: `l` is a linked entry of the node's free list (just returned by
                // `list_last`) and we hold the list lock, so its neighbours are live.
                unsafe { list::list_del(l) };
                n.free_objects -= s.num as usize;
                n.free_slabs -= 1;
                n.total_slabs -= 1;
                n.reaped += 1;
                // SAFETY: free-list entries are slab links.
                unsafe { SlabPage::from_lru(l) }
            };
            self.slab_destroy(s, slab);
            freed += 1;
        }
        freed
    }

    /// Prints one `pr_err` line of a SLAB report and counts a slab error.
    pub(super) fn slab_error_line(&self, args: core::fmt::Arguments<'_>) {
        self.slab()
            .errors
            .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        self.count_bug();
        self.add_taint(crate::debug::TAINT_BAD_PAGE);
        self.printk(LogLevel::Err, args);
    }
}

/// `kmem_rcu_free`: the RCU callback of a `SLAB_TYPESAFE_BY_RCU` slab; its pages go back to
/// the page allocator now that a grace period has passed.
///
/// # Safety
/// `head` is the `lru` link of a slab page queued by `slab_destroy` of a `SlabLayer<P>`.
unsafe fn kmem_rcu_free<P: Platform>(head: NonNull<RcuHead>) {
    // SAFETY: the caller's guarantee: `head` is a page's `lru` in the live memmap.
    let page = unsafe { PagePtr::from_lru(head.as_ptr().cast::<ListHead>()) };
    // SAFETY: `slab_destroy` stored the address of its `SlabLayer<P>`, which lives as long
    // as the machine, whose RCU state runs this callback.
    let layer = unsafe { &*(page.private() as *const SlabLayer<P>) };
    let order = page.index() as u32;
    page.set_private(0);
    page.set_index(0);
    // SAFETY: the page is ours (off every list); reset its link to a harmless value.
    unsafe { ListHead::init(page.lru()) };
    layer.__free_pages(page, Order::new(order));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_kmalloc(_: usize) -> Option<(usize, bool)> {
        None
    }

    #[test]
    fn estimate_matches_linux() {
        // 64-byte objects on-slab: 4096 / (64 + 1) = 63, leftover 4096 - 63 * 65 = 1.
        assert_eq!(cache_estimate(0, 64, 0), (63, 1));
        // OBJFREELIST: the whole page.
        assert_eq!(cache_estimate(0, 64, CFLGS_OBJFREELIST_SLAB), (64, 0));
        assert_eq!(cache_estimate(1, 3000, CFLGS_OFF_SLAB), (2, 2192));
    }

    #[test]
    fn kmalloc_geometry_is_objfreelist_with_linux_counts() {
        // (size, num, order) as /proc/slabinfo of a SLAB kernel shows them (slab_max_order 1
        // on machines above 32 MiB).
        // kmalloc-32 cannot keep its 128-byte freelist in a 32-byte object and is created
        // before any kmalloc cache could hold it off-slab: on-slab, 4096 / 33 = 124.
        let (g, cflgs, _) =
            choose_management(32, 32, SlabFlags::HWCACHE_ALIGN, false, 64, 1, &no_kmalloc).unwrap();
        assert_eq!((g.num, g.order, cflgs), (124, 0, 0));
        for (size, num, order) in [
            (64usize, 64u32, 0u32),
            (128, 32, 0),
            (192, 21, 0),
            (256, 16, 0),
            (512, 8, 0),
            (1024, 4, 0),
            (2048, 2, 0),
            (4096, 1, 0),
            (8192, 1, 1),
        ] {
            let (g, cflgs, _) = choose_management(
                size,
                size,
                SlabFlags::HWCACHE_ALIGN,
                false,
                64,
                1,
                &no_kmalloc,
            )
            .unwrap();
            assert_eq!((g.num, g.order), (num, order), "size {size}");
            assert_eq!(cflgs, CFLGS_OBJFREELIST_SLAB, "size {size}");
        }
    }

    #[test]
    fn ctor_caches_use_on_or_off_slab() {
        // With a constructor the freelist cannot live in an object: 64-byte objects go
        // on-slab (63 per page), large ones off-slab when a small kmalloc cache exists.
        let (g, cflgs, colour) =
            choose_management(64, 64, SlabFlags::NONE, true, 64, 1, &no_kmalloc).unwrap();
        assert_eq!((g.num, cflgs, colour), (63, 0, 0));
        let kmalloc = |n: usize| Some((n.next_power_of_two().max(32), false));
        let (g, cflgs, _) =
            choose_management(1024, 1024, SlabFlags::NONE, true, 64, 1, &kmalloc).unwrap();
        assert_eq!((g.num, g.order, cflgs), (4, 0, CFLGS_OFF_SLAB));
        // Without kmalloc caches (early boot) off-slab is impossible: on-slab, 3 objects.
        let (g, cflgs, colour) =
            choose_management(1024, 1024, SlabFlags::NONE, true, 64, 1, &no_kmalloc).unwrap();
        assert_eq!((g.num, g.order, cflgs), (7, 1, 0));
        assert_eq!(colour as usize, ((PAGE_SIZE << 1) - 7 * 1025) / 64);
    }

    #[test]
    fn reclaimable_caches_stay_at_order_zero_and_big_objects_fit() {
        let (g, _, _) = choose_management(
            3000,
            3000,
            SlabFlags::RECLAIM_ACCOUNT,
            true,
            64,
            1,
            &no_kmalloc,
        )
        .unwrap();
        assert_eq!((g.num, g.order), (1, 0));
        // 1 MiB objects: order 8, one object.
        let (g, _, _) =
            choose_management(1 << 20, 1 << 20, SlabFlags::NONE, false, 64, 1, &no_kmalloc)
                .unwrap();
        assert_eq!((g.num, g.order), (1, 8));
    }
}
