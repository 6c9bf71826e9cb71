//! The registry of movable-ops owners (include/linux/migrate.h `struct movable_operations`,
//! 6.18's `set_movable_ops`): kernel users whose pages migration may move — a balloon driver
//! (`PGTY_offline` pages), zsmalloc (`PGTY_zsmalloc`) — register their three callbacks here;
//! [`crate::migrate`] calls them. A page belongs to an owner while its `mapping` word holds
//! `(type + 1) << 2 | PAGE_MAPPING_MOVABLE` (`__SetPageMovable`, the pre-6.15 encoding kmem
//! keeps since its page-type byte is the mapcount of user pages), and is isolated while it
//! has `PG_movable_ops_isolated` (which aliases `PG_reclaim`, as in 6.18).
//!
//! # Locking
//! The table is a leaf spinlock, held only to copy an entry.

use kds::spinlock::SpinLock;

use crate::errno::Errno;
use crate::mm::mm_types::PagePtr;

/// `PAGE_MAPPING_MOVABLE`: the `mapping` tag of a movable-ops page.
pub const PAGE_MAPPING_MOVABLE: usize = 2;

/// Which kind of owner (the page type 6.18 keys the table by).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MovableOpsType {
    /// `PGTY_offline`: balloon-inflated pages.
    Offline = 0,
    /// `PGTY_zsmalloc`: zsmalloc's zspage pages.
    Zsmalloc = 1,
}

/// `struct movable_operations`, with a context pointer for the owner's state.
#[derive(Clone, Copy)]
pub struct MovableOps {
    /// Passed back to every callback.
    pub ctx: *const (),
    /// `isolate_page`: the owner lets the page go for migration (`false`: busy).
    pub isolate_page: unsafe fn(ctx: *const (), page: PagePtr) -> bool,
    /// `migrate_page`: moves the owner's use of `src` to `dst` (taking its own reference on
    /// `dst`, dropping the one on `src`, and marking `dst` movable); `Err(EAGAIN)` to retry.
    pub migrate_page: unsafe fn(ctx: *const (), dst: PagePtr, src: PagePtr) -> Result<(), Errno>,
    /// `putback_page`: the page was not migrated; the owner takes it back.
    pub putback_page: unsafe fn(ctx: *const (), page: PagePtr),
}

// SAFETY: the registrant promises the callbacks may be called with `ctx` from any thread
// (`set_movable_ops`'s contract).
unsafe impl Send for MovableOps {}

/// The registered owners.
pub struct MovableOpsTable {
    ops: SpinLock<[Option<MovableOps>; 2]>,
}

impl Default for MovableOpsTable {
    fn default() -> Self {
        Self::new()
    }
}

impl MovableOpsTable {
    /// No owner.
    pub fn new() -> Self {
        Self {
            ops: SpinLock::new([None; 2]),
        }
    }
    /// `set_movable_ops`.
    ///
    /// # Safety
    /// The callbacks must be sound to call with `ctx` from any thread until the entry is
    /// replaced or removed.
    pub unsafe fn set(&self, ty: MovableOpsType, ops: Option<MovableOps>) {
        self.ops.lock()[ty as usize] = ops;
    }
    /// The owner of `ty`.
    pub fn get(&self, ty: MovableOpsType) -> Option<MovableOps> {
        self.ops.lock()[ty as usize]
    }
}

/// `page_movable_ops`: the owner type a page's `mapping` names, if it is a movable-ops page.
pub(crate) fn page_movable_type(page: PagePtr) -> Option<MovableOpsType> {
    let m = page.mapping();
    if m & 3 != PAGE_MAPPING_MOVABLE {
        return None;
    }
    match m >> 2 {
        1 => Some(MovableOpsType::Offline),
        2 => Some(MovableOpsType::Zsmalloc),
        _ => None,
    }
}

/// `__SetPageMovable`: `page` (allocated, not a user page) now belongs to owner `ty`.
pub(crate) fn set_page_movable(page: PagePtr, ty: MovableOpsType) {
    page.set_mapping(((ty as usize + 1) << 2) | PAGE_MAPPING_MOVABLE);
}

/// `__ClearPageMovable`: the owner gives `page` up (before freeing it, or after migrating
/// it away).
pub(crate) fn clear_page_movable(page: PagePtr) {
    page.set_mapping(0);
}
