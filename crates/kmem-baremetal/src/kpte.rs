//! Protecting single pages of the direct map (KFENCE's guard pages): Linux's
//! `kfence_protect_page` for x86 (arch/x86/include/asm/kfence.h), which clears or sets the
//! present bit of the page's PTE and flushes its TLB entry.
//!
//! The boot page tables map the direct map with 2 MiB pages ([`crate::boot`]); the first time a
//! page inside one is protected, the 2 MiB entry is split into a page table of 512 4 KiB
//! entries with the same flags (Linux splits the direct map's large pages for KFENCE's pool at
//! boot, `arch_kfence_init_pool`). The tables for that come from a static reserve in `.bss`
//! (part of the kernel image, which is identity mapped, so a table's virtual address is its
//! physical address): [`SPLIT_TABLES`] of them, enough for KFENCE's 2 MiB pool, which spans at
//! most two 2 MiB pages. kmemcheck hides single pages anywhere in RAM (every slab page); for it
//! the boot reserves one table per 2 MiB of RAM ([`add_tables`], Linux 4.14 maps the whole
//! direct map with 4 KiB pages under `CONFIG_KMEMCHECK`, arch/x86/mm/init.c
//! `probe_page_size_mask`). The identity map shares the page directories with the direct map,
//! so the page disappears from both.

use crate::arch;
use crate::spinlock::SpinLock;

/// Page tables available for splitting 2 MiB pages.
const SPLIT_TABLES: usize = 4;

const PRESENT: u64 = 1;
const HUGE: u64 = 1 << 7;
/// Bits 12..52: the physical address in an entry.
const ADDR: u64 = 0x000f_ffff_ffff_f000;
/// The flags a 2 MiB entry passes on to its 4 KiB entries: P, RW, US, PWT, PCD, G and NX (PAT
/// sits at bit 12 in a 2 MiB entry and bit 7 in a 4 KiB one; the boot tables use neither).
const INHERITED: u64 = 0x1f | (1 << 8) | (1 << 63);

#[repr(C, align(4096))]
struct PageTable([u64; 512]);

struct Reserve {
    tables: [PageTable; SPLIT_TABLES],
    used: usize,
    /// More tables from [`add_tables`]: identity-mapped physical pages (start, count, used).
    extra: (u64, usize, usize),
}

static RESERVE: SpinLock<Reserve> = SpinLock::new(Reserve {
    tables: [const { PageTable([0; 512]) }; SPLIT_TABLES],
    used: 0,
    extra: (0, 0, 0),
});

/// Adds `count` page tables at physical `pa` (page aligned, below the identity-map end,
/// reserved from every allocator for the kernel's life) to the tables used for splitting.
pub fn add_tables(pa: u64, count: usize) {
    RESERVE.lock().extra = (pa, count, 0);
}

impl Reserve {
    /// A table for splitting, if one is left.
    fn take(&mut self) -> Option<*mut PageTable> {
        if self.used < SPLIT_TABLES {
            self.used += 1;
            return Some(&mut self.tables[self.used - 1] as *mut PageTable);
        }
        let (pa, count, used) = self.extra;
        if used < count {
            self.extra.2 += 1;
            return Some((pa + used as u64 * 4096) as *mut PageTable);
        }
        None
    }
}

/// Makes the 4 KiB page at direct-map address `va` not present (`present == false`) or
/// present again. Returns `false` when `va` is not mapped by the live tables or a 2 MiB page
/// would need splitting and the reserve is used up (the page is then left as it was).
pub fn set_present(va: u64, present: bool) -> bool {
    let mut r = RESERVE.lock();
    let index = |level: u32| ((va >> (12 + 9 * level)) & 511) as usize;
    // SAFETY: the live tables (CR3's PML4 and what it points to) are below the identity-map end
    // (boot tables in the image's .bss, kmem's tables from memblock/buddy memory, split tables
    // from the reserve or `add_tables`' pages), so their physical addresses are valid
    // pointers; the lock serialises every change made here, and
    // nothing else changes the direct map's entries (kmem's own page-table code works in the
    // vmalloc and fixmap slots only).
    unsafe {
        let pml4 = (arch::read_cr3() & ADDR) as *mut u64;
        let e4 = *pml4.add(index(3));
        if e4 & PRESENT == 0 {
            return false;
        }
        let pdpt = (e4 & ADDR) as *mut u64;
        let e3 = *pdpt.add(index(2));
        if e3 & PRESENT == 0 || e3 & HUGE != 0 {
            return false;
        }
        let pde = ((e3 & ADDR) as *mut u64).add(index(1));
        if *pde & PRESENT == 0 {
            return false;
        }
        if *pde & HUGE != 0 {
            let Some(t) = r.take() else {
                return false;
            };
            let base = *pde & 0x000f_ffff_ffe0_0000;
            let flags = *pde & INHERITED;
            // `t` is a table of the static reserve or of the added pages (identity mapped,
            // reserved for this use), used by nothing else.
            for (k, e) in (*t).0.iter_mut().enumerate() {
                *e = (base + (k as u64) * 4096) | flags;
            }
            let table = t as u64;
            // Write the table before the entry points at it (the CPU walks it afterwards).
            core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
            *pde = table | (*pde & 0x7);
            arch::flush_tlb_all();
        }
        let pte = ((*pde & ADDR) as *mut u64).add(index(0));
        if present {
            *pte |= PRESENT;
        } else {
            *pte &= !PRESENT;
        }
    }
    arch::invlpg(va);
    // The identity alias shares the entry.
    arch::invlpg(va.wrapping_sub(crate::boot::DIRECT_MAP_BASE));
    true
}

/// Whether the page at `va` is present in the live page tables (`None`: not mapped down to a
/// 4 KiB or 2 MiB entry, or the walk meets a 1 GiB page).
pub fn present(va: u64) -> Option<bool> {
    let _r = RESERVE.lock();
    let index = |level: u32| ((va >> (12 + 9 * level)) & 511) as usize;
    // SAFETY: as in `set_present` (the same walk, reading only, under the same lock).
    unsafe {
        let pml4 = (arch::read_cr3() & ADDR) as *const u64;
        let e4 = *pml4.add(index(3));
        if e4 & PRESENT == 0 {
            return None;
        }
        let e3 = *((e4 & ADDR) as *const u64).add(index(2));
        if e3 & PRESENT == 0 || e3 & HUGE != 0 {
            return None;
        }
        let e2 = *((e3 & ADDR) as *const u64).add(index(1));
        if e2 & PRESENT == 0 {
            return None;
        }
        if e2 & HUGE != 0 {
            return Some(true);
        }
        let e1 = *((e2 & ADDR) as *const u64).add(index(0));
        Some(e1 & PRESENT != 0)
    }
}
