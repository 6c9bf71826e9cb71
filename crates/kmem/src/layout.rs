//! The kernel's virtual memory layout per machine, as Linux documents it.
//!
//! - x86_64 with 4-level paging: Documentation/arch/x86/x86_64/mm.rst (direct map at
//!   `0xffff888000000000`, vmalloc/ioremap space `0xffffc90000000000`–`0xffffe8ffffffffff`
//!   (32 TB), vmemmap at `0xffffea0000000000`, …).
//! - i386 with the 3G/1G split, no PAE: arch/x86/include/asm/pgtable_32_areas.h and
//!   fixmap.h: lowmem from `PAGE_OFFSET` 0xc0000000 to `high_memory`, an 8 MiB hole
//!   (`VMALLOC_OFFSET`), the vmalloc area up to two pages below `PKMAP_BASE`, the pkmap area
//!   (`LAST_PKMAP` = 1024 pages), the LDT remap and CPU entry areas, and the fixmap below
//!   `FIXADDR_TOP` 0xfffff000, whose kmap_local slots are `KM_MAX_IDX` pages per CPU.
//!
//! A hosted machine backs only part of x86_64's 32 TB vmalloc space (its kernel window);
//! [`KernelLayout::vmalloc_end`] is the end of what is managed, [`KernelLayout::VMALLOC_END_X86_64`]
//! the architectural end.

#![forbid(unsafe_code)]

use core::fmt;

use crate::addr::PAGE_SIZE;
use crate::arch::Arch;

/// `VMALLOC_OFFSET` (i386): the hole between lowmem and the vmalloc area.
pub const VMALLOC_OFFSET: u64 = 8 << 20;
/// `LAST_PKMAP` (i386 non-PAE): pages in the pkmap area (one page table).
pub const LAST_PKMAP: usize = 1024;
/// `KM_MAX_IDX` (include/linux/highmem-internal.h / asm/kmap_size.h): kmap_local slots per CPU.
pub const KM_MAX_IDX: usize = 16;
/// CPUs with their own kmap_local fixmap slots (Linux: `NR_CPUS`, 8 by default on i386). CPUs
/// beyond this use the pkmap area for their local mappings.
pub const FIX_KMAP_CPUS: usize = 32;
/// `FIXADDR_TOP` on i386 (`__FIXADDR_TOP`, arch/x86/mm/pgtable_32.c).
pub const FIXADDR_TOP_I386: u64 = 0xffff_f000;
/// Fixmap slots below `FIX_KMAP_BEGIN` (FIX_HOLE, VDSO, APIC, IO-APIC, text poke…), modelled
/// as a fixed count.
pub const FIX_KMAP_BEGIN: usize = 16;
/// Pages per CPU of the CPU entry area (GDT, entry stack, TSS and its IO bitmap), modelled.
const CPU_ENTRY_AREA_PAGES_PER_CPU: u64 = 8;

/// The virtual layout of one booted machine (model addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelLayout {
    /// The architecture.
    pub arch: Arch,
    /// `PAGE_OFFSET`.
    pub page_offset: u64,
    /// `high_memory`: the end of the direct map.
    pub high_memory: u64,
    /// `VMALLOC_START`.
    pub vmalloc_start: u64,
    /// The end (exclusive) of the vmalloc space this machine manages (`VMALLOC_END`; on a
    /// hosted x86_64 machine, the end of its window).
    pub vmalloc_end: u64,
    /// `PKMAP_BASE` (i386).
    pub pkmap_base: Option<u64>,
    /// `LDT_BASE_ADDR` (i386).
    pub ldt_base: Option<u64>,
    /// `CPU_ENTRY_AREA_BASE`.
    pub cpu_entry_area: u64,
    /// Bytes of the CPU entry area.
    pub cpu_entry_area_len: u64,
    /// `FIXADDR_TOT_START`.
    pub fixaddr_start: u64,
    /// `FIXADDR_TOP`.
    pub fixaddr_top: u64,
}

impl KernelLayout {
    /// x86_64 `VMALLOC_START` (`__VMALLOC_BASE_L4`).
    pub const VMALLOC_START_X86_64: u64 = 0xffff_c900_0000_0000;
    /// x86_64 `VMALLOC_END` + 1 (32 TB of vmalloc space with 4-level paging).
    pub const VMALLOC_END_X86_64: u64 = 0xffff_e900_0000_0000;
    /// x86_64 `CPU_ENTRY_AREA_BASE`.
    pub const CPU_ENTRY_AREA_X86_64: u64 = 0xffff_fe00_0000_0000;
    /// x86_64 `FIXADDR_TOP` (below the vsyscall page's 2 MiB).
    pub const FIXADDR_TOP_X86_64: u64 = 0xffff_ffff_ff5f_f000;

    /// The layout of a machine with `lowmem_bytes` of direct map, managing at most
    /// `vmalloc_limit` bytes of x86_64 vmalloc space (ignored on i386).
    pub fn new(arch: Arch, lowmem_bytes: u64, vmalloc_limit: u64) -> Self {
        let page = PAGE_SIZE as u64;
        let page_offset = arch.page_offset();
        let high_memory = page_offset + lowmem_bytes;
        match arch {
            Arch::X86_64 => {
                let span = Self::VMALLOC_END_X86_64 - Self::VMALLOC_START_X86_64;
                let fix_pages = (FIX_KMAP_BEGIN + KM_MAX_IDX * FIX_KMAP_CPUS) as u64;
                Self {
                    arch,
                    page_offset,
                    high_memory,
                    vmalloc_start: Self::VMALLOC_START_X86_64,
                    vmalloc_end: Self::VMALLOC_START_X86_64 + span.min(vmalloc_limit),
                    pkmap_base: None,
                    ldt_base: None,
                    cpu_entry_area: Self::CPU_ENTRY_AREA_X86_64,
                    cpu_entry_area_len: 0x80_0000_0000,
                    fixaddr_start: Self::FIXADDR_TOP_X86_64 - fix_pages * page,
                    fixaddr_top: Self::FIXADDR_TOP_X86_64,
                }
            }
            Arch::I386 => {
                let pmd_mask = !((4u64 << 20) - 1);
                let fix_pages = (FIX_KMAP_BEGIN + KM_MAX_IDX * FIX_KMAP_CPUS) as u64;
                let fixaddr_start = FIXADDR_TOP_I386 - fix_pages * page;
                let cea_pages = CPU_ENTRY_AREA_PAGES_PER_CPU * FIX_KMAP_CPUS as u64;
                let cea = (fixaddr_start - page * (cea_pages + 1)) & pmd_mask;
                let ldt = (cea - page) & pmd_mask;
                let pkmap = (ldt - page) & pmd_mask;
                Self {
                    arch,
                    page_offset,
                    high_memory,
                    vmalloc_start: high_memory + VMALLOC_OFFSET,
                    vmalloc_end: pkmap - 2 * page,
                    pkmap_base: Some(pkmap),
                    ldt_base: Some(ldt),
                    cpu_entry_area: cea,
                    cpu_entry_area_len: (cea_pages + 1) * page,
                    fixaddr_start,
                    fixaddr_top: FIXADDR_TOP_I386,
                }
            }
        }
    }

    /// The range of kernel virtual space mirrored in a hosted platform's window: the vmalloc
    /// area (and on i386 everything above it up to `FIXADDR_TOP`: pkmap and fixmap).
    pub fn window(&self) -> (u64, u64) {
        match self.arch {
            Arch::X86_64 => (self.vmalloc_start, self.vmalloc_end),
            Arch::I386 => (self.vmalloc_start, self.fixaddr_top),
        }
    }

    /// `__fix_to_virt(FIX_KMAP_BEGIN + idx)`: the address of a kmap_local slot.
    pub fn kmap_local_slot(&self, idx: usize) -> u64 {
        self.fixaddr_top - (((FIX_KMAP_BEGIN + idx) as u64) << crate::addr::PAGE_SHIFT)
    }

    /// `PKMAP_ADDR(nr)`.
    pub fn pkmap_addr(&self, nr: usize) -> Option<u64> {
        self.pkmap_base
            .map(|b| b + ((nr as u64) << crate::addr::PAGE_SHIFT))
    }

    /// `is_vmalloc_addr`: whether `addr` lies in the managed vmalloc space.
    pub fn is_vmalloc_addr(&self, addr: u64) -> bool {
        addr >= self.vmalloc_start && addr < self.vmalloc_end
    }
}

fn size(f: &mut fmt::Formatter<'_>, bytes: u64) -> fmt::Result {
    const TB: u64 = 1 << 40;
    if bytes >= TB {
        write!(f, "{:>4} TB", bytes / TB)
    } else if bytes >= 10 << 20 {
        write!(f, "{:>4} MB", bytes >> 20)
    } else {
        write!(f, "{:>4} kB", bytes >> 10)
    }
}

impl fmt::Display for KernelLayout {
    /// The layout in the form of i386's boot message (arch/x86/mm/init_32.c `mem_init`):
    /// `    vmalloc : 0xf8800000 - 0xff3fe000   ( 107 MB)`, for both architectures.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.arch.ptr_hex_digits() + 2;
        writeln!(f, "virtual kernel memory layout:")?;
        let mut line = |name: &str, a: u64, b: u64, note: &str| -> fmt::Result {
            write!(f, "{name:>12} : {a:#0w$x} - {b:#0w$x}   (")?;
            size(f, b - a)?;
            writeln!(f, "){note}")
        };
        match self.arch {
            Arch::I386 => {
                line("fixmap", self.fixaddr_start, self.fixaddr_top, "")?;
                line(
                    "cpu_entry",
                    self.cpu_entry_area,
                    self.cpu_entry_area + self.cpu_entry_area_len,
                    "",
                )?;
                if let Some(p) = self.pkmap_base {
                    line(
                        "pkmap",
                        p,
                        p + ((LAST_PKMAP as u64) << crate::addr::PAGE_SHIFT),
                        "",
                    )?;
                }
                line("vmalloc", self.vmalloc_start, self.vmalloc_end, "")?;
                line("lowmem", self.page_offset, self.high_memory, "")?;
            }
            Arch::X86_64 => {
                line(
                    "fixmap",
                    self.fixaddr_start,
                    self.fixaddr_top,
                    "  (kernel-internal fixmap range)",
                )?;
                line(
                    "modules",
                    0xffff_ffff_a000_0000,
                    0xffff_ffff_ff00_0000,
                    "  (module mapping space)",
                )?;
                line(
                    "kernel",
                    0xffff_ffff_8000_0000,
                    0xffff_ffff_a000_0000,
                    "  (kernel text mapping, mapped to physical address 0)",
                )?;
                line(
                    "cpu_entry",
                    self.cpu_entry_area,
                    self.cpu_entry_area + self.cpu_entry_area_len,
                    "",
                )?;
                line(
                    "vmemmap",
                    0xffff_ea00_0000_0000,
                    0xffff_eb00_0000_0000,
                    "  (virtual memory map, vmemmap_base)",
                )?;
                line(
                    "vmalloc",
                    self.vmalloc_start,
                    Self::VMALLOC_END_X86_64,
                    "  (vmalloc/ioremap space, vmalloc_base)",
                )?;
                if self.vmalloc_end != Self::VMALLOC_END_X86_64 {
                    line(
                        "  managed",
                        self.vmalloc_start,
                        self.vmalloc_end,
                        "  (the part this machine backs)",
                    )?;
                }
                line(
                    "direct map",
                    self.page_offset,
                    self.page_offset + (64 << 40),
                    "  (direct mapping of all physical memory, page_offset_base)",
                )?;
                line(
                    "  lowmem",
                    self.page_offset,
                    self.high_memory,
                    "  (mapped RAM, high_memory at the end)",
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn i386_areas() {
        let l = KernelLayout::new(Arch::I386, 896 << 20, 0);
        assert_eq!(l.page_offset, 0xc000_0000);
        assert_eq!(l.high_memory, 0xf800_0000);
        assert_eq!(l.vmalloc_start, 0xf880_0000);
        assert_eq!(l.pkmap_base, Some(0xff40_0000));
        assert_eq!(l.vmalloc_end, 0xff3f_e000);
        assert!(l.kmap_local_slot(0) >= l.fixaddr_start);
        assert!(l.kmap_local_slot(KM_MAX_IDX * FIX_KMAP_CPUS - 1) >= l.fixaddr_start);
        assert!(l.fixaddr_start > l.cpu_entry_area + l.cpu_entry_area_len);
        let s = std::format!("{l}");
        assert!(
            s.contains("     vmalloc : 0xf8800000 - 0xff3fe000   ( 107 MB)"),
            "{s}"
        );
        assert!(
            s.contains("      lowmem : 0xc0000000 - 0xf8000000   ( 896 MB)"),
            "{s}"
        );
        assert!(
            s.contains("pkmap : 0xff400000 - 0xff800000   (4096 kB)"),
            "{s}"
        );
    }

    #[test]
    fn x86_64_areas() {
        let l = KernelLayout::new(Arch::X86_64, 2 << 30, 4 << 30);
        assert_eq!(l.vmalloc_start, 0xffff_c900_0000_0000);
        assert_eq!(l.vmalloc_end, 0xffff_c901_0000_0000);
        assert!(l.is_vmalloc_addr(0xffff_c900_0000_1000));
        assert!(!l.is_vmalloc_addr(0xffff_8880_0000_1000));
        let s = std::format!("{l}");
        assert!(
            s.contains("0xffffc90000000000 - 0xffffe90000000000   (  32 TB)"),
            "{s}"
        );
    }
}
