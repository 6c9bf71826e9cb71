//! Reclaim, swap and the OOM killer at the task layer: the page allocator's reclaim hook
//! (kswapd and direct reclaim walk the rmap under `tasklist_lock`), `swapon`/`swapoff`
//! (with `try_to_unuse` over every task's address space), `drop_caches`, and the OOM killer
//! choosing its victim by `oom_badness` with Linux's report.
//!
//! # Reclaim and `tasklist_lock`
//! The rmap walk needs `tasklist_lock` (it stands for the anon_vma and page-table locks).
//! Most allocations that reclaim are made under it (faults); the hook then finds this CPU
//! recorded as its owner and walks at once. An allocation made without it takes it with a
//! try-lock; when another CPU holds it, reclaim of mapped pages is skipped this time (as
//! Linux's `folio_trylock`/`anon_vma` trylocks skip busy pages).

use core::sync::atomic::Ordering;

use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::mmzone::ZoneType;
use crate::oom_kill::{select_bad_process, OomTask};
use crate::page_alloc::ReclaimHook;
use crate::platform::Platform;
use crate::swap::entry::{is_swap_pte, SwpEntry};
use crate::swap::SwapBackend;
use crate::vma::PAGE;
use crate::vmscan::RmapReclaim;

use super::{TaskLayer, TaskTable};

/// The hook's `wake_kswapd`.
///
/// # Safety
/// `ctx` is the machine's `TaskLayer<P>` (registered by `reclaim_init`).
unsafe fn hook_kswapd<P: Platform>(ctx: *const (), nid: usize, order: u32, highest: ZoneType) {
    // SAFETY: the function's contract.
    let tl = unsafe { &*ctx.cast::<TaskLayer<P>>() };
    tl.with_rmap(|ops| {
        tl.mem
            .mem
            .lru
            .wakeup_kswapd(&tl.mem.km.vm, &tl.mem.mem.swap, ops, nid, highest)
    });
    // kswapd_try_to_sleep: balanced for order-0, it wakes kcompactd for the order asked.
    tl.kcompactd_wake(nid, order);
}

/// The hook's `direct`.
///
/// # Safety
/// As [`hook_kswapd`].
unsafe fn hook_direct<P: Platform>(
    ctx: *const (),
    gfp: GfpFlags,
    order: u32,
    nid: usize,
    nodemask: u64,
) -> usize {
    // SAFETY: the function's contract.
    let tl = unsafe { &*ctx.cast::<TaskLayer<P>>() };
    tl.with_rmap(|ops| {
        let swap = &tl.mem.mem.swap;
        let vm = &tl.mem.km.vm;
        tl.mem
            .mem
            .lru
            .try_to_free_pages(vm, swap, ops, gfp, order, nid, nodemask)
    })
    .unwrap_or(0)
}

impl<P: Platform> TaskLayer<P> {
    /// Initialises the LRU lists in place and registers reclaim in the page allocator's
    /// slow path.
    ///
    /// # Safety
    /// Once, at boot, after the state is placed (it never moves again).
    pub(crate) unsafe fn reclaim_init(&self) {
        // SAFETY: the state is at its final address (caller's contract).
        unsafe { self.mem.mem.lru.init() };
        if let Some(ld) = self.lockdep() {
            // SAFETY: once, before the locks are taken; the validator outlives them.
            unsafe {
                self.mem.mem.lru.lockdep_attach(ld);
                self.mem.mem.swap.lockdep_attach(ld);
            }
        }
        let hook = ReclaimHook {
            ctx: (self as *const Self).cast(),
            wake_kswapd: hook_kswapd::<P>,
            direct: hook_direct::<P>,
        };
        // SAFETY: the layer lives as long as the machine and is usable from any thread;
        // reclaim allocates only swap-cache nodes, without reclaim flags.
        unsafe { self.set_reclaim_hook(Some(hook)) };
    }

    /// The other nodes' LRU lists and kswapd state on a NUMA machine (`alloc_node_data`'s
    /// share of reclaim), from the page allocator.
    ///
    /// # Safety
    /// Once, at boot, after [`Self::reclaim_init`] and `memblock_free_all`, before any page is
    /// on an LRU list or another thread uses the machine.
    pub(crate) unsafe fn reclaim_init_nodes(&self) {
        // SAFETY: the caller's contract; the validator lives as long as the machine.
        unsafe {
            self.mem
                .mem
                .lru
                .init_nodes(&self.mem.km.vm, self.lockdep().map(core::ptr::from_ref))
        };
    }

    /// Runs `f` with the rmap locked: at once when this CPU holds `tasklist_lock`, under a
    /// try-lock otherwise; `None` when another CPU holds it.
    fn with_rmap<R>(&self, f: impl FnOnce(&RmapReclaim<'_, P>) -> R) -> Option<R> {
        let me = self.platform().raw_cpu_id() + 1;
        if self.tasklist_owner.load(Ordering::Acquire) == me {
            // SAFETY: this CPU holds tasklist_lock for the whole call (it is inside an
            // allocation made under it).
            let ops = unsafe { RmapReclaim::new(&self.mem.km, &self.mem.mem.swap) };
            return Some(f(&ops));
        }
        // Lock order: tasklist_lock (rank 0) with a try-lock that never waits.
        let g = self.tasks.try_lock()?;
        // SAFETY: held until `g` drops after `f`.
        let ops = unsafe { RmapReclaim::new(&self.mem.km, &self.mem.mem.swap) };
        let r = f(&ops);
        drop(g);
        Some(r)
    }

    /// `swapon(2)` of `backend` at `path` (see [`crate::swap::SwapState::swapon`]).
    ///
    /// # Errors
    /// As `SwapState::swapon`.
    pub fn swapon<B: SwapBackend + 'static>(
        &self,
        path: &str,
        backend: B,
        prio: Option<i32>,
    ) -> Result<usize, Errno> {
        self.mem
            .mem
            .swap
            .swapon(&self.mem.km.vm, path, backend, prio)
    }

    /// `swapoff(2)`: every page of the area is swapped back in (`try_to_unuse`: each swap
    /// PTE of the area in every task is faulted in), then the area goes.
    ///
    /// # Errors
    /// `EINVAL` for a path that is no swap area; `ENOMEM` when memory cannot take the pages.
    pub fn swapoff(&self, path: &str) -> Result<(), Errno> {
        self.mem.mem.swap.swapoff(&self.mem.km.vm, path, &mut |ty| {
            let mut t = self.tasklist();
            self.unuse_all(&mut t, ty)
        })
    }

    /// `try_to_unuse` for area `ty`: faults every swap PTE of it in, in every task.
    fn unuse_all(&self, t: &mut TaskTable, ty: usize) -> Result<(), Errno> {
        let arch = self.arch();
        for task in t.iter() {
            // SAFETY: the task's mm is live under tasklist_lock, held by the caller.
            let mm = unsafe { &mut *task.mm.as_ptr() };
            let mut addrs = [0u64; 64];
            loop {
                // Collect a batch of this area's swap PTEs, then fault them in.
                let mut n = 0;
                let Some(pt) = mm.pgd.as_ref() else { break };
                let mut va = 0u64;
                let top = mm.task_size;
                while va < top && n < addrs.len() {
                    let Some(v) = mm.find_vma(va) else { break };
                    let (s, e) = (v.vm_start.max(va), v.vm_end);
                    let mut a = s;
                    while a < e && n < addrs.len() {
                        let pte = pt.pte_get(self.mem.pt_mem(), a);
                        if is_swap_pte(arch, pte) && SwpEntry::from_pte(arch, pte).swp_type() == ty
                        {
                            addrs[n] = a;
                            n += 1;
                        }
                        a += PAGE;
                    }
                    va = a;
                }
                if n == 0 {
                    break;
                }
                for &a in &addrs[..n] {
                    let f = crate::memory::FaultFlags {
                        write: false,
                        exec: false,
                        user: false,
                    };
                    if self.mem.handle_mm_fault(mm, a, f) != crate::memory::VmFault::Done {
                        return Err(Errno::ENOMEM);
                    }
                }
            }
        }
        Ok(())
    }

    /// `echo 1 > /proc/sys/vm/drop_caches`: clean, unmapped page-cache pages are freed.
    pub fn drop_caches(&self) -> usize {
        self.with_rmap(|ops| self.mem.mem.lru.drop_pagecache(&self.mem.km.vm, ops))
            .unwrap_or(0)
    }

    /// `si_swapinfo`: swap pages in all areas, and how many are free.
    pub fn si_swapinfo(&self) -> crate::swap::SwapInfo {
        self.mem.mem.swap.si_swapinfo()
    }

    /// `/proc/swaps`.
    pub fn show_swaps(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        self.mem.mem.swap.show_swaps(out)
    }

    /// The OOM killer (`out_of_memory` → `select_bad_process` → `oom_kill_process`) for a
    /// fault of task `current` that found no memory: prints `dump_header` (with the task
    /// table) and the kill line, kills the task with the highest `oom_badness`, counts
    /// `oom_kill`. Returns the victim's pid (`None`: nothing killable).
    pub(crate) fn out_of_memory(&self, t: &mut TaskTable, current: i32) -> Option<i32> {
        const MAX: usize = 64;
        let mut names = [[0u8; super::TASK_COMM_LEN]; MAX];
        let mut info: [Option<(i32, OomTask<'static>)>; MAX] = [None; MAX];
        let mut n = 0;
        for task in t.iter().take(MAX) {
            let mm = task.mm();
            let len = task.comm().len();
            names[n][..len].copy_from_slice(task.comm().as_bytes());
            let o = OomTask {
                pid: task.pid as u32,
                tgid: task.pid as u32,
                uid: 0,
                comm: "",
                total_vm: mm.total_vm as usize,
                rss_anon: mm.rss_stat[1].max(0) as usize,
                rss_file: mm.rss_stat[0].max(0) as usize,
                rss_shmem: mm.rss_stat[3].max(0) as usize,
                pgtables_bytes: self.mem.pgtables_bytes(mm) as usize,
                swapents: mm.rss_stat[2].max(0) as usize,
                oom_score_adj: task.oom_score_adj,
                unkillable: false,
            };
            info[n] = Some((task.pid, o));
            n += 1;
        }
        let mut tasks = [OomTask::EMPTY; MAX];
        for i in 0..n {
            if let Some((_, o)) = info[i] {
                let len = names[i]
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(names[i].len());
                tasks[i] = OomTask {
                    comm: core::str::from_utf8(&names[i][..len]).unwrap_or("?"),
                    ..o
                };
            }
        }
        let tasks = &tasks[..n];
        let totalpages = self.totalram_pages() + self.mem.mem.swap.si_swapinfo().total;
        let cur = tasks.iter().find(|o| o.pid as i32 == current).copied();
        let gfp = GfpFlags::GFP_HIGHUSER_MOVABLE;
        if let Some(c) = cur {
            self.oom_dump_header(&c, gfp, 0, tasks);
        }
        let victim = select_bad_process(tasks, totalpages)?;
        let v = tasks[victim];
        self.oom_kill_report(&v);
        self.count_vm_events(crate::mm::VmEvent::OomKill, 1);
        let pid = v.pid as i32;
        let _ = self.exit_locked(t, pid);
        Some(pid)
    }
}
