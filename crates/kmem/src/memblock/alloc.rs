//! memblock allocation: the free-range walks (`__next_mem_range`, `__next_mem_range_rev`),
//! the search (`memblock_find_in_range_node`) and the allocation API
//! (`memblock_alloc_range_nid` and the `memblock_phys_alloc*` / `memblock_alloc*` family).

use super::{
    numa_valid_node, pa, Memblock, MemblockError, MemblockFlags, MemblockRegion,
    ARCH_LOW_ADDRESS_LIMIT, MEMBLOCK_ALLOC_ACCESSIBLE, MEMBLOCK_ALLOC_NOLEAKTRACE,
    MEMBLOCK_LOW_LIMIT, NUMA_NO_NODE, SMP_CACHE_BYTES,
};
use crate::addr::{PhysAddr, VirtAddr, PAGE_SIZE, PHYS_ADDR_MAX};

/// What memblock's virtual-address API (`memblock_alloc*`) needs of the direct map:
/// Linux's `phys_to_virt` and the `memset` of `memblock_alloc_try_nid`. memblock passes
/// only ranges it has just allocated from its memory regions.
pub trait DirectMap {
    /// `phys_to_virt`: where the direct map shows `pa`.
    fn phys_to_virt(&self, pa: PhysAddr) -> VirtAddr;
    /// Zeroes `len` bytes of physical memory at `pa`.
    fn zero(&mut self, pa: PhysAddr, len: u64);
}

impl Memblock {
    /// `should_skip_region` for `memblock.memory` (reserved regions are never skipped).
    fn should_skip_region(&self, m: &MemblockRegion, nid: i32, flags: MemblockFlags) -> bool {
        // Only memory regions are associated with nodes.
        if numa_valid_node(nid) && nid != m.nid {
            return true;
        }
        if self.movable_node
            && m.is_hotpluggable()
            && !flags.contains(MemblockFlags::MEMBLOCK_HOTPLUG)
        {
            return true;
        }
        if flags.contains(MemblockFlags::MEMBLOCK_MIRROR) && !m.is_mirror() {
            return true;
        }
        if !flags.contains(MemblockFlags::MEMBLOCK_NOMAP) && m.is_nomap() {
            return true;
        }
        let dm = MemblockFlags::MEMBLOCK_DRIVER_MANAGED;
        if !flags.contains(dm) && m.flags.contains(dm) {
            return true;
        }
        let scratch = MemblockFlags::MEMBLOCK_KHO_SCRATCH;
        flags.contains(scratch) && !m.flags.contains(scratch)
    }

    /// The gap before reserved region `idx_b` (`idx_b == cnt`: the gap after the last).
    fn gap(&self, idx_b: usize) -> (u64, u64) {
        let r = self.reserved.regions();
        let start = if idx_b == 0 { 0 } else { r[idx_b - 1].end() };
        let end = r
            .get(idx_b)
            .map_or(PHYS_ADDR_MAX.as_u64(), |x| x.base.as_u64());
        (start, end)
    }

    /// `for_each_free_mem_range`: free ranges (memory minus reserved) of node `nid` whose
    /// memory regions match `flags`, lowest first, as `(start, end, nid)` with `end`
    /// exclusive.
    pub fn free_mem_ranges(&self, nid: i32, flags: MemblockFlags) -> FreeMemRanges<'_> {
        FreeMemRanges {
            mb: self,
            nid,
            flags,
            idx_a: 0,
            idx_b: 0,
        }
    }

    /// `for_each_free_mem_range_reverse`: as [`Memblock::free_mem_ranges`], highest first.
    pub fn free_mem_ranges_rev(&self, nid: i32, flags: MemblockFlags) -> FreeMemRangesRev<'_> {
        FreeMemRangesRev {
            mb: self,
            nid,
            flags,
            idx_a: self.memory.cnt as isize - 1,
            idx_b: self.reserved.cnt as isize,
        }
    }

    /// Free ranges as `memblock_free_all` walks them (`NUMA_NO_NODE`, `MEMBLOCK_NONE`),
    /// lowest first.
    pub fn free_ranges(&self) -> FreeRanges<'_> {
        FreeRanges(self.free_mem_ranges(NUMA_NO_NODE, MemblockFlags::MEMBLOCK_NONE))
    }

    /// `choose_memblock_flags`: mirrored memory first once some exists.
    fn choose_flags(&self) -> MemblockFlags {
        if self.has_mirror {
            MemblockFlags::MEMBLOCK_MIRROR
        } else {
            MemblockFlags::MEMBLOCK_NONE
        }
    }

    /// `memblock_find_in_range_node`: a free, `align`-aligned range of `size` bytes in
    /// `[start, end)` on node `nid`, or 0. The first page is never returned (0 is the
    /// failure value), and `end` `MEMBLOCK_ALLOC_ACCESSIBLE` means the current limit.
    pub(super) fn find_in_range_node(
        &self,
        size: u64,
        align: u64,
        start: PhysAddr,
        end: PhysAddr,
        nid: i32,
        flags: MemblockFlags,
    ) -> u64 {
        let mut end = end.as_u64();
        if end == MEMBLOCK_ALLOC_ACCESSIBLE.as_u64() || end == MEMBLOCK_ALLOC_NOLEAKTRACE.as_u64() {
            end = self.current_limit.as_u64();
        }
        // Avoid allocating the first page.
        let start = start.as_u64().max(PAGE_SIZE as u64);
        let end = end.max(start);
        let clamp = |v: u64| v.clamp(start, end);
        if self.bottom_up {
            for (s, e, _) in self.free_mem_ranges(nid, flags) {
                let (s, e) = (clamp(s.as_u64()), clamp(e.as_u64()));
                let Some(cand) = s.checked_next_multiple_of(align) else {
                    continue;
                };
                if cand < e && e - cand >= size {
                    return cand;
                }
            }
        } else {
            for (s, e, _) in self.free_mem_ranges_rev(nid, flags) {
                let (s, e) = (clamp(s.as_u64()), clamp(e.as_u64()));
                if e < size {
                    continue;
                }
                let cand = (e - size) & !(align - 1);
                if cand >= s {
                    return cand;
                }
            }
        }
        0
    }

    /// `memblock_find_in_range`: any node, mirrored memory first when there is some.
    pub(super) fn find_in_range(
        &self,
        start: PhysAddr,
        end: PhysAddr,
        size: u64,
        align: u64,
    ) -> u64 {
        let mut flags = self.choose_flags();
        loop {
            let found = self.find_in_range_node(size, align, start, end, NUMA_NO_NODE, flags);
            if found != 0 || !flags.contains(MemblockFlags::MEMBLOCK_MIRROR) {
                return found;
            }
            flags = flags & !MemblockFlags::MEMBLOCK_MIRROR;
        }
    }

    /// `memblock_alloc_range_nid`: allocates `size` bytes aligned to `align` (0 means
    /// [`SMP_CACHE_BYTES`]) within `[start, end)`, from node `nid` and, unless `exact_nid`,
    /// from any node after that; reserves them with `MEMBLOCK_RSRV_KERN`.
    ///
    /// # Errors
    /// [`MemblockError::NoMemory`] when nothing fits, [`MemblockError::Invalid`] for a zero
    /// size or an alignment that is not a power of two.
    pub fn alloc_range_nid(
        &mut self,
        size: u64,
        align: u64,
        start: PhysAddr,
        end: PhysAddr,
        nid: i32,
        exact_nid: bool,
    ) -> Result<PhysAddr, MemblockError> {
        let align = if align == 0 { SMP_CACHE_BYTES } else { align };
        if size == 0 || !align.is_power_of_two() {
            return Err(MemblockError::Invalid);
        }
        let mut flags = self.choose_flags();
        let kern = MemblockFlags::MEMBLOCK_RSRV_KERN;
        loop {
            let found = self.find_in_range_node(size, align, start, end, nid, flags);
            if found != 0 && self.reserve_node(pa(found), size, nid, kern).is_ok() {
                return Ok(pa(found));
            }
            if numa_valid_node(nid) && !exact_nid {
                let found = self.find_in_range_node(size, align, start, end, NUMA_NO_NODE, flags);
                if found != 0 && self.reserve_kern(pa(found), size).is_ok() {
                    return Ok(pa(found));
                }
            }
            if !flags.contains(MemblockFlags::MEMBLOCK_MIRROR) {
                return Err(MemblockError::NoMemory);
            }
            flags = flags & !MemblockFlags::MEMBLOCK_MIRROR;
        }
    }

    /// `memblock_phys_alloc_range`: allocates within `[start, end)` on any node.
    ///
    /// # Errors
    /// As [`Memblock::alloc_range_nid`].
    pub fn phys_alloc_range(
        &mut self,
        size: u64,
        align: u64,
        start: PhysAddr,
        end: PhysAddr,
    ) -> Result<PhysAddr, MemblockError> {
        self.alloc_range_nid(size, align, start, end, NUMA_NO_NODE, false)
    }

    /// `memblock_phys_alloc`: allocates anywhere below the current limit.
    ///
    /// # Errors
    /// As [`Memblock::alloc_range_nid`].
    pub fn phys_alloc(&mut self, size: u64, align: u64) -> Result<PhysAddr, MemblockError> {
        self.phys_alloc_range(size, align, PhysAddr::new(0), MEMBLOCK_ALLOC_ACCESSIBLE)
    }

    /// `memblock_phys_alloc_try_nid`: below the current limit, node `nid` first.
    ///
    /// # Errors
    /// As [`Memblock::alloc_range_nid`].
    pub fn phys_alloc_try_nid(
        &mut self,
        size: u64,
        align: u64,
        nid: i32,
    ) -> Result<PhysAddr, MemblockError> {
        let (lo, hi) = (PhysAddr::new(0), MEMBLOCK_ALLOC_ACCESSIBLE);
        self.alloc_range_nid(size, align, lo, hi, nid, false)
    }

    /// `alloc_bootmem_pages`: page-aligned boot allocation (the old bootmem name).
    ///
    /// # Errors
    /// As [`Memblock::alloc_range_nid`].
    pub fn alloc_bootmem_pages(&mut self, size: u64) -> Result<PhysAddr, MemblockError> {
        self.phys_alloc(size, PAGE_SIZE as u64)
    }

    /// `alloc_bootmem_low_pages`: page-aligned boot allocation below
    /// [`ARCH_LOW_ADDRESS_LIMIT`].
    ///
    /// # Errors
    /// As [`Memblock::alloc_range_nid`].
    pub fn alloc_bootmem_low_pages(&mut self, size: u64) -> Result<PhysAddr, MemblockError> {
        self.phys_alloc_range(
            size,
            PAGE_SIZE as u64,
            PhysAddr::new(0),
            ARCH_LOW_ADDRESS_LIMIT,
        )
    }

    /// `memblock_alloc_internal`: the upper bound is cut at the current limit, and the lower
    /// bound is dropped when nothing fits above it.
    fn alloc_internal(
        &mut self,
        size: u64,
        align: u64,
        min_addr: PhysAddr,
        max_addr: PhysAddr,
        nid: i32,
        exact_nid: bool,
    ) -> Result<PhysAddr, MemblockError> {
        let max_addr = max_addr.min(self.current_limit);
        match self.alloc_range_nid(size, align, min_addr, max_addr, nid, exact_nid) {
            Err(MemblockError::NoMemory) if min_addr.as_u64() != 0 => {
                let lo = PhysAddr::new(0);
                self.alloc_range_nid(size, align, lo, max_addr, nid, exact_nid)
            }
            r => r,
        }
    }

    /// `memblock_alloc_try_nid`: allocates zeroed memory in `[min_addr, max_addr)` (the lower
    /// bound is dropped if need be), node `nid` first, and returns its direct-map address.
    ///
    /// # Errors
    /// As [`Memblock::alloc_range_nid`].
    pub fn alloc_try_nid(
        &mut self,
        dm: &mut impl DirectMap,
        size: u64,
        align: u64,
        min_addr: PhysAddr,
        max_addr: PhysAddr,
        nid: i32,
    ) -> Result<VirtAddr, MemblockError> {
        let p = self.alloc_internal(size, align, min_addr, max_addr, nid, false)?;
        dm.zero(p, size);
        Ok(dm.phys_to_virt(p))
    }

    /// `memblock_alloc_try_nid_raw`: as [`Memblock::alloc_try_nid`], not zeroed.
    ///
    /// # Errors
    /// As [`Memblock::alloc_range_nid`].
    pub fn alloc_try_nid_raw(
        &mut self,
        dm: &mut impl DirectMap,
        size: u64,
        align: u64,
        min_addr: PhysAddr,
        max_addr: PhysAddr,
        nid: i32,
    ) -> Result<VirtAddr, MemblockError> {
        let p = self.alloc_internal(size, align, min_addr, max_addr, nid, false)?;
        Ok(dm.phys_to_virt(p))
    }

    /// `memblock_alloc_exact_nid_raw`: as [`Memblock::alloc_try_nid_raw`], from node `nid`
    /// only.
    ///
    /// # Errors
    /// As [`Memblock::alloc_range_nid`].
    pub fn alloc_exact_nid_raw(
        &mut self,
        dm: &mut impl DirectMap,
        size: u64,
        align: u64,
        min_addr: PhysAddr,
        max_addr: PhysAddr,
        nid: i32,
    ) -> Result<VirtAddr, MemblockError> {
        let p = self.alloc_internal(size, align, min_addr, max_addr, nid, true)?;
        Ok(dm.phys_to_virt(p))
    }

    /// `memblock_alloc`: zeroed memory below the current limit.
    ///
    /// # Errors
    /// As [`Memblock::alloc_range_nid`].
    pub fn alloc(
        &mut self,
        dm: &mut impl DirectMap,
        size: u64,
        align: u64,
    ) -> Result<VirtAddr, MemblockError> {
        let (lo, hi) = (MEMBLOCK_LOW_LIMIT, MEMBLOCK_ALLOC_ACCESSIBLE);
        self.alloc_try_nid(dm, size, align, lo, hi, NUMA_NO_NODE)
    }

    /// `memblock_alloc_raw`: as [`Memblock::alloc`], not zeroed.
    ///
    /// # Errors
    /// As [`Memblock::alloc_range_nid`].
    pub fn alloc_raw(
        &mut self,
        dm: &mut impl DirectMap,
        size: u64,
        align: u64,
    ) -> Result<VirtAddr, MemblockError> {
        let (lo, hi) = (MEMBLOCK_LOW_LIMIT, MEMBLOCK_ALLOC_ACCESSIBLE);
        self.alloc_try_nid_raw(dm, size, align, lo, hi, NUMA_NO_NODE)
    }

    /// `memblock_alloc_from`: zeroed memory at or above `min_addr` if possible.
    ///
    /// # Errors
    /// As [`Memblock::alloc_range_nid`].
    pub fn alloc_from(
        &mut self,
        dm: &mut impl DirectMap,
        size: u64,
        align: u64,
        min_addr: PhysAddr,
    ) -> Result<VirtAddr, MemblockError> {
        let hi = MEMBLOCK_ALLOC_ACCESSIBLE;
        self.alloc_try_nid(dm, size, align, min_addr, hi, NUMA_NO_NODE)
    }

    /// `memblock_alloc_low`: zeroed memory below [`ARCH_LOW_ADDRESS_LIMIT`].
    ///
    /// # Errors
    /// As [`Memblock::alloc_range_nid`].
    pub fn alloc_low(
        &mut self,
        dm: &mut impl DirectMap,
        size: u64,
        align: u64,
    ) -> Result<VirtAddr, MemblockError> {
        let (lo, hi) = (MEMBLOCK_LOW_LIMIT, ARCH_LOW_ADDRESS_LIMIT);
        self.alloc_try_nid(dm, size, align, lo, hi, NUMA_NO_NODE)
    }

    /// `memblock_alloc_node`: zeroed memory below the current limit, node `nid` first.
    ///
    /// # Errors
    /// As [`Memblock::alloc_range_nid`].
    pub fn alloc_node(
        &mut self,
        dm: &mut impl DirectMap,
        size: u64,
        align: u64,
        nid: i32,
    ) -> Result<VirtAddr, MemblockError> {
        let (lo, hi) = (MEMBLOCK_LOW_LIMIT, MEMBLOCK_ALLOC_ACCESSIBLE);
        self.alloc_try_nid(dm, size, align, lo, hi, nid)
    }

    /// `memblock_overlaps_region` on one of the arrays.
    pub fn overlaps_region(&self, kind: super::MemblockKind, base: PhysAddr, size: u64) -> bool {
        self.ty(kind).overlaps(base, size)
    }
}

/// Iterator of [`Memblock::free_mem_ranges`] (`__next_mem_range` over memory and reserved).
pub struct FreeMemRanges<'a> {
    mb: &'a Memblock,
    nid: i32,
    flags: MemblockFlags,
    idx_a: usize,
    idx_b: usize,
}

impl Iterator for FreeMemRanges<'_> {
    type Item = (PhysAddr, PhysAddr, i32);
    fn next(&mut self) -> Option<(PhysAddr, PhysAddr, i32)> {
        let mb = self.mb;
        while self.idx_a < mb.memory.cnt {
            let m = mb.memory.slots[self.idx_a];
            if mb.should_skip_region(&m, self.nid, self.flags) {
                self.idx_a += 1;
                continue;
            }
            let (m_start, m_end) = (m.base.as_u64(), m.end());
            // Scan the gaps before each reservation.
            while self.idx_b <= mb.reserved.cnt {
                let (r_start, r_end) = mb.gap(self.idx_b);
                if r_start >= m_end {
                    break;
                }
                if m_start < r_end {
                    let out = (pa(m_start.max(r_start)), pa(m_end.min(r_end)), m.nid);
                    // Advance whichever ends first.
                    if m_end <= r_end {
                        self.idx_a += 1;
                    } else {
                        self.idx_b += 1;
                    }
                    return Some(out);
                }
                self.idx_b += 1;
            }
            self.idx_a += 1;
        }
        None
    }
}

/// Iterator of [`Memblock::free_mem_ranges_rev`] (`__next_mem_range_rev`).
pub struct FreeMemRangesRev<'a> {
    mb: &'a Memblock,
    nid: i32,
    flags: MemblockFlags,
    idx_a: isize,
    idx_b: isize,
}

impl Iterator for FreeMemRangesRev<'_> {
    type Item = (PhysAddr, PhysAddr, i32);
    fn next(&mut self) -> Option<(PhysAddr, PhysAddr, i32)> {
        let mb = self.mb;
        while self.idx_a >= 0 {
            let m = mb.memory.slots[self.idx_a as usize];
            if mb.should_skip_region(&m, self.nid, self.flags) {
                self.idx_a -= 1;
                continue;
            }
            let (m_start, m_end) = (m.base.as_u64(), m.end());
            while self.idx_b >= 0 {
                let (r_start, r_end) = mb.gap(self.idx_b as usize);
                if r_end <= m_start {
                    break;
                }
                if m_end > r_start {
                    let out = (pa(m_start.max(r_start)), pa(m_end.min(r_end)), m.nid);
                    if m_start >= r_start {
                        self.idx_a -= 1;
                    } else {
                        self.idx_b -= 1;
                    }
                    return Some(out);
                }
                self.idx_b -= 1;
            }
            self.idx_a -= 1;
        }
        None
    }
}

/// Iterator of [`Memblock::free_ranges`]: free ranges as regions (node set, no flags).
pub struct FreeRanges<'a>(FreeMemRanges<'a>);

impl Iterator for FreeRanges<'_> {
    type Item = MemblockRegion;
    fn next(&mut self) -> Option<MemblockRegion> {
        let (s, e, nid) = self.0.next()?;
        Some(MemblockRegion {
            base: s,
            size: e - s,
            flags: MemblockFlags::MEMBLOCK_NONE,
            nid,
        })
    }
}
