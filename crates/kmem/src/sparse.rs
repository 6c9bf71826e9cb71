//! SPARSEMEM's section table (include/linux/mmzone.h, mm/sparse.c, mm/sparse-vmemmap.c).
//!
//! With SPARSEMEM (x86_64) physical memory is cut into sections of `1 << SECTION_SIZE_BITS`
//! bytes (128 MiB, arch/x86/include/asm/sparsemem.h). `mem_section` is a two-level table
//! (`CONFIG_SPARSEMEM_EXTREME`): an array of `NR_SECTION_ROOTS` pointers, each to a page of
//! `SECTIONS_PER_ROOT` [`MemSection`]s, allocated only where a section is present. A
//! section's flags say whether it has memory (`SECTION_MARKED_PRESENT`), a memmap
//! (`SECTION_HAS_MEM_MAP`), whether its pages are online (`SECTION_IS_ONLINE`) and whether it
//! came from boot (`SECTION_IS_EARLY`); its usage block holds the pageblock flags of its
//! pageblocks (the "usemap": one byte per pageblock here, Linux packs 4 bits).
//!
//! With `CONFIG_SPARSEMEM_VMEMMAP` the memmap is one virtually contiguous array indexed by
//! PFN (`vmemmap`), of which only present sections are backed by memory (mapped through the
//! kernel page tables; on the hosted platform mirrored in a reserved window): `pfn_to_page`
//! is `vmemmap + pfn`, and a PFN in an absent section has no `struct page` at all.
//!
//! i386 without NUMA is FLATMEM (arch/x86/Kconfig `ARCH_FLATMEM_ENABLE` for X86_32; its
//! SPARSEMEM values would be `SECTION_SIZE_BITS` 26 without PAE, 29 with it, which kmem does
//! not model): the table is empty ([`SectionTable::flat`]) and every PFN below `max_pfn` is
//! valid.
//!
//! # Invariants
//! - `roots` (when not null) points at `NR_SECTION_ROOTS` root pointers in memblock memory
//!   that never moves; a root, once installed (null → page), is never changed or freed while
//!   the machine lives; a root page holds `SECTIONS_PER_ROOT` zero-initialised sections.
//! - A section's `usage` pointer is set before `SECTION_HAS_MEM_MAP` is set (release) and
//!   points at `SECTION_USAGE_BYTES` bytes that stay valid until the section is removed
//!   (`SECTION_HAS_MEM_MAP` cleared first).
//!
//! # Locking
//! Flags and pointers are atomics. Writers (boot, memory hotplug) are serialised by the
//! hotplug lock (`mem_hotplug_lock`); readers take no lock, as in Linux.

use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::addr::{Pfn, PAGE_SHIFT, PAGE_SIZE};

/// `SECTION_SIZE_BITS` on x86_64 (arch/x86/include/asm/sparsemem.h): 128 MiB sections.
pub const SECTION_SIZE_BITS: u32 = 27;
/// `PFN_SECTION_SHIFT`.
pub const PFN_SECTION_SHIFT: u32 = SECTION_SIZE_BITS - PAGE_SHIFT;
/// `PAGES_PER_SECTION`: 32768.
pub const PAGES_PER_SECTION: u64 = 1 << PFN_SECTION_SHIFT;
/// `PAGE_SECTION_MASK` as a PFN mask.
pub const PAGE_SECTION_MASK: u64 = !(PAGES_PER_SECTION - 1);
/// `MAX_PHYSMEM_BITS` with 4-level paging (arch/x86/include/asm/sparsemem.h).
pub const MAX_PHYSMEM_BITS: u32 = 46;
/// `NR_MEM_SECTIONS`.
pub const NR_MEM_SECTIONS: usize = 1 << (MAX_PHYSMEM_BITS - SECTION_SIZE_BITS);
/// `SECTIONS_PER_ROOT`: one page of `struct mem_section`.
pub const SECTIONS_PER_ROOT: usize = PAGE_SIZE / core::mem::size_of::<MemSection>();
/// `NR_SECTION_ROOTS`.
pub const NR_SECTION_ROOTS: usize = NR_MEM_SECTIONS.div_ceil(SECTIONS_PER_ROOT);
/// Pageblocks per section (`1 << (PFN_SECTION_SHIFT - pageblock_order)`): 64.
pub const PAGEBLOCKS_PER_SECTION: usize = 1 << (PFN_SECTION_SHIFT - 9);
/// Bytes of a section's usage block (`mem_section_usage`): its pageblock flags.
pub const SECTION_USAGE_BYTES: usize = PAGEBLOCKS_PER_SECTION;
/// Bytes of one section's memmap: `PAGES_PER_SECTION` 64-byte `struct page`s, one PMD.
pub const SECTION_MEMMAP_BYTES: usize = (PAGES_PER_SECTION as usize) * 64;

/// `SECTION_MARKED_PRESENT`: the section has memory (memblock or hot-added).
pub const SECTION_MARKED_PRESENT: usize = 1 << 0;
/// `SECTION_HAS_MEM_MAP`: the section has a memmap (it is "valid").
pub const SECTION_HAS_MEM_MAP: usize = 1 << 1;
/// `SECTION_IS_ONLINE`: the section's pages are online (given to the buddy allocator).
pub const SECTION_IS_ONLINE: usize = 1 << 2;
/// `SECTION_IS_EARLY`: the section was present at boot.
pub const SECTION_IS_EARLY: usize = 1 << 3;
/// The section's memmap lives in its own first pageblock (memory hotplug's
/// `MHP_MEMMAP_ON_MEMORY`; Linux keeps this in the memory block's `altmap`, kmem has one
/// section per block and keeps it here).
pub const SECTION_MEMMAP_ON_MEMORY: usize = 1 << 4;

/// `pfn_to_section_nr`.
#[inline]
pub const fn pfn_to_section_nr(pfn: Pfn) -> usize {
    (pfn.as_u64() >> PFN_SECTION_SHIFT) as usize
}

/// `section_nr_to_pfn`.
#[inline]
pub const fn section_nr_to_pfn(nr: usize) -> Pfn {
    Pfn::new((nr as u64) << PFN_SECTION_SHIFT)
}

/// `struct mem_section`: the flags word (`section_mem_map`'s low bits; the memmap itself is
/// `vmemmap + pfn`) and the usage block.
#[repr(C)]
pub struct MemSection {
    flags: AtomicUsize,
    usage: AtomicPtr<u8>,
}

impl MemSection {
    /// The section's flags (`SECTION_*`).
    #[inline]
    pub fn flags(&self) -> usize {
        self.flags.load(Ordering::Acquire)
    }
    /// Sets flag bits.
    #[inline]
    pub(crate) fn set(&self, bits: usize) {
        self.flags.fetch_or(bits, Ordering::AcqRel);
    }
    /// Clears flag bits.
    #[inline]
    pub(crate) fn clear(&self, bits: usize) {
        self.flags.fetch_and(!bits, Ordering::AcqRel);
    }
    /// The usage block (null until the section has a memmap).
    #[inline]
    pub(crate) fn usage(&self) -> *mut u8 {
        self.usage.load(Ordering::Acquire)
    }
    /// Sets the usage block.
    #[inline]
    pub(crate) fn set_usage(&self, p: *mut u8) {
        self.usage.store(p, Ordering::Release);
    }
}

/// A handle on a machine's `mem_section` table (null roots: FLATMEM). Copied into every
/// zone, so pageblock flags are found from a PFN without the machine. See the module
/// documentation for its invariants.
#[derive(Clone, Copy, Debug)]
pub struct SectionTable {
    roots: *const AtomicPtr<MemSection>,
}

// SAFETY: the handle points at memblock memory shared by the whole machine, accessed only
// through atomics (module invariants).
unsafe impl Send for SectionTable {}
// SAFETY: as for `Send`.
unsafe impl Sync for SectionTable {}

impl SectionTable {
    /// The table of a FLATMEM machine: no sections.
    pub const fn flat() -> Self {
        Self {
            roots: core::ptr::null(),
        }
    }
    /// A table whose root array is at `roots`.
    ///
    /// # Safety
    /// `roots` points at `NR_SECTION_ROOTS` zeroed pointers in memory that outlives every
    /// copy of the handle, used by nothing else.
    pub(crate) unsafe fn from_roots(roots: *mut AtomicPtr<MemSection>) -> Self {
        Self { roots }
    }
    /// Whether the machine is SPARSEMEM.
    #[inline]
    pub fn is_sparse(&self) -> bool {
        !self.roots.is_null()
    }
    /// The root pointer slot of section `nr`.
    #[inline]
    fn root_slot(&self, nr: usize) -> Option<&AtomicPtr<MemSection>> {
        if self.roots.is_null() || nr >= NR_MEM_SECTIONS {
            return None;
        }
        // SAFETY: `roots` has NR_SECTION_ROOTS slots (constructor's contract) and
        // `nr / SECTIONS_PER_ROOT < NR_SECTION_ROOTS` as `nr < NR_MEM_SECTIONS`.
        Some(unsafe { &*self.roots.add(nr / SECTIONS_PER_ROOT) })
    }
    /// `__nr_to_section`: the section `nr`, if its root exists.
    #[inline]
    pub fn section(&self, nr: usize) -> Option<&MemSection> {
        let root = self.root_slot(nr)?.load(Ordering::Acquire);
        if root.is_null() {
            return None;
        }
        // SAFETY: an installed root holds SECTIONS_PER_ROOT sections and is never freed
        // (module invariants).
        Some(unsafe { &*root.add(nr % SECTIONS_PER_ROOT) })
    }
    /// Whether section `nr` still needs its root page (`sparse_index_init`).
    pub(crate) fn needs_root(&self, nr: usize) -> bool {
        self.root_slot(nr)
            .is_some_and(|s| s.load(Ordering::Acquire).is_null())
    }
    /// Installs the root page of section `nr` (`sparse_index_init`). Returns `false` (the
    /// page is not used) when the root already exists or `nr` is out of range.
    ///
    /// # Safety
    /// `page` points at `SECTIONS_PER_ROOT` zeroed [`MemSection`]s (one page) that live as
    /// long as the machine and are used by nothing else.
    pub(crate) unsafe fn install_root(&self, nr: usize, page: *mut MemSection) -> bool {
        self.root_slot(nr).is_some_and(|s| {
            s.compare_exchange(
                core::ptr::null_mut(),
                page,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        })
    }
    /// The flags of the section of `pfn` (0 for none).
    #[inline]
    pub fn pfn_flags(&self, pfn: Pfn) -> usize {
        self.section(pfn_to_section_nr(pfn))
            .map_or(0, MemSection::flags)
    }
    /// `valid_section`: the section of `pfn` has a memmap.
    #[inline]
    pub fn pfn_valid(&self, pfn: Pfn) -> bool {
        self.pfn_flags(pfn) & SECTION_HAS_MEM_MAP != 0
    }
    /// `online_section`: the section of `pfn` is online.
    #[inline]
    pub fn pfn_online(&self, pfn: Pfn) -> bool {
        self.pfn_flags(pfn) & SECTION_IS_ONLINE != 0
    }
    /// `present_section`: the section of `pfn` has memory.
    #[inline]
    pub fn pfn_present(&self, pfn: Pfn) -> bool {
        self.pfn_flags(pfn) & SECTION_MARKED_PRESENT != 0
    }
    /// The pageblock-flags byte of `pfn` (`get_pageblock_bitmap` + `pfn_to_bitidx`), if its
    /// section has a usage block.
    #[inline]
    pub(crate) fn pageblock_byte(&self, pfn: Pfn) -> Option<*mut u8> {
        let u = self.section(pfn_to_section_nr(pfn))?.usage();
        if u.is_null() {
            return None;
        }
        let i = ((pfn.as_u64() & !PAGE_SECTION_MASK) >> 9) as usize;
        // SAFETY: a usage block has SECTION_USAGE_BYTES = PAGEBLOCKS_PER_SECTION bytes and
        // `i` is a pageblock index inside the section.
        Some(unsafe { u.add(i) })
    }
    /// Number of present sections (`SECTION_MARKED_PRESENT`) below section `limit`.
    pub fn nr_present(&self, limit: usize) -> usize {
        (0..limit.min(NR_MEM_SECTIONS))
            .filter(|&nr| {
                self.section(nr)
                    .is_some_and(|s| s.flags() & SECTION_MARKED_PRESENT != 0)
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn constants_match_linux_x86_64() {
        assert_eq!(PAGES_PER_SECTION, 32768);
        assert_eq!(core::mem::size_of::<MemSection>(), 16);
        assert_eq!(SECTIONS_PER_ROOT, 256);
        assert_eq!(NR_MEM_SECTIONS, 1 << 19);
        assert_eq!(NR_SECTION_ROOTS, 2048);
        assert_eq!(SECTION_MEMMAP_BYTES, 2 << 20);
        assert_eq!(PAGEBLOCKS_PER_SECTION, 64);
    }

    #[test]
    fn flat_table_has_no_sections() {
        let t = SectionTable::flat();
        assert!(!t.is_sparse());
        assert!(t.section(0).is_none());
        assert!(!t.pfn_valid(Pfn::new(0)));
    }

    #[test]
    fn roots_are_installed_once_and_sections_found() {
        let roots: Vec<AtomicPtr<MemSection>> = (0..NR_SECTION_ROOTS)
            .map(|_| AtomicPtr::new(core::ptr::null_mut()))
            .collect();
        let mut page: Vec<MemSection> = (0..SECTIONS_PER_ROOT)
            .map(|_| MemSection {
                flags: AtomicUsize::new(0),
                usage: AtomicPtr::new(core::ptr::null_mut()),
            })
            .collect();
        // SAFETY: `roots` has NR_SECTION_ROOTS null slots and outlives `t`.
        let t = unsafe { SectionTable::from_roots(roots.as_ptr().cast_mut()) };
        let nr = 300; // root 1
        assert!(t.needs_root(nr));
        assert!(t.section(nr).is_none());
        // SAFETY: a root's worth of zeroed sections, outliving `t`.
        assert!(unsafe { t.install_root(nr, page.as_mut_ptr()) });
        // SAFETY: the same root's worth of sections, still alive and outliving `t`; the root
        // is already installed, so this call must refuse it and install nothing.
        assert!(!unsafe { t.install_root(nr, page.as_mut_ptr()) });
        let s = t.section(nr).unwrap();
        s.set(SECTION_MARKED_PRESENT | SECTION_HAS_MEM_MAP);
        let pfn = section_nr_to_pfn(nr);
        assert!(t.pfn_valid(pfn) && t.pfn_present(pfn) && !t.pfn_online(pfn));
        assert!(!t.pfn_valid(section_nr_to_pfn(nr + 1)));
        assert_eq!(t.nr_present(NR_MEM_SECTIONS), 1);
        assert!(t.pageblock_byte(pfn).is_none());
        let mut usage = [0u8; SECTION_USAGE_BYTES];
        s.set_usage(usage.as_mut_ptr());
        let b = t
            .pageblock_byte(Pfn::new(pfn.as_u64() + 3 * 512 + 7))
            .unwrap();
        assert_eq!(b as usize - usage.as_ptr() as usize, 3);
        assert!(t.section(NR_MEM_SECTIONS).is_none());
    }
}
