//! The memory model: the lowest layer of a machine (pfn ↔ `struct page` ↔ physical ↔
//! virtual addresses), its log and its report counters.
//!
//! [`MemoryModel`] is what every subsystem above stands on: the platform, the firmware map,
//! memblock (kept after boot, as with `ARCH_KEEP_MEMBLOCK`), the memmap (one 64-byte
//! `struct page` per frame, Documentation/mm/memory-model.rst: SPARSEMEM_VMEMMAP on x86_64 —
//! a virtually contiguous array of which only present sections are backed, see
//! [`crate::sparse`] —, FLATMEM on i386), the `mem_section` table, the direct map, the model-address translation, the
//! printk ring buffer, node counters and the CPU hotplug state table ([`cpuhp`]).
//!
//! Each subsystem adds a layer that owns this one and dereferences to it — [`crate::page_alloc::PageAllocator`]
//! → [`crate::slab::SlabLayer`] → [`crate::vmalloc::VmLayer`] — so code in a layer calls
//! everything below it and nothing above it; [`crate::Machine`] is the handle on the top one.
//!
//! # Invariants
//! - `mem_map` is the `struct page` of PFN 0; the entry of every PFN below `max_pfn` whose
//!   section is valid (FLATMEM: every PFN below `max_pfn`) is initialised memory that never
//!   moves; a [`PagePtr`] is only ever made for such an entry.
//! - `direct_map + pa` is the platform's mapping of physical address `pa` for every
//!   `pa < lowmem_end` (the direct map), and for every `pa < phys_end` for `phys_to_real`.
//! - The state lives in memory taken from memblock at boot and is never moved, so list heads
//!   in it may point at themselves.
//!
//! # Locking
//! The log lock is innermost: nothing else is taken while it is held. The memblock lock is
//! taken under no other lock; only the zone locks (`memblock_free_all`) and the log lock are
//! taken under it. The cpuhp table's lock is a leaf, taken only to copy entries out
//! (docs/LOCKING.md).

pub mod cpuhp;
pub mod mm_types;
pub mod printk;
pub mod rcu;
pub mod stackdepot;

use core::fmt::{self, Write};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicIsize, AtomicU32, AtomicU8, AtomicUsize, Ordering};

use crate::addr::{Pfn, PhysAddr, VirtAddr, NR_PAGE_ORDERS, PAGE_SHIFT};
use crate::arch::{AddrTranslation, Arch, E820Table, TranslationRegion};
use crate::locking::{Lock, Lockdep, CPU_SECTION, LOCKDEP};
use crate::memblock::Memblock;
use crate::mmzone::ZoneType;
use crate::platform::{CpuGuard, LogLevel, Platform};
use crate::sparse::SectionTable;
use cpuhp::CpuhpTable;
use mm_types::{Page, PagePtr, PageRef};
use printk::{LineBuf, LogBuf};

/// The sections of the kernel image, for the `Memory:` line.
#[derive(Clone, Copy, Debug)]
pub struct KernelImage {
    /// Physical load address.
    pub start: PhysAddr,
    /// Text bytes.
    pub code: u64,
    /// Read-write data bytes.
    pub rwdata: u64,
    /// Read-only data bytes.
    pub rodata: u64,
    /// Init sections bytes.
    pub init: u64,
    /// BSS bytes.
    pub bss: u64,
}

impl KernelImage {
    /// Total bytes.
    pub fn size(&self) -> u64 {
        self.code + self.rwdata + self.rodata + self.init + self.bss
    }
    /// A typical image for a simulated machine, loaded at 16 MiB
    /// (`CONFIG_PHYSICAL_START`), scaled down on small machines.
    pub fn simulated(arch: Arch, ram: u64) -> KernelImage {
        const K: u64 = 1024;
        let (code, rw, ro, init, bss) = match arch {
            Arch::X86_64 => (16384 * K, 2560 * K, 6144 * K, 2048 * K, 3072 * K),
            Arch::I386 => (8192 * K, 1024 * K, 3072 * K, 1024 * K, 1024 * K),
        };
        let total = code + rw + ro + init + bss;
        let cap = ram / 16;
        let scale = |v: u64| {
            if total <= cap {
                v
            } else {
                (v * cap / total) & !0xfff
            }
        };
        KernelImage {
            start: PhysAddr::new(16 << 20),
            code: scale(code),
            rwdata: scale(rw),
            rodata: scale(ro),
            init: scale(init),
            bss: scale(bss),
        }
    }
}

/// Sections covered by [`MemoryModel::memmap_early`]: 512 (64 GiB), one cache line of bits.
pub(crate) const EARLY_MEMMAP_SECTIONS: usize = 512;

/// Counters of reports, like the kernel's taint flags.
#[derive(Default)]
pub struct Taint {
    /// `BUG:` reports (bad page state, slab corruption…).
    pub bugs: AtomicUsize,
    /// `WARNING:` reports and allocation-failure warnings.
    pub warnings: AtomicUsize,
    /// Every count of [`MemoryModel::bug_count`], `slab_errors` and `kmemcheck_errors`
    /// (a report counted by two of them once): what
    /// a caller that acts on any of them watches with one load
    /// ([`MemoryModel::report_count`]).
    pub reports: AtomicUsize,
}

/// The memory model layer of a machine. See the module documentation.
pub struct MemoryModel<P: Platform> {
    /// The platform. Moved out and dropped by `Machine::drop`.
    pub(crate) plat: P,
    pub(crate) arch: Arch,
    pub(crate) nr_cpus: usize,
    pub(crate) possible_cpus: usize,
    pub(crate) e820: E820Table,
    pub(crate) memblock: Lock<P::RawLock, Memblock>,
    /// The memmap: `mem_map + pfn` is the `struct page` of `pfn` (vmemmap); backed only for
    /// valid sections with SPARSEMEM.
    pub(crate) mem_map: *mut Page,
    /// The `mem_section` table ([`SectionTable::flat`] on FLATMEM machines).
    pub(crate) sections: SectionTable,
    /// Physical ranges holding the boot memmap (the vmemmap's backing, or FLATMEM's array),
    /// for page_owner's classification: `(start, bytes)`.
    pub(crate) memmap_phys: (u64, u64),
    /// Whether the memmap lives in the platform's vmemmap window (SPARSEMEM_VMEMMAP), one
    /// 2 MiB block per valid section in `memmap_phys` in section order; `false` when it is
    /// one array in the direct map (FLATMEM, or a platform without a window).
    pub(crate) vmemmap_mapped: bool,
    /// One past the highest PFN with a memmap entry: `max_pfn`, raised by memory hotplug
    /// (`add_memory` of a range above it); the bound of `pfn_to_page`.
    pub(crate) pfn_limit: core::sync::atomic::AtomicU64,
    /// `mem_hotplug_lock`: serialises memory hotplug (add, online, offline, remove).
    pub(crate) mem_hotplug: Lock<P::RawLock, ()>,
    /// How `add_memory` onlines new blocks (`mhp_default_online_type`; 0 offline, else
    /// [`crate::memory_hotplug::OnlineType`] + 1): /sys/devices/system/memory/auto_online_blocks.
    pub(crate) memhp_default_online: AtomicU8,
    /// `movable_node_enabled` (the `movable_node` boot parameter): memory onlined with
    /// `online` goes to ZONE_MOVABLE when no zone claims it (`default_zone_for_pfn`).
    pub(crate) movable_node: bool,
    pub(crate) max_pfn: Pfn,
    /// End of the direct map (physical) at boot.
    pub(crate) lowmem_end: PhysAddr,
    /// End of the direct map now: `lowmem_end`, raised by memory hotplug on a machine without
    /// HighMem (x86_64's `arch_add_memory` maps added memory into the direct map,
    /// `init_memory_mapping`); the bound of `__va`/`__pa`. Never lowered: a removed range has
    /// no valid section, so nothing finds a page there.
    pub(crate) direct_map_end: core::sync::atomic::AtomicU64,
    pub(crate) direct_map: *mut u8,
    /// One bit per section of the first [`EARLY_MEMMAP_SECTIONS`] (64 GiB): set for a boot
    /// (`SECTION_IS_EARLY`) section with a memmap (FLATMEM: a section below `max_pfn`).
    /// Boot sections are never removed (`remove_memory` refuses them) and the bits never
    /// change after boot, so a direct-map pointer below `direct_map_end` in such a section
    /// has a `struct page` without a `mem_section` lookup ([`Self::virt_to_page_fast`]).
    pub(crate) memmap_early: [u64; EARLY_MEMMAP_SECTIONS / 64],
    /// The bound of [`Self::virt_to_page_fast`]'s bit test: the boot direct map's end
    /// (`lowmem_end`), at most the bitmap's 64 GiB. One compare keeps an offset both below
    /// `direct_map_end` (which is never lowered) and inside the bitmap. Written once at boot.
    pub(crate) memmap_early_end: u64,
    /// One bit per section of the first [`EARLY_MEMMAP_SECTIONS`]: set for a hot-added
    /// section whose memmap is mapped and initialised and which the direct map covers
    /// (`sparse_add_section`), cleared before its memmap goes (`sparse_remove_section`).
    /// The second test of [`Self::virt_to_page_fast`]: without it every slab free of an
    /// object in hot-added memory took the `mem_section` walk (libkmem_malloc.so grows by
    /// hot-adding blocks: most of python3's heap, docs/BENCHMARKS.md "Issue 14, session 9").
    pub(crate) memmap_hot: [core::sync::atomic::AtomicU64; EARLY_MEMMAP_SECTIONS / 64],
    pub(crate) translation: core::cell::UnsafeCell<AddrTranslation>,
    pub(crate) log: Lock<P::RawLock, LogBuf>,
    pub(crate) console_loglevel: AtomicU8,
    pub(crate) taint: Taint,
    pub(crate) node_stats: NodeStats,
    pub(crate) vm_events: VmEvents,
    pub(crate) taint_flags: AtomicU32,
    pub(crate) kernel: KernelImage,
    /// Pages holding per-CPU data for every possible CPU (`pcpu_nr_pages`): the per-CPU
    /// page lists of each zone and the i386 kmap stacks. See [`MemoryModel::percpu_charge`].
    pub(crate) percpu_pages: AtomicUsize,
    pub(crate) jiffies_at_boot: u64,
    /// CPU hotplug teardown callbacks (`cpuhp_setup_state`).
    pub(crate) cpuhp: Lock<P::RawLock, CpuhpTable>,
    /// The lock validator, in the platform's debug area (null when there is none); written
    /// before the state is placed, initialised by `lockdep_init` right after. See
    /// [`crate::locking`].
    pub(crate) lockdep: *const Lockdep,
    /// RCU: grace periods, per-CPU read-side counters, callbacks ([`rcu`]).
    pub(crate) rcu: rcu::RcuState<P::RawLock>,
    /// Saved stack traces of the debuggers ([`stackdepot`]), in the platform's debug area
    /// (empty when there is none).
    pub(crate) depot: stackdepot::StackDepot,
}

// SAFETY: the raw pointers point into memblock memory owned by the machine (memmap, direct
// map) and are only dereferenced under the rules in the module documentation; the
// translation table's `UnsafeCell` is written only by `add_translation`, whose contract is
// documented there; every other field is Send/Sync by itself (atomics, locks, plain data).
unsafe impl<P: Platform> Send for MemoryModel<P> {}
// SAFETY: see the `Send` impl: shared access goes through atomics, locks, or the documented
// single-writer `add_translation` protocol.
unsafe impl<P: Platform> Sync for MemoryModel<P> {}

impl<P: Platform> MemoryModel<P> {
    /// The platform.
    #[inline]
    pub fn platform(&self) -> &P {
        &self.plat
    }
    /// The machine's lock validator, if it has one (debug builds on a platform with a
    /// debug area).
    #[inline]
    pub fn lockdep(&self) -> Option<&Lockdep> {
        // Builds without the validator: no check at run time.
        if !LOCKDEP {
            return None;
        }
        // SAFETY: non-null only for the platform's debug area, initialised by `lockdep_init`
        // before anything can call this (boot), and alive as long as the platform, so as
        // `self`.
        unsafe { self.lockdep.as_ref() }
    }
    /// Initialises the lock validator the layer was built with (if any) and attaches this
    /// layer's locks to it.
    ///
    /// # Safety
    /// Once, at boot, right after the state is placed and before any lock is taken or the
    /// machine is shared; `self` never moves again (it is in the machine's state).
    pub(crate) unsafe fn lockdep_init(&self) {
        if self.lockdep.is_null() {
            return;
        }
        let ld = self.lockdep.cast_mut();
        let host: *const dyn kds::lockdep::LockdepHost = self;
        // SAFETY: `ld` is the platform's debug area, valid for writes of a `Lockdep`, aligned,
        // used by nothing else and alive as long as the platform (Platform contract), and not
        // yet read by anyone (caller's contract). The host is this layer, which stays at this
        // address for as long as the validator is used.
        unsafe { Lockdep::init_at(ld, host) };
        // SAFETY: `ld` was just initialised and outlives these locks (both live as long as
        // the platform); each lock is attached once.
        unsafe {
            self.memblock.attach(ld);
            self.mem_hotplug.attach(ld);
            self.log.attach(ld);
            self.cpuhp.attach(ld);
            self.rcu.lockdep_attach(ld);
        }
    }
    /// Enters a CPU section (`get_cpu()`), recorded by the lock validator.
    #[inline]
    #[track_caller]
    pub fn cpu_guard(&self) -> CpuGuard<'_, P> {
        if !LOCKDEP {
            // No validator in this build: exactly `get_cpu()`.
            return CpuGuard::new(&self.plat);
        }
        CpuGuard::tracked(&self.plat, self.lockdep(), &CPU_SECTION)
    }
    /// The CPU the calling thread owns outright ([`Platform::cpu_owned`]): its per-CPU data
    /// may be used as inside a section, with nothing to enter or leave, by code that takes
    /// no lock meanwhile. `None` when the platform has no such CPU. With the lock validator
    /// built in, a section is entered and left first, so that it checks the section's place
    /// in the lock order as for [`Self::cpu_guard`] (nothing is taken inside it).
    #[inline(always)]
    #[track_caller]
    pub fn cpu_owned(&self) -> Option<usize> {
        let cpu = self.plat.cpu_owned()?;
        debug_assert!(cpu < self.plat.possible_cpus());
        if LOCKDEP {
            drop(self.cpu_guard());
        }
        Some(cpu)
    }
    /// Enters a CPU section without waiting ([`Platform::cpu_try_get`]): `None` where
    /// [`Self::cpu_guard`] would wait. Used by the `*_nolock` allocation paths.
    #[inline]
    #[track_caller]
    pub fn cpu_guard_try(&self) -> Option<CpuGuard<'_, P>> {
        CpuGuard::try_tracked(
            &self.plat,
            if LOCKDEP { self.lockdep() } else { None },
            &CPU_SECTION,
        )
    }
    /// The architecture.
    #[inline]
    pub fn arch(&self) -> Arch {
        self.arch
    }
    /// Online CPUs.
    #[inline]
    pub fn nr_cpus(&self) -> usize {
        self.nr_cpus
    }
    /// The firmware map the machine booted with.
    pub fn e820(&self) -> &E820Table {
        &self.e820
    }
    /// The highest PFN plus one (`max_pfn`).
    #[inline]
    pub fn max_pfn(&self) -> Pfn {
        self.max_pfn
    }
    /// One past the highest PFN with a memmap: `max_pfn`, or above after memory hotplug.
    #[inline]
    pub fn pfn_limit(&self) -> Pfn {
        Pfn::new(self.pfn_limit.load(Ordering::Acquire))
    }
    /// The end of the direct map (`max_low_pfn` as an address).
    #[inline]
    pub fn lowmem_end(&self) -> PhysAddr {
        self.lowmem_end
    }
    /// A zone by kind.
    #[inline]
    pub fn with_memblock<R>(&self, f: impl FnOnce(&mut Memblock) -> R) -> R {
        // Lock order: memblock_lock (rank 1), the caller's closure under it (V4); docs/LOCKING.md.
        f(&mut self.memblock.lock())
    }
    /// Report counters.
    pub fn taint(&self) -> &Taint {
        &self.taint
    }
    /// `BUG:` reports so far.
    pub fn bug_count(&self) -> usize {
        self.taint.bugs.load(Ordering::Relaxed)
    }
    /// `WARNING:` reports so far (allocation failures included).
    pub fn warn_count(&self) -> usize {
        self.taint.warnings.load(Ordering::Relaxed)
    }
    /// BUG reports, slab errors and kmemcheck errors so far, in one counter that grows
    /// (Release) after the report's own counter: a reader that sees it move (Acquire) and
    /// then reads `bug_count`, `slab_errors` or `kmemcheck_errors` sees theirs moved too.
    /// `libkmem_malloc.so` reads it after every call instead of the three counters (three
    /// cache lines).
    #[inline]
    pub fn report_count(&self) -> usize {
        self.taint.reports.load(Ordering::Acquire)
    }
    /// Counts a report in [`Self::report_count`] (after its own counter).
    #[inline]
    pub(crate) fn note_report(&self) {
        self.taint.reports.fetch_add(1, Ordering::Release);
    }
    /// Counts a `BUG:` report: [`Self::bug_count`] and [`Self::report_count`].
    pub fn count_bug(&self) {
        self.taint.bugs.fetch_add(1, Ordering::Relaxed);
        self.note_report();
    }
    /// `totalram_pages()`.
    pub fn kernel_image(&self) -> KernelImage {
        self.kernel
    }
    /// Pages of per-CPU data, all possible CPUs' copies included: /proc/meminfo `Percpu`
    /// (mm/percpu.c `pcpu_nr_pages`, populated pages times units).
    pub fn percpu_pages(&self) -> usize {
        self.percpu_pages.load(Ordering::Relaxed)
    }
    /// Accounts `pages` allocated (positive) or freed (negative) for a per-CPU area, as the
    /// percpu allocator counts `pcpu_nr_populated`.
    pub(crate) fn percpu_charge(&self, pages: isize) {
        if pages >= 0 {
            self.percpu_pages
                .fetch_add(pages as usize, Ordering::Relaxed);
        } else {
            self.percpu_pages
                .fetch_sub(pages.unsigned_abs(), Ordering::Relaxed);
        }
    }
    // ---------------------------------------------------------------- memory model

    /// `pfn_to_page`: the `struct page` of a valid PFN below `max_pfn`.
    #[inline]
    pub fn pfn_to_page(&self, pfn: Pfn) -> Option<PagePtr> {
        if pfn < self.pfn_limit() && self.memmap_valid(pfn) {
            // SAFETY: the memmap has `max_pfn` entries.
            Some(unsafe {
                PagePtr::from_raw(NonNull::new_unchecked(self.mem_map.add(pfn.as_usize())))
            })
        } else {
            None
        }
    }
    /// `pfn_valid`: whether a PFN has a `struct page` (SPARSEMEM: its section has a memmap,
    /// `valid_section`; FLATMEM: below `max_pfn`).
    pub fn pfn_valid(&self, pfn: Pfn) -> bool {
        if self.sections.is_sparse() {
            self.sections.pfn_valid(pfn)
        } else {
            pfn < self.max_pfn
        }
    }
    /// `pfn_to_online_page`: the page of a PFN whose section is online (SPARSEMEM) or below
    /// `max_pfn` (FLATMEM).
    pub fn pfn_to_online_page(&self, pfn: Pfn) -> Option<PagePtr> {
        if self.sections.is_sparse() && !self.sections.pfn_online(pfn) {
            return None;
        }
        self.pfn_to_page(pfn)
    }
    /// The `mem_section` table.
    #[inline]
    pub fn sections(&self) -> &SectionTable {
        &self.sections
    }
    /// Initialises the `struct page`s of `[start, end)` as reserved pages of `zone` on node
    /// `nid` with one reference (`memmap_init_range` for a hot-added range; also how offlined pages are
    /// left).
    ///
    /// # Safety
    /// Every PFN of the range is below [`Self::pfn_limit`] in a valid section, and no page of
    /// it is in use: not on a free list, not allocated, not referenced by anyone who will
    /// touch it (a just-added or just-offlined range, under `mem_hotplug_lock`).
    pub(crate) unsafe fn init_memmap_range(
        &self,
        start: Pfn,
        end: Pfn,
        zone: ZoneType,
        nid: usize,
    ) {
        for pfn in start.as_u64()..end.as_u64() {
            // SAFETY: backed memmap (valid section below the limit) that nobody uses, by the
            // caller's contract.
            unsafe {
                self.mem_map
                    .add(pfn as usize)
                    .write(Page::reserved_on(zone, nid))
            };
        }
    }
    /// Raises [`Self::pfn_limit`] to `end` (memory hotplug, `update_end_of_memory_vars`).
    pub(crate) fn raise_pfn_limit(&self, end: Pfn) {
        self.pfn_limit.fetch_max(end.as_u64(), Ordering::AcqRel);
    }
    /// The physical end of the direct map now (see the field).
    #[inline(always)]
    pub(crate) fn direct_map_end(&self) -> u64 {
        self.direct_map_end.load(Ordering::Relaxed)
    }
    /// Extends the direct map to `end` (memory hotplug on a machine whose memory is all in
    /// the direct map), once the platform backs it and before any page there is handed out
    /// (the section is published with Release after this).
    pub(crate) fn extend_direct_map(&self, end: PhysAddr) {
        if self.lowmem_end >= self.max_pfn.phys() {
            self.direct_map_end
                .fetch_max(end.as_u64(), Ordering::AcqRel);
        }
    }
    /// Whether the memmap entry of `pfn` exists (FLATMEM: always; callers bound `pfn`).
    #[inline]
    fn memmap_valid(&self, pfn: Pfn) -> bool {
        !self.sections.is_sparse() || self.sections.pfn_valid(pfn)
    }
    /// `virt_to_page` of a direct-map address `p`, for the hot paths (the slab free's
    /// `virt_to_slab`): in a boot section ([`Self::memmap_early`]) one bit test, no
    /// `mem_section` lookup; elsewhere [`Self::virt_to_page_sparse`]. `None` when `p` is
    /// outside the direct map or has no `struct page`, as [`Self::virt_to_page`].
    #[inline(always)]
    pub(crate) fn virt_to_page_fast(&self, p: *const u8) -> Option<PagePtr> {
        let off = (p as usize).wrapping_sub(self.direct_map as usize);
        let nr = off >> crate::sparse::SECTION_SIZE_BITS;
        // `off < memmap_early_end <= EARLY_MEMMAP_SECTIONS << SECTION_SIZE_BITS` (checked
        // first) puts `nr / 64` inside the bitmap; the `%` (an `and`) shows the compiler so
        // without a bounds check.
        const WORDS: usize = EARLY_MEMMAP_SECTIONS / 64;
        if (off as u64) < self.memmap_early_end
            && self.memmap_early[(nr / 64) % WORDS] & (1 << (nr % 64)) != 0
        {
            // SAFETY: `off` is below the boot direct map's end, which never exceeds the PFN
            // limit, and lies in a boot section with a memmap, which is never removed (the
            // bitmap's invariant): `mem_map + pfn` is a live `struct page`.
            Some(unsafe {
                PagePtr::from_raw(NonNull::new_unchecked(self.mem_map.add(off >> PAGE_SHIFT)))
            })
        } else if nr < EARLY_MEMMAP_SECTIONS
            && self.memmap_hot[(nr / 64) % WORDS].load(Ordering::Acquire) & (1 << (nr % 64)) != 0
        {
            // SAFETY: the bit says section `nr` is a hot-added section inside the direct map
            // (so `off` is below `direct_map_end`) whose memmap is mapped and initialised
            // (so its PFNs are below the PFN limit); the bit is cleared before the memmap is
            // unmapped, under `mem_hotplug_lock`, and only once every page of the section is
            // offline: a pointer into it that is looked up meanwhile is no live object's, as
            // with the `mem_section` walk of `virt_to_page_sparse`.
            Some(unsafe {
                PagePtr::from_raw(NonNull::new_unchecked(self.mem_map.add(off >> PAGE_SHIFT)))
            })
        } else {
            self.virt_to_page_sparse(off)
        }
    }
    /// Marks hot-added section `nr` for [`Self::virt_to_page_fast`] (`on`: its memmap is
    /// mapped and initialised, and the direct map covers it) or unmarks it (before its
    /// memmap is unmapped). Sections past [`EARLY_MEMMAP_SECTIONS`] are left to the
    /// `mem_section` walk.
    pub(crate) fn set_memmap_hot(&self, nr: usize, on: bool) {
        if nr >= EARLY_MEMMAP_SECTIONS {
            return;
        }
        let w = &self.memmap_hot[nr / 64];
        if on {
            w.fetch_or(1 << (nr % 64), Ordering::Release);
        } else {
            w.fetch_and(!(1 << (nr % 64)), Ordering::Release);
        }
    }
    /// Whether hot-added section `nr` is marked for [`Self::virt_to_page_fast`] (for tests).
    pub fn memmap_hot_section(&self, pfn: Pfn) -> bool {
        let nr = crate::sparse::pfn_to_section_nr(pfn);
        nr < EARLY_MEMMAP_SECTIONS
            && self.memmap_hot[nr / 64].load(Ordering::Relaxed) & (1 << (nr % 64)) != 0
    }
    /// [`Self::virt_to_page_fast`] outside the boot sections: the direct map's bound, the
    /// PFN limit and the section's memmap flag (a pointer into a hole must not read an
    /// unmapped memmap).
    #[inline(never)]
    fn virt_to_page_sparse(&self, off: usize) -> Option<PagePtr> {
        if off as u64 >= self.direct_map_end() {
            return None;
        }
        self.pfn_to_page(Pfn::new((off >> PAGE_SHIFT) as u64))
    }
    /// Whether the section of `pfn` is in [`Self::memmap_early`] (for tests).
    pub fn memmap_early_section(&self, pfn: Pfn) -> bool {
        let nr = crate::sparse::pfn_to_section_nr(pfn);
        nr < EARLY_MEMMAP_SECTIONS && self.memmap_early[nr / 64] & (1 << (nr % 64)) != 0
    }
    /// `pfn_to_page` for a PFN the caller knows is below `max_pfn` (checked in debug builds).
    #[inline]
    pub(crate) fn page(&self, pfn: Pfn) -> PagePtr {
        debug_assert!(pfn < self.pfn_limit() && self.memmap_valid(pfn));
        // SAFETY: callers pass valid PFNs inside a zone span, all below max_pfn.
        unsafe { self.pfn_to_page_unchecked(pfn) }
    }
    /// `pfn_to_page` without the bounds check.
    ///
    /// # Safety
    /// `pfn` must be below [`MemoryModel::max_pfn`] and valid ([`MemoryModel::pfn_valid`]).
    #[inline]
    pub unsafe fn pfn_to_page_unchecked(&self, pfn: Pfn) -> PagePtr {
        // SAFETY: caller guarantees `pfn < max_pfn`.
        unsafe { PagePtr::from_raw(NonNull::new_unchecked(self.mem_map.add(pfn.as_usize()))) }
    }
    /// A read-only view of `page` if it is an entry of this machine's memmap (`None` for a
    /// page of another machine or any other pointer), borrowed for as long as the machine.
    pub fn page_ref(&self, page: PagePtr) -> Option<PageRef<'_>> {
        self.is_memmap_ptr(page.as_ptr())
            .then(|| PageRef::new(page))
    }
    /// Checks that `page`, handed to the public function `what`, is an entry of this
    /// machine's memmap; if not, reports it (`bad_address`) and returns `false`. Every public
    /// function that takes a [`PagePtr`] calls this before touching the page.
    #[inline]
    #[track_caller]
    pub(crate) fn check_page_ptr(&self, page: PagePtr, what: &str) -> bool {
        if self.is_memmap_ptr(page.as_ptr()) {
            return true;
        }
        self.foreign_page(page, what);
        false
    }
    /// The report of [`Self::check_page_ptr`], out of the fast paths' way.
    #[cold]
    #[inline(never)]
    #[track_caller]
    fn foreign_page(&self, page: PagePtr, what: &str) {
        self.bad_address(what, page.as_ptr() as u64);
    }
    /// `page_to_pfn`; [`Self::pfn_limit`] (`max_pfn` unless memory was hot-added) for a
    /// page that is not of this machine.
    #[inline]
    pub fn page_to_pfn(&self, page: PagePtr) -> Pfn {
        // A page of another machine (or any other pointer) maps to the PFN limit, which no
        // page of this machine has: `pfn_to_page` of it is `None`.
        let off = (page.as_ptr() as usize).wrapping_sub(self.mem_map as usize)
            / core::mem::size_of::<Page>();
        let limit = self.pfn_limit();
        if off as u64 >= limit.as_u64() || !self.memmap_valid(Pfn::new(off as u64)) {
            return limit;
        }
        Pfn::new(off as u64)
    }
    /// Whether a pointer is a `struct page` of this machine's memmap.
    #[inline]
    pub fn is_memmap_ptr(&self, p: *const Page) -> bool {
        let base = self.mem_map as usize;
        let a = p as usize;
        a >= base
            && a < base + self.pfn_limit().as_usize() * core::mem::size_of::<Page>()
            && (a - base).is_multiple_of(core::mem::size_of::<Page>())
            && self.memmap_valid(Pfn::new(((a - base) / core::mem::size_of::<Page>()) as u64))
    }
    /// `__va`: the direct-map address of a physical address, if it is in the direct map
    /// (lowmem).
    #[inline]
    pub fn phys_to_virt(&self, pa: PhysAddr) -> Option<VirtAddr> {
        if pa.as_u64() < self.direct_map_end() {
            Some(VirtAddr::new(
                self.direct_map as usize + pa.as_u64() as usize,
            ))
        } else {
            None
        }
    }
    /// `__pa`: the physical address of a direct-map address.
    #[inline]
    pub fn virt_to_phys(&self, va: VirtAddr) -> Option<PhysAddr> {
        let base = self.direct_map as usize;
        let a = va.as_usize();
        if a >= base && ((a - base) as u64) < self.direct_map_end() {
            Some(PhysAddr::new((a - base) as u64))
        } else {
            None
        }
    }
    /// `virt_to_page`.
    #[inline]
    pub fn virt_to_page(&self, va: VirtAddr) -> Option<PagePtr> {
        self.virt_to_phys(va)
            .and_then(|pa| self.pfn_to_page(pa.pfn()))
    }
    /// `page_address`: the direct-map address of a page; `None` for a HighMem page.
    #[inline]
    pub fn page_address(&self, page: PagePtr) -> Option<VirtAddr> {
        if !self.is_memmap_ptr(page.as_ptr()) {
            return None;
        }
        self.phys_to_virt(self.page_to_pfn(page).phys())
    }
    /// The real address of physical memory whether or not it is in the direct map (HighMem
    /// included): what kmap and the hosted platform's mirrors use.
    ///
    /// # Safety
    /// The caller must only access memory it owns, and only below `phys_end`.
    #[inline]
    pub unsafe fn phys_to_real(&self, pa: PhysAddr) -> *mut u8 {
        // SAFETY: within the platform's mapping by the caller's guarantee.
        unsafe { self.direct_map.add(pa.as_u64() as usize) }
    }
    fn translation(&self) -> &AddrTranslation {
        // SAFETY: the table is written only through `add_translation`, whose contract keeps
        // writes to boot time, before any reader can run concurrently.
        unsafe { &*self.translation.get() }
    }
    /// The model address (the machine's own layout) of a real address, for display.
    #[inline]
    pub fn to_model(&self, real: usize) -> u64 {
        self.translation().to_model(real)
    }
    /// The real address of a model address, if one of the machine's regions covers it.
    #[inline]
    pub fn from_model(&self, model: u64) -> Option<usize> {
        self.translation().from_model(model)
    }
    /// Adds a region to the model-address translation (vmalloc space, kmap windows…).
    ///
    /// # Safety
    /// Only during boot, before the machine is shared with another thread: readers
    /// (`to_model`, `from_model`) take no lock.
    pub(crate) unsafe fn add_translation(&self, r: TranslationRegion) -> bool {
        // SAFETY: by the caller's contract no other reference to the table is live (boot runs
        // on one thread and holds no reference into it across this call), so this is the
        // only access to the cell's contents.
        let t = unsafe { &mut *self.translation.get() };
        t.add(r)
    }

    // ---------------------------------------------------------------- printk

    /// Logs one line at `level` (`printk`). Lines longer than 1 KiB are cut.
    pub fn printk(&self, level: LogLevel, args: fmt::Arguments<'_>) {
        self.log_line(level, args, true);
    }
    /// printk for a report made with arbitrary locks held (the lock validator's): if the log
    /// lock is taken — possibly by this very task, whose locking is being reported — the line
    /// goes to the console only, instead of waiting for the lock (`printk_deferred`'s job in
    /// Linux).
    pub(crate) fn printk_nowait(&self, level: LogLevel, args: fmt::Arguments<'_>) {
        self.log_line(level, args, false);
    }
    /// printk's body: the line goes to the log (waiting for its lock, or only if the lock is
    /// free when `wait` is false) and to the console if its level is below the console's,
    /// or if it could not be logged.
    fn log_line(&self, level: LogLevel, args: fmt::Arguments<'_>, wait: bool) {
        let mut line = LineBuf::new();
        let _ = line.write_fmt(args);
        let ts = self.timestamp_ns();
        // Lock order: logbuf_lock (rank 7, innermost), taken under any lock; without `wait`
        // a try_lock that never waits; docs/LOCKING.md.
        let log = if wait {
            Some(self.log.lock())
        } else {
            self.log.try_lock()
        };
        let logged = log.is_some();
        if let Some(mut log) = log {
            log.push(level as u8, ts, line.as_str());
        }
        if !logged || (level as u8) < self.console_loglevel.load(Ordering::Relaxed) {
            let _ = line.write_str("\n");
            self.platform().console_write(level, line.as_str());
        }
    }
    /// Nanoseconds since boot by the platform's clock.
    pub fn timestamp_ns(&self) -> u64 {
        let j = self
            .platform()
            .jiffies()
            .saturating_sub(self.jiffies_at_boot);
        j * (1_000_000_000 / self.platform().hz().max(1))
    }
    /// Sets the console log level: records below it are echoed to the console.
    pub fn set_console_loglevel(&self, level: u8) {
        self.console_loglevel.store(level, Ordering::Relaxed);
    }
    /// Writes the log as `dmesg` shows it (with timestamps when `timestamps`).
    pub fn dmesg(&self, out: &mut dyn Write, timestamps: bool) -> fmt::Result {
        // Lock order: logbuf_lock (rank 7, innermost), the caller's writer under it (V4);
        // docs/LOCKING.md.
        let log = self.log.lock();
        let mut res = Ok(());
        log.for_each(|_, ts, line| {
            if res.is_ok() {
                if timestamps {
                    res = printk::write_timestamp(out, ts).and_then(|_| out.write_str(" "));
                }
                if res.is_ok() {
                    res = writeln!(out, "{line}");
                }
            }
        });
        res
    }
    /// Empties the log (`dmesg -C`).
    pub fn dmesg_clear(&self) {
        // Lock order: logbuf_lock (rank 7, innermost); docs/LOCKING.md.
        self.log.lock().clear();
    }
}

impl<P: Platform> MemoryModel<P> {
    /// Runs the registered CPU hotplug teardowns for `cpu`, highest state first (what CPU
    /// hot-unplug does: SLUB's per-CPU slabs, then the CPU's page lists). The platform calls
    /// this through the CPU-dead hook; it is public for platforms that take CPUs offline by
    /// other means.
    ///
    /// # Safety
    /// No thread may be inside a CPU section for `cpu` during the call.
    pub unsafe fn cpu_dead(&self, cpu: usize) {
        let mut entries = [None; cpuhp::NR_CPUHP_STATES];
        // Lock order: cpuhp_state_mutex (rank 6, leaf), released before the teardowns run;
        // docs/LOCKING.md.
        for (slot, (_, e)) in entries.iter_mut().zip(self.cpuhp.lock().teardown_order()) {
            *slot = Some(e);
        }
        for e in entries.iter().flatten() {
            // SAFETY: `e.ctx` is the layer that registered `e.teardown` (cpuhp invariant), alive
            // as long as `self`; the caller guarantees `cpu` is unused.
            unsafe { (e.teardown)(e.ctx, cpu) };
        }
        // The CPU is outside every read-side section: RCU may end its grace period and run
        // callbacks (after the teardowns, so their frees do not land on the dead CPU's lists).
        self.rcu_cpu_dead(cpu);
    }
}

/// The platform's CPU-dead hook of a machine whose memory model is at `ctx`.
///
/// # Safety
/// `ctx` is the machine's `MemoryModel<P>`, alive for the call, and `cpu` is unused during it
/// (the [`crate::platform::CpuDeadHook`] contract).
pub(crate) unsafe fn cpu_dead_hook<P: Platform>(ctx: *const (), cpu: usize) {
    // SAFETY: by this function's contract `ctx` is a live MemoryModel<P>.
    let mm = unsafe { &*ctx.cast::<MemoryModel<P>>() };
    // SAFETY: forwarded from this function's contract.
    unsafe { mm.cpu_dead(cpu) }
}

/// A writer that sends each completed line to printk (for multi-line dumps at boot).
pub(crate) struct LinesTo<'a, P: Platform>(
    pub(crate) &'a MemoryModel<P>,
    pub(crate) &'a mut LineBuf,
);

impl<P: Platform> Write for LinesTo<'_, P> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for (i, part) in s.split('\n').enumerate() {
            if i > 0 {
                self.0
                    .printk(LogLevel::Info, format_args!("{}", self.1.as_str()));
                self.1.clear();
            }
            self.1.write_str(part)?;
        }
        Ok(())
    }
}

/// Node counters other subsystems (slab, page tables, vmalloc) report to /proc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeStat {
    /// `NR_SLAB_RECLAIMABLE_B` in pages.
    SlabReclaimable,
    /// `NR_SLAB_UNRECLAIMABLE_B` in pages.
    SlabUnreclaimable,
    /// `NR_PAGETABLE`.
    PageTables,
    /// Pages mapped by vmalloc.
    VmallocPages,
    /// `NR_ANON_MAPPED`: anonymous pages mapped into a process (meminfo `AnonPages`).
    AnonMapped,
    /// `NR_FILE_MAPPED`: page-cache pages mapped into a process (meminfo `Mapped`).
    FileMapped,
    /// `NR_SHMEM`: shmem/tmpfs pages (meminfo `Shmem`).
    Shmem,
    /// `NR_SWAPCACHE`: pages in the swap cache (meminfo `SwapCached`).
    SwapCached,
    /// `NR_INACTIVE_ANON` (`NR_LRU_BASE + LRU_INACTIVE_ANON`).
    InactiveAnon,
    /// `NR_ACTIVE_ANON`.
    ActiveAnon,
    /// `NR_INACTIVE_FILE`.
    InactiveFile,
    /// `NR_ACTIVE_FILE`.
    ActiveFile,
    /// `NR_UNEVICTABLE`.
    Unevictable,
    /// kmem's own: slots of all swap areas (`total_swap_pages`, meminfo `SwapTotal`).
    SwapTotal,
    /// kmem's own: free slots (`nr_swap_pages`, meminfo `SwapFree`).
    SwapFree,
}

/// Event counters of /proc/vmstat (`enum vm_event_item`, include/linux/vm_event_item.h),
/// counted by the subsystems that see the events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmEvent {
    /// `PGFAULT`: every call of `handle_mm_fault`.
    PgFault,
    /// `PGMAJFAULT`: faults that had to read from swap.
    PgMajFault,
    /// `PSWPIN`: pages read from swap.
    PswpIn,
    /// `PSWPOUT`: pages written to swap.
    PswpOut,
    /// `PGSCAN_KSWAPD`.
    PgScanKswapd,
    /// `PGSCAN_DIRECT`.
    PgScanDirect,
    /// `PGSTEAL_KSWAPD`.
    PgStealKswapd,
    /// `PGSTEAL_DIRECT`.
    PgStealDirect,
    /// `PGACTIVATE`.
    PgActivate,
    /// `PGDEACTIVATE`.
    PgDeactivate,
    /// `PGREFILL`.
    PgRefill,
    /// `OOM_KILL`.
    OomKill,
    /// `COW_KSM`-free COW count: pages copied by `wp_page_copy` (kmem's own, not in Linux).
    CowCopy,
    /// `THP`-free reuse count: write faults that reused the page (kmem's own).
    CowReuse,
    /// `PGLAZYFREE`: pages `MADV_FREE` marked lazily freeable (`folio_mark_lazyfree`).
    PgLazyFree,
    /// `PGLAZYFREED`: lazily freeable pages reclaim dropped without writing them out.
    PgLazyFreed,
    /// `PGMIGRATE_SUCCESS`: pages migrated.
    PgMigrateSuccess,
    /// `PGMIGRATE_FAIL`: pages `migrate_pages` gave up on.
    PgMigrateFail,
}

/// Number of [`VmEvent`]s.
pub const NR_VM_EVENTS: usize = VmEvent::PgMigrateFail as usize + 1;

/// Counters for [`VmEvent`].
pub struct VmEvents {
    /// One counter per event.
    pub counters: [core::sync::atomic::AtomicU64; NR_VM_EVENTS],
}

impl Default for VmEvents {
    fn default() -> Self {
        Self {
            counters: [const { core::sync::atomic::AtomicU64::new(0) }; NR_VM_EVENTS],
        }
    }
}

/// Number of [`NodeStat`] items.
const NR_NODE_STATS: usize = 15;

/// Counters for [`NodeStat`], updated by the subsystems that own them: the machine's totals
/// (`global_node_page_state`) and each node's share (`node_page_state`). Nodes 1.. count
/// their pages in `remote`; node 0's share is the total less theirs, so a one-node machine
/// updates one counter per event, as before.
#[derive(Default)]
pub struct NodeStats {
    /// One counter per [`NodeStat`]: the machine's total.
    pub counters: [AtomicIsize; NR_NODE_STATS],
    /// Nodes `1..MAX_NUMA_NODES`' shares.
    remote: [[AtomicIsize; NR_NODE_STATS]; crate::numa::MAX_NUMA_NODES - 1],
}

impl NodeStats {
    /// Adds `delta` pages to counter `which` without a node (kmem's machine-wide items:
    /// `SwapTotal`, `SwapFree`).
    #[inline]
    pub fn add(&self, which: NodeStat, delta: isize) {
        self.counters[which as usize].fetch_add(delta, Ordering::Relaxed);
    }
    /// `mod_node_page_state(page_pgdat(page), …)`: adds `delta` pages to counter `which` of
    /// the node `page` lives on, and to the total.
    #[inline]
    pub fn add_page(&self, page: PagePtr, which: NodeStat, delta: isize) {
        self.add_node(page.nid(), which, delta);
    }
    /// Adds `delta` pages to counter `which` of node `nid` and to the total.
    #[inline]
    pub fn add_node(&self, nid: usize, which: NodeStat, delta: isize) {
        self.counters[which as usize].fetch_add(delta, Ordering::Relaxed);
        if let Some(r) = nid.checked_sub(1).and_then(|i| self.remote.get(i)) {
            r[which as usize].fetch_add(delta, Ordering::Relaxed);
        }
    }
    /// `node_page_state(NODE_DATA(nid), which)` in pages (0 for a node kmem cannot have).
    pub fn node(&self, nid: usize, which: NodeStat) -> usize {
        let w = which as usize;
        let v = match nid {
            0 => {
                self.counters[w].load(Ordering::Relaxed)
                    - self
                        .remote
                        .iter()
                        .map(|r| r[w].load(Ordering::Relaxed))
                        .sum::<isize>()
            }
            n => self
                .remote
                .get(n - 1)
                .map_or(0, |r| r[w].load(Ordering::Relaxed)),
        };
        v.max(0) as usize
    }
}

impl<P: Platform> MemoryModel<P> {
    /// Adds `delta` pages to a machine-wide counter (no node: `SwapTotal`, `SwapFree`).
    #[inline]
    pub fn mod_node_stat(&self, which: NodeStat, delta: isize) {
        self.node_stats.add(which, delta);
    }
    /// `mod_node_page_state(page_pgdat(page), which, delta)`: the counter of `page`'s node.
    #[inline]
    pub fn mod_page_node_stat(&self, page: PagePtr, which: NodeStat, delta: isize) {
        self.node_stats.add_page(page, which, delta);
    }
    /// `node_page_state(NODE_DATA(nid), which)` in pages.
    pub fn node_page_state(&self, nid: usize, which: NodeStat) -> usize {
        self.node_stats.node(nid, which)
    }
    /// `count_vm_events`.
    #[inline]
    pub fn count_vm_events(&self, which: VmEvent, n: u64) {
        self.vm_events.counters[which as usize].fetch_add(n, Ordering::Relaxed);
    }
    /// An event counter.
    pub fn vm_event(&self, which: VmEvent) -> u64 {
        self.vm_events.counters[which as usize].load(Ordering::Relaxed)
    }
    /// A node counter in pages.
    pub fn node_stat_hook(&self, which: NodeStat) -> usize {
        self.node_stats.counters[which as usize]
            .load(Ordering::Relaxed)
            .max(0) as usize
    }
}

/// Physical memory actually present (`physpages`) in KiB, etc.
pub(crate) const fn pages_to_kb(pages: usize) -> usize {
    pages << (PAGE_SHIFT - 10)
}

/// Orders used in tests and reports.
pub(crate) const ORDERS: usize = NR_PAGE_ORDERS;

/// `pfn_valid` at boot: with SPARSEMEM (x86_64) a PFN is valid when its memory section
/// holds memblock memory (`memblocks_present` marks those sections present, and each gets a
/// whole section of memmap, holes included); with FLATMEM (i386) when it is below `max_pfn`
/// (`max_mapnr`).
pub(crate) fn pfn_valid_in(arch: Arch, mb: &Memblock, max_pfn: Pfn, pfn: Pfn) -> bool {
    let Some(bits) = arch.section_size_bits() else {
        return pfn < max_pfn;
    };
    let shift = bits - PAGE_SHIFT;
    let (s, e) = (
        (pfn.as_u64() >> shift) << shift,
        ((pfn.as_u64() >> shift) + 1) << shift,
    );
    mb.memory.regions().iter().any(|r| {
        let (rs, re) = (r.base.pfn().as_u64(), PhysAddr::new(r.end()).pfn().as_u64());
        rs < e && re > s
    })
}
