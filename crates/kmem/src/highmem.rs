//! Temporary kernel mappings of HighMem pages (mm/highmem.c, include/linux/highmem-internal.h).
//!
//! On i386 only the first 896 MiB of RAM are in the direct map; a HighMem page has no
//! permanent kernel address and must be mapped before use:
//!
//! - **kmap / kunmap**: the pkmap area, `LAST_PKMAP` (1024) page slots shared by all CPUs.
//!   `pkmap_count[nr]` is 0 for a free slot whose TLB entries are gone, 1 for a slot still
//!   mapped but unused (lazily unmapped), and `1 + users` otherwise. A page already mapped is
//!   found again (Linux's `page_address_htable`) and its count raised. A new mapping takes
//!   the next slot with count 0 after `last_pkmap_nr`; each time the scan wraps, every slot
//!   with count 1 is unmapped and one TLB flush covers the area (`flush_all_zero_pkmaps`).
//!   Linux sleeps when all slots are busy; kmem reports and returns `None`.
//! - **kmap_local_page / kunmap_local**: per-CPU slots in the fixmap, `KM_MAX_IDX` (16) per
//!   CPU used as a stack: mappings nest strictly, and unmapping anything but the most recent
//!   is reported (and refused). The thread keeps its CPU from map to unmap (migration
//!   disabled, through [`Platform::cpu_get`]); each unmap flushes its one TLB entry. CPUs
//!   without fixmap slots (id ≥ [`FIX_KMAP_CPUS`]) fall back to pkmap slots, keeping the
//!   stack discipline.
//! - **kmap_atomic / kunmap_atomic**: kmap_local with preemption disabled.
//!
//! Lowmem pages pass through `page_address` in all three, without using a slot.
//!
//! # Locking
//! `kmap_lock` ([`KmapState`]'s pkmap mutex) protects the pkmap counts and slots; it is taken
//! before the page-table lock, and inside kmap_local's CPU section (the fallback on CPUs
//! without fixmap slots). The per-CPU stacks are only touched by the CPU that owns them,
//! between `cpu_get` and `cpu_put`. The pkmap area's page table is made at boot
//! (`permanent_kmaps_init`), so nothing allocates under `kmap_lock` (docs/LOCKING.md, V5).

use core::sync::atomic::{AtomicPtr, Ordering};

use lock_api::RawMutex;

use crate::locking::{Lock as Mutex, CPU_SECTION, KMAP_LOCK};

use crate::addr::{Order, VirtAddr, PAGE_SIZE};
use crate::arch::Arch;
use crate::gfp::GfpFlags;
use crate::layout::{FIX_KMAP_CPUS, KM_MAX_IDX, LAST_PKMAP};
use crate::mm::mm_types::PagePtr;
use crate::pgtable::PteFlags;
use crate::platform::Platform;
use crate::vmalloc::VmLayer;

struct Pkmap {
    /// `pkmap_count`.
    count: [u16; LAST_PKMAP],
    /// PFN + 1 of the page in each slot; 0 for none.
    pfn: [u32; LAST_PKMAP],
    /// `last_pkmap_nr`.
    last: usize,
    /// `flush_all_zero_pkmaps` runs.
    flushes: usize,
}

/// One CPU's kmap_local stack (`current->kmap_ctrl`).
#[derive(Clone, Copy)]
struct KmapStack {
    idx: usize,
    /// Per level: PFN + 1 when the mapping is a pkmap fallback, else 0.
    fallback: [u32; KM_MAX_IDX],
}

/// The machine's kmap state. See the module documentation.
pub struct KmapState<L: RawMutex> {
    pkmap: Mutex<L, Pkmap>,
    stacks: AtomicPtr<KmapStack>,
    stacks_order: core::sync::atomic::AtomicU32,
}

impl<L: RawMutex> KmapState<L> {
    /// Empty state.
    pub fn new() -> Self {
        Self {
            pkmap: Mutex::new(
                &KMAP_LOCK,
                Pkmap {
                    count: [0; LAST_PKMAP],
                    pfn: [0; LAST_PKMAP],
                    last: 0,
                    flushes: 0,
                },
            ),
            stacks: AtomicPtr::new(core::ptr::null_mut()),
            stacks_order: core::sync::atomic::AtomicU32::new(0),
        }
    }
}

impl<L: RawMutex> Default for KmapState<L> {
    fn default() -> Self {
        Self::new()
    }
}

/// Counters of the pkmap area.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PkmapStats {
    /// Slots mapped and in use (count ≥ 2).
    pub in_use: usize,
    /// Slots mapped but unused, awaiting the next flush (count 1).
    pub lazy: usize,
    /// `flush_all_zero_pkmaps` runs.
    pub flushes: usize,
}

/// The highmem layer of a machine: the vmalloc layer plus the pkmap area and the per-CPU
/// kmap_local stacks. Dereferences to the [`VmLayer`] below it; the top layer a
/// [`crate::Machine`] stands on.
pub struct KmapLayer<P: Platform> {
    pub(crate) vm: VmLayer<P>,
    pub(crate) kmap: KmapState<P::RawLock>,
}

impl<P: Platform> core::ops::Deref for KmapLayer<P> {
    type Target = VmLayer<P>;
    #[inline]
    fn deref(&self) -> &VmLayer<P> {
        &self.vm
    }
}

impl<P: Platform> KmapLayer<P> {
    fn kmap_state(&self) -> &KmapState<P::RawLock> {
        &self.kmap
    }

    /// `get_cpu()` for kmap_local, whose CPU section spans calls (held from
    /// `kmap_local_page` to `kunmap_local`), so it is recorded in the lock validator by hand.
    #[track_caller]
    fn kmap_cpu_get(&self) -> usize {
        if let Some(ld) = self.lockdep() {
            ld.acquire(&CPU_SECTION, 0, self.cpu_section_id(), false);
        }
        self.platform().cpu_get()
    }
    /// `put_cpu()` for kmap_local (see [`Self::kmap_cpu_get`]).
    #[track_caller]
    fn kmap_cpu_put(&self, cpu: usize) {
        self.platform().cpu_put(cpu);
        if let Some(ld) = self.lockdep() {
            ld.release(&CPU_SECTION, self.cpu_section_id());
        }
    }
    /// The instance the validator knows CPU sections by (as `CpuGuard::tracked` records them).
    fn cpu_section_id(&self) -> *const () {
        (self.platform() as *const P).cast()
    }

    /// Attaches `kmap_lock` to the machine's lock validator, if it has one.
    ///
    /// # Safety
    /// Once, at boot, after `MemoryModel::lockdep_init` and before the lock is taken.
    pub(crate) unsafe fn lockdep_attach(&self) {
        let Some(ld) = self.lockdep() else { return };
        // SAFETY: the validator lives as long as the platform, so as this state.
        unsafe { self.kmap.pkmap.attach(ld) };
    }

    /// `kmap_init`: the per-CPU kmap_local stacks (i386 only). Called by `Machine::boot` right after `vmalloc_init`.
    pub(crate) fn kmap_init(&self) {
        if self.arch() != Arch::I386 {
            return;
        }
        let bytes = self.possible_cpus * core::mem::size_of::<KmapStack>();
        let Some(order) = Order::for_size(bytes) else {
            return;
        };
        if let Some(p) = self.__get_free_pages(GfpFlags::GFP_KERNEL | GfpFlags::__GFP_ZERO, order) {
            // Linux's kmap_ctrl lives in task_struct; kmem keeps one stack per CPU, a
            // per-CPU area like any other.
            self.percpu_charge(order.pages() as isize);
            self.kmap_state()
                .stacks_order
                .store(order.as_u32(), Ordering::Relaxed);
            self.kmap_state()
                .stacks
                .store(p.as_ptr(), Ordering::Release);
        }
        self.permanent_kmaps_init();
    }

    /// `permanent_kmaps_init` (`page_table_range_init` over the pkmap area): the page table
    /// of the pkmap area exists from boot, so `kmap_high`, which maps under `kmap_lock`,
    /// never allocates a table page (that would enter a CPU section under `kmap_lock`, while
    /// kmap_local takes `kmap_lock` inside one: docs/LOCKING.md). The table is made by
    /// mapping, then unmapping, a page at the area's first and last slots; unmapping keeps
    /// the tables.
    fn permanent_kmaps_init(&self) {
        let Some(l) = self.kernel_layout() else {
            return;
        };
        let Some(page) = self.alloc_page(GfpFlags::GFP_KERNEL) else {
            return;
        };
        for nr in [0, LAST_PKMAP - 1] {
            let Some(va) = l.pkmap_addr(nr) else { continue };
            if self.kernel_map_pages(va, &[page], PteFlags::PAGE_KERNEL) {
                self.kernel_unmap_range(va, PAGE_SIZE, true);
            }
        }
        self.__free_page(page);
    }

    fn pkmap_real(&self, nr: usize) -> Option<VirtAddr> {
        let l = self.kernel_layout()?;
        Some(VirtAddr::new(self.kernel_real(l.pkmap_addr(nr)?)))
    }

    /// `flush_all_zero_pkmaps`: unmaps every slot with count 1; one flush for the area.
    fn flush_all_zero_pkmaps(&self, k: &mut Pkmap) {
        let Some(l) = self.kernel_layout() else {
            return;
        };
        let Some(base) = l.pkmap_base else { return };
        let mut need_flush = false;
        for nr in 0..LAST_PKMAP {
            if k.count[nr] != 1 {
                continue;
            }
            k.count[nr] = 0;
            k.pfn[nr] = 0;
            self.kernel_unmap_range(base + ((nr * PAGE_SIZE) as u64), PAGE_SIZE, false);
            need_flush = true;
        }
        if need_flush {
            k.flushes += 1;
            self.flush_tlb_kernel_range(base, base + ((LAST_PKMAP * PAGE_SIZE) as u64));
        }
    }

    /// `kmap_high`: maps a HighMem page in the pkmap area (or finds its mapping).
    fn kmap_high(&self, page: PagePtr) -> Option<VirtAddr> {
        let pfn = self.page_to_pfn(page).as_u64() as u32 + 1;
        // Lock order: kmap_lock (rank 4), page-table lock under it; docs/LOCKING.md.
        let mut k = self.kmap_state().pkmap.lock();
        if let Some(nr) = k.pfn.iter().position(|&p| p == pfn) {
            k.count[nr] += 1;
            return self.pkmap_real(nr);
        }
        // map_new_virtual
        let mut scanned = 0;
        let nr = loop {
            k.last = (k.last + 1) & (LAST_PKMAP - 1);
            if k.last == 0 {
                self.flush_all_zero_pkmaps(&mut k);
            }
            if k.count[k.last] == 0 {
                break k.last;
            }
            scanned += 1;
            if scanned > LAST_PKMAP {
                drop(k);
                self.warn(format_args!(
                    "kmap_high: all {LAST_PKMAP} pkmap slots busy (Linux would sleep)"
                ));
                return None;
            }
        };
        let l = self.kernel_layout()?;
        if !self.kernel_map_pages(l.pkmap_addr(nr)?, &[page], PteFlags::PAGE_KERNEL) {
            return None;
        }
        k.count[nr] = 2;
        k.pfn[nr] = pfn;
        self.pkmap_real(nr)
    }

    /// `kmap`: a kernel address for `page`, valid until [`Machine::kunmap`]. Lowmem pages
    /// return their direct-map address; HighMem pages are mapped in the pkmap area.
    ///
    /// Returns `None` if all pkmap slots are in use (Linux would sleep).
    pub fn kmap(&self, page: PagePtr) -> Option<VirtAddr> {
        if !self.check_page_ptr(page, "kmap") {
            return None;
        }
        match self.page_address(page) {
            Some(a) => Some(a),
            None => self.kmap_high(page),
        }
    }

    /// `kunmap`: drops a [`Machine::kmap`] mapping. Unmapping a HighMem page that is not
    /// kmapped is reported (`BUG()` in Linux) and ignored.
    #[track_caller]
    pub fn kunmap(&self, page: PagePtr) {
        if !self.check_page_ptr(page, "kunmap") {
            return;
        }
        if self.page_address(page).is_some() {
            return;
        }
        let pfn = self.page_to_pfn(page).as_u64() as u32 + 1;
        // Lock order: kmap_lock (rank 4); docs/LOCKING.md.
        let mut k = self.kmap_state().pkmap.lock();
        match k.pfn.iter().position(|&p| p == pfn) {
            Some(nr) if k.count[nr] >= 2 => k.count[nr] -= 1,
            _ => {
                drop(k);
                self.warn(format_args!(
                    "kunmap_high: pfn {:#x} is not kmapped",
                    pfn - 1
                ));
            }
        }
    }

    /// The pkmap area's counters.
    pub fn pkmap_stats(&self) -> PkmapStats {
        // Lock order: kmap_lock (rank 4); docs/LOCKING.md.
        let k = self.kmap_state().pkmap.lock();
        PkmapStats {
            in_use: k.count.iter().filter(|&&c| c >= 2).count(),
            lazy: k.count.iter().filter(|&&c| c == 1).count(),
            flushes: k.flushes,
        }
    }

    /// The pkmap reference count of a slot (`pkmap_count[nr]`), for tests.
    pub fn pkmap_count(&self, nr: usize) -> u16 {
        // Lock order: kmap_lock (rank 4); docs/LOCKING.md.
        self.kmap_state().pkmap.lock().count[nr % LAST_PKMAP]
    }

    fn stack_of(&self, cpu: usize) -> Option<*mut KmapStack> {
        let base = self.kmap_state().stacks.load(Ordering::Acquire);
        if base.is_null() || cpu >= self.possible_cpus {
            return None;
        }
        // SAFETY: the array has `possible_cpus` entries.
        Some(unsafe { base.add(cpu) })
    }

    /// `kmap_local_page`: a CPU-local mapping of `page`, to be released with
    /// [`Machine::kunmap_local`] in reverse order of mapping, on the same thread. Lowmem
    /// pages return their direct-map address.
    ///
    /// Returns `None` when the CPU's 16 slots are all in use (`BUG_ON` in Linux), with a
    /// report.
    #[track_caller]
    pub fn kmap_local_page(&self, page: PagePtr) -> Option<VirtAddr> {
        if !self.check_page_ptr(page, "kmap_local_page") {
            return None;
        }
        if let Some(a) = self.page_address(page) {
            return Some(a);
        }
        let l = self.kernel_layout()?;
        // Lock order: cpu_section (rank 3), held until kunmap_local; docs/LOCKING.md.
        let cpu = self.kmap_cpu_get();
        let Some(st) = self.stack_of(cpu) else {
            self.kmap_cpu_put(cpu);
            return None;
        };
        // SAFETY: this CPU's stack; we hold the CPU (cpu_get) so nobody else touches it.
        let s = unsafe { &mut *st };
        if s.idx >= KM_MAX_IDX {
            self.kmap_cpu_put(cpu);
            self.warn(format_args!(
                "kmap_local: more than KM_MAX_IDX ({KM_MAX_IDX}) nested mappings on CPU {cpu}"
            ));
            return None;
        }
        let idx = s.idx;
        if cpu >= FIX_KMAP_CPUS {
            let Some(a) = self.kmap_high(page) else {
                self.kmap_cpu_put(cpu);
                return None;
            };
            s.fallback[idx] = self.page_to_pfn(page).as_u64() as u32 + 1;
            s.idx += 1;
            return Some(a);
        }
        let slot = l.kmap_local_slot(idx + KM_MAX_IDX * cpu);
        if !self.kernel_map_pages(slot, &[page], PteFlags::PAGE_KERNEL) {
            self.kmap_cpu_put(cpu);
            return None;
        }
        s.fallback[idx] = 0;
        s.idx += 1;
        Some(VirtAddr::new(self.kernel_real(slot)))
    }

    /// `kunmap_local`: releases the most recent [`Machine::kmap_local_page`] mapping of this
    /// CPU. Any address in the page may be passed. A direct-map address is a no-op; an
    /// address that is not the most recent mapping is reported and nothing is unmapped.
    #[track_caller]
    pub fn kunmap_local(&self, addr: VirtAddr) {
        if self.virt_to_phys(addr).is_some() {
            return;
        }
        let Some(l) = self.kernel_layout() else {
            return;
        };
        // Lock order: cpu_section (rank 3), nested in kmap_local_page's; docs/LOCKING.md.
        let cpu = self.kmap_cpu_get();
        let st = self.stack_of(cpu);
        let top = st.and_then(|st| {
            // SAFETY: this CPU's stack, held through cpu_get.
            let s = unsafe { &*st };
            s.idx.checked_sub(1).map(|i| (i, s.fallback[i]))
        });
        let Some((idx, fallback)) = top else {
            self.kmap_cpu_put(cpu);
            self.warn(format_args!(
                "kunmap_local: {:#x} is not mapped on CPU {cpu}",
                self.kva_to_model(addr)
            ));
            return;
        };
        let page_model = self.kva_to_model(addr) & !(PAGE_SIZE as u64 - 1);
        let expected = if fallback != 0 {
            // Lock order: kmap_lock (rank 4), under cpu_section; docs/LOCKING.md.
            let k = self.kmap_state().pkmap.lock();
            k.pfn
                .iter()
                .position(|&p| p == fallback)
                .and_then(|nr| l.pkmap_addr(nr))
        } else {
            Some(l.kmap_local_slot(idx + KM_MAX_IDX * cpu))
        };
        if expected != Some(page_model) {
            self.kmap_cpu_put(cpu);
            self.warn(format_args!(
                "kunmap_local: {:#x} is not the last mapping on CPU {cpu} ({:#x}): mappings must nest",
                page_model,
                expected.unwrap_or(0)
            ));
            return;
        }
        if fallback != 0 {
            if let Some(p) = self.pfn_to_page(crate::addr::Pfn::new(fallback as u64 - 1)) {
                self.kunmap(p);
            }
        } else {
            // pte_clear + flush_tlb_one_kernel.
            self.kernel_unmap_range(page_model, PAGE_SIZE, true);
        }
        if let Some(st) = st {
            // SAFETY: `st` is this CPU's kmap stack, which we own until kmap_cpu_put below (the CPU
            // was taken by kmap_cpu_get above), and `idx > 0` was checked when reading the top.
            unsafe { (*st).idx -= 1 };
        }
        // Once for this call, once for the kmap_local_page that took the CPU.
        self.kmap_cpu_put(cpu);
        self.kmap_cpu_put(cpu);
    }

    /// `kmap_atomic`: [`Machine::kmap_local_page`] with preemption disabled until
    /// [`Machine::kunmap_atomic`] (lowmem pages included).
    #[track_caller]
    pub fn kmap_atomic(&self, page: PagePtr) -> Option<VirtAddr> {
        if !self.check_page_ptr(page, "kmap_atomic") {
            return None;
        }
        // Lock order: cpu_section (rank 3), held until kunmap_atomic; docs/LOCKING.md.
        let cpu = self.kmap_cpu_get();
        let r = self.kmap_local_page(page);
        if r.is_none() {
            self.kmap_cpu_put(cpu);
        }
        r
    }

    /// `kunmap_atomic`.
    #[track_caller]
    pub fn kunmap_atomic(&self, addr: VirtAddr) {
        self.kunmap_local(addr);
        // Lock order: cpu_section (rank 3), nested; docs/LOCKING.md.
        let cpu = self.kmap_cpu_get();
        self.kmap_cpu_put(cpu);
        self.kmap_cpu_put(cpu);
    }

    /// Mapping depth of the current CPU's kmap_local stack.
    pub fn kmap_local_depth(&self) -> usize {
        // Lock order: cpu_section (rank 3); docs/LOCKING.md.
        let cpu = self.kmap_cpu_get();
        // SAFETY: this CPU's stack, held through cpu_get.
        let d = self.stack_of(cpu).map_or(0, |s| unsafe { (*s).idx });
        self.kmap_cpu_put(cpu);
        d
    }
}
