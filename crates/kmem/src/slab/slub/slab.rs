//! Slabs themselves (mm/slub.c): `new_slab` (`allocate_slab`, `shuffle_freelist`,
//! `setup_object`) and `discard_slab`, and the node lists (`add_partial`, `remove_partial`, the
//! debug full list, `count_partial`, `free_partial`).

use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering;

use kds::list::{self, ListHead};

use crate::addr::{Order, PAGE_SIZE};
use crate::gfp::GfpFlags;
use crate::mm::mm_types::{Page, PagePtr, PageType};
use crate::mm::rcu::RcuHead;
use crate::mm::NodeStat;
use crate::page_alloc::NUMA_NO_NODE;
use crate::platform::Platform;
use crate::slab::common::{order_objects, SlabFlags, MAX_OBJS_PER_PAGE};
use crate::slab::SlabLayer;

use super::debug::TrackItem;
use super::nodes::{count_partial, Count};
use super::{
    Cache, Counters, KmemCacheNode, NodeLists, Slab, Stat, GFP_RECLAIM_MASK, ON_FULL, ON_PARTIAL,
    POISON_INUSE, SLUB_RED_INACTIVE,
};

// ------------------------------------------------------------------ slab creation

/// What [`SlabLayer::refill_step`] found.
pub(super) enum Refill {
    /// Take from this node's partial list.
    Partial(usize),
    /// A new slab and its freelist.
    Slab(Slab, *mut u8),
}

/// A new slab from [`SlabLayer::new_slab_bulk`]: frozen, every object counted in use (the
/// caller owns them all).
pub(super) struct NewSlab {
    pub(super) slab: Slab,
    /// The first object of the freelist order.
    pub(super) first: *mut u8,
    /// How many objects after `first` went into the caller's `out` slots.
    pub(super) taken: usize,
    /// The chain of the objects left (null when none): the CPU freelist.
    pub(super) rest: *mut u8,
}

impl<P: Platform> SlabLayer<P> {
    /// `setup_object`: debug initialisation and the constructor.
    fn setup_object(&self, s: &Cache<P>, obj: *mut u8) {
        if s.flags
            .intersects(SlabFlags::STORE_USER | SlabFlags::RED_ZONE | SlabFlags::OBJECT_POISON)
        {
            self.init_object(s, obj, SLUB_RED_INACTIVE);
            if s.flags.contains(SlabFlags::STORE_USER) {
                self.set_track(s, obj, TrackItem::Free, None);
                self.set_track(s, obj, TrackItem::Alloc, None);
            }
        }
        if let Some(ctor) = s.ctor {
            ctor(obj);
        }
    }

    /// `alloc_slab_page`: the page allocator, or its never-waiting `alloc_pages_nolock`
    /// when the caller cannot spin (`kmalloc_nolock`; it serves orders up to
    /// `PAGE_ALLOC_COSTLY_ORDER` only, so a higher `oo` falls back to `min`).
    /// A specific `node` takes `alloc_pages_node` (`__alloc_frozen_pages(flags, order, node)`)
    /// or `alloc_pages_nolock(…, node, …)`.
    fn alloc_slab_page(
        &self,
        gfp: GfpFlags,
        order: u32,
        allow_spin: bool,
        node: i32,
    ) -> Option<PagePtr> {
        if node != NUMA_NO_NODE && allow_spin {
            self.alloc_pages_node(node, gfp, Order::new(order))
        } else if allow_spin {
            self.alloc_pages(gfp, Order::new(order))
        } else {
            self.alloc_pages_nolock_node(GfpFlags::empty, node, Order::new(order))
        }
    }

    /// `___slab_alloc` once the partial list of the node asked for (`NUMA_NO_NODE`: the
    /// local node `local`) had nothing: step `*step` (starting at 0, advanced here) of
    /// - `NUMA_NO_NODE`: another node's partial slabs (`get_any_partial`), then a new slab;
    /// - a node with `__GFP_THISNODE`: a new slab on the node only;
    /// - a node without it (`try_thisnode`): a new slab on the node with `GFP_NOWAIT |
    ///   __GFP_THISNODE`, then another node's partial slabs, then a new slab with the
    ///   caller's flags through the node's zonelist.
    ///
    /// Returns the node whose partial list to take next, or a new slab (counters: all in
    /// use, frozen) and its freelist; `None` when every step failed.
    pub(super) fn refill_step(
        &self,
        s: &Cache<P>,
        gfp: GfpFlags,
        allow_spin: bool,
        node: i32,
        local: usize,
        step: &mut u32,
    ) -> Option<Refill> {
        #[derive(Clone, Copy)]
        enum Step {
            AnyPartial,
            NewSlab(GfpFlags),
        }
        let nowait = GfpFlags::GFP_NOWAIT | GfpFlags::__GFP_THISNODE;
        let plan: &[Step] = if node == NUMA_NO_NODE {
            &[Step::AnyPartial, Step::NewSlab(gfp)]
        } else if gfp.contains(GfpFlags::__GFP_THISNODE) {
            &[Step::NewSlab(gfp)]
        } else {
            &[Step::NewSlab(nowait), Step::AnyPartial, Step::NewSlab(gfp)]
        };
        while let Some(&st) = plan.get(*step as usize) {
            *step += 1;
            match st {
                Step::AnyPartial => {
                    if let Some(nid) = self.get_any_partial(s, local, Some) {
                        return Some(Refill::Partial(nid));
                    }
                }
                Step::NewSlab(g) => {
                    if let Some((slab, fl)) = self.new_slab_node(s, g, allow_spin, node) {
                        return Some(Refill::Slab(slab, fl));
                    }
                }
            }
        }
        None
    }

    /// `allocate_slab` + `shuffle_freelist` on `node` (`NUMA_NO_NODE`: anywhere, the CPU's
    /// node first): a new slab with all objects chained. Returns the slab (counters: freelist
    /// empty, all in use, frozen) and the freelist head. `allow_spin` is Linux's
    /// `gfpflags_allow_spinning`: false for `kmalloc_nolock`.
    pub(super) fn new_slab_node(
        &self,
        s: &Cache<P>,
        gfp: GfpFlags,
        allow_spin: bool,
        node: i32,
    ) -> Option<(Slab, *mut u8)> {
        self.new_slab_bulk(s, gfp, allow_spin, node, &mut [])
            .map(|n| (n.slab, n.first))
    }

    /// `allocate_slab` that hands the objects after the first straight to a sheaf refill:
    /// objects 2, 3, … of the freelist order (the cache's random sequence, or address order)
    /// go into `out` from its last slot down (a sheaf pops its top first, so they come out in
    /// freelist order), and only the objects left over are chained. The chain's free
    /// pointers are what the refill would read back one by one — each store and load a miss
    /// into the cold slab, the loads serialised (docs/BENCHMARKS.md, "Issue 14, session 6").
    /// With an empty `out` this is Linux's freelist: every object chained, `first` first.
    /// Every object still goes through `setup_object`, in freelist order.
    pub(super) fn new_slab_bulk(
        &self,
        s: &Cache<P>,
        gfp: GfpFlags,
        allow_spin: bool,
        node: i32,
        out: &mut [*mut u8],
    ) -> Option<NewSlab> {
        let base_gfp = (gfp & GFP_RECLAIM_MASK) | s.allocflags;
        let mut order = s.order;
        let mut page = None;
        if s.order > s.min_order {
            // Higher order first, without reclaim or warnings (allocate_slab).
            let g = (base_gfp | GfpFlags::__GFP_NOWARN | GfpFlags::__GFP_NOMEMALLOC)
                .without(GfpFlags::__GFP_DIRECT_RECLAIM);
            page = self.alloc_slab_page(g | GfpFlags::__GFP_COMP, order, allow_spin, node);
            if page.is_none() {
                order = s.min_order;
                s.stat(Stat::OrderFallback);
            }
        }
        if page.is_none() {
            let comp = if order > 0 {
                GfpFlags::__GFP_COMP
            } else {
                GfpFlags::empty
            };
            page = self.alloc_slab_page(base_gfp | comp, order, allow_spin, node);
        }
        let page = page?;
        let objects = if order == s.order {
            s.objects
        } else {
            order_objects(order, s.size).min(MAX_OBJS_PER_PAGE)
        };
        page.set_page_type(PageType::Slab);
        page.set_mapping(s as *const Cache<P> as usize);
        page.set_private(objects as usize);
        let slab = Slab(page);
        let pages = 1isize << order;
        let stat = if s.flags.contains(SlabFlags::RECLAIM_ACCOUNT) {
            NodeStat::SlabReclaimable
        } else {
            NodeStat::SlabUnreclaimable
        };
        self.mod_page_node_stat(page, stat, pages);
        // inc_slabs_node(s, slab_nid(slab), objects).
        let kn = self.get_node(s, page.nid());
        kn.nr_slabs.fetch_add(1, Ordering::Relaxed);
        kn.total_objects
            .fetch_add(objects as usize, Ordering::Relaxed);
        // Counted before the freelist is written: a locked add after it would wait for the
        // stores into every object of the (usually cold) slab to drain.
        s.stat(Stat::AllocSlab);

        let base = self.slab_base(slab);
        if self.kmemcheck.built() {
            let used = s.red_left_pad as usize + objects as usize * s.size as usize;
            self.kmemcheck_new_slab(base, PAGE_SIZE << order, used, s.flags, s.ctor.is_some());
        }
        if s.flags.contains(SlabFlags::POISON) {
            // SAFETY: the whole slab is ours (just allocated).
            unsafe { ptr::write_bytes(base, POISON_INUSE, PAGE_SIZE << order) };
        }
        let start = base.wrapping_add(s.red_left_pad as usize);
        let size = s.size as usize;
        let n = objects as usize;
        // shuffle_freelist: follow the cache's random sequence from a random start.
        let random = !s.random_seq.is_null() && objects == s.objects && objects > 1;
        let pos = if random {
            (self.platform().random_u64() % n as u64) as usize
        } else {
            0
        };
        // The `k`-th object of the freelist order.
        let nth = |k: usize| {
            if random {
                let i = if pos + k >= n { pos + k - n } else { pos + k };
                // SAFETY: `random_seq` has `s.objects` (== `n`) entries and `i` < `n`.
                let idx = unsafe { *s.random_seq.add(i) } as usize;
                start.wrapping_add(idx * size)
            } else {
                start.wrapping_add(k * size)
            }
        };
        let first = nth(0);
        self.setup_object(s, first);
        let taken = out.len().min(n - 1);
        let top = out.len();
        for k in 1..=taken {
            let o = nth(k);
            self.setup_object(s, o);
            out[top - k] = o;
        }
        let rest = if taken + 1 < n {
            nth(taken + 1)
        } else {
            ptr::null_mut()
        };
        if !rest.is_null() {
            let mut cur = rest;
            self.setup_object(s, cur);
            for k in taken + 2..n {
                let nx = nth(k);
                self.setup_object(s, nx);
                // SAFETY: both are objects of the new slab, which we own.
                unsafe { s.set_fp(cur, nx) };
                cur = nx;
            }
            // SAFETY: `cur` is the last object of the freelist order of the new slab, which we
            // own and nobody else can reach yet; its NULL free pointer ends the freelist.
            unsafe { s.set_fp(cur, ptr::null_mut()) };
        }
        if taken == 0 {
            // SAFETY: `first` is an object of the new slab, which we own; it heads the chain.
            unsafe { s.set_fp(first, rest) };
        }
        slab.set_counters(Counters::new(ptr::null_mut(), base, objects, true));
        Some(NewSlab {
            slab,
            first,
            taken,
            rest,
        })
    }

    /// `discard_slab`: gives an empty slab back to the page allocator.
    pub(super) fn discard_slab(&self, s: &Cache<P>, slab: Slab) {
        if s.flags.contains(SlabFlags::CONSISTENCY_CHECKS) {
            self.slab_pad_check(s, slab);
            let start = self.slab_base(slab).wrapping_add(s.red_left_pad as usize);
            for i in 0..slab.objects() as usize {
                self.check_object(
                    s,
                    slab,
                    start.wrapping_add(i * s.size as usize),
                    SLUB_RED_INACTIVE,
                );
            }
        }
        let order = slab.order();
        let objects = slab.objects();
        if self.kmemcheck.built() {
            self.kmemcheck_untrack_pages(self.slab_base(slab), PAGE_SIZE << order);
        }
        // dec_slabs_node(s, slab_nid(slab), objects).
        let kn = self.get_node(s, slab.0.nid());
        kn.nr_slabs.fetch_sub(1, Ordering::Relaxed);
        kn.total_objects
            .fetch_sub(objects as usize, Ordering::Relaxed);
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
        s.stat(Stat::FreeSlab);
        if s.flags.contains(SlabFlags::TYPESAFE_BY_RCU) {
            // `rcu_free_slab`: readers that found an object in this slab may still read it
            // until a grace period has passed, so the pages stay out of the page allocator
            // until then. The slab's list link becomes the `rcu_head` (Linux overlays them in
            // `struct slab`); the layer and the order ride in `private` and `index`.
            page.set_private(self as *const Self as usize);
            page.set_index(order as usize);
            let head = page.lru().cast::<RcuHead>();
            // SAFETY: the link is two words, 8-aligned, of a page off every list, and nobody
            // touches it until `rcu_free_slab` gets it back; `rcu_free_slab::<P>` expects
            // exactly this layer type in `private`, and the layer outlives every callback
            // (the machine's state).
            unsafe { self.call_rcu(NonNull::new_unchecked(head), rcu_free_slab::<P>) };
            return;
        }
        page.set_private(0);
        // SAFETY: the slab is off every list; reset its link to a harmless value.
        unsafe { ListHead::init(page.lru()) };
        self.__free_pages(page, Order::new(order));
    }
}

/// The RCU callback of a `SLAB_TYPESAFE_BY_RCU` slab (`rcu_free_slab` → `__free_slab`): its
/// pages go back to the page allocator now that a grace period has passed.
///
/// # Safety
/// `head` is the `lru` link of a slab page queued by `discard_slab` of a `SlabLayer<P>`.
unsafe fn rcu_free_slab<P: Platform>(head: NonNull<RcuHead>) {
    // SAFETY: the caller's guarantee: `head` is a page's `lru` in the live memmap.
    let page = unsafe { PagePtr::from_lru(head.as_ptr().cast::<ListHead>()) };
    // SAFETY: `discard_slab` stored the address of its `SlabLayer<P>`, which lives as long as
    // the machine, and the machine outlives its callbacks.
    let layer = unsafe { &*(page.private() as *const SlabLayer<P>) };
    let order = page.index() as u32;
    page.set_private(0);
    page.set_index(0);
    // SAFETY: the page is ours (off every list); reset its link to a harmless value.
    unsafe { ListHead::init(page.lru()) };
    layer.__free_pages(page, Order::new(order));
}

// ------------------------------------------------------------------ node lists

/// The first slab of a node's partial list (`get_partial_node`'s first candidate).
pub(super) fn first_partial(n: &NodeLists) -> Option<*mut ListHead> {
    // SAFETY: this node's partial list, under its lock (the caller holds `n`).
    unsafe { list::list_first(&n.partial) }
}

pub(super) fn add_partial(n: &mut NodeLists, slab: Slab, tail: bool) {
    slab.set(ON_PARTIAL, true);
    n.nr_partial += 1;
    let head: *mut ListHead = &mut n.partial;
    // SAFETY: the list head lives in the (pinned) cache; the slab is on no list (ON_PARTIAL
    // and ON_FULL were clear) and we hold the list lock.
    unsafe {
        if tail {
            list::list_add_tail(slab.0.lru(), head)
        } else {
            list::list_add(slab.0.lru(), head)
        }
    }
}

pub(super) fn remove_partial(n: &mut NodeLists, slab: Slab) {
    debug_assert!(slab.test(ON_PARTIAL));
    // SAFETY: the slab is on this node's partial list (ON_PARTIAL), under the list lock.
    unsafe { list::list_del(slab.0.lru()) };
    slab.set(ON_PARTIAL, false);
    n.nr_partial -= 1;
}

pub(super) fn add_full(n: &mut NodeLists, slab: Slab) {
    slab.set(ON_FULL, true);
    // SAFETY: the full list head lives in the (pinned) cache node behind `n`, the list lock the
    // caller holds (`&mut NodeLists`); the slab is on no list (ON_PARTIAL and ON_FULL were clear),
    // so linking its `lru` cannot corrupt another list.
    unsafe { list::list_add(slab.0.lru(), &mut n.full) };
}

pub(super) fn remove_full(slab: Slab) {
    if slab.test(ON_FULL) {
        // SAFETY: on this node's full list (ON_FULL), under the list lock.
        unsafe { list::list_del(slab.0.lru()) };
        slab.set(ON_FULL, false);
    }
}

/// Collects slabs of a list into a fixed array batch (to discard after unlocking).
pub(super) struct Discard {
    pub(super) slabs: [*mut Page; 32],
    pub(super) n: usize,
}

impl Discard {
    pub(super) const fn new() -> Self {
        Self {
            slabs: [ptr::null_mut(); 32],
            n: 0,
        }
    }
    pub(super) fn push(&mut self, s: Slab) -> bool {
        if self.n == self.slabs.len() {
            return false;
        }
        self.slabs[self.n] = s.raw();
        self.n += 1;
        true
    }
}

/// `count_partial(n, count_free)` summed over the nodes.
pub(super) fn count_partial_free<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>) -> usize {
    m.for_each_kmem_cache_node(s)
        .map(|(_, n)| count_partial(n, Count::Free))
        .sum()
}

/// Takes every empty slab off every node's partial list and gives it back to the page
/// allocator, a bounded batch per list-lock hold (`free_partial`/`__kmem_cache_do_shrink`
/// for each node).
pub(super) fn discard_empty_partials<P: Platform>(m: &SlabLayer<P>, s: &Cache<P>) {
    for (_, kn) in m.for_each_kmem_cache_node(s) {
        discard_node_empty_partials(m, s, kn);
    }
}

fn discard_node_empty_partials<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    kn: &KmemCacheNode<P::RawLock>,
) {
    let mut discard = Discard::new();
    loop {
        // Lock order: &n->list_lock (rank 4), slabs freed after it is dropped; docs/LOCKING.md.
        let mut n = kn.list_lock.lock();
        discard.n = 0;
        let head: *mut ListHead = &mut n.partial;
        // SAFETY: this node's partial list under its lock; removal during the safe walk.
        for l in unsafe { list::list_for_each_safe(head) } {
            // SAFETY: partial-list entries are slab_list links.
            let slab = Slab(unsafe { PagePtr::from_lru(l) });
            if slab.counters().inuse() == 0 && discard.push(slab) {
                remove_partial(&mut n, slab);
            }
        }
        kn.hint(&n);
        drop(n);
        let more = discard.n == discard.slabs.len();
        for p in &discard.slabs[..discard.n] {
            m.discard_slab(s, Slab::from_page(*p).expect("non-null"));
        }
        if !more {
            break;
        }
    }
}
