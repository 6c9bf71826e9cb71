//! The slab allocators (mm/slab_common.c, mm/slub.c, mm/slab.h): object caches and kmalloc
//! on top of the page allocator.
//!
//! - [`common`]: what every slab allocator shares — cache flags, the kmalloc size classes
//!   and caches, merging, the boot options, `/proc/slabinfo` lines, and the
//!   [`common::SlabAllocator`] interface an implementation provides;
//! - [`slub`]: SLUB, the default implementation behind that interface;
//! - [`slab`]: SLAB (mm/slab.c of Linux 6.7), per-CPU array caches, shared arrays and
//!   colouring ([`SlabImpl`]);
//! - [`slob`]: SLOB (mm/slob.c of Linux 6.3), the simple list-of-blocks allocator;
//! - [`kmalloc`]: the kmalloc family (`kmalloc`, `kfree`, `krealloc`, `ksize`, large kmalloc
//!   straight from the page allocator), on the kmalloc caches of the allocator in use.
//!
//! [`SlabLayer`] is the machine as the slab allocators see it: the page allocator below
//! (through `Deref`) plus the machine-wide slab state. Nothing here knows vmalloc or /proc.
//! This module gives it the public cache API with Linux's names (`kmem_cache_create`,
//! `kmem_cache_alloc`, …, `/proc/slabinfo`): each call goes to the allocator chosen at boot
//! (`slab=`) through `dispatch!`, a `match` that compiles to nothing, which [`kmalloc`] uses
//! too. So `common` and `kmalloc` know no implementation, and `slub` builds on both (it
//! kmallocs its random sequences, as Linux's `init_cache_random_seq` does).
//!
//! # Locking
//! `slab_mutex` (the cache list) → a CPU section → a cache's node `list_lock`; the zone lock
//! is taken inside the page allocator when a slab is allocated or freed, never under a
//! `list_lock`. SLUB's per-CPU fast path runs in a CPU section without locks. The whole
//! order is in docs/LOCKING.md.

/// Calls a [`SlabAllocator`](common::SlabAllocator) method of the allocator chosen at boot
/// (for the cache API below and the kmalloc family in [`kmalloc`]). The kind is fixed at
/// boot, so the branch is always predicted; each arm is a direct call the compiler inlines.
macro_rules! dispatch {
    ($m:expr, $method:ident $(::<$g:ty>)? ( $($arg:expr),* $(,)? )) => {
        match $m.slab().kind {
            $crate::slab::common::SlabAllocatorKind::Slub => {
                <$crate::slab::slub::Slub as $crate::slab::common::SlabAllocator>
                    ::$method$(::<$g>)?($($arg),*)
            }
            // `move`: the arguments are copied into the closure. Borrowing them would make each
            // one a stack slot whose address escapes into the out-of-line arm, so SLUB's inlined
            // fast path would spill and reload them (a kmalloc's size and GFP flags, which then
            // no longer fold as constants).
            $crate::slab::common::SlabAllocatorKind::Slob => $crate::slab::other_allocator(move || {
                <$crate::slab::slob::Slob as $crate::slab::common::SlabAllocator>
                    ::$method$(::<$g>)?($($arg),*)
            }),
            $crate::slab::common::SlabAllocatorKind::Slab => $crate::slab::other_allocator(move || {
                <$crate::slab::SlabImpl as $crate::slab::common::SlabAllocator>
                    ::$method$(::<$g>)?($($arg),*)
            }),
        }
    };
}

/// Calls SLUB's [`SlabAllocator`](common::SlabAllocator) method directly: the kmalloc fast
/// paths once [`SlabLayer::slab_hooked`] said that SLUB runs without a debugging hook (the
/// same direct call as `dispatch!`'s SLUB arm, without the kind test).
macro_rules! slub_direct {
    ($method:ident ( $($arg:expr),* $(,)? )) => {
        <$crate::slab::slub::Slub as $crate::slab::common::SlabAllocator>::$method($($arg),*)
    };
}

/// The arms of `dispatch!` for the allocators other than SLUB, the default: out of line, so
/// that SLUB's inlined fast paths stay as small as they were with SLUB alone (measured with
/// the kmem-bench `slub` benches: without this, `kmem_cache_alloc`+`free` took 1.6 ns more).
/// The other allocators pay one direct call.
#[cold]
#[inline(never)]
pub(crate) fn other_allocator<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Reads an associated constant of the allocator chosen at boot.
macro_rules! dispatch_const {
    ($m:expr, $c:ident) => {
        match $m.slab().kind {
            $crate::slab::common::SlabAllocatorKind::Slub => {
                <$crate::slab::slub::Slub as $crate::slab::common::SlabAllocator>::$c
            }
            $crate::slab::common::SlabAllocatorKind::Slob => {
                <$crate::slab::slob::Slob as $crate::slab::common::SlabAllocator>::$c
            }
            $crate::slab::common::SlabAllocatorKind::Slab => {
                <$crate::slab::SlabImpl as $crate::slab::common::SlabAllocator>::$c
            }
        }
    };
}

pub mod common;
pub mod kfence;
pub mod kfree_rcu;
pub mod kmalloc;
mod kmalloc_node;
pub mod kmemcheck;
pub mod kmemleak;
pub mod slab;
pub mod slob;
pub mod slub;

/// The implementation behind `slab=slab`: SLAB, in `slab/slab/`.
pub(crate) type SlabImpl = slab::Slab;
/// Whether `slab=slab` boots SLAB (see [`SlabImpl`]); true since SLAB landed (the kernel's
/// "only SLUB is available" notice remains for a build without it).
pub const SLAB_BUILT: bool = true;

use core::fmt::{self, Write};
use core::panic::Location;
use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::mm::cpuhp::{CpuhpEntry, CpuhpState};
use crate::page_alloc::PageAllocator;
use crate::platform::{LogLevel, Platform};
use common::{
    write_slabinfo_header, write_slabinfo_line, CacheHandle, KmemCacheArgs, SlabAllocatorKind,
    SlabBootNotes, SlabError, SlabFlags, SlabInfo, SlabLayout, SlabState, SlabStats, SlabinfoMode,
};

/// The slab layer of a machine: the page allocator plus the slab state. Dereferences to the
/// [`PageAllocator`] below it.
pub struct SlabLayer<P: Platform> {
    pub(crate) pa: PageAllocator<P>,
    pub(crate) slab: SlabState<P::RawLock>,
    /// SLOB's lists and `slob_lock` (unused under SLAB and SLUB).
    pub(crate) slob: slob::SlobState<P::RawLock>,
    /// SLAB's NUMA boot options (`noaliencache`; unused under SLUB and SLOB).
    pub(crate) slab_numa: slab::SlabNumaParams,
    /// SLUB's `kmalloc_nolock`/`kfree_nolock` state (deferred frees, reentry hook).
    pub(crate) nolock: slub::NolockState,
    /// KFENCE's state, when `kfence.sample_interval` turned it on at boot.
    pub(crate) kfence: kfence::KfenceSlot,
    /// kmemleak's objects and scan state (`kmemleak=on`).
    pub(crate) leak: kmemleak::Kmemleak<P::RawLock>,
    /// kmemcheck's shadow (`kmemcheck=1|2`).
    pub(crate) kmemcheck: kmemcheck::Kmemcheck,
}

impl<P: Platform> core::ops::Deref for SlabLayer<P> {
    type Target = PageAllocator<P>;
    #[inline]
    fn deref(&self) -> &PageAllocator<P> {
        &self.pa
    }
}

impl<P: Platform> SlabLayer<P> {
    /// Whether kmalloc, kfree and the kmem_cache calls take their general path (a
    /// debugger's hook or an allocator other than SLUB; `SlabState::hooked`): the fast
    /// paths' one test.
    #[inline(always)]
    pub(crate) fn slab_hooked(&self) -> bool {
        self.slab.hooked.load(Ordering::Relaxed)
    }

    /// Whether the machine runs SLUB (`slab=` at boot): its per-CPU sheaves take
    /// `kfree_rcu`'s objects (`slab/slub/rcu_sheaf.rs`).
    #[inline]
    pub(crate) fn slub_active(&self) -> bool {
        self.slab().kind == common::SlabAllocatorKind::Slub
    }

    /// The machine-wide slab state.
    #[inline]
    pub(crate) fn slab(&self) -> &SlabState<P::RawLock> {
        &self.slab
    }

    /// Attaches `slab_mutex` to the machine's lock validator, if it has one (each cache's
    /// node list locks are attached when the cache is created).
    ///
    /// # Safety
    /// Once, at boot, after `MemoryModel::lockdep_init` and before the lock is taken.
    pub(crate) unsafe fn lockdep_attach(&self) {
        let Some(ld) = self.lockdep() else { return };
        // SAFETY: the validator lives as long as the platform, so as the slab state.
        unsafe {
            self.slab.mutex.attach(ld);
            self.slab.krc.lock.attach(ld);
        }
        // SAFETY: the validator lives as long as the platform, so as the slab state, and slob_lock
        // is attached once, before first use.
        unsafe { self.slob.lock.attach(ld) };
        // SAFETY: the validator lives as long as the platform, so as long as kmemleak's state lock
        // (a field of this layer) can be locked, and kmemleak_lock is attached once, at boot,
        // before its first use.
        unsafe { self.leak.state.attach(ld) };
    }

    /// Registers the slab allocator's CPU-dead teardown (`slub_cpu_dead`, SLAB's
    /// `slab_dead_cpu`), if it has per-CPU state.
    pub(crate) fn slab_register_cpuhp(&self) {
        let Some(name) = dispatch_const!(self, CPUHP_DEAD) else {
            return;
        };
        let entry = CpuhpEntry {
            name,
            ctx: (self as *const Self).cast(),
            teardown: slab_cpu_dead::<P>,
        };
        // Lock order: cpuhp_state_mutex (rank 6, leaf), boot; docs/LOCKING.md.
        self.cpuhp.lock().register(CpuhpState::SlubDead, entry);
    }

    /// The periodic slab work of the calling CPU (SLAB's per-CPU `cache_reap` work, every
    /// `REAPTIMEOUT_AC`), now, for every cache; nothing for SLUB and SLOB. SLAB also runs it
    /// by itself, per CPU every `REAPTIMEOUT_AC` of the platform's jiffies, from the slow path
    /// of sleeping allocations (see `slab::slab`'s module documentation).
    pub fn slab_tick(&self) {
        dispatch!(self, drain_deferred(self));
        let cpu = self.platform().raw_cpu_id();
        dispatch!(self, reap(self, cpu));
    }
}

/// The registered CPU-dead teardown: the allocator's [`SlabAllocator::cpu_dead`].
///
/// # Safety
/// `ctx` is the `SlabLayer<P>` registered by `slab_register_cpuhp`, alive; no thread uses
/// `cpu`'s per-CPU data during the call (the cpuhp contract).
unsafe fn slab_cpu_dead<P: Platform>(ctx: *const (), cpu: usize) {
    // SAFETY: `ctx` is the registering SlabLayer<P>, which outlives the machine's hotplug
    // table (cpuhp module invariants).
    let m = unsafe { &*ctx.cast::<SlabLayer<P>>() };
    // SAFETY: forwarded cpuhp contract: nobody uses `cpu`'s per-CPU data.
    unsafe { dispatch!(m, cpu_dead(m, cpu)) };
}

// ------------------------------------------------------------------ the cache API

impl<P: Platform> SlabLayer<P> {
    /// `kfence_alloc` for an object of `c` (`size`: a kmalloc request's size; else the
    /// cache's object size).
    #[track_caller]
    #[inline]
    fn kfence_cache_alloc(
        &self,
        c: CacheHandle,
        gfp: GfpFlags,
        size: Option<usize>,
    ) -> Option<NonNull<u8>> {
        self.kfence()?;
        let req = || {
            let size = match size {
                Some(s) => s,
                None => self.slab_layout(c)?.object_size,
            };
            Some((c, size))
        };
        self.kfence_alloc(req, gfp, Location::caller())
    }
}

impl<P: Platform> SlabLayer<P> {
    /// `kmem_cache_init`: prints what the slab boot options said (parsed into the state by
    /// [`SlabState::from_cmdline`]) and creates the `kmem_cache` cache and the kmalloc caches.
    /// Called by `Machine::boot` after the page allocator is up.
    ///
    /// # Errors
    /// [`SlabError::NoMemory`] when the machine is too small for the kmalloc caches.
    pub(crate) fn kmem_cache_init(&self, notes: &SlabBootNotes<'_>) -> Result<(), SlabError> {
        for c in notes.bad_debug.iter().flatten() {
            self.printk(
                LogLevel::Err,
                format_args!("slub_debug option '{c}' unknown. skipped"),
            );
        }
        if let Some(v) = notes.other_allocator {
            self.printk(
                LogLevel::Notice,
                format_args!(
                    "slab={v}: {} in this kernel, using SLUB",
                    if SlabAllocatorKind::from_option(v).is_some() {
                        "SLAB is not built"
                    } else {
                        "unknown allocator"
                    }
                ),
            );
        }
        dispatch!(self, init(self))
    }

    /// The slab allocator in use.
    pub fn slab_allocator(&self) -> SlabAllocatorKind {
        self.slab().kind
    }

    /// Slab debugging reports and fixes printed so far (what slub_kunit counts as
    /// `slab_errors`: every `BUG` header, every `FIX` line, and the `Slab cache still has
    /// objects` warning of `kmem_cache_destroy`).
    pub fn slab_errors(&self) -> usize {
        self.slab().errors.load(Ordering::Relaxed)
    }

    /// The global `slub_debug` flags from the command line.
    pub fn slub_debug_flags(&self) -> SlabFlags {
        self.slab().debug.global
    }

    /// `kmem_cache_create`: creates a cache of `size`-byte objects aligned to `align` (0 for
    /// the default), or returns an existing compatible cache (an alias) when merging is
    /// allowed. `ctor` runs once per object when its slab is created.
    ///
    /// # Errors
    /// See [`SlabError`]. A failure is reported as Linux 6.18 reports it
    /// (`__kmem_cache_create_args(<name>) failed with error -22` and a stack dump; with
    /// [`SlabFlags::PANIC`], where Linux panics, a warning).
    #[track_caller]
    pub fn kmem_cache_create(
        &self,
        name: &str,
        size: usize,
        align: usize,
        flags: SlabFlags,
        ctor: Option<fn(*mut u8)>,
    ) -> Result<CacheHandle, SlabError> {
        let r = dispatch!(self, create(self, name, size, align, flags, ctor));
        self.create_failed(&r, name, flags, Location::caller());
        r
    }

    /// `kmem_cache_create(name, size, args, flags)` with [`KmemCacheArgs`] (6.12's
    /// `__kmem_cache_create_args`): as [`Self::kmem_cache_create`], plus a SLUB sheaf
    /// capacity (`args.sheaf_capacity`, Linux 6.18), which gives the cache per-CPU sheaves
    /// and the prefilled-sheaf API ([`Self::kmem_cache_prefill_sheaf`]). SLAB and SLOB
    /// ignore the capacity.
    ///
    /// # Errors
    /// As [`Self::kmem_cache_create`]; `BadSize` too when a sheaf of the capacity would not
    /// fit a kmalloc object (more than 1020 objects).
    #[track_caller]
    pub fn kmem_cache_create_args(
        &self,
        name: &str,
        size: usize,
        args: &KmemCacheArgs,
        flags: SlabFlags,
    ) -> Result<CacheHandle, SlabError> {
        let r = dispatch!(self, create_args(self, name, size, args, flags));
        self.create_failed(&r, name, flags, Location::caller());
        r
    }

    fn create_failed(
        &self,
        r: &Result<CacheHandle, SlabError>,
        name: &str,
        flags: SlabFlags,
        caller: &'static Location<'static>,
    ) {
        if let Err(e) = r {
            // mm/slab_common.c `__kmem_cache_create_args` (the function `kmem_cache_create`
            // expands to since 6.12) names itself with `__func__`.
            let err = match e {
                SlabError::NoMemory => -12, // -ENOMEM
                _ => -22,                   // -EINVAL
            };
            if flags.contains(SlabFlags::PANIC) {
                self.warn(format_args!(
                    "__kmem_cache_create_args: Failed to create slab '{name}'. Error {err}"
                ));
            } else {
                self.printk(
                    LogLevel::Warning,
                    format_args!("__kmem_cache_create_args({name}) failed with error {err}"),
                );
                self.dump_stack(LogLevel::Warning, caller);
            }
        }
    }

    /// `kmem_cache_prefill_sheaf`: a sheaf holding at least `size` objects of `c`, from which
    /// [`Self::kmem_cache_alloc_from_sheaf`] allocates without failing (SLUB; other
    /// allocators return `None`). A size above the cache's sheaf capacity (or any size for a
    /// cache without sheaves) gives an "oversize" sheaf.
    #[track_caller]
    pub fn kmem_cache_prefill_sheaf(
        &self,
        c: CacheHandle,
        gfp: GfpFlags,
        size: usize,
    ) -> Option<slub::Sheaf> {
        match self.slab().kind {
            SlabAllocatorKind::Slub => {
                slub::kmem_cache_prefill_sheaf(self, c, gfp, size, Location::caller())
            }
            _ => None,
        }
    }

    /// `kmem_cache_alloc_from_sheaf`: an object from a prefilled sheaf of `c`; `None` when the
    /// sheaf is empty or is another cache's (reported).
    #[track_caller]
    pub fn kmem_cache_alloc_from_sheaf(
        &self,
        c: CacheHandle,
        gfp: GfpFlags,
        sheaf: &mut slub::Sheaf,
    ) -> Option<NonNull<u8>> {
        if !matches!(self.slab().kind, SlabAllocatorKind::Slub) {
            return None;
        }
        slub::kmem_cache_alloc_from_sheaf(self, c, gfp, sheaf, Location::caller())
    }

    /// `kmem_cache_refill_sheaf`: makes `sheaf` hold at least `size` objects.
    ///
    /// # Errors
    /// `ENOMEM` when memory is exhausted, `EINVAL` for another cache's sheaf.
    #[track_caller]
    pub fn kmem_cache_refill_sheaf(
        &self,
        c: CacheHandle,
        gfp: GfpFlags,
        sheaf: &mut slub::Sheaf,
        size: usize,
    ) -> Result<(), Errno> {
        if !matches!(self.slab().kind, SlabAllocatorKind::Slub) {
            return Err(Errno::EINVAL);
        }
        slub::kmem_cache_refill_sheaf(self, c, gfp, sheaf, size, Location::caller())
    }

    /// `kmem_cache_return_sheaf`: gives a prefilled sheaf back with the objects left in it.
    #[track_caller]
    pub fn kmem_cache_return_sheaf(&self, c: CacheHandle, gfp: GfpFlags, sheaf: slub::Sheaf) {
        // Under SLAB or SLOB no sheaf exists; one from another machine is not this one's.
        if matches!(self.slab().kind, SlabAllocatorKind::Slub) {
            slub::kmem_cache_return_sheaf(self, c, gfp, sheaf, Location::caller())
        }
    }

    /// What SLUB's sheaves of `c` hold (per-CPU and barn), for tests and statistics; `None`
    /// for a stale handle or another allocator.
    ///
    /// # Safety
    /// No other thread uses the cache during the call (every CPU's sheaves are read).
    pub unsafe fn slub_sheaf_census(&self, c: CacheHandle) -> Option<slub::SheafCensus> {
        match self.slab().kind {
            // SAFETY: forwarded caller guarantee.
            SlabAllocatorKind::Slub => unsafe { slub::sheaf_census(self, c) },
            _ => None,
        }
    }

    /// `kmem_cache_alloc`: allocates one object, or `None` when memory is exhausted (with
    /// Linux's `SLUB: Unable to allocate memory` report unless `__GFP_NOWARN`).
    #[track_caller]
    #[inline(always)]
    pub fn kmem_cache_alloc(&self, c: CacheHandle, gfp: GfpFlags) -> Option<NonNull<u8>> {
        if self.slab_hooked() {
            return self.kmem_cache_alloc_hooked(c, gfp);
        }
        <crate::slab::slub::Slub as crate::slab::common::SlabAllocator>::alloc(
            self,
            c,
            gfp,
            Location::caller(),
            None,
        )
    }

    /// [`Self::kmem_cache_alloc`] with a debugging hook or an allocator other than SLUB.
    #[track_caller]
    #[inline(never)]
    fn kmem_cache_alloc_hooked(&self, c: CacheHandle, gfp: GfpFlags) -> Option<NonNull<u8>> {
        let p = match self.kfence_cache_alloc(c, gfp, None) {
            Some(p) => Some(p),
            None => dispatch!(self, alloc(self, c, gfp, Location::caller(), None)),
        };
        if self.leak.tracking() {
            self.kmemleak_cache_alloc(c, p, gfp, Location::caller());
        }
        if self.kmemcheck.built() {
            self.kmemcheck_cache_alloc_hook(c, p, gfp);
        }
        p
    }

    /// `kmalloc_trace`: an object of `c` for a kmalloc request of `size` bytes (with
    /// `slub_debug` owner tracking on a `SLAB_KMALLOC` cache, the bytes past `size` are
    /// red-zoned as "kmalloc Redzone").
    #[track_caller]
    pub fn kmalloc_trace(&self, c: CacheHandle, gfp: GfpFlags, size: usize) -> Option<NonNull<u8>> {
        let p = match self.kfence_cache_alloc(c, gfp, Some(size)) {
            Some(p) => Some(p),
            None => dispatch!(self, alloc(self, c, gfp, Location::caller(), Some(size))),
        };
        if self.leak.tracking() {
            self.kmemleak_cache_alloc(c, p, gfp, Location::caller());
        }
        if self.kmemcheck.built() {
            self.kmemcheck_cache_alloc_hook(c, p, gfp);
        }
        p
    }

    /// `kmem_cache_zalloc`: a zeroed object.
    #[track_caller]
    #[inline]
    pub fn kmem_cache_zalloc(&self, c: CacheHandle, gfp: GfpFlags) -> Option<NonNull<u8>> {
        let p = match self.kfence_cache_alloc(c, gfp | GfpFlags::__GFP_ZERO, None) {
            Some(p) => Some(p),
            None => dispatch!(
                self,
                alloc(
                    self,
                    c,
                    gfp | GfpFlags::__GFP_ZERO,
                    Location::caller(),
                    None
                )
            ),
        };
        if self.leak.tracking() {
            self.kmemleak_cache_alloc(c, p, gfp, Location::caller());
        }
        if self.kmemcheck.built() {
            self.kmemcheck_cache_alloc_hook(c, p, gfp);
        }
        p
    }

    /// `kmem_cache_free`: frees an object of `c`. NULL is a no-op; a pointer that is not an
    /// object of `c` is reported and ignored.
    #[track_caller]
    #[inline(always)]
    pub fn kmem_cache_free(&self, c: CacheHandle, p: *mut u8) {
        if self.slab_hooked() {
            return self.kmem_cache_free_hooked(c, p);
        }
        <crate::slab::slub::Slub as crate::slab::common::SlabAllocator>::free(
            self,
            c,
            p,
            Location::caller(),
        )
    }

    /// [`Self::kmem_cache_free`] with a debugging hook or an allocator other than SLUB.
    #[track_caller]
    #[inline(never)]
    fn kmem_cache_free_hooked(&self, c: CacheHandle, p: *mut u8) {
        if self.leak.tracking_free() {
            self.kmemleak_free(p);
        }
        if self.kmemcheck.built() {
            self.kmemcheck_free_hook(Some(c), p);
        }
        if self.kfence_free(p, Location::caller()) {
            return;
        }
        dispatch!(self, free(self, c, p, Location::caller()))
    }

    /// `kmem_cache_alloc_bulk`: fills `out` with objects; returns how many (all or 0).
    #[track_caller]
    pub fn kmem_cache_alloc_bulk(
        &self,
        c: CacheHandle,
        gfp: GfpFlags,
        out: &mut [*mut u8],
    ) -> usize {
        // SLUB's bulk allocation asks KFENCE for each object; kmem asks for the first (the
        // gate lets at most one through per sample interval anyway).
        if let [first, rest @ ..] = out {
            if let Some(p) = self.kfence_cache_alloc(c, gfp, None) {
                let n = if rest.is_empty() {
                    0
                } else {
                    let r = &mut *rest;
                    dispatch!(self, alloc_bulk(self, c, gfp, r, Location::caller()))
                };
                if n == 0 && !rest.is_empty() {
                    self.kfence_free(p.as_ptr(), Location::caller());
                    return 0;
                }
                *first = p.as_ptr();
                if self.kmemcheck.built() {
                    for &p in &out[..n + 1] {
                        self.kmemcheck_cache_alloc_hook(c, NonNull::new(p), gfp);
                    }
                }
                if self.leak.tracking() {
                    for &p in &out[..n + 1] {
                        self.kmemleak_cache_alloc(c, NonNull::new(p), gfp, Location::caller());
                    }
                }
                return n + 1;
            }
        }
        let o = &mut *out;
        let n = dispatch!(self, alloc_bulk(self, c, gfp, o, Location::caller()));
        if self.leak.tracking() {
            for &p in &out[..n] {
                self.kmemleak_cache_alloc(c, NonNull::new(p), gfp, Location::caller());
            }
        }
        if self.kmemcheck.built() {
            for &p in &out[..n] {
                self.kmemcheck_cache_alloc_hook(c, NonNull::new(p), gfp);
            }
        }
        n
    }

    /// `kmem_cache_free_bulk`: frees every object of `objs`.
    #[track_caller]
    pub fn kmem_cache_free_bulk(&self, c: CacheHandle, objs: &[*mut u8]) {
        if self.leak.tracking_free() {
            for &p in objs {
                self.kmemleak_free(p);
            }
        }
        if self.kmemcheck.built() {
            for &p in objs {
                self.kmemcheck_free_hook(Some(c), p);
            }
        }
        if self.kfence().is_none() {
            return dispatch!(self, free_bulk(self, c, objs, Location::caller()));
        }
        // KFENCE objects are freed one by one, the runs between them in bulk.
        let mut start = 0;
        for (i, &p) in objs.iter().enumerate() {
            if self.is_kfence_address(p) {
                if start < i {
                    dispatch!(
                        self,
                        free_bulk(self, c, &objs[start..i], Location::caller())
                    );
                }
                self.kfence_free(p, Location::caller());
                start = i + 1;
            }
        }
        if start < objs.len() {
            dispatch!(self, free_bulk(self, c, &objs[start..], Location::caller()));
        }
    }

    /// `kmem_cache_shrink`: gives empty slabs back to the page allocator (the current CPU's
    /// slabs are flushed first). Returns whether slabs remain.
    #[track_caller]
    pub fn kmem_cache_shrink(&self, c: CacheHandle) -> bool {
        dispatch!(self, drain_deferred(self));
        dispatch!(self, shrink(self, c, Location::caller()))
    }

    /// `kmem_cache_destroy`: drops a reference to the cache (merged caches share one) and
    /// destroys it with the last. With objects still allocated, Linux's `Objects remaining in
    /// … on __kmem_cache_shutdown()` report is printed and the cache is kept.
    ///
    /// The caller guarantees that no other thread uses the cache during the call (as Linux
    /// requires).
    #[track_caller]
    pub fn kmem_cache_destroy(&self, c: CacheHandle) {
        // In-flight kfree_rcu()s may include objects from this cache (6.18 slab_common.c:
        // `kvfree_rcu_barrier()` first).
        self.kvfree_rcu_barrier();
        // And the frees kmalloc_nolock/kfree_nolock deferred (6.18: `defer_free_barrier()`).
        dispatch!(self, drain_deferred(self));
        let rcu = self
            .slab_layout(c)
            .is_some_and(|l| l.flags.contains(SlabFlags::TYPESAFE_BY_RCU));
        self.kfence_shutdown_cache(c, Location::caller());
        dispatch!(self, destroy(self, c, Location::caller()));
        if rcu {
            // The slabs discarded above go back after a grace period: wait for them
            // (`kmem_cache_release` after `rcu_barrier()` in Linux).
            self.rcu_barrier();
        }
    }

    /// `validate_slab_cache`: checks every slab on the cache's lists (every object's red zones,
    /// poison and free pointer with debugging on) and returns the number of errors reported.
    #[track_caller]
    pub fn validate(&self, c: CacheHandle) -> usize {
        dispatch!(self, drain_deferred(self));
        dispatch!(self, validate(self, c, Location::caller()))
    }

    /// The cache's name.
    pub fn kmem_cache_name(&self, c: CacheHandle) -> Option<&str> {
        dispatch!(self, name(self, c))
    }

    /// The `/proc/slabinfo` figures of a cache.
    pub fn slab_info(&self, c: CacheHandle) -> Option<SlabInfo> {
        dispatch!(self, info(self, c))
    }

    /// The SLUB statistics of a cache (`/sys/kernel/slab/<name>/` with `CONFIG_SLUB_STATS`).
    pub fn slab_stats(&self, c: CacheHandle) -> Option<SlabStats> {
        dispatch!(self, stats(self, c))
    }

    /// The object layout of a cache (sizes, offsets, order, flags).
    pub fn slab_layout(&self, c: CacheHandle) -> Option<SlabLayout> {
        dispatch!(self, layout::<P>(c))
    }

    /// Finds a cache by name (the first on the list, newest first).
    pub fn find_cache(&self, name: &str) -> Option<CacheHandle> {
        {
            let mut r = None;
            self.for_each_cache(&mut |h, n| {
                if r.is_none() && n == name {
                    r = Some(h);
                }
            });
            r
        }
    }

    /// Calls `f` with the handle and name of every cache (newest first), under `slab_mutex`.
    pub fn for_each_cache(&self, f: &mut dyn FnMut(CacheHandle, &str)) {
        dispatch!(self, for_each(self, f))
    }

    /// The kmalloc cache serving `size` bytes with `gfp` (`kmalloc_slab`), if any.
    pub fn kmalloc_cache(&self, size: usize, gfp: GfpFlags) -> Option<CacheHandle> {
        dispatch!(self, kmalloc_cache(self, size, gfp))
    }

    /// The mode of `/proc/slabinfo` under the allocator in use, `None` when the file does
    /// not exist (SLOB).
    pub fn slabinfo_mode(&self) -> Option<u16> {
        match dispatch_const!(self, SLABINFO) {
            SlabinfoMode::Absent => None,
            SlabinfoMode::ReadOnly => Some(0o400),
            SlabinfoMode::ReadWrite => Some(0o600),
        }
    }

    /// A write to `/proc/slabinfo` (SLAB's tunables: `"name limit batchcount shared"`).
    ///
    /// # Errors
    /// `ENOENT` when there is no slabinfo (SLOB), `EACCES` when it is read-only (SLUB: mode
    /// 0400), and the allocator's errors (`EINVAL` for bad text or tunables).
    pub fn slabinfo_write(&self, text: &str) -> Result<(), Errno> {
        match dispatch_const!(self, SLABINFO) {
            SlabinfoMode::Absent => Err(Errno::ENOENT),
            SlabinfoMode::ReadOnly => Err(Errno::EACCES),
            SlabinfoMode::ReadWrite => dispatch!(self, slabinfo_write(self, text)),
        }
    }

    /// `/proc/slabinfo` (with SLOB, which has none, only the header).
    pub fn show_slabinfo(&self, out: &mut dyn Write) -> fmt::Result {
        write_slabinfo_header(out)?;
        let node = self.kmem_cache_node_info();
        let mut res = Ok(());
        dispatch!(
            self,
            for_each_info(self, &mut |name, info| {
                // SLUB's second boot cache sits between the kmalloc caches and `kmem_cache`
                // (kmem_cache_init bootstraps `kmem_cache`, then `kmem_cache_node`).
                if let (Some(n), "kmem_cache", true) = (&node, name, res.is_ok()) {
                    res = write_slabinfo_line(out, "kmem_cache_node", n);
                }
                if res.is_ok() {
                    res = write_slabinfo_line(out, name, info);
                }
            })
        );
        res
    }

    /// The `kmem_cache_node` line of SLUB: one `struct kmem_cache_node` per cache (one
    /// node), sized as `kmem_cache_init` creates the cache (`SLAB_HWCACHE_ALIGN`, order by
    /// `calculate_order`). kmem keeps each cache's node structure inside the cache
    /// structure, so the objects counted are exactly the caches; the slabs are those the
    /// objects would fill.
    fn kmem_cache_node_info(&self) -> Option<common::SlabInfo> {
        if !matches!(self.slab().kind, common::SlabAllocatorKind::Slub) {
            return None;
        }
        let object_size = core::mem::size_of::<slub::KmemCacheNode<P::RawLock>>();
        let align = common::calculate_alignment(common::SlabFlags::HWCACHE_ALIGN, 0, object_size);
        let size = object_size.next_multiple_of(align);
        let order = common::calculate_order(size as u32, &self.slab().order)?;
        let per_slab = common::order_objects(order, size as u32).max(1);
        let mut caches = 0usize;
        self.for_each_cache(&mut |_, _| caches += 1);
        let slabs = caches.div_ceil(per_slab as usize);
        Some(common::SlabInfo {
            active_objs: caches,
            num_objs: slabs * per_slab as usize,
            objsize: size,
            object_size,
            objperslab: per_slab,
            pagesperslab: 1 << order,
            num_slabs: slabs,
            partial_slabs: 0,
            refcount: -1,
            tunables: common::SlabTunables::default(),
            active_slabs: slabs,
            shared_avail: 0,
        })
    }

    /// Slab statistics for every cache, one line each: name, objects, slabs, the fast/slow
    /// path counters and the bytes lost to per-slab leftover and per-object metadata.
    pub fn show_slab_stats(&self, out: &mut dyn Write) -> fmt::Result {
        writeln!(
            out,
            "{:<20} {:>8} {:>8} {:>6} {:>12} {:>10} {:>12} {:>10} {:>8} {:>8} {:>10} {:>12} {:>12} {:>10} {:>10} {:>8} {:>8}",
            "# name",
            "objs",
            "active",
            "slabs",
            "alloc_fast",
            "alloc_slow",
            "free_fast",
            "free_slow",
            "partial",
            "cpu_part",
            "waste_kB",
            "alloc_pcs",
            "free_pcs",
            "sh_refill",
            "sh_flush",
            "barn_get",
            "barn_put"
        )?;
        let mut res = Ok(());
        self.for_each_cache(&mut |h, name| {
            if res.is_err() {
                return;
            }
            if let (Some(i), Some(s)) = (self.slab_info(h), self.slab_stats(h)) {
                res = writeln!(
                    out,
                    "{:<20} {:>8} {:>8} {:>6} {:>12} {:>10} {:>12} {:>10} {:>8} {:>8} {:>10} {:>12} {:>12} {:>10} {:>10} {:>8} {:>8}",
                    name,
                    i.num_objs,
                    i.active_objs,
                    i.num_slabs,
                    s.alloc_fastpath,
                    s.alloc_slowpath,
                    s.free_fastpath,
                    s.free_slowpath,
                    s.free_add_partial + s.alloc_from_partial,
                    s.cpu_partial_alloc + s.cpu_partial_free,
                    i.waste_bytes() / 1024,
                    s.alloc_pcs,
                    s.free_pcs,
                    s.sheaf_refill,
                    s.sheaf_flush,
                    s.barn_get,
                    s.barn_put
                );
            }
        });
        res
    }
}
