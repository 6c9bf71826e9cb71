//! Introspection of the buddy allocator: free blocks and the per-CPU lists' racy counters
//! (what /proc/zoneinfo, /proc/vmstat and `kmem top` read).

use kds::list::{self, ListHead};

use super::PageAllocator;
use crate::addr::{Order, Pfn};
use crate::mm::mm_types::PagePtr;
use crate::mm::ORDERS;
use crate::mmzone::{MigrateType, Zone, ZoneType};
use crate::platform::Platform;

impl<P: Platform> PageAllocator<P> {
    // ------------------------------------------------------------------ introspection

    /// Calls `f(pfn, order, migratetype)` for every free block of a zone, lowest order first.
    pub fn for_each_free_block(&self, kind: ZoneType, mut f: impl FnMut(Pfn, Order, MigrateType)) {
        // Lock order: &zone->lock (rank 5), the caller's closure under it (V4); docs/LOCKING.md.
        let free = self.zone(kind).free.lock();
        for o in 0..ORDERS {
            for mt in MigrateType::ALL {
                let head: *const ListHead = &free.area[o].free_list[mt as usize];
                // SAFETY: free lists of the pinned zone, walked under the zone lock.
                for l in unsafe { list::iter(head) } {
                    // SAFETY: free-list entries are page->lru links.
                    let page = unsafe { PagePtr::from_lru(l) };
                    f(self.page_to_pfn(page), Order::new(o as u32), mt);
                }
            }
        }
    }

    /// Pages on the per-CPU lists of a zone (all CPUs, racy snapshot).
    pub fn pcp_pages(&self, kind: ZoneType) -> usize {
        self.zone_pcp_pages(self.zone(kind))
    }
    /// Pages on the pcp lists of `z` (any node), all CPUs.
    pub fn zone_pcp_pages(&self, z: &Zone<P::RawLock>) -> usize {
        if z.pcp.is_null() {
            return 0;
        }
        (0..self.possible_cpus)
            .map(|c| z.pcp_count_snapshot(c).0)
            .sum()
    }

    /// Allocations served by a zone (all CPUs, racy snapshot).
    pub fn zone_alloc_count(&self, kind: ZoneType) -> usize {
        self.pcp_alloc_count(self.zone(kind))
    }
    /// Allocations served by `z` through its pcp counters.
    pub fn pcp_alloc_count(&self, z: &Zone<P::RawLock>) -> usize {
        if z.pcp.is_null() {
            return 0;
        }
        (0..self.possible_cpus)
            .map(|c| z.pcp_stat_snapshot(c).0)
            .sum()
    }

    /// Pages currently allocated from a zone (all CPUs, racy snapshot).
    pub fn zone_pages_in_use(&self, kind: ZoneType) -> isize {
        self.pcp_pages_in_use(self.zone(kind))
    }
    /// Pages allocated from `z` through its pcp counters.
    pub fn pcp_pages_in_use(&self, z: &Zone<P::RawLock>) -> isize {
        if z.pcp.is_null() {
            return 0;
        }
        (0..self.possible_cpus)
            .map(|c| z.pcp_stat_snapshot(c).1)
            .sum()
    }
}
