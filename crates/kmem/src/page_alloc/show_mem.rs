//! `warn_alloc` and `show_mem` (mm/page_alloc.c, mm/show_mem.c): the report printed when an
//! allocation fails, with the per-zone summary of free memory.

#![forbid(unsafe_code)]

use core::fmt;
use core::panic::Location;
use core::sync::atomic::Ordering;

use crate::gfp::GfpFlags;
use crate::platform::{LogLevel, Platform};

use super::PageAllocator;

impl<P: Platform> PageAllocator<P> {
    /// Free blocks per order in a zone (the `/proc/buddyinfo` row).
    pub fn free_area_counts(&self, kind: crate::mmzone::ZoneType) -> super::FreeAreaCounts {
        self.zone_free_area_counts(self.zone(kind))
    }
    /// [`Self::free_area_counts`] of any node's zone.
    pub fn zone_free_area_counts(
        &self,
        z: &crate::mmzone::Zone<P::RawLock>,
    ) -> super::FreeAreaCounts {
        // Lock order: &zone->lock (rank 5), reader; docs/LOCKING.md.
        let free = z.free.lock();
        core::array::from_fn(|o| free.area[o].nr_free)
    }

    /// Free blocks per migratetype and order in a zone (`/proc/pagetypeinfo`).
    pub fn free_area_counts_by_type(
        &self,
        z: &crate::mmzone::Zone<P::RawLock>,
    ) -> [[usize; crate::addr::NR_PAGE_ORDERS]; crate::mmzone::MIGRATE_TYPES] {
        // Lock order: &zone->lock (rank 5), reader; docs/LOCKING.md.
        let free = z.free.lock();
        core::array::from_fn(|mt| core::array::from_fn(|o| free.area[o].nr_free_mt[mt] as usize))
    }

    /// `warn_alloc`: the `page allocation failure` report, unless `__GFP_NOWARN`.
    #[track_caller]
    pub fn warn_alloc(&self, gfp: GfpFlags, args: fmt::Arguments<'_>) {
        if gfp.contains(GfpFlags::__GFP_NOWARN) {
            return;
        }
        let caller = Location::caller();
        self.taint.warnings.fetch_add(1, Ordering::Relaxed);
        self.printk(
            LogLevel::Warning,
            format_args!(
                "{}: {}, mode:{:#x}({}), nodemask=(null),cpuset=/,mems_allowed=0",
                self.platform().current_comm(),
                args,
                gfp.bits(),
                gfp
            ),
        );
        self.dump_stack(LogLevel::Warning, caller);
        self.show_mem();
    }

    /// `show_mem`: the per-zone summary printed after an allocation failure.
    pub fn show_mem(&self) {
        self.printk(LogLevel::Warning, format_args!("Mem-Info:"));
        for z in self.zones() {
            if !z.is_populated() {
                continue;
            }
            self.printk(LogLevel::Warning, format_args!(
                "Node {} {} free:{}kB boost:0kB min:{}kB low:{}kB high:{}kB present:{}kB managed:{}kB",
                self.zone_nid(z),
                z.kind.name(),
                crate::mm::pages_to_kb(z.stats.free_pages()),
                crate::mm::pages_to_kb(z.wmark(crate::mmzone::WMARK_MIN)),
                crate::mm::pages_to_kb(z.wmark(crate::mmzone::WMARK_LOW)),
                crate::mm::pages_to_kb(z.wmark(crate::mmzone::WMARK_HIGH)),
                crate::mm::pages_to_kb(z.span().present as usize),
                crate::mm::pages_to_kb(z.managed_pages()),
            ));
        }
        for z in self.zones() {
            if !z.is_populated() {
                continue;
            }
            let counts = self.zone_free_area_counts(z);
            let mut buf = crate::mm::printk::LineBuf::new();
            let _ = fmt::Write::write_fmt(
                &mut buf,
                format_args!("Node {} {}:", self.zone_nid(z), z.kind.name()),
            );
            let mut total = 0usize;
            for (o, n) in counts.iter().enumerate() {
                total += n << o;
                let _ = fmt::Write::write_fmt(&mut buf, format_args!(" {}*{}kB", n, 4usize << o));
            }
            let _ = fmt::Write::write_fmt(&mut buf, format_args!(" = {}kB", total * 4));
            self.printk(LogLevel::Warning, format_args!("{}", buf.as_str()));
        }
    }
}
