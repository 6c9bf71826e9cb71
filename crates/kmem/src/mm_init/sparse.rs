//! The memmap at boot (mm/sparse.c `memblocks_present`, `sparse_init`,
//! mm/sparse-vmemmap.c `__populate_section_memmap`; mm/mm_init.c `alloc_node_mem_map` for
//! FLATMEM).
//!
//! SPARSEMEM (x86_64): the `mem_section` roots, a root page per 256 sections that hold
//! memory, then for the present sections one block of usage (pageblock flags) and one block
//! of memmap — `PAGES_PER_SECTION` `struct page`s per section, 2 MiB each, the whole block
//! PMD aligned as `sparse_buffer_init` takes it — all from memblock. Each section's 2 MiB
//! of memmap is mapped at `vmemmap + section_nr × 2 MiB` (the platform mirrors it in its
//! vmemmap window; `vmalloc_init` later enters the same PMD mappings into the kernel page
//! table). A hole (the PCI hole below 4 GiB) costs no memmap.
//!
//! A platform without a vmemmap window (bare metal) gets one contiguous array for every PFN
//! of the sections below `max_pfn` (up to the end of the last one), holes included, as
//! FLATMEM i386 does up to `max_pfn`, and the section table on top.

use core::sync::atomic::AtomicPtr;

use super::{BootError, EarlyAlloc};
use crate::addr::{Pfn, PhysAddr, PAGE_SIZE};
use crate::arch::Arch;
use crate::memblock::Memblock;
use crate::mm::mm_types::Page;
use crate::mmzone::MigrateType;
use crate::platform::Platform;
use crate::sparse::{
    pfn_to_section_nr, MemSection, SectionTable, NR_SECTION_ROOTS, PAGES_PER_SECTION,
    SECTION_HAS_MEM_MAP, SECTION_IS_EARLY, SECTION_MARKED_PRESENT, SECTION_MEMMAP_BYTES,
    SECTION_USAGE_BYTES,
};

/// `SMP_CACHE_BYTES`, the alignment of memblock's small allocations here.
const SMP_CACHE_BYTES: usize = 64;

/// The boot memmap and section table.
pub(crate) struct BootMemmap {
    pub(crate) sections: SectionTable,
    /// The `struct page` of PFN 0.
    pub(crate) memmap: *mut Page,
    /// Bytes of address space from `memmap` the translation shows as `vmemmap`.
    pub(crate) span: usize,
    /// The physical block backing the memmap: `(start, bytes)`.
    pub(crate) phys: (u64, u64),
    /// Whether the memmap is mapped in the platform's vmemmap window.
    pub(crate) vmemmap: bool,
}

/// Sections of the memmap's address space: every section up to the highest physical
/// address the platform may ever back (memory hotplug adds sections there).
fn window_sections<P: Platform>(plat: &P, max_pfn: Pfn) -> usize {
    let end = plat.max_phys_end().pfn().as_u64().max(max_pfn.as_u64());
    end.div_ceil(PAGES_PER_SECTION) as usize
}

/// `memblocks_present`: marks every section holding memblock memory present, allocating its
/// root page first (`sparse_index_init`). Returns the table.
fn memblocks_present<P: Platform>(
    ea: &EarlyAlloc<'_, P>,
    mb: &mut Memblock,
) -> Result<SectionTable, BootError> {
    let roots = ea.zeroed(
        mb,
        NR_SECTION_ROOTS * core::mem::size_of::<AtomicPtr<MemSection>>(),
        SMP_CACHE_BYTES,
    )?;
    // SAFETY: NR_SECTION_ROOTS zeroed (null) pointers in memblock memory that never moves
    // and lives as long as the machine, used by nothing else.
    let table = unsafe { SectionTable::from_roots(roots.cast()) };
    let mut i = 0;
    while let Some(r) = mb.memory.regions().get(i).copied() {
        let (s, e) = (r.base.pfn().as_u64(), PhysAddr::new(r.end()).pfn().as_u64());
        i += 1;
        if e <= s {
            continue;
        }
        for nr in pfn_to_section_nr(Pfn::new(s))..=pfn_to_section_nr(Pfn::new(e - 1)) {
            if table.needs_root(nr) {
                let page = ea.zeroed(mb, PAGE_SIZE, SMP_CACHE_BYTES)?;
                // SAFETY: one zeroed page (SECTIONS_PER_ROOT zeroed sections: flags 0, usage
                // null) from memblock, never freed, used only by the table.
                unsafe { table.install_root(nr, page.cast()) };
            }
            if let Some(sec) = table.section(nr) {
                sec.set(SECTION_MARKED_PRESENT);
            }
        }
    }
    Ok(table)
}

/// Maps `[nr, nr + n)` sections' memmap, backed from `pa` on, into the window at `w`, and
/// populates the mapping.
fn map_run<P: Platform>(plat: &P, w: *mut u8, run: (usize, usize), pa: u64, max_pfn: Pfn) -> bool {
    let (nr, n) = run;
    let va = w.wrapping_add(nr * SECTION_MEMMAP_BYTES);
    let len = n * SECTION_MEMMAP_BYTES;
    if !plat.map_vmemmap(va, PhysAddr::new(pa), len) {
        return false;
    }
    // memmap_init writes every entry below max_pfn: fault that part of the range in at once.
    // The last section's tail beyond max_pfn may be shared instead (`memmap_init`'s
    // `init_tail`): faulting it in here would only back pages about to be replaced.
    let used = (max_pfn.as_usize() * core::mem::size_of::<Page>()).next_multiple_of(PAGE_SIZE);
    let prefault = used.saturating_sub(nr * SECTION_MEMMAP_BYTES).min(len);
    if prefault > 0 {
        plat.prefault(va, prefault);
    }
    true
}

/// `sparse_init` (SPARSEMEM) or the FLATMEM memmap: see the module documentation.
pub(crate) fn sparse_init<P: Platform>(
    plat: &P,
    ea: &EarlyAlloc<'_, P>,
    mb: &mut Memblock,
    arch: Arch,
    max_pfn: Pfn,
) -> Result<BootMemmap, BootError> {
    // FLATMEM: an entry per PFN below max_pfn. The array under a section table covers whole
    // sections, as the vmemmap does: `memmap_init` initialises the last section's tail
    // beyond max_pfn too (`init_unavailable_range`), which must not run past the array.
    let flat = |mb: &mut Memblock, sections: SectionTable| -> Result<BootMemmap, BootError> {
        let entries = if sections.is_sparse() {
            max_pfn.as_u64().next_multiple_of(PAGES_PER_SECTION) as usize
        } else {
            max_pfn.as_usize()
        };
        let bytes = entries * core::mem::size_of::<Page>();
        // memblock_alloc_raw: every entry is written by memmap_init.
        let memmap = ea.raw(mb, bytes, PAGE_SIZE)?;
        plat.prefault(memmap, bytes);
        let pa = memmap as u64 - ea.direct_map as u64;
        Ok(BootMemmap {
            sections,
            memmap: memmap.cast(),
            span: bytes,
            phys: (pa, bytes as u64),
            vmemmap: false,
        })
    };
    if arch.section_size_bits().is_none() {
        return flat(mb, SectionTable::flat());
    }
    let table = memblocks_present(ea, mb)?;
    let nr_window = window_sections(plat, max_pfn);
    let present = present_sections(table, nr_window);
    let nr_present = present.clone().count();
    // sparse_usage_init: one block of usage for the node's present sections.
    let usage = ea.zeroed(mb, nr_present * SECTION_USAGE_BYTES, SMP_CACHE_BYTES)?;
    // SAFETY: `usage` has that many bytes; every pageblock starts MIGRATE_MOVABLE, as at
    // boot in Linux (memmap_init_range).
    unsafe {
        core::ptr::write_bytes(
            usage,
            MigrateType::Movable as u8,
            nr_present * SECTION_USAGE_BYTES,
        )
    };
    let window = plat.vmemmap_window(nr_window * SECTION_MEMMAP_BYTES);
    let bm = match window {
        Some(w) => {
            // sparse_buffer_init: the node's memmap in one PMD-aligned block.
            let bytes = nr_present * SECTION_MEMMAP_BYTES;
            let pa = mb
                .phys_alloc(bytes as u64, SECTION_MEMMAP_BYTES as u64)?
                .as_u64();
            let mut run: Option<(usize, usize, usize)> = None; // (first nr, count, first k)
            for (k, nr) in present.clone().enumerate() {
                run = match run {
                    Some((f, n, fk)) if f + n == nr => Some((f, n + 1, fk)),
                    Some((f, n, fk)) => {
                        let base = pa + (fk * SECTION_MEMMAP_BYTES) as u64;
                        if !map_run(plat, w, (f, n), base, max_pfn) {
                            return Err(BootError::NoVmemmap);
                        }
                        Some((nr, 1, k))
                    }
                    None => Some((nr, 1, k)),
                };
            }
            if let Some((f, n, fk)) = run {
                let base = pa + (fk * SECTION_MEMMAP_BYTES) as u64;
                if !map_run(plat, w, (f, n), base, max_pfn) {
                    return Err(BootError::NoVmemmap);
                }
            }
            BootMemmap {
                sections: table,
                memmap: w.cast(),
                span: nr_window * SECTION_MEMMAP_BYTES,
                phys: (pa, bytes as u64),
                vmemmap: true,
            }
        }
        None => flat(mb, table)?,
    };
    for (k, nr) in present.enumerate() {
        if let Some(sec) = table.section(nr) {
            sec.set_usage(usage.wrapping_add(k * SECTION_USAGE_BYTES));
            sec.set(SECTION_HAS_MEM_MAP | SECTION_IS_EARLY);
        }
    }
    Ok(bm)
}

/// The present sections below section `limit`.
fn present_sections(table: SectionTable, limit: usize) -> impl Iterator<Item = usize> + Clone {
    (0..limit).filter(move |&nr| {
        table
            .section(nr)
            .is_some_and(|s| s.flags() & SECTION_MARKED_PRESENT != 0)
    })
}
