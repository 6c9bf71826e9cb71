//! Swap areas (mm/swapfile.c): `swapon`/`swapoff`, the per-slot use counts (`swap_map`),
//! cluster-based slot allocation, priorities and `/proc/swaps`.
//!
//! # An area
//! `swap_info[type]` describes one area of `max` pages; page 0 is the header, so `pages =
//! max - 1` slots are usable (what `/proc/swaps` shows as Size). `swap_map[offset]` is the
//! slot's state, one byte as in Linux:
//!
//! ```text
//!  bit 7        bit 6            bits 0..5
//!  COUNT_CONTINUED  SWAP_HAS_CACHE   count of swap PTEs (and shmem references) naming the slot
//! ```
//!
//! `SWAP_MAP_BAD` (0x3f) marks the header page. A slot is free when its byte is 0; it is
//! allocated (`folio_alloc_swap`) with `SWAP_HAS_CACHE` set, for the page about to enter the
//! swap cache; every swap PTE installed for it adds one (`swap_duplicate`); the slot returns
//! to the free pool when both the count and the cache bit are gone (`swap_free`,
//! `put_swap_folio`). Counts above `SWAP_MAP_MAX` would need continuation pages, which kmem
//! does not have: `swap_duplicate` fails with `ENOMEM` there, and callers keep the page.
//!
//! # Slot allocation
//! Slots come in clusters of [`SWAPFILE_CLUSTER`] pages (mm/swapfile.c's `swap_cluster_info`).
//! Allocation continues in the area's current cluster, then takes a free cluster, then
//! scans the non-full ones (Linux keeps these on `free_clusters`/`nonfull_clusters` lists and
//! one current cluster per CPU; kmem keeps one current cluster per area, which gives the same
//! sequential layout to a single writer). Areas are tried by priority, highest first; areas
//! of equal priority are used round robin, as `swap_avail_heads` does.
//!
//! # Locking
//! `swap_lock` ([`SwapState::table`]) protects every area: its map, clusters, swap cache and
//! counters; the storage's I/O runs under it too (kmem's swap I/O is synchronous, like
//! `SWP_SYNCHRONOUS_IO` devices). Under it, only allocations that neither sleep nor reclaim
//! are made (swap-cache nodes), so reclaim may be entered with it free only.

use core::fmt::{self, Write};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use kds::xarray::XArray;

use crate::addr::{VirtAddr, PAGE_SIZE};
use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::locking::{Lock, SWAP_LOCK};
use crate::mm::pages_to_kb;
use crate::platform::{LogLevel, Platform};
use crate::slab::SlabLayer;
use crate::vmalloc::VmLayer;

use super::backend::SwapBackend;
use super::entry::{max_swapfile_pages, SwpEntry, MAX_SWAPFILES};

/// `SWAP_HAS_CACHE`: the slot's page is in the swap cache (or being added).
pub const SWAP_HAS_CACHE: u8 = 0x40;
/// `SWAP_MAP_MAX`: the largest count a map byte holds.
pub const SWAP_MAP_MAX: u8 = 0x3e;
/// `SWAP_MAP_BAD`: an unusable slot (the header).
pub const SWAP_MAP_BAD: u8 = 0x3f;
/// `COUNT_CONTINUED`: the count continues in a continuation page (not used by kmem).
pub const COUNT_CONTINUED: u8 = 0x80;
/// `SWAPFILE_CLUSTER`: pages per cluster (`HPAGE_PMD_NR` on x86_64 with THP swap; 256
/// otherwise, kmem's value on both architectures).
pub const SWAPFILE_CLUSTER: usize = 256;
/// Longest area name kept (the path `/proc/swaps` prints).
pub const SWAP_NAME_MAX: usize = 128;

/// kds's node allocator for the swap cache: kmalloc of the machine whose slab layer is at
/// the stored address.
pub(crate) struct SwapNodeAlloc<P: Platform>(NonNull<SlabLayer<P>>);

// SAFETY: the slab layer is Send + Sync and outlives every area (areas live in the machine's
// state, which also holds the slab layer, and are torn down by swapoff or with the machine).
unsafe impl<P: Platform> Send for SwapNodeAlloc<P> {}
// SAFETY: as for `Send`.
unsafe impl<P: Platform> Sync for SwapNodeAlloc<P> {}

impl<P: Platform> SwapNodeAlloc<P> {
    fn slab(&self) -> crate::slab::kmalloc::KmallocNodeAlloc<'_, P> {
        // SAFETY: the slab layer lives in the machine's state, never moves and outlives the
        // area owning this allocator (see the `Send` impl).
        crate::slab::kmalloc::KmallocNodeAlloc(unsafe { self.0.as_ref() })
    }
}

// SAFETY: forwards to `KmallocNodeAlloc`, which upholds the contract.
unsafe impl<P: Platform> kds::alloc::NodeAlloc for SwapNodeAlloc<P> {
    fn alloc(&self, layout: core::alloc::Layout, gfp: kds::alloc::Gfp) -> Option<NonNull<u8>> {
        self.slab().alloc(layout, gfp)
    }
    unsafe fn free(&self, ptr: NonNull<u8>, layout: core::alloc::Layout) {
        // SAFETY: forwarded from the caller, who got `ptr` from `alloc` with `layout`.
        unsafe { self.slab().free(ptr, layout) }
    }
    fn rcu(&self) -> Option<&dyn kds::rcu::RcuDomain> {
        // SAFETY: as in `slab`.
        let mm: &crate::mm::MemoryModel<P> = unsafe { self.0.as_ref() };
        Some(mm)
    }
}

/// `swap_cluster_info`: one cluster's use.
#[derive(Clone, Copy)]
struct Cluster {
    /// Slots in use (map byte non-zero), the header included for cluster 0.
    count: u16,
}

/// One area (`swap_info_struct`). Its map and clusters are vmalloc memory owned by it.
pub(crate) struct SwapArea<P: Platform> {
    name: [u8; SWAP_NAME_MAX],
    name_len: usize,
    pub(crate) prio: i32,
    /// `SWP_WRITEOK`: slots may be allocated (cleared by swapoff).
    writeok: bool,
    /// Pages of the area, the header included (`si->max`).
    max: u64,
    /// Usable slots (`si->pages`).
    pub(crate) pages: u64,
    /// Slots in use (`si->inuse_pages`).
    pub(crate) inuse_pages: u64,
    map: NonNull<u8>,
    clusters: NonNull<Cluster>,
    nr_clusters: usize,
    /// The next slot to try in the current cluster (0: none).
    cursor: u64,
    /// Where `backend` lives (a kmalloc block holding the caller's value).
    backend: NonNull<dyn SwapBackend>,
    /// The swap cache of this area (`swapper_spaces[type]`): page pointers by offset.
    pub(crate) cache: XArray<SwapNodeAlloc<P>>,
}

// SAFETY: the raw pointers are allocations owned by the area (map, clusters, backend), used
// only under swap_lock; the backend is Send + Sync by its trait bound.
unsafe impl<P: Platform> Send for SwapArea<P> {}

impl<P: Platform> SwapArea<P> {
    /// The area's path as given to swapon.
    pub(crate) fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..self.name_len]).unwrap_or("?")
    }
    pub(crate) fn map(&self) -> &[u8] {
        // SAFETY: `map` is a live allocation of `max` bytes owned by the area (see `Send`).
        unsafe { core::slice::from_raw_parts(self.map.as_ptr(), self.max as usize) }
    }
    fn map_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `map`; `&mut self` makes the access exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.map.as_ptr(), self.max as usize) }
    }
    fn clusters(&self) -> &[Cluster] {
        // SAFETY: `clusters` is a live allocation of `nr_clusters` entries owned by the area.
        unsafe { core::slice::from_raw_parts(self.clusters.as_ptr(), self.nr_clusters) }
    }
    fn clusters_mut(&mut self) -> &mut [Cluster] {
        // SAFETY: `clusters` is a live allocation of `nr_clusters` entries owned by the area.
        unsafe { core::slice::from_raw_parts_mut(self.clusters.as_ptr(), self.nr_clusters) }
    }
    pub(crate) fn backend(&self) -> &dyn SwapBackend {
        // SAFETY: the backend is a live value owned by the area until swapoff drops it.
        unsafe { self.backend.as_ref() }
    }
    /// Marks slot `off` used or free in its cluster's count.
    fn cluster_account(&mut self, off: u64, used: bool) {
        let c = &mut self.clusters_mut()[off as usize / SWAPFILE_CLUSTER];
        if used {
            c.count += 1;
        } else {
            c.count -= 1;
        }
    }
    /// A free slot, by the cluster policy of the module documentation (`cluster_alloc_swap_entry`).
    fn alloc_slot(&mut self) -> Option<u64> {
        if !self.writeok || self.inuse_pages >= self.pages {
            return None;
        }
        // 1. The current cluster, from the cursor on.
        if self.cursor != 0 {
            let end = ((self.cursor as usize / SWAPFILE_CLUSTER + 1) * SWAPFILE_CLUSTER)
                .min(self.max as usize) as u64;
            let start = self.cursor;
            if let Some(off) = (start..end).find(|&o| self.map()[o as usize] == 0) {
                return Some(off);
            }
            self.cursor = 0;
        }
        // 2. A free cluster (lowest first), 3. any cluster with a free slot.
        let n = self.nr_clusters;
        let max = self.max;
        let last = |ci: usize| ((ci + 1) * SWAPFILE_CLUSTER).min(max as usize) as u64;
        let cl = self.clusters();
        let ci = (0..n).find(|&ci| cl[ci].count == 0).or_else(|| {
            (0..n).find(|&ci| (cl[ci].count as u64) < last(ci) - (ci * SWAPFILE_CLUSTER) as u64)
        })?;
        let start = (ci * SWAPFILE_CLUSTER) as u64;
        let off = (start..last(ci)).find(|&o| self.map()[o as usize] == 0)?;
        Some(off)
    }
    /// Takes slot `off` with map byte `v` (non-zero).
    fn take_slot(&mut self, off: u64, v: u8) {
        self.map_mut()[off as usize] = v;
        self.cluster_account(off, true);
        self.inuse_pages += 1;
        self.cursor = off + 1;
    }
    /// Gives slot `off` back (its byte dropped to 0).
    fn release_slot(&mut self, off: u64) {
        self.map_mut()[off as usize] = 0;
        self.cluster_account(off, false);
        self.inuse_pages -= 1;
    }
}

/// The swap areas of a machine (`swap_info[]` and the globals of mm/swapfile.c).
pub(crate) struct SwapTable<P: Platform> {
    pub(crate) areas: [Option<SwapArea<P>>; MAX_SWAPFILES],
    /// `least_priority`: the last automatic priority given (areas get -2, -3, …).
    least_priority: i32,
    /// Round-robin hint among areas of equal priority.
    next_rr: usize,
}

/// Swap counters (`nr_swap_pages`, `total_swap_pages`, the `pswpin`/`pswpout` events and
/// `NR_SWAPCACHE`).
#[derive(Default)]
pub struct SwapStats {
    /// Free slots in areas that accept allocations (`nr_swap_pages`).
    pub nr_swap_pages: AtomicIsize,
    /// Slots of all areas (`total_swap_pages`).
    pub total_swap_pages: AtomicIsize,
    /// Pages read from swap (`PSWPIN`).
    pub pswpin: AtomicUsize,
    /// Pages written to swap (`PSWPOUT`).
    pub pswpout: AtomicUsize,
    /// Pages in the swap cache (`NR_SWAPCACHE`).
    pub swapcached: AtomicIsize,
}

/// The swap state of a machine: the areas under `swap_lock` and the counters.
pub struct SwapState<P: Platform> {
    pub(crate) table: Lock<P::RawLock, SwapTable<P>>,
    /// The counters.
    pub stats: SwapStats,
}

impl<P: Platform> Default for SwapState<P> {
    fn default() -> Self {
        Self::new()
    }
}

/// The summary `si_swapinfo` gives (pages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwapInfo {
    /// `totalswap`.
    pub total: usize,
    /// `freeswap`.
    pub free: usize,
}

impl<P: Platform> SwapState<P> {
    /// No areas.
    pub fn new() -> Self {
        Self {
            table: Lock::new(
                &SWAP_LOCK,
                SwapTable {
                    areas: [const { None }; MAX_SWAPFILES],
                    least_priority: -1,
                    next_rr: 0,
                },
            ),
            stats: SwapStats::default(),
        }
    }

    /// Attaches `swap_lock` to the machine's lock validator.
    ///
    /// # Safety
    /// Once, before the lock is first taken; `ld` outlives the lock.
    pub unsafe fn lockdep_attach(&self, ld: *const crate::locking::Lockdep) {
        // SAFETY: forwarded from the caller.
        unsafe { self.table.attach(ld) };
    }

    /// `si_swapinfo`: total and free swap in pages.
    pub fn si_swapinfo(&self) -> SwapInfo {
        let t = self.table.lock();
        let (mut total, mut used) = (0, 0);
        for a in t.areas.iter().flatten() {
            total += a.pages as usize;
            used += a.inuse_pages as usize;
        }
        SwapInfo {
            total,
            free: total - used,
        }
    }

    /// `swapon(2)` of `backend` under `name`: page 0 is the header, the rest are slots.
    /// `prio` is `SWAP_FLAG_PREFER`'s priority; without one the area gets the next
    /// automatic priority (-2, -3, …). Prints Linux's `Adding …k swap on …` line.
    ///
    /// # Errors
    /// `EBUSY` when `name` is already a swap area; `EPERM` when all [`MAX_SWAPFILES`] are
    /// used; `EINVAL` for storage of fewer than two pages (or more than a swap PTE can
    /// address) or a name longer than [`SWAP_NAME_MAX`]; `ENOMEM` when the map cannot be
    /// allocated.
    pub fn swapon<B: SwapBackend + 'static>(
        &self,
        l: &VmLayer<P>,
        name: &str,
        backend: B,
        prio: Option<i32>,
    ) -> Result<usize, Errno> {
        let max = backend.nr_pages().min(max_swapfile_pages(l.arch()));
        if max < 2 || name.is_empty() || name.len() > SWAP_NAME_MAX {
            return Err(Errno::EINVAL);
        }
        {
            let t = self.table.lock();
            if t.areas.iter().flatten().any(|a| a.name() == name) {
                return Err(Errno::EBUSY);
            }
            if t.areas.iter().all(Option::is_some) {
                return Err(Errno::EPERM);
            }
        }
        let nr_clusters = (max as usize).div_ceil(SWAPFILE_CLUSTER);
        let gfp = GfpFlags::GFP_KERNEL;
        let map = l.kvzalloc(max as usize, gfp).ok_or(Errno::ENOMEM)?;
        let Some(clusters) = l.kvzalloc(nr_clusters * core::mem::size_of::<Cluster>(), gfp) else {
            l.kvfree(map);
            return Err(Errno::ENOMEM);
        };
        let Some(bk) = l.kmalloc(core::mem::size_of::<B>().max(1), gfp) else {
            l.kvfree(map);
            l.kvfree(clusters);
            return Err(Errno::ENOMEM);
        };
        let bk = bk.cast::<B>();
        debug_assert!(bk.as_ptr().align_offset(core::mem::align_of::<B>()) == 0);
        // SAFETY: a fresh kmalloc block of at least size_of::<B>() bytes, aligned for `B`
        // (kmalloc aligns to the size's largest power-of-two divisor, at least 8, and
        // SwapBackend implementations are not over-aligned; checked in debug builds).
        unsafe { bk.as_ptr().write(backend) };
        let backend: NonNull<dyn SwapBackend> = bk;
        let mut name_buf = [0u8; SWAP_NAME_MAX];
        name_buf[..name.len()].copy_from_slice(name.as_bytes());
        let mut area = SwapArea {
            name: name_buf,
            name_len: name.len(),
            prio: 0,
            writeok: true,
            max,
            pages: max - 1,
            inuse_pages: 0,
            map: NonNull::new(map.as_usize() as *mut u8).ok_or(Errno::ENOMEM)?,
            clusters: NonNull::new(clusters.as_usize() as *mut Cluster).ok_or(Errno::ENOMEM)?,
            nr_clusters,
            cursor: 0,
            backend,
            cache: XArray::new_in(SwapNodeAlloc(NonNull::from(&**l))),
        };
        // The header page is never a slot (`swap_map[0] = SWAP_MAP_BAD`), nor counted in use.
        area.map_mut()[0] = SWAP_MAP_BAD;
        area.clusters_mut()[0].count = 1;
        let mut t = self.table.lock();
        let Some(ty) = t.areas.iter().position(Option::is_none) else {
            drop(t);
            self.free_area(l, area);
            return Err(Errno::EPERM);
        };
        area.prio = match prio {
            Some(p) => p,
            None => {
                t.least_priority -= 1;
                t.least_priority
            }
        };
        let (pages, prio) = (area.pages, area.prio);
        t.areas[ty] = Some(area);
        drop(t);
        self.stats
            .nr_swap_pages
            .fetch_add(pages as isize, Ordering::Relaxed);
        self.stats
            .total_swap_pages
            .fetch_add(pages as isize, Ordering::Relaxed);
        // mm/swapfile.c enable_swap_info → "Adding %uk swap on %s.  Priority:%d extents:%d
        // across:%lluk %s%s%s%s" (no SS/D/DS/DC flags for a file on kmem's storage).
        l.printk(
            LogLevel::Info,
            format_args!(
                "Adding {}k swap on {}.  Priority:{} extents:1 across:{}k ",
                pages_to_kb(pages as usize),
                name,
                prio,
                pages_to_kb(pages as usize)
            ),
        );
        Ok(ty)
    }

    /// Frees an area's memory and drops its storage (closing a host file).
    fn free_area(&self, l: &VmLayer<P>, mut area: SwapArea<P>) {
        area.cache.destroy();
        // Nodes the cache retired wait for a grace period; after one, no reader can be in
        // them and they are freed now rather than never (the array is going away).
        l.synchronize_rcu();
        area.cache.reclaim();
        l.kvfree(VirtAddr::new(area.map.as_ptr() as usize));
        l.kvfree(VirtAddr::new(area.clusters.as_ptr() as usize));
        let bk = area.backend;
        drop(area);
        // SAFETY: the backend was written into this kmalloc block by swapon and is dropped
        // exactly once, here, after the area (its only user) is gone.
        unsafe { core::ptr::drop_in_place(bk.as_ptr()) };
        l.kfree(bk.as_ptr().cast::<u8>());
    }

    /// `swapoff(2)`: stops allocation from the area `name`, has `unuse` bring every page it
    /// holds back into memory (`try_to_unuse`: the caller walks every address space and swaps
    /// in each entry of this type), then frees the area and closes its storage. Priorities of
    /// later automatic areas move up by one, as Linux's `least_priority++`.
    ///
    /// # Errors
    /// `EINVAL` when `name` is not a swap area; `ENOMEM` when memory cannot take its pages
    /// back; `unuse`'s error. On error the area is in use again, unchanged.
    pub fn swapoff(
        &self,
        l: &VmLayer<P>,
        name: &str,
        unuse: &mut dyn FnMut(usize) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        let (ty, pages, inuse) = {
            let mut t = self.table.lock();
            let ty = t
                .areas
                .iter()
                .position(|a| a.as_ref().is_some_and(|a| a.name() == name && a.writeok))
                .ok_or(Errno::EINVAL)?;
            let a = t.areas[ty].as_mut().ok_or(Errno::EINVAL)?;
            a.writeok = false;
            (ty, a.pages, a.inuse_pages)
        };
        self.stats
            .nr_swap_pages
            .fetch_sub((pages - inuse) as isize, Ordering::Relaxed);
        // try_to_unuse: the caller swaps every entry of this type back in (failing with
        // ENOMEM when memory cannot take them).
        let r = unuse(ty);
        let mut t = self.table.lock();
        let a = t.areas[ty].as_mut().ok_or(Errno::EINVAL)?;
        let r = r.and_then(|()| (a.inuse_pages == 0).then_some(()).ok_or(Errno::EBUSY));
        if let Err(e) = r {
            a.writeok = true;
            let back = (a.pages - a.inuse_pages) as isize;
            drop(t);
            self.stats.nr_swap_pages.fetch_add(back, Ordering::Relaxed);
            return Err(e);
        }
        let area = t.areas[ty].take().ok_or(Errno::EINVAL)?;
        if area.prio < 0 {
            let removed = area.prio;
            for o in t.areas.iter_mut().flatten() {
                if o.prio < removed {
                    o.prio += 1;
                }
            }
            t.least_priority += 1;
        }
        drop(t);
        self.stats
            .total_swap_pages
            .fetch_sub(area.pages as isize, Ordering::Relaxed);
        self.free_area(l, area);
        Ok(())
    }

    /// Tears every area down without swapping anything in (the machine is going away).
    pub fn swapoff_all_unused(&self, l: &VmLayer<P>) {
        loop {
            let area = {
                let mut t = self.table.lock();
                match t.areas.iter_mut().find(|a| a.is_some()) {
                    Some(a) => a.take(),
                    None => None,
                }
            };
            let Some(area) = area else { break };
            self.free_area(l, area);
        }
    }

    /// The area to allocate from: the highest priority with a free slot, round robin among
    /// equal priorities (`swap_avail_heads`).
    fn pick_area(t: &mut SwapTable<P>) -> Option<usize> {
        let best = t
            .areas
            .iter()
            .flatten()
            .filter(|a| a.writeok && a.inuse_pages < a.pages)
            .map(|a| a.prio)
            .max()?;
        let n = MAX_SWAPFILES;
        let start = t.next_rr;
        let ty = (0..n).map(|i| (start + i) % n).find(|&i| {
            t.areas[i]
                .as_ref()
                .is_some_and(|a| a.writeok && a.inuse_pages < a.pages && a.prio == best)
        })?;
        t.next_rr = ty + 1;
        Some(ty)
    }

    /// `folio_alloc_swap` / `get_swap_pages`: a free slot, taken with `SWAP_HAS_CACHE` set
    /// for the page about to enter the swap cache. `None` when every area is full or none
    /// accepts allocations.
    pub fn get_swap_page(&self) -> Option<SwpEntry> {
        let mut t = self.table.lock();
        for _ in 0..MAX_SWAPFILES {
            let ty = Self::pick_area(&mut t)?;
            let a = t.areas[ty].as_mut()?;
            if let Some(off) = a.alloc_slot() {
                a.take_slot(off, SWAP_HAS_CACHE);
                drop(t);
                self.stats.nr_swap_pages.fetch_sub(1, Ordering::Relaxed);
                return Some(SwpEntry::new(ty, off));
            }
        }
        None
    }

    /// Runs `f` on the map byte of `e` under swap_lock; `None` for an entry naming no area
    /// or a slot outside it (reported as Linux's `Bad swap file entry`/`Bad swap offset entry`
    /// by the callers that must).
    fn with_slot<R>(&self, e: SwpEntry, f: impl FnOnce(&mut SwapArea<P>, usize) -> R) -> Option<R> {
        let mut t = self.table.lock();
        let a = t.areas.get_mut(e.swp_type())?.as_mut()?;
        let off = e.offset();
        if off == 0 || off >= a.max {
            return None;
        }
        Some(f(a, off as usize))
    }

    /// Reports a swap entry that names no slot (`Bad swap file entry %lx` /
    /// `Bad swap offset entry %lx`, mm/swapfile.c `_swap_info_get`).
    fn bad_entry(&self, l: &VmLayer<P>, e: SwpEntry) {
        let t = self.table.lock();
        let known = t.areas.get(e.swp_type()).is_some_and(Option::is_some);
        drop(t);
        let what = if known { "offset" } else { "file" };
        l.printk(
            LogLevel::Err,
            format_args!("swap_info_get: Bad swap {} entry {:016x}", what, e.val()),
        );
    }

    /// `swap_duplicate`: one more swap PTE names `e` (a PTE copied by fork, or installed by
    /// `try_to_unmap`).
    ///
    /// # Errors
    /// `EINVAL` for an entry naming no slot in use (reported); `ENOMEM` when the count is at
    /// `SWAP_MAP_MAX` (kmem has no continuation pages).
    pub fn swap_duplicate(&self, l: &VmLayer<P>, e: SwpEntry) -> Result<(), Errno> {
        let r = self.with_slot(e, |a, off| {
            let v = a.map()[off];
            let count = v & !SWAP_HAS_CACHE;
            if v == 0 || v == SWAP_MAP_BAD {
                Err(Errno::EINVAL)
            } else if count >= SWAP_MAP_MAX {
                Err(Errno::ENOMEM)
            } else {
                a.map_mut()[off] = v + 1;
                Ok(())
            }
        });
        match r {
            Some(Err(Errno::EINVAL)) | None => {
                self.bad_entry(l, e);
                Err(Errno::EINVAL)
            }
            Some(r) => r,
        }
    }

    /// Drops `delta` from the count (`usage` 1) or the cache bit (`SWAP_HAS_CACHE`) of `e`;
    /// frees the slot when nothing is left (`__swap_entry_free`). Returns the byte left.
    fn entry_put(&self, l: &VmLayer<P>, e: SwpEntry, usage: u8) -> Option<u8> {
        let r = self.with_slot(e, |a, off| {
            let v = a.map()[off];
            let ok = if usage == SWAP_HAS_CACHE {
                v & SWAP_HAS_CACHE != 0
            } else {
                v & !SWAP_HAS_CACHE != 0 && v != SWAP_MAP_BAD
            };
            if !ok {
                return None;
            }
            let left = v - usage;
            if left == 0 {
                a.release_slot(off as u64);
            } else {
                a.map_mut()[off] = left;
            }
            Some(left)
        });
        match r.flatten() {
            Some(0) => {
                self.stats.nr_swap_pages.fetch_add(1, Ordering::Relaxed);
                Some(0)
            }
            Some(v) => Some(v),
            None => {
                self.bad_entry(l, e);
                None
            }
        }
    }

    /// `swap_free`: a swap PTE naming `e` is gone (swapped in, unmapped, or its task
    /// exited). Returns the map byte left (0: the slot is free again).
    pub fn swap_free(&self, l: &VmLayer<P>, e: SwpEntry) -> Option<u8> {
        self.entry_put(l, e, 1)
    }

    /// `put_swap_folio` / `swapcache_clear`: the page of `e` left the swap cache (or never
    /// entered it); frees the slot when no PTE names it.
    pub fn put_swap_folio(&self, l: &VmLayer<P>, e: SwpEntry) -> Option<u8> {
        self.entry_put(l, e, SWAP_HAS_CACHE)
    }

    /// `swapcache_prepare`: claims `SWAP_HAS_CACHE` of a slot that PTEs name, before its page
    /// is read into the swap cache.
    ///
    /// # Errors
    /// `EBUSY` (Linux's `-EEXIST`) when another page holds the cache bit; `ENOENT` when no
    /// PTE names the slot any more.
    pub fn swapcache_prepare(&self, e: SwpEntry) -> Result<(), Errno> {
        self.with_slot(e, |a, off| {
            let v = a.map()[off];
            if v & SWAP_HAS_CACHE != 0 {
                Err(Errno::EBUSY)
            } else if v == 0 || v == SWAP_MAP_BAD {
                Err(Errno::ENOENT)
            } else {
                a.map_mut()[off] = v | SWAP_HAS_CACHE;
                Ok(())
            }
        })
        .unwrap_or(Err(Errno::ENOENT))
    }

    /// `__swap_count`: the number of swap PTEs naming `e` (0 for an entry naming no slot).
    pub fn swap_count(&self, e: SwpEntry) -> u8 {
        self.with_slot(e, |a, off| {
            let v = a.map()[off];
            if v == SWAP_MAP_BAD {
                0
            } else {
                v & !SWAP_HAS_CACHE
            }
        })
        .unwrap_or(0)
    }

    /// The raw map byte of `e` (tests, debugging).
    pub fn swap_map_byte(&self, e: SwpEntry) -> Option<u8> {
        self.with_slot(e, |a, off| a.map()[off])
    }

    /// `vm_swap_full`: more than half of all swap is in use.
    pub fn vm_swap_full(&self) -> bool {
        let total = self.stats.total_swap_pages.load(Ordering::Relaxed);
        let free = self.stats.nr_swap_pages.load(Ordering::Relaxed);
        free * 2 < total
    }

    /// Free slots (`get_nr_swap_pages`).
    pub fn nr_swap_pages(&self) -> usize {
        self.stats.nr_swap_pages.load(Ordering::Relaxed).max(0) as usize
    }

    /// Whether any area has been swapped on.
    pub fn has_swap(&self) -> bool {
        self.stats.total_swap_pages.load(Ordering::Relaxed) > 0
    }

    /// `/proc/swaps` (mm/swapfile.c `swap_show`): the header, then per area the path padded
    /// to 40 columns, the type, Size and Used in kB and the priority.
    pub fn show_swaps(&self, out: &mut dyn Write) -> fmt::Result {
        out.write_str("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")?;
        let t = self.table.lock();
        for a in t.areas.iter().flatten() {
            if !a.writeok && a.inuse_pages == 0 && a.pages == 0 {
                continue;
            }
            let name = a.name();
            let pad = if name.len() < 40 { 40 - name.len() } else { 1 };
            let bytes = pages_to_kb(a.pages as usize);
            let inuse = pages_to_kb(a.inuse_pages as usize);
            // `seq_file_path` escapes " \t\n\\" as octal.
            for c in name.chars() {
                match c {
                    ' ' | '\t' | '\n' | '\\' => write!(out, "\\{:03o}", c as u32)?,
                    c => out.write_char(c)?,
                }
            }
            writeln!(
                out,
                "{:pad$}file\t\t{}\t{}{}\t{}{}",
                "",
                bytes,
                if bytes < 10_000_000 { "\t" } else { "" },
                inuse,
                if inuse < 10_000_000 { "\t" } else { "" },
                a.prio,
                pad = pad
            )?;
        }
        Ok(())
    }

    /// Reads slot `e`'s page into `buf` (`swap_read_folio`), counting `pswpin`.
    ///
    /// # Errors
    /// `EIO` from the storage; `EINVAL` for an entry naming no slot.
    pub fn read_slot(&self, e: SwpEntry, buf: &mut [u8; PAGE_SIZE]) -> Result<(), Errno> {
        self.with_slot(e, |a, off| a.backend().read_page(off as u64, buf))
            .ok_or(Errno::EINVAL)?
            .map_err(|_| Errno::EIO)?;
        self.stats.pswpin.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Writes `buf` to slot `e` (`swap_writepage`), counting `pswpout`.
    ///
    /// # Errors
    /// `EIO` from the storage; `EINVAL` for an entry naming no slot.
    pub fn write_slot(&self, e: SwpEntry, buf: &[u8; PAGE_SIZE]) -> Result<(), Errno> {
        self.with_slot(e, |a, off| a.backend().write_page(off as u64, buf))
            .ok_or(Errno::EINVAL)?
            .map_err(|_| Errno::EIO)?;
        self.stats.pswpout.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
