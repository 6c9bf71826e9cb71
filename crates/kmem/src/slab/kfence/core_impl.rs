//! KFENCE's allocation, free and fault paths (`__kfence_alloc`, `kfence_guarded_alloc`,
//! `__kfence_free`, `kfence_guarded_free`, `kfence_handle_page_fault`,
//! `kfence_shutdown_cache` of mm/kfence/core.c). See the parent module for the design.

use core::cell::UnsafeCell;
use core::panic::Location;

use crate::mm::stackdepot::DepotHandle;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};

use super::{
    canary_pattern, canary_ranges, pool_read, pool_write, rcu_guarded_free, Countdown, Counter,
    Kfence, KfenceError, KfenceObjectState, KfenceParams, Meta, Objects, RcuSlot, Site, Track,
    COUNTDOWNS, KFENCE_CLOCK_EVERY, KFENCE_NUM_OBJECTS,
};
use crate::addr::PAGE_SIZE;
use crate::gfp::GfpFlags;
use crate::locking::{Lock, KFENCE_FREELIST_LOCK};
use crate::mm::rcu::RcuHead;
use crate::platform::Platform;
use crate::slab::common::{CacheHandle, SlabFlags};
use crate::slab::SlabLayer;

const TRACK_NONE: Track = Track {
    pid: 0,
    cpu: 0,
    ts_nsec: 0,
    site: None,
    stack: DepotHandle::NONE,
};

/// Writes a fresh KFENCE state at `st`: every object unused and on the freelist in order,
/// nothing protected yet (`kfence_init` protects).
///
/// # Safety
/// `st` is valid for writes of a `Kfence<P>`, aligned, and used by nothing else.
pub(super) unsafe fn init_state<P: Platform>(
    st: *mut Kfence<P>,
    pool: usize,
    layer: &SlabLayer<P>,
    params: &KfenceParams,
    seed: u32,
) {
    let mut meta = [Meta {
        state: KfenceObjectState::Unused,
        addr: 0,
        size: 0,
        cache: None,
        unprotected_page: 0,
        alloc: TRACK_NONE,
        free: TRACK_NONE,
        alloc_stack_hash: 0,
    }; KFENCE_NUM_OBJECTS];
    for (i, m) in meta.iter_mut().enumerate() {
        // For the page-address invariant (Linux's `metadata_to_pageaddr` check).
        m.addr = pool + (i + 1) * 2 * PAGE_SIZE;
    }
    let objs = Objects {
        meta,
        free: core::array::from_fn(|i| i as u16),
        head: 0,
        len: KFENCE_NUM_OBJECTS,
    };
    let state = Kfence {
        pool,
        layer: layer as *const SlabLayer<P>,
        enabled: AtomicBool::new(false),
        interval_ms: AtomicU64::new(params.sample_interval),
        skip_covered_thresh: AtomicU64::new(params.skip_covered_thresh),
        next_sample: AtomicU64::new(u64::MAX),
        no_hash_pointers: params.no_hash_pointers,
        hash_seed: seed,
        counters: core::array::from_fn(|_| AtomicI64::new(0)),
        covered: core::array::from_fn(|_| AtomicU32::new(0)),
        countdown: core::array::from_fn(|_| Countdown(AtomicU32::new(0))),
        protected: core::array::from_fn(|_| AtomicU64::new(0)),
        rcu: core::array::from_fn(|i| RcuSlot {
            head: UnsafeCell::new(RcuHead::new()),
            kfence: st.cast_const(),
            index: i,
        }),
        objs: Lock::new(&KFENCE_FREELIST_LOCK, objs),
    };
    // SAFETY: the caller's guarantee.
    unsafe { st.write(state) };
}

impl<P: Platform> SlabLayer<P> {
    /// `struct kfence_track` of the current task, now.
    fn kfence_track(&self, site: Option<&'static Location<'static>>) -> Track {
        let plat = self.platform();
        Track {
            pid: plat.current_pid(),
            cpu: plat.raw_cpu_id() as u32,
            ts_nsec: self.timestamp_ns(),
            site,
            stack: if site.is_some() {
                self.stack_depot_save_current()
            } else {
                DepotHandle::NONE
            },
        }
    }

    /// `kfence_alloc`: a KFENCE object for the allocation `req()` describes (the cache and
    /// the size asked for), if the allocation gate is open; `None` (the caller allocates
    /// normally) otherwise. `req` is called only when the gate is open.
    #[inline]
    pub(crate) fn kfence_alloc(
        &self,
        req: impl FnOnce() -> Option<(CacheHandle, usize)>,
        gfp: GfpFlags,
        caller: &'static Location<'static>,
    ) -> Option<NonNull<u8>> {
        let kf = self.kfence()?;
        // The CPU's countdown: only this CPU writes it (a racing shared slot only makes a
        // clock read more or less).
        let c = &kf.countdown[self.platform().raw_cpu_id() % COUNTDOWNS].0;
        let n = c.load(Ordering::Relaxed);
        if n != 0 {
            c.store(n - 1, Ordering::Relaxed);
            return None;
        }
        self.kfence_alloc_slow(kf, req, gfp, caller)
    }

    /// `__kfence_alloc`.
    #[cold]
    #[inline(never)]
    fn kfence_alloc_slow(
        &self,
        kf: &Kfence<P>,
        req: impl FnOnce() -> Option<(CacheHandle, usize)>,
        gfp: GfpFlags,
        caller: &'static Location<'static>,
    ) -> Option<NonNull<u8>> {
        let plat = self.platform();
        let closed = || {
            let c = &kf.countdown[plat.raw_cpu_id() % COUNTDOWNS].0;
            c.store(KFENCE_CLOCK_EVERY - 1, Ordering::Relaxed);
            None
        };
        if !kf.enabled.load(Ordering::Relaxed) {
            return closed();
        }
        let now = plat.jiffies();
        let next = kf.next_sample.load(Ordering::Relaxed);
        if now < next {
            return closed();
        }
        // Size and zone checks come before the gate is taken, so that KFENCE is not closed
        // without an allocation (Linux's order).
        let (c, size) = req()?;
        if size > PAGE_SIZE || gfp.intersects(GfpFlags::GFP_ZONEMASK) {
            kf.count(Counter::SkipIncompat, 1);
            return None;
        }
        let layout = self.slab_layout(c)?;
        if layout
            .flags
            .intersects(SlabFlags::CACHE_DMA | SlabFlags::CACHE_DMA32)
        {
            kf.count(Counter::SkipIncompat, 1);
            return None;
        }
        let interval = kf.interval_ms.load(Ordering::Relaxed);
        if interval == 0 {
            return None;
        }
        // msecs_to_jiffies rounds up.
        let delta = (interval.saturating_mul(plat.hz())).div_ceil(1000);
        if kf
            .next_sample
            .compare_exchange(next, now + delta, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        // get_alloc_stack_hash of the real stack where the platform can walk it, else of the
        // Rust call site.
        let stack = self.stack_trace_save();
        let hash = if stack.entries().is_empty() {
            kf.site_hash(caller)
        } else {
            kf.seeded_hash(u64::from(stack.hash()))
        };
        if kf.should_skip_covered() && kf.covered_contains(hash) {
            kf.count(Counter::SkipCovered, 1);
            return None;
        }
        self.kfence_guarded_alloc(kf, c, layout.align, size, gfp, caller, hash)
    }

    /// `kfence_guarded_alloc`: takes a free object, places it against the left or (at
    /// random) the right guard page, fills the rest of the page with canary bytes.
    #[allow(clippy::too_many_arguments)]
    fn kfence_guarded_alloc(
        &self,
        kf: &Kfence<P>,
        c: CacheHandle,
        align: usize,
        size: usize,
        gfp: GfpFlags,
        caller: &'static Location<'static>,
        hash: u32,
    ) -> Option<NonNull<u8>> {
        let plat = self.platform();
        let right = plat.random_u64() & 1 == 1;
        let track = self.kfence_track(Some(caller));
        let addr = {
            // Lock order: kfence_freelist_lock (module docs).
            let mut objs = kf.objs.lock();
            let Some(i) = objs.pop() else {
                drop(objs);
                kf.count(Counter::SkipCapacity, 1);
                return None;
            };
            let page = kf.page_of(i);
            if objs.meta[i].state == KfenceObjectState::Freed {
                kf.set_protected(plat, page, false);
            }
            let mut a = page;
            if right {
                a = page + PAGE_SIZE - size;
                a -= a % align.max(1);
            }
            let m = &mut objs.meta[i];
            m.addr = a;
            m.size = size;
            m.cache = Some(c);
            m.alloc = track;
            m.alloc_stack_hash = hash;
            m.unprotected_page = 0;
            m.state = KfenceObjectState::Allocated;
            for r in canary_ranges(m) {
                for b in r {
                    // SAFETY: `b` is in object `i`'s data page, unprotected above (or never
                    // protected), outside the object: KFENCE's canary bytes.
                    unsafe { pool_write(b, canary_pattern(b)) };
                }
            }
            a
        };
        kf.covered_add(hash, 1);
        if gfp.contains(GfpFlags::__GFP_ZERO) {
            // SAFETY: `[addr, addr + size)` is the new object, inside its unprotected page.
            unsafe { core::ptr::write_bytes(addr as *mut u8, 0, size) };
        }
        if let Some(ctor) = dispatch!(self, ctor::<P>(c)) {
            ctor(addr as *mut u8);
        }
        kf.count(Counter::Allocated, 1);
        kf.count(Counter::Allocs, 1);
        NonNull::new(addr as *mut u8)
    }

    /// `kfence_free`: frees `p` if it is a KFENCE object (returns `true`: handled, reported
    /// if it was not a valid free); `false` for anything else, which the caller frees.
    ///
    /// On every kfree and kmem_cache_free: with KFENCE off this is one load and a branch; the
    /// rest is out of line.
    #[inline(always)]
    pub(crate) fn kfence_free(&self, p: *const u8, caller: &'static Location<'static>) -> bool {
        match self.kfence() {
            None => false,
            Some(kf) => self.kfence_free_in(kf, p, caller),
        }
    }

    /// `kfence_free` with KFENCE on.
    #[inline(never)]
    fn kfence_free_in(
        &self,
        kf: &Kfence<P>,
        p: *const u8,
        caller: &'static Location<'static>,
    ) -> bool {
        let addr = p as usize;
        // The first two pages have no object: such a pointer is left to the caller, which
        // reports it as not its own.
        let Some(i) = kf.index_of(addr) else {
            return false;
        };
        // Lock order: kfence_freelist_lock (module docs).
        let mut objs = kf.objs.lock();
        let m = objs.meta[i];
        if m.state != KfenceObjectState::Allocated || m.addr != addr {
            // Invalid or double free, bail out. (A second free while an RCU free is pending
            // is caught here too, before its head could be queued twice.)
            kf.count(Counter::Bugs, 1);
            let site = Site::Caller(caller);
            self.kfence_report(
                kf,
                addr,
                false,
                site,
                Some((i, &m)),
                KfenceError::InvalidFree,
            );
            return true;
        }
        let rcu = m
            .cache
            .and_then(|c| self.slab_layout(c))
            .is_some_and(|l| l.flags.contains(SlabFlags::TYPESAFE_BY_RCU));
        if rcu {
            objs.meta[i].state = KfenceObjectState::RcuFreeing;
            objs.meta[i].free = self.kfence_track(Some(caller));
            drop(objs);
            let head = kf.rcu[i].head.get();
            // SAFETY: the slot's head is queued only here, for an object that was Allocated
            // (now RcuFreeing, so no second queueing until the callback frees it); the slot
            // lives in the never-freed state, untouched until the callback runs.
            unsafe {
                self.call_rcu(NonNull::new_unchecked(head), rcu_guarded_free::<P>);
            }
            return true;
        }
        self.kfence_guarded_free(kf, &mut objs, i, false, Some(caller));
        true
    }

    /// `kfence_guarded_free`: marks object `i` freed, checks its canary bytes, protects its
    /// page and (unless a zombie of a destroyed cache) puts it on the freelist. `caller` is
    /// the free's site (`None`: the RCU callback, whose free site was recorded at the free).
    pub(super) fn kfence_guarded_free(
        &self,
        kf: &Kfence<P>,
        objs: &mut Objects,
        i: usize,
        zombie: bool,
        caller: Option<&'static Location<'static>>,
    ) {
        let plat = self.platform();
        let track = self.kfence_track(caller);
        let m = &mut objs.meta[i];
        // Restore page protection if there was an OOB access.
        if m.unprotected_page != 0 {
            let pg = m.unprotected_page & !(PAGE_SIZE - 1);
            // SAFETY: a guard page of the pool, unprotected by the fault that recorded it.
            unsafe { core::ptr::write_bytes(pg as *mut u8, 0, PAGE_SIZE) };
            kf.set_protected(plat, pg, true);
            m.unprotected_page = 0;
        }
        if m.state != KfenceObjectState::RcuFreeing {
            m.free = track;
        }
        m.state = KfenceObjectState::Freed;
        let meta = *m;
        kf.covered_add(meta.alloc_stack_hash, -1);
        // Each side is checked up to its first bad byte, both sides always.
        let site = Site::Caller(meta.free.site.unwrap_or(Location::caller()));
        for r in canary_ranges(&meta) {
            for b in r {
                // SAFETY: the object's data page is still unprotected (it is protected below).
                if unsafe { pool_read(b) } != canary_pattern(b) {
                    kf.count(Counter::Bugs, 1);
                    self.kfence_report(
                        kf,
                        b,
                        false,
                        site,
                        Some((i, &meta)),
                        KfenceError::Corruption,
                    );
                    break;
                }
            }
        }
        kf.set_protected(plat, meta.addr, true);
        if zombie {
            kf.count(Counter::Zombies, 1);
        } else {
            objs.push(i);
            kf.count(Counter::Allocated, -1);
            kf.count(Counter::Frees, 1);
        }
    }

    /// `kfence_ksize`: the size asked for, for a pointer into a KFENCE object's pages.
    pub(crate) fn kfence_ksize(&self, p: *const u8) -> Option<usize> {
        let kf = self.kfence()?;
        if !kf.contains(p as usize) {
            return None;
        }
        // Lock order: kfence_freelist_lock (module docs).
        Some(
            kf.index_of(p as usize)
                .map_or(0, |i| kf.objs.lock().meta[i].size),
        )
    }

    /// `kfence_shutdown_cache`: objects of `c` still allocated become zombies (freed, never
    /// reused), and freed objects forget the cache (reports then say `<destroyed>`).
    pub(crate) fn kfence_shutdown_cache(&self, c: CacheHandle, caller: &'static Location<'static>) {
        let Some(kf) = self.kfence() else { return };
        // Lock order: kfence_freelist_lock (module docs).
        let mut objs = kf.objs.lock();
        for i in 0..KFENCE_NUM_OBJECTS {
            let m = objs.meta[i];
            if m.cache == Some(c) && m.state == KfenceObjectState::Allocated {
                self.kfence_guarded_free(kf, &mut objs, i, true, Some(caller));
            }
        }
        for m in objs.meta.iter_mut() {
            if m.cache == Some(c) && m.state == KfenceObjectState::Freed {
                m.cache = None;
            }
        }
    }

    /// `kfence_handle_page_fault`: reports an access to the pool at `addr` (a guard page: an
    /// out-of-bounds access of the nearest allocated object; a freed object's page: a
    /// use-after-free; else an invalid access) and unprotects the page so that the access
    /// can proceed. Returns `false` if `addr` is not KFENCE's.
    pub(crate) fn kfence_handle_fault_at(&self, addr: usize, is_write: bool, site: Site) -> bool {
        let Some(kf) = self.kfence() else {
            return false;
        };
        if !kf.contains(addr) {
            return false;
        }
        let plat = self.platform();
        if !kf.enabled.load(Ordering::Relaxed) {
            // Disabled at run time: unprotect and silently skip the fault.
            kf.set_protected(plat, addr, false);
            return true;
        }
        kf.count(Counter::Bugs, 1);
        let page_index = (addr - kf.pool) / PAGE_SIZE;
        let allocated = |s: KfenceObjectState| {
            matches!(
                s,
                KfenceObjectState::Allocated | KfenceObjectState::RcuFreeing
            )
        };
        // Lock order: kfence_freelist_lock (module docs).
        let mut objs = kf.objs.lock();
        let (to_report, err) = if page_index % 2 == 1 {
            // A guard page: a buffer overflow of the closer allocated neighbour.
            let mut to_report = None;
            let mut distance = 0;
            if let Some(i) = kf.index_of(addr - PAGE_SIZE) {
                let m = &objs.meta[i];
                if allocated(m.state) {
                    to_report = Some(i);
                    distance = addr.wrapping_sub(m.addr + m.size);
                }
            }
            if let Some(i) = kf.index_of(addr + PAGE_SIZE) {
                let m = &objs.meta[i];
                if allocated(m.state)
                    && (to_report.is_none() || distance > m.addr.wrapping_sub(addr))
                {
                    to_report = Some(i);
                }
            }
            if let Some(i) = to_report {
                objs.meta[i].unprotected_page = addr;
            }
            (to_report, KfenceError::Oob)
        } else {
            (kf.index_of(addr), KfenceError::Uaf)
        };
        match to_report {
            Some(i) => {
                let m = objs.meta[i];
                self.kfence_report(kf, addr, is_write, site, Some((i, &m)), err);
            }
            None => self.kfence_report(kf, addr, is_write, site, None, KfenceError::Invalid),
        }
        drop(objs);
        kf.set_protected(plat, addr, false);
        true
    }
}
