//! The simulated machine of Linux's memblock test suite (tools/testing/memblock/tests/
//! common.c, common.h), shared by the ported suites in `tests/memblock_*.rs`.
//!
//! Upstream registers a `malloc`ed buffer of `MEM_SIZE` bytes as the only memory and uses
//! its address as the physical address; here the buffer sits at [`DUMMY_BASE`], above every
//! fixed address the suites reserve. It is filled with 1s, so an allocation that should
//! be zeroed and one that should not (`_raw`) can be told apart, as upstream does.
#![allow(dead_code)]

use kmem::addr::{PhysAddr, VirtAddr};
use kmem::memblock::{DirectMap, Memblock, MemblockFlags, MemblockRegion, MEMBLOCK_ALLOC_ANYWHERE};

pub const SZ_2: u64 = 2;
pub const SZ_4: u64 = 4;
pub const SZ_8: u64 = 8;
pub const SZ_16: u64 = 16;
pub const SZ_32: u64 = 32;
pub const SZ_64: u64 = 64;
pub const SZ_128: u64 = 128;
pub const SZ_256: u64 = 256;
pub const SZ_512: u64 = 512;
pub const SZ_1K: u64 = 1 << 10;
pub const SZ_2K: u64 = 2 << 10;
pub const SZ_4K: u64 = 4 << 10;
pub const SZ_8K: u64 = 8 << 10;
pub const SZ_16K: u64 = 16 << 10;
pub const SZ_32K: u64 = 32 << 10;
pub const SZ_64K: u64 = 64 << 10;
pub const SZ_128K: u64 = 128 << 10;
pub const SZ_512K: u64 = 512 << 10;
pub const SZ_1M: u64 = 1 << 20;
pub const SZ_2M: u64 = 2 << 20;
pub const SZ_4M: u64 = 4 << 20;
pub const SZ_8M: u64 = 8 << 20;
pub const SZ_16M: u64 = 16 << 20;
pub const SZ_32M: u64 = 32 << 20;
pub const SZ_64M: u64 = 64 << 20;
pub const SZ_128M: u64 = 128 << 20;
pub const SZ_256M: u64 = 256 << 20;
pub const SZ_512M: u64 = 512 << 20;
pub const SZ_1G: u64 = 1 << 30;
pub const SZ_2G: u64 = 2 << 30;

/// common.h `MEM_SIZE`: the simulated memory.
pub const MEM_SIZE: u64 = SZ_32K;
/// common.h `NUMA_NODES`.
pub const NUMA_NODES: usize = 8;
/// common.h `INIT_MEMBLOCK_REGIONS` / `INIT_MEMBLOCK_RESERVED_REGIONS`.
pub const INIT_MEMBLOCK_REGIONS: usize = 128;
pub const INIT_MEMBLOCK_RESERVED_REGIONS: usize = INIT_MEMBLOCK_REGIONS;
/// `SMP_CACHE_BYTES` of the test build (tools/include/linux/cache.h: `L1_CACHE_SHIFT` 5).
pub const SMP_CACHE_BYTES: u64 = 32;
pub const PAGE_SIZE: u64 = 4096;
/// common.c `BASIS`: node fractions are in 1/10000 of `MEM_SIZE`.
pub const BASIS: u64 = 10000;
/// Where the simulated memory is (`dummy_physical_memory_base()`).
pub const DUMMY_BASE: u64 = 0x1000_0000;
/// `sizeof(struct memblock_region)`.
pub const REGION_BYTES: u64 = kmem::memblock::MEMBLOCK_REGION_BYTES;

/// A physical address.
pub fn p(a: u64) -> PhysAddr {
    PhysAddr::new(a)
}

/// `PAGE_ALIGN`.
pub fn page_align(a: u64) -> u64 {
    a.next_multiple_of(PAGE_SIZE)
}

/// `region_end`.
pub fn region_end(r: &MemblockRegion) -> u64 {
    r.end()
}

/// The dummy physical memory as the direct map shows it.
pub struct Dummy {
    pub base: u64,
    pub bytes: Vec<u8>,
}

impl Dummy {
    fn offset(&self, pa: PhysAddr, len: u64) -> usize {
        let off = pa
            .as_u64()
            .checked_sub(self.base)
            .expect("below the dummy memory");
        assert!(
            off + len <= self.bytes.len() as u64,
            "past the dummy memory"
        );
        off as usize
    }
    /// The bytes at a direct-map address.
    pub fn at(&self, va: VirtAddr, len: u64) -> &[u8] {
        let off = va.as_usize() - self.bytes.as_ptr() as usize;
        &self.bytes[off..off + len as usize]
    }
}

impl DirectMap for Dummy {
    fn phys_to_virt(&self, pa: PhysAddr) -> VirtAddr {
        VirtAddr::new(self.bytes.as_ptr() as usize + self.offset(pa, 0))
    }
    fn zero(&mut self, pa: PhysAddr, len: u64) {
        let off = self.offset(pa, len);
        self.bytes[off..off + len as usize].fill(0);
    }
}

/// The allocation variant a suite runs (`enum test_flags`, plus `TEST_F_EXACT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flags {
    /// `TEST_F_NONE`: zeroed allocations.
    None,
    /// `TEST_F_RAW`: not zeroed.
    Raw,
    /// `TEST_F_RAW | TEST_F_EXACT`: `memblock_alloc_exact_nid_raw`.
    Exact,
}

/// The memblock under test and its memory (upstream's globals `memblock` and
/// `memory_block`).
pub struct Sim {
    pub mb: Memblock,
    pub mem: Dummy,
    pub movable_node: bool,
}

impl Sim {
    /// A fresh memblock (`memblock_initialization_check`'s state) and dummy memory
    /// (`dummy_physical_memory_init`).
    pub fn new() -> Self {
        Self {
            mb: Memblock::new(),
            mem: Dummy {
                base: DUMMY_BASE,
                bytes: vec![1; MEM_SIZE as usize],
            },
            movable_node: false,
        }
    }
    /// A fresh memblock running in the given direction (`run_top_down`/`run_bottom_up`).
    pub fn with_direction(bottom_up: bool) -> Self {
        let mut s = Self::new();
        s.mb.set_bottom_up(bottom_up);
        s
    }
    /// `reset_memblock_regions`: empty arrays of `INIT_MEMBLOCK_REGIONS`; the attributes
    /// (direction, limit, resizing) stay.
    pub fn reset_memblock_regions(&mut self) {
        let (bu, lim) = (self.mb.bottom_up(), self.mb.current_limit());
        self.mb = Memblock::new();
        self.mb.set_bottom_up(bu);
        self.mb.set_current_limit(lim);
        self.mb.set_movable_node(self.movable_node);
    }
    /// `reset_memblock_attributes`.
    pub fn reset_memblock_attributes(&mut self) {
        self.mb.set_bottom_up(false);
        self.mb.set_current_limit(MEMBLOCK_ALLOC_ANYWHERE);
    }
    fn fill_memblock(&mut self) {
        self.mem.bytes.fill(1);
    }
    /// `setup_memblock`: the dummy memory is the only memory.
    pub fn setup_memblock(&mut self) {
        self.reset_memblock_regions();
        self.mb.add(p(DUMMY_BASE), MEM_SIZE).unwrap();
        self.fill_memblock();
    }
    /// `setup_numa_memblock`: the dummy memory split into `NUMA_NODES` nodes of the given
    /// fractions (in 1/`BASIS`), hotpluggable unless `movable_node` is on.
    pub fn setup_numa_memblock(&mut self, node_fracs: &[u64; NUMA_NODES]) {
        self.reset_memblock_regions();
        let flags = if self.movable_node {
            MemblockFlags::MEMBLOCK_NONE
        } else {
            MemblockFlags::MEMBLOCK_HOTPLUG
        };
        let mut base = DUMMY_BASE;
        for (i, &frac) in node_fracs.iter().enumerate() {
            assert!(frac <= BASIS);
            let size = MEM_SIZE * frac / BASIS;
            self.mb.add_node(p(base), size, i as i32, flags).unwrap();
            base += size;
        }
        self.fill_memblock();
    }
    /// `memblock.reserved.regions[i]`.
    pub fn res(&self, i: usize) -> MemblockRegion {
        *self.mb.reserved.slot(i).unwrap()
    }
    /// `memblock.memory.regions[i]`.
    pub fn mem_rgn(&self, i: usize) -> MemblockRegion {
        *self.mb.memory.slot(i).unwrap()
    }
    /// `memblock_start_of_DRAM()`.
    pub fn start(&self) -> u64 {
        self.mb.start_of_dram().unwrap().as_u64()
    }
    /// `memblock_end_of_DRAM()`.
    pub fn end(&self) -> u64 {
        self.mb.end_of_dram().unwrap().as_u64()
    }
    /// `memblock_reserve`.
    pub fn reserve(&mut self, base: u64, size: u64) {
        self.mb.reserve(p(base), size).unwrap();
    }
    /// `memblock_reserve_kern`.
    pub fn reserve_kern(&mut self, base: u64, size: u64) {
        self.mb.reserve_kern(p(base), size).unwrap();
    }
    /// `memblock_alloc` / `memblock_alloc_raw`.
    pub fn alloc(&mut self, flags: Flags, size: u64, align: u64) -> Option<VirtAddr> {
        match flags {
            Flags::None => self.mb.alloc(&mut self.mem, size, align),
            _ => self.mb.alloc_raw(&mut self.mem, size, align),
        }
        .ok()
    }
    /// `run_memblock_alloc_nid`: `memblock_alloc_try_nid`, `_raw` or
    /// `memblock_alloc_exact_nid_raw`.
    pub fn alloc_nid(
        &mut self,
        flags: Flags,
        size: u64,
        align: u64,
        min: u64,
        max: u64,
        nid: i32,
    ) -> Option<VirtAddr> {
        let (lo, hi, m) = (p(min), p(max), &mut self.mem);
        match flags {
            Flags::None => self.mb.alloc_try_nid(m, size, align, lo, hi, nid),
            Flags::Raw => self.mb.alloc_try_nid_raw(m, size, align, lo, hi, nid),
            Flags::Exact => self.mb.alloc_exact_nid_raw(m, size, align, lo, hi, nid),
        }
        .ok()
    }
    /// `ASSERT_MEM_EQ(ptr, 0, size)`.
    pub fn assert_zeroed(&self, va: VirtAddr, size: u64) {
        assert!(self.mem.at(va, size).iter().all(|&b| b == 0), "not zeroed");
    }
    /// `ASSERT_MEM_NE(ptr, 0, size)`.
    pub fn assert_not_zeroed(&self, va: VirtAddr, size: u64) {
        assert!(self.mem.at(va, size).iter().all(|&b| b != 0), "zeroed");
    }
    /// `assert_mem_content`.
    pub fn assert_mem_content(&self, va: VirtAddr, size: u64, flags: Flags) {
        if flags == Flags::None {
            self.assert_zeroed(va, size);
        } else {
            self.assert_not_zeroed(va, size);
        }
    }
}
pub mod nid_range;
