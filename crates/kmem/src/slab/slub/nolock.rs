//! `kmalloc_nolock` and `kfree_nolock` (mm/slub.c, Linux 6.18): kmalloc from any context —
//! an NMI, a kprobe or tracing program that fired while the same CPU was inside the
//! allocator — never spinning or waiting.
//!
//! # What may not be touched, and how it is avoided
//! - **The CPU's `kmem_cache_cpu` of the cache being interrupted.** Linux protects it with a
//!   `local_trylock_t`; in an NMI, `local_lock_is_locked(&s->cpu_slab->lock)` means the CPU
//!   was interrupted inside that cache's slow path and the request is retried once in the
//!   next kmalloc bucket (`size = s->object_size + 1`), else fails. kmem's reentry points
//!   ([`NmiPoint`]) record which cache's per-CPU data the interrupted code holds
//!   (`NolockState`'s NMI records); a nested `kmalloc_nolock` of that cache is "busy" in the
//!   same way, and a nested `kfree_nolock` into it is deferred.
//! - **Waiting for a CPU section, `list_lock` or the zone lock.** The section is entered with
//!   `cpu_guard_try`, `list_lock` is try-locked (`get_partial_node`,
//!   `alloc_single_from_new_slab`), slabs come from `alloc_pages_nolock` (zone lock
//!   try-locked, orders up to 3 only).
//! - **Anything else that may take a lock on the free side.** `kfree_nolock` frees straight
//!   into the CPU's active slab only (`do_slab_free`'s lockless fast path); every other free
//!   — another slab, a debug cache, a busy cache, no CPU section — is deferred (`defer_free`),
//!   as is a new debug slab that could not be put on its list (`defer_deactivate_slab`).
//!
//! # Deferred frees
//! Linux queues them on a per-CPU `llist` and frees them from an `irq_work`
//! (`free_deferred_objects`) as soon as the CPU leaves the interrupted context, and
//! `kmem_cache_destroy` waits for them (`defer_free_barrier`). kmem has no interrupts: the two
//! lists here (objects, slabs) are lock-free LIFOs (compare-and-swap push, exchange drain)
//! drained at the next safe point — the next ordinary (waiting) allocation or free that
//! reaches SLUB's slow path, `kmem_cache_shrink`, `validate`, `kmem_cache_destroy` and
//! `slab_tick` ([`SlabLayer::slub_drain_deferred`]). An object links through its free-pointer
//! slot (`s->offset`), raw, and the slot is cleared before the real free so that debug checks
//! do not see a corrupt free pointer; a slab links through `lru.next`.
//!
//! # Restrictions (as Linux)
//! GFP flags other than `__GFP_ACCOUNT` and `__GFP_ZERO` are reported and ignored; sizes above
//! `KMALLOC_MAX_CACHE_SIZE` (8 KiB) return `None` (there is no `kmalloc_large` without
//! locks); `kfree_nolock` of a large-kmalloc block is refused with a warning; failures print
//! nothing (`__GFP_NOWARN`). `None` means out of memory or busy: retrying at once does not
//! help. The object must be freed with `kfree_nolock` or `kfree`; `kfree_nolock` may free an
//! object from `kmalloc` too.
//!
//! # Reentry points (a test-only injection of Linux's NMI and kprobe contexts)
//! [`SlabLayer::with_nmi_hook`] (unsafe) installs a hook that SLUB calls at [`NmiPoint`]s
//! with the interrupted state recorded. The hook may call only `*_nolock` functions (as an
//! NMI handler in Linux): that is its safety contract. NMIs do not nest: inside the hook no
//! reentry point fires again.

use core::panic::Location;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::gfp::GfpFlags;
use crate::mm::mm_types::Page;
use crate::platform::Platform;
use crate::slab::common::{kmalloc_index, kmalloc_type, Owner, KMALLOC_MAX_CACHE_SIZE};
use crate::slab::SlabLayer;

use super::free::{bad_object_pointer, double_free, free_inner};
use super::{Cache, Slab};

/// Where SLUB lets a hook interrupt it, like an NMI or a kprobe would in Linux.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NmiPoint {
    /// `slab_attach_kprobe_locked` (6.18): inside `___slab_alloc` with the CPU's
    /// `kmem_cache_cpu` of the cache locked. slub_kunit's kprobe case probes it.
    SlabAttachKprobeLocked,
    /// With a cache's `list_lock` held (`get_partial_node`, the debug caches' allocation).
    ListLockHeld,
}

/// Most NMIs in progress at once, machine-wide (one per CPU at most); a reentry point that
/// finds no free record does not fire.
const NMI_RECORDS: usize = 8;

/// A hook installed by [`SlabLayer::with_nmi_hook`], on its caller's stack.
struct HookCell<'a> {
    f: &'a (dyn Fn(NmiPoint) + Sync),
}

/// `kmalloc_nolock`'s machine-wide state: the deferred-free lists and the reentry hook.
pub struct NolockState {
    /// `defer_free_objects.objects`: objects, linked through their free-pointer slot.
    objects: AtomicPtr<u8>,
    /// `defer_free_objects.slabs`: slabs (struct pages), linked through `lru.next`.
    slabs: AtomicPtr<Page>,
    /// `kfree_rcu_nolock` calls: their rcu heads, each holding `[next head, head offset]`.
    rcu: AtomicPtr<u8>,
    /// Objects and slabs on the two lists.
    nr_deferred: AtomicUsize,
    /// Total ever deferred (statistics for tests).
    deferred_total: AtomicUsize,
    /// The installed hook (`*const HookCell`), or null.
    hook: AtomicPtr<()>,
    /// Hook calls in progress.
    hook_active: AtomicUsize,
    /// NMI records: `cpu + 1` of a CPU inside the hook, 0 = free.
    nmi_cpu: [AtomicUsize; NMI_RECORDS],
    /// For each record, the cache whose per-CPU data the interrupted code holds, or null.
    nmi_cache: [AtomicPtr<u8>; NMI_RECORDS],
}

impl NolockState {
    pub(crate) fn new() -> Self {
        Self {
            objects: AtomicPtr::new(ptr::null_mut()),
            slabs: AtomicPtr::new(ptr::null_mut()),
            rcu: AtomicPtr::new(ptr::null_mut()),
            nr_deferred: AtomicUsize::new(0),
            deferred_total: AtomicUsize::new(0),
            hook: AtomicPtr::new(ptr::null_mut()),
            hook_active: AtomicUsize::new(0),
            nmi_cpu: [const { AtomicUsize::new(0) }; NMI_RECORDS],
            nmi_cache: [const { AtomicPtr::new(ptr::null_mut()) }; NMI_RECORDS],
        }
    }

    /// The NMI record of `cpu`: `Some(locked cache or null)` if `cpu` is inside the hook.
    fn in_nmi(&self, cpu: usize) -> Option<*mut u8> {
        (0..NMI_RECORDS)
            .find(|&i| self.nmi_cpu[i].load(Ordering::Acquire) == cpu + 1)
            .map(|i| self.nmi_cache[i].load(Ordering::Acquire))
    }
}

/// `-EBUSY` of `__slab_alloc_node` in trylock mode: the CPU's data of this cache is held.
struct Busy;

impl<P: Platform> SlabLayer<P> {
    /// A reentry point: calls the installed hook, if any, as an NMI on this CPU that
    /// interrupted code holding `s`'s per-CPU data (`cpu_held`) or only its `list_lock`.
    #[inline]
    pub(super) fn nmi_point(&self, point: NmiPoint, s: &Cache<P>, cpu_held: bool) {
        if self.nolock.hook.load(Ordering::Relaxed).is_null() {
            return;
        }
        self.nmi_fire(point, s, cpu_held);
    }

    #[cold]
    #[inline(never)]
    fn nmi_fire(&self, point: NmiPoint, s: &Cache<P>, cpu_held: bool) {
        let st = &self.nolock;
        let cpu = self.platform().raw_cpu_id();
        if st.in_nmi(cpu).is_some() {
            return; // NMIs do not nest.
        }
        let Some(rec) = (0..NMI_RECORDS).find(|&i| {
            st.nmi_cpu[i]
                .compare_exchange(0, cpu + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        }) else {
            return;
        };
        let held = if cpu_held {
            s as *const Cache<P> as *mut u8
        } else {
            ptr::null_mut()
        };
        st.nmi_cache[rec].store(held, Ordering::Release);
        st.hook_active.fetch_add(1, Ordering::SeqCst);
        let h = st.hook.load(Ordering::SeqCst);
        if !h.is_null() {
            // SAFETY: a non-null hook is a `HookCell` on the stack of `with_nmi_hook`, which
            // clears it and then waits for `hook_active` to drop to 0 before returning; we
            // counted ourselves in `hook_active` before loading it.
            let cell = unsafe { &*h.cast::<HookCell<'_>>() };
            (cell.f)(point);
        }
        st.hook_active.fetch_sub(1, Ordering::SeqCst);
        st.nmi_cache[rec].store(ptr::null_mut(), Ordering::Relaxed);
        st.nmi_cpu[rec].store(0, Ordering::Release);
    }

    /// Runs `f` with `hook` called at SLUB's reentry points ([`NmiPoint`]) on every CPU, as
    /// an NMI handler or kprobe would run in Linux (slub_kunit's
    /// `test_kmalloc_nolock_and_friends_*`). Returns `f`'s result once no hook call is in
    /// progress. A second hook cannot be installed while one is: `f` then runs without it (and
    /// a warning is printed).
    ///
    /// # Safety
    /// The hook runs while the interrupted code holds references to per-CPU data and locks.
    /// It may call only `kmalloc_nolock`, `kfree_nolock`, `kfree_rcu_nolock`,
    /// `alloc_pages_nolock`, `free_pages_nolock` and functions that only read atomics
    /// (`nolock_deferred`, counters); anything else — an ordinary allocation or free,
    /// `slub_drain_deferred`, a cache operation — may alias the interrupted code's per-CPU data
    /// or deadlock, as in an NMI handler in Linux.
    pub unsafe fn with_nmi_hook<R>(
        &self,
        hook: &(dyn Fn(NmiPoint) + Sync),
        f: impl FnOnce() -> R,
    ) -> R {
        let st = &self.nolock;
        let cell = HookCell { f: hook };
        let p = (&cell as *const HookCell<'_>).cast_mut().cast::<()>();
        if st
            .hook
            .compare_exchange(ptr::null_mut(), p, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            self.warn(format_args!("with_nmi_hook: a hook is already installed"));
            return f();
        }
        let r = f();
        st.hook.store(ptr::null_mut(), Ordering::SeqCst);
        while st.hook_active.load(Ordering::SeqCst) != 0 {
            self.platform().cpu_relax();
        }
        r
    }

    /// Objects and slabs waiting on the deferred-free lists.
    pub fn nolock_deferred(&self) -> usize {
        self.nolock.nr_deferred.load(Ordering::Relaxed)
    }

    /// Objects and slabs ever put on the deferred-free lists.
    pub fn nolock_deferred_total(&self) -> usize {
        self.nolock.deferred_total.load(Ordering::Relaxed)
    }

    /// `defer_free`: queues an object of `s` for freeing at the next safe point.
    fn defer_free(&self, s: &Cache<P>, obj: *mut u8) {
        let st = &self.nolock;
        // SAFETY: the free-pointer slot lies inside the object's stride, word aligned; the
        // object is being freed by its owner, so the slot is ours.
        let link = unsafe { obj.add(s.offset as usize) }.cast::<*mut u8>();
        let mut head = st.objects.load(Ordering::Relaxed);
        loop {
            // SAFETY: `link` is the free-pointer slot of `obj`, inside its stride and word aligned;
            // its owner is freeing it, so until the compare-and-swap publishes it no one else reads
            // or writes the slot.
            unsafe { ptr::write(link, head) };
            match st
                .objects
                .compare_exchange_weak(head, obj, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
        st.nr_deferred.fetch_add(1, Ordering::Relaxed);
        st.deferred_total.fetch_add(1, Ordering::Relaxed);
    }

    /// `defer_deactivate_slab` of a debug cache's new slab that could not be added to its
    /// list: freed (discarded) at the next safe point. The slab is on no list and has no
    /// object in use.
    pub(super) fn defer_discard_slab(&self, slab: Slab) {
        let st = &self.nolock;
        let mut head = st.slabs.load(Ordering::Relaxed);
        loop {
            slab.set_next_partial(head);
            match st.slabs.compare_exchange_weak(
                head,
                slab.raw(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
        st.nr_deferred.fetch_add(1, Ordering::Relaxed);
        st.deferred_total.fetch_add(1, Ordering::Relaxed);
    }

    /// `free_deferred_objects` (the irq_work) and `defer_free_barrier`: frees everything
    /// `kfree_nolock` and `kmalloc_nolock` deferred. Called at safe points only: where an
    /// ordinary `kfree` could be called (no SLUB per-CPU data held, no `list_lock`, no zone
    /// lock), never from a reentry hook.
    pub fn slub_drain_deferred(&self) {
        let st = &self.nolock;
        if st.objects.load(Ordering::Relaxed).is_null()
            && st.slabs.load(Ordering::Relaxed).is_null()
            && st.rcu.load(Ordering::Relaxed).is_null()
        {
            return;
        }
        self.drain_deferred_slow();
    }

    #[cold]
    #[inline(never)]
    fn drain_deferred_slow(&self) {
        let st = &self.nolock;
        let caller = Location::caller();
        let mut obj = st.objects.swap(ptr::null_mut(), Ordering::Acquire);
        while !obj.is_null() {
            let Owner::Slab(page, cache) = self.owner_of(obj) else {
                break; // Unreachable: only slab objects are deferred.
            };
            // SAFETY: `mapping` of a slab page is its cache, which never goes away.
            let s = unsafe { &*(cache as *const Cache<P>) };
            // SAFETY: `defer_free` linked the object through its free-pointer slot; the drain
            // took the whole list, so the object is ours.
            let next = unsafe { ptr::read(obj.add(s.offset as usize).cast::<*mut u8>()) };
            // "Clear it to NULL to avoid false positive detection of Freepointer corruption".
            // SAFETY: `obj` is an object of `s` (its page's cache) that the drain took off the
            // deferred list, so it is ours to write; `set_fp` writes only its free-pointer slot.
            unsafe { s.set_fp(obj, ptr::null_mut()) };
            st.nr_deferred.fetch_sub(1, Ordering::Relaxed);
            free_inner(self, s, page, obj, caller);
            obj = next;
        }
        let mut p = st.slabs.swap(ptr::null_mut(), Ordering::Acquire);
        while let Some(slab) = Slab::from_page(p) {
            p = slab.next_partial();
            slab.set_next_partial(ptr::null_mut());
            // SAFETY: the slab's cache (its `mapping`) never goes away.
            let s = unsafe { &*(slab.0.mapping() as *const Cache<P>) };
            st.nr_deferred.fetch_sub(1, Ordering::Relaxed);
            self.discard_slab(s, slab);
        }
        let mut head = st.rcu.swap(ptr::null_mut(), Ordering::Acquire);
        while !head.is_null() {
            // SAFETY: `kfree_rcu_nolock` wrote `[next head, offset]` in this object's rcu
            // head (16 writable, aligned bytes it was given); the drain took the whole list.
            let (next, off) = unsafe {
                let w = head.cast::<usize>();
                (w.read() as *mut u8, w.add(1).read())
            };
            st.nr_deferred.fetch_sub(1, Ordering::Relaxed);
            // SAFETY: the caller of `kfree_rcu_nolock` gave us the object (`head - off`) with
            // 16 writable bytes at `off` (its contract) and does not touch it any more.
            unsafe { self.kfree_rcu(head.sub(off), off) };
            head = next;
        }
    }

    /// `kfree_rcu_nolock(ptr, rhf)` (slub_kunit's nolock cases; upstream after 6.18):
    /// `kfree_rcu` from any context, never waiting. Under SLUB the call is queued on the
    /// deferred lists and made at the next safe point (the grace period then starts later,
    /// which only delays the free); SLAB and SLOB, which have no reentry points, call
    /// `kfree_rcu` at once. NULL is ignored.
    ///
    /// # Safety
    /// As [`SlabLayer::kfree_rcu`]: `obj` is a live slab or kmalloc object of this machine
    /// with 16 writable, 8-aligned bytes at `head_offset`, freed once; the caller does not
    /// touch it afterwards.
    pub unsafe fn kfree_rcu_nolock(&self, obj: *mut u8, head_offset: usize) {
        if obj.is_null() {
            return;
        }
        if self.slab().kind != crate::slab::common::SlabAllocatorKind::Slub {
            // SAFETY: forwarded.
            unsafe { self.kfree_rcu(obj, head_offset) };
            return;
        }
        let st = &self.nolock;
        // SAFETY: the caller's 16 writable, aligned bytes at `head_offset`, ours now.
        let rh = unsafe { obj.add(head_offset) };
        let link = rh.cast::<usize>();
        let mut head = st.rcu.load(Ordering::Relaxed);
        loop {
            // SAFETY: `link` points at the caller's 16 writable, 8-aligned bytes at `head_offset`,
            // which are ours until the compare-and-swap publishes `rh`; both words written lie
            // inside them.
            unsafe {
                link.write(head as usize);
                link.add(1).write(head_offset);
            }
            match st
                .rcu
                .compare_exchange_weak(head, rh, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
        st.nr_deferred.fetch_add(1, Ordering::Relaxed);
        st.deferred_total.fetch_add(1, Ordering::Relaxed);
    }
}

/// `kmalloc_nolock` (see the module documentation).
pub(crate) fn kmalloc_nolock<P: Platform>(
    m: &SlabLayer<P>,
    size: usize,
    gfp: GfpFlags,
    caller: &'static Location<'static>,
) -> Option<NonNull<u8>> {
    let allowed = GfpFlags::__GFP_ACCOUNT | GfpFlags::__GFP_ZERO;
    if gfp.without(allowed).bits() != 0 {
        m.warn_at(
            caller,
            format_args!(
                "kmalloc_nolock: gfp {:#x}({}) has flags other than __GFP_ACCOUNT|__GFP_ZERO",
                gfp.bits(),
                gfp
            ),
        );
    }
    let gfp = GfpFlags::__GFP_NOWARN | GfpFlags::__GFP_NOMEMALLOC | (gfp & allowed);
    let mut size = size;
    let mut can_retry = true;
    loop {
        if size > KMALLOC_MAX_CACHE_SIZE {
            return None;
        }
        let p = m.slab().kmalloc[kmalloc_type(gfp) as usize][kmalloc_index(size) as usize]
            .load(Ordering::Relaxed);
        if p.is_null() {
            return None;
        }
        // SAFETY: kmalloc table entries are caches created at boot, never destroyed.
        let s = unsafe { &*p.cast::<Cache<P>>() };
        match alloc_nolock_from(m, s, gfp, size, caller) {
            Ok(obj) => {
                let o = obj?;
                if gfp.contains(GfpFlags::__GFP_ZERO) {
                    let zero = if s.orig_size_enabled() {
                        size.min(s.object_size as usize)
                    } else {
                        s.object_size as usize
                    };
                    // SAFETY: a freshly allocated object of at least `zero` bytes.
                    unsafe { ptr::write_bytes(o, 0, zero) };
                }
                return NonNull::new(o);
            }
            Err(Busy) if can_retry => {
                // The next kmalloc bucket: the CPU most likely holds a different one.
                size = s.object_size as usize + 1;
                can_retry = false;
            }
            Err(Busy) => return None,
        }
    }
}

/// `__slab_alloc_node` in trylock mode.
fn alloc_nolock_from<P: Platform>(
    m: &SlabLayer<P>,
    s: &Cache<P>,
    gfp: GfpFlags,
    orig: usize,
    caller: &'static Location<'static>,
) -> Result<Option<*mut u8>, Busy> {
    if s.debug() {
        return Ok(m.slab_alloc_debug(
            s,
            gfp,
            caller,
            orig,
            false,
            crate::page_alloc::NUMA_NO_NODE,
        ));
    }
    // Lock order: cpu_section (rank 3) entered without waiting; &n->list_lock and
    // &zone->lock only try-locked under it; docs/LOCKING.md.
    let Some(g) = m.cpu_guard_try() else {
        return Ok(None);
    };
    let locked = m.nolock.in_nmi(g.cpu());
    if locked == Some(s as *const Cache<P> as *mut u8) {
        return Err(Busy);
    }
    // SAFETY: we hold this CPU's section; the only code that can be interrupted on this CPU
    // by a `*_nolock` call is a reentry point, whose NMI record names the cache whose per-CPU
    // data it holds, and that is not `s` (checked above). So no other reference exists.
    let c = unsafe { s.cpu(g.cpu()) };
    let obj = c.freelist;
    if !obj.is_null() {
        // SAFETY: `obj` is a CPU-owned free object.
        c.freelist = unsafe { s.get_fp(obj) };
        c.alloc_fast += 1;
        return Ok(Some(obj));
    }
    Ok(m.slab_alloc_slow(s, c, gfp, false))
}

/// `kfree_nolock` (see the module documentation).
pub(crate) fn kfree_nolock<P: Platform>(
    m: &SlabLayer<P>,
    p: *mut u8,
    caller: &'static Location<'static>,
) {
    let (page, s) = match m.owner_of(p) {
        // SAFETY: `mapping` of a slab page is its cache, which never goes away.
        Owner::Slab(page, cache) => (page, unsafe { &*(cache as *const Cache<P>) }),
        Owner::Large(_) => {
            m.warn_at(
                caller,
                format_args!("large_kmalloc is not supported by kfree_nolock()"),
            );
            return;
        }
        _ => {
            m.warn_at(
                caller,
                format_args!(
                    "kfree_nolock: object pointer 0x{:016x} was not returned by kmalloc",
                    m.to_model(p as usize)
                ),
            );
            return;
        }
    };
    let slab = Slab(page);
    if !m.is_object_start(s, slab, p) {
        bad_object_pointer(m, s, slab, p, caller);
        return;
    }
    if s.debug() {
        // Debug caches have no CPU slab: `slab != c->slab`, always deferred.
        m.defer_free(s, p);
        return;
    }
    // Lock order: cpu_section (rank 3) entered without waiting, nothing under it;
    // docs/LOCKING.md.
    let Some(g) = m.cpu_guard_try() else {
        m.defer_free(s, p);
        return;
    };
    if m.nolock.in_nmi(g.cpu()) == Some(s as *const Cache<P> as *mut u8) {
        drop(g);
        m.defer_free(s, p);
        return;
    }
    // SAFETY: as in `alloc_nolock_from`: this CPU's section, and no interrupted code holds
    // `s`'s per-CPU data (checked above).
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
        c.free_fast += 1;
        return;
    }
    drop(g);
    m.defer_free(s, p);
}
