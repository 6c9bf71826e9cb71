//! A RAM swap area for the user address spaces of [`super::mm`], and the x86_64 swap-entry
//! encoding of non-present PTEs.
//!
//! The "device" is a vmalloc'd region of `slots` pages (on bare metal, swap to RAM: what the
//! issue asks for). `swap_map` holds each slot's count of PTEs referring to it (mm/swapfile.c's
//! `swap_map`, without the swap cache: a swapped-in page is always a private copy, and the slot
//! is freed when its last reference goes — a fork duplicates the references). Allocation is
//! next-fit from a cursor (`scan_swap_map_slots` without clusters).
//!
//! # Swap PTEs
//! A swapped-out page's PTE holds `__swp_entry(type, offset)` as
//! arch/x86/include/asm/pgtable_64.h builds it: the type in the top `SWP_TYPE_BITS` (5) bits,
//! the **inverted** offset from bit `SWP_OFFSET_FIRST_BIT` (9, after `_PAGE_BIT_PROTNONE`) —
//! the L1TF mitigation, so a non-present PTE never points at real memory — and bits 0..9
//! clear: not present, not PROT_NONE, so `is_swap_pte` (non-zero, not present).

extern crate alloc;

use alloc::vec::Vec;

use kmem::{VirtAddr, PAGE_SIZE};

use crate::mm::Kmem;

/// `SWP_TYPE_BITS` (arch/x86/include/asm/pgtable_64.h).
const SWP_TYPE_BITS: u32 = 5;
/// `SWP_OFFSET_FIRST_BIT`: `_PAGE_BIT_PROTNONE + 1`.
const SWP_OFFSET_FIRST_BIT: u32 = 9;
/// `SWP_OFFSET_SHIFT`.
const SWP_OFFSET_SHIFT: u32 = SWP_OFFSET_FIRST_BIT + SWP_TYPE_BITS;
/// `_PAGE_PRESENT | _PAGE_PROTNONE`: a PTE with either is not a swap entry.
const PRESENT_OR_PROTNONE: u64 = (1 << 0) | (1 << 8);

/// `__swp_entry(type, offset)` as a PTE value (`swp_entry_to_pte`).
pub const fn swp_entry_pte(kind: u64, offset: u64) -> u64 {
    ((!offset) << SWP_OFFSET_SHIFT >> SWP_TYPE_BITS) | (kind << (64 - SWP_TYPE_BITS))
}

/// `is_swap_pte` + `pte_to_swp_entry`: `(type, offset)` of a swap PTE.
pub const fn pte_swp_entry(pte: u64) -> Option<(u64, u64)> {
    if pte == 0 || pte & PRESENT_OR_PROTNONE != 0 {
        return None;
    }
    Some((
        pte >> (64 - SWP_TYPE_BITS),
        (!pte) << SWP_TYPE_BITS >> SWP_OFFSET_SHIFT,
    ))
}

/// Counters of the swap area (`/proc/vmstat`'s names).
#[derive(Clone, Copy, Debug, Default)]
pub struct SwapStats {
    /// Pages written to the area.
    pub pswpout: u64,
    /// Pages read back.
    pub pswpin: u64,
}

/// A RAM swap area (swap type 0).
pub struct SwapArea {
    base: VirtAddr,
    swap_map: Vec<u8>,
    cursor: usize,
    inuse: usize,
    /// Counters.
    pub stats: SwapStats,
}

impl SwapArea {
    /// `swapon` of a RAM region of `slots` pages; `None` if vmalloc fails.
    pub fn new(k: &Kmem, slots: usize) -> Option<SwapArea> {
        let base = k.vmalloc(slots * PAGE_SIZE)?;
        let mut swap_map = Vec::new();
        if swap_map.try_reserve_exact(slots).is_err() {
            k.vfree(base);
            return None;
        }
        swap_map.resize(slots, 0);
        Some(SwapArea {
            base,
            swap_map,
            cursor: 0,
            inuse: 0,
            stats: SwapStats::default(),
        })
    }

    /// Slots in the area.
    pub fn size(&self) -> usize {
        self.swap_map.len()
    }

    /// Slots in use (`/proc/swaps`' Used, in pages).
    pub fn inuse(&self) -> usize {
        self.inuse
    }

    /// Allocates a slot with one reference.
    fn alloc_slot(&mut self) -> Option<u64> {
        let n = self.swap_map.len();
        let i = (0..n)
            .map(|d| (self.cursor + d) % n)
            .find(|&i| self.swap_map[i] == 0)?;
        self.swap_map[i] = 1;
        self.cursor = (i + 1) % n;
        self.inuse += 1;
        Some(i as u64)
    }

    /// `swap_duplicate`: one more PTE refers to `offset`.
    pub fn dup(&mut self, offset: u64) {
        let c = &mut self.swap_map[offset as usize];
        *c = c.saturating_add(1);
    }

    /// `swap_free`: one PTE less refers to `offset`.
    pub fn free(&mut self, offset: u64) {
        let c = &mut self.swap_map[offset as usize];
        if *c == 0 {
            crate::println!("swap_free: Unused swap offset entry {offset:08x}");
            return;
        }
        *c -= 1;
        if *c == 0 {
            self.inuse -= 1;
        }
    }

    fn slot_ptr(&self, offset: u64) -> *mut u8 {
        self.base
            .as_ptr::<u8>()
            .wrapping_add(offset as usize * PAGE_SIZE)
    }

    /// `swap_writepage`: copies the page at `src` into a new slot; returns its offset.
    ///
    /// # Safety
    /// `src` must be readable for a page.
    pub unsafe fn write_out(&mut self, src: *const u8) -> Option<u64> {
        let off = self.alloc_slot()?;
        // SAFETY: the slot is a page of our vmalloc area; `src` is readable for a page by the
        // caller's guarantee; they cannot overlap (the area is not user memory).
        unsafe { core::ptr::copy_nonoverlapping(src, self.slot_ptr(off), PAGE_SIZE) };
        self.stats.pswpout += 1;
        Some(off)
    }

    /// `swap_read_folio`: copies slot `offset` to `dst`.
    ///
    /// # Safety
    /// `dst` must be writable for a page.
    pub unsafe fn read_in(&mut self, offset: u64, dst: *mut u8) {
        // SAFETY: as write_out, the other way.
        unsafe { core::ptr::copy_nonoverlapping(self.slot_ptr(offset), dst, PAGE_SIZE) };
        self.stats.pswpin += 1;
    }

    /// `swapoff` of an area no PTE refers to any more.
    pub fn destroy(self, k: &Kmem) {
        if self.inuse != 0 {
            crate::println!("swapoff: {} slots still in use (leaked)", self.inuse);
        }
        k.vfree(self.base);
    }
}

/// Checks the encoding against the values Linux's macros give (evaluated at compile time).
const _: () = {
    // type 0, offset 1: ~1 << 14 >> 5 = bits 9..58 set except bit 9.
    assert!(swp_entry_pte(0, 1) == 0x07ff_ffff_ffff_fc00);
    assert!(swp_entry_pte(0, 1) & PRESENT_OR_PROTNONE == 0);
    match pte_swp_entry(swp_entry_pte(3, 12345)) {
        Some((3, 12345)) => {}
        _ => panic!("swap entry round trip"),
    }
};
