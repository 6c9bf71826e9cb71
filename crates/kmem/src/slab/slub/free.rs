//! Freeing (mm/slub.c): the fast path into the CPU's active slab (`do_slab_free`), the slow
//! path (`__slab_free`), the debug caches' path (`free_to_partial_list` with
//! `free_debug_processing`), `kmem_cache_free` (`cache_from_obj`), `kfree` of slab objects and
//! `kmem_cache_free_bulk` (`build_detached_freelist`).

use core::panic::Location;

use crate::addr::{VirtAddr, PAGE_SHIFT};
use crate::gfp::GfpFlags;
use crate::mm::mm_types::PagePtr;
use crate::platform::{LogLevel, Platform};
use crate::slab::common::{CacheHandle, SlabFlags, KMALLOC_MAX_CACHE_SIZE};
use crate::slab::SlabLayer;

use super::debug::TrackItem;
use super::kmalloc_slot;
use super::slab::{add_partial, remove_full, remove_partial};
use super::{
    resolve, Cache, Counters, KmemCacheCpu, Owner, Slab, SlabSheaf, Stat, ON_PARTIAL,
    SLUB_RED_ACTIVE, SLUB_RED_INACTIVE,
};

/// A detached chain of objects of one slab being freed together: `head..tail`, `cnt` objects
/// (`__slab_free`'s `head`, `tail`, `cnt`).
#[derive(Clone, Copy)]
pub(super) struct FreeChain {
    pub(super) head: *mut u8,
    pub(super) tail: *mut u8,
    pub(super) cnt: u32,
}

impl<P: Platform> SlabLayer<P> {
    /// `__slab_free`: frees a chain of objects into a slab that is not the current CPU's
    /// active slab.
    pub(super) fn slab_free_slow(
        &self,
        s: &Cache<P>,
        c: &mut KmemCacheCpu,
        slab: Slab,
        chain: FreeChain,
        caller: &'static Location<'static>,
    ) {
        let FreeChain { head, tail, cnt } = chain;
        let base = self.slab_base(slab);
        // The slab's own node (`get_node(s, slab_nid(slab))`).
        let kn = self.get_node(s, slab.0.nid());
        let mut lock = None;
        let (old, new) = loop {
            let old = slab.counters();
            let prior = old.freelist(base);
            let was_frozen = old.frozen();
            if tail == prior {
                // CONFIG_SLAB_FREELIST_HARDENED's `set_freepointer`: BUG_ON(object == fp),
                // the naive detection of a double free. Nothing is changed.
                drop(lock);
                s.stat(Stat::FreeSlowpath);
                double_free(self, s, slab, tail, caller);
                return;
            }
            // SAFETY: the chain's tail is ours until the CAS publishes it.
            unsafe { s.set_fp(tail, prior) };
            let mut frozen = was_frozen;
            let inuse = old.inuse().wrapping_sub(cnt);
            if !was_frozen {
                if prior.is_null() && s.cpu_partial_slabs > 0 {
                    // Full slab gets free objects: freeze it to our CPU partial list.
                    frozen = true;
                } else if (prior.is_null() || inuse == 0) && lock.is_none() {
                    // Lock order: &n->list_lock (rank 4), under cpu_section; docs/LOCKING.md.
                    lock = Some(kn.list_lock.lock());
                    continue;
                }
            }
            let new = Counters::new(head, base, inuse, frozen);
            if slab.cas(old, new) {
                break (old, new);
            }
            s.stat(Stat::CmpxchgDoubleFail);
        };
        // Counted after the compare-and-swap, whose lock has drained the chain's stores (a
        // locked add before it would wait for them itself).
        s.stat(Stat::FreeSlowpath);
        let was_frozen = old.frozen();
        let prior = old.freelist(base);
        let Some(mut n) = lock else {
            if was_frozen {
                s.stat(Stat::FreeFrozen);
            } else if new.frozen() {
                s.stat(Stat::CpuPartialFree);
                self.put_cpu_partial(s, c, slab);
            }
            return;
        };
        if was_frozen {
            s.stat(Stat::FreeFrozen);
            return;
        }
        if new.frozen() {
            drop(n);
            s.stat(Stat::CpuPartialFree);
            self.put_cpu_partial(s, c, slab);
            return;
        }
        if new.inuse() == 0 && n.nr_partial >= s.min_partial as usize {
            if slab.test(ON_PARTIAL) {
                remove_partial(&mut n, slab);
                s.stat(Stat::FreeRemovePartial);
            } else {
                remove_full(slab);
            }
            kn.hint(&n);
            drop(n);
            self.discard_slab(s, slab);
            return;
        }
        if prior.is_null() {
            remove_full(slab);
            add_partial(&mut n, slab, true);
            s.stat(Stat::FreeAddPartial);
        }
        kn.hint(&n);
    }
}

impl<P: Platform> SlabLayer<P> {
    /// `free_to_partial_list` with `free_debug_processing`.
    fn slab_free_debug(
        &self,
        s: &Cache<P>,
        slab: Slab,
        obj: *mut u8,
        caller: &'static Location<'static>,
    ) {
        let kn = self.get_node(s, slab.0.nid());
        // Lock order: &n->list_lock (rank 4), no CPU section; reports under it; docs/LOCKING.md.
        let mut n = kn.list_lock.lock();
        let base = self.slab_base(slab);
        if s.flags.contains(SlabFlags::CONSISTENCY_CHECKS) {
            let ok = self.check_slab(s, slab) && {
                if !self.check_valid_pointer(s, slab, obj) {
                    self.slab_err(
                        s,
                        Some(slab),
                        format_args!("Invalid object pointer 0x{:016x}", self.model(obj)),
                    );
                    false
                } else if self.on_freelist(s, slab, obj) {
                    self.object_err(s, slab, obj, "Object already free");
                    false
                } else {
                    self.check_object(s, slab, obj, SLUB_RED_ACTIVE)
                }
            };
            if !ok {
                drop(n);
                self.slab_fix(
                    s.name(),
                    format_args!("Object at 0x{:016x} not freed", self.model(obj)),
                );
                return;
            }
        }
        if obj == slab.counters().freelist(base) {
            // Hardened `set_freepointer`'s naive double-free detection (caches without `F`).
            drop(n);
            double_free(self, s, slab, obj, caller);
            return;
        }
        if s.flags.contains(SlabFlags::STORE_USER) {
            self.set_track(s, obj, TrackItem::Free, Some(caller));
        }
        self.trace(s, slab, obj, false);
        self.init_object(s, obj, SLUB_RED_INACTIVE);
        let old = slab.counters();
        let prior = old.freelist(base);
        // SAFETY: the object is being freed by its owner, under the list lock.
        unsafe { s.set_fp(obj, prior) };
        let inuse = old.inuse().saturating_sub(1);
        slab.set_counters(Counters::new(obj, base, inuse, false));
        let free_it = inuse == 0 && n.nr_partial >= s.min_partial as usize;
        if prior.is_null() {
            remove_full(slab);
            if !free_it {
                add_partial(&mut n, slab, true);
                s.stat(Stat::FreeAddPartial);
            }
        } else if free_it {
            remove_partial(&mut n, slab);
            s.stat(Stat::FreeRemovePartial);
        }
        kn.hint(&n);
        drop(n);
        if free_it {
            self.discard_slab(s, slab);
        }
    }
}

/// Frees `p` known to be in slab `page` of cache `s` (`slab_free`): the fast paths inline.
/// A cache with sheaves pushes onto its CPU's main sheaf (`free_to_pcs`, with the naive
/// double-free check against the sheaf's top as against the CPU freelist's head); one
/// without pushes onto the CPU freelist when the object is of the CPU's active slab. On a
/// CPU the thread owns outright ([`SlabLayer::cpu_owned`]) the push needs no section and the
/// miss is a tail call, so the inlined path calls nothing (but the NUMA node test).
#[inline(always)]
pub(super) fn free_inner<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    page: PagePtr,
    p: *mut u8,
    caller: &'static Location<'static>,
) {
    if let Some(cpu) = m.cpu_owned() {
        if m.is_object_start(s, Slab(page), p) {
            // SAFETY: the thread owns `cpu` outright (as inside a section of it) and holds
            // no other reference to its data.
            if free_cpu(m, s, unsafe { s.cpu(cpu) }, cpu, page, p) {
                return;
            }
        }
    }
    free_inner_section(m, s, page, p, caller)
}

/// Pushes `p`, an allocated object at an object start of `page`, a slab of `s`, onto the
/// main sheaf or CPU freelist of `cpu` (whose data `c` is, used as inside its section);
/// whether it did.
#[inline(always)]
fn free_cpu<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    c: &mut KmemCacheCpu,
    cpu: usize,
    page: PagePtr,
    p: *mut u8,
) -> bool {
    if !c.main.is_null() {
        // A main sheaf means a cache without debug flags (`calculate_sheaf_capacity`).
        debug_assert!(!s.debug());
        // 6.18 `slab_free`: only an object of the CPU's node goes onto its sheaf (one
        // predictable branch on a machine with one node).
        (m.pa.numa.0.is_null() || slab_is_local(m, page, cpu)) && push_main(c, p)
    } else if c.slab == Slab(page).raw() && p != c.freelist {
        // A CPU slab means a cache without debug flags (debug caches never get one; see
        // `alloc_cpu`), as Linux's `do_slab_free` fast path, which tests no debug flag.
        debug_assert!(!s.debug());
        // SAFETY: the object was allocated and is now given back to its CPU slab.
        unsafe { s.set_fp(p, c.freelist) };
        c.freelist = p;
        c.free_fast = c.free_fast.wrapping_add(1);
        true
    } else {
        false
    }
}

/// [`free_inner`] inside a CPU section (a thread without a CPU of its own, or a miss).
#[inline(never)]
fn free_inner_section<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    page: PagePtr,
    p: *mut u8,
    caller: &'static Location<'static>,
) {
    let slab = Slab(page);
    if m.is_object_start(s, slab, p) {
        // Lock order: cpu_section (rank 3), lock-free fast path; docs/LOCKING.md.
        let g = m.cpu_guard();
        // SAFETY: we hold this CPU's section and no other reference to its data.
        if free_cpu(m, s, unsafe { s.cpu(g.cpu()) }, g.cpu(), page, p) {
            return;
        }
    }
    free_slow_path(m, s, slab, p, caller)
}

/// Whether a slab page is on the node of `cpu` (`slab_nid(slab) == numa_mem_id()`).
#[cold]
#[inline(never)]
fn slab_is_local<P: Platform>(m: &SlabLayer<P>, page: PagePtr, cpu: usize) -> bool {
    page.nid() == m.cpu_to_node(cpu)
}

/// `free_to_pcs`'s fast case: pushes `p` onto the CPU's main sheaf (not null) if it has room
/// and `p` is not its top object (a free of the object freed last is a double free, left to
/// the slow path's report). Returns whether it did.
#[inline(always)]
fn push_main(c: &mut KmemCacheCpu, p: *mut u8) -> bool {
    let sh = c.main;
    // SAFETY: `main` is a live sheaf of this cache owned by this CPU (sheaf.rs), used only
    // inside the CPU section the caller holds; the slots below `size` hold objects and
    // `size < capacity` leaves room for one more.
    unsafe {
        let n = (*sh).size as usize;
        let objs = SlabSheaf::objects(sh);
        if n < (*sh).capacity as usize && (n == 0 || *objs.add(n - 1) != p) {
            *objs.add(n) = p;
            (*sh).size = n as u32 + 1;
            c.free_pcs = c.free_pcs.wrapping_add(1);
            return true;
        }
    }
    false
}

/// Everything but a free onto the main sheaf or into the CPU's active slab.
#[cold]
#[inline(never)]
fn free_slow_path<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    slab: Slab,
    p: *mut u8,
    caller: &'static Location<'static>,
) {
    m.slub_drain_deferred();
    if s.has_sheaves() && s.flush_gen.load(core::sync::atomic::Ordering::Relaxed) != 0 {
        // A shrink asked every CPU to flush (sheaf.rs `sheaves_flush_requested`); `p` is
        // allocated, so its slab stays.
        m.sheaves_flush_requested(s);
    }
    if !s.debug()
        && s.has_sheaves()
        && m.is_object_start(s, slab, p)
        && (m.pa.numa.0.is_null() || slab.0.nid() == m.numa_node_id())
        && m.free_to_pcs_slow(s, slab, p, caller)
    {
        return;
    }
    free_to_slab(m, s, slab, p, caller)
}

/// `__slab_free` of one object (or the debug path), never onto a sheaf.
pub(super) fn free_to_slab<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    slab: Slab,
    p: *mut u8,
    caller: &'static Location<'static>,
) {
    if s.debug() {
        m.slab_free_debug(s, slab, p, caller);
        return;
    }
    if !m.is_object_start(s, slab, p) {
        bad_object_pointer(m, s, slab, p, caller);
        return;
    }
    // Lock order: cpu_section (rank 3), &n->list_lock under it; docs/LOCKING.md.
    let g = m.cpu_guard();
    // SAFETY: we hold this CPU's section and no other reference to its data.
    let c = unsafe { s.cpu(g.cpu()) };
    if c.slab == slab.raw() {
        if p == c.freelist {
            drop(g);
            double_free(m, s, slab, p, caller);
            return;
        }
        // SAFETY: the object was allocated and is now given back to its CPU slab.
        unsafe { s.set_fp(p, c.freelist) };
        c.freelist = p;
        c.free_fast = c.free_fast.wrapping_add(1);
        return;
    }
    let chain = FreeChain {
        head: p,
        tail: p,
        cnt: 1,
    };
    m.slab_free_slow(s, c, slab, chain, caller);
}

#[cold]
pub(super) fn bad_object_pointer<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    slab: Slab,
    p: *mut u8,
    caller: &'static Location<'static>,
) {
    m.slab_bug(
        s.name(),
        format_args!("Invalid object pointer 0x{:016x}", m.model(p)),
    );
    m.print_slab_info(slab);
    m.dump_stack(LogLevel::Err, caller);
    m.add_taint(crate::debug::TAINT_BAD_PAGE);
    m.slab_fix(
        s.name(),
        format_args!("Object at 0x{:016x} not freed", m.model(p)),
    );
}

#[cold]
pub(super) fn double_free<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    slab: Slab,
    p: *mut u8,
    caller: &'static Location<'static>,
) {
    m.slab_bug(s.name(), format_args!("Object already free"));
    m.printk(
        LogLevel::Err,
        format_args!(
            "INFO: double free of object 0x{:016x} (naive detection: it heads the CPU freelist)",
            m.model(p)
        ),
    );
    m.print_slab_info(slab);
    m.dump_stack(LogLevel::Err, caller);
    m.add_taint(crate::debug::TAINT_BAD_PAGE);
    m.slab_fix(
        s.name(),
        format_args!("Object at 0x{:016x} not freed", m.model(p)),
    );
}

/// `kmem_cache_free`.
#[inline(always)]
pub(crate) fn kmem_cache_free<P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    p: *mut u8,
    caller: &'static Location<'static>,
) {
    if p.is_null() {
        return;
    }
    let Some(s) = resolve(m, h, caller) else {
        return;
    };
    match m.virt_to_slab(p) {
        Some((page, cache)) if cache == s as *const Cache<P> as usize => {
            free_inner(m, s, page, p, caller)
        }
        _ => kmem_cache_free_wrong(m, s, p, caller),
    }
}

/// `cache_from_obj`'s reports: `p` is not an object of `s`.
#[cold]
#[inline(never)]
fn kmem_cache_free_wrong<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    p: *mut u8,
    caller: &'static Location<'static>,
) {
    match m.owner_of(p) {
        Owner::Slab(page, cache) if cache == s as *const Cache<P> as usize => {
            free_inner(m, s, page, p, caller)
        }
        Owner::Slab(page, cache) => {
            // cache_from_obj: warn and free into the cache the object belongs to.
            // SAFETY: `mapping` of a slab page is its cache, which never goes away.
            let real = unsafe { &*(cache as *const Cache<P>) };
            m.warn_at(
                caller,
                format_args!(
                    "kmem_cache_free: Wrong slab cache. {} but object is from {}",
                    s.name(),
                    real.name()
                ),
            );
            m.print_tracking(real, p);
            free_inner(m, real, page, p, caller)
        }
        _ => {
            m.warn_at(
                caller,
                format_args!(
                    "kmem_cache_free: object 0x{:016x} is not from a slab ({})",
                    m.model(p),
                    s.name()
                ),
            );
        }
    }
}

/// `kfree` of a pointer known to be a slab object.
///
/// # Safety
/// `page` is the head page of a SLUB slab of this machine that contains `p`, and `cache` is
/// that page's `mapping` word (the address of the slab's live `Cache<P>`).
#[inline(always)]
pub(crate) unsafe fn kfree_slab<P: Platform>(
    m: &SlabLayer<P>,
    page: PagePtr,
    cache: usize,
    p: *mut u8,
    caller: &'static Location<'static>,
) {
    // SAFETY: `cache` is the slab page's `mapping`, its cache (this function's contract), and a
    // cache is not destroyed while it has slabs.
    let s = unsafe { &*(cache as *const Cache<P>) };
    free_inner(m, s, page, p, caller)
}

/// `kfree` of an object known to come from `kmalloc(size, gfp)` with `size` at most
/// [`KMALLOC_MAX_CACHE_SIZE`]: the cache comes from the size, the slab from the address, and
/// the struct page's type and cache are not consulted.
///
/// # Safety
/// `p` was returned by `kmalloc(size', gfp)` of this machine with `kmalloc_index(size') ==
/// kmalloc_index(size)`, `size` in `1..=KMALLOC_MAX_CACHE_SIZE`, and is freed once.
#[inline(always)]
pub(crate) unsafe fn kfree_sized<P: Platform>(
    m: &SlabLayer<P>,
    p: *mut u8,
    size: usize,
    gfp: GfpFlags,
    caller: &'static Location<'static>,
) {
    let cp = kmalloc_slot(m, size, gfp);
    // SAFETY: kmalloc table entries are caches created at boot, never destroyed; the caller
    // guarantees the object came from this one (so it exists and `cp` is not null).
    let s = unsafe { &*cp.cast::<Cache<P>>() };
    // `free_to_pcs` without the slab's `struct page`: the caller guarantees that `p` is an
    // allocated object of `s` (what `is_object_start` and the page lookup establish for an
    // unsized kfree), so the push needs neither; a main sheaf means a cache without debug
    // flags (`calculate_sheaf_capacity`), so it needs no debug test either. A full sheaf, a
    // CPU without one, or `p` on top of the sheaf (a double free) take the checked path.
    // With more than one node, 6.18's `slab_free` pushes only an object of the CPU's node
    // (`slab_nid(slab) == numa_mem_id()`), which needs the slab's page: the checked path
    // looks it up (one predictable null test on a machine with one node).
    if m.pa.numa.0.is_null() {
        if let Some(cpu) = m.cpu_owned() {
            // SAFETY: the thread owns `cpu` outright (as inside a section of it) and holds
            // no other reference to its data.
            let c = unsafe { s.cpu(cpu) };
            if !c.main.is_null() && push_main(c, p) {
                return;
            }
        }
    }
    // SAFETY: forwarded caller guarantee.
    unsafe { kfree_sized_section(m, s, p, caller) }
}

/// [`kfree_sized`] inside a CPU section (a thread without a CPU of its own, or a miss).
///
/// # Safety
/// As [`kfree_sized`], `s` the cache `p` came from.
#[inline(never)]
unsafe fn kfree_sized_section<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    p: *mut u8,
    caller: &'static Location<'static>,
) {
    // With more than one node the push needs the slab's node: `free_inner` tests it.
    if m.pa.numa.0.is_null() {
        // Lock order: cpu_section (rank 3), lock-free fast path; docs/LOCKING.md.
        let g = m.cpu_guard();
        // SAFETY: we hold this CPU's section and no other reference to its data.
        let c = unsafe { s.cpu(g.cpu()) };
        if !c.main.is_null() && push_main(c, p) {
            return;
        }
        drop(g);
    }
    let off = p as usize - m.direct_map as usize;
    // SAFETY: `p` is in the direct map (a slab object), so its PFN is below max_pfn.
    let page =
        unsafe { m.pfn_to_page_unchecked(crate::addr::Pfn::new((off >> PAGE_SHIFT) as u64)) };
    free_inner(m, s, page.compound_head(), p, caller)
}

impl<P: Platform> SlabLayer<P> {
    /// [`SlabLayer::kfree_sized`] when it is one push onto the CPU's main sheaf with
    /// nothing else to do; whether it did (if not, nothing was done: call `kfree_sized`).
    /// For allocators wrapping kmem (`KmemAlloc`), whose fast path then calls nothing: no
    /// debugging hook and SLUB (the `hooked` byte clear), `size` in
    /// `1..=KMALLOC_MAX_CACHE_SIZE`, a CPU the thread owns ([`SlabLayer::cpu_owned`]), room
    /// on its main sheaf and `p` not its top object (a double free, which `kfree_sized`
    /// reports). Never on a machine with more than one node, where only an object of the
    /// CPU's node may go onto its sheaf (6.18 `slab_free`) and `kfree_sized` tests the node.
    ///
    /// # Safety
    /// As [`SlabLayer::kfree_sized`].
    #[inline(always)]
    pub unsafe fn kfree_sized_fast(&self, p: *mut u8, size: usize, gfp: GfpFlags) -> bool {
        if self.slab_hooked()
            || size.wrapping_sub(1) >= KMALLOC_MAX_CACHE_SIZE
            || !self.pa.numa.0.is_null()
        {
            return false;
        }
        let cp = kmalloc_slot(self, size, gfp);
        // SAFETY: kmalloc table entries are caches created at boot, never destroyed; the
        // caller guarantees the object came from this one (so it exists and `cp` is not
        // null).
        let s = unsafe { &*cp.cast::<Cache<P>>() };
        let Some(cpu) = self.cpu_owned() else {
            return false;
        };
        // SAFETY: the thread owns `cpu` outright (as inside a section of it) and holds no
        // other reference to its data.
        let c = unsafe { s.cpu(cpu) };
        !c.main.is_null() && push_main(c, p)
    }
}

/// `kmem_cache_free_bulk`.
pub(crate) fn free_bulk<P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    objs: &[*mut u8],
    caller: &'static Location<'static>,
) {
    let Some(s) = resolve(m, h, caller) else {
        return;
    };
    if s.debug() || s.has_sheaves() {
        // Debug caches check each object; caches with sheaves put each on the main sheaf
        // (`free_to_pcs_bulk` in Linux 6.18 does the same one sheaf at a time).
        for o in objs {
            kmem_cache_free(m, h, *o, caller);
        }
        return;
    }
    // build_detached_freelist: chain the objects of one slab and free them with one
    // compare-and-swap (or one splice into the CPU freelist). Batches of 64 objects; `done`
    // marks the ones already chained.
    for chunk in objs.chunks(64) {
        let mut done = 0u64;
        for i in (0..chunk.len()).rev() {
            if done & (1 << i) != 0 {
                continue;
            }
            done |= 1 << i;
            let p = chunk[i];
            if p.is_null() {
                continue;
            }
            let page = match m.owner_of(p) {
                Owner::Slab(page, cache) if cache == s as *const Cache<P> as usize => page,
                _ => {
                    // Wrong cache or not a slab object: the single-object path reports it.
                    kmem_cache_free(m, h, p, caller);
                    continue;
                }
            };
            let slab = Slab(page);
            if !m.is_object_start(s, slab, p) {
                bad_object_pointer(m, s, slab, p, caller);
                continue;
            }
            let (mut head, tail, mut cnt) = (p, p, 1u32);
            for j in (0..i).rev() {
                let q = chunk[j];
                if done & (1 << j) != 0 || q.is_null() {
                    continue;
                }
                if m.virt_to_page(VirtAddr::new(q as usize))
                    .map(|pg| pg.compound_head())
                    == Some(page)
                    && m.is_object_start(s, slab, q)
                {
                    // SAFETY: `q` is an allocated object of this slab being freed; it joins
                    // the detached chain.
                    unsafe { s.set_fp(q, head) };
                    head = q;
                    cnt += 1;
                    done |= 1 << j;
                }
            }
            // Lock order: cpu_section (rank 3), &n->list_lock under it; docs/LOCKING.md.
            let g = m.cpu_guard();
            // SAFETY: we hold this CPU's section and no other reference to its data.
            let c = unsafe { s.cpu(g.cpu()) };
            if c.slab == slab.raw() {
                if tail == c.freelist {
                    drop(g);
                    double_free(m, s, slab, tail, caller);
                    continue;
                }
                // SAFETY: the chain's objects are ours; splice it onto the CPU freelist.
                unsafe { s.set_fp(tail, c.freelist) };
                c.freelist = head;
                c.free_fast = c.free_fast.wrapping_add(cnt);
            } else {
                m.slab_free_slow(s, c, slab, FreeChain { head, tail, cnt }, caller);
            }
        }
    }
}
