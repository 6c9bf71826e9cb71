//! Page-table pages for updates of the kernel page table made under
//! `init_mm.page_table_lock`, allocated before the lock is taken and given back after it is
//! dropped — the order of Linux's `__pte_alloc_kernel`, which allocates a table and only then
//! takes the lock to install it.
//!
//! The page allocator enters a CPU section; kmap_local holds a CPU section while it maps
//! under the page-table lock. Allocating (or freeing) table pages under the lock would make
//! the page-table lock and CPU sections nest both ways, a deadlock once two tasks share a
//! CPU (docs/LOCKING.md: the lock validator reported it). So a [`TablePool`] hands the page
//! table only tables it already holds; when it runs dry, the mapping code drops the lock,
//! refills the pool and retries.

#![forbid(unsafe_code)]

use core::cell::Cell;

use crate::addr::PhysAddr;
use crate::page_alloc::PageAllocator;
use crate::pgtable::PtMemory;
use crate::platform::Platform;

/// Tables one `PageTable::map` call can need: a new table at every level above the leaf
/// (x86_64's 4 levels: PUD, PMD and PTE tables under the PGD).
pub(super) const TABLES_PER_MAP: usize = 3;

/// Table pages held for one locked update. See the module documentation.
pub(super) struct TablePool<'a, P: Platform> {
    pa: &'a PageAllocator<P>,
    /// The table for the page table's next request.
    ready: Cell<Option<PhysAddr>>,
    /// Tables the page table gave back under the lock (an empty PTE table replaced by a
    /// huge mapping: at most one per `map` call), freed once the lock is dropped.
    freed: [Cell<Option<PhysAddr>>; TABLES_PER_MAP],
}

impl<'a, P: Platform> TablePool<'a, P> {
    /// An empty pool drawing on `pa`.
    pub(super) fn new(pa: &'a PageAllocator<P>) -> Self {
        Self {
            pa,
            ready: Cell::new(None),
            freed: Default::default(),
        }
    }

    /// Whether the pool has no table left to hand out.
    pub(super) fn is_dry(&self) -> bool {
        self.ready.get().is_none()
    }

    /// Whether the next `map` call might have nowhere to put a table it gives back.
    pub(super) fn freed_full(&self) -> bool {
        self.freed.iter().all(|c| c.get().is_some())
    }

    /// Outside the page-table lock: frees the tables given back and, if the pool is dry,
    /// takes one table from the page allocator — one per table the page table asked for, so
    /// the page allocator sees exactly the allocations it would have seen under the lock.
    /// Returns `false` when it had no page for a dry pool (the update fails with `NoMemory`,
    /// as an allocation under the lock would have).
    pub(super) fn refill(&self) -> bool {
        self.release_freed();
        if self.is_dry() {
            match self.pa.alloc_table() {
                Some(t) => self.ready.set(Some(t)),
                None => return false,
            }
        }
        true
    }

    fn release_freed(&self) {
        for c in &self.freed {
            if let Some(t) = c.take() {
                self.pa.free_table(t);
            }
        }
    }
}

impl<P: Platform> PtMemory for TablePool<'_, P> {
    fn alloc_table(&self) -> Option<PhysAddr> {
        self.ready.take()
    }

    fn free_table(&self, table: PhysAddr) {
        match self.freed.iter().find(|c| c.get().is_none()) {
            Some(c) => c.set(Some(table)),
            // Callers check `freed_full` before each `map`, which gives back at most one
            // table; should that ever not hold, a table is leaked, not freed under the lock.
            None => debug_assert!(false, "TablePool: no room for a freed table"),
        }
    }

    fn table_ptr(&self, table: PhysAddr) -> *mut u8 {
        self.pa.table_ptr(table)
    }
}

impl<P: Platform> Drop for TablePool<'_, P> {
    /// Gives back unused and freed tables; the pool is dropped after the lock.
    fn drop(&mut self) {
        self.release_freed();
        if let Some(t) = self.ready.take() {
            self.pa.free_table(t);
        }
    }
}
