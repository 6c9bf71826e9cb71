//! The OOM killer's policy and report (mm/oom_kill.c): `oom_badness`, `select_bad_process`,
//! `/proc/PID/oom_score`, and the lines `oom_kill_process` prints (`dump_header`, the task
//! table of `dump_tasks`, `Out of memory: Killed process …`).
//!
//! Tasks are described by [`OomTask`] values that the layer owning tasks fills in from its
//! mm counters, so this module needs nothing above it; that layer kills the chosen task and
//! counts `oom_kill` in [`OomStats`].

#![forbid(unsafe_code)]

use core::sync::atomic::AtomicUsize;

use crate::gfp::GfpFlags;
use crate::mm::pages_to_kb;
use crate::page_alloc::PageAllocator;
use crate::platform::{LogLevel, Platform};

/// `OOM_SCORE_ADJ_MIN`: never killed.
pub const OOM_SCORE_ADJ_MIN: i16 = -1000;
/// `OOM_SCORE_ADJ_MAX`.
pub const OOM_SCORE_ADJ_MAX: i16 = 1000;

/// What the OOM killer knows of a task (`task_struct` + `mm_struct` counters), in pages
/// except `pgtables_bytes`.
#[derive(Clone, Copy, Debug)]
pub struct OomTask<'a> {
    /// `pid`.
    pub pid: u32,
    /// `tgid`.
    pub tgid: u32,
    /// `from_kuid(cred->uid)`.
    pub uid: u32,
    /// `comm`.
    pub comm: &'a str,
    /// `mm->total_vm`.
    pub total_vm: usize,
    /// `MM_ANONPAGES`.
    pub rss_anon: usize,
    /// `MM_FILEPAGES`.
    pub rss_file: usize,
    /// `MM_SHMEMPAGES`.
    pub rss_shmem: usize,
    /// `mm_pgtables_bytes`.
    pub pgtables_bytes: usize,
    /// `MM_SWAPENTS`.
    pub swapents: usize,
    /// `signal->oom_score_adj`.
    pub oom_score_adj: i16,
    /// `oom_unkillable_task` (init, kernel threads) or no mm.
    pub unkillable: bool,
}

impl OomTask<'_> {
    /// A placeholder entry (unkillable, all zero).
    pub const EMPTY: OomTask<'static> = OomTask {
        pid: 0,
        tgid: 0,
        uid: 0,
        comm: "",
        total_vm: 0,
        rss_anon: 0,
        rss_file: 0,
        rss_shmem: 0,
        pgtables_bytes: 0,
        swapents: 0,
        oom_score_adj: 0,
        unkillable: true,
    };
    /// `get_mm_rss`.
    pub fn rss(&self) -> usize {
        self.rss_anon + self.rss_file + self.rss_shmem
    }
}

/// The `oom_kill` vmstat event.
#[derive(Default)]
pub struct OomStats {
    /// `oom_kill`: tasks killed.
    pub oom_kill: AtomicUsize,
}

/// `oom_badness`: rss + swap entries + page tables (in pages), plus `oom_score_adj`
/// thousandths of `totalpages`; `None` for a task never to be killed.
pub fn oom_badness(t: &OomTask<'_>, totalpages: usize) -> Option<i64> {
    if t.unkillable || t.oom_score_adj == OOM_SCORE_ADJ_MIN {
        return None;
    }
    let points = (t.rss() + t.swapents + t.pgtables_bytes / crate::addr::PAGE_SIZE) as i64;
    let adj = i64::from(t.oom_score_adj) * (totalpages as i64 / 1000);
    Some(points + adj)
}

/// `/proc/PID/oom_score` (fs/proc/base.c `proc_oom_score`): `1000 + badness * 1000 /
/// totalpages`, 0 for an unkillable task.
pub fn oom_score(t: &OomTask<'_>, totalpages: usize) -> u64 {
    match oom_badness(t, totalpages) {
        Some(b) => (1000 + b * 1000 / totalpages.max(1) as i64).max(0) as u64,
        None => 0,
    }
}

/// `select_bad_process`: the index of the task with the highest badness (the first on a
/// tie, as `oom_evaluate_task` keeps the earlier), or `None` when none can be killed.
pub fn select_bad_process(tasks: &[OomTask<'_>], totalpages: usize) -> Option<usize> {
    let mut best: Option<(usize, i64)> = None;
    for (i, t) in tasks.iter().enumerate() {
        if let Some(b) = oom_badness(t, totalpages) {
            if best.is_none_or(|(_, bb)| b > bb) {
                best = Some((i, b));
            }
        }
    }
    best.map(|(i, _)| i)
}

impl<P: Platform> PageAllocator<P> {
    /// `dump_header` + `dump_tasks`: the report before a kill, for the allocation of
    /// `order` with `gfp` by `current` that failed.
    pub fn oom_dump_header(
        &self,
        current: &OomTask<'_>,
        gfp: GfpFlags,
        order: u32,
        tasks: &[OomTask<'_>],
    ) {
        self.printk(
            LogLevel::Warning,
            format_args!(
                "{} invoked oom-killer: gfp_mask={:#x}({}), order={}, oom_score_adj={}",
                current.comm,
                gfp.bits(),
                gfp,
                order,
                current.oom_score_adj
            ),
        );
        self.show_mem();
        self.printk(
            LogLevel::Info,
            format_args!("Tasks state (memory values in pages):"),
        );
        self.printk(LogLevel::Info, format_args!(
            "[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name"
        ));
        for t in tasks.iter().filter(|t| !t.unkillable) {
            self.printk(
                LogLevel::Info,
                format_args!(
                    "[{:>7}] {:>5} {:>5} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8}         {:>5} {}",
                    t.pid,
                    t.uid,
                    t.tgid,
                    t.total_vm,
                    t.rss(),
                    t.rss_anon,
                    t.rss_file,
                    t.rss_shmem,
                    t.pgtables_bytes,
                    t.swapents,
                    t.oom_score_adj,
                    t.comm
                ),
            );
        }
    }

    /// The lines `__oom_kill_process` prints for the victim: the constraint line and
    /// `Out of memory: Killed process …`.
    pub fn oom_kill_report(&self, victim: &OomTask<'_>) {
        self.printk(
            LogLevel::Info,
            format_args!(
                "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task={},pid={},uid={}",
                victim.comm, victim.pid, victim.uid
            ),
        );
        self.printk(
            LogLevel::Err,
            format_args!(
                "Out of memory: Killed process {} ({}) total-vm:{}kB, anon-rss:{}kB, file-rss:{}kB, shmem-rss:{}kB, UID:{} pgtables:{}kB oom_score_adj:{}",
                victim.pid,
                victim.comm,
                pages_to_kb(victim.total_vm),
                pages_to_kb(victim.rss_anon),
                pages_to_kb(victim.rss_file),
                pages_to_kb(victim.rss_shmem),
                victim.uid,
                victim.pgtables_bytes >> 10,
                victim.oom_score_adj
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(pid: u32, rss: usize, adj: i16) -> OomTask<'static> {
        OomTask {
            pid,
            tgid: pid,
            uid: 0,
            comm: "t",
            total_vm: rss * 2,
            rss_anon: rss,
            rss_file: 0,
            rss_shmem: 0,
            pgtables_bytes: 8192,
            swapents: 10,
            oom_score_adj: adj,
            unkillable: false,
        }
    }

    #[test]
    fn badness_is_rss_swap_and_page_tables_plus_scaled_adj() {
        let total = 16384;
        assert_eq!(oom_badness(&task(1, 100, 0), total), Some(100 + 10 + 2));
        // oom_score_adj 500: half of totalpages/1000 per unit.
        assert_eq!(oom_badness(&task(1, 100, 500), total), Some(112 + 500 * 16));
        assert_eq!(oom_badness(&task(1, 100, OOM_SCORE_ADJ_MIN), total), None);
        let mut init = task(1, 100, 0);
        init.unkillable = true;
        assert_eq!(oom_score(&init, total), 0);
        assert_eq!(oom_score(&task(2, 0, -1000), total), 0);
        // 1000 + 112 * 1000 / 16384 = 1006.
        assert_eq!(oom_score(&task(2, 100, 0), total), 1006);
    }

    #[test]
    fn the_biggest_killable_task_is_chosen() {
        let tasks = [
            task(1, 500, OOM_SCORE_ADJ_MIN),
            task(2, 50, 0),
            task(3, 300, 0),
            task(4, 300, 0),
        ];
        assert_eq!(select_bad_process(&tasks, 16384), Some(2));
        assert_eq!(select_bad_process(&tasks[..1], 16384), None);
        // A positive adj can outweigh size.
        let tasks = [task(2, 300, 0), task(3, 50, 100)];
        assert_eq!(select_bad_process(&tasks, 16384), Some(1));
    }
}
