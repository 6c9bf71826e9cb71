//! memblock: the boot-time physical memory allocator (mm/memblock.c), with the old bootmem
//! names as aliases.
//!
//! Two sorted, non-overlapping, merged region arrays: `memory` (what RAM exists) and
//! `reserved` (what is in use). Free memory is `memory` minus `reserved`. Allocation searches
//! free ranges top-down by default (bottom-up on request) below `current_limit`, and
//! reserves what it returns. At the end of boot, [`crate::Machine`] hands every free range to
//! the buddy allocator (`memblock_free_all`).
//!
//! # Invariants
//! - Each array is sorted by base, its regions do not overlap and adjacent regions are merged.
//! - Every region's base and size are as given (memblock itself does not page-align; callers
//!   that need pages align, as Linux's e820 code does).
//!
//! # Locking
//! memblock is a plain value; the machine keeps it under a lock after boot. Before the buddy
//! allocator exists only the boot CPU runs, as in Linux.

#![forbid(unsafe_code)]

use core::fmt;

use crate::addr::{PhysAddr, PAGE_SIZE};

/// `INIT_MEMBLOCK_REGIONS`: capacity of each region array (Linux starts at 128 and doubles
/// the array later; kmem keeps a fixed, larger array and fails cleanly when it is full).
pub const MEMBLOCK_REGIONS: usize = 256;

/// `MEMBLOCK_ALLOC_ACCESSIBLE`: allocate anywhere below the current limit.
pub const MEMBLOCK_ALLOC_ACCESSIBLE: u64 = 0;

/// One region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MemblockRegion {
    /// First byte.
    pub base: PhysAddr,
    /// Size in bytes.
    pub size: u64,
}

impl MemblockRegion {
    /// One past the last byte.
    #[inline]
    pub fn end(&self) -> u64 {
        self.base.as_u64() + self.size
    }
}

/// Errors of memblock operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemblockError {
    /// The region array is full.
    TooManyRegions,
    /// No free range satisfies the request.
    NoMemory,
    /// The arguments are invalid (zero size, alignment not a power of two, overflow).
    Invalid,
}

impl fmt::Display for MemblockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemblockError::TooManyRegions => "memblock: too many regions",
            MemblockError::NoMemory => "memblock: out of memory",
            MemblockError::Invalid => "memblock: invalid arguments",
        })
    }
}

/// A sorted array of regions (`struct memblock_type`).
#[derive(Clone)]
pub struct MemblockType {
    regions: [MemblockRegion; MEMBLOCK_REGIONS],
    cnt: usize,
    /// Name shown in debug output ("memory" or "reserved").
    pub name: &'static str,
}

impl fmt::Debug for MemblockType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.regions()).finish()
    }
}

impl MemblockType {
    const fn new(name: &'static str) -> Self {
        Self {
            regions: [MemblockRegion {
                base: PhysAddr::new(0),
                size: 0,
            }; MEMBLOCK_REGIONS],
            cnt: 0,
            name,
        }
    }
    /// The regions, sorted by base.
    pub fn regions(&self) -> &[MemblockRegion] {
        &self.regions[..self.cnt]
    }
    /// Sum of region sizes.
    pub fn total_size(&self) -> u64 {
        self.regions().iter().map(|r| r.size).sum()
    }

    fn insert_at(&mut self, i: usize, r: MemblockRegion) -> Result<(), MemblockError> {
        if self.cnt == MEMBLOCK_REGIONS {
            return Err(MemblockError::TooManyRegions);
        }
        self.regions.copy_within(i..self.cnt, i + 1);
        self.regions[i] = r;
        self.cnt += 1;
        Ok(())
    }
    fn remove_at(&mut self, i: usize) {
        self.regions.copy_within(i + 1..self.cnt, i);
        self.cnt -= 1;
    }

    /// `memblock_add_range`: adds `[base, base+size)`, merging with overlapping and adjacent
    /// regions.
    fn add(&mut self, base: u64, size: u64) -> Result<(), MemblockError> {
        if size == 0 {
            return Ok(());
        }
        let mut start = base;
        let mut end = base.checked_add(size).ok_or(MemblockError::Invalid)?;
        // Find the first region that ends at or after `start` (touching counts: merge).
        let mut i = 0;
        while i < self.cnt && self.regions[i].end() < start {
            i += 1;
        }
        // Absorb every region that overlaps or touches [start, end).
        let first = i;
        while i < self.cnt && self.regions[i].base.as_u64() <= end {
            start = start.min(self.regions[i].base.as_u64());
            end = end.max(self.regions[i].end());
            i += 1;
        }
        let absorbed = i - first;
        let merged = MemblockRegion {
            base: PhysAddr::new(start),
            size: end - start,
        };
        if absorbed == 0 {
            return self.insert_at(first, merged);
        }
        self.regions[first] = merged;
        for _ in 1..absorbed {
            self.remove_at(first + 1);
        }
        Ok(())
    }

    /// `memblock_remove_range`: removes `[base, base+size)`, splitting regions as needed.
    fn remove(&mut self, base: u64, size: u64) -> Result<(), MemblockError> {
        if size == 0 {
            return Ok(());
        }
        let end = base.checked_add(size).ok_or(MemblockError::Invalid)?;
        let mut i = 0;
        while i < self.cnt {
            let r = self.regions[i];
            let (rs, re) = (r.base.as_u64(), r.end());
            if re <= base || rs >= end {
                i += 1;
                continue;
            }
            match (rs < base, re > end) {
                (true, true) => {
                    // Split in two.
                    self.regions[i].size = base - rs;
                    self.insert_at(
                        i + 1,
                        MemblockRegion {
                            base: PhysAddr::new(end),
                            size: re - end,
                        },
                    )?;
                    return Ok(());
                }
                (true, false) => {
                    self.regions[i].size = base - rs;
                    i += 1;
                }
                (false, true) => {
                    self.regions[i] = MemblockRegion {
                        base: PhysAddr::new(end),
                        size: re - end,
                    };
                    i += 1;
                }
                (false, false) => self.remove_at(i),
            }
        }
        Ok(())
    }

    /// Whether `[base, base+size)` overlaps any region.
    fn overlaps(&self, base: u64, size: u64) -> bool {
        let end = base.saturating_add(size);
        self.regions()
            .iter()
            .any(|r| r.base.as_u64() < end && r.end() > base)
    }
}

/// The boot memory allocator (`struct memblock`).
#[derive(Clone, Debug)]
pub struct Memblock {
    /// Allocate from low addresses up instead of top-down.
    pub bottom_up: bool,
    /// Allocations stay below this address (`memblock.current_limit`).
    pub current_limit: u64,
    /// Memory that exists.
    pub memory: MemblockType,
    /// Memory in use.
    pub reserved: MemblockType,
}

impl Default for Memblock {
    fn default() -> Self {
        Self::new()
    }
}

impl Memblock {
    /// An empty memblock with no limit, allocating top-down.
    pub const fn new() -> Self {
        Self {
            bottom_up: false,
            current_limit: u64::MAX,
            memory: MemblockType::new("memory"),
            reserved: MemblockType::new("reserved"),
        }
    }

    /// `memblock_add`: registers RAM.
    ///
    /// # Errors
    /// [`MemblockError::TooManyRegions`] or [`MemblockError::Invalid`] on overflow.
    pub fn add(&mut self, base: PhysAddr, size: u64) -> Result<(), MemblockError> {
        self.memory.add(base.as_u64(), size)
    }
    /// `memblock_remove`: forgets RAM.
    ///
    /// # Errors
    /// As [`Memblock::add`].
    pub fn remove(&mut self, base: PhysAddr, size: u64) -> Result<(), MemblockError> {
        self.memory.remove(base.as_u64(), size)
    }
    /// `memblock_reserve`: marks a range in use.
    ///
    /// # Errors
    /// As [`Memblock::add`].
    pub fn reserve(&mut self, base: PhysAddr, size: u64) -> Result<(), MemblockError> {
        self.reserved.add(base.as_u64(), size)
    }
    /// `memblock_phys_free` (formerly `memblock_free`): releases a reserved range.
    ///
    /// # Errors
    /// As [`Memblock::add`].
    pub fn free(&mut self, base: PhysAddr, size: u64) -> Result<(), MemblockError> {
        self.reserved.remove(base.as_u64(), size)
    }
    /// `memblock_is_reserved`-style test: whether any byte of the range is reserved.
    pub fn is_reserved(&self, base: PhysAddr, size: u64) -> bool {
        self.reserved.overlaps(base.as_u64(), size)
    }
    /// `memblock_phys_mem_size`: total RAM registered.
    pub fn phys_mem_size(&self) -> u64 {
        self.memory.total_size()
    }
    /// `memblock_reserved_size`: total bytes reserved.
    pub fn reserved_size(&self) -> u64 {
        self.reserved.total_size()
    }
    /// `memblock_start_of_DRAM`.
    pub fn start_of_dram(&self) -> Option<PhysAddr> {
        self.memory.regions().first().map(|r| r.base)
    }
    /// `memblock_end_of_DRAM`.
    pub fn end_of_dram(&self) -> Option<PhysAddr> {
        self.memory.regions().last().map(|r| PhysAddr::new(r.end()))
    }

    /// `for_each_free_mem_range`: free ranges (memory minus reserved), lowest first.
    pub fn free_ranges(&self) -> FreeRanges<'_> {
        FreeRanges {
            mb: self,
            mi: 0,
            cursor: 0,
        }
    }

    /// `memblock_phys_alloc_range`: allocates `size` bytes aligned to `align` within
    /// `[start, end)` (`end` 0 means the current limit) and reserves them.
    ///
    /// # Errors
    /// [`MemblockError::NoMemory`] when nothing fits, [`MemblockError::Invalid`] for a zero
    /// size or an alignment that is not a power of two.
    pub fn phys_alloc_range(
        &mut self,
        size: u64,
        align: u64,
        start: PhysAddr,
        end: PhysAddr,
    ) -> Result<PhysAddr, MemblockError> {
        if size == 0 || !align.is_power_of_two() {
            return Err(MemblockError::Invalid);
        }
        let limit = if end.as_u64() == MEMBLOCK_ALLOC_ACCESSIBLE {
            self.current_limit
        } else {
            end.as_u64().min(self.current_limit)
        };
        let lo = start.as_u64();
        let found = if self.bottom_up {
            self.free_ranges()
                .find_map(|r| fit_bottom_up(r, size, align, lo, limit))
        } else {
            let mut best = None;
            // Top-down: the highest fitting range wins; free_ranges() is ascending, so keep the
            // last fit.
            for r in self.free_ranges() {
                if let Some(a) = fit_top_down(r, size, align, lo, limit) {
                    best = Some(a);
                }
            }
            best
        };
        let addr = found.ok_or(MemblockError::NoMemory)?;
        self.reserve(PhysAddr::new(addr), size)?;
        Ok(PhysAddr::new(addr))
    }

    /// `memblock_phys_alloc`: allocates anywhere below the current limit.
    ///
    /// # Errors
    /// As [`Memblock::phys_alloc_range`].
    pub fn phys_alloc(&mut self, size: u64, align: u64) -> Result<PhysAddr, MemblockError> {
        self.phys_alloc_range(size, align, PhysAddr::new(0), PhysAddr::new(0))
    }

    /// `alloc_bootmem_pages`: page-aligned boot allocation (the seed's bootmem name).
    ///
    /// # Errors
    /// As [`Memblock::phys_alloc_range`].
    pub fn alloc_bootmem_pages(&mut self, size: u64) -> Result<PhysAddr, MemblockError> {
        self.phys_alloc(size, PAGE_SIZE as u64)
    }

    /// `alloc_bootmem_low_pages`: page-aligned boot allocation below 4 GiB
    /// (`ARCH_LOW_ADDRESS_LIMIT`).
    ///
    /// # Errors
    /// As [`Memblock::phys_alloc_range`].
    pub fn alloc_bootmem_low_pages(&mut self, size: u64) -> Result<PhysAddr, MemblockError> {
        self.phys_alloc_range(
            size,
            PAGE_SIZE as u64,
            PhysAddr::new(0),
            PhysAddr::new(0xffff_ffff),
        )
    }

    /// Writes the `memblock=debug` style dump (`memblock_dump_all`).
    pub fn dump(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        writeln!(
            out,
            "MEMBLOCK configuration:\n memory size = {:#x} reserved size = {:#x}",
            self.phys_mem_size(),
            self.reserved_size()
        )?;
        for t in [&self.memory, &self.reserved] {
            writeln!(out, " {}.cnt  = {:#x}", t.name, t.cnt)?;
            for (i, r) in t.regions().iter().enumerate() {
                writeln!(
                    out,
                    " {}[{:#x}]\t[{:#018x}-{:#018x}], {:#x} bytes flags: 0x0",
                    t.name,
                    i,
                    r.base.as_u64(),
                    r.end() - 1,
                    r.size
                )?;
            }
        }
        Ok(())
    }
}

fn fit_top_down(r: MemblockRegion, size: u64, align: u64, lo: u64, hi: u64) -> Option<u64> {
    let start = r.base.as_u64().max(lo);
    let end = r.end().min(hi);
    if end < size {
        return None;
    }
    let cand = (end - size) & !(align - 1);
    (cand >= start && end > start).then_some(cand)
}

fn fit_bottom_up(r: MemblockRegion, size: u64, align: u64, lo: u64, hi: u64) -> Option<u64> {
    let start = r.base.as_u64().max(lo);
    let end = r.end().min(hi);
    let cand = start.checked_add(align - 1)? & !(align - 1);
    (cand.checked_add(size)? <= end).then_some(cand)
}

/// Iterator over free ranges; see [`Memblock::free_ranges`].
pub struct FreeRanges<'a> {
    mb: &'a Memblock,
    mi: usize,
    cursor: u64,
}

impl Iterator for FreeRanges<'_> {
    type Item = MemblockRegion;
    fn next(&mut self) -> Option<MemblockRegion> {
        let mem = self.mb.memory.regions();
        while self.mi < mem.len() {
            let m = mem[self.mi];
            let mut start = self.cursor.max(m.base.as_u64());
            let end = m.end();
            // Skip reserved regions covering `start`; stop at the next reserved region.
            let mut next_res = end;
            for r in self.mb.reserved.regions() {
                if r.end() <= start {
                    continue;
                }
                if r.base.as_u64() <= start {
                    start = r.end();
                    continue;
                }
                next_res = next_res.min(r.base.as_u64());
                break;
            }
            if start >= end {
                self.mi += 1;
                self.cursor = 0;
                continue;
            }
            let stop = next_res.min(end);
            self.cursor = stop;
            if stop >= end {
                self.mi += 1;
                self.cursor = 0;
            }
            if stop > start {
                return Some(MemblockRegion {
                    base: PhysAddr::new(start),
                    size: stop - start,
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn ranges(mb: &Memblock) -> Vec<(u64, u64)> {
        mb.free_ranges()
            .map(|r| (r.base.as_u64(), r.end()))
            .collect()
    }

    #[test]
    fn add_merges_and_remove_splits() {
        let mut mb = Memblock::new();
        mb.add(PhysAddr::new(0x1000), 0x1000).unwrap();
        mb.add(PhysAddr::new(0x3000), 0x1000).unwrap();
        mb.add(PhysAddr::new(0x2000), 0x1000).unwrap();
        assert_eq!(mb.memory.regions().len(), 1);
        assert_eq!(mb.phys_mem_size(), 0x3000);
        mb.remove(PhysAddr::new(0x2000), 0x800).unwrap();
        assert_eq!(mb.memory.regions().len(), 2);
        assert_eq!(mb.phys_mem_size(), 0x2800);
    }

    #[test]
    fn free_ranges_subtract_reserved() {
        let mut mb = Memblock::new();
        mb.add(PhysAddr::new(0), 0x10000).unwrap();
        mb.add(PhysAddr::new(0x20000), 0x10000).unwrap();
        mb.reserve(PhysAddr::new(0x1000), 0x1000).unwrap();
        mb.reserve(PhysAddr::new(0xf000), 0x12000).unwrap();
        assert_eq!(
            ranges(&mb),
            [(0, 0x1000), (0x2000, 0xf000), (0x21000, 0x30000)]
        );
    }

    #[test]
    fn top_down_and_bottom_up() {
        let mut mb = Memblock::new();
        mb.add(PhysAddr::new(0x10_0000), 0x100_0000).unwrap();
        let a = mb.phys_alloc(0x3000, 0x1000).unwrap();
        assert_eq!(a.as_u64(), 0x110_0000 - 0x3000);
        let b = mb.phys_alloc(0x1000, 0x10_0000).unwrap();
        assert_eq!(b.as_u64(), 0x100_0000);
        mb.bottom_up = true;
        let c = mb.phys_alloc(0x1000, 0x1000).unwrap();
        assert_eq!(c.as_u64(), 0x10_0000);
        assert_eq!(mb.reserved_size(), 0x5000);
        mb.free(a, 0x3000).unwrap();
        assert_eq!(mb.reserved_size(), 0x2000);
        assert_eq!(
            mb.phys_alloc(0x1000_0000, 0x1000),
            Err(MemblockError::NoMemory)
        );
        assert_eq!(mb.phys_alloc(0, 0x1000), Err(MemblockError::Invalid));
        let low = mb.alloc_bootmem_low_pages(0x1000).unwrap();
        assert!(low.as_u64() < 0xffff_ffff);
    }

    proptest::proptest! {
        #[test]
        fn reserve_free_matches_bitmap(ops in proptest::collection::vec((0u64..64, 1u64..8, proptest::bool::ANY), 1..60)) {
            // Reference model: one bool per 4 KiB unit over 64 units.
            let mut model = [false; 72];
            let mut mb = Memblock::new();
            mb.add(PhysAddr::new(0), 64 * 0x1000).unwrap();
            for (start, len, reserve) in ops {
                if reserve {
                    mb.reserve(PhysAddr::new(start * 0x1000), len * 0x1000).unwrap();
                } else {
                    mb.free(PhysAddr::new(start * 0x1000), len * 0x1000).unwrap();
                }
                for u in start..start + len {
                    model[u as usize] = reserve;
                }
                let regions = mb.reserved.regions();
                for w in regions.windows(2) {
                    proptest::prop_assert!(w[0].end() < w[1].base.as_u64(), "sorted, merged");
                }
                let mut free_units = [false; 72];
                for r in mb.free_ranges() {
                    for u in r.base.as_u64() / 0x1000..r.end() / 0x1000 {
                        free_units[u as usize] = true;
                    }
                }
                for u in 0..64 {
                    proptest::prop_assert_eq!(free_units[u], !model[u]);
                }
            }
        }
    }
}
