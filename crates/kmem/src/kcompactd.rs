//! The top of mm/compaction.c: the [`CompactMigrate`] compaction's scanners use, over page
//! migration (`isolate_migratepage`, `migrate_pages(…, MR_COMPACTION)`,
//! `putback_movable_pages` of [`crate::migrate`]); the page allocator's compaction hook
//! (direct compaction, and kcompactd woken by kswapd); and `/proc/sys/vm/compact_memory`.
//! The scanners are [`crate::compaction`]; this module only connects them to migration,
//! which sits above the task layer.
//!
//! # Locking
//! Migration unmaps and remaps pages through the rmap, so compaction runs with
//! `tasklist_lock` held (it stands for the anon_vma and page-table locks), recorded as this
//! CPU's (`tasklist_owner`) so that `migrate_pages` runs under it: `compact_memory` takes
//! it; direct compaction and kcompactd (entered from an allocation) use it at once when this
//! CPU already holds it, take it with a try-lock otherwise, and do not compact at all this
//! time when another CPU holds it. Under it compaction takes `lru_lock` (isolation,
//! put-back), the zone lock (one free block at a time) and CPU sections, each alone — all
//! below `tasklist_lock` in the order (docs/LOCKING.md). An allocation made by compaction
//! itself on this CPU (a migration target's reclaim, a swap-cache node) does not compact
//! again (`compaction.owner`, Linux's `PF_MEMALLOC`).

use core::cell::RefCell;
use core::sync::atomic::Ordering;

use crate::compaction::{CompactMigrate, MigrateMode, MigrateTarget};
use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::migrate::{self, MigrateList, MigrateReason};
use crate::mm::mm_types::PagePtr;
use crate::mmzone::ZoneType;
use crate::page_alloc::{CompactHook, CompactPriority, CompactResult};
use crate::platform::Platform;
use crate::task::TaskLayer;

/// Compaction's view of the task layer, used while `tasklist_lock` is held by this CPU.
pub struct TaskCompact<'a, P: Platform> {
    tl: &'a TaskLayer<P>,
}

impl<P: Platform> TaskCompact<'_, P> {
    /// `isolate_migratepage` of one page, keeping it off any list (the scanner holds it).
    fn isolate_one(&self, page: PagePtr) -> bool {
        let mut l = MigrateList::new();
        if self.tl.isolate_migratepage(page, &mut l).is_err() {
            return false;
        }
        l.pop();
        true
    }
}

impl<P: Platform> CompactMigrate for TaskCompact<'_, P> {
    fn isolate(&self, page: PagePtr, unevictable: bool) -> bool {
        if page.test_flag(crate::mm::mm_types::pg::UNEVICTABLE) && !unevictable {
            return false;
        }
        self.isolate_one(page)
    }

    fn isolate_movable(&self, page: PagePtr) -> bool {
        self.tl.page_has_movable_ops(page) && self.isolate_one(page)
    }

    fn putback(&self, page: PagePtr) {
        let mut l = MigrateList::new();
        l.push(page);
        self.tl.putback_movable_pages(&mut l);
    }

    fn migrate(
        &self,
        from: &mut [Option<PagePtr>],
        target: &mut dyn MigrateTarget,
        mode: MigrateMode,
    ) -> Result<(), Errno> {
        let mut list = MigrateList::new();
        for p in from.iter().flatten() {
            list.push(*p);
        }
        let mode = match mode {
            MigrateMode::Async => migrate::MigrateMode::Async,
            MigrateMode::SyncLight => migrate::MigrateMode::SyncLight,
            MigrateMode::Sync => migrate::MigrateMode::Sync,
        };
        let t = RefCell::new(target);
        let mut get = |src| t.borrow_mut().alloc(src);
        let mut put = |p| t.borrow_mut().free(p);
        let r = self.tl.migrate_pages(
            &mut list,
            &mut get,
            Some(&mut put),
            mode,
            MigrateReason::Compaction,
        );
        // What is left on the list failed; the caller puts it back.
        for slot in from.iter_mut() {
            if slot.is_some_and(|p| !list.contains(p)) {
                *slot = None;
            }
        }
        while list.pop().is_some() {}
        r.map(|_| ())
    }
}

/// The hook's `direct`: `try_to_compact_pages`.
///
/// # Safety
/// `ctx` is the machine's `TaskLayer<P>` (registered by `compact_init`).
unsafe fn hook_direct<P: Platform>(
    ctx: *const (),
    gfp: GfpFlags,
    order: u32,
    highest: ZoneType,
    prio: CompactPriority,
    nid: usize,
    nodemask: u64,
) -> CompactResult {
    // SAFETY: the function's contract.
    let tl = unsafe { &*ctx.cast::<TaskLayer<P>>() };
    with_compact(tl, |ops| {
        tl.try_to_compact_pages_node(ops, gfp, order, highest, prio, nid, nodemask)
    })
    .unwrap_or(CompactResult::Skipped)
}

/// The hook's `wake_kcompactd`.
///
/// # Safety
/// As [`hook_direct`].
unsafe fn hook_kcompactd<P: Platform>(ctx: *const (), nid: usize, order: u32, highest: ZoneType) {
    // SAFETY: the function's contract.
    let tl = unsafe { &*ctx.cast::<TaskLayer<P>>() };
    with_compact(tl, |ops| tl.wakeup_kcompactd(ops, nid, order, highest));
}

/// Runs `f` with compaction's migration interface and `tasklist_lock` held by this CPU:
/// at once when it holds it, under a try-lock otherwise; `None` when another CPU holds it
/// or this CPU is compacting already.
fn with_compact<P: Platform, R>(
    tl: &TaskLayer<P>,
    f: impl FnOnce(&TaskCompact<'_, P>) -> R,
) -> Option<R> {
    let me = tl.platform().raw_cpu_id() + 1;
    let owner = &tl.compaction.owner;
    if owner.load(Ordering::Acquire) == me {
        // An allocation made by compaction itself (PF_MEMALLOC): no recursion.
        return None;
    }
    let ops = TaskCompact { tl };
    if tl.tasklist_owner.load(Ordering::Acquire) == me {
        owner.store(me, Ordering::Release);
        let r = f(&ops);
        owner.store(0, Ordering::Release);
        return Some(r);
    }
    // Lock order: tasklist_lock (rank 0) with a try-lock that never waits.
    let g = tl.tasks.try_lock()?;
    tl.tasklist_owner.store(me, Ordering::Release);
    owner.store(me, Ordering::Release);
    let r = f(&ops);
    owner.store(0, Ordering::Release);
    tl.tasklist_owner.store(0, Ordering::Release);
    drop(g);
    Some(r)
}

impl<P: Platform> TaskLayer<P> {
    /// Registers direct compaction and kcompactd in the page allocator.
    ///
    /// # Safety
    /// Once, at boot, after the state is placed (it never moves again).
    pub(crate) unsafe fn compact_init(&self) {
        let hook = CompactHook {
            ctx: (self as *const Self).cast(),
            direct: hook_direct::<P>,
            wake_kcompactd: hook_kcompactd::<P>,
        };
        // SAFETY: the layer lives as long as the machine and is usable from any thread;
        // an allocation compaction makes on this CPU does not compact again (`owner`).
        unsafe { self.set_compact_hook(Some(hook)) };
    }

    /// `echo 1 > /proc/sys/vm/compact_memory` (`sysctl_compaction_handler` →
    /// `compact_nodes`): every zone of every node is compacted, with `tasklist_lock` held.
    pub fn compact_memory(&self) {
        let t = self.tasklist();
        with_compact(self, |ops| self.compact_nodes(ops));
        drop(t);
    }

    /// kcompactd's timer (`HPAGE_FRAG_CHECK_INTERVAL_MSEC`): runs proactive compaction when
    /// it is due and the fragmentation score asks for it. Returns whether it ran.
    pub fn kcompactd_tick_now(&self) -> bool {
        with_compact(self, |ops| self.kcompactd_tick(ops)).unwrap_or(false)
    }

    /// A write to `compaction_proactiveness` (`compaction_proactiveness_sysctl_handler`):
    /// a raised value compacts proactively at once if the score asks for it.
    pub(crate) fn proactiveness_written(&self) {
        with_compact(self, |ops| self.proactive_compact(ops));
    }
}
