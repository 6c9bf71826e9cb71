//! User address spaces of this kernel: VMAs and a 4-level page table built with kmem's
//! [`kmem::pgtable::PageTable`] on pages of kmem's buddy allocator, demand faults, fork with
//! copy-on-write, teardown.
//!
//! This is the kernel's own small `mm`, enough for real ring-3 programs: anonymous private
//! mappings only; a read fault maps a fresh zeroed page (Linux maps the shared zero page —
//! kmem's process-memory core does that, this one does not); a write fault on a page shared
//! after `fork` copies it, or makes it writable again when the task is its last mapper
//! (`do_wp_page`'s reuse); the pages' mapper counts live in [`PageRefs`], shared by all tasks.
//!
//! # Layout of a user address space
//! PML4 slot 0 holds the kernel's identity map (the kernel runs identity-mapped at 1 MiB, see
//! src/boot.rs) and slots 256..512 the kernel half (direct map, vmalloc space); both are copied
//! from the kernel's PML4 before every entry to user mode (vmalloc may have added slots), and
//! cleared before the table is destroyed, so the user table never frees a kernel table. User
//! mappings live in `[USER_START, USER_END)` = PML4 slots 1..256. Kernel entries lack
//! `_PAGE_USER`, so a user access to them is a protection fault (error code bit 0 set).
//!
//! `PageTable::map` writes non-leaf entries as `_KERNPG_TABLE`; user paths also need
//! `_PAGE_USER` there (Linux's `_PAGE_TABLE`), which [`UserMm::map_user`] adds after mapping.

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use kmem::arch::Arch;
use kmem::page_alloc::PageAllocator;
use kmem::pgtable::{PageSize, PageTable, PteFlags, Translation};
use kmem::{GfpFlags, Pfn, PhysAddr, PAGE_SIZE};

use kmem::swap::SwpEntry;

use super::swap::{pte_swp_entry, swp_entry_pte, SwapArea};
use crate::boot::DIRECT_MAP_BASE;
use crate::mm::Kmem;
use crate::platform::BareMetal;

/// The lowest user address: the start of PML4 slot 1 (slot 0 is the kernel's identity map).
pub const USER_START: u64 = 1 << 39;
/// The end of user space (`TASK_SIZE_MAX` + one page, 47-bit: arch/x86/include/asm/page_64_types.h).
pub const USER_END: u64 = 1 << 47;

/// x86 page-fault error code bits (arch/x86/include/asm/trap_pf.h, `enum x86_pf_error_code`).
pub mod pf {
    /// The page was present (a protection fault).
    pub const PROT: u64 = 1 << 0;
    /// A write.
    pub const WRITE: u64 = 1 << 1;
    /// From user mode.
    pub const USER: u64 = 1 << 2;
    /// An instruction fetch.
    pub const INSTR: u64 = 1 << 4;
}

/// Protection of a VMA (`PROT_READ`, `PROT_WRITE`, `PROT_EXEC`: include/uapi/asm-generic/mman-common.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prot(pub u32);

impl Prot {
    /// `PROT_READ`.
    pub const READ: Prot = Prot(1);
    /// `PROT_WRITE`.
    pub const WRITE: Prot = Prot(2);
    /// `PROT_EXEC`.
    pub const EXEC: Prot = Prot(4);
    /// Read and write.
    pub const RW: Prot = Prot(3);
    /// Read and execute.
    pub const RX: Prot = Prot(5);

    fn has(self, p: Prot) -> bool {
        self.0 & p.0 == p.0
    }
}

/// A user mapping `[start, end)`.
#[derive(Clone, Copy, Debug)]
pub struct Vma {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Access rights.
    pub prot: Prot,
}

/// Why a fault cannot be resolved: the `si_code` of the SIGSEGV (include/uapi/asm-generic/siginfo.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segv {
    /// `SEGV_MAPERR`: no mapping at the address.
    MapErr,
    /// `SEGV_ACCERR`: the mapping does not allow the access.
    AccErr,
    /// No memory for a page or a page table (Linux: `VM_FAULT_OOM`).
    Oom,
    /// The swap area could not give the page back (`VM_FAULT_SIGBUS`).
    Bus,
}

/// What a resolved fault did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// A fresh zeroed page was mapped.
    Anon,
    /// A shared page was copied for the writer.
    CowCopy,
    /// A shared page had only this mapper left and became writable in place.
    CowReuse,
    /// The page was read back from swap.
    SwapIn,
    /// Nothing to do (another path already fixed the entry).
    Spurious,
    /// Resolved by kmem's `handle_mm_fault` (which does not say how).
    Resolved,
}

/// Counters of one address space.
#[derive(Clone, Copy, Debug, Default)]
pub struct MmStats {
    /// Faults resolved (`pgfault`).
    pub faults: u64,
    /// Fresh pages mapped on a first touch.
    pub anon: u64,
    /// Pages copied on a write after fork.
    pub cow_copies: u64,
    /// Shared pages made writable in place.
    pub cow_reuses: u64,
    /// Faults that read a page back from swap (`pgmajfault`).
    pub major: u64,
    /// Pages this mm had swapped out.
    pub swapped_out: u64,
}

/// How many address spaces map each user page (by PFN). A page is freed when its last mapper
/// unmaps it.
#[derive(Default)]
pub struct PageRefs(BTreeMap<u64, u32>);

impl PageRefs {
    fn get(&mut self, pfn: u64) {
        *self.0.entry(pfn).or_insert(0) += 1;
    }

    /// Drops one mapper; returns whether that was the last.
    fn put(&mut self, pfn: u64) -> bool {
        match self.0.get_mut(&pfn) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                self.0.remove(&pfn);
                true
            }
            None => {
                crate::println!("user mm: BUG: put of an unmapped page, pfn {pfn:#x}");
                false
            }
        }
    }

    fn count(&self, pfn: u64) -> u32 {
        self.0.get(&pfn).copied().unwrap_or(0)
    }

    /// Pages mapped by at least one address space.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// State shared by every address space: page mapper counts, the swap area, the pressure
/// threshold.
#[derive(Default)]
pub struct Shared<'k> {
    /// Mapper counts of user pages.
    pub refs: PageRefs,
    /// The swap area, after `swapon`.
    pub swap: Option<SwapArea<'k>>,
    /// Reclaim (swap out) before a user page allocation while fewer pages than this are free
    /// (kswapd's wakeup at the low watermark, done synchronously); 0 = only when allocation
    /// fails.
    pub reclaim_below: usize,
}

/// Pages one reclaim pass tries to free (`SWAP_CLUSTER_MAX`, include/linux/swap.h).
const SWAP_CLUSTER_MAX: usize = 32;

fn alloc_mem(k: &Kmem) -> &PageAllocator<BareMetal> {
    k
}

/// Whether the CPU has NX (CPUID 0x80000001 EDX bit 20; boot.rs sets EFER.NXE exactly then).
fn has_nx() -> bool {
    crate::arch::cpuid(0x8000_0001).edx & (1 << 20) != 0
}

/// A user address space.
pub struct UserMm {
    pt: Option<PageTable>,
    vmas: Vec<Vma>,
    /// Where the reclaim clock hand is (a user address).
    clock: u64,
    /// Fault counters.
    pub stats: MmStats,
}

impl UserMm {
    /// An empty address space (a new PML4 with the kernel's slots).
    pub fn new(k: &Kmem) -> Option<UserMm> {
        let pt = PageTable::new(alloc_mem(k), Arch::X86_64).ok()?;
        Some(UserMm {
            pt: Some(pt),
            vmas: Vec::new(),
            clock: 0,
            stats: MmStats::default(),
        })
    }

    fn pt(&self) -> &PageTable {
        self.pt.as_ref().expect("page table present until destroy")
    }

    fn pt_mut(&mut self) -> &mut PageTable {
        self.pt.as_mut().expect("page table present until destroy")
    }

    /// The PML4's physical address (for CR3).
    pub fn root(&self) -> PhysAddr {
        self.pt().root()
    }

    fn pml4_slot(&self, i: usize) -> *mut u64 {
        (DIRECT_MAP_BASE + self.root().as_u64() + 8 * i as u64) as *mut u64
    }

    /// Adds a VMA; `false` if it overlaps one or leaves user space.
    pub fn add_vma(&mut self, start: u64, end: u64, prot: Prot) -> bool {
        let ok = start < end
            && start.is_multiple_of(PAGE_SIZE as u64)
            && end.is_multiple_of(PAGE_SIZE as u64)
            && start >= USER_START
            && end <= USER_END
            && self.vmas.iter().all(|v| end <= v.start || start >= v.end);
        if ok {
            self.vmas.push(Vma { start, end, prot });
        }
        ok
    }

    /// The VMA containing `addr`.
    pub fn find_vma(&self, addr: u64) -> Option<Vma> {
        self.vmas
            .iter()
            .find(|v| (v.start..v.end).contains(&addr))
            .copied()
    }

    /// The translation of `va` (for tests and kernel copies).
    pub fn lookup(&self, k: &Kmem, va: u64) -> Option<Translation> {
        self.pt().lookup(alloc_mem(k), va)
    }

    /// The PTE flags of a page mapped for `prot`: young (`_PAGE_ACCESSED`, as
    /// `do_anonymous_page`'s `pte_sw_mkyoung`), so the reclaim clock passes over a page just
    /// faulted in once before it can evict it — without that, a page swapped in for one
    /// instruction could be swapped out again before the instruction ran.
    fn pte_flags(prot: Prot, writable: bool) -> PteFlags {
        let mut f = PteFlags::PRESENT | PteFlags::USER | PteFlags::ACCESSED;
        if writable {
            f = f | PteFlags::RW;
        }
        if !prot.has(Prot::EXEC) && has_nx() {
            f = f | PteFlags::NX;
        }
        f
    }

    /// Maps `va` → `pa` and gives the non-leaf entries on the path `_PAGE_USER`.
    fn map_user(&mut self, k: &Kmem, va: u64, pa: PhysAddr, f: PteFlags) -> Result<(), Segv> {
        let mem = alloc_mem(k);
        self.pt_mut()
            .map(mem, va, pa, PageSize::Small, f)
            .map_err(|_| Segv::Oom)?;
        let walk = self.pt().walk(mem, va);
        for step in walk.steps().iter().take(3) {
            if step.entry & PteFlags::USER.0 == 0 {
                let p = (DIRECT_MAP_BASE + step.table.as_u64() + 8 * step.index as u64) as *mut u64;
                // SAFETY: a present non-leaf entry of this (user-range) path, in a table page
                // of ours reached through the direct map; `&mut self` makes us its only writer.
                unsafe { p.write_volatile(step.entry | PteFlags::USER.0) };
            }
        }
        Ok(())
    }

    fn alloc_user_page(k: &Kmem) -> Option<(u64, *mut u8)> {
        let page = k.alloc_page(
            GfpFlags::GFP_HIGHUSER_MOVABLE | GfpFlags::__GFP_ZERO | GfpFlags::__GFP_NOWARN,
        )?;
        let pfn = k.page_to_pfn(page).as_u64();
        let ptr = (DIRECT_MAP_BASE + pfn * PAGE_SIZE as u64) as *mut u8;
        Some((pfn, ptr))
    }

    /// A user page, reclaiming from this address space first when memory is low and again
    /// when the allocation fails (direct reclaim: up to four turns of the clock).
    fn alloc_page_reclaim(&mut self, k: &Kmem, sh: &mut Shared<'_>) -> Option<(u64, *mut u8)> {
        if sh.swap.is_some() && k.nr_free_pages() < sh.reclaim_below {
            self.reclaim(k, sh, SWAP_CLUSTER_MAX);
        }
        for _ in 0..4 {
            if let Some(p) = Self::alloc_user_page(k) {
                return Some(p);
            }
            sh.swap.as_ref()?; // no swap: nothing to reclaim anonymous memory to
            self.reclaim(k, sh, SWAP_CLUSTER_MAX);
        }
        Self::alloc_user_page(k)
    }

    /// The raw leaf entry of `va` and where it lives, if the path to its PTE table exists.
    fn leaf(&self, k: &Kmem, va: u64) -> Option<(PhysAddr, usize, u64)> {
        let w = self.pt().walk(alloc_mem(k), va);
        let steps = w.steps();
        (steps.len() == 4).then(|| (steps[3].table, steps[3].index, steps[3].entry))
    }

    /// Writes a raw PTE (a swap entry) in place.
    fn set_leaf(&mut self, table: PhysAddr, idx: usize, v: u64) {
        let p = (DIRECT_MAP_BASE + table.as_u64() + 8 * idx as u64) as *mut u64;
        // SAFETY: `table`/`idx` come from a walk of this (user-range) table; `&mut self` makes
        // us its only writer; the table page is reached through the direct map.
        unsafe { p.write_volatile(v) };
    }

    /// Swaps out up to `want` pages of this address space that no other one maps, by a clock
    /// over its VMAs: a page with `_PAGE_ACCESSED` loses the bit and is passed over
    /// (`folio_referenced`: it was used since the hand last passed), others are written to the
    /// swap area and their PTE becomes the swap entry. One call moves the hand at most once
    /// around, so a page is never cleared and evicted by the same call — the task gets to run
    /// (and touch its pages again) between the two. Returns the pages freed; they go back to
    /// the buddy lists at once (`drain_local_pages`), so the free count sees them.
    pub fn reclaim(&mut self, k: &Kmem, sh: &mut Shared<'_>, want: usize) -> usize {
        let mut freed = 0;
        let total: usize = self
            .vmas
            .iter()
            .map(|v| ((v.end - v.start) / 4096) as usize)
            .sum();
        let mut seen = 0;
        let vmas = self.vmas.clone();
        while freed < want && seen < total {
            let va = self.clock_next(&vmas);
            seen += 1;
            let Some((table, idx, e)) = self.leaf(k, va) else {
                continue;
            };
            if e & PteFlags::PRESENT.0 == 0 {
                continue;
            }
            let pfn = (e & 0x000f_ffff_ffff_f000) / PAGE_SIZE as u64;
            if sh.refs.count(pfn) != 1 {
                continue;
            }
            if e & PteFlags::ACCESSED.0 != 0 {
                self.set_leaf(table, idx, e & !PteFlags::ACCESSED.0);
                continue;
            }
            let Some(swap) = sh.swap.as_mut() else { break };
            let src = (DIRECT_MAP_BASE + pfn * PAGE_SIZE as u64) as *const u8;
            // SAFETY: the page is mapped by this mm only, RAM in the direct map.
            let Some(off) = (unsafe { swap.write_out(src) }) else {
                break;
            };
            // The TLB is flushed by the CR3 load of the next entry to user mode.
            self.set_leaf(table, idx, swp_entry_pte(off));
            if sh.refs.put(pfn) {
                Self::free_user_page(k, pfn);
            }
            self.stats.swapped_out += 1;
            freed += 1;
        }
        if freed > 0 {
            k.drain_local_pages();
        }
        freed
    }

    /// Advances the reclaim clock by a page over `vmas`; returns the page it was on.
    fn clock_next(&mut self, vmas: &[Vma]) -> u64 {
        let cur = vmas
            .iter()
            .find(|v| (v.start..v.end).contains(&self.clock))
            .map_or(vmas[0].start, |_| self.clock);
        let v = vmas
            .iter()
            .position(|v| (v.start..v.end).contains(&cur))
            .expect("cur is in a VMA");
        let next = cur + PAGE_SIZE as u64;
        self.clock = if next < vmas[v].end {
            next
        } else {
            vmas[(v + 1) % vmas.len()].start
        };
        cur
    }

    /// `do_swap_page`: reads the page back from swap into a fresh private page.
    fn swap_in(
        &mut self,
        k: &Kmem,
        sh: &mut Shared<'_>,
        va: u64,
        vma: Vma,
        offset: SwpEntry,
    ) -> Result<FaultKind, Segv> {
        let (pfn, ptr) = self.alloc_page_reclaim(k, sh).ok_or(Segv::Oom)?;
        let swap = sh.swap.as_mut().expect("a swap entry implies a swap area");
        // SAFETY: a fresh page of ours, writable for a page through the direct map.
        if !unsafe { swap.read_in(offset, ptr) } {
            Self::free_user_page(k, pfn);
            return Err(Segv::Bus);
        }
        let f = Self::pte_flags(vma.prot, vma.prot.has(Prot::WRITE));
        // `map` accepts the non-present swap PTE as empty and replaces it.
        if let Err(e) = self.map_user(k, va, PhysAddr::new(pfn * PAGE_SIZE as u64), f) {
            Self::free_user_page(k, pfn);
            return Err(e);
        }
        swap.free(offset);
        sh.refs.get(pfn);
        self.stats.major += 1;
        Ok(FaultKind::SwapIn)
    }

    fn free_user_page(k: &Kmem, pfn: u64) {
        if let Some(page) = k.pfn_to_page(Pfn::new(pfn)) {
            k.__free_page(page);
        }
    }

    /// Maps a fresh page at `va` holding `bytes` (at most a page), with `prot` (program text).
    pub fn populate(
        &mut self,
        k: &Kmem,
        sh: &mut Shared<'_>,
        va: u64,
        bytes: &[u8],
    ) -> Result<(), Segv> {
        let vma = self.find_vma(va).ok_or(Segv::MapErr)?;
        let (pfn, ptr) = Self::alloc_user_page(k).ok_or(Segv::Oom)?;
        let n = bytes.len().min(PAGE_SIZE);
        // SAFETY: a fresh page of ours, PAGE_SIZE bytes in the direct map; `n` fits.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr, n) };
        let f = Self::pte_flags(vma.prot, vma.prot.has(Prot::WRITE));
        if let Err(e) = self.map_user(k, va, PhysAddr::new(pfn * PAGE_SIZE as u64), f) {
            Self::free_user_page(k, pfn);
            return Err(e);
        }
        sh.refs.get(pfn);
        Ok(())
    }

    /// `handle_mm_fault` of this mm: resolves a fault at `addr` with x86 error code `err`.
    ///
    /// # Errors
    /// The SIGSEGV code when the access is not allowed, or [`Segv::Oom`].
    pub fn handle_fault(
        &mut self,
        k: &Kmem,
        sh: &mut Shared<'_>,
        addr: u64,
        err: u64,
    ) -> Result<FaultKind, Segv> {
        let vma = self.find_vma(addr).ok_or(Segv::MapErr)?;
        let write = err & pf::WRITE != 0;
        let fetch = err & pf::INSTR != 0;
        let allowed = if write {
            vma.prot.has(Prot::WRITE)
        } else if fetch {
            vma.prot.has(Prot::EXEC)
        } else {
            vma.prot.has(Prot::READ)
        };
        if !allowed {
            return Err(Segv::AccErr);
        }
        let va = addr & !(PAGE_SIZE as u64 - 1);
        let kind = match self.lookup(k, va) {
            None => {
                if let Some(off) = self.leaf(k, va).and_then(|(_, _, e)| pte_swp_entry(e)) {
                    let kind = self.swap_in(k, sh, va, vma, off)?;
                    self.stats.faults += 1;
                    return Ok(kind);
                }
                let (pfn, _) = self.alloc_page_reclaim(k, sh).ok_or(Segv::Oom)?;
                let f = Self::pte_flags(vma.prot, vma.prot.has(Prot::WRITE));
                if let Err(e) = self.map_user(k, va, PhysAddr::new(pfn * PAGE_SIZE as u64), f) {
                    Self::free_user_page(k, pfn);
                    return Err(e);
                }
                sh.refs.get(pfn);
                self.stats.anon += 1;
                FaultKind::Anon
            }
            Some(t) if write && !t.flags.contains(PteFlags::RW) => self.wp_page(k, sh, va, t)?,
            Some(_) => FaultKind::Spurious,
        };
        self.stats.faults += 1;
        Ok(kind)
    }

    /// `do_wp_page`: a write to a present read-only page of a writable VMA.
    fn wp_page(
        &mut self,
        k: &Kmem,
        sh: &mut Shared<'_>,
        va: u64,
        t: Translation,
    ) -> Result<FaultKind, Segv> {
        let mem = alloc_mem(k);
        let old = t.phys.as_u64() / PAGE_SIZE as u64;
        if sh.refs.count(old) == 1 {
            // The TLB is flushed by the CR3 load of the next entry to user mode.
            self.pt_mut()
                .change_protection(mem, va, va + PAGE_SIZE as u64, t.flags | PteFlags::RW)
                .map_err(|_| Segv::Oom)?
                .defer();
            self.stats.cow_reuses += 1;
            return Ok(FaultKind::CowReuse);
        }
        let (pfn, ptr) = self.alloc_page_reclaim(k, sh).ok_or(Segv::Oom)?;
        let src = (DIRECT_MAP_BASE + old * PAGE_SIZE as u64) as *const u8;
        // SAFETY: two distinct whole pages of RAM in the direct map (the old one is mapped by
        // this mm, so it is live; the new one is ours).
        unsafe { core::ptr::copy_nonoverlapping(src, ptr, PAGE_SIZE) };
        let (_, flush) = self
            .pt_mut()
            .unmap(mem, va)
            .expect("the page was just looked up");
        flush.defer(); // CR3 is reloaded on the next entry to user mode
        let f = t.flags.without(PteFlags::DIRTY) | PteFlags::RW | PteFlags::ACCESSED;
        if let Err(e) = self.map_user(k, va, PhysAddr::new(pfn * PAGE_SIZE as u64), f) {
            // Put the old page back as it was; the table path exists, so this cannot fail.
            let _ = self.map_user(k, va, t.phys, t.flags);
            Self::free_user_page(k, pfn);
            return Err(e);
        }
        sh.refs.get(pfn);
        if sh.refs.put(old) {
            Self::free_user_page(k, old);
        }
        self.stats.cow_copies += 1;
        Ok(FaultKind::CowCopy)
    }

    /// `dup_mm` + `copy_page_range`: the child's address space shares every page; writable
    /// pages become read-only in both, to be copied on the first write.
    pub fn fork(&mut self, k: &Kmem, sh: &mut Shared<'_>) -> Option<UserMm> {
        let mut child = UserMm::new(k)?;
        child.vmas = self.vmas.clone();
        let mem = alloc_mem(k);
        for vma in self.vmas.clone() {
            for va in (vma.start..vma.end).step_by(PAGE_SIZE) {
                let Some(t) = self.lookup(k, va) else {
                    if let Some(off) = self.leaf(k, va).and_then(|(_, _, e)| pte_swp_entry(e)) {
                        if !child.copy_swap_pte(k, va, off) {
                            child.destroy(k, sh);
                            return None;
                        }
                        if let Some(swap) = sh.swap.as_mut() {
                            swap.dup(off);
                        }
                    }
                    continue;
                };
                let mut f = t.flags;
                if f.contains(PteFlags::RW) {
                    f = f.without(PteFlags::RW);
                    // Flushed by the CR3 load of the next entry to user mode.
                    if let Ok(flush) =
                        self.pt_mut()
                            .change_protection(mem, va, va + PAGE_SIZE as u64, f)
                    {
                        flush.defer();
                    }
                }
                if child.map_user(k, va, t.phys, f).is_err() {
                    child.destroy(k, sh);
                    return None;
                }
                sh.refs.get(t.phys.as_u64() / PAGE_SIZE as u64);
            }
        }
        Some(child)
    }

    /// Installs swap entry `off` at `va` (fork of a swapped-out page): the path to the PTE is
    /// built by mapping page 0 there, then the PTE is overwritten. `false` without memory.
    fn copy_swap_pte(&mut self, k: &Kmem, va: u64, off: SwpEntry) -> bool {
        if self
            .map_user(k, va, PhysAddr::new(0), PteFlags::PRESENT)
            .is_err()
        {
            return false;
        }
        let (table, idx, _) = self.leaf(k, va).expect("just mapped");
        self.set_leaf(table, idx, swp_entry_pte(off));
        true
    }

    /// Swap entries in this mm's page table (`MM_SWAPENTS`).
    pub fn swap_ents(&self, k: &Kmem) -> usize {
        self.vmas
            .iter()
            .flat_map(|v| (v.start..v.end).step_by(PAGE_SIZE))
            .filter(|&va| {
                self.leaf(k, va)
                    .is_some_and(|(_, _, e)| pte_swp_entry(e).is_some())
            })
            .count()
    }

    /// Bytes of all mappings (`total_vm`).
    pub fn total_vm(&self) -> u64 {
        self.vmas.iter().map(|v| v.end - v.start).sum()
    }

    /// Pages this mm maps.
    pub fn rss(&self, k: &Kmem) -> usize {
        self.vmas
            .iter()
            .flat_map(|v| (v.start..v.end).step_by(PAGE_SIZE))
            .filter(|&va| self.lookup(k, va).is_some())
            .count()
    }

    /// `exit_mmap`: unmaps everything (freeing pages whose last mapper this was) and frees the
    /// page tables.
    pub fn destroy(mut self, k: &Kmem, sh: &mut Shared<'_>) {
        let mem = alloc_mem(k);
        for vma in core::mem::take(&mut self.vmas) {
            for va in (vma.start..vma.end).step_by(PAGE_SIZE) {
                if let Ok((t, flush)) = self.pt_mut().unmap(mem, va) {
                    flush.defer(); // this table is never loaded again
                    let pfn = t.phys.as_u64() / PAGE_SIZE as u64;
                    if sh.refs.put(pfn) {
                        Self::free_user_page(k, pfn);
                    }
                } else if let Some((table, idx, e)) = self.leaf(k, va) {
                    if let Some(off) = pte_swp_entry(e) {
                        if let Some(swap) = sh.swap.as_mut() {
                            swap.free(off);
                        }
                        self.set_leaf(table, idx, 0);
                    }
                }
            }
        }
        for i in core::iter::once(0).chain(256..512) {
            // SAFETY: our PML4's kernel slots (see sync_kernel_slots); cleared so that
            // `PageTable::destroy` frees only the user tables.
            unsafe { self.pml4_slot(i).write_volatile(0) };
        }
        if let Some(pt) = self.pt.take() {
            pt.destroy(mem);
        }
    }
}

impl Drop for UserMm {
    fn drop(&mut self) {
        if self.pt.is_some() {
            crate::println!("user mm: BUG: address space dropped without destroy (leaked)");
        }
    }
}
