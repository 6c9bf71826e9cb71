//! Migration of movable-ops pages (mm/migrate.c `isolate_movable_ops_page`,
//! `migrate_movable_ops_page`, `putback_movable_ops_page`): pages of kernel owners that
//! registered [`MovableOps`] (see [`crate::memory::movable`]).

use crate::errno::Errno;
use crate::memory::movable::{clear_page_movable, page_movable_type, set_page_movable};
use crate::mm::mm_types::{pg, PagePtr};
use crate::platform::Platform;
use crate::task::TaskLayer;

pub use crate::memory::movable::{MovableOps, MovableOpsType};

/// `PG_movable_ops_isolated` (aliases `PG_reclaim` in 6.18).
const PG_MOVABLE_OPS_ISOLATED: u64 = pg::RECLAIM;

impl<P: Platform> TaskLayer<P> {
    /// `set_movable_ops`: registers (or, with `None`, removes) the owner of `ty`.
    ///
    /// # Safety
    /// The callbacks must be sound to call with `ops.ctx` from any thread until the entry is
    /// replaced or removed, with or without `tasklist_lock` held (`migrate_page` runs under it;
    /// `isolate_page` and `putback_page` run from `isolate_migratepage` and
    /// `putback_movable_pages`, which do not take it); they may not take `tasklist_lock`.
    pub unsafe fn set_movable_ops(&self, ty: MovableOpsType, ops: Option<MovableOps>) {
        // SAFETY: forwarded.
        unsafe { self.mem.mem.movable.set(ty, ops) };
    }

    /// `__SetPageMovable`: `page` (allocated by the owner, not a user page) belongs to the
    /// owner of `ty`; `false` for a page of another machine.
    pub fn set_page_movable(&self, page: PagePtr, ty: MovableOpsType) -> bool {
        if !self.check_page_ptr(page, "set_page_movable") || page.refcount() <= 0 {
            return false;
        }
        set_page_movable(page, ty);
        true
    }

    /// `__ClearPageMovable`: the owner gives `page` up.
    pub fn clear_page_movable(&self, page: PagePtr) {
        if self.check_page_ptr(page, "clear_page_movable") && page_movable_type(page).is_some() {
            clear_page_movable(page);
        }
    }

    /// Whether `page` is a movable-ops page (`page_has_movable_ops`).
    pub fn page_has_movable_ops(&self, page: PagePtr) -> bool {
        self.check_page_ptr(page, "page_has_movable_ops") && page_movable_type(page).is_some()
    }

    /// The owner of an isolated movable-ops page.
    pub(super) fn movable_ops_of(&self, page: PagePtr) -> Option<MovableOps> {
        if !page.test_flag(PG_MOVABLE_OPS_ISOLATED) {
            return None;
        }
        self.mem.mem.movable.get(page_movable_type(page)?)
    }

    /// `isolate_movable_ops_page`: asks the page's owner to let it go; on success the page
    /// holds a reference for the isolation and is marked isolated.
    pub(super) fn isolate_movable_ops_page(&self, page: PagePtr) -> bool {
        let Some(ty) = page_movable_type(page) else {
            return false;
        };
        let Some(ops) = self.mem.mem.movable.get(ty) else {
            return false;
        };
        if page.test_flag(PG_MOVABLE_OPS_ISOLATED) || !page.try_get() {
            return false;
        }
        // SAFETY: the registrant's contract (`set_movable_ops`).
        if !unsafe { (ops.isolate_page)(ops.ctx, page) } {
            self.put_page(page);
            return false;
        }
        page.set_flag_bits(PG_MOVABLE_OPS_ISOLATED);
        true
    }

    /// `putback_movable_ops_page`; `false` when `page` is no isolated movable-ops page.
    pub(super) fn putback_movable_ops_page(&self, page: PagePtr) -> bool {
        let Some(ops) = self.movable_ops_of(page) else {
            return false;
        };
        // SAFETY: `ops` is the registered owner of this isolated page's type, and its registrant
        // promised (`set_movable_ops`) that `putback_page` is sound with `ops.ctx` from any thread,
        // without `tasklist_lock`, until the entry is removed.
        unsafe { (ops.putback_page)(ops.ctx, page) };
        page.clear_flag_bits(PG_MOVABLE_OPS_ISOLATED);
        self.put_page(page);
        true
    }

    /// `migrate_movable_ops_page`: the owner moves its use of `src` to `dst`; then the
    /// isolation's reference on `src` and the allocation's on `dst` are dropped.
    pub(super) fn migrate_movable_ops_page(
        &self,
        ops: MovableOps,
        src: PagePtr,
        dst: PagePtr,
    ) -> Result<(), Errno> {
        // SAFETY: `ops` is the registered owner of `src`'s type, and its registrant promised
        // (`set_movable_ops`) that `migrate_page` is sound with `ops.ctx` from any thread, here
        // under `tasklist_lock`; `dst` is a fresh target page we hold.
        unsafe { (ops.migrate_page)(ops.ctx, dst, src) }?;
        src.clear_flag_bits(PG_MOVABLE_OPS_ISOLATED);
        self.put_page(dst);
        self.put_page(src);
        Ok(())
    }
}
