//! Where the tasks' address spaces come from: the [`Backend`] of a [`super::UserKernel`].
//!
//! - [`CoreBackend`]: kmem's process-memory core. A ring-3 task is a kmem task
//!   ([`kmem::task::TaskLayer::spawn`], its pid, `/proc/PID/maps` and all): its mappings are
//!   kmem VMAs (`mmap`/`mprotect`), its page table is the task's `mm->pgd`, its faults go to
//!   `handle_mm_fault` (zero page on read, fresh page on write, COW with reuse), `fork` is
//!   kmem's `fork` (`dup_mmap`), exit and kill are kmem's `exit` (`exit_mmap`).
//! - [`OwnBackend`]: the kernel's own small mm ([`super::mm`]), with swap to a RAM area through
//!   kmem's swap ([`super::swap`]) and a clock reclaim; used where kmem's core cannot do the job
//!   yet (swapping anonymous memory of kmem tasks).
//!
//! Both give page tables in the hardware's format, built from kmem's buddy allocator, which
//! the CPU walks from CR3 while the task runs.

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

use super::mm::{pf, FaultKind, Prot, Segv, Shared, UserMm, USER_START};
use super::{STACK_SIZE, STACK_TOP};
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
            && self.k.uwrite(mm.pid, va, code).is_ok()
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
        let r = self
            .k
            .with_task(mm.pid, |t| t.layer.handle_mm_fault(t.mm, addr, f))
            .map_err(|_| Segv::MapErr)?;
        match r {
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

    fn rss(&self, mm: &CoreMm) -> u64 {
        self.k.with_task(mm.pid, |t| t.mm.rss()).unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------------
// The kernel's own mm
// ---------------------------------------------------------------------------------------------

/// Address spaces of [`UserMm`], sharing page counts and the swap area.
pub struct OwnBackend<'k> {
    k: &'k Kmem,
    /// Page counts, the swap area, the pressure threshold.
    pub sh: Shared<'k>,
    next_pid: u32,
}

impl<'k> OwnBackend<'k> {
    /// On the booted machine; pids from 1.
    pub fn new(k: &'k Kmem) -> Self {
        OwnBackend {
            k,
            sh: Shared::default(),
            next_pid: 1,
        }
    }

    fn pid(&mut self) -> u32 {
        let p = self.next_pid;
        self.next_pid += 1;
        p
    }

    /// Pages mapped by at least one address space.
    pub fn mapped_pages(&self) -> usize {
        self.sh.refs.len()
    }

    /// Swap entries in `mm`.
    pub fn swap_ents(&self, mm: &UserMm) -> usize {
        mm.swap_ents(self.k)
    }
}

impl<'k> Backend<'k> for OwnBackend<'k> {
    type Mm = UserMm;

    fn create(&mut self, _comm: &str) -> Result<(UserMm, u32), &'static str> {
        let mut mm = UserMm::new(self.k).ok_or("no memory for a page table")?;
        // The stack at the top, as kmem's spawn makes it ([stack]).
        mm.add_vma(STACK_TOP - STACK_SIZE, STACK_TOP, Prot::RW);
        Ok((mm, self.pid()))
    }

    fn map(&mut self, mm: &mut UserMm, start: u64, len: u64, prot: Prot) -> bool {
        mm.add_vma(start, start + len, prot)
    }

    fn load(&mut self, mm: &mut UserMm, va: u64, code: &[u8]) -> bool {
        let len = (code.len() as u64)
            .next_multiple_of(PAGE_SIZE as u64)
            .max(PAGE_SIZE as u64);
        mm.add_vma(va, va + len, Prot::RX)
            && code.chunks(PAGE_SIZE).enumerate().all(|(i, chunk)| {
                mm.populate(self.k, &mut self.sh, va + (i * PAGE_SIZE) as u64, chunk)
                    .is_ok()
            })
    }

    fn root(&self, mm: &UserMm) -> u64 {
        mm.root().as_u64()
    }

    fn fault(&mut self, mm: &mut UserMm, addr: u64, err: u64) -> Result<FaultKind, Segv> {
        mm.handle_fault(self.k, &mut self.sh, addr, err)
    }

    fn fork(&mut self, mm: &mut UserMm, _comm: &str) -> Option<(UserMm, u32)> {
        let child = mm.fork(self.k, &mut self.sh)?;
        Some((child, self.pid()))
    }

    fn destroy(&mut self, mm: UserMm) {
        mm.destroy(self.k, &mut self.sh);
    }

    fn translate(&self, mm: &UserMm, addr: u64, write: bool) -> Option<u64> {
        let t = mm.lookup(self.k, addr)?;
        pte_translate(
            t.phys.as_u64() & !(PAGE_SIZE as u64 - 1) | t.flags.0,
            addr,
            write,
        )
    }

    fn oom_info(&self, mm: &UserMm) -> OomInfo {
        OomInfo {
            total_vm_kb: mm.total_vm() / 1024,
            anon_rss_kb: mm.rss(self.k) as u64 * (PAGE_SIZE as u64 / 1024),
            ..OomInfo::default()
        }
    }

    fn rss(&self, mm: &UserMm) -> u64 {
        mm.rss(self.k) as u64
    }
}
