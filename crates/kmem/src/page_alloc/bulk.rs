//! The order-0 fast path and `alloc_pages_bulk` (mm/page_alloc.c: `rmqueue_pcplist`,
//! `alloc_pages_bulk_noprof`), and the free-time page checks.
//!
//! # The pcp fast path
//! Linux's `get_page_from_freelist` walks the zonelist and checks each zone's watermark before
//! `rmqueue` reaches the per-CPU list. Pages on a pcp list are already off the zone's
//! `NR_FREE_PAGES`, so taking one does not move the zone's free count; kmem therefore pops a
//! non-empty pcp list of the first zone the zonelist would try without the walk or the
//! watermark arithmetic ([`PageAllocator::pcp_alloc_fast`]). Only when that list is empty does
//! the allocation go the full way (zonelist, watermarks, `rmqueue_bulk` refill under the zone
//! lock). The one observable difference from Linux: while the preferred zone is below its
//! low watermark, pages already on its pcp list are still handed out before a lower zone is
//! tried (Linux would fall back to the lower zone first and drain the pcp lists in its slow
//! path). The counters (`alloc_count`, `in_use`, `count`, `free_count`) move exactly as on the
//! full path.
//!
//! # Free-time checks
//! kmem checks every freed block (double free, wrong order, reserved/tail/typed page, flags
//! that must be clear) although Linux does so only with `CONFIG_DEBUG_VM`. The hot path folds
//! the checks into one combined test of the page's words ([`PageAllocator::free_page_ok`]);
//! only a failing page goes to the cold path that works out which rule it broke and prints
//! Linux's `BUG: Bad page state` for it.

use kds::list::{self, ListHead};

use super::{gfp_zone, pcp_index, PageAllocator};
use crate::addr::Order;
use crate::gfp::GfpFlags;
use crate::mm::mm_types::{pg, PagePtr, PAGE_TYPE_NONE};
use crate::mmzone::{
    MigrateType, PcpGuard, Zone, ZoneType, MIGRATE_PCPTYPES, PAGE_ALLOC_COSTLY_ORDER,
};
use crate::platform::Platform;

impl<P: Platform> PageAllocator<P> {
    /// The first zone the zonelist of `highest` tries: the highest populated zone at or
    /// below it.
    #[inline]
    pub(super) fn preferred_zone(
        &self,
        highest: ZoneType,
        nid: usize,
    ) -> Option<&Zone<P::RawLock>> {
        let zones = self.arch().zones();
        let top = zones.iter().position(|z| *z == highest).unwrap_or(0);
        zones[..=top]
            .iter()
            .rev()
            .map(|&k| self.node_zone(nid, k))
            .find(|z| z.is_populated())
    }

    /// Pops a block of `order` from the current CPU's pcp list of `zone` if the list has one;
    /// never refills and takes no lock (the fast path of `rmqueue_pcplist`).
    #[inline]
    pub(super) fn pcp_alloc_fast(
        &self,
        zone: &Zone<P::RawLock>,
        order: Order,
        mt: MigrateType,
    ) -> Option<PagePtr> {
        if zone.pcp.is_null() {
            return None;
        }
        // Lock order: cpu_section (rank 3), no lock under it; docs/LOCKING.md.
        let g = self.cpu_guard();
        // SAFETY: we hold this CPU's guard.
        let mut pcp = unsafe { zone.pcp_of(g.cpu()) };
        let l: *mut ListHead = &mut pcp.lists[pcp_index(order, mt)];
        // SAFETY: the current CPU's pcp list (guard held); its entries are pages on it.
        if unsafe { list::list_empty(l) } {
            return None;
        }
        // SAFETY: `l` is the current CPU's pcp list, which we own while holding the CPU guard `g`;
        // it is not empty, so pcp_pop takes a page that is on it.
        Some(unsafe { pcp_pop(&mut pcp, l, order) })
    }

    /// The pcp fast path of [`Self::alloc_pages`]: orders up to `PAGE_ALLOC_COSTLY_ORDER` of
    /// the pcp migratetypes, from the preferred zone's non-empty list.
    #[inline]
    pub(super) fn alloc_pages_fast(
        &self,
        gfp: GfpFlags,
        order: Order,
        nid: usize,
    ) -> Option<PagePtr> {
        let mt = MigrateType::from_gfp(gfp);
        if order.as_u32() > PAGE_ALLOC_COSTLY_ORDER || mt as usize >= MIGRATE_PCPTYPES {
            return None;
        }
        let zone = self.preferred_zone(gfp_zone(self.arch(), gfp), nid)?;
        let page = self.pcp_alloc_fast(zone, order, mt)?;
        self.prep_new_page(page, order, gfp);
        Some(page)
    }

    /// `alloc_pages_bulk`: fills the empty (`None`) slots of `pages` with order-0 pages of
    /// the current CPU's node (`numa_mem_id()`); see [`Self::alloc_pages_bulk_node`].
    #[track_caller]
    pub fn alloc_pages_bulk(&self, gfp: GfpFlags, pages: &mut [Option<PagePtr>]) -> usize {
        let nid = if self.numa.0.is_null() {
            0
        } else {
            self.numa_node_id()
        };
        self.bulk(gfp, nid, u64::MAX, pages)
    }

    /// `alloc_pages_bulk_noprof(gfp, preferred_nid, nodemask, …)` (Linux 6.18): fills the
    /// empty (`None`) slots of `pages` with order-0 pages and returns how many slots are
    /// populated from the start of the array. `nid` is the preferred node (`NUMA_NO_NODE`:
    /// the CPU's; an offline node fails as [`Self::alloc_pages_node`] does); `nodemask`
    /// (bit per node, `u64::MAX` for all) restricts the nodes.
    ///
    /// Slots that already hold a page are kept and skipped. The pages come from the pcp list
    /// of the first zone of the preferred node — the first node of `nid`'s zonelist that
    /// `nodemask` allows — whose free pages stay above its low watermark plus the number of
    /// pages asked for (refilled `batch` at a time; each page counted by
    /// `zone_statistics`). When one page is missing, or no zone of that node passes the
    /// check (Linux's `goto failed` for a zone of another node), or the list cannot be
    /// refilled before the first page, one page is allocated through the ordinary
    /// allocator with the same node and mask (with its slow path and failure warning). On
    /// failure part of the array may be filled: the return value says how far.
    #[track_caller]
    pub fn alloc_pages_bulk_node(
        &self,
        gfp: GfpFlags,
        nid: i32,
        nodemask: u64,
        pages: &mut [Option<PagePtr>],
    ) -> usize {
        let nid = if nid == super::NUMA_NO_NODE {
            if self.numa.0.is_null() {
                0
            } else {
                self.numa_node_id()
            }
        } else if nid < 0 || nid as usize >= self.nr_online_nodes() {
            if !gfp.contains(GfpFlags::__GFP_NOWARN) {
                self.warn(format_args!("{gfp} allocation from offline node {nid}"));
            }
            return pages.iter().take_while(|p| p.is_some()).count();
        } else {
            nid as usize
        };
        self.bulk(gfp, nid, nodemask, pages)
    }

    /// The body of [`Self::alloc_pages_bulk_node`] for an online preferred node.
    #[track_caller]
    fn bulk(
        &self,
        gfp: GfpFlags,
        nid: usize,
        nodemask: u64,
        pages: &mut [Option<PagePtr>],
    ) -> usize {
        let nr_pages = pages.len();
        let mut nr_populated = pages.iter().take_while(|p| p.is_some()).count();
        if nr_populated == nr_pages {
            return nr_populated;
        }
        let mt = MigrateType::from_gfp(gfp);
        let bulk_ok = nr_pages - nr_populated > 1
            && (mt as usize) < MIGRATE_PCPTYPES
            && !gfp.contains(GfpFlags::__GFP_COMP);
        // The first zone whose free pages stay above the low watermark after the whole request
        // (`zone_watermark_fast(zone, 0, wmark + nr_pages, ...)`).
        let highest = gfp_zone(self.arch(), gfp);
        let zone = if bulk_ok {
            self.bulk_zone(gfp, highest, nid, nodemask, nr_pages)
        } else {
            None
        };
        let Some(zone) = zone else {
            return self.bulk_failover(gfp, nid, nodemask, pages, nr_populated);
        };
        let mut got = 0usize;
        // One CPU section for the whole batch, as Linux holds the pcp lock.
        // Lock order: cpu_section (rank 3), &zone->lock under it (rmqueue_bulk);
        // docs/LOCKING.md.
        let g = self.cpu_guard();
        // SAFETY: we hold this CPU's guard.
        let mut pcp = unsafe { zone.pcp_of(g.cpu()) };
        let l: *mut ListHead = &mut pcp.lists[pcp_index(Order::ZERO, mt)];
        while nr_populated < nr_pages {
            if pages[nr_populated].is_some() {
                nr_populated += 1;
                continue;
            }
            // SAFETY: the current CPU's pcp list (guard held).
            if unsafe { list::list_empty(l) } {
                // nr_pcp_alloc: `high` moves into [high_min, high_max] first.
                pcp.set_high(pcp.high().max(zone.pcp_high_min).min(zone.pcp_high_max));
                let n = self.rmqueue_bulk(zone, Order::ZERO, zone.pcp_batch.max(1), mt, l);
                pcp.add_count(n);
                if n == 0 {
                    if got == 0 {
                        drop(g);
                        return self.bulk_failover(gfp, nid, nodemask, pages, nr_populated);
                    }
                    break;
                }
            }
            // SAFETY: the list is this CPU's and not empty.
            let page = unsafe { pcp_pop(&mut pcp, l, Order::ZERO) };
            self.prep_new_page(page, Order::ZERO, gfp);
            // zone_statistics(preferred zone, zone, nr_account), one page at a time.
            self.zone_statistics(nid, page);
            pages[nr_populated] = Some(page);
            nr_populated += 1;
            got += 1;
        }
        nr_populated
    }

    /// The zone `alloc_pages_bulk` takes its pages from: of the preferred node (the first
    /// node of `nid`'s zonelist in `nodemask`), the first zone in zonelist order whose free
    /// pages exceed its low watermark plus `nr_pages` and the lowmem reserve; `None` when
    /// the walk would reach another node (`alloc_pages_bulk_noprof`'s `goto failed`).
    fn bulk_zone(
        &self,
        gfp: GfpFlags,
        highest: ZoneType,
        nid: usize,
        nodemask: u64,
        nr_pages: usize,
    ) -> Option<&Zone<P::RawLock>> {
        let node = *self
            .zonelist_nodes(nid, gfp)
            .iter()
            .find(|&&n| nodemask & (1 << n) != 0)?;
        let zones = self.arch().zones();
        let top = zones.iter().position(|z| *z == highest).unwrap_or(0);
        zones[..=top]
            .iter()
            .rev()
            .map(|&k| self.node_zone(node as usize, k))
            .filter(|z| z.is_populated() && !z.pcp.is_null())
            .find(|z| {
                let reserve =
                    z.lowmem_reserve[highest.index()].load(core::sync::atomic::Ordering::Relaxed);
                z.stats.free_pages()
                    > z.wmark(crate::mmzone::WMARK_LOW)
                        .saturating_add(nr_pages)
                        .saturating_add(reserve)
            })
    }

    /// `failed:` of `alloc_pages_bulk_noprof`: one page through the normal allocator into the
    /// first empty slot.
    #[track_caller]
    fn bulk_failover(
        &self,
        gfp: GfpFlags,
        nid: usize,
        nodemask: u64,
        pages: &mut [Option<PagePtr>],
        mut nr_populated: usize,
    ) -> usize {
        let page = if self.numa.0.is_null() {
            self.alloc_pages(gfp, Order::ZERO)
        } else {
            self.alloc_pages_nid(gfp, Order::ZERO, nid, nodemask)
        };
        if let Some(p) = page {
            pages[nr_populated] = Some(p);
            nr_populated += 1;
        }
        nr_populated
    }

    /// Checks a page about to be freed; reports and returns `false` if it must not be.
    ///
    /// The common case is one combined test: a reference held, no page type (buddy, slab,
    /// page table, …), not a tail, none of the flags that must be clear, and the recorded
    /// allocation order equal to `order`.
    #[track_caller]
    #[inline]
    pub(super) fn free_page_ok(&self, page: PagePtr, order: Order) -> bool {
        let f = page.flags();
        let ok = page.refcount() > 0
            && page.raw_page_type() == PAGE_TYPE_NONE
            && page.compound_head_raw() & 1 == 0
            && f & (pg::RESERVED | pg::CHECK_AT_FREE | pg::ORDER_MASK)
                == (order.as_u32() as u64) << pg::ORDER_SHIFT;
        ok || self.free_page_bad(page, order)
    }

    /// The cold part of [`Self::free_page_ok`]: finds the rule the page breaks and reports it
    /// (in the order the checks were always made). Returns `true` only if none is broken
    /// after all.
    #[cold]
    #[inline(never)]
    #[track_caller]
    fn free_page_bad(&self, page: PagePtr, order: Order) -> bool {
        if page.refcount() <= 0 || page.is_buddy() {
            self.bad_page(
                page,
                "VM_BUG_ON_PAGE(page_ref_count(page) == 0) (double free or never allocated)",
            );
            return false;
        }
        if page.is_tail() {
            self.bad_page(page, "freeing a tail page of a compound page");
            return false;
        }
        if page.flags() & pg::RESERVED != 0 {
            self.bad_page(page, "PAGE_FLAGS_CHECK_AT_FREE flag(s) set (reserved)");
            return false;
        }
        if page.flags() & pg::CHECK_AT_FREE != 0 {
            self.bad_page(page, "PAGE_FLAGS_CHECK_AT_FREE flag(s) set");
            return false;
        }
        if page.page_type().is_some() {
            self.bad_page(page, "nonzero mapcount (page has a type)");
            return false;
        }
        let alloc_order = ((page.flags() & pg::ORDER_MASK) >> pg::ORDER_SHIFT) as u32;
        if alloc_order != order.as_u32() {
            let mut msg = crate::mm::printk::LineBuf::new();
            let _ = core::fmt::Write::write_fmt(
                &mut msg,
                format_args!(
                    "freeing order {} of a block allocated with order {}",
                    order.as_u32(),
                    alloc_order
                ),
            );
            self.bad_page(page, msg.as_str());
            return false;
        }
        true
    }
}

/// Takes the first block off a non-empty pcp list and accounts it as allocated.
///
/// # Safety
/// `l` is one of `pcp`'s lists, not empty, and `pcp` belongs to the current CPU (its guard is
/// held).
#[inline]
pub(super) unsafe fn pcp_pop(pcp: &mut PcpGuard<'_>, l: *mut ListHead, order: Order) -> PagePtr {
    // SAFETY: the caller's contract: a non-empty list of pages owned by this CPU.
    let page = unsafe {
        let page = PagePtr::from_lru((*l).next);
        list::list_del(page.lru());
        page
    };
    page.set_private(0);
    pcp.sub_count(order.pages());
    pcp.free_count >>= 1;
    pcp.note_alloc(order.pages());
    page
}
