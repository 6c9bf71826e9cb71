//! Compaction at the task layer: the [`CompactMigrate`] that compaction's scanners use
//! (LRU isolation and put-back here, page migration through the task layer's rmap), the
//! page allocator's direct-compaction hook, kcompactd woken after kswapd, and
//! `/proc/sys/vm/compact_memory`.
//!
//! # Locking
//! Migration unmaps and remaps pages through the rmap, so compaction runs with
//! `tasklist_lock` held (it stands for the anon_vma and page-table locks): taken by
//! `compact_memory`; for direct compaction and kcompactd (entered from an allocation), used
//! as reclaim uses it — at once when this CPU already holds it, with a try-lock otherwise,
//! and not at all (no compaction this time) when another CPU holds it. Under it compaction
//! takes `lru_lock` (isolation, put-back), the zone lock (free pages) and CPU sections, all
//! below `tasklist_lock` in the order (docs/LOCKING.md).

use core::sync::atomic::Ordering;

use crate::compaction::{CompactMigrate, MigrateMode, MigrateTarget};
use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::mm::mm_types::{pg, PagePtr};
use crate::mmzone::ZoneType;
use crate::page_alloc::{CompactHook, CompactPriority, CompactResult};
use crate::platform::Platform;

use super::TaskLayer;

/// Compaction's view of the task layer, valid while `tasklist_lock` is held.
pub struct TaskCompact<'a, P: Platform> {
    tl: &'a TaskLayer<P>,
}

impl<P: Platform> CompactMigrate for TaskCompact<'_, P> {
    fn isolate(&self, page: PagePtr, unevictable: bool) -> bool {
        let vl = &self.tl.mem.km.vm;
        // Lock order: tasklist_lock (held) → &lruvec->lru_lock; docs/LOCKING.md.
        let mut lru = self.tl.mem.mem.lru.lru.lock();
        if !page.test_flag(pg::LRU) || (page.test_flag(pg::UNEVICTABLE) && !unevictable) {
            return false;
        }
        // folio_isolate_lru: only a page someone still holds (get_page_unless_zero).
        if !page.try_get() {
            return false;
        }
        lru.del(page, &vl.node_stats);
        true
    }

    fn putback(&self, page: PagePtr) {
        let vl = &self.tl.mem.km.vm;
        let lru = &self.tl.mem.mem.lru;
        if page.refcount() > 1 {
            // Lock order: tasklist_lock (held) → &lruvec->lru_lock; docs/LOCKING.md.
            lru.lru.lock().add(page, &vl.node_stats);
        }
        lru.folio_put(vl, page);
    }

    fn migrate(
        &self,
        from: &mut [Option<PagePtr>],
        target: &mut dyn MigrateTarget,
        mode: MigrateMode,
    ) -> Result<(), Errno> {
        let _ = (from, target, mode);
        // Page migration (mm/migrate.c) is not in this tree yet: every page stays where
        // it is and is put back by compaction.
        Err(Errno::EBUSY)
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
) -> CompactResult {
    // SAFETY: the function's contract.
    let tl = unsafe { &*ctx.cast::<TaskLayer<P>>() };
    tl.with_compact(|ops| tl.try_to_compact_pages(ops, gfp, order, highest, prio))
        .unwrap_or(CompactResult::Skipped)
}

impl<P: Platform> TaskLayer<P> {
    /// Registers direct compaction in the page allocator's slow path.
    ///
    /// # Safety
    /// Once, at boot, after the state is placed (it never moves again).
    pub(crate) unsafe fn compact_init(&self) {
        let hook = CompactHook {
            ctx: (self as *const Self).cast(),
            direct: hook_direct::<P>,
        };
        // SAFETY: the layer lives as long as the machine and is usable from any thread;
        // compaction allocates nothing with __GFP_DIRECT_RECLAIM (its targets come from the
        // pages it isolated).
        unsafe { self.set_compact_hook(Some(hook)) };
    }

    /// Runs `f` with compaction's migration interface, `tasklist_lock` held: at once when
    /// this CPU holds it, under a try-lock otherwise; `None` when another CPU holds it.
    pub(crate) fn with_compact<R>(&self, f: impl FnOnce(&TaskCompact<'_, P>) -> R) -> Option<R> {
        let me = self.platform().raw_cpu_id() + 1;
        let owner = &self.compaction.owner;
        if owner.load(Ordering::Acquire) == me {
            // An allocation made by compaction itself (PF_MEMALLOC): no recursion.
            return None;
        }
        let ops = TaskCompact { tl: self };
        let run = |f: &mut dyn FnMut()| {
            owner.store(me, Ordering::Release);
            f();
            owner.store(0, Ordering::Release);
        };
        let mut f = Some(f);
        let mut r = None;
        if self.tasklist_owner.load(Ordering::Acquire) == me {
            run(&mut || r = f.take().map(|f| f(&ops)));
            return r;
        }
        // Lock order: tasklist_lock (rank 0) with a try-lock that never waits.
        let g = self.tasks.try_lock()?;
        run(&mut || r = f.take().map(|f| f(&ops)));
        drop(g);
        r
    }

    /// `echo 1 > /proc/sys/vm/compact_memory` (`sysctl_compaction_handler` →
    /// `compact_nodes`): every zone is compacted, with `tasklist_lock` held.
    pub fn compact_memory(&self) {
        let t = self.tasklist();
        self.with_compact(|ops| self.compact_nodes(ops));
        drop(t);
    }

    /// kswapd's `wakeup_kcompactd` after a run for `order` (kcompactd runs synchronously),
    /// and kcompactd's proactive check when it is due.
    pub(crate) fn kcompactd_after_kswapd(&self, order: u32) {
        let top = *self.arch().zones().last().unwrap_or(&ZoneType::Normal);
        self.with_compact(|ops| self.wakeup_kcompactd(ops, order, top));
    }

    /// kcompactd's timer (`HPAGE_FRAG_CHECK_INTERVAL_MSEC`): runs proactive compaction when
    /// it is due and the fragmentation score asks for it. Returns whether it ran.
    pub fn kcompactd_tick_now(&self) -> bool {
        self.with_compact(|ops| self.kcompactd_tick(ops))
            .unwrap_or(false)
    }

    /// A write to `compaction_proactiveness` (`compaction_proactiveness_sysctl_handler`):
    /// a raised value compacts proactively at once if the score asks for it.
    pub(crate) fn proactiveness_written(&self) {
        self.with_compact(|ops| self.proactive_compact(ops));
    }
}
