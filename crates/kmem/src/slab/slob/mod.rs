//! SLOB: the Simple List Of Blocks allocator (mm/slob.c of Linux 6.3, removed in 6.4).
//!
//! A K&R-style heap on pages from the page allocator. Every SLOB page holds blocks of any size
//! in 2-byte units ([`SLOB_UNIT`], `slob_t`); its free blocks form an address-ordered,
//! singly-linked list inside the page. A free block of one unit holds `-offset` of the next
//! free block; a larger one holds its size in units, then the offset of the next (offsets in
//! units from the page start; the page end terminates the list):
//!
//! ```text
//! one SLOB page (4096 bytes = 2048 units), page->freelist -> first free block
//! | used | free: [units][next] ... | used | used | free: [-next] | used | free: [units][2048] |
//! ```
//!
//! Pages that have free room sit on one of three lists by the size of the request that
//! created or last freed into them: `free_slob_small` (< [`SLOB_BREAK1`] = 256 bytes),
//! `free_slob_medium` (< [`SLOB_BREAK2`] = 1024) and `free_slob_large`. Allocation walks its
//! list (next fit): the first page with enough free units whose first-fit scan succeeds
//! serves the request, and the list is rotated so the next search starts at that page (Knuth
//! vol. 1, 2.5). A page with no room leaves its list; a page becoming partly free again goes
//! back on the list of the freed size; a page becoming wholly free goes back to the page
//! allocator at once.
//!
//! On top of it (see `cache`):
//! - **kmalloc**: a request under `PAGE_SIZE - minalign` becomes a block of `size + minalign`
//!   bytes whose first `minalign` (= max(`ARCH_KMALLOC_MINALIGN`, `ARCH_SLAB_MINALIGN`) = 8)
//!   bytes hold the size (`unsigned int`); the caller gets the address after it, aligned to
//!   `minalign`, or to `size` for a power-of-two size (natural alignment). `ksize` is the size
//!   rounded up to units. Larger requests are compound pages from the page allocator
//!   (`kmalloc_large`), `ksize` their page size.
//! - **kmem_cache** is emulated: a cache is its size (rounded to units, plus the RCU footer
//!   for `SLAB_TYPESAFE_BY_RCU`), alignment, flags and constructor; objects under `PAGE_SIZE`
//!   are SLOB blocks, larger ones pages. The constructor runs on every allocation. Caches are
//!   never merged. There is no `/proc/slabinfo`.
//!
//! SLOB pages are `PageType::Slab` with no cache (`mapping` 0), counted in the node's
//! `NR_SLAB_UNRECLAIMABLE_B` as Linux 6.3's `slob_new_pages` does, so /proc/meminfo's Slab
//! and SUnreclaim include them. A page's `struct page` fields: `private` = free units
//! (`sp->units`) plus [`PG_SLOB_FREE`] (`PageSlobFree`: on a list), `index` = the address of
//! the first free block (`sp->freelist`), `lru` = the list link.
//!
//! # Locking
//! One lock, `slob_lock` ([`crate::locking::SLOB_LOCK`]), protects the three lists and every
//! page's free-block list, `units` and `freelist` (Linux's `spin_lock_irqsave(&slob_lock)`).
//! Order: `slab_mutex` → `slob_lock`; the page allocator's locks are never taken under
//! `slob_lock` (new pages are allocated before it is taken, empty pages freed after it is
//! dropped), as in Linux.
//!
//! # Invariants (under `slob_lock`)
//! - A page is on a list iff [`PG_SLOB_FREE`] is set iff its free units are > 0.
//! - The free blocks of a page are ordered by address, do not touch (adjacent free blocks are
//!   merged on free), and their units sum to the page's `units`.
//! - A page whose blocks are all free is not kept: it goes back to the page allocator.
//!
//! # Zones and nodes
//! Linux's SLOB serves a `GFP_DMA`/`GFP_DMA32` request from any page on its list. kmem
//! skips pages above the zone the request allows (as Linux skips pages of another node when
//! a node is given), so `kmalloc(n, GFP_DMA)` is DMA memory.
//!
//! A request for a node (`kmalloc_node`, `kmem_cache_alloc_node`; mm/slob.c of v6.3) takes
//! only pages with `page_to_nid(sp) == node` from the lists and gets a new page from
//! `alloc_pages_node(node, …)` (`slob_new_pages`), so without `__GFP_THISNODE` a full node
//! can still give another node's page; with it the request fails. `NUMA_NO_NODE` takes any
//! page and new pages from the CPU's node.
//!
//! # Bad input
//! Linux's SLOB trusts its callers. kmem checks every free against the page before touching
//! it: the block must lie inside the page, on a unit boundary with the caller's alignment, and
//! must not overlap a free block (this catches double frees and frees of garbage pointers);
//! otherwise a `WARNING` is printed and nothing changes.

use core::panic::Location;
use core::ptr::{self, NonNull};

use kds::list::{self, ListHead};

use crate::addr::{Order, PAGE_SIZE};
use crate::gfp::GfpFlags;
use crate::locking::Lock;
use crate::mm::mm_types::{PagePtr, PageType};
use crate::mm::NodeStat;
use crate::page_alloc::NUMA_NO_NODE;
use crate::platform::Platform;
use crate::slab::common::{ARCH_KMALLOC_MINALIGN, ARCH_SLAB_MINALIGN};
use crate::slab::SlabLayer;

mod cache;

pub(crate) use cache::{kmem_cache_alloc_node, Slob};

/// `slobidx_t`: a size or offset in units (`s16` for pages up to 64 KiB).
type SlobIdx = i16;
/// `SLOB_UNIT`: `sizeof(slob_t)`.
pub const SLOB_UNIT: usize = core::mem::size_of::<SlobIdx>();
/// `SLOB_BREAK1`: requests below it use the small list.
pub const SLOB_BREAK1: usize = 256;
/// `SLOB_BREAK2`: requests below it (and not small) use the medium list.
pub const SLOB_BREAK2: usize = 1024;
/// `SLOB_ALIGN`: `L1_CACHE_BYTES`, for `SLAB_HWCACHE_ALIGN` caches.
pub const SLOB_ALIGN: usize = crate::slab::common::L1_CACHE_BYTES;
/// The kmalloc header (`minalign` of `__do_kmalloc_node`).
pub const MINALIGN: usize = if ARCH_KMALLOC_MINALIGN > ARCH_SLAB_MINALIGN {
    ARCH_KMALLOC_MINALIGN
} else {
    ARCH_SLAB_MINALIGN
};
/// Units in a page.
const PAGE_UNITS: usize = PAGE_SIZE / SLOB_UNIT;
/// `PageSlobFree` (a bit of `private` above the unit count): the page is on a list.
pub const PG_SLOB_FREE: usize = 1 << 32;
const UNITS_MASK: usize = PG_SLOB_FREE - 1;

const _: () = assert!(PAGE_SIZE <= 32767 * 2, "slobidx_t is s16");

/// `SLOB_UNITS(size)`.
#[inline]
pub const fn slob_units_of(size: usize) -> usize {
    size.div_ceil(SLOB_UNIT)
}

/// The three partial page lists (`free_slob_small`, `free_slob_medium`, `free_slob_large`).
pub(crate) struct SlobLists {
    lists: [ListHead; 3],
    ready: bool,
    /// SLOB pages in use (for the comparison numbers; /proc/meminfo counts them as Slab).
    pub(crate) pages: usize,
}

/// SLOB's machine-wide state: `slob_lock` and the lists it protects.
pub(crate) struct SlobState<L: lock_api::RawMutex> {
    pub(crate) lock: Lock<L, SlobLists>,
}

impl<L: lock_api::RawMutex> SlobState<L> {
    /// Empty lists; [`slob_init`] links them once the state is in place.
    pub(crate) fn new() -> Self {
        Self {
            lock: Lock::new(
                &crate::locking::SLOB_LOCK,
                SlobLists {
                    lists: [ListHead::new(), ListHead::new(), ListHead::new()],
                    ready: false,
                    pages: 0,
                },
            ),
        }
    }
}

/// Links the list heads at their final address (`LIST_HEAD` of mm/slob.c).
pub(crate) fn slob_init<P: Platform>(m: &SlabLayer<P>) {
    // Lock order: slob_lock alone; docs/LOCKING.md.
    let mut l = m.slob.lock.lock();
    if !l.ready {
        for h in &mut l.lists {
            // SAFETY: the state lives in the machine's memory and never moves.
            unsafe { ListHead::init(h) };
        }
        l.ready = true;
    }
}

/// Which list serves (or takes back) a block of `size` bytes.
#[inline]
fn list_index(size: usize) -> usize {
    if size < SLOB_BREAK1 {
        0
    } else if size < SLOB_BREAK2 {
        1
    } else {
        2
    }
}

// ------------------------------------------------------------------ blocks inside a page

/// The page start of a block pointer (SLOB pages are page-aligned in the direct map).
#[inline]
fn page_base(s: *mut SlobIdx) -> *mut SlobIdx {
    ((s as usize) & !(PAGE_SIZE - 1)) as *mut SlobIdx
}

/// `set_slob`: encodes a free block of `size` units followed by `next`.
///
/// # Safety
/// `s` is a free block (at least `size` units, at least 2 when `size > 1`) of a SLOB page
/// under `slob_lock`; `next` is in the same page or its end.
unsafe fn set_slob(s: *mut SlobIdx, size: usize, next: *mut SlobIdx) {
    let base = page_base(s);
    // SAFETY: both in (or at the end of) the same page.
    let offset = unsafe { next.offset_from(base) } as SlobIdx;
    // SAFETY: the block has room for one unit, or two when size > 1 (caller).
    unsafe {
        if size > 1 {
            *s = size as SlobIdx;
            *s.add(1) = offset;
        } else {
            *s = -offset;
        }
    }
}

/// `slob_units`: the size of a free block.
///
/// # Safety
/// `s` is a free block of a SLOB page under `slob_lock`.
#[inline]
unsafe fn slob_units(s: *mut SlobIdx) -> usize {
    // SAFETY: `s` is a free block of a SLOB page (caller's guarantee): its first unit is a
    // readable, aligned `SlobIdx` of that page, which `slob_lock` keeps from changing.
    let u = unsafe { *s };
    if u > 0 {
        u as usize
    } else {
        1
    }
}

/// `slob_next`: the free block after `s` (the page end for the last).
///
/// # Safety
/// As [`slob_units`].
#[inline]
unsafe fn slob_next(s: *mut SlobIdx) -> *mut SlobIdx {
    let base = page_base(s);
    // SAFETY: `s` is a free block of a SLOB page under `slob_lock` (caller's guarantee); a
    // one-unit block stores the negated offset of the next one in its only word, a larger
    // block its size and then that offset in its second word, both inside the block.
    let next = unsafe {
        if *s < 0 {
            -*s
        } else {
            *s.add(1)
        }
    };
    base.wrapping_add(next as usize)
}

/// `slob_last`: whether `s` is the last free block of its page.
///
/// # Safety
/// As [`slob_units`].
#[inline]
unsafe fn slob_last(s: *mut SlobIdx) -> bool {
    // SAFETY: `slob_next` has the same contract as this function, which the caller meets.
    (unsafe { slob_next(s) } as usize) & (PAGE_SIZE - 1) == 0
}

#[inline]
fn sp_units(sp: PagePtr) -> usize {
    sp.private() & UNITS_MASK
}

#[inline]
fn sp_set_units(sp: PagePtr, units: usize) {
    sp.set_private((sp.private() & PG_SLOB_FREE) | units);
}

#[inline]
fn sp_on_list(sp: PagePtr) -> bool {
    sp.private() & PG_SLOB_FREE != 0
}

#[inline]
fn sp_freelist(sp: PagePtr) -> *mut SlobIdx {
    sp.index() as *mut SlobIdx
}

/// `set_slob_page_free`: puts `sp` at the front of `head`.
///
/// # Safety
/// Under `slob_lock`; `sp` is a SLOB page on no list; `head` a linked list head.
unsafe fn set_slob_page_free(sp: PagePtr, head: *mut ListHead) {
    // SAFETY: `sp`'s link is on no list and `head` is a linked list head, both protected by
    // `slob_lock`, which the caller holds: adding touches only those links.
    unsafe { list::list_add(sp.lru(), head) };
    sp.set_private(sp.private() | PG_SLOB_FREE);
}

/// `clear_slob_page_free`: takes `sp` off its list.
///
/// # Safety
/// Under `slob_lock`; `sp` is on a list.
unsafe fn clear_slob_page_free(sp: PagePtr) {
    // SAFETY: `sp` is on a list (caller's guarantee) whose links are under `slob_lock`, held
    // by the caller, so its neighbours are live and no one else changes them.
    unsafe { list::list_del(sp.lru()) };
    sp.set_private(sp.private() & !PG_SLOB_FREE);
}

/// `slob_page_alloc`: first fit of `size` bytes in `sp`, placed so that the address
/// `align_offset` bytes into the block is aligned to `align`. Returns the block and whether
/// the page left its list (it has no free unit left).
///
/// # Safety
/// Under `slob_lock`; `sp` is a SLOB page on a list.
unsafe fn slob_page_alloc(
    sp: PagePtr,
    size: usize,
    align: usize,
    align_offset: usize,
) -> Option<(*mut SlobIdx, bool)> {
    let units = slob_units_of(size);
    let mut prev: *mut SlobIdx = ptr::null_mut();
    let mut cur = sp_freelist(sp);
    loop {
        // SAFETY: `cur` is a free block of the page (the freelist invariant).
        let mut avail = unsafe { slob_units(cur) };
        let mut delta = 0;
        let mut aligned = cur;
        if align != 0 {
            let a = (cur as usize + align_offset).next_multiple_of(align) - align_offset;
            aligned = a as *mut SlobIdx;
            delta = (a - cur as usize) / SLOB_UNIT;
        }
        if avail >= units + delta {
            // SAFETY: all blocks below are free blocks of this page or its end.
            unsafe {
                if delta != 0 {
                    // Fragment the head to align: `cur` keeps `delta` units.
                    let next = slob_next(cur);
                    set_slob(aligned, avail - delta, next);
                    set_slob(cur, delta, aligned);
                    prev = cur;
                    cur = aligned;
                    avail = slob_units(cur);
                }
                let next = slob_next(cur);
                let rest = if avail == units {
                    next
                } else {
                    let r = cur.add(units);
                    set_slob(r, avail - units, next);
                    r
                };
                if prev.is_null() {
                    sp.set_index(rest as usize);
                } else {
                    set_slob(prev, slob_units(prev), rest);
                }
            }
            let left = sp_units(sp) - units;
            sp_set_units(sp, left);
            let removed = left == 0;
            if removed {
                // SAFETY: on a list (caller).
                unsafe { clear_slob_page_free(sp) };
            }
            return Some((cur, removed));
        }
        // SAFETY: `cur` is still a free block of the page: this iteration did not change the
        // freelist (every path that does returns above), and we hold `slob_lock`.
        if unsafe { slob_last(cur) } {
            return None;
        }
        prev = cur;
        // SAFETY: `cur` is a free block of the page that is not the last one (checked just
        // above), under `slob_lock`, so its successor is another free block of the page.
        cur = unsafe { slob_next(cur) };
    }
}

// ------------------------------------------------------------------ slob_alloc / slob_free

impl<P: Platform> SlabLayer<P> {
    /// `slob_new_pages`: a page for SLOB (from `node` unless `NUMA_NO_NODE`), counted as
    /// unreclaimable slab.
    fn slob_new_page(&self, gfp: GfpFlags, node: i32) -> Option<PagePtr> {
        let gfp =
            gfp.without(GfpFlags::__GFP_ZERO | GfpFlags::__GFP_HIGHMEM | GfpFlags::__GFP_MOVABLE);
        let page = if node == NUMA_NO_NODE {
            self.alloc_pages(gfp, Order::new(0))?
        } else {
            self.alloc_pages_node(node, gfp, Order::new(0))?
        };
        self.mod_page_node_stat(page, NodeStat::SlabUnreclaimable, 1);
        Some(page)
    }

    /// `slob_free_pages` of a SLOB page.
    fn slob_free_page(&self, sp: PagePtr) {
        sp.clear_page_type();
        sp.set_private(0);
        sp.set_index(0);
        sp.set_mapping(0);
        self.mod_page_node_stat(sp, NodeStat::SlabUnreclaimable, -1);
        self.__free_pages(sp, Order::new(0));
    }

    /// `slob_alloc`: a block of `size` bytes (`size < PAGE_SIZE`) placed so that the address
    /// `align_offset` bytes into it is aligned to `align` (0: unit alignment), on `node`
    /// (`NUMA_NO_NODE`: any).
    pub(crate) fn slob_alloc(
        &self,
        size: usize,
        gfp: GfpFlags,
        align: usize,
        align_offset: usize,
        node: i32,
    ) -> Option<NonNull<u8>> {
        let idx = list_index(size);
        // kmem keeps zone modifiers honest (Linux's SLOB would hand a GFP_DMA request any
        // page on the list): only pages of a zone the request may use are tried.
        let max_zone = crate::page_alloc::gfp_zone(self.arch(), gfp);
        let mut b = self.slob_alloc_from_lists(idx, size, (align, align_offset), max_zone, node);
        if b.is_null() {
            let sp = self.slob_new_page(gfp, node)?;
            let base = self.page_address(sp)?.as_ptr::<SlobIdx>();
            sp.set_page_type(PageType::Slab);
            sp.set_mapping(0);
            // Lock order: slob_lock alone (the page allocator was left above).
            let mut l = self.slob.lock.lock();
            l.pages += 1;
            sp.set_private(PAGE_UNITS);
            sp.set_index(base as usize);
            let head: *mut ListHead = &mut l.lists[idx];
            // SAFETY: a fresh page of ours: one free block covering it, put on its list under
            // slob_lock; the first fit of a request under PAGE_SIZE always succeeds in it.
            unsafe {
                ListHead::init(sp.lru());
                set_slob(base, PAGE_UNITS, base.add(PAGE_UNITS));
                set_slob_page_free(sp, head);
                b = slob_page_alloc(sp, size, align, align_offset)
                    .map_or(ptr::null_mut(), |(b, _)| b);
            }
        }
        let b = NonNull::new(b.cast::<u8>())?;
        if gfp.contains(GfpFlags::__GFP_ZERO) {
            // SAFETY: the block has at least `size` bytes and is ours.
            unsafe { ptr::write_bytes(b.as_ptr(), 0, size) };
        }
        Some(b)
    }

    /// The list walk of `slob_alloc` (next fit with rotation); null when no page fits.
    fn slob_alloc_from_lists(
        &self,
        idx: usize,
        size: usize,
        (align, align_offset): (usize, usize),
        max_zone: crate::mmzone::ZoneType,
        node: i32,
    ) -> *mut SlobIdx {
        let need = slob_units_of(size);
        // Lock order: slob_lock alone; docs/LOCKING.md.
        let mut l = self.slob.lock.lock();
        let head: *mut ListHead = &mut l.lists[idx];
        // SAFETY: the list under slob_lock; its entries are SLOB pages' lru links. The walk
        // reads `next` before a page may leave the list.
        unsafe {
            let mut pos = (*head).next;
            while pos != head {
                let next = (*pos).next;
                let sp = PagePtr::from_lru(pos);
                // Enough room, a zone the request may use, and the node asked for.
                if sp_units(sp) >= need
                    && sp.zone_type() <= max_zone
                    && (node == NUMA_NO_NODE || sp.nid() == node as usize)
                {
                    if let Some((b, removed)) = slob_page_alloc(sp, size, align, align_offset) {
                        // Start the next search here (Knuth vol. 1, 2.5, p. 449).
                        if !removed && !list::list_is_first(sp.lru(), head) {
                            list::list_rotate_to_front(sp.lru(), head);
                        }
                        return b;
                    }
                }
                pos = next;
            }
        }
        ptr::null_mut()
    }

    /// `slob_free` of the `size`-byte block at `block`, after checking that it is an
    /// allocated block of its page (see the module's "Bad input"). Returns false, with a
    /// warning, when it is not.
    #[track_caller]
    pub(crate) fn slob_free(&self, sp: PagePtr, block: *mut u8, size: usize, what: &str) -> bool {
        let b = block.cast::<SlobIdx>();
        let units = slob_units_of(size);
        let Some(base) = self.page_address(sp).map(|v| v.as_ptr::<SlobIdx>()) else {
            return false;
        };
        // Lock order: slob_lock alone; the page allocator after it is dropped.
        let mut l = self.slob.lock.lock();
        // SAFETY: `sp` is a SLOB page (PageType::Slab under SLOB); its blocks under slob_lock.
        if !unsafe { block_is_allocated(sp, base, b, units) } {
            drop(l);
            self.warn(format_args!(
                "{what}: 0x{:016x} is not an allocated SLOB block of {size} bytes",
                self.to_model(block as usize)
            ));
            return false;
        }
        if sp_units(sp) + units == PAGE_UNITS {
            // The last block: straight back to the page allocator.
            if sp_on_list(sp) {
                // SAFETY: on a list, under slob_lock.
                unsafe { clear_slob_page_free(sp) };
            }
            l.pages -= 1;
            drop(l);
            self.slob_free_page(sp);
            return true;
        }
        // SAFETY: under slob_lock; `b` is an allocated block of `units` units of `sp`
        // (checked), so the free list can take it.
        unsafe {
            if !sp_on_list(sp) {
                // The page was full and becomes partly free: `b` is its only free block.
                sp_set_units(sp, units);
                sp.set_index(b as usize);
                set_slob(b, units, base.add(PAGE_UNITS));
                let head: *mut ListHead = &mut l.lists[list_index(size)];
                set_slob_page_free(sp, head);
            } else {
                sp_set_units(sp, sp_units(sp) + units);
                insert_free_block(sp, b, units);
            }
        }
        true
    }
}

/// Puts the free block `b` of `units` units back into `sp`'s address-ordered list, merging it
/// with its neighbours (the reinsertion of `slob_free`).
///
/// # Safety
/// Under `slob_lock`; `sp` is on a list and `b` an allocated block of it.
unsafe fn insert_free_block(sp: PagePtr, b: *mut SlobIdx, units: usize) {
    let mut units = units;
    let first = sp_freelist(sp);
    // SAFETY: under `slob_lock` (caller), `first` and every block the walk below touches are free
    // blocks of page `sp`, and `b` is an allocated block of it (this function's contract), so every
    // pointer stays inside the page and no one else links these blocks.
    unsafe {
        if b < first {
            if b.add(units) == first {
                units += slob_units(first);
                sp.set_index(slob_next(first) as usize);
            }
            set_slob(b, units, sp_freelist(sp));
            sp.set_index(b as usize);
            return;
        }
        let mut prev = first;
        let mut next = slob_next(prev);
        while b > next {
            prev = next;
            next = slob_next(prev);
        }
        if !slob_last(prev) && b.add(units) == next {
            units += slob_units(next);
            set_slob(b, units, slob_next(next));
        } else {
            set_slob(b, units, next);
        }
        if prev.add(slob_units(prev)) == b {
            let u = slob_units(b) + slob_units(prev);
            set_slob(prev, u, slob_next(b));
        } else {
            set_slob(prev, slob_units(prev), b);
        }
    }
}

/// Whether `[b, b + units)` is an allocated block of `sp`: inside the page, on a unit
/// boundary, and overlapping no free block (kmem's check before `slob_free`).
///
/// # Safety
/// Under `slob_lock`; `sp` is a SLOB page whose memory starts at `base`.
unsafe fn block_is_allocated(
    sp: PagePtr,
    base: *mut SlobIdx,
    b: *mut SlobIdx,
    units: usize,
) -> bool {
    let off = (b as usize).wrapping_sub(base as usize);
    if !off.is_multiple_of(SLOB_UNIT) || units == 0 || off / SLOB_UNIT + units > PAGE_UNITS {
        return false;
    }
    if sp_units(sp) + units > PAGE_UNITS {
        return false;
    }
    if !sp_on_list(sp) {
        return true;
    }
    let end = b.wrapping_add(units);
    let mut cur = sp_freelist(sp);
    let mut steps = 0;
    // SAFETY: walking the page's free list under slob_lock (caller); bounded by the units.
    unsafe {
        loop {
            let cend = cur.add(slob_units(cur));
            if cur < end && b < cend {
                return false;
            }
            if slob_last(cur) || steps > PAGE_UNITS {
                return true;
            }
            cur = slob_next(cur);
            steps += 1;
        }
    }
}

/// The kmalloc header of the block at `p` (`*(unsigned int *)(p - minalign)`), when `p`
/// could be a kmalloc block of the SLOB page at `base`: `minalign`-aligned, the header in the
/// page, and a size that fits.
fn kmalloc_header(base: usize, p: *const u8) -> Option<usize> {
    let off = (p as usize).wrapping_sub(base);
    if !(p as usize).is_multiple_of(MINALIGN) || !(MINALIGN..PAGE_SIZE).contains(&off) {
        return None;
    }
    // SAFETY: the header lies inside the SLOB page (checked), aligned to minalign.
    let size = unsafe { ptr::read(p.sub(MINALIGN).cast::<u32>()) } as usize;
    (size != 0 && size < PAGE_SIZE - MINALIGN && off + size <= PAGE_SIZE).then_some(size)
}

impl<P: Platform> SlabLayer<P> {
    /// `__do_kmalloc_node` with `NUMA_NO_NODE`: a kmalloc block (see the module
    /// documentation).
    #[track_caller]
    pub(crate) fn slob_kmalloc(&self, size: usize, gfp: GfpFlags) -> Option<NonNull<u8>> {
        self.slob_kmalloc_node(size, gfp, NUMA_NO_NODE)
    }

    /// `__do_kmalloc_node`: a kmalloc block on `node` (`NUMA_NO_NODE`: any).
    #[track_caller]
    pub(crate) fn slob_kmalloc_node(
        &self,
        size: usize,
        gfp: GfpFlags,
        node: i32,
    ) -> Option<NonNull<u8>> {
        if size >= PAGE_SIZE - MINALIGN {
            if node == NUMA_NO_NODE {
                return self.kmalloc_large_untracked(size, gfp);
            }
            return self.kmalloc_large_order_node(crate::slab::common::get_order(size), gfp, node);
        }
        // Natural alignment for power-of-two sizes.
        let align = if size.is_power_of_two() {
            size.max(MINALIGN)
        } else {
            MINALIGN
        };
        let m = self.slob_alloc(size + MINALIGN, gfp, align, MINALIGN, node)?;
        // SAFETY: a new block of size + MINALIGN bytes, its start aligned to 4 at least.
        unsafe {
            ptr::write(m.as_ptr().cast::<u32>(), size as u32);
            Some(NonNull::new_unchecked(m.as_ptr().add(MINALIGN)))
        }
    }

    /// `kfree` of a block in a SLOB page.
    #[track_caller]
    pub(crate) fn slob_kfree(&self, sp: PagePtr, p: *mut u8, _caller: &'static Location<'static>) {
        let base = self.page_address(sp).map_or(0, |v| v.as_usize());
        let Some(size) = self.with_header(base, p) else {
            self.warn(format_args!(
                "kfree: 0x{:016x} is not a kmalloc block (SLOB)",
                self.to_model(p as usize)
            ));
            return;
        };
        self.slob_free(sp, p.wrapping_sub(MINALIGN), size + MINALIGN, "kfree");
    }

    /// `__ksize` of a block in a SLOB page: the kmalloc size rounded up to units.
    #[track_caller]
    pub(crate) fn slob_ksize(&self, sp: PagePtr, p: *const u8) -> usize {
        let base = self.page_address(sp).map_or(0, |v| v.as_usize());
        match self.with_header(base, p) {
            Some(size) => slob_units_of(size) * SLOB_UNIT,
            None => {
                self.warn(format_args!(
                    "ksize: 0x{:016x} is not a kmalloc block (SLOB)",
                    self.to_model(p as usize)
                ));
                0
            }
        }
    }

    /// The header of `p` read under `slob_lock` (a block being freed by another thread is
    /// not read half-way).
    fn with_header(&self, base: usize, p: *const u8) -> Option<usize> {
        // Lock order: slob_lock alone.
        let _l = self.slob.lock.lock();
        kmalloc_header(base, p)
    }
}
