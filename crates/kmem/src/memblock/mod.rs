//! memblock: the boot-time physical memory allocator (mm/memblock.c), with the old bootmem
//! names as aliases.
//!
//! Two sorted region arrays (`struct memblock_type`): `memory` (what RAM exists) and
//! `reserved` (what is in use). Free memory is `memory` minus `reserved`. Every region
//! carries a NUMA node id (`nid`) and flags ([`MemblockFlags`]: `MEMBLOCK_HOTPLUG`,
//! `MEMBLOCK_MIRROR`, `MEMBLOCK_NOMAP`, …). Allocation (`alloc.rs`) searches free ranges
//! top-down by default (bottom-up on request) below `current_limit`, never returns the
//! first page, and reserves what it returns with `MEMBLOCK_RSRV_KERN` and the node asked
//! for. At the end of boot, [`crate::Machine`] hands every free range to the buddy
//! allocator (`memblock_free_all`).
//!
//! # Invariants
//! - Each array is sorted by base and its regions do not overlap; after every operation,
//!   neighbouring regions with the same node and flags are merged (Linux's "minimal" array).
//! - Every range is capped at [`PHYS_ADDR_MAX`] on entry (`memblock_cap_size`), so a region
//!   ends at most there and no arithmetic on a region overflows.
//! - `cnt <= max` and `cnt <= MEMBLOCK_REGIONS_MAX`. An empty array has `cnt == 0` and a
//!   zeroed entry 0, as in Linux.
//! - Region sizes are as given: memblock does not page-align (callers that need pages
//!   align, as Linux's e820 code does, or call [`Memblock::trim_memory`]).
//!
//! # Region arrays
//! Linux starts with `INIT_MEMBLOCK_REGIONS` (128) entries per array and, once
//! `memblock_allow_resize()` was called, doubles a full array into memory it finds with
//! memblock itself and reserves (`memblock_double_array`). kmem keeps the storage inline
//! (memblock is a plain value) with room for [`MEMBLOCK_REGIONS_MAX`] entries, and models
//! the doubling as Linux does it: `max` doubles, and the page-aligned range the new array
//! would occupy (`max * sizeof(struct memblock_region)`) is found with the same search,
//! avoiding the range being added, reserved with `MEMBLOCK_RSRV_KERN`, and the previous
//! doubled array's range freed. Needing more entries than the inline storage fails
//! cleanly ([`MemblockError::TooManyRegions`]).
//!
//! # Locking
//! memblock is a plain value; the machine keeps it under a lock after boot. Before the buddy
//! allocator exists only the boot CPU runs, as in Linux.

#![forbid(unsafe_code)]

mod alloc;
#[cfg(test)]
mod tests;

pub use alloc::{DirectMap, FreeRanges};

use core::fmt;
use core::ops::{BitAnd, BitOr, Not};

use crate::addr::{Pfn, PhysAddr, PAGE_SIZE, PHYS_ADDR_MAX};

/// `INIT_MEMBLOCK_REGIONS` (mm/memblock.c): the initial `max` of each region array.
pub const INIT_MEMBLOCK_REGIONS: usize = 128;
/// `INIT_MEMBLOCK_MEMORY_REGIONS`: x86 keeps the default, [`INIT_MEMBLOCK_REGIONS`].
pub const INIT_MEMBLOCK_MEMORY_REGIONS: usize = INIT_MEMBLOCK_REGIONS;
/// `INIT_MEMBLOCK_RESERVED_REGIONS`: x86 keeps the default, [`INIT_MEMBLOCK_REGIONS`].
pub const INIT_MEMBLOCK_RESERVED_REGIONS: usize = INIT_MEMBLOCK_REGIONS;
/// The regions each array can hold in kmem (inline storage). `max` doubles as in Linux
/// (128, 256, …) and is what the array reports; an operation that would need more entries
/// than this fails with [`MemblockError::TooManyRegions`] and changes nothing. 168 keeps both
/// arrays (24-byte entries) within the 8 KiB the 16-byte entries took before nodes and
/// flags, so the machine's state, which holds memblock, did not grow.
pub const MEMBLOCK_REGIONS_MAX: usize = 168;
/// `sizeof(struct memblock_region)` on 64-bit Linux with `CONFIG_NUMA` (base, size, flags,
/// nid): what a doubled array occupies per entry.
pub const MEMBLOCK_REGION_BYTES: u64 = 24;

/// `MEMBLOCK_LOW_LIMIT`: the default lower bound of the `memblock_alloc*` helpers.
pub const MEMBLOCK_LOW_LIMIT: PhysAddr = PhysAddr::new(0);
/// `MEMBLOCK_ALLOC_ANYWHERE`: no upper bound (`~(phys_addr_t)0`), the initial current limit.
pub const MEMBLOCK_ALLOC_ANYWHERE: PhysAddr = PHYS_ADDR_MAX;
/// `MEMBLOCK_ALLOC_ACCESSIBLE`: allocate anywhere below the current limit.
pub const MEMBLOCK_ALLOC_ACCESSIBLE: PhysAddr = PhysAddr::new(0);
/// `MEMBLOCK_ALLOC_NOLEAKTRACE`: as accessible, without kmemleak tracking.
pub const MEMBLOCK_ALLOC_NOLEAKTRACE: PhysAddr = PhysAddr::new(1);
/// `ARCH_LOW_ADDRESS_LIMIT` (include/linux/memblock.h default): `memblock_alloc_low`'s bound.
pub const ARCH_LOW_ADDRESS_LIMIT: PhysAddr = PhysAddr::new(0xffff_ffff);
/// `SMP_CACHE_BYTES` on x86 (`L1_CACHE_BYTES`, `CONFIG_X86_L1_CACHE_SHIFT` = 6): the
/// alignment memblock uses when asked for alignment 0.
pub const SMP_CACHE_BYTES: u64 = 64;

/// `NUMA_NO_NODE`: any node.
pub const NUMA_NO_NODE: i32 = -1;
/// `CONFIG_NODES_SHIFT` (x86_64 default without `MAXSMP`, arch/x86/Kconfig).
pub const NODES_SHIFT: u32 = 6;
/// `MAX_NUMNODES`: `memblock_add` gives regions this (invalid) node until they get one.
pub const MAX_NUMNODES: i32 = 1 << NODES_SHIFT;

/// `numa_valid_node`: whether `nid` names a node.
#[inline]
pub const fn numa_valid_node(nid: i32) -> bool {
    nid >= 0 && nid < MAX_NUMNODES
}

/// `enum memblock_flags` (include/linux/memblock.h): attributes of a region.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MemblockFlags(u32);

impl MemblockFlags {
    /// No special request.
    pub const MEMBLOCK_NONE: Self = Self(0x0);
    /// Hotpluggable memory: skipped by allocations when `movable_node` is on.
    pub const MEMBLOCK_HOTPLUG: Self = Self(0x1);
    /// Mirrored memory: preferred by allocations once any exists (`kernelcore=mirror`).
    pub const MEMBLOCK_MIRROR: Self = Self(0x2);
    /// Not in the kernel's direct map: never allocated unless asked for explicitly.
    pub const MEMBLOCK_NOMAP: Self = Self(0x4);
    /// Always detected via a driver: never allocated unless asked for explicitly.
    pub const MEMBLOCK_DRIVER_MANAGED: Self = Self(0x8);
    /// Reserved memory whose `struct page`s are not initialised.
    pub const MEMBLOCK_RSRV_NOINIT: Self = Self(0x10);
    /// Memory reserved for kernel use: every memblock allocation sets it.
    pub const MEMBLOCK_RSRV_KERN: Self = Self(0x20);
    /// Scratch memory for kexec handover.
    pub const MEMBLOCK_KHO_SCRATCH: Self = Self(0x40);

    /// The raw bits.
    #[inline]
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// Flags from raw bits (unknown bits are kept, as in Linux's `enum`).
    #[inline]
    pub const fn from_bits_retain(bits: u32) -> Self {
        Self(bits)
    }
    /// Whether every flag of `other` is set.
    #[inline]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
    /// Whether any flag of `other` is set.
    #[inline]
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }
    /// Whether no flag is set (`MEMBLOCK_NONE`).
    #[inline]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The name debugfs `memblock/memory` shows (mm/memblock.c `flagname[]`): the lowest
    /// flag's, `NONE` without flags, `UNKNOWN` for bits without a name.
    pub const fn name(self) -> &'static str {
        const NAMES: [&str; 7] = [
            "HOTPLUG",
            "MIRROR",
            "NOMAP",
            "DRV_MNG",
            "RSV_NIT",
            "RSV_KERN",
            "KHO_SCRATCH",
        ];
        if self.0 == 0 {
            return "NONE";
        }
        let i = self.0.trailing_zeros() as usize;
        if i < NAMES.len() {
            NAMES[i]
        } else {
            "UNKNOWN"
        }
    }
}

impl BitOr for MemblockFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}
impl BitAnd for MemblockFlags {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0)
    }
}
impl Not for MemblockFlags {
    type Output = Self;
    fn not(self) -> Self {
        Self(!self.0)
    }
}
impl fmt::Debug for MemblockFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemblockFlags({:#x})", self.0)
    }
}

/// One region (`struct memblock_region`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MemblockRegion {
    /// First byte.
    pub base: PhysAddr,
    /// Size in bytes.
    pub size: u64,
    /// Attributes.
    pub flags: MemblockFlags,
    /// NUMA node (`MAX_NUMNODES` or `NUMA_NO_NODE` when it has none).
    pub nid: i32,
}

impl MemblockRegion {
    const EMPTY: Self = Self {
        base: PhysAddr::new(0),
        size: 0,
        flags: MemblockFlags::MEMBLOCK_NONE,
        nid: 0,
    };
    /// One past the last byte (at most [`PHYS_ADDR_MAX`]).
    #[inline]
    pub fn end(&self) -> u64 {
        self.base.as_u64() + self.size
    }
    /// `memblock_get_region_node`.
    #[inline]
    pub fn node(&self) -> i32 {
        self.nid
    }
    /// `memblock_is_hotpluggable`.
    #[inline]
    pub fn is_hotpluggable(&self) -> bool {
        self.flags.contains(MemblockFlags::MEMBLOCK_HOTPLUG)
    }
    /// `memblock_is_mirror`.
    #[inline]
    pub fn is_mirror(&self) -> bool {
        self.flags.contains(MemblockFlags::MEMBLOCK_MIRROR)
    }
    /// `memblock_is_nomap`.
    #[inline]
    pub fn is_nomap(&self) -> bool {
        self.flags.contains(MemblockFlags::MEMBLOCK_NOMAP)
    }
    /// `memblock_is_reserved_noinit`.
    #[inline]
    pub fn is_reserved_noinit(&self) -> bool {
        self.flags.contains(MemblockFlags::MEMBLOCK_RSRV_NOINIT)
    }
}

/// Errors of memblock operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemblockError {
    /// A region array is full and `memblock_allow_resize()` was not called (Linux panics).
    CannotResize {
        /// The array ("memory" or "reserved").
        name: &'static str,
    },
    /// A full region array could not be doubled: no free memory for it, or kmem's inline
    /// storage is exhausted.
    TooManyRegions {
        /// The array ("memory" or "reserved").
        name: &'static str,
        /// Its entries.
        max: usize,
    },
    /// No free range satisfies the request.
    NoMemory,
    /// The arguments are invalid (zero size, alignment not a power of two).
    Invalid,
}

impl fmt::Display for MemblockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MemblockError::CannotResize { name } => {
                write!(f, "memblock: cannot resize {name} array")
            }
            MemblockError::TooManyRegions { name, max } => write!(
                f,
                "memblock: Failed to double {name} array from {max} to {} entries !",
                max * 2
            ),
            MemblockError::NoMemory => f.write_str("memblock: out of memory"),
            MemblockError::Invalid => f.write_str("memblock: invalid arguments"),
        }
    }
}

/// Which region array an operation works on (Linux passes `&memblock.memory` or
/// `&memblock.reserved`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemblockKind {
    /// `memblock.memory`.
    Memory,
    /// `memblock.reserved`.
    Reserved,
}

/// `memblock_cap_size`: the size of `[base, base + size)` cut at [`PHYS_ADDR_MAX`].
#[inline]
fn cap_size(base: PhysAddr, size: u64) -> u64 {
    size.min(PHYS_ADDR_MAX.as_u64() - base.as_u64())
}

/// A physical address computed inside memblock; every such value is at most
/// [`PHYS_ADDR_MAX`] because ranges are capped on entry.
#[inline]
fn pa(v: u64) -> PhysAddr {
    PhysAddr::new(v)
}

/// A sorted array of regions (`struct memblock_type`).
#[derive(Clone)]
pub struct MemblockType {
    slots: [MemblockRegion; MEMBLOCK_REGIONS_MAX],
    cnt: usize,
    max: usize,
    total_size: u64,
    /// The range a doubled array occupies (reserved), if the array was doubled.
    array: Option<(PhysAddr, u64)>,
    name: &'static str,
}

impl fmt::Debug for MemblockType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.regions()).finish()
    }
}

impl MemblockType {
    const fn new(name: &'static str, max: usize) -> Self {
        Self {
            slots: [MemblockRegion::EMPTY; MEMBLOCK_REGIONS_MAX],
            cnt: 0,
            max,
            total_size: 0,
            array: None,
            name,
        }
    }
    /// The regions, sorted by base.
    pub fn regions(&self) -> &[MemblockRegion] {
        &self.slots[..self.cnt]
    }
    /// Entry `i` of the array, also past the regions in use (`type->regions[i]`, `i < max`):
    /// an emptied array keeps a zeroed entry 0, as Linux's does.
    pub fn slot(&self, i: usize) -> Option<&MemblockRegion> {
        self.slots.get(i).filter(|_| i < self.max)
    }
    /// The number of regions (`cnt`).
    pub fn cnt(&self) -> usize {
        self.cnt
    }
    /// The array's capacity (`max`): [`INIT_MEMBLOCK_REGIONS`], doubled on demand.
    pub fn max(&self) -> usize {
        self.max
    }
    /// Sum of region sizes (`total_size`).
    pub fn total_size(&self) -> u64 {
        self.total_size
    }
    /// The array's name ("memory" or "reserved").
    pub fn name(&self) -> &'static str {
        self.name
    }
    /// `memblock_overlaps_region`: whether `[base, base + size)` overlaps a region.
    pub fn overlaps(&self, base: PhysAddr, size: u64) -> bool {
        let (b, e) = (base.as_u64(), base.as_u64() + cap_size(base, size));
        self.regions()
            .iter()
            .any(|r| b < r.end() && r.base.as_u64() < e)
    }
    /// `memblock_search`: the index of the region containing `addr`.
    fn search(&self, addr: PhysAddr) -> Option<usize> {
        let a = addr.as_u64();
        let i = self.regions().partition_point(|r| r.end() <= a);
        (i < self.cnt && self.slots[i].base.as_u64() <= a).then_some(i)
    }

    /// `memblock_insert_region`; the caller made room (`cnt < max`).
    fn insert_region(&mut self, idx: usize, base: u64, size: u64, nid: i32, flags: MemblockFlags) {
        debug_assert!(self.cnt < self.max);
        self.slots.copy_within(idx..self.cnt, idx + 1);
        self.slots[idx] = MemblockRegion {
            base: pa(base),
            size,
            flags,
            nid,
        };
        self.cnt += 1;
        self.total_size += size;
    }

    /// `memblock_remove_region`.
    fn remove_region(&mut self, r: usize) {
        self.total_size -= self.slots[r].size;
        self.slots.copy_within(r + 1..self.cnt, r);
        self.cnt -= 1;
        if self.cnt == 0 {
            self.slots[0] = MemblockRegion {
                nid: MAX_NUMNODES,
                ..MemblockRegion::EMPTY
            };
        }
    }

    /// `memblock_merge_regions`: merges compatible neighbours in `[start_rgn - 1, end_rgn)`.
    fn merge_regions(&mut self, start_rgn: usize, end_rgn: usize) {
        let mut i = start_rgn.saturating_sub(1);
        let mut end = end_rgn.min(self.cnt.saturating_sub(1));
        while i < end {
            let (this, next) = (self.slots[i], self.slots[i + 1]);
            if this.end() != next.base.as_u64() || this.nid != next.nid || this.flags != next.flags
            {
                debug_assert!(this.end() <= next.base.as_u64());
                i += 1;
                continue;
            }
            self.slots[i].size += next.size;
            self.slots.copy_within(i + 2..self.cnt, i + 1);
            self.cnt -= 1;
            end -= 1;
        }
    }

    /// One pass of `memblock_add_range`: counts (and with `insert`, inserts) the pieces of
    /// `[base, end)` not yet covered. Returns the count and the inserted index range.
    fn add_pass(
        &mut self,
        base: u64,
        end: u64,
        nid: i32,
        flags: MemblockFlags,
        insert: bool,
    ) -> (usize, Option<usize>, usize) {
        let (mut b, mut nr_new, mut start_rgn, mut end_rgn) = (base, 0, None, 0);
        let mut idx = 0;
        while idx < self.cnt {
            let r = self.slots[idx];
            let (rbase, rend) = (r.base.as_u64(), r.end());
            if rbase >= end {
                break;
            }
            if rend <= b {
                idx += 1;
                continue;
            }
            // `r` overlaps: the part of the new range below it is a new region.
            if rbase > b {
                nr_new += 1;
                if insert {
                    start_rgn.get_or_insert(idx);
                    end_rgn = idx + 1;
                    self.insert_region(idx, b, rbase - b, nid, flags);
                    idx += 1;
                }
            }
            b = rend.min(end);
            idx += 1;
        }
        if b < end {
            nr_new += 1;
            if insert {
                start_rgn.get_or_insert(idx);
                end_rgn = idx + 1;
                self.insert_region(idx, b, end - b, nid, flags);
            }
        }
        (nr_new, start_rgn, end_rgn)
    }

    /// The splitting loop of `memblock_isolate_range` (room for two more regions is there).
    fn isolate_pass(&mut self, base: u64, end: u64) -> (usize, usize) {
        let (mut start_rgn, mut end_rgn) = (0, 0);
        let mut idx = 0;
        while idx < self.cnt {
            let r = self.slots[idx];
            let (rbase, rend) = (r.base.as_u64(), r.end());
            if rbase >= end {
                break;
            }
            if rend <= base {
                idx += 1;
                continue;
            }
            if rbase < base {
                // Intersects from below: split, go on with the top half (now at idx + 1).
                self.slots[idx].base = pa(base);
                self.slots[idx].size -= base - rbase;
                self.total_size -= base - rbase;
                self.insert_region(idx, rbase, base - rbase, r.nid, r.flags);
            } else if rend > end {
                // Intersects from above: split, redo the bottom half (now at idx).
                self.slots[idx].base = pa(end);
                self.slots[idx].size -= end - rbase;
                self.total_size -= end - rbase;
                self.insert_region(idx, rbase, end - rbase, r.nid, r.flags);
                continue;
            } else {
                if end_rgn == 0 {
                    start_rgn = idx;
                }
                end_rgn = idx + 1;
            }
            idx += 1;
        }
        (start_rgn, end_rgn)
    }
}

/// The boot memory allocator (`struct memblock` and memblock's global settings).
#[derive(Clone, Debug)]
pub struct Memblock {
    bottom_up: bool,
    current_limit: PhysAddr,
    /// Memory that exists.
    pub memory: MemblockType,
    /// Memory in use.
    pub reserved: MemblockType,
    /// `memblock_can_resize`: set by [`Memblock::allow_resize`].
    can_resize: bool,
    /// `system_has_some_mirror`: a region was marked `MEMBLOCK_MIRROR`.
    has_mirror: bool,
    /// `movable_node_is_enabled()`: the `movable_node` boot parameter.
    movable_node: bool,
    /// `mirrored_kernelcore`: `kernelcore=mirror`; without it `memblock_mark_mirror` does
    /// nothing.
    mirrored_kernelcore: bool,
}

impl Default for Memblock {
    fn default() -> Self {
        Self::new()
    }
}

impl Memblock {
    /// An empty memblock as Linux initialises it: no limit, top-down, arrays of
    /// [`INIT_MEMBLOCK_REGIONS`] that cannot grow until [`Memblock::allow_resize`].
    pub const fn new() -> Self {
        Self {
            bottom_up: false,
            current_limit: MEMBLOCK_ALLOC_ANYWHERE,
            memory: MemblockType::new("memory", INIT_MEMBLOCK_MEMORY_REGIONS),
            reserved: MemblockType::new("reserved", INIT_MEMBLOCK_RESERVED_REGIONS),
            can_resize: false,
            has_mirror: false,
            movable_node: false,
            mirrored_kernelcore: false,
        }
    }

    fn ty(&self, kind: MemblockKind) -> &MemblockType {
        match kind {
            MemblockKind::Memory => &self.memory,
            MemblockKind::Reserved => &self.reserved,
        }
    }
    fn ty_mut(&mut self, kind: MemblockKind) -> &mut MemblockType {
        match kind {
            MemblockKind::Memory => &mut self.memory,
            MemblockKind::Reserved => &mut self.reserved,
        }
    }

    /// `memblock_set_bottom_up`: allocate from low addresses up instead of top-down.
    pub fn set_bottom_up(&mut self, enable: bool) {
        self.bottom_up = enable;
    }
    /// `memblock_bottom_up`.
    pub fn bottom_up(&self) -> bool {
        self.bottom_up
    }
    /// `memblock_set_current_limit`: allocations below `MEMBLOCK_ALLOC_ACCESSIBLE` stay
    /// under `limit`.
    pub fn set_current_limit(&mut self, limit: PhysAddr) {
        self.current_limit = limit;
    }
    /// `memblock_get_current_limit`.
    pub fn current_limit(&self) -> PhysAddr {
        self.current_limit
    }
    /// `memblock_allow_resize`: full region arrays may be doubled from now on.
    pub fn allow_resize(&mut self) {
        self.can_resize = true;
    }
    /// The `movable_node` boot parameter: allocations skip `MEMBLOCK_HOTPLUG` memory.
    pub fn set_movable_node(&mut self, enable: bool) {
        self.movable_node = enable;
    }
    /// `movable_node_is_enabled`.
    pub fn movable_node(&self) -> bool {
        self.movable_node
    }
    /// The `kernelcore=mirror` boot parameter (`mirrored_kernelcore`).
    pub fn set_mirrored_kernelcore(&mut self, enable: bool) {
        self.mirrored_kernelcore = enable;
    }
    /// `memblock_has_mirror`: some memory was marked `MEMBLOCK_MIRROR`.
    pub fn has_mirror(&self) -> bool {
        self.has_mirror
    }

    /// `memblock_add_range`: adds `[base, base + size)` (capped at [`PHYS_ADDR_MAX`]) to an
    /// array. Parts already covered keep their node and flags; the array is merged after.
    ///
    /// # Errors
    /// [`MemblockError::CannotResize`] or [`MemblockError::TooManyRegions`] when the array
    /// is full and cannot be doubled; nothing is changed then.
    pub fn add_range(
        &mut self,
        kind: MemblockKind,
        base: PhysAddr,
        size: u64,
        nid: i32,
        flags: MemblockFlags,
    ) -> Result<(), MemblockError> {
        let size = cap_size(base, size);
        if size == 0 {
            return Ok(());
        }
        let (b, end) = (base.as_u64(), base.as_u64() + size);
        let t = self.ty_mut(kind);
        // Special case for an empty array.
        if t.slots[0].size == 0 {
            t.slots[0] = MemblockRegion {
                base,
                size,
                flags,
                nid,
            };
            t.cnt = 1;
            t.total_size = size;
            return Ok(());
        }
        // With room for cnt + 1 new regions (the worst case), insert at once; otherwise
        // count first, double the array as needed, then insert.
        // (Linux: `type->cnt * 2 + 1 <= type->max`.)
        let mut insert = t.cnt * 2 < t.max.min(MEMBLOCK_REGIONS_MAX);
        loop {
            let (nr_new, start_rgn, end_rgn) =
                self.ty_mut(kind).add_pass(b, end, nid, flags, insert);
            if nr_new == 0 {
                return Ok(());
            }
            if insert {
                self.ty_mut(kind)
                    .merge_regions(start_rgn.unwrap_or(0), end_rgn);
                return Ok(());
            }
            while self.ty(kind).cnt + nr_new > self.ty(kind).max {
                self.double_array(kind, base, size)?;
            }
            self.check_storage(kind, nr_new)?;
            insert = true;
        }
    }

    /// `memblock_double_array`: doubles a full array's `max`, reserving the (page-aligned)
    /// memory the doubled array occupies in Linux, away from `[new_start, new_start +
    /// new_size)` when that range is about to be reserved, and freeing the previous one.
    fn double_array(
        &mut self,
        kind: MemblockKind,
        new_start: PhysAddr,
        new_size: u64,
    ) -> Result<(), MemblockError> {
        let (name, max) = (self.ty(kind).name, self.ty(kind).max);
        if !self.can_resize {
            return Err(MemblockError::CannotResize { name });
        }
        let failed = MemblockError::TooManyRegions { name, max };
        let page = PAGE_SIZE as u64;
        let new_alloc = (max as u64 * 2 * MEMBLOCK_REGION_BYTES).next_multiple_of(page);
        // Only a new reserved array must avoid the range about to be reserved.
        let (avoid_start, avoid_size) = match kind {
            MemblockKind::Reserved => (new_start.as_u64(), new_size),
            MemblockKind::Memory => (0, 0),
        };
        let limit = self.current_limit;
        let mut addr = self.find_in_range(pa(avoid_start + avoid_size), limit, new_alloc, page);
        if addr == 0 && avoid_size != 0 {
            let top = pa(avoid_start.min(limit.as_u64()));
            addr = self.find_in_range(PhysAddr::new(0), top, new_alloc, page);
        }
        if addr == 0 {
            return Err(failed);
        }
        let t = self.ty_mut(kind);
        t.max = max * 2;
        let old = t.array.replace((pa(addr), new_alloc));
        if let Some((old_base, old_size)) = old {
            self.free(old_base, old_size)?;
        }
        self.reserve_kern(pa(addr), new_alloc)
    }

    /// Whether `extra` more regions fit kmem's inline storage.
    fn check_storage(&self, kind: MemblockKind, extra: usize) -> Result<(), MemblockError> {
        let t = self.ty(kind);
        if t.cnt + extra > MEMBLOCK_REGIONS_MAX {
            return Err(MemblockError::TooManyRegions {
                name: t.name,
                max: t.max,
            });
        }
        Ok(())
    }

    /// `memblock_isolate_range`: splits regions at the boundaries of `[base, base + size)`
    /// and returns the index range of the regions inside it.
    fn isolate_range(
        &mut self,
        kind: MemblockKind,
        base: PhysAddr,
        size: u64,
    ) -> Result<(usize, usize), MemblockError> {
        let size = cap_size(base, size);
        if size == 0 {
            return Ok((0, 0));
        }
        // At most two more regions.
        while self.ty(kind).cnt + 2 > self.ty(kind).max {
            self.double_array(kind, base, size)?;
        }
        self.check_storage(kind, 2)?;
        let (b, end) = (base.as_u64(), base.as_u64() + size);
        Ok(self.ty_mut(kind).isolate_pass(b, end))
    }

    /// `memblock_remove_range`.
    fn remove_range(
        &mut self,
        kind: MemblockKind,
        base: PhysAddr,
        size: u64,
    ) -> Result<(), MemblockError> {
        let (start, end) = self.isolate_range(kind, base, size)?;
        let t = self.ty_mut(kind);
        for i in (start..end).rev() {
            t.remove_region(i);
        }
        Ok(())
    }

    /// `memblock_setclr_flag`: sets or clears `flag` on the regions in `[base, base + size)`.
    fn setclr_flag(
        &mut self,
        kind: MemblockKind,
        base: PhysAddr,
        size: u64,
        set: bool,
        flag: MemblockFlags,
    ) -> Result<(), MemblockError> {
        let (start, end) = self.isolate_range(kind, base, size)?;
        let t = self.ty_mut(kind);
        for r in &mut t.slots[start..end] {
            r.flags = if set { r.flags | flag } else { r.flags & !flag };
        }
        t.merge_regions(start, end);
        Ok(())
    }

    /// `memblock_add_node`: registers RAM of node `nid` with `flags`.
    ///
    /// # Errors
    /// As [`Memblock::add_range`].
    pub fn add_node(
        &mut self,
        base: PhysAddr,
        size: u64,
        nid: i32,
        flags: MemblockFlags,
    ) -> Result<(), MemblockError> {
        self.add_range(MemblockKind::Memory, base, size, nid, flags)
    }
    /// `memblock_add`: registers RAM without a node yet (`MAX_NUMNODES`).
    ///
    /// # Errors
    /// As [`Memblock::add_range`].
    pub fn add(&mut self, base: PhysAddr, size: u64) -> Result<(), MemblockError> {
        self.add_range(
            MemblockKind::Memory,
            base,
            size,
            MAX_NUMNODES,
            MemblockFlags::MEMBLOCK_NONE,
        )
    }
    /// `memblock_remove`: forgets RAM.
    ///
    /// # Errors
    /// As [`Memblock::add_range`] (splitting a region may need a bigger array).
    pub fn remove(&mut self, base: PhysAddr, size: u64) -> Result<(), MemblockError> {
        self.remove_range(MemblockKind::Memory, base, size)
    }
    /// `__memblock_reserve`: marks a range in use, for node `nid` with `flags`.
    ///
    /// # Errors
    /// As [`Memblock::add_range`].
    pub fn reserve_node(
        &mut self,
        base: PhysAddr,
        size: u64,
        nid: i32,
        flags: MemblockFlags,
    ) -> Result<(), MemblockError> {
        self.add_range(MemblockKind::Reserved, base, size, nid, flags)
    }
    /// `memblock_reserve`: marks a range in use.
    ///
    /// # Errors
    /// As [`Memblock::add_range`].
    pub fn reserve(&mut self, base: PhysAddr, size: u64) -> Result<(), MemblockError> {
        self.reserve_node(base, size, NUMA_NO_NODE, MemblockFlags::MEMBLOCK_NONE)
    }
    /// `memblock_reserve_kern`: marks a range in use by the kernel (`MEMBLOCK_RSRV_KERN`).
    ///
    /// # Errors
    /// As [`Memblock::add_range`].
    pub fn reserve_kern(&mut self, base: PhysAddr, size: u64) -> Result<(), MemblockError> {
        self.reserve_node(base, size, NUMA_NO_NODE, MemblockFlags::MEMBLOCK_RSRV_KERN)
    }
    /// `memblock_phys_free` (and `memblock_free` on a physical address): releases a
    /// reserved range.
    ///
    /// # Errors
    /// As [`Memblock::remove`].
    pub fn free(&mut self, base: PhysAddr, size: u64) -> Result<(), MemblockError> {
        self.remove_range(MemblockKind::Reserved, base, size)
    }
    /// `memblock_set_node`: sets the node of the regions in `[base, base + size)` of an
    /// array, splitting regions that cross the boundaries.
    ///
    /// # Errors
    /// As [`Memblock::add_range`].
    pub fn set_node(
        &mut self,
        base: PhysAddr,
        size: u64,
        kind: MemblockKind,
        nid: i32,
    ) -> Result<(), MemblockError> {
        let (start, end) = self.isolate_range(kind, base, size)?;
        let t = self.ty_mut(kind);
        for r in &mut t.slots[start..end] {
            r.nid = nid;
        }
        t.merge_regions(start, end);
        Ok(())
    }
}

/// The flag setters (`memblock_mark_*`, `memblock_clear_*`); each splits regions at the
/// range's boundaries and merges after.
impl Memblock {
    /// `memblock_mark_hotplug`.
    ///
    /// # Errors
    /// As [`Memblock::add_range`].
    pub fn mark_hotplug(&mut self, base: PhysAddr, size: u64) -> Result<(), MemblockError> {
        self.setclr_flag(
            MemblockKind::Memory,
            base,
            size,
            true,
            MemblockFlags::MEMBLOCK_HOTPLUG,
        )
    }
    /// `memblock_clear_hotplug`.
    ///
    /// # Errors
    /// As [`Memblock::add_range`].
    pub fn clear_hotplug(&mut self, base: PhysAddr, size: u64) -> Result<(), MemblockError> {
        self.setclr_flag(
            MemblockKind::Memory,
            base,
            size,
            false,
            MemblockFlags::MEMBLOCK_HOTPLUG,
        )
    }
    /// `memblock_mark_mirror`: does nothing without `kernelcore=mirror`
    /// ([`Memblock::set_mirrored_kernelcore`]); otherwise allocations prefer mirrored memory
    /// from now on.
    ///
    /// # Errors
    /// As [`Memblock::add_range`].
    pub fn mark_mirror(&mut self, base: PhysAddr, size: u64) -> Result<(), MemblockError> {
        if !self.mirrored_kernelcore {
            return Ok(());
        }
        self.has_mirror = true;
        self.setclr_flag(
            MemblockKind::Memory,
            base,
            size,
            true,
            MemblockFlags::MEMBLOCK_MIRROR,
        )
    }
    /// `memblock_mark_nomap`.
    ///
    /// # Errors
    /// As [`Memblock::add_range`].
    pub fn mark_nomap(&mut self, base: PhysAddr, size: u64) -> Result<(), MemblockError> {
        self.setclr_flag(
            MemblockKind::Memory,
            base,
            size,
            true,
            MemblockFlags::MEMBLOCK_NOMAP,
        )
    }
    /// `memblock_clear_nomap`.
    ///
    /// # Errors
    /// As [`Memblock::add_range`].
    pub fn clear_nomap(&mut self, base: PhysAddr, size: u64) -> Result<(), MemblockError> {
        self.setclr_flag(
            MemblockKind::Memory,
            base,
            size,
            false,
            MemblockFlags::MEMBLOCK_NOMAP,
        )
    }
    /// `memblock_mark_kho_scratch`.
    ///
    /// # Errors
    /// As [`Memblock::add_range`].
    pub fn mark_kho_scratch(&mut self, base: PhysAddr, size: u64) -> Result<(), MemblockError> {
        let f = MemblockFlags::MEMBLOCK_KHO_SCRATCH;
        self.setclr_flag(MemblockKind::Memory, base, size, true, f)
    }
    /// `memblock_clear_kho_scratch`.
    ///
    /// # Errors
    /// As [`Memblock::add_range`].
    pub fn clear_kho_scratch(&mut self, base: PhysAddr, size: u64) -> Result<(), MemblockError> {
        let f = MemblockFlags::MEMBLOCK_KHO_SCRATCH;
        self.setclr_flag(MemblockKind::Memory, base, size, false, f)
    }
    /// `memblock_reserved_mark_noinit`.
    ///
    /// # Errors
    /// As [`Memblock::add_range`].
    pub fn reserved_mark_noinit(&mut self, base: PhysAddr, size: u64) -> Result<(), MemblockError> {
        let f = MemblockFlags::MEMBLOCK_RSRV_NOINIT;
        self.setclr_flag(MemblockKind::Reserved, base, size, true, f)
    }
    /// `memblock_reserved_mark_kern`.
    ///
    /// # Errors
    /// As [`Memblock::add_range`].
    pub fn reserved_mark_kern(&mut self, base: PhysAddr, size: u64) -> Result<(), MemblockError> {
        let f = MemblockFlags::MEMBLOCK_RSRV_KERN;
        self.setclr_flag(MemblockKind::Reserved, base, size, true, f)
    }

    /// `memblock_trim_memory`: shrinks every memory region to `align` boundaries, dropping
    /// the ones that vanish.
    ///
    /// # Errors
    /// [`MemblockError::Invalid`] if `align` is not a power of two.
    pub fn trim_memory(&mut self, align: u64) -> Result<(), MemblockError> {
        if !align.is_power_of_two() {
            return Err(MemblockError::Invalid);
        }
        let t = &mut self.memory;
        let mut i = 0;
        while i < t.cnt {
            let r = t.slots[i];
            let (orig_start, orig_end) = (r.base.as_u64(), r.end());
            let start = orig_start
                .checked_next_multiple_of(align)
                .unwrap_or(u64::MAX);
            let end = orig_end & !(align - 1);
            if start == orig_start && end == orig_end {
                i += 1;
            } else if start < end {
                // Linux leaves total_size stale here; kmem keeps it exact.
                t.total_size -= r.size - (end - start);
                t.slots[i].base = pa(start);
                t.slots[i].size = end - start;
                i += 1;
            } else {
                t.remove_region(i);
            }
        }
        Ok(())
    }
}

/// Queries and the debug dump.
impl Memblock {
    /// `memblock_is_reserved`: whether `addr` is reserved.
    pub fn is_reserved(&self, addr: PhysAddr) -> bool {
        self.reserved.search(addr).is_some()
    }
    /// `memblock_is_region_reserved`: whether any byte of the range is reserved.
    pub fn is_region_reserved(&self, base: PhysAddr, size: u64) -> bool {
        self.reserved.overlaps(base, size)
    }
    /// `memblock_is_memory`: whether `addr` is RAM.
    pub fn is_memory(&self, addr: PhysAddr) -> bool {
        self.memory.search(addr).is_some()
    }
    /// `memblock_is_map_memory`: whether `addr` is RAM in the direct map (not `NOMAP`).
    pub fn is_map_memory(&self, addr: PhysAddr) -> bool {
        self.memory
            .search(addr)
            .is_some_and(|i| !self.memory.slots[i].is_nomap())
    }
    /// `memblock_is_region_memory`: whether the range lies within one memory region.
    pub fn is_region_memory(&self, base: PhysAddr, size: u64) -> bool {
        let end = base.as_u64() + cap_size(base, size);
        self.memory
            .search(base)
            .is_some_and(|i| self.memory.slots[i].end() >= end)
    }
    /// `memblock_phys_mem_size`: total RAM registered.
    pub fn phys_mem_size(&self) -> u64 {
        self.memory.total_size
    }
    /// `memblock_reserved_size`: total bytes reserved.
    pub fn reserved_size(&self) -> u64 {
        self.reserved.total_size
    }
    /// `memblock_reserved_kern_size`: bytes reserved for the kernel (`MEMBLOCK_RSRV_KERN`)
    /// below `limit` on node `nid` (any node for an invalid one).
    pub fn reserved_kern_size(&self, limit: PhysAddr, nid: i32) -> u64 {
        let limit = limit.as_u64();
        let mut total = 0;
        for r in self.reserved.regions() {
            if r.base.as_u64() > limit {
                break;
            }
            let size = r.size.min(limit - r.base.as_u64());
            if (nid == r.nid || !numa_valid_node(nid))
                && r.flags.contains(MemblockFlags::MEMBLOCK_RSRV_KERN)
            {
                total += size;
            }
        }
        total
    }
    /// `memblock_start_of_DRAM`.
    pub fn start_of_dram(&self) -> Option<PhysAddr> {
        self.memory.regions().first().map(|r| r.base)
    }
    /// `memblock_end_of_DRAM`: one past the last byte of RAM (at most [`PHYS_ADDR_MAX`]).
    pub fn end_of_dram(&self) -> Option<PhysAddr> {
        self.memory.regions().last().map(|r| pa(r.end()))
    }
    /// `memblock_search_pfn_nid`: the node of the memory region holding frame `pfn` and the
    /// region's frames `[start, end)`.
    pub fn search_pfn_nid(&self, pfn: Pfn) -> Option<(i32, Pfn, Pfn)> {
        let i = self.memory.search(pfn.phys())?;
        let r = self.memory.slots[i];
        Some((r.nid, r.base.pfn(), pa(r.end()).pfn()))
    }

    /// Writes the `memblock=debug` dump (`__memblock_dump_all`) in Linux's format.
    pub fn dump(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        writeln!(out, "MEMBLOCK configuration:")?;
        writeln!(
            out,
            " memory size = {:#018x} reserved size = {:#018x}",
            self.phys_mem_size(),
            self.reserved_size()
        )?;
        for t in [&self.memory, &self.reserved] {
            writeln!(out, " {}.cnt  = {:#x}", t.name, t.cnt)?;
            for (i, r) in t.regions().iter().enumerate() {
                write!(
                    out,
                    " {}[{:#x}]\t[{:#018x}-{:#018x}], {:#018x} bytes",
                    t.name,
                    i,
                    r.base.as_u64(),
                    r.end() - 1,
                    r.size
                )?;
                if numa_valid_node(r.nid) {
                    write!(out, " on node {}", r.nid)?;
                }
                writeln!(out, " flags: {:#x}", r.flags.bits())?;
            }
        }
        Ok(())
    }
}
