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
//! `put_swap_folio`).
//!
//! # Count continuation
//! A byte counts up to `SWAP_MAP_MAX` (62). Beyond, the count continues in continuation
//! pages, as mm/swapfile.c's `add_swap_count_continuation`/`swap_count_continued`: each page
//! of `swap_map` gets, on demand, a chain of zeroed pages whose byte at the same offset is one
//! more digit of the count, `SWAP_CONT_MAX + 1` (128) times the previous one's base
//! (the map byte's base is `SWAP_MAP_MAX + 1`, 63). `COUNT_CONTINUED` in a byte says the
//! digits after it are not all 0. So a slot named by 63 PTEs reads `COUNT_CONTINUED | 0` in
//! `swap_map` and 1 in its first continuation page; going back to 62 gives `SWAP_MAP_MAX`
//! again. `swap_duplicate` adds a continuation page when the digits it has are full (Linux's
//! `GFP_ATOMIC` retry); the pages stay until swapoff (`free_swap_count_continuations`).
//! kmem keeps at most [`SWAP_CONT_LEVELS`] pages per chain, counting beyond 2^50.
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
use core::sync::atomic::{AtomicIsize, Ordering};

use kds::xarray::XArray;

use crate::addr::{VirtAddr, PAGE_SIZE};
use crate::errno::Errno;
use crate::gfp::GfpFlags;
use crate::locking::{Lock, SWAP_LOCK};
use crate::mm::{pages_to_kb, NodeStat, VmEvent};
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
/// `COUNT_CONTINUED`: the count continues in a continuation page.
pub const COUNT_CONTINUED: u8 = 0x80;
/// `SWAP_CONT_MAX`: the largest digit of a continuation byte.
pub const SWAP_CONT_MAX: u8 = 0x7f;
/// Continuation pages per `swap_map` page at most (kmem's bound; Linux's chains are bounded
/// only by memory).
pub const SWAP_CONT_LEVELS: usize = 8;
/// `SWAPFILE_CLUSTER`: pages per cluster (`HPAGE_PMD_NR` on x86_64 with THP swap; 256
/// otherwise, kmem's value on both architectures).
pub const SWAPFILE_CLUSTER: usize = 256;
/// Longest area name kept (the path `/proc/swaps` prints).
pub const SWAP_NAME_MAX: usize = 128;

/// GFP for swap-cache and continuation nodes under `swap_lock`: may not sleep or reclaim
/// (reclaim may be the caller), may use the reserves as reclaim's `PF_MEMALLOC` allows.
pub(super) fn node_gfp() -> kds::alloc::Gfp {
    kds::alloc::Gfp::from_bits((GfpFlags::__GFP_MEMALLOC | GfpFlags::__GFP_NOWARN).bits())
}

/// kds's node allocator for the swap cache: kmalloc of the machine whose slab layer is at
/// the stored address.
pub(crate) struct SwapNodeAlloc<P: Platform>(NonNull<SlabLayer<P>>);

// SAFETY: the slab layer is Send + Sync and outlives every area (areas live in the machine's
// state, which also holds the slab layer, and are torn down by swapoff or with the machine).
unsafe impl<P: Platform> Send for SwapNodeAlloc<P> {}
// SAFETY: `&SwapNodeAlloc` only hands out `&SlabLayer<P>`, and the slab layer is Sync and outlives
// every area that holds this allocator, so sharing it between threads shares only that Sync layer.
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
        // SAFETY: `self.0` is the machine's memory model (the slab layer derefs to it), which lives
        // in the machine's state, never moves and outlives the area owning this allocator.
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
    /// Count-continuation pages (direct-map addresses), at `map page * SWAP_CONT_LEVELS +
    /// level - 1` for levels 1 and up.
    cont: XArray<SwapNodeAlloc<P>>,
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
        // SAFETY: `map` is a live allocation of `max` bytes owned by the area, and `&mut self`
        // makes this the only reference into it.
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
    /// The byte of slot `off` in continuation page `level` (1 and up), if the page exists.
    fn cont_byte(&self, off: usize, level: usize) -> Option<NonNull<u8>> {
        let key = off / PAGE_SIZE * SWAP_CONT_LEVELS + level - 1;
        let page = self.cont.load(key)?.as_ptr::<u8>()?;
        // SAFETY: a continuation page (PAGE_SIZE bytes) owned by the area; the offset is
        // inside it.
        Some(unsafe { page.add(off % PAGE_SIZE) })
    }

    /// Continuation pages of the `swap_map` page holding slot `off`.
    fn cont_levels(&self, off: usize) -> usize {
        (1..=SWAP_CONT_LEVELS)
            .take_while(|&lv| self.cont_byte(off, lv).is_some())
            .count()
    }

    /// The number of swap PTEs naming slot `off`, continuation included.
    fn full_count(&self, off: usize) -> u64 {
        let v = self.map()[off];
        let mut count = u64::from(v & !(SWAP_HAS_CACHE | COUNT_CONTINUED));
        let mut base = u64::from(SWAP_MAP_MAX) + 1;
        let mut more = v & COUNT_CONTINUED != 0;
        let mut level = 1;
        while more {
            // SAFETY: a byte of a continuation page of the area (see `cont_byte`).
            let Some(b) = self
                .cont_byte(off, level)
                .map(|p| unsafe { p.as_ptr().read() })
            else {
                break;
            };
            count += u64::from(b & !COUNT_CONTINUED) * base;
            base *= u64::from(SWAP_CONT_MAX) + 1;
            more = b & COUNT_CONTINUED != 0;
            level += 1;
        }
        count
    }

    /// Writes `count` for slot `off` into its map byte (keeping `SWAP_HAS_CACHE`) and its
    /// continuation bytes; `false` (nothing written) when it needs a continuation page the
    /// chain does not have.
    fn set_full_count(&mut self, off: usize, count: u64) -> bool {
        let base0 = u64::from(SWAP_MAP_MAX) + 1;
        let base = u64::from(SWAP_CONT_MAX) + 1;
        let mut digits = [0u8; SWAP_CONT_LEVELS + 1];
        let mut rest = count / base0;
        digits[0] = (count % base0) as u8;
        let mut n = 1;
        while rest > 0 {
            if n > self.cont_levels(off) {
                return false;
            }
            digits[n] = (rest % base) as u8;
            rest /= base;
            n += 1;
        }
        let cache = self.map()[off] & SWAP_HAS_CACHE;
        let cont = |i: usize| if i + 1 < n { COUNT_CONTINUED } else { 0 };
        self.map_mut()[off] = digits[0] | cont(0) | cache;
        for (lv, &d) in digits.iter().enumerate().take(n).skip(1) {
            if let Some(p) = self.cont_byte(off, lv) {
                // SAFETY: a byte of a continuation page of the area, written under swap_lock
                // (`&mut self`).
                unsafe { p.as_ptr().write(d | cont(lv)) };
            }
        }
        true
    }

    /// Gives slot `off` back (its byte dropped to 0).
    fn release_slot(&mut self, off: u64) {
        self.map_mut()[off as usize] = 0;
        self.cluster_account(off, false);
        self.inuse_pages -= 1;
    }
}

/// A [`SwapArea`] in a kmalloc block (`alloc_swap_info`'s kzalloc), owned by the table
/// (so that the table in the machine's state stays small).
pub(crate) struct AreaBox<P: Platform>(NonNull<SwapArea<P>>);

// SAFETY: the box owns its area, which is Send.
unsafe impl<P: Platform> Send for AreaBox<P> {}

impl<P: Platform> core::ops::Deref for AreaBox<P> {
    type Target = SwapArea<P>;
    fn deref(&self) -> &SwapArea<P> {
        // SAFETY: the block holds a live area until `free_area` takes it out.
        unsafe { self.0.as_ref() }
    }
}

impl<P: Platform> core::ops::DerefMut for AreaBox<P> {
    fn deref_mut(&mut self) -> &mut SwapArea<P> {
        // SAFETY: the block holds a live area until `free_area` takes it out (which consumes the
        // `AreaBox`), and `&mut self` makes this the only reference to it.
        unsafe { self.0.as_mut() }
    }
}

/// The swap areas of a machine (`swap_info[]` and the globals of mm/swapfile.c).
pub(crate) struct SwapTable<P: Platform> {
    pub(crate) areas: [Option<AreaBox<P>>; MAX_SWAPFILES],
    /// `least_priority`: the last automatic priority given (areas get -2, -3, …).
    least_priority: i32,
    /// Round-robin hint among areas of equal priority.
    next_rr: usize,
}

/// Swap counters (`nr_swap_pages`, `total_swap_pages`, `NR_SWAPCACHE`); the `pswpin`/
/// `pswpout` events are the machine's vm events ([`crate::mm::VmEvent`]).
#[derive(Default)]
pub struct SwapStats {
    /// Free slots in areas that accept allocations (`nr_swap_pages`).
    pub nr_swap_pages: AtomicIsize,
    /// Slots of all areas (`total_swap_pages`).
    pub total_swap_pages: AtomicIsize,
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

    /// `nr_swap_pages += d`, mirrored in the machine's `SwapFree` counter.
    fn free_add(&self, l: &VmLayer<P>, d: isize) {
        self.stats.nr_swap_pages.fetch_add(d, Ordering::Relaxed);
        l.mod_node_stat(NodeStat::SwapFree, d);
    }
    /// `total_swap_pages += d`, mirrored in the machine's `SwapTotal` counter.
    fn total_add(&self, l: &VmLayer<P>, d: isize) {
        self.stats.total_swap_pages.fetch_add(d, Ordering::Relaxed);
        l.mod_node_stat(NodeStat::SwapTotal, d);
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
            cont: XArray::new_in(SwapNodeAlloc(NonNull::from(&**l))),
        };
        // The header page is never a slot (`swap_map[0] = SWAP_MAP_BAD`), nor counted in use.
        area.map_mut()[0] = SWAP_MAP_BAD;
        area.clusters_mut()[0].count = 1;
        let Some(blk) = l.kmalloc(core::mem::size_of::<SwapArea<P>>(), gfp) else {
            self.free_area_value(l, area);
            return Err(Errno::ENOMEM);
        };
        let blk = blk.cast::<SwapArea<P>>();
        // SAFETY: a fresh kmalloc block of the area's size, aligned (kmalloc aligns to at
        // least 8, all the area needs).
        unsafe { blk.as_ptr().write(area) };
        let mut area = AreaBox(blk);
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
        self.free_add(l, pages as isize);
        self.total_add(l, pages as isize);
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

    /// Frees an area, its memory and its storage (closing a host file).
    fn free_area(&self, l: &VmLayer<P>, area: AreaBox<P>) {
        // SAFETY: the box owns the area; it is read out once and the block freed.
        let v = unsafe { area.0.as_ptr().read() };
        l.kfree(area.0.as_ptr().cast::<u8>());
        self.free_area_value(l, v);
    }

    /// Frees an area's memory and drops its storage.
    fn free_area_value(&self, l: &VmLayer<P>, mut area: SwapArea<P>) {
        // free_swap_count_continuations
        for (_, e) in area.cont.iter() {
            if let Some(p) = e.as_ptr::<u8>() {
                l.free_page(VirtAddr::new(p.as_ptr() as usize));
            }
        }
        area.cont.destroy();
        area.cont.reclaim();
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
        self.free_add(l, -((pages - inuse) as isize));
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
            self.free_add(l, back);
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
        self.total_add(l, -(area.pages as isize));
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
    pub fn get_swap_page(&self, l: &VmLayer<P>) -> Option<SwpEntry> {
        let mut t = self.table.lock();
        for _ in 0..MAX_SWAPFILES {
            let ty = Self::pick_area(&mut t)?;
            let a = t.areas[ty].as_mut()?;
            if let Some(off) = a.alloc_slot() {
                a.take_slot(off, SWAP_HAS_CACHE);
                drop(t);
                self.free_add(l, -1);
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
    /// `try_to_unmap`). Past `SWAP_MAP_MAX` the count continues in continuation pages, added
    /// as needed (`add_swap_count_continuation`, without reclaim).
    ///
    /// # Errors
    /// `EINVAL` for an entry naming no slot in use (reported); `ENOMEM` when a continuation
    /// page is needed and cannot be allocated.
    pub fn swap_duplicate(&self, l: &VmLayer<P>, e: SwpEntry) -> Result<(), Errno> {
        loop {
            let r = self.with_slot(e, |a, off| {
                let v = a.map()[off];
                if v == 0 || v == SWAP_MAP_BAD {
                    Err(Errno::EINVAL)
                } else if v & !(SWAP_HAS_CACHE | COUNT_CONTINUED) < SWAP_MAP_MAX {
                    a.map_mut()[off] = v + 1;
                    Ok(())
                } else {
                    let count = a.full_count(off);
                    if a.set_full_count(off, count + 1) {
                        Ok(())
                    } else {
                        Err(Errno::ENOMEM)
                    }
                }
            });
            match r {
                Some(Err(Errno::ENOMEM)) => self.add_swap_count_continuation(l, e)?,
                Some(Err(_)) | None => {
                    self.bad_entry(l, e);
                    return Err(Errno::EINVAL);
                }
                Some(Ok(())) => return Ok(()),
            }
        }
    }

    /// `add_swap_count_continuation`: one more continuation page in the chain of the
    /// `swap_map` page holding `e`'s slot, unless the chain already has room.
    ///
    /// # Errors
    /// `ENOMEM`: no page, or the chain is at [`SWAP_CONT_LEVELS`].
    fn add_swap_count_continuation(&self, l: &VmLayer<P>, e: SwpEntry) -> Result<(), Errno> {
        let gfp = GfpFlags::GFP_ATOMIC | GfpFlags::__GFP_NOWARN;
        let page = l.get_zeroed_page(gfp).ok_or(Errno::ENOMEM)?;
        let entry = NonNull::new(page.as_ptr::<u8>()).and_then(kds::xarray::XaEntry::from_ptr);
        let added = self.with_slot(e, |a, off| {
            let levels = a.cont_levels(off);
            if levels >= SWAP_CONT_LEVELS {
                return Err(Errno::ENOMEM);
            }
            let key = off / PAGE_SIZE * SWAP_CONT_LEVELS + levels;
            a.cont
                .insert(key, entry, node_gfp())
                .map_err(|_| Errno::ENOMEM)
        });
        if !matches!(added, Some(Ok(()))) {
            l.free_page(page);
        }
        added.unwrap_or(Err(Errno::EINVAL))
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
            if usage != SWAP_HAS_CACHE && v & !SWAP_HAS_CACHE == COUNT_CONTINUED {
                // swap_count_continued down: borrow from the continuation.
                let count = a.full_count(off);
                a.set_full_count(off, count - 1);
                return Some((a.map()[off], a.writeok));
            }
            let left = v - usage;
            if left == 0 {
                a.release_slot(off as u64);
            } else {
                a.map_mut()[off] = left;
            }
            Some((left, a.writeok))
        });
        match r.flatten() {
            Some((0, writeok)) => {
                // A slot of an area being swapped off is not free for allocation
                // (swapoff took the area's free slots out of nr_swap_pages).
                if writeok {
                    self.free_add(l, 1);
                }
                Some(0)
            }
            Some((v, _)) => Some(v),
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

    /// `swap_swapcount`: the number of swap PTEs naming `e`, continuation included (0 for
    /// an entry naming no slot).
    pub fn swap_count(&self, e: SwpEntry) -> u64 {
        self.with_slot(e, |a, off| {
            if a.map()[off] == SWAP_MAP_BAD {
                0
            } else {
                a.full_count(off)
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
    ///
    /// Each area's line is copied out under the table's lock and written after it is
    /// dropped: `out` may allocate (a `String` growing through kmalloc), an allocation may
    /// reclaim, and reclaim takes this lock (`delete_from_swap_cache`). Linux's `swap_show`
    /// writes into the seq_file buffer that `seq_read` allocated before `swap_start`.
    pub fn show_swaps(&self, out: &mut dyn Write) -> fmt::Result {
        out.write_str("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")?;
        for ty in 0..MAX_SWAPFILES {
            let mut name = [0u8; SWAP_NAME_MAX];
            let row = {
                let t = self.table.lock();
                t.areas[ty].as_ref().and_then(|a| {
                    if !a.writeok && a.inuse_pages == 0 && a.pages == 0 {
                        return None;
                    }
                    name[..a.name_len].copy_from_slice(&a.name[..a.name_len]);
                    Some((a.name_len, a.pages, a.inuse_pages, a.prio))
                })
            };
            let Some((len, pages, inuse, prio)) = row else {
                continue;
            };
            let name = core::str::from_utf8(&name[..len]).unwrap_or("?");
            let pad = if name.len() < 40 { 40 - name.len() } else { 1 };
            let bytes = pages_to_kb(pages as usize);
            let inuse = pages_to_kb(inuse as usize);
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
                prio,
                pad = pad
            )?;
        }
        Ok(())
    }

    /// Reads slot `e`'s page into `buf` (`swap_read_folio`), counting `pswpin`.
    ///
    /// # Errors
    /// `EIO` from the storage; `EINVAL` for an entry naming no slot.
    pub fn read_slot(
        &self,
        l: &VmLayer<P>,
        e: SwpEntry,
        buf: &mut [u8; PAGE_SIZE],
    ) -> Result<(), Errno> {
        self.with_slot(e, |a, off| a.backend().read_page(off as u64, buf))
            .ok_or(Errno::EINVAL)?
            .map_err(|_| Errno::EIO)?;
        l.count_vm_events(VmEvent::PswpIn, 1);
        Ok(())
    }

    /// Writes `buf` to slot `e` (`swap_writepage`), counting `pswpout`.
    ///
    /// # Errors
    /// `EIO` from the storage; `EINVAL` for an entry naming no slot.
    pub fn write_slot(
        &self,
        l: &VmLayer<P>,
        e: SwpEntry,
        buf: &[u8; PAGE_SIZE],
    ) -> Result<(), Errno> {
        self.with_slot(e, |a, off| a.backend().write_page(off as u64, buf))
            .ok_or(Errno::EINVAL)?
            .map_err(|_| Errno::EIO)?;
        l.count_vm_events(VmEvent::PswpOut, 1);
        Ok(())
    }
}
