//! Allocation (mm/slub.c): the lockless fast path (`slab_alloc_node`), the slow path
//! (`___slab_alloc`: refill from the CPU slab, the CPU partial list, the node partial list
//! — `get_partial` — or a new slab), the debug caches' path (`alloc_single_from_partial`,
//! `alloc_debug_processing`), `kmem_cache_alloc_bulk`, and the kmalloc hooks SLUB provides
//! (`kmalloc_slab` + allocation, `krealloc` in place, `ksize`).

use core::panic::Location;
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering;

use kds::list::{self, ListHead};

use crate::gfp::GfpFlags;
use crate::mm::mm_types::PagePtr;
use crate::page_alloc::NUMA_NO_NODE;
use crate::platform::{LogLevel, Platform};
use crate::slab::common::{CacheHandle, SlabFlags, KMALLOC_MAX_CACHE_SIZE};
use crate::slab::SlabLayer;

use super::debug::TrackItem;
use super::free::kmem_cache_free;
use super::nodes::{count_partial, Count};
use super::slab::{add_full, add_partial, first_partial, remove_partial, Refill};
use super::{
    kmalloc_slot, resolve, Cache, Counters, KmemCacheCpu, KmemCacheNode, Owner, Slab, SlabSheaf,
    Stat, SLUB_RED_ACTIVE, SLUB_RED_INACTIVE,
};

impl<P: Platform> SlabLayer<P> {
    /// `get_freelist`: takes the remote frees of the CPU's frozen slab; unfreezes it if none.
    fn get_freelist(&self, s: &Cache<P>, slab: Slab) -> *mut u8 {
        let base = self.slab_base(slab);
        loop {
            let old = slab.counters();
            let fl = old.freelist(base);
            let new = Counters::new(ptr::null_mut(), base, slab.objects(), !fl.is_null());
            if slab.cas(old, new) {
                return fl;
            }
            s.stat(Stat::CmpxchgDoubleFail);
        }
    }

    /// `get_partial`: a partial slab of the CPU's node (`numa_mem_id`), else, on a NUMA
    /// machine, of another node (`get_any_partial`).
    fn get_partial(
        &self,
        s: &Cache<P>,
        c: &mut KmemCacheCpu,
        allow_spin: bool,
    ) -> Option<(Slab, *mut u8)> {
        if self.numa().is_none() {
            return self.get_partial_node(s, &s.node, c, allow_spin);
        }
        let local = self.numa_node_id();
        if let Some(got) = self.get_partial_node(s, self.get_node(s, local), c, allow_spin) {
            return Some(got);
        }
        self.get_any_partial(s, local, |nid| {
            self.get_partial_node(s, self.get_node(s, nid), c, allow_spin)
        })
    }

    /// `get_partial_node`: takes slabs from a node partial list: the first becomes the CPU
    /// slab (its whole freelist is returned), more go to the CPU partial list.
    /// Without `allow_spin` (`kmalloc_nolock`) the list lock is only try-locked: a held lock
    /// counts as an empty list (`get_partial_node`'s `spin_trylock_irqsave`).
    fn get_partial_node(
        &self,
        s: &Cache<P>,
        kn: &KmemCacheNode<P::RawLock>,
        c: &mut KmemCacheCpu,
        allow_spin: bool,
    ) -> Option<(Slab, *mut u8)> {
        if kn.nr_partial_hint.load(Ordering::Relaxed) == 0 {
            return None;
        }
        // Lock order: &n->list_lock (rank 4), under cpu_section (try-locked from
        // kmalloc_nolock); docs/LOCKING.md.
        let mut n = if allow_spin {
            kn.list_lock.lock()
        } else {
            kn.list_lock.try_lock()?
        };
        self.nmi_point(super::NmiPoint::ListLockHeld, s, true);
        let mut got: Option<(Slab, *mut u8)> = None;
        let mut extra = 0;
        let head: *mut ListHead = &mut n.partial;
        // SAFETY: iterating this node's partial list under its lock, removing as we go (safe
        // iterator).
        for l in unsafe { list::list_for_each_safe(head) } {
            // SAFETY: partial-list entries are `slab->slab_list` links of memmap pages.
            let slab = Slab(unsafe { PagePtr::from_lru(l) });
            let base = self.slab_base(slab);
            if got.is_none() {
                let fl = loop {
                    let old = slab.counters();
                    let fl = old.freelist(base);
                    let new = Counters::new(ptr::null_mut(), base, slab.objects(), true);
                    if slab.cas(old, new) {
                        break fl;
                    }
                    s.stat(Stat::CmpxchgDoubleFail);
                };
                remove_partial(&mut n, slab);
                s.stat(Stat::AllocFromPartial);
                got = Some((slab, fl));
                if s.cpu_partial_slabs == 0 {
                    break;
                }
            } else {
                loop {
                    let old = slab.counters();
                    let new = Counters(old.0 | 1 << 48);
                    if slab.cas(old, new) {
                        break;
                    }
                    s.stat(Stat::CmpxchgDoubleFail);
                }
                remove_partial(&mut n, slab);
                slab.set_next_partial(c.partial);
                c.partial = slab.raw();
                c.partial_slabs += 1;
                s.stat(Stat::CpuPartialNode);
                extra += 1;
                if extra > s.cpu_partial_slabs / 2 {
                    break;
                }
            }
        }
        kn.hint(&n);
        got
    }

    /// `___slab_alloc`: refills the CPU freelist and returns one object.
    #[cold]
    pub(super) fn slab_alloc_slow(
        &self,
        s: &Cache<P>,
        c: &mut KmemCacheCpu,
        gfp: GfpFlags,
        allow_spin: bool,
    ) -> Option<*mut u8> {
        self.slab_alloc_slow_bulk(s, c, gfp, allow_spin, &mut [])
            .map(|(o, _)| o)
    }

    /// [`Self::slab_alloc_slow`] for a sheaf refill: when it takes a new slab, the objects
    /// after the returned one go straight into `out` (from its last slot down; see
    /// [`Self::new_slab_bulk`]) instead of through the CPU freelist. Returns the object and
    /// how many slots of `out` were filled (0 unless a new slab was made).
    #[cold]
    pub(super) fn slab_alloc_slow_bulk(
        &self,
        s: &Cache<P>,
        c: &mut KmemCacheCpu,
        gfp: GfpFlags,
        allow_spin: bool,
        out: &mut [*mut u8],
    ) -> Option<(*mut u8, usize)> {
        s.stat(Stat::AllocSlowpath);
        // Linux's `slab_attach_kprobe_locked`: the CPU slab is held (slub_kunit's kprobe).
        self.nmi_point(super::NmiPoint::SlabAttachKprobeLocked, s, true);
        loop {
            if let Some(slab) = Slab::from_page(c.slab) {
                let fl = self.get_freelist(s, slab);
                if !fl.is_null() {
                    s.stat(Stat::AllocRefill);
                    // SAFETY: `fl` heads the freelist of our frozen slab, now ours.
                    c.freelist = unsafe { s.get_fp(fl) };
                    return Some((fl, 0));
                }
                // Full: unfrozen by get_freelist, on no list.
                c.slab = ptr::null_mut();
                s.stat(Stat::DeactivateBypass);
            }
            if let Some(slab) = Slab::from_page(c.partial) {
                c.partial = slab.next_partial();
                c.partial_slabs -= 1;
                slab.set_next_partial(ptr::null_mut());
                c.slab = slab.raw();
                s.stat(Stat::CpuPartialAlloc);
                continue;
            }
            if let Some((slab, fl)) = self.get_partial(s, c, allow_spin) {
                c.slab = slab.raw();
                // SAFETY: `fl` heads the freelist we just took from the slab.
                c.freelist = unsafe { s.get_fp(fl) };
                return Some((fl, 0));
            }
            let ns = self.new_slab_bulk(s, gfp, allow_spin, NUMA_NO_NODE, out)?;
            c.slab = ns.slab.raw();
            c.freelist = ns.rest;
            return Some((ns.first, ns.taken));
        }
    }
}

impl<P: Platform> SlabLayer<P> {
    /// `alloc_debug_processing` checks on one object about to be handed out.
    fn alloc_debug_checks(&self, s: &Cache<P>, slab: Slab, obj: *mut u8) -> bool {
        if s.flags.contains(SlabFlags::CONSISTENCY_CHECKS) {
            if !self.check_slab(s, slab) {
                return false;
            }
            if !self.check_valid_pointer(s, slab, obj) {
                self.object_err(s, slab, obj, "Freelist Pointer check fails");
                return false;
            }
            if !self.check_object(s, slab, obj, SLUB_RED_INACTIVE) {
                return false;
            }
        }
        true
    }

    /// Debug caches: one object at a time under the list lock (`alloc_single_from_partial`,
    /// `alloc_single_from_new_slab`).
    ///
    /// Without `allow_spin` (`kmalloc_nolock`) the list lock is only try-locked: when it is
    /// held the partial list is skipped, and a new slab that cannot be added is handed to
    /// the deferred-free list (`defer_deactivate_slab`) and the allocation fails.
    pub(super) fn slab_alloc_debug(
        &self,
        s: &Cache<P>,
        gfp: GfpFlags,
        caller: &'static Location<'static>,
        orig: usize,
        allow_spin: bool,
        node: i32,
    ) -> Option<*mut u8> {
        let local = if node == NUMA_NO_NODE {
            self.numa_node_id()
        } else {
            node as usize
        };
        let mut target = local;
        let mut step = 0;
        let mut new_slab: Option<Slab> = None;
        loop {
            // A new slab goes onto its own node's list (`slab_nid`) and serves this request
            // even if it came from another node (the fallback without `__GFP_THISNODE`).
            let kn = self.get_node(s, new_slab.map_or(target, |sl| sl.0.nid()));
            // Lock order: &n->list_lock (rank 4), no CPU section (try-locked from
            // kmalloc_nolock); reports under it; docs/LOCKING.md.
            let mut n = if allow_spin {
                kn.list_lock.lock()
            } else if let Some(n) = kn.list_lock.try_lock() {
                n
            } else {
                if let Some(slab) = new_slab.take() {
                    self.defer_discard_slab(slab);
                    return None;
                }
                match self.refill_step(s, gfp, false, node, local, &mut step)? {
                    Refill::Partial(nid) => target = nid,
                    Refill::Slab(slab, fl) => {
                        let base = self.slab_base(slab);
                        slab.set_counters(Counters::new(fl, base, 0, false));
                        new_slab = Some(slab);
                    }
                }
                continue;
            };
            self.nmi_point(super::NmiPoint::ListLockHeld, s, false);
            if let Some(slab) = new_slab.take() {
                add_partial(&mut n, slab, false);
            }
            let first = first_partial(&n);
            if let Some(l) = first {
                // SAFETY: partial-list entries are slab_list links of memmap pages.
                let slab = Slab(unsafe { PagePtr::from_lru(l) });
                let base = self.slab_base(slab);
                let c = slab.counters();
                let obj = c.freelist(base);
                if obj.is_null() || !self.alloc_debug_checks(s, slab, obj) {
                    self.slab_fix(s.name(), format_args!("Marking all objects used"));
                    slab.set_counters(Counters::new(ptr::null_mut(), base, slab.objects(), false));
                    remove_partial(&mut n, slab);
                    add_full(&mut n, slab);
                    kn.hint(&n);
                    continue;
                }
                // SAFETY: `obj` passed the checks (or checks are off): a free object of the slab.
                let next = unsafe { s.get_fp(obj) };
                let next = if s.flags.contains(SlabFlags::CONSISTENCY_CHECKS)
                    && !self.check_valid_pointer(s, slab, next)
                {
                    self.object_err(s, slab, obj, "Freechain corrupt");
                    self.slab_fix(s.name(), format_args!("Isolate corrupted freechain"));
                    ptr::null_mut()
                } else {
                    next
                };
                let inuse = if next.is_null() {
                    slab.objects()
                } else {
                    c.inuse() + 1
                };
                slab.set_counters(Counters::new(next, base, inuse, false));
                if next.is_null() {
                    remove_partial(&mut n, slab);
                    add_full(&mut n, slab);
                }
                kn.hint(&n);
                if s.flags.contains(SlabFlags::STORE_USER) {
                    self.set_track(s, obj, TrackItem::Alloc, Some(caller));
                }
                self.trace(s, slab, obj, true);
                if s.orig_size_enabled() {
                    self.set_orig_size(s, obj, orig.min(s.object_size as usize) as u32);
                }
                self.init_object(s, obj, SLUB_RED_ACTIVE);
                return Some(obj);
            }
            drop(n);
            match self.refill_step(s, gfp, allow_spin, node, local, &mut step)? {
                Refill::Partial(nid) => target = nid,
                Refill::Slab(slab, fl) => {
                    let base = self.slab_base(slab);
                    slab.set_counters(Counters::new(fl, base, 0, false));
                    new_slab = Some(slab);
                }
            }
        }
    }
}

/// `slab_alloc_node`: the lockless fast paths inline, everything else out of line. A cache
/// with sheaves pops its CPU's main sheaf (`alloc_from_pcs`); one without pops the CPU
/// freelist. On a CPU the thread owns outright ([`SlabLayer::cpu_owned`]) the pop needs no
/// section and the miss is a tail call, so the inlined path calls nothing.
#[inline(always)]
pub(super) fn alloc_inner<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    gfp: GfpFlags,
    caller: &'static Location<'static>,
    orig: usize,
) -> Option<NonNull<u8>> {
    if let Some(cpu) = m.cpu_owned() {
        // SAFETY: the thread owns `cpu` outright (as inside a section of it) and holds no
        // other reference to its data.
        if let Some(obj) = alloc_cpu::<P>(s, unsafe { s.cpu(cpu) }) {
            return Some(alloc_done::<P>(s, gfp, obj));
        }
    }
    alloc_inner_section(m, s, gfp, caller, orig)
}

/// `__GFP_ZERO` on an object from a sheaf or the CPU freelist.
#[inline(always)]
fn alloc_done<P: Platform>(s: &Cache<P>, gfp: GfpFlags, obj: NonNull<u8>) -> NonNull<u8> {
    if gfp.contains(GfpFlags::__GFP_ZERO) {
        // SAFETY: a freshly allocated object of `object_size` bytes.
        unsafe { ptr::write_bytes(obj.as_ptr(), 0, s.object_size as usize) };
    }
    obj
}

/// One object from the CPU's main sheaf, or (a cache without sheaves) its CPU freelist;
/// `None` when empty. `c` is the CPU's data, used as inside a section of that CPU.
///
/// A CPU's main sheaf exists only in a cache with sheaves, and a cache with debug flags has
/// none (`calculate_sheaf_capacity`; the flags never change): the sheaf pop needs no debug
/// test. Nor does the CPU freelist pop: a debug cache never fills its CPU freelist (its
/// objects come from `slab_alloc_debug`, one at a time, and only `slab_alloc_slow_bulk`,
/// which debug caches never reach, sets a CPU slab and freelist), so a non-null freelist
/// means a cache without debug flags — Linux's `__slab_alloc_node` fast path tests no debug
/// flag either (`___slab_alloc` takes debug caches' objects one by one, never as a CPU
/// freelist).
#[inline(always)]
fn alloc_cpu<P: Platform>(s: &Cache<P>, c: &mut KmemCacheCpu) -> Option<NonNull<u8>> {
    let sh = c.main;
    if !sh.is_null() {
        debug_assert!(!s.debug());
        // SAFETY: `main` is a live sheaf of this cache owned by this CPU (sheaf.rs).
        let n = unsafe { (*sh).size };
        if n == 0 {
            return None;
        }
        // SAFETY: `sh` is this CPU's main sheaf and the caller uses the CPU's data as inside
        // its section, so nothing else reads or writes its header or slots; n > 0 here, so
        // slot `n - 1` is below `size` and holds an object (never null: the pop needs no
        // null test), which the pop hands to us.
        unsafe {
            (*sh).size = n - 1;
            c.alloc_pcs = c.alloc_pcs.wrapping_add(1);
            Some(NonNull::new_unchecked(
                *SlabSheaf::objects(sh).add(n as usize - 1),
            ))
        }
    } else {
        let obj = NonNull::new(c.freelist)?;
        debug_assert!(!s.debug());
        // SAFETY: `obj` is a CPU-owned free object.
        c.freelist = unsafe { s.get_fp(obj.as_ptr()) };
        c.alloc_fast = c.alloc_fast.wrapping_add(1);
        Some(obj)
    }
}

/// [`alloc_inner`] inside a CPU section (a thread without a CPU of its own, or a miss).
#[inline(never)]
fn alloc_inner_section<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    gfp: GfpFlags,
    caller: &'static Location<'static>,
    orig: usize,
) -> Option<NonNull<u8>> {
    // Lock order: cpu_section (rank 3), lock-free fast path; docs/LOCKING.md.
    let g = m.cpu_guard();
    // SAFETY: we hold this CPU's section and no other reference to its data.
    let obj = alloc_cpu::<P>(s, unsafe { s.cpu(g.cpu()) });
    drop(g);
    if let Some(obj) = obj {
        return Some(alloc_done::<P>(s, gfp, obj));
    }
    alloc_slow_path(m, s, gfp, caller, orig)
}

impl<P: Platform> SlabLayer<P> {
    /// `kmalloc(size, gfp)` when it is one pop from the CPU's kmalloc cache with nothing
    /// else to do, else `None` having done nothing (then call [`SlabLayer::kmalloc`], which
    /// serves every case). For allocators wrapping kmem (`KmemAlloc`), whose fast path then
    /// calls nothing: no debugging hook and SLUB (the `hooked` byte clear), `size` in
    /// `1..=KMALLOC_MAX_CACHE_SIZE`, a CPU the thread owns ([`SlabLayer::cpu_owned`]), an
    /// object on its main sheaf (or CPU freelist). A cache with slub_debug flags has
    /// neither, so its objects keep their checks.
    #[inline(always)]
    pub fn kmalloc_fast(&self, size: usize, gfp: GfpFlags) -> Option<NonNull<u8>> {
        if self.slab_hooked() || size.wrapping_sub(1) >= KMALLOC_MAX_CACHE_SIZE {
            return None;
        }
        let cp = kmalloc_slot(self, size, gfp);
        if cp.is_null() {
            return None;
        }
        // SAFETY: kmalloc table entries are caches created at boot, never destroyed.
        let s = unsafe { &*cp.cast::<Cache<P>>() };
        let cpu = self.cpu_owned()?;
        // SAFETY: the thread owns `cpu` outright (as inside a section of it) and holds no
        // other reference to its data.
        let obj = alloc_cpu::<P>(s, unsafe { s.cpu(cpu) })?;
        Some(alloc_done::<P>(s, gfp, obj))
    }
}

/// Everything but a sheaf or CPU freelist hit: sheaf exchange and refill, debug caches,
/// CPU slab refills, new slabs, failure reports.
#[cold]
#[inline(never)]
fn alloc_slow_path<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    gfp: GfpFlags,
    caller: &'static Location<'static>,
    orig: usize,
) -> Option<NonNull<u8>> {
    m.slub_drain_deferred();
    if s.has_sheaves() {
        if s.flush_gen.load(Ordering::Relaxed) != 0 {
            // A shrink asked every CPU to flush (sheaf.rs `sheaves_flush_requested`).
            m.sheaves_flush_requested(s);
        }
        if let Some(o) = m.alloc_from_pcs_slow(s, gfp) {
            if gfp.contains(GfpFlags::__GFP_ZERO) {
                // SAFETY: a freshly allocated object of `object_size` bytes.
                unsafe { ptr::write_bytes(o, 0, s.object_size as usize) };
            }
            // SAFETY: objects are never null.
            return Some(unsafe { NonNull::new_unchecked(o) });
        }
    }
    alloc_from_slab(m, s, gfp, caller, orig)
}

/// `__slab_alloc_node`: one object from the CPU slab (or the debug path), never from a
/// sheaf. Sheaves themselves are allocated here, so that a kmalloc cache never recurses into
/// its own sheaves.
pub(super) fn alloc_from_slab<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    gfp: GfpFlags,
    caller: &'static Location<'static>,
    orig: usize,
) -> Option<NonNull<u8>> {
    let obj = if s.debug() {
        m.slab_alloc_debug(s, gfp, caller, orig, true, NUMA_NO_NODE)
    } else {
        // Lock order: cpu_section (rank 3), &n->list_lock, &zone->lock under it; docs/LOCKING.md.
        let g = m.cpu_guard();
        // SAFETY: we hold this CPU's section and no other reference to its data.
        let c = unsafe { s.cpu(g.cpu()) };
        let obj = c.freelist;
        if !obj.is_null() {
            // SAFETY: `obj` is a CPU-owned free object.
            c.freelist = unsafe { s.get_fp(obj) };
            c.alloc_fast = c.alloc_fast.wrapping_add(1);
            Some(obj)
        } else {
            m.slab_alloc_slow(s, c, gfp, true)
        }
    };
    match obj {
        Some(o) => {
            zero_object::<P>(s, gfp, o, orig);
            // SAFETY: objects are never null.
            Some(unsafe { NonNull::new_unchecked(o) })
        }
        None => {
            slab_out_of_memory(m, s, gfp, NUMA_NO_NODE);
            None
        }
    }
}

/// `__GFP_ZERO` on an object fresh from a slab of `s`.
#[inline]
pub(super) fn zero_object<P: Platform>(s: &Cache<P>, gfp: GfpFlags, o: *mut u8, orig: usize) {
    if gfp.contains(GfpFlags::__GFP_ZERO) {
        // With the kmalloc red zone on, only the size asked for is zeroed: the slack
        // up to `object_size` is red zone (`slab_post_alloc_hook`'s `zero_size =
        // orig_size` in mm/slub.c). Zeroing it would be reported as an overwrite.
        let zero = if s.orig_size_enabled() {
            orig.min(s.object_size as usize)
        } else {
            s.object_size as usize
        };
        // SAFETY: a freshly allocated object of at least `zero` bytes.
        unsafe { ptr::write_bytes(o, 0, zero) };
    }
}

/// `slab_out_of_memory` for a request on `node` (`NUMA_NO_NODE`: -1, any node).
#[cold]
pub(super) fn slab_out_of_memory<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    gfp: GfpFlags,
    node: i32,
) {
    if gfp.contains(GfpFlags::__GFP_NOWARN) {
        return;
    }
    m.printk(
        LogLevel::Warning,
        format_args!(
            "SLUB: Unable to allocate memory on node {node}, gfp={:#x}({})",
            gfp.bits(),
            gfp
        ),
    );
    m.printk(
        LogLevel::Warning,
        format_args!(
            "  cache: {}, object size: {}, buffer size: {}, default order: {}, min order: {}",
            s.name(),
            s.object_size,
            s.size,
            s.order,
            s.min_order
        ),
    );
    for (nid, n) in m.for_each_kmem_cache_node(s) {
        let nr_slabs = n.nr_slabs.load(Ordering::Relaxed);
        let nr_objs = n.total_objects.load(Ordering::Relaxed);
        let free = count_partial(n, Count::Free);
        m.printk(
            LogLevel::Warning,
            format_args!("  node {nid}: slabs: {nr_slabs}, objs: {nr_objs}, free: {free}"),
        );
    }
}

/// `slab_alloc_node` through a handle.
#[inline(always)]
pub(crate) fn slab_alloc<P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    gfp: GfpFlags,
    caller: &'static Location<'static>,
) -> Option<NonNull<u8>> {
    let s = resolve(m, h, caller)?;
    alloc_inner(m, s, gfp, caller, s.object_size as usize)
}

/// `kmalloc_trace`: allocation through a handle for a request of `size` bytes.
pub(crate) fn slab_alloc_sized<P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    gfp: GfpFlags,
    caller: &'static Location<'static>,
    size: usize,
) -> Option<NonNull<u8>> {
    let s = resolve(m, h, caller)?;
    alloc_inner(m, s, gfp, caller, size)
}

/// `krealloc` keeping the block: records the new requested size and red-zones the slack
/// (`__do_krealloc` with `slub_debug_orig_size`).
pub(crate) fn krealloc_in_place<P: Platform>(m: &SlabLayer<P>, p: *mut u8, new_size: usize) {
    let Owner::Slab(_, cache) = m.owner_of(p) else {
        return;
    };
    // SAFETY: `mapping` of a slab page is its cache, which never goes away.
    let s = unsafe { &*(cache as *const Cache<P>) };
    if !s.orig_size_enabled() || new_size > s.object_size as usize {
        return;
    }
    m.set_orig_size(s, p, new_size as u32);
    if s.flags.contains(SlabFlags::RED_ZONE) {
        // SAFETY: the caller owns the object; the slack lies inside it.
        unsafe {
            ptr::write_bytes(
                p.add(new_size),
                SLUB_RED_ACTIVE,
                s.object_size as usize - new_size,
            )
        };
    }
}

/// `get_orig_size` for `krealloc`: the requested size of the object at `p` when its cache
/// tracks it, else 0 (`__do_krealloc`'s `orig_size`).
pub(crate) fn krealloc_orig_size<P: Platform>(m: &SlabLayer<P>, p: *mut u8) -> usize {
    let Owner::Slab(_, cache) = m.owner_of(p) else {
        return 0;
    };
    // SAFETY: `mapping` of a slab page is its cache, which never goes away.
    let s = unsafe { &*(cache as *const Cache<P>) };
    if !s.orig_size_enabled() {
        return 0;
    }
    m.get_orig_size(s, p) as usize
}

/// `ksize` of a slab object's cache.
///
/// # Safety
/// `cache` is the `mapping` word of a SLUB slab page of this machine (the address of that
/// slab's live `Cache<P>`).
pub(crate) unsafe fn slab_ksize<P: Platform>(cache: usize) -> usize {
    // SAFETY: `cache` is the `mapping` word of a slab page (this function's contract), which is
    // that slab's cache, and caches are never freed while they have slabs, so the reference is
    // to a live `KmemCache`.
    let s = unsafe { &*(cache as *const Cache<P>) };
    s.ksize()
}

/// `kmalloc_slab` + allocation: the hot path of `kmalloc` for sizes up to 8 KiB.
#[inline(always)]
pub(crate) fn kmalloc_small<P: Platform>(
    m: &SlabLayer<P>,
    size: usize,
    gfp: GfpFlags,
    caller: &'static Location<'static>,
) -> Option<NonNull<u8>> {
    let p = kmalloc_slot(m, size, gfp);
    if p.is_null() {
        return None;
    }
    // SAFETY: kmalloc table entries are caches created at boot, never destroyed.
    let s = unsafe { &*p.cast::<Cache<P>>() };
    alloc_inner(m, s, gfp, caller, size)
}

/// `kmem_cache_alloc_bulk`.
pub(crate) fn alloc_bulk<P: Platform>(
    m: &SlabLayer<P>,
    h: CacheHandle,
    gfp: GfpFlags,
    out: &mut [*mut u8],
    caller: &'static Location<'static>,
) -> usize {
    let Some(s) = resolve(m, h, caller) else {
        return 0;
    };
    let mut i = 0;
    if !s.debug() && !s.has_sheaves() {
        // Lock order: cpu_section (rank 3), &n->list_lock, &zone->lock under it; docs/LOCKING.md.
        let g = m.cpu_guard();
        // SAFETY: we hold this CPU's section and no other reference to its data.
        let c = unsafe { s.cpu(g.cpu()) };
        while i < out.len() {
            let obj = c.freelist;
            if !obj.is_null() {
                // SAFETY: a CPU-owned free object.
                c.freelist = unsafe { s.get_fp(obj) };
                c.alloc_fast = c.alloc_fast.wrapping_add(1);
                out[i] = obj;
            } else {
                match m.slab_alloc_slow(s, c, gfp, true) {
                    Some(o) => out[i] = o,
                    None => break,
                }
            }
            i += 1;
        }
        drop(g);
        if gfp.contains(GfpFlags::__GFP_ZERO) {
            for o in &out[..i] {
                // SAFETY: freshly allocated objects.
                unsafe { ptr::write_bytes(*o, 0, s.object_size as usize) };
            }
        }
    } else {
        while i < out.len() {
            match alloc_inner(m, s, gfp, caller, s.object_size as usize) {
                Some(o) => out[i] = o.as_ptr(),
                None => break,
            }
            i += 1;
        }
    }
    if i < out.len() {
        slab_out_of_memory(m, s, gfp, NUMA_NO_NODE);
        for o in &out[..i] {
            kmem_cache_free(m, h, *o, caller);
        }
        for o in out.iter_mut() {
            *o = ptr::null_mut();
        }
        return 0;
    }
    i
}
