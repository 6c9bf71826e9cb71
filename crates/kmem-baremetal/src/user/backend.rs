//! Where the tasks' address spaces come from: the [`Backend`] of a [`super::UserKernel`].
//!
//! - [`CoreBackend`]: kmem's process-memory core. A ring-3 task is a kmem task
//!   ([`kmem::task::TaskLayer::spawn`], its pid, `/proc/PID/maps` and all): its mappings are
//!   kmem VMAs (`mmap`/`mprotect`), its page table is the task's `mm->pgd`, its faults go to
//!   `handle_mm_fault` (zero page on read, fresh page on write, COW with reuse), `fork` is
//!   kmem's `fork` (`dup_mmap`), exit and kill are kmem's `exit` (`exit_mmap`).
//!   Under memory pressure kmem's reclaim swaps the tasks' pages out to the swap area of
//!   [`super::swap`], and `do_swap_page` reads them back.
//!
//! The page tables are in the hardware's format, built from kmem's buddy allocator, and the
//! CPU walks them from CR3 while the task runs. [`Backend`] is the seam between the user
//! kernel (tasks, traps, system calls) and the address spaces it runs them on.

extern crate alloc;

use kmem::memory::{FaultFlags, VmFault};
use kmem::mm::VmEvent;
use kmem::page_alloc::PageAllocator;
use kmem::pgtable::PteFlags;
use kmem::vma::MmCounter;
use kmem::vma::{
    MAP_ANONYMOUS, MAP_FIXED_NOREPLACE, MAP_PRIVATE, PROT_EXEC, PROT_READ, PROT_WRITE,
};
use kmem::PAGE_SIZE;

use super::{pf, FaultKind, Prot, Segv, USER_START};
use crate::mm::Kmem;
use crate::platform::BareMetal;

/// The operations on the address space of one task.
pub trait Backend<'k> {
    /// A task's address space (or the handle naming it).
    type Mm;

    /// A new address space, and the pid its task gets.
    ///
    /// # Errors
    /// A message when memory runs out.
    fn create(&mut self, comm: &str) -> Result<(Self::Mm, u32), &'static str>;
    /// Maps `[start, start + len)` anonymous, private, with `prot`, at exactly `start`.
    fn map(&mut self, mm: &mut Self::Mm, start: u64, len: u64, prot: Prot) -> bool;
    /// Maps the program text `code` read + execute at `va`.
    fn load(&mut self, mm: &mut Self::Mm, va: u64, code: &[u8]) -> bool;
    /// The physical address of the top-level table (CR3).
    fn root(&self, mm: &Self::Mm) -> u64;
    /// Resolves a fault at `addr` with x86 error code `err`.
    ///
    /// # Errors
    /// Why the task must die.
    fn fault(&mut self, mm: &mut Self::Mm, addr: u64, err: u64) -> Result<FaultKind, Segv>;
    /// `fork`: the child's address space and pid.
    fn fork(&mut self, mm: &mut Self::Mm, comm: &str) -> Option<(Self::Mm, u32)>;
    /// Ends the address space (`exit_mmap`, the task gone).
    fn destroy(&mut self, mm: Self::Mm);
    /// The present translation of `addr` for an access (`write`), without faulting: the
    /// physical address and whether the PTE allows it.
    fn translate(&self, mm: &Self::Mm, addr: u64, write: bool) -> Option<u64>;
    /// `copy_from_user`: fills `buf` from user address `addr`, faulting pages in; returns
    /// the bytes not copied (a system call's `-EFAULT` when not 0; the task is not killed).
    fn copy_from_user(&mut self, mm: &mut Self::Mm, addr: u64, buf: &mut [u8]) -> usize;
    /// `copy_to_user`: writes `data` at user address `addr` (demand and COW faults as a
    /// kernel-mode write); returns the bytes not copied.
    fn copy_to_user(&mut self, mm: &mut Self::Mm, addr: u64, data: &[u8]) -> usize;
    /// Pages mapped (RSS).
    fn rss(&self, mm: &Self::Mm) -> u64;
    /// The figures of the OOM report, and the `oom_kill` event counted.
    fn oom_info(&self, mm: &Self::Mm) -> OomInfo;
}

/// The figures of Linux's OOM-kill report (mm/oom_kill.c `__oom_kill_process`), in kB.
#[derive(Clone, Copy, Debug, Default)]
pub struct OomInfo {
    /// `total-vm`.
    pub total_vm_kb: u64,
    /// `anon-rss`.
    pub anon_rss_kb: u64,
    /// `file-rss`.
    pub file_rss_kb: u64,
    /// `shmem-rss`.
    pub shmem_rss_kb: u64,
    /// `pgtables`.
    pub pgtables_kb: u64,
}

fn pt_mem(k: &Kmem) -> &PageAllocator<BareMetal> {
    k
}

/// The physical address of byte `va` under PTE `pte`, if the PTE allows a user access (and
/// a write when `write`).
fn pte_translate(pte: u64, va: u64, write: bool) -> Option<u64> {
    let need = PteFlags::PRESENT.0 | PteFlags::USER.0 | if write { PteFlags::RW.0 } else { 0 };
    (pte & need == need).then(|| (pte & 0x000f_ffff_ffff_f000) + (va & (PAGE_SIZE as u64 - 1)))
}

// ---------------------------------------------------------------------------------------------
// kmem's process-memory core
// ---------------------------------------------------------------------------------------------

/// Address spaces of kmem tasks.
pub struct CoreBackend<'k> {
    k: &'k Kmem,
}

impl<'k> CoreBackend<'k> {
    /// On the booted machine.
    pub fn new(k: &'k Kmem) -> Self {
        CoreBackend { k }
    }
}

/// A kmem task (by pid).
pub struct CoreMm {
    /// Its kmem pid.
    pub pid: i32,
}

fn prot_bits(p: Prot) -> u32 {
    let mut b = 0;
    if p.0 & Prot::READ.0 != 0 {
        b |= PROT_READ;
    }
    if p.0 & Prot::WRITE.0 != 0 {
        b |= PROT_WRITE;
    }
    if p.0 & Prot::EXEC.0 != 0 {
        b |= PROT_EXEC;
    }
    b
}

impl<'k> Backend<'k> for CoreBackend<'k> {
    type Mm = CoreMm;

    fn create(&mut self, comm: &str) -> Result<(CoreMm, u32), &'static str> {
        let pid = self.k.spawn(comm).map_err(|_| "kmem spawn failed")?;
        Ok((CoreMm { pid }, pid as u32))
    }

    fn map(&mut self, mm: &mut CoreMm, start: u64, len: u64, prot: Prot) -> bool {
        start >= USER_START
            && self
                .k
                .mmap(
                    mm.pid,
                    start,
                    len,
                    prot_bits(prot),
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                )
                .is_ok_and(|a| a == start)
    }

    fn load(&mut self, mm: &mut CoreMm, va: u64, code: &[u8]) -> bool {
        // As a loader would: a writable private mapping, the bytes copied in (write faults),
        // then read + execute only.
        let len = (code.len() as u64)
            .next_multiple_of(PAGE_SIZE as u64)
            .max(PAGE_SIZE as u64);
        self.map(mm, va, len, Prot::RW)
            && self.copy_to_user(mm, va, code) == 0
            && self
                .k
                .mprotect(mm.pid, va, len, PROT_READ | PROT_EXEC)
                .is_ok()
    }

    fn root(&self, mm: &CoreMm) -> u64 {
        self.k
            .with_task(mm.pid, |t| t.mm.pgd.as_ref().map(|p| p.root().as_u64()))
            .ok()
            .flatten()
            .expect("a live kmem task has a page table")
    }

    fn fault(&mut self, mm: &mut CoreMm, addr: u64, err: u64) -> Result<FaultKind, Segv> {
        let f = FaultFlags {
            write: err & pf::WRITE != 0,
            exec: err & pf::INSTR != 0,
            user: true,
        };
        let k = self.k;
        let before =
            [VmEvent::PgMajFault, VmEvent::CowCopy, VmEvent::CowReuse].map(|e| k.vm_event(e));
        let r = k
            .with_task(mm.pid, |t| t.layer.handle_mm_fault(t.mm, addr, f))
            .map_err(|_| Segv::MapErr)?;
        // What the fault did, from the events handle_mm_fault counted.
        let grew = |i: usize, e| k.vm_event(e) > before[i];
        match r {
            VmFault::Done if grew(0, VmEvent::PgMajFault) => Ok(FaultKind::SwapIn),
            VmFault::Done if grew(1, VmEvent::CowCopy) => Ok(FaultKind::CowCopy),
            VmFault::Done if grew(2, VmEvent::CowReuse) => Ok(FaultKind::CowReuse),
            VmFault::Done => Ok(FaultKind::Resolved),
            VmFault::SegvMapErr => Err(Segv::MapErr),
            VmFault::SegvAccErr => Err(Segv::AccErr),
            VmFault::Oom => Err(Segv::Oom),
            VmFault::Sigbus => Err(Segv::Bus),
        }
    }

    fn fork(&mut self, mm: &mut CoreMm, _comm: &str) -> Option<(CoreMm, u32)> {
        let pid = self.k.fork(mm.pid).ok()?;
        Some((CoreMm { pid }, pid as u32))
    }

    fn destroy(&mut self, mm: CoreMm) {
        let _ = self.k.exit(mm.pid);
    }

    fn translate(&self, mm: &CoreMm, addr: u64, write: bool) -> Option<u64> {
        let k = self.k;
        k.with_task(mm.pid, |t| {
            let pte = t.mm.pgd.as_ref()?.pte_get(pt_mem(k), addr);
            pte_translate(pte, addr, write)
        })
        .ok()
        .flatten()
    }

    fn oom_info(&self, mm: &CoreMm) -> OomInfo {
        self.k.count_vm_events(VmEvent::OomKill, 1);
        let kb = |pages: i64| pages.max(0) as u64 * (PAGE_SIZE as u64 / 1024);
        self.k
            .with_task(mm.pid, |t| OomInfo {
                total_vm_kb: t.mm.total_vm * (PAGE_SIZE as u64 / 1024),
                anon_rss_kb: kb(t.mm.counter(MmCounter::AnonPages)),
                file_rss_kb: kb(t.mm.counter(MmCounter::FilePages)),
                shmem_rss_kb: kb(t.mm.counter(MmCounter::ShmemPages)),
                pgtables_kb: t.layer.pgtables_bytes(t.mm) / 1024,
            })
            .unwrap_or_default()
    }

    fn copy_from_user(&mut self, mm: &mut CoreMm, addr: u64, buf: &mut [u8]) -> usize {
        let len = buf.len();
        self.k.copy_from_user(mm.pid, buf, addr).unwrap_or(len)
    }

    fn copy_to_user(&mut self, mm: &mut CoreMm, addr: u64, data: &[u8]) -> usize {
        self.k
            .copy_to_user(mm.pid, addr, data)
            .unwrap_or(data.len())
    }

    fn rss(&self, mm: &CoreMm) -> u64 {
        self.k.with_task(mm.pid, |t| t.mm.rss()).unwrap_or(0)
    }
}
