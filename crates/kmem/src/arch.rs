//! Machine descriptions: x86_64 and the i386 3:1 split, their zone limits, firmware memory
//! maps (e820), and the one translation between real pointers and the addresses shown to
//! people in the machine's own layout.
//!
//! Constants come from Linux: `PAGE_OFFSET` (arch/x86/include/asm/page_64_types.h with 4-level
//! paging: `__PAGE_OFFSET_BASE_L4` 0xffff888000000000; page_32_types.h with VMSPLIT_3G:
//! 0xC0000000), `vmemmap` base 0xffffea0000000000 (Documentation/arch/x86/x86_64/mm.rst),
//! `MAX_DMA_PFN` 16 MiB and `MAX_DMA32_PFN` 4 GiB (arch/x86/include/asm/dma.h), and i386's
//! `MAXMEM` of 896 MiB (1 GiB of kernel space less the 128 MiB `__VMALLOC_RESERVE`).

#![forbid(unsafe_code)]

use core::fmt;

use crate::addr::{Pfn, PhysAddr, PAGE_SHIFT};
use crate::mmzone::ZoneType;

/// The simulated architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// x86_64 with 4-level paging: zones DMA, DMA32, Normal.
    X86_64,
    /// i386 with the 3 GiB/1 GiB split, no PAE: zones DMA, Normal (to 896 MiB), HighMem.
    I386,
}

/// 16 MiB: end of ZONE_DMA (`MAX_DMA_PFN`).
pub const MAX_DMA_ADDR: u64 = 16 << 20;
/// 4 GiB: end of ZONE_DMA32 (`MAX_DMA32_PFN`).
pub const MAX_DMA32_ADDR: u64 = 4 << 30;
/// i386 lowmem limit (`MAXMEM`): 896 MiB.
pub const I386_MAXMEM: u64 = 896 << 20;

impl Arch {
    /// `PAGE_OFFSET`: the model address of physical address 0 in the direct map.
    pub const fn page_offset(self) -> u64 {
        match self {
            Arch::X86_64 => 0xffff_8880_0000_0000,
            Arch::I386 => 0xc000_0000,
        }
    }
    /// Where the memmap is shown (x86_64's `VMEMMAP_START`); i386 shows it in the direct map.
    pub const fn vmemmap_base(self) -> Option<u64> {
        match self {
            Arch::X86_64 => Some(0xffff_ea00_0000_0000),
            Arch::I386 => None,
        }
    }
    /// The zones this architecture configures, in index order (Linux's `MAX_NR_ZONES`).
    pub const fn zones(self) -> &'static [ZoneType] {
        match self {
            Arch::X86_64 => &[
                ZoneType::Dma,
                ZoneType::Dma32,
                ZoneType::Normal,
                ZoneType::Movable,
                ZoneType::Device,
            ],
            Arch::I386 => &[
                ZoneType::Dma,
                ZoneType::Normal,
                ZoneType::HighMem,
                ZoneType::Movable,
            ],
        }
    }
    /// The end (exclusive) of the direct map in physical memory, given the end of RAM.
    pub const fn lowmem_limit(self, ram_end: u64) -> u64 {
        match self {
            Arch::X86_64 => ram_end,
            Arch::I386 => {
                if ram_end < I386_MAXMEM {
                    ram_end
                } else {
                    I386_MAXMEM
                }
            }
        }
    }
    /// `SECTION_SIZE_BITS` of the memory model: x86_64 uses SPARSEMEM with 128 MiB sections
    /// (arch/x86/include/asm/sparsemem.h); i386 without NUMA uses FLATMEM (`None`).
    pub const fn section_size_bits(self) -> Option<u32> {
        match self {
            Arch::X86_64 => Some(27),
            Arch::I386 => None,
        }
    }
    /// `max_zone_pfns[]` (`zone_sizes_init` in arch/x86/mm/init.c): the end PFN of each
    /// zone kind, given the highest PFN of RAM.
    pub fn zone_end_pfn(self, zone: ZoneType, max_pfn: Pfn) -> Pfn {
        let cap = |a: u64| Pfn::new((a >> PAGE_SHIFT).min(max_pfn.as_u64()));
        match (self, zone) {
            (_, ZoneType::Dma) => cap(MAX_DMA_ADDR),
            (Arch::X86_64, ZoneType::Dma32) => cap(MAX_DMA32_ADDR),
            (Arch::X86_64, ZoneType::Normal) => max_pfn,
            (Arch::I386, ZoneType::Normal) => cap(I386_MAXMEM),
            (Arch::I386, ZoneType::HighMem) => max_pfn,
            _ => Pfn::new(0),
        }
    }
    /// Bytes of a native pointer as printed in reports (16 hex digits on x86_64, 8 on i386).
    pub const fn ptr_hex_digits(self) -> usize {
        match self {
            Arch::X86_64 => 16,
            Arch::I386 => 8,
        }
    }
    /// The name used on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::I386 => "i386",
        }
    }
    /// Parses `x86_64` / `i386` (also `x86-64`, `amd64`, `i686`, `x86`).
    pub fn parse(s: &str) -> Option<Arch> {
        match s {
            "x86_64" | "x86-64" | "amd64" => Some(Arch::X86_64),
            "i386" | "i686" | "x86" | "x86_32" => Some(Arch::I386),
            _ => None,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// e820 entry types (arch/x86/include/asm/e820/types.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum E820Type {
    /// `E820_TYPE_RAM`
    Ram = 1,
    /// `E820_TYPE_RESERVED`
    Reserved = 2,
    /// `E820_TYPE_ACPI`
    Acpi = 3,
    /// `E820_TYPE_NVS`
    Nvs = 4,
    /// `E820_TYPE_UNUSABLE`
    Unusable = 5,
}

impl E820Type {
    /// Converts the firmware's number; unknown types are treated as reserved.
    pub const fn from_raw(v: u32) -> E820Type {
        match v {
            1 => E820Type::Ram,
            3 => E820Type::Acpi,
            4 => E820Type::Nvs,
            5 => E820Type::Unusable,
            _ => E820Type::Reserved,
        }
    }
    /// The name Linux prints (`e820_print_type`).
    pub const fn name(self) -> &'static str {
        match self {
            E820Type::Ram => "usable",
            E820Type::Reserved => "reserved",
            E820Type::Acpi => "ACPI data",
            E820Type::Nvs => "ACPI NVS",
            E820Type::Unusable => "unusable",
        }
    }
}

/// One entry of the firmware memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    /// First byte.
    pub addr: PhysAddr,
    /// Length in bytes.
    pub size: u64,
    /// What the range is.
    pub kind: E820Type,
}

impl E820Entry {
    /// Creates an entry.
    pub const fn new(addr: u64, size: u64, kind: E820Type) -> Self {
        Self {
            addr: PhysAddr::new(addr),
            size,
            kind,
        }
    }
    /// One past the last byte.
    pub const fn end(&self) -> u64 {
        self.addr.as_u64() + self.size
    }
}

/// The most entries a firmware map may have (`E820_MAX_ENTRIES_ZEROPAGE` is 128).
pub const E820_MAX_ENTRIES: usize = 128;

/// A firmware memory map.
#[derive(Clone, Copy)]
pub struct E820Table {
    entries: [E820Entry; E820_MAX_ENTRIES],
    len: usize,
}

impl Default for E820Table {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for E820Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.entries()).finish()
    }
}

impl E820Table {
    /// An empty map.
    pub const fn new() -> Self {
        Self {
            entries: [E820Entry::new(0, 0, E820Type::Reserved); E820_MAX_ENTRIES],
            len: 0,
        }
    }
    /// Appends an entry; returns `false` when the table is full.
    pub fn push(&mut self, e: E820Entry) -> bool {
        if self.len == E820_MAX_ENTRIES {
            return false;
        }
        self.entries[self.len] = e;
        self.len += 1;
        true
    }
    /// The entries.
    pub fn entries(&self) -> &[E820Entry] {
        &self.entries[..self.len]
    }
    /// One past the highest RAM byte.
    pub fn ram_end(&self) -> u64 {
        self.entries()
            .iter()
            .filter(|e| e.kind == E820Type::Ram)
            .map(|e| e.end())
            .max()
            .unwrap_or(0)
    }
    /// Total RAM bytes.
    pub fn ram_total(&self) -> u64 {
        self.entries()
            .iter()
            .filter(|e| e.kind == E820Type::Ram)
            .map(|e| e.size)
            .sum()
    }

    /// `__e820__range_update`: the parts of `[start, start + size)` covered by entries of
    /// type `old` become type `new` (entries split as needed; the table stays sorted).
    /// Returns the bytes changed, or `None` if splitting would overflow the table.
    pub fn range_update(
        &mut self,
        start: u64,
        size: u64,
        old: E820Type,
        new: E820Type,
    ) -> Option<u64> {
        let end = start.saturating_add(size);
        let mut out = E820Table::new();
        let mut changed = 0;
        for e in self.entries() {
            let (s, t) = (e.addr.as_u64(), e.end());
            if e.kind != old || t <= start || s >= end {
                if !out.push(*e) {
                    return None;
                }
                continue;
            }
            let (a, b) = (s.max(start), t.min(end));
            for (ps, pe, kind) in [(s, a, old), (a, b, new), (b, t, old)] {
                if pe > ps && !out.push(E820Entry::new(ps, pe - ps, kind)) {
                    return None;
                }
            }
            changed += b - a;
        }
        *self = out;
        Some(changed)
    }
    /// `e820__range_remove` (with `check_type`): drops the parts of `[start, start + size)`
    /// covered by entries of type `kind`. Returns the bytes removed, or `None` if splitting
    /// would overflow the table.
    pub fn range_remove(&mut self, start: u64, size: u64, kind: E820Type) -> Option<u64> {
        let end = start.saturating_add(size);
        let mut out = E820Table::new();
        let mut removed = 0;
        for e in self.entries() {
            let (s, t) = (e.addr.as_u64(), e.end());
            if e.kind != kind || t <= start || s >= end {
                if !out.push(*e) {
                    return None;
                }
                continue;
            }
            let (a, b) = (s.max(start), t.min(end));
            for (ps, pe) in [(s, a), (b, t)] {
                if pe > ps && !out.push(E820Entry::new(ps, pe - ps, kind)) {
                    return None;
                }
            }
            removed += b - a;
        }
        *self = out;
        Some(removed)
    }
    /// `e820_end_pfn(limit_pfn, E820_TYPE_RAM)`: one past the last RAM page below
    /// `limit_pfn` (arch/x86/kernel/e820.c).
    pub fn end_pfn(&self, limit_pfn: u64) -> u64 {
        let mut last = 0;
        for e in self.entries().iter().filter(|e| e.kind == E820Type::Ram) {
            let (s, t) = (e.addr.as_u64() >> PAGE_SHIFT, e.end() >> PAGE_SHIFT);
            if s >= limit_pfn {
                continue;
            }
            if t > limit_pfn {
                last = limit_pfn;
                break;
            }
            last = last.max(t);
        }
        last
    }

    /// The map QEMU's `pc` machine gives a guest with `mem` bytes of RAM: 639 KiB of base
    /// memory, the EBDA and BIOS areas reserved, RAM from 1 MiB, the last 128 KiB below the
    /// PCI hole reserved for firmware tables, and RAM above 3 GiB relocated above 4 GiB
    /// (hw/i386/pc.c: `below_4g_mem_size` is 3 GiB once RAM reaches 3.5 GiB).
    ///
    /// Returns `None` if `mem` is below 2 MiB.
    pub fn qemu_pc(mem: u64) -> Option<E820Table> {
        if mem < (2 << 20) {
            return None;
        }
        let mut t = E820Table::new();
        let below_4g = if mem >= 0xe000_0000 { 0xc000_0000 } else { mem };
        let above_4g = mem - below_4g;
        t.push(E820Entry::new(0, 0x9fc00, E820Type::Ram));
        t.push(E820Entry::new(0x9fc00, 0x400, E820Type::Reserved));
        t.push(E820Entry::new(0xf0000, 0x10000, E820Type::Reserved));
        t.push(E820Entry::new(
            0x10_0000,
            below_4g - 0x10_0000 - 0x2_0000,
            E820Type::Ram,
        ));
        t.push(E820Entry::new(
            below_4g - 0x2_0000,
            0x2_0000,
            E820Type::Reserved,
        ));
        t.push(E820Entry::new(0xfeff_c000, 0x4000, E820Type::Reserved));
        t.push(E820Entry::new(0xfffc_0000, 0x4_0000, E820Type::Reserved));
        if above_4g > 0 {
            t.push(E820Entry::new(1 << 32, above_4g, E820Type::Ram));
        }
        Some(t)
    }
}

/// Maximum regions in an [`AddrTranslation`].
pub const MAX_TRANSLATIONS: usize = 8;

/// One translated region: `len` bytes at real address `real` are shown at `model`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TranslationRegion {
    /// The real (host or CPU) address of the region.
    pub real: usize,
    /// The address shown in the machine's own layout.
    pub model: u64,
    /// Length in bytes.
    pub len: u64,
}

/// The translation between real pointers and model addresses: the one table the brief asks
/// for. Earlier regions take precedence (the memmap region is listed before the direct map
/// that contains it).
#[derive(Clone, Copy, Debug, Default)]
pub struct AddrTranslation {
    regions: [TranslationRegion; MAX_TRANSLATIONS],
    len: usize,
}

impl AddrTranslation {
    /// An empty table (every address shown as is).
    pub const fn new() -> Self {
        Self {
            regions: [TranslationRegion {
                real: 0,
                model: 0,
                len: 0,
            }; MAX_TRANSLATIONS],
            len: 0,
        }
    }
    /// Adds a region; returns `false` when the table is full.
    pub fn add(&mut self, r: TranslationRegion) -> bool {
        if self.len == MAX_TRANSLATIONS {
            return false;
        }
        self.regions[self.len] = r;
        self.len += 1;
        true
    }
    /// The regions.
    pub fn regions(&self) -> &[TranslationRegion] {
        &self.regions[..self.len]
    }
    /// The model address of a real address (unchanged if no region covers it).
    pub fn to_model(&self, real: usize) -> u64 {
        for r in self.regions() {
            if real >= r.real && ((real - r.real) as u64) < r.len {
                return r.model + (real - r.real) as u64;
            }
        }
        real as u64
    }
    /// The real address of a model address, if a region covers it.
    pub fn from_model(&self, model: u64) -> Option<usize> {
        for r in self.regions() {
            if model >= r.model && model - r.model < r.len {
                return Some(r.real + (model - r.model) as usize);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_maps() {
        let t = E820Table::qemu_pc(1 << 30).unwrap();
        assert_eq!(t.ram_end(), (1 << 30) - 0x2_0000);
        let t = E820Table::qemu_pc(5 << 30).unwrap();
        assert_eq!(t.ram_end(), (1 << 32) + (2 << 30));
        assert!(E820Table::qemu_pc(1 << 20).is_none());
    }

    #[test]
    fn range_update_remove_end_pfn() {
        let mut t = E820Table::qemu_pc(5 << 30).unwrap();
        // trim_bios_range.
        assert_eq!(
            t.range_update(0, 0x1000, E820Type::Ram, E820Type::Reserved),
            Some(0x1000)
        );
        assert_eq!(t.range_remove(0xa0000, 0x60000, E820Type::Ram), Some(0));
        let e = t.entries();
        assert_eq!(e[0], E820Entry::new(0, 0x1000, E820Type::Reserved));
        assert_eq!(e[1], E820Entry::new(0x1000, 0x9ec00, E820Type::Ram));
        // The two last_pfn lines of the 5 GiB machine.
        assert_eq!(t.end_pfn(0x4_0000_0000), 0x180000);
        assert_eq!(t.end_pfn(1 << 20), 0xbffe0);
        // A split in the middle and a removal across entries.
        let mut t = E820Table::new();
        t.push(E820Entry::new(0, 0x10000, E820Type::Ram));
        t.push(E820Entry::new(0x10000, 0x10000, E820Type::Reserved));
        t.push(E820Entry::new(0x20000, 0x10000, E820Type::Ram));
        t.range_update(0x4000, 0x1000, E820Type::Ram, E820Type::Acpi);
        assert_eq!(t.entries().len(), 5);
        assert_eq!(
            t.entries()[2],
            E820Entry::new(0x5000, 0xb000, E820Type::Ram)
        );
        assert_eq!(
            t.range_remove(0x8000, 0x20000, E820Type::Ram),
            Some(0x8000 + 0x8000)
        );
        assert_eq!(
            t.entries()[2],
            E820Entry::new(0x5000, 0x3000, E820Type::Ram)
        );
        assert_eq!(
            t.entries()[4],
            E820Entry::new(0x28000, 0x8000, E820Type::Ram)
        );
    }

    #[test]
    fn translation() {
        let mut t = AddrTranslation::new();
        t.add(TranslationRegion {
            real: 0x1000_0000,
            model: 0xc000_0000,
            len: 0x100_0000,
        });
        assert_eq!(t.to_model(0x1000_1234), 0xc000_1234);
        assert_eq!(t.from_model(0xc000_1234), Some(0x1000_1234));
        assert_eq!(t.from_model(0xd000_0000), None);
        assert_eq!(
            Arch::I386.zone_end_pfn(ZoneType::Normal, Pfn::new(0x80000)),
            Pfn::new(0x38000)
        );
    }
}
